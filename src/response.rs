//! `request()`'s response objects, native so a response costs few Python
//! calls: `ResponseData` (headers turned into a dict only when read) and
//! `Body`, whose chunks stay Rust `Bytes` until Python asks for them, so a
//! body read whole is copied once, into the final `bytes`.

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::Bytes;
use parking_lot::Mutex;
use pyo3::exceptions::{PyResourceWarning, PyStopAsyncIteration, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use pyo3::PyTraverseError;

use crate::bridge::Control;
use crate::convert::{header_dict, latin1, latin1_bytes, raw_headers, raw_list};
use crate::dispatcher::codec::RawHeaders;
use crate::dispatcher::Head;

/// Who a body tells to pause, resume or stop its request: the engine's
/// handle, or, for a request sent through a dispatcher written in Python,
/// the request's handler (`pause()`, `resume()`, `abort()`).
pub enum Controller {
    Engine(Py<Control>),
    Python(Py<PyAny>),
}

impl Controller {
    fn call(&self, name: &str) {
        if let Controller::Python(h) = self {
            Python::attach(|py| {
                if let Err(e) = h.call_method0(py, name) {
                    e.write_unraisable(py, Some(h.bind(py)));
                }
            });
        }
    }

    fn pause(&self) {
        match self {
            Controller::Engine(c) => c.get().pause(),
            python => python.call("pause"),
        }
    }

    fn unpause(&self) {
        match self {
            Controller::Engine(c) => c.get().unpause(),
            python => python.call("resume"),
        }
    }

    /// Stops the request: its reader is gone.
    fn abort(&self) {
        match self {
            Controller::Engine(c) => c.get().abort_quietly(),
            python => python.call("abort"),
        }
    }

    /// The reader now waits for each piece (see `Control::listen`).
    fn listen(&self) {
        if let Controller::Engine(c) = self {
            c.get().listen();
        }
    }

    fn clone_ref(&self, py: Python<'_>) -> Controller {
        match self {
            Controller::Engine(c) => Controller::Engine(c.clone_ref(py)),
            Controller::Python(h) => Controller::Python(h.clone_ref(py)),
        }
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Controller::Engine(c) => visit.call(c),
            Controller::Python(h) => visit.call(h),
        }
    }
}

/// Buffered bytes above which a body being iterated stops the socket.
const HIGH_WATER_MARK: usize = 64 * 1024;

/// What an awaiting consumer wants once more data or the end arrives.
enum Want {
    Chunk,
    All(Finish),
    Dump { limit: usize, seen: usize },
}

#[derive(Clone, Copy)]
enum Finish {
    Bytes,
    Text,
    Json,
}

enum State {
    Streaming,
    Done,
    Failed(Py<PyAny>),
}

/// Who consumes the body: it can be consumed once, by one of them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Unused,
    /// An async iterator (the body itself): `__aiter__` again is fine.
    Iterating,
    /// Read whole, dumped or closed.
    Taken,
}

/// Who takes over feeding a body whose request failed after its head (the
/// retry interceptor on the composed fast path, `undipy._passthrough`), and
/// the head it resumes.
struct Rescue {
    callback: Py<PyAny>,
    status: u16,
    headers: RawHeaders,
}

struct Inner {
    chunks: VecDeque<Bytes>,
    size: usize,
    /// Bytes pushed so far (where a rescue resumes).
    received: u64,
    rescue: Option<Rescue>,
    state: State,
    used: Use,
    /// The pending consumer: what it wants and the future to resolve.
    waiter: Option<(Want, Py<PyAny>)>,
    /// Present while the request runs.
    control: Option<Controller>,
    paused: bool,
}

/// The response body: an async iterable of `bytes` with the body mixin.
/// Weakly referenced by its request's bridge target, so that a body its
/// reader dropped is freed (which aborts the request).
#[pyclass(frozen, weakref, module = "undipy._undipy")]
pub struct Body {
    inner: Mutex<Inner>,
    r#loop: Py<PyAny>,
    trailers: Py<PyDict>,
}

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn join<'py>(py: Python<'py>, chunks: &mut VecDeque<Bytes>) -> PyResult<Bound<'py, PyBytes>> {
    if chunks.len() == 1 {
        let c = chunks.pop_front().expect("one chunk");
        return Ok(PyBytes::new(py, &c));
    }
    let total: usize = chunks.iter().map(Bytes::len).sum();
    // Not `PyBytes::new_with`: it zeroes the buffer first, and every byte is
    // about to be overwritten.
    // SAFETY: a NULL source makes CPython allocate `total` uninitialised
    // bytes, which are all written below before the object is shared.
    unsafe {
        let obj =
            pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), total as pyo3::ffi::Py_ssize_t);
        let obj = Bound::from_owned_ptr_or_err(py, obj)?.cast_into_unchecked::<PyBytes>();
        let mut at = pyo3::ffi::PyBytes_AsString(obj.as_ptr()).cast::<u8>();
        for c in chunks.drain(..) {
            std::ptr::copy_nonoverlapping(c.as_ptr(), at, c.len());
            at = at.add(c.len());
        }
        Ok(obj)
    }
}

