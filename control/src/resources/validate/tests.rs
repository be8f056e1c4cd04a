use super::super::model::*;
use super::super::parse;

pub const MESH: &str = r#"# the checkout service and two versions behind it
kind: Service
metadata: { name: checkout }
---
kind: Service
metadata: { name: checkout-v1 }
spec: { endpoints: [127.0.0.1:9001] }
---
kind: Service
metadata: { name: checkout-v2 }
spec: { endpoints: ["127.0.0.1:9002", "v2.internal:9002"] }
---
kind: HTTPRoute
metadata: { name: checkout-split }
spec:
  parentRefs: [ { name: checkout } ]
  rules:
    - matches: [ { path: { type: PathPrefix, value: /cart }, method: POST, headers: [ { name: X-Canary, value: "1" } ] } ]
      backendRefs: [ { name: checkout-v2 } ]
    - backendRefs: [ { name: checkout-v1, weight: 90 }, { name: checkout-v2, weight: 10 } ]
      timeouts: { request: 2s }
---
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [ { name: http, address: "127.0.0.1:8080" } ]
---
kind: HTTPRoute
metadata: { name: shop }
spec:
  parentRefs: [ { kind: Gateway, name: edge } ]
  hostnames: [ shop.example.com ]
  rules: [ { matches: [ { path: { type: Exact, value: / } } ], backendRefs: [ { name: checkout } ] } ]
"#;

fn files(text: &str) -> Vec<(String, String)> {
    vec![("mesh.yaml".to_string(), text.to_string())]
}

