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

use std::path::Path;
use std::str::FromStr;

use http::{HeaderValue, Response, StatusCode};
use pingora::protocols::http::ServerSession;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::query::{self, printable};
use super::{AdminApp, Endpoint};
use crate::config::{
    AddonSpec, ConfigError, MappingFile, MappingSet, MarkupSpec, PlanSpec, ResellerSpec,
    UpstreamAccountSpec,
};
use crate::store::model::{Markup, Plan, Reseller, UpstreamAccount};
use crate::store::{Actor, AuditEntry, AuditFilter, Edit, RecordKind, Store, StoreError};

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

// ---- views: records as JSON, never a password or a hash ----

pub fn markup_view(m: &Option<Markup>) -> Value {
    match m {
        None => Value::Null,
        Some(m) => json!({
            "percent": m.percent.to_string(),
            "fixed": m.fixed.to_string(),
            "round_to": m.round_to.to_string(),
        }),
    }
}

pub fn reseller_view(r: &Reseller) -> Value {
    json!({
        "login": r.login,
        "upstream_account": r.upstream_account,
        "plans": r.plans,
        "markup": markup_view(&r.markup),
    })
}

pub fn plan_view(p: &Plan) -> Value {
    json!({
        "id": p.id,
        "upstream_id": p.upstream_id,
        "name": p.name,
        "markup": markup_view(&p.markup),
        "addons": p.addons.iter().map(|a| json!({"id": a.id, "upstream_id": a.upstream_id})).collect::<Vec<_>>(),
    })
}

pub fn account_view(a: &UpstreamAccount) -> Value {
    serde_json::to_value(UpstreamAccountSpec::from(a)).unwrap_or(Value::Null)
}

fn view_of(store: &Store, kind: RecordKind, key: &str) -> Option<Value> {
    Some(match kind {
        RecordKind::Reseller => reseller_view(&*store.reseller(key)?),
        RecordKind::Plan => plan_view(&*store.plan(key.parse().ok()?)?),
        RecordKind::UpstreamAccount => account_view(&*store.upstream_account(key)?),
    })
}

fn list_of(store: &Store, kind: RecordKind) -> Value {
    match kind {
        RecordKind::Reseller => json!({
            "resellers": store.resellers().iter().map(|r| reseller_view(r)).collect::<Vec<_>>()
        }),
        RecordKind::Plan => json!({
            "plans": store.plans().iter().map(|p| plan_view(p)).collect::<Vec<_>>()
        }),
        RecordKind::UpstreamAccount => json!({
            "upstream_accounts": store.upstream_accounts().iter().map(|a| account_view(a)).collect::<Vec<_>>()
        }),
    }
}

fn what(kind: RecordKind, key: &str) -> String {
    match kind {
        RecordKind::Plan => format!("plan {}", printable(key)),
        k => format!("{k} '{}'", printable(key)),
    }
}

fn not_found(kind: RecordKind, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("there is no {}", what(kind, key)),
    )
}

// ---- bodies: as a mapping entry, the key optional (the path names it) ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    id: Option<u64>,
    upstream_id: u64,
    name: Option<String>,
    markup: Option<MarkupSpec>,
    #[serde(default)]
    addons: Vec<AddonSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResellerBody {
    login: Option<String>,
    password_hash: Option<String>,
    upstream_account: String,
    #[serde(default)]
    plans: Vec<u64>,
    markup: Option<MarkupSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    name: Option<String>,
    login: String,
    password_env: Option<String>,
    password_file: Option<std::path::PathBuf>,
}

/// Parses a JSON body; an error names the field (its path) where serde stopped.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json's message may quote the value: never for a hash field.
        let msg = if path.contains("password_hash") {
            "not a valid value".to_string()
        } else {
            inner.to_string()
        };
        ApiError::bad(
            if path == "." { "body" } else { &path },
            None,
            format!("the JSON body is not valid: {msg}"),
        )
    })
}

/// The key a body names must be the path's.
fn same_key(
    field: &str,
    given: Option<String>,
    path_key: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match (given, path_key) {
        (Some(g), Some(p)) if g != p => Err(ApiError::bad(
            field,
            Some(printable(&g)),
            format!("must be the one the path names ('{}')", printable(p)),
        )),
        (g, p) => Ok(g.or(p.map(str::to_string))),
    }
}

const ORIGIN: &str = "request";

/// How a write is conditioned: a create (the record must not exist), or an edit with an
/// optional `If-Match`.
enum Write<'a> {
    Create,
    Edit(Option<&'a str>),
}

/// Validates one record as a mapping entry.
fn validated(file: MappingFile) -> Result<MappingSet, ApiError> {
    let mut set = MappingSet::default();
    set.add(file, Path::new(ORIGIN))
        .map_err(ApiError::invalid)?;
    Ok(set)
}

