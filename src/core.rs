//! `Core`: the Python handle on one engine `Pool` (a `Client` is a pool of
//! one connection). The Python `Client` and `Pool` classes wrap it.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::bridge::{Control, Kind, Live, LoopBridge, Target, TargetState};
use crate::client_options::ClientOptions;
use crate::dispatcher::{runtime, Error, Origin, Pool, Request, SinkRef};
use crate::errors::{forget_user_error, to_pyerr, user_error};
use crate::options::{self, Parsed};

#[pyclass(frozen, module = "undipy._undipy")]
pub struct Core {
    pool: Arc<Pool>,
    generation: u64,
    /// Where dispatcher events go now: a bridge and the token there.
    events: Mutex<Option<(Py<LoopBridge>, u64)>>,
    /// Requests not yet ended for their handlers.
    live: Arc<Live>,
    /// The error given to `destroy`, kept for as long as this dispatcher lives.
    user_error: Mutex<Option<Error>>,
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(e) = self.user_error.lock().take() {
            forget_user_error(&e);
        }
    }
}

#[pymethods]
impl Core {
    /// `options` arrive validated by the Python layer (`ClientOptions`).
    #[new]
    fn new(
        py: Python<'_>,
        host: String,
        port: u16,
        host_header: String,
        options: ClientOptions,
    ) -> PyResult<Self> {
        let origin = Origin {
            host,
            port,
            host_header: Bytes::from(host_header),
            socket_path: None,
        };
        let cfg = options.into_config(py, origin)?;
        let rt = runtime::handle()?;
        Ok(Core {
            pool: Pool::new(cfg, rt),
            generation: runtime::generation(),
            events: Mutex::new(None),
            live: Arc::default(),
            user_error: Mutex::new(None),
        })
    }

    /// Sends dispatcher events to `bridge`'s loop from now on (the loop
    /// that used the dispatcher last, so that `close()` resolves on the loop
    /// that awaits it); `owner` is a weakref to the Python dispatcher.
    fn bind(&self, bridge: &Bound<'_, LoopBridge>, owner: Py<PyAny>) -> PyResult<()> {
        let pool = self.pool(bridge.py())?;
        let b = bridge.get();
        let token = b.next_token();
        b.insert(
            token,
            Target {
                kind: Kind::Dispatcher {
                    owner,
                    live: self.live.clone(),
                },
                ctl: None,
                live: None,
                st: Mutex::new(TargetState::default()),
            },
        );
        pool.bind_events(SinkRef {
            sink: b.queue.clone(),
            token,
        });
        let old = self.events.lock().replace((bridge.clone().unbind(), token));
        if let Some((old_bridge, old_token)) = old {
            old_bridge.get().remove(old_token);
        }
        Ok(())
    }

    /// undici's `dispatch`: False when busy. The handler's `on_connect` is
    /// called before this returns.
    #[pyo3(signature = (bridge, handler, opts=None))]
    fn dispatch(
        &self,
        py: Python<'_>,
        bridge: &Bound<'_, LoopBridge>,
        handler: Bound<'_, PyAny>,
        opts: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        self.check_fork(py)?;
        let parsed = options::parse(py, opts, false)?;
        check_handler(&handler, &parsed)?;
        let wants_body_sent = handler.hasattr(pyo3::intern!(py, "on_body_sent"))?;
        let (req, control) = self.build(
            py,
            bridge,
            parsed,
            Kind::Handler(handler.clone().unbind()),
            None,
        )?;
        let mut req = req;
        req.wants_body_sent = wants_body_sent;
        if self.pool.is_closed() {
            // Refused before it exists: only on_error runs, as in undici.
            return Ok(self.submit(req, true));
        }
        let ctl = req.ctl.clone();
        let abort = control.getattr(pyo3::intern!(py, "abort"))?;
        if let Err(e) =
            handler.call_method1(pyo3::intern!(py, "on_connect"), (abort, PyDict::new(py)))
        {
            control.call_method1("abort", (e.into_value(py),))?;
            return Ok(true);
        }
        if ctl.is_aborted() {
            return Ok(true);
        }
        Ok(self.submit(req, true))
    }

    /// `request()`'s engine half: `future` gets the `ResponseData`. Returns
    /// the request's `Control` (for abort on cancellation and signals).
    #[pyo3(signature = (bridge, future, opts=None))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bound<'py, LoopBridge>,
        future: Bound<'py, PyAny>,
        opts: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Control>> {
        self.check_fork(py)?;
        let mut parsed = options::parse(py, opts, true)?;
        let extras = std::mem::take(&mut parsed.extras);
        let kind = Kind::Request { extras };
        let (req, control) = self.build(py, bridge, parsed, kind, Some(future.unbind()))?;
        // Its body's pieces wake the loop only once someone iterates it.
        req.ctl.set_quiet();
        // request() never looks at "busy": no drain event for it.
        self.submit(req, false);
        Ok(control)
    }

