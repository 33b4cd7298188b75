//! Response heads and chunks as Python values.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::dispatcher::codec::RawHeaders;

/// Header bytes as `str`: latin-1, so no byte is lost and nothing can fail.
pub fn latin1<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    if b.is_ascii() {
        // SAFETY-free fast path: ASCII is valid UTF-8.
        PyString::new(py, std::str::from_utf8(b).unwrap_or_default())
    } else {
        let s: String = b.iter().map(|&c| c as char).collect();
        PyString::new(py, &s)
    }
}

/// undici's raw form: a flat `[name, value, name, value, ...]` of bytes.
pub fn raw_list<'py>(py: Python<'py>, h: &RawHeaders) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (n, v) in h.iter() {
        list.append(PyBytes::new(py, n))?;
        list.append(PyBytes::new(py, v))?;
    }
    Ok(list)
}

/// `request()`'s form: lower-case `str` names; a repeated name gets a list.
pub fn header_dict<'py>(py: Python<'py>, h: &RawHeaders) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (n, v) in h.iter() {
        let name = if n.iter().any(u8::is_ascii_uppercase) {
            latin1(py, &n.to_ascii_lowercase())
        } else {
            latin1(py, n)
        };
        let value = latin1(py, v);
        match dict.get_item(&name)? {
            None => dict.set_item(name, value)?,
            Some(prev) => match prev.cast::<PyList>() {
                Ok(list) => list.append(value)?,
                Err(_) => dict.set_item(name, PyList::new(py, [prev, value.into_any()])?)?,
            },
        }
    }
    Ok(dict)
}

/// A flat `[name, value, ...]` list (a handler's headers) as `RawHeaders`:
/// one buffer, the fields' ranges in order.
pub fn raw_headers(flat: &[impl AsRef<[u8]>]) -> RawHeaders {
    fn append(buf: &mut Vec<u8>, b: &[u8]) -> (u32, u32) {
        let start = buf.len() as u32;
        buf.extend_from_slice(b);
        (start, buf.len() as u32)
    }
    let mut buf = Vec::with_capacity(flat.iter().map(|f| f.as_ref().len()).sum());
    let mut spans = Vec::with_capacity(flat.len() / 2);
    for pair in flat.chunks_exact(2) {
        let name = append(&mut buf, pair[0].as_ref());
        let value = append(&mut buf, pair[1].as_ref());
        spans.push((name, value));
    }
    RawHeaders {
        buf: buf.into(),
        spans,
    }
}

/// `str` back to the bytes `latin1` made it from (others become `?`).
pub fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}
