//! The bridge from the runtime thread to one asyncio loop.
//!
//! The runtime pushes plain `Event`s onto `Queue` and wakes the loop (an
//! eventfd on Linux, `wake.rs`) only when the queue was drained since the
//! last wake-up: one per batch. The loop watches the fd (`loop.add_reader`)
//! and `LoopBridge.drain` delivers the whole batch, on the loop thread, to
//! the targets: user handlers, `request()`'s native handler, dispatchers.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString, PyWeakrefMethods, PyWeakrefReference};
use pyo3::PyTraverseError;

use crate::convert::{header_dict, latin1, raw_list};
use crate::dispatcher::platform;
use crate::dispatcher::{ConnInfo, Error, Event, Head, RequestCtl, Sink, SinkRef};
use crate::errors::to_exception;
use crate::options::RequestExtras;
use crate::response::{Body, Controller, ResponseData};

mod live;
mod stream;
mod wake;

pub use live::{Live, LiveGuard};

/// Most events delivered per drain before yielding to the loop.
const DRAIN_BATCH: usize = 1024;

/// Events waiting for one loop, and its wake-up fd.
pub struct Queue {
    events: Mutex<Vec<(u64, Event)>>,
    armed: AtomicBool,
    wake: wake::Wake,
    /// Measurement only (`docs/design.md`): wake the loop with
    /// `call_soon_threadsafe(drain)` instead of the eventfd, attaching to
    /// Python from the runtime thread as the usual bridges do.
    threadsafe: OnceLock<(Py<PyAny>, Py<PyAny>)>,
}

impl Sink for Queue {
    fn push(&self, token: u64, event: Event) {
        self.events.lock().push((token, event));
    }

    fn flush(&self) {
        if !self.armed.swap(true, Ordering::AcqRel) {
            if let Some((call_soon_threadsafe, drain)) = self.threadsafe.get() {
                // Nothing to wake once the interpreter is shutting down.
                let _ = Python::try_attach(|py| {
                    if let Err(e) = call_soon_threadsafe.call1(py, (drain,)) {
                        e.write_unraisable(py, None);
                    }
                });
                return;
            }
            self.wake.notify();
        }
    }
}

impl Queue {
    fn new(socket_wake: bool) -> std::io::Result<Queue> {
        Ok(Queue {
            events: Mutex::new(Vec::new()),
            armed: AtomicBool::new(false),
            wake: wake::Wake::new(socket_wake)?,
            threadsafe: OnceLock::new(),
        })
    }

    /// Takes up to `max` events; re-arms first so no wake-up is lost.
    fn take(&self, max: usize) -> (Vec<(u64, Event)>, bool) {
        self.wake.clear();
        self.armed.store(false, Ordering::Release);
        let mut q = self.events.lock();
        if q.len() <= max {
            (std::mem::take(&mut *q), false)
        } else {
            let rest = q.split_off(max);
            (std::mem::replace(&mut *q, rest), true)
        }
    }
}

/// Tokens are sequential: hash them as themselves.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Targets = HashMap<u64, Arc<Target>, BuildHasherDefault<IdHasher>>;

/// Who receives a token's events.
pub enum Kind {
    /// A user's `dispatch()` handler object.
    Handler(Py<PyAny>),
    /// `request()`'s native handler: resolves its future with a `ResponseData`.
    Request { extras: RequestExtras },
    /// `stream()`'s native handler: the body goes into the writable
    /// `factory` returns; its future gets the `StreamData`.
    Stream {
        factory: Py<PyAny>,
        extras: RequestExtras,
    },
    /// A dispatcher, held weakly: gets `_on_event(name, error)`.
    Dispatcher { owner: Py<PyAny>, live: Arc<Live> },
}

pub struct Target {
    pub kind: Kind,
    pub ctl: Option<Arc<RequestCtl>>,
    /// Requests: counted among their dispatcher's live ones until dropped.
    pub live: Option<LiveGuard>,
    pub st: Mutex<TargetState>,
}

