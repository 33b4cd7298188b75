//! A request as the engine sees it: validated, its head already encoded.
//!
//! `RequestSpec` is what the binding layer fills from the user's options;
//! `Request::build` checks it exactly as undici does and encodes the head, so
//! nothing invalid ever reaches a connection.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::codec::encode;
use super::error::Error;
use super::event::SinkRef;

/// The request body as handed to the engine.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    Bytes(Bytes),
    /// Pulled chunk by chunk from the caller (iterables, files); `length` when known.
    Stream {
        length: Option<u64>,
    },
}

impl Body {
    fn known_length(&self) -> Option<u64> {
        match self {
            Body::None => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Stream { length } => *length,
        }
    }
}

/// Everything the user said about one request, already converted to bytes.
#[derive(Debug, Default)]
pub struct RequestSpec {
    pub method: String,
    pub path: String,
    /// (name, value) pairs in the order given; names as given.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Already encoded query string (without the `?`).
    pub query: Option<String>,
    pub body: Option<Body>,
    pub idempotent: Option<bool>,
    pub blocking: Option<bool>,
    pub reset: Option<bool>,
    pub upgrade: Option<String>,
    pub headers_timeout: Option<Duration>,
    pub body_timeout: Option<Duration>,
    pub expect_continue: bool,
}

/// What the engine needs to know about a request's method.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub is_head: bool,
    pub is_connect: bool,
    pub idempotent: bool,
    pub blocking: bool,
    /// `Some(true)`: close after this response; `Some(false)`: keep even after HEAD.
    pub reset: Option<bool>,
    pub upgrade: bool,
    /// A body on a method that does not expect one closes the connection after it.
    pub body_without_payload_method: bool,
    /// `expect: 100-continue` was sent: the body waits for the server's 100.
    pub expect_continue: bool,
}

/// Shared between the caller's thread and the engine: abort and pause flags
/// plus the notifier of the connection the request currently runs on.
#[derive(Default)]
pub struct RequestCtl {
    flags: AtomicU8,
    /// Body bytes sent to the consumer's loop and not yet delivered there:
    /// the engine stops reading ahead once this passes `READ_AHEAD`.
    unread: AtomicUsize,
    conn: Mutex<Option<Arc<Notify>>>,
    /// Request body chunks pushed by the caller for streaming bodies.
    pub chunks: Mutex<BodyChunks>,
}

#[derive(Default)]
pub struct BodyChunks {
    pub queue: std::collections::VecDeque<Bytes>,
    pub ended: bool,
}

/// Most body bytes read for a request before its consumer's loop took them
/// (a busy loop must not make the engine buffer a whole body).
pub const READ_AHEAD: usize = 4 * 1024 * 1024;

const ABORTED: u8 = 1;
const PAUSED: u8 = 2;
const QUIET: u8 = 4;

impl RequestCtl {
    pub fn is_aborted(&self) -> bool {
        self.flags.load(Ordering::Acquire) & ABORTED != 0
    }

    pub fn is_paused(&self) -> bool {
        self.flags.load(Ordering::Acquire) & PAUSED != 0
    }

    /// Body pieces need not wake the consumer's loop one by one: nobody
    /// waits for them yet (a `request()` body until it is iterated).
    pub fn set_quiet(&self) {
        self.flags.fetch_or(QUIET, Ordering::SeqCst);
    }

    /// Someone now waits for each piece. True if pieces may already wait,
    /// unannounced, in the consumer's queue: the caller must wake it.
    /// (With `queued_bytes` before the engine's `data_is_quiet` check, one
    /// of the two sides always sees the other.)
    pub fn listen(&self) -> bool {
        let was = self.flags.fetch_and(!QUIET, Ordering::SeqCst);
        was & QUIET != 0 && self.unread.load(Ordering::SeqCst) > 0
    }

    /// A piece just queued needs no wake-up: nobody waits for it, and the
    /// read-ahead limit is not reached (then the consumer must take them).
    pub fn data_is_quiet(&self) -> bool {
        self.flags.load(Ordering::SeqCst) & QUIET != 0 && !self.read_ahead_full()
    }

    /// Marks the request aborted and wakes its connection. Returns false if it already was.
    pub fn abort(&self) -> bool {
        let first = self.flags.fetch_or(ABORTED, Ordering::AcqRel) & ABORTED == 0;
        self.wake();
        first
    }

    /// The engine queued `n` body bytes for the consumer.
    pub fn queued_bytes(&self, n: usize) {
        self.unread.fetch_add(n, Ordering::SeqCst);
    }

    /// The consumer's loop took `n` body bytes; reading resumes below the limit.
    pub fn delivered_bytes(&self, n: usize) {
        let before = self.unread.fetch_sub(n, Ordering::AcqRel);
        if before >= READ_AHEAD && before - n < READ_AHEAD {
            self.wake();
        }
    }

