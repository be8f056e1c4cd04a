//! gRPC unary calls of `ringmesh.testing.v1.Echo` on the wire, without
//! tonic: a call is an HTTP/2 POST to [`UNARY_PATH`] with
//! `content-type: application/grpc` and `te: trailers`, its body one
//! length-prefixed message (a compression flag byte, a big-endian u32
//! length, the protobuf bytes); the answer is 200 with one such message
//! and `grpc-status` in the trailers (or, failing at once, in the head:
//! Trailers-Only). The load builds its one request body at start and
//! only checks the answer's framing and status, so the harness spends
//! little CPU per call.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use ringmesh_proto::testing::{EchoReply, EchoRequest};

/// The path of Echo's unary method.
pub const UNARY_PATH: &str = "/ringmesh.testing.v1.Echo/Unary";
/// What every Echo path starts with (the proxies route it to the h2
/// upstream).
pub const SERVICE_PREFIX: &str = "/ringmesh.testing.v1.Echo/";
pub const CONTENT_TYPE: &str = "application/grpc";

/// Length-prefix one message.
pub fn frame(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut b = BytesMut::with_capacity(5 + len);
    b.put_u8(0);
    b.put_u32(len as u32);
    // Encoding into a buffer with room for it cannot fail.
    let _ = msg.encode(&mut b);
    b.freeze()
}

/// The request body of an Echo.Unary call carrying `payload_size` bytes.
pub fn unary_request(payload_size: usize) -> Bytes {
    frame(&EchoRequest {
        payload: vec![b'x'; payload_size],
        ..Default::default()
    })
}

/// The answer to `req`: its payload back.
pub fn unary_reply(req: &EchoRequest) -> Bytes {
    frame(&EchoReply {
        payload: req.payload.clone(),
        ..Default::default()
    })
}

/// Why a gRPC body is not one well-formed message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("gRPC message shorter than its 5-byte prefix")]
    Short,
    #[error("gRPC message says {said} bytes, {got} follow")]
    Length { said: usize, got: usize },
    #[error("compressed gRPC message (no grpc-encoding was offered)")]
    Compressed,
}

/// The one message in a unary body: its protobuf bytes.
pub fn unframe(body: &[u8]) -> Result<&[u8], FrameError> {
    if body.len() < 5 {
        return Err(FrameError::Short);
    }
    if body[0] != 0 {
        return Err(FrameError::Compressed);
    }
    let said = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let got = body.len() - 5;
    if said != got {
        return Err(FrameError::Length { said, got });
    }
    Ok(&body[5..])
}

/// The `grpc-status` in `headers` (trailers, or a Trailers-Only head);
/// None when absent, Some(-1) when it is not a number.
pub fn status(headers: &http::HeaderMap) -> Option<i32> {
    let v = headers.get("grpc-status")?;
    Some(
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let body = unary_request(3);
        assert_eq!(&body[..5], &[0, 0, 0, 0, 5], "tag, length 3, 3 bytes");
        let req = EchoRequest::decode(unframe(&body).unwrap()).unwrap();
        assert_eq!(req.payload, b"xxx");
        let reply = unary_reply(&req);
        let back = EchoReply::decode(unframe(&reply).unwrap()).unwrap();
        assert_eq!(back.payload, b"xxx");
        // An empty payload is an empty message: the prefix alone.
        assert_eq!(&unary_request(0)[..], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_framing_is_named() {
        assert_eq!(unframe(&[0, 0, 0]), Err(FrameError::Short));
        assert_eq!(
            unframe(&[0, 0, 0, 0, 4, 1]),
            Err(FrameError::Length { said: 4, got: 1 })
        );
        assert_eq!(unframe(&[1, 0, 0, 0, 0]), Err(FrameError::Compressed));
        assert_eq!(unframe(&[0, 0, 0, 0, 0]), Ok(&[][..]));
    }

    #[test]
    fn statuses() {
        let mut h = http::HeaderMap::new();
        assert_eq!(status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert_eq!(status(&h), Some(0));
        h.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(status(&h), Some(14));
        h.insert("grpc-status", http::HeaderValue::from_static("ok"));
        assert_eq!(status(&h), Some(-1));
    }
}
