//! Incremental `Transfer-Encoding: chunked` walker.
//!
//! The proxy forwards chunked bodies verbatim to HTTP/1.1 peers, so it does
//! not need to decode them, only to know exactly where they end and to refuse
//! the malformed ones (a chunk size two parsers read differently is a
//! smuggling vector). The same walker reports data ranges for the rare peer
//! that needs the body de-chunked (an HTTP/1.0 client).
//!
//! It keeps no buffer of its own: bytes are fed as they arrive, in pieces of
//! any size, and a data chunk of any length is skipped in O(1).

use std::fmt;

/// Most hex digits in a chunk size: 16 fill a u64.
///
/// Leading zeros count: `00000000000000005` (17 digits) is refused although
/// RFC 9112 allows leading zeros. Bounding the digits, not the value, is what
/// Go's net/http does; no real sender pads a size past 16 digits, and since
/// the proxy forwards chunked bodies verbatim, refusing keeps it from passing
/// on a size line that an upstream with a fixed-width or wrapping size parser
/// could read differently from us.
const MAX_SIZE_DIGITS: u8 = 16;
/// Most bytes of chunk extensions on one size line.
const MAX_EXTENSION_BYTES: u32 = 4096;
/// Most bytes of trailer fields after the last chunk.
const MAX_TRAILER_BYTES: u32 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk size with no digits, a non-hex digit, or too many digits.
    InvalidSize,
    /// Whitespace or other bytes after the size that are not an extension.
    InvalidSizeLine,
    /// A line that does not end in CRLF.
    InvalidLineEnding,
    /// Extensions or trailers over their limits.
    TooLong,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::InvalidSize => "invalid_chunk_size",
            ChunkedError::InvalidSizeLine => "invalid_chunk_size_line",
            ChunkedError::InvalidLineEnding => "invalid_chunk_line_ending",
            ChunkedError::TooLong => "chunk_metadata_too_long",
        })
    }
}

impl std::error::Error for ChunkedError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a size line.
    Size,
    /// Whitespace after the digits: only `;` or more whitespace may follow.
    SizeSpace,
    /// Inside `;ext` up to CR.
    Extension,
    /// Saw CR at the end of a size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expect CR, then LF, after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    TrailerLineLf,
    /// Saw CR of the final empty line.
    FinalLf,
    Done,
}

/// Walks one chunked body; make a new one (or `reset`) per message.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    /// Data bytes left in the current chunk.
    remaining: u64,
    /// Extension or trailer bytes seen, against their limits.
    meta_bytes: u32,
    trailer_bytes: u32,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            remaining: 0,
            meta_bytes: 0,
            trailer_bytes: 0,
        }
    }

    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The whole body, trailers and final CRLF included, has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed `buf`; returns how many bytes of it belong to the body. Fewer than
    /// `buf.len()` only when the body ended inside `buf`: the rest is the next
    /// message. `on_data(start, end)` is called for each range of chunk data.
    pub fn advance(
        &mut self,
        buf: &[u8],
        mut on_data: impl FnMut(usize, usize),
    ) -> Result<usize, ChunkedError> {
        let mut pos = 0;
        while pos < buf.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = self.remaining.min((buf.len() - pos) as u64) as usize;
                on_data(pos, pos + take);
                pos += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(buf[pos])?;
            pos += 1;
        }
        Ok(pos)
    }

    /// Convenience for pass-through: the number of body bytes in `buf`.
    pub fn scan(&mut self, buf: &[u8]) -> Result<usize, ChunkedError> {
        self.advance(buf, |_, _| {})
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        use State::*;
        self.state = match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                if self.digits == MAX_SIZE_DIGITS {
                    return Err(ChunkedError::InvalidSize);
                }
                self.digits += 1;
                self.size = (self.size << 4) | u64::from(hex_value(b));
                Size
            }
            (Size, _) if self.digits == 0 => return Err(ChunkedError::InvalidSize),
            (Size | SizeSpace, b' ' | b'\t') => SizeSpace,
            (Size | SizeSpace, b';') => {
                self.meta_bytes = 0;
                Extension
            }
            (Size, b'\r') => SizeLf,
            (Size | SizeSpace, _) => return Err(ChunkedError::InvalidSizeLine),
            (Extension, b'\r') => SizeLf,
            (Extension, b'\n') => return Err(ChunkedError::InvalidLineEnding),
            (Extension, _) => {
                self.meta_bytes += 1;
                if self.meta_bytes > MAX_EXTENSION_BYTES {
                    return Err(ChunkedError::TooLong);
                }
                Extension
            }
            (SizeLf, b'\n') => self.end_size_line(),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart | TrailerLine, b'\n') => return Err(ChunkedError::InvalidLineEnding),
            (TrailerLine, b'\r') => TrailerLineLf,
            (TrailerStart | TrailerLine, _) => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(ChunkedError::TooLong);
                }
                TrailerLine
            }
            (TrailerLineLf, b'\n') => TrailerStart,
            (FinalLf, b'\n') => Done,
            (SizeLf | DataCr | DataLf | TrailerLineLf | FinalLf, _) => {
                return Err(ChunkedError::InvalidLineEnding)
            }
            (Data | Done, _) => unreachable_state(self.state)?,
        };
        Ok(())
    }

    fn end_size_line(&mut self) -> State {
        let size = self.size;
        self.size = 0;
        self.digits = 0;
        if size == 0 {
            State::TrailerStart
        } else {
            self.remaining = size;
            State::Data
        }
    }
}

