//! `BodyDecoder` for every `Framing` over arbitrary bytes.
//!
//! Input: 12 config bytes, then the wire bytes (what follows the head).
//! - byte 0: bits 0-1 the framing (Empty, Length, Chunked, Close); bit 2
//!   takes the Content-Length modulo (wire length + 3) so it lands near the
//!   data, else the raw u64 of bytes 4-11; bit 3: the peer closes after the
//!   last byte (`finish_eof`);
//! - byte 1: `max_trailer_size` (0, 1, 7, 64, 256, 1 KiB, 16 KiB, usize::MAX);
//! - bytes 2-3: the seed that cuts the wire into reads (see `Splitter`);
//! - bytes 4-11: Content-Length (little-endian u64).
//!
//! Properties:
//! 1. no panic; every call returns (the decode loop is bounded);
//! 2. whole vs. fed in reads: same body bytes, same trailers, same end
//!    (done / error / EOF verdict) and, once done, the same bytes left over;
//! 3. `Data` is never empty; the body is never longer than the bytes given,
//!    the bytes consumed are at least the body, and exactly it for
//!    Content-Length and close-delimited bodies; Length(n) ends after exactly
//!    n bytes; a close-delimited body is the whole input and ends cleanly at
//!    EOF;
//! 4. trailers only for chunked bodies and never longer than
//!    `max_trailer_size`;
//! 5. bounded memory: when the decoder answers `NeedMore`, what it left in the
//!    buffer is nothing (no chunked trailer section in progress) or at most
//!    `max_trailer_size` bytes;
//! 6. an accepted chunked body reads the same with a simple reference
//!    de-chunker (body bytes and trailer section).
#![no_main]

use _undipy::dispatcher::codec::{BodyDecoder, Decoded, Framing, ParseError, RawHeaders};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use undipy_fuzz::{reference_dechunk, Splitter};

const CONFIG: usize = 12;

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The decoder said `Done`.
    Done(RawHeaders),
    Error(ParseError),
    /// Input ran out and the peer closed: `finish_eof`'s verdict.
    Eof(Result<RawHeaders, ParseError>),
    /// Input ran out, the connection stays open.
    Pending,
}

#[derive(Debug)]
struct Outcome {
    body: Vec<u8>,
    end: End,
    /// Bytes not taken by the decoder (left in the buffer or never fed).
    rest: Vec<u8>,
}

