//! Order records: one per (reseller, `remoteid`), claimed with a compare-and-swap and
//! flushed before the order is forwarded, then resolved to `Done` (the answer to replay)
//! or `Failed` (a retry may order again).

use serde::{Deserialize, Serialize};

use super::services::Service;
use super::{decode, encode, trees, Store, StoreError};

/// Where an order stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderState {
    /// Claimed; forwarded or about to be. Its outcome is not known.
    Pending,
    /// The upstream created certificate `upstream_id`; `answer_xml` is replayed to retries.
    Done {
        upstream_id: u64,
        answer_xml: String,
    },
    /// Known not to exist upstream (refused, not sent, or not found by reconciliation):
    /// a new order with this remoteid may be claimed.
    Failed { reason: String },
}

/// One order key and what became of it. Holds a hash of the parameters, never the
/// parameters themselves (they may carry a private key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub reseller: String,
    pub remoteid: String,
    /// SHA-256 of the sorted parameters, without `out`, `lang`, `authinfo`, `auth`.
    pub params_hash: Vec<u8>,
    /// Upstream pricelist id and period, as ordered.
    pub plan: Option<String>,
    pub period: Option<String>,
    /// Unix milliseconds when this claim was made (identifies the claim).
    pub claimed_at_ms: u64,
    /// Unix milliseconds of the last state change.
    pub updated_at_ms: u64,
    pub state: OrderState,
}

impl OrderRecord {
    pub fn state_name(&self) -> &'static str {
        match self.state {
            OrderState::Pending => "pending",
            OrderState::Done { .. } => "done",
            OrderState::Failed { .. } => "failed",
        }
    }
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// The key is ours now (recorded and flushed).
    Claimed,
    /// The same order was answered before.
    Replay(OrderRecord),
    /// The same order is in flight or its outcome is unknown.
    Pending(OrderRecord),
    /// The remoteid was used for an order with other parameters.
    Conflict(OrderRecord),
}

pub(crate) fn order_key(reseller: &str, remoteid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(reseller.len() + remoteid.len() + 1);
    k.extend_from_slice(reseller.as_bytes());
    k.push(0);
    k.extend_from_slice(remoteid.as_bytes());
    k
}

impl Store {
    pub fn order(&self, reseller: &str, remoteid: &str) -> Result<Option<OrderRecord>, StoreError> {
        let k = order_key(reseller, remoteid);
        match self.shared.backend.get(trees::ORDERS, &k)? {
            Some(v) => Ok(Some(decode(trees::ORDERS, &k, &v)?)),
            None => Ok(None),
        }
    }

