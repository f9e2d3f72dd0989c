//! Services: upstream certificate id → (reseller, remoteid, plan, period) and a short
//! history of what was done to it through the gateway. Keyed by the upstream id (8
//! big-endian bytes), so the ownership check of an `elid` is one lookup.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{decode, decode_head, encode, trees, Store, StoreError};

/// Services [`Store::service_plans`] reads in one query, at most (a list of tens of
/// megabytes holds tens of thousands of rows).
pub const SERVICE_PLANS_AT_ONCE: usize = 5_000;

/// How many history events a service keeps (the oldest are dropped first).
pub const HISTORY_LIMIT: usize = 100;

/// A certificate at the upstream and the reseller it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The upstream certificate id (the `elid` the reseller uses).
    pub upstream_id: u64,
    pub reseller: String,
    /// The reselling billing's own service id, when known.
    pub remoteid: Option<String>,
    /// The upstream pricelist id, when known.
    pub plan: Option<String>,
    /// The period in months, when known.
    pub period: Option<String>,
    /// Unix seconds when the gateway first recorded it.
    pub recorded_at: u64,
    /// How it became known.
    pub source: ServiceSource,
    pub deleted: bool,
    pub history: Vec<ServiceEvent>,
}

/// The leading fields of a [`Service`], read without the rest (its history of up to
/// [`HISTORY_LIMIT`] events): what an ownership check or a list row needs. Its fields
/// are the first of [`Service`]'s, in the same order (the encoding is positional; the
/// test `a_service_head_is_its_services_first_fields` holds them together).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ServiceHead {
    pub upstream_id: u64,
    pub reseller: String,
    pub remoteid: Option<String>,
    /// The upstream pricelist id, when known.
    pub plan: Option<String>,
}

impl ServiceHead {
    /// The upstream plan as a number, when it reads as one.
    pub fn plan_id(&self) -> Option<u64> {
        self.plan.as_deref().and_then(|p| p.trim().parse().ok())
    }
}

/// One call made on a service through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEvent {
    /// Unix seconds.
    pub at: u64,
    pub func: String,
    pub outcome: Outcome,
}

/// How the gateway came to know a service. Shown (admin JSON, `services list`) as
/// `order`, `reconcile`, `lookup` or `sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceSource {
    /// Ordered through the gateway, answered.
    Order,
    /// Ordered through the gateway, found upstream by reconciliation.
    Reconcile,
    /// An `elid` never seen, found in the reseller's own upstream account.
    Lookup,
    /// Recorded by `services sync`.
    Sync,
}

