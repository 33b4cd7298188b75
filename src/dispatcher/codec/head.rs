//! Response head parsing and the framing decision (RFC 9112 §4–§6).
//!
//! httparse tokenises the status line and the fields. In front of it runs a
//! line scan that enforces what httparse is lenient about: CRLF is the only
//! line ending (a bare LF or a bare CR is an error), obs-fold is an error, and
//! at most one empty line may precede the status line. The scan also finds the
//! end of the head, so the head is only handed to httparse whole.
//!
//! Split invariance: the verdict for a prefix of the bytes is either "need
//! more" or the verdict for the whole input. To keep that true, httparse only
//! ever sees the bytes *before* the first line-rule violation (so an earlier
//! httparse error wins, a later one cannot), and a trailing CR whose LF has not
//! arrived yet is held back.
//!
//! Cost: each call scans at most `max_header_size` bytes from the start; the
//! caller calls once per read, so an endless head costs O(limit) per read and
//! fails with `HeadersOverflow` as soon as the buffer passes the limit.
//!
//! Limits: only bytes, as undici. A head or trailer section may have any number
//! of fields as long as it fits `max_header_size`; there is no field count.

use std::mem::MaybeUninit;

use bytes::BytesMut;

use super::encode::trim_ows;
use super::{Framing, ParseError, RawHeaders, Span};

/// httparse field slots on the stack: a head with more fields than this is
/// tokenised again with slots on the heap (see `with_slots`). Not a limit.
const STACK_FIELDS: usize = 128;

/// What the head parser needs to know about the request this response answers.
#[derive(Clone, Copy, Debug)]
pub struct HeadContext {
    /// The request was HEAD.
    pub method_is_head: bool,
    /// The request was CONNECT.
    pub method_is_connect: bool,
    /// The request asked for an upgrade (`upgrade=` option).
    pub upgrade_requested: bool,
    /// Limit on the head's bytes (leading empty line and final CRLF included).
    pub max_header_size: usize,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// 0 or 1 (HTTP/1.0 or HTTP/1.1).
    pub version_minor: u8,
    pub status: u16,
    /// As sent (may be empty, may hold obs-text).
    pub reason: bytes::Bytes,
    /// Zero-copy: spans into the frozen head bytes.
    pub headers: RawHeaders,
    pub framing: Framing,
    /// The connection may be reused after this response.
    pub keep_alive: bool,
    /// Seconds from `Keep-Alive: timeout=N`.
    pub keep_alive_hint: Option<u64>,
    /// The connection leaves HTTP after this head (101 to an upgrade request,
    /// or 2xx to CONNECT).
    pub upgrade: bool,
}

/// How far a head (or trailer section) arriving in pieces has been checked:
/// the complete lines before `checked` passed the line scan and httparse, so
/// the next read re-checks only from there. A head trickled byte by byte then
/// costs O(n) in its size, not O(n²). Start each head with a new one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    checked: usize,
}

/// Parse one response head from the front of `buf`.
///
/// `Ok(None)`: incomplete, call again with more bytes. On success the head's
/// bytes are split off the front of `buf`; the body bytes stay in `buf`.
pub fn parse_head(
    buf: &mut BytesMut,
    ctx: &HeadContext,
) -> Result<Option<ResponseHead>, ParseError> {
    parse_head_resuming(buf, ctx, &mut Progress::default())
}

/// `parse_head` for a head read in pieces: `progress` carries what earlier
/// calls on the same growing `buf` already checked. The verdict is the one
/// `parse_head` gives on the same bytes.
pub fn parse_head_resuming(
    buf: &mut BytesMut,
    ctx: &HeadContext,
    progress: &mut Progress,
) -> Result<Option<ResponseHead>, ParseError> {
    let limit = ctx.max_header_size.min(u32::MAX as usize);
    let window = &buf[..buf.len().min(limit)];
    // Tolerate exactly one empty line before the status line (a stray CRLF
    // after the previous body); a second one is an error.
    let start = if window.starts_with(b"\r\n") { 2 } else { 0 };
    // Once the status line is checked, only field lines follow.
    let from = progress.checked.max(start);
    let in_fields = progress.checked > 0;
    let check = |upto: usize| {
        if in_fields {
            check_fields_prefix(&window[from..upto])
        } else {
            check_head_prefix(&window[..upto])
        }
    };
    let parsed = match scan_lines(window, from, !in_fields) {
        LineScan::Incomplete(safe, line) => {
            check(safe)?;
            if buf.len() > limit {
                return Err(ParseError::HeadersOverflow);
            }
            if line > start {
                progress.checked = line;
            }
            return Ok(None);
        }
        LineScan::Bad(pos, err) => {
            check(pos)?;
            return Err(err);
        }
        LineScan::End(len) => {
            *progress = Progress::default();
            parse_complete_head(&window[..len], start)?
        }
    };
    // Decide before splitting, so that on error `buf` is left as it was.
    let fields = FieldSummary::read(window, &parsed.spans)?;
    let (framing, upgrade) = decide_framing(parsed.version, parsed.status, ctx, &fields)?;
    let head = buf.split_to(parsed.len).freeze();
    let reason = head.slice(parsed.reason.0 as usize..parsed.reason.1 as usize);
    let headers = RawHeaders {
        buf: head,
        spans: parsed.spans,
    };
    let keep_alive = !upgrade && framing != Framing::Close && fields.allows_reuse(parsed.version);
    Ok(Some(ResponseHead {
        version_minor: parsed.version,
        status: parsed.status,
        reason,
        headers,
        framing,
        keep_alive,
        keep_alive_hint: fields.keep_alive_hint,
        upgrade,
    }))
}

/// Parse a trailer section (field lines, then an empty line) from the front
/// of `buf`, under the same line and field rules as a head. `Ok(None)`:
/// incomplete. On success the section's bytes are split off `buf`.
/// `progress` as for `parse_head_resuming`.
pub(super) fn parse_trailers(
    buf: &mut BytesMut,
    max_size: usize,
    progress: &mut Progress,
) -> Result<Option<RawHeaders>, ParseError> {
    let limit = max_size.min(u32::MAX as usize);
    let window = &buf[..buf.len().min(limit)];
    let from = progress.checked;
    let (len, spans) = match scan_lines(window, from, false) {
        LineScan::Incomplete(safe, line) => {
            check_fields_prefix(&window[from..safe])?;
            if buf.len() > limit {
                return Err(ParseError::HeadersOverflow);
            }
            progress.checked = line;
            return Ok(None);
        }
        LineScan::Bad(pos, err) => {
            check_fields_prefix(&window[from..pos])?;
            return Err(err);
        }
        LineScan::End(len) => {
            *progress = Progress::default();
            (len, parse_complete_fields(&window[..len])?)
        }
    };
    Ok(Some(RawHeaders {
        buf: buf.split_to(len).freeze(),
        spans,
    }))
}

// ---------------------------------------------------------------------------
// Line scan
// ---------------------------------------------------------------------------

const BARE_LF: ParseError = ParseError::protocol("HPE_CR_EXPECTED", "LF without CR");
const BARE_CR: ParseError = ParseError::protocol("HPE_LF_EXPECTED", "CR without LF");
const OBS_FOLD: ParseError = ParseError::protocol(
    "HPE_INVALID_HEADER_TOKEN",
    "obs-fold or whitespace at start of field line",
);
const EXTRA_EMPTY_LINE: ParseError =
    ParseError::protocol("HPE_INVALID_CONSTANT", "empty line before status line");
const MALFORMED_HEAD: ParseError = ParseError::protocol("HPE_INVALID_CONSTANT", "malformed head");

