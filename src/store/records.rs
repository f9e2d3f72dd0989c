//! Writes of the operator's records (upstream accounts, resellers, plans): one at a time or
//! as a [`Batch`], each answering the [`Change`]s it made — one readable line per changed
//! field, never a password or a hash. The mapping-file side (parsing, validation, export)
//! is `crate::config::mappings`; this module only knows the records.

use std::fmt;
use std::sync::Arc;

use super::audit::{entries_for, Actor, Snapshot};
use super::backend::BatchOp;
use super::edit::Edit;
use super::model::{Addon, Markup, Plan, Reseller, UpstreamAccount};
use super::{encode, trees, Store, StoreError};

/// The kind of record a [`Change`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    UpstreamAccount,
    Reseller,
    Plan,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::UpstreamAccount => "upstream_account",
            RecordKind::Reseller => "reseller",
            RecordKind::Plan => "plan",
        })
    }
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Add,
    Modify,
    Delete,
}

/// One line of a diff: `+ reseller acme`, `~ plan 101: markup percent 15 -> 20`,
/// `- plan 7`. Never carries a password or a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: ChangeOp,
    pub kind: RecordKind,
    /// The login, name or id.
    pub key: String,
    /// For a modification: which field changed and how.
    pub detail: Option<String>,
}

impl Change {
    pub(super) fn new(
        op: ChangeOp,
        kind: RecordKind,
        key: impl fmt::Display,
        detail: Option<String>,
    ) -> Change {
        Change {
            op,
            kind,
            key: key.to_string(),
            detail,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.op {
            ChangeOp::Add => '+',
            ChangeOp::Modify => '~',
            ChangeOp::Delete => '-',
        };
        write!(f, "{sign} {} {}", self.kind, self.key)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Records to upsert together ([`Store::apply_batch`]): accounts first, then plans, then
/// resellers, so a reseller may name an account or plan of the same batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub upstream_accounts: Vec<UpstreamAccount>,
    pub plans: Vec<Plan>,
    pub resellers: Vec<Reseller>,
}

/// A pending write, applied to the backend first and to the cache after the flush.
pub(super) enum Write {
    Account(Arc<UpstreamAccount>),
    Reseller(Arc<Reseller>),
    Plan(Arc<Plan>),
    DeleteAccount(String),
    DeleteReseller(String),
    DeletePlan(u64),
}

impl Store {
    /// Inserts or replaces an upstream account; answers what changed. No audit entry:
    /// operator paths use [`Store::edit`] or [`Store::apply_batch_as`].
    pub fn put_upstream_account(
        &self,
        account: UpstreamAccount,
    ) -> Result<Vec<Change>, StoreError> {
        self.edit_unaudited(Edit::PutAccount(account))
    }

    /// Inserts or replaces a plan; answers what changed.
    pub fn put_plan(&self, plan: Plan) -> Result<Vec<Change>, StoreError> {
        self.edit_unaudited(Edit::PutPlan(plan))
    }

    /// Inserts or replaces a reseller. Its upstream account and plans must exist.
    pub fn put_reseller(&self, reseller: Reseller) -> Result<Vec<Change>, StoreError> {
        self.edit_unaudited(Edit::PutReseller(reseller))
    }

    /// Removes a reseller; answers the change, or `None` if there was no such reseller.
    pub fn delete_reseller(&self, login: &str) -> Result<Option<Change>, StoreError> {
        self.delete_unaudited(Edit::DeleteReseller(login.to_string()))
    }

    /// Removes a plan no reseller uses.
    pub fn delete_plan(&self, id: u64) -> Result<Option<Change>, StoreError> {
        self.delete_unaudited(Edit::DeletePlan(id))
    }

    /// Removes an upstream account no reseller uses.
    pub fn delete_upstream_account(&self, name: &str) -> Result<Option<Change>, StoreError> {
        self.delete_unaudited(Edit::DeleteAccount(name.to_string()))
    }

    fn edit_unaudited(&self, edit: Edit) -> Result<Vec<Change>, StoreError> {
        let _guard = self.lock();
        let (changes, writes) = self.plan_edit(edit)?;
        if !writes.is_empty() {
            self.commit(writes, &changes, None)?;
        }
        Ok(changes)
    }

    fn delete_unaudited(&self, edit: Edit) -> Result<Option<Change>, StoreError> {
        match self.edit_unaudited(edit) {
            Ok(c) => Ok(c.into_iter().next()),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Store::apply_batch_as`] without an audit entry (tests, seeding).
    pub fn apply_batch<E: From<StoreError>>(
        &self,
        batch: Batch,
        check: impl FnOnce(&Store) -> Result<(), E>,
    ) -> Result<Vec<Change>, E> {
        self.apply_batch_inner(None, batch, check)
    }

    /// Upserts every record of `batch` (nothing is deleted) after `check` has approved it
    /// against the store as it is now (e.g. references to accounts and plans the batch does
    /// not hold); answers the changes, none when the store already matches. All writes and
    /// their audit entries (for `actor`) are one backend write, flushed once, then the
    /// caches are updated. `check` runs with the write lock held: it may read the store,
    /// not write it.
    pub fn apply_batch_as<E: From<StoreError>>(
        &self,
        actor: &Actor,
        batch: Batch,
        check: impl FnOnce(&Store) -> Result<(), E>,
    ) -> Result<Vec<Change>, E> {
        self.apply_batch_inner(Some(actor), batch, check)
    }

    fn apply_batch_inner<E: From<StoreError>>(
        &self,
        actor: Option<&Actor>,
        batch: Batch,
        check: impl FnOnce(&Store) -> Result<(), E>,
    ) -> Result<Vec<Change>, E> {
        let _guard = self.lock();
        check(self)?;
        let mut changes = Vec::new();
        let mut writes = Vec::new();
        for a in batch.upstream_accounts {
            let c = diff_account(self.upstream_account(&a.name).as_deref(), &a);
            if !c.is_empty() {
                changes.extend(c);
                writes.push(Write::Account(Arc::new(a)));
            }
        }
        for p in batch.plans {
            let c = diff_plan(self.plan(p.id).as_deref(), &p);
            if !c.is_empty() {
                changes.extend(c);
                writes.push(Write::Plan(Arc::new(p)));
            }
        }
        for r in batch.resellers {
            let c = diff_reseller(self.reseller(&r.login).as_deref(), &r);
            if !c.is_empty() {
                changes.extend(c);
                writes.push(Write::Reseller(Arc::new(r)));
            }
        }
        if !writes.is_empty() {
            self.commit(writes, &changes, actor)?;
        }
        Ok(changes)
    }

    fn snapshot(&self, kind: RecordKind, key: &str) -> Option<String> {
        Some(match kind {
            RecordKind::UpstreamAccount => {
                Snapshot::Account(&*self.upstream_account(key)?).to_json()
            }
            RecordKind::Reseller => Snapshot::Reseller(&*self.reseller(key)?).to_json(),
            RecordKind::Plan => Snapshot::Plan(&*self.plan(key.parse().ok()?)?).to_json(),
        })
    }

    /// Writes to the backend as one batch (with the audit entries of `changes` when an
    /// `actor` is given), flushes, then updates the caches. Call with the lock held.
    pub(super) fn commit(
        &self,
        writes: Vec<Write>,
        changes: &[Change],
        actor: Option<&Actor>,
    ) -> Result<(), StoreError> {
        let mut ops = Vec::new();
        for w in &writes {
            ops.push(match w {
                Write::Account(a) => BatchOp::Put {
                    tree: trees::UPSTREAM_ACCOUNTS,
                    key: a.name.as_bytes().to_vec(),
                    value: encode(&**a, || format!("upstream_account '{}'", a.name))?,
                },
                Write::Reseller(r) => BatchOp::Put {
                    tree: trees::RESELLERS,
                    key: r.login.as_bytes().to_vec(),
                    value: encode(&**r, || format!("reseller '{}'", r.login))?,
                },
                Write::Plan(p) => BatchOp::Put {
                    tree: trees::PLANS,
                    key: p.id.to_be_bytes().to_vec(),
                    value: encode(&**p, || format!("plan {}", p.id))?,
                },
                Write::DeleteAccount(name) => BatchOp::Delete {
                    tree: trees::UPSTREAM_ACCOUNTS,
                    key: name.as_bytes().to_vec(),
                },
                Write::DeleteReseller(login) => BatchOp::Delete {
                    tree: trees::RESELLERS,
                    key: login.as_bytes().to_vec(),
                },
                Write::DeletePlan(id) => BatchOp::Delete {
                    tree: trees::PLANS,
                    key: id.to_be_bytes().to_vec(),
                },
            });
        }
        if let Some(actor) = actor {
            // After: the record as this batch writes it.
            let after = |kind: RecordKind, key: &str| -> Option<String> {
                writes.iter().find_map(|w| match (w, kind) {
                    (Write::Account(a), RecordKind::UpstreamAccount) if a.name == key => {
                        Some(Snapshot::Account(a).to_json())
                    }
                    (Write::Reseller(r), RecordKind::Reseller) if r.login == key => {
                        Some(Snapshot::Reseller(r).to_json())
                    }
                    (Write::Plan(p), RecordKind::Plan) if p.id.to_string() == key => {
                        Some(Snapshot::Plan(p).to_json())
                    }
                    _ => None,
                })
            };
            for mut e in entries_for(actor, changes, |k, key| self.snapshot(k, key), after) {
                e.id = self.next_audit_id()?;
                ops.push(BatchOp::Put {
                    tree: trees::AUDIT,
                    key: e.id.to_be_bytes().to_vec(),
                    value: encode(&e, || format!("audit entry {}", e.id))?,
                });
            }
        }
        let b = &*self.shared.backend;
        b.write_batch(&ops)?;
        b.flush()?;
        for w in writes {
            match w {
                Write::Account(a) => {
                    self.shared.accounts.insert(a.name.clone(), a);
                }
                Write::Reseller(r) => {
                    self.shared.resellers.insert(r.login.clone(), r);
                }
                Write::Plan(p) => {
                    self.shared.plans.insert(p.id, p);
                }
                Write::DeleteAccount(name) => {
                    self.shared.accounts.remove(&name);
                }
                Write::DeleteReseller(login) => {
                    self.shared.resellers.remove(&login);
                }
                Write::DeletePlan(id) => {
                    self.shared.plans.remove(&id);
                }
            }
        }
        Store::bump_catalog(&self.shared);
        Ok(())
    }
}

// ---- diffs: one readable line per changed field ----

fn diff_lines(
    kind: RecordKind,
    key: impl fmt::Display,
    old_is_some: bool,
    lines: Vec<String>,
    differs: bool,
) -> Vec<Change> {
    if !old_is_some {
        return vec![Change::new(ChangeOp::Add, kind, key, None)];
    }
    if !differs {
        return Vec::new();
    }
    if lines.is_empty() {
        return vec![Change::new(
            ChangeOp::Modify,
            kind,
            key,
            Some("changed".into()),
        )];
    }
    let key = key.to_string();
    lines
        .into_iter()
        .map(|l| Change::new(ChangeOp::Modify, kind, &key, Some(l)))
        .collect()
}

fn field<T: PartialEq + fmt::Display>(out: &mut Vec<String>, name: &str, old: T, new: T) {
    if old != new {
        out.push(format!("{name} {old} -> {new}"));
    }
}

pub(super) fn diff_account(old: Option<&UpstreamAccount>, new: &UpstreamAccount) -> Vec<Change> {
    let mut lines = Vec::new();
    if let Some(o) = old {
        field(&mut lines, "login", &o.login, &new.login);
        field(&mut lines, "password", &o.password, &new.password);
    }
    diff_lines(
        RecordKind::UpstreamAccount,
        &new.name,
        old.is_some(),
        lines,
        old != Some(new),
    )
}

pub(super) fn diff_reseller(old: Option<&Reseller>, new: &Reseller) -> Vec<Change> {
    let mut lines = Vec::new();
    if let Some(o) = old {
        if o.password_hash != new.password_hash {
            lines.push("password_hash changed".to_string());
        }
        field(
            &mut lines,
            "upstream_account",
            &o.upstream_account,
            &new.upstream_account,
        );
        field(&mut lines, "plans", ids(&o.plans), ids(&new.plans));
        diff_markup(&mut lines, &o.markup, &new.markup);
    }
    diff_lines(
        RecordKind::Reseller,
        &new.login,
        old.is_some(),
        lines,
        old != Some(new),
    )
}

pub(super) fn diff_plan(old: Option<&Plan>, new: &Plan) -> Vec<Change> {
    let mut lines = Vec::new();
    if let Some(o) = old {
        field(&mut lines, "upstream_id", o.upstream_id, new.upstream_id);
        let name = |n: &Option<String>| n.as_ref().map_or("none".to_string(), |n| format!("{n:?}"));
        field(&mut lines, "name", name(&o.name), name(&new.name));
        diff_markup(&mut lines, &o.markup, &new.markup);
        let addons = |a: &[Addon]| {
            let v: Vec<String> = a
                .iter()
                .map(|a| format!("{}={}", a.id, a.upstream_id))
                .collect();
            format!("[{}]", v.join(", "))
        };
        field(&mut lines, "addons", addons(&o.addons), addons(&new.addons));
    }
    diff_lines(
        RecordKind::Plan,
        new.id,
        old.is_some(),
        lines,
        old != Some(new),
    )
}

fn ids(v: &[u64]) -> String {
    let v: Vec<String> = v.iter().map(u64::to_string).collect();
    format!("[{}]", v.join(", "))
}

fn diff_markup(out: &mut Vec<String>, old: &Option<Markup>, new: &Option<Markup>) {
    match (old, new) {
        (None, None) => {}
        (None, Some(m)) => out.push(format!("markup none -> {m}")),
        (Some(m), None) => out.push(format!("markup {m} -> none")),
        (Some(a), Some(b)) => {
            field(out, "markup percent", a.percent, b.percent);
            field(out, "markup fixed", a.fixed, b.fixed);
            field(out, "markup round_to", a.round_to, b.round_to);
        }
    }
}