#[test]
fn a_good_set() {
    let r = parse(&files(MESH)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.services.keys().collect::<Vec<_>>(),
        ["checkout", "checkout-v1", "checkout-v2"]
    );
    assert_eq!(
        r.services["checkout-v2"].endpoints,
        ["127.0.0.1:9002", "v2.internal:9002"]
    );
    assert_eq!(
        r.services["checkout-v1"].source,
        Source {
            file: "mesh.yaml".into(),
            line: 5
        }
    );
    let split = &r.routes["checkout-split"];
    assert_eq!(
        split.parents,
        [Parent::Service {
            name: "checkout".into(),
            port: None
        }]
    );
    assert_eq!(
        split.rules[0].matches[0].path,
        PathMatch::Prefix("/cart".into())
    );
    assert_eq!(
        split.rules[0].matches[0].headers,
        [("x-canary".to_string(), "1".to_string())]
    );
    assert_eq!(
        split.rules[0].backends,
        [Backend {
            service: "checkout-v2".into(),
            port: None,
            cluster: "checkout-v2".into(),
            weight: 1
        }]
    );
    assert_eq!(split.rules[1].backends[0].weight, 90);
    assert_eq!(
        split.rules[1].timeout,
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(
        r.gateways["edge"].listeners[0].address.to_string(),
        "127.0.0.1:8080"
    );
    assert_eq!(
        r.routes["shop"].parents,
        [Parent::Gateway {
            name: "edge".into(),
            section: None,
            port: None
        }]
    );
}

#[test]
fn every_error_at_once_with_file_line_and_path() {
    let bad = MESH
        .replace(
            "spec: { endpoints: [127.0.0.1:9001] }",
            "spec: { endpoints: [\"not an endpoint\"] }",
        )
        .replace(
            "backendRefs: [ { name: checkout-v2 } ]",
            "backendRefs: [ { name: checkout-v3 } ]",
        )
        .replace("timeouts: { request: 2s }", "timeouts: { request: soon }")
        .replace("kind: Gateway, name: edge", "kind: Gateway, name: egde")
        .replace("type: Exact", "type: Exakt");
    let err = parse(&files(&bad)).unwrap_err();
    let text = err.to_string();
    let want = [
        "mesh.yaml:7:21: Service/checkout-v1.spec.endpoints[0]: `not an endpoint` is not an endpoint: write ip:port or host:port",
        "mesh.yaml:19:30: HTTPRoute/checkout-split.spec.rules[0].backendRefs[0].name: no Service named `checkout-v3`",
        "mesh.yaml:21:28: HTTPRoute/checkout-split.spec.rules[1].timeouts.request: `soon` is not a duration",
        "mesh.yaml:31:40: HTTPRoute/shop.spec.parentRefs[0].name: no Gateway named `egde` (did you mean `edge`?)",
        "mesh.yaml:33:41: HTTPRoute/shop.spec.rules[0].matches[0].path.type: unknown path match type `Exakt` (did you mean `Exact`?)",
    ];
    for w in want {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
    assert_eq!(err.0.len(), 5, "{text}");
}

#[test]
fn schema_errors_name_the_line_in_the_whole_file() {
    // The second document's third line: line 6 of the file.
    let text = "kind: Service\nmetadata: { name: a }\n---\nkind: Service\nmetadata: { name: b }\nspek: {}\n";
    let err = parse(&files(text)).unwrap_err().to_string();
    assert!(
        err.starts_with("mesh.yaml:6:1: unknown field `spek`"),
        "{err}"
    );
    assert!(err.contains("(did you mean `spec`?)"), "{err}");
    let err = parse(&files("kind: Servce\nmetadata: { name: a }\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "mesh.yaml:1:7: kind: unknown kind `Servce` (did you mean `Service`?); known: Service, HTTPRoute, Gateway, Secret, ConfigMap, BackendTLSPolicy, GRPCRoute, TCPRoute, AuthorizationPolicy, PeerAuthentication, Telemetry, TrafficPolicy");
    let err = parse(&files("metadata: { name: a }\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mesh.yaml:1:1: kind: missing"), "{err}");
}

#[test]
fn names_and_duplicates() {
    let dup = "kind: Service\nmetadata: { name: a }\n---\nkind: Service\nmetadata: { name: a }\n---\nkind: Service\nmetadata: { name: Bad_Name }\n";
    let err = parse(&files(dup)).unwrap_err().to_string();
    assert!(
        err.contains(
            "mesh.yaml:5:19: Service/a.metadata.name: `a` is defined twice; first at mesh.yaml:2"
        ),
        "{err}"
    );
    assert!(
        err.contains("Service/Bad_Name.metadata.name: `Bad_Name` is not a valid name"),
        "{err}"
    );
}

#[test]
fn routes_across_files_and_rules_that_route_nowhere() {
    let services = (
        "a.yaml".to_string(),
        "kind: Service\nmetadata: { name: s }\n".to_string(),
    );
    let route = "kind: HTTPRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: s } ]\n  hostnames: [ x.example ]\n  rules: [ { backendRefs: [ { name: s, weight: 0 } ] } ]\n";
    let err = parse(&[services.clone(), ("b.yaml".into(), route.into())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.yaml:5:16: HTTPRoute/r.spec.hostnames: hostnames apply to Gateway parents"),
        "{err}"
    );
    assert!(
        err.contains("HTTPRoute/r.spec.rules[0].backendRefs: all weights are 0"),
        "{err}"
    );
    let ok = route
        .replace("  hostnames: [ x.example ]\n", "")
        .replace("weight: 0", "weight: 5");
    assert!(parse(&[services, ("b.yaml".into(), ok)]).is_ok());
}

#[test]
fn a_directory_is_read_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1-services.yaml"),
        "kind: Service\nmetadata: { name: s }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("2-routes.yml"), "kind: HTTPRoute\nmetadata: { name: r }\nspec: { parentRefs: [ { name: s } ], rules: [ { backendRefs: [ { name: s } ] } ] }\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml at all: [").unwrap();
    let r = super::super::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.routes.len(), 1);
    assert!(super::super::load_dir(&dir.path().join("missing")).is_err());
}

#[test]
fn retry_policies() {
    let text = "kind: Service\nmetadata: { name: s }\n---\nkind: HTTPRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: s } ]\n  rules:\n    - backendRefs: [ { name: s } ]\n      retry: { attempts: 2, codes: [503, 504] }\n";
    let r = parse(&files(text)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].rules[0].retry,
        Some(Retry {
            attempts: 2,
            codes: vec![503, 504],
            grpc: Vec::new(),
            backoff: None,
        })
    );
    let bad = text.replace(
        "attempts: 2, codes: [503, 504]",
        "attempts: 9, codes: [404]",
    );
    let err = parse(&files(&bad)).unwrap_err().to_string();
    assert!(
        err.contains("HTTPRoute/r.spec.rules[0].retry.attempts: must be from 1 to 5"),
        "{err}"
    );
    assert!(
        err.contains("HTTPRoute/r.spec.rules[0].retry.codes[0]: 404 is not a 5xx status"),
        "{err}"
    );
}

#[test]
fn durations_are_more_than_0_and_at_most_7_days() {
    let text = "kind: Service\nmetadata: { name: s }\n---\nkind: HTTPRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: s } ]\n  rules:\n    - backendRefs: [ { name: s } ]\n      timeouts: { request: 168h }\n";
    let r = parse(&files(text)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].rules[0].timeout,
        Some(std::time::Duration::from_secs(7 * 24 * 3600)),
        "7 days is the longest allowed"
    );
    for (bad, why) in [
        (
            "0s",
            "must be more than 0; for no route timeout leave `request` out",
        ),
        ("0ms", "must be more than 0"),
        ("169h", "`169h` is longer than 7 days"),
        ("8days", "`8days` is longer than 7 days"),
        ("2", "`2` is not a duration"),
    ] {
        let err = parse(&files(&text.replace("168h", bad)))
            .unwrap_err()
            .to_string();
        let want = format!("mesh.yaml:10:28: HTTPRoute/r.spec.rules[0].timeouts.request: {why}");
        assert!(err.contains(&want), "{bad}: {err}");
    }
}

const FAULTY: &str = "kind: Service\nmetadata: { name: s }\n---\nkind: HTTPRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: s } ]\n  rules:\n    - backendRefs: [ { name: s } ]\n      fault:\n        delay: { fixedDelay: 2s, percent: 10 }\n        abort: { httpStatus: 503, percent: 5.5 }\n";

#[test]
fn faults_delay_abort_or_both() {
    let r = parse(&files(FAULTY)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].rules[0].fault,
        Some(Fault {
            delay: Some(FaultDelay {
                duration: std::time::Duration::from_secs(2),
                percent: 10.0
            }),
            abort: Some(FaultAbort {
                status: 503,
                percent: 5.5
            }),
        })
    );
    let only_abort = FAULTY.replace("        delay: { fixedDelay: 2s, percent: 10 }\n", "");
    let r = parse(&files(&only_abort)).unwrap_or_else(|e| panic!("{e}"));
    let f = r.routes["r"].rules[0].fault.clone();
    assert!(f.is_some_and(|f| f.delay.is_none() && f.abort.is_some()));
    let only_delay = FAULTY
        .replace("        abort: { httpStatus: 503, percent: 5.5 }\n", "")
        .replace("percent: 10", "percent: 0.001");
    let r = parse(&files(&only_delay)).unwrap_or_else(|e| panic!("{e}"));
    let f = r.routes["r"].rules[0].fault.clone();
    assert_eq!(f.and_then(|f| f.delay).map(|d| d.percent), Some(0.001));
    // The bounds are in.
    let edges = FAULTY
        .replace(
            "fixedDelay: 2s, percent: 10",
            "fixedDelay: 7d, percent: 100",
        )
        .replace(
            "httpStatus: 503, percent: 5.5",
            "httpStatus: 200, percent: 0",
        );
    assert!(parse(&files(&edges)).is_ok());
}

#[test]
fn every_fault_error_at_its_field() {
    let bad = FAULTY
        .replace(
            "fixedDelay: 2s, percent: 10",
            "fixedDelay: 0s, percent: 150",
        )
        .replace(
            "httpStatus: 503, percent: 5.5",
            "httpStatus: 600, percent: -1",
        );
    let err = parse(&files(&bad)).unwrap_err();
    let text = err.to_string();
    let want = [
        "mesh.yaml:11:30: HTTPRoute/r.spec.rules[0].fault.delay.fixedDelay: must be more than 0; for no delay leave `delay` out",
        "mesh.yaml:11:43: HTTPRoute/r.spec.rules[0].fault.delay.percent: 150 is not a percentage: write 0 to 100",
        "mesh.yaml:12:30: HTTPRoute/r.spec.rules[0].fault.abort.httpStatus: 600 is not a status from 200 to 599",
        "mesh.yaml:12:44: HTTPRoute/r.spec.rules[0].fault.abort.percent: -1 is not a percentage",
    ];
    for w in want {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
    assert_eq!(err.0.len(), 4, "{text}");

    let cases = [
        // Neither half.
        (
            "      fault: {}\n",
            "HTTPRoute/r.spec.rules[0].fault: give a `delay`, an `abort` or both",
        ),
        (
            "      fault: { delay: { percent: 10 } }\n",
            "mesh.yaml:10:23: HTTPRoute/r.spec.rules[0].fault.delay.fixedDelay: missing: how long to hold a request",
        ),
        (
            "      fault: { delay: { fixedDelay: 2s } }\n",
            "HTTPRoute/r.spec.rules[0].fault.delay.percent: missing: the share of requests delayed, 0 to 100",
        ),
        (
            "      fault: { abort: { percent: 1 } }\n",
            "HTTPRoute/r.spec.rules[0].fault.abort.httpStatus: missing: the status to answer instead",
        ),
        (
            "      fault: { abort: { httpStatus: 503 } }\n",
            "HTTPRoute/r.spec.rules[0].fault.abort.percent: missing: the share of requests aborted",
        ),
        (
            "      fault: { abort: { httpStatus: 199, percent: 1 } }\n",
            "fault.abort.httpStatus: 199 is not a status from 200 to 599",
        ),
        (
            "      fault: { abort: { httpStatus: 503, percent: .nan } }\n",
            // The YAML reader refuses it before the range check would.
            "mesh.yaml:10:51: ",
        ),
        (
            "      fault: { delay: { fixedDelay: 8d, percent: 1 } }\n",
            "fault.delay.fixedDelay: `8d` is longer than 7 days",
        ),
        (
            "      fault: { delay: { fixedDelay: soon, percent: 1 } }\n",
            "fault.delay.fixedDelay: `soon` is not a duration",
        ),
        // Istio's newer spelling: a schema error that points the way.
        (
            "      fault: { delay: { fixedDelay: 1s, percentage: { value: 1 } } }\n",
            "(did you mean `percent`?)",
        ),
        (
            "      fault: { abort: { httpStatus: 503, percent: ten } }\n",
            "mesh.yaml:10",
        ),
    ];
    let head = FAULTY.split("      fault:").next().unwrap_or_default();
    for (fault, want) in cases {
        let err = parse(&files(&format!("{head}{fault}")))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{fault}: missing {want:?} in:\n{err}");
    }
}

const MIRRORED: &str = "kind: Service\nmetadata: { name: s }\n---\nkind: Service\nmetadata: { name: shadow }\n---\nkind: HTTPRoute\nmetadata: { name: r }\nspec:\n  parentRefs: [ { name: s } ]\n  rules:\n    - backendRefs: [ { name: s } ]\n      filters:\n        - type: RequestMirror\n          requestMirror: { backendRef: { name: shadow }, percent: 25 }\n";

#[test]
fn a_request_mirror_filter_names_its_cluster_and_share() {
    let r = parse(&files(MIRRORED)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].rules[0].mirror,
        Some(Mirror {
            cluster: "shadow".into(),
            percent: Some(25.0)
        })
    );
    let fraction = MIRRORED.replace("percent: 25", "fraction: { numerator: 1, denominator: 8 }");
    let r = parse(&files(&fraction)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].rules[0]
            .mirror
            .as_ref()
            .and_then(|m| m.percent),
        Some(12.5)
    );
    let all = MIRRORED.replace(", percent: 25", "");
    let r = parse(&files(&all)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.routes["r"].rules[0]
            .mirror
            .as_ref()
            .and_then(|m| m.percent),
        None
    );
}

