//! The JSON resources of the admin API: resellers, upstream accounts, plans (with their
//! add-ons) and markups (a plan's, a reseller's), with list / get / create / replace /
//! delete, and the audit log and ledger of the running gateway.
//!
//! - A record is answered with an `ETag`; a `PUT` or `DELETE` with `If-Match` is refused
//!   with `412` when the record changed since (optimistic concurrency). Without
//!   `If-Match` the edit is unconditional.
//! - A body is validated exactly as a mapping file entry is: an error is `400` with
//!   `{"error": "…", "field": "markup.percent", "value": "abc"}` (the value left out for
//!   a password hash).
//! - Errors: `404` no such record, `409` it exists already (create) or is still used
//!   (delete), `412` stale, `403` a read token asking to change something.
//! - A reseller is shown without its `password_hash`; on `PUT` a missing
//!   `password_hash` keeps the current one.
//!
//! Every change goes through [`Store::edit`], which writes the audit entry (the token's
//! name, before and after) in the same backend write as the change.

use http::{HeaderValue, Response, StatusCode};
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use serde_json::{json, Value};

use super::{AdminApp, Endpoint};
use crate::config::ConfigError;
use crate::store::model::{Plan, Reseller};
use crate::store::{Actor, Edit, RecordKind, Store, StoreError};

/// The OpenAPI 3 description of the admin API (checked against [`super::routes::ROUTES`]
/// by a test).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest JSON body accepted (as a mapping document).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// Audit entries answered at most per request (`limit`), and by default.
pub const MAX_AUDIT_ENTRIES: usize = 1000;
pub const DEFAULT_AUDIT_ENTRIES: usize = 100;

/// An error answer: status and a JSON body naming the field and value at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
            value: None,
        }
    }

    fn bad(field: &str, value: Option<String>, error: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.to_string()),
            value,
        }
    }

    /// A mapping-entry validation error: its key and value (never a hash's).
    fn invalid(e: ConfigError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: match &e.entry {
                Some(entry) => format!("{entry}: {}", e.message),
                None => e.message.clone(),
            },
            field: e.key.clone(),
            value: e.value.clone(),
        }
    }

    pub(crate) fn store(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Stale { .. } => StatusCode::PRECONDITION_FAILED,
            StoreError::StillUsed { .. } | StoreError::Exists { .. } => StatusCode::CONFLICT,
            StoreError::MissingRef { .. } => StatusCode::BAD_REQUEST,
            other => {
                tracing::error!(error = %other, "admin API: store write failed");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store could not be written",
                );
            }
        };
        let mut a = ApiError::new(status, e.to_string());
        if let StoreError::MissingRef { missing, .. } = &e {
            let field = if missing.starts_with("plan") {
                "plans"
            } else {
                "upstream_account"
            };
            a.field = Some(field.to_string());
        }
        a
    }

    pub fn answer(&self) -> Response<Vec<u8>> {
        json_answer(self.status, &self)
    }
}

fn json_answer(status: StatusCode, value: &impl Serialize) -> Response<Vec<u8>> {
    super::json(status, value)
}

fn with_etag(mut r: Response<Vec<u8>>, tag: Option<String>) -> Response<Vec<u8>> {
    if let Some(v) = tag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        r.headers_mut().insert(http::header::ETAG, v);
    }
    r
}

/// The request body, bounded by [`MAX_JSON_BODY`].
pub async fn read_body(s: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    loop {
        match s.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_JSON_BODY => {
                body.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_JSON_BODY} bytes"),
                ))
            }
            Ok(None) => return Ok(body),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                ))
            }
        }
    }
}

mod bodies;
mod log;
#[cfg(test)]
mod tests;

use bodies::*;
pub use bodies::{account_view, markup_view, plan_view, reseller_view};
pub(crate) use bodies::{plan_from_body, reseller_from_body};
pub use log::{audit_view, parse_time, valid_month};

/// How a write is conditioned: a create (the record must not exist), or an edit with an
/// optional `If-Match`.
enum Write<'a> {
    Create,
    Edit(Option<&'a str>),
}

