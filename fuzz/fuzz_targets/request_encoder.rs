//! `Request::build` (validation + head encoding) and the bytes a connection
//! writes for the built request, read back with an independent parser.
//!
//! The input (a small record format, see `parse_input`) is a `RequestSpec`:
//! method, path, query, header names and values (each either picked from a
//! list of framing-relevant ones, in a random letter case, or raw bytes), a
//! body (none, bytes, or a stream of chunks with a declared length that may
//! or may not match), the upgrade and expect options and the
//! `strict_content_length` flag.
//!
//! The bytes on the wire are assembled exactly as `Conn::start` and
//! `Conn::feed_stream` (src/dispatcher/conn.rs) do from the built request's
//! public fields: `head_start`, then `connection: close|keep-alive` unless
//! `flags.upgrade`, then `head_end`, then the body (bytes as they are; a
//! stream of unknown length chunk-encoded with `encode::chunk_size_line` and
//! `encode::LAST_CHUNK`; a stream of known length as it is).
//!
//! Properties, for every spec `build` accepts:
//! 1. httparse reads exactly one complete request: same method, the target
//!    (path plus `?query`), HTTP/1.1;
//! 2. the user's fields come back in order with the same names and values
//!    (values trimmed of spaces and tabs, as undipy sends them), except the ones
//!    the engine owns (host, content-length, connection); the engine adds
//!    exactly one host (the user's or the origin's), one connection (none for
//!    CONNECT; `upgrade` + an `upgrade:` field for upgrades), `expect` only
//!    when asked with a body, and at most one of content-length /
//!    transfer-encoding;
//! 3. the body is framed: a non-empty body always has content-length or
//!    chunked; reading it back by that framing gives the body given, and
//!    nothing is left after it.
//!
//! A rejected spec yields an `Err` and no `Request`, so no bytes exist to write.
#![no_main]

use std::sync::Arc;

use _undipy::dispatcher::codec::encode;
use _undipy::dispatcher::event::{Event, Sink, SinkRef};
use _undipy::dispatcher::request::{Body, Request, RequestSpec};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use undipy_fuzz::trim_ows;

struct NullSink;

impl Sink for NullSink {
    fn push(&self, _token: u64, _event: Event) {}
    fn flush(&self) {}
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY",
    "PROPFIND", "get", "M-SEARCH",
];
const NAMES: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "expect",
    "te",
    "trailer",
    "content-type",
    "proxy-connection",
    "x-a",
];
const VALUES: &[&[u8]] = &[
    b"",
    b"0",
    b"5",
    b"05",
    b"+5",
    b"-1",
    b"18446744073709551615",
    b"18446744073709551616",
    b"5, 5",
    b"chunked",
    b"close",
    b" close ",
    b"keep-alive",
    b"Keep-Alive",
    b"upgrade",
    b"100-continue",
    b" x ",
    b"\tx",
    b"a\r\nb",
    b"a\nb",
    b"a\rb",
    b"\x00",
    b"\x7f",
    b"\xff\x80",
    b"example.com",
    b"evil.example\r\nX: y",
];
const HOSTS: &[&[u8]] = &[b"localhost", b"example.com:8080", b"[::1]:443", b"h"];

/// What the input describes; see `parse_input` for the byte format.
#[derive(Debug, Default)]
struct Input {
    method: Option<String>,
    path: Option<String>,
    query: Option<String>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: BodyIn,
    upgrade: Option<String>,
    expect_continue: bool,
    reset: Option<bool>,
    strict: bool,
    /// The connection's own choice to close after this request.
    conn_closes: bool,
    host: u8,
}

#[derive(Debug, Default)]
enum BodyIn {
    #[default]
    Absent,
    None,
    Bytes(Vec<u8>),
    /// Chunks pushed by the caller, and the declared length: `None` unknown,
    /// `Some(None)` the true total, `Some(Some(n))` n.
    Stream(Option<Option<u64>>, Vec<Vec<u8>>),
}

fn pick<T: Copy>(list: &[T], i: u8) -> T {
    list[usize::from(i) % list.len()]
}

/// An entry of `NAMES` with the letters whose bit is set in `case` upper-cased.
fn cased_name(i: u8, case: u16) -> Vec<u8> {
    pick(NAMES, i)
        .bytes()
        .enumerate()
        .map(|(k, b)| {
            if case >> (k % 16) & 1 != 0 {
                b.to_ascii_uppercase()
            } else {
                b
            }
        })
        .collect()
}

