//! One connection: writes the requests its scheduler slot hands it, in order,
//! and matches responses to them first in, first out (HTTP/1.1 pipelining).
//!
//! Everything here runs on the runtime thread. A batch of reads is parsed
//! whole before any consumer is woken, and queued request bytes go out in
//! one vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::codec::{
    encode, parse_head_resuming, BodyDecoder, Decoded, Framing, HeadContext, Progress, RawHeaders,
};
use super::error::Error;
use super::event::{Dirty, Event, Head, OBSERVE_CONNECTIONS};
use super::pool::{fail_all, Pool};
use super::request::{Body, Request};
use super::transport::{Idle, Transport};

/// Bytes asked of the kernel per read, and the most when a long body is
/// known to follow (fewer reads and fewer events for big downloads).
const READ_SIZE: usize = 64 * 1024;
const MAX_READ_SIZE: usize = 1024 * 1024;
/// Slices handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Connects, then drives the connection until it ends.
pub(crate) async fn run(pool: Arc<Pool>, id: u64, notify: Arc<Notify>) {
    let io = match connect_unless_destroyed(&pool, &notify).await {
        Ok(io) => io,
        Err(err) => return connect_failed(&pool, id, err),
    };
    {
        let mut st = pool.lock();
        if let Some(slot) = st.slot(id) {
            slot.connected = true;
        }
        let observed = OBSERVE_CONNECTIONS.load(Ordering::Relaxed);
        pool.emit(&st, Event::Connected(observed.then(|| Box::new(io.info()))));
    }
    let mut conn = Conn {
        pool,
        id,
        notify,
        io,
        rbuf: BytesMut::with_capacity(READ_SIZE),
        spare: None,
        wq: VecDeque::new(),
        queued: 0,
        written: 0,
        running: VecDeque::new(),
        reset: false,
        keep_alive: Duration::ZERO,
        written_requests: 0,
        completed: 0,
        upgraded: None,
        head_scan: Progress::default(),
        timer: None,
        dirty: Dirty::default(),
    };
    conn.keep_alive = conn.pool.cfg.keep_alive_timeout;
    let err = conn.drive().await;
    conn.finish(err);
}

/// Connects, giving up early if the dispatcher is destroyed meanwhile.
async fn connect_unless_destroyed(pool: &Pool, notify: &Notify) -> Result<Transport, Error> {
    let attempt = Transport::open(&pool.cfg);
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            r = &mut attempt => return r,
            () = notify.notified() => {
                if let Some(e) = pool.lock().destroyed.clone() {
                    return Err(e);
                }
            }
        }
    }
}

/// A connect error fails every request waiting for this dispatcher.
fn connect_failed(pool: &Arc<Pool>, id: u64, err: Error) {
    let mut st = pool.lock();
    let mut failed: Vec<Request> = Vec::new();
    if let Some(slot) = st.slot(id) {
        failed.extend(slot.queue.drain(..));
    }
    failed.extend(st.pending.drain(..));
    st.conns.retain(|c| c.id != id);
    if st.destroyed.is_none() {
        pool.emit(&st, Event::ConnectionError(err.clone()));
    }
    fail_all(failed, &err);
    pool.maybe_drain(&mut st);
    pool.maybe_closed(&mut st);
}

/// A request whose bytes were queued for writing.
struct Running {
    req: Request,
    /// Offsets in the connection's output at which this request's bytes
    /// begin and end.
    start: u64,
    end: u64,
    sent: bool,
    /// Streaming body: how many bytes were queued, and whether a pull is out.
    stream: Option<Stream>,
    /// `expect: 100-continue`: the body waits for a 100 (or a short timer).
    awaiting_continue: bool,
    /// Bytes of 1xx heads received so far.
    info_bytes: usize,
    /// Written on a kept-alive connection that was idle (the race window).
    reused_idle: bool,
    response: Response,
}

