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
use ringmesh_pki::spiffe::SpiffeId;
use ringmesh_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::Hub;

pub struct IdentityService {
    pub hub: Arc<Hub>,
    pub ca: Arc<Ca>,
    /// How long an SVID is valid.
    pub lifetime: Duration,
}

/// The SPIFFE ID a registered Service (or Gateway) is entitled to: a
/// name is `name` in `default` or `name.namespace` elsewhere.
pub fn identity_of(trust_domain: &str, registered: &str) -> Result<SpiffeId, String> {
    let (name, ns) = registered
        .split_once('.')
        .unwrap_or((registered, "default"));
    SpiffeId::workload(trust_domain, ns, name).map_err(|e| e.to_string())
}

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
        Ok(Response::new(pb::SignResponse {
            spiffe_id: id.to_string(),
            chain_pem: svid.chain_pem,
            bundle_pem: self.ca.bundle_pem(),
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
}
