//! The certificate authority's API: `Identity.Sign` turns a proxy's CSR
//! into the X509-SVID of the identity it is entitled to.
//!
//! Entitlement comes from the discovery stream, not from the CSR: a node
//! with an open stream registered for Service `web` in namespace `shop`
//! gets `spiffe://<trust-domain>/ns/shop/sa/web`, whatever names the CSR
//! asks for (`ringmesh_pki::ca` ignores them and checks only that the
//! requester holds the key). The bootstrap token authenticates the call,
//! as it does the stream: whoever holds it can register as any Service,
//! so the token is the mesh's root of trust until proxies have their own
//! credentials.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringmesh_pki::ca::{Ca, IssueError};
use ringmesh_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::Hub;

pub struct IdentityService {
    pub hub: Arc<Hub>,
    pub ca: Arc<Ca>,
    /// How long an SVID is valid.
    pub lifetime: Duration,
    /// What a proxy trusts for its peers: the CA's root and the extra
    /// roots ([`trust_bundle`]), the same as `ProxyConfig.mesh` carries.
    pub bundle_pem: String,
}

/// `--trust-bundle` cannot be used; the message says why (never PEM).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TrustBundleError(pub String);

/// The roots proxies trust for their peers: the CA's bundle, then the
/// extra roots of `--trust-bundle` (during a root rotation, the old root
/// beside the new CA), each once, re-encoded. Every extra root must parse
/// as a CA certificate and be within its validity at `now`: a proxy
/// would gain nothing from an expired one, and an operator who put it
/// there meant something else.
pub fn trust_bundle(
    ca: &Ca,
    extra_pem: Option<&str>,
    now: SystemTime,
) -> Result<String, TrustBundleError> {
    let mut bundle = ca.bundle_pem();
    let Some(extra) = extra_pem else {
        return Ok(bundle);
    };
    let (extra, _) = crate::resources::certs::ca_bundle(extra).map_err(TrustBundleError)?;
    let certs = crate::resources::certs::certificates(&extra).map_err(TrustBundleError)?;
    ringmesh_pki::check::validity(&certs, now).map_err(TrustBundleError)?;
    for c in certs {
        let pem = ringmesh_pki::pem::encode("CERTIFICATE", &c);
        if !bundle.contains(&pem) {
            bundle.push_str(&pem);
        }
    }
    Ok(bundle)
}

pub use crate::compile::identity_of;

#[tonic::async_trait]
impl pb::identity_server::Identity for IdentityService {
    async fn sign(
        &self,
        req: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let req = req.into_inner();
        let node = self.hub.connected_node(&req.node_id).ok_or_else(|| {
            Status::permission_denied(format!(
                "node `{}` has no open discovery stream: an identity is issued only to a registered proxy",
                req.node_id
            ))
        })?;
        let id = identity_of(self.ca.trust_domain(), &node.service)
            .map_err(|e| Status::failed_precondition(format!("node `{}`: {e}", req.node_id)))?;
        let svid = self
            .ca
            .issue(
                req.csr_pem.as_bytes(),
                &id,
                self.lifetime,
                SystemTime::now(),
            )
            .map_err(|e| match e {
                e if e.requester_fault() => Status::invalid_argument(e.to_string()),
                IssueError::CaNotValid => Status::unavailable(e.to_string()),
                e => Status::internal(e.to_string()),
            })?;
        tracing::info!(node = %req.node_id, identity = %id, "issued an SVID");
        let issued = super::state::IssuedIdentity {
            spiffe_id: id.to_string(),
            not_after: svid.not_after,
        };
        self.hub.issued(&req.node_id, issued);
        Ok(Response::new(pb::SignResponse {
            spiffe_id: id.to_string(),
            chain_pem: svid.chain_pem,
            bundle_pem: self.bundle_pem.clone(),
            not_after: svid
                .not_after
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_name_maps_to_its_namespace() {
        assert_eq!(
            identity_of("cluster.local", "web").unwrap().to_string(),
            "spiffe://cluster.local/ns/default/sa/web"
        );
        assert_eq!(
            identity_of("cluster.local", "web.shop")
                .unwrap()
                .to_string(),
            "spiffe://cluster.local/ns/shop/sa/web"
        );
        assert!(identity_of("cluster.local", "").is_err());
    }

    #[test]
    fn the_trust_bundle_is_the_cas_root_then_the_extra_roots_once() {
        use ringmesh_pki::mint::Ca as TestCa;
        let now = SystemTime::now();
        let ca = Ca::generate("cluster.local", Duration::from_secs(3600), now).unwrap();
        assert_eq!(trust_bundle(&ca, None, now).unwrap(), ca.bundle_pem());
        let old = Ca::generate("cluster.local", Duration::from_secs(7200), now).unwrap();
        // The CA's own root repeated, and comments around the old one.
        let extra = format!("# old root\n{}{}", old.bundle_pem(), ca.bundle_pem());
        let bundle = trust_bundle(&ca, Some(&extra), now).unwrap();
        let certs = ringmesh_pki::pem::certificates(bundle.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2, "{bundle}");
        assert!(bundle.starts_with(&ca.bundle_pem()));
        assert!(!bundle.contains('#'), "re-encoded: {bundle}");
        // Not a CA bundle: refused, without quoting it.
        let leaf = TestCa::new("other").unwrap().leaf(&["a.example"]).unwrap();
        let err = trust_bundle(&ca, Some(&leaf.key_pem), now).unwrap_err();
        assert!(err.0.contains("private key"), "{err}");
        let err = trust_bundle(&ca, Some("nothing here"), now).unwrap_err();
        assert!(!err.0.is_empty());
        // An expired root: refused (checked after its two hours).
        let later = now + Duration::from_secs(3 * 3600);
        let err = trust_bundle(&ca, Some(&old.bundle_pem()), later).unwrap_err();
        assert!(err.0.contains("expired"), "{err}");
    }
}
