use super::*;

fn req(raw: &str) -> Result<RequestHead, HeadError> {
    let mut head = RequestHead::default();
    match parse_request(raw.as_bytes(), &Limits::default(), &mut head)? {
        true => Ok(head),
        false => panic!("partial head: {raw:?}"),
    }
}

fn req_err(raw: &str) -> HeadError {
    req(raw).expect_err("request should be refused")
}

fn resp(raw: &str, was_head: bool) -> Result<ResponseHead, HeadError> {
    let mut head = ResponseHead::default();
    assert!(parse_response(
        raw.as_bytes(),
        &Limits::default(),
        was_head,
        &mut head
    )?);
    Ok(head)
}

#[test]
fn simple_get_has_no_body_and_keeps_alive() {
    let raw = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let head = req(raw).unwrap();
    let buf = raw.as_bytes();
    assert_eq!(head.method(buf), b"GET");
    assert_eq!(head.path(buf), b"/a/b");
    assert_eq!(head.host.unwrap().get(buf), b"example.com");
    assert_eq!(head.framing, BodyFraming::Empty);
    assert!(head.keep_alive);
    assert_eq!(head.head_len, raw.len());
    assert_eq!(head.header(buf, b"ACCEPT"), Some(&b"*/*"[..]));
}

#[test]
fn partial_head_asks_for_more() {
    let mut head = RequestHead::default();
    let partial = b"GET / HTTP/1.1\r\nHost: a\r\n";
    assert_eq!(
        parse_request(partial, &Limits::default(), &mut head),
        Ok(false)
    );
}

#[test]
fn http10_defaults_to_close_and_honours_keep_alive() {
    assert!(!req("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
    assert!(
        req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .keep_alive
    );
    assert!(
        !req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap()
            .keep_alive
    );
}

#[test]
fn content_length_and_chunked_framing() {
    let head = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n").unwrap();
    assert_eq!(head.framing, BodyFraming::Length(42));
    let head = req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    assert_eq!(head.framing, BodyFraming::Chunked);
    let head = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n").unwrap();
    assert_eq!(head.framing, BodyFraming::Length(7));
}

#[test]
fn smuggling_framings_are_refused() {
    use HeadError::*;
    let cases = [
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            ContentLengthAndTransferEncoding,
        ),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", UnsupportedTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", UnsupportedTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", UnsupportedTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", UnsupportedTransferEncoding),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingInHttp10),
        ("GET / HTTP/1.1\r\n\r\n", InvalidHost),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", InvalidHost),
    ];
    for (raw, want) in cases {
        assert_eq!(req_err(raw), want, "for {raw:?}");
        assert_eq!(want.status(), 400);
    }
}

