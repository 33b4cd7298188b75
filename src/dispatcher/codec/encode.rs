//! Request head encoding and the byte-level checks it relies on.
//!
//! Every byte that reaches the wire from user input passes through one of
//! the `is_*` checks below: there is no second, faster path that skips them.

use bytes::{BufMut, BytesMut};

/// RFC 9110 §5.6.2 `tchar`.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A field value: HTAB, SP..~ and obs-text; no CR, LF, NUL or other controls.
pub fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `s` without the spaces and tabs around it.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A request target: bytes 0x21..=0xFF only (no controls, no space).
pub fn is_request_target(s: &[u8]) -> bool {
    s.iter().all(|&b| b > 0x20 && b != 0x7f)
}

/// Writes `METHOD target HTTP/1.1\r\n`.
pub fn request_line(out: &mut BytesMut, method: &[u8], target: &[u8]) {
    out.reserve(method.len() + target.len() + 12);
    out.put_slice(method);
    out.put_u8(b' ');
    out.put_slice(target);
    out.put_slice(b" HTTP/1.1\r\n");
}

/// Writes `name: value\r\n`; both were validated by the caller.
pub fn header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

pub fn content_length(out: &mut BytesMut, len: u64) {
    let mut digits = itoa::Buffer::new();
    header(out, b"content-length", digits.format(len).as_bytes());
}

pub const CONNECTION_KEEP_ALIVE: &[u8] = b"connection: keep-alive\r\n";
pub const CONNECTION_CLOSE: &[u8] = b"connection: close\r\n";
pub const TRANSFER_ENCODING_CHUNKED: &[u8] = b"transfer-encoding: chunked\r\n";

/// The size line of one chunk of a chunked request body.
pub fn chunk_size_line(len: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(20);
    out.put_slice(format!("{len:x}\r\n").as_bytes());
    out
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"GET"));
        assert!(is_token(b"x-foo_bar.baz~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"GET\n"));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn field_values() {
        assert!(is_field_value(b"a b\tc"));
        assert!(is_field_value(b""));
        assert!(is_field_value(&[0x80, 0xff]));
        for bad in [&b"a\rb"[..], b"a\nb", b"a\0b", b"\x01", b"\x7f"] {
            assert!(!is_field_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn targets() {
        assert!(is_request_target(b"/a?b=c"));
        assert!(!is_request_target(b"/a b"));
        assert!(!is_request_target(b"/a\r\n"));
    }

    #[test]
    fn encodes_a_head() {
        let mut out = BytesMut::new();
        request_line(&mut out, b"GET", b"/x");
        header(&mut out, b"host", b"a:1");
        content_length(&mut out, 42);
        assert_eq!(
            &out[..],
            b"GET /x HTTP/1.1\r\nhost: a:1\r\ncontent-length: 42\r\n"
        );
        assert_eq!(&chunk_size_line(255)[..], b"ff\r\n");
    }
}
