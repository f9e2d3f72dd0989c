//! The audit log: one entry per operator record changed, written in the same backend
//! batch as the change itself ([`super::Backend::write_batch`]), so a change without its
//! entry (or an entry without its change) never survives a crash.
//!
//! An entry says when, who (the admin token's name, or `cli` for the command line with
//! the gateway stopped), through what (`api`, `console`, `mappings`, `cli`), what (kind,
//! key, the readable change lines) and the record before and after as JSON — never a
//! password, a password hash or a token: a reseller's `password_hash` is left out (a
//! change of it reads `password_hash changed`), an upstream account shows only where its
//! password is read from.
//!
//! Entries are keyed by a time-ordered id (microseconds since the epoch, made unique) and
//! are never rewritten or deleted.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::model::{Plan, Reseller, UpstreamAccount};
use super::records::{Change, ChangeOp, RecordKind};
use super::{decode, trees, Store, StoreError};

/// Who makes a change, and through which door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The admin token's name, or `cli`.
    pub name: String,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A JSON resource of the admin API.
    Api,
    /// The web console.
    Console,
    /// A mapping document applied (`POST /mappings`, `mappings apply`).
    Mappings,
    /// The command line on a stopped gateway's store.
    Cli,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Console => "console",
            Via::Mappings => "mappings",
            Via::Cli => "cli",
        }
    }
}

impl Actor {
    pub fn new(name: impl Into<String>, via: Via) -> Actor {
        Actor {
            name: name.into(),
            via,
        }
    }

    /// The command line working on the store directly.
    pub fn cli(via: Via) -> Actor {
        Actor::new("cli", via)
    }
}

/// One recorded change of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    /// The token's name (or `cli`).
    pub actor: String,
    /// `api`, `console`, `mappings` or `cli`.
    pub via: String,
    /// `add`, `modify` or `delete`.
    pub op: String,
    /// `reseller`, `upstream_account` or `plan`.
    pub kind: String,
    /// The login, name or id.
    pub key: String,
    /// The change lines (`markup percent 20 -> 25`).
    pub changes: Vec<String>,
    /// The record before and after, as JSON text without secrets.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Which entries [`Store::audit`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `reseller`, `upstream_account` or `plan`.
    pub kind: Option<String>,
    pub key: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub since_ms: Option<u64>,
    /// Milliseconds since the epoch, exclusive.
    pub until_ms: Option<u64>,
    /// At most this many, newest first.
    pub limit: usize,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == e.kind)
            && self.key.as_ref().is_none_or(|k| *k == e.key)
            && self.since_ms.is_none_or(|t| e.at_ms >= t)
            && self.until_ms.is_none_or(|t| e.at_ms < t)
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A record as the audit log shows it: JSON without secrets.
pub enum Snapshot<'a> {
    Account(&'a UpstreamAccount),
    Reseller(&'a Reseller),
    Plan(&'a Plan),
}

impl Snapshot<'_> {
    pub fn to_json(&self) -> String {
        let v = match self {
            Snapshot::Account(a) => serde_json::json!({
                "name": a.name,
                "login": a.login,
                "password": a.password.to_string(),
            }),
            // No password_hash, ever.
            Snapshot::Reseller(r) => serde_json::json!({
                "login": r.login,
                "upstream_account": r.upstream_account,
                "plans": r.plans,
                "markup": r.markup,
            }),
            Snapshot::Plan(p) => serde_json::json!(p),
        };
        v.to_string()
    }
}

/// The entries for `changes` (several lines about one record make one entry), before and
/// after as given by `snapshot(kind, key)`.
pub(crate) fn entries_for(
    actor: &Actor,
    changes: &[Change],
    mut before: impl FnMut(RecordKind, &str) -> Option<String>,
    mut after: impl FnMut(RecordKind, &str) -> Option<String>,
) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    let at_ms = now_ms();
    for c in changes {
        let kind = c.kind.to_string();
        if let Some(e) = out.iter_mut().find(|e| e.kind == kind && e.key == c.key) {
            e.changes.extend(c.detail.clone());
            continue;
        }
        out.push(AuditEntry {
            id: 0,
            at_ms,
            actor: actor.name.clone(),
            via: actor.via.as_str().to_string(),
            op: match c.op {
                ChangeOp::Add => "add",
                ChangeOp::Modify => "modify",
                ChangeOp::Delete => "delete",
            }
            .to_string(),
            kind,
            key: c.key.clone(),
            changes: c.detail.iter().cloned().collect(),
            before: before(c.kind, &c.key),
            after: None,
        });
    }
    for e in &mut out {
        let kind = match e.kind.as_str() {
            "reseller" => RecordKind::Reseller,
            "plan" => RecordKind::Plan,
            _ => RecordKind::UpstreamAccount,
        };
        if e.op != "delete" {
            e.after = after(kind, &e.key);
        }
    }
    out
}

