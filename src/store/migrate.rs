//! The store's format version and the migration of older stores, run by
//! [`Store::with_backend`](super::Store::with_backend) before anything is read.
//!
//! The version is one value in the [`trees::META`] tree (key `format`, 4 big-endian bytes).
//! A store without it is format 1 if it holds any record (written before the version
//! existed), else new. Format 2 made the ledger kind, the service source and the history
//! outcome enums (value version 2, see [`codec`]) and added the order indexes
//! ([`trees::ORDERS_PENDING`], [`trees::ORDERS_FAILED`]).
//!
//! The migration is one pass over every tree: each value still in version 1 is decoded
//! with the old types, converted and rewritten in version 2; values already in version 2
//! are left as they are, so a migration interrupted by a crash simply runs again (the old
//! values stay readable until rewritten). The indexes are rebuilt from the records, then
//! everything is flushed, and only then is the new format version written and flushed. A
//! store of a newer format is refused.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::codec::{self, CodecError};
use super::ledger::{LedgerEntry, LedgerKind, LEDGER, LEDGER_COSTLESS};
use super::orders::{OrderRecord, OrderState};
use super::services::{Outcome, Service, ServiceEvent, ServiceSource};
use super::{trees, Backend, StoreError};

/// The store format this build writes and reads.
pub const FORMAT: u32 = 2;

/// The key of the format version in [`trees::META`].
pub const FORMAT_KEY: &[u8] = b"format";

/// The value version of store format 1.
const V1: u8 = 1;

/// Brings the store to [`FORMAT`], or refuses it. Answers the format found (`None`: new).
pub(super) fn run(b: &dyn Backend) -> Result<Option<u32>, StoreError> {
    let found = read_format(b)?;
    match found {
        Some(FORMAT) => return Ok(found),
        Some(v) if v > FORMAT => return Err(StoreError::NewerFormat { found: v }),
        Some(1) => migrate_v1(b)?,
        Some(v) => {
            return Err(StoreError::Decode {
                tree: trees::META,
                key: "format".into(),
                source: CodecError::Corrupt(format!("store format {v} never existed")),
            })
        }
        None if is_empty(b)? => {}
        None => migrate_v1(b)?,
    }
    b.flush()?;
    b.put(trees::META, FORMAT_KEY, &FORMAT.to_be_bytes())?;
    b.flush()?;
    Ok(found)
}

fn read_format(b: &dyn Backend) -> Result<Option<u32>, StoreError> {
    let Some(v) = b.get(trees::META, FORMAT_KEY)? else {
        return Ok(None);
    };
    let bytes = <[u8; 4]>::try_from(v.as_slice()).map_err(|_| StoreError::Decode {
        tree: trees::META,
        key: "format".into(),
        source: CodecError::Corrupt(format!("{} bytes, not 4", v.len())),
    })?;
    Ok(Some(u32::from_be_bytes(bytes)))
}

/// Every tree that holds records (not indexes).
const RECORD_TREES: [&str; 6] = [
    trees::UPSTREAM_ACCOUNTS,
    trees::RESELLERS,
    trees::PLANS,
    trees::SERVICES,
    trees::ORDERS,
    LEDGER,
];

