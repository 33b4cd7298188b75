//! Response body decoding: takes body bytes off the front of the read buffer.
//!
//! Body data is handed out as zero-copy splits of the buffer, as it arrives
//! (a large chunk comes out in several pieces). Chunked framing is parsed one
//! control byte at a time through an explicit state machine, so any split of
//! the input gives the same result and the cost is linear. The chunked rules
//! are strict: 1*16HEXDIG sizes, CRLF exactly, no whitespace, extensions
//! capped per body, trailers under the same rules as the head.

use bytes::{Buf, Bytes, BytesMut};

use super::head::{is_tchar, parse_trailers, Progress};
use super::{Framing, ParseError, RawHeaders};

/// Total bytes of chunk extensions allowed in one body (as hyper).
pub const CHUNK_EXTENSIONS_LIMIT: usize = 16 * 1024;

/// At most 16 hex digits in a chunk size (64 bits).
const MAX_SIZE_DIGITS: u8 = 16;

/// One step of body decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The body ended; the trailers (empty unless chunked trailers were sent).
    Done(RawHeaders),
    /// `buf` holds no further body bytes yet.
    NeedMore,
}

/// Decodes one response body according to its `Framing`.
///
/// After an error the decoder (and the connection) must not be used again.
#[derive(Debug)]
pub struct BodyDecoder {
    kind: Kind,
    max_trailer_size: usize,
}

#[derive(Debug)]
enum Kind {
    /// `Content-Length`: bytes still to come.
    Length {
        remaining: u64,
    },
    /// Read until the peer closes.
    Close,
    Chunked(Chunked),
    /// The body ended.
    Done,
}

#[derive(Debug)]
struct Chunked {
    state: ChunkedState,
    /// The chunk size being read, then the data bytes left in the chunk.
    size: u64,
    /// Hex digits read for the current size.
    digits: u8,
    /// Extension bytes seen in this body so far.
    ext_bytes: usize,
    /// How far the trailer section arriving in pieces has been checked.
    trailers: Progress,
}

/// Where the chunked decoder is within `chunk = size [ext] CRLF data CRLF`,
/// `last-chunk = 1*"0" [ext] CRLF` and the trailer section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkedState {
    /// Expecting the first hex digit of a size.
    SizeStart,
    /// In the size's hex digits.
    Size,
    /// Right after `;`: an extension name must start.
    ExtNameStart,
    ExtName,
    /// Right after `=`: a token or a quoted string must start.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    /// After a backslash inside a quoted string.
    ExtEscape,
    /// After the closing quote.
    ExtQuotedEnd,
    /// Saw the CR ending the size line; the LF must follow.
    SizeLf,
    /// In chunk data (`size` bytes left).
    Data,
    /// Chunk data done; its CR must follow.
    DataCr,
    /// Chunk data done; its LF must follow.
    DataLf,
    /// After the last chunk: the trailer section, parsed whole.
    Trailers,
}

const EMPTY_SIZE: ParseError = ParseError::protocol("HPE_INVALID_CHUNK_SIZE", "empty chunk size");
const BAD_SIZE: ParseError =
    ParseError::protocol("HPE_INVALID_CHUNK_SIZE", "invalid character in chunk size");
const SIZE_TOO_LONG: ParseError =
    ParseError::protocol("HPE_INVALID_CHUNK_SIZE", "chunk size too large");
const BAD_EXT: ParseError = ParseError::protocol(
    "HPE_INVALID_CHUNK_SIZE",
    "invalid character in chunk extensions",
);
const EXT_OVERFLOW: ParseError = ParseError::protocol(
    "HPE_CHUNK_EXTENSIONS_OVERFLOW",
    "chunk extensions too large",
);
const SIZE_LINE_CR: ParseError =
    ParseError::protocol("HPE_LF_EXPECTED", "chunk size line: CR without LF");
const DATA_CR: ParseError =
    ParseError::protocol("HPE_CR_EXPECTED", "chunk data not followed by CRLF");
const DATA_LF: ParseError =
    ParseError::protocol("HPE_LF_EXPECTED", "chunk data not followed by CRLF");
const CHUNKED_EOF: ParseError = ParseError::protocol(
    "HPE_INVALID_EOF_STATE",
    "connection closed inside chunked body",
);

impl BodyDecoder {
    pub fn new(framing: Framing, max_trailer_size: usize) -> Self {
        let kind = match framing {
            Framing::Empty | Framing::Length(0) => Kind::Done,
            Framing::Length(n) => Kind::Length { remaining: n },
            Framing::Close => Kind::Close,
            Framing::Chunked => Kind::Chunked(Chunked {
                state: ChunkedState::SizeStart,
                size: 0,
                digits: 0,
                ext_bytes: 0,
                trailers: Progress::default(),
            }),
        };
        BodyDecoder {
            kind,
            max_trailer_size,
        }
    }

