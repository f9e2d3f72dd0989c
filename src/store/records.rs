//! Writes of the operator's records (upstream accounts, resellers, plans): one at a time or
//! as a [`Batch`], each answering the [`Change`]s it made — one readable line per changed
//! field, never a password or a hash. The mapping-file side (parsing, validation, export)
//! is `crate::config::mappings`; this module only knows the records.

use std::fmt;
use std::sync::Arc;

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
    fn new(
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
enum Write {
    Account(Arc<UpstreamAccount>),
    Reseller(Arc<Reseller>),
    Plan(Arc<Plan>),
    DeleteAccount(String),
    DeleteReseller(String),
    DeletePlan(u64),
}

impl Store {
    /// Inserts or replaces an upstream account; answers what changed.
    pub fn put_upstream_account(
        &self,
        account: UpstreamAccount,
    ) -> Result<Vec<Change>, StoreError> {
        let _guard = self.lock();
        let changes = diff_account(self.upstream_account(&account.name).as_deref(), &account);
        if !changes.is_empty() {
            self.commit(vec![Write::Account(Arc::new(account))])?;
        }
        Ok(changes)
    }

    /// Inserts or replaces a plan; answers what changed.
    pub fn put_plan(&self, plan: Plan) -> Result<Vec<Change>, StoreError> {
        let _guard = self.lock();
        let changes = diff_plan(self.plan(plan.id).as_deref(), &plan);
        if !changes.is_empty() {
            self.commit(vec![Write::Plan(Arc::new(plan))])?;
        }
        Ok(changes)
    }

    /// Inserts or replaces a reseller. Its upstream account and plans must exist.
    pub fn put_reseller(&self, reseller: Reseller) -> Result<Vec<Change>, StoreError> {
        let _guard = self.lock();
        let what = format!("reseller '{}'", reseller.login);
        if self.upstream_account(&reseller.upstream_account).is_none() {
            return Err(StoreError::MissingRef {
                what,
                missing: format!("upstream_account '{}'", reseller.upstream_account),
            });
        }
        if let Some(id) = reseller.plans.iter().find(|id| self.plan(**id).is_none()) {
            return Err(StoreError::MissingRef {
                what,
                missing: format!("plan {id}"),
            });
        }
        let changes = diff_reseller(self.reseller(&reseller.login).as_deref(), &reseller);
        if !changes.is_empty() {
            self.commit(vec![Write::Reseller(Arc::new(reseller))])?;
        }
        Ok(changes)
    }

    /// Removes a reseller; answers the change, or `None` if there was no such reseller.
    pub fn delete_reseller(&self, login: &str) -> Result<Option<Change>, StoreError> {
        let _guard = self.lock();
        if self.reseller(login).is_none() {
            return Ok(None);
        }
        self.commit(vec![Write::DeleteReseller(login.to_string())])?;
        Ok(Some(Change::new(
            ChangeOp::Delete,
            RecordKind::Reseller,
            login,
            None,
        )))
    }

    /// Removes a plan no reseller uses.
    pub fn delete_plan(&self, id: u64) -> Result<Option<Change>, StoreError> {
        let _guard = self.lock();
        if self.plan(id).is_none() {
            return Ok(None);
        }
        if let Some(r) = self.resellers().into_iter().find(|r| r.has_plan(id)) {
            return Err(StoreError::StillUsed {
                what: format!("plan {id}"),
                by: format!("reseller '{}'", r.login),
            });
        }
        self.commit(vec![Write::DeletePlan(id)])?;
        Ok(Some(Change::new(
            ChangeOp::Delete,
            RecordKind::Plan,
            id,
            None,
        )))
    }

    /// Removes an upstream account no reseller uses.
    pub fn delete_upstream_account(&self, name: &str) -> Result<Option<Change>, StoreError> {
        let _guard = self.lock();
        if self.upstream_account(name).is_none() {
            return Ok(None);
        }
        if let Some(r) = self
            .resellers()
            .into_iter()
            .find(|r| r.upstream_account == name)
        {
            return Err(StoreError::StillUsed {
                what: format!("upstream_account '{name}'"),
                by: format!("reseller '{}'", r.login),
            });
        }
        self.commit(vec![Write::DeleteAccount(name.to_string())])?;
        Ok(Some(Change::new(
            ChangeOp::Delete,
            RecordKind::UpstreamAccount,
            name,
            None,
        )))
    }

    /// Upserts every record of `batch` (nothing is deleted) after `check` has approved it
    /// against the store as it is now (e.g. references to accounts and plans the batch does
    /// not hold); answers the changes, none when the store already matches. All writes are
    /// flushed once, then the caches are updated. `check` runs with the write lock held:
    /// it may read the store, not write it.
    pub fn apply_batch<E: From<StoreError>>(
        &self,
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
            self.commit(writes)?;
        }
        Ok(changes)
    }

    /// Writes to the backend, flushes, then updates the caches. Call with the lock held.
    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let b = &*self.shared.backend;
        for w in &writes {
            match w {
                Write::Account(a) => b.put(
                    trees::UPSTREAM_ACCOUNTS,
                    a.name.as_bytes(),
                    &encode(&**a, || format!("upstream_account '{}'", a.name))?,
                )?,
                Write::Reseller(r) => b.put(
                    trees::RESELLERS,
                    r.login.as_bytes(),
                    &encode(&**r, || format!("reseller '{}'", r.login))?,
                )?,
                Write::Plan(p) => b.put(
                    trees::PLANS,
                    &p.id.to_be_bytes(),
                    &encode(&**p, || format!("plan {}", p.id))?,
                )?,
                Write::DeleteAccount(name) => {
                    b.delete(trees::UPSTREAM_ACCOUNTS, name.as_bytes())?;
                }
                Write::DeleteReseller(login) => {
                    b.delete(trees::RESELLERS, login.as_bytes())?;
                }
                Write::DeletePlan(id) => {
                    b.delete(trees::PLANS, &id.to_be_bytes())?;
                }
            }
        }
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

fn diff_account(old: Option<&UpstreamAccount>, new: &UpstreamAccount) -> Vec<Change> {
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

fn diff_reseller(old: Option<&Reseller>, new: &Reseller) -> Vec<Change> {
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

fn diff_plan(old: Option<&Plan>, new: &Plan) -> Vec<Change> {
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
