//! The loop's wake-up: something the loop watches that the runtime makes
//! readable. On Linux an eventfd (one descriptor, one counter), watched
//! with `loop.add_reader`. Elsewhere, and for loops that watch no
//! descriptors (Windows' proactor loop, which reads it with `sock_recv`),
//! a socket pair. `Queue` writes at most once per drain, so neither ever
//! fills up.

use std::io::{self, Read, Write};
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::dispatcher::platform::{self, StdStream};

pub enum Wake {
    #[cfg(target_os = "linux")]
    EventFd(EventFd),
    Socket(SocketPair),
}

impl Wake {
    /// An eventfd on Linux unless `socket`; a socket pair otherwise.
    pub fn new(socket: bool) -> io::Result<Wake> {
        #[cfg(target_os = "linux")]
        if !socket {
            return EventFd::new().map(Wake::EventFd);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = socket; // only the socket pair here
        SocketPair::new().map(Wake::Socket)
    }

    /// What the loop watches or reads.
    pub fn fd(&self) -> i64 {
        match self {
            #[cfg(target_os = "linux")]
            Wake::EventFd(w) => w.fd().into(),
            Wake::Socket(w) => platform::raw(&w.read),
        }
    }

    pub fn notify(&self) {
        match self {
            #[cfg(target_os = "linux")]
            Wake::EventFd(w) => w.notify(),
            Wake::Socket(w) => w.notify(),
        }
    }

    pub fn clear(&self) {
        match self {
            #[cfg(target_os = "linux")]
            Wake::EventFd(w) => w.clear(),
            Wake::Socket(w) => w.clear(),
        }
    }
}

pub struct SocketPair {
    read: StdStream,
    write: StdStream,
}

impl SocketPair {
    fn new() -> io::Result<SocketPair> {
        let (read, write) = platform::pair()?;
        Ok(SocketPair { read, write })
    }

    fn notify(&self) {
        let _ = (&self.write).write(&[1]);
    }

    /// Reads what is there; a loop that reads with `sock_recv` has taken
    /// the byte that woke it already.
    fn clear(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.read).read(&mut buf), Ok(n) if n > 0) {}
    }
}

#[cfg(target_os = "linux")]
pub struct EventFd(OwnedFd);

#[cfg(target_os = "linux")]
impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// What the loop watches.
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an fd we own.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn clear(&self) {
        let mut buf = 0u64;
        // SAFETY: reads at most 8 bytes into a live u64.
        unsafe { libc::read(self.fd(), (&mut buf as *mut u64).cast(), 8) };
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::fd::RawFd;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one live pollfd without waiting.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    /// Readable after a notify (two count as one), not after a clear.
    fn check(fd: RawFd, notify: impl Fn(), clear: impl Fn()) {
        assert!(!readable(fd));
        notify();
        notify();
        assert!(readable(fd));
        clear();
        assert!(!readable(fd));
    }

    #[test]
    fn a_socket_pair() {
        let w = SocketPair::new().unwrap();
        check(platform::raw(&w.read) as i32, || w.notify(), || w.clear());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_eventfd() {
        let w = EventFd::new().unwrap();
        check(w.fd(), || w.notify(), || w.clear());
    }
}
