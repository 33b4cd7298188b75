//! The loop's wake-up: something the loop watches that the runtime makes
//! readable. An eventfd on Linux (one descriptor, one counter) and a
//! non-blocking pipe on the other Unix systems (macOS), both watched with
//! `loop.add_reader`; a socket pair on Windows, and for loops that watch no
//! descriptors (Windows' proactor loop), which read it with `sock_recv`.
//! `Queue` writes at most once per drain, so none of them ever fills up.

use std::io::{self, Read, Write};
#[cfg(unix)]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::dispatcher::platform::{self, StdStream};

#[cfg(target_os = "linux")]
type Native = EventFd;
#[cfg(all(unix, not(target_os = "linux")))]
type Native = Pipe;

pub enum Wake {
    #[cfg(unix)]
    Native(Native),
    Socket(SocketPair),
}

impl Wake {
    /// The platform's own kind, or a socket pair if `socket` (always on
    /// Windows).
    pub fn new(socket: bool) -> io::Result<Wake> {
        #[cfg(unix)]
        if !socket {
            return Native::new().map(Wake::Native);
        }
        #[cfg(not(unix))]
        let _ = socket; // Windows has only the socket pair
        SocketPair::new().map(Wake::Socket)
    }

    /// What the loop watches or reads.
    pub fn fd(&self) -> i64 {
        match self {
            #[cfg(unix)]
            Wake::Native(w) => w.fd().into(),
            Wake::Socket(w) => platform::raw(&w.read),
        }
    }

    pub fn notify(&self) {
        match self {
            #[cfg(unix)]
            Wake::Native(w) => w.notify(),
            Wake::Socket(w) => w.notify(),
        }
    }

    pub fn clear(&self) {
        match self {
            #[cfg(unix)]
            Wake::Native(w) => w.clear(),
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

#[cfg(unix)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

// On Linux only the tests use it.
#[cfg(unix)]
#[cfg_attr(target_os = "linux", allow(dead_code))]
impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe fills two fresh descriptors or returns -1.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both are fresh descriptors nobody else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            // SAFETY: fcntl on a descriptor we own.
            let ok = unsafe {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) == 0
                    && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) == 0
            };
            if !ok {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Pipe { read, write })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn notify(&self) {
        // SAFETY: writes one byte from a live buffer to an fd we own.
        unsafe { libc::write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }

    pub fn clear(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads at most 64 bytes into a live buffer.
        while unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

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
    fn a_pipe() {
        let w = Pipe::new().unwrap();
        check(w.fd(), || w.notify(), || w.clear());
    }

    #[test]
    fn a_socket_pair() {
        let w = SocketPair::new().unwrap();
        check(w.read.as_raw_fd(), || w.notify(), || w.clear());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_eventfd() {
        let w = EventFd::new().unwrap();
        check(w.fd(), || w.notify(), || w.clear());
    }
}
