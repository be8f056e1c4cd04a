//! What the compiler's unit tests share: resources from one document,
//! the nodes that ask for a config, and lookups in what they get.

use super::*;
use crate::resources::parse;

/// Resources from one YAML text (panics with the errors).
pub fn resources(text: &str) -> Resources {
    parse(&[("test.yaml".into(), text.into())]).unwrap_or_else(|e| panic!("{e}"))
}

/// A sidecar of `service` (qualified, or in `default`).
pub fn sidecar_of(service: &str) -> pb::Node {
    pb::Node {
        id: format!("{service}-1"),
        service: service.into(),
        role: pb::Role::Sidecar as i32,
        workload_address: "127.0.0.1:7000".into(),
        inbound_address: "127.0.0.1:7001".into(),
        outbound_address: "127.0.0.1:7002".into(),
    }
}

/// A gateway proxy for Gateway `name`.
pub fn gateway_of(name: &str) -> pb::Node {
    pb::Node {
        id: format!("{name}-1"),
        service: name.into(),
        role: pb::Role::Gateway as i32,
        ..Default::default()
    }
}

pub fn listener<'a>(c: &'a pb::ProxyConfig, name: &str) -> &'a pb::Listener {
    c.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name} in {:?}", c.listeners))
}

pub fn cluster<'a>(c: &'a pb::ProxyConfig, name: &str) -> &'a pb::Cluster {
    c.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {:?}", c.clusters))
}
