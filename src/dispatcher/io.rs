//! The transport under a connection: TCP or a Unix socket, and connecting.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::{TcpSocket, TcpStream, UnixStream};

use super::config::Config;
use super::error::Error;

pub enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Io {
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Io::Tcp(s) => s.readable().await,
            Io::Unix(s) => s.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Io::Tcp(s) => s.writable().await,
            Io::Unix(s) => s.writable().await,
        }
    }

    /// Reads into `buf`'s spare capacity. A short read drained the socket,
    /// so readiness is cleared then too: the next wait sleeps until new data
    /// instead of costing a read that only says "would block".
    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut got = 0;
        let read = || {
            let spare = buf.spare_capacity_mut();
            let cap = spare.len();
            // SAFETY: recv writes at most `cap` bytes into the spare capacity.
            let n = unsafe { libc::recv(self.fd(), spare.as_mut_ptr().cast(), cap, 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            got = n as usize;
            if got > 0 && got < cap {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        };
        let r = match self {
            Io::Tcp(s) => s.try_io(Interest::READABLE, read),
            Io::Unix(s) => s.try_io(Interest::READABLE, read),
        };
        // SAFETY: `got` bytes of the spare capacity were just written.
        unsafe { buf.set_len(buf.len() + got) };
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
            r => r,
        }
    }

    /// One non-blocking read that asks the kernel, not the reactor's cached
    /// readiness (which may predate bytes that just arrived).
    pub fn read_now(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        // SAFETY: recv writes at most `spare.len()` bytes into the spare capacity.
        let n = unsafe {
            libc::recv(
                self.fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `n` bytes of the spare capacity were just written.
        unsafe { buf.set_len(buf.len() + n as usize) };
        Ok(n as usize)
    }

    /// Takes the socket out of the runtime, for a caller that will drive it
    /// itself (an upgraded connection). It stays non-blocking.
    pub fn into_fd(self) -> io::Result<std::os::fd::OwnedFd> {
        Ok(match self {
            Io::Tcp(s) => s.into_std()?.into(),
            Io::Unix(s) => s.into_std()?.into(),
        })
    }

    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            Io::Tcp(s) => s.as_raw_fd(),
            Io::Unix(s) => s.as_raw_fd(),
        }
    }

    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.try_write_vectored(bufs),
            Io::Unix(s) => s.try_write_vectored(bufs),
        }
    }
}

/// Opens the dispatcher's transport, within `connect_timeout`.
pub async fn connect(cfg: &Config) -> Result<Io, Error> {
    let attempt = open(cfg);
    if cfg.connect_timeout.is_zero() {
        return attempt.await;
    }
    match tokio::time::timeout(cfg.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Error::ConnectTimeout),
    }
}

async fn open(cfg: &Config) -> Result<Io, Error> {
    let o = &cfg.origin;
    if let Some(path) = &o.socket_path {
        return UnixStream::connect(path)
            .await
            .map(Io::Unix)
            .map_err(|e| Error::socket(format!("connect {}: {e}", path.display())));
    }
    let addrs: Vec<SocketAddr> = match o.host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, o.port)],
        Err(_) => tokio::net::lookup_host((o.host.as_str(), o.port))
            .await
            .map_err(|e| Error::socket(format!("getaddrinfo {}: {e}", o.host)))?
            .collect(),
    };
    let mut last = Error::socket(format!("no address for {}", o.host));
    for addr in addrs {
        match connect_tcp(addr, cfg.local_address).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(Io::Tcp(s));
            }
            Err(e) => last = Error::socket(format!("connect {addr}: {e}")),
        }
    }
    Err(last)
}

async fn connect_tcp(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(addr).await
}