/// `advance` never steps in these states; reaching here is a bug, reported as
/// an error rather than a panic on the request path.
fn unreachable_state(_state: State) -> Result<State, ChunkedError> {
    Err(ChunkedError::InvalidSizeLine)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Append the chunk header for `len` data bytes (`{len:x}\r\n`) to `out`.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut dec = ChunkedDecoder::new();
        let mut data = Vec::new();
        let used = dec.advance(input, |s, e| data.extend_from_slice(&input[s..e]))?;
        assert!(dec.is_done(), "body not finished");
        Ok((data, used))
    }

    #[test]
    fn decodes_chunks_and_stops_at_the_end() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nGET / HTTP/1.1";
        let (data, used) = decode_all(input).unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(&input[used..], b"GET / HTTP/1.1");
    }

    #[test]
    fn trailers_are_part_of_the_body() {
        let input = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n";
        let (data, used) = decode_all(input).unwrap();
        assert_eq!((data.as_slice(), used), (&b"abc"[..], input.len()));
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_result() {
        let input = b"A\r\n0123456789\r\n1\r\nx\r\n0\r\nT: v\r\n\r\n";
        let mut dec = ChunkedDecoder::new();
        let mut data = Vec::new();
        for (i, b) in input.iter().enumerate() {
            let one = [*b];
            assert_eq!(
                dec.advance(&one, |s, e| data.extend_from_slice(&one[s..e])),
                Ok(1),
                "at {i}"
            );
        }
        assert!(dec.is_done());
        assert_eq!(data, b"0123456789x");
    }

    #[test]
    fn large_chunk_sizes_skip_in_constant_steps() {
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.scan(b"40000000\r\n"), Ok(10));
        let block = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            assert_eq!(dec.scan(&block), Ok(block.len()));
        }
        assert_eq!(dec.scan(b"\r\n0\r\n\r\n"), Ok(7));
        assert!(dec.is_done());
    }

    /// Size lines every hardened parser refuses, with the index of the
    /// first byte that makes them invalid.
    const BAD_SIZE_LINES: [(&[u8], usize, ChunkedError); 15] = [
        (b"\r\n", 0, ChunkedError::InvalidSize),
        (b"g\r\n", 0, ChunkedError::InvalidSize),
        (b" 5\r\n", 0, ChunkedError::InvalidSize),
        (b"\t5\r\n", 0, ChunkedError::InvalidSize),
        (b"-5\r\n", 0, ChunkedError::InvalidSize),
        (b"+5\r\n", 0, ChunkedError::InvalidSize),
        (b"0x5\r\n", 1, ChunkedError::InvalidSizeLine),
        (b"5 x\r\n", 2, ChunkedError::InvalidSizeLine),
        (b"5 \r\n", 2, ChunkedError::InvalidSizeLine),
        // 17 significant digits: over 2^64.
        (b"11111111111111111\r\n", 16, ChunkedError::InvalidSize),
        // Would read as 5 if digits were not bounded and the size wrapped.
        (b"10000000000000005\r\n", 16, ChunkedError::InvalidSize),
        // Leading zeros count against the 16 digits (see MAX_SIZE_DIGITS).
        (b"00000000000000005\r\n", 16, ChunkedError::InvalidSize),
        (b"5\n", 1, ChunkedError::InvalidSizeLine),
        (b"5;ext\n", 5, ChunkedError::InvalidLineEnding),
        (b"5;ext\rx", 6, ChunkedError::InvalidLineEnding),
    ];

    #[test]
    fn invalid_sizes_are_refused() {
        for (input, _, want) in BAD_SIZE_LINES {
            let mut dec = ChunkedDecoder::new();
            assert_eq!(
                dec.scan(input),
                Err(want),
                "for {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn scan_refuses_at_the_first_bad_byte() {
        // The proxy scans the body bytes that arrived with the head; an
        // invalid size must be refused as soon as the byte that makes it
        // invalid is buffered, not when the line ends.
        for (input, bad_at, want) in BAD_SIZE_LINES {
            let shown = String::from_utf8_lossy(input);
            let mut dec = ChunkedDecoder::new();
            assert_eq!(dec.scan(&input[..bad_at]), Ok(bad_at), "for {shown:?}");
            assert_eq!(
                dec.scan(&input[bad_at..=bad_at]),
                Err(want),
                "for {shown:?}"
            );
            let mut dec = ChunkedDecoder::new();
            assert_eq!(dec.scan(&input[..=bad_at]), Err(want), "for {shown:?}");
        }
        // The same after a complete chunk, where the next size line starts.
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.scan(b"3\r\nabc\r\n"), Ok(8));
        assert_eq!(dec.scan(b" "), Err(ChunkedError::InvalidSize));
    }

    #[test]
    fn sixteen_digit_sizes_are_accepted() {
        for line in [&b"ffffffffffffffff\r\n"[..], b"FFFFFFFFFFFFFFFF\r\n"] {
            let mut dec = ChunkedDecoder::new();
            assert_eq!(dec.scan(line), Ok(line.len()));
            assert_eq!(dec.remaining, u64::MAX);
        }
        let (data, _) = decode_all(b"0000000000000003\r\nabc\r\n000\r\n\r\n").unwrap();
        assert_eq!(data, b"abc");
    }

    #[test]
    fn missing_crlf_after_data_is_refused() {
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.scan(b"3\r\nabcX"), Err(ChunkedError::InvalidLineEnding));
        let mut dec = ChunkedDecoder::new();
        assert_eq!(
            dec.scan(b"3\r\nabc\n0\r\n\r\n"),
            Err(ChunkedError::InvalidLineEnding)
        );
    }

    #[test]
    fn extension_with_whitespace_before_semicolon_is_accepted() {
        let (data, _) = decode_all(b"3 ;name=value\r\nabc\r\n0\r\n\r\n").unwrap();
        assert_eq!(data, b"abc");
    }

    #[test]
    fn oversized_extensions_are_refused() {
        let mut input = b"1;".to_vec();
        input.extend(std::iter::repeat_n(b'a', 5000));
        assert_eq!(
            ChunkedDecoder::new().scan(&input),
            Err(ChunkedError::TooLong)
        );
    }

    #[test]
    fn chunk_header_is_lowercase_hex() {
        for (len, want) in [
            (0usize, "0\r\n"),
            (10, "a\r\n"),
            (4096, "1000\r\n"),
            (usize::MAX, "ffffffffffffffff\r\n"),
        ] {
            let mut out = Vec::new();
            write_chunk_header(&mut out, len);
            assert_eq!(out, want.as_bytes());
        }
    }
}
