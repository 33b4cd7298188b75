//! What a connection reads and writes through. `open` dials the origin
//! (`dial.rs`) and wraps the socket for the origin's scheme; the connection
//! only uses the methods here, so TLS (and a CONNECT tunnel) is a new
//! variant, not edits all over the engine.

mod dial;
mod socket;

use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;

use bytes::BytesMut;

use super::config::Config;
use super::error::Error;
pub use socket::Socket;

pub enum Transport {
    /// HTTP straight over the socket.
    Plain(Socket),
}

/// What an idle kept-alive connection has to say before it takes a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Idle {
    /// Nothing: it may carry a request.
    Quiet,
    /// The peer closed it.
    Closed,
    /// The peer sent application bytes nobody asked for.
    Data,
}

impl Transport {
    /// Dials the origin and sets up the transport, within `connect_timeout`.
    pub async fn open(cfg: &Config) -> Result<Transport, Error> {
        dial::dial(cfg).await.map(Transport::Plain)
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.writable().await,
        }
    }

    /// Reads application bytes into `buf`'s spare capacity; 0 at the end.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.try_read_buf(buf),
        }
    }

    /// Writes application bytes; how many were taken.
    pub fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.try_write_vectored(bufs),
        }
    }

    /// Asks the peer's side now (not the reactor's cached readiness, which
    /// may predate bytes that just arrived). Bytes read go to `buf`.
    pub fn probe_idle(&mut self, buf: &mut BytesMut) -> io::Result<Idle> {
        match self {
            Transport::Plain(s) => match s.read_now(buf) {
                Ok(0) => Ok(Idle::Closed),
                Ok(_) => Ok(Idle::Data),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Idle::Quiet),
                Err(e) => Err(e),
            },
        }
    }

    /// Takes the socket out of the runtime for a caller that drives it
    /// itself (an upgraded connection). It stays non-blocking.
    pub fn into_fd(self) -> io::Result<OwnedFd> {
        match self {
            Transport::Plain(s) => s.into_fd(),
        }
    }
}