#[derive(Default)]
pub struct TargetState {
    /// `request()` and `stream()`: the future the caller awaits, until it
    /// is resolved (then only the caller holds the result).
    future: Option<Py<PyAny>>,
    /// `request()`: the response body, once the head arrived (also
    /// `stream()`'s, when throw_on_error reads an error body). Weak: a body
    /// its reader dropped must be freed, which aborts its request.
    body: Option<Py<PyWeakrefReference>>,
    /// `stream()`: the writable, once the factory returned it.
    writer: Option<stream::Writer>,
    /// The request's one `Control` (a cycle through the bridge, broken when
    /// the request ends and its target is removed).
    control: Option<Py<Control>>,
    /// A handler returned False: events wait here until `resume()`.
    paused: bool,
    backlog: VecDeque<Event>,
    /// Where a streaming request body comes from, then its puller.
    source: Option<Py<PyAny>>,
    pulling_started: bool,
    abort_reason: Option<Py<PyAny>>,
}

impl TargetState {
    pub fn new(control: Py<Control>, source: Option<Py<PyAny>>, future: Option<Py<PyAny>>) -> Self {
        TargetState {
            control: Some(control),
            source,
            future,
            ..Default::default()
        }
    }
}

impl Target {
    /// The response body, if its reader still holds it.
    fn body<'py>(&self, py: Python<'py>) -> Option<Bound<'py, Body>> {
        let weak = self.st.lock().body.as_ref()?.clone_ref(py);
        weak.bind(py).upgrade()?.cast_into::<Body>().ok()
    }

    /// The body, forgotten by the target (the request ended).
    fn take_body<'py>(&self, py: Python<'py>) -> Option<Bound<'py, Body>> {
        let weak = self.st.lock().body.take()?;
        weak.bind(py).upgrade()?.cast_into::<Body>().ok()
    }

    fn take_future<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.st.lock().future.take().map(|f| f.into_bound(py))
    }
}

struct PyNames {
    reject_status: Py<PyAny>,
    start_body: Py<PyAny>,
    upgraded_socket: Py<PyAny>,
    open_writable: Py<PyAny>,
    stream_data: Py<PyAny>,
    finish_write: Py<PyAny>,
}

static NAMES: PyOnceLock<PyNames> = PyOnceLock::new();

