//! What the end-to-end tests of `compare` share: the harness binary, and
//! the proxy binary to run (`RINGMESH_PROXY_BIN`, else a `ringmesh-proxy`
//! built next to this test's `ringmesh-bench`: this crate cannot build
//! it).

use std::path::PathBuf;

pub const BENCH: &str = env!("CARGO_BIN_EXE_ringmesh-bench");

pub fn proxy_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RINGMESH_PROXY_BIN") {
        return Some(PathBuf::from(p));
    }
    let next = PathBuf::from(BENCH).with_file_name("ringmesh-proxy");
    next.is_file().then_some(next)
}
