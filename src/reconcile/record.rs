//! Writing what happened to the store: a done or failed order, a service found on the
//! upstream, a service's history, a ledger entry. Shared by the call path (an order's
//! outcome, a lifecycle call) and the background work (reconciliation, sync, costs);
//! every write is durable before it returns: an order's and a ledger entry's through the
//! store's group committer (one flush for the writes waiting together), the others on
//! the blocking pool, each flushed.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use rust_decimal::Decimal;

use crate::billmgr::{self, Element, Format};
use crate::catalog::pricing;
use crate::store::ledger::{LedgerEntry, LedgerKind};
use crate::store::orders::{OrderState, Resolve};
use crate::store::services::{Outcome, Service, ServiceEvent, ServiceSource};
use crate::store::{Store, StoreError};
use crate::upstream::UpstreamCert;

/// The function that places an order (with `sok`); BILLmanager 6's
/// `v2.certificate.order.param` is one too. A service's history names its order by this.
pub const ORDER_FUNC: &str = "certificate.order.param";

/// The store failed (logged where it happened; the message names no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreFailed(pub String);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn failed(e: impl std::fmt::Display) -> StoreFailed {
    tracing::error!(error = %e, "store failure");
    StoreFailed(e.to_string())
}

/// Run a store call on the blocking pool (sled may wait on the disk).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreFailed> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(failed)?
        .map_err(failed)
}

/// Await a write made durable by the store's group committer ([`Store::write_durable`]).
pub async fn durable<T>(
    write: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreFailed> {
    write.await.map_err(failed)
}

/// `<doc><ok/><id>N</id></doc>`: the answer stored for (and replayed to) a done order.
pub fn success_doc(id: u64) -> Element {
    Element::doc()
        .child(Element::new("ok"))
        .child(Element::leaf("id", id.to_string()))
}

/// Mark the pending order (login, remoteid) claimed at `claimed_at_ms` failed: a retry
/// may order again. Answers whether it was still that claim.
pub async fn fail_order(
    store: &Store,
    login: &str,
    remoteid: &str,
    claimed_at_ms: u64,
    reason: &str,
) -> Result<bool, StoreFailed> {
    let state = OrderState::Failed {
        reason: reason.to_string(),
    };
    durable(store.resolve_order_durable(Resolve {
        reseller: login.to_string(),
        remoteid: remoteid.to_string(),
        claimed_at_ms,
        state,
        service: None,
        ledger: None,
        now_ms: now_ms(),
    }))
    .await
}

/// Record a done order: its service, answer and ledger entry, flushed together. Answers
/// the ledger entry written (its cost is `None` when `cert` has none), or `None` when
/// the order was no longer this pending claim (nothing written).
pub async fn record_done(
    store: &Store,
    login: &str,
    remoteid: &str,
    claimed_at_ms: u64,
    cert: UpstreamCert,
    source: ServiceSource,
) -> Result<Option<LedgerEntry>, StoreFailed> {
    let now = now_ms();
    let svc = Service {
        upstream_id: cert.id,
        reseller: login.to_string(),
        remoteid: Some(remoteid.to_string()),
        plan: cert.plan.clone(),
        period: cert.period.clone(),
        recorded_at: now / 1000,
        source,
        deleted: false,
        history: vec![ServiceEvent {
            at: now / 1000,
            func: ORDER_FUNC.to_string(),
            outcome: Outcome::Ok,
        }],
    };
    let answer_xml =
        String::from_utf8_lossy(&billmgr::render(&success_doc(cert.id), Format::Xml)).into_owned();
    let state = OrderState::Done {
        upstream_id: cert.id,
        answer_xml,
    };
    // The ledger entry is written with the order's outcome (one flush), so a crash
    // cannot leave a done order unbilled; an unknown cost is filled in later.
    let entry = ledger_entry(
        store,
        Billed {
            login,
            kind: LedgerKind::Order,
            id: cert.id,
            remoteid: Some(remoteid),
            plan: cert.plan.clone(),
            period: cert.period.clone(),
            cost: cert.cost.clone(),
        },
        now,
    );
    let resolved = durable(store.resolve_order_durable(Resolve {
        reseller: login.to_string(),
        remoteid: remoteid.to_string(),
        claimed_at_ms,
        state,
        service: Some(svc),
        ledger: Some(entry.clone()),
        now_ms: now,
    }))
    .await?;
    if !resolved {
        return Ok(None);
    }
    tracing::info!(reseller = %login, remoteid = %remoteid, id = cert.id, "order done");
    Ok(Some(entry))
}

/// Record a certificate found on the reseller's upstream account as its service.
/// `false` when the id belongs to another reseller.
pub async fn record_found(
    store: &Store,
    login: &str,
    cert: &UpstreamCert,
    source: ServiceSource,
) -> Result<bool, StoreFailed> {
    let now = now_ms() / 1000;
    let svc = Service {
        upstream_id: cert.id,
        reseller: login.to_string(),
        remoteid: cert.remoteid.clone(),
        plan: cert.plan.clone(),
        period: cert.period.clone(),
        recorded_at: now,
        source,
        deleted: false,
        history: Vec::new(),
    };
    let store = store.clone();
    blocking(move || store.record_service(svc)).await
}

/// Append one event to the history of each service in `ids`; a failure is logged.
pub async fn record_events(
    store: &Store,
    login: &str,
    func: &str,
    ids: &[u64],
    outcome: &Outcome,
    deleted: bool,
) {
    let at = now_ms() / 1000;
    for &id in ids {
        let event = ServiceEvent {
            at,
            func: func.to_string(),
            outcome: outcome.clone(),
        };
        let store = store.clone();
        if let Err(e) = blocking(move || store.add_service_event(id, event, deleted)).await {
            tracing::error!(reseller = %login, id, error = %e, "cannot record a service event");
        }
    }
}

/// What a ledger entry bills.
pub struct Billed<'a> {
    pub login: &'a str,
    pub kind: LedgerKind,
    pub id: u64,
    pub remoteid: Option<&'a str>,
    pub plan: Option<String>,
    pub period: Option<String>,
    /// The upstream's cost as it wrote it, when known.
    pub cost: Option<String>,
}

