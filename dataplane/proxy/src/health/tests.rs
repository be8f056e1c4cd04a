//! Health checking on an in-memory core: scripted upstreams that pass,
//! fail and recover, reports applied on another core, and reloads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::checker::Tally;
use super::link::{apply, Report};
use super::*;
use crate::testing::{refuse, run, send, upstream, Harness, Reader};
use crate::worker::{Reload, SnapshotStats};

const EP1: &str = "10.0.0.1:80";
const EP2: &str = "10.0.0.2:80";
const EP3: &str = "10.0.0.3:80";

fn yaml(health_check: &str) -> String {
    format!(
        "listeners: [ {{ name: l, address: '127.0.0.1:1', routes: [ {{ cluster: c }} ] }} ]
clusters:
  - {{ name: c, endpoints: ['{EP1}', '{EP2}', '{EP3}'], panic_threshold: 0{health_check} }}
"
    )
}

const FAST_HTTP: &str = ", health_check: { interval: 10ms, timeout: 50ms, unhealthy_threshold: 2, healthy_threshold: 2, http: { path: /healthz } }";

/// An upstream that answers every request with the status in `status`
/// (read when the request arrives) and records the request heads.
fn flippable(addr: &str, status: Rc<Cell<u16>>, heads: Rc<RefCell<Vec<String>>>) {
    upstream(addr, move |mut s| {
        let (status, heads) = (status.clone(), heads.clone());
        async move {
            let mut r = Reader::default();
            while let Some(head) = r.head(&mut s).await {
                heads.borrow_mut().push(head);
                let resp = format!("HTTP/1.1 {} X\r\ncontent-length: 0\r\n\r\n", status.get());
                send(&mut s, resp.as_bytes()).await;
            }
        }
    });
}

fn unhealthy(h: &Harness) -> Vec<String> {
    let snap = h.core.snapshot();
    let eps = snap.clusters[0].endpoints();
    eps.iter()
        .filter(|e| e.is_unhealthy())
        .map(|e| e.addr.to_string())
        .collect()
}

fn check(unhealthy_threshold: u32, healthy_threshold: u32) -> HealthCheck {
    HealthCheck {
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        jitter: Duration::ZERO,
        unhealthy_threshold,
        healthy_threshold,
        kind: CheckKind::Tcp,
    }
}

#[test]
fn thresholds_count_checks_in_a_row() {
    let c = check(3, 2);
    let mut t = Tally::default();
    assert_eq!(t.record(false, false, &c), None);
    assert_eq!(t.record(false, false, &c), None);
    assert_eq!(
        t.record(true, false, &c),
        None,
        "a pass resets the failures"
    );
    assert_eq!(t.record(false, false, &c), None);
    assert_eq!(t.record(false, false, &c), None);
    assert_eq!(t.record(false, false, &c), Some(true), "three in a row");
    assert_eq!(t.record(false, true, &c), None, "already unhealthy");
    assert_eq!(t.record(true, true, &c), None);
    assert_eq!(
        t.record(false, true, &c),
        None,
        "a failure resets the passes"
    );
    assert_eq!(t.record(true, true, &c), None);
    assert_eq!(t.record(true, true, &c), Some(false), "two in a row");
    let once = check(1, 1);
    let mut t = Tally::default();
    assert_eq!(t.record(false, false, &once), Some(true));
    assert_eq!(t.record(true, true, &once), Some(false));
}