fn finish<'py>(
    py: Python<'py>,
    how: Finish,
    chunks: &mut VecDeque<Bytes>,
) -> PyResult<Bound<'py, PyAny>> {
    let data = join(py, chunks)?;
    match how {
        Finish::Bytes => Ok(data.into_any()),
        Finish::Text => Ok(PyString::from_bytes(py, data.as_bytes())
            .or_else(|_| {
                let s = String::from_utf8_lossy(data.as_bytes()).into_owned();
                Ok::<_, PyErr>(PyString::new(py, &s))
            })?
            .into_any()),
        Finish::Json => {
            let loads = JSON_LOADS.get_or_try_init(py, || {
                py.import("json")?.getattr("loads").map(Bound::unbind)
            })?;
            loads.bind(py).call1((data,))
        }
    }
}

impl Body {
    pub fn new(
        py: Python<'_>,
        r#loop: Py<PyAny>,
        control: Option<Controller>,
        data: Option<Bytes>,
        trailers: Bound<'_, PyDict>,
    ) -> Body {
        let done = control.is_none();
        let mut chunks = VecDeque::new();
        let mut size = 0;
        if let Some(d) = data.filter(|d| !d.is_empty()) {
            size = d.len();
            chunks.push_back(d);
        }
        let _ = py;
        Body {
            inner: Mutex::new(Inner {
                chunks,
                size,
                received: 0,
                rescue: None,
                state: if done { State::Done } else { State::Streaming },
                used: Use::Unused,
                waiter: None,
                control,
                paused: false,
            }),
            r#loop,
            trailers: trailers.unbind(),
        }
    }

