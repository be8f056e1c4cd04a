//! TLS over real loopback sockets, both ends this module's stream, under
//! both of monoio's drivers (io_uring and epoll).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller};
use monoio::net::{TcpListener, TcpStream};
use rustls::pki_types::ServerName;

use super::*;
use crate::tls::certs::testing::{Leaf, TestCa};
use crate::tls::certs::{certified_key, load_certs, roots, with_key, PemSource};
use crate::tls::client::{self, ClientTls};
use crate::tls::reason;
use crate::tls::server::{self, ServerTls};

fn on_both_drivers<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("io_uring runtime")
        .block_on(test());
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("epoll runtime")
        .block_on(test());
}

/// A server presenting `leaf`, valid or not (no validity check here: the
/// client's verification is under test).
fn server_tls(leaf: &Leaf, client_ca: Option<&TestCa>) -> Arc<ServerTls> {
    let cert = PemSource::Inline(leaf.cert_pem.clone());
    let key = with_key(
        load_certs(&cert).expect("certs"),
        &PemSource::Inline(leaf.key_pem.clone()),
        &cert,
        &crate::tls::provider(),
    )
    .expect("server key");
    let client_auth = match client_ca {
        Some(ca) => server::ClientAuth::Require(
            roots(&PemSource::Inline(ca.cert_pem.clone())).expect("roots"),
        ),
        None => server::ClientAuth::None,
    };
    Arc::new(
        ServerTls::build(server::Settings {
            certificates: vec![server::Served { key, names: vec![] }],
            alpn: vec![b"http/1.1".to_vec()],
            handshake_timeout: Duration::from_secs(5),
            client_auth,
            session_resumption: true,
            listener: "test".into(),
        })
        .expect("server tls"),
    )
}

fn client_tls(ca: &TestCa, name: &str, cert: Option<&Leaf>) -> Arc<ClientTls> {
    let client_cert = cert.map(|l| {
        certified_key(
            &PemSource::Inline(l.cert_pem.clone()),
            &PemSource::Inline(l.key_pem.clone()),
            &crate::tls::provider(),
            std::time::SystemTime::now(),
        )
        .expect("client key")
    });
    Arc::new(
        ClientTls::build(client::Settings {
            roots: roots(&PemSource::Inline(ca.cert_pem.clone())).expect("roots"),
            name: Some(ServerName::try_from(name.to_string()).expect("name")),
            alpn: vec![b"http/1.1".to_vec()],
            client_cert,
            key: 1,
        })
        .expect("client tls"),
    )
}

/// A connected pair after both handshakes, or each side's error.
async fn pair(
    server: Arc<ServerTls>,
    client: Arc<ClientTls>,
) -> (Result<TlsStream, TlsError>, Result<TlsStream, TlsError>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = async {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut s = TlsStream::accept(tcp, server.config.clone())?;
        s.handshake().await?;
        Ok(s)
    };
    let connect = async {
        let tcp = TcpStream::connect_addr(addr).await.expect("connect");
        let mut s = TlsStream::connect(tcp, client.config.clone(), client.server_name(addr.ip()))?;
        s.handshake().await?;
        Ok(s)
    };
    monoio::join!(accept, connect)
}

fn holds_no_buffers(s: &TlsStream) -> bool {
    s.st.io.rx.capacity() == 0 && s.st.io.tx.capacity() == 0 && s.st.io.plain.capacity() == 0
}

