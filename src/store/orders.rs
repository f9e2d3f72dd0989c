//! Order records: one per (reseller, `remoteid`), claimed with a compare-and-swap and
//! flushed before the order is forwarded, then resolved to `Done` (the answer to replay)
//! or `Failed` (a retry may order again).
//!
//! Two index trees spare reconciliation and pruning a scan of every order:
//! [`trees::ORDERS_PENDING`] holds the key of every pending record (written before the
//! claim's compare-and-swap, removed after the resolve's, in the same flush), and
//! [`trees::ORDERS_FAILED`] the failed ones by the time they failed. An index entry whose
//! record is no longer in that state (a crash between the two writes, a lost race) is
//! harmless: its reader finds out and removes it.
//!
//! A pending index entry's value is the `claimed_at_ms` of the claim it indexes (8
//! big-endian bytes; empty in stores written before fleet mode). It is removed only by a
//! compare-and-swap on that value: by the resolve of that claim, or by a reader finding
//! it stale — its claim resolved (`is_stale_pending`). A new claim of the same key
//! writes its own value first, so neither removal can take the new claim's entry away,
//! whether the race is between threads or between gateways sharing the store. On sled
//! the order writes also hold the store's write lock (one process, and cheap); on a
//! shared backend they do not, so a gateway's orders reach the database concurrently.

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

/// The failed-index key: the time it failed (8 big-endian bytes, so a scan is oldest
/// first), then the order key.
fn failed_key(updated_at_ms: u64, order_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + order_key.len());
    k.extend_from_slice(&updated_at_ms.to_be_bytes());
    k.extend_from_slice(order_key);
    k
}

/// An index entry older than this whose record is not its pending claim is a lost claim
/// (its compare-and-swap lost a race, or the process died between the two writes).
const LOST_CLAIM_MS: u64 = 3_600_000;

/// Failed-index entries one prune write takes at most ([`Store::prune_failed_orders_durable`]).
pub const PRUNE_CHUNK: usize = 512;

