//! The operator's listener (`[admin] listen`), on only when the token variable named by
//! `[admin] token_env` is set.
//!
//! | endpoint | auth | what |
//! |---|---|---|
//! | `GET /healthz` | none | `ok` while the process serves |
//! | `GET /readyz` | none | `ready` once the store is open and the cache loaded (always, once listening) |
//! | `GET /metrics` | none | OpenMetrics text ([`crate::telemetry::Metrics`]): requests by outcome, refused functions, latency histograms by func, order counters |
//! | `GET /mappings` | bearer | the store as a mapping file (`mappings export`) |
//! | `POST /mappings` | bearer | apply a mapping document (TOML body) to the running gateway; answers the changes, one per line |
//! | `GET /services?reseller=LOGIN` | bearer | the reseller's recorded services with their history (JSON) |
//! | `GET /orders[?state=pending\|done\|failed][&reseller=LOGIN]` | bearer | order records (JSON) |
//! | `POST /orders/reconcile[?settle_ms=N]` | bearer | one reconciliation pass now; answers its report (JSON) |
//! | `POST /services/sync?reseller=LOGIN` | bearer | record the reseller's existing upstream certificates (`services sync`); answers what was recorded (JSON) |
//! | `GET /ledger?reseller=LOGIN&month=YYYY-MM` | bearer | the month's ledger as CSV |
//! | `GET /audit[?kind=…][&key=…][&since=…][&until=…][&limit=N]` | bearer | the audit log, newest first (JSON) |
//! | `/resellers`, `/upstream_accounts`, `/plans` (+ `/{key}`, `/{key}/markup`) | bearer | JSON resources ([`api`]) |
//! | `GET /resellers/{login}/pricelist` | bearer | what the reseller would import (its `pricelist.export`, JSON) |
//! | `GET /openapi.json` | none | the OpenAPI 3 description of all of this |
//!
//! Tokens: `[admin] token_env` is the `write` token named `admin`; `[[admin.token]]`
//! adds named tokens with `role = "read"` (GET only) or `"write"`. The audit log records
//! the token's name with every change.
//!
//! A mapping applied here takes effect on the next proxied request: the store's cache is
//! updated before the answer, and upstream passwords of applied accounts are resolved
//! first (an unresolvable one refuses the whole document).
//!
//! Services and orders are what `resellgate services list` / `orders list` print, readable
//! while the gateway runs (the CLI itself uses these endpoints when the gateway holds the
//! store, see [`remote`]).
//! The JSON views are in [`records`]. Errors are JSON, `{"error": "…"}` with `field`
//! (and `value`) when one is at fault: 401 without a valid token (checked before
//! anything else about the request), 403 a read token asking to change something, 400
//! for a query string the endpoint does not take (`field` = the parameter), 404 for an
//! unknown path or reseller, 405 with `Allow` for another method.
//!
//! ```sh
//! curl -H "Authorization: Bearer $RESELLGATE_ADMIN_TOKEN" 'http://127.0.0.1:1501/orders?state=pending'
//! ```

pub mod api;
pub mod client;
pub mod console;
mod query;
pub mod records;
pub mod remote;
pub mod routes;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderValue, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{AdminRole, MappingFile, MappingSet};
use crate::proxy::Gateway;
use crate::reconcile::Reconciler;
use crate::secret::Secret;
use crate::store::{Actor, StoreError, Via};
use query::{printable, QueryError};
use records::{OrderFilter, ServicesView};

/// Largest mapping document accepted.
const MAX_BODY: usize = 1024 * 1024;

pub use routes::{Endpoint, Unrouted};

/// One admin token: its name (for the audit log), role, and the SHA-256 of its value.
pub struct Token {
    pub name: String,
    pub role: AdminRole,
    digest: [u8; 32],
}

impl Token {
    pub fn new(name: impl Into<String>, role: AdminRole, secret: &Secret) -> Token {
        Token {
            name: name.into(),
            role,
            digest: Sha256::digest(secret.expose().as_bytes()).into(),
        }
    }
}

