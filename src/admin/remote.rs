//! The command line as a client of a running gateway: `mappings apply/export`,
//! `services list`, `orders list/reconcile`, `ledger export` and `audit list` talk to the
//! admin API when the gateway runs, and open the store directly only when it does not.
//!
//! Which one: `--admin URL` always means the API. Without it the store is opened; when a
//! running gateway holds it, the API at `[admin] listen` is used instead. The token is
//! read from the first set variable of `[admin] token_env` and the `[[admin.token]]`
//! entries; a change needs a write token.

use std::fmt::Write as _;

use serde_json::Value;

use super::client::{self, Answer};
use crate::config::Config;
use crate::secret::Secret;
use crate::store::{Store, StoreError};

/// A running gateway's admin API.
pub struct Remote {
    pub url: String,
    token: Secret,
}

/// Where a command works.
pub enum Target {
    Store(Store),
    Remote(Remote),
}

/// Why a remote command failed: bad input or configuration (exit 64), or anything else.
#[derive(Debug)]
pub enum RemoteError {
    Config(String),
    Other(String),
}

impl RemoteError {
    fn from_answer(what: &str, a: &Answer) -> RemoteError {
        let body = a.text();
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.trim_end().to_string());
        let text = format!("{what}: the gateway answered {}: {msg}", a.status);
        match a.status {
            400 | 404 | 409 | 412 | 422 => RemoteError::Config(text),
            _ => RemoteError::Other(text),
        }
    }
}

fn token(config: &Config) -> Result<Secret, RemoteError> {
    config
        .admin
        .tokens()
        .into_iter()
        .find_map(|(_, env, _)| std::env::var(env).ok().filter(|t| !t.is_empty()))
        .map(Secret::new)
        .ok_or_else(|| {
            RemoteError::Config(format!(
                "talking to the gateway's admin API needs a token: set {} (or a [[admin.token]] variable)",
                config.admin.token_env
            ))
        })
}

/// The store when no gateway holds it (a PostgreSQL store is never held: every gateway
/// and the CLI share it), else (or with `--admin URL`) the admin API.
pub fn target(config: &Config, admin: Option<&str>) -> Result<Target, RemoteError> {
    if let Some(url) = admin {
        client::parse_url(url).map_err(|e| RemoteError::Config(e.to_string()))?;
        return Ok(Target::Remote(Remote {
            url: url.to_string(),
            token: token(config)?,
        }));
    }
    match Store::open_at(&config.store_location()) {
        Ok(s) => Ok(Target::Store(s)),
        Err(StoreError::Backend(crate::store::BackendError::InUse { .. })) => {
            let url = format!("http://{}", config.admin.listen);
            eprintln!("resellgate: the gateway is running: using its admin API at {url}");
            Ok(Target::Remote(Remote {
                url,
                token: token(config)?,
            }))
        }
        Err(e) => Err(RemoteError::Other(e.to_string())),
    }
}

