//! Python dispatch options to an engine `RequestSpec`: every conversion and
//! type check happens here, once, on the loop thread.

use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};

use crate::dispatcher::config::timeout_from_secs;
use crate::dispatcher::request::encode_uri_component;
use crate::dispatcher::{Body, RequestSpec};
use crate::errors::invalid_arg;

/// Bodies at least this large are borrowed from Python instead of copied.
const ZERO_COPY_MIN: usize = 16 * 1024;

/// What `request()` adds to the dispatch options.
#[derive(Default)]
pub struct RequestExtras {
    pub opaque: Option<Py<PyAny>>,
    pub on_info: Option<Py<PyAny>>,
    pub throw_on_error: bool,
}

impl RequestExtras {
    /// The caller's `opaque`, or None.
    pub fn opaque(&self, py: Python<'_>) -> Py<PyAny> {
        self.opaque
            .as_ref()
            .map_or_else(|| py.None(), |o| o.clone_ref(py))
    }
}

pub struct Parsed {
    pub spec: RequestSpec,
    /// A file, iterable or async iterable to pull the body from.
    pub source: Option<Py<PyAny>>,
    pub extras: RequestExtras,
}

/// Parses `opts`; `request_api` allows `opaque` and `on_info`.
pub fn parse(
    py: Python<'_>,
    opts: Option<&Bound<'_, PyDict>>,
    request_api: bool,
) -> PyResult<Parsed> {
    let mut p = Parsed {
        spec: RequestSpec::default(),
        source: None,
        extras: RequestExtras::default(),
    };
    let mut method = None;
    let mut path = None;
    if let Some(opts) = opts {
        for (k, v) in opts.iter() {
            let key = k.cast::<PyString>()?.to_str()?;
            if v.is_none() && key != "opaque" {
                continue;
            }
            match key {
                "path" => path = Some(string(py, &v, "path must be a string")?),
                "method" => method = Some(string(py, &v, "method must be a string")?),
                // Routing options: an Agent's; one origin's dispatcher has its own.
                "origin" => {
                    string(py, &v, "invalid origin")?;
                }
                "server_name" => {
                    string(py, &v, "invalid server_name")?;
                }
                "headers" => p.spec.headers = headers(py, &v)?,
                "query" => p.spec.query = Some(query(py, &v)?),
                "body" => {
                    let (body, source) = body(py, &v)?;
                    p.spec.body = Some(body);
                    p.source = source;
                }
                "idempotent" => p.spec.idempotent = Some(boolean(py, &v, key)?),
                "blocking" => p.spec.blocking = Some(boolean(py, &v, key)?),
                "reset" => p.spec.reset = Some(boolean(py, &v, key)?),
                "expect_continue" => p.spec.expect_continue = boolean(py, &v, key)?,
                "throw_on_error" => p.extras.throw_on_error = boolean(py, &v, key)?,
                "upgrade" if request_api => {
                    return Err(invalid_arg(
                        py,
                        "invalid upgrade: use upgrade() or dispatch()",
                    ))
                }
                "upgrade" => p.spec.upgrade = Some(string(py, &v, "upgrade must be a string")?),
                "headers_timeout" => p.spec.headers_timeout = Some(seconds(py, &v, key)?),
                "body_timeout" => p.spec.body_timeout = Some(seconds(py, &v, key)?),
                "opaque" if request_api => p.extras.opaque = Some(v.unbind()),
                "on_info" if request_api => {
                    if !v.is_callable() {
                        return Err(invalid_arg(py, "invalid on_info callback"));
                    }
                    p.extras.on_info = Some(v.unbind());
                }
                // The interceptors' own options (`undipy.interceptors`): a
                // dispatcher without that interceptor ignores them, as undici.
                "retry_options"
                | "max_redirections"
                | "throw_on_max_redirect"
                | "strip_headers_on_redirect"
                | "strip_headers_on_cross_origin_redirect"
                | "dump_max_size" => {}
                other => return Err(invalid_arg(py, format!("unknown option {other:?}"))),
            }
        }
    }
    p.spec.path = path.ok_or_else(|| invalid_arg(py, "path is required (as in path=\"/\")"))?;
    p.spec.method =
        method.ok_or_else(|| invalid_arg(py, "method is required (as in method=\"GET\")"))?;
    if request_api && p.spec.method == "CONNECT" {
        return Err(invalid_arg(py, "invalid method: use connect()"));
    }
    Ok(p)
}