    fn future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.r#loop
            .bind(py)
            .call_method0(intern!(py, "create_future"))
    }

    /// A future the bridge resolves once the body can answer `want`; reading
    /// resumes if it was paused. A read cancelled while it waits (its task
    /// was) aborts the request at once: nobody is left to read the rest.
    fn wait<'py>(
        &self,
        py: Python<'py>,
        inner: &mut Inner,
        want: Want,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.future(py)?;
        if let Some(c) = &inner.control {
            if !matches!(want, Want::All(_)) {
                c.listen();
            }
            let on_done = Bound::new(py, AbortIfCancelled(c.clone_ref(py)))?;
            fut.call_method1(intern!(py, "add_done_callback"), (on_done,))?;
        }
        inner.waiter = Some((want, fut.clone().unbind()));
        unpause(py, inner);
        Ok(fut)
    }

    fn resolved<'py>(
        &self,
        py: Python<'py>,
        value: PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.future(py)?;
        match value {
            Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,))?,
            Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
        };
        Ok(fut)
    }

    fn take_use(&self, inner: &mut Inner, how: Use) -> PyResult<()> {
        match (inner.used, how) {
            (Use::Unused, _) => {
                inner.used = how;
                Ok(())
            }
            (Use::Iterating, Use::Iterating) => Ok(()),
            _ => Err(PyTypeError::new_err(
                "unusable: the body was already consumed",
            )),
        }
    }

    /// Resolves with the whole body, transformed by `how`.
    fn all<'py>(&self, py: Python<'py>, how: Finish) -> PyResult<Bound<'py, PyAny>> {
        let mut inner = self.inner.lock();
        self.take_use(&mut inner, Use::Taken)?;
        match &inner.state {
            State::Done => {
                let v = finish(py, how, &mut inner.chunks);
                drop(inner);
                self.resolved(py, v)
            }
            State::Failed(e) => {
                let e = PyErr::from_value(e.bind(py).clone());
                drop(inner);
                self.resolved(py, Err(e))
            }
            State::Streaming => self.wait(py, &mut inner, Want::All(how)),
        }
    }

    // --- fed by the bridge -------------------------------------------------

    pub fn push(&self, py: Python<'_>, chunk: Bytes) -> PyResult<()> {
        let mut inner = self.inner.lock();
        inner.received += chunk.len() as u64;
        match inner.waiter.take() {
            Some((Want::Chunk, fut)) => {
                drop(inner);
                resolve(py, &fut, PyBytes::new(py, &chunk).into_any())?;
            }
            Some((Want::Dump { limit, seen }, fut)) => {
                let seen = seen + chunk.len();
                if seen > limit {
                    let control = inner.control.take();
                    inner.state = State::Done;
                    drop(inner);
                    if let Some(c) = control {
                        c.abort();
                    }
                    resolve(py, &fut, py.None().into_bound(py))?;
                } else {
                    inner.waiter = Some((Want::Dump { limit, seen }, fut));
                }
            }
            w => {
                inner.waiter = w;
                inner.size += chunk.len();
                inner.chunks.push_back(chunk);
                let collecting = matches!(inner.waiter, Some((Want::All(_), _)));
                if !collecting && inner.size >= HIGH_WATER_MARK && !inner.paused {
                    inner.paused = true;
                    if let Some(c) = &inner.control {
                        c.pause();
                    }
                }
            }
        }
        Ok(())
    }

    pub fn end(&self, py: Python<'_>, trailers: &RawHeaders) -> PyResult<()> {
        if !trailers.is_empty() {
            self.trailers
                .bind(py)
                .update(header_dict(py, trailers)?.as_mapping())?;
        }
        self.ended(py)
    }

    fn ended(&self, py: Python<'_>) -> PyResult<()> {
        let mut inner = self.inner.lock();
        inner.state = State::Done;
        inner.control = None;
        inner.rescue = None;
        let waiter = inner.waiter.take();
        match waiter {
            Some((Want::Chunk, fut)) => {
                drop(inner);
                reject(py, &fut, PyStopAsyncIteration::new_err(()))?;
            }
            Some((Want::All(how), fut)) => {
                let v = finish(py, how, &mut inner.chunks);
                drop(inner);
                match v {
                    Ok(v) => resolve(py, &fut, v)?,
                    Err(e) => reject(py, &fut, e)?,
                }
            }
            Some((Want::Dump { .. }, fut)) => {
                drop(inner);
                resolve(py, &fut, py.None().into_bound(py))?;
            }
            None => {}
        }
        Ok(())
    }

    pub fn fail(slf: &Bound<'_, Body>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut inner = this.inner.lock();
        if !matches!(inner.state, State::Streaming) {
            return Ok(());
        }
        if let Some(rescue) = inner.rescue.take() {
            let received = inner.received;
            drop(inner);
            if this.rescued(slf, rescue, &exc, received)? {
                return Ok(());
            }
            inner = this.inner.lock();
            if !matches!(inner.state, State::Streaming) {
                return Ok(());
            }
        }
        inner.state = State::Failed(exc.clone().unbind());
        inner.control = None;
        let waiter = inner.waiter.take();
        drop(inner);
        if let Some((_, fut)) = waiter {
            reject(py, &fut, PyErr::from_value(exc))?;
        }
        Ok(())
    }

    /// Offers a failed body to its rescue: `callback(body, error, received,
    /// status, raw headers)` returns the handler (`pause()`, `resume()`,
    /// `abort()`) that feeds the rest of it from now on, or None to let it
    /// fail. True if it was taken over (or finished meanwhile).
    fn rescued(
        &self,
        slf: &Bound<'_, Body>,
        rescue: Rescue,
        exc: &Bound<'_, PyAny>,
        received: u64,
    ) -> PyResult<bool> {
        let py = slf.py();
        let headers = raw_list(py, &rescue.headers)?;
        let args = (slf, exc, received, rescue.status, headers);
        let feeder = match rescue.callback.bind(py).call1(args) {
            Ok(f) if !f.is_none() => f,
            Ok(_) => return Ok(false),
            Err(e) => {
                e.write_unraisable(py, Some(slf.as_any()));
                return Ok(false);
            }
        };
        let mut inner = self.inner.lock();
        if matches!(inner.state, State::Streaming) {
            inner.control = Some(Controller::Python(feeder.unbind()));
            // The new feeder is not paused: the next push decides again.
            inner.paused = false;
        }
        Ok(true)
    }

    /// Nobody will read this body: stop its request. True if it was
    /// still arriving.
    pub fn discard(&self) -> bool {
        let mut inner = self.inner.lock();
        inner.chunks.clear();
        inner.size = 0;
        inner.rescue = None;
        let control = inner.control.take();
        drop(inner);
        match control {
            Some(c) => {
                c.abort();
                true
            }
            None => false,
        }
    }
}

