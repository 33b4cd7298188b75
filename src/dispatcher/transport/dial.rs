//! The one place that dials: TCP (every address of the host in turn, with
//! `connect_timeout` and `local_address`) or a Unix socket.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream, UnixStream};

use super::socket::Socket;
use crate::dispatcher::config::Config;
use crate::dispatcher::error::Error;

/// Opens a socket to the dispatcher's origin.
pub async fn dial(cfg: &Config) -> Result<Socket, Error> {
    let o = &cfg.origin;
    if let Some(path) = &o.socket_path {
        return UnixStream::connect(path)
            .await
            .map(Socket::Unix)
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
                return Ok(Socket::Tcp(s));
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