    /// Every order record, by (reseller, remoteid).
    pub fn orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        self.shared
            .backend
            .scan(trees::ORDERS)?
            .into_iter()
            .map(|(k, v)| decode(trees::ORDERS, &k, &v))
            .collect()
    }

    /// Deletes `Failed` order records last changed before `cutoff_ms` (Unix ms), then
    /// flushes; answers how many went. A record claimed again meanwhile is kept (the
    /// delete is a compare-and-swap on the value read).
    pub fn prune_failed_orders(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for (k, v) in self.shared.backend.scan(trees::ORDERS)? {
            let rec: OrderRecord = decode(trees::ORDERS, &k, &v)?;
            let expired =
                matches!(rec.state, OrderState::Failed { .. }) && rec.updated_at_ms < cutoff_ms;
            if expired
                && self
                    .shared
                    .backend
                    .compare_and_swap(trees::ORDERS, &k, Some(&v), None)?
                    .is_ok()
            {
                pruned += 1;
            }
        }
        if pruned > 0 {
            self.shared.backend.flush()?;
        }
        Ok(pruned)
    }

    /// Claims `rec`'s key atomically (compare-and-swap) and flushes, or answers what holds
    /// it. An absent or `Failed` record can be claimed.
    pub fn claim_order(&self, rec: &OrderRecord) -> Result<Claim, StoreError> {
        let k = order_key(&rec.reseller, &rec.remoteid);
        let new = encode(rec, || format!("order '{}'", rec.remoteid))?;
        loop {
            let current = self.shared.backend.get(trees::ORDERS, &k)?;
            if let Some(bytes) = &current {
                let cur: OrderRecord = decode(trees::ORDERS, &k, bytes)?;
                match &cur.state {
                    OrderState::Failed { .. } => {}
                    _ if cur.params_hash != rec.params_hash => return Ok(Claim::Conflict(cur)),
                    OrderState::Done { .. } => return Ok(Claim::Replay(cur)),
                    OrderState::Pending => return Ok(Claim::Pending(cur)),
                }
            }
            match self.shared.backend.compare_and_swap(
                trees::ORDERS,
                &k,
                current.as_deref(),
                Some(&new),
            )? {
                Ok(()) => {
                    self.shared.backend.flush()?;
                    return Ok(Claim::Claimed);
                }
                Err(_) => continue, // someone else changed it: look again
            }
        }
    }

    /// Moves the pending claim made at `claimed_at_ms` to `state` (and records `service`
    /// first, when given), then flushes. Answers `false` when the record is no longer that
    /// pending claim (then nothing is written).
    #[allow(clippy::too_many_arguments)]
    pub fn resolve_order(
        &self,
        reseller: &str,
        remoteid: &str,
        claimed_at_ms: u64,
        state: OrderState,
        service: Option<Service>,
        ledger: Option<&super::ledger::LedgerEntry>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock();
        let k = order_key(reseller, remoteid);
        let Some(bytes) = self.shared.backend.get(trees::ORDERS, &k)? else {
            return Ok(false);
        };
        let mut rec: OrderRecord = decode(trees::ORDERS, &k, &bytes)?;
        if rec.state != OrderState::Pending || rec.claimed_at_ms != claimed_at_ms {
            return Ok(false);
        }
        if let Some(svc) = service {
            self.put_service_unflushed(svc)?;
        }
        if let Some(entry) = ledger {
            self.put_ledger_unflushed(entry)?;
        }
        rec.state = state;
        rec.updated_at_ms = now_ms;
        let new = encode(&rec, || format!("order '{remoteid}'"))?;
        let swapped = self
            .shared
            .backend
            .compare_and_swap(trees::ORDERS, &k, Some(&bytes), Some(&new))?
            .is_ok();
        self.shared.backend.flush()?;
        Ok(swapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(remoteid: &str, claimed_at_ms: u64) -> OrderRecord {
        OrderRecord {
            reseller: "acme".into(),
            remoteid: remoteid.into(),
            params_hash: vec![1],
            plan: None,
            period: None,
            claimed_at_ms,
            updated_at_ms: claimed_at_ms,
            state: OrderState::Pending,
        }
    }

    /// Claim `remoteid` and resolve it to `state` at `at_ms` (`None`: leave it pending).
    fn put(store: &Store, remoteid: &str, state: Option<OrderState>, at_ms: u64) {
        let r = rec(remoteid, at_ms);
        assert!(matches!(store.claim_order(&r).unwrap(), Claim::Claimed));
        if let Some(state) = state {
            assert!(store
                .resolve_order("acme", remoteid, at_ms, state, None, None, at_ms)
                .unwrap());
        }
    }

    fn failed() -> Option<OrderState> {
        Some(OrderState::Failed {
            reason: "refused".into(),
        })
    }

    #[test]
    fn failed_orders_past_the_cutoff_are_pruned_and_nothing_else() {
        let store = Store::open_temporary().unwrap();
        put(&store, "old-failed", failed(), 1_000);
        put(&store, "edge-failed", failed(), 3_000);
        put(&store, "new-failed", failed(), 5_000);
        put(
            &store,
            "old-done",
            Some(OrderState::Done {
                upstream_id: 7,
                answer_xml: "<ok/>".into(),
            }),
            1_000,
        );
        put(&store, "old-pending", None, 1_000);
        assert_eq!(store.prune_failed_orders(3_000).unwrap(), 1);
        let left: Vec<String> = store
            .orders()
            .unwrap()
            .into_iter()
            .map(|r| r.remoteid)
            .collect();
        assert_eq!(
            left,
            vec!["edge-failed", "new-failed", "old-done", "old-pending"]
        );
        // at the edge: updated exactly at the cutoff stays; one millisecond later it goes
        assert_eq!(store.prune_failed_orders(3_001).unwrap(), 1);
        assert!(store.order("acme", "edge-failed").unwrap().is_none());
        assert_eq!(store.prune_failed_orders(3_001).unwrap(), 0);
    }
}