#[test]
fn whitespace_before_colon_is_refused() {
    let err = req_err("GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    assert!(matches!(err, HeadError::Syntax(_)), "{err:?}");
    assert_eq!(err.status(), 400);
}

#[test]
fn obsolete_line_folding_is_refused() {
    let err = req_err("GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n");
    assert!(matches!(err, HeadError::Syntax(_)), "{err:?}");
}

#[test]
fn bare_lf_line_endings_parse_to_one_message() {
    // httparse accepts bare LF line endings (RFC 9112 allows a recipient to);
    // what matters is that the head parses to one unambiguous message.
    let head = req("GET / HTTP/1.1\nHost: a\n\n").unwrap();
    assert_eq!(head.framing, BodyFraming::Empty);
}

#[test]
fn too_many_headers_is_431() {
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..120 {
        raw.push_str(&format!("X-H{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    let err = req_err(&raw);
    assert_eq!(err, HeadError::TooManyHeaders);
    assert_eq!(err.status(), 431);
}

#[test]
fn oversized_head_is_431_even_when_partial() {
    let limits = Limits {
        max_header_bytes: 64,
        max_headers: 100,
    };
    let mut head = RequestHead::default();
    let raw = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}", "a".repeat(100));
    let err = parse_request(raw.as_bytes(), &limits, &mut head).unwrap_err();
    assert_eq!(err, HeadError::HeadTooLarge);
    assert_eq!(err.status(), 431);
    let complete = format!("{raw}\r\n\r\n");
    assert_eq!(
        parse_request(complete.as_bytes(), &limits, &mut head),
        Err(HeadError::HeadTooLarge)
    );
}

#[test]
fn hop_by_hop_headers_are_classified() {
    let raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Kept: 2\r\n\r\n";
    let head = req(raw).unwrap();
    let buf = raw.as_bytes();
    let kinds: Vec<(&[u8], HeaderKind)> = head
        .headers
        .iter()
        .map(|h| (h.name.get(buf), h.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (&b"Host"[..], HeaderKind::Host),
            (&b"Connection"[..], HeaderKind::HopByHop),
            (&b"X-Secret"[..], HeaderKind::HopByHop),
            (&b"Keep-Alive"[..], HeaderKind::HopByHop),
            (&b"TE"[..], HeaderKind::HopByHop),
            (&b"X-Kept"[..], HeaderKind::Other),
        ]
    );
}

#[test]
fn upgrade_needs_connection_upgrade() {
    let raw = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let head = req(raw).unwrap();
    assert_eq!(head.upgrade.unwrap().get(raw.as_bytes()), b"websocket");
    let head = req("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").unwrap();
    assert!(head.upgrade.is_none());
}

#[test]
fn expect_continue_is_seen() {
    let head =
        req("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
            .unwrap();
    assert!(head.expect_continue);
}

#[test]
fn response_framing_rules() {
    let r = resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).unwrap();
    assert_eq!(
        (r.status, r.framing, r.keep_alive),
        (200, BodyFraming::Length(5), true)
    );
    let r = resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
    assert_eq!(r.framing, BodyFraming::Empty);
    let r = resp("HTTP/1.1 204 No Content\r\n\r\n", false).unwrap();
    assert_eq!(r.framing, BodyFraming::Empty);
    let r = resp(
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(r.framing, BodyFraming::Empty);
    let r = resp(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(r.framing, BodyFraming::Chunked);
    let r = resp("HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
    assert_eq!((r.framing, r.keep_alive), (BodyFraming::UntilClose, false));
    let r = resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
    assert!(!r.keep_alive);
    let r = resp("HTTP/1.1 100 Continue\r\n\r\n", false).unwrap();
    assert!(r.is_interim());
    let err = resp(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    )
    .unwrap_err();
    assert_eq!(err, HeadError::ContentLengthAndTransferEncoding);
}

#[test]
fn decimal_parser_is_strict() {
    assert_eq!(parse_decimal(b"0"), Some(0));
    assert_eq!(parse_decimal(b"18446744073709551615"), None);
    assert_eq!(
        parse_decimal(b"1844674407370955161"),
        Some(1_844_674_407_370_955_161)
    );
    assert_eq!(parse_decimal(b""), None);
    assert_eq!(parse_decimal(b"-1"), None);
    assert_eq!(parse_decimal(b"1 2"), None);
}

/// Kinds of the headers named `name`, in order.
fn kinds_of(head: &RequestHead, buf: &[u8], name: &[u8]) -> Vec<HeaderKind> {
    head.headers
        .iter()
        .filter(|h| h.name.get(buf).eq_ignore_ascii_case(name))
        .map(|h| h.kind)
        .collect()
}

#[test]
fn connection_cannot_make_framing_or_host_hop_by_hop() {
    // Framing is never hop-by-hop: a Content-Length dropped on the way would
    // let the upstream read the body as a second request.
    let raw = "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Host, Transfer-Encoding\r\nContent-Length: 5\r\n\r\n";
    let head = req(raw).unwrap();
    let buf = raw.as_bytes();
    assert_eq!(head.framing, BodyFraming::Length(5));
    assert_eq!(
        kinds_of(&head, buf, b"content-length"),
        [HeaderKind::ContentLength]
    );
    assert_eq!(kinds_of(&head, buf, b"host"), [HeaderKind::Host]);

    let raw = "POST / HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n";
    let head = req(raw).unwrap();
    assert_eq!(head.framing, BodyFraming::Chunked);
    assert_eq!(
        kinds_of(&head, raw.as_bytes(), b"transfer-encoding"),
        [HeaderKind::TransferEncoding]
    );
}

#[test]
fn connection_still_strips_the_end_to_end_fields_it_names() {
    let raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a, X-Forwarded-For\r\nConnection: X-B\r\nX-A: 1\r\nX-B: 2\r\nX-Forwarded-For: 1.2.3.4\r\nX-C: 3\r\n\r\n";
    let head = req(raw).unwrap();
    let buf = raw.as_bytes();
    for name in [&b"x-a"[..], b"x-b", b"x-forwarded-for"] {
        assert_eq!(kinds_of(&head, buf, name), [HeaderKind::HopByHop]);
    }
    assert_eq!(kinds_of(&head, buf, b"x-c"), [HeaderKind::Other]);
}

#[test]
fn response_connection_cannot_make_content_length_hop_by_hop() {
    let raw = "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n";
    let head = resp(raw, false).unwrap();
    assert_eq!(head.framing, BodyFraming::Length(5));
    let kinds: Vec<HeaderKind> = head.headers.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [HeaderKind::HopByHop, HeaderKind::ContentLength]);
}

/// The parts of an absolute-form request the proxy routes and forwards on.
fn parts<'a>(head: &RequestHead, buf: &'a [u8]) -> (&'a [u8], Vec<u8>, &'a [u8], &'a [u8]) {
    (
        head.authority.expect("absolute-form").get(buf),
        head.origin_form(buf).concat(),
        head.path(buf),
        head.host.expect("host").get(buf),
    )
}

#[test]
fn absolute_form_targets_are_split_into_authority_and_origin() {
    let raw = "GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n";
    let head = req(raw).unwrap();
    let buf = raw.as_bytes();
    assert_eq!(head.target_form, TargetForm::Absolute);
    assert_eq!(head.target.get(buf), b"http://example.com:8080/a/b?x=1");
    assert_eq!(head.origin.get(buf), b"/a/b?x=1");
    assert_eq!(head.query(buf), Some(&b"x=1"[..]));
    // The authority replaces Host for routing as well as upstream.
    assert_eq!(
        parts(&head, buf),
        (
            &b"example.com:8080"[..],
            b"/a/b?x=1".to_vec(),
            &b"/a/b"[..],
            &b"example.com:8080"[..]
        )
    );

    let cases: [(&str, &str, &str, &str); 5] = [
        // No Host: valid, the authority stands in for it.
        ("GET HTTP://a HTTP/1.1\r\n\r\n", "a", "/", "/"),
        ("GET https://a?q=1 HTTP/1.1\r\n\r\n", "a", "/?q=1", "/"),
        ("GET hTTp://a.b:80/ HTTP/1.0\r\n\r\n", "a.b:80", "/", "/"),
        (
            "GET http://[::1]:8080/p HTTP/1.1\r\nHost: x\r\n\r\n",
            "[::1]:8080",
            "/p",
            "/p",
        ),
        (
            "GET http://10.0.0.1/p/q HTTP/1.1\r\n\r\n",
            "10.0.0.1",
            "/p/q",
            "/p/q",
        ),
    ];
    for (raw, authority, origin, path) in cases {
        let head = req(raw).unwrap();
        let buf = raw.as_bytes();
        let want = (
            authority.as_bytes(),
            origin.as_bytes().to_vec(),
            path.as_bytes(),
            authority.as_bytes(),
        );
        assert_eq!(parts(&head, buf), want, "for {raw:?}");
    }
}

#[test]
fn origin_form_is_its_own_origin() {
    let raw = "GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n";
    let head = req(raw).unwrap();
    let buf = raw.as_bytes();
    assert_eq!(head.target_form, TargetForm::Origin);
    assert_eq!((head.origin, head.authority), (head.target, None));
    assert_eq!(head.origin_form(buf).concat(), b"/a?b");
    assert_eq!(head.host.unwrap().get(buf), b"h");
    assert_eq!(head.query(buf), Some(&b"b"[..]));
    assert!(!head.is_connect());
}

#[test]
fn connect_and_asterisk_forms_are_parsed() {
    let raw = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    let head = req(raw).unwrap();
    assert_eq!(head.target_form, TargetForm::Authority);
    assert!(head.is_connect());
    assert_eq!((head.origin, head.authority), (head.target, None));
    let head = req("CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert!(head.is_connect());

    let raw = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    let head = req(raw).unwrap();
    assert_eq!(head.target_form, TargetForm::Asterisk);
    assert_eq!(head.origin_form(raw.as_bytes()).concat(), b"*");
    assert!(!head.is_connect());
}

#[test]
fn targets_of_no_valid_form_are_refused() {
    let invalid = HeadError::Syntax("invalid_request_target");
    let cases = [
        "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET ws://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET httpx://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://user:pw@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a@/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:// HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a:/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a:99999/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://[::1]x/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a/b#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:/a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT http://a:443/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT user@a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT * HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for raw in cases {
        assert_eq!(req_err(raw), invalid, "for {raw:?}");
    }
    assert_eq!(invalid.status(), 400);
    // Several Host fields stay refused when the target carries the authority.
    assert_eq!(
        req_err("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        HeadError::InvalidHost
    );
}
