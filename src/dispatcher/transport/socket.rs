//! A dialled socket, TCP or Unix: non-blocking reads and writes on the
//! runtime's reactor, with as few system calls as the connection needs.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

use bytes::BytesMut;

use crate::dispatcher::event::ConnInfo;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// An address as `(host, port)`, or `(path, None)` for a Unix socket.
fn shown(addr: std::net::SocketAddr) -> (String, Option<u16>) {
    (addr.ip().to_string(), Some(addr.port()))
}

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
            Socket::Unix(s) => s.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.writable().await,
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
            Socket::Tcp(s) => s.try_io(Interest::READABLE, read),
            Socket::Unix(s) => s.try_io(Interest::READABLE, read),
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
            Socket::Tcp(s) => s.into_std()?.into(),
            Socket::Unix(s) => s.into_std()?.into(),
        })
    }

    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }

    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_write_vectored(bufs),
            Socket::Unix(s) => s.try_write_vectored(bufs),
        }
    }
}
