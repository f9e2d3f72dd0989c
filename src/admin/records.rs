//! What `GET /services`, `GET /orders` and `POST /orders/reconcile` answer: the store's
//! records as JSON views. Plain data in, plain data out, so they are tested without a
//! socket.
//!
//! Nothing secret is in a view. An order shows its state and upstream id but neither the
//! hash of its parameters nor its stored answer document (always `<ok/><id>N</id>`, so
//! `upstream_id` says the same). Times are RFC 3339 UTC, to the second.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::query::{printable, QueryError};
use crate::reconcile::ReconcileReport;
use crate::store::ledger::timestamp;
use crate::store::orders::{OrderRecord, OrderState};
use crate::store::services::{Service, ServiceEvent};

/// `GET /services?reseller=LOGIN`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ServicesView {
    pub reseller: String,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ServiceView {
    /// The upstream certificate id (the `elid` the reseller uses).
    pub upstream_id: u64,
    pub remoteid: Option<String>,
    /// The upstream pricelist id, as the ledger's `plan` column.
    pub plan: Option<String>,
    /// Months.
    pub period: Option<String>,
    /// `order`, `reconcile`, `lookup` or `sync`.
    pub source: String,
    pub recorded_at: String,
    pub deleted: bool,
    /// Calls made on it through the gateway, oldest first.
    pub history: Vec<EventView>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct EventView {
    pub at: String,
    pub func: String,
    /// `ok`, or `error:<type>` for an upstream error document.
    pub outcome: String,
}

/// `GET /orders`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrdersView {
    pub orders: Vec<OrderView>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrderView {
    pub reseller: String,
    pub remoteid: String,
    /// `pending`, `done` or `failed`.
    pub state: &'static str,
    /// The certificate created, once done.
    pub upstream_id: Option<u64>,
    /// The upstream pricelist id and period, as ordered.
    pub plan: Option<String>,
    pub period: Option<String>,
    pub claimed_at: String,
    pub updated_at: String,
    /// Why it failed (an upstream refusal, nothing sent, not found by reconciliation).
    pub failure: Option<String>,
}

/// `POST /orders/reconcile`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ReconcileView {
    pub settle_ms: u64,
    /// Found upstream: recorded as done.
    pub done: Vec<OrderKeyView>,
    /// Not found upstream: failed, the next retry orders again.
    pub failed: Vec<OrderKeyView>,
    /// Too young to judge, or the lookup failed: still pending.
    pub pending: Vec<OrderKeyView>,
    /// Ledger entries whose missing upstream cost was filled in.
    pub costs_filled: usize,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrderKeyView {
    pub reseller: String,
    pub remoteid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_id: Option<u64>,
}

fn event_view(e: &ServiceEvent) -> EventView {
    EventView {
        at: timestamp(e.at.saturating_mul(1000)),
        func: e.func.clone(),
        outcome: e.outcome.to_string(),
    }
}

pub fn service_view(s: &Service) -> ServiceView {
    ServiceView {
        upstream_id: s.upstream_id,
        remoteid: s.remoteid.clone(),
        plan: s.plan.clone(),
        period: s.period.clone(),
        source: s.source.to_string(),
        recorded_at: timestamp(s.recorded_at.saturating_mul(1000)),
        deleted: s.deleted,
        history: s.history.iter().map(event_view).collect(),
    }
}

pub fn order_view(o: &OrderRecord) -> OrderView {
    let (upstream_id, failure) = match &o.state {
        OrderState::Pending => (None, None),
        OrderState::Done { upstream_id, .. } => (Some(*upstream_id), None),
        OrderState::Failed { reason } => (None, Some(reason.clone())),
    };
    OrderView {
        reseller: o.reseller.clone(),
        remoteid: o.remoteid.clone(),
        state: o.state_name(),
        upstream_id,
        plan: o.plan.clone(),
        period: o.period.clone(),
        claimed_at: timestamp(o.claimed_at_ms),
        updated_at: timestamp(o.updated_at_ms),
        failure,
    }
}

/// Which orders `GET /orders` lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrderFilter {
    /// `pending`, `done` or `failed`.
    pub state: Option<&'static str>,
    pub reseller: Option<String>,
}

