//! Property tests for the chunked walker.
//!
//! A small encoder here writes generated bodies (sizes in either case with
//! leading zeros, extensions, trailers) followed by the bytes of a next
//! message. Whatever pieces the input arrives in, the walker must report the
//! same data, consume exactly the body and never a byte after it: a walker
//! that ends a body early or late lets the rest be read as another request.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

/// 256 cases keep the whole crate's tests within a few seconds.
fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// How one size line is written.
#[derive(Clone, Debug)]
struct SizeLine {
    /// Leading zeros, as long as the size stays within 16 digits.
    zeros: usize,
    uppercase: bool,
    /// `;name=value` or the like, possibly after whitespace; may be empty.
    extension: String,
}

fn size_line() -> impl Strategy<Value = SizeLine> {
    let extension = prop_oneof![
        Just(String::new()),
        "[ \t]{0,2};[a-z]{1,8}",
        "[ \t]{0,2};[a-z]{1,8}=[a-z0-9]{1,8}",
        "[ \t]{0,2};[a-z]{1,8}=\"[a-z ;=]{0,10}\"(;[a-z]{1,4})?",
    ];
    (0usize..4, any::<bool>(), extension).prop_map(|(zeros, uppercase, extension)| SizeLine {
        zeros,
        uppercase,
        extension,
    })
}

/// A chunked body: data chunks, the size line of the last chunk, trailers.
#[derive(Clone, Debug)]
struct Body {
    chunks: Vec<(Vec<u8>, SizeLine)>,
    last: SizeLine,
    trailers: Vec<String>,
}

fn body() -> impl Strategy<Value = Body> {
    // Data chunks are never empty: a zero size is the last chunk.
    let chunk = (proptest::collection::vec(any::<u8>(), 1..300), size_line());
    (
        proptest::collection::vec(chunk, 1..10),
        size_line(),
        proptest::collection::vec("[A-Za-z-]{1,12}:[ -~]{0,20}", 0..3),
    )
        .prop_map(|(chunks, last, trailers)| Body {
            chunks,
            last,
            trailers,
        })
}

fn write_size_line(out: &mut Vec<u8>, size: usize, line: &SizeLine) {
    let hex = match line.uppercase {
        true => format!("{size:X}"),
        false => format!("{size:x}"),
    };
    let zeros = line.zeros.min(usize::from(MAX_SIZE_DIGITS) - hex.len());
    out.extend(std::iter::repeat_n(b'0', zeros));
    out.extend_from_slice(hex.as_bytes());
    out.extend_from_slice(line.extension.as_bytes());
    out.extend_from_slice(b"\r\n");
}

impl Body {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (data, line) in &self.chunks {
            write_size_line(&mut out, data.len(), line);
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        write_size_line(&mut out, 0, &self.last);
        for trailer in &self.trailers {
            out.extend_from_slice(trailer.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn data(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|(d, _)| d.iter().copied())
            .collect()
    }
}

/// The input split at `cuts` (each in `0..=len`), in order.
fn pieces<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    points.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_split_walks_the_same_body(
        body in body(),
        next in proptest::collection::vec(any::<u8>(), 0..20),
        cuts in proptest::collection::vec(any::<Index>(), 1..12),
    ) {
        let encoded = body.encode();
        let input = [encoded.as_slice(), next.as_slice()].concat();
        let mut dec = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut consumed = 0;
        for piece in pieces(&input, &cuts) {
            let was_done = dec.is_done();
            let used = dec
                .advance(piece, |s, e| data.extend_from_slice(&piece[s..e]))
                .expect("valid body");
            consumed += used;
            if was_done {
                prop_assert_eq!(used, 0, "consumed after the end");
            } else if !dec.is_done() {
                prop_assert_eq!(used, piece.len(), "stopped before the end");
            }
        }
        prop_assert!(dec.is_done());
        prop_assert_eq!(consumed, encoded.len());
        prop_assert_eq!(data, body.data());
    }
}