pub(crate) fn plan_from_body(body: &[u8], path_id: Option<&str>) -> Result<Plan, ApiError> {
    let b: PlanBody = parse_body(body)?;
    let id = match (b.id, path_id) {
        (Some(g), Some(p)) if g.to_string() != p => {
            return Err(ApiError::bad(
                "id",
                Some(g.to_string()),
                format!("must be the one the path names ({})", printable(p)),
            ))
        }
        (Some(g), _) => g,
        (None, Some(p)) => p.parse().map_err(|_| not_found(RecordKind::Plan, p))?,
        (None, None) => return Err(ApiError::bad("id", None, "is required")),
    };
    let spec = PlanSpec {
        id,
        upstream_id: b.upstream_id,
        name: b.name,
        markup: b.markup,
        addons: b.addons,
    };
    let set = validated(MappingFile {
        plan: vec![spec],
        ..MappingFile::default()
    })?;
    set.plans
        .into_iter()
        .next()
        .map(|e| e.item)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "no plan given"))
}

pub(crate) fn reseller_from_body(
    store: &Store,
    body: &[u8],
    path_login: Option<&str>,
) -> Result<Reseller, ApiError> {
    let b: ResellerBody = parse_body(body)?;
    let login = same_key("login", b.login, path_login)?
        .ok_or_else(|| ApiError::bad("login", None, "is required"))?;
    let password_hash = match b.password_hash {
        Some(h) => h,
        None => match store.reseller(&login) {
            Some(r) if path_login.is_some() => r.password_hash.clone(),
            _ => {
                return Err(ApiError::bad(
                    "password_hash",
                    None,
                    "is required for a new reseller (make one with `resellgate hash-password`)",
                ))
            }
        },
    };
    let spec = ResellerSpec {
        login,
        password_hash,
        upstream_account: b.upstream_account,
        plans: b.plans,
        markup: b.markup,
    };
    let set = validated(MappingFile {
        reseller: vec![spec],
        ..MappingFile::default()
    })?;
    set.resellers
        .into_iter()
        .next()
        .map(|e| e.item)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "no reseller given"))
}

fn account_from_body(body: &[u8], path_name: Option<&str>) -> Result<UpstreamAccount, ApiError> {
    let b: AccountBody = parse_body(body)?;
    let name = same_key("name", b.name, path_name)?
        .ok_or_else(|| ApiError::bad("name", None, "is required"))?;
    let spec = UpstreamAccountSpec {
        name,
        login: b.login,
        password_env: b.password_env,
        password_file: b.password_file,
    };
    let set = validated(MappingFile {
        upstream_account: vec![spec],
        ..MappingFile::default()
    })?;
    set.upstream_accounts
        .into_iter()
        .next()
        .map(|e| e.item)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "no upstream account given"))
}

fn markup_from_body(body: &[u8], entry: &str) -> Result<Markup, ApiError> {
    let spec: MarkupSpec = parse_body(body)?;
    crate::config::mappings::markup_from_spec(&spec, Path::new(ORIGIN), entry)
        .map_err(ApiError::invalid)
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

    /// `GET /ledger?reseller=LOGIN&month=YYYY-MM`: CSV.
    pub(crate) async fn ledger(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let q = match query::parse(query, &["reseller", "month"]) {
            Ok(q) => q,
            Err(e) => return super::bad_query(e),
        };
        let (Some(login), Some(month)) = (q.get("reseller").cloned(), q.get("month").cloned())
        else {
            return super::error(
                StatusCode::BAD_REQUEST,
                "query parameters 'reseller' and 'month' are required: GET /ledger?reseller=LOGIN&month=YYYY-MM",
            );
        };
        if !valid_month(&month) {
            return super::error(
                StatusCode::BAD_REQUEST,
                format!(
                    "query parameter 'month': '{}' is not YYYY-MM",
                    printable(&month)
                ),
            );
        }
        if self.gateway.store().reseller(&login).is_none() {
            return super::no_reseller(&login);
        }
        let store = self.gateway.store().clone();
        match super::read_store("ledger", move || store.ledger(Some(&login))).await {
            Ok(entries) => super::reply(
                StatusCode::OK,
                "text/csv; charset=UTF-8",
                crate::store::ledger::to_csv(&entries, &month),
            ),
            Err(r) => r,
        }
    }

    /// `GET /audit[?kind=][&key=][&since=][&until=][&limit=]`.
    pub(crate) async fn audit(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let filter = match query::parse(query, &["kind", "key", "since", "until", "limit"])
            .and_then(|q| audit_filter(&q))
        {
            Ok(f) => f,
            Err(e) => return super::bad_query(e),
        };
        let store = self.gateway.store().clone();
        match super::read_store("audit log", move || store.audit(&filter)).await {
            Ok(entries) => super::json(
                StatusCode::OK,
                &json!({ "entries": entries.iter().map(audit_view).collect::<Vec<_>>() }),
            ),
            Err(r) => r,
        }
    }
}

pub fn valid_month(month: &str) -> bool {
    month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month[..4].parse::<u16>().is_ok()
        && month[5..]
            .parse::<u8>()
            .is_ok_and(|m| (1..=12).contains(&m))
}

