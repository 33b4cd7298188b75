//! What a TLS session (or a CONNECT request) runs over: a dialled socket, or
//! another TLS session (a tunnel through an `https://` proxy).

use std::future::Future;
use std::io::{self, IoSlice};

use bytes::BytesMut;

use super::socket::Socket;

pub trait Wire: Send + Sync {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads into `buf`'s spare capacity; 0 at the end.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// The same, asking the peer's side now (the idle probe).
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Bytes taken but not yet on the wire.
    fn pending_output(&self) -> bool {
        false
    }
    /// Writes what `pending_output` holds, until done or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Wire for Socket {
    async fn readable(&self) -> io::Result<()> {
        Socket::readable(self).await
    }

    async fn writable(&self) -> io::Result<()> {
        Socket::writable(self).await
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        Socket::try_read_buf(self, buf)
    }

    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        Socket::read_now(self, buf)
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Socket::try_write_vectored(self, bufs)
    }
}