#[test]
fn expected_statuses_and_the_request() {
    let http = HttpCheck {
        path: "/healthz".into(),
        host: "svc".into(),
        expected: vec![(200, 299), (304, 304)].into(),
    };
    assert!(http.passes(200) && http.passes(299) && http.passes(304));
    assert!(!http.passes(300) && !http.passes(503) && !http.passes(199));
    assert_eq!(
        &*http.request(),
        b"GET /healthz HTTP/1.1\r\nhost: svc\r\nuser-agent: ringmesh-health-check\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn failing_endpoints_leave_the_picks_and_come_back_when_they_pass() {
    run(async {
        let status = Rc::new(Cell::new(503));
        let heads = Rc::new(RefCell::new(Vec::new()));
        flippable(EP1, status.clone(), heads.clone());
        flippable(EP2, Rc::new(Cell::new(200)), Rc::default());
        refuse(EP3);
        let h = Harness::new(&yaml(FAST_HTTP));
        start(&h.core, connect(1).remove(0));
        monoio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(unhealthy(&h), [EP1, EP3]);
        {
            let head = heads.borrow()[0].clone();
            assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
            assert!(head.contains("host: c\r\n"), "the cluster's name: {head}");
        }
        let snap = h.core.snapshot();
        {
            let eps = snap.clusters[0].endpoints();
            assert!(eps[0].stats.checks_failed.get() >= 2);
            assert!(eps[1].stats.checks_passed.get() >= 2);
            assert_eq!(eps[1].stats.checks_failed.get(), 0);
            assert_eq!(eps[0].stats.unhealthy.get(), 1, "the gauge follows");
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..20 {
            let mut ctx = crate::balance::PickCtx {
                request: Some(&crate::balance::testing::GET),
                client: [127, 0, 0, 1].into(),
                rng: &mut rng,
                avoid: None,
            };
            let ep = snap.clusters[0].pick(&mut ctx).expect("a pick");
            assert_eq!(ep.addr.to_string(), EP2, "only the healthy one");
        }
        status.set(200);
        monoio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(unhealthy(&h), [EP3], "recovered after two passes");
        h.core.drain.stop();
    });
}

#[test]
fn a_report_sets_another_cores_endpoints_to_match() {
    run(async {
        let h = Harness::new(&yaml(""));
        let snap = h.core.snapshot();
        let report = |addrs: &[&str]| Report {
            cluster: "c".into(),
            unhealthy: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        assert!(apply(&snap, &report(&[EP1, EP3])));
        assert_eq!(unhealthy(&h), [EP1, EP3]);
        assert!(!apply(&snap, &report(&[EP1, EP3])), "no change, no rebuild");
        assert!(apply(&snap, &report(&[EP3])));
        assert_eq!(unhealthy(&h), [EP3]);
        let other = Report {
            cluster: "nope".into(),
            unhealthy: Box::default(),
        };
        assert!(!apply(&snap, &other), "another config's cluster");
        assert_eq!(unhealthy(&h), [EP3]);
    });
}

/// Stage and commit `yaml` on the harness's core as a reload would.
fn reload(h: &Harness, yaml: &str, generation: u64) {
    let config = Arc::new(crate::config::parse(yaml, "test").expect("config"));
    let (replies, _confirmations) = mpsc::channel();
    let msg = Reload {
        endpoints: crate::dns::resolve_all(&config),
        stats: vec![SnapshotStats::for_config(&h.core.stats, &config)],
        config,
        generation,
        replies,
    };
    h.core.stage(&msg);
    h.core.commit(generation);
    reconfigure(&h.core);
}

#[test]
fn a_reload_keeps_health_and_removing_the_check_clears_it() {
    run(async {
        flippable(EP1, Rc::new(Cell::new(503)), Rc::default());
        flippable(EP2, Rc::new(Cell::new(200)), Rc::default());
        flippable(EP3, Rc::new(Cell::new(200)), Rc::default());
        let h = Harness::new(&yaml(FAST_HTTP));
        start(&h.core, connect(1).remove(0));
        monoio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(unhealthy(&h), [EP1]);
        let before = h.core.snapshot().clusters[0].clone();
        // New check settings: the cluster is kept, and so is its health,
        // while the new checker starts counting.
        let slower = ", health_check: { interval: 1h, unhealthy_threshold: 1, healthy_threshold: 1, tcp: {} }";
        reload(&h, &yaml(slower), 1);
        let after = h.core.snapshot().clusters[0].clone();
        assert!(Rc::ptr_eq(&before, &after), "kept across the reload");
        monoio::time::sleep(Duration::from_millis(50)).await;
        // The TCP check passes (EP1 accepts): healthy after one pass.
        assert_eq!(unhealthy(&h), Vec::<String>::new());
        reload(&h, &yaml(FAST_HTTP), 2);
        monoio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(unhealthy(&h), [EP1]);
        reload(&h, &yaml(""), 3);
        assert_eq!(unhealthy(&h), Vec::<String>::new(), "no checks: healthy");
        monoio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            unhealthy(&h),
            Vec::<String>::new(),
            "the old checker stopped"
        );
        h.core.drain.stop();
    });
}

#[test]
fn a_round_checks_at_most_max_probes_endpoints_at_once() {
    run(async {
        let active = Rc::new(Cell::new(0usize));
        let most = Rc::new(Cell::new(0usize));
        let checked = Rc::new(Cell::new(0usize));
        let addrs: Vec<String> = (0..150)
            .map(|i| format!("10.1.{}.{}:80", i / 250, i % 250 + 1))
            .collect();
        for a in &addrs {
            let (active, most, checked) = (active.clone(), most.clone(), checked.clone());
            upstream(a, move |mut s| {
                let (active, most, checked) = (active.clone(), most.clone(), checked.clone());
                async move {
                    let mut r = Reader::default();
                    if r.head(&mut s).await.is_some() {
                        active.set(active.get() + 1);
                        most.set(most.get().max(active.get()));
                        monoio::time::sleep(Duration::from_millis(5)).await;
                        active.set(active.get() - 1);
                        checked.set(checked.get() + 1);
                        send(&mut s, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
                    }
                }
            });
        }
        let eps: Vec<String> = addrs.iter().map(|a| format!("'{a}'")).collect();
        let yaml = format!(
            "listeners: [ {{ name: l, address: '127.0.0.1:1', routes: [ {{ cluster: c }} ] }} ]
clusters:
  - {{ name: c, endpoints: [{}], health_check: {{ interval: 10s, timeout: 1s, http: {{ path: / }} }} }}
",
            eps.join(", ")
        );
        let h = Harness::new(&yaml);
        start(&h.core, connect(1).remove(0));
        for _ in 0..200 {
            if checked.get() == addrs.len() {
                break;
            }
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(checked.get(), addrs.len(), "every endpoint checked");
        assert_eq!(most.get(), checker::MAX_PROBES, "in waves of MAX_PROBES");
        h.core.drain.stop();
    });
}
