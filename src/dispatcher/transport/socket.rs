//! A dialled socket, TCP or Unix: non-blocking reads and writes on the
//! runtime's reactor, with as few system calls as the connection needs.

use std::io::{self, IoSlice};

use bytes::BytesMut;
use socket2::SockRef;

use crate::dispatcher::event::ConnInfo;
use crate::dispatcher::platform::OwnedSocket;
use tokio::io::Interest;
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

pub enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// An address as `(host, port)`, or `(path, None)` for a Unix socket.
fn shown(addr: std::net::SocketAddr) -> (String, Option<u16>) {
    (addr.ip().to_string(), Some(addr.port()))
}

#[cfg(unix)]
fn unix_shown(addr: &tokio::net::unix::SocketAddr) -> Option<(String, Option<u16>)> {
    let path = addr.as_pathname()?;
    Some((path.to_string_lossy().into_owned(), None))
}

impl Socket {
    /// The two ends of the socket.
    pub fn info(&self) -> ConnInfo {
        let (peer, local) = match self {
            Socket::Tcp(s) => (
                s.peer_addr().ok().map(shown),
                s.local_addr().ok().map(shown),
            ),
            #[cfg(unix)]
            Socket::Unix(s) => (
                s.peer_addr().ok().as_ref().and_then(unix_shown),
                s.local_addr().ok().as_ref().and_then(unix_shown),
            ),
        };
        ConnInfo {
            peer,
            local,
            ..ConnInfo::default()
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.readable().await,
            #[cfg(unix)]
            Socket::Unix(s) => s.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.writable().await,
            #[cfg(unix)]
            Socket::Unix(s) => s.writable().await,
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
            got = self.sock_ref().recv(spare)?;
            if got > 0 && got < cap {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        };
        let r = match self {
            Socket::Tcp(s) => s.try_io(Interest::READABLE, read),
            #[cfg(unix)]
            Socket::Unix(s) => s.try_io(Interest::READABLE, read),
        };
        // SAFETY: `got` bytes of the spare capacity were just written.
        unsafe { buf.set_len(buf.len() + got) };
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
            r => r,
        }
    }

    /// One read that asks the kernel, not the reactor's cached readiness
    /// (which may predate bytes that just arrived). The socket is
    /// non-blocking, so it never waits.
    pub fn read_now(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let n = self.sock_ref().recv(buf.spare_capacity_mut())?;
        // SAFETY: `n` bytes of the spare capacity were just written.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }

    /// Takes the socket out of the runtime, for a caller that will drive it
    /// itself (an upgraded connection). It stays non-blocking.
    pub fn into_socket(self) -> io::Result<OwnedSocket> {
        Ok(match self {
            Socket::Tcp(s) => s.into_std()?.into(),
            #[cfg(unix)]
            Socket::Unix(s) => s.into_std()?.into(),
        })
    }

    fn sock_ref(&self) -> SockRef<'_> {
        match self {
            Socket::Tcp(s) => SockRef::from(s),
            #[cfg(unix)]
            Socket::Unix(s) => SockRef::from(s),
        }
    }

    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_write_vectored(bufs),
            #[cfg(unix)]
            Socket::Unix(s) => s.try_write_vectored(bufs),
        }
    }
}