    /// `stream()`'s engine half: the body goes into the writable `factory`
    /// returns, `future` gets the `StreamData`. Returns the `Control`.
    #[pyo3(signature = (bridge, future, factory, opts=None))]
    fn stream<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bound<'py, LoopBridge>,
        future: Bound<'py, PyAny>,
        factory: Bound<'py, PyAny>,
        opts: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Control>> {
        self.check_fork(py)?;
        let mut parsed = options::parse(py, opts, true)?;
        let extras = std::mem::take(&mut parsed.extras);
        let kind = Kind::Stream {
            factory: factory.unbind(),
            extras,
        };
        let (req, control) = self.build(py, bridge, parsed, kind, Some(future.unbind()))?;
        self.submit(req, false);
        Ok(control)
    }

    /// Stops taking requests; the dispatcher gets a "closed" event when done.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.pool(py)?.close();
        Ok(())
    }

    /// Fails everything now with `error` (an engine error is used when None).
    #[pyo3(signature = (error=None))]
    fn destroy(&self, py: Python<'_>, error: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let pool = self.pool(py)?;
        let err = match error {
            Some(e) => {
                let err = user_error(e.unbind());
                *self.user_error.lock() = Some(err.clone());
                err
            }
            None => Error::ClientDestroyed,
        };
        pool.destroy(err.clone());
        self.live.fail_paused(&err);
        Ok(())
    }

    #[getter]
    fn get_pipelining(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.pool(py)?.pipelining())
    }

    #[setter]
    fn set_pipelining(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.pool(py)?.set_pipelining(n);
        Ok(())
    }

    /// (connected, free, pending, queued, running, size)
    fn stats(&self, py: Python<'_>) -> PyResult<(usize, usize, usize, usize, usize, usize)> {
        let s = self.pool(py)?.stats();
        Ok((s.connected, s.free, s.pending, s.queued, s.running, s.size))
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.pool(py)?.is_closed())
    }

    #[getter]
    fn destroyed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.pool(py)?.is_destroyed())
    }
}

/// undici's `assertRequestHandler`: a handler missing a method it will need
/// is refused before anything is sent (its request would otherwise vanish).
fn check_handler(handler: &Bound<'_, PyAny>, parsed: &Parsed) -> PyResult<()> {
    let upgrade = parsed.spec.upgrade.is_some() || parsed.spec.method == "CONNECT";
    let needed: &[&str] = if upgrade {
        &["on_connect", "on_error", "on_upgrade"]
    } else {
        &[
            "on_connect",
            "on_error",
            "on_headers",
            "on_data",
            "on_complete",
        ]
    };
    // Looked up on the type first: no bound method is made for a class's own.
    let ty = handler.get_type();
    for name in needed {
        let callable = match ty.getattr_opt(*name)? {
            Some(m) => m.is_callable(),
            None => handler.getattr_opt(*name)?.is_some_and(|m| m.is_callable()),
        };
        if !callable {
            return Err(crate::errors::invalid_arg(
                handler.py(),
                format!(
                    "invalid {name} method: the handler has none \
                     (subclass undipy.DispatchHandler for no-op defaults)"
                ),
            ));
        }
    }
    Ok(())
}

impl Core {
    fn check_fork(&self, py: Python<'_>) -> PyResult<()> {
        self.pool(py).map(|_| ())
    }

    /// The engine pool, unless this process is a fork() child of the one
    /// that made it: its locks may have been held by threads the child does
    /// not have, so a child never touches it.
    fn pool(&self, py: Python<'_>) -> PyResult<&Arc<Pool>> {
        if runtime::generation() != self.generation {
            let _ = py;
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this dispatcher was created before fork(): create a new one in the child",
            ));
        }
        Ok(&self.pool)
    }

    /// Validates and registers a request with `bridge`.
    fn build<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bound<'py, LoopBridge>,
        parsed: Parsed,
        kind: Kind,
        future: Option<Py<PyAny>>,
    ) -> PyResult<(Request, Bound<'py, Control>)> {
        let b = bridge.get();
        let token = b.next_token();
        let sink = SinkRef {
            sink: b.queue.clone(),
            token,
        };
        let cfg = &self.pool.cfg;
        let req = Request::build(
            parsed.spec,
            &cfg.origin.host_header,
            cfg.strict_content_length,
            sink,
        )
        .map_err(|e| to_pyerr(py, &e))?;
        let control = Bound::new(
            py,
            Control::new(token, req.ctl.clone(), bridge.clone().unbind()),
        )?;
        let st = TargetState::new(control.clone().unbind(), parsed.source, future);
        b.insert(
            token,
            Target {
                kind,
                ctl: Some(req.ctl.clone()),
                live: Some(self.live.guard(req.sink.clone())),
                st: Mutex::new(st),
            },
        );
        Ok((req, control))
    }

    /// Hands the request to the engine (which fails it asynchronously if
    /// the dispatcher is closed, as undici does).
    fn submit(&self, req: Request, wants_drain: bool) -> bool {
        self.pool.dispatch(req, wants_drain)
    }
}