    /// Take body bytes from the front of `buf`. Bytes after the body stay in
    /// `buf`. An incomplete trailer section also stays in `buf` until it is
    /// whole. Call repeatedly until `NeedMore` or `Done`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ParseError> {
        match &mut self.kind {
            Kind::Done => Ok(Decoded::Done(RawHeaders::default())),
            Kind::Length { remaining: 0 } => {
                self.kind = Kind::Done;
                Ok(Decoded::Done(RawHeaders::default()))
            }
            Kind::Length { remaining } => Ok(match take(buf, remaining) {
                Some(data) => Decoded::Data(data),
                None => Decoded::NeedMore,
            }),
            Kind::Close if buf.is_empty() => Ok(Decoded::NeedMore),
            Kind::Close => Ok(Decoded::Data(buf.split().freeze())),
            Kind::Chunked(chunked) => match chunked.decode(buf, self.max_trailer_size)? {
                Decoded::Done(trailers) => {
                    self.kind = Kind::Done;
                    Ok(Decoded::Done(trailers))
                }
                other => Ok(other),
            },
        }
    }

    /// The peer closed the connection: does the body end cleanly here?
    pub fn finish_eof(&mut self) -> Result<RawHeaders, ParseError> {
        match self.kind {
            Kind::Done | Kind::Length { remaining: 0 } | Kind::Close => {
                self.kind = Kind::Done;
                Ok(RawHeaders::default())
            }
            Kind::Length { .. } => Err(ParseError::ContentLengthMismatch),
            Kind::Chunked(_) => Err(CHUNKED_EOF),
        }
    }

    /// The body is complete (no more bytes are needed).
    /// Body bytes still expected, when the framing says (Content-Length).
    pub fn remaining(&self) -> Option<u64> {
        match self.kind {
            Kind::Length { remaining } => Some(remaining),
            Kind::Done => Some(0),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.kind, Kind::Done | Kind::Length { remaining: 0 })
    }
}

/// Split up to `*remaining` bytes off `buf`; `None` if `buf` is empty.
fn take(buf: &mut BytesMut, remaining: &mut u64) -> Option<Bytes> {
    if buf.is_empty() || *remaining == 0 {
        return None;
    }
    let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
    *remaining -= n as u64;
    Some(buf.split_to(n).freeze())
}