#[test]
fn every_request_mirror_error_at_its_field() {
    let cases = [
        (
            MIRRORED.replace("name: shadow }, percent", "name: shadw }, percent"),
            "mesh.yaml:15:48: HTTPRoute/r.spec.rules[0].filters[0].requestMirror.backendRef.name: no Service named `shadw` (did you mean `shadow`?)",
        ),
        (
            MIRRORED.replace("percent: 25", "percent: 101"),
            "mesh.yaml:15:67: HTTPRoute/r.spec.rules[0].filters[0].requestMirror.percent: 101 is not a percentage: write 0 to 100",
        ),
        (
            MIRRORED.replace("percent: 25", "fraction: { numerator: 3, denominator: 2 }"),
            "HTTPRoute/r.spec.rules[0].filters[0].requestMirror.fraction: 3/2: the denominator must be more than 0 and at least the numerator",
        ),
        (
            MIRRORED.replace("percent: 25", "percent: 5, fraction: { numerator: 1 }"),
            "HTTPRoute/r.spec.rules[0].filters[0].requestMirror.fraction: give `percent` or `fraction`, not both",
        ),
        (
            MIRRORED.replace("type: RequestMirror", "type: RequestMirorr"),
            "mesh.yaml:14:17: HTTPRoute/r.spec.rules[0].filters[0].type: unknown filter type `RequestMirorr` (did you mean `RequestMirror`?)",
        ),
        (
            format!("{MIRRORED}        - type: RequestMirror\n          requestMirror: {{ backendRef: {{ name: s }} }}\n"),
            "HTTPRoute/r.spec.rules[0].filters[1].type: one RequestMirror per rule",
        ),
    ];
    for (text, want) in cases {
        let err = parse(&files(&text)).unwrap_err().to_string();
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