/// The line structure of a field block seen so far.
#[derive(Debug, PartialEq, Eq)]
enum LineScan {
    /// No end yet. The first `safe` bytes may be shown to httparse for early
    /// errors (a trailing CR whose LF has not arrived is held back); the
    /// incomplete last line starts at `line`.
    Incomplete(usize, usize),
    /// The block ends after `n` bytes (its empty last line included).
    End(usize),
    /// The byte at `pos` breaks the line rules.
    Bad(usize, ParseError),
}

/// Walk the lines of `w` from `start`: every line ends in CRLF, no field line
/// starts with whitespace, and the first empty line ends the block. With
/// `start_line` the first line is a status line, which may not be empty.
fn scan_lines(w: &[u8], start: usize, start_line: bool) -> LineScan {
    let mut line = start;
    loop {
        let is_field_line = !(start_line && line == start);
        if is_field_line && matches!(w.get(line), Some(b' ' | b'\t')) {
            return LineScan::Bad(line, OBS_FOLD);
        }
        let Some(off) = w[line..].iter().position(|&b| b == b'\r' || b == b'\n') else {
            return LineScan::Incomplete(w.len(), line);
        };
        let eol = line + off;
        if w[eol] == b'\n' {
            return LineScan::Bad(eol, BARE_LF);
        }
        match w.get(eol + 1) {
            None => return LineScan::Incomplete(eol, line),
            Some(b'\n') => {}
            Some(_) => return LineScan::Bad(eol, BARE_CR),
        }
        if eol == line {
            return if is_field_line {
                LineScan::End(eol + 2)
            } else {
                LineScan::Bad(eol, EXTRA_EMPTY_LINE)
            };
        }
        line = eol + 2;
    }
}

// ---------------------------------------------------------------------------
// httparse
// ---------------------------------------------------------------------------

/// (name, value) ranges of a block's fields, in wire order.
type FieldSpans = Vec<(Span, Span)>;

/// What httparse found in a complete head, as offsets into it.
struct ParsedHead {
    len: usize,
    version: u8,
    status: u16,
    reason: Span,
    spans: FieldSpans,
}

/// Run an httparse call with enough field slots. Ordinary heads fit
/// `STACK_FIELDS` slots on the stack, so they allocate nothing here. Only when
/// httparse runs out of them does it run again, with one heap slot per line of
/// `bytes`: a field needs a line of its own, so that is always enough, and
/// `max_header_size` bounds `bytes` and so the slots.
fn with_slots<H: Copy, T>(
    bytes: &[u8],
    empty: H,
    mut parse: impl FnMut(&mut [H]) -> Result<T, httparse::Error>,
) -> Result<T, httparse::Error> {
    match parse(&mut [empty; STACK_FIELDS]) {
        Err(httparse::Error::TooManyHeaders) => {}
        done => return done,
    }
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    parse(&mut vec![empty; lines])
}

/// httparse over a response head: the status, version, code and (if it is
/// complete) the field spans.
fn tokenise_head(head: &[u8]) -> Result<TokenisedHead, httparse::Error> {
    with_slots(head, MaybeUninit::uninit(), |slots| {
        let mut res = httparse::Response::new(&mut []);
        let status = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, head, slots)?;
        // An incomplete prefix is only checked for errors: no spans.
        let spans = match status {
            httparse::Status::Complete(_) => field_spans(head, res.headers),
            httparse::Status::Partial => Vec::new(),
        };
        Ok(TokenisedHead {
            status,
            version: res.version,
            code: res.code,
            spans,
        })
    })
}

struct TokenisedHead {
    status: httparse::Status<usize>,
    version: Option<u8>,
    code: Option<u16>,
    spans: FieldSpans,
}

/// httparse over a trailer section: how far it got and the field spans
/// (`None`: incomplete).
fn tokenise_fields(block: &[u8]) -> Result<Option<(usize, FieldSpans)>, httparse::Error> {
    with_slots(block, httparse::EMPTY_HEADER, |slots| {
        Ok(match httparse::parse_headers(block, slots)? {
            httparse::Status::Complete((n, fields)) => Some((n, field_spans(block, fields))),
            httparse::Status::Partial => None,
        })
    })
}

/// Report an httparse error found in an incomplete head prefix.
fn check_head_prefix(prefix: &[u8]) -> Result<(), ParseError> {
    tokenise_head(prefix)
        .map(drop)
        .map_err(|e| map_httparse(e, prefix))
}

/// Report an httparse error found in an incomplete trailer prefix.
fn check_fields_prefix(prefix: &[u8]) -> Result<(), ParseError> {
    tokenise_fields(prefix)
        .map(drop)
        .map_err(|e| map_httparse(e, prefix))
}

/// Tokenise a head whose line structure `scan_lines` has already checked.
fn parse_complete_head(head: &[u8], start: usize) -> Result<ParsedHead, ParseError> {
    let t = tokenise_head(head).map_err(|e| map_httparse(e, head))?;
    if t.status != httparse::Status::Complete(head.len()) {
        return Err(MALFORMED_HEAD);
    }
    let (Some(version), Some(code)) = (t.version, t.code) else {
        return Err(MALFORMED_HEAD);
    };
    if version > 1 {
        return Err(ParseError::protocol(
            "HPE_INVALID_VERSION",
            "invalid HTTP version",
        ));
    }
    if !(100..=999).contains(&code) {
        return Err(ParseError::protocol(
            "HPE_INVALID_STATUS",
            "invalid status code",
        ));
    }
    Ok(ParsedHead {
        len: head.len(),
        version,
        status: code,
        reason: reason_span(head, start),
        spans: t.spans,
    })
}

/// Tokenise a trailer section whose line structure is already checked.
fn parse_complete_fields(block: &[u8]) -> Result<FieldSpans, ParseError> {
    match tokenise_fields(block) {
        Ok(Some((n, spans))) if n == block.len() => Ok(spans),
        Ok(_) => Err(MALFORMED_HEAD),
        Err(e) => Err(map_httparse(e, block)),
    }
}

/// The reason phrase: after "HTTP/1.x NNN " up to the status line's CRLF.
/// httparse has already checked the line's shape (exactly one SP each).
fn reason_span(head: &[u8], start: usize) -> Span {
    let line_end = start + head[start..].iter().position(|&b| b == b'\r').unwrap_or(0);
    let reason_start = (start + 13).min(line_end);
    (reason_start as u32, line_end as u32)
}

