//! Engine errors. Each variant maps to exactly one Python exception class
//! (see `src/errors.rs`), named after undici's.

use std::fmt;

use super::codec::ParseError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    ConnectTimeout,
    HeadersTimeout,
    HeadersOverflow,
    BodyTimeout,
    InvalidArgument(String),
    RequestAborted,
    /// Internal teardown that fails no request (idle timeout, reset, ...).
    Informational(&'static str),
    RequestContentLengthMismatch,
    ResponseContentLengthMismatch,
    ClientDestroyed,
    ClientClosed,
    /// `other side closed`, `bad response`, `closed`, or an OS error text.
    Socket(String),
    /// A proxy answered CONNECT with this status.
    ProxyRefused(u16),
    /// The TLS connection to an `https://` proxy failed.
    ProxyTls(String),
    ResponseExceededMaxSize,
    NotSupported(String),
    /// Malformed response, with an llhttp-style code (`HPE_...`).
    Parser {
        code: &'static str,
        reason: &'static str,
    },
    /// An error object the caller supplied (`destroy(error)`), by handle.
    User(u64),
}

impl Error {
    pub fn socket(msg: impl Into<String>) -> Self {
        Error::Socket(msg.into())
    }

    /// Errors that tear a connection down without failing a request.
    pub fn is_informational(&self) -> bool {
        matches!(self, Error::Informational(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ConnectTimeout => f.write_str("Connect Timeout Error"),
            Error::HeadersTimeout => f.write_str("Headers Timeout Error"),
            Error::HeadersOverflow => f.write_str("Headers Overflow Error"),
            Error::BodyTimeout => f.write_str("Body Timeout Error"),
            Error::InvalidArgument(m) | Error::NotSupported(m) | Error::Socket(m) => f.write_str(m),
            Error::ProxyTls(m) => write!(f, "proxy: {m}"),
            Error::RequestAborted => f.write_str("Request aborted"),
            Error::ProxyRefused(status) => {
                write!(f, "Proxy response ({status}) !== 200 when HTTP Tunneling")
            }
            Error::Informational(m) => f.write_str(m),
            Error::RequestContentLengthMismatch => {
                f.write_str("Request body length does not match content-length header")
            }
            Error::ResponseContentLengthMismatch => {
                f.write_str("Response body length does not match content-length header")
            }
            Error::ClientDestroyed => f.write_str("The client is destroyed"),
            Error::ClientClosed => f.write_str("The client is closed"),
            Error::ResponseExceededMaxSize => f.write_str("Response content exceeded max size"),
            Error::User(id) => write!(f, "user error #{id}"),
            Error::Parser { reason, .. } => write!(
                f,
                "Response does not match the HTTP/1.1 protocol ({reason})"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Protocol { code, reason } => Error::Parser { code, reason },
            ParseError::HeadersOverflow => Error::HeadersOverflow,
            ParseError::ContentLengthMismatch => Error::ResponseContentLengthMismatch,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Socket(e.to_string())
    }
}