fn unpause(py: Python<'_>, inner: &mut Inner) {
    let _ = py;
    if inner.paused {
        inner.paused = false;
        if let Some(c) = &inner.control {
            c.unpause();
        }
    }
}

fn resolve(py: Python<'_>, fut: &Py<PyAny>, v: Bound<'_, PyAny>) -> PyResult<()> {
    let f = fut.bind(py);
    if !f.call_method0(intern!(py, "done"))?.is_truthy()? {
        f.call_method1(intern!(py, "set_result"), (v,))?;
    }
    Ok(())
}

fn reject(py: Python<'_>, fut: &Py<PyAny>, e: PyErr) -> PyResult<()> {
    let f = fut.bind(py);
    if !f.call_method0(intern!(py, "done"))?.is_truthy()? {
        f.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?;
    }
    Ok(())
}

#[pymethods]
impl Body {
    // Cyclic GC: a failed body holds its exception, whose traceback holds
    // the frame that holds the response, which holds the body.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.r#loop)?;
        visit.call(&self.trailers)?;
        // Never block here; a body busy on this thread is simply not collected now.
        if let Some(inner) = self.inner.try_lock() {
            if let State::Failed(e) = &inner.state {
                visit.call(e)?;
            }
            if let Some((_, fut)) = &inner.waiter {
                visit.call(fut)?;
            }
            if let Some(c) = &inner.control {
                c.traverse(&visit)?;
            }
            if let Some(r) = &inner.rescue {
                visit.call(&r.callback)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Some(mut inner) = self.inner.try_lock() {
            if matches!(inner.state, State::Failed(_)) {
                inner.state = State::Done;
            }
            inner.waiter = None;
            inner.rescue = None;
        }
    }

    // --- fed from Python (a request through a dispatcher written in Python:
    // `undipy._request_handler`); `handler` has pause(), resume(), abort().

    #[staticmethod]
    fn _fed(py: Python<'_>, r#loop: Py<PyAny>, handler: Py<PyAny>) -> Body {
        let control = Some(Controller::Python(handler));
        Body::new(py, r#loop, control, None, PyDict::new(py))
    }

    #[pyo3(name = "_push")]
    fn push_from_python(&self, py: Python<'_>, chunk: &[u8]) -> PyResult<()> {
        self.push(py, Bytes::copy_from_slice(chunk))
    }

    #[pyo3(name = "_end")]
    fn end_from_python(&self, py: Python<'_>, trailers: &Bound<'_, PyDict>) -> PyResult<()> {
        self.trailers.bind(py).update(trailers.as_mapping())?;
        self.ended(py)
    }

    #[pyo3(name = "_fail")]
    fn fail_from_python(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        Body::fail(slf, exc)
    }

    /// Nobody will read this body (its caller is gone): stop its request.
    #[pyo3(name = "_discard")]
    fn discard_from_python(&self) {
        self.discard();
    }

    #[getter]
    fn body_used(&self) -> bool {
        self.inner.lock().used != Use::Unused
    }

    fn bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.all(py, Finish::Bytes)
    }

    fn text<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.all(py, Finish::Text)
    }

    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.all(py, Finish::Json)
    }

    /// Reads and drops up to `limit` bytes; a longer body closes the connection.
    #[pyo3(signature = (limit = 262144))]
    fn dump<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        let mut inner = self.inner.lock();
        inner.used = Use::Taken;
        let seen = std::mem::take(&mut inner.chunks)
            .iter()
            .map(Bytes::len)
            .sum::<usize>();
        inner.size = 0;
        if !matches!(inner.state, State::Streaming) || seen > limit {
            let control = inner.control.take();
            drop(inner);
            if let Some(c) = control {
                c.abort();
            }
            return self.resolved(py, Ok(py.None().into_bound(py)));
        }
        self.wait(py, &mut inner, Want::Dump { limit, seen })
    }

    /// Releases the body: the rest of it is not read.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.inner.lock().used = Use::Taken;
        self.discard();
        self.resolved(py, Ok(py.None().into_bound(py)))
    }

    fn __aiter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        {
            let this = slf.get();
            let mut inner = this.inner.lock();
            this.take_use(&mut inner, Use::Iterating)?;
        }
        Ok(slf)
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut inner = self.inner.lock();
        if let Some(chunk) = inner.chunks.pop_front() {
            inner.size -= chunk.len();
            if inner.size < HIGH_WATER_MARK {
                unpause(py, &mut inner);
            }
            drop(inner);
            return self.resolved(py, Ok(PyBytes::new(py, &chunk).into_any()));
        }
        match &inner.state {
            State::Done => {
                drop(inner);
                self.resolved(py, Err(PyStopAsyncIteration::new_err(())))
            }
            State::Failed(e) => {
                let e = PyErr::from_value(e.bind(py).clone());
                drop(inner);
                self.resolved(py, Err(e))
            }
            State::Streaming => self.wait(py, &mut inner, Want::Chunk),
        }
    }
}

