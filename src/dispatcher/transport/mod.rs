//! What a connection reads and writes through. `open` dials the origin
//! (`dial.rs`) and wraps the socket for the origin's scheme; the connection
//! only uses the methods here, so TLS (and a CONNECT tunnel) is a new
//! variant, not edits all over the engine. Through a proxy, `tunnel.rs`
//! opens a CONNECT tunnel on the dialled socket first.

mod dial;
mod relay;
mod socket;
mod tls;
mod tunnel;
mod wire;

use std::io::{self, IoSlice};

use bytes::BytesMut;

use super::config::Config;
use super::error::Error;
use super::event::ConnInfo;
use super::platform::OwnedSocket;
pub use socket::Socket;
use tls::TlsStream;
pub use tls::{TlsClient, TlsSettings};
pub use tunnel::Proxy;

pub enum Transport {
    /// HTTP straight over the socket.
    Plain(Socket),
    /// HTTP inside a TLS session (boxed: the session is large).
    Tls(Box<TlsStream<Socket>>),
    /// HTTP inside a TLS session inside another: an `https://` origin through
    /// an `https://` proxy's tunnel.
    TlsInTls(Box<TlsStream<TlsStream<Socket>>>),
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
    /// What the connection reached, and how.
    pub fn info(&self) -> ConnInfo {
        match self {
            Transport::Plain(s) => s.info(),
            Transport::Tls(t) => t.info(t.get_ref().info()),
            Transport::TlsInTls(t) => t.info(t.get_ref().get_ref().info()),
        }
    }

    /// Dials the origin and sets up the transport (the TLS handshake
    /// included), within `connect_timeout`.
    pub async fn open(cfg: &Config) -> Result<Transport, Error> {
        let attempt = async {
            let sock = dial::dial(cfg).await?;
            let Some(proxy) = &cfg.proxy else {
                return Transport::over(sock, cfg).await;
            };
            let authority = authority(cfg);
            let max = cfg.max_header_size;
            let Some(proxy_tls) = &proxy.tls else {
                let mut sock = sock;
                tunnel::open(&mut sock, proxy, &authority, max).await?;
                return Transport::over(sock, cfg).await;
            };
            // An https:// proxy: TLS to it, the tunnel inside, and TLS to
            // the origin inside that.
            let mut outer = TlsStream::connect(sock, proxy_tls)
                .await
                .map_err(|e| Error::ProxyTls(e.to_string()))?;
            tunnel::open(&mut outer, proxy, &authority, max).await?;
            match &cfg.tls {
                None => Ok(Transport::Tls(Box::new(outer))),
                Some(client) => TlsStream::connect(outer, client)
                    .await
                    .map(|s| Transport::TlsInTls(Box::new(s))),
            }
        };
        if cfg.connect_timeout.is_zero() {
            return attempt.await;
        }
        match tokio::time::timeout(cfg.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::ConnectTimeout),
        }
    }

    /// HTTP over `sock`, inside TLS for an `https://` origin.
    async fn over(sock: Socket, cfg: &Config) -> Result<Transport, Error> {
        match &cfg.tls {
            None => Ok(Transport::Plain(sock)),
            Some(client) => TlsStream::connect(sock, client)
                .await
                .map(|s| Transport::Tls(Box::new(s))),
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.readable().await,
            Transport::Tls(s) => s.readable().await,
            Transport::TlsInTls(s) => s.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.writable().await,
            Transport::Tls(s) => s.writable().await,
            Transport::TlsInTls(s) => s.writable().await,
        }
    }

    /// Reads application bytes into `buf`'s spare capacity; 0 at the end.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.try_read_buf(buf),
            Transport::Tls(s) => s.try_read_buf(buf),
            Transport::TlsInTls(s) => s.try_read_buf(buf),
        }
    }

    /// Writes application bytes; how many were taken.
    pub fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.try_write_vectored(bufs),
            Transport::Tls(s) => s.try_write_vectored(bufs),
            Transport::TlsInTls(s) => s.try_write_vectored(bufs),
        }
    }

    /// Bytes taken but not yet on the wire (TLS records): the connection
    /// waits for the socket to take them.
    pub fn pending_output(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(s) => s.pending_output(),
            Transport::TlsInTls(s) => s.pending_output(),
        }
    }

    /// Writes what `pending_output` holds, until done or the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(s) => s.flush(),
            Transport::TlsInTls(s) => s.flush(),
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
            Transport::Tls(s) => s.probe_idle(buf),
            Transport::TlsInTls(s) => s.probe_idle(buf),
        }
    }

    /// A non-blocking socket for a caller that drives an upgraded
    /// connection itself: the socket, taken out of the runtime, or for TLS
    /// one end of a socket pair the engine relays to the session
    /// (`relay.rs`).
    pub fn into_socket(self) -> io::Result<OwnedSocket> {
        match self {
            Transport::Plain(s) => s.into_socket(),
            Transport::Tls(s) => relay::hand_over(*s),
            Transport::TlsInTls(s) => relay::hand_over(*s),
        }
    }
}

/// `host:port` of the origin, as CONNECT names it.
fn authority(cfg: &Config) -> String {
    let o = &cfg.origin;
    if o.host.contains(':') {
        format!("[{}]:{}", o.host, o.port)
    } else {
        format!("{}:{}", o.host, o.port)
    }
}
