//! Around the forward: every `elid` must belong to the calling reseller, and orders
//! (`certificate.order.param` with `sok`) are exactly-once per (reseller, `remoteid`).
//!
//! - Ownership: each id of `elid` (`5001, 5002`) must be a service of the reseller. An id
//!   the gateway never saw is looked up once in the reseller's own upstream account
//!   (`func=certificate`) and recorded when it is there; otherwise `access`/`elid`, and the
//!   refusal is remembered for a short while ([`super::elid_cache`]) so repeating the id
//!   does not cost another upstream call. The store is always read first, so a
//!   certificate the gateway records is never refused because of that memory.
//! - Orders (`certificate.order.param` and `v2.certificate.order.param` with `sok`,
//!   [`functions::is_order`]): the (reseller, remoteid) key is claimed with a compare-and-swap and flushed
//!   before the order is forwarded. Success → the service, the order's answer and a ledger
//!   entry are flushed before the reseller is answered; the entry's upstream cost is read
//!   from the upstream's list after the answer ([`super::background`]). An upstream error
//!   document or a connect failure (nothing sent) releases the claim (`Failed`), so the
//!   billing can fix and resend. Any other failure (timeout, reset, garbage) leaves the
//!   order `Pending` until [`Gateway::reconcile_orders`] looks the remoteid up upstream.
//! - Lifecycle calls on a service are appended to its history ([`is_recorded`], from the
//!   function table): form submits and toolbar actions on certificates; renewals go to
//!   the ledger.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::crashpoint::{self, Point};
use super::functions::{self, is_recorded};
use super::upstream::UpstreamError;
use super::Gateway;
use crate::billmgr::{self, BmError, Element, ErrorType, Format, Params};
use crate::catalog::pricing;
use crate::store::ledger::{LedgerEntry, LedgerKind};
use crate::store::model::Reseller;
use crate::store::orders::{Claim, OrderRecord, OrderState};
use crate::store::services::{Outcome, Service, ServiceEvent, ServiceSource};
use crate::store::StoreError;
use crate::telemetry::RequestLog;

/// The function that places an order (with `sok`); BILLmanager 6's
/// `v2.certificate.order.param` is one too ([`functions::is_order`]). A service's history
/// names its order by this.
pub const ORDER_FUNC: &str = "certificate.order.param";

/// The call with `skipbasket=on` (every other value of it replaced): an order pays from the
/// balance at once instead of waiting in the upstream's cart.
pub fn with_skipbasket(params: &Params) -> Params {
    let mut out = params.clone();
    out.set("skipbasket", "on");
    out
}

/// Parameters that do not make an order different.
const IGNORED_IN_HASH: &[&str] = &["out", "lang", "authinfo", "auth"];

/// What to do with a call before it is forwarded.
pub enum Before {
    /// Forward it; an order carries its claim to [`Gateway::after_forward`].
    Forward {
        claim: Option<OrderClaim>,
        /// The upstream plan of the one service `elid` names, from the service map (it
        /// prices a renewal form, which does not name its plan).
        service_plan: Option<u64>,
    },
    /// An identical order was answered before: answer the stored document again.
    Replay(Element),
}

/// A claimed (reseller, remoteid) order key, recorded before the order is forwarded.
#[derive(Debug)]
pub struct OrderClaim {
    pub remoteid: String,
    /// Identifies this claim (see [`OrderRecord::claimed_at_ms`]).
    pub claimed_at_ms: u64,
    pub plan: Option<String>,
    pub period: Option<String>,
}

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