/// The (name, value) ranges of httparse's fields, as offsets into `base`.
fn field_spans(base: &[u8], fields: &[httparse::Header<'_>]) -> FieldSpans {
    let span = |part: &[u8]| -> Span {
        let from = part.as_ptr() as usize - base.as_ptr() as usize;
        (from as u32, (from + part.len()) as u32)
    };
    fields
        .iter()
        .map(|f| (span(f.name.as_bytes()), span(f.value)))
        .collect()
}

fn map_httparse(err: httparse::Error, bytes: &[u8]) -> ParseError {
    use httparse::Error as E;
    match err {
        E::HeaderName => ParseError::protocol("HPE_INVALID_HEADER_TOKEN", "invalid header name"),
        E::HeaderValue => ParseError::protocol("HPE_INVALID_HEADER_TOKEN", "invalid header value"),
        E::NewLine => BARE_CR,
        E::Status => ParseError::protocol("HPE_INVALID_STATUS", "invalid status line"),
        E::Token => ParseError::protocol("HPE_INVALID_CONSTANT", "invalid token"),
        E::Version => version_error(bytes),
        // Not reached: `with_slots` gives httparse a slot per line.
        E::TooManyHeaders => ParseError::HeadersOverflow,
    }
}

/// "HTTP/" missing altogether is a wrong protocol; after it, a wrong version.
fn version_error(bytes: &[u8]) -> ParseError {
    let line = bytes.strip_prefix(b"\r\n").unwrap_or(bytes);
    let n = line.len().min(5);
    if line[..n] == b"HTTP/"[..n] {
        ParseError::protocol("HPE_INVALID_VERSION", "invalid HTTP version")
    } else {
        ParseError::protocol("HPE_INVALID_CONSTANT", "expected HTTP/")
    }
}

// ---------------------------------------------------------------------------
// Fields that decide framing and reuse
// ---------------------------------------------------------------------------

/// The framing-relevant facts of a head, collected in one pass.
#[derive(Debug, Default)]
struct FieldSummary {
    content_length: Option<u64>,
    te_present: bool,
    te_chunked_seen: bool,
    te_last_is_chunked: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    keep_alive_hint: Option<u64>,
}

impl FieldSummary {
    fn read(head: &[u8], spans: &[(Span, Span)]) -> Result<Self, ParseError> {
        let mut s = FieldSummary::default();
        let field = |(a, b): Span| &head[a as usize..b as usize];
        for (name, value) in spans.iter().map(|&(n, v)| (field(n), field(v))) {
            if name.eq_ignore_ascii_case(b"content-length") {
                s.add_content_length(value)?;
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                s.add_transfer_encoding(value)?;
            } else if name.eq_ignore_ascii_case(b"connection") {
                s.add_connection(value);
            } else if name.eq_ignore_ascii_case(b"keep-alive") && s.keep_alive_hint.is_none() {
                s.keep_alive_hint = keep_alive_timeout(value);
            }
        }
        Ok(s)
    }

    /// One Content-Length line holding one number (1*DIGIT). A second line is
    /// refused even with the same value, and so is a list ("2, 2"), as llhttp
    /// (undici) does: framing headers get no leniency (see docs/choices.md).
    fn add_content_length(&mut self, value: &[u8]) -> Result<(), ParseError> {
        if self.content_length.is_some() {
            return Err(ParseError::protocol(
                "HPE_UNEXPECTED_CONTENT_LENGTH",
                "duplicate Content-Length",
            ));
        }
        let n = parse_decimal(trim_ows(value)).ok_or(ParseError::protocol(
            "HPE_INVALID_CONTENT_LENGTH",
            "invalid Content-Length",
        ))?;
        self.content_length = Some(n);
        Ok(())
    }

    /// Transfer codings of all TE lines, in order, as one list.
    fn add_transfer_encoding(&mut self, value: &[u8]) -> Result<(), ParseError> {
        const BAD_TE: ParseError =
            ParseError::protocol("HPE_INVALID_TRANSFER_ENCODING", "invalid Transfer-Encoding");
        self.te_present = true;
        for part in value.split(|&b| b == b',') {
            let coding = trim_ows(part);
            let (name, params) = match coding.iter().position(|&b| b == b';') {
                Some(i) => (trim_ows(&coding[..i]), Some(&coding[i..])),
                None => (coding, None),
            };
            // An empty element (",chunked") is refused rather than skipped:
            // framing headers get no leniency.
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(BAD_TE);
            }
            let chunked = name.eq_ignore_ascii_case(b"chunked");
            if chunked && (self.te_chunked_seen || params.is_some()) {
                return Err(ParseError::protocol(
                    "HPE_INVALID_TRANSFER_ENCODING",
                    "chunked appears twice",
                ));
            }
            self.te_chunked_seen |= chunked;
            self.te_last_is_chunked = chunked;
        }
        Ok(())
    }

    fn add_connection(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',').map(trim_ows) {
            self.conn_close |= token.eq_ignore_ascii_case(b"close");
            self.conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }

    /// Persistence by version and Connection tokens (RFC 9112 §9.3).
    fn allows_reuse(&self, version_minor: u8) -> bool {
        if self.conn_close {
            false
        } else {
            version_minor >= 1 || self.conn_keep_alive
        }
    }
}

/// RFC 9112 §6.3, in order. Returns the framing and whether the connection
/// leaves HTTP after this head.
fn decide_framing(
    version: u8,
    status: u16,
    ctx: &HeadContext,
    f: &FieldSummary,
) -> Result<(Framing, bool), ParseError> {
    // The smuggling pair is refused whatever the response, as llhttp does:
    // a proxy reading the same bytes may frame them differently.
    if f.te_present && f.content_length.is_some() {
        return Err(ParseError::protocol(
            "HPE_UNEXPECTED_CONTENT_LENGTH",
            "Content-Length with Transfer-Encoding",
        ));
    }
    let is_2xx = (200..300).contains(&status);
    if (status == 101 && ctx.upgrade_requested) || (ctx.method_is_connect && is_2xx) {
        return Ok((Framing::Empty, true));
    }
    if status < 200 {
        // Interim responses carry no body; a framing header claiming one is malformed.
        if f.content_length.is_some_and(|n| n != 0) {
            return Err(ParseError::protocol(
                "HPE_UNEXPECTED_CONTENT_LENGTH",
                "Content-Length in 1xx response",
            ));
        }
        if f.te_present {
            return Err(ParseError::protocol(
                "HPE_INVALID_TRANSFER_ENCODING",
                "Transfer-Encoding in 1xx response",
            ));
        }
        return Ok((Framing::Empty, false));
    }
    if ctx.method_is_head || status == 204 || status == 304 {
        return Ok((Framing::Empty, false));
    }
    if f.te_present {
        if version == 0 {
            return Err(ParseError::protocol(
                "HPE_INVALID_TRANSFER_ENCODING",
                "Transfer-Encoding in HTTP/1.0",
            ));
        }
        // "chunked" not last: the length is unknown, read until close (§6.3(4)).
        let framing = if f.te_last_is_chunked {
            Framing::Chunked
        } else {
            Framing::Close
        };
        return Ok((framing, false));
    }
    Ok((
        f.content_length.map_or(Framing::Close, Framing::Length),
        false,
    ))
}

// ---------------------------------------------------------------------------
// Small grammar helpers
// ---------------------------------------------------------------------------

