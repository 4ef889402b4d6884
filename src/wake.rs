//! A wake-up call between threads: whoever queues work (alerts in the outbox, a run) notifies,
//! and the workers waiting on it look again at once instead of at their next poll.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Wakes waiting workers when work was queued (or the service stops).
#[derive(Default)]
pub struct Wake {
    generation: Mutex<u64>,
    signal: Condvar,
}

impl Wake {
    /// Tells every worker to look at the outbox.
    pub fn notify(&self) {
        *crate::locks::lock(&self.generation) += 1;
        self.signal.notify_all();
    }

    /// Waits until notified or `timeout` passed, whichever is first (`seen`: the last
    /// notification this waiter saw).
    pub fn wait_for(&self, seen: &mut u64, timeout: Duration) {
        let guard = crate::locks::lock(&self.generation);
        let (guard, _) = self
            .signal
            .wait_timeout_while(guard, timeout, |g| *g == *seen)
            .unwrap_or_else(|p| p.into_inner());
        *seen = *guard;
    }
}