/// One entry as `GET /audit` shows it: before and after as JSON objects.
pub fn audit_view(e: &AuditEntry) -> Value {
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .unwrap_or(Value::Null)
    };
    json!({
        "id": e.id.to_string(),
        "at": crate::store::ledger::timestamp(e.at_ms),
        "token": e.actor,
        "via": e.via,
        "op": e.op,
        "kind": e.kind,
        "key": e.key,
        "changes": e.changes,
        "before": parse(&e.before),
        "after": parse(&e.after),
    })
}

fn audit_filter(
    q: &std::collections::BTreeMap<String, String>,
) -> Result<AuditFilter, query::QueryError> {
    let invalid = |name: &str, problem: String| query::QueryError::Invalid {
        name: name.to_string(),
        problem,
    };
    let kind = q.get("kind").cloned();
    if let Some(k) = &kind {
        if !["reseller", "plan", "upstream_account"].contains(&k.as_str()) {
            return Err(invalid(
                "kind",
                format!(
                    "'{}' is not reseller, plan or upstream_account",
                    printable(k)
                ),
            ));
        }
    }
    let time = |name: &str| -> Result<Option<u64>, query::QueryError> {
        q.get(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    invalid(
                        name,
                        format!(
                            "'{}' is not a time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)",
                            printable(v)
                        ),
                    )
                })
            })
            .transpose()
    };
    let limit = match q.get("limit") {
        None => DEFAULT_AUDIT_ENTRIES,
        Some(v) => match usize::from_str(v) {
            Ok(n) if (1..=MAX_AUDIT_ENTRIES).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "limit",
                    format!(
                        "'{}' is not a number from 1 to {MAX_AUDIT_ENTRIES}",
                        printable(v)
                    ),
                ))
            }
        },
    };
    Ok(AuditFilter {
        kind,
        key: q.get("key").cloned(),
        since_ms: time("since")?,
        until_ms: time("until")?,
        limit,
    })
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`, as milliseconds since the epoch.
pub fn parse_time(s: &str) -> Option<u64> {
    let (date, clock) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || y.len() != 4 || m.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, day.parse().ok()?).ok()?;
    let t = match clock {
        None => time::Time::MIDNIGHT,
        Some(c) => {
            let mut p = c.split(':');
            let (h, mi, se) = (p.next()?, p.next()?, p.next()?);
            if p.next().is_some() || h.len() != 2 || mi.len() != 2 || se.len() != 2 {
                return None;
            }
            time::Time::from_hms(h.parse().ok()?, mi.parse().ok()?, se.parse().ok()?).ok()?
        }
    };
    let secs = time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(secs).ok().map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_months() {
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:10Z"), Some(10_000));
        for bad in [
            "1970-1-01",
            "1970-01-01T00:00:10",
            "x",
            "1970-13-01",
            "1970-01-01T25:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert!(valid_month("2026-11"));
        assert!(!valid_month("2026-13") && !valid_month("2026-1") && !valid_month("26-11-"));
    }

    #[test]
    fn a_body_error_names_the_field() {
        let e = plan_from_body(br#"{"upstream_id": "x"}"#, Some("1")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("upstream_id"), "{e:?}");
        let e = plan_from_body(
            br#"{"upstream_id": 5, "markup": {"percent": "abc"}}"#,
            Some("1"),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("markup.percent"), "{e:?}");
        assert_eq!(e.value.as_deref(), Some("abc"));
        let e = plan_from_body(br#"{"id": 2, "upstream_id": 5}"#, Some("1")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("id"));
        let e = plan_from_body(br#"{"upstream_id": 5, "colour": 1}"#, Some("1")).unwrap_err();
        assert!(e.error.contains("colour"), "{e:?}");
        let p = plan_from_body(
            br#"{"upstream_id": 5, "addons": [{"id": 7, "upstream_id": 8}]}"#,
            Some("1"),
        )
        .unwrap();
        assert_eq!((p.id, p.upstream_id, p.addons.len()), (1, 5, 1));
    }

    #[test]
    fn a_hash_is_never_echoed() {
        let store = Store::open_temporary().unwrap();
        let e = reseller_from_body(
            &store,
            br#"{"login": "r", "password_hash": "plain-secret", "upstream_account": "up"}"#,
            None,
        )
        .err()
        .unwrap();
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("plain-secret"), "{text}");
        assert_eq!(e.field.as_deref(), Some("password_hash"));
        let e = reseller_from_body(
            &store,
            br#"{"login": "r", "password_hash": 5, "upstream_account": "up"}"#,
            None,
        )
        .err()
        .unwrap();
        assert_eq!(e.field.as_deref(), Some("password_hash"));
    }

    /// Every route in the table is in the OpenAPI document with its methods, and nothing
    /// else is.
    #[test]
    fn openapi_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in paths {
            for m in ops.as_object().unwrap().keys() {
                if ["get", "post", "put", "delete", "patch"].contains(&m.as_str()) {
                    documented.push((path.clone(), m.to_uppercase()));
                }
            }
        }
        let mut routed: Vec<(String, String)> = super::super::routes::ROUTES
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| (p.to_string(), m.to_string())))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