impl OrderFilter {
    /// From the parameters of `?state=…&reseller=…` (already checked to be only those).
    pub fn from_query(q: &BTreeMap<String, String>) -> Result<OrderFilter, QueryError> {
        let state = match q.get("state").map(String::as_str) {
            None => None,
            Some("pending") => Some("pending"),
            Some("done") => Some("done"),
            Some("failed") => Some("failed"),
            Some(other) => {
                return Err(QueryError::Invalid {
                    name: "state".into(),
                    problem: format!("'{}' is not one of pending, done, failed", printable(other)),
                })
            }
        };
        Ok(OrderFilter {
            state,
            reseller: q.get("reseller").cloned(),
        })
    }

    pub fn matches(&self, o: &OrderRecord) -> bool {
        self.state.is_none_or(|s| s == o.state_name())
            && self.reseller.as_deref().is_none_or(|r| r == o.reseller)
    }
}

pub fn orders_view(orders: &[OrderRecord], filter: &OrderFilter) -> OrdersView {
    OrdersView {
        orders: orders
            .iter()
            .filter(|o| filter.matches(o))
            .map(order_view)
            .collect(),
    }
}

/// `settle_ms=N` of `POST /orders/reconcile`, or `default`.
pub fn settle_from_query(
    q: &BTreeMap<String, String>,
    default: Duration,
) -> Result<Duration, QueryError> {
    match q.get("settle_ms") {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| QueryError::Invalid {
                name: "settle_ms".into(),
                problem: format!("'{}' is not a whole number of milliseconds", printable(v)),
            }),
    }
}

