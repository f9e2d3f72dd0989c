//! Where the reseller's answer is rewritten: inline for a small answer, on the blocking pool
//! for a large one or one whose rewrite must read the store (a certificate list with a row
//! that names its plan only by name), so it never stalls the other calls on this thread.
//!
//! A small certificate list is first rewritten inline without reading the store
//! ([`RowServices::Stop`]); only when a row needs a read is it rewritten again on the
//! blocking pool. There, over a shared store (PostgreSQL, a round trip per read), the rows'
//! services are read at once between two passes ([`RowServices::Collect`], then
//! [`RowServices::Known`]); over sled, where a read is local, row by row.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{rewrite, Gateway};
use crate::billmgr::{Element, Format, Params};
use crate::catalog::response::reads_store;
use crate::catalog::{Catalog, RowServices, UpstreamNames};
use crate::store::model::Reseller;
use crate::store::Store;
use crate::upstream::UpstreamError;

/// The work on an upstream answer: the catalogue, the call, the answer's bytes.
type Work<T> = fn(Catalog, &rewrite::Call, Bytes) -> Result<T, UpstreamError>;

impl Gateway {
    /// The upstream's answer as the reseller sees it (see [`rewrite::reseller_answer`]).
    pub(super) async fn reseller_answer(
        &self,
        call: &rewrite::Call<'_>,
        body: Bytes,
    ) -> Result<Bytes, UpstreamError> {
        self.answer_work(call, body, rewrite::reseller_answer).await
    }

    /// A list function's answer read once ([`rewrite::reseller_list_document`]): the
    /// rewritten answer (not yet redacted) and the light document it is judged by.
    pub(super) async fn list_document(
        &self,
        call: &rewrite::Call<'_>,
        body: Bytes,
    ) -> Result<(Bytes, Element), UpstreamError> {
        self.answer_work(call, body, list_answer).await
    }

    /// `work` on an answer: inline for a small one that reads nothing, on the blocking
    /// pool otherwise; its time observed as the rewrite's (an inline try that had to stop
    /// included).
    async fn answer_work<T: Send + 'static>(
        &self,
        call: &rewrite::Call<'_>,
        body: Bytes,
        work: Work<T>,
    ) -> Result<T, UpstreamError> {
        let mut tried = Duration::ZERO;
        if body.len() <= self.upstream.settings().large_response_bytes {
            let cat = Catalog::new(&self.store, &self.plan_names);
            let started = Instant::now();
            let answer = without_reads(cat, call, body.clone(), work);
            tried = started.elapsed();
            if let Some(answer) = answer {
                self.metrics.observe_rewrite(call.func, tried);
                return answer;
            }
        }
        let owned = Owned::from(call, self.store.clone(), self.plan_names.clone());
        let (answer, took) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let answer = owned.run(body, work);
            (answer, started.elapsed())
        })
        .await
        .unwrap_or((Err(UpstreamError::Garbage), Duration::ZERO));
        // The time on the blocking pool, not the wait for a thread of it.
        self.metrics.observe_rewrite(call.func, tried + took);
        answer
    }
}

/// [`rewrite::Call`] with owned parts and what the catalogue reads, so a large answer can
/// be rewritten on the blocking pool.
struct Owned {
    store: Store,
    names: Arc<UpstreamNames>,
    reseller: Reseller,
    func: String,
    params: Params,
    service_plan: Option<u64>,
    caller: Format,
    secrets: Vec<String>,
}

