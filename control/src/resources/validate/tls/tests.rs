//! Secrets, ConfigMaps, HTTPS listeners and BackendTLSPolicies: checked,
//! every error located, no key ever in a message.

use base64::Engine;

use super::super::super::certs::testing::{Leaf, TestCa};
use super::super::super::model::*;
use super::super::super::{parse, ResourceErrors};

fn files(text: &str) -> Vec<(String, String)> {
    vec![("mesh.yaml".to_string(), text.to_string())]
}

/// PEM as a YAML block scalar under a key indented by `indent` spaces.
fn block(pem: &str, indent: usize) -> String {
    let pad = " ".repeat(indent + 2);
    let mut out = String::from("|\n");
    for line in pem.lines() {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A `kubernetes.io/tls` Secret with PEM in `stringData`.
fn secret(name: &str, cert: &str, key: &str) -> String {
    format!(
        "kind: Secret\nmetadata: {{ name: {name} }}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}  tls.key: {}",
        block(cert, 2),
        block(key, 2)
    )
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

struct Pki {
    ca: TestCa,
    shop: Leaf,
    api: Leaf,
    upstream_ca: TestCa,
}

fn pki() -> Pki {
    let ca = TestCa::new("edge ca").unwrap();
    Pki {
        shop: ca.leaf(&["shop.example.com"]).unwrap(),
        api: ca.leaf(&["api.example.com", "*.api.example.com"]).unwrap(),
        ca,
        upstream_ca: TestCa::new("payments ca").unwrap(),
    }
}

const SERVICES: &str = "kind: Service\nmetadata: { name: shop }\n---\nkind: Service\nmetadata: { name: payments }\nspec: { endpoints: [payments.internal:443] }\n---\n";

const GATEWAY: &str = r#"kind: Gateway
metadata: { name: edge }
spec:
  listeners:
    - { name: http, address: "127.0.0.1:8080" }
    - name: shop
      address: "127.0.0.1:8443"
      protocol: HTTPS
      hostname: shop.example.com
      tls: { mode: Terminate, certificateRefs: [ { kind: Secret, name: shop-cert } ] }
    - name: api
      address: "127.0.0.1:8443"
      protocol: HTTPS
      hostname: "*.api.example.com"
      tls: { certificateRefs: [ { group: "", name: api-cert } ] }
---
"#;

fn good(p: &Pki) -> String {
    format!(
        "{SERVICES}{GATEWAY}{}\n---\nkind: Secret\nmetadata: {{ name: api-cert }}\ntype: kubernetes.io/tls\ndata: {{ tls.crt: {}, tls.key: {} }}\n---\nkind: ConfigMap\nmetadata: {{ name: payments-ca }}\ndata:\n  ca.crt: {}---\nkind: BackendTLSPolicy\nmetadata: {{ name: payments }}\nspec:\n  targetRefs: [ {{ group: \"\", kind: Service, name: payments }} ]\n  validation:\n    caCertificateRefs: [ {{ kind: ConfigMap, name: payments-ca }} ]\n    hostname: payments.internal\n  options: {{ ringmesh.io/client-certificate: shop-cert }}\n",
        secret("shop-cert", &p.shop.cert_pem, &p.shop.key_pem),
        b64(&p.api.cert_pem),
        b64(&p.api.key_pem),
        block(&p.upstream_ca.cert_pem, 2),
    )
}

#[test]
fn a_good_set_with_tls() {
    let p = pki();
    let r = parse(&files(&good(&p))).unwrap_or_else(|e| panic!("{e}"));
    let shop = &r.secrets["shop-cert"];
    assert_eq!(shop.pair.leaf.dns_names, ["shop.example.com"]);
    assert!(shop.pair.key.expose().contains("PRIVATE KEY"));
    assert_eq!(
        r.secrets["api-cert"].pair.leaf.dns_names,
        ["api.example.com", "*.api.example.com"],
        "`data` is base64, as Kubernetes writes it"
    );
    assert_eq!(r.config_maps["payments-ca"].ca.count, 1);
    let l = &r.gateways["edge"].listeners;
    assert_eq!((l[0].hostname.as_deref(), l[0].tls.is_none()), (None, true));
    assert_eq!(l[1].hostname.as_deref(), Some("shop.example.com"));
    assert_eq!(
        l[1].tls,
        Some(ListenerTls {
            certificates: vec!["shop-cert".into()]
        })
    );
    assert_eq!(l[2].hostname.as_deref(), Some("*.api.example.com"));
    assert_eq!(
        r.backend_tls["payments"],
        BackendTls {
            name: "payments".into(),
            targets: vec!["payments".into()],
            ca: BackendCa::Refs(vec![CaRef::ConfigMap("payments-ca".into())]),
            hostname: "payments.internal".into(),
            client_certificate: Some("shop-cert".into()),
            source: r.backend_tls["payments"].source.clone(),
        }
    );
    assert!(
        !format!("{r:?}").contains("PRIVATE KEY"),
        "Debug of the resources redacts keys"
    );
}

/// Every message of `err` is located and none holds key material.
fn no_keys(err: &ResourceErrors, keys: &[&str]) -> String {
    let text = err.to_string();
    for k in keys {
        let body = k.lines().nth(1).unwrap_or(k);
        assert!(!text.contains(body), "key material in:\n{text}");
        assert!(!text.contains(&b64(k)[..40]), "base64 key in:\n{text}");
    }
    assert!(!text.contains("PRIVATE KEY-----"), "{text}");
    text
}

/// The 1-based line of the first `needle` in `text`: locations in these
/// tests are computed, because inline PEM takes a varying number of lines
/// (an ECDSA signature is 70 to 72 bytes).
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    1 + text[..at].matches('\n').count()
}

fn assert_has(text: &str, want: &[&str]) {
    for w in want {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
}

#[test]
fn secret_errors_at_their_fields() {
    let p = pki();
    let other = p.ca.leaf(&["shop.example.com"]).unwrap();
    let old =
        p.ca.leaf_dated(&["old.example.com"], Some(((2020, 1, 1), (2021, 1, 1))))
            .unwrap();
    let text = [
        // Line 1: a mismatched key.
        secret("mismatch", &p.shop.cert_pem, &other.key_pem),
        secret("expired", &old.cert_pem, &old.key_pem),
        "kind: Secret\nmetadata: { name: opaque }\ntype: Opaque\nstringData: { tls.crt: x, tls.key: y, tls.pem: z }\n".into(),
        format!("kind: Secret\nmetadata: {{ name: both }}\ntype: kubernetes.io/tls\ndata: {{ tls.crt: {}, tls.key: '!!' }}\nstringData: {{ tls.crt: x }}\n", b64(&p.shop.cert_pem)),
        "kind: Secret\nmetadata: { name: none }\n".into(),
    ]
    .join("---\n");
    let source = text.clone();
    let err = parse(&files(&text)).unwrap_err();
    let text = no_keys(&err, &[&other.key_pem, &old.key_pem]);
    assert_eq!(err.0.len(), 10, "{text}");
    // A block scalar is located at its first line: the key's is after
    // 4 lines of header, `tls.crt: |`, the certificate and `tls.key: |`.
    let key_line = 4 + 1 + p.shop.cert_pem.lines().count() + 2;
    assert_has(
        &text,
        &[
            &format!("mesh.yaml:{key_line}:5: Secret/mismatch.stringData[\"tls.key\"]: the private key does not match the certificate in `tls.crt`"),
            "Secret/expired.stringData[\"tls.crt\"]: certificate 1 (CN=old.example.com) expired on 2021-01-01T00:00:00Z",
            "Secret/opaque.type: `Opaque`: ringmesh reads only `kubernetes.io/tls` Secrets",
            "Secret/opaque.stringData[\"tls.pem\"]: unknown key `tls.pem`",
            "Secret/opaque.stringData[\"tls.crt\"]: no CERTIFICATE block found",
            "Secret/both.stringData[\"tls.crt\"]: `tls.crt` is given in both `data` and `stringData`",
            "Secret/both.data[\"tls.key\"]: not base64 of PEM text",
            "Secret/none.type: missing: `type: kubernetes.io/tls`",
            &format!(
                "mesh.yaml:{}:7: Secret/none.stringData[\"tls.crt\"]: missing",
                line_of(&source, "kind: Secret\nmetadata: { name: none }")
            ),
            "Secret/none.stringData[\"tls.crt\"]: missing: `tls.crt`",
            "Secret/none.stringData[\"tls.key\"]: missing: `tls.key`",
        ],
    );
}

#[test]
fn a_reference_to_a_broken_secret_is_not_a_second_error() {
    let p = pki();
    let old =
        p.ca.leaf_dated(&["shop.example.com"], Some(((2020, 1, 1), (2021, 1, 1))))
            .unwrap();
    let set = good(&p).replace(
        &secret("shop-cert", &p.shop.cert_pem, &p.shop.key_pem),
        &secret("shop-cert", &old.cert_pem, &old.key_pem),
    );
    let err = parse(&files(&set)).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_has(&err.to_string(), &["Secret/shop-cert.stringData[\"tls.crt\"]: certificate 1 (CN=shop.example.com) expired on 2021-01-01T00:00:00Z"]);
}

#[test]
fn keys_pasted_in_the_wrong_place_are_not_echoed() {
    let p = pki();
    let set = good(&p).replace(
        "ringmesh.io/client-certificate: shop-cert",
        &format!("ringmesh.io/client-certificate: {:?}", p.shop.key_pem),
    );
    let err = parse(&files(&set)).unwrap_err();
    let text = no_keys(&err, &[&p.shop.key_pem]);
    assert_has(&text, &["BackendTLSPolicy/payments.spec.options[\"ringmesh.io/client-certificate\"]: no Secret named `[PEM redacted]`"]);
    // Base64 of a key where a name goes.
    let set = good(&p).replace(
        "{ group: \"\", name: api-cert }",
        &format!("{{ name: {} }}", b64(&p.api.key_pem)),
    );
    let err = parse(&files(&set)).unwrap_err();
    let text = no_keys(&err, &[&p.api.key_pem]);
    assert_has(
        &text,
        &[
            "certificateRefs[0].name: no Secret named `[",
            " characters, not shown]`",
        ],
    );
    // A key in tls.crt: named, not shown.
    let set = secret("swapped", &p.shop.key_pem, &p.shop.cert_pem);
    let text = no_keys(&parse(&files(&set)).unwrap_err(), &[&p.shop.key_pem]);
    assert_has(&text, &["holds a private key, which belongs in `tls.key`"]);
    // The types are wrong: a string where a map goes.
    let set = format!(
        "kind: Secret\nmetadata: {{ name: s }}\ntype: kubernetes.io/tls\nstringData: {:?}\n",
        p.shop.key_pem
    );
    no_keys(&parse(&files(&set)).unwrap_err(), &[&p.shop.key_pem]);
}

#[test]
fn listener_errors_at_their_fields() {
    let p = pki();
    let secrets = good(&p);
    let secrets = &secrets[secrets.find("kind: Secret\n").unwrap_or(0)..];
    let gateway = r#"kind: Gateway
metadata: { name: bad }
spec:
  listeners:
    - { name: a, address: "127.0.0.1:1", protocol: HTTPS }
    - { name: b, address: "127.0.0.1:2", tls: { certificateRefs: [ { name: shop-cert } ] } }
    - { name: c, address: "127.0.0.1:3", protocol: HTTPS, tls: { mode: Passthrough, certificateRefs: [ { name: shop-cert } ] } }
    - { name: d, address: "127.0.0.1:4", protocol: HTTPS, tls: { certificateRefs: [] } }
    - { name: e, address: "127.0.0.1:5", protocol: HTTPS, tls: { certificateRefs: [ { kind: ConfigMap, name: payments-ca }, { group: networking.k8s.io, name: shop-cert } ] } }
    - { name: f, address: "127.0.0.1:6", protocol: HTTPS, hostname: www.example.com, tls: { certificateRefs: [ { name: shop-crt } ] } }
    - { name: g, address: "127.0.0.1:7", protocol: HTTPS, hostname: api.example.com, tls: { certificateRefs: [ { name: shop-cert } ] } }
    - { name: h, address: "127.0.0.1:8", protocol: UDP, hostname: Shop.Example.com }
    - { name: i, address: "127.0.0.1:9", hostname: "10.0.0.1" }
    - { name: j, address: "127.0.0.1:10", hostname: x.example }
    - { name: k, address: "127.0.0.1:10", protocol: HTTPS, tls: { certificateRefs: [ { name: shop-cert } ] } }
---
"#;
    let route = "kind: Service\nmetadata: { name: s }\n---\nkind: HTTPRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { kind: Gateway, name: edge } ]\n  hostnames: [ www.example.org ]\n  rules: [ { backendRefs: [ { name: s } ] } ]\n---\n";
    let text = format!("{SERVICES}{GATEWAY}{gateway}{secrets}");
    let err = parse(&files(&text)).unwrap_err();
    let text = no_keys(&err, &[&p.shop.key_pem]);
    let l = "Gateway/bad.spec.listeners";
    assert_has(
        &text,
        &[
            &format!("mesh.yaml:28:52: {l}[0].tls: missing: an HTTPS listener needs `tls.certificateRefs`"),
            &format!("mesh.yaml:29:47: {l}[1].tls: `tls` is for `protocol: HTTPS` listeners"),
            &format!("mesh.yaml:30:72: {l}[2].tls.mode: `Passthrough` is not supported yet"),
            &format!("{l}[3].tls.certificateRefs: name at least one Secret"),
            &format!("{l}[4].tls.certificateRefs[0].kind: `ConfigMap`: this reference names a Secret"),
            &format!("{l}[4].tls.certificateRefs[1].group: `networking.k8s.io`: only core objects"),
            &format!("{l}[5].tls.certificateRefs[0].name: no Secret named `shop-crt` (did you mean `shop-cert`?)"),
            &format!("{l}[6].tls.certificateRefs[0].name: the certificate in Secret/shop-cert does not cover the listener's hostname `api.example.com` (it names shop.example.com)"),
            &format!("{l}[7].protocol: `UDP` is not supported: use HTTP, HTTPS or TCP"),
            &format!("{l}[7].hostname: `Shop.Example.com`: not a host name"),
            &format!("{l}[8].hostname: `10.0.0.1`: an IP address is not a host name here"),
            &format!("{l}[10].protocol: listener `j` on 127.0.0.1:10 is HTTP: listeners that share an address share a protocol"),
        ],
    );
    assert_eq!(err.0.len(), 12, "{text}");
    // A route whose hostnames no listener serves would never match.
    let route = route.replace("name: edge", "name: named");
    let gateway = "kind: Gateway\nmetadata: { name: named }\nspec:\n  listeners:\n    - { name: a, address: \"127.0.0.1:1\", hostname: www.example.com }\n    - { name: b, address: \"127.0.0.1:1\", hostname: \"*.example.net\" }\n---\n";
    let err = parse(&files(&format!("{gateway}{route}"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mesh.yaml:15:16: HTTPRoute/r.spec.hostnames: no listener of Gateway `named` serves these hostnames (its listeners serve www.example.com, *.example.net): the route would never match"
    );
    let route = route.replace("www.example.org", "a.example.net");
    assert!(parse(&files(&format!("{gateway}{route}"))).is_ok());

    // Same address, same hostname; and a catch-all certificate that would
    // take a more specific listener's name.
    let gateway = r#"kind: Gateway
metadata: { name: bad }
spec:
  listeners:
    - { name: a, address: "127.0.0.1:1", protocol: HTTPS, tls: { certificateRefs: [ { name: shop-cert } ] } }
    - { name: b, address: "127.0.0.1:1", protocol: HTTPS, hostname: shop.example.com, tls: { certificateRefs: [ { name: shop-cert } ] } }
    - { name: c, address: "127.0.0.1:1", protocol: HTTPS, hostname: shop.example.com, tls: { certificateRefs: [ { name: shop-cert } ] } }
---
"#;
    let err = parse(&files(&format!("{SERVICES}{gateway}{secrets}"))).unwrap_err();
    let text = err.to_string();
    assert_has(&text, &[
        "mesh.yaml:14:69: Gateway/bad.spec.listeners[2].hostname: listener `b` already serves `shop.example.com` on 127.0.0.1:1",
        "mesh.yaml:12:93: Gateway/bad.spec.listeners[0].tls.certificateRefs[0].name: every name of the certificate in Secret/shop-cert (shop.example.com) is the hostname of another listener on 127.0.0.1:1",
    ]);
    assert_eq!(err.0.len(), 2, "{text}");
}

#[test]
fn listener_hostnames_intersect_route_hostnames() {
    let l = |h: Option<&str>| GatewayListener {
        name: "l".into(),
        address: "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")),
        protocol: ListenerProtocol::Http,
        allowed_namespace: Some("default".into()),
        kinds: vec![RouteKind::Http],
        hostname: h.map(str::to_string),
        tls: None,
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let some = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
    assert_eq!(l(None).hosts_for(&[]), [None]);
    assert_eq!(l(None).hosts_for(&s(&["a.x"])), some(&["a.x"]));
    assert_eq!(l(Some("a.x")).hosts_for(&[]), some(&["a.x"]));
    assert_eq!(
        l(Some("a.x")).hosts_for(&s(&["a.x", "b.x"])),
        some(&["a.x"])
    );
    assert_eq!(l(Some("a.x")).hosts_for(&s(&["*.x"])), some(&["a.x"]));
    assert_eq!(
        l(Some("*.x")).hosts_for(&s(&["a.x", "b.c.x", "*.c.x", "x", "a.y"])),
        some(&["a.x", "b.c.x", "*.c.x"])
    );
    assert_eq!(l(Some("*.x")).hosts_for(&s(&["*.x"])), some(&["*.x"]));
    assert!(l(Some("a.x")).hosts_for(&s(&["b.x"])).is_empty());
}

#[test]
fn backend_tls_errors_at_their_fields() {
    let p = pki();
    let base = good(&p);
    let policy = |spec: &str| {
        format!("{base}---\nkind: BackendTLSPolicy\nmetadata: {{ name: bad }}\nspec:\n{spec}")
    };
    // Where the bad policy's lines are, after the good set's inline PEM
    // (a document is located at its `kind`).
    let kind = line_of(
        &policy(""),
        "kind: BackendTLSPolicy\nmetadata: { name: bad }",
    );
    // The policy already on `payments` is cited by its targetRefs line.
    let payments = line_of(
        &base,
        "kind: BackendTLSPolicy\nmetadata: { name: payments }",
    ) + 3;
    let (no_targets, shpo, ip) = (
        format!("mesh.yaml:{kind}:7: BackendTLSPolicy/bad.spec.targetRefs: name at least one Service"),
        format!("mesh.yaml:{}:25: BackendTLSPolicy/bad.spec.targetRefs[0].name: no Service named `shpo` (did you mean `shop`?)", kind + 3),
        format!("mesh.yaml:{}:60: BackendTLSPolicy/bad.spec.validation.hostname: `10.1.1.1`: an IP address is not a host name here", kind + 4),
    );
    let twice = format!("BackendTLSPolicy/bad.spec.targetRefs[0].name: Service `payments` already has a backend TLS policy: BackendTLSPolicy/payments (mesh.yaml:{payments})");
    let cases = [
        (
            "  validation: { wellKnownCACertificates: System, hostname: x.example }\n",
            no_targets.as_str(),
        ),
        (
            "  targetRefs: [ { kind: Gateway, name: edge } ]\n  validation: { wellKnownCACertificates: System, hostname: x.example }\n",
            "BackendTLSPolicy/bad.spec.targetRefs[0].kind: `Gateway`: this reference names a Service",
        ),
        (
            "  targetRefs: [ { name: shpo } ]\n  validation: { wellKnownCACertificates: System, hostname: x.example }\n",
            shpo.as_str(),
        ),
        (
            "  targetRefs: [ { name: payments } ]\n  validation: { wellKnownCACertificates: System, hostname: x.example }\n",
            twice.as_str(),
        ),
        (
            "  targetRefs: [ { name: shop } ]\n",
            "BackendTLSPolicy/bad.spec.validation: missing: the CAs to trust",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { caCertificateRefs: [ { kind: ConfigMap, name: payments-ca } ], wellKnownCACertificates: System, hostname: x.example }\n",
            "BackendTLSPolicy/bad.spec.validation.wellKnownCACertificates: give `caCertificateRefs` or `wellKnownCACertificates`, not both",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { caCertificateRefs: [], hostname: x.example }\n",
            "BackendTLSPolicy/bad.spec.validation.caCertificateRefs: missing: the CAs to trust",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { wellKnownCACertificates: system, hostname: x.example }\n",
            "BackendTLSPolicy/bad.spec.validation.wellKnownCACertificates: `system` (did you mean `System`?): the only set is `System`",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { wellKnownCACertificates: System }\n",
            "BackendTLSPolicy/bad.spec.validation.hostname: missing: the name sent in SNI",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { wellKnownCACertificates: System, hostname: 10.1.1.1 }\n",
            ip.as_str(),
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { wellKnownCACertificates: System, hostname: \"*.x.example\" }\n",
            "BackendTLSPolicy/bad.spec.validation.hostname: `*.x.example`: not a host name",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { caCertificateRefs: [ { kind: Secret, name: shop-cert } ], hostname: x.example }\n",
            "BackendTLSPolicy/bad.spec.validation.caCertificateRefs[0].name: Secret/shop-cert has no `ca.crt`",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { caCertificateRefs: [ { name: payment-ca } ], hostname: x.example }\n",
            "BackendTLSPolicy/bad.spec.validation.caCertificateRefs[0].name: no ConfigMap named `payment-ca` (did you mean `payments-ca`?)",
        ),
        (
            "  targetRefs: [ { name: shop } ]\n  validation: { wellKnownCACertificates: System, hostname: x.example }\n  options: { ringmesh.io/client-cert: shop-cert }\n",
            "BackendTLSPolicy/bad.spec.options[\"ringmesh.io/client-cert\"]: unknown option `ringmesh.io/client-cert` (did you mean `ringmesh.io/client-certificate`?)",
        ),
    ];
    for (spec, want) in cases {
        let err = parse(&files(&policy(spec))).unwrap_err();
        assert_has(&err.to_string(), &[want]);
        assert_eq!(err.0.len(), 1, "{spec}: {err}");
    }
    let ok = policy("  targetRefs: [ { name: shop } ]\n  validation: { wellKnownCACertificates: System, hostname: x.example }\n");
    let r = parse(&files(&ok)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.backend_tls["bad"].ca, BackendCa::System);
}

#[test]
fn config_maps_hold_a_ca_bundle() {
    let p = pki();
    let cm = |data: &str| format!("kind: ConfigMap\nmetadata: {{ name: c }}\n{data}");
    let cases = [
        ("", "mesh.yaml:1:7: ConfigMap/c.data[\"ca.crt\"]: missing: `ca.crt`"),
        ("data: { ca.pem: x }\n", "ConfigMap/c.data[\"ca.pem\"]: unknown key `ca.pem`; a ConfigMap here holds a CA bundle in `ca.crt`"),
        ("data: { ca.crt: hello }\n", "mesh.yaml:3:17: ConfigMap/c.data[\"ca.crt\"]: no CERTIFICATE block found"),
    ];
    for (data, want) in cases {
        let err = parse(&files(&cm(data))).unwrap_err().to_string();
        assert_has(&err, &[want]);
    }
    let key = cm(&format!("data:\n  ca.crt: {}", block(&p.shop.key_pem, 2)));
    let err = parse(&files(&key)).unwrap_err();
    assert_has(
        &no_keys(&err, &[&p.shop.key_pem]),
        &["holds a private key; a CA bundle holds only certificates"],
    );
    let two = cm(&format!(
        "data:\n  ca.crt: {}",
        block(&format!("{}{}", p.ca.cert_pem, p.upstream_ca.cert_pem), 2)
    ));
    let r = parse(&files(&two)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.config_maps["c"].ca.count, 2);
}

#[test]
fn redact_takes_out_pem_and_long_quoted_values() {
    use super::super::super::redact;
    let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n";
    assert_eq!(
        redact(&format!("no Secret named `{key}` here")),
        "no Secret named `[PEM redacted]` here"
    );
    assert_eq!(
        redact("cut off: -----BEGIN RSA PRIVATE KEY-----\nMIIE"),
        "cut off: [PEM redacted]"
    );
    let long = "A".repeat(300);
    assert_eq!(
        redact(&format!("a `{long}` b `short` c")),
        "a `[300 characters, not shown]` b `short` c"
    );
    let plain =
        "mesh.yaml:3:7: Secret/x.type: `Opaque`: ringmesh reads only `kubernetes.io/tls` Secrets";
    assert_eq!(redact(plain), plain, "ordinary messages are untouched");
}
