//! A CONNECT tunnel through an HTTP proxy: the connection dials the proxy,
//! asks it for a tunnel to the origin, then speaks (TLS and) HTTP through
//! it as if it had dialled the origin, so pipelining, keep-alive and the
//! timeouts work unchanged.

use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::tls::TlsClient;
use super::wire::Wire;
use crate::dispatcher::codec::{encode, parse_head, HeadContext};
use crate::dispatcher::error::Error;

/// The proxy a dispatcher tunnels through.
#[derive(Clone, Debug)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// Field lines for the CONNECT request (`proxy-authorization`, ...),
    /// already validated.
    pub headers: Vec<(Bytes, Bytes)>,
    /// An `https://` proxy: the TLS client that reaches it.
    pub tls: Option<Arc<TlsClient>>,
}

/// Asks the proxy on `sock` for a tunnel to `authority` (`host:port`).
pub async fn open<W: Wire>(
    sock: &mut W,
    proxy: &Proxy,
    authority: &str,
    max_header_size: usize,
) -> Result<(), Error> {
    let mut req = BytesMut::with_capacity(128);
    encode::request_line(&mut req, b"CONNECT", authority.as_bytes());
    encode::header(&mut req, b"host", authority.as_bytes());
    for (name, value) in &proxy.headers {
        encode::header(&mut req, name, value);
    }
    req.put_slice(b"\r\n");
    write_all(sock, &req).await?;

    let ctx = HeadContext {
        method_is_head: false,
        method_is_connect: true,
        upgrade_requested: false,
        max_header_size,
    };
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        sock.readable().await?;
        buf.reserve(1024);
        match sock.try_read_buf(&mut buf) {
            Ok(0) => {
                return Err(Error::socket(
                    "the proxy closed the connection before answering CONNECT",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
        let Some(head) = parse_head(&mut buf, &ctx)? else {
            continue;
        };
        if !(200..300).contains(&head.status) {
            return Err(Error::ProxyRefused(head.status));
        }
        // The origin speaks only when spoken to: anything already here is
        // not from it.
        if !buf.is_empty() {
            return Err(Error::socket(
                "the proxy sent bytes after its CONNECT answer",
            ));
        }
        return Ok(());
    }
}

async fn write_all<W: Wire>(sock: &mut W, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() || sock.pending_output() {
        sock.writable().await?;
        let sent = if data.is_empty() {
            sock.flush().map(|()| 0)
        } else {
            sock.try_write_vectored(&[IoSlice::new(data)])
        };
        match sent {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
