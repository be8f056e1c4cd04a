//! Property tests for head parsing and rewriting.
//!
//! The unit tests pin the framing rules one case at a time; these check two
//! properties over generated valid messages, where a proxy's bugs hide in the
//! combinations nobody wrote down:
//!
//! - reading is independent of how the bytes arrived: parsing the growing
//!   prefix of any split gives `Ok(false)` until the head is complete, then
//!   exactly what parsing it whole gives;
//! - rewriting preserves the message: the head that `rewrite` writes parses
//!   back to the same method, target, status, framing and end-to-end headers
//!   in order, as HTTP/1.1.
//!
//! The generator knows which fields the proxy must forward (it made them), so
//! the expected header list does not come from the parser under test.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::rewrite::{
    write_request_head, write_response_head, ConnectionHeader, HeaderEdits, RequestContext,
    ResponseFraming,
};

/// 256 cases keep the whole crate's tests within a few seconds.
fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

const CTX: RequestContext<'static> = RequestContext {
    client_ip: b"10.0.0.9",
    proto: b"http",
    fallback_host: b"upstream:80",
    trust_proto: true,
    client_cert: None,
    propagated: crate::rewrite::Propagated {
        traceparent: None,
        request_id: None,
    },
    rewrite: None,
};

/// Names the generator never uses for its own fields: each changes framing,
/// routing or hop-by-hop handling, and is added deliberately instead.
const SPECIAL: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// One header line of a generated message.
#[derive(Clone, Debug)]
struct Field {
    name: String,
    /// As written, optional whitespace around the value included.
    raw_value: String,
    /// Whether the proxy must pass it on as is.
    forwarded: bool,
}

impl Field {
    fn new(name: &str, value: &str, forwarded: bool) -> Field {
        Field {
            name: name.to_string(),
            raw_value: value.to_string(),
            forwarded,
        }
    }

    fn value(&self) -> &str {
        self.raw_value.trim_matches([' ', '\t'])
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}"
}

fn end_to_end_field() -> impl Strategy<Value = Field> {
    let name = token().prop_filter("special header name", |n| {
        !SPECIAL.iter().any(|s| n.eq_ignore_ascii_case(s))
    });
    // Visible ASCII with inner spaces and tabs, or empty; optional
    // whitespace around it, which the parser trims.
    let value = "([!-~]([ \t!-~]{0,30}[!-~])?)?";
    (name, value, "[ \t]{0,2}", "[ \t]{0,2}").prop_map(|(name, value, before, after)| Field {
        name,
        raw_value: format!("{before}{value}{after}"),
        forwarded: true,
    })
}

/// End-to-end fields, framing, and an optional Connection header that may
/// name one of the fields (which then is not forwarded) and may name
/// Content-Length or Host (which are forwarded all the same), in any order.
fn fields(version_11: bool, host_required: bool) -> impl Strategy<Value = (Vec<Field>, Framing)> {
    let length = (0u64..1 << 40).prop_map(Framing::Length);
    let framing = match version_11 {
        true => prop_oneof![Just(Framing::None), length, Just(Framing::Chunked)].boxed(),
        // Transfer-Encoding in HTTP/1.0 is refused.
        false => prop_oneof![Just(Framing::None), length].boxed(),
    };
    let some_host = "[a-z0-9.-]{1,20}(:[0-9]{1,5})?".prop_map(Some);
    let host = match host_required {
        true => some_host.boxed(),
        false => prop_oneof![3 => some_host, 1 => Just(None)].boxed(),
    };
    let connection = proptest::option::of((
        proptest::collection::vec(
            prop_oneof![
                Just("close"),
                Just("keep-alive"),
                Just("Content-Length"),
                Just("Host"),
            ]
            .prop_map(String::from),
            0..3,
        ),
        proptest::option::of(any::<Index>()),
    ));
    (
        proptest::collection::vec(end_to_end_field(), 0..20),
        framing,
        host,
        connection,
    )
        .prop_flat_map(|(mut fields, framing, host, connection)| {
            if let Some(host) = host {
                fields.push(Field::new("Host", &host, true));
            }
            match framing {
                Framing::None => {}
                Framing::Length(n) => {
                    fields.push(Field::new("Content-Length", &n.to_string(), true))
                }
                Framing::Chunked => fields.push(Field::new("Transfer-Encoding", "chunked", false)),
            }
            if let Some((mut options, named)) = connection {
                let named = named
                    .filter(|_| !fields.is_empty())
                    .map(|i| i.get(&fields).name.clone());
                if let Some(named) = named {
                    for f in &mut fields {
                        // Framing and Host stay whatever Connection says.
                        let special = SPECIAL.iter().any(|s| f.name.eq_ignore_ascii_case(s));
                        if !special && f.name.eq_ignore_ascii_case(&named) {
                            f.forwarded = false;
                        }
                    }
                    options.push(named);
                }
                fields.push(Field::new("Connection", &options.join(", "), false));
            }
            (Just(fields).prop_shuffle(), Just(framing))
        })
}