fn names(py: Python<'_>) -> PyResult<&'static PyNames> {
    NAMES.get_or_try_init(py, || {
        let r = py.import("undipy._response")?;
        let b = py.import("undipy._request_body")?;
        let s = py.import("undipy.api_stream")?;
        Ok(PyNames {
            open_writable: s.getattr("open_writable")?.unbind(),
            stream_data: s.getattr("StreamData")?.unbind(),
            finish_write: s.getattr("finish_write")?.unbind(),
            upgraded_socket: py
                .import("undipy._socket")?
                .getattr("UpgradedSocket")?
                .unbind(),
            reject_status: r.getattr("reject_with_status")?.unbind(),
            start_body: b.getattr("start")?.unbind(),
        })
    })
}

#[pyclass(frozen, weakref, module = "undipy._undipy")]
pub struct LoopBridge {
    pub queue: Arc<Queue>,
    targets: Mutex<Targets>,
    next: AtomicU64,
    #[pyo3(get)]
    r#loop: Py<PyAny>,
    /// How many drains ran and how many events they delivered (for measuring batching).
    #[pyo3(get)]
    drains: AtomicU64Get,
    #[pyo3(get)]
    events: AtomicU64Get,
}

/// A counter readable from Python.
#[derive(Default)]
pub struct AtomicU64Get(AtomicU64);

impl AtomicU64Get {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

impl<'py> IntoPyObject<'py> for &AtomicU64Get {
    type Target = pyo3::types::PyInt;
    type Output = Bound<'py, Self::Target>;
    type Error = std::convert::Infallible;
    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        self.0.load(Ordering::Relaxed).into_pyobject(py)
    }
}

#[pymethods]
impl LoopBridge {
    /// `socket_wake`: wake the loop through a socket it reads with
    /// `sock_recv`, for loops without `add_reader` (always so on Windows).
    #[new]
    #[pyo3(signature = (r#loop, socket_wake = false))]
    fn new(r#loop: Py<PyAny>, socket_wake: bool) -> PyResult<Self> {
        Ok(LoopBridge {
            queue: Arc::new(Queue::new(socket_wake)?),
            targets: Mutex::new(Targets::default()),
            next: AtomicU64::new(1),
            r#loop,
            drains: AtomicU64Get::default(),
            events: AtomicU64Get::default(),
        })
    }

    /// Measurement only: wake the loop through `call_soon_threadsafe`.
    fn wake_threadsafe(&self, call_soon_threadsafe: Py<PyAny>, drain: Py<PyAny>) {
        let _ = self.queue.threadsafe.set((call_soon_threadsafe, drain));
    }

    /// The fd (or Windows socket) the loop watches.
    #[getter]
    fn fd(&self) -> i64 {
        self.queue.wake.fd()
    }

    /// Delivers every queued event (called by the loop when the fd is readable).
    fn drain(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let me = slf.clone().unbind();
        let me = &me;
        let (events, more) = this.queue.take(DRAIN_BATCH);
        this.drains.add(1);
        this.events.add(events.len() as u64);
        for (token, event) in events {
            this.deliver(py, me, token, event);
        }
        if more {
            this.queue.flush();
        }
        Ok(())
    }

    /// Delivers events a handler's pause held back (scheduled by `resume()`).
    fn flush_backlog(slf: &Bound<'_, Self>, token: u64) {
        let py = slf.py();
        let me = &slf.clone().unbind();
        let this = slf.get();
        let Some(target) = this.target(token) else {
            return;
        };
        loop {
            let ev = {
                let mut st = target.st.lock();
                if st.paused {
                    return;
                }
                match st.backlog.pop_front() {
                    Some(ev) => ev,
                    None => break,
                }
            };
            this.deliver_to(py, me, token, &target, ev);
        }
        if let Some(ctl) = &target.ctl {
            ctl.set_paused(false);
        }
    }
}

impl LoopBridge {
    pub fn next_token(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn insert(&self, token: u64, target: Target) {
        self.targets.lock().insert(token, Arc::new(target));
    }

    fn target(&self, token: u64) -> Option<Arc<Target>> {
        self.targets.lock().get(&token).cloned()
    }

    /// Forgets a target that will get no more events.
    pub fn remove(&self, token: u64) {
        // Dropped after the lock: a handler's __del__ may dispatch again.
        let target = self.targets.lock().remove(&token);
        drop(target);
    }

    pub fn push(&self, token: u64, event: Event) {
        self.queue.push(token, event);
        self.queue.flush();
    }

    fn deliver(&self, py: Python<'_>, me: &Py<LoopBridge>, token: u64, event: Event) {
        let Some(target) = self.target(token) else {
            return;
        };
        if let (Event::Data(b), Some(ctl)) = (&event, &target.ctl) {
            ctl.delivered_bytes(b.len());
        }
        if matches!(target.kind, Kind::Handler(_) | Kind::Stream { .. }) {
            let mut st = target.st.lock();
            if matches!(event, Event::Error(_)) {
                // Pausing holds back data, never the end: an error ends a
                // paused request at once, and what it held is moot.
                st.backlog.clear();
                st.paused = false;
            } else if st.paused || !st.backlog.is_empty() {
                st.backlog.push_back(event);
                return;
            }
        }
        self.deliver_to(py, me, token, &target, event);
    }

    fn deliver_to(
        &self,
        py: Python<'_>,
        me: &Py<LoopBridge>,
        token: u64,
        target: &Arc<Target>,
        event: Event,
    ) {
        let aborted = target.ctl.as_ref().is_some_and(|c| c.is_aborted());
        if aborted && !matches!(event, Event::Error(_)) {
            return;
        }
        let result = match &target.kind {
            Kind::Dispatcher { owner, live } => {
                self.dispatcher_event(py, token, owner, live, event)
            }
            Kind::Handler(h) => self.handler_event(py, me, token, target, h.bind(py), event),
            Kind::Request { .. } => self.request_event(py, token, target, event),
            Kind::Stream { .. } => self.stream_event(py, me, token, target, event),
        };
        if let Err(err) = result {
            // A handler raised: the request ends with that error.
            self.fail(
                py,
                token,
                target,
                err.into_value(py).into_any().into_bound(py),
            );
        }
    }

    /// Ends a request with `exc` (a Python exception), exactly once.
    fn fail(&self, py: Python<'_>, token: u64, target: &Arc<Target>, exc: Bound<'_, PyAny>) {
        if self.targets.lock().remove(&token).is_none() {
            return;
        }
        if let Some(ctl) = &target.ctl {
            ctl.abort();
        }
        let r = match &target.kind {
            Kind::Handler(h) => h
                .bind(py)
                .call_method1(intern!(py, "on_error"), (exc,))
                .map(drop),
            Kind::Request { .. } | Kind::Stream { .. } => {
                let writer = target.st.lock().writer.take();
                if let Some(w) = writer {
                    w.cancel(py);
                }
                self.fail_body_or_future(py, target, exc)
            }
            Kind::Dispatcher { .. } => Ok(()),
        };
        if let Err(e) = r {
            e.write_unraisable(py, None);
        }
    }

    fn error_value<'py>(
        &self,
        py: Python<'py>,
        target: &Target,
        e: &Error,
    ) -> PyResult<Bound<'py, PyAny>> {
        if target.ctl.as_ref().is_some_and(|c| c.is_aborted()) {
            if let Some(r) = target.st.lock().abort_reason.as_ref() {
                return Ok(r.bind(py).clone());
            }
            return to_exception(py, &Error::RequestAborted);
        }
        to_exception(py, e)
    }

    fn handler_event(
        &self,
        py: Python<'_>,
        me: &Py<LoopBridge>,
        token: u64,
        target: &Arc<Target>,
        h: &Bound<'_, PyAny>,
        event: Event,
    ) -> PyResult<()> {
        match event {
            Event::Retried => {
                let control = self.control(py, target);
                h.call_method1(
                    intern!(py, "on_connect"),
                    (control.getattr(intern!(py, "abort"))?, PyDict::new(py)),
                )?;
            }
            Event::Info(head) => {
                self.on_headers(py, target, h, &head)?;
            }
            Event::Headers(head) => {
                let paused = self.on_headers(py, target, h, &head)?;
                if paused {
                    self.pause(target);
                }
            }
            Event::Data(b) => {
                let r = h.call_method1(intern!(py, "on_data"), (PyBytes::new(py, &b),))?;
                if is_false(&r) {
                    self.pause(target);
                }
            }
            Event::Full(head, body, trailers) => {
                // One event on the wire side; the handler still sees three calls.
                let mut rest = VecDeque::with_capacity(2);
                if !body.is_empty() {
                    rest.push_back(Event::Data(body));
                }
                rest.push_back(Event::Complete(trailers));
                target.st.lock().backlog = rest;
                if self.on_headers(py, target, h, &head)? {
                    self.pause(target);
                    return Ok(());
                }
                LoopBridge::flush_backlog(me.bind(py), token);
            }
            Event::Complete(trailers) => {
                self.remove(token);
                h.call_method1(intern!(py, "on_complete"), (raw_list(py, &trailers)?,))
                    .map_err(|e| {
                        e.write_unraisable(py, Some(h));
                    })
                    .ok();
            }
            Event::Error(e) => {
                self.remove(token);
                let exc = self.error_value(py, target, &e)?;
                if let Err(err) = h.call_method1(intern!(py, "on_error"), (exc,)) {
                    err.write_unraisable(py, Some(h));
                }
            }
            Event::BodySent(b) => {
                h.call_method1(intern!(py, "on_body_sent"), (PyBytes::new(py, &b),))?;
            }
            Event::Upgrade(head, fd, rest) => {
                self.remove(token);
                let socket = names(py)?
                    .upgraded_socket
                    .bind(py)
                    .call1((platform::into_raw(fd), PyBytes::new(py, &rest)))?;
                let r = h.call_method1(
                    intern!(py, "on_upgrade"),
                    (head.status, raw_list(py, &head.headers)?, socket),
                );
                if let Err(err) = r {
                    err.write_unraisable(py, Some(h));
                }
            }
            Event::BodyPull => self.pull_body(py, target)?,
            _ => {}
        }
        Ok(())
    }

    /// Calls `on_headers`; true when the handler paused (returned False).
    fn on_headers<'py>(
        &self,
        py: Python<'py>,
        target: &Target,
        h: &Bound<'py, PyAny>,
        head: &Head,
    ) -> PyResult<bool> {
        let control = self.control(py, target);
        let r = h.call_method1(
            intern!(py, "on_headers"),
            (
                head.status,
                raw_list(py, &head.headers)?,
                control.getattr(intern!(py, "resume"))?,
                latin1(py, &head.reason),
            ),
        )?;
        Ok(is_false(&r))
    }

    fn pause(&self, target: &Target) {
        target.st.lock().paused = true;
        if let Some(live) = &target.live {
            live.paused();
        }
        if let Some(ctl) = &target.ctl {
            ctl.set_paused(true);
        }
    }

    /// The request's `Control` (made with its target in `Core::build`).
    fn control<'py>(&self, py: Python<'py>, target: &Target) -> Bound<'py, Control> {
        let st = target.st.lock();
        let control = st.control.as_ref().expect("request targets have a control");
        control.bind(py).clone()
    }

    fn request_event(
        &self,
        py: Python<'_>,
        token: u64,
        target: &Arc<Target>,
        event: Event,
    ) -> PyResult<()> {
        let (Kind::Request { extras } | Kind::Stream { extras, .. }) = &target.kind else {
            unreachable!("a request or stream target")
        };
        match event {
            Event::Info(head) => {
                if let Some(cb) = &extras.on_info {
                    let info = PyDict::new(py);
                    info.set_item(intern!(py, "status_code"), head.status)?;
                    info.set_item(intern!(py, "headers"), header_dict(py, &head.headers)?)?;
                    cb.bind(py).call1((info,))?;
                }
            }
            Event::Headers(head) => {
                let control = self.control(py, target).unbind();
                let body = Body::new(
                    py,
                    self.r#loop.clone_ref(py),
                    Some(Controller::Engine(control)),
                    None,
                    PyDict::new(py),
                );
                let body = Bound::new(py, body)?;
                target.st.lock().body = Some(PyWeakrefReference::new(&body)?.unbind());
                self.resolve(py, target, extras, head, body.unbind())?;
            }
            Event::Full(head, data, trailers) => {
                self.remove(token);
                let body = Body::new(
                    py,
                    self.r#loop.clone_ref(py),
                    None,
                    Some(data),
                    header_dict(py, &trailers)?,
                );
                self.resolve(py, target, extras, head, Py::new(py, body)?)?;
            }
            Event::Data(b) => {
                if let Some(body) = target.body(py) {
                    body.get().push(py, b)?;
                }
            }
            Event::Complete(trailers) => {
                self.remove(token);
                if let Some(body) = target.take_body(py) {
                    body.get().end(py, &trailers)?;
                }
            }
            Event::Error(e) => {
                self.remove(token);
                let exc = self.error_value(py, target, &e)?;
                self.fail_body_or_future(py, target, exc)?;
            }
            Event::BodyPull => self.pull_body(py, target)?,
            _ => {}
        }
        Ok(())
    }

    /// A failed request: its body fails if the caller has it, else its future.
    fn fail_body_or_future(
        &self,
        py: Python<'_>,
        target: &Target,
        exc: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Some(body) = target.take_body(py) {
            return Body::fail(&body, exc);
        }
        match target.take_future(py) {
            Some(f) => set_exception(py, &f, exc),
            None => Ok(()),
        }
    }

    /// Resolves `request()`'s future with a `ResponseData` (and lets go of
    /// the future: from now on only the caller holds the response).
    fn resolve(
        &self,
        py: Python<'_>,
        target: &Target,
        extras: &RequestExtras,
        head: Head,
        body: Py<Body>,
    ) -> PyResult<()> {
        let Some(future) = target.take_future(py) else {
            return Ok(());
        };
        let status = head.status;
        let rd = ResponseData::new(head, body.clone_ref(py), extras.opaque(py));
        let rd = Bound::new(py, rd)?;
        if extras.throw_on_error && status >= 400 {
            names(py)?.reject_status.bind(py).call1((future, rd))?;
            return Ok(());
        }
        if !set_result(py, &future, rd.into_any())? {
            // Nobody waits for it (the caller was cancelled): release the body.
            body.get().discard();
        }
        Ok(())
    }

    /// The socket can take another chunk of the request body.
    fn pull_body(&self, py: Python<'_>, target: &Target) -> PyResult<()> {
        let (source, started) = {
            let st = target.st.lock();
            (
                st.source.as_ref().map(|s| s.clone_ref(py)),
                st.pulling_started,
            )
        };
        let Some(source) = source else { return Ok(()) };
        let puller = if started {
            source.into_bound(py)
        } else {
            let control = self.control(py, target);
            let p = names(py)?.start_body.bind(py).call1((source, control))?;
            let mut st = target.st.lock();
            st.source = Some(p.clone().unbind());
            st.pulling_started = true;
            p
        };
        puller.call_method0(intern!(py, "pull"))?;
        Ok(())
    }

    fn dispatcher_event(
        &self,
        py: Python<'_>,
        token: u64,
        owner: &Py<PyAny>,
        live: &Live,
        event: Event,
    ) -> PyResult<()> {
        let Ok(obj) = owner.bind(py).call0() else {
            return Ok(());
        };
        if obj.is_none() {
            self.remove(token);
            return Ok(());
        }
        let (name, err) = match &event {
            Event::Connected(_) => ("connect", None),
            Event::Disconnected(e) => ("disconnect", Some(e)),
            Event::ConnectionError(e) => ("connection_error", Some(e)),
            Event::Drain => ("drain", None),
            Event::Closed => {
                let here = SinkRef {
                    sink: self.queue.clone(),
                    token,
                };
                if !live.closed_now(here) {
                    return Ok(());
                }
                ("closed", None)
            }
            _ => return Ok(()),
        };
        let detail = match (err, &event) {
            (Some(e), _) => to_exception(py, e)?.into_any(),
            (None, Event::Connected(Some(info))) => conn_info(py, info)?.into_any(),
            (None, _) => py.None().into_bound(py),
        };
        let args = (PyString::new(py, name), detail);
        if let Err(e) = obj.call_method1(intern!(py, "_on_event"), args) {
            e.write_unraisable(py, Some(&obj));
        }
        Ok(())
    }
}