#[test]
fn bytes_cross_both_ways_through_small_reads_and_large_writes() {
    let ca = TestCa::new("test ca").unwrap();
    let leaf = ca.leaf(&["a.test"]).unwrap();
    on_both_drivers(|| async {
        let (s, c) = pair(server_tls(&leaf, None), client_tls(&ca, "a.test", None)).await;
        let (mut s, mut c) = (s.expect("server"), c.expect("client"));
        assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert!(
            holds_no_buffers(&s) && holds_no_buffers(&c),
            "idle after the handshake"
        );

        // 100 KiB: several full records, read back 1000 bytes at a time
        // (most of each record waits in `plain`).
        let sent: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
        let write = async {
            let (res, _) = c.write_all(sent.clone()).await;
            res.expect("client write");
            c
        };
        let read = async {
            let mut got = Vec::new();
            while got.len() < sent.len() {
                let (res, buf) = s.read(Vec::with_capacity(1000)).await;
                assert!(res.expect("server read") > 0, "no early end");
                got.extend_from_slice(&buf);
            }
            (s, got)
        };
        let (mut c, (mut s, got)) = monoio::join!(write, read);
        assert!(got == sent, "bytes arrive intact and in order");
        assert!(
            holds_no_buffers(&s) && holds_no_buffers(&c),
            "idle after the transfer"
        );

        // And back, then a clean close: the reader sees the end.
        let (res, _) = s.write_all(b"pong".to_vec()).await;
        res.expect("server write");
        let (res, buf) = c.read(Vec::with_capacity(64)).await;
        assert_eq!(res.expect("client read"), 4);
        assert_eq!(&buf[..], b"pong");
        s.shutdown().await.expect("close");
        let (res, _) = c.read(Vec::with_capacity(64)).await;
        assert_eq!(res.expect("end"), 0, "close_notify reads as the end");
    });
}

#[test]
fn a_cancelled_read_gives_its_buffer_back_and_the_stream_goes_on() {
    let ca = TestCa::new("test ca").unwrap();
    let leaf = ca.leaf(&["a.test"]).unwrap();
    on_both_drivers(|| async {
        let (s, c) = pair(server_tls(&leaf, None), client_tls(&ca, "a.test", None)).await;
        let (mut s, mut c) = (s.expect("server"), c.expect("client"));
        let canceller = Canceller::new();
        let handle = canceller.handle();
        let read = s.cancelable_read(Vec::with_capacity(64), handle);
        let cancel = async {
            monoio::time::sleep(Duration::from_millis(20)).await;
            canceller.cancel();
        };
        let ((res, buf), ()) = monoio::join!(read, cancel);
        assert!(res.is_err(), "cancelled");
        assert_eq!(buf.capacity(), 64, "the buffer came back");
        assert!(holds_no_buffers(&s));

        let (res, _) = c.write_all(b"after".to_vec()).await;
        res.expect("write");
        let (res, buf) = s.read(Vec::with_capacity(64)).await;
        assert_eq!(res.expect("read"), 5);
        assert_eq!(&buf[..], b"after");
    });
}

/// The client refuses the server's certificate, for the reason a 502 gives.
fn refused(leaf: &Leaf, trusted: &TestCa, name: &str) -> &'static str {
    let mut why = "";
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(async {
            let (_, c) = pair(server_tls(leaf, None), client_tls(trusted, name, None)).await;
            why = reason::describe(&c.err().expect("refused"));
        });
    why
}

#[test]
fn the_client_verifies_the_server() {
    let ca = TestCa::new("test ca").unwrap();
    let other = TestCa::new("other ca").unwrap();
    let leaf = ca.leaf(&["a.test"]).unwrap();
    assert_eq!(
        refused(&leaf, &ca, "b.test"),
        "certificate not valid for the server name"
    );
    assert_eq!(
        refused(&leaf, &other, "a.test"),
        "certificate signed by an unknown authority"
    );
    let expired = ca
        .leaf_dated(&["a.test"], Some(((2020, 1, 1), (2021, 1, 1))))
        .unwrap();
    assert_eq!(refused(&expired, &ca, "a.test"), "certificate expired");
}

#[test]
fn a_required_client_certificate_is_checked() {
    let ca = TestCa::new("test ca").unwrap();
    let leaf = ca.leaf(&["a.test"]).unwrap();
    let client = ca.leaf(&["client.test"]).unwrap();
    let stranger = TestCa::new("stranger")
        .unwrap()
        .leaf(&["client.test"])
        .unwrap();
    on_both_drivers(|| async {
        let (s, c) = pair(
            server_tls(&leaf, Some(&ca)),
            client_tls(&ca, "a.test", Some(&client)),
        )
        .await;
        let s = s.expect("accepted with a certificate");
        assert!(s.peer_certificates().is_some_and(|c| c.len() == 1));
        drop(c);

        let (s, _) = pair(
            server_tls(&leaf, Some(&ca)),
            client_tls(&ca, "a.test", None),
        )
        .await;
        assert_eq!(
            reason::label(&s.err().expect("refused")),
            "no_client_certificate"
        );

        let (s, _) = pair(
            server_tls(&leaf, Some(&ca)),
            client_tls(&ca, "a.test", Some(&stranger)),
        )
        .await;
        assert_eq!(reason::label(&s.err().expect("refused")), "bad_certificate");
    });
}

