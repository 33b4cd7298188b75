//! `stream()`'s native handler: each body chunk goes straight from the
//! event to the writable's `write`. Only a write that returns an awaitable
//! (or a writable with `drain()`) costs a Python task: reading pauses until
//! it finished.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::{names, set_result, Kind, LoopBridge, Target};
use crate::convert::header_dict;
use crate::dispatcher::{Event, Head};
use crate::options::RequestExtras;

/// The writable the factory returned.
pub struct Writer {
    write: Py<PyAny>,
    drain: Option<Py<PyAny>>,
    context: Py<PyDict>,
    /// The task finishing an awaitable write, while there is one.
    pending: Option<Py<PyAny>>,
}

impl Writer {
    /// The request ended: a write still pending will never be needed.
    pub fn cancel(self, py: Python<'_>) {
        if let Some(task) = self.pending {
            if let Err(e) = task.call_method0(py, intern!(py, "cancel")) {
                e.write_unraisable(py, None);
            }
        }
    }
}

impl LoopBridge {
    pub(super) fn stream_event(
        &self,
        py: Python<'_>,
        me: &Py<LoopBridge>,
        token: u64,
        target: &Arc<Target>,
        event: Event,
    ) -> PyResult<()> {
        let Kind::Stream { factory, extras } = &target.kind else {
            unreachable!("a stream target")
        };
        let error_body = target.st.lock().body.is_some();
        match event {
            // throw_on_error: the error body is read as request() reads it.
            Event::Headers(Head { status, .. }) | Event::Full(Head { status, .. }, ..)
                if extras.throw_on_error && status >= 400 =>
            {
                self.request_event(py, token, target, event)
            }
            ev @ (Event::Info(_) | Event::BodyPull) => self.request_event(py, token, target, ev),
            ev if error_body => self.request_event(py, token, target, ev),
            Event::Headers(head) => self.open_writer(py, target, factory, extras, &head),
            Event::Full(head, body, trailers) => {
                self.open_writer(py, target, factory, extras, &head)?;
                let mut rest = VecDeque::with_capacity(2);
                if !body.is_empty() {
                    rest.push_back(Event::Data(body));
                }
                rest.push_back(Event::Complete(trailers));
                target.st.lock().backlog = rest;
                LoopBridge::flush_backlog(me.bind(py), token);
                Ok(())
            }
            Event::Data(chunk) => self.write(py, target, chunk),
            Event::Complete(trailers) => {
                self.remove(token);
                let writer = target.st.lock().writer.take();
                let context = match writer {
                    Some(w) => w.context.into_bound(py),
                    None => PyDict::new(py),
                };
                let data = names(py)?.stream_data.bind(py).call1((
                    extras.opaque(py),
                    header_dict(py, &trailers)?,
                    context,
                ))?;
                match target.take_future(py) {
                    Some(f) => set_result(py, &f, data).map(drop),
                    None => Ok(()),
                }
            }
            Event::Error(e) => {
                self.remove(token);
                let exc = self.error_value(py, target, &e)?;
                let writer = target.st.lock().writer.take();
                if let Some(w) = writer {
                    w.cancel(py);
                }
                self.fail_body_or_future(py, target, exc)
            }
            _ => Ok(()),
        }
    }

    /// Calls the factory and keeps the writable's `write` (and `drain`).
    fn open_writer(
        &self,
        py: Python<'_>,
        target: &Target,
        factory: &Py<PyAny>,
        extras: &RequestExtras,
        head: &Head,
    ) -> PyResult<()> {
        let context = PyDict::new(py);
        let (write, drain): (Py<PyAny>, Option<Py<PyAny>>) = names(py)?
            .open_writable
            .bind(py)
            .call1((
                factory,
                head.status,
                header_dict(py, &head.headers)?,
                extras.opaque(py),
                &context,
            ))?
            .extract()?;
        target.st.lock().writer = Some(Writer {
            write,
            drain,
            context: context.unbind(),
            pending: None,
        });
        Ok(())
    }

    fn write(&self, py: Python<'_>, target: &Target, chunk: Bytes) -> PyResult<()> {
        let (write, drain) = match &target.st.lock().writer {
            Some(w) => (
                w.write.clone_ref(py),
                w.drain.as_ref().map(|d| d.clone_ref(py)),
            ),
            None => return Ok(()),
        };
        let r = write.bind(py).call1((PyBytes::new(py, &chunk),))?;
        if drain.is_none() && (r.is_none() || !r.hasattr(intern!(py, "__await__"))?) {
            return Ok(());
        }
        self.pause(target);
        let control = self.control(py, target);
        let task = names(py)?
            .finish_write
            .bind(py)
            .call1((r, drain, control))?;
        if let Some(w) = target.st.lock().writer.as_mut() {
            w.pending = Some(task.unbind());
        }
        Ok(())
    }
}