fn is_empty(b: &dyn Backend) -> Result<bool, StoreError> {
    for t in RECORD_TREES {
        if !b.scan(t)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn migrate_v1(b: &dyn Backend) -> Result<(), StoreError> {
    // Records whose encoding did not change: the same bincode under the new version byte.
    for tree in [
        trees::UPSTREAM_ACCOUNTS,
        trees::RESELLERS,
        trees::PLANS,
        trees::ORDERS,
    ] {
        rewrite(b, tree, |body| Ok(body.to_vec()))?;
    }
    rewrite(b, trees::SERVICES, |body| {
        let old: ServiceV1 = codec::decode_body(body)?;
        reencode(&old.into_current()?)
    })?;
    rewrite(b, LEDGER, |body| {
        let old: LedgerEntryV1 = codec::decode_body(body)?;
        reencode(&old.into_current()?)
    })?;
    rebuild_order_indexes(b)?;
    tracing::info!(from = 1, to = FORMAT, "store migrated");
    // The costless index's keys are the ledger's, which did not change.
    for (k, _) in b.scan(LEDGER_COSTLESS)? {
        if b.get(LEDGER, &k)?.is_none() {
            b.delete(LEDGER_COSTLESS, &k)?;
        }
    }
    Ok(())
}

/// Rewrites every version-1 value of `tree` with `convert` (given the old bincode body,
/// answers the new bincode body); version-2 values are already done.
fn rewrite(
    b: &dyn Backend,
    tree: &'static str,
    convert: impl Fn(&[u8]) -> Result<Vec<u8>, CodecError>,
) -> Result<(), StoreError> {
    for (k, v) in b.scan(tree)? {
        let err = |source| StoreError::Decode {
            tree,
            key: super::key_text(tree, &k),
            source,
        };
        match codec::version_of(&v).map_err(err)? {
            codec::VERSION => {}
            V1 => {
                let mut new = vec![codec::VERSION];
                new.extend(convert(&v[1..]).map_err(err)?);
                b.put(tree, &k, &new)?;
            }
            found => return Err(err(CodecError::UnknownVersion { found })),
        }
    }
    Ok(())
}

/// The bincode body (no version byte) of `value`.
fn reencode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut v = codec::encode(value)?;
    v.remove(0);
    Ok(v)
}

/// Builds the pending and failed order indexes from the order records.
pub(super) fn rebuild_order_indexes(b: &dyn Backend) -> Result<(), StoreError> {
    for index in [trees::ORDERS_PENDING, trees::ORDERS_FAILED] {
        for (k, _) in b.scan(index)? {
            b.delete(index, &k)?;
        }
    }
    for (k, v) in b.scan(trees::ORDERS)? {
        let rec: OrderRecord = super::decode(trees::ORDERS, &k, &v)?;
        match rec.state {
            OrderState::Pending => {
                b.put(trees::ORDERS_PENDING, &k, &rec.claimed_at_ms.to_be_bytes())?
            }
            OrderState::Failed { .. } => {
                let mut ik = rec.updated_at_ms.to_be_bytes().to_vec();
                ik.extend_from_slice(&k);
                b.put(trees::ORDERS_FAILED, &ik, &[])?;
            }
            OrderState::Done { .. } => {}
        }
    }
    Ok(())
}

fn corrupt(what: &str, value: &str) -> CodecError {
    CodecError::Corrupt(format!("unknown {what} {value:?} in a format-1 value"))
}

/// [`Service`] as format 1 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ServiceV1 {
    upstream_id: u64,
    reseller: String,
    remoteid: Option<String>,
    plan: Option<String>,
    period: Option<String>,
    recorded_at: u64,
    source: String,
    deleted: bool,
    history: Vec<ServiceEventV1>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ServiceEventV1 {
    at: u64,
    func: String,
    outcome: String,
}

impl ServiceV1 {
    fn into_current(self) -> Result<Service, CodecError> {
        let source =
            ServiceSource::parse(&self.source).ok_or_else(|| corrupt("source", &self.source))?;
        let history = self
            .history
            .into_iter()
            .map(|e| {
                let outcome =
                    Outcome::parse(&e.outcome).ok_or_else(|| corrupt("outcome", &e.outcome))?;
                Ok(ServiceEvent {
                    at: e.at,
                    func: e.func,
                    outcome,
                })
            })
            .collect::<Result<_, CodecError>>()?;
        Ok(Service {
            upstream_id: self.upstream_id,
            reseller: self.reseller,
            remoteid: self.remoteid,
            plan: self.plan,
            period: self.period,
            recorded_at: self.recorded_at,
            source,
            deleted: self.deleted,
            history,
        })
    }
}

/// [`LedgerEntry`] as format 1 wrote it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct LedgerEntryV1 {
    at_ms: u64,
    reseller: String,
    kind: String,
    upstream_id: u64,
    remoteid: Option<String>,
    plan: Option<String>,
    period: Option<String>,
    upstream_cost: Option<String>,
    price: Option<String>,
}

