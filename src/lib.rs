//! undipy's native module: module wiring only.

pub mod bench_server;
mod bridge;
mod client_options;
mod convert;
mod core;
pub mod dispatcher;
mod errors;
mod options;
mod response;

use pyo3::prelude::*;

/// Serves the built-in benchmark endpoints on an already bound, listening
/// socket (given by fd) until the process ends. Used by `undipy bench`, on
/// Unix (it hands the socket to a child process).
#[cfg(unix)]
#[pyfunction]
fn serve_bench(py: Python<'_>, fd: i32) -> PyResult<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller hands over a listening socket it no longer uses.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    py.detach(|| bench_server::serve(listener))?;
    Ok(())
}

/// Whether connections report what they reached (`client:connected` has a
/// subscriber); off, they skip the lookups.
#[pyfunction]
fn observe_connections(on: bool) {
    dispatcher::event::OBSERVE_CONNECTIONS.store(on, std::sync::atomic::Ordering::Relaxed);
}

#[pymodule(gil_used = true)]
mod _undipy {
    #[pymodule_export]
    use super::observe_connections;
    #[cfg(unix)]
    #[pymodule_export]
    use super::serve_bench;
    #[pymodule_export]
    use crate::bridge::{Control, LoopBridge};
    #[pymodule_export]
    use crate::core::Core;
    #[pymodule_export]
    use crate::options::query;
    #[pymodule_export]
    use crate::response::{Body, ResponseData};

    use pyo3::prelude::*;

    /// The version, from Cargo.toml (the one place it is written).
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