/// A certificate as the upstream lists it.
#[derive(Debug, Clone)]
pub struct UpstreamCert {
    pub id: u64,
    pub remoteid: Option<String>,
    pub plan: Option<String>,
    pub period: Option<String>,
    pub cost: Option<String>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// SHA-256 of the call's parameters as a sorted multiset, without [`IGNORED_IN_HASH`].
pub fn order_hash(params: &Params) -> Vec<u8> {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| !IGNORED_IN_HASH.contains(k))
        .collect();
    pairs.sort();
    let mut h = Sha256::new();
    for (k, v) in pairs {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().to_vec()
}

/// The ids of an `elid` value (`5001, 5002`), or the first one that is not an id.
fn elids(params: &Params) -> Result<Vec<u64>, BmError> {
    let mut ids = Vec::new();
    for value in params.get_all("elid") {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = part.parse::<u64>().map_err(|_| foreign_elid(part))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

fn foreign_elid(id: &str) -> BmError {
    BmError::access("elid", "There is no such service on your account").value(id)
}

fn store_error(e: impl std::fmt::Display) -> BmError {
    tracing::error!(error = %e, "store failure");
    BmError::new(
        ErrorType::Upstream,
        "The gateway could not record the call; nothing was sent, try again later",
    )
    .object("store")
}

/// `<doc><ok/><id>N</id></doc>`: the answer stored for (and replayed to) a done order.
pub fn success_doc(id: u64) -> Element {
    Element::doc()
        .child(Element::new("ok"))
        .child(Element::leaf("id", id.to_string()))
}

fn pending_error(remoteid: &str) -> BmError {
    BmError::new(
        ErrorType::Pending,
        format!(
            "The order '{remoteid}' was sent to the upstream but its outcome is not known yet; \
             it will be checked against the upstream shortly. Retry later with the same parameters"
        ),
    )
    .object("remoteid")
    .value(remoteid)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, BmError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(store_error)?
        .map_err(store_error)
}

impl Gateway {
    /// Check ownership and claim orders. Runs after the catalogue mapped the call.
    pub(crate) async fn before_forward(
        &self,
        reseller: &Reseller,
        func: &str,
        params: &Params,
    ) -> Result<Before, BmError> {
        let plans = if functions::elid_is_certificate(func) {
            self.check_elids(reseller, params).await?
        } else {
            Vec::new()
        };
        if !functions::is_order(func) || !params.is_submit() {
            let service_plan = match plans.as_slice() {
                [Some(plan)] => plan.trim().parse().ok(),
                _ => None,
            };
            return Ok(Before::Forward {
                claim: None,
                service_plan,
            });
        }
        let remoteid = params
            .get_nonempty("remoteid")
            .ok_or_else(|| BmError::missed("remoteid"))?
            .to_string();
        let now = now_ms();
        let rec = OrderRecord {
            reseller: reseller.login.clone(),
            remoteid: remoteid.clone(),
            params_hash: order_hash(params),
            plan: params.get_nonempty("pricelist").map(str::to_string),
            // `v2.*.order.param` names the period `order_period`.
            period: params
                .get_nonempty("period")
                .or(params.get_nonempty("order_period"))
                .map(str::to_string),
            claimed_at_ms: now,
            updated_at_ms: now,
            state: OrderState::Pending,
        };
        let store = self.store().clone();
        let r = rec.clone();
        match blocking(move || store.claim_order(&r)).await? {
            Claim::Claimed => {
                tracing::info!(reseller = %reseller.login, remoteid = %remoteid, "order claimed");
                crashpoint::reached(Point::OrderClaimed).await;
                Ok(Before::Forward {
                    claim: Some(OrderClaim {
                        remoteid,
                        claimed_at_ms: now,
                        plan: rec.plan,
                        period: rec.period,
                    }),
                    service_plan: None,
                })
            }
            Claim::Replay(done) => match &done.state {
                OrderState::Done {
                    answer_xml,
                    upstream_id,
                } => {
                    let doc = billmgr::parse(answer_xml.as_bytes(), Format::Xml)
                        .unwrap_or_else(|_| success_doc(*upstream_id));
                    Ok(Before::Replay(doc))
                }
                // The store only replays done orders; anything else is not known to be done.
                _ => Err(pending_error(&remoteid)),
            },
            Claim::Pending(_) => Err(pending_error(&remoteid)),
            Claim::Conflict(_) => Err(BmError::new(
                ErrorType::Exists,
                format!(
                    "An order with remoteid '{remoteid}' was already placed with other parameters"
                ),
            )
            .object("remoteid")
            .value(remoteid)),
        }
    }

    /// Record the outcome of a forwarded call (an order's answer, a new service) before
    /// the reseller is answered; turn an upstream failure into the reseller's error.
    pub(crate) async fn after_forward(
        self: &Arc<Self>,
        reseller: &Reseller,
        func: &str,
        params: &Params,
        claim: Option<OrderClaim>,
        result: Result<(Bytes, Element), UpstreamError>,
    ) -> Result<(Bytes, Element), BmError> {
        if let Some(claim) = claim {
            return self.finish_order(reseller, claim, result).await;
        }
        let (body, doc) = match result {
            Ok(answer) => answer,
            Err(e) => {
                // Sent, but did it happen? The history says so rather than nothing.
                if e.request_was_sent() && is_recorded(func, params) {
                    if let Ok(ids) = elids(params) {
                        tracing::warn!(reseller = %reseller.login, func, failure = e.label(), "outcome of a lifecycle call unknown: recorded as such in the service history");
                        let outcome = Outcome::Unknown(e.label().to_string());
                        self.record_events(reseller, func, &ids, &outcome, false)
                            .await;
                    }
                }
                return Err(BmError::from(e));
            }
        };
        if is_recorded(func, params) {
            self.record_lifecycle(reseller, func, params, &doc).await;
        }
        Ok((body, doc))
    }

    async fn finish_order(
        self: &Arc<Self>,
        reseller: &Reseller,
        claim: OrderClaim,
        result: Result<(Bytes, Element), UpstreamError>,
    ) -> Result<(Bytes, Element), BmError> {
        if result.is_ok() {
            crashpoint::reached(Point::UpstreamAnswered).await;
        }
        let login = reseller.login.clone();
        let remoteid = claim.remoteid.clone();
        let (body, doc) = match result {
            Ok(answer) => answer,
            Err(e) if !e.request_was_sent() => {
                self.release(
                    &login,
                    &claim,
                    "the upstream could not be reached; nothing was sent",
                )
                .await?;
                return Err(BmError::from(e));
            }
            Err(e) => {
                tracing::warn!(reseller = %login, remoteid = %remoteid, failure = e.label(), "order outcome unknown: left pending for reconciliation");
                return Err(BmError::new(
                    ErrorType::Pending,
                    format!(
                        "{e} after the order '{remoteid}' was sent; its outcome is not known yet \
                         and will be checked against the upstream. Retry later with the same parameters"
                    ),
                )
                .object("remoteid")
                .value(remoteid));
            }
        };
        if let Some(err) = BmError::from_doc(&doc) {
            // A definite refusal: release the claim so the billing can fix and resend.
            self.release(&login, &claim, &format!("upstream refused: {}", err.msg))
                .await?;
            return Ok((body, doc));
        }
        let id = doc
            .child_text("id")
            .and_then(|t| t.trim().parse::<u64>().ok());
        let Some(id) = id else {
            // Not an acknowledgement the billing could read (`/doc/id`): never pass it on
            // as one.
            tracing::warn!(reseller = %login, remoteid = %remoteid, "order answer without an id: left pending for reconciliation");
            return Err(pending_error(&remoteid));
        };
        let cert = UpstreamCert {
            id,
            remoteid: Some(remoteid.clone()),
            plan: claim.plan.clone(),
            period: claim.period.clone(),
            cost: None,
        };
        let entry = self
            .record_done(
                &login,
                &claim.remoteid,
                claim.claimed_at_ms,
                cert,
                ServiceSource::Order,
            )
            .await?;
        if let Some(entry) = entry.filter(|e| e.upstream_cost.is_none()) {
            self.fill_cost_later(entry).await;
        }
        Ok((body, doc))
    }

    /// Complete a ledger entry (a new order's, a renewal's) with its upstream cost without
    /// holding up the reseller's answer: on a task of its own, counted in
    /// [`Gateway::after_answer`] from now until it ends. Outside a tokio runtime it is done
    /// before returning.
    async fn fill_cost_later(self: &Arc<Self>, entry: LedgerEntry) {
        let busy = self.after_answer.start();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let gw = Arc::clone(self);
                rt.spawn(async move {
                    gw.fill_cost(entry).await;
                    drop(busy);
                });
            }
            Err(_) => {
                self.fill_cost(entry).await;
            }
        }
    }

    /// Read the upstream cost of a ledger entry and rewrite the entry with the cost and the
    /// reseller's price: a new order's from the reseller's upstream list
    /// (`func=certificate&remoteid=…`), a renewal's from the prolong form for its period.
    /// When the lookup fails the entry keeps no cost (logged; reconciliation tries again).
    /// Answers whether the cost was filled in.
    async fn fill_cost(&self, entry: LedgerEntry) -> bool {
        let (login, id) = (entry.reseller.clone(), entry.upstream_id);
        let Some(reseller) = self.store().reseller(&login) else {
            return false;
        };
        let (cost, plan, period) = if entry.kind == LedgerKind::Renewal {
            let Some(period) = entry.period.clone() else {
                return false;
            };
            let cost = self.renewal_cost(&reseller, id, &period).await;
            (cost, None, None)
        } else {
            match self
                .list_certificates(&reseller, entry.remoteid.as_deref())
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
        let entry = self.ledger_entry(
            &login,
            entry.kind,
            id,
            entry.remoteid.as_deref(),
            entry.plan.or(plan),
            entry.period.or(period),
            cost,
            entry.at_ms,
        );
        self.record_ledger(entry).await
    }

    async fn release(&self, login: &str, claim: &OrderClaim, reason: &str) -> Result<(), BmError> {
        let store = self.store().clone();
        let (l, r, at) = (
            login.to_string(),
            claim.remoteid.clone(),
            claim.claimed_at_ms,
        );
        let state = OrderState::Failed {
            reason: reason.to_string(),
        };
        blocking(move || store.resolve_order(&l, &r, at, state, None, None, now_ms())).await?;
        Ok(())
    }

    /// Record a done order: its service, answer and ledger entry, flushed together. Answers
    /// the ledger entry written (its cost is `None` when `cert` has none), or `None` when
    /// the order was no longer this pending claim (nothing written).
    async fn record_done(
        &self,
        login: &str,
        remoteid: &str,
        claimed_at_ms: u64,
        cert: UpstreamCert,
        source: ServiceSource,
    ) -> Result<Option<LedgerEntry>, BmError> {
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
            String::from_utf8_lossy(&billmgr::render(&success_doc(cert.id), Format::Xml))
                .into_owned();
        let state = OrderState::Done {
            upstream_id: cert.id,
            answer_xml,
        };
        // The ledger entry is written with the order's outcome (one flush), so a crash
        // cannot leave a done order unbilled; an unknown cost is filled in later.
        let entry = self.ledger_entry(
            login,
            LedgerKind::Order,
            cert.id,
            Some(remoteid),
            cert.plan.clone(),
            cert.period.clone(),
            cert.cost.clone(),
            now,
        );
        let store = self.store().clone();
        let (l, r) = (login.to_string(), remoteid.to_string());
        let written = entry.clone();
        let resolved = blocking(move || {
            store.resolve_order(&l, &r, claimed_at_ms, state, Some(svc), Some(&written), now)
        })
        .await?;
        if !resolved {
            return Ok(None);
        }
        tracing::info!(reseller = %login, remoteid = %remoteid, id = cert.id, "order done");
        Ok(Some(entry))
    }

    #[allow(clippy::too_many_arguments)]
    fn ledger_entry(
        &self,
        login: &str,
        kind: LedgerKind,
        id: u64,
        remoteid: Option<&str>,
        plan: Option<String>,
        period: Option<String>,
        cost: Option<String>,
        at_ms: u64,
    ) -> LedgerEntry {
        let cost = cost.and_then(|c| Decimal::from_str(c.trim()).ok());
        let price = cost.map(|c| pricing::marked_up_price(self.store(), login, plan.as_deref(), c));
        LedgerEntry {
            at_ms,
            reseller: login.to_string(),
            kind,
            upstream_id: id,
            remoteid: remoteid.map(str::to_string),
            plan,
            period,
            upstream_cost: cost,
            price,
        }
    }

    /// Write one ledger entry (flushed); a failure is logged, the answer still goes out.
    /// Answers whether it was written.
    async fn record_ledger(&self, entry: LedgerEntry) -> bool {
        let (login, id) = (entry.reseller.clone(), entry.upstream_id);
        let store = self.store().clone();
        match blocking(move || store.record_ledger(&entry)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(reseller = %login, id, error = %e.msg, "cannot record a ledger entry");
                false
            }
        }
    }

    async fn record_lifecycle(
        self: &Arc<Self>,
        reseller: &Reseller,
        func: &str,
        params: &Params,
        doc: &Element,
    ) {
        let Ok(ids) = elids(params) else { return };
        let err = BmError::from_doc(doc);
        let outcome = match &err {
            Some(e) => Outcome::Error(e.kind.as_str().to_string()),
            None => Outcome::Ok,
        };
        let now = now_ms();
        let deleted = err.is_none() && func == "certificate.delete";
        self.record_events(reseller, func, &ids, &outcome, deleted)
            .await;
        if err.is_none() && func == "service.prolong" {
            for &id in &ids {
                let store = self.store().clone();
                let svc = match blocking(move || store.service(id)).await {
                    Ok(svc) => svc,
                    Err(e) => {
                        // The renewal is still billed, without remoteid and plan.
                        tracing::error!(reseller = %reseller.login, id, error = %e.msg, "cannot read a service for its renewal");
                        None
                    }
                };
                // Billed now; the cost is read after the answer (the renewal is done).
                let entry = self.ledger_entry(
                    &reseller.login,
                    LedgerKind::Renewal,
                    id,
                    svc.as_ref().and_then(|s| s.remoteid.as_deref()),
                    svc.as_ref().and_then(|s| s.plan.clone()),
                    params.get_nonempty("period").map(str::to_string),
                    None,
                    now,
                );
                self.record_ledger(entry.clone()).await;
                self.fill_cost_later(entry).await;
            }
        }
    }

    /// Append one event to the history of each service in `ids`.
    async fn record_events(
        &self,
        reseller: &Reseller,
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
            let store = self.store().clone();
            if let Err(e) = blocking(move || store.add_service_event(id, event, deleted)).await {
                tracing::error!(reseller = %reseller.login, id, error = %e.msg, "cannot record a service event");
            }
        }
    }