#[test]
fn plaintext_to_a_tls_server_fails_the_handshake() {
    let ca = TestCa::new("test ca").unwrap();
    let leaf = ca.leaf(&["a.test"]).unwrap();
    on_both_drivers(|| async {
        let tls = server_tls(&leaf, None);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accept = async {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut s = TlsStream::accept(tcp, tls.config.clone()).expect("session");
            s.handshake().await.err()
        };
        let client = async {
            let mut tcp = TcpStream::connect_addr(addr).await.expect("connect");
            let (res, _) = tcp
                .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n".to_vec())
                .await;
            res.expect("write");
            // The alert rustls sends back, then the end.
            let (res, _) = tcp.read(Vec::with_capacity(64)).await;
            res.expect("read")
        };
        let (err, n) = monoio::join!(accept, client);
        assert_eq!(reason::label(&err.expect("refused")), "protocol_error");
        assert!(n > 0, "an alert, not silence");
    });
}

#[test]
fn a_session_continues_in_poll_style_with_early_plaintext_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new("test ca").unwrap();
    let leaf = ca.leaf(&["a.test"]).unwrap();
    on_both_drivers(|| async {
        let (s, c) = pair(server_tls(&leaf, None), client_tls(&ca, "a.test", None)).await;
        let (s, mut c) = (s.expect("server"), c.expect("client"));
        // Sent before the server side switches: it must not be lost.
        let (res, _) = c.write_all(b"early".to_vec()).await;
        res.expect("client write");
        let mut s = s.into_poll().expect("poll-io");
        let mut early = [0u8; 5];
        s.read_exact(&mut early).await.expect("early bytes");
        assert_eq!(&early, b"early");

        // 200 KiB each way: many records, vectored writes gathered.
        let sent: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
        let write = async {
            let (res, _) = c.write_all(sent.clone()).await;
            res.expect("client write");
            c
        };
        let read = async {
            let mut got = vec![0u8; sent.len()];
            s.read_exact(&mut got).await.expect("server read");
            (s, got)
        };
        let (mut c, (mut s, got)) = monoio::join!(write, read);
        assert!(got == sent, "bytes arrive intact and in order");
        let header = [9u8; 9];
        let bufs = [std::io::IoSlice::new(&header), std::io::IoSlice::new(&sent)];
        let echo = async {
            let mut left = header.len() + sent.len();
            let mut at = 0;
            while left > 0 {
                let mut slices = Vec::new();
                let mut skip = at;
                for b in &bufs {
                    if skip >= b.len() {
                        skip -= b.len();
                        continue;
                    }
                    slices.push(std::io::IoSlice::new(&b[skip..]));
                    skip = 0;
                }
                let n = s.write_vectored(&slices).await.expect("vectored write");
                at += n;
                left -= n;
            }
            s.shutdown().await.expect("close");
        };
        let back = async {
            let mut got = Vec::new();
            loop {
                let (res, buf) = c.read(Vec::with_capacity(32 * 1024)).await;
                match res.expect("client read") {
                    0 => break,
                    _ => got.extend_from_slice(&buf),
                }
            }
            got
        };
        let ((), got) = monoio::join!(echo, back);
        assert_eq!(got.len(), header.len() + sent.len());
        assert!(
            got[..9] == header && got[9..] == sent[..],
            "in order, then close_notify"
        );
    });
}