    /// Too much is waiting for the consumer's loop: stop reading for now.
    pub fn read_ahead_full(&self) -> bool {
        self.unread.load(Ordering::Acquire) >= READ_AHEAD
    }

    pub fn set_paused(&self, paused: bool) {
        if paused {
            self.flags.fetch_or(PAUSED, Ordering::AcqRel);
        } else {
            self.flags.fetch_and(!PAUSED, Ordering::AcqRel);
            self.wake();
        }
    }

    /// Queues a chunk of a streaming body and/or its end, in one step: a
    /// last chunk given with the end is never seen without it.
    pub fn push_chunk(&self, chunk: Option<Bytes>, end: bool) {
        {
            let mut c = self.chunks.lock();
            if let Some(b) = chunk {
                c.queue.push_back(b);
            }
            c.ended |= end;
        }
        self.wake();
    }

    pub(crate) fn attach(&self, conn: Arc<Notify>) {
        *self.conn.lock() = Some(conn);
    }

    fn wake(&self) {
        if let Some(n) = self.conn.lock().as_ref() {
            n.notify_one();
        }
    }
}

pub struct Request {
    pub sink: SinkRef,
    pub ctl: Arc<RequestCtl>,
    /// Request line, host and (for upgrades) the connection/upgrade lines.
    pub head_start: Bytes,
    /// User headers, framing header and the final CRLF.
    pub head_end: Bytes,
    pub body: Body,
    pub flags: Flags,
    /// `None`: the client's default. `Some(ZERO)`: disabled.
    pub headers_timeout: Option<Duration>,
    pub body_timeout: Option<Duration>,
    pub wants_body_sent: bool,
    /// How many times the request was written; a rewrite tells the handler.
    pub attempts: u32,
    /// A final event (completion or error) was sent for it.
    pub settled: bool,
}

/// The guarantee that every request ends: one dropped without a final event
/// (a bug, or a panic unwinding a connection task) fails instead of hanging.
impl Drop for Request {
    fn drop(&mut self) {
        if !self.settled {
            self.sink.push(super::event::Event::Error(Error::socket(
                "request dropped by an internal error",
            )));
            self.sink.sink.flush();
        }
    }
}

/// Methods whose requests carry a payload (undici's `expectsPayload`).
fn expects_payload(method: &str) -> bool {
    matches!(
        method,
        "PUT" | "POST" | "PATCH" | "QUERY" | "PROPFIND" | "PROPPATCH"
    )
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// Query strings are encoded like `encodeURIComponent`.
pub fn encode_uri_component(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(
                char::from_digit((b >> 4) as u32, 16)
                    .unwrap()
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from_digit((b & 15) as u32, 16)
                    .unwrap()
                    .to_ascii_uppercase(),
            );
        }
    }
}