/// How long a request with `expect: 100-continue` waits for the 100 before
/// sending its body anyway (RFC 9110 §10.1.1 lets a client stop waiting).
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

struct Stream {
    chunked: bool,
    declared: Option<u64>,
    queued: u64,
    pulling: bool,
    ended: bool,
}

/// How far a running request got. The teardown decides from this alone
/// what may be sent again on a new connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Queued for the socket; not one byte of it was written.
    Unwritten,
    /// Some or all of it was written; not one byte of an answer arrived.
    Written,
    /// An answer began (a 1xx or the final head).
    Answered,
}

impl Running {
    fn phase(&self, written: u64) -> Phase {
        if self.info_bytes > 0 || !matches!(self.response, Response::Head) {
            Phase::Answered
        } else if written > self.start {
            Phase::Written
        } else {
            Phase::Unwritten
        }
    }

    /// undici's rule: a request that was answered is never sent again, nor
    /// one that was written and is not idempotent, nor one whose streamed
    /// body was consumed. Anything else never reached the server's
    /// application as far as anyone can tell, and may go again.
    fn may_resend(&self, written: u64) -> bool {
        let replayable = self.stream.is_none();
        match self.phase(written) {
            Phase::Unwritten => replayable,
            Phase::Written => replayable && self.req.flags.idempotent,
            Phase::Answered => false,
        }
    }
}

enum Response {
    Head,
    Body {
        decoder: BodyDecoder,
        /// Not yet delivered: held back so a small response goes out as one event.
        head: Option<Head>,
        parts: Vec<Bytes>,
        received: u64,
        keep_alive: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timer {
    Headers,
    Body,
    Idle,
    Continue,
}

struct Conn {
    pool: Arc<Pool>,
    id: u64,
    notify: Arc<Notify>,
    io: Transport,
    rbuf: BytesMut,
    spare: Option<BytesMut>,
    wq: VecDeque<Bytes>,
    /// Bytes ever queued / written on this connection.
    queued: u64,
    written: u64,
    running: VecDeque<Running>,
    /// Close once the running responses are complete; take nothing new.
    reset: bool,
    keep_alive: Duration,
    written_requests: u64,
    /// Responses completed on this connection (a reused one has some).
    completed: u64,
    /// The head request was answered with a protocol switch: the socket
    /// goes to it when the connection ends.
    upgraded: Option<Head>,
    /// How far the response head being received has been checked.
    head_scan: Progress,
    timer: Option<(Instant, Timer)>,
    dirty: Dirty,
}

impl Conn {
    async fn drive(&mut self) -> Error {
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            if let Err(e) = self.step() {
                return e;
            }
            let want = self.timer.map(|t| t.0);
            if want != armed {
                sleep.as_mut().reset(want.unwrap_or(far));
                armed = want;
            }
            self.dirty.flush();
            let can_read = !self.read_paused();
            let can_write = !self.wq.is_empty() || self.io.pending_output();
            tokio::select! {
                r = self.io.readable(), if can_read => {
                    if let Err(e) = r.map_err(Error::from).and_then(|()| self.read()) {
                        return e;
                    }
                }
                r = self.io.writable(), if can_write => {
                    if let Err(e) = r.map_err(Error::from).and_then(|()| self.write()) {
                        return e;
                    }
                }
                () = self.notify.notified() => {}
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    if let Err(e) = self.on_timer() {
                        return e;
                    }
                }
            }
        }
    }