/// A body dropped unread aborts its request (closing the connection) rather
/// than holding the connection forever, and says so with a ResourceWarning.
impl Drop for Body {
    fn drop(&mut self) {
        if self.discard() {
            Python::attach(|py| {
                let warned = PyErr::warn(
                    py,
                    &py.get_type::<PyResourceWarning>(),
                    c"a response body was garbage-collected before it was read: its request \
was aborted and its connection closed (read, dump() or aclose() every body)",
                    1,
                );
                if let Err(e) = warned {
                    e.write_unraisable(py, None);
                }
            });
        }
    }
}

/// A body read's done-callback: see `Body::wait`.
#[pyclass(frozen, module = "undipy._undipy")]
struct AbortIfCancelled(Controller);

#[pymethods]
impl AbortIfCancelled {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut
            .call_method0(intern!(fut.py(), "cancelled"))?
            .is_truthy()?
        {
            self.0.abort();
        }
        Ok(())
    }
}

/// What `request()` resolves to.
#[pyclass(frozen, module = "undipy._undipy")]
pub struct ResponseData {
    #[pyo3(get)]
    status_code: u16,
    reason: Bytes,
    raw: RawHeaders,
    headers: OnceLock<Py<PyDict>>,
    #[pyo3(get)]
    body: Py<Body>,
    #[pyo3(get)]
    opaque: Py<PyAny>,
    context: OnceLock<Py<PyDict>>,
}

impl ResponseData {
    pub fn new(head: Head, body: Py<Body>, opaque: Py<PyAny>) -> ResponseData {
        ResponseData {
            status_code: head.status,
            reason: head.reason,
            raw: head.headers,
            headers: OnceLock::new(),
            body,
            opaque,
            context: OnceLock::new(),
        }
    }
}

#[pymethods]
impl ResponseData {
    /// A response received through a dispatcher written in Python.
    #[staticmethod]
    fn _make(
        status_code: u16,
        status_text: &str,
        headers: Vec<PyBackedBytes>,
        body: Py<Body>,
        opaque: Py<PyAny>,
    ) -> ResponseData {
        let head = Head {
            status: status_code,
            reason: latin1_bytes(status_text).into(),
            headers: raw_headers(&headers),
        };
        ResponseData::new(head, body, opaque)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.body)?;
        visit.call(&self.opaque)?;
        visit.call(self.headers.get())?;
        visit.call(self.context.get())?;
        Ok(())
    }

    /// Whether the response has a field `name` (lower case), without
    /// making the headers dict.
    fn _has_header(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.raw.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The headers as received: `[name, value, ...]` as `bytes`.
    fn _raw_headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        raw_list(py, &self.raw)
    }

    /// Hands the body, if it fails before its end, to `callback` (see
    /// `Body::rescued`) with this response's head.
    fn _rescue_with(&self, callback: Py<PyAny>) {
        let mut inner = self.body.get().inner.lock();
        if matches!(inner.state, State::Streaming) {
            inner.rescue = Some(Rescue {
                callback,
                status: self.status_code,
                headers: self.raw.clone(),
            });
        }
    }

    /// Lower-case `str` names; a repeated name gets a list of values.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Some(h) = self.headers.get() {
            return Ok(h.bind(py).clone());
        }
        let h = header_dict(py, &self.raw)?;
        let _ = self.headers.set(h.clone().unbind());
        Ok(h)
    }

    #[getter]
    fn status_text<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        latin1(py, &self.reason)
    }

    /// Filled once the body has ended.
    #[getter]
    fn trailers<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        self.body.get().trailers.bind(py).clone()
    }

    #[getter]
    fn context<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        self.context
            .get_or_init(|| PyDict::new(py).unbind())
            .bind(py)
            .clone()
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let body = slf.get().body.bind(slf.py()).clone();
        body.get().resolved(slf.py(), Ok(slf.into_any()))
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.body.get().aclose(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "<ResponseData {} {:?}>",
            self.status_code,
            String::from_utf8_lossy(&self.reason)
        )
    }
}
