//! The one place that dials: TCP (every address of the host in turn, with
//! `connect_timeout` and `local_address`) or a Unix socket.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use super::socket::Socket;
use crate::dispatcher::config::Config;
use crate::dispatcher::error::Error;

/// Opens a socket to the dispatcher's origin, or to its proxy.
pub async fn dial(cfg: &Config) -> Result<Socket, Error> {
    let o = &cfg.origin;
    if let Some(path) = &o.socket_path {
        return dial_unix(path).await;
    }
    let (host, port) = match &cfg.proxy {
        Some(p) => (&p.host, p.port),
        None => (&o.host, o.port),
    };
    let addrs: Vec<SocketAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Error::socket(format!("getaddrinfo {host}: {e}")))?
            .collect(),
    };
    let mut last = Error::socket(format!("no address for {host}"));
    for addr in addrs {
        match connect_tcp(addr, cfg.local_address).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(Socket::Tcp(s));
            }
            Err(e) => last = Error::socket(format!("connect {addr}: {e}")),
        }
    }
    Err(last)
}

#[cfg(unix)]
async fn dial_unix(path: &std::path::Path) -> Result<Socket, Error> {
    tokio::net::UnixStream::connect(path)
        .await
        .map(Socket::Unix)
        .map_err(|e| Error::socket(format!("connect {}: {e}", path.display())))
}

/// `socket_path` is refused when the dispatcher is made (Python checks
/// `sys.platform`); this only keeps the engine whole.
#[cfg(not(unix))]
async fn dial_unix(path: &std::path::Path) -> Result<Socket, Error> {
    Err(Error::socket(format!(
        "connect {}: Unix sockets are not supported on this platform",
        path.display()
    )))
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