impl ServiceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceSource::Order => "order",
            ServiceSource::Reconcile => "reconcile",
            ServiceSource::Lookup => "lookup",
            ServiceSource::Sync => "sync",
        }
    }

    /// The inverse of [`ServiceSource::as_str`] (reads the strings of store format 1).
    pub fn parse(s: &str) -> Option<ServiceSource> {
        [
            ServiceSource::Order,
            ServiceSource::Reconcile,
            ServiceSource::Lookup,
            ServiceSource::Sync,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for ServiceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call on a service came to. Shown as `ok`, `error:<type>` or `unknown:<failure>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The upstream answered without an error.
    Ok,
    /// The upstream answered an error document of this `type`.
    Error(String),
    /// The answer was lost (this failure: `timeout`, `closed`, …); the call may have acted.
    Unknown(String),
}

impl Outcome {
    /// The inverse of the `Display` form (reads the strings of store format 1).
    pub fn parse(s: &str) -> Option<Outcome> {
        if s == "ok" {
            return Some(Outcome::Ok);
        }
        if let Some(t) = s.strip_prefix("error:") {
            return Some(Outcome::Error(t.to_string()));
        }
        s.strip_prefix("unknown:")
            .map(|f| Outcome::Unknown(f.to_string()))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Error(t) => write!(f, "error:{t}"),
            Outcome::Unknown(why) => write!(f, "unknown:{why}"),
        }
    }
}

/// Services [`Store::record_services`] writes per flush.
pub const IMPORT_BATCH: usize = 10_000;

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// `svc` recorded over the service already recorded with its id (`old`): it keeps the
/// history, first record and deletion of `old` and gains the fields it lacked. `None`
/// when `old` belongs to another reseller: a service is never reassigned.
fn merged(old: Option<Service>, mut svc: Service) -> Option<Service> {
    if let Some(old) = old {
        if old.reseller != svc.reseller {
            return None;
        }
        svc.history = old.history;
        svc.recorded_at = old.recorded_at;
        svc.source = old.source;
        svc.deleted = old.deleted;
        svc.remoteid = svc.remoteid.or(old.remoteid);
        svc.plan = svc.plan.or(old.plan);
        svc.period = svc.period.or(old.period);
    }
    Some(svc)
}

impl Store {
    /// The service with upstream id `id`, from the backend.
    pub fn service(&self, id: u64) -> Result<Option<Service>, StoreError> {
        let k = key(id);
        match self.shared.backend.get(trees::SERVICES, &k)? {
            Some(v) => Ok(Some(decode(trees::SERVICES, &k, &v)?)),
            None => Ok(None),
        }
    }

    /// The upstream plans of `reseller`'s services among certificates `ids`, read
    /// [`SERVICE_PLANS_AT_ONCE`] at a time (one round trip each on PostgreSQL): id → plan.
    /// A certificate without a service, or whose service is another reseller's or names no
    /// plan, is left out.
    pub fn service_plans(
        &self,
        reseller: &str,
        ids: &[u64],
    ) -> Result<std::collections::HashMap<u64, u64>, StoreError> {
        let mut plans = std::collections::HashMap::with_capacity(ids.len());
        for ids in ids.chunks(SERVICE_PLANS_AT_ONCE) {
            let keys: Vec<Vec<u8>> = ids.iter().map(|&id| key(id).to_vec()).collect();
            let values = self.shared.backend.get_many(trees::SERVICES, &keys)?;
            for ((&id, k), v) in ids.iter().zip(&keys).zip(values) {
                let Some(v) = v else { continue };
                let svc: ServiceHead = decode_head(trees::SERVICES, k, &v)?;
                if let (true, Some(plan)) = (svc.reseller == reseller, svc.plan_id()) {
                    plans.insert(id, plan);
                }
            }
        }
        Ok(plans)
    }

    /// The head of the service recorded for certificate `id` ([`ServiceHead`]): its
    /// reseller and plan, without decoding its history.
    pub fn service_head(&self, id: u64) -> Result<Option<ServiceHead>, StoreError> {
        let k = key(id);
        match self.shared.backend.get(trees::SERVICES, &k)? {
            Some(v) => Ok(Some(decode_head(trees::SERVICES, &k, &v)?)),
            None => Ok(None),
        }
    }

    /// Every service of `reseller` (every service when `None`), by id. The store is read
    /// one service at a time, so memory holds the services answered, not every service;
    /// another reseller's service is passed over without being decoded.
    pub fn services(&self, reseller: Option<&str>) -> Result<Vec<Service>, StoreError> {
        self.records_of(trees::SERVICES, reseller, |s: &Service| &s.reseller)
    }

    /// Records `svc` (flushed before returning). A service already recorded for the same
    /// reseller keeps its history and gains the fields it lacked. A service recorded for
    /// another reseller is never reassigned: answers `false`.
    pub fn record_service(&self, svc: Service) -> Result<bool, StoreError> {
        let _guard = self.lock();
        let ok = self.put_service_unflushed(svc)?;
        self.shared.backend.flush()?;
        Ok(ok)
    }

    /// Records every service of `services` as [`Store::record_service`] does, in batches
    /// of [`IMPORT_BATCH`]: each batch read with one bulk read, written with one bulk write
    /// and flushed once (on PostgreSQL two round trips a batch, not two a service): the
    /// import of a large list. Answers how many were recorded and the ids refused
    /// (recorded for another reseller).
    pub fn record_services(
        &self,
        services: impl IntoIterator<Item = Service>,
    ) -> Result<(usize, Vec<u64>), StoreError> {
        let (mut recorded, mut refused) = (0, Vec::new());
        let mut services = services.into_iter().peekable();
        while services.peek().is_some() {
            let batch: Vec<Service> = services.by_ref().take(IMPORT_BATCH).collect();
            let keys: Vec<Vec<u8>> = batch.iter().map(|s| key(s.upstream_id).to_vec()).collect();
            let _guard = self.lock();
            let stored = self.shared.backend.get_many(trees::SERVICES, &keys)?;
            // What this batch wrote so far: a service listed twice merges with itself.
            let mut written: std::collections::HashMap<u64, Service> =
                std::collections::HashMap::with_capacity(batch.len());
            for (svc, old) in batch.into_iter().zip(stored) {
                let id = svc.upstream_id;
                let old = match written.get(&id) {
                    Some(s) => Some(s.clone()),
                    None => old
                        .map(|v| decode::<Service>(trees::SERVICES, &key(id), &v))
                        .transpose()?,
                };
                match merged(old, svc) {
                    Some(s) => {
                        recorded += 1;
                        written.insert(id, s);
                    }
                    None => refused.push(id),
                }
            }
            let mut pairs = Vec::with_capacity(written.len());
            for (id, svc) in written {
                pairs.push((key(id).to_vec(), encode(&svc, || format!("service {id}"))?));
            }
            pairs.sort_unstable();
            self.shared.backend.put_all(trees::SERVICES, &pairs)?;
            self.shared.backend.flush()?;
        }
        Ok((recorded, refused))
    }

    /// [`Store::record_service`] without the flush (the caller flushes). Hold the lock.
    pub(crate) fn put_service_unflushed(&self, svc: Service) -> Result<bool, StoreError> {
        let id = svc.upstream_id;
        let Some(svc) = merged(self.service(id)?, svc) else {
            return Ok(false);
        };
        let v = encode(&svc, || format!("service {id}"))?;
        self.shared.backend.put(trees::SERVICES, &key(id), &v)?;
        Ok(true)
    }

    /// Appends `event` to the history of service `id` (and marks it deleted when asked);
    /// flushed. Answers `false` when there is no such service.
    pub fn add_service_event(
        &self,
        id: u64,
        event: ServiceEvent,
        deleted: bool,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock();
        // A compare-and-swap, not a put: another gateway sharing the store may append to
        // the same history meanwhile; then read it again and append to that.
        loop {
            let Some(old) = self.shared.backend.get(trees::SERVICES, &key(id))? else {
                return Ok(false);
            };
            let mut svc: Service = decode(trees::SERVICES, &key(id), &old)?;
            svc.history.push(event.clone());
            if svc.history.len() > HISTORY_LIMIT {
                let extra = svc.history.len() - HISTORY_LIMIT;
                svc.history.drain(..extra);
            }
            svc.deleted |= deleted;
            let v = encode(&svc, || format!("service {id}"))?;
            if self
                .shared
                .backend
                .compare_and_swap(trees::SERVICES, &key(id), Some(&old), Some(&v))?
                .is_ok()
            {
                self.shared.backend.flush()?;
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service's head decodes to its first fields whatever follows them (a history of
    /// every length up to the limit, every source, deleted or not), from the same bytes
    /// the full decoding reads; a value cut short is an error, not a panic.
    #[test]
    fn a_service_head_is_its_services_first_fields() {
        for n in [0, 1, 7, HISTORY_LIMIT] {
            for (i, source) in [
                ServiceSource::Order,
                ServiceSource::Reconcile,
                ServiceSource::Lookup,
                ServiceSource::Sync,
            ]
            .into_iter()
            .enumerate()
            {
                let svc = Service {
                    upstream_id: 5000 + n as u64,
                    reseller: format!("reseller-{n}-{i}"),
                    remoteid: (i % 2 == 0).then(|| format!("r{n}")),
                    plan: (i != 3).then(|| format!("{}", 3000 + i)),
                    period: Some("12".into()),
                    recorded_at: 1_700_000_000,
                    source,
                    deleted: i == 1,
                    history: (0..n)
                        .map(|e| ServiceEvent {
                            at: e as u64,
                            func: "certificate.reissue".into(),
                            outcome: Outcome::Error(format!("value{e}")),
                        })
                        .collect(),
                };
                let bytes = crate::store::codec::encode(&svc).unwrap();
                let head: ServiceHead = crate::store::codec::decode_head(&bytes).unwrap();
                let full: Service = crate::store::codec::decode(&bytes).unwrap();
                assert_eq!(full, svc);
                assert_eq!(
                    head,
                    ServiceHead {
                        upstream_id: svc.upstream_id,
                        reseller: svc.reseller.clone(),
                        remoteid: svc.remoteid.clone(),
                        plan: svc.plan.clone(),
                    }
                );
                assert_eq!(
                    head.plan_id(),
                    svc.plan.as_deref().map(|p| p.parse().unwrap())
                );
                for cut in [1, 9, 17, 20] {
                    assert!(
                        crate::store::codec::decode_head::<ServiceHead>(&bytes[..cut]).is_err(),
                        "cut at {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn spellings_round_trip() {
        for s in ["order", "reconcile", "lookup", "sync"] {
            assert_eq!(ServiceSource::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(ServiceSource::parse("other"), None);
        for s in ["ok", "error:access", "unknown:timeout"] {
            assert_eq!(Outcome::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Outcome::parse("fine"), None);
    }

    use crate::store::tests::service as svc;

    /// A batch import records what a one-by-one record would, over more than one flush,
    /// and never reassigns a service recorded for another reseller.
    #[test]
    fn record_services_in_batches() {
        let store = Store::open_temporary().unwrap();
        assert!(store.record_service(svc(5, "globex")).unwrap());
        let n = IMPORT_BATCH as u64 + 7;
        let (recorded, refused) = store
            .record_services((1..=n).map(|id| svc(id, "acme")))
            .unwrap();
        assert_eq!((recorded as u64, refused), (n - 1, vec![5]));
        assert_eq!(store.services(Some("acme")).unwrap().len() as u64, n - 1);
        assert_eq!(store.service(5).unwrap().unwrap().reseller, "globex");
        assert_eq!(
            store.service(n).unwrap().unwrap().remoteid.as_deref(),
            Some(format!("r{n}").as_str())
        );
        assert_eq!(store.record_services(Vec::new()).unwrap(), (0, vec![]));
        // One id twice in a batch merges with itself; a third, for another reseller, is
        // refused.
        let id = n + 1;
        let again = Service {
            remoteid: None,
            plan: Some("3033".into()),
            ..svc(id, "acme")
        };
        assert_eq!(
            store
                .record_services([svc(id, "acme"), again, svc(id, "globex")])
                .unwrap(),
            (2, vec![id])
        );
        let got = store.service(id).unwrap().unwrap();
        assert_eq!(
            (
                got.reseller.as_str(),
                got.remoteid.as_deref(),
                got.plan.as_deref()
            ),
            ("acme", Some(format!("r{id}").as_str()), Some("3033"))
        );
    }
}