/// A valid request head (origin-form target), its framing, and the fields
/// the proxy must forward.
fn request() -> impl Strategy<Value = (String, Vec<Field>, Framing)> {
    let method = token().prop_filter("CONNECT takes authority-form", |m| m != "CONNECT");
    let target = "/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,30}(\\?[A-Za-z0-9._~!$&'()*+,;=:@/?%-]{0,30})?";
    (method, target, any::<bool>())
        .prop_flat_map(|(method, target, v11)| {
            (Just(method), Just(target), Just(v11), fields(v11, v11))
        })
        .prop_map(|(method, target, v11, (fields, framing))| {
            let minor = if v11 { 1 } else { 0 };
            let mut raw = format!("{method} {target} HTTP/1.{minor}\r\n");
            push_fields(&mut raw, &fields);
            (raw, fields, framing)
        })
}

/// A valid response head, whether it answers a HEAD, and its fields.
fn response() -> impl Strategy<Value = (String, bool, Vec<Field>)> {
    let reason = "([A-Za-z]([A-Za-z ]{0,18}[A-Za-z])?)?";
    (100u16..600, reason, any::<bool>(), any::<bool>())
        .prop_flat_map(|(status, reason, v11, was_head)| {
            (
                Just(status),
                Just(reason),
                Just(v11),
                Just(was_head),
                fields(v11, false),
            )
        })
        .prop_map(|(status, reason, v11, was_head, (fields, _))| {
            let minor = if v11 { 1 } else { 0 };
            let mut raw = format!("HTTP/1.{minor} {status} {reason}\r\n");
            push_fields(&mut raw, &fields);
            (raw, was_head, fields)
        })
}

fn push_fields(raw: &mut String, fields: &[Field]) {
    for f in fields {
        raw.push_str(&format!("{}:{}\r\n", f.name, f.raw_value));
    }
    raw.push_str("\r\n");
}

/// Cut points in `0..=len`, sorted: the input split into pieces.
fn cuts() -> impl Strategy<Value = Vec<Index>> {
    proptest::collection::vec(any::<Index>(), 1..8)
}

fn cut_points(cuts: &[Index], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(len + 1)).collect();
    points.push(len);
    points.sort_unstable();
    points
}

/// The forwarded fields a head carries: name and (trimmed) value, in order.
fn forwarded<'a>(headers: &[HeaderSpan], buf: &'a [u8]) -> Vec<(&'a [u8], &'a [u8])> {
    headers
        .iter()
        .filter(|h| !matches!(h.kind, HeaderKind::HopByHop | HeaderKind::TransferEncoding))
        .map(|h| (h.name.get(buf), h.value.get(buf)))
        .collect()
}

fn expected(fields: &[Field]) -> Vec<(&[u8], &[u8])> {
    fields
        .iter()
        .filter(|f| f.forwarded)
        .map(|f| (f.name.as_bytes(), f.value().as_bytes()))
        .collect()
}

fn parse_req(buf: &[u8]) -> Result<(bool, RequestHead), HeadError> {
    let mut head = RequestHead::default();
    let done = parse_request(buf, &Limits::default(), &mut head)?;
    Ok((done, head))
}