/// Whether the pending index entry `value` no longer indexes a pending claim of `rec`
/// (`None`: no record), at `now_ms`.
fn is_stale_pending(value: &[u8], rec: Option<&OrderRecord>, now_ms: u64) -> bool {
    if rec.is_some_and(|r| r.state == OrderState::Pending) {
        return false;
    }
    let Ok(at) = <[u8; 8]>::try_from(value) else {
        return true; // written before the value named its claim
    };
    let at = u64::from_be_bytes(at);
    rec.is_some_and(|r| r.claimed_at_ms == at) || now_ms.saturating_sub(at) > LOST_CLAIM_MS
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store {
    /// The write lock for order records on sled; on a shared backend none (the
    /// compare-and-swaps decide, see the module doc).
    fn order_lock(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        (!self.shared.backend.is_shared()).then(|| self.lock())
    }

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

    /// Every pending order record, by (reseller, remoteid), read through the pending index
    /// (no scan of the other orders). Stale index entries met on the way are removed.
    pub fn pending_orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        let b = &*self.shared.backend;
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for (k, v) in b.scan(trees::ORDERS_PENDING)? {
            match self.pending_record(&k)? {
                Some(rec) => out.push(rec),
                None => stale.push((k, v)),
            }
        }
        if !stale.is_empty() {
            let _guard = self.order_lock();
            let now = unix_now_ms();
            let mut removed = false;
            for (k, v) in stale {
                // Looked at again: a claim may have re-used the key meanwhile.
                let rec = match b.get(trees::ORDERS, &k)? {
                    Some(bytes) => Some(decode::<OrderRecord>(trees::ORDERS, &k, &bytes)?),
                    None => None,
                };
                if is_stale_pending(&v, rec.as_ref(), now) {
                    removed |= b
                        .compare_and_swap(trees::ORDERS_PENDING, &k, Some(&v), None)?
                        .is_ok();
                }
            }
            if removed {
                b.flush()?;
            }
        }
        Ok(out)
    }

    /// The record at order key `k` if it is pending.
    fn pending_record(&self, k: &[u8]) -> Result<Option<OrderRecord>, StoreError> {
        let Some(v) = self.shared.backend.get(trees::ORDERS, k)? else {
            return Ok(None);
        };
        let rec: OrderRecord = decode(trees::ORDERS, k, &v)?;
        Ok((rec.state == OrderState::Pending).then_some(rec))
    }

    /// Deletes `Failed` order records last changed before `cutoff_ms` (Unix ms), then
    /// flushes; answers how many went. Reads the failed index oldest first and stops at
    /// the cutoff, so the orders kept are not read. A record claimed again meanwhile is
    /// kept (checked under the write lock).
    pub fn prune_failed_orders(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        loop {
            let (n, more) = self.prune_failed_unflushed(cutoff_ms, PRUNE_CHUNK)?;
            pruned += n;
            if !more {
                self.shared.backend.flush()?;
                return Ok(pruned);
            }
        }
    }

    /// [`Store::prune_failed_orders`] on the group committer ([`Store::write_durable`]),
    /// [`PRUNE_CHUNK`] index entries per write, so the writes of the order path and
    /// their frees stay on one thread and a long prune never holds up the orders
    /// waiting behind it for more than one chunk.
    pub async fn prune_failed_orders_durable(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        loop {
            let (n, more) = self
                .write_durable(move |s| s.prune_failed_unflushed(cutoff_ms, PRUNE_CHUNK))
                .await?;
            pruned += n;
            if !more {
                return Ok(pruned);
            }
        }
    }

    /// One chunk of the prune, unflushed: at most `limit` failed-index entries before
    /// `cutoff_ms`. Answers how many records went and whether entries before the cutoff
    /// may be left.
    fn prune_failed_unflushed(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<(usize, bool), StoreError> {
        let b = &*self.shared.backend;
        let mut pruned = 0;
        let head = b.first(trees::ORDERS_FAILED, limit)?;
        // A full chunk may have more behind it, unless it reached the cutoff.
        let mut more = !head.is_empty() && head.len() == limit;
        for (ik, _) in head {
            let Some((at, k)) = ik.split_first_chunk::<8>() else {
                b.delete(trees::ORDERS_FAILED, &ik)?;
                continue;
            };
            if u64::from_be_bytes(*at) >= cutoff_ms {
                more = false;
                break;
            }
            let _guard = self.order_lock();
            let current = match b.get(trees::ORDERS, k)? {
                Some(v) => {
                    let rec: OrderRecord = decode(trees::ORDERS, k, &v)?;
                    let failed_then = matches!(rec.state, OrderState::Failed { .. })
                        && rec.updated_at_ms.to_be_bytes() == *at;
                    failed_then.then_some(v)
                }
                None => None,
            };
            if let Some(v) = current {
                if b.compare_and_swap(trees::ORDERS, k, Some(&v), None)?
                    .is_ok()
                {
                    pruned += 1;
                }
            }
            // Pruned, or stale (the record failed again later, or was claimed again).
            b.delete(trees::ORDERS_FAILED, &ik)?;
        }
        Ok((pruned, more))
    }

    /// Claims `rec`'s key atomically (compare-and-swap) and flushes, or answers what holds
    /// it. An absent or `Failed` record can be claimed. The pending index entry is written
    /// before the compare-and-swap, so a claimed record is never missing from it.
    pub fn claim_order(&self, rec: &OrderRecord) -> Result<Claim, StoreError> {
        let claim = self.claim_order_unflushed(rec)?;
        if matches!(claim, Claim::Claimed) {
            self.shared.backend.flush()?;
        }
        Ok(claim)
    }

    /// [`Store::claim_order`] made durable by the group committer
    /// ([`Store::write_durable`]): answers once the claim (or, for a replay, the answer
    /// it read) is flushed, together with the other writes waiting with it.
    pub async fn claim_order_durable(&self, rec: OrderRecord) -> Result<Claim, StoreError> {
        self.write_durable(move |s| s.claim_order_unflushed(&rec))
            .await
    }

    /// [`Store::claim_order`] without the flush: the caller makes it durable before the
    /// order is forwarded.
    pub(crate) fn claim_order_unflushed(&self, rec: &OrderRecord) -> Result<Claim, StoreError> {
        let b = &*self.shared.backend;
        let k = order_key(&rec.reseller, &rec.remoteid);
        let new = encode(rec, || format!("order '{}'", rec.remoteid))?;
        let guard = self.order_lock();
        loop {
            let current = b.get(trees::ORDERS, &k)?;
            let mut failed_at = None;
            if let Some(bytes) = &current {
                let cur: OrderRecord = decode(trees::ORDERS, &k, bytes)?;
                match &cur.state {
                    OrderState::Failed { .. } => failed_at = Some(cur.updated_at_ms),
                    _ if cur.params_hash != rec.params_hash => return Ok(Claim::Conflict(cur)),
                    OrderState::Done { .. } => return Ok(Claim::Replay(cur)),
                    OrderState::Pending => return Ok(Claim::Pending(cur)),
                }
            }
            b.put(trees::ORDERS_PENDING, &k, &rec.claimed_at_ms.to_be_bytes())?;
            match b.compare_and_swap(trees::ORDERS, &k, current.as_deref(), Some(&new))? {
                Ok(()) => {
                    if let Some(at) = failed_at {
                        b.delete(trees::ORDERS_FAILED, &failed_key(at, &k))?;
                    }
                    drop(guard);
                    return Ok(Claim::Claimed);
                }
                Err(_) => continue, // changed meanwhile: look again
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
        let _guard = self.order_lock();
        let swapped = self.resolve_order_unflushed(Resolve {
            reseller: reseller.to_string(),
            remoteid: remoteid.to_string(),
            claimed_at_ms,
            state,
            service,
            ledger: ledger.cloned(),
            now_ms,
        })?;
        self.shared.backend.flush()?;
        Ok(swapped)
    }

    /// [`Store::resolve_order`] made durable by the group committer
    /// ([`Store::write_durable`]): answers once the outcome is flushed.
    pub async fn resolve_order_durable(&self, resolve: Resolve) -> Result<bool, StoreError> {
        self.write_durable(move |s| {
            let _guard = s.order_lock();
            s.resolve_order_unflushed(resolve)
        })
        .await
    }

    /// [`Store::resolve_order`] without lock and flush (the caller holds the order lock and
    /// flushes).
    fn resolve_order_unflushed(&self, r: Resolve) -> Result<bool, StoreError> {
        let Resolve {
            reseller,
            remoteid,
            claimed_at_ms,
            state,
            service,
            ledger,
            now_ms,
        } = r;
        let k = order_key(&reseller, &remoteid);
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
            self.put_ledger_unflushed(&entry)?;
        }
        let failed = matches!(state, OrderState::Failed { .. });
        rec.state = state;
        rec.updated_at_ms = now_ms;
        let new = encode(&rec, || format!("order '{remoteid}'"))?;
        let b = &*self.shared.backend;
        let swapped = b
            .compare_and_swap(trees::ORDERS, &k, Some(&bytes), Some(&new))?
            .is_ok();
        if swapped {
            if failed {
                b.put(trees::ORDERS_FAILED, &failed_key(now_ms, &k), &[])?;
            }
            if rec.state != OrderState::Pending {
                // Only this claim's entry (a new claim of the key writes its own).
                let at = claimed_at_ms.to_be_bytes();
                if b.compare_and_swap(trees::ORDERS_PENDING, &k, Some(&at), None)?
                    .is_err()
                {
                    b.compare_and_swap(trees::ORDERS_PENDING, &k, Some(&[]), None)?
                        .ok(); // an entry from before fleet mode
                }
            }
        }
        Ok(swapped)
    }
}

/// A resolve of one pending claim, as [`Store::resolve_order_durable`] takes it (the
/// arguments of [`Store::resolve_order`], owned).
#[derive(Debug, Clone)]
pub struct Resolve {
    pub reseller: String,
    pub remoteid: String,
    /// The claim resolved (see [`OrderRecord::claimed_at_ms`]).
    pub claimed_at_ms: u64,
    pub state: OrderState,
    /// Recorded first, when given.
    pub service: Option<Service>,
    pub ledger: Option<super::ledger::LedgerEntry>,
    pub now_ms: u64,
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

    /// The gateway prunes through the committer, [`PRUNE_CHUNK`] index entries per write:
    /// more than one chunk before the cutoff all go, in as many writes as chunks, and
    /// nothing at or after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_prune_of_more_than_one_chunk_goes_through_the_committer() {
        let store = Store::open_temporary().unwrap();
        let old = PRUNE_CHUNK * 2 + 1;
        for i in 0..old {
            put(&store, &format!("old-{i}"), failed(), 1_000 + i as u64);
        }
        put(&store, "at-cutoff", failed(), 9_000);
        let before = store.commit_stats().unwrap();
        assert_eq!(store.prune_failed_orders_durable(9_000).await.unwrap(), old);
        let after = store.commit_stats().unwrap();
        assert_eq!(after.writes - before.writes, 3, "one write per chunk");
        let left: Vec<String> = store
            .orders()
            .unwrap()
            .into_iter()
            .map(|r| r.remoteid)
            .collect();
        assert_eq!(left, vec!["at-cutoff"]);
        assert_eq!(store.prune_failed_orders_durable(9_000).await.unwrap(), 0);
        // exactly one chunk: a second write finds nothing and stops
        for i in 0..PRUNE_CHUNK {
            put(&store, &format!("again-{i}"), failed(), 2_000);
        }
        assert_eq!(store.prune_failed_orders(9_000).unwrap(), PRUNE_CHUNK);
        assert_eq!(store.orders().unwrap().len(), 1);
    }

    fn index(store: &Store, tree: &str) -> Vec<Vec<u8>> {
        store
            .shared
            .backend
            .scan(tree)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    fn pending_ids(store: &Store) -> Vec<String> {
        store
            .pending_orders()
            .unwrap()
            .into_iter()
            .map(|r| r.remoteid)
            .collect()
    }

    /// The pending index follows claims and resolves; the failed index follows failures,
    /// a new claim of a failed key, and pruning.
    #[test]
    fn indexes_follow_claim_resolve_and_prune() {
        let store = Store::open_temporary().unwrap();
        put(&store, "a", None, 1_000);
        put(&store, "b", None, 1_000);
        assert_eq!(pending_ids(&store), ["a", "b"]);
        assert!(store
            .resolve_order(
                "acme",
                "a",
                1_000,
                OrderState::Done {
                    upstream_id: 1,
                    answer_xml: "<ok/>".into()
                },
                None,
                None,
                2_000
            )
            .unwrap());
        assert_eq!(pending_ids(&store), ["b"]);
        assert_eq!(
            index(&store, trees::ORDERS_PENDING),
            [order_key("acme", "b")]
        );
        // failed: out of the pending index, into the failed one at its time
        assert!(store
            .resolve_order("acme", "b", 1_000, failed().unwrap(), None, None, 2_500)
            .unwrap());
        assert!(pending_ids(&store).is_empty());
        assert!(index(&store, trees::ORDERS_PENDING).is_empty());
        assert_eq!(
            index(&store, trees::ORDERS_FAILED),
            [failed_key(2_500, &order_key("acme", "b"))]
        );
        // claimed again: pending again, its failed entry gone
        put(&store, "b", None, 3_000);
        assert_eq!(pending_ids(&store), ["b"]);
        assert!(index(&store, trees::ORDERS_FAILED).is_empty());
        assert!(store
            .resolve_order("acme", "b", 3_000, failed().unwrap(), None, None, 3_500)
            .unwrap());
        assert_eq!(store.prune_failed_orders(3_501).unwrap(), 1);
        assert!(index(&store, trees::ORDERS_FAILED).is_empty());
        assert!(store.order("acme", "b").unwrap().is_none());
        // the done record is untouched by all of it
        assert!(store.order("acme", "a").unwrap().is_some());
    }

    /// A crash between the index write and the claim's compare-and-swap leaves an entry
    /// with no pending record: harmless, and removed by the next reader. So is an entry
    /// whose record was resolved meanwhile, or a failed entry whose record failed again.
    #[test]
    fn stale_index_entries_are_harmless_and_removed() {
        let store = Store::open_temporary().unwrap();
        let b = &*store.shared.backend;
        put(&store, "real", None, 1_000);
        put(
            &store,
            "done",
            Some(OrderState::Done {
                upstream_id: 9,
                answer_xml: "<ok/>".into(),
            }),
            1_000,
        );
        // the crash: index entries written, the claims never made (or already resolved)
        b.put(trees::ORDERS_PENDING, &order_key("acme", "lost"), &[])
            .unwrap();
        b.put(trees::ORDERS_PENDING, &order_key("acme", "done"), &[])
            .unwrap();
        b.put(
            trees::ORDERS_FAILED,
            &failed_key(10, &order_key("acme", "real")),
            &[],
        )
        .unwrap();
        assert_eq!(pending_ids(&store), ["real"]);
        assert_eq!(
            index(&store, trees::ORDERS_PENDING),
            [order_key("acme", "real")]
        );
        // a stale failed entry prunes nothing and goes
        assert_eq!(store.prune_failed_orders(u64::MAX).unwrap(), 0);
        assert!(index(&store, trees::ORDERS_FAILED).is_empty());
        assert_eq!(pending_ids(&store), ["real"]);
        // a key claimed again after a lost claim is claimed normally
        put(&store, "lost", None, 2_000);
        assert_eq!(pending_ids(&store), ["lost", "real"]);
    }

    #[test]
    fn a_pending_index_entry_is_stale_only_when_its_own_claim_resolved() {
        let now = 10 * LOST_CLAIM_MS;
        let mut failed = rec("r", 5_000);
        failed.state = OrderState::Failed { reason: "x".into() };
        // the entry of the resolved claim itself
        assert!(is_stale_pending(
            &5_000u64.to_be_bytes(),
            Some(&failed),
            now
        ));
        // a new claim's entry, written before its compare-and-swap: kept
        let young = (now - 10).to_be_bytes();
        assert!(!is_stale_pending(&young, Some(&failed), now));
        assert!(!is_stale_pending(&young, None, now));
        // a lost claim, long ago
        let old = (now - LOST_CLAIM_MS - 1).to_be_bytes();
        assert!(is_stale_pending(&old, Some(&failed), now));
        assert!(is_stale_pending(&old, None, now));
        // a pending record is never stale; a value from before fleet mode is
        assert!(!is_stale_pending(&old, Some(&rec("r", 1)), now));
        assert!(is_stale_pending(&[], None, now));
    }
}
