//! The audit log and the ledger of the running gateway: `GET /audit`, `GET /ledger`.

use std::str::FromStr;

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::{DEFAULT_AUDIT_ENTRIES, MAX_AUDIT_ENTRIES};
use crate::admin::query::{self, printable};
use crate::admin::AdminApp;
use crate::store::{AuditEntry, AuditFilter};

impl AdminApp {
    /// `GET /ledger?reseller=LOGIN&month=YYYY-MM`: CSV.
    pub(crate) async fn ledger(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let q = match query::parse(query, &["reseller", "month"]) {
            Ok(q) => q,
            Err(e) => return crate::admin::bad_query(e),
        };
        let (Some(login), Some(month)) = (q.get("reseller").cloned(), q.get("month").cloned())
        else {
            return crate::admin::error(
                StatusCode::BAD_REQUEST,
                "query parameters 'reseller' and 'month' are required: GET /ledger?reseller=LOGIN&month=YYYY-MM",
            );
        };
        if !valid_month(&month) {
            return crate::admin::error(
                StatusCode::BAD_REQUEST,
                format!(
                    "query parameter 'month': '{}' is not YYYY-MM",
                    printable(&month)
                ),
            );
        }
        if self.gateway.store().reseller(&login).is_none() {
            return crate::admin::no_reseller(&login);
        }
        let store = self.gateway.store().clone();
        match crate::admin::read_store("ledger", move || store.ledger(Some(&login))).await {
            Ok(entries) => crate::admin::reply(
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
            Err(e) => return crate::admin::bad_query(e),
        };
        let store = self.gateway.store().clone();
        match crate::admin::read_store("audit log", move || store.audit(&filter)).await {
            Ok(entries) => crate::admin::json(
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

pub(super) fn audit_filter(
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