impl Request {
    /// Validates `spec` and encodes its head. `host` is the origin's default Host value.
    pub fn build(
        spec: RequestSpec,
        host: &[u8],
        strict: bool,
        sink: SinkRef,
    ) -> Result<Request, Error> {
        let method = spec.method;
        if !encode::is_token(method.as_bytes()) {
            return Err(invalid("invalid request method"));
        }
        let is_connect = method == "CONNECT";
        let mut target = spec.path;
        if !is_connect && !target.starts_with('/') && !is_absolute_url(&target) {
            return Err(invalid(
                "path must be an absolute URL or start with a slash",
            ));
        }
        if let Some(q) = spec.query.filter(|q| !q.is_empty()) {
            if target.contains(['?', '#']) {
                return Err(invalid(
                    "Query params cannot be passed when url already contains \"?\" or \"#\".",
                ));
            }
            target.push('?');
            target.push_str(&q);
        }
        if target.is_empty() {
            return Err(invalid("CONNECT needs a target (host:port)"));
        }
        if !encode::is_request_target(target.as_bytes()) {
            return Err(invalid("invalid request path"));
        }
        let upgrade = match spec.upgrade {
            Some(u) if !encode::is_field_value(u.as_bytes()) || u.is_empty() => {
                return Err(invalid("invalid upgrade header"))
            }
            u => u,
        };

        let mut user = BytesMut::with_capacity(128);
        let mut host_value: Option<Vec<u8>> = None;
        let mut user_length: Option<u64> = None;
        let mut reset = spec.reset;
        for (name, value) in &spec.headers {
            if !encode::is_token(name) {
                return Err(invalid("invalid header key"));
            }
            // A receiver reads a field value without the spaces around it
            // (RFC 9110 §5.5): send it that way.
            let value = encode::trim_ows(value);
            let lname = name.to_ascii_lowercase();
            if !encode::is_field_value(value) {
                return Err(invalid(format!(
                    "invalid {} header",
                    String::from_utf8_lossy(&lname)
                )));
            }
            match &lname[..] {
                b"host" => {
                    if host_value.is_some() {
                        return Err(invalid("duplicate host header"));
                    }
                    host_value = Some(value.to_vec());
                }
                b"content-length" => {
                    if user_length.is_some() {
                        return Err(invalid("duplicate content-length header"));
                    }
                    user_length = Some(
                        parse_digits(value)
                            .ok_or_else(|| invalid("invalid content-length header"))?,
                    );
                }
                b"transfer-encoding" | b"keep-alive" | b"upgrade" => {
                    return Err(invalid(format!(
                        "invalid {} header",
                        String::from_utf8_lossy(&lname)
                    )));
                }
                b"connection" => {
                    let v = value.to_ascii_lowercase();
                    let v = v.trim_ascii();
                    if v == b"close" {
                        reset = Some(true);
                    } else if v != b"keep-alive" {
                        return Err(invalid("invalid connection header"));
                    }
                }
                b"expect" => return Err(Error::NotSupported("expect header not supported".into())),
                _ => encode::header(&mut user, name, value),
            }
        }

        // undici's framing: the length of what is actually sent wins; a user
        // content-length only frames a body of unknown length.
        let mut body = spec.body.unwrap_or(Body::None);
        let payload = expects_payload(&method);
        let checks_length = !matches!(
            &method[..],
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "CONNECT"
        );
        let mut length = body.known_length().or(user_length);
        if length == Some(0) && !payload {
            length = None;
        }
        if strict
            && checks_length
            && length.is_some_and(|l| l > 0)
            && user_length.is_some_and(|u| Some(u) != length)
        {
            return Err(Error::RequestContentLengthMismatch);
        }
        if let Body::Stream { length: l } = &mut body {
            *l = length;
        }

        let mut start = BytesMut::with_capacity(64 + target.len());
        encode::request_line(&mut start, method.as_bytes(), target.as_bytes());
        encode::header(&mut start, b"host", host_value.as_deref().unwrap_or(host));
        if let Some(u) = &upgrade {
            start.extend_from_slice(b"connection: upgrade\r\n");
            encode::header(&mut start, b"upgrade", u.as_bytes());
        }

        let has_body =
            !matches!(body, Body::None) && !matches!(&body, Body::Bytes(b) if b.is_empty());
        let expect_continue = spec.expect_continue && has_body;
        if expect_continue {
            encode::header(&mut user, b"expect", b"100-continue");
        }
        match (length, &body) {
            (Some(n), _) => encode::content_length(&mut user, n),
            (None, Body::Stream { .. }) => {
                user.extend_from_slice(encode::TRANSFER_ENCODING_CHUNKED)
            }
            _ => {}
        }
        user.extend_from_slice(b"\r\n");

        let is_head = method == "HEAD";
        let flags = Flags {
            is_head,
            is_connect,
            idempotent: spec
                .idempotent
                .unwrap_or(matches!(&method[..], "GET" | "HEAD")),
            blocking: spec.blocking.unwrap_or(false),
            reset,
            upgrade: upgrade.is_some() || is_connect,
            body_without_payload_method: has_body && !payload,
            expect_continue,
        };
        Ok(Request {
            sink,
            ctl: Arc::new(RequestCtl::default()),
            head_start: start.freeze(),
            head_end: user.freeze(),
            body: if has_body { body } else { Body::None },
            flags,
            headers_timeout: spec.headers_timeout,
            body_timeout: spec.body_timeout,
            wants_body_sent: false,
            attempts: 0,
            settled: false,
        })
    }

    /// Whether the connection must close once this request's response ended.
    pub fn closes_connection(&self) -> bool {
        match self.flags.reset {
            Some(r) => r || self.flags.body_without_payload_method,
            None => {
                self.flags.is_head || self.flags.upgrade || self.flags.body_without_payload_method
            }
        }
    }

    /// Once written, does it stop further writes on its socket for a while
    /// (until its headers, the end of its body, or for good)?
    pub fn blocks_socket(&self) -> bool {
        self.flags.blocking
            || self.flags.expect_continue
            || matches!(self.body, Body::Stream { .. })
            || self.closes_connection()
    }

    /// May this request be written while others are running (undici's `busy()`)?
    pub fn can_pipeline(&self) -> bool {
        self.flags.idempotent
            && !self.flags.upgrade
            && !self.flags.expect_continue
            && !matches!(self.body, Body::Stream { .. })
    }
}

