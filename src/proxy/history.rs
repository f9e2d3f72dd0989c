//! Service history: lifecycle calls on a service are appended to its history
//! ([`is_recorded`], from the function table): form submits and toolbar actions on
//! certificates, with the outcome (`ok`, `error:<type>`, or `unknown:<failure>` when the
//! answer was lost). A successful renewal (`service.prolong`) is billed in the ledger;
//! its upstream cost is read after the answer (a [`Job`] for the reconciler).

use bytes::Bytes;

use super::functions::is_recorded;
use super::ownership::elids;
use super::{Caller, Gateway, Refusal};
use crate::billmgr::{BmError, Element, Params};
use crate::reconcile::record::{self, blocking, now_ms, Billed};
use crate::reconcile::Job;
use crate::store::ledger::LedgerKind;
use crate::store::services::Outcome;
use crate::upstream::UpstreamError;

impl Gateway {
    /// Record a forwarded call that is not an order before the reseller is answered; an
    /// upstream failure becomes the reseller's refusal.
    pub(super) async fn record_call(
        &self,
        caller: &Caller,
        func: &str,
        params: &Params,
        result: Result<(Bytes, Element), UpstreamError>,
    ) -> Result<(Bytes, Element), Refusal> {
        let login = caller.reseller.login.as_str();
        let (body, doc) = match result {
            Ok(answer) => answer,
            Err(e) => {
                // Sent, but did it happen? The history says so rather than nothing.
                if e.request_was_sent() && is_recorded(func, params) {
                    if let Ok(ids) = elids(params) {
                        tracing::warn!(reseller = %login, func, failure = e.label(), "outcome of a lifecycle call unknown: recorded as such in the service history");
                        let outcome = Outcome::Unknown(e.label().to_string());
                        record::record_events(&self.store, login, func, &ids, &outcome, false)
                            .await;
                    }
                }
                return Err(Refusal::Upstream(e));
            }
        };
        if is_recorded(func, params) {
            self.record_lifecycle(login, func, params, &doc).await;
        }
        Ok((body, doc))
    }

    async fn record_lifecycle(&self, login: &str, func: &str, params: &Params, doc: &Element) {
        let Ok(ids) = elids(params) else { return };
        let err = BmError::from_doc(doc);
        let outcome = match &err {
            Some(e) => Outcome::Error(e.kind.as_str().to_string()),
            None => Outcome::Ok,
        };
        let now = now_ms();
        let deleted = err.is_none() && func == "certificate.delete";
        record::record_events(&self.store, login, func, &ids, &outcome, deleted).await;
        if err.is_none() && func == "service.prolong" {
            for &id in &ids {
                let store = self.store.clone();
                let svc = match blocking(move || store.service_head(id)).await {
                    Ok(svc) => svc,
                    Err(e) => {
                        // The renewal is still billed, without remoteid and plan.
                        tracing::error!(reseller = %login, id, error = %e, "cannot read a service for its renewal");
                        None
                    }
                };
                // Billed now; the cost is read after the answer (the renewal is done).
                let entry = record::ledger_entry(
                    &self.store,
                    Billed {
                        login,
                        kind: LedgerKind::Renewal,
                        id,
                        remoteid: svc.as_ref().and_then(|s| s.remoteid.as_deref()),
                        plan: svc.as_ref().and_then(|s| s.plan.clone()),
                        period: params.get_nonempty("period").map(str::to_string),
                        cost: None,
                    },
                    now,
                );
                record::record_ledger(&self.store, entry.clone()).await;
                self.jobs.submit(Job::FillCost(entry));
            }
        }
    }
}