    /// The upstream's cost of renewing `id` for `period` months, from the prolong form.
    async fn renewal_cost(&self, reseller: &Reseller, id: u64, period: &str) -> Option<String> {
        let params = Params::from_pairs([("func", "service.prolong"), ("elid", &id.to_string())]);
        let (_, doc) = self
            .forward(reseller, &params, &mut RequestLog::default())
            .await
            .ok()?;
        let slist = doc
            .find_all("slist")
            .find(|s| s.get_attr("name") == Some("period"))?;
        let val = slist
            .find_all("val")
            .find(|v| v.get_attr("key") == Some(period.trim()))?;
        val.get_attr("cost").map(str::to_string)
    }

    /// Every `elid` must be the reseller's; unknown ids are looked up upstream once, and a
    /// refusal is remembered for [`super::elid_cache::REFUSAL_TTL`]. The store is read
    /// first: an id the gateway recorded passes whatever was remembered about it.
    /// Answers the upstream plan of each id, as the service map has it.
    async fn check_elids(
        &self,
        reseller: &Reseller,
        params: &Params,
    ) -> Result<Vec<Option<String>>, BmError> {
        let ids = elids(params)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.store().clone();
        let login = reseller.login.clone();
        let (mut plans, unknown) = blocking(move || {
            let (mut plans, mut unknown) = (Vec::new(), Vec::new());
            for id in ids {
                match store.service(id)? {
                    Some(s) if s.reseller == login => plans.push(s.plan),
                    Some(_) => return Ok(Err(id)),
                    None => unknown.push(id),
                }
            }
            Ok(Ok((plans, unknown)))
        })
        .await?
        .map_err(|id| {
            tracing::info!(reseller = %reseller.login, id, "elid of another reseller refused");
            foreign_elid(&id.to_string())
        })?;
        if unknown.is_empty() {
            return Ok(plans);
        }
        let now = Instant::now();
        if let Some(&id) = unknown
            .iter()
            .find(|&&id| self.refused_elids.is_refused(&reseller.login, id, now))
        {
            tracing::info!(reseller = %reseller.login, id, "unknown elid refused again without a lookup (refused recently)");
            return Err(foreign_elid(&id.to_string()));
        }
        let list = self
            .list_certificates(reseller, None)
            .await
            .map_err(BmError::from)?;
        let mut refused = None;
        for id in unknown {
            let Some(cert) = list.iter().find(|c| c.id == id) else {
                tracing::info!(reseller = %reseller.login, id, "unknown elid not on the reseller's upstream account: refused");
                self.refused_elids
                    .remember(&reseller.login, id, Instant::now());
                refused = refused.or(Some(id));
                continue;
            };
            if self
                .record_found(&reseller.login, cert, ServiceSource::Lookup)
                .await?
            {
                plans.push(cert.plan.clone());
            } else {
                refused = refused.or(Some(id));
            }
        }
        match refused {
            Some(id) => Err(foreign_elid(&id.to_string())),
            None => Ok(plans),
        }
    }