impl Remote {
    /// One call; a status other than 200 is an error naming `what`.
    pub fn call(
        &self,
        what: &str,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Answer, RemoteError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Other(e.to_string()))?;
        let a = rt
            .block_on(client::call(
                &self.url,
                &self.token,
                method,
                path,
                content_type,
                body,
            ))
            .map_err(|e| RemoteError::Other(e.to_string()))?;
        if a.status == 200 {
            Ok(a)
        } else {
            Err(RemoteError::from_answer(what, &a))
        }
    }

    fn get_json(&self, what: &str, path: &str) -> Result<Value, RemoteError> {
        let a = self.call(what, "GET", path, "application/json", Vec::new())?;
        serde_json::from_slice(&a.body)
            .map_err(|e| RemoteError::Other(format!("{what}: the answer is not JSON: {e}")))
    }

    /// `mappings apply`: the validated set as one document.
    pub fn apply(&self, document: String) -> Result<String, RemoteError> {
        let a = self.call(
            "mappings apply",
            "POST",
            "/mappings",
            "application/toml",
            document.into_bytes(),
        )?;
        Ok(a.text())
    }

    pub fn export(&self) -> Result<String, RemoteError> {
        Ok(self
            .call(
                "mappings export",
                "GET",
                "/mappings",
                "text/plain",
                Vec::new(),
            )?
            .text())
    }

    pub fn ledger(&self, reseller: &str, month: &str) -> Result<String, RemoteError> {
        let path = format!("/ledger?reseller={}&month={}", enc(reseller), enc(month));
        Ok(self
            .call("ledger export", "GET", &path, "text/plain", Vec::new())?
            .text())
    }

    /// `services list`: the lines `resellgate services list` prints from the store.
    pub fn services(&self, reseller: Option<&str>) -> Result<String, RemoteError> {
        let logins: Vec<String> = match reseller {
            Some(r) => vec![r.to_string()],
            None => self.get_json("services list", "/resellers")?["resellers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r["login"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut out = String::new();
        for login in logins {
            let v = self.get_json(
                "services list",
                &format!("/services?reseller={}", enc(&login)),
            )?;
            for s in v["services"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}{}\t{} events",
                    s["upstream_id"],
                    login,
                    s["remoteid"].as_str().unwrap_or("-"),
                    s["plan"].as_str().unwrap_or("-"),
                    s["period"].as_str().unwrap_or("-"),
                    s["source"].as_str().unwrap_or("-"),
                    if s["deleted"].as_bool() == Some(true) {
                        " deleted"
                    } else {
                        ""
                    },
                    s["history"].as_array().map_or(0, Vec::len)
                );
            }
        }
        Ok(out)
    }

    /// `orders list`.
    pub fn orders(&self) -> Result<String, RemoteError> {
        let v = self.get_json("orders list", "/orders")?;
        let mut out = String::new();
        for o in v["orders"].as_array().into_iter().flatten() {
            let id = o["upstream_id"]
                .as_u64()
                .map_or("-".to_string(), |i| i.to_string());
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}",
                o["reseller"].as_str().unwrap_or("-"),
                o["remoteid"].as_str().unwrap_or("-"),
                o["state"].as_str().unwrap_or("-"),
                id
            );
        }
        Ok(out)
    }

    /// `services sync`: what the CLI prints when it syncs itself.
    pub fn sync_services(&self, reseller: &str) -> Result<String, RemoteError> {
        let path = format!(
            "/services/sync?{}",
            serde_urlencoded::to_string([("reseller", reseller)])
                .map_err(|e| RemoteError::Other(e.to_string()))?
        );
        let a = self.call("services sync", "POST", &path, "text/plain", Vec::new())?;
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| RemoteError::Other(format!("services sync: {e}")))?;
        let mut out = format!("{} services recorded for {reseller}\n", v["recorded"]);
        for id in v["refused"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "! {id} belongs to another reseller: not recorded");
        }
        Ok(out)
    }

    /// `orders reconcile`.
    pub fn reconcile(&self, settle_ms: Option<u64>) -> Result<String, RemoteError> {
        let path = match settle_ms {
            Some(ms) => format!("/orders/reconcile?settle_ms={ms}"),
            None => "/orders/reconcile".to_string(),
        };
        let a = self.call("orders reconcile", "POST", &path, "text/plain", Vec::new())?;
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| RemoteError::Other(format!("orders reconcile: {e}")))?;
        let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        let s = |x: &Value| x.as_str().unwrap_or("-").to_string();
        let mut out = String::new();
        for o in list("done") {
            let _ = writeln!(
                out,
                "done\t{}\t{}\t{}",
                s(&o["reseller"]),
                s(&o["remoteid"]),
                o["upstream_id"]
            );
        }
        for state in ["failed", "pending"] {
            for o in list(state) {
                let _ = writeln!(out, "{state}\t{}\t{}", s(&o["reseller"]), s(&o["remoteid"]));
            }
        }
        let _ = writeln!(
            out,
            "{} found, {} failed, {} still pending",
            list("done").len(),
            list("failed").len(),
            list("pending").len()
        );
        let _ = writeln!(out, "{} ledger costs filled in", v["costs_filled"]);
        Ok(out)
    }

    /// `audit list`: the query is the same as `GET /audit`'s.
    pub fn audit(&self, query: &[(&str, String)]) -> Result<String, RemoteError> {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let path = if q.is_empty() {
            "/audit".to_string()
        } else {
            format!("/audit?{}", q.join("&"))
        };
        let v = self.get_json("audit list", &path)?;
        let mut out = String::new();
        for e in v["entries"].as_array().into_iter().flatten() {
            let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
            let changes: Vec<&str> = e["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&audit_line(
                &s("at"),
                &s("token"),
                &s("via"),
                &s("op"),
                &s("kind"),
                &s("key"),
                &changes.join("; "),
            ));
        }
        Ok(out)
    }
}

/// One line of `audit list`: time, token, via, op, object, changes (tab-separated).
pub fn audit_line(
    at: &str,
    token: &str,
    via: &str,
    op: &str,
    kind: &str,
    key: &str,
    changes: &str,
) -> String {
    let esc = |s: &str| crate::telemetry::escape_controls(s).into_owned();
    format!(
        "{at}\t{}\t{via}\t{op}\t{kind} {}\t{}\n",
        esc(token),
        esc(key),
        esc(changes)
    )
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `resellgate audit list`'s options.
pub struct AuditQuery {
    pub kind: Option<String>,
    pub key: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: usize,
}

impl AuditQuery {
    /// From a running gateway's `GET /audit`.
    pub fn fetch(&self, remote: &Remote) -> Result<String, RemoteError> {
        let mut query: Vec<(&str, String)> = vec![("limit", self.limit.to_string())];
        for (k, v) in [
            ("kind", &self.kind),
            ("key", &self.key),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = v {
                query.push((k, v.clone()));
            }
        }
        remote.audit(&query)
    }

    /// From the store (the gateway stopped); the same checks as `GET /audit`.
    pub fn list(&self, store: &Store) -> Result<String, RemoteError> {
        let time = |name: &str, v: &Option<String>| -> Result<Option<u64>, RemoteError> {
            v.as_ref()
                .map(|t| {
                    super::api::parse_time(t).ok_or_else(|| {
                        RemoteError::Config(format!(
                            "--{name} '{t}': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"
                        ))
                    })
                })
                .transpose()
        };
        let max = super::api::MAX_AUDIT_ENTRIES;
        if !(1..=max).contains(&self.limit) {
            return Err(RemoteError::Config(format!(
                "--limit {}: must be from 1 to {max}",
                self.limit
            )));
        }
        if let Some(k) = &self.kind {
            if !["reseller", "plan", "upstream_account"].contains(&k.as_str()) {
                return Err(RemoteError::Config(format!(
                    "--kind '{k}': expected reseller, plan or upstream_account"
                )));
            }
        }
        let filter = crate::store::AuditFilter {
            kind: self.kind.clone(),
            key: self.key.clone(),
            since_ms: time("since", &self.since)?,
            until_ms: time("until", &self.until)?,
            limit: self.limit,
        };
        let entries = store
            .audit(&filter)
            .map_err(|e| RemoteError::Other(e.to_string()))?;
        Ok(entries
            .iter()
            .map(|e| {
                audit_line(
                    &crate::store::ledger::timestamp(e.at_ms),
                    &e.actor,
                    &e.via,
                    &e.op,
                    &e.kind,
                    &e.key,
                    &e.changes.join("; "),
                )
            })
            .collect())
    }
}
