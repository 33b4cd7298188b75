//! A tiny HTTP/1.1 keep-alive server for `undipy bench`, the self-contained
//! demo used when nginx is not wanted. Pure Rust + tokio, no PyO3.
//!
//! Routes (anything else answers 404):
//!
//! * `GET /small` — 200, 13-byte body `Hello, World!`
//! * `GET /1m`    — 200, 1 MiB body (one shared static buffer)
//! * `POST /echo` — reads and discards the request body (`Content-Length` or
//!   chunked), then 200 with body `ok`
//!
//! Every complete request found in the read buffer is answered before the
//! next read, and the answers are batched into one write, so pipelined
//! requests cost one syscall per batch. Request bodies are never buffered:
//! they are skipped as they stream in, whatever their size.

use std::io::{self, IoSlice};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Size of the `/1m` body.
pub const BIG_BODY_LEN: usize = 1 << 20;

/// Read buffer size per connection; a request head must fit in it.
const READ_BUF: usize = 64 * 1024;
/// Longest chunk-size or trailer line accepted in a chunked request body.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_HEADERS: usize = 64;

const HEAD_SMALL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n";
const BODY_SMALL: &[u8] = b"Hello, World!";
const HEAD_BIG: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n";
const HEAD_ECHO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n";
const BODY_ECHO: &[u8] = b"ok";
const HEAD_NOT_FOUND: &[u8] =
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n";
const BODY_NOT_FOUND: &[u8] = b"Not Found";
const RESP_CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const RESP_BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const RESP_TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

fn big_body() -> &'static [u8] {
    static BIG: OnceLock<Box<[u8]>> = OnceLock::new();
    BIG.get_or_init(|| vec![b'x'; BIG_BODY_LEN].into_boxed_slice())
}

/// Runs the server on `listener` forever, on a tokio current-thread runtime
/// in the calling thread. Returns only if the runtime cannot be set up.
pub fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let _ = handle_connection(stream).await;
                    });
                }
                // Out of file descriptors, a connection reset before accept,
                // ...: none of them should stop the server.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Small,
    Big,
    Echo,
    NotFound,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Chunk {
    /// Waiting for a `size[;ext]\r\n` line.
    Size,
    /// Inside chunk data; this many bytes left.
    Data(u64),
    /// The CRLF that closes a chunk's data.
    DataEnd,
    /// Trailer lines, up to an empty line.
    Trailers,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Head,
    /// Skipping a `Content-Length` body; this many bytes left.
    Length(u64),
    Chunked(Chunk),
}

/// What the parser wants done after a pass over the buffer.
enum Verdict {
    /// Need more bytes.
    More,
    /// Answer what is queued, then close the connection.
    Close,
}

struct Conn {
    state: State,
    /// Route of the request whose body is being read.
    route: Route,
    close_after: bool,
    /// Responses queued for the next write; a `/1m` body is not copied in,
    /// `big_at` records where it goes instead.
    out: Vec<u8>,
    /// Offsets in `out` after which one 1 MiB body is to be written.
    big_at: Vec<usize>,
}

impl Conn {
    fn new() -> Self {
        Conn {
            state: State::Head,
            route: Route::NotFound,
            close_after: false,
            out: Vec::with_capacity(4096),
            big_at: Vec::new(),
        }
    }

    fn respond(&mut self, route: Route, close: bool) {
        let (head, body): (&[u8], &[u8]) = match route {
            Route::Small => (HEAD_SMALL, BODY_SMALL),
            Route::Big => (HEAD_BIG, &[]),
            Route::Echo => (HEAD_ECHO, BODY_ECHO),
            Route::NotFound => (HEAD_NOT_FOUND, BODY_NOT_FOUND),
        };
        self.out.extend_from_slice(head);
        if close {
            self.out.extend_from_slice(b"Connection: close\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        if route == Route::Big {
            self.big_at.push(self.out.len());
        }
    }

    /// Consumes every complete request (and body bytes) in `buf`; returns
    /// how many bytes were consumed and what to do next.
    fn process(&mut self, buf: &[u8]) -> (usize, Verdict) {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.state {
                State::Head => {
                    if rest.is_empty() {
                        return (pos, Verdict::More);
                    }
                    match self.parse_head(rest) {
                        Ok(Some(n)) => {
                            pos += n;
                            if self.state == State::Head && self.close_after {
                                return (pos, Verdict::Close);
                            }
                        }
                        Ok(None) => return (pos, Verdict::More),
                        Err(resp) => {
                            self.out.extend_from_slice(resp);
                            return (pos, Verdict::Close);
                        }
                    }
                }
                State::Length(left) => {
                    let n = left.min(rest.len() as u64);
                    pos += n as usize;
                    if n == left {
                        self.finish_request();
                        if self.close_after {
                            return (pos, Verdict::Close);
                        }
                    } else {
                        self.state = State::Length(left - n);
                        return (pos, Verdict::More);
                    }
                }
                State::Chunked(chunk) => match self.step_chunked(chunk, rest) {
                    Ok(Some(n)) => {
                        pos += n;
                        if self.state == State::Head && self.close_after {
                            return (pos, Verdict::Close);
                        }
                    }
                    Ok(None) => return (pos, Verdict::More),
                    Err(()) => {
                        self.out.extend_from_slice(RESP_BAD_REQUEST);
                        return (pos, Verdict::Close);
                    }
                },
            }
        }
    }