/// A workload identity for `spiffe_id`, issued by `ca`, trusting `ca`.
fn svid(ca: &TestCa, spiffe_id: &str) -> crate::tls::mesh::Svid {
    let leaf = ca.leaf(&[spiffe_id]).unwrap();
    let key = certified_key(
        &PemSource::Inline(leaf.cert_pem),
        &PemSource::Inline(leaf.key_pem),
        &crate::tls::provider(),
        std::time::SystemTime::now(),
    )
    .expect("svid key");
    let roots = roots(&PemSource::Inline(ca.cert_pem.clone())).expect("roots");
    crate::tls::mesh::Svid::new(key, roots).expect("svid")
}

fn mesh_pair(
    server: &crate::tls::mesh::Svid,
    client: &crate::tls::mesh::Svid,
    expected: &str,
) -> (Result<TlsStream, TlsError>, Result<TlsStream, TlsError>) {
    let server = Arc::new(
        crate::tls::mesh::server(server, "mesh-test", Duration::from_secs(5), false).unwrap(),
    );
    let client = Arc::new(crate::tls::mesh::client(client, expected, 7, b"h2").unwrap());
    let mut out = None;
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(async { out = Some(pair(server, client).await) });
    out.expect("ran")
}

#[test]
fn mesh_peers_prove_their_spiffe_ids_both_ways() {
    let ca = TestCa::new("mesh ca").unwrap();
    let orders = svid(&ca, "spiffe://cluster.local/ns/shop/sa/orders");
    let web = svid(&ca, "spiffe://cluster.local/ns/shop/sa/web");
    let (s, c) = mesh_pair(&orders, &web, "spiffe://cluster.local/ns/shop/sa/orders");
    let (s, c) = (
        s.expect("server accepts web"),
        c.expect("client accepts orders"),
    );
    assert_eq!(c.alpn_protocol(), Some(&b"h2"[..]), "proxies speak h2");
    let leaf = &s.peer_certificates().expect("client certificate")[0];
    assert_eq!(
        ringmesh_pki::check::spiffe_principal(leaf).as_deref(),
        Some("cluster.local/ns/shop/sa/web"),
        "the server sees the caller's principal"
    );

    // The server is not who the cluster expects.
    let (_, c) = mesh_pair(&web, &web, "spiffe://cluster.local/ns/shop/sa/orders");
    assert_eq!(
        reason::describe(&c.err().expect("refused")),
        "certificate lacks the expected SPIFFE ID"
    );
}

#[test]
fn a_mesh_listener_refuses_clients_without_a_workload_identity() {
    let ca = TestCa::new("mesh ca").unwrap();
    // A DNS name besides the SPIFFE ID, so that plain TLS clients (which
    // check names only) get far enough for the server's check to decide.
    let leaf = ca
        .leaf(&["spiffe://cluster.local/ns/shop/sa/orders", "orders.test"])
        .unwrap();
    let key = certified_key(
        &PemSource::Inline(leaf.cert_pem),
        &PemSource::Inline(leaf.key_pem),
        &crate::tls::provider(),
        std::time::SystemTime::now(),
    )
    .expect("key");
    let trusted = || roots(&PemSource::Inline(ca.cert_pem.clone())).expect("roots");
    let orders = crate::tls::mesh::Svid::new(key, trusted()).expect("svid");
    let server = Arc::new(
        crate::tls::mesh::server(&orders, "mesh-test-2", Duration::from_secs(5), false).unwrap(),
    );
    let refused = |cert: Option<&Leaf>| {
        let mut label = "";
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(async {
                let (s, _) = pair(server.clone(), client_tls(&ca, "orders.test", cert)).await;
                label = reason::label(&s.err().expect("refused"));
            });
        label
    };
    assert_eq!(refused(None), "no_client_certificate");
    let dns_only = ca.leaf(&["web.test"]).unwrap();
    assert_eq!(refused(Some(&dns_only)), "bad_certificate", "no SPIFFE ID");
    let foreign = TestCa::new("stranger")
        .unwrap()
        .leaf(&["spiffe://cluster.local/ns/shop/sa/web"])
        .unwrap();
    assert_eq!(
        refused(Some(&foreign)),
        "bad_certificate",
        "an identity from another CA"
    );
}