/// The chunks a caller pushes for a streaming body, joined.
fn stream_bytes(chunks: &[Vec<u8>]) -> Vec<u8> {
    chunks.concat()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The input format (written by fuzz/seeds.py):
/// - byte 0: flags: bit 0 expect_continue, bit 1 strict_content_length,
///   bit 2 the connection closes after this request anyway, bits 3-4 `reset`
///   (0: unset, 1: false, 2-3: true);
/// - byte 1: which origin Host value (`HOSTS`);
/// - then records `tag len data[len]` (a cut-off last record is dropped):
///   `M` method, `m` method from `METHODS` (data[0]), `P` path, `Q` query,
///   `H` a header: data = name length, name, value; `h` a header from the
///   lists: data = name index, case mask (2 bytes), value index;
///   `B` body bytes (appended), `E` an explicit empty body (`Body::None`),
///   `S` one stream chunk (appended), `L` the stream's declared length (no
///   data: the true total; else a little-endian u64 of up to 8 bytes),
///   `U` upgrade, `u` upgrade from `VALUES`. Other tags are ignored.
///   Method and path default to GET and "/".
fn parse_input(data: &[u8]) -> Option<Input> {
    let (&flags, rest) = data.split_first()?;
    let (&host, mut rest) = rest.split_first()?;
    let mut input = Input {
        expect_continue: flags & 1 != 0,
        strict: flags & 2 != 0,
        conn_closes: flags & 4 != 0,
        reset: match (flags >> 3) & 3 {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        },
        host,
        ..Default::default()
    };
    let mut declared: Option<Option<u64>> = None;
    while let [tag, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(d) = tail.get(..len) else { break };
        rest = &tail[len..];
        match tag {
            b'M' => input.method = Some(text(d)),
            b'm' => input.method = Some(pick(METHODS, *d.first().unwrap_or(&0)).to_string()),
            b'P' => input.path = Some(text(d)),
            b'Q' => input.query = Some(text(d)),
            b'H' => {
                let Some((&n, nv)) = d.split_first() else {
                    continue;
                };
                let n = usize::from(n).min(nv.len());
                input.headers.push((nv[..n].to_vec(), nv[n..].to_vec()));
            }
            b'h' if d.len() >= 4 => {
                let case = u16::from_le_bytes([d[1], d[2]]);
                input
                    .headers
                    .push((cased_name(d[0], case), pick(VALUES, d[3]).to_vec()));
            }
            b'B' => match &mut input.body {
                BodyIn::Bytes(b) => b.extend_from_slice(d),
                other => *other = BodyIn::Bytes(d.to_vec()),
            },
            b'E' => input.body = BodyIn::None,
            b'S' => match &mut input.body {
                BodyIn::Stream(_, chunks) => chunks.push(d.to_vec()),
                other => *other = BodyIn::Stream(None, vec![d.to_vec()]),
            },
            b'L' => {
                let mut le = [0u8; 8];
                let n = d.len().min(8);
                le[..n].copy_from_slice(&d[..n]);
                declared = Some((n > 0).then(|| u64::from_le_bytes(le)));
            }
            b'U' => input.upgrade = Some(text(d)),
            b'u' => input.upgrade = Some(text(pick(VALUES, *d.first().unwrap_or(&0)))),
            _ => {}
        }
    }
    if let BodyIn::Stream(d, _) = &mut input.body {
        *d = declared;
    }
    Some(input)
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = parse_input(data) else {
        return;
    };
    let method = input.method.clone().unwrap_or_else(|| "GET".into());
    let path = input.path.clone().unwrap_or_else(|| "/".into());
    let headers: Vec<(Vec<u8>, Vec<u8>)> = input.headers.iter().take(48).cloned().collect();
    let upgrade = input.upgrade.clone();
    let (body, stream_chunks) = match &input.body {
        BodyIn::Absent => (None, None),
        BodyIn::None => (Some(Body::None), None),
        BodyIn::Bytes(b) => (Some(Body::Bytes(Bytes::from(b.clone()))), None),
        BodyIn::Stream(declared, chunks) => {
            let total = stream_bytes(chunks).len() as u64;
            let length = match declared {
                None => None,
                Some(None) => Some(total),
                Some(Some(n)) => Some(*n),
            };
            (Some(Body::Stream { length }), Some(chunks.clone()))
        }
    };
    let host = pick(HOSTS, input.host);
    let spec = RequestSpec {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        query: input.query.clone(),
        body,
        upgrade: upgrade.clone(),
        reset: input.reset,
        expect_continue: input.expect_continue,
        ..Default::default()
    };
    let sink = SinkRef {
        sink: Arc::new(NullSink),
        token: 1,
    };
    let Ok(mut req) = Request::build(spec, host, input.strict, sink) else {
        // Rejected: no Request exists, so nothing can be written.
        return;
    };
    req.settled = true;

    // --- the bytes the connection writes (Conn::start / feed_stream) -------
    let closes = input.conn_closes || req.closes_connection();
    let mut wire = req.head_start.to_vec();
    if !req.flags.upgrade {
        wire.extend_from_slice(if closes {
            encode::CONNECTION_CLOSE
        } else {
            encode::CONNECTION_KEEP_ALIVE
        });
    }
    wire.extend_from_slice(&req.head_end);
    let head_len = wire.len();
    // What the body should read back as; `None`: the connection would not
    // finish writing it (a stream whose length does not match).
    let mut expected_body: Option<Vec<u8>> = Some(Vec::new());
    match &req.body {
        Body::None => {}
        Body::Bytes(b) => {
            wire.extend_from_slice(b);
            expected_body = Some(b.to_vec());
        }
        Body::Stream { length } => {
            let chunks = stream_chunks.expect("stream chunks");
            let all = stream_bytes(&chunks);
            match length {
                None => {
                    for c in chunks.iter().filter(|c| !c.is_empty()) {
                        wire.extend_from_slice(&encode::chunk_size_line(c.len()));
                        wire.extend_from_slice(c);
                        wire.extend_from_slice(b"\r\n");
                    }
                    wire.extend_from_slice(encode::LAST_CHUNK);
                    expected_body = Some(all);
                }
                Some(n) if *n == all.len() as u64 => {
                    wire.extend_from_slice(&all);
                    expected_body = Some(all);
                }
                // The connection fails the request (whatever
                // strict_content_length says): only the head is checked.
                Some(_) => expected_body = None,
            }
        }
    }

    // --- read it back -------------------------------------------------------
    let mut target = path.clone();
    if let Some(q) = input.query.as_deref().filter(|q| !q.is_empty()) {
        target.push('?');
        target.push_str(q);
    }
    if target.is_empty() {
        // ("CONNECT  HTTP/1.1" is no request: the fixed finding
        // artifacts/request_encoder/connect-empty-target.)
        panic!(
            "accepted an empty request target: {:?}",
            String::from_utf8_lossy(&wire)
        );
    }
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut slots);
    let n = match parsed.parse(&wire) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "httparse: {other:?} on {:?}",
            String::from_utf8_lossy(&wire)
        ),
    };
    assert_eq!(n, head_len, "head length differs");
    assert_eq!(parsed.method, Some(method.as_str()));
    assert_eq!(parsed.path, Some(target.as_str()), "target");
    assert_eq!(parsed.version, Some(1));

    let fields: Vec<(String, &[u8])> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value))
        .collect();
    let all = |name: &str| -> Vec<&[u8]> {
        fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect()
    };

    // Fields the user gave that the engine passes through, in order.
    const OWNED: &[&str] = &["host", "content-length", "connection"];
    const ADDED: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "expect",
    ];
    let ours: Vec<(Vec<u8>, Vec<u8>)> = headers
        .iter()
        .filter(|(n, _)| !OWNED.contains(&String::from_utf8_lossy(n).to_ascii_lowercase().as_str()))
        .map(|(n, v)| (n.clone(), trim_ows(v).to_vec()))
        .collect();
    let theirs: Vec<(Vec<u8>, Vec<u8>)> = parsed
        .headers
        .iter()
        .filter(|h| !ADDED.contains(&h.name.to_ascii_lowercase().as_str()))
        .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
        .collect();
    assert_eq!(ours, theirs, "user fields differ");

    // Host: exactly one, the user's or the origin's.
    let user_host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"host"))
        .map(|(_, v)| trim_ows(v).to_vec());
    assert_eq!(
        all("host"),
        vec![user_host.as_deref().unwrap_or(host)],
        "host"
    );

    // Connection / upgrade.
    let is_connect = method == "CONNECT";
    let conn = all("connection");
    if let Some(u) = &upgrade {
        assert_eq!(conn, vec![&b"upgrade"[..]]);
        assert_eq!(all("upgrade"), vec![trim_ows(u.as_bytes())]);
    } else if is_connect {
        assert!(conn.is_empty(), "connection on CONNECT: {conn:?}");
        assert!(all("upgrade").is_empty());
    } else {
        let want: &[u8] = if closes { b"close" } else { b"keep-alive" };
        assert_eq!(conn, vec![want]);
        assert!(all("upgrade").is_empty());
    }

    // Framing.
    let cls = all("content-length");
    let tes = all("transfer-encoding");
    assert!(cls.len() + tes.len() <= 1, "framing fields {cls:?} {tes:?}");
    let has_body = !matches!(&req.body, Body::None);
    let expects = all("expect");
    if input.expect_continue && has_body {
        assert_eq!(expects, vec![&b"100-continue"[..]]);
    } else {
        assert!(expects.is_empty(), "expect without a body: {expects:?}");
    }
    let Some(body) = expected_body else { return };
    let rest = &wire[n..];
    if let Some(cl) = cls.first() {
        let cl: usize = std::str::from_utf8(cl)
            .unwrap()
            .parse()
            .expect("content-length");
        assert_eq!(rest.len(), cl, "body length differs from content-length");
        assert_eq!(rest, &body[..]);
    } else if let Some(te) = tes.first() {
        assert_eq!(*te, b"chunked");
        assert_eq!(dechunk(rest), body, "chunked body differs");
    } else {
        assert!(body.is_empty(), "body without framing");
        assert!(rest.is_empty(), "bytes after a bodiless request");
    }
});

/// Reads exactly one chunked body with httparse's chunk-size parser and
/// checks nothing follows it.
fn dechunk(mut wire: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let (skip, size) = match httparse::parse_chunk_size(wire) {
            Ok(httparse::Status::Complete(v)) => v,
            other => panic!("chunk size: {other:?} in {wire:?}"),
        };
        wire = &wire[skip..];
        if size == 0 {
            assert_eq!(wire, b"\r\n", "after the last chunk");
            return body;
        }
        let size = size as usize;
        body.extend_from_slice(&wire[..size]);
        assert_eq!(&wire[size..size + 2], b"\r\n");
        wire = &wire[size + 2..];
    }
}