/// A new connection's `ConnInfo` as the dict `client:connected` shows.
fn conn_info<'py>(py: Python<'py>, info: &ConnInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let (peer, peer_port) = info.peer.clone().unzip();
    let (local, local_port) = info.local.clone().unzip();
    d.set_item(intern!(py, "peer_address"), peer)?;
    d.set_item(intern!(py, "peer_port"), peer_port.flatten())?;
    d.set_item(intern!(py, "local_address"), local)?;
    d.set_item(intern!(py, "local_port"), local_port.flatten())?;
    d.set_item(intern!(py, "tls_version"), info.tls_version)?;
    let alpn = info.alpn.as_deref().map(String::from_utf8_lossy);
    d.set_item(intern!(py, "alpn"), alpn)?;
    d.set_item(intern!(py, "reused"), info.tls_resumed)?;
    Ok(d)
}

/// Whether a handler returned exactly `False` (its way to pause reading).
fn is_false(r: &Bound<'_, PyAny>) -> bool {
    r.is(&*pyo3::types::PyBool::new(r.py(), false))
}

/// Resolves `future` unless it is done (cancelled); false if it was.
fn set_result(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    value: Bound<'_, PyAny>,
) -> PyResult<bool> {
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(false);
    }
    future.call_method1(intern!(py, "set_result"), (value,))?;
    Ok(true)
}

