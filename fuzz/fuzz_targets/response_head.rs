//! `parse_head` over arbitrary bytes and an arbitrary `HeadContext`.
//!
//! Input: 5 config bytes, then the wire bytes.
//! - byte 0: bit 0 HEAD request, bit 1 CONNECT, bit 2 upgrade requested,
//!   bits 3-4 choose `max_header_size`: the default 16 KiB, byte 1 (0-255),
//!   bytes 1-2 as a u16, or `usize::MAX`;
//! - bytes 3-4: the seed that cuts the wire into reads (see `Splitter`).
//!
//! Properties:
//! 1. no panic;
//! 2. whole vs. fed in reads (growing prefixes of one `BytesMut`, parsed again
//!    after each read with `parse_head_resuming` and one `Progress`, as the
//!    connection does, while the answer is `Ok(None)`): same head or same
//!    error, same bytes consumed; an `Ok(None)` leaves the buffer alone;
//! 3. only the head's bytes are taken, from the front; nothing on `Ok(None)`
//!    or on an error;
//! 4. a head longer than `max_header_size` is never accepted, and the parser
//!    never waits (`Ok(None)`) on more than `max_header_size` bytes;
//! 5. an accepted head is sane: status 100-999, version 1.0/1.1, token names,
//!    CTL-free trimmed values, and httparse (default config) reads the same
//!    head; the framing and reuse decision match a short reference written
//!    from RFC 9112 §6.3 and the documented choices (docs/choices.md).
#![no_main]

use _undipy::dispatcher::codec::{
    parse_head, parse_head_resuming, Framing, HeadContext, ParseError, Progress, ResponseHead,
};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use undipy_fuzz::{is_clean_value, is_tchar, trim_ows, Splitter};

const CONFIG: usize = 5;

fuzz_target!(|input: &[u8]| {
    if input.len() < CONFIG {
        return;
    }
    let (cfg, data) = input.split_at(CONFIG);
    let ctx = HeadContext {
        method_is_head: cfg[0] & 1 != 0,
        method_is_connect: cfg[0] & 2 != 0,
        upgrade_requested: cfg[0] & 4 != 0,
        max_header_size: match (cfg[0] >> 3) & 3 {
            0 => 16 * 1024,
            1 => usize::from(cfg[1]),
            2 => usize::from(u16::from_le_bytes([cfg[1], cfg[2]])),
            _ => usize::MAX,
        },
    };
    let limit = ctx.max_header_size.min(u32::MAX as usize);
    let seed = u16::from_le_bytes([cfg[3], cfg[4]]);

    // Whole.
    let mut buf = BytesMut::from(data);
    let whole = parse_head(&mut buf, &ctx);
    let consumed = data.len() - buf.len();
    assert_eq!(&buf[..], &data[consumed..], "not taken from the front");
    match &whole {
        Ok(Some(head)) => {
            assert_eq!(consumed, head.headers.buf.len());
            assert_eq!(&head.headers.buf[..], &data[..consumed]);
            assert!(
                consumed <= limit,
                "accepted a {consumed}-byte head over max_header_size {limit}"
            );
            check_head(head, &ctx);
        }
        Ok(None) => {
            assert_eq!(consumed, 0);
            assert!(
                data.len() <= limit,
                "waits for more with {} bytes buffered (limit {limit})",
                data.len()
            );
        }
        Err(_) => assert_eq!(consumed, 0, "bytes taken on error"),
    }

    // Fed in reads, the way the connection does it (one `Progress` carried
    // from read to read).
    let mut buf = BytesMut::new();
    let mut progress = Progress::default();
    let mut fed = 0;
    let mut split: Result<Option<ResponseHead>, ParseError> = Ok(None);
    for piece in Splitter::new(seed).pieces(data) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let before = buf.len();
        split = parse_head_resuming(&mut buf, &ctx, &mut progress);
        if split != Ok(None) {
            break;
        }
        assert_eq!(buf.len(), before, "Ok(None) changed the buffer");
        assert!(before <= limit, "waits with {before} bytes (limit {limit})");
    }
    let split_consumed = fed - buf.len();
    assert_eq!(split, whole, "split delivery differs from whole");
    assert_eq!(split_consumed, consumed, "consumed differs");
    assert_eq!(&buf[..], &data[split_consumed..fed]);
});

