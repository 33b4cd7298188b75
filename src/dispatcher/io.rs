//! The transport under a connection: TCP or a Unix socket, and connecting.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
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

    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.try_read_buf(buf),
            Io::Unix(s) => s.try_read_buf(buf),
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