impl AdminApp {
    /// One JSON resource request.
    pub(crate) async fn resource(
        &self,
        endpoint: Endpoint,
        body: &[u8],
        if_match: Option<&str>,
        actor: &Actor,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let store = self.gateway.store().clone();
        let is_put_markup = matches!(endpoint, Endpoint::PutMarkup(..));
        match endpoint {
            Endpoint::List(kind) => Ok(json_answer(StatusCode::OK, &list_of(&store, kind))),
            Endpoint::Get(kind, key) => {
                let v = view_of(&store, kind, &key).ok_or_else(|| not_found(kind, &key))?;
                Ok(with_etag(
                    json_answer(StatusCode::OK, &v),
                    store.etag(kind, &key),
                ))
            }
            Endpoint::GetMarkup(kind, key) => {
                let m = match kind {
                    RecordKind::Reseller => store.reseller(&key).map(|r| r.markup),
                    _ => key
                        .parse()
                        .ok()
                        .and_then(|id| store.plan(id))
                        .map(|p| p.markup),
                }
                .ok_or_else(|| not_found(kind, &key))?;
                Ok(with_etag(
                    json_answer(StatusCode::OK, &markup_view(&m)),
                    store.etag(kind, &key),
                ))
            }
            Endpoint::Create(kind) => {
                let edit = self.edit_from_body(&store, kind, None, body)?;
                let (_, key) = edit.target();
                if view_of(&store, kind, &key).is_some() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!("{} exists already: PUT it to replace it", what(kind, &key)),
                    ));
                }
                self.write(&store, actor, edit, Write::Create).await
            }
            Endpoint::Replace(kind, key) => {
                if view_of(&store, kind, &key).is_none() {
                    return Err(not_found(kind, &key));
                }
                let edit = self.edit_from_body(&store, kind, Some(&key), body)?;
                self.write(&store, actor, edit, Write::Edit(if_match)).await
            }
            Endpoint::Delete(kind, key) => {
                let edit = match kind {
                    RecordKind::Reseller => Edit::DeleteReseller(key.clone()),
                    RecordKind::UpstreamAccount => Edit::DeleteAccount(key.clone()),
                    RecordKind::Plan => {
                        Edit::DeletePlan(key.parse().map_err(|_| not_found(kind, &key))?)
                    }
                };
                self.write(&store, actor, edit, Write::Edit(if_match)).await
            }
            Endpoint::PutMarkup(kind, key) | Endpoint::DeleteMarkup(kind, key) => {
                let markup = match is_put_markup {
                    true => Some(markup_from_body(body, &what(kind, &key))?),
                    false => None,
                };
                let edit = match kind {
                    RecordKind::Reseller => {
                        let r = store.reseller(&key).ok_or_else(|| not_found(kind, &key))?;
                        Edit::PutReseller(Reseller {
                            markup,
                            ..(*r).clone()
                        })
                    }
                    _ => {
                        let p = key
                            .parse()
                            .ok()
                            .and_then(|id| store.plan(id))
                            .ok_or_else(|| not_found(kind, &key))?;
                        Edit::PutPlan(Plan {
                            markup,
                            ..(*p).clone()
                        })
                    }
                };
                self.write(&store, actor, edit, Write::Edit(if_match)).await
            }
            Endpoint::Pricelist(login) => {
                if store.reseller(&login).is_none() {
                    return Err(not_found(RecordKind::Reseller, &login));
                }
                match self
                    .gateway
                    .preview_pricelist(&login, crate::billmgr::Format::Json)
                    .await
                {
                    Ok(doc) => Ok(super::reply(
                        StatusCode::OK,
                        "application/json",
                        doc.to_vec(),
                    )),
                    Err(r) => Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        format!("the price list could not be read: {}", r.error().msg),
                    )),
                }
            }
            _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not found")),
        }
    }

    fn edit_from_body(
        &self,
        store: &Store,
        kind: RecordKind,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<Edit, ApiError> {
        Ok(match kind {
            RecordKind::Plan => Edit::PutPlan(plan_from_body(body, key)?),
            RecordKind::Reseller => Edit::PutReseller(reseller_from_body(store, body, key)?),
            RecordKind::UpstreamAccount => Edit::PutAccount(account_from_body(body, key)?),
        })
    }

    /// Makes `edit` (an upstream account's password resolved first, as a mapping apply
    /// does) and answers the record as it is now, with its ETag.
    async fn write(
        &self,
        store: &Store,
        actor: &Actor,
        edit: Edit,
        how: Write<'_>,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let secret = match &edit {
            Edit::PutAccount(a) => Some((
                a.name.clone(),
                a.password.resolve().map_err(|e| {
                    ApiError::bad(
                        "password_env",
                        None,
                        format!("upstream account '{}': {e}", a.name),
                    )
                })?,
            )),
            _ => None,
        };
        let (kind, key) = edit.target();
        let s = store.clone();
        let a = actor.clone();
        let (create, expect, status) = match how {
            Write::Create => (true, None, StatusCode::CREATED),
            Write::Edit(m) => (false, m.map(str::to_string), StatusCode::OK),
        };
        let result = tokio::task::spawn_blocking(move || {
            if create {
                s.create(&a, edit)
            } else {
                s.edit(&a, edit, expect.as_deref())
            }
        })
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the write task failed"))?;
        let changes = result.map_err(ApiError::store)?;
        if let Some((name, secret)) = secret {
            self.gateway.set_account_secret(&name, secret);
        }
        if !changes.is_empty() {
            tracing::info!(
                token = %actor.name,
                via = actor.via.as_str(),
                object = %what(kind, &key),
                changes = changes.len(),
                "admin change"
            );
        }
        let v = view_of(store, kind, &key).unwrap_or(Value::Null);
        let body = json!({
            "changes": changes.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "record": v,
        });
        Ok(with_etag(
            json_answer(status, &body),
            store.etag(kind, &key),
        ))
    }
}