    /// Takes new work from the scheduler and writes what it can.
    fn step(&mut self) -> Result<(), Error> {
        if self.running.iter().any(|r| r.req.ctl.is_aborted()) {
            // Its answer is (or will be) on the wire: only a new socket is
            // safe. Close it now if that loses nothing (whatever else runs
            // here may be re-sent); otherwise once the requests ahead of it
            // are answered (it blocks the connection meanwhile).
            let written = self.written;
            let lossless = self
                .running
                .iter()
                .all(|r| r.req.ctl.is_aborted() || r.may_resend(written));
            if lossless || self.running[0].req.ctl.is_aborted() {
                return Err(Error::Informational("aborted"));
            }
        }
        if self.timer.is_none()
            && self
                .running
                .front()
                .is_some_and(|r| matches!(r.response, Response::Body { .. }))
            && !self.read_paused()
        {
            // The body timer lapsed while the consumer paused: it counts
            // again from the resume.
            self.arm_body_timer();
        }
        loop {
            self.take_work()?;
            let blocked = self.blocked();
            self.pump()?;
            if !blocked || self.blocked() {
                return Ok(());
            }
            // A streamed body just ended: requests queued behind it may go now.
        }
    }

    /// Feeds a streaming body and writes until the socket is full or the body
    /// has nothing ready: it asks for its next chunk once the socket took the
    /// previous ones.
    fn pump(&mut self) -> Result<(), Error> {
        loop {
            self.feed_stream()?;
            if self.wq.is_empty() {
                return Ok(());
            }
            self.write()?;
            if !self.wq.is_empty() {
                return Ok(());
            }
        }
    }

    fn take_work(&mut self) -> Result<(), Error> {
        let pool = self.pool.clone();
        let mut st = pool.lock();
        if let Some(e) = &st.destroyed {
            return Err(e.clone());
        }
        let depth = st.pipelining.max(1) as usize;
        let keep_alive = st.pipelining > 0;
        let Some(idx) = st.conns.iter().position(|c| c.id == self.id) else {
            return Err(Error::Informational("removed"));
        };
        loop {
            if self.reset || self.running.len() >= depth || self.blocked() {
                break;
            }
            if st.conns[idx].queue.is_empty() {
                match st.pending.pop_front() {
                    Some(r) => st.conns[idx].queue.push_back(r),
                    None => break,
                }
            }
            let front = st.conns[idx].queue.front().expect("queue is not empty");
            if front.ctl.is_aborted() {
                // Its handler already got the abort error.
                if let Some(mut r) = st.conns[idx].queue.pop_front() {
                    r.settled = true;
                }
                continue;
            }
            if !self.running.is_empty() && !front.can_pipeline() {
                break;
            }
            if self.running.is_empty() && self.written_requests > 0 {
                self.check_idle()?;
            }
            let req = st.conns[idx].queue.pop_front().expect("queue is not empty");
            self.start(req, keep_alive);
        }
        let idle = self.running.is_empty() && st.conns[idx].queue.is_empty();
        let slot = &mut st.conns[idx];
        slot.running = self.running.len();
        slot.busy = self.blocked();
        slot.closing = self.reset;
        slot.need_drain = slot.is_busy(depth);
        if self.reset && self.running.is_empty() {
            // Closing: whatever is still queued here goes to a new connection.
            return Err(Error::Informational("reset"));
        }
        if idle {
            if st.closed && st.pending.is_empty() {
                // undici's close() ends in destroy(): the socket goes down
                // with ClientDestroyedError, which "disconnect" reports.
                return Err(Error::ClientDestroyed);
            }
            if self.timer.is_none() && !self.keep_alive.is_zero() {
                self.timer = Some((Instant::now() + self.keep_alive, Timer::Idle));
            }
        }
        if !st.pending.is_empty() {
            // This connection took what it could: others may take the rest.
            pool.assign(&mut st);
        }
        pool.maybe_drain(&mut st);
        Ok(())
    }

    /// Before an idle kept-alive socket takes a request: bytes or EOF already
    /// waiting mean the server closed it or sent something nobody asked for;
    /// either way it must not carry the request (the response would be
    /// matched to the wrong request). One non-blocking read, no timer: the
    /// reactor's readiness cannot be trusted here, it may not have polled
    /// since the bytes arrived.
    fn check_idle(&mut self) -> Result<(), Error> {
        self.make_room(READ_SIZE);
        match self.io.probe_idle(&mut self.rbuf)? {
            Idle::Quiet => Ok(()),
            Idle::Closed => Err(Error::socket("other side closed")),
            Idle::Data => Err(Error::socket("bad response")),
        }
    }

