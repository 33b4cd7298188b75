//! The scheduler shared by `Client` and `Pool`: one origin, up to
//! `connections` sockets, each with its own queue, and the dispatcher's own
//! queue for requests no connection can take yet (undici's Pool over Clients,
//! where a Client is a pool of one).
//!
//! The state sits behind one mutex because both threads need it: the asyncio
//! thread enqueues and must answer "busy?" synchronously (`dispatch()`'s
//! return value), and the runtime's connection tasks take work from it.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::config::Config;
use super::conn;
use super::error::Error;
use super::event::{Event, SinkRef};
use super::request::Request;

pub struct Pool {
    pub cfg: Config,
    state: Mutex<State>,
    rt: Handle,
}

/// The scheduler's view of one connection.
pub(crate) struct ConnSlot {
    pub id: u64,
    pub notify: Arc<Notify>,
    /// Assigned to this connection, not yet written.
    pub queue: VecDeque<Request>,
    /// Written, response not complete.
    pub running: usize,
    /// Writes nothing now: a blocking request awaits its headers, a body is
    /// still streaming, or the connection closes after the running responses.
    pub busy: bool,
    pub closing: bool,
    /// The socket is up.
    pub connected: bool,
    /// Said "busy" (undici's kNeedDrain): gets no new request until it drains.
    pub need_drain: bool,
}

pub(crate) struct State {
    pub pending: VecDeque<Request>,
    pub conns: Vec<ConnSlot>,
    next_id: u64,
    pub pipelining: u32,
    pub closed: bool,
    pub destroyed: Option<Error>,
    need_drain: bool,
    /// Where dispatcher events go (the loop that used it last).
    pub events: Option<SinkRef>,
    /// Connections to wake once the lock is released (waking takes a
    /// system call, which must not lengthen the critical section).
    wake: Vec<Arc<Notify>>,
    /// Close or destroy was asked and `Closed` is still to be sent.
    closing_pending: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub connected: usize,
    pub free: usize,
    pub pending: usize,
    pub queued: usize,
    pub running: usize,
    pub size: usize,
}

impl ConnSlot {
    fn size(&self) -> usize {
        self.running + self.queue.len()
    }

    /// Replays undici's synchronous write of the queued requests: how many
    /// would have had to wait (pending), and whether the last one written
    /// leaves the socket busy (blocking, streaming, or closing).
    fn replay(&self, depth: usize) -> (usize, bool) {
        if !self.connected {
            return (self.queue.len(), false);
        }
        let (mut running, mut blocked) = (self.running, self.busy || self.closing);
        for (i, r) in self.queue.iter().enumerate() {
            if blocked || running >= depth || (running > 0 && !r.can_pipeline()) {
                return (self.queue.len() - i, blocked);
            }
            running += 1;
            blocked = r.blocks_socket();
        }
        (0, blocked)
    }

    /// undici's client `kBusy`.
    pub(crate) fn is_busy(&self, depth: usize) -> bool {
        let (pending, blocked) = self.replay(depth);
        blocked || self.size() >= depth || pending > 0
    }
}

impl State {
    fn depth(&self) -> usize {
        self.pipelining.max(1) as usize
    }

    /// The connection the next request goes to (undici's `getDispatcher`).
    fn free_conn(&self) -> Option<usize> {
        self.conns.iter().position(|c| !c.need_drain && !c.closing)
    }

    /// undici's pool busy: no connection without "need drain", none to open.
    fn busy(&self, max: Option<usize>) -> bool {
        !self.pending.is_empty()
            || (self.free_conn().is_none() && max.is_some_and(|m| self.conns.len() >= m))
    }

    /// Re-evaluates each connection's "need drain" after its state changed.
    pub(crate) fn refresh(&mut self) {
        let depth = self.depth();
        for c in &mut self.conns {
            c.need_drain = c.is_busy(depth);
        }
    }

    pub fn slot(&mut self, id: u64) -> Option<&mut ConnSlot> {
        self.conns.iter_mut().find(|c| c.id == id)
    }
}