fn string(py: Python<'_>, v: &Bound<'_, PyAny>, msg: &str) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Err(invalid_arg(py, msg)),
    }
}

fn boolean(py: Python<'_>, v: &Bound<'_, PyAny>, key: &str) -> PyResult<bool> {
    match v.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(invalid_arg(py, format!("invalid {key}"))),
    }
}

/// A duration in seconds: a finite, non-negative number.
pub fn seconds(py: Python<'_>, v: &Bound<'_, PyAny>, key: &str) -> PyResult<Duration> {
    let bad = || invalid_arg(py, format!("invalid {key}"));
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(bad());
    }
    let s: f64 = v.extract().map_err(|_| bad())?;
    if !s.is_finite() || s < 0.0 {
        return Err(bad());
    }
    Ok(timeout_from_secs(s))
}

/// A header name or value as bytes: `str` (UTF-8), `bytes`, or a number.
fn field(v: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(s) = v.cast::<PyString>() {
        return s.to_str().ok().map(|s| s.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Some(if b.is_true() {
            b"true".to_vec()
        } else {
            b"false".to_vec()
        });
    }
    if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        return v
            .str()
            .ok()
            .and_then(|s| s.to_str().ok().map(|s| s.as_bytes().to_vec()));
    }
    None
}

/// Pushes `name: value`, one line per element when `value` is a list.
fn push_header(
    py: Python<'_>,
    out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    name: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let name = field(name)
        .filter(|_| !name.is_instance_of::<PyBool>())
        .ok_or_else(|| invalid_arg(py, "invalid header key"))?;
    if value.is_none() {
        return Ok(());
    }
    let bad = || {
        invalid_arg(
            py,
            format!("invalid {} header", String::from_utf8_lossy(&name)),
        )
    };
    if let Ok(list) = value.cast::<PyList>() {
        for item in list.iter() {
            if !item.is_none() {
                out.push((name.clone(), field(&item).ok_or_else(bad)?));
            }
        }
        return Ok(());
    }
    out.push((name.clone(), field(value).ok_or_else(bad)?));
    Ok(())
}

/// The three header forms: a dict, a flat `[name, value, ...]` list, or a
/// list of `(name, value)` pairs.
fn headers(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Ok(d) = v.cast::<PyDict>() {
        for (k, val) in d.iter() {
            push_header(py, &mut out, &k, &val)?;
        }
        return Ok(out);
    }
    let items: Vec<Bound<'_, PyAny>> = if let Ok(l) = v.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = v.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        return Err(invalid_arg(py, "headers must be a dict or a list"));
    };
    let pairs = items
        .first()
        .is_some_and(|f| f.is_instance_of::<PyTuple>() || f.is_instance_of::<PyList>());
    if pairs {
        for item in &items {
            let pair: Vec<Bound<'_, PyAny>> = item
                .try_iter()
                .and_then(|it| it.collect::<PyResult<Vec<_>>>())
                .ok()
                .filter(|p| p.len() == 2 && !item.is_instance_of::<PyString>())
                .ok_or_else(|| invalid_arg(py, "headers must be in key-value pair format"))?;
            push_header(py, &mut out, &pair[0], &pair[1])?;
        }
    } else {
        if items.len() % 2 != 0 {
            return Err(invalid_arg(py, "headers array must be even"));
        }
        for kv in items.chunks(2) {
            push_header(py, &mut out, &kv[0], &kv[1])?;
        }
    }
    Ok(out)
}