fn set_exception(py: Python<'_>, future: &Bound<'_, PyAny>, exc: Bound<'_, PyAny>) -> PyResult<()> {
    if !future.call_method0(intern!(py, "done"))?.is_truthy()? {
        future.call_method1(intern!(py, "set_exception"), (exc,))?;
    }
    Ok(())
}

/// The handle a handler or body gets for one request: `abort`, `resume`,
/// `pause`, and (for streaming request bodies) `write`/`end`.
/// Weakly referenceable: a `signal=` listener must not keep a finished
/// request's handle alive (`_api_common.watch_signal`).
#[pyclass(frozen, weakref, module = "undipy._undipy")]
pub struct Control {
    token: u64,
    ctl: Arc<RequestCtl>,
    bridge: Py<LoopBridge>,
}

impl Control {
    pub fn new(token: u64, ctl: Arc<RequestCtl>, bridge: Py<LoopBridge>) -> Control {
        Control { token, ctl, bridge }
    }

    /// Aborts with the default error (used when a body is dropped or dumped).
    pub fn abort_quietly(&self) {
        if self.ctl.abort() {
            self.bridge
                .get()
                .push(self.token, Event::Error(Error::RequestAborted));
        }
    }
}

#[pymethods]
impl Control {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.bridge)
    }

    /// Aborts the request: its handler gets `on_error(error)` (default
    /// `RequestAbortedError`) soon after, and nothing else.
    #[pyo3(signature = (error=None))]
    fn abort(&self, error: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        if let Some(e) = &error {
            if !e.is_instance_of::<pyo3::exceptions::PyBaseException>() {
                return Err(PyTypeError::new_err("abort() takes an exception"));
            }
        }
        if !self.ctl.abort() {
            return Ok(());
        }
        let b = self.bridge.get();
        if let Some(t) = b.target(self.token) {
            t.st.lock().abort_reason = error.map(Bound::unbind);
        }
        b.push(self.token, Event::Error(Error::RequestAborted));
        Ok(())
    }

    /// Starts reading again after a handler returned False.
    fn resume(&self, py: Python<'_>) -> PyResult<()> {
        let b = self.bridge.get();
        let Some(t) = b.target(self.token) else {
            self.ctl.set_paused(false);
            return Ok(());
        };
        let has_backlog = {
            let mut st = t.st.lock();
            st.paused = false;
            !st.backlog.is_empty()
        };
        if has_backlog {
            let cb = self.bridge.bind(py).getattr(intern!(py, "flush_backlog"))?;
            b.r#loop
                .bind(py)
                .call_method1(intern!(py, "call_soon"), (cb, self.token))?;
        } else {
            self.ctl.set_paused(false);
        }
        Ok(())
    }

    /// The body's reader now waits for each piece (used by bodies): pieces
    /// queued quietly so far must reach it.
    pub fn listen(&self) {
        if self.ctl.listen() {
            self.bridge.get().queue.flush();
        }
    }

    /// Stops reading the socket of this request (used by bodies).
    pub fn pause(&self) {
        self.ctl.set_paused(true);
    }

    /// Resumes reading without touching handler state (used by bodies).
    pub fn unpause(&self) {
        self.ctl.set_paused(false);
    }

    /// Queues one chunk of a streaming request body; `end`: the last one.
    #[pyo3(signature = (chunk, end=false))]
    fn write(&self, chunk: &Bound<'_, PyAny>, end: bool) -> PyResult<()> {
        let Some(data) = crate::options::bytes_like(chunk)? else {
            return Err(PyTypeError::new_err(format!(
                "request body chunks must be bytes or str, not {}",
                chunk.get_type().name()?
            )));
        };
        self.ctl.push_chunk(Some(data), end);
        Ok(())
    }

    /// Ends a streaming request body.
    fn end(&self) {
        self.ctl.push_chunk(None, true);
    }

    #[getter]
    fn aborted(&self) -> bool {
        self.ctl.is_aborted()
    }
}
