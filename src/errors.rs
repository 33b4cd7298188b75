//! Engine errors to Python exceptions: one place, one class per variant.
//! The classes are defined in `undipy/errors.py` and looked up once.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::dispatcher::Error;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let m = ERRORS.get_or_try_init(py, || py.import("undipy.errors").map(Bound::unbind))?;
    Ok(m.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

fn class_name(e: &Error) -> &'static str {
    match e {
        Error::ConnectTimeout => "ConnectTimeoutError",
        Error::HeadersTimeout => "HeadersTimeoutError",
        Error::HeadersOverflow => "HeadersOverflowError",
        Error::BodyTimeout => "BodyTimeoutError",
        Error::InvalidArgument(_) => "InvalidArgumentError",
        Error::RequestAborted => "RequestAbortedError",
        Error::Informational(_) => "InformationalError",
        Error::RequestContentLengthMismatch => "RequestContentLengthMismatchError",
        Error::ResponseContentLengthMismatch => "ResponseContentLengthMismatchError",
        Error::ClientDestroyed => "ClientDestroyedError",
        Error::ClientClosed => "ClientClosedError",
        Error::Socket(_) | Error::ProxyRefused(_) => "SocketError",
        Error::ProxyTls(_) => "SecureProxyConnectionError",
        Error::ResponseExceededMaxSize => "ResponseExceededMaxSizeError",
        Error::NotSupported(_) => "NotSupportedError",
        Error::Parser { .. } => "HTTPParserError",
        Error::User(_) => "UndiciError",
    }
}

/// Errors callers handed to `destroy(error)`, by handle.
static USER_ERRORS: Mutex<Vec<(u64, Py<PyAny>)>> = Mutex::new(Vec::new());
static NEXT_USER: AtomicU64 = AtomicU64::new(1);

/// Keeps `exc` so the engine can name it as `Error::User`.
pub fn user_error(exc: Py<PyAny>) -> Error {
    let id = NEXT_USER.fetch_add(1, Ordering::Relaxed);
    USER_ERRORS.lock().push((id, exc));
    Error::User(id)
}

/// Forgets a user error once nothing can report it any more.
pub fn forget_user_error(e: &Error) {
    if let Error::User(id) = e {
        USER_ERRORS.lock().retain(|(k, _)| k != id);
    }
}

/// The exception instance for `e`.
pub fn to_exception<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    if let Error::User(id) = e {
        if let Some((_, exc)) = USER_ERRORS.lock().iter().find(|(k, _)| k == id) {
            return Ok(exc.bind(py).clone());
        }
    }
    let cls = class(py, class_name(e))?;
    match e {
        Error::Parser { code, .. } => cls.call1((e.to_string(), *code)),
        Error::ProxyRefused(status) => cls.call1((e.to_string(), *status)),
        _ => cls.call1((e.to_string(),)),
    }
}

/// `e` as a raised exception.
pub fn to_pyerr(py: Python<'_>, e: &Error) -> PyErr {
    match to_exception(py, e) {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// Shorthand for `InvalidArgumentError(msg)`.
pub fn invalid_arg(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    to_pyerr(py, &Error::InvalidArgument(msg.into()))
}