impl Store {
    /// The next audit id: microseconds now, above every id written so far. Call with the
    /// write lock held.
    pub(crate) fn next_audit_id(&self) -> Result<u64, StoreError> {
        let mut last = self
            .shared
            .audit_last
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_none() {
            let found = self
                .shared
                .backend
                .last(trees::AUDIT)?
                .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_slice()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            *last = Some(found);
        }
        let id = now_us().max(last.unwrap_or(0) + 1);
        *last = Some(id);
        Ok(id)
    }

    /// Audit entries matching `filter`, newest first.
    pub fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.shared.backend.scan(trees::AUDIT)?.into_iter().rev() {
            let e: AuditEntry = decode(trees::AUDIT, &k, &v)?;
            if filter.matches(&e) {
                out.push(e);
                if out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::PasswordSource;
    use crate::store::model::Markup;
    use crate::store::tests::plan;
    use crate::store::Edit;

    fn seeded() -> Store {
        let s = Store::open_temporary().unwrap();
        s.put_upstream_account(UpstreamAccount {
            name: "up".into(),
            login: "up@x".into(),
            password: PasswordSource::Env("UP_PW".into()),
        })
        .unwrap();
        s.put_plan(plan(1)).unwrap();
        s
    }

    fn all(s: &Store) -> Vec<AuditEntry> {
        s.audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .unwrap()
    }

    /// An edit writes one entry with who, what, before and after; unchanged edits none.
    #[test]
    fn an_edit_is_audited_with_before_and_after() {
        let s = seeded();
        assert!(all(&s).is_empty(), "unaudited seeding writes no entry");
        let ops = Actor::new("ops", Via::Api);
        let mut p = plan(1);
        p.markup = Some(Markup::default());
        s.edit(&ops, Edit::PutPlan(p.clone()), None).unwrap();
        s.edit(&ops, Edit::PutPlan(p), None).unwrap();
        let e = all(&s);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            (e[0].actor.as_str(), e[0].via.as_str(), e[0].op.as_str()),
            ("ops", "api", "modify")
        );
        assert_eq!((e[0].kind.as_str(), e[0].key.as_str()), ("plan", "1"));
        assert!(e[0].before.as_deref().unwrap().contains("\"markup\":null"));
        assert!(e[0]
            .after
            .as_deref()
            .unwrap()
            .contains("\"round_to\":\"0.01\""));
        assert_eq!(
            e[0].changes,
            ["markup none -> percent 0, fixed 0, round_to 0.01"]
        );

        s.edit(&ops, Edit::DeletePlan(1), None).unwrap();
        let e = all(&s);
        assert_eq!(e[0].op, "delete");
        assert!(e[0].after.is_none() && e[0].before.is_some());
        assert!(e[0].id > e[1].id, "newest first, ids increase");
    }

    /// A reseller's hash never reaches an entry; its change is named only.
    #[test]
    fn no_hash_in_the_log() {
        let s = seeded();
        let ops = Actor::new("ops", Via::Console);
        let r = Reseller {
            login: "r".into(),
            password_hash: "$argon2id$v=19$SECRET-HASH".into(),
            upstream_account: "up".into(),
            plans: vec![1],
            markup: None,
        };
        s.edit(&ops, Edit::PutReseller(r.clone()), None).unwrap();
        let r2 = Reseller {
            password_hash: "$argon2id$v=19$OTHER-HASH".into(),
            ..r
        };
        s.edit(&ops, Edit::PutReseller(r2), None).unwrap();
        let text = format!("{:?}", all(&s));
        assert!(!text.contains("HASH") && !text.contains("argon2"), "{text}");
        assert!(text.contains("password_hash changed"), "{text}");
    }

    /// `If-Match` with an old tag is refused and writes nothing; the current tag passes.
    #[test]
    fn a_stale_edit_is_refused() {
        let s = seeded();
        let ops = Actor::new("ops", Via::Api);
        let old = s.etag(RecordKind::Plan, "1").unwrap();
        let mut p = plan(1);
        p.name = Some("A".into());
        s.edit(&ops, Edit::PutPlan(p.clone()), Some(&old)).unwrap();
        p.name = Some("B".into());
        let e = s
            .edit(&ops, Edit::PutPlan(p.clone()), Some(&old))
            .unwrap_err();
        assert!(matches!(e, StoreError::Stale { .. }), "{e}");
        assert_eq!(s.plan(1).unwrap().name.as_deref(), Some("A"));
        let now = s.etag(RecordKind::Plan, "1").unwrap();
        s.edit(&ops, Edit::PutPlan(p), Some(&now)).unwrap();
        assert!(s.edit(&ops, Edit::DeletePlan(7), Some("*")).is_err());
        assert!(matches!(
            s.edit(&ops, Edit::DeletePlan(7), None),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(all(&s).len(), 2);
    }

    /// Filters by object and time; ids survive a reopen (never rewritten).
    #[test]
    fn filters_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ops = Actor::new("ops", Via::Api);
        let first_id = {
            let s = Store::open(dir.path()).unwrap();
            s.edit(&ops, Edit::PutPlan(plan(1)), None).unwrap();
            s.edit(&ops, Edit::PutPlan(plan(2)), None).unwrap();
            all(&s)[0].id
        };
        let s = Store::open_when_free(dir.path(), std::time::Duration::from_secs(5)).unwrap();
        s.edit(&ops, Edit::PutPlan(plan(3)), None).unwrap();
        let e = all(&s);
        assert_eq!(e.len(), 3);
        assert!(e[0].id > first_id);
        let only = s
            .audit(&AuditFilter {
                kind: Some("plan".into()),
                key: Some("2".into()),
                limit: 10,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].key, "2");
        let none = s
            .audit(&AuditFilter {
                until_ms: Some(1),
                limit: 10,
                ..AuditFilter::default()
            })
            .unwrap();
        assert!(none.is_empty());
    }
}

#[cfg(test)]
mod atomicity {
    use super::*;
    use crate::store::backend::{Backend, BackendError, BatchOp, SledBackend};
    use crate::store::tests::plan;
    use crate::store::Edit;

    /// sled, except that every batch fails.
    struct FailingBatches(SledBackend);

    impl Backend for FailingBatches {
        fn get(&self, t: &str, k: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
            self.0.get(t, k)
        }
        fn put(&self, t: &str, k: &[u8], v: &[u8]) -> Result<(), BackendError> {
            self.0.put(t, k, v)
        }
        fn delete(&self, t: &str, k: &[u8]) -> Result<bool, BackendError> {
            self.0.delete(t, k)
        }
        fn scan(&self, t: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, BackendError> {
            self.0.scan(t)
        }
        fn compare_and_swap(
            &self,
            t: &str,
            k: &[u8],
            o: Option<&[u8]>,
            n: Option<&[u8]>,
        ) -> Result<Result<(), Option<Vec<u8>>>, BackendError> {
            self.0.compare_and_swap(t, k, o, n)
        }
        fn flush(&self) -> Result<(), BackendError> {
            self.0.flush()
        }
        fn tree_names(&self) -> Result<Vec<String>, BackendError> {
            self.0.tree_names()
        }
        fn write_batch(&self, _: &[BatchOp]) -> Result<(), BackendError> {
            Err(BackendError::Io {
                op: "write_batch",
                tree: "*".into(),
                message: "disk full".into(),
            })
        }
    }

    /// A change and its audit entry are one write: when it fails, neither is there —
    /// not in the backend, not in the cache.
    #[test]
    fn a_failed_write_leaves_neither_change_nor_entry() {
        let s = Store::with_backend(Box::new(FailingBatches(SledBackend::temporary().unwrap())))
            .unwrap();
        let e = s
            .edit(&Actor::new("ops", Via::Api), Edit::PutPlan(plan(1)), None)
            .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert!(s.plan(1).is_none());
        assert!(s
            .audit(&AuditFilter {
                limit: 10,
                ..AuditFilter::default()
            })
            .unwrap()
            .is_empty());
    }
}
