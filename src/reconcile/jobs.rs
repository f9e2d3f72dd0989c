//! Work a call leaves for after its answer (today: reading a ledger entry's upstream
//! cost), run by the reconciler on a task of its own on the runtime of the call that left
//! it: no hand-off to another thread on the order path.
//!
//! Bounded ([`MAX_RUNNING`]): a job that finds every slot taken is dropped and logged, and
//! the next periodic reconciliation pass does the work instead (a ledger entry without a
//! cost is found by [`crate::store::Store::costless_ledger`]). So is a job whose runtime
//! stops before it ends (a gateway shutting down). Each job holds a [`Busy`] guard from
//! before the answer is sent until it ends or is dropped, so "nothing in flight"
//! ([`InFlight::wait_idle`]) is a real readiness condition.

use std::sync::{Arc, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::in_flight::{Busy, InFlight};
use super::Reconciler;
use crate::store::ledger::LedgerEntry;

/// Jobs running at once, at most.
pub const MAX_RUNNING: usize = 1024;

/// Work left for after an answer.
#[derive(Debug)]
pub enum Job {
    /// Read the upstream cost of a ledger entry written without one.
    FillCost(LedgerEntry),
}

/// The call path's handle on the reconciler's jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    runner: Weak<Reconciler>,
    slots: Arc<Semaphore>,
    /// The slots there are.
    max: usize,
    in_flight: InFlight,
}

impl Jobs {
    pub(super) fn new(runner: Weak<Reconciler>, in_flight: InFlight, max: usize) -> Jobs {
        Jobs {
            runner,
            slots: Arc::new(Semaphore::new(max)),
            max,
            in_flight,
        }
    }

    /// Start `job` on the current runtime; never waits. Counted as in flight from now
    /// until it has run.
    pub fn submit(&self, job: Job) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "a job was left outside a runtime: dropped, the next reconciliation pass does it"
            );
            return;
        };
        let Some(runner) = self.runner.upgrade() else {
            tracing::warn!(
                "the reconciler has stopped: job dropped, the next reconciliation pass does it"
            );
            return;
        };
        let Some((slot, busy)) = self.admit() else {
            tracing::warn!(
                max = self.max,
                "too many jobs after answers are running: job dropped, the next reconciliation pass does it"
            );
            return;
        };
        runtime.spawn(async move {
            match job {
                Job::FillCost(entry) => {
                    runner.fill_cost(entry).await;
                }
            }
            drop((slot, busy));
        });
    }

    /// A slot for one more job, counted as in flight while held; `None` when every slot is
    /// taken.
    fn admit(&self) -> Option<(OwnedSemaphorePermit, Busy)> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some((slot, self.in_flight.start()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_past_the_bound_is_not_admitted_nor_counted() {
        let in_flight = InFlight::default();
        let jobs = Jobs::new(Weak::new(), in_flight.clone(), 2);
        let a = jobs.admit().expect("first slot");
        let b = jobs.admit().expect("second slot");
        assert_eq!(in_flight.count(), 2);
        assert!(jobs.admit().is_none(), "a third job is over the bound");
        assert_eq!(in_flight.count(), 2);
        drop(a);
        assert_eq!(in_flight.count(), 1);
        let c = jobs.admit().expect("a slot freed by a job that ended");
        drop((b, c));
        assert_eq!(in_flight.count(), 0);
    }

    #[tokio::test]
    async fn a_job_without_its_reconciler_is_dropped() {
        let in_flight = InFlight::default();
        let jobs = Jobs::new(Weak::new(), in_flight.clone(), 2);
        jobs.submit(Job::FillCost(LedgerEntry {
            at_ms: 0,
            reseller: "r".into(),
            kind: crate::store::ledger::LedgerKind::Order,
            upstream_id: 1,
            remoteid: None,
            plan: None,
            period: None,
            upstream_cost: None,
            price: None,
        }));
        assert_eq!(in_flight.count(), 0);
        assert_eq!(jobs.slots.available_permits(), 2);
    }
}
