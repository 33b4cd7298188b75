//! The HTTP/1.1 codec: sans-I/O, no tokio and no PyO3.
//!
//! `head` parses a response head and decides its framing, `decode` takes a
//! response body off the read buffer, `encode` writes request heads.

pub mod decode;
pub mod encode;
pub mod head;

use bytes::Bytes;

pub use decode::{BodyDecoder, Decoded};
pub use head::{parse_head, parse_head_resuming, HeadContext, Progress, ResponseHead};

/// A byte range inside a `RawHeaders` buffer.
pub type Span = (u32, u32);

/// A header block as received: one shared buffer and the (name, value)
/// ranges of each field in wire order. Building it copies nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawHeaders {
    pub buf: Bytes,
    pub spans: Vec<(Span, Span)>,
}

impl RawHeaders {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The fields in wire order, names as sent (not lower-cased).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(move |&((ns, ne), (vs, ve))| {
            (
                &self.buf[ns as usize..ne as usize],
                &self.buf[vs as usize..ve as usize],
            )
        })
    }

    /// The first value of `name` (compared ASCII case-insensitively).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304, 2xx to CONNECT, 101.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: ..., chunked`.
    Chunked,
    /// Read until the server closes the connection.
    Close,
}

/// Why a response could not be read. Each maps to one Python error class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed response: `HTTPParserError` with an llhttp-style code.
    Protocol {
        code: &'static str,
        reason: &'static str,
    },
    /// Head (or trailers) larger than `max_header_size`: `HeadersOverflowError`.
    HeadersOverflow,
    /// The connection ended before `Content-Length` bytes arrived:
    /// `ResponseContentLengthMismatchError`.
    ContentLengthMismatch,
}

impl ParseError {
    pub const fn protocol(code: &'static str, reason: &'static str) -> Self {
        ParseError::Protocol { code, reason }
    }
}
