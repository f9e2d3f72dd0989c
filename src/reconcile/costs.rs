//! Ledger costs read after the answer: a new order's from the reseller's upstream list
//! (`func=certificate&remoteid=…`), a renewal's from the prolong form for its period.
//! An entry whose lookup failed keeps no cost until a later pass fills it in.

use std::time::Duration;

use super::record::{self, blocking, now_ms, Billed};
use super::Reconciler;
use crate::store::ledger::{LedgerEntry, LedgerKind};

impl Reconciler {
    /// Read the upstream cost of a ledger entry and rewrite the entry with the cost and the
    /// reseller's price. When the lookup fails the entry keeps no cost (logged;
    /// reconciliation tries again). Answers whether the cost was filled in.
    pub async fn fill_cost(&self, entry: LedgerEntry) -> bool {
        let (login, id) = (entry.reseller.clone(), entry.upstream_id);
        let Some(reseller) = self.store.reseller(&login) else {
            return false;
        };
        let account = match self.client.accounts().resolve(&reseller) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(reseller = %login, id, kind = %entry.kind, error = %e, "cannot read the upstream cost: the ledger entry has none yet");
                return false;
            }
        };
        let (cost, plan, period) = if entry.kind == LedgerKind::Renewal {
            let Some(period) = entry.period.clone() else {
                return false;
            };
            let cost = self.client.renewal_cost(&account, id, &period).await;
            (cost, None, None)
        } else {
            match self
                .client
                .list_certificates(&login, &account, entry.remoteid.as_deref())
                .await
            {
                Ok(list) => match list.into_iter().find(|c| c.id == id) {
                    Some(c) => (c.cost, c.plan, c.period),
                    None => (None, None, None),
                },
                Err(e) => {
                    tracing::warn!(reseller = %login, id, kind = %entry.kind, error = %e, "cannot read the upstream cost: the ledger entry has none yet");
                    return false;
                }
            }
        };
        if cost.is_none() {
            tracing::warn!(reseller = %login, id, kind = %entry.kind, "the upstream shows no cost: the ledger entry has none yet");
            return false;
        }
        let filled = record::ledger_entry(
            &self.store,
            Billed {
                login: &login,
                kind: entry.kind,
                id,
                remoteid: entry.remoteid.as_deref(),
                plan: entry.plan.or(plan),
                period: entry.period.or(period),
                cost,
            },
            entry.at_ms,
        );
        record::record_ledger_after_answer(&self.store, filled).await
    }

    /// Read the upstream cost of every ledger entry still without one (its lookup after
    /// the answer failed, or the gateway stopped first) written at least `settle` ago.
    pub(super) async fn fill_missing_costs(&self, settle: Duration) -> usize {
        let store = self.store.clone();
        let entries = match blocking(move || store.costless_ledger()).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the ledger entries without a cost");
                return 0;
            }
        };
        let now = now_ms();
        let mut filled = 0;
        for entry in entries {
            if now.saturating_sub(entry.at_ms) >= settle.as_millis() as u64
                && self.fill_cost(entry).await
            {
                filled += 1;
            }
        }
        filled
    }
}
