//! Generate the ringmesh.v1 types and gRPC stubs. protox compiles the
//! .proto files in pure Rust (well-known types included), so a fresh
//! machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "ringmesh/v1/config.proto",
        "ringmesh/v1/discovery.proto",
        "ringmesh/v1/admin.proto",
        "ringmesh/v1/telemetry.proto",
        "ringmesh/testing/v1/echo.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