    /// Parses one request head. `Ok(None)`: incomplete. On success the
    /// state is set for the body (or the response is queued right away).
    fn parse_head(&mut self, rest: &[u8]) -> Result<Option<usize>, &'static [u8]> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(RESP_TOO_LARGE),
            Err(_) => return Err(RESP_BAD_REQUEST),
        };
        let method = req.method.unwrap_or("");
        let path = req.path.unwrap_or("");
        let http10 = req.version == Some(0);

        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut conn_close = http10;
        let mut expect_continue = false;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value).map_err(|_| RESP_BAD_REQUEST)?;
                let v: u64 = v.trim().parse().map_err(|_| RESP_BAD_REQUEST)?;
                if content_length.is_some_and(|old| old != v) {
                    return Err(RESP_BAD_REQUEST);
                }
                content_length = Some(v);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Only `chunked` as the final coding is understood.
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
                if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    return Err(RESP_BAD_REQUEST);
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        conn_close = false;
                    }
                }
            } else if name.eq_ignore_ascii_case("expect") {
                expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
        }
        if chunked && content_length.is_some() {
            // RFC 9112 6.1: a request smuggling vector; refuse it.
            return Err(RESP_BAD_REQUEST);
        }
        let path_only = path.split('?').next().unwrap_or("");
        self.route = match (method, path_only) {
            ("GET", "/small") => Route::Small,
            ("GET", "/1m") => Route::Big,
            ("POST", "/echo") => Route::Echo,
            _ => Route::NotFound,
        };
        self.close_after = conn_close;
        let has_body = chunked || content_length.is_some_and(|l| l > 0);
        if has_body && expect_continue && !http10 {
            self.out.extend_from_slice(RESP_CONTINUE);
        }
        self.state = if chunked {
            State::Chunked(Chunk::Size)
        } else {
            match content_length {
                Some(l) if l > 0 => State::Length(l),
                _ => {
                    self.finish_request();
                    State::Head
                }
            }
        };
        Ok(Some(n))
    }

    fn finish_request(&mut self) {
        self.state = State::Head;
        self.respond(self.route, self.close_after);
    }

    /// One step of the chunked-body decoder. `Ok(None)`: need more bytes.
    fn step_chunked(&mut self, chunk: Chunk, rest: &[u8]) -> Result<Option<usize>, ()> {
        match chunk {
            Chunk::Size => {
                let Some(eol) = find_crlf(rest) else {
                    return if rest.len() > MAX_CHUNK_LINE {
                        Err(())
                    } else {
                        Ok(None)
                    };
                };
                let line = &rest[..eol];
                let digits = line
                    .split(|&b| b == b';')
                    .next()
                    .unwrap_or(b"")
                    .trim_ascii();
                if digits.is_empty() || digits.len() > 15 {
                    return Err(());
                }
                let mut size: u64 = 0;
                for &d in digits {
                    let v = (d as char).to_digit(16).ok_or(())?;
                    size = size * 16 + u64::from(v);
                }
                self.state = State::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
                Ok(Some(eol + 2))
            }
            Chunk::Data(left) => {
                if rest.is_empty() {
                    return Ok(None);
                }
                let n = left.min(rest.len() as u64);
                self.state = State::Chunked(if n == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - n)
                });
                Ok(Some(n as usize))
            }
            Chunk::DataEnd => {
                if rest.len() < 2 {
                    return Ok(None);
                }
                if &rest[..2] != b"\r\n" {
                    return Err(());
                }
                self.state = State::Chunked(Chunk::Size);
                Ok(Some(2))
            }
            Chunk::Trailers => {
                let Some(eol) = find_crlf(rest) else {
                    return if rest.len() > MAX_CHUNK_LINE {
                        Err(())
                    } else {
                        Ok(None)
                    };
                };
                if eol == 0 {
                    self.finish_request();
                }
                Ok(Some(eol + 2))
            }
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Writes `a` then `b` with as few syscalls as possible.
async fn write_two(stream: &mut TcpStream, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n >= a.len() {
            b = &b[n - a.len()..];
            a = &[];
        } else {
            a = &a[n..];
        }
    }
    stream.write_all(b).await
}