pub struct AdminApp {
    gateway: Arc<Gateway>,
    reconciler: Arc<Reconciler>,
    tokens: Vec<Token>,
    sessions: console::Sessions,
}

impl AdminApp {
    pub fn new(gateway: Arc<Gateway>, reconciler: Arc<Reconciler>, tokens: Vec<Token>) -> Self {
        AdminApp {
            gateway,
            reconciler,
            tokens,
            sessions: console::Sessions::new(std::time::Duration::from_secs(3600), 64),
        }
    }

    /// Console sessions end `ttl` after their last use; at most `max` at once
    /// (`[admin] console_session_ttl_s`, `max_console_sessions`).
    pub fn with_console_sessions(mut self, ttl: std::time::Duration, max: usize) -> Self {
        self.sessions = console::Sessions::new(ttl, max);
        self
    }

    /// The token an `Authorization` header carries, if any matches. Every token is
    /// compared, so the time taken says nothing about which.
    fn token_of(&self, header: Option<&str>) -> Option<&Token> {
        let mut found = None;
        for t in &self.tokens {
            if bearer_matches(&t.digest, header) && found.is_none() {
                found = Some(t);
            }
        }
        found
    }

    /// Apply a mapping document to the running gateway, audited for `actor`.
    pub async fn apply(&self, text: &str, actor: &Actor) -> Result<Vec<String>, String> {
        let origin = Path::new("admin-api.toml");
        let file = MappingFile::parse(text, origin).map_err(|e| e.to_string())?;
        let mut set = MappingSet::default();
        set.add(file, origin).map_err(|e| e.to_string())?;
        let mut secrets = Vec::new();
        for a in &set.upstream_accounts {
            let s = a
                .item
                .password
                .resolve()
                .map_err(|e| format!("upstream account '{}': {e}", a.item.name))?;
            secrets.push((a.item.name.clone(), s));
        }
        let store = self.gateway.store().clone();
        let actor = actor.clone();
        let changes = tokio::task::spawn_blocking(move || set.apply_to_as(&store, Some(&actor)))
            .await
            .map_err(|_| "the apply task failed".to_string())?
            .map_err(|e| e.to_string())?;
        for (name, s) in secrets {
            self.gateway.set_account_secret(&name, s);
        }
        let changes: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        tracing::info!(
            changes = changes.len(),
            "mappings applied through the admin API"
        );
        Ok(changes)
    }
}

/// Whether an `Authorization` header carries the token whose SHA-256 is `digest`.
/// Compares digests, so the time taken says nothing about the token.
fn bearer_matches(digest: &[u8; 32], header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let d: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    d.iter()
        .zip(digest.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_default()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Vec<u8>> {
    let mut b = body.into();
    if !b.ends_with('\n') {
        b.push('\n');
    }
    reply(status, "text/plain; charset=UTF-8", b)
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Vec<u8>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            reply(status, "application/json", body)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an admin answer");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                "{\"error\": \"the answer could not be encoded\"}\n",
            )
        }
    }
}

/// An error answer: `{"error": "…"}` (see [`api::ApiError`]).
fn error(status: StatusCode, message: impl Into<String>) -> Response<Vec<u8>> {
    api::ApiError::new(status, message).answer()
}

/// A refused query string: the parameter at fault is the `field`.
fn bad_query(e: QueryError) -> Response<Vec<u8>> {
    let field = match &e {
        QueryError::Encoding(_) => None,
        QueryError::Unknown { name, .. } | QueryError::Invalid { name, .. } => Some(name.clone()),
        QueryError::Repeated(name) | QueryError::Empty(name) => Some(name.clone()),
    };
    let mut a = api::ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
    a.field = field;
    a.answer()
}

fn no_reseller(login: &str) -> Response<Vec<u8>> {
    error(
        StatusCode::NOT_FOUND,
        format!("there is no reseller '{}'", printable(login)),
    )
}