    /// Record a certificate found on the reseller's upstream account. `false` when the id
    /// belongs to another reseller.
    async fn record_found(
        &self,
        login: &str,
        cert: &UpstreamCert,
        source: ServiceSource,
    ) -> Result<bool, BmError> {
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
        let store = self.store().clone();
        blocking(move || store.record_service(svc)).await
    }

    /// The certificates of the reseller's upstream account (`func=certificate`), those
    /// with `remoteid` only when given.
    pub async fn list_certificates(
        &self,
        reseller: &Reseller,
        remoteid: Option<&str>,
    ) -> Result<Vec<UpstreamCert>, UpstreamError> {
        let mut params = Params::from_pairs([("func", "certificate")]);
        if let Some(r) = remoteid {
            params.push("remoteid", r);
        }
        let (body, doc) = self
            .forward(reseller, &params, &mut RequestLog::default())
            .await?;
        if let Some(e) = BmError::from_doc(&doc) {
            tracing::warn!(reseller = %reseller.login, error = %e, "the upstream refused the certificate list");
            return Err(UpstreamError::Garbage);
        }
        let text = |e: &Element, n: &str| {
            e.child_text(n)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        };
        // One row at a time: a list of a large account never becomes one tree.
        let mut rows = Vec::new();
        billmgr::edit::rewrite_items(&body, params.format(), &["elem"], &mut |name, node| {
            let e = node.to_element(name);
            rows.extend((|| {
                Some(UpstreamCert {
                    id: text(&e, "id")?.parse().ok()?,
                    remoteid: text(&e, "remoteid"),
                    plan: text(&e, "pricelist_id"),
                    period: text(&e, "period"),
                    cost: text(&e, "cost"),
                })
            })());
            Vec::new()
        })
        .map_err(|_| UpstreamError::Garbage)?;
        let certs = rows
            .into_iter()
            // An upstream that ignores the filter must not match other remoteids.
            .filter(|c| remoteid.is_none_or(|r| c.remoteid.as_deref() == Some(r)))
            .collect();
        Ok(certs)
    }