impl Chunked {
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        max_trailer_size: usize,
    ) -> Result<Decoded, ParseError> {
        loop {
            match self.state {
                ChunkedState::Data => {
                    let Some(data) = take(buf, &mut self.size) else {
                        return Ok(Decoded::NeedMore);
                    };
                    if self.size == 0 {
                        self.state = ChunkedState::DataCr;
                    }
                    return Ok(Decoded::Data(data));
                }
                ChunkedState::Trailers => {
                    return Ok(
                        match parse_trailers(buf, max_trailer_size, &mut self.trailers)? {
                            Some(trailers) => Decoded::Done(trailers),
                            None => Decoded::NeedMore,
                        },
                    );
                }
                _ => {
                    let Some(&b) = buf.first() else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.step(b)?;
                    buf.advance(1);
                }
            }
        }
    }

    /// Consume one control byte (size line or the CRLF after data).
    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        use ChunkedState as S;
        // Count the extension bytes, its leading `;` and ending CR included.
        if self.in_extension() || (self.state == S::Size && b == b';') {
            self.ext_bytes += 1;
            if self.ext_bytes > CHUNK_EXTENSIONS_LIMIT {
                return Err(EXT_OVERFLOW);
            }
        }
        self.state = match (self.state, b) {
            (S::SizeStart, b'\r') => return Err(EMPTY_SIZE),
            (S::SizeStart, _) => {
                self.size = 0;
                self.digits = 0;
                self.push_digit(b)?;
                S::Size
            }
            (S::Size, b';') => S::ExtNameStart,
            (S::Size, b'\r') => S::SizeLf,
            (S::Size, _) => {
                self.push_digit(b)?;
                S::Size
            }
            (S::SizeLf, b'\n') if self.size == 0 => S::Trailers,
            (S::SizeLf, b'\n') => S::Data,
            (S::SizeLf, _) => return Err(SIZE_LINE_CR),
            (S::ExtNameStart, _) if is_tchar(b) => S::ExtName,
            (S::ExtName, b'=') => S::ExtValueStart,
            (S::ExtName | S::ExtToken | S::ExtQuotedEnd, b';') => S::ExtNameStart,
            (S::ExtName | S::ExtToken | S::ExtQuotedEnd, b'\r') => S::SizeLf,
            (S::ExtName, _) if is_tchar(b) => S::ExtName,
            (S::ExtValueStart, b'"') => S::ExtQuoted,
            (S::ExtValueStart | S::ExtToken, _) if is_tchar(b) => S::ExtToken,
            (S::ExtQuoted, b'"') => S::ExtQuotedEnd,
            (S::ExtQuoted, b'\\') => S::ExtEscape,
            (S::ExtQuoted, _) if is_qdtext(b) => S::ExtQuoted,
            (S::ExtEscape, _) if is_quoted_pair_char(b) => S::ExtQuoted,
            (S::DataCr, b'\r') => S::DataLf,
            (S::DataCr, _) => return Err(DATA_CR),
            (S::DataLf, b'\n') => S::SizeStart,
            (S::DataLf, _) => return Err(DATA_LF),
            // Anything else inside an extension (bare CR/LF, SP, CTLs, ...).
            (
                S::ExtNameStart
                | S::ExtName
                | S::ExtValueStart
                | S::ExtToken
                | S::ExtQuoted
                | S::ExtEscape
                | S::ExtQuotedEnd,
                _,
            ) => return Err(BAD_EXT),
            (S::Data | S::Trailers, _) => unreachable!("data and trailers are not read bytewise"),
        };
        Ok(())
    }

    fn in_extension(&self) -> bool {
        use ChunkedState as S;
        matches!(
            self.state,
            S::ExtNameStart
                | S::ExtName
                | S::ExtValueStart
                | S::ExtToken
                | S::ExtQuoted
                | S::ExtEscape
                | S::ExtQuotedEnd
        )
    }

    /// Append one hex digit to the size: at most 16 digits, checked arithmetic.
    fn push_digit(&mut self, b: u8) -> Result<(), ParseError> {
        let d = hex_value(b).ok_or(BAD_SIZE)?;
        self.digits += 1;
        if self.digits > MAX_SIZE_DIGITS {
            return Err(SIZE_TOO_LONG);
        }
        self.size = self
            .size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(SIZE_TOO_LONG)?;
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// qdtext (RFC 9110 §5.6.4): HTAB, SP, VCHAR except `"` and `\`, obs-text.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

/// The byte after a backslash in a quoted-pair: HTAB, SP, VCHAR, obs-text.
fn is_quoted_pair_char(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::codec::{parse_head, HeadContext};
    use std::time::{Duration, Instant};

    const TRAILER_MAX: usize = 1024;

    /// Decode `wire` (given whole) with `framing`; returns body, trailers,
    /// what is left in the buffer and whether the body ended before EOF.
    fn run(framing: Framing, wire: &[u8]) -> Result<(Vec<u8>, RawHeaders, Vec<u8>), ParseError> {
        run_pieces(framing, &[wire])
    }

    /// Same, feeding the pieces one by one; at the end the peer closes.
    fn run_pieces(
        framing: Framing,
        pieces: &[&[u8]],
    ) -> Result<(Vec<u8>, RawHeaders, Vec<u8>), ParseError> {
        let mut dec = BodyDecoder::new(framing, TRAILER_MAX);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(d) => {
                        assert!(!d.is_empty(), "empty Data");
                        body.extend_from_slice(&d);
                    }
                    Decoded::Done(t) => {
                        assert!(dec.is_done());
                        return Ok((body, t, buf.to_vec()));
                    }
                    Decoded::NeedMore => break,
                }
            }
        }
        let trailers = dec.finish_eof()?;
        Ok((body, trailers, buf.to_vec()))
    }

    fn chunked_err(wire: &[u8]) -> ParseError {
        let whole = run(Framing::Chunked, wire).expect_err("accepted");
        let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(
            run_pieces(Framing::Chunked, &bytewise).expect_err("accepted bytewise"),
            whole
        );
        whole
    }

    fn chunked_code(wire: &[u8]) -> &'static str {
        match chunked_err(wire) {
            ParseError::Protocol { code, .. } => code,
            other => panic!("not a protocol error: {other:?}"),
        }
    }

    fn pairs(h: &RawHeaders) -> Vec<(Vec<u8>, Vec<u8>)> {
        h.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }

    // --- empty, length, close --------------------------------------------

    #[test]
    fn empty_and_zero_length_are_done_at_once() {
        for framing in [Framing::Empty, Framing::Length(0)] {
            let mut dec = BodyDecoder::new(framing, TRAILER_MAX);
            assert!(dec.is_done());
            let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
            assert_eq!(
                dec.decode(&mut buf),
                Ok(Decoded::Done(RawHeaders::default()))
            );
            assert_eq!(buf.len(), 17);
            assert_eq!(dec.finish_eof(), Ok(RawHeaders::default()));
        }
    }

    #[test]
    fn length_body_stops_at_the_length() {
        let mut dec = BodyDecoder::new(Framing::Length(5), TRAILER_MAX);
        let mut buf = BytesMut::from(&b"hel"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"hel")))
        );
        assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
        assert!(!dec.is_done());
        buf.extend_from_slice(b"loHTTP/1.1");
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"lo")))
        );
        assert!(dec.is_done());
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Done(RawHeaders::default()))
        );
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Done(RawHeaders::default()))
        );
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn length_body_cut_short_is_a_mismatch() {
        // Rows 7 and 8.
        assert_eq!(
            run(Framing::Length(10), b"abc"),
            Err(ParseError::ContentLengthMismatch)
        );
        assert_eq!(
            run(Framing::Length(10_000_000_000), b"0123456789"),
            Err(ParseError::ContentLengthMismatch)
        );
        assert_eq!(
            run(Framing::Length(u64::MAX), b""),
            Err(ParseError::ContentLengthMismatch)
        );
        assert_eq!(run(Framing::Length(3), b"abc").unwrap().0, b"abc");
    }

    #[test]
    fn close_body_runs_to_eof() {
        let mut dec = BodyDecoder::new(Framing::Close, TRAILER_MAX);
        let mut buf = BytesMut::new();
        assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
        buf.extend_from_slice(b"abc");
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
        assert!(!dec.is_done());
        assert_eq!(dec.finish_eof(), Ok(RawHeaders::default()));
        assert!(dec.is_done());
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Done(RawHeaders::default()))
        );
    }

    // --- chunked: good ----------------------------------------------------

    #[test]
    fn chunked_body_with_trailers_and_leftover() {
        let wire = b"5\r\nhello\r\nB;ext=1\r\n 0123456789\r\n0\r\nX-T: 1\r\nContent-Length: 99\r\n\r\nNEXT";
        let (body, trailers, rest) = run(Framing::Chunked, wire).unwrap();
        assert_eq!(body, b"hello 0123456789");
        assert_eq!(
            pairs(&trailers),
            vec![
                (b"X-T".to_vec(), b"1".to_vec()),
                (b"Content-Length".to_vec(), b"99".to_vec())
            ]
        );
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn chunked_sizes() {
        assert_eq!(
            run(Framing::Chunked, b"a\r\n0123456789\r\n0\r\n\r\n")
                .unwrap()
                .0,
            b"0123456789"
        );
        assert_eq!(
            run(Framing::Chunked, b"A\r\n0123456789\r\n0\r\n\r\n")
                .unwrap()
                .0,
            b"0123456789"
        );
        assert_eq!(
            run(Framing::Chunked, b"0005\r\nhello\r\n0000\r\n\r\n")
                .unwrap()
                .0,
            b"hello"
        );
        assert_eq!(run(Framing::Chunked, b"0\r\n\r\n").unwrap().0, b"");
        // 16 hex digits is the most a size may have; such a body just needs more.
        let mut dec = BodyDecoder::new(Framing::Chunked, TRAILER_MAX);
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"ab")))
        );
        assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
        assert_eq!(dec.finish_eof(), Err(CHUNKED_EOF));
    }

    #[test]
    fn large_chunk_streams_as_it_arrives() {
        let mut dec = BodyDecoder::new(Framing::Chunked, TRAILER_MAX);
        let mut buf = BytesMut::from(&b"100000\r\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
        let mut got = 0;
        for _ in 0..16 {
            buf.extend_from_slice(&[b'x'; 0x10000]);
            match dec.decode(&mut buf).unwrap() {
                Decoded::Data(d) => got += d.len(),
                other => panic!("{other:?}"),
            }
            assert_eq!(dec.decode(&mut buf), Ok(Decoded::NeedMore));
        }
        assert_eq!(got, 0x100000);
        buf.extend_from_slice(b"\r\n0\r\n\r\n");
        assert!(matches!(dec.decode(&mut buf), Ok(Decoded::Done(_))));
    }

    #[test]
    fn chunk_extensions_are_ignored() {
        // Row 17.
        for ext in [
            &b";a=b;c=\"x;y\""[..],
            b";a",
            b";a;b;c",
            b";name=token!#$",
            b";q=\"\"",
            b";q=\"with \\\"escaped\\\" quote and \\\\ and \xff obs\"",
            b";q=\"tab\there\"",
        ] {
            let wire = [&b"5"[..], ext, b"\r\nhello\r\n0", ext, b"\r\n\r\n"].concat();
            assert_eq!(
                run(Framing::Chunked, &wire).unwrap().0,
                b"hello",
                "{:?}",
                String::from_utf8_lossy(ext)
            );
        }
    }

    // --- chunked: bad (rows 13-22, 25, 26) ---------------------------------

    #[test]
    fn invalid_chunk_sizes() {
        let cases: &[&[u8]] = &[
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"5 ;a\r\nhello\r\n0\r\n\r\n",
            b"0_2e\r\n",
            b"g\r\n",
            b"\xd9\xa3\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n\r\n",
            b"ffffffffffffffff1\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
        ];
        for wire in cases {
            assert_eq!(
                chunked_code(wire),
                "HPE_INVALID_CHUNK_SIZE",
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        assert_eq!(chunked_err(b"\r\n"), EMPTY_SIZE);
        assert_eq!(chunked_err(b"ffffffffffffffff1\r\n"), SIZE_TOO_LONG);
    }

    #[test]
    fn invalid_chunk_extensions() {
        let cases: &[&[u8]] = &[
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;;a\r\n",
            b"5;=b\r\n",
            b"5;a=\r\n",
            b"5;a=\"x\r\n",
            b"5;a=\"x\"y\r\n",
            b"5;a=b c\r\n",
            b"5; a\r\n",
            b"5;a =b\r\n",
            b"5;a\nX",
            b"5;a=b\nX",
            b"5;a=\"x\ny\"\r\n",
            b"5;a=\"x\ry\"\r\n",
            b"5;a=\"x\\\ny\"\r\n",
            b"5;a=\"\x00\"\r\n",
            b"5;a\x00\r\n",
        ];
        for wire in cases {
            assert_eq!(
                chunked_code(wire),
                "HPE_INVALID_CHUNK_SIZE",
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn bare_cr_and_lf_in_chunked_framing() {
        // Rows 18, 21: the size line must end in CRLF exactly.
        assert_eq!(
            chunked_code(b"5\r\r;x\r\nhello\r\n0\r\n\r\n"),
            "HPE_LF_EXPECTED"
        );
        assert_eq!(chunked_code(b"5;a\rX"), "HPE_LF_EXPECTED");
        assert_eq!(chunked_code(b"5\rX"), "HPE_LF_EXPECTED");
        assert_eq!(chunked_code(b"0\rX"), "HPE_LF_EXPECTED");
        assert_eq!(chunked_code(b"5\r\nhello\n0\r\n\r\n"), "HPE_CR_EXPECTED");
        assert_eq!(chunked_code(b"5\r\nhello\r0\r\n\r\n"), "HPE_LF_EXPECTED");
        assert_eq!(
            chunked_code(b"5\r\nhello\r\n0\n\n"),
            "HPE_INVALID_CHUNK_SIZE"
        );
        assert_eq!(chunked_code(b"5\r\nhello\r\n0\r\n\n"), "HPE_CR_EXPECTED");
    }

    #[test]
    fn chunk_data_must_end_in_crlf() {
        // Row 20.
        assert_eq!(chunked_err(b"5\r\nhelloXX0\r\n\r\n"), DATA_CR);
        assert_eq!(chunked_err(b"5\r\nhello\rX0\r\n\r\n"), DATA_LF);
        assert_eq!(chunked_err(b"5\r\nhello0\r\n\r\n"), DATA_CR);
    }

    #[test]
    fn chunk_extensions_are_capped_per_body() {
        // Row 19: one huge extension.
        let mut wire = b"5;a=".to_vec();
        wire.resize(1 << 20, b'x');
        assert_eq!(chunked_err(&wire), EXT_OVERFLOW);
        // Many 1-byte chunks with 1 KiB of extension each (its CR included):
        // 16 fit, the 17th goes over.
        let ext = [&b";e="[..], &[b'v'; 1020]].concat();
        let one = [&b"1"[..], &ext, b"\r\nx\r\n"].concat();
        let wire = one.repeat(64);
        let mut dec = BodyDecoder::new(Framing::Chunked, TRAILER_MAX);
        let mut buf = BytesMut::from(&wire[..]);
        let mut chunks = 0;
        let verdict = loop {
            match dec.decode(&mut buf) {
                Ok(Decoded::Data(_)) => chunks += 1,
                other => break other,
            }
        };
        assert_eq!(verdict, Err(EXT_OVERFLOW));
        assert_eq!(chunks, 16);
        // Exactly at the cap is fine.
        let ext = [&b";"[..], &vec![b'a'; CHUNK_EXTENSIONS_LIMIT - 2]].concat();
        let wire = [&b"1"[..], &ext, b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(run(Framing::Chunked, &wire).unwrap().0, b"x");
        let ext = [&b";"[..], &vec![b'a'; CHUNK_EXTENSIONS_LIMIT - 1]].concat();
        let wire = [&b"1"[..], &ext, b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(chunked_err(&wire), EXT_OVERFLOW);
    }

    #[test]
    fn chunked_cut_short_is_an_eof_error() {
        // Row 22: every truncation of a valid body fails at EOF.
        let wire = b"5;a=b\r\nhello\r\n0\r\nX: 1\r\n\r\n";
        for cut in 0..wire.len() {
            let verdict = run(Framing::Chunked, &wire[..cut]);
            assert_eq!(verdict, Err(CHUNKED_EOF), "cut at {cut}");
        }
        assert!(run(Framing::Chunked, wire).is_ok());
    }

    #[test]
    fn trailer_rules() {
        // Row 24: framing fields in trailers are returned apart, nothing else.
        let wire = b"0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nHost: evil\r\nTrailer: x\r\n\r\n";
        let (body, trailers, rest) = run(Framing::Chunked, wire).unwrap();
        assert!(body.is_empty() && rest.is_empty());
        assert_eq!(trailers.len(), 4);
        assert_eq!(trailers.get(b"host"), Some(&b"evil"[..]));
        // Row 26: bare LF, garbage, obs-fold, CTLs.
        for bad in [
            &b"0\r\nX: 1\n\r\n"[..],
            b"0\r\nX: 1\r\n\n",
            b"0\r\ngarbage\r\n\r\n",
            b"0\r\nX: 1\r\n continued\r\n\r\n",
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\nX: \x01\r\n\r\n",
            b"0\r\nX: 1\rY: 2\r\n\r\n",
            b"0\r\n\rX",
        ] {
            assert!(
                matches!(chunked_err(bad), ParseError::Protocol { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn trailer_limits() {
        // Row 25: endless trailers; many trailers are fine while their bytes
        // fit (only bytes count, as for the head).
        let mut endless = b"0\r\n".to_vec();
        for i in 0..1000 {
            endless.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        assert_eq!(chunked_err(&endless), ParseError::HeadersOverflow);
        let mut many = endless.clone();
        many.extend_from_slice(b"\r\n");
        let section = many.len() - 3;
        let mut dec = BodyDecoder::new(Framing::Chunked, section);
        assert!(matches!(
            dec.decode(&mut BytesMut::from(&many[..])),
            Ok(Decoded::Done(t)) if t.len() == 1000 && t.get(b"x-999") == Some(&b"v"[..])
        ));
        let mut dec = BodyDecoder::new(Framing::Chunked, section - 1);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&many[..])),
            Err(ParseError::HeadersOverflow)
        );
        // Exactly at the limit is fine.
        let wire = b"0\r\nX: 12345\r\n\r\n";
        let mut dec = BodyDecoder::new(Framing::Chunked, wire.len() - 3);
        assert!(
            matches!(dec.decode(&mut BytesMut::from(&wire[..])), Ok(Decoded::Done(t)) if t.len() == 1)
        );
        let mut dec = BodyDecoder::new(Framing::Chunked, wire.len() - 4);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&wire[..])),
            Err(ParseError::HeadersOverflow)
        );
    }

    // --- performance ------------------------------------------------------

    #[test]
    fn one_byte_chunks_decode_in_linear_time() {
        let n = 100_000;
        let mut wire = b"1\r\nx\r\n".repeat(n);
        wire.extend_from_slice(b"0\r\n\r\n");
        let started = Instant::now();
        let (body, _, _) = run(Framing::Chunked, &wire).unwrap();
        assert_eq!(body.len(), n);
        // The same bytes in 7-byte reads (never aligned with the chunks).
        let pieces: Vec<&[u8]> = wire.chunks(7).collect();
        let (body, _, _) = run_pieces(Framing::Chunked, &pieces).unwrap();
        assert_eq!(body.len(), n);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    // --- split invariance through parse_head + BodyDecoder ----------------

    fn ctx() -> HeadContext {
        HeadContext {
            method_is_head: false,
            method_is_connect: false,
            upgrade_requested: false,
            max_header_size: 8 * 1024,
        }
    }

    #[derive(Debug, PartialEq)]
    struct Message {
        status: u16,
        reason: Vec<u8>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        framing: Framing,
        keep_alive: bool,
        body: Vec<u8>,
        trailers: Vec<(Vec<u8>, Vec<u8>)>,
    }

    /// Everything a connection would see: messages, bytes left over after the
    /// last expected response, and the error that stopped it, if any.
    #[derive(Debug, Default, PartialEq)]
    struct Outcome {
        messages: Vec<Message>,
        leftover: Vec<u8>,
        error: Option<ParseError>,
    }

    /// A minimal connection reader: one request context per expected final
    /// response; 1xx heads are interim. The peer closes after the last piece.
    struct Reader<'a> {
        ctxs: &'a [HeadContext],
        buf: BytesMut,
        current: Option<(Message, BodyDecoder)>,
        out: Outcome,
    }

    impl Reader<'_> {
        fn pump(&mut self) -> Result<(), ParseError> {
            loop {
                if let Some((msg, dec)) = &mut self.current {
                    match dec.decode(&mut self.buf)? {
                        Decoded::Data(d) => {
                            assert!(!d.is_empty(), "empty Data");
                            msg.body.extend_from_slice(&d);
                        }
                        Decoded::Done(t) => {
                            msg.trailers = pairs(&t);
                            self.finish_message();
                        }
                        Decoded::NeedMore => return Ok(()),
                    }
                } else {
                    let Some(ctx) = self.ctxs.first() else {
                        return Ok(());
                    };
                    let Some(h) = parse_head(&mut self.buf, ctx)? else {
                        return Ok(());
                    };
                    let msg = Message {
                        status: h.status,
                        reason: h.reason.to_vec(),
                        headers: pairs(&h.headers),
                        framing: h.framing,
                        keep_alive: h.keep_alive,
                        body: Vec::new(),
                        trailers: Vec::new(),
                    };
                    self.current = Some((msg, BodyDecoder::new(h.framing, TRAILER_MAX)));
                }
            }
        }

        fn finish_message(&mut self) {
            let (msg, _) = self.current.take().expect("a message");
            if msg.status >= 200 {
                self.ctxs = &self.ctxs[1..];
            }
            self.out.messages.push(msg);
        }

        fn eof(&mut self) -> Result<(), ParseError> {
            if let Some((msg, dec)) = &mut self.current {
                msg.trailers = pairs(&dec.finish_eof()?);
                self.finish_message();
            }
            Ok(())
        }
    }

    fn read_all(pieces: &[&[u8]], ctxs: &[HeadContext]) -> Outcome {
        let mut r = Reader {
            ctxs,
            buf: BytesMut::new(),
            current: None,
            out: Outcome::default(),
        };
        let result = pieces
            .iter()
            .try_for_each(|p| {
                r.buf.extend_from_slice(p);
                r.pump()
            })
            .and_then(|()| r.eof());
        match result {
            // After an error the connection is dropped; what is left is moot.
            Err(e) => r.out.error = Some(e),
            Ok(()) => r.out.leftover = r.buf.to_vec(),
        }
        r.out
    }

    /// One-shot, byte by byte and cut at every offset must agree.
    fn split_invariant(wire: &[u8], ctxs: &[HeadContext]) -> Outcome {
        let whole = read_all(&[wire], ctxs);
        let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(read_all(&bytewise, ctxs), whole, "byte by byte");
        for cut in 0..=wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(read_all(&[a, b], ctxs), whole, "cut at {cut}");
        }
        for cut in 1..wire.len() {
            let (a, rest) = wire.split_at(cut);
            let (b, c) = rest.split_at(rest.len() / 2);
            assert_eq!(
                read_all(&[a, b, c], ctxs),
                whole,
                "cuts at {cut} and {}",
                cut + b.len()
            );
        }
        whole
    }

    fn bodies(o: &Outcome) -> Vec<(u16, &[u8])> {
        o.messages
            .iter()
            .map(|m| (m.status, m.body.as_slice()))
            .collect()
    }

    #[test]
    fn split_invariance_of_valid_responses() {
        let get = ctx();
        let head = HeadContext {
            method_is_head: true,
            ..ctx()
        };

        let o = split_invariant(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world",
            &[get],
        );
        assert_eq!(
            (bodies(&o), o.error.clone()),
            (vec![(200, &b"hello world"[..])], None)
        );
        assert_eq!(o.messages[0].headers[1], (b"X-A".to_vec(), b"b".to_vec()));

        let o = split_invariant(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;a=b;c=\"x;y\"\r\nhello\r\n6\r\n world\r\n0;z\r\nX-Trailer: yes\r\nX-Two: 2\r\n\r\n",
            &[get],
        );
        assert_eq!(bodies(&o), vec![(200, &b"hello world"[..])]);
        assert_eq!(
            o.messages[0].trailers,
            vec![
                (b"X-Trailer".to_vec(), b"yes".to_vec()),
                (b"X-Two".to_vec(), b"2".to_vec())
            ]
        );
        assert!(o.error.is_none() && o.leftover.is_empty());

        let o = split_invariant(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome body until close",
            &[get],
        );
        assert_eq!(bodies(&o), vec![(200, &b"some body until close"[..])]);
        assert_eq!(
            (o.messages[0].framing, o.messages[0].keep_alive),
            (Framing::Close, false)
        );

        // Row 52 and row 9: HTTP/1.0 without length; TE not ending in chunked.
        let o = split_invariant(b"HTTP/1.0 200 OK\r\n\r\nold", &[get]);
        assert_eq!(bodies(&o), vec![(200, &b"old"[..])]);
        let o = split_invariant(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, deflate\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &[get]);
        assert_eq!(bodies(&o), vec![(200, &b"5\r\nhello\r\n0\r\n\r\n"[..])]);

        // Row 54: HEAD; the stray body is left over, never a response.
        let o = split_invariant(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            &[head],
        );
        assert_eq!(
            (bodies(&o), o.leftover.as_slice()),
            (vec![(200, &b""[..])], &b"hello"[..])
        );

        // Row 55: 204 / 304 with framing headers and stray bytes.
        let o = split_invariant(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
            &[get],
        );
        assert_eq!(
            (bodies(&o), o.leftover.as_slice()),
            (vec![(204, &b""[..])], &b"hello"[..])
        );
        let o = split_invariant(
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[get],
        );
        assert_eq!(
            (bodies(&o), o.leftover.as_slice()),
            (vec![(304, &b""[..])], &b"0\r\n\r\n"[..])
        );

        // Row 56: 1xx, then the final response.
        let o = split_invariant(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            &[get],
        );
        assert_eq!(
            bodies(&o),
            vec![(100, &b""[..]), (103, &b""[..]), (200, &b"ok"[..])]
        );

        // Two pipelined responses back to back, a stray CRLF between them.
        let o = split_invariant(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            &[get, get, get],
        );
        assert_eq!(
            bodies(&o),
            vec![(200, &b"one"[..]), (201, &b"two"[..]), (404, &b""[..])]
        );
        assert!(o.error.is_none() && o.leftover.is_empty());

        // Row 50: a second response nobody asked for stays unparsed.
        let extra = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil";
        let o = split_invariant(extra, &[get]);
        assert_eq!(bodies(&o), vec![(200, &b"ok"[..])]);
        assert_eq!(o.leftover, &extra[40..]);
    }

    #[test]
    fn split_invariance_of_invalid_responses() {
        let get = ctx();
        let cases: &[(&[u8], &str)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "HPE_UNEXPECTED_CONTENT_LENGTH"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "HPE_UNEXPECTED_CONTENT_LENGTH"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "HPE_INVALID_CONTENT_LENGTH"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HPE_INVALID_TRANSFER_ENCODING"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "HPE_CR_EXPECTED"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", "HPE_INVALID_CHUNK_SIZE"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nhello\r\n0\r\n\r\n", "HPE_INVALID_CHUNK_SIZE"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: 1\n\r\n", "HPE_CR_EXPECTED"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "HPE_INVALID_EOF_STATE"),
            (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "HPE_CR_EXPECTED"),
            (b"HTTP/1.1 200 OK\r\nFoo: 1\rBar: 2\r\n\r\n", "HPE_LF_EXPECTED"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX", "HPE_LF_EXPECTED"),
            (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "HPE_INVALID_HEADER_TOKEN"),
            (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "HPE_INVALID_HEADER_TOKEN"),
            (b"HTTP/2.0 200 OK\r\n\r\n", "HPE_INVALID_VERSION"),
            (b"HTTP/1.1 099 OK\r\n\r\n", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\n", "HPE_UNEXPECTED_CONTENT_LENGTH"),
            (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HPE_INVALID_TRANSFER_ENCODING"),
        ];
        for &(wire, want) in cases {
            let o = split_invariant(wire, &[get]);
            match o.error {
                Some(ParseError::Protocol { code, .. }) => {
                    assert_eq!(code, want, "{:?}", String::from_utf8_lossy(wire))
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(wire)),
            }
        }
        let o = split_invariant(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &[get]);
        assert_eq!(
            (o.error.clone(), bodies(&o)),
            (Some(ParseError::ContentLengthMismatch), vec![])
        );
        let long = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 9000], b"\r\n\r\n"].concat();
        assert_eq!(
            read_all(&[&long], &[get]).error,
            Some(ParseError::HeadersOverflow)
        );
        let pieces: Vec<&[u8]> = long.chunks(100).collect();
        assert_eq!(
            read_all(&pieces, &[get]).error,
            Some(ParseError::HeadersOverflow)
        );
    }
}