fn check_head(h: &ResponseHead, ctx: &HeadContext) {
    let head = &h.headers.buf[..];
    assert!((100..=999).contains(&h.status), "status {}", h.status);
    assert!(h.version_minor <= 1);
    assert!(head.ends_with(b"\r\n\r\n"));

    // The status line, read here without httparse.
    let line_start = if head.starts_with(b"\r\n") { 2 } else { 0 };
    let line_len = head[line_start..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("status line end");
    let line = &head[line_start..line_start + line_len];
    let version_ok = line.starts_with(b"HTTP/1.0 ") || line.starts_with(b"HTTP/1.1 ");
    assert!(version_ok, "status line {line:?}");
    assert_eq!(line[7] - b'0', h.version_minor);
    assert_eq!(&line[9..12], format!("{:03}", h.status).as_bytes());
    let reason: &[u8] = match line.get(12) {
        None => b"",
        Some(b' ') => &line[13..],
        Some(other) => panic!("byte {other:#x} after the status code"),
    };
    assert_eq!(&h.reason[..], reason);
    assert!(is_clean_value(reason), "CTL in reason {reason:?}");

    // Fields.
    for (name, value) in h.headers.iter() {
        assert!(
            !name.is_empty() && name.iter().all(|&b| is_tchar(b)),
            "name {name:?}"
        );
        assert!(is_clean_value(value), "CTL in value {value:?}");
        assert_eq!(trim_ows(value), value, "untrimmed value {value:?}");
    }

    // httparse, default (strict) config, reads the same head.
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    let mut slots = vec![httparse::EMPTY_HEADER; lines];
    let mut res = httparse::Response::new(&mut slots);
    match res.parse(head) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len()),
        other => panic!("httparse: {other:?}"),
    }
    assert_eq!(res.code, Some(h.status));
    assert_eq!(res.version, Some(h.version_minor));
    let theirs: Vec<(&[u8], &[u8])> = res
        .headers
        .iter()
        .map(|f| (f.name.as_bytes(), f.value))
        .collect();
    let ours: Vec<(&[u8], &[u8])> = h.headers.iter().collect();
    assert_eq!(ours, theirs, "fields differ from httparse");

    // Framing and reuse, from RFC 9112 §6.3.
    let values = |name: &[u8]| -> Vec<&[u8]> {
        h.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    };
    let cls = values(b"content-length");
    let tes = values(b"transfer-encoding");
    assert!(
        cls.len() <= 1,
        "accepted {} Content-Length lines",
        cls.len()
    );
    let cl = cls.first().map(|v| {
        let v = trim_ows(v);
        assert!(
            !v.is_empty() && v.iter().all(u8::is_ascii_digit),
            "accepted Content-Length {v:?}"
        );
        std::str::from_utf8(v)
            .unwrap()
            .parse::<u64>()
            .expect("CL fits u64")
    });
    let codings: Vec<Vec<u8>> = tes
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|c| {
            let c = trim_ows(c);
            let name = c.split(|&b| b == b';').next().unwrap();
            trim_ows(name).to_ascii_lowercase()
        })
        .collect();
    assert!(
        codings.iter().filter(|c| *c == b"chunked").count() <= 1,
        "chunked twice: {tes:?}"
    );

    // The smuggling pair, whatever the response (llhttp refuses it too).
    assert!(
        cl.is_none() || tes.is_empty(),
        "Content-Length and Transfer-Encoding accepted"
    );
    let is_2xx = (200..300).contains(&h.status);
    let upgrade = (h.status == 101 && ctx.upgrade_requested) || (ctx.method_is_connect && is_2xx);
    let framing = if upgrade {
        Framing::Empty
    } else if h.status < 200 {
        assert!(tes.is_empty(), "1xx with Transfer-Encoding accepted");
        assert!(cl.unwrap_or(0) == 0, "1xx with a body accepted");
        Framing::Empty
    } else if ctx.method_is_head || h.status == 204 || h.status == 304 {
        Framing::Empty
    } else if !tes.is_empty() {
        assert_eq!(h.version_minor, 1, "Transfer-Encoding in HTTP/1.0 accepted");
        if codings.last().map(Vec::as_slice) == Some(b"chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        cl.map_or(Framing::Close, Framing::Length)
    };
    assert_eq!(h.framing, framing, "framing");
    assert_eq!(h.upgrade, upgrade, "upgrade");

    let tokens: Vec<Vec<u8>> = values(b"connection")
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| trim_ows(t).to_ascii_lowercase())
        .collect();
    let close = tokens.iter().any(|t| t == b"close");
    let keep = tokens.iter().any(|t| t == b"keep-alive");
    let reuse = !upgrade && framing != Framing::Close && !close && (h.version_minor == 1 || keep);
    assert_eq!(h.keep_alive, reuse, "keep_alive");
}