impl Pool {
    pub fn new(cfg: Config, rt: Handle) -> Arc<Pool> {
        let pipelining = cfg.pipelining;
        Arc::new(Pool {
            cfg,
            rt,
            state: Mutex::new(State {
                pending: VecDeque::new(),
                conns: Vec::new(),
                next_id: 0,
                pipelining,
                closed: false,
                destroyed: None,
                need_drain: false,
                events: None,
                wake: Vec::new(),
                closing_pending: false,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Where dispatcher-level events go from now on.
    pub fn bind_events(&self, sink: SinkRef) {
        self.lock().events = Some(sink);
    }

    /// Queues `req`. `Ok(false)` means busy: if `wants_drain`, an
    /// `Event::Drain` follows once it is not.
    /// A closed or destroyed dispatcher fails `req` (asynchronously, as
    /// undici does) and returns false.
    pub fn dispatch(self: &Arc<Self>, req: Request, wants_drain: bool) -> bool {
        let mut st = self.lock();
        let refused = if st.destroyed.is_some() {
            Some(Error::ClientDestroyed)
        } else if st.closed {
            Some(Error::ClientClosed)
        } else {
            None
        };
        if let Some(e) = refused {
            drop(st);
            fail_all([req], &e);
            return false;
        }
        st.pending.push_back(req);
        self.assign(&mut st);
        let busy = st.busy(self.cfg.connections);
        if busy && wants_drain {
            st.need_drain = true;
        }
        Self::unlock_and_wake(st);
        !busy
    }

    /// Moves pending requests to connections that can take them, opening
    /// connections as allowed.
    pub(crate) fn assign(self: &Arc<Self>, st: &mut State) {
        let depth = st.depth();
        while !st.pending.is_empty() {
            let idx = match st.free_conn() {
                Some(i) => i,
                None if self.cfg.connections.is_none_or(|m| st.conns.len() < m) => self.open(st),
                None => return,
            };
            let req = st.pending.pop_front().expect("pending is not empty");
            let slot = &mut st.conns[idx];
            slot.queue.push_back(req);
            slot.need_drain = slot.is_busy(depth);
            let n = slot.notify.clone();
            if !st.wake.iter().any(|w| Arc::ptr_eq(w, &n)) {
                st.wake.push(n);
            }
        }
    }

    /// Releases the lock, then wakes the connections `assign` picked.
    pub(crate) fn unlock_and_wake(mut st: MutexGuard<'_, State>) {
        let wake = std::mem::take(&mut st.wake);
        drop(st);
        for n in wake {
            n.notify_one();
        }
    }

    fn open(self: &Arc<Self>, st: &mut State) -> usize {
        let id = st.next_id;
        st.next_id += 1;
        let notify = Arc::new(Notify::new());
        st.conns.push(ConnSlot {
            id,
            notify: notify.clone(),
            queue: VecDeque::new(),
            running: 0,
            busy: false,
            closing: false,
            connected: false,
            need_drain: false,
        });
        let task = self.rt.spawn(conn::run(self.clone(), id, notify));
        let pool = self.clone();
        self.rt.spawn(async move {
            if task.await.is_err() {
                pool.forget_conn(id);
            }
        });
        st.conns.len() - 1
    }

    /// A connection task died by panic: its running requests were failed as
    /// they were dropped; its queue goes back to be sent elsewhere.
    fn forget_conn(self: &Arc<Self>, id: u64) {
        let mut st = self.lock();
        let Some(pos) = st.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let slot = st.conns.remove(pos);
        for r in slot.queue.into_iter().rev() {
            st.pending.push_front(r);
        }
        self.emit(
            &st,
            Event::Disconnected(Error::socket("connection task failed")),
        );
        self.assign(&mut st);
        self.maybe_drain(&mut st);
        self.maybe_closed(&mut st);
        Self::unlock_and_wake(st);
    }

    /// Emits `drain` if a caller was told "busy" and that is no longer so.
    pub(crate) fn maybe_drain(&self, st: &mut State) {
        if st.need_drain && !st.busy(self.cfg.connections) {
            st.need_drain = false;
            if let Some(ev) = &st.events {
                ev.push(Event::Drain);
                ev.sink.flush();
            }
        }
    }

    pub fn set_pipelining(self: &Arc<Self>, n: u32) {
        let mut st = self.lock();
        st.pipelining = n;
        for c in &st.conns {
            c.notify.notify_one();
        }
        st.refresh();
        self.assign(&mut st);
        self.maybe_drain(&mut st);
        Self::unlock_and_wake(st);
    }

    pub fn pipelining(&self) -> u32 {
        self.lock().pipelining
    }

    /// Stops taking requests; `Event::Closed` follows once all queued and
    /// running requests completed and the sockets are closed.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.closing_pending = true;
        for c in &st.conns {
            c.notify.notify_one();
        }
        self.maybe_closed(&mut st);
    }

    /// Fails every pending request with `err` and tears every socket down;
    /// `Event::Closed` follows once they are closed.
    pub fn destroy(&self, err: Error) {
        let mut st = self.lock();
        st.closed = true;
        st.closing_pending = true;
        if st.destroyed.is_none() {
            st.destroyed = Some(err.clone());
        }
        let mut failed: Vec<Request> = st.pending.drain(..).collect();
        for c in &mut st.conns {
            failed.extend(c.queue.drain(..));
            c.notify.notify_one();
        }
        fail_all(failed, &err);
        self.maybe_closed(&mut st);
    }

    /// Sends `Closed` when closing and nothing is left.
    pub(crate) fn maybe_closed(&self, st: &mut State) {
        if st.closing_pending && st.conns.is_empty() && st.pending.is_empty() {
            st.closing_pending = false;
            if let Some(ev) = &st.events {
                ev.push(Event::Closed);
                ev.sink.flush();
            }
        }
    }

    pub fn stats(&self) -> Stats {
        let st = self.lock();
        let running: usize = st.conns.iter().map(|c| c.running).sum();
        let queued = st.pending.len() + st.conns.iter().map(|c| c.queue.len()).sum::<usize>();
        Stats {
            connected: st.conns.iter().filter(|c| c.connected).count(),
            free: st.conns.iter().filter(|c| c.size() == 0).count(),
            pending: queued,
            queued: st.pending.len(),
            running,
            size: running + queued,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub fn is_destroyed(&self) -> bool {
        self.lock().destroyed.is_some()
    }

    /// Emits a dispatcher event.
    pub(crate) fn emit(&self, st: &State, event: Event) {
        if let Some(ev) = &st.events {
            ev.push(event);
            ev.sink.flush();
        }
    }
}

/// Fails requests with `err`, flushing each sink once at the end.
pub(crate) fn fail_all(reqs: impl IntoIterator<Item = Request>, err: &Error) {
    let mut dirty = super::event::Dirty::default();
    for mut r in reqs {
        if !r.ctl.is_aborted() {
            dirty.push(&r.sink, Event::Error(err.clone()));
        }
        r.settled = true;
    }
    dirty.flush();
}
