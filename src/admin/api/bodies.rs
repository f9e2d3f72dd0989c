//! Records as JSON (never a password or a hash) and JSON bodies as records, validated
//! as mapping entries are.

use std::path::Path;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::admin::query::printable;
use crate::config::{
    AddonSpec, MappingFile, MappingSet, MarkupSpec, PlanSpec, ResellerSpec, UpstreamAccountSpec,
};
use crate::store::model::{Markup, Plan, Reseller, UpstreamAccount};
use crate::store::{RecordKind, Store};

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

pub(super) fn view_of(store: &Store, kind: RecordKind, key: &str) -> Option<Value> {
    Some(match kind {
        RecordKind::Reseller => reseller_view(&*store.reseller(key)?),
        RecordKind::Plan => plan_view(&*store.plan(key.parse().ok()?)?),
        RecordKind::UpstreamAccount => account_view(&*store.upstream_account(key)?),
    })
}

pub(super) fn list_of(store: &Store, kind: RecordKind) -> Value {
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

pub(super) fn what(kind: RecordKind, key: &str) -> String {
    match kind {
        RecordKind::Plan => format!("plan {}", printable(key)),
        k => format!("{k} '{}'", printable(key)),
    }
}

pub(super) fn not_found(kind: RecordKind, key: &str) -> ApiError {
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
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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
pub(super) fn same_key(
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

pub(super) const ORIGIN: &str = "request";

/// Validates one record as a mapping entry.
pub(super) fn validated(file: MappingFile) -> Result<MappingSet, ApiError> {
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

pub(super) fn account_from_body(
    body: &[u8],
    path_name: Option<&str>,
) -> Result<UpstreamAccount, ApiError> {
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

pub(super) fn markup_from_body(body: &[u8], entry: &str) -> Result<Markup, ApiError> {
    let spec: MarkupSpec = parse_body(body)?;
    crate::config::mappings::markup_from_spec(&spec, Path::new(ORIGIN), entry)
        .map_err(ApiError::invalid)
}
