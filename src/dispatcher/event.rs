//! What the engine reports, and where it reports it.
//!
//! Events are plain Rust values pushed onto a `Sink` (in production the
//! queue of one asyncio loop). Pushing never wakes the consumer; `flush`
//! does, so a connection wakes a loop at most once per batch of reads.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;

use super::codec::RawHeaders;
use super::error::Error;

/// A response head as delivered to a handler.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub reason: Bytes,
    pub headers: RawHeaders,
}

/// Whether anyone reads `ConnInfo` (a `client:connected` subscriber): when
/// nobody does, connections neither look it up nor report it.
pub static OBSERVE_CONNECTIONS: AtomicBool = AtomicBool::new(false);

/// What a new connection reached, and how (for `client:connected`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// The peer's address (the proxy's, through one): an IP or a Unix path.
    pub peer: Option<(String, Option<u16>)>,
    pub local: Option<(String, Option<u16>)>,
    /// `"TLSv1.2"` or `"TLSv1.3"` (the origin's session, inside a tunnel).
    pub tls_version: Option<&'static str>,
    pub alpn: Option<Vec<u8>>,
    /// The TLS session was resumed (no full handshake).
    pub tls_resumed: bool,
}

#[derive(Debug)]
pub enum Event {
    // --- per request ---
    /// The request is about to be written again on a new connection.
    Retried,
    /// A 1xx response.
    Info(Head),
    Headers(Head),
    Data(Bytes),
    Complete(RawHeaders),
    /// A whole response that arrived in one read: head, body and trailers.
    Full(Head, Bytes, RawHeaders),
    Error(Error),
    BodySent(Bytes),
    /// The socket took the last body chunk: send the next one.
    BodyPull,
    /// 101 to an upgrade request, or 2xx to CONNECT: the socket leaves the
    /// pool. `rest` holds bytes that arrived right behind the head.
    Upgrade(Head, crate::dispatcher::platform::OwnedSocket, Bytes),
    // --- per dispatcher ---
    /// With what it reached while `OBSERVE_CONNECTIONS` is set.
    Connected(Option<Box<ConnInfo>>),
    Disconnected(Error),
    ConnectionError(Error),
    Drain,
    Closed,
}

pub trait Sink: Send + Sync {
    /// Queues an event; does not wake the consumer.
    fn push(&self, token: u64, event: Event);
    /// Wakes the consumer if anything was queued since it last drained.
    fn flush(&self);
}

/// A sink plus the token that names one consumer (a request or a dispatcher).
#[derive(Clone)]
pub struct SinkRef {
    pub sink: Arc<dyn Sink>,
    pub token: u64,
}

impl SinkRef {
    pub fn push(&self, event: Event) {
        self.sink.push(self.token, event);
    }
}

impl std::fmt::Debug for SinkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SinkRef({})", self.token)
    }
}

/// Remembers which sinks got events during a batch so each is flushed once.
#[derive(Default)]
pub struct Dirty(Vec<Arc<dyn Sink>>);

impl Dirty {
    pub fn push(&mut self, to: &SinkRef, event: Event) {
        to.push(event);
        self.mark(to);
    }

    /// `to` got an event that must wake its consumer.
    pub fn mark(&mut self, to: &SinkRef) {
        if !self.0.iter().any(|s| Arc::ptr_eq(s, &to.sink)) {
            self.0.push(to.sink.clone());
        }
    }

    pub fn flush(&mut self) {
        for s in self.0.drain(..) {
            s.flush();
        }
    }
}

#[cfg(test)]
pub use testing::{test_sink, Collect};

#[cfg(test)]
mod testing {
    use super::*;
    use parking_lot::Mutex;

    /// Collects events for engine tests.
    #[derive(Default)]
    pub struct Collect(pub Mutex<Vec<(u64, Event)>>);

    impl Sink for Collect {
        fn push(&self, token: u64, event: Event) {
            self.0.lock().push((token, event));
        }
        fn flush(&self) {}
    }

    pub fn test_sink() -> SinkRef {
        SinkRef {
            sink: Arc::new(Collect::default()),
            token: 1,
        }
    }
}
