//! Background work against the upstream, owned by one [`Reconciler`] per process:
//!
//! - Reconciliation ([`Reconciler::reconcile_orders`]): pending orders claimed at least
//!   `settle` ago are looked up by `remoteid` on the reseller's upstream account: found →
//!   done (service, answer, ledger); not found → failed (a retry may order again). It
//!   never sends an order. One pass runs at a time.
//! - Costs ([`costs`]): a ledger entry written without its upstream cost gets it after
//!   the answer (a job from the call path) or, failing that, from the next pass.
//! - Services sync ([`Reconciler::sync_services`]): every certificate of a reseller's
//!   upstream account recorded as its service.
//! - Jobs ([`jobs`]): work the call path leaves for after its answers, run on its own
//!   runtime within a bound; [`Reconciler::after_answer`] counts what is in flight.
//! - [`record`]: the store writes shared with the call path.

pub mod costs;
pub mod in_flight;
pub mod jobs;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use crate::store::orders::OrderState;
use crate::store::services::ServiceSource;
use crate::store::Store;
use crate::upstream::Client;

pub use in_flight::InFlight;
pub use jobs::{Job, Jobs};
use record::{blocking, now_ms};

/// What one reconciliation pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Found upstream: recorded as done.
    pub found: Vec<(String, String, u64)>,
    /// Not found upstream: marked failed, a retry may order again.
    pub failed: Vec<(String, String)>,
    /// Too young to judge, or the lookup failed: still pending.
    pub left: Vec<(String, String)>,
    /// Ledger entries whose missing upstream cost was read and filled in.
    pub costs_filled: usize,
}

/// The name of the exclusive work a reconciliation pass is (one gateway of a fleet at a time).
pub const RECONCILE_LOCK: &str = "resellgate_reconcile";

/// Reconciliation, cost filling, sync and the jobs after answers.
pub struct Reconciler {
    store: Store,
    client: Arc<Client>,
    /// How old a pending order must be before reconciliation judges it.
    settle: Duration,
    /// One reconciliation pass at a time (the background task, the admin API).
    one_pass: tokio::sync::Mutex<()>,
    in_flight: InFlight,
    jobs: Jobs,
}

impl Reconciler {
    pub fn new(store: Store, client: Arc<Client>, settle: Duration) -> Arc<Reconciler> {
        let in_flight = InFlight::default();
        Arc::new_cyclic(|me| Reconciler {
            store,
            client,
            settle,
            one_pass: tokio::sync::Mutex::new(()),
            jobs: Jobs::new(me.clone(), in_flight.clone(), jobs::MAX_RUNNING),
            in_flight,
        })
    }

    /// Where the call path leaves its after-answer work.
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    /// How old a pending order must be before reconciliation judges it: by default the
    /// upstream's connect + read timeout, so an order still in flight is never declared
    /// failed.
    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// Jobs queued or running after their reseller was answered (a new order's ledger
    /// cost). Tests wait for it to be idle before reading the store or counting upstream
    /// calls.
    pub fn after_answer(&self) -> &InFlight {
        &self.in_flight
    }

    /// Resolve pending orders claimed at least `settle` ago by looking their remoteid up
    /// on the reseller's upstream account: found → done (service, answer, ledger); not
    /// found → failed (a retry may order again). Never sends an order.
    /// One pass runs at a time; a second caller waits for the first to finish. In a fleet,
    /// one gateway at a time: while another holds the store's reconcile lock
    /// ([`RECONCILE_LOCK`]), the pass does nothing (an empty report, logged at debug).
    pub async fn reconcile_orders(&self, settle: Duration) -> anyhow::Result<ReconcileReport> {
        let _one_pass = self.one_pass.lock().await;
        let store = self.store.clone();
        let Some(_fleet_lock) = blocking(move || store.try_exclusive(RECONCILE_LOCK)).await? else {
            tracing::debug!("reconcile: another gateway is reconciling; pass skipped");
            return Ok(ReconcileReport::default());
        };
        let store = self.store.clone();
        let orders = blocking(move || store.pending_orders()).await?;
        let mut report = ReconcileReport::default();
        let now = now_ms();
        for rec in orders
            .into_iter()
            .filter(|r| r.state == OrderState::Pending)
        {
            let key = (rec.reseller.clone(), rec.remoteid.clone());
            if now.saturating_sub(rec.claimed_at_ms) < settle.as_millis() as u64 {
                report.left.push(key);
                continue;
            }
            let Some(reseller) = self.store.reseller(&rec.reseller) else {
                report.left.push(key);
                continue;
            };
            let found = match self.client.accounts().resolve(&reseller) {
                Ok(account) => {
                    self.client
                        .list_certificates(&reseller.login, &account, Some(&rec.remoteid))
                        .await
                }
                Err(_) => Err(crate::upstream::UpstreamError::Connect),
            };
            let found = match found {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(reseller = %rec.reseller, remoteid = %rec.remoteid, error = %e, "reconcile: lookup failed, order left pending");
                    report.left.push(key);
                    continue;
                }
            };
            match found.into_iter().min_by_key(|c| c.id) {
                Some(mut cert) => {
                    cert.plan = cert.plan.or(rec.plan.clone());
                    cert.period = cert.period.or(rec.period.clone());
                    let id = cert.id;
                    // The cost is what the list just said (none when it lists none).
                    let done = record::record_done(
                        &self.store,
                        &rec.reseller,
                        &rec.remoteid,
                        rec.claimed_at_ms,
                        cert,
                        ServiceSource::Reconcile,
                    )
                    .await?;
                    if done.is_some() {
                        tracing::info!(reseller = %rec.reseller, remoteid = %rec.remoteid, id, "reconcile: order found upstream, recorded as done");
                        report.found.push((key.0, key.1, id));
                    } else {
                        report.left.push(key);
                    }
                }
                None => {
                    let failed = record::fail_order(
                        &self.store,
                        &rec.reseller,
                        &rec.remoteid,
                        rec.claimed_at_ms,
                        "not found on the upstream by reconciliation",
                    )
                    .await?;
                    if failed {
                        tracing::info!(reseller = %rec.reseller, remoteid = %rec.remoteid, "reconcile: order not found upstream, marked failed");
                        report.failed.push(key);
                    } else {
                        report.left.push(key);
                    }
                }
            }
        }
        report.costs_filled = self.fill_missing_costs(settle).await;
        Ok(report)
    }

    /// Record every certificate of the reseller's upstream account as its service
    /// (`resellgate services sync`). Answers (recorded, refused as another reseller's).
    pub async fn sync_services(
        &self,
        reseller: &crate::store::model::Reseller,
    ) -> anyhow::Result<(usize, Vec<u64>)> {
        let account = self.client.accounts().resolve(reseller)?;
        let list = self
            .client
            .list_certificates(&reseller.login, &account, None)
            .await?;
        let mut recorded = 0;
        let mut refused = Vec::new();
        for cert in &list {
            if record::record_found(&self.store, &reseller.login, cert, ServiceSource::Sync).await?
            {
                recorded += 1;
            } else {
                refused.push(cert.id);
            }
        }
        Ok((recorded, refused))
    }
}