fn is_absolute_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// `1*DIGIT`, at most 19 digits (fits in u64).
fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::event::test_sink;

    fn spec(method: &str, path: &str) -> RequestSpec {
        RequestSpec {
            method: method.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    fn head(r: &Request) -> String {
        let mut s = String::from_utf8(r.head_start.to_vec()).unwrap();
        s.push_str("connection: keep-alive\r\n");
        s.push_str(std::str::from_utf8(&r.head_end).unwrap());
        s
    }

    fn build(s: RequestSpec) -> Result<Request, Error> {
        Request::build(s, b"h:1", true, test_sink())
    }

    #[test]
    fn get_head_bytes() {
        let mut s = spec("GET", "/a");
        s.headers = vec![
            (b"X-Foo".to_vec(), b"bar".to_vec()),
            (b"x".to_vec(), b"1".to_vec()),
        ];
        s.query = Some("q=a%20b".into());
        let r = build(s).unwrap();
        assert_eq!(
            head(&r),
            "GET /a?q=a%20b HTTP/1.1\r\nhost: h:1\r\nconnection: keep-alive\r\nX-Foo: bar\r\nx: 1\r\n\r\n"
        );
        assert!(r.can_pipeline());
        assert!(!r.closes_connection());
    }

    #[test]
    fn post_lengths() {
        let mut s = spec("POST", "/");
        s.body = Some(Body::Bytes(Bytes::from_static(b"abc")));
        assert!(head(&build(s).unwrap()).ends_with("content-length: 3\r\n\r\n"));
        // POST with no body says content-length: 0; GET says nothing.
        assert!(head(&build(spec("POST", "/")).unwrap()).ends_with("content-length: 0\r\n\r\n"));
        assert!(!head(&build(spec("GET", "/")).unwrap()).contains("content-length"));
        let mut s = spec("POST", "/");
        s.body = Some(Body::Stream { length: None });
        assert!(head(&build(s).unwrap()).ends_with("transfer-encoding: chunked\r\n\r\n"));
        let mut s = spec("POST", "/");
        s.body = Some(Body::Bytes(Bytes::from_static(b"abc")));
        s.headers = vec![(b"content-length".to_vec(), b"10".to_vec())];
        assert!(matches!(build(s), Err(Error::RequestContentLengthMismatch)));
    }

    #[test]
    fn rejects_bad_input() {
        let cases: Vec<(RequestSpec, &str)> = vec![
            (spec("GET\n", "/"), "invalid request method"),
            (spec("GET", "/a b"), "invalid request path"),
            (
                spec("GET", "a"),
                "path must be an absolute URL or start with a slash",
            ),
        ];
        for (s, msg) in cases {
            match build(s) {
                Err(Error::InvalidArgument(m)) => assert_eq!(m, msg),
                Err(e) => panic!("{e:?}"),
                Ok(_) => panic!("accepted"),
            }
        }
        for (n, v) in [
            ("x", "a\r\nb"),
            ("x\n", "a"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "x"),
            ("keep-alive", "x"),
            ("connection", "upgrade"),
            ("content-length", "+5"),
            ("content-length", "1.1"),
        ] {
            let mut s = spec("GET", "/");
            s.headers = vec![(n.into(), v.into())];
            assert!(
                matches!(build(s), Err(Error::InvalidArgument(_))),
                "{n}: {v}"
            );
        }
        let mut s = spec("GET", "/");
        s.headers = vec![(b"Expect".to_vec(), b"100-continue".to_vec())];
        assert!(matches!(build(s), Err(Error::NotSupported(_))));
        let mut s = spec("PUT", "/");
        s.expect_continue = true;
        s.body = Some(Body::Bytes(Bytes::from_static(b"x")));
        let r = build(s).unwrap();
        assert!(head(&r).ends_with("expect: 100-continue\r\ncontent-length: 1\r\n\r\n"));
        assert!(!r.can_pipeline());
        let mut s = spec("POST", "/");
        s.headers = vec![
            (b"Content-Length".to_vec(), b"1".to_vec()),
            (b"content-length".to_vec(), b"1".to_vec()),
        ];
        assert!(matches!(build(s), Err(Error::InvalidArgument(_))));
        let mut s = spec("GET", "/?a");
        s.query = Some("b=1".into());
        assert!(matches!(build(s), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn connection_close_sets_reset() {
        let mut s = spec("GET", "/");
        s.headers = vec![(b"Connection".to_vec(), b"close".to_vec())];
        let r = build(s).unwrap();
        assert!(r.closes_connection());
        assert!(!head(&r).contains("Connection: close"));
        assert!(build(spec("HEAD", "/")).unwrap().closes_connection());
        let mut s = spec("HEAD", "/");
        s.reset = Some(false);
        assert!(!build(s).unwrap().closes_connection());
    }

    #[test]
    fn uri_component() {
        let mut out = String::new();
        encode_uri_component("a b&c=d/é~*", &mut out);
        assert_eq!(out, "a%20b%26c%3Dd%2F%C3%A9~*");
    }
}
