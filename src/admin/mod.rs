//! The operator's listener (`[admin] listen`), on only when the token variable named by
//! `[admin] token_env` is set.
//!
//! | endpoint | auth | what |
//! |---|---|---|
//! | `GET /healthz` | none | `ok` while the process serves |
//! | `GET /readyz` | none | `ready` once the store is open and the cache loaded (always, once listening) |
//! | `GET /metrics` | none | Prometheus counters: requests by outcome, refused functions by name |
//! | `GET /mappings` | bearer | the store as a mapping file (`mappings export`) |
//! | `POST /mappings` | bearer | apply a mapping document (TOML body) to the running gateway; answers the changes, one per line |
//! | `GET /services?reseller=LOGIN` | bearer | the reseller's recorded services with their history (JSON) |
//! | `GET /orders[?state=pending\|done\|failed][&reseller=LOGIN]` | bearer | order records (JSON) |
//! | `POST /orders/reconcile[?settle_ms=N]` | bearer | one reconciliation pass now; answers its report (JSON) |
//!
//! A mapping applied here takes effect on the next proxied request: the store's cache is
//! updated before the answer, and upstream passwords of applied accounts are resolved
//! first (an unresolvable one refuses the whole document).
//!
//! Services and orders are what `resellgate services list` / `orders list` print, readable
//! while the gateway runs (the CLI needs the store unlocked, i.e. the gateway stopped).
//! The JSON views are in [`records`]. Errors are one line of plain text: 401 without a
//! valid token (checked before anything else about the request), 400 for a query string
//! the endpoint does not take, 404 for an unknown path or reseller, 405 with `Allow` for
//! another method.
//!
//! ```sh
//! curl -H "Authorization: Bearer $RESELLGATE_ADMIN_TOKEN" 'http://127.0.0.1:1501/orders?state=pending'
//! ```

mod query;
pub mod records;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderValue, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{MappingFile, MappingSet};
use crate::proxy::Gateway;
use crate::reconcile::Reconciler;
use crate::secret::Secret;
use crate::store::StoreError;
use query::{printable, QueryError};
use records::{OrderFilter, ServicesView};

/// Largest mapping document accepted.
const MAX_BODY: usize = 1024 * 1024;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    ExportMappings,
    ApplyMappings,
    Services,
    Orders,
    Reconcile,
}

/// Why a request has no endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrouted {
    NotFound,
    /// The path exists with other methods (the `Allow` header).
    WrongMethod {
        allow: &'static str,
    },
}

impl Endpoint {
    /// The endpoint of `method` on `path` (the path without its query).
    pub fn route(method: &str, path: &str) -> Result<Endpoint, Unrouted> {
        let allow = match path {
            "/healthz" | "/readyz" | "/metrics" | "/services" | "/orders" => "GET",
            "/mappings" => "GET, POST",
            "/orders/reconcile" => "POST",
            _ => return Err(Unrouted::NotFound),
        };
        Ok(match (method, path) {
            ("GET", "/healthz") => Endpoint::Healthz,
            ("GET", "/readyz") => Endpoint::Readyz,
            ("GET", "/metrics") => Endpoint::Metrics,
            ("GET", "/mappings") => Endpoint::ExportMappings,
            ("POST", "/mappings") => Endpoint::ApplyMappings,
            ("GET", "/services") => Endpoint::Services,
            ("GET", "/orders") => Endpoint::Orders,
            ("POST", "/orders/reconcile") => Endpoint::Reconcile,
            _ => return Err(Unrouted::WrongMethod { allow }),
        })
    }

    /// Everything but health and metrics needs the bearer token.
    pub fn needs_token(self) -> bool {
        !matches!(
            self,
            Endpoint::Healthz | Endpoint::Readyz | Endpoint::Metrics
        )
    }
}

pub struct AdminApp {
    gateway: Arc<Gateway>,
    reconciler: Arc<Reconciler>,
    token_digest: [u8; 32],
}

impl AdminApp {
    pub fn new(gateway: Arc<Gateway>, reconciler: Arc<Reconciler>, token: &Secret) -> Self {
        AdminApp {
            gateway,
            reconciler,
            token_digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    fn authorised(&self, header: Option<&str>) -> bool {
        bearer_matches(&self.token_digest, header)
    }

    /// Apply a mapping document to the running gateway.
    pub async fn apply(&self, text: &str) -> Result<Vec<String>, String> {
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
        let changes = tokio::task::spawn_blocking(move || set.apply_to(&store))
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
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the answer could not be encoded",
            )
        }
    }
}

