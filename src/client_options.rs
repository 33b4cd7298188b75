//! A dispatcher's constructor options as the Python layer validated them
//! (one dict, read by name), turned into the engine's `Config` once.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use crate::dispatcher::config::timeout_from_secs;
use crate::dispatcher::transport::{Proxy, TlsClient, TlsSettings};
use crate::dispatcher::{Config, Origin};
use crate::errors::invalid_arg;

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct ClientOptions {
    socket_path: Option<PathBuf>,
    /// `None`: no limit.
    connections: Option<usize>,
    pipelining: u32,
    /// Seconds; 0 disables.
    connect_timeout: f64,
    headers_timeout: f64,
    body_timeout: f64,
    keep_alive_timeout: f64,
    keep_alive_max_timeout: f64,
    keep_alive_timeout_threshold: f64,
    max_header_size: usize,
    /// -1: no limit.
    max_response_size: i64,
    max_requests_per_client: Option<u64>,
    strict_content_length: bool,
    local_address: Option<String>,
    /// The origin is `https://`.
    https: bool,
    tls: TlsOptions,
    /// Set by `ProxyAgent` only: tunnel through this proxy.
    #[pyo3(default)]
    proxy: Option<ProxyOptions>,
}

/// A CONNECT proxy: its address, the CONNECT request's extra fields, and
/// for an `https://` proxy its `tls=`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ProxyOptions {
    host: String,
    port: u16,
    headers: Vec<(PyBackedBytes, PyBackedBytes)>,
    #[pyo3(default)]
    tls: Option<TlsOptions>,
}

impl ProxyOptions {
    fn proxy(&self, py: Python<'_>) -> PyResult<Proxy> {
        let bytes = |b: &PyBackedBytes| Bytes::copy_from_slice(b);
        let tls = match &self.tls {
            Some(t) => Some(Arc::new(
                TlsClient::new(&t.settings(), &self.host).map_err(|e| invalid_arg(py, e))?,
            )),
            None => None,
        };
        Ok(Proxy {
            host: self.host.clone(),
            port: self.port,
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (bytes(n), bytes(v)))
                .collect(),
            tls,
        })
    }
}

/// `tls=`, normalised by `undipy._tls` (PEM bytes, flags).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct TlsOptions {
    ca: Option<PyBackedBytes>,
    cert: Option<PyBackedBytes>,
    key: Option<PyBackedBytes>,
    verify: bool,
    server_name: Option<String>,
    min_version: String,
}

impl TlsOptions {
    fn settings(&self) -> TlsSettings {
        let pem = |b: &Option<PyBackedBytes>| b.as_ref().map(|b| b.to_vec());
        TlsSettings {
            ca: pem(&self.ca),
            cert: pem(&self.cert),
            key: pem(&self.key),
            verify: self.verify,
            server_name: self.server_name.clone(),
            tls13_only: self.min_version == "1.3",
        }
    }
}

impl ClientOptions {
    pub fn into_config(self, py: Python<'_>, mut origin: Origin) -> PyResult<Config> {
        let local_address = match self.local_address {
            Some(a) => Some(
                a.parse()
                    .map_err(|_| invalid_arg(py, "invalid local_address"))?,
            ),
            None => None,
        };
        origin.socket_path = self.socket_path;
        let tls = if self.https {
            let client = TlsClient::new(&self.tls.settings(), &origin.host)
                .map_err(|e| invalid_arg(py, e))?;
            Some(Arc::new(client))
        } else {
            None
        };
        let mut cfg = Config::new(origin);
        cfg.tls = tls;
        cfg.proxy = self.proxy.as_ref().map(|p| p.proxy(py)).transpose()?;
        cfg.connections = self.connections;
        cfg.pipelining = self.pipelining;
        cfg.connect_timeout = timeout_from_secs(self.connect_timeout);
        cfg.headers_timeout = timeout_from_secs(self.headers_timeout);
        cfg.body_timeout = timeout_from_secs(self.body_timeout);
        cfg.keep_alive_timeout = timeout_from_secs(self.keep_alive_timeout);
        cfg.keep_alive_max_timeout = timeout_from_secs(self.keep_alive_max_timeout);
        cfg.keep_alive_timeout_threshold = timeout_from_secs(self.keep_alive_timeout_threshold);
        cfg.max_header_size = self.max_header_size;
        cfg.max_response_size = u64::try_from(self.max_response_size).ok();
        cfg.max_requests_per_client = self.max_requests_per_client;
        cfg.strict_content_length = self.strict_content_length;
        cfg.local_address = local_address;
        Ok(cfg)
    }
}