/// Run a store read on the blocking pool; a failure is logged and answered with 500.
async fn read_store<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response<Vec<u8>>> {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, what, "admin API: cannot read the store");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the {what} could not be read from the store"),
        )
    };
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(&e)),
        Err(e) => Err(failed(&e)),
    }
}

impl AdminApp {
    /// `GET /services?reseller=LOGIN`.
    async fn services(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let q = match query::parse(query, &["reseller"]) {
            Ok(q) => q,
            Err(e) => return bad_query(e),
        };
        let Some(login) = q.get("reseller").cloned() else {
            return error(
                StatusCode::BAD_REQUEST,
                "query parameter 'reseller' is required: GET /services?reseller=LOGIN",
            );
        };
        if self.gateway.store().reseller(&login).is_none() {
            return no_reseller(&login);
        }
        let store = self.gateway.store().clone();
        let l = login.clone();
        match read_store("services", move || store.services(Some(&l))).await {
            Ok(list) => json(
                StatusCode::OK,
                &ServicesView {
                    reseller: login,
                    services: list.iter().map(records::service_view).collect(),
                },
            ),
            Err(resp) => resp,
        }
    }

    /// `GET /orders[?state=…][&reseller=…]`.
    async fn orders(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let filter = match query::parse(query, &["state", "reseller"])
            .and_then(|q| OrderFilter::from_query(&q))
        {
            Ok(f) => f,
            Err(e) => return bad_query(e),
        };
        if let Some(login) = &filter.reseller {
            if self.gateway.store().reseller(login).is_none() {
                return no_reseller(login);
            }
        }
        let store = self.gateway.store().clone();
        match read_store("orders", move || store.orders()).await {
            Ok(orders) => json(StatusCode::OK, &records::orders_view(&orders, &filter)),
            Err(resp) => resp,
        }
    }

    /// `POST /orders/reconcile[?settle_ms=N]`: one pass now, as the background task does.
    async fn reconcile(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let settle = match query::parse(query, &["settle_ms"])
            .and_then(|q| records::settle_from_query(&q, self.reconciler.settle()))
        {
            Ok(s) => s,
            Err(e) => return bad_query(e),
        };
        match self.reconciler.reconcile_orders(settle).await {
            Ok(report) => {
                tracing::info!(
                    found = report.found.len(),
                    failed = report.failed.len(),
                    pending = report.left.len(),
                    settle_ms = settle.as_millis() as u64,
                    "pending orders reconciled through the admin API"
                );
                json(StatusCode::OK, &records::reconcile_view(&report, settle))
            }
            Err(e) => {
                tracing::error!(error = %e, "reconciliation through the admin API failed");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the reconciliation failed: {e}"),
                )
            }
        }
    }

    /// `POST /services/sync?reseller=LOGIN`: the reseller's certificates on the upstream
    /// recorded as its services, as `resellgate services sync` does with the gateway stopped.
    async fn sync_services(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let q = match query::parse(query, &["reseller"]) {
            Ok(q) => q,
            Err(e) => return bad_query(e),
        };
        let Some(login) = q.get("reseller") else {
            let mut a = api::ApiError::new(StatusCode::BAD_REQUEST, "reseller=LOGIN is required");
            a.field = Some("reseller".into());
            return a.answer();
        };
        let Some(reseller) = self.gateway.store().reseller(login) else {
            return no_reseller(login);
        };
        match self.reconciler.sync_services(&reseller).await {
            Ok((recorded, refused)) => {
                tracing::info!(
                    reseller = %printable(login),
                    recorded,
                    refused = refused.len(),
                    "services synced through the admin API"
                );
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "reseller": reseller.login,
                        "recorded": recorded,
                        "refused": refused,
                    }),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "services sync through the admin API failed");
                error(
                    StatusCode::BAD_GATEWAY,
                    format!("the services sync failed: {e}"),
                )
            }
        }
    }

    /// `POST /mappings`.
    async fn apply_body(&self, s: &mut ServerSession, actor: &Actor) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match s.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the mapping document is too large",
                    )
                }
                Ok(None) => break,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read",
                    )
                }
            }
        }
        let Ok(doc) = String::from_utf8(body) else {
            return error(StatusCode::BAD_REQUEST, "the mapping document is not UTF-8");
        };
        match self.apply(&doc, actor).await {
            Ok(changes) if changes.is_empty() => text(StatusCode::OK, "no changes"),
            Ok(changes) => text(StatusCode::OK, changes.join("\n")),
            Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let method = s.req_header().method.clone();
        let uri = s.req_header().uri.clone();
        if uri.path() == "/console" || uri.path().starts_with("/console/") {
            return self.console(s).await;
        }
        let endpoint = match Endpoint::route(method.as_str(), uri.path()) {
            Ok(e) => e,
            Err(Unrouted::NotFound) => return error(StatusCode::NOT_FOUND, "not found"),
            Err(Unrouted::WrongMethod { allow }) => {
                let mut r = error(StatusCode::METHOD_NOT_ALLOWED, format!("use {allow}"));
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    r.headers_mut().insert(http::header::ALLOW, v);
                }
                return r;
            }
        };
        let mut actor = Actor::new("", Via::Api);
        if endpoint.needs_token() {
            let auth = s
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let Some(token) = self.token_of(auth) else {
                return error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            };
            if routes::changes(method.as_str()) && token.role != AdminRole::Write {
                return api::ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "token '{}' has role read: {} {} needs a write token",
                        token.name,
                        method,
                        uri.path()
                    ),
                )
                .answer();
            }
            actor.name = token.name.clone();
        }
        self.serve(endpoint, s, &actor).await
    }
}

