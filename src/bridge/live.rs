//! One dispatcher's requests as their handlers see them. A request ends for
//! its handler only when its final callback has run, which a pause can put
//! off past the engine's end of it (a whole response arrives, the handler
//! pauses in `on_headers`). `close()` resolves only when none is left, and
//! `destroy()` reaches the paused ones: pausing holds back data, never the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::dispatcher::{Error, Event, SinkRef};

#[derive(Default)]
pub struct Live {
    st: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    count: usize,
    /// Requests whose handler paused at least once (where each one's events go).
    paused: Vec<SinkRef>,
    /// "closed" came while requests were left: sent again when the last ends.
    closed: Option<SinkRef>,
}

impl Live {
    /// Counts a request until the guard is dropped with its bridge target.
    pub fn guard(self: &Arc<Self>, me: SinkRef) -> LiveGuard {
        self.st.lock().count += 1;
        LiveGuard {
            live: self.clone(),
            me,
            paused: AtomicBool::new(false),
        }
    }

    /// The engine closed: true to say so now; else `at` gets the event again
    /// once the last request has ended.
    pub fn closed_now(&self, at: SinkRef) -> bool {
        let mut st = self.st.lock();
        if st.count == 0 {
            return true;
        }
        st.closed = Some(at);
        false
    }

    /// Ends every paused request with `err` (the engine may be done with them).
    pub fn fail_paused(&self, err: &Error) {
        let paused = std::mem::take(&mut self.st.lock().paused);
        for s in paused {
            s.push(Event::Error(err.clone()));
            s.sink.flush();
        }
    }
}

pub struct LiveGuard {
    live: Arc<Live>,
    me: SinkRef,
    paused: AtomicBool,
}

impl LiveGuard {
    /// The handler paused: a destroy must reach it.
    pub fn paused(&self) {
        if !self.paused.swap(true, Ordering::Relaxed) {
            self.live.st.lock().paused.push(self.me.clone());
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let closed = {
            let mut st = self.live.st.lock();
            st.count -= 1;
            if *self.paused.get_mut() {
                let me = &self.me;
                st.paused
                    .retain(|s| s.token != me.token || !Arc::ptr_eq(&s.sink, &me.sink));
            }
            if st.count == 0 {
                st.closed.take()
            } else {
                None
            }
        };
        if let Some(s) = closed {
            s.push(Event::Closed);
            s.sink.flush();
        }
    }
}