    /// Record every certificate of the reseller's upstream account as its service
    /// (`resellgate services sync`). Answers (recorded, refused as another reseller's).
    pub async fn sync_services(&self, reseller: &Reseller) -> anyhow::Result<(usize, Vec<u64>)> {
        let list = self
            .list_certificates(reseller, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut recorded = 0;
        let mut refused = Vec::new();
        for cert in &list {
            if self
                .record_found(&reseller.login, cert, ServiceSource::Sync)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.msg))?
            {
                recorded += 1;
            } else {
                refused.push(cert.id);
            }
        }
        Ok((recorded, refused))
    }

    /// Resolve pending orders claimed at least `settle` ago by looking their remoteid up
    /// on the reseller's upstream account: found → done (service, answer, ledger); not
    /// found → failed (a retry may order again). Never sends an order.
    /// One pass runs at a time; a second caller waits for the first to finish.
    pub async fn reconcile_orders(&self, settle: Duration) -> anyhow::Result<ReconcileReport> {
        let _one_pass = self.reconcile_lock.lock().await;
        let store = self.store().clone();
        let orders = blocking(move || store.pending_orders())
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.msg))?;
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
            let Some(reseller) = self.store().reseller(&rec.reseller) else {
                report.left.push(key);
                continue;
            };
            let found = match self.list_certificates(&reseller, Some(&rec.remoteid)).await {
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
                    if self
                        .record_done(
                            &rec.reseller,
                            &rec.remoteid,
                            rec.claimed_at_ms,
                            cert,
                            ServiceSource::Reconcile,
                        )
                        .await
                        .map_err(|e| anyhow::anyhow!("{}", e.msg))?
                        .is_some()
                    {
                        tracing::info!(reseller = %rec.reseller, remoteid = %rec.remoteid, id, "reconcile: order found upstream, recorded as done");
                        report.found.push((key.0, key.1, id));
                    } else {
                        report.left.push(key);
                    }
                }
                None => {
                    let store = self.store().clone();
                    let (l, r, at) = (
                        rec.reseller.clone(),
                        rec.remoteid.clone(),
                        rec.claimed_at_ms,
                    );
                    let state = OrderState::Failed {
                        reason: "not found on the upstream by reconciliation".into(),
                    };
                    let ok = blocking(move || {
                        store.resolve_order(&l, &r, at, state, None, None, now_ms())
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.msg))?;
                    if ok {
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

    /// Read the upstream cost of every ledger entry still without one (its lookup after
    /// the answer failed, or the gateway stopped first) written at least `settle` ago.
    async fn fill_missing_costs(&self, settle: Duration) -> usize {
        let store = self.store().clone();
        let entries = match blocking(move || store.costless_ledger()).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(error = %e.msg, "cannot read the ledger entries without a cost");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_order_and_transport_fields() {
        let a = Params::from_pairs([
            ("func", ORDER_FUNC),
            ("remoteid", "l1"),
            ("CN", "a.example"),
            ("out", "json"),
            ("authinfo", "acme:pw"),
        ]);
        let b = Params::from_pairs([
            ("CN", "a.example"),
            ("lang", "ru"),
            ("remoteid", "l1"),
            ("func", ORDER_FUNC),
            ("auth", "sid"),
        ]);
        assert_eq!(order_hash(&a), order_hash(&b));
        let c = Params::from_pairs([
            ("func", ORDER_FUNC),
            ("remoteid", "l1"),
            ("CN", "b.example"),
        ]);
        assert_ne!(order_hash(&a), order_hash(&c));
        // a multiset: a repeated pair counts
        let d = Params::from_pairs([
            ("func", ORDER_FUNC),
            ("remoteid", "l1"),
            ("CN", "a.example"),
            ("CN", "a.example"),
        ]);
        assert_ne!(order_hash(&a), order_hash(&d));
    }

    #[test]
    fn skipbasket_is_set_once() {
        for q in [
            "func=certificate.order.param&sok=ok",
            "func=certificate.order.param&skipbasket=&sok=ok&skipbasket=off",
            "func=certificate.order.param&skipbasket=on&sok=ok",
        ] {
            let p = Params::parse(Some(q), b"", &Default::default()).unwrap();
            let out = with_skipbasket(&p);
            assert_eq!(out.get_all("skipbasket").collect::<Vec<_>>(), ["on"], "{q}");
        }
    }

    #[test]
    fn elid_lists() {
        let p = Params::from_pairs([("elid", "5001, 5002,5003 ,")]);
        assert_eq!(elids(&p).unwrap(), vec![5001, 5002, 5003]);
        let p = Params::from_pairs([("elid", "5001, x")]);
        assert_eq!(elids(&p).unwrap_err().kind, ErrorType::Access);
    }
}