impl AdminApp {
    /// Answer an endpoint for an authorised `actor` (the bearer token's, or a console
    /// session's).
    pub(crate) async fn serve(
        &self,
        endpoint: Endpoint,
        s: &mut ServerSession,
        actor: &Actor,
    ) -> Response<Vec<u8>> {
        let uri = s.req_header().uri.clone();
        let if_match = s
            .req_header()
            .headers
            .get(http::header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match endpoint {
            Endpoint::Healthz => text(StatusCode::OK, "ok"),
            Endpoint::Readyz => text(StatusCode::OK, "ready"),
            Endpoint::Metrics => reply(
                StatusCode::OK,
                crate::telemetry::METRICS_CONTENT_TYPE,
                self.gateway
                    .metrics
                    .render_with(self.gateway.store().commit_stats()),
            ),
            Endpoint::OpenApi => reply(StatusCode::OK, "application/json", api::OPENAPI),
            Endpoint::ExportMappings => reply(
                StatusCode::OK,
                "application/toml",
                MappingFile::from_store(self.gateway.store()).to_toml(),
            ),
            Endpoint::ApplyMappings => {
                let mut a = actor.clone();
                a.via = Via::Mappings;
                self.apply_body(s, &a).await
            }
            Endpoint::Services => self.services(uri.query()).await,
            Endpoint::Orders => self.orders(uri.query()).await,
            Endpoint::Reconcile => self.reconcile(uri.query()).await,
            Endpoint::SyncServices => self.sync_services(uri.query()).await,
            Endpoint::Ledger => self.ledger(uri.query()).await,
            Endpoint::Audit => self.audit(uri.query()).await,
            other => {
                let body = match api::read_body(s).await {
                    Ok(b) => b,
                    Err(e) => return e.answer(),
                };
                self.resource(other, &body, if_match.as_deref(), actor)
                    .await
                    .unwrap_or_else(|e| e.answer())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_compared_whole() {
        let digest: [u8; 32] = Sha256::digest(b"s3cret").into();
        assert!(bearer_matches(&digest, Some("Bearer s3cret")));
        assert!(bearer_matches(&digest, Some("Bearer s3cret ")));
        for h in [
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Bearer "),
            Some("s3cret"),
            Some("Basic s3cret"),
            None,
        ] {
            assert!(!bearer_matches(&digest, h), "{h:?}");
        }
    }
}
