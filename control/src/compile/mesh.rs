//! Automatic mTLS between proxies: what the compiler adds for it.
//!
//! - `ProxyConfig.mesh` for every proxy (sidecar or gateway): the roots
//!   its peers' certificates must chain to (the CA's bundle and the extra
//!   roots of `--trust-bundle`, during a root rotation both). `identity`
//!   stays unset: the proxy asks `Identity/Sign` for its certificate.
//! - `Cluster.mesh` on a Service's cluster whose endpoints are all
//!   registered sidecars (no static endpoint on it, at least one sidecar):
//!   the proxy then speaks HTTP/2 over mTLS to them and checks that they
//!   prove the Service's SPIFFE ID, the one the CA issues to the Service's
//!   sidecars ([`identity_of`]). Such a cluster carries no `tls` and no
//!   `protocol` (the proto requires both unset). A cluster with a static
//!   endpoint stays as it was (plaintext, or a BackendTLSPolicy's TLS):
//!   the proxy has one transport per cluster, not per endpoint, and a
//!   static endpoint holds no workload certificate.
//!
//! - `Listener.mesh` on every sidecar's inbound listener, with the mode
//!   the PeerAuthentications give its Service (PERMISSIVE by default).
//!
//! Why the Service's endpoints decide, not a flag: a sidecar is in the
//! mesh by construction (it registered, so it can get a certificate), and
//! a static endpoint is outside it by construction.

use ringmesh_pki::spiffe::{SpiffeId, SpiffeIdError};
use ringmesh_proto::v1 as pb;

use crate::resources::model::MtlsMode;

/// The trust domain `ringmesh-control --trust-domain` defaults to.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// What compiling needs to know of the mesh's identities, besides the
/// resources: fixed for a control plane's run (its flags and its CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshContext {
    /// The trust domain of every SPIFFE ID (`--trust-domain`).
    pub trust_domain: String,
    /// The roots proxies trust for their peers, PEM: the CA's bundle,
    /// then the extra roots of `--trust-bundle`. Empty: none sent (the
    /// proxy trusts the bundle that comes with its own certificate).
    pub bundle_pem: String,
}

impl Default for MeshContext {
    /// The default trust domain and no bundle: what a config compiled
    /// without a running CA (tests, offline checks) gets.
    fn default() -> MeshContext {
        MeshContext {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            bundle_pem: String::new(),
        }
    }
}

/// The SPIFFE ID a registered Service (or Gateway) is entitled to: a
/// name is `name` in `default` or `name.namespace` elsewhere. The CA
/// issues it (`Identity/Sign`) and meshed clusters require it, so both
/// call this.
pub fn identity_of(trust_domain: &str, registered: &str) -> Result<SpiffeId, SpiffeIdError> {
    let (name, ns) = registered
        .split_once('.')
        .unwrap_or((registered, crate::resources::model::DEFAULT_NAMESPACE));
    SpiffeId::workload(trust_domain, ns, name)
}

/// `ProxyConfig.mesh`: the same for every proxy of the control plane.
pub(super) fn proxy_mesh(mesh: &MeshContext) -> pb::Mesh {
    pb::Mesh {
        identity: None,
        trust_bundle: (!mesh.bundle_pem.is_empty()).then(|| super::inline(mesh.bundle_pem.clone())),
    }
}

/// A sidecar's inbound listener: always in the mesh, in `mode`.
pub(super) fn inbound(mode: MtlsMode) -> pb::MeshInbound {
    pb::MeshInbound {
        mode: match mode {
            MtlsMode::Permissive => pb::MeshMode::Permissive,
            MtlsMode::Strict => pb::MeshMode::Strict,
        } as i32,
    }
}

/// Whether a cluster is meshed: it has endpoints, and every one of them
/// is a registered sidecar's inbound listener.
pub(super) fn meshed(static_endpoints: usize, registered: usize) -> bool {
    static_endpoints == 0 && registered > 0
}

/// Make `cluster` (of Service `service`) a meshed one: the identity its
/// endpoints must prove, and no `tls` or `protocol` (mTLS and HTTP/2 are
/// implied).
pub(super) fn mesh_cluster(
    cluster: &mut pb::Cluster,
    service: &str,
    mesh: &MeshContext,
) -> Result<(), SpiffeIdError> {
    cluster.mesh = Some(pb::MeshUpstream {
        identity: identity_of(&mesh.trust_domain, service)?.to_string(),
    });
    cluster.tls = None;
    cluster.protocol = pb::UpstreamProtocol::Unspecified as i32;
    Ok(())
}