/// tchar (RFC 9110 §5.6.2).
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// 1 to 19 ASCII digits (always fits a u64); anything else is `None`.
/// Leading zeros are decimal.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// `timeout=N` (or `timeout=Ns`) in a Keep-Alive value; the first such
/// parameter decides, and if it does not parse the hint is `None`.
fn keep_alive_timeout(value: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"timeout=";
    let param = value
        .split(|&b| b == b',')
        .map(trim_ows)
        .find(|p| p.len() >= KEY.len() && p[..KEY.len()].eq_ignore_ascii_case(KEY))?;
    let digits = &param[KEY.len()..];
    parse_decimal(digits.strip_suffix(b"s").unwrap_or(digits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const MAX: usize = 16 * 1024;

    fn ctx() -> HeadContext {
        HeadContext {
            method_is_head: false,
            method_is_connect: false,
            upgrade_requested: false,
            max_header_size: MAX,
        }
    }

    fn parse_once(bytes: &[u8], ctx: &HeadContext) -> Result<Option<ResponseHead>, ParseError> {
        parse_head(&mut BytesMut::from(bytes), ctx)
    }

    /// Parse `bytes` whole, and check that every prefix gives "need more" or
    /// the same verdict (split invariance of the stateless parser).
    fn parse_with(bytes: &[u8], ctx: &HeadContext) -> Result<Option<ResponseHead>, ParseError> {
        let full = parse_once(bytes, ctx);
        for cut in 0..bytes.len() {
            match parse_once(&bytes[..cut], ctx) {
                Ok(None) => {}
                other => assert_eq!(
                    other,
                    full,
                    "prefix of {cut} bytes of {:?}",
                    String::from_utf8_lossy(bytes)
                ),
            }
        }
        assert_eq!(
            parse_bytewise(bytes, ctx),
            full,
            "read byte by byte, resuming"
        );
        full
    }

    /// The bytes arriving one at a time into one buffer, parsed after each
    /// with one `Progress` (as a connection does).
    fn parse_bytewise(bytes: &[u8], ctx: &HeadContext) -> Result<Option<ResponseHead>, ParseError> {
        let mut progress = Progress::default();
        let mut buf = BytesMut::new();
        let mut verdict = Ok(None);
        for &b in bytes {
            buf.extend_from_slice(&[b]);
            verdict = parse_head_resuming(&mut buf, ctx, &mut progress);
            if verdict != Ok(None) {
                break;
            }
        }
        verdict
    }

    /// `parse_with` for big heads: checks every 97th prefix and the last 64.
    fn parse_sampled(bytes: &[u8], ctx: &HeadContext) -> Result<Option<ResponseHead>, ParseError> {
        let full = parse_once(bytes, ctx);
        let tail = bytes.len().saturating_sub(64);
        for cut in (0..tail).step_by(97).chain(tail..bytes.len()) {
            match parse_once(&bytes[..cut], ctx) {
                Ok(None) => {}
                other => assert_eq!(other, full, "prefix of {cut} bytes"),
            }
        }
        full
    }

    fn head_with(bytes: &[u8], ctx: &HeadContext) -> ResponseHead {
        parse_with(bytes, ctx)
            .expect("valid head")
            .expect("complete head")
    }

    fn head(bytes: &[u8]) -> ResponseHead {
        head_with(bytes, &ctx())
    }

    fn err_with(bytes: &[u8], ctx: &HeadContext) -> ParseError {
        match parse_with(bytes, ctx) {
            Err(e) => e,
            Ok(h) => panic!("accepted {:?}: {h:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn err(bytes: &[u8]) -> ParseError {
        err_with(bytes, &ctx())
    }

    fn code(bytes: &[u8]) -> &'static str {
        match err(bytes) {
            ParseError::Protocol { code, .. } => code,
            other => panic!("not a protocol error: {other:?}"),
        }
    }

    /// A 200 head with the given field lines (each without CRLF).
    fn with_fields(fields: &[&[u8]]) -> Vec<u8> {
        with_status(b"HTTP/1.1 200 OK", fields)
    }

    fn with_status(status_line: &[u8], fields: &[&[u8]]) -> Vec<u8> {
        let mut v = status_line.to_vec();
        v.extend_from_slice(b"\r\n");
        for f in fields {
            v.extend_from_slice(f);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"\r\n");
        v
    }

    fn framing(fields: &[&[u8]]) -> Framing {
        head(&with_fields(fields)).framing
    }

    // --- basics -----------------------------------------------------------

    #[test]
    fn parses_status_fields_and_leaves_body() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Foo:  bar baz \t\r\n\r\nhelloNEXT"[..],
        );
        let h = parse_head(&mut buf, &ctx()).unwrap().unwrap();
        assert_eq!(h.version_minor, 1);
        assert_eq!(h.status, 200);
        assert_eq!(&h.reason[..], b"OK");
        let fields: Vec<_> = h.headers.iter().collect();
        assert_eq!(
            fields,
            vec![
                (&b"Content-Length"[..], &b"5"[..]),
                (&b"X-Foo"[..], &b"bar baz"[..])
            ]
        );
        assert_eq!(h.headers.get(b"x-foo"), Some(&b"bar baz"[..]));
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert!(!h.upgrade);
        assert_eq!(h.keep_alive_hint, None);
        assert_eq!(&buf[..], b"helloNEXT");
        assert_eq!(
            &h.headers.buf[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Foo:  bar baz \t\r\n\r\n"
        );
    }

    #[test]
    fn incomplete_head_leaves_buffer_alone() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"[..]);
        assert_eq!(parse_head(&mut buf, &ctx()), Ok(None));
        assert_eq!(buf.len(), 36);
        assert_eq!(parse_head(&mut BytesMut::new(), &ctx()), Ok(None));
    }

    #[test]
    fn empty_values_and_no_fields() {
        let h = head(b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(h.version_minor, 0);
        assert!(h.headers.is_empty());
        let h = head(&with_fields(&[b"X-Empty:", b"Y:   ", b"Z: z"]));
        let fields: Vec<_> = h.headers.iter().collect();
        assert_eq!(
            fields,
            vec![
                (&b"X-Empty"[..], &b""[..]),
                (&b"Y"[..], &b""[..]),
                (&b"Z"[..], &b"z"[..])
            ]
        );
    }

    #[test]
    fn one_leading_crlf_is_tolerated_two_are_not() {
        let h = head(b"\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(h.status, 204);
        assert_eq!(&h.reason[..], b"No Content");
        assert_eq!(
            code(b"\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
            "HPE_INVALID_CONSTANT"
        );
        assert_eq!(
            code(b"\nHTTP/1.1 204 No Content\r\n\r\n"),
            "HPE_CR_EXPECTED"
        );
        assert_eq!(
            code(b"\r\rHTTP/1.1 204 No Content\r\n\r\n"),
            "HPE_LF_EXPECTED"
        );
    }

    // --- status line (rows 35-39) -----------------------------------------

    #[test]
    fn status_line_garbage_is_rejected() {
        let cases: &[(&[u8], &str)] = &[
            (b"HTP/1.1 200 OK", "HPE_INVALID_CONSTANT"),
            (b"RTSP/1.0 200 OK", "HPE_INVALID_CONSTANT"),
            (b"ICE/1.0 200 OK", "HPE_INVALID_CONSTANT"),
            (b"http/1.1 200 OK", "HPE_INVALID_CONSTANT"),
            (b"HTTP/01.1 200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/11.1 200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/1.01 200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/1.2 200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/5.6 200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/2.0 200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/2 200", "HPE_INVALID_VERSION"),
            (b"HTTP/0.9 200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/1.1\t200 OK", "HPE_INVALID_VERSION"),
            (b"HTTP/1.1", "HPE_INVALID_VERSION"),
            (b"HTTP/1.1  200 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 2000 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 20 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 20", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 2", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 -20 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 2O0 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 200\tOK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 000 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 001 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 099 OK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 200 O\x01K", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 200 O\x7fK", "HPE_INVALID_STATUS"),
            (b"HTTP/1.1 200 O\x00K", "HPE_INVALID_STATUS"),
            (b" HTTP/1.1 200 OK", "HPE_INVALID_CONSTANT"),
        ];
        for &(line, want) in cases {
            let bytes = with_fields_after(line);
            assert_eq!(code(&bytes), want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    fn with_fields_after(status_line: &[u8]) -> Vec<u8> {
        with_status(status_line, &[b"Content-Length: 0"])
    }

    #[test]
    fn http09_body_without_status_line_is_rejected() {
        assert_eq!(code(b"<html>hello</html>"), "HPE_INVALID_CONSTANT");
        // Detected before any line ends.
        assert!(parse_once(b"<ht", &ctx()).is_err());
    }

    #[test]
    fn status_codes_100_to_999_are_accepted() {
        for (line, status) in [
            (&b"HTTP/1.1 100 Continue"[..], 100),
            (b"HTTP/1.1 999 Odd", 999),
            (b"HTTP/1.0 404 Not Found", 404),
        ] {
            assert_eq!(head(&with_status(line, &[])).status, status);
        }
    }

    #[test]
    fn reason_may_be_empty_or_obs_text() {
        assert_eq!(&head(b"HTTP/1.1 200\r\n\r\n").reason[..], b"");
        assert_eq!(&head(b"HTTP/1.1 200 \r\n\r\n").reason[..], b"");
        assert_eq!(&head(b"HTTP/1.1 200  OK \r\n\r\n").reason[..], b" OK ");
        let h = head(b"HTTP/1.1 200 \xc3\xa9t\xe9 \xff\tfine\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(&h.reason[..], b"\xc3\xa9t\xe9 \xff\tfine");
        assert_eq!(h.framing, Framing::Length(0));
    }

    // --- line endings (rows 28, 29, 34) -----------------------------------

    #[test]
    fn lf_only_line_endings_are_rejected() {
        assert_eq!(
            code(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
            "HPE_CR_EXPECTED"
        );
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n"),
            "HPE_CR_EXPECTED"
        );
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n"),
            "HPE_CR_EXPECTED"
        );
        assert_eq!(code(b"HTTP/1.1 200\nX: y\r\n\r\n"), "HPE_CR_EXPECTED");
    }

    #[test]
    fn bare_cr_is_rejected_everywhere() {
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nFoo: 1\rBar: 2\r\n\r\n"),
            "HPE_LF_EXPECTED"
        );
        assert_eq!(
            code(b"HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n"),
            "HPE_LF_EXPECTED"
        );
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX"),
            "HPE_LF_EXPECTED"
        );
        assert_eq!(code(b"HTTP/1.1 200 OK\r\n\rX"), "HPE_LF_EXPECTED");
        assert_eq!(code(b"HTTP/1.1 20\r\r\n\r\n"), "HPE_LF_EXPECTED");
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nFoo\r: 1\r\n\r\n"),
            "HPE_LF_EXPECTED"
        );
        assert_eq!(code(b"HTTP/1.1 200 OK\r\r\n\r\n"), "HPE_LF_EXPECTED");
        // A CR at the very end only means "wait for the LF".
        assert_eq!(
            parse_once(b"HTTP/1.1 200 OK\r\nX: 1\r\n\r", &ctx()),
            Ok(None)
        );
    }

    // --- field names and values (rows 27, 30-33, 40) ------------------------

    #[test]
    fn field_names_must_be_tokens() {
        let bad: &[&[u8]] = &[
            b"Content-Length : 5",
            b"Content-Length\t: 5",
            b": x",
            b"NoColon",
            b"Foo Bar: x",
            b"Foo\"Bar: x",
            b"F\xc3\xa9: x",
            b"Foo\x00: x",
            b"Foo/Bar: x",
            b"Foo@: x",
        ];
        for line in bad {
            assert_eq!(
                code(&with_fields(&[line])),
                "HPE_INVALID_HEADER_TOKEN",
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let h = head(&with_fields(&[
            b"X_Under_Score: 1",
            b"!#$%&'*+-.^_`|~09az: 2",
        ]));
        assert_eq!(h.headers.len(), 2);
    }

    #[test]
    fn field_values_reject_ctls_but_keep_obs_text() {
        for ctl in (0u8..0x20)
            .filter(|&b| b != b'\t' && b != b'\r' && b != b'\n')
            .chain([0x7f])
        {
            let line = [&b"X: a"[..], &[ctl], b"b"].concat();
            assert_eq!(
                code(&with_fields(&[&line])),
                "HPE_INVALID_HEADER_TOKEN",
                "ctl {ctl:#x}"
            );
            let leading = [&b"X: "[..], &[ctl]].concat();
            assert_eq!(
                code(&with_fields(&[&leading])),
                "HPE_INVALID_HEADER_TOKEN",
                "ctl {ctl:#x}"
            );
        }
        // Long values and names too (httparse scans those with SIMD).
        for ctl in [0u8, 0x01, 0x0b, 0x1f, 0x7f, b'\r', b'\n'] {
            let mut value = [b'v'; 100];
            value[70] = ctl;
            let line = [&b"X-Long: "[..], &value].concat();
            assert!(
                matches!(err(&with_fields(&[&line])), ParseError::Protocol { .. }),
                "ctl {ctl:#x}"
            );
            let mut name = [b'n'; 100];
            name[70] = ctl;
            let line = [&name[..], b": v"].concat();
            assert!(
                matches!(err(&with_fields(&[&line])), ParseError::Protocol { .. }),
                "ctl {ctl:#x}"
            );
        }
        let h = head(&with_fields(&[
            b"X: a\tb \xff\xfe\x80 c",
            b"Y: caf\xc3\xa9",
        ]));
        assert_eq!(h.headers.get(b"x"), Some(&b"a\tb \xff\xfe\x80 c"[..]));
        assert_eq!(h.headers.get(b"y"), Some(&b"caf\xc3\xa9"[..]));
    }

    #[test]
    fn obs_fold_is_rejected() {
        for fields in [
            &[&b"X: a"[..], b" b"][..],
            &[b"X: a", b"\tb"],
            &[b"Transfer-Encoding: chunked", b" , identity"],
            &[b"Content-Length: 1", b" 0"],
            &[b" X: leading space before the first field"],
        ] {
            assert_eq!(err(&with_fields(fields)), OBS_FOLD);
        }
    }

    #[test]
    fn head_limits() {
        // The field count is no limit (undici): 128, 129 and 500 fields parse.
        let lines: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("X-{i}: {i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        for n in [128, 129] {
            assert_eq!(head(&with_fields(&refs[..n])).headers.len(), n);
        }
        let h = parse_sampled(&with_fields(&refs), &ctx()).unwrap().unwrap();
        assert_eq!(h.headers.len(), 500);
        assert_eq!(h.headers.get(b"x-499"), Some(&b"499"[..]));

        // A head of exactly the limit parses; one byte more overflows.
        let small = HeadContext {
            max_header_size: 64,
            ..ctx()
        };
        let pad = |n: usize| with_fields(&[&[b"X: ".as_slice(), &vec![b'a'; n]].concat()]);
        let base = pad(0).len();
        assert_eq!(head_with(&pad(64 - base), &small).headers.len(), 1);
        assert_eq!(
            err_with(&pad(65 - base), &small),
            ParseError::HeadersOverflow
        );
        // Incomplete and already past the limit.
        let long_status = [&b"HTTP/1.1 200 "[..], &[b'a'; 60]].concat();
        assert_eq!(
            parse_once(&long_status, &small),
            Err(ParseError::HeadersOverflow)
        );
        assert_eq!(parse_once(&long_status[..64], &small), Ok(None));
        assert_eq!(
            parse_once(
                b"HTTP/1.1 200 OK\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                &small
            ),
            Err(ParseError::HeadersOverflow)
        );
    }

    #[test]
    fn endless_header_line_overflows_fast() {
        // Rows 41/42: a 1 MiB header line fed in 1 KiB reads.
        let mut wire = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        wire.resize(1 << 20, b'a');
        let started = Instant::now();
        let mut buf = BytesMut::new();
        let mut verdict = Ok(None);
        for piece in wire.chunks(1024) {
            buf.extend_from_slice(piece);
            verdict = parse_head(&mut buf, &ctx());
            if verdict != Ok(None) {
                break;
            }
        }
        assert_eq!(verdict, Err(ParseError::HeadersOverflow));
        assert!(
            buf.len() <= MAX + 1024,
            "overflow reported late, at {} bytes",
            buf.len()
        );
        // All at once.
        assert_eq!(parse_once(&wire, &ctx()), Err(ParseError::HeadersOverflow));
        // Many small fields: only their bytes count.
        let fields = |n: usize| -> Vec<u8> {
            let many: Vec<u8> = (0..n)
                .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
                .collect();
            [&b"HTTP/1.1 200 OK\r\n"[..], &many, b"\r\n"].concat()
        };
        let big = HeadContext {
            max_header_size: 1 << 20,
            ..ctx()
        };
        let thousand = fields(1000);
        assert!(thousand.len() < MAX);
        for c in [&ctx(), &big] {
            let h = parse_once(&thousand, c).unwrap().unwrap();
            assert_eq!(h.headers.len(), 1000);
        }
        let wire = fields(5000);
        assert!(wire.len() > MAX);
        assert_eq!(parse_once(&wire, &ctx()), Err(ParseError::HeadersOverflow));
        assert_eq!(
            parse_once(&wire, &big).unwrap().unwrap().headers.len(),
            5000
        );
        // Fed in 1 KiB reads: an overflow as soon as the limit is passed, and a
        // head under a larger limit parsed once whole.
        for (c, want_fields) in [(&ctx(), None), (&big, Some(5000))] {
            let mut buf = BytesMut::new();
            let mut verdict = Ok(None);
            for piece in wire.chunks(1024) {
                buf.extend_from_slice(piece);
                verdict = parse_head(&mut buf, c);
                if verdict != Ok(None) {
                    break;
                }
            }
            match want_fields {
                None => {
                    assert_eq!(verdict, Err(ParseError::HeadersOverflow));
                    assert!(buf.len() <= MAX + 1024);
                }
                Some(n) => assert_eq!(verdict.unwrap().unwrap().headers.len(), n),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    /// A head of `n` fields (`X-000: ...`, values padded at the last field)
    /// that is exactly `total` bytes long.
    fn head_of_size(n: usize, total: usize) -> Vec<u8> {
        let lines: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("X-{i:03}: {i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let short = with_fields(&refs).len();
        let mut last = lines[n - 1].clone();
        last.resize(last.len() + total - short, b'p');
        let mut refs = refs;
        refs[n - 1] = &last;
        let wire = with_fields(&refs);
        assert_eq!(wire.len(), total);
        wire
    }

    #[test]
    fn many_fields_up_to_the_byte_limit() {
        // 500 fields filling max_header_size to the byte (and one byte less) parse,
        // the body stays in the buffer; one byte more overflows.
        for total in [MAX - 1, MAX] {
            let wire = head_of_size(500, total);
            let mut buf = BytesMut::from(&[&wire[..], b"rest"].concat()[..]);
            let h = parse_head(&mut buf, &ctx()).unwrap().unwrap();
            assert_eq!(h.headers.len(), 500);
            for (i, (name, value)) in h.headers.iter().enumerate().take(499) {
                assert_eq!(name, format!("X-{i:03}").as_bytes());
                assert_eq!(value, i.to_string().as_bytes());
            }
            assert_eq!(&buf[..], b"rest");
            assert_eq!(h.headers.buf.len(), total);
            assert_eq!(parse_sampled(&wire, &ctx()), Ok(Some(h)));
        }
        let over = head_of_size(500, MAX + 1);
        assert_eq!(
            parse_sampled(&over, &ctx()),
            Err(ParseError::HeadersOverflow)
        );
        // The densest head: 4-byte field lines up to the limit.
        let dense = [
            &b"HTTP/1.1 200 OK\r\n"[..],
            &b"a:\r\n".repeat((MAX - 19) / 4),
            b"\r\n",
        ]
        .concat();
        assert_eq!(
            parse_once(&dense, &ctx()).unwrap().unwrap().headers.len(),
            (MAX - 19) / 4
        );
    }

    #[test]
    fn errors_after_many_fields_are_found() {
        // Past the stack slots, an error is still reported, whole or still
        // incomplete (the prefix check takes the heap path too).
        let lines: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("X-{i}: {i}").into_bytes())
            .collect();
        let mut refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        refs.push(b"Bad Name: x");
        let wire = with_fields(&refs);
        let bad_name = ParseError::protocol("HPE_INVALID_HEADER_TOKEN", "invalid header name");
        assert_eq!(parse_sampled(&wire, &ctx()), Err(bad_name.clone()));
        // Without the head's end ("...Bad Name: x").
        let cut = wire.len() - 4;
        assert_eq!(parse_once(&wire[..cut], &ctx()), Err(bad_name));
        // And framing fields after them still count.
        refs.pop();
        refs.push(b"Content-Length: 2");
        refs.push(b"Content-Length: 2");
        assert_eq!(parse_once(&with_fields(&refs), &ctx()), Err(DUPLICATE_CL));
    }

    // --- framing (rows 1-12, 54-61) ---------------------------------------

    #[test]
    fn content_length_values() {
        assert_eq!(framing(&[b"Content-Length: 5"]), Framing::Length(5));
        assert_eq!(framing(&[b"content-length:\t 5 \t"]), Framing::Length(5));
        assert_eq!(framing(&[b"Content-Length: 0005"]), Framing::Length(5));
        assert_eq!(framing(&[b"Content-Length: 0"]), Framing::Length(0));
        assert_eq!(
            framing(&[b"Content-Length: 9999999999999999999"]),
            Framing::Length(9_999_999_999_999_999_999)
        );
        assert_eq!(
            framing(&[b"Content-Length: 10000000000"]),
            Framing::Length(10_000_000_000)
        );
        // Not Content-Length.
        assert_eq!(framing(&[b"Content-Length-X: 5"]), Framing::Close);
    }

    #[test]
    fn invalid_content_length_is_rejected() {
        let bad: &[&[u8]] = &[
            b"Content-Length: -1",
            b"Content-Length: +5",
            b"Content-Length: 0x5",
            b"Content-Length: 5 5",
            b"Content-Length: ",
            b"Content-Length:",
            b"Content-Length: \xd9\xa3",
            b"Content-Length: 5a",
            b"Content-Length: 5.0",
            b"Content-Length: 1_0",
            b"Content-Length: 3,",
            b"Content-Length: ,3",
            b"Content-Length: 3,,3",
            // A list is refused even when its values agree (llhttp).
            b"Content-Length: 2, 2",
            b"Content-Length: 3,3",
            b"Content-Length: 3 ,\t3",
            b"Content-Length: 3,4",
            b"Content-Length: 00000000000000000005",
            b"Content-Length: 18446744073709551615",
            b"Content-Length: 18446744073709551616",
            b"Content-Length: 100000000000000000000",
        ];
        for line in bad {
            assert_eq!(
                code(&with_fields(&[line])),
                "HPE_INVALID_CONTENT_LENGTH",
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let huge = [&b"Content-Length: "[..], &vec![b'9'; 10_000]].concat();
        assert_eq!(code(&with_fields(&[&huge])), "HPE_INVALID_CONTENT_LENGTH");
        // A second Content-Length line, whatever its value (llhttp: "Duplicate
        // Content-Length"); a bad first value is reported first.
        for fields in [
            &[&b"Content-Length: 1"[..], b"Content-Length: 2"][..],
            &[b"Content-Length: 2", b"Content-Length: 2"],
            &[b"Content-Length: 3", b"content-length: 003"],
            &[b"Content-Length: 0", b"X: y", b"CONTENT-LENGTH: 0"],
            &[b"Content-Length: 3", b"Content-Length: 3, 4"],
            &[b"Content-Length: 3", b"Content-Length: x"],
        ] {
            assert_eq!(err(&with_fields(fields)), DUPLICATE_CL, "{fields:?}");
        }
        assert_eq!(
            code(&with_fields(&[b"Content-Length: x", b"Content-Length: 3"])),
            "HPE_INVALID_CONTENT_LENGTH"
        );
        // Also where the value would not frame a body (llhttp checks while
        // reading the fields).
        let head_ctx = HeadContext {
            method_is_head: true,
            ..ctx()
        };
        let twice: &[&[u8]] = &[b"Content-Length: 2", b"Content-Length: 2"];
        assert_eq!(err_with(&with_fields(twice), &head_ctx), DUPLICATE_CL);
        for status in [
            &b"HTTP/1.1 304 Not Modified"[..],
            b"HTTP/1.1 103 Early Hints",
        ] {
            assert_eq!(err(&with_status(status, twice)), DUPLICATE_CL);
        }
        // A rejected head is not taken off the buffer.
        let wire = [&with_fields(twice)[..], b"ok"].concat();
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(parse_head(&mut buf, &ctx()), Err(DUPLICATE_CL));
        assert_eq!(&buf[..], &wire[..]);
    }

    const DUPLICATE_CL: ParseError =
        ParseError::protocol("HPE_UNEXPECTED_CONTENT_LENGTH", "duplicate Content-Length");

    #[test]
    fn transfer_encoding_chunked_last() {
        assert_eq!(framing(&[b"Transfer-Encoding: chunked"]), Framing::Chunked);
        assert_eq!(framing(&[b"transfer-encoding: ChUnKeD"]), Framing::Chunked);
        assert_eq!(
            framing(&[b"Transfer-Encoding: gzip, chunked"]),
            Framing::Chunked
        );
        assert_eq!(
            framing(&[b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"]),
            Framing::Chunked
        );
        assert_eq!(
            framing(&[b"Transfer-Encoding: gzip;q=1 ,\tchunked"]),
            Framing::Chunked
        );
        assert!(head(&with_fields(&[b"Transfer-Encoding: chunked"])).keep_alive);
    }

    #[test]
    fn transfer_encoding_without_chunked_last_reads_to_close() {
        for fields in [
            &[&b"Transfer-Encoding: chunked, deflate"[..]][..],
            &[
                b"Transfer-Encoding: chunked",
                b"Transfer-Encoding: identity",
            ],
            &[b"Transfer-Encoding: chunkedchunked"],
            &[b"Transfer-Encoding: xchunked"],
            &[b"Transfer-Encoding: gzip"],
            &[b"Transfer-Encoding: identity"],
        ] {
            let h = head(&with_fields(fields));
            assert_eq!(h.framing, Framing::Close);
            assert!(!h.keep_alive);
        }
    }

    #[test]
    fn invalid_transfer_encoding_is_rejected() {
        for fields in [
            &[&b"Transfer-Encoding: chunked, chunked"[..]][..],
            &[b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
            &[b"Transfer-Encoding: chunked, gzip, chunked"],
            &[b"Transfer-Encoding: ,chunked"],
            &[b"Transfer-Encoding: chunked,"],
            &[b"Transfer-Encoding: gzip,,chunked"],
            &[b"Transfer-Encoding: "],
            &[b"Transfer-Encoding: chunked;x=1"],
            &[b"Transfer-Encoding: chun ked"],
            &[b"Transfer-Encoding: \"chunked\""],
        ] {
            assert_eq!(
                code(&with_fields(fields)),
                "HPE_INVALID_TRANSFER_ENCODING",
                "{fields:?}"
            );
        }
    }

    #[test]
    fn content_length_with_transfer_encoding_is_rejected() {
        // Row 1, in either order and whatever the coding.
        assert_eq!(
            code(&with_fields(&[
                b"Content-Length: 5",
                b"Transfer-Encoding: chunked"
            ])),
            "HPE_UNEXPECTED_CONTENT_LENGTH"
        );
        assert_eq!(
            code(&with_fields(&[
                b"Transfer-Encoding: chunked",
                b"Content-Length: 5"
            ])),
            "HPE_UNEXPECTED_CONTENT_LENGTH"
        );
        assert_eq!(
            code(&with_fields(&[
                b"Transfer-Encoding: identity",
                b"Content-Length: 5"
            ])),
            "HPE_UNEXPECTED_CONTENT_LENGTH"
        );
        // A rejected head is not taken off the buffer.
        let wire = with_fields(&[b"Content-Length: 5", b"Transfer-Encoding: chunked"]);
        let mut buf = BytesMut::from(&wire[..]);
        assert!(parse_head(&mut buf, &ctx()).is_err());
        assert_eq!(&buf[..], &wire[..]);
    }

    #[test]
    fn transfer_encoding_in_http10_is_rejected() {
        let wire = with_status(b"HTTP/1.0 200 OK", &[b"Transfer-Encoding: chunked"]);
        assert_eq!(code(&wire), "HPE_INVALID_TRANSFER_ENCODING");
    }

    #[test]
    fn no_length_reads_to_close() {
        let h = head(&with_fields(&[b"X: y"]));
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.keep_alive);
        let h = head(&with_status(
            b"HTTP/1.0 200 OK",
            &[b"Connection: keep-alive"],
        ));
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.keep_alive);
    }

    #[test]
    fn bodiless_responses() {
        let head_ctx = HeadContext {
            method_is_head: true,
            ..ctx()
        };
        // HEAD: CL describes the GET body; none follows (row 54).
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..]);
        let h = parse_head(&mut buf, &head_ctx).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        assert_eq!(&buf[..], b"hello");
        assert_eq!(
            head_with(&with_fields(&[b"Transfer-Encoding: chunked"]), &head_ctx).framing,
            Framing::Empty
        );
        assert_eq!(
            head_with(&with_fields(&[]), &head_ctx).framing,
            Framing::Empty
        );
        // 204 / 304 with CL or TE (row 55).
        for status in [
            &b"HTTP/1.1 204 No Content"[..],
            b"HTTP/1.1 304 Not Modified",
        ] {
            for fields in [
                &[&b"Content-Length: 5"[..]][..],
                &[b"Transfer-Encoding: chunked"],
                &[],
            ] {
                let h = head(&with_status(status, fields));
                assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
            }
        }
        // Both framing headers: refused even where neither frames a body.
        let both: &[&[u8]] = &[b"Content-Length: 5", b"Transfer-Encoding: chunked"];
        let upgrade_ctx = HeadContext {
            upgrade_requested: true,
            ..ctx()
        };
        let connect_ctx = HeadContext {
            method_is_connect: true,
            ..ctx()
        };
        for (status, c) in [
            (&b"HTTP/1.1 200 OK"[..], &head_ctx),
            (b"HTTP/1.1 204 No Content", &ctx()),
            (b"HTTP/1.1 304 Not Modified", &ctx()),
            (b"HTTP/1.1 101 Switching Protocols", &upgrade_ctx),
            (b"HTTP/1.1 200 Connection established", &connect_ctx),
        ] {
            assert!(matches!(
                err_with(&with_status(status, both), c),
                ParseError::Protocol {
                    code: "HPE_UNEXPECTED_CONTENT_LENGTH",
                    ..
                }
            ));
        }
    }

    #[test]
    fn interim_responses() {
        // Row 56.
        for line in [
            &b"HTTP/1.1 100 Continue"[..],
            b"HTTP/1.1 102 Processing",
            b"HTTP/1.1 103 Early Hints",
        ] {
            let h = head(&with_status(line, &[b"Link: </style.css>; rel=preload"]));
            assert_eq!((h.framing, h.upgrade), (Framing::Empty, false));
        }
        assert_eq!(
            head(&with_status(
                b"HTTP/1.1 103 Early Hints",
                &[b"Content-Length: 0"]
            ))
            .framing,
            Framing::Empty
        );
        // Row 58: a 1xx claiming a body.
        assert_eq!(
            code(&with_status(
                b"HTTP/1.1 103 Early Hints",
                &[b"Content-Length: 5"]
            )),
            "HPE_UNEXPECTED_CONTENT_LENGTH"
        );
        assert_eq!(
            code(&with_status(
                b"HTTP/1.1 100 Continue",
                &[b"Transfer-Encoding: chunked"]
            )),
            "HPE_INVALID_TRANSFER_ENCODING"
        );
        // 101 without an upgrade request is just an interim response here;
        // the caller turns it into 'bad upgrade'.
        let h = head(&with_status(
            b"HTTP/1.1 101 Switching Protocols",
            &[b"Upgrade: websocket"],
        ));
        assert_eq!((h.framing, h.upgrade), (Framing::Empty, false));
    }

    #[test]
    fn upgrades_and_connect() {
        let up = HeadContext {
            upgrade_requested: true,
            ..ctx()
        };
        let h = head_with(
            &with_status(
                b"HTTP/1.1 101 Switching Protocols",
                &[b"Upgrade: websocket", b"Content-Length: 5"],
            ),
            &up,
        );
        assert_eq!(
            (h.framing, h.upgrade, h.keep_alive),
            (Framing::Empty, true, false)
        );
        // 200 with an Upgrade header is ordinary (row 60).
        let h = head_with(
            &with_fields(&[b"Upgrade: websocket", b"Content-Length: 2"]),
            &up,
        );
        assert_eq!((h.framing, h.upgrade), (Framing::Length(2), false));
        // CONNECT 2xx is a tunnel whatever the framing headers say (row 61).
        let connect = HeadContext {
            method_is_connect: true,
            ..ctx()
        };
        let h = head_with(&with_fields(&[b"Content-Length: 10"]), &connect);
        assert_eq!(
            (h.framing, h.upgrade, h.keep_alive),
            (Framing::Empty, true, false)
        );
        let h = head_with(
            &with_status(b"HTTP/1.1 407 Proxy Auth", &[b"Content-Length: 5"]),
            &connect,
        );
        assert_eq!((h.framing, h.upgrade), (Framing::Length(5), false));
    }

    // --- persistence ------------------------------------------------------

    #[test]
    fn keep_alive_rules() {
        let ka = |status: &[u8], fields: &[&[u8]]| head(&with_status(status, fields)).keep_alive;
        let v11 = b"HTTP/1.1 200 OK";
        let v10 = b"HTTP/1.0 200 OK";
        assert!(ka(v11, &[b"Content-Length: 0"]));
        assert!(!ka(v11, &[b"Content-Length: 0", b"Connection: close"]));
        assert!(!ka(
            v11,
            &[b"Content-Length: 0", b"Connection: Upgrade, CLOSE"]
        ));
        assert!(!ka(
            v11,
            &[
                b"Content-Length: 0",
                b"Connection: upgrade",
                b"Connection: close"
            ]
        ));
        assert!(ka(
            v11,
            &[b"Content-Length: 0", b"Connection: closed, x-close"]
        ));
        assert!(!ka(v10, &[b"Content-Length: 0"]));
        assert!(ka(v10, &[b"Content-Length: 0", b"Connection: Keep-Alive"]));
        assert!(ka(
            v10,
            &[
                b"Content-Length: 0",
                b"Connection: foo",
                b"Connection: bar ,keep-alive"
            ]
        ));
        assert!(!ka(
            v10,
            &[b"Content-Length: 0", b"Connection: keep-alive, close"]
        ));
        assert!(ka(b"HTTP/1.0 204 No Content", &[b"Connection: keep-alive"]));
    }

    #[test]
    fn keep_alive_hint() {
        let hint = |v: &[u8]| {
            head(&with_fields(&[
                b"Content-Length: 0",
                &[&b"Keep-Alive: "[..], v].concat(),
            ]))
            .keep_alive_hint
        };
        assert_eq!(hint(b"timeout=5"), Some(5));
        assert_eq!(hint(b"timeout=2s"), Some(2));
        assert_eq!(hint(b"TimeOut=7, max=100"), Some(7));
        assert_eq!(hint(b"max=100, timeout=30"), Some(30));
        assert_eq!(hint(b"timeout=abc"), None);
        assert_eq!(hint(b"timeout="), None);
        assert_eq!(hint(b"timeout=-1"), None);
        assert_eq!(hint(b"timeout=5ms"), None);
        assert_eq!(hint(b"timeout = 5"), None);
        assert_eq!(hint(b"max=5"), None);
        assert_eq!(hint(b"timeout=99999999999999999999"), None);
        assert_eq!(
            head(&with_fields(&[b"Content-Length: 0"])).keep_alive_hint,
            None
        );
    }

    // --- trailers share the field rules -----------------------------------

    #[test]
    fn trailer_sections() {
        let mut buf = BytesMut::from(&b"A: 1\r\nb:2 \r\n\r\nrest"[..]);
        let t = parse_trailers(&mut buf, 1024, &mut Progress::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![(&b"A"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]
        );
        assert_eq!(&buf[..], b"rest");
        let mut buf = BytesMut::from(&b"\r\nrest"[..]);
        assert!(parse_trailers(&mut buf, 1024, &mut Progress::default())
            .unwrap()
            .unwrap()
            .is_empty());
        assert_eq!(&buf[..], b"rest");
        let mut partial = BytesMut::from(&b"A: 1\r\n"[..]);
        assert_eq!(
            parse_trailers(&mut partial, 1024, &mut Progress::default()),
            Ok(None)
        );
        for bad in [
            &b"A: 1\n\r\n"[..],
            b"A: 1\r\n\n",
            b"A\r\n\r\n",
            b" A: 1\r\n\r\n",
            b"A: 1\r\n b\r\n\r\n",
            b"A: \x00\r\n\r\n",
            b"A: 1\rB: 2\r\n\r\n",
            b"\rX",
        ] {
            assert!(
                parse_trailers(&mut BytesMut::from(bad), 1024, &mut Progress::default()).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_trailers(
                &mut BytesMut::from(&b"A: 1\r\nB: 2\r\n"[..]),
                8,
                &mut Progress::default()
            ),
            Err(ParseError::HeadersOverflow)
        );
    }

    // --- line scan unit ---------------------------------------------------

    #[test]
    fn scan_lines_verdicts() {
        assert_eq!(
            scan_lines(b"S\r\nA: b\r\n\r\nbody", 0, true),
            LineScan::End(11)
        );
        assert_eq!(
            scan_lines(b"S\r\nA: b\r", 0, true),
            LineScan::Incomplete(7, 3)
        );
        assert_eq!(
            scan_lines(b"S\r\nA: b", 0, true),
            LineScan::Incomplete(7, 3)
        );
        assert_eq!(
            scan_lines(b"S\r\nA: b\n", 0, true),
            LineScan::Bad(7, BARE_LF)
        );
        assert_eq!(
            scan_lines(b"S\r\nA: b\rc", 0, true),
            LineScan::Bad(7, BARE_CR)
        );
        assert_eq!(scan_lines(b"S\r\n b", 0, true), LineScan::Bad(3, OBS_FOLD));
        assert_eq!(
            scan_lines(b"\r\n", 0, true),
            LineScan::Bad(0, EXTRA_EMPTY_LINE)
        );
        assert_eq!(scan_lines(b"\r\n", 0, false), LineScan::End(2));
    }
}
