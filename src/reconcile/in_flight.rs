//! Work the gateway does after a reseller was answered (today: reading a new order's cost
//! for its ledger entry), counted so that tests — and anything that wants a settled store —
//! can wait for it instead of sleeping.
//!
//! A task holds a [`Busy`] guard from before the answer is sent until it ends or is dropped
//! (a runtime shutting down drops it), so "nothing in flight" is a real readiness condition.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A counter of tasks in flight.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    shared: Arc<(Mutex<usize>, Condvar)>,
}

/// Counts one task as in flight until dropped.
#[derive(Debug)]
pub struct Busy(InFlight);

/// A std mutex is right here: the critical sections only add or compare a number.
fn lock(m: &Mutex<usize>) -> MutexGuard<'_, usize> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InFlight {
    /// Count one more task until the guard is dropped.
    pub fn start(&self) -> Busy {
        *lock(&self.shared.0) += 1;
        Busy(self.clone())
    }

    pub fn count(&self) -> usize {
        *lock(&self.shared.0)
    }

    /// Block until no task is in flight; `false` when `timeout` passed first. Not for an
    /// async context (it blocks the thread).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut n = lock(m);
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = cv
                .wait_timeout(n, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let (m, cv) = &*self.0.shared;
        let mut n = lock(m);
        *n = n.saturating_sub(1);
        if *n == 0 {
            cv.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_once_every_guard_is_dropped() {
        let f = InFlight::default();
        assert!(f.wait_idle(Duration::ZERO));
        let a = f.start();
        let b = f.start();
        assert_eq!(f.count(), 2);
        assert!(!f.wait_idle(Duration::from_millis(1)));
        drop(a);
        assert!(!f.wait_idle(Duration::ZERO));
        let waiter = {
            let f = f.clone();
            std::thread::spawn(move || f.wait_idle(Duration::from_secs(30)))
        };
        drop(b);
        assert!(waiter.join().unwrap());
        assert_eq!(f.count(), 0);
    }
}
