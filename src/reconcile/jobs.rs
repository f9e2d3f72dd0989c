//! The job channel from the call path to the background: work a call leaves for after
//! its answer (today: reading a ledger entry's upstream cost) is queued here instead of
//! spawned from the hot path, and run by [`super::Reconciler::run_jobs`].
//!
//! The channel is bounded ([`QUEUE`]): a job that finds it full is dropped and logged,
//! and the next periodic reconciliation pass does the work instead (a ledger entry
//! without a cost is found by [`crate::store::Store::costless_ledger`]). Each job holds
//! a [`Busy`] guard from before the answer is sent until it ends or is dropped, so
//! "nothing in flight" ([`InFlight::wait_idle`]) is a real readiness condition.

use tokio::sync::mpsc;

use super::in_flight::{Busy, InFlight};
use crate::store::ledger::LedgerEntry;

/// Jobs waiting to run, at most.
pub const QUEUE: usize = 1024;

/// Work left for after an answer.
#[derive(Debug)]
pub enum Job {
    /// Read the upstream cost of a ledger entry written without one.
    FillCost(LedgerEntry),
}

/// A queued job and the guard that counts it as in flight.
pub(super) type Queued = (Job, Busy);

/// The sending side, held by the gateway.
#[derive(Debug, Clone)]
pub struct Jobs {
    tx: mpsc::Sender<Queued>,
    in_flight: InFlight,
}

impl Jobs {
    pub(super) fn channel(in_flight: InFlight) -> (Jobs, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Jobs { tx, in_flight }, rx)
    }

    /// Queue `job`; never waits. Counted as in flight from now until it has run.
    pub fn submit(&self, job: Job) {
        let busy = self.in_flight.start();
        match self.tx.try_send((job, busy)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => tracing::warn!(
                "the background job queue is full: job dropped, the next reconciliation pass does it"
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => tracing::warn!(
                "the background jobs are not running: job dropped, the next reconciliation pass does it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LedgerEntry {
        LedgerEntry {
            at_ms: 0,
            reseller: "r".into(),
            kind: crate::store::ledger::LedgerKind::Order,
            upstream_id: 1,
            remoteid: None,
            plan: None,
            period: None,
            upstream_cost: None,
            price: None,
        }
    }

    #[test]
    fn a_full_queue_drops_the_job_and_its_count() {
        let in_flight = InFlight::default();
        let (jobs, mut rx) = Jobs::channel(in_flight.clone());
        for _ in 0..QUEUE + 5 {
            jobs.submit(Job::FillCost(entry()));
        }
        // Only the queued ones stay counted.
        assert_eq!(in_flight.count(), QUEUE);
        let (_job, busy) = rx.try_recv().unwrap();
        drop(busy);
        assert_eq!(in_flight.count(), QUEUE - 1);
        // Closed: whatever was queued is dropped with it, and so is a new job.
        drop(rx);
        assert_eq!(in_flight.count(), 0);
        jobs.submit(Job::FillCost(entry()));
        assert_eq!(in_flight.count(), 0);
    }
}