fn bad_query(e: QueryError) -> Response<Vec<u8>> {
    text(StatusCode::BAD_REQUEST, e.to_string())
}

fn no_reseller(login: &str) -> Response<Vec<u8>> {
    text(
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
        text(
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
            return text(
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
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the reconciliation failed: {e}"),
                )
            }
        }
    }

    /// `POST /mappings`.
    async fn apply_body(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match s.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the mapping document is too large",
                    )
                }
                Ok(None) => break,
                Err(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read",
                    )
                }
            }
        }
        let Ok(doc) = String::from_utf8(body) else {
            return text(StatusCode::BAD_REQUEST, "the mapping document is not UTF-8");
        };
        match self.apply(&doc).await {
            Ok(changes) if changes.is_empty() => text(StatusCode::OK, "no changes"),
            Ok(changes) => text(StatusCode::OK, changes.join("\n")),
            Err(e) => text(StatusCode::UNPROCESSABLE_ENTITY, e),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let method = s.req_header().method.clone();
        let uri = s.req_header().uri.clone();
        let endpoint = match Endpoint::route(method.as_str(), uri.path()) {
            Ok(e) => e,
            Err(Unrouted::NotFound) => return text(StatusCode::NOT_FOUND, "not found"),
            Err(Unrouted::WrongMethod { allow }) => {
                let mut r = text(StatusCode::METHOD_NOT_ALLOWED, format!("use {allow}"));
                r.headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static(allow));
                return r;
            }
        };
        if endpoint.needs_token() {
            let auth = s
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if !self.authorised(auth) {
                return text(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            }
        }
        match endpoint {
            Endpoint::Healthz => text(StatusCode::OK, "ok"),
            Endpoint::Readyz => text(StatusCode::OK, "ready"),
            Endpoint::Metrics => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.gateway.metrics.render(),
            ),
            Endpoint::ExportMappings => reply(
                StatusCode::OK,
                "application/toml",
                MappingFile::from_store(self.gateway.store()).to_toml(),
            ),
            Endpoint::ApplyMappings => self.apply_body(s).await,
            Endpoint::Services => self.services(uri.query()).await,
            Endpoint::Orders => self.orders(uri.query()).await,
            Endpoint::Reconcile => self.reconcile(uri.query()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use Endpoint::*;
        for (m, p, e) in [
            ("GET", "/healthz", Healthz),
            ("GET", "/readyz", Readyz),
            ("GET", "/metrics", Metrics),
            ("GET", "/mappings", ExportMappings),
            ("POST", "/mappings", ApplyMappings),
            ("GET", "/services", Services),
            ("GET", "/orders", Orders),
            ("POST", "/orders/reconcile", Reconcile),
        ] {
            assert_eq!(Endpoint::route(m, p), Ok(e), "{m} {p}");
        }
        assert_eq!(
            Endpoint::route("GET", "/orders/reconcile"),
            Err(Unrouted::WrongMethod { allow: "POST" })
        );
        assert_eq!(
            Endpoint::route("DELETE", "/mappings"),
            Err(Unrouted::WrongMethod { allow: "GET, POST" })
        );
        assert_eq!(
            Endpoint::route("POST", "/orders"),
            Err(Unrouted::WrongMethod { allow: "GET" })
        );
        for p in ["/", "/order", "/orders/", "/services/acme", "/admin/orders"] {
            assert_eq!(Endpoint::route("GET", p), Err(Unrouted::NotFound), "{p}");
        }
    }

    #[test]
    fn only_health_and_metrics_are_open() {
        let open: Vec<Endpoint> = [
            Endpoint::Healthz,
            Endpoint::Readyz,
            Endpoint::Metrics,
            Endpoint::ExportMappings,
            Endpoint::ApplyMappings,
            Endpoint::Services,
            Endpoint::Orders,
            Endpoint::Reconcile,
        ]
        .into_iter()
        .filter(|e| !e.needs_token())
        .collect();
        assert_eq!(
            open,
            [Endpoint::Healthz, Endpoint::Readyz, Endpoint::Metrics]
        );
    }

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
