//! What differs between Unix and Windows, in one place: the socket handle
//! Python is handed (an upgraded connection, a relay's end, the loop's
//! wake-up) and a connected pair of local stream sockets. Unix uses a Unix
//! socket pair; Windows, which has none, a loopback TCP pair.

use std::io;

#[cfg(unix)]
pub use std::os::fd::OwnedFd as OwnedSocket;
#[cfg(windows)]
pub use std::os::windows::io::OwnedSocket;

#[cfg(unix)]
pub type StdStream = std::os::unix::net::UnixStream;
#[cfg(windows)]
pub type StdStream = std::net::TcpStream;

/// The same socket on the runtime's reactor.
#[cfg(unix)]
pub type Stream = tokio::net::UnixStream;
#[cfg(windows)]
pub type Stream = tokio::net::TcpStream;

/// The number Python's `socket.socket(fileno=...)` takes; the caller owns it.
#[cfg(unix)]
pub fn into_raw(s: OwnedSocket) -> i64 {
    std::os::fd::IntoRawFd::into_raw_fd(s).into()
}
#[cfg(windows)]
pub fn into_raw(s: OwnedSocket) -> i64 {
    std::os::windows::io::IntoRawSocket::into_raw_socket(s) as i64
}

/// The number of a socket Python watches but does not own.
#[cfg(unix)]
pub fn raw(s: &StdStream) -> i64 {
    std::os::fd::AsRawFd::as_raw_fd(s).into()
}
#[cfg(windows)]
pub fn raw(s: &StdStream) -> i64 {
    std::os::windows::io::AsRawSocket::as_raw_socket(s) as i64
}

/// Two connected, non-blocking stream sockets.
pub fn pair() -> io::Result<(StdStream, StdStream)> {
    let (a, b) = connected()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

#[cfg(unix)]
fn connected() -> io::Result<(StdStream, StdStream)> {
    StdStream::pair()
}

#[cfg(windows)]
fn connected() -> io::Result<(StdStream, StdStream)> {
    use std::net::{Ipv4Addr, TcpListener};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let a = StdStream::connect(listener.local_addr()?)?;
    loop {
        let (b, from) = listener.accept()?;
        // Anyone on the machine could connect to the port first: only our
        // own socket is the other end.
        if from == a.local_addr()? {
            a.set_nodelay(true)?;
            b.set_nodelay(true)?;
            return Ok((a, b));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn a_pair_carries_bytes_both_ways_and_does_not_block() {
        let (mut a, mut b) = super::pair().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            b.read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        a.write_all(b"ping").unwrap();
        // Loopback delivery is not instant on every system.
        let n = loop {
            match b.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"ping");
        b.write_all(b"pong").unwrap();
        drop(b);
        let mut rest = Vec::new();
        a.set_nonblocking(false).unwrap();
        a.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"pong");
    }
}