    /// Writing stops while a `blocking` request awaits its head, a
    /// streaming body is still going out, or an aborted request waits to
    /// reach the head (the socket closes then; nothing more may go on it).
    fn blocked(&self) -> bool {
        self.running.iter().any(|r| {
            (r.req.flags.blocking && matches!(r.response, Response::Head))
                || r.stream.as_ref().is_some_and(|s| !s.ended)
                || r.awaiting_continue
                || r.req.ctl.is_aborted()
        })
    }

    /// Queues a request's bytes.
    fn start(&mut self, mut req: Request, keep_alive: bool) {
        if req.attempts > 0 {
            self.dirty.push(&req.sink, Event::Retried);
        }
        req.attempts += 1;
        req.ctl.attach(self.notify.clone());
        self.written_requests += 1;
        let max = self.pool.cfg.max_requests_per_client;
        if !keep_alive || req.closes_connection() || max.is_some_and(|m| self.written_requests >= m)
        {
            self.reset = true;
        }
        let start = self.queued;
        self.queue(req.head_start.clone());
        if !req.flags.upgrade {
            self.queue(Bytes::from_static(if self.reset {
                encode::CONNECTION_CLOSE
            } else {
                encode::CONNECTION_KEEP_ALIVE
            }));
        }
        self.queue(req.head_end.clone());
        let awaiting_continue = req.flags.expect_continue;
        let stream = match &req.body {
            Body::None => None,
            Body::Bytes(_) if awaiting_continue => None,
            Body::Bytes(b) => {
                self.queue(b.clone());
                None
            }
            Body::Stream { length } => Some(Stream {
                chunked: length.is_none(),
                declared: *length,
                queued: 0,
                pulling: false,
                ended: false,
            }),
        };
        let reused_idle = self.running.is_empty() && self.completed > 0;
        if self.running.is_empty() {
            self.timer = None;
        }
        if awaiting_continue {
            self.timer = Some((Instant::now() + CONTINUE_WAIT, Timer::Continue));
        }
        self.running.push_back(Running {
            req,
            start,
            end: if awaiting_continue {
                u64::MAX
            } else {
                self.queued
            },
            sent: false,
            stream,
            awaiting_continue,
            info_bytes: 0,
            reused_idle,
            response: Response::Head,
        });
    }

    /// The server said 100 Continue (or we stopped waiting): send the body.
    fn release_body(&mut self) {
        let Some(idx) = self.running.iter().position(|r| r.awaiting_continue) else {
            return;
        };
        self.running[idx].awaiting_continue = false;
        if let Body::Bytes(b) = &self.running[idx].req.body {
            let b = b.clone();
            self.queue(b);
        }
        if self.running[idx].stream.is_none() {
            self.running[idx].end = self.queued;
        }
        if matches!(self.timer, Some((_, Timer::Continue))) {
            self.timer = None;
        }
    }