async fn flush(stream: &mut TcpStream, conn: &mut Conn) -> io::Result<()> {
    let mut from = 0;
    for &at in &conn.big_at {
        write_two(stream, &conn.out[from..at], big_body()).await?;
        from = at;
    }
    if from < conn.out.len() {
        stream.write_all(&conn.out[from..]).await?;
    }
    conn.out.clear();
    conn.big_at.clear();
    Ok(())
}

async fn handle_connection(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0;
    let mut conn = Conn::new();
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let (used, verdict) = conn.process(&buf[..filled]);
        buf.copy_within(used..filled, 0);
        filled -= used;
        flush(&mut stream, &mut conn).await?;
        match verdict {
            Verdict::Close => {
                let _ = stream.shutdown().await;
                return Ok(());
            }
            Verdict::More if filled == buf.len() => {
                // A request head larger than the whole buffer.
                stream.write_all(RESP_TOO_LARGE).await?;
                let _ = stream.shutdown().await;
                return Ok(());
            }
            Verdict::More => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    fn start() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener));
        addr
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Reads one response (head + Content-Length body) from `s`, keeping any
    /// extra bytes in `pending`. Returns (status, lower-cased head, body).
    fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>) -> (u16, String, Vec<u8>) {
        let mut tmp = [0u8; 65536];
        let head_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut tmp).unwrap();
            assert!(n > 0, "EOF before a response head");
            pending.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8(pending[..head_end].to_vec())
            .unwrap()
            .to_ascii_lowercase();
        pending.drain(..head_end);
        let status: u16 = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while pending.len() < len {
            let n = s.read(&mut tmp).unwrap();
            assert!(n > 0, "EOF inside a response body");
            pending.extend_from_slice(&tmp[..n]);
        }
        let body: Vec<u8> = pending.drain(..len).collect();
        (status, head, body)
    }

    #[test]
    fn keep_alive_routes() {
        let addr = start();
        let mut s = connect(addr);
        let mut pending = Vec::new();
        for _ in 0..3 {
            s.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let (status, _, body) = read_response(&mut s, &mut pending);
            assert_eq!(status, 200);
            assert_eq!(body, b"Hello, World!");
        }
        s.write_all(b"GET /1m HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut s, &mut pending);
        assert_eq!(status, 200);
        assert_eq!(body.len(), BIG_BODY_LEN);
        s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut pending).0, 404);
        s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut pending).0, 404);
        // Still the same connection.
        s.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut pending).2, b"Hello, World!");
        assert!(pending.is_empty());
    }

    #[test]
    fn pipelined_requests_with_bodies() {
        let addr = start();
        let mut s = connect(addr);
        let body = vec![b'a'; 70_000];
        let mut batch = Vec::new();
        batch.extend_from_slice(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
        batch.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n");
        batch.extend_from_slice(&body);
        batch.extend_from_slice(b"GET /1m HTTP/1.1\r\nHost: x\r\n\r\n");
        batch.extend_from_slice(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        batch.extend_from_slice(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(&batch).unwrap();
        let mut pending = Vec::new();
        let r1 = read_response(&mut s, &mut pending);
        assert_eq!((r1.0, r1.2.as_slice()), (200, &b"Hello, World!"[..]));
        let r2 = read_response(&mut s, &mut pending);
        assert_eq!((r2.0, r2.2.as_slice()), (200, &b"ok"[..]));
        let r3 = read_response(&mut s, &mut pending);
        assert_eq!((r3.0, r3.2.len()), (200, BIG_BODY_LEN));
        assert_eq!(read_response(&mut s, &mut pending).0, 404);
        let r5 = read_response(&mut s, &mut pending);
        assert_eq!((r5.0, r5.2.as_slice()), (200, &b"Hello, World!"[..]));
        assert!(pending.is_empty());
    }

    #[test]
    fn chunked_body_in_pieces_then_close() {
        let addr = start();
        let mut s = connect(addr);
        s.set_nodelay(true).unwrap();
        let pieces: [&[u8]; 6] = [
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n",
            b"Expect: 100-continue\r\n\r\n",
            b"5;ext=1\r\nhel",
            b"lo\r\n1",
            b"0\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n",
            b"\r\nGET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ];
        let mut pending = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            s.write_all(p).unwrap();
            if i == 1 {
                let (status, _, _) = read_response(&mut s, &mut pending);
                assert_eq!(status, 100);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (status, _, body) = read_response(&mut s, &mut pending);
        assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
        let (status, head, body) = read_response(&mut s, &mut pending);
        assert_eq!((status, body.as_slice()), (200, &b"Hello, World!"[..]));
        assert!(head.contains("connection: close"));
        // The server closes after a `Connection: close` request.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty() && pending.is_empty());
    }
}