fn run(
    framing: Framing,
    max_trailer_size: usize,
    eof: bool,
    data: &[u8],
    pieces: &[&[u8]],
) -> Outcome {
    let bound = max_trailer_size.min(u32::MAX as usize);
    let mut dec = BodyDecoder::new(framing, max_trailer_size);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    let mut end = End::Pending;
    'reads: for piece in pieces {
        buf.extend_from_slice(piece);
        fed += piece.len();
        // Each call either takes at least one byte or ends the loop.
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(
                calls <= buf.len() + piece.len() + 2,
                "decode loop does not end"
            );
            match dec.decode(&mut buf) {
                Ok(Decoded::Data(d)) => {
                    assert!(!d.is_empty(), "empty Data");
                    body.extend_from_slice(&d);
                }
                Ok(Decoded::Done(t)) => {
                    assert!(dec.is_done());
                    end = End::Done(t);
                    break 'reads;
                }
                Ok(Decoded::NeedMore) => {
                    assert!(
                        buf.is_empty() || (framing == Framing::Chunked && buf.len() <= bound),
                        "{framing:?}: NeedMore with {} bytes buffered (trailer limit {bound})",
                        buf.len()
                    );
                    break;
                }
                Err(e) => {
                    end = End::Error(e);
                    break 'reads;
                }
            }
        }
    }
    if end == End::Pending && eof {
        end = End::Eof(dec.finish_eof());
    }
    let mut rest = buf.to_vec();
    rest.extend_from_slice(&data[fed..]);
    Outcome { body, end, rest }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < CONFIG {
        return;
    }
    let (cfg, data) = input.split_at(CONFIG);
    let raw_len = u64::from_le_bytes(cfg[4..12].try_into().unwrap());
    let framing = match cfg[0] & 3 {
        0 => Framing::Empty,
        1 if cfg[0] & 4 != 0 => Framing::Length(raw_len % (data.len() as u64 + 3)),
        1 => Framing::Length(raw_len),
        2 => Framing::Chunked,
        _ => Framing::Close,
    };
    let eof = cfg[0] & 8 != 0;
    let max_trailer_size = [0, 1, 7, 64, 256, 1024, 16 * 1024, usize::MAX][usize::from(cfg[1] & 7)];
    let seed = u16::from_le_bytes([cfg[2], cfg[3]]);

    // The connection calls the decoder once right after the head, before
    // any body bytes arrive: both runs start with an empty read.
    let whole = run(framing, max_trailer_size, eof, data, &[&[], data]);
    let mut pieces = Splitter::new(seed).pieces(data);
    pieces.insert(0, &[]);
    let split = run(framing, max_trailer_size, eof, data, &pieces);

    assert_eq!(split.body, whole.body, "{framing:?}: body differs");
    assert_eq!(split.end, whole.end, "{framing:?}: end differs");
    if matches!(whole.end, End::Done(_)) {
        assert_eq!(split.rest, whole.rest, "{framing:?}: leftover differs");
    }

    let consumed = data.len() - whole.rest.len();
    assert!(whole.body.len() <= data.len(), "body longer than input");
    assert!(consumed >= whole.body.len());
    assert_eq!(
        &whole.rest[..],
        &data[consumed..],
        "rest is not the tail of the input"
    );

    let trailers = match &whole.end {
        End::Done(t) | End::Eof(Ok(t)) => Some(t),
        _ => None,
    };
    if let Some(t) = trailers {
        assert!(
            t.buf.len() <= max_trailer_size.min(u32::MAX as usize),
            "trailers of {} bytes over {max_trailer_size}",
            t.buf.len()
        );
        if framing != Framing::Chunked {
            assert!(t.is_empty() && t.buf.is_empty(), "trailers without chunked");
        }
    }

    match framing {
        Framing::Empty => {
            assert!(matches!(&whole.end, End::Done(t) if t.is_empty()));
            assert_eq!(consumed, 0);
        }
        Framing::Length(n) => {
            assert_eq!(consumed, whole.body.len());
            assert_eq!(&whole.body[..], &data[..consumed]);
            match &whole.end {
                End::Done(_) => assert_eq!(whole.body.len() as u64, n),
                End::Eof(Ok(_)) => assert_eq!(whole.body.len() as u64, n),
                End::Eof(Err(e)) => {
                    assert_eq!(*e, ParseError::ContentLengthMismatch);
                    assert!((whole.body.len() as u64) < n);
                }
                End::Pending => assert!((whole.body.len() as u64) < n),
                End::Error(e) => panic!("Length body error {e:?}"),
            }
        }
        Framing::Close => {
            assert_eq!(
                &whole.body[..],
                data,
                "close-delimited body is not the input"
            );
            match &whole.end {
                End::Pending => assert!(!eof),
                End::Eof(Ok(_)) => {}
                other => panic!("close-delimited body ended with {other:?}"),
            }
        }
        Framing::Chunked => {
            if let End::Done(t) = &whole.end {
                let (body, section) = reference_dechunk(&data[..consumed]).unwrap_or_else(|| {
                    panic!("reference rejects accepted {:?}", &data[..consumed])
                });
                assert_eq!(body, whole.body, "reference body differs");
                assert_eq!(&t.buf[..], section, "trailer section differs");
            }
            if let End::Eof(r) = &whole.end {
                assert!(r.is_err(), "chunked body ended cleanly by EOF");
            }
        }
    }
});