impl Owned {
    fn from(call: &rewrite::Call, store: Store, names: Arc<UpstreamNames>) -> Owned {
        Owned {
            store,
            names,
            reseller: call.reseller.clone(),
            func: call.func.to_string(),
            params: call.params.clone(),
            service_plan: call.service_plan,
            caller: call.caller,
            secrets: call.secrets.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn run<T>(&self, body: Bytes, work: Work<T>) -> Result<T, UpstreamError> {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let call = rewrite::Call {
            reseller: &self.reseller,
            func: &self.func,
            params: &self.params,
            service_plan: self.service_plan,
            caller: self.caller,
            secrets: &secrets,
        };
        reading_store(Catalog::new(&self.store, &self.names), &call, body, work)
    }
}

impl Gateway {
    /// What reseller `login` would import: the answer to its `func=pricelist.export`
    /// (JSON), made by the same path as a real call — its upstream account, its plans,
    /// their marked-up prices — but without authenticating it (the operator's preview,
    /// `GET /resellers/{login}/pricelist`).
    pub async fn preview_pricelist(
        &self,
        login: &str,
        format: Format,
    ) -> Result<Bytes, super::Refusal> {
        use super::Refusal;
        let reseller = self.store.reseller(login).ok_or(Refusal::NoFunction)?;
        let account = self
            .upstream
            .accounts()
            .resolve(&reseller)
            .map_err(|_| Refusal::AccountUnavailable)?;
        let params = Params::parse(
            Some(&format!("func=pricelist.export&out={}", format.as_str())),
            b"",
            &crate::billmgr::Limits::default(),
        )
        .map_err(Refusal::from)?;
        let func = "pricelist.export";
        let up = crate::catalog::map_request(&self.store, &reseller, func, &params)
            .map_err(Refusal::Catalog)?;
        let mut log = crate::telemetry::RequestLog::default();
        let call = rewrite::Call {
            reseller: &reseller,
            func,
            params: &params,
            service_plan: None,
            caller: format,
            secrets: &[],
        };
        let reply = self.list_call(&account, call, &up, &mut log).await?;
        Ok(reply.body)
    }
}

/// A list function's answer read once, as [`Work`] (a function that is not a list's is
/// garbage here).
pub(crate) fn list_answer(
    cat: Catalog,
    call: &rewrite::Call,
    body: Bytes,
) -> Result<(Bytes, Element), UpstreamError> {
    rewrite::reseller_list_document(cat, call, &body).unwrap_or(Err(UpstreamError::Garbage))
}

/// `work` on an answer without reading the store: `None` when a certificate-list row needs
/// its recorded service (the answer is to be rewritten by [`reading_store`]).
pub(crate) fn without_reads<T>(
    cat: Catalog,
    call: &rewrite::Call,
    body: Bytes,
    work: Work<T>,
) -> Option<Result<T, UpstreamError>> {
    if !reads_store(call.func) {
        return Some(work(cat, call, body));
    }
    let stopped = Cell::new(false);
    let answer = work(cat.with_rows(RowServices::Stop(&stopped)), call, body);
    (!stopped.get()).then_some(answer)
}

/// `work` on an answer where the store may be read (on the blocking pool): row by row over
/// sled, where a read is local; over a shared store (PostgreSQL, a round trip per read)
/// the rows' certificates are noted in a first pass, their services read in one query and
/// the answer rewritten with them (a list where no row needed one is done after the
/// first pass).
pub(crate) fn reading_store<T>(
    cat: Catalog,
    call: &rewrite::Call,
    body: Bytes,
    work: Work<T>,
) -> Result<T, UpstreamError> {
    if !(reads_store(call.func) && cat.store.is_shared()) {
        return work(cat, call, body);
    }
    let ids = RefCell::new(Vec::new());
    let first = work(
        cat.with_rows(RowServices::Collect(&ids)),
        call,
        body.clone(),
    );
    let ids = ids.into_inner();
    if ids.is_empty() {
        return first;
    }
    drop(first); // a large answer is held once at a time, rewritten
    let plans = cat
        .store
        .service_plans(&call.reseller.login, &ids)
        .unwrap_or_else(|e| {
            tracing::warn!(reseller = %call.reseller.login, rows = ids.len(), error = %e, "cannot read the services of a certificate list's rows: they are priced by plan name");
            Default::default()
        });
    work(cat.with_rows(RowServices::Known(&plans)), call, body)
}
