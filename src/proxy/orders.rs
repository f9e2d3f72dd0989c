//! Exactly-once orders (`certificate.order.param` and `v2.certificate.order.param` with
//! `sok`, [`functions::is_order`]) per (reseller, `remoteid`).
//!
//! - Claim (`Gateway::claim_order`): the key is claimed with a compare-and-swap and
//!   flushed before the order is forwarded (the flush shared with the claims and
//!   outcomes waiting with it, [`Store::write_durable`](crate::store::Store::write_durable)); an identical retry gets the stored answer,
//!   other parameters get `exists`, a claim whose outcome is unknown `pending`.
//! - Finish (`Gateway::finish_order`): success → the service, the order's answer and a
//!   ledger entry are flushed before the reseller is answered; the entry's upstream cost
//!   is read after the answer (a [`Job`] for the reconciler). An upstream error document
//!   or a connect failure (nothing sent) releases the claim (`Failed`), so the billing
//!   can fix and resend. Any other failure (timeout, reset, garbage) leaves the order
//!   `Pending` until reconciliation looks the remoteid up upstream.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::crashpoint::{self, Point};
use super::functions;
use super::{Caller, Gateway, Refusal};
use crate::billmgr::{self, BmError, Element, Format, Params};
use crate::reconcile::record::{self, now_ms, success_doc};
use crate::reconcile::Job;
use crate::store::orders::{Claim, OrderRecord, OrderState};
use crate::store::services::ServiceSource;
use crate::upstream::{UpstreamCert, UpstreamError};

pub use crate::reconcile::record::ORDER_FUNC;

/// The call with `skipbasket=on` (every other value of it replaced): an order pays from the
/// balance at once instead of waiting in the upstream's cart.
pub fn with_skipbasket(params: &Params) -> Params {
    let mut out = params.clone();
    out.set("skipbasket", "on");
    out
}

/// Parameters that do not make an order different.
const IGNORED_IN_HASH: &[&str] = &["out", "lang", "authinfo", "auth"];

/// SHA-256 of the call's parameters as a sorted multiset, without `IGNORED_IN_HASH`.
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

/// A claimed (reseller, remoteid) order key, recorded before the order is forwarded.
#[derive(Debug)]
pub struct OrderClaim {
    pub remoteid: String,
    /// Identifies this claim (see [`OrderRecord::claimed_at_ms`]).
    pub claimed_at_ms: u64,
    pub plan: Option<String>,
    pub period: Option<String>,
}

/// What claiming an order decided.
pub enum Claimed {
    /// Forward it, carrying the claim to `Gateway::finish_order`.
    Forward(OrderClaim),
    /// An identical order was answered before: answer the stored document again.
    Replay(Element),
}

impl Gateway {
    /// Claim the order's (reseller, remoteid) key, flushed, before it is forwarded.
    pub(super) async fn claim_order(
        &self,
        caller: &Caller,
        params: &Params,
    ) -> Result<Claimed, Refusal> {
        let login = &caller.reseller.login;
        let remoteid = params
            .get_nonempty("remoteid")
            .ok_or(Refusal::MissingField("remoteid"))?
            .to_string();
        let now = now_ms();
        let rec = OrderRecord {
            reseller: login.clone(),
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
        let claim = record::durable(self.store.claim_order_durable(rec.clone()))
            .await
            .map_err(|_| Refusal::StoreBeforeForward)?;
        match claim {
            Claim::Claimed => {
                tracing::info!(reseller = %login, remoteid = %remoteid, "order claimed");
                crashpoint::reached(Point::OrderClaimed).await;
                Ok(Claimed::Forward(OrderClaim {
                    remoteid,
                    claimed_at_ms: now,
                    plan: rec.plan,
                    period: rec.period,
                }))
            }
            Claim::Replay(done) => match &done.state {
                OrderState::Done {
                    answer_xml,
                    upstream_id,
                } => {
                    let doc = billmgr::parse(answer_xml.as_bytes(), Format::Xml)
                        .unwrap_or_else(|_| success_doc(*upstream_id));
                    Ok(Claimed::Replay(doc))
                }
                // The store only replays done orders; anything else is not known to be done.
                _ => Err(Refusal::OrderPending { remoteid }),
            },
            Claim::Pending(_) => Err(Refusal::OrderPending { remoteid }),
            Claim::Conflict(_) => Err(Refusal::OrderConflict { remoteid }),
        }
    }

    /// Record the outcome of a forwarded order before the reseller is answered.
    pub(super) async fn finish_order(
        &self,
        caller: &Caller,
        claim: OrderClaim,
        result: Result<(Bytes, Element), UpstreamError>,
    ) -> Result<(Bytes, Element), Refusal> {
        if result.is_ok() {
            crashpoint::reached(Point::UpstreamAnswered).await;
        }
        let login = caller.reseller.login.as_str();
        let remoteid = claim.remoteid.clone();
        let (body, doc) = match result {
            Ok(answer) => answer,
            Err(e) if !e.request_was_sent() => {
                // Nothing was sent: a store failure here is still "nothing was sent".
                self.release(
                    login,
                    &claim,
                    "the upstream could not be reached; nothing was sent",
                )
                .await
                .map_err(|_| Refusal::StoreBeforeForward)?;
                return Err(Refusal::Upstream(e));
            }
            Err(e) => {
                tracing::warn!(reseller = %login, remoteid = %remoteid, failure = e.label(), "order outcome unknown: left pending for reconciliation");
                return Err(Refusal::OrderOutcomeUnknown {
                    remoteid,
                    failure: e,
                });
            }
        };
        if let Some(err) = BmError::from_doc(&doc) {
            // A definite refusal: release the claim so the billing can fix and resend.
            self.release(login, &claim, &format!("upstream refused: {}", err.msg))
                .await
                .map_err(|_| Refusal::StoreAfterForward)?;
            return Ok((body, doc));
        }
        let id = doc
            .child_text("id")
            .and_then(|t| t.trim().parse::<u64>().ok());
        let Some(id) = id else {
            // Not an acknowledgement the billing could read (`/doc/id`): never pass it on
            // as one.
            tracing::warn!(reseller = %login, remoteid = %remoteid, "order answer without an id: left pending for reconciliation");
            return Err(Refusal::OrderPending { remoteid });
        };
        let cert = UpstreamCert {
            id,
            remoteid: Some(remoteid.clone()),
            plan: claim.plan.clone(),
            period: claim.period.clone(),
            cost: None,
        };
        let entry = record::record_done(
            &self.store,
            login,
            &claim.remoteid,
            claim.claimed_at_ms,
            cert,
            ServiceSource::Order,
        )
        .await
        .map_err(|_| Refusal::StoreAfterForward)?;
        if let Some(entry) = entry.filter(|e| e.upstream_cost.is_none()) {
            // Read after the answer, by the reconciler.
            self.jobs.submit(Job::FillCost(entry));
        }
        Ok((body, doc))
    }

    async fn release(
        &self,
        login: &str,
        claim: &OrderClaim,
        reason: &str,
    ) -> Result<(), record::StoreFailed> {
        record::fail_order(
            &self.store,
            login,
            &claim.remoteid,
            claim.claimed_at_ms,
            reason,
        )
        .await
        .map(drop)
    }
}

/// Is this call an order submit (claimed before it is forwarded)?
pub fn is_order_submit(func: &str, params: &Params) -> bool {
    functions::is_order(func) && params.is_submit()
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
}