impl LedgerEntryV1 {
    fn into_current(self) -> Result<LedgerEntry, CodecError> {
        let kind = LedgerKind::parse(&self.kind).ok_or_else(|| corrupt("kind", &self.kind))?;
        let money = |s: Option<String>| {
            s.map(|s| Decimal::from_str(s.trim()).map_err(|_| corrupt("amount", &s)))
                .transpose()
        };
        Ok(LedgerEntry {
            at_ms: self.at_ms,
            reseller: self.reseller,
            kind,
            upstream_id: self.upstream_id,
            remoteid: self.remoteid,
            plan: self.plan,
            period: self.period,
            upstream_cost: money(self.upstream_cost)?,
            price: money(self.price)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::PasswordSource;
    use crate::store::ledger::entry_key;
    use crate::store::orders::order_key;
    use crate::store::{Plan, Reseller, SledBackend, Store, UpstreamAccount};

    /// A value as format 1 wrote it: version byte 1, then bincode.
    fn v1<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut v = codec::encode(value).unwrap();
        v[0] = V1;
        v
    }

    fn order(remoteid: &str, state: OrderState, updated_at_ms: u64) -> OrderRecord {
        OrderRecord {
            reseller: "acme".into(),
            remoteid: remoteid.into(),
            params_hash: vec![7],
            plan: Some("3033".into()),
            period: Some("12".into()),
            claimed_at_ms: 1_000,
            updated_at_ms,
            state,
        }
    }

    fn ledger_v1(kind: &str, cost: Option<&str>) -> LedgerEntryV1 {
        LedgerEntryV1 {
            at_ms: 5_000,
            reseller: "acme".into(),
            kind: kind.into(),
            upstream_id: 5001,
            remoteid: Some("r1".into()),
            plan: Some("3033".into()),
            period: Some("12".into()),
            upstream_cost: cost.map(str::to_string),
            price: cost.map(|_| "11.30".to_string()),
        }
    }

    /// A store as format 1 (before the format version existed) left it: every kind of
    /// record, the costless index, no order indexes, no `meta` tree.
    fn format_1_store() -> SledBackend {
        let b = SledBackend::temporary().unwrap();
        let account = UpstreamAccount {
            name: "acme-up".into(),
            login: "acme@x".into(),
            password: PasswordSource::Env("PW".into()),
        };
        b.put(trees::UPSTREAM_ACCOUNTS, b"acme-up", &v1(&account))
            .unwrap();
        let plan = Plan {
            id: 101,
            upstream_id: 3033,
            name: Some("PositiveSSL".into()),
            markup: None,
            addons: vec![],
        };
        b.put(trees::PLANS, &101u64.to_be_bytes(), &v1(&plan))
            .unwrap();
        let reseller = Reseller {
            login: "acme".into(),
            password_hash: "$argon2id$x".into(),
            upstream_account: "acme-up".into(),
            plans: vec![101],
            markup: None,
        };
        b.put(trees::RESELLERS, b"acme", &v1(&reseller)).unwrap();
        let svc = ServiceV1 {
            upstream_id: 5001,
            reseller: "acme".into(),
            remoteid: Some("r1".into()),
            plan: Some("3033".into()),
            period: None,
            recorded_at: 5,
            source: "lookup".into(),
            deleted: false,
            history: ["ok", "error:access", "unknown:timeout"]
                .into_iter()
                .map(|o| ServiceEventV1 {
                    at: 6,
                    func: "certificate.edit".into(),
                    outcome: o.into(),
                })
                .collect(),
        };
        b.put(trees::SERVICES, &5001u64.to_be_bytes(), &v1(&svc))
            .unwrap();
        for (kind, cost) in [("order", None), ("renewal", Some("9.00"))] {
            let key = entry_key(&ledger_v1(kind, cost).into_current().unwrap());
            b.put(LEDGER, &key, &v1(&ledger_v1(kind, cost))).unwrap();
            if cost.is_none() {
                b.put(LEDGER_COSTLESS, &key, &[]).unwrap();
            }
        }
        for rec in [
            order("pending", OrderState::Pending, 1_000),
            order(
                "failed",
                OrderState::Failed {
                    reason: "refused".into(),
                },
                2_000,
            ),
            order(
                "done",
                OrderState::Done {
                    upstream_id: 5001,
                    answer_xml: "<ok/>".into(),
                },
                3_000,
            ),
        ] {
            b.put(
                trees::ORDERS,
                &order_key(&rec.reseller, &rec.remoteid),
                &v1(&rec),
            )
            .unwrap();
        }
        b
    }

    fn format_of(store: &Store) -> Option<u32> {
        read_format(&*store.shared.backend).unwrap()
    }

    /// Every record of a format-1 store reads back the same, as enums and decimals, and
    /// the order indexes exist; the store is marked format 2.
    #[test]
    fn format_1_store_is_migrated() {
        let store = Store::with_backend(Box::new(format_1_store())).unwrap();
        assert_eq!(format_of(&store), Some(FORMAT));
        assert_eq!(store.reseller("acme").unwrap().plans, vec![101]);
        assert_eq!(store.plan(101).unwrap().upstream_id, 3033);
        assert_eq!(store.upstream_account("acme-up").unwrap().login, "acme@x");

        let svc = store.service(5001).unwrap().unwrap();
        assert_eq!(svc.source, ServiceSource::Lookup);
        let outcomes: Vec<String> = svc.history.iter().map(|e| e.outcome.to_string()).collect();
        assert_eq!(outcomes, ["ok", "error:access", "unknown:timeout"]);
        assert_eq!(svc.history[1].outcome, Outcome::Error("access".into()));

        let ledger = store.ledger(None).unwrap();
        let rows: Vec<_> = ledger
            .iter()
            .map(|e| (e.kind, e.upstream_cost_text(), e.price_text()))
            .collect();
        assert_eq!(
            rows,
            [
                (LedgerKind::Order, None, None),
                (
                    LedgerKind::Renewal,
                    Some("9.00".to_string()),
                    Some("11.30".to_string())
                ),
            ]
        );
        let costless = store.costless_ledger().unwrap();
        assert_eq!(costless.len(), 1);
        assert_eq!(costless[0].kind, LedgerKind::Order);

        let pending: Vec<String> = store
            .pending_orders()
            .unwrap()
            .into_iter()
            .map(|r| r.remoteid)
            .collect();
        assert_eq!(pending, ["pending"]);
        assert_eq!(store.orders().unwrap().len(), 3);
        // the failed index was built: pruning finds the failed order without a scan
        assert_eq!(store.prune_failed_orders(2_001).unwrap(), 1);
        assert!(store.order("acme", "failed").unwrap().is_none());
    }

    /// A migration cut short (some values rewritten, the version not yet written) runs
    /// again to the same result; a migrated store is left alone.
    #[test]
    fn migration_is_idempotent_and_resumable() {
        let b = format_1_store();
        // half done: the services rewritten, nothing else
        rewrite(&b, trees::SERVICES, |body| {
            let old: ServiceV1 = codec::decode_body(body)?;
            reencode(&old.into_current()?)
        })
        .unwrap();
        assert_eq!(read_format(&b).unwrap(), None);
        assert_eq!(run(&b).unwrap(), None);
        let after: Vec<_> = RECORD_TREES.iter().map(|t| b.scan(t).unwrap()).collect();
        assert_eq!(run(&b).unwrap(), Some(FORMAT));
        let again: Vec<_> = RECORD_TREES.iter().map(|t| b.scan(t).unwrap()).collect();
        assert_eq!(after, again);
        for tree in after.iter().flatten() {
            assert_eq!(tree.1[0], codec::VERSION);
        }
        let store = Store::with_backend(Box::new(b)).unwrap();
        assert_eq!(
            store.service(5001).unwrap().unwrap().source,
            ServiceSource::Lookup
        );
    }

    /// A new store is marked with this format at once; a newer format is refused.
    #[test]
    fn new_store_is_marked_and_newer_is_refused() {
        let store = Store::open_temporary().unwrap();
        assert_eq!(format_of(&store), Some(FORMAT));

        let b = SledBackend::temporary().unwrap();
        b.put(trees::META, FORMAT_KEY, &(FORMAT + 1).to_be_bytes())
            .unwrap();
        let e = Store::with_backend(Box::new(b)).unwrap_err().to_string();
        assert!(
            e.contains("the store has format 3, newer than this build reads (2)"),
            "{e}"
        );
    }

    /// A format-1 value with a string the enums do not know is a clear error, not a guess.
    #[test]
    fn unknown_format_1_spelling_is_clear() {
        let b = SledBackend::temporary().unwrap();
        b.put(LEDGER, b"k", &v1(&ledger_v1("refund", None)))
            .unwrap();
        let e = Store::with_backend(Box::new(b)).unwrap_err().to_string();
        assert!(e.contains("store tree 'ledger', key 'k'"), "{e}");
        assert!(e.contains("unknown kind \"refund\""), "{e}");
    }
}