fn parse_resp(buf: &[u8], was_head: bool) -> Result<(bool, ResponseHead), HeadError> {
    let mut head = ResponseHead::default();
    let done = parse_response(buf, &Limits::default(), was_head, &mut head)?;
    Ok((done, head))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_split_anywhere_parses_as_whole(
        (raw, _, _) in request(),
        body in "[ -~]{0,8}",
        cuts in cuts(),
    ) {
        let input = format!("{raw}{body}");
        let buf = input.as_bytes();
        let (done, whole) = parse_req(buf).expect("valid request");
        prop_assert!(done);
        prop_assert_eq!(whole.head_len, raw.len());
        for end in cut_points(&cuts, buf.len()) {
            let (done, part) = parse_req(&buf[..end]).expect("valid prefix");
            prop_assert_eq!(done, end >= raw.len(), "prefix of {} bytes", end);
            if done {
                prop_assert_eq!(format!("{part:?}"), format!("{whole:?}"));
            }
        }
    }

    #[test]
    fn response_split_anywhere_parses_as_whole(
        (raw, was_head, _) in response(),
        body in "[ -~]{0,8}",
        cuts in cuts(),
    ) {
        let input = format!("{raw}{body}");
        let buf = input.as_bytes();
        let (done, whole) = parse_resp(buf, was_head).expect("valid response");
        prop_assert!(done);
        prop_assert_eq!(whole.head_len, raw.len());
        for end in cut_points(&cuts, buf.len()) {
            let (done, part) = parse_resp(&buf[..end], was_head).expect("valid prefix");
            prop_assert_eq!(done, end >= raw.len(), "prefix of {} bytes", end);
            if done {
                prop_assert_eq!(format!("{part:?}"), format!("{whole:?}"));
            }
        }
    }

    #[test]
    fn rewritten_request_parses_to_the_same_message((raw, fields, framing) in request()) {
        let buf = raw.as_bytes();
        let (_, first) = parse_req(buf).expect("valid request");
        prop_assert_eq!(
            first.framing,
            match framing {
                Framing::None | Framing::Length(0) => BodyFraming::Empty,
                Framing::Length(n) => BodyFraming::Length(n),
                Framing::Chunked => BodyFraming::Chunked,
            }
        );
        let mut out = Vec::new();
        write_request_head(&mut out, buf, &first, &CTX, &HeaderEdits::default());
        let (done, second) = parse_req(&out).expect("rewritten head parses");
        prop_assert!(done);
        prop_assert_eq!(second.head_len, out.len());
        prop_assert_eq!(second.method(&out), first.method(buf));
        prop_assert_eq!(second.target.get(&out), first.target.get(buf));
        prop_assert_eq!(second.version, Version::Http11);
        prop_assert_eq!(second.framing, first.framing);

        // What the proxy adds comes after the client's fields.
        let mut got = forwarded(&second.headers, &out);
        let mut added = vec![
            (&b"x-forwarded-for"[..], CTX.client_ip),
            (&b"x-forwarded-proto"[..], CTX.proto),
        ];
        if first.host.is_none() {
            added.push((b"host", CTX.fallback_host));
        }
        let split = got.len().saturating_sub(added.len());
        prop_assert_eq!(got.split_off(split), added);
        prop_assert_eq!(got, expected(&fields));
    }

    #[test]
    fn rewritten_response_parses_to_the_same_message((raw, was_head, fields) in response()) {
        let buf = raw.as_bytes();
        let (_, first) = parse_resp(buf, was_head).expect("valid response");
        let framing = match first.framing {
            BodyFraming::Chunked => ResponseFraming::Chunked,
            _ => ResponseFraming::AsIs,
        };
        let mut out = Vec::new();
        write_response_head(
            &mut out,
            buf,
            &first,
            framing,
            ConnectionHeader::None,
            &HeaderEdits::default(),
        );
        let (done, second) = parse_resp(&out, was_head).expect("rewritten head parses");
        prop_assert!(done);
        prop_assert_eq!(second.head_len, out.len());
        prop_assert_eq!(second.status, first.status);
        prop_assert_eq!(second.reason.get(&out), first.reason.get(buf));
        prop_assert_eq!(second.version, Version::Http11);
        prop_assert_eq!(second.framing, first.framing);
        prop_assert_eq!(forwarded(&second.headers, &out), expected(&fields));
    }
}