    fn queue(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.queued += b.len() as u64;
            self.wq.push_back(b);
        }
    }

    /// Moves chunks of a streaming body to the output; asks for more once the
    /// socket took everything.
    fn feed_stream(&mut self) -> Result<(), Error> {
        let Some(idx) = self
            .running
            .iter()
            .position(|r| !r.awaiting_continue && r.stream.as_ref().is_some_and(|s| !s.ended))
        else {
            return Ok(());
        };
        let (chunks, ended) = {
            let r = &self.running[idx];
            let mut c = r.req.ctl.chunks.lock();
            (std::mem::take(&mut c.queue), c.ended)
        };
        // A streamed body of declared length must match it exactly, whatever
        // `strict_content_length` says: a byte more would be read as the
        // next request, a byte less would leave the server waiting.
        for chunk in chunks {
            let s = self.running[idx].stream.as_mut().expect("streaming");
            s.pulling = false;
            s.queued += chunk.len() as u64;
            if s.declared.is_some_and(|d| s.queued > d) {
                return Err(self.fail_front_with(Error::RequestContentLengthMismatch));
            }
            if chunk.is_empty() {
                continue;
            }
            let chunked = s.chunked;
            if chunked {
                self.queue(encode::chunk_size_line(chunk.len()).freeze());
            }
            if self.running[idx].req.wants_body_sent {
                let sink = self.running[idx].req.sink.clone();
                self.dirty.push(&sink, Event::BodySent(chunk.clone()));
            }
            self.queue(chunk);
            if chunked {
                self.queue(Bytes::from_static(b"\r\n"));
            }
        }
        let s = self.running[idx].stream.as_mut().expect("streaming");
        if ended {
            if s.declared.is_some_and(|d| s.queued != d) {
                return Err(self.fail_front_with(Error::RequestContentLengthMismatch));
            }
            s.ended = true;
            s.pulling = false;
            if s.chunked {
                self.queue(Bytes::from_static(encode::LAST_CHUNK));
            }
            self.running[idx].end = self.queued;
        } else if !s.pulling && self.wq.is_empty() {
            s.pulling = true;
            let sink = self.running[idx].req.sink.clone();
            self.dirty.push(&sink, Event::BodyPull);
        }
        Ok(())
    }

    /// Fails the request at the head of the pipeline now; the connection
    /// then ends with an informational reason so the others are re-sent.
    fn fail_front_with(&mut self, err: Error) -> Error {
        if let Some(mut r) = self.running.pop_front() {
            self.dirty.push(&r.req.sink, Event::Error(err));
            r.req.settled = true;
        }
        Error::Informational("reset")
    }

    fn write(&mut self) -> Result<(), Error> {
        match self.io.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            r => r?,
        }
        while !self.wq.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .wq
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            let n = match self.io.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            self.advance(n);
        }
        self.mark_sent();
        Ok(())
    }

    fn advance(&mut self, mut n: usize) {
        self.written += n as u64;
        while n > 0 {
            let front = self.wq.front_mut().expect("wrote more than queued");
            if n >= front.len() {
                n -= front.len();
                self.wq.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
    }

    /// Requests whose bytes are all written: tell the handler, start the
    /// headers timer of the one at the head.
    fn mark_sent(&mut self) {
        let written = self.written;
        for (i, r) in self.running.iter_mut().enumerate() {
            let done = r.stream.as_ref().is_none_or(|s| s.ended);
            if r.sent || !done || r.end > written {
                continue;
            }
            r.sent = true;
            if r.req.wants_body_sent {
                if let Body::Bytes(b) = &r.req.body {
                    self.dirty.push(&r.req.sink, Event::BodySent(b.clone()));
                }
            }
            if i == 0 && matches!(r.response, Response::Head) {
                let t = r
                    .req
                    .headers_timeout
                    .unwrap_or(self.pool.cfg.headers_timeout);
                self.timer = (!t.is_zero()).then(|| (Instant::now() + t, Timer::Headers));
            }
        }
    }

    /// Finds read space without fresh memory when it can: body chunks handed
    /// out still pin the buffer they came from, so while the consumer holds
    /// them the next read goes to the spare buffer, whose chunks are done.
    fn make_room(&mut self, want: usize) {
        if self.rbuf.capacity() - self.rbuf.len() >= want / 4 || self.rbuf.try_reclaim(want) {
            return;
        }
        if !self.rbuf.is_empty() {
            self.rbuf.reserve(want);
            return;
        }
        let next = match self.spare.take() {
            Some(mut s) => {
                if s.try_reclaim(want) {
                    s
                } else {
                    BytesMut::with_capacity(want)
                }
            }
            None => BytesMut::with_capacity(want),
        };
        self.spare = Some(std::mem::replace(&mut self.rbuf, next));
    }

    /// How much to read next: up to the rest of a long Content-Length body.
    fn read_size(&self) -> usize {
        let remaining = match self.running.front().map(|r| &r.response) {
            Some(Response::Body { decoder, .. }) => decoder.remaining().unwrap_or(0),
            _ => 0,
        };
        (remaining as usize).clamp(READ_SIZE, MAX_READ_SIZE)
    }

    /// The consumer paused, or has not yet taken what was read for it.
    fn read_paused(&self) -> bool {
        self.running
            .front()
            .is_some_and(|r| r.req.ctl.is_paused() || r.req.ctl.read_ahead_full())
    }

    fn read(&mut self) -> Result<(), Error> {
        self.make_room(self.read_size());
        match self.io.try_read_buf(&mut self.rbuf) {
            Ok(0) => self.on_eof(),
            Ok(_) => self.process(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Parses everything the read buffer holds, then delivers what is
    /// partial (a head, body pieces) so the consumer sees it now.
    fn process(&mut self) -> Result<(), Error> {
        let result = self.parse();
        if let Some(r) = self.running.front_mut() {
            if let Response::Body { head, parts, .. } = &mut r.response {
                if let Some(h) = head.take() {
                    self.dirty.push(&r.req.sink, Event::Headers(h));
                }
                for p in parts.drain(..) {
                    r.req.ctl.queued_bytes(p.len());
                    r.req.sink.push(Event::Data(p));
                    // Nobody waiting for pieces: the end (or the read-ahead
                    // limit) wakes the consumer, not each piece.
                    if !r.req.ctl.data_is_quiet() {
                        self.dirty.mark(&r.req.sink);
                    }
                }
            }
        }
        result
    }

    fn parse(&mut self) -> Result<(), Error> {
        loop {
            let Some(r) = self.running.front_mut() else {
                if !self.rbuf.is_empty() {
                    // Nothing asked for these bytes: never match them to a later request.
                    return Err(Error::socket("bad response"));
                }
                return Ok(());
            };
            match &mut r.response {
                Response::Head => {
                    let ctx = HeadContext {
                        method_is_head: r.req.flags.is_head,
                        method_is_connect: r.req.flags.is_connect,
                        upgrade_requested: r.req.flags.upgrade,
                        max_header_size: self.pool.cfg.max_header_size,
                    };
                    let parsed = parse_head_resuming(&mut self.rbuf, &ctx, &mut self.head_scan);
                    let Some(head) = parsed? else {
                        return Ok(());
                    };
                    if head.upgrade {
                        self.upgraded = Some(Head {
                            status: head.status,
                            reason: head.reason,
                            headers: head.headers,
                        });
                        return Err(Error::Informational("upgrade"));
                    }
                    if head.status < 200 {
                        match head.status {
                            100 if r.awaiting_continue => {
                                self.release_body();
                                continue;
                            }
                            100 => return Err(Error::socket("bad response")),
                            101 => return Err(Error::socket("bad upgrade")),
                            _ => {}
                        }
                        // Interim heads count against the header limit: a flood
                        // of 1xx ends instead of keeping the request alive.
                        r.info_bytes += head.headers.buf.len();
                        if r.info_bytes > self.pool.cfg.max_header_size {
                            return Err(Error::HeadersOverflow);
                        }
                        let info = Head {
                            status: head.status,
                            reason: head.reason,
                            headers: head.headers,
                        };
                        self.dirty.push(&r.req.sink, Event::Info(info));
                        let t = r
                            .req
                            .headers_timeout
                            .unwrap_or(self.pool.cfg.headers_timeout);
                        if r.sent && !t.is_zero() {
                            self.timer = Some((Instant::now() + t, Timer::Headers));
                        }
                        continue;
                    }
                    let (hint_ok, idle) = keep_alive_for(&self.pool.cfg, head.keep_alive_hint);
                    self.keep_alive = idle;
                    let framing = head.framing;
                    r.response = Response::Body {
                        decoder: BodyDecoder::new(framing, self.pool.cfg.max_header_size),
                        head: Some(Head {
                            status: head.status,
                            reason: head.reason,
                            headers: head.headers,
                        }),
                        parts: Vec::new(),
                        received: 0,
                        keep_alive: head.keep_alive && hint_ok,
                    };
                    if framing == Framing::Close {
                        self.reset = true;
                    }
                    self.arm_body_timer();
                }
                Response::Body {
                    decoder,
                    parts,
                    received,
                    ..
                } => match decoder.decode(&mut self.rbuf)? {
                    Decoded::NeedMore => {
                        self.arm_body_timer();
                        return Ok(());
                    }
                    Decoded::Data(b) => {
                        *received += b.len() as u64;
                        if self
                            .pool
                            .cfg
                            .max_response_size
                            .is_some_and(|m| *received > m)
                        {
                            return Err(Error::ResponseExceededMaxSize);
                        }
                        parts.push(b);
                    }
                    Decoded::Done(trailers) => self.complete(trailers)?,
                },
            }
        }
    }

    fn arm_body_timer(&mut self) {
        let Some(r) = self.running.front() else {
            return;
        };
        let t = r.req.body_timeout.unwrap_or(self.pool.cfg.body_timeout);
        self.timer = (!t.is_zero()).then(|| (Instant::now() + t, Timer::Body));
    }

    /// The response at the head of the pipeline ended.
    fn complete(&mut self, trailers: RawHeaders) -> Result<(), Error> {
        let Running {
            mut req,
            response,
            sent,
            ..
        } = self.running.pop_front().expect("a response completed");
        let Response::Body {
            head,
            mut parts,
            keep_alive,
            ..
        } = response
        else {
            unreachable!("completed before its head")
        };
        let ev = match head {
            Some(h) => Event::Full(h, join(&mut parts), trailers),
            None => {
                for p in parts {
                    req.ctl.queued_bytes(p.len());
                    self.dirty.push(&req.sink, Event::Data(p));
                }
                Event::Complete(trailers)
            }
        };
        self.dirty.push(&req.sink, ev);
        req.settled = true;
        self.completed += 1;
        self.timer = None;
        if !sent {
            // The server answered before the request body was written.
            return Err(Error::Informational("reset"));
        }
        if !keep_alive {
            return Err(Error::Informational("reset"));
        }
        if let Some(next) = self.running.front() {
            if next.sent {
                let t = next
                    .req
                    .headers_timeout
                    .unwrap_or(self.pool.cfg.headers_timeout);
                self.timer = (!t.is_zero()).then(|| (Instant::now() + t, Timer::Headers));
            }
        }
        Ok(())
    }

    fn on_eof(&mut self) -> Result<(), Error> {
        if let Some(r) = self.running.front_mut() {
            if let Response::Body { decoder, .. } = &mut r.response {
                let trailers = decoder.finish_eof()?;
                self.complete(trailers)?;
            }
        }
        Err(Error::socket("other side closed"))
    }

    fn on_timer(&mut self) -> Result<(), Error> {
        let Some((at, kind)) = self.timer else {
            return Ok(());
        };
        if Instant::now() < at {
            return Ok(());
        }
        self.timer = None;
        match kind {
            Timer::Idle if self.running.is_empty() => {
                Err(Error::Informational("socket idle timeout"))
            }
            Timer::Headers => Err(Error::HeadersTimeout),
            Timer::Body if self.read_paused() => Ok(()),
            Timer::Body => Err(Error::BodyTimeout),
            Timer::Continue => {
                self.release_body();
                Ok(())
            }
            Timer::Idle => Ok(()),
        }
    }

    /// The keep-alive race: an idle kept-alive connection that the server
    /// closed just as the head request was written to it, before any byte of
    /// its response. An idempotent request with a replayable body is then sent
    /// again (once) on a new connection instead of failing; anything else, and
    /// any request pipelined behind a running one, still fails as in undici.
    fn lost_race(&self, running: &VecDeque<Running>, err: &Error) -> bool {
        let Some(head) = running.front() else {
            return false;
        };
        matches!(err, Error::Socket(_))
            && head.reused_idle
            && self.rbuf.is_empty()
            && matches!(head.response, Response::Head)
            && head.req.can_pipeline()
            && head.req.attempts < 2
    }

    /// The request that switched protocols, if one did, with its head.
    fn take_upgrade(&mut self) -> Option<(Request, Head)> {
        let head = self.upgraded.take()?;
        let r = self.running.pop_front()?;
        Some((r.req, head))
    }

    /// The connection ended with `err`: fail the head of the pipeline (unless
    /// the reason is informational), send back what `may_resend` allows, fail
    /// the rest, and let the scheduler open a new connection if work remains.
    fn finish(mut self, err: Error) {
        let upgrade = self.take_upgrade();
        let running = std::mem::take(&mut self.running);
        let head_fails = !err.is_informational() && !self.lost_race(&running, &err);
        // The socket goes before the pool hears of it (closed, or handed to
        // the request that upgraded), so `Closed` means every socket is shut.
        let rest = std::mem::take(&mut self.rbuf).freeze();
        let upgrade = match upgrade {
            None => {
                drop(self.io);
                None
            }
            Some((req, head)) => Some((req, head, self.io.into_socket())),
        };
        let pool = self.pool.clone();
        let mut st = pool.lock();
        let mut again: Vec<Request> = Vec::new();
        for (i, mut r) in running.into_iter().enumerate() {
            let failure = if r.req.ctl.is_aborted() {
                None // its handler already got the abort error
            } else if let Some(destroyed) = &st.destroyed {
                Some(destroyed.clone())
            } else if i == 0 && head_fails {
                Some(err.clone())
            } else if r.may_resend(self.written) {
                again.push(r.req);
                continue;
            } else {
                Some(Error::socket(
                    "the connection closed before this request's response ended",
                ))
            };
            if let Some(e) = failure {
                self.dirty.push(&r.req.sink, Event::Error(e));
            }
            r.req.settled = true;
        }
        if let Some(pos) = st.conns.iter().position(|c| c.id == self.id) {
            let slot = st.conns.remove(pos);
            again.extend(slot.queue);
        }
        for r in again.into_iter().rev() {
            st.pending.push_front(r);
        }
        pool.emit(&st, Event::Disconnected(err));
        if st.destroyed.is_none() {
            pool.assign(&mut st);
        }
        pool.maybe_drain(&mut st);
        pool.maybe_closed(&mut st);
        Pool::unlock_and_wake(st);
        self.dirty.flush();
        if let Some((mut req, head, fd)) = upgrade {
            // The bytes read past the head go with the socket.
            match fd {
                Ok(fd) => req.sink.push(Event::Upgrade(head, fd, rest)),
                Err(e) => req.sink.push(Event::Error(e.into())),
            }
            req.settled = true;
            req.sink.sink.flush();
        }
    }
}

/// The idle timeout after a response, from the server's `Keep-Alive:
/// timeout=N` hint when it sent one; false when the hint leaves no time.
fn keep_alive_for(cfg: &super::config::Config, hint: Option<u64>) -> (bool, Duration) {
    match hint {
        None => (true, cfg.keep_alive_timeout),
        Some(secs) => {
            let t = Duration::from_secs(secs)
                .saturating_sub(cfg.keep_alive_timeout_threshold)
                .min(cfg.keep_alive_max_timeout);
            (!t.is_zero(), t)
        }
    }
}

/// One `Bytes` for a body that arrived in pieces (usually one: no copy).
fn join(parts: &mut Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().expect("one part"),
        _ => {
            let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in parts.drain(..) {
                out.extend_from_slice(&p);
            }
            out.freeze()
        }
    }
}