/// `{key: value | [values]}` encoded like Node's `querystring.stringify`
/// (also `undipy._undipy.encode_query`, for the top-level functions).
#[pyfunction]
#[pyo3(name = "encode_query")]
pub fn query(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<String> {
    let d = v
        .cast::<PyDict>()
        .map_err(|_| invalid_arg(py, "query must be a dict"))?;
    let mut out = String::new();
    let mut push = |k: &str, val: &Bound<'_, PyAny>| -> PyResult<()> {
        let text = if val.is_none() {
            String::new()
        } else {
            let f = field(val)
                .ok_or_else(|| invalid_arg(py, format!("invalid query value for {k:?}")))?;
            String::from_utf8_lossy(&f).into_owned()
        };
        if !out.is_empty() {
            out.push('&');
        }
        encode_uri_component(k, &mut out);
        out.push('=');
        encode_uri_component(&text, &mut out);
        Ok(())
    };
    for (k, val) in d.iter() {
        let key = k.str()?.to_str()?.to_owned();
        if let Ok(list) = val.cast::<PyList>() {
            for item in list.iter() {
                push(&key, &item)?;
            }
        } else {
            push(&key, &val)?;
        }
    }
    Ok(out)
}

/// A body given as bytes-like or text becomes `Body::Bytes`; files and
/// iterables are pulled later, as the socket takes them.
/// `bytes`, `str` (UTF-8), `bytearray` or `memoryview` as `Bytes`; a large
/// `bytes` is shared, not copied (it is immutable). None for anything else.
pub fn bytes_like(v: &Bound<'_, PyAny>) -> PyResult<Option<Bytes>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        let data = b.as_bytes();
        return Ok(Some(if data.len() >= ZERO_COPY_MIN {
            Bytes::from_owner(PyBackedBytes::from(b.clone()))
        } else {
            Bytes::copy_from_slice(data)
        }));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Some(Bytes::copy_from_slice(s.to_str()?.as_bytes())));
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(Some(Bytes::from(b.to_vec())));
    }
    if v.is_instance_of::<PyMemoryView>() {
        let data: Vec<u8> = v
            .py()
            .import("builtins")?
            .getattr("bytes")?
            .call1((v,))?
            .extract()?;
        return Ok(Some(Bytes::from(data)));
    }
    Ok(None)
}

fn body(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<(Body, Option<Py<PyAny>>)> {
    if let Some(bytes) = bytes_like(v)? {
        return Ok((Body::Bytes(bytes), None));
    }
    let is_file = v.hasattr("read")?;
    let is_stream = is_file || v.hasattr("__aiter__")? || v.hasattr("__iter__")?;
    if is_stream && !v.is_instance_of::<PyDict>() {
        let length = if is_file { file_length(v) } else { None };
        return Ok((Body::Stream { length }, Some(v.clone().unbind())));
    }
    Err(invalid_arg(
        py,
        "body must be bytes, str, a file object, an iterable or an async iterable",
    ))
}

/// What is left to read of a binary file whose size is known: a regular
/// file (`fstat`, on Unix) or a seekable stream (`seek`/`tell`), from where
/// it is now. None for text files, pipes, sockets and anything that fails.
fn file_length(f: &Bound<'_, PyAny>) -> Option<u64> {
    if f.hasattr("encoding").unwrap_or(true) {
        return None; // text mode: the bytes sent are not the bytes stored
    }
    let pos: u64 = f.call_method0("tell").ok()?.extract().ok()?;
    #[cfg(unix)]
    if let Some(fd) = f
        .call_method0("fileno")
        .ok()
        .and_then(|n| n.extract::<i32>().ok())
    {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a `stat` for a valid fd, or fails.
        if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: fstat succeeded, so the struct is initialised.
        let st = unsafe { st.assume_init() };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        return Some((st.st_size as u64).saturating_sub(pos));
    }
    if !f.call_method0("seekable").ok()?.is_truthy().ok()? {
        return None;
    }
    let end: u64 = f.call_method1("seek", (0, 2)).ok()?.extract().ok()?;
    f.call_method1("seek", (pos,)).ok()?;
    Some(end.saturating_sub(pos))
}
