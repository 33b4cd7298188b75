//! The one tokio runtime: a current-thread runtime on its own thread,
//! started on first use. A forked child starts a fresh one (the parent's
//! thread does not exist in the child).

use std::sync::mpsc;

use parking_lot::Mutex;
use tokio::runtime::{Builder, Handle};

static RUNTIME: Mutex<Option<(u32, Handle)>> = Mutex::new(None);

/// The runtime of this process, started if needed.
pub fn handle() -> std::io::Result<Handle> {
    let pid = std::process::id();
    let mut rt = RUNTIME.lock();
    if let Some((owner, h)) = rt.as_ref() {
        if *owner == pid {
            return Ok(h.clone());
        }
    }
    let h = start()?;
    *rt = Some((pid, h.clone()));
    Ok(h)
}

/// Which process started the runtime a dispatcher is bound to: a dispatcher
/// made before `fork()` cannot be used in the child.
pub fn current_pid() -> u32 {
    std::process::id()
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
