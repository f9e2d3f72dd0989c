//! The background services of a running gateway, each a pingora `BackgroundService`:
//!
//! - [`Purge`] — once a minute: expired sessions, stale failure counters (in fleet mode
//!   also the shared ones); every 5 s: failed order records past
//!   `[orders] failed_retention_s`.
//! - [`Reconcile`] — a reconciliation pass at start-up and every
//!   `[orders] reconcile_interval_s`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::proxy::Gateway;
use crate::reconcile::Reconciler;

/// Purges expired sessions and stale failure counters once a minute, and failed order
/// records older than `[orders] failed_retention_s` every 5 s.
pub struct Purge {
    pub gateway: Arc<Gateway>,
    pub failed_retention: Duration,
}

/// How often failed order records past their retention are looked for: often, so that each
/// prune frees a few seconds' worth of records rather than a minute's at once (a burst of
/// frees is what the allocator keeps; see bench/README.md, "Soak").
const ORDER_PRUNE_EVERY: Duration = Duration::from_secs(5);

#[async_trait]
impl BackgroundService for Purge {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut orders_tick = tokio::time::interval(ORDER_PRUNE_EVERY);
        orders_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.purge_sessions().await,
                _ = orders_tick.tick() => self.prune_orders().await,
            }
        }
    }
}

impl Purge {
    /// Expired sessions and stale failure counters (in fleet mode also the shared ones).
    async fn purge_sessions(&self) {
        self.gateway.authenticator().purge(Instant::now());
        let store = self.gateway.store().clone();
        if store.is_shared() {
            let ttl = self.gateway.authenticator().settings().session_ttl;
            let window = self.gateway.authenticator().settings().failure_window;
            let cutoff = crate::reconcile::record::now_ms()
                .saturating_sub(ttl.max(window).as_millis() as u64);
            match tokio::task::spawn_blocking(move || store.prune_sessions(cutoff)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot prune shared sessions"),
                Err(e) => tracing::error!(error = %e, "the session pruning task failed"),
            }
        }
    }

    /// Failed order records past `[orders] failed_retention_s`.
    async fn prune_orders(&self) {
        let cutoff = crate::reconcile::record::now_ms()
            .saturating_sub(self.failed_retention.as_millis() as u64);
        match self
            .gateway
            .store()
            .prune_failed_orders_durable(cutoff)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                pruned = n,
                "failed order records past their retention deleted"
            ),
            Err(e) => tracing::error!(error = %e, "cannot prune failed order records"),
        }
    }
}

/// Resolves pending orders (claimed at least [`Reconciler::settle`] ago) against
/// the upstream, every `interval` (`[orders]` in config.toml).
pub struct Reconcile {
    pub reconciler: Arc<Reconciler>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for Reconcile {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // The first tick is immediate: a restart after a crash resolves what it left.
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => match self.reconciler.reconcile_orders(self.reconciler.settle()).await {
                    Ok(r) if !r.found.is_empty() || !r.failed.is_empty() || r.costs_filled > 0 => tracing::info!(
                        found = r.found.len(), failed = r.failed.len(), pending = r.left.len(),
                        costs_filled = r.costs_filled, "pending orders reconciled"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "reconciling pending orders failed"),
                },
            }
        }
    }
}