pub fn reconcile_view(report: &ReconcileReport, settle: Duration) -> ReconcileView {
    let key = |(reseller, remoteid): &(String, String)| OrderKeyView {
        reseller: reseller.clone(),
        remoteid: remoteid.clone(),
        upstream_id: None,
    };
    ReconcileView {
        settle_ms: u64::try_from(settle.as_millis()).unwrap_or(u64::MAX),
        done: report
            .found
            .iter()
            .map(|(reseller, remoteid, id)| OrderKeyView {
                reseller: reseller.clone(),
                remoteid: remoteid.clone(),
                upstream_id: Some(*id),
            })
            .collect(),
        failed: report.failed.iter().map(key).collect(),
        pending: report.left.iter().map(key).collect(),
        costs_filled: report.costs_filled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(reseller: &str, remoteid: &str, state: OrderState) -> OrderRecord {
        OrderRecord {
            reseller: reseller.into(),
            remoteid: remoteid.into(),
            params_hash: vec![0xAB; 32],
            plan: Some("3033".into()),
            period: Some("12".into()),
            claimed_at_ms: 1_750_000_000_000,
            updated_at_ms: 1_750_000_001_500,
            state,
        }
    }

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_order_shows_no_hash_and_no_answer_document() {
        let done = order(
            "acme",
            "l1",
            OrderState::Done {
                upstream_id: 5001,
                answer_xml: "<doc><ok/><id>5001</id></doc>".into(),
            },
        );
        let v = serde_json::to_value(order_view(&done)).unwrap();
        assert_eq!(
            v,
            json!({
                "reseller": "acme", "remoteid": "l1", "state": "done", "upstream_id": 5001,
                "plan": "3033", "period": "12",
                "claimed_at": "2025-06-15T15:06:40Z", "updated_at": "2025-06-15T15:06:41Z",
                "failure": null
            })
        );
        let text = v.to_string();
        assert!(!text.contains("<doc>") && !text.contains("params_hash"));
        let failed = order(
            "acme",
            "l2",
            OrderState::Failed {
                reason: "upstream refused: bad approver".into(),
            },
        );
        let v = order_view(&failed);
        assert_eq!(
            (v.state, v.upstream_id, v.failure.as_deref()),
            ("failed", None, Some("upstream refused: bad approver"))
        );
    }

    #[test]
    fn orders_are_filtered_by_state_and_reseller() {
        let all = vec![
            order("acme", "a", OrderState::Pending),
            order(
                "acme",
                "b",
                OrderState::Done {
                    upstream_id: 5002,
                    answer_xml: String::new(),
                },
            ),
            order("globex", "c", OrderState::Pending),
        ];
        let keys = |f: &OrderFilter| -> Vec<String> {
            orders_view(&all, f)
                .orders
                .into_iter()
                .map(|o| format!("{}/{}", o.reseller, o.remoteid))
                .collect()
        };
        let f = OrderFilter::from_query(&q(&[])).unwrap();
        assert_eq!(keys(&f), ["acme/a", "acme/b", "globex/c"]);
        let f = OrderFilter::from_query(&q(&[("state", "pending")])).unwrap();
        assert_eq!(keys(&f), ["acme/a", "globex/c"]);
        let f = OrderFilter::from_query(&q(&[("state", "pending"), ("reseller", "acme")])).unwrap();
        assert_eq!(keys(&f), ["acme/a"]);
        let f = OrderFilter::from_query(&q(&[("state", "failed")])).unwrap();
        assert!(keys(&f).is_empty());
        assert_eq!(
            OrderFilter::from_query(&q(&[("state", "Done")]))
                .unwrap_err()
                .to_string(),
            "query parameter 'state': 'Done' is not one of pending, done, failed"
        );
    }

    #[test]
    fn a_service_with_its_history() {
        let s = Service {
            upstream_id: 5001,
            reseller: "acme".into(),
            remoteid: Some("l1".into()),
            plan: Some("3033".into()),
            period: None,
            recorded_at: 1_750_000_000,
            source: crate::store::services::ServiceSource::Order,
            deleted: true,
            history: vec![ServiceEvent {
                at: 1_750_000_060,
                func: "certificate.delete".into(),
                outcome: crate::store::services::Outcome::Ok,
            }],
        };
        assert_eq!(
            serde_json::to_value(service_view(&s)).unwrap(),
            json!({
                "upstream_id": 5001, "remoteid": "l1", "plan": "3033", "period": null,
                "source": "order", "recorded_at": "2025-06-15T15:06:40Z", "deleted": true,
                "history": [{"at": "2025-06-15T15:07:40Z", "func": "certificate.delete", "outcome": "ok"}]
            })
        );
    }

    #[test]
    fn settle_and_the_reconcile_report() {
        let d = Duration::from_secs(35);
        assert_eq!(settle_from_query(&q(&[]), d).unwrap(), d);
        assert_eq!(
            settle_from_query(&q(&[("settle_ms", "0")]), d).unwrap(),
            Duration::ZERO
        );
        for bad in ["-1", "1.5", "soon", "99999999999999999999999"] {
            assert!(
                settle_from_query(&q(&[("settle_ms", bad)]), d).is_err(),
                "{bad}"
            );
        }
        let report = ReconcileReport {
            found: vec![("acme".into(), "x".into(), 5003)],
            failed: vec![("acme".into(), "y".into())],
            left: vec![("globex".into(), "z".into())],
            costs_filled: 2,
        };
        assert_eq!(
            serde_json::to_value(reconcile_view(&report, Duration::from_millis(250))).unwrap(),
            json!({
                "settle_ms": 250,
                "done": [{"reseller": "acme", "remoteid": "x", "upstream_id": 5003}],
                "failed": [{"reseller": "acme", "remoteid": "y"}],
                "pending": [{"reseller": "globex", "remoteid": "z"}],
                "costs_filled": 2
            })
        );
    }
}
