//! An upgraded TLS connection for Python. The TLS session cannot leave the
//! engine, so the engine relays between it and one end of a socket pair,
//! and Python's upgraded socket drives the other end exactly as it drives a
//! plain TCP socket it was handed. Backpressure holds both ways: each
//! direction moves one buffer at a time, and only once the other side took
//! the last one.

use std::io::{self, IoSlice};
use std::net::Shutdown;

use bytes::{Buf, BytesMut};

use crate::dispatcher::platform::{self, OwnedSocket, Stream};

use super::tls::TlsStream;
use super::wire::Wire;

const CHUNK: usize = 64 * 1024;

/// Starts the relay; returns Python's end of the pair (non-blocking).
pub fn hand_over<W: Wire + 'static>(tls: TlsStream<W>) -> io::Result<OwnedSocket> {
    let (mine, theirs) = platform::pair()?;
    let mine = Stream::from_std(mine)?;
    tokio::spawn(async move {
        // An error ends the relay: both ends close, and each side sees it.
        let _ = relay(tls, mine).await;
    });
    Ok(theirs.into())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

async fn relay<W: Wire>(mut tls: TlsStream<W>, local: Stream) -> io::Result<()> {
    // `down`: from the server, for Python; `up`: from Python, for the server.
    let mut down = BytesMut::new();
    let mut up = BytesMut::new();
    let (mut server_done, mut python_done) = (false, false);
    while !(server_done && python_done && up.is_empty() && !tls.pending_output()) {
        tokio::select! {
            r = tls.readable(), if down.is_empty() && !server_done => {
                r?;
                down.reserve(CHUNK);
                match tls.try_read_buf(&mut down) {
                    Ok(0) => {
                        server_done = true;
                        socket2::SockRef::from(&local).shutdown(Shutdown::Write)?;
                    }
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            r = local.writable(), if !down.is_empty() => {
                r?;
                match local.try_write(&down) {
                    Ok(n) => down.advance(n),
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            r = local.readable(), if up.is_empty() && !python_done => {
                r?;
                up.reserve(CHUNK);
                match local.try_read_buf(&mut up) {
                    Ok(0) => {
                        python_done = true;
                        tls.close_notify();
                    }
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            r = tls.writable(), if !up.is_empty() || tls.pending_output() => {
                r?;
                let sent = if up.is_empty() {
                    tls.flush().map(|()| 0)
                } else {
                    tls.try_write_vectored(&[IoSlice::new(&up)])
                };
                match sent {
                    Ok(n) => up.advance(n),
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}
