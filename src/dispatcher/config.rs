//! Per-dispatcher settings, already validated and in engine units.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::transport::{Proxy, TlsClient};

#[derive(Clone, Debug)]
pub struct Origin {
    pub host: String,
    pub port: u16,
    /// The default `host` header value (`host[:port]`).
    pub host_header: Bytes,
    pub socket_path: Option<PathBuf>,
}

/// The longest timeout the engine keeps (a century): a longer one means the
/// same, and an instant that far ahead still fits the clock.
pub const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A timeout from seconds (finite, not negative), at most `LONGEST`.
pub fn timeout_from_secs(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.clamp(0.0, LONGEST.as_secs_f64()))
}

#[derive(Clone, Debug)]
pub struct Config {
    pub origin: Origin,
    /// Most connections to open; `None` means no limit. A `Client` has 1.
    pub connections: Option<usize>,
    pub pipelining: u32,
    /// `Duration::ZERO` disables a timeout.
    pub connect_timeout: Duration,
    pub headers_timeout: Duration,
    pub body_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub keep_alive_max_timeout: Duration,
    pub keep_alive_timeout_threshold: Duration,
    pub max_header_size: usize,
    /// `None`: unlimited.
    pub max_response_size: Option<u64>,
    pub max_requests_per_client: Option<u64>,
    pub strict_content_length: bool,
    pub local_address: Option<IpAddr>,
    /// `https://` origins: the dispatcher's TLS client.
    pub tls: Option<Arc<TlsClient>>,
    /// Reach the origin through a CONNECT tunnel of this proxy.
    pub proxy: Option<Proxy>,
}

impl Config {
    pub fn new(origin: Origin) -> Self {
        Config {
            origin,
            connections: Some(1),
            pipelining: 1,
            connect_timeout: Duration::from_secs(10),
            headers_timeout: Duration::from_secs(300),
            body_timeout: Duration::from_secs(300),
            keep_alive_timeout: Duration::from_secs(4),
            keep_alive_max_timeout: Duration::from_secs(600),
            keep_alive_timeout_threshold: Duration::from_secs(2),
            max_header_size: 16384,
            max_response_size: None,
            max_requests_per_client: None,
            strict_content_length: true,
            local_address: None,
            tls: None,
            proxy: None,
        }
    }
}