/// The ledger entry for `b` at `at_ms`, with the reseller's price when the cost is known.
pub fn ledger_entry(store: &Store, b: Billed, at_ms: u64) -> LedgerEntry {
    let cost = b.cost.and_then(|c| Decimal::from_str(c.trim()).ok());
    let price = cost.map(|c| pricing::marked_up_price(store, b.login, b.plan.as_deref(), c));
    LedgerEntry {
        at_ms,
        reseller: b.login.to_string(),
        kind: b.kind,
        upstream_id: b.id,
        remoteid: b.remoteid.map(str::to_string),
        plan: b.plan,
        period: b.period,
        upstream_cost: cost,
        price,
    }
}

/// Write one ledger entry (flushed); a failure is logged, the answer still goes out.
/// Answers whether it was written.
pub async fn record_ledger(store: &Store, entry: LedgerEntry) -> bool {
    let (login, id) = (entry.reseller.clone(), entry.upstream_id);
    let written = store.write_durable(move |s| s.put_ledger_locked(&entry));
    ledger_written(&login, id, written).await
}

/// [`record_ledger`] for work after the answer (a cost read later): as durable when it
/// answers, but it shares the flush of the orders coming meanwhile instead of starting
/// one of its own ([`Store::write_durable_background`]).
pub async fn record_ledger_after_answer(store: &Store, entry: LedgerEntry) -> bool {
    let (login, id) = (entry.reseller.clone(), entry.upstream_id);
    let written = store.write_durable_background(move |s| s.put_ledger_locked(&entry));
    ledger_written(&login, id, written).await
}

async fn ledger_written(
    login: &str,
    id: u64,
    written: impl std::future::Future<Output = Result<(), StoreError>>,
) -> bool {
    match durable(written).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(reseller = %login, id, error = %e, "cannot record a ledger entry");
            false
        }
    }
}
