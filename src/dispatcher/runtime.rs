//! The one tokio runtime: a current-thread runtime on its own thread,
//! started on first use. A forked child starts a fresh one (the parent's
//! thread does not exist in the child).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use parking_lot::Mutex;
use tokio::runtime::{Builder, Handle};

/// Bumped in the child after every `fork()`: cheaper than `getpid()` per request.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static RUNTIME: Mutex<Option<(u64, Handle)>> = Mutex::new(None);
#[cfg(unix)]
static AT_FORK: std::sync::Once = std::sync::Once::new();

#[cfg(unix)]
extern "C" fn forked_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The runtime of this process, started if needed.
pub fn handle() -> std::io::Result<Handle> {
    #[cfg(unix)]
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    let generation = generation();
    let mut rt = RUNTIME.lock();
    if let Some((owner, h)) = rt.as_ref() {
        if *owner == generation {
            return Ok(h.clone());
        }
    }
    let h = start()?;
    *rt = Some((generation, h.clone()));
    Ok(h)
}

/// Which side of a `fork()` this is: a dispatcher made before `fork()`
/// belongs to a runtime that does not exist in the child.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

fn start() -> std::io::Result<Handle> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("undipy-io".into())
        .spawn(move || {
            let rt = match Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(rt.handle().clone()));
            rt.block_on(std::future::pending::<()>());
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("undipy runtime thread failed to start"))?
}
