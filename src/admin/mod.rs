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
//!
//! A mapping applied here takes effect on the next proxied request: the store's cache is
//! updated before the answer, and upstream passwords of applied accounts are resolved
//! first (an unresolvable one refuses the whole document).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use sha2::{Digest, Sha256};

use crate::config::{MappingFile, MappingSet};
use crate::proxy::Gateway;
use crate::secret::Secret;

/// Largest mapping document accepted.
const MAX_BODY: usize = 1024 * 1024;

pub struct AdminApp {
    gateway: Arc<Gateway>,
    token_digest: [u8; 32],
}

impl AdminApp {
    pub fn new(gateway: Arc<Gateway>, token: &Secret) -> Self {
        AdminApp {
            gateway,
            token_digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    /// Compares digests, so the time taken says nothing about the token.
    fn authorised(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let d: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        d.iter()
            .zip(self.token_digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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
        let changes = tokio::task::spawn_blocking(move || store.apply(&set))
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

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let method = s.req_header().method.clone();
        let path = s.req_header().uri.path().to_string();
        match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") => return text(StatusCode::OK, "ok"),
            ("GET", "/readyz") => return text(StatusCode::OK, "ready"),
            ("GET", "/metrics") => {
                return reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.gateway.metrics.render(),
                );
            }
            (_, "/mappings") => {}
            _ => return text(StatusCode::NOT_FOUND, "not found"),
        }
        let auth = s
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !self.authorised(auth) {
            return text(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        }
        match method.as_str() {
            "GET" => reply(
                StatusCode::OK,
                "application/toml",
                self.gateway.store().export().to_toml(),
            ),
            "POST" => {
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
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
        }
    }
}
