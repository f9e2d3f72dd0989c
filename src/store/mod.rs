//! The gateway's state, behind one interface.
//!
//! [`Store`] is a cheap-clone handle (an `Arc` inside, like mini-redis's `Db`). Reads on the
//! hot path ([`Store::reseller`], [`Store::plan`], …) come from dashmap caches and never
//! touch the disk. Writes go to the [`Backend`], are flushed, and only then update the
//! cache and return — so an acknowledged change survives a crash and is visible at once.
//! Writes are serialised by a mutex so the cache always matches what was written last.
//!
//! Backend calls block (a flush waits for the disk): async callers should write from
//! `tokio::task::spawn_blocking`. Cache reads are fine anywhere.
//!
//! Trees (see [`trees`]) hold values encoded by [`codec`]: a version byte, then bincode.

pub mod backend;
pub mod codec;
pub mod ledger;
pub mod model;
pub mod orders;
pub mod services;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;

pub use backend::{Backend, BackendError, SledBackend};
pub use codec::CodecError;
pub use model::{Addon, Markup, Plan, Reseller, UpstreamAccount};

use crate::config::{ConfigError, MappingFile, MappingSet};

/// Names of the trees. Keys: logins and names as UTF-8, ids as 8 big-endian bytes (so a
/// scan is in id order).
pub mod trees {
    /// [`Reseller`](super::Reseller) by login.
    pub const RESELLERS: &str = "resellers";
    /// [`UpstreamAccount`](super::UpstreamAccount) by name.
    pub const UPSTREAM_ACCOUNTS: &str = "upstream_accounts";
    /// [`Plan`](super::Plan) by local id.
    pub const PLANS: &str = "plans";
    /// Reserved: services, `(reseller, upstream certificate id)` ↔ `remoteid`.
    pub const SERVICES: &str = "services";
    /// Reserved: order records by `(reseller, remoteid)` — pending, then the stored answer.
    pub const ORDERS: &str = "orders";
    /// Reserved: the audit log of admin changes, by time-ordered id.
    pub const AUDIT: &str = "audit";
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("store tree '{tree}', key '{key}': {source}")]
    Decode {
        tree: &'static str,
        key: String,
        source: CodecError,
    },
    #[error("cannot encode {what}: {source}")]
    Encode { what: String, source: CodecError },
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{what} refers to {missing}, which does not exist")]
    MissingRef { what: String, missing: String },
    #[error("{what} cannot be deleted: {by} still uses it")]
    StillUsed { what: String, by: String },
}

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

/// The state: a backend plus the caches the hot path reads.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    backend: Box<dyn Backend>,
    resellers: DashMap<String, Arc<Reseller>>,
    accounts: DashMap<String, Arc<UpstreamAccount>>,
    plans: DashMap<u64, Arc<Plan>>,
    /// Serialises writes: backend write + flush + cache update happen as one step.
    writes: Mutex<()>,
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

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("resellers", &self.shared.resellers.len())
            .field("upstream_accounts", &self.shared.accounts.len())
            .field("plans", &self.shared.plans.len())
            .finish()
    }
}

impl Store {
    /// Opens (creating it if needed) the sled store at `path` and loads the caches.
    /// If another process holds the store, the error says a running gateway uses it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::with_backend(Box::new(SledBackend::open(path)?))
    }

    /// [`Store::open`] with sled's page cache bounded to `cache_mb` MiB (`[store] cache_mb`).
    pub fn open_with_cache(path: &Path, cache_mb: u64) -> Result<Store, StoreError> {
        Store::with_backend(Box::new(SledBackend::open_with_cache(path, cache_mb)?))
    }

    /// A store in a temporary sled database, gone when the last handle drops (tests).
    pub fn open_temporary() -> Result<Store, StoreError> {
        Store::with_backend(Box::new(SledBackend::temporary()?))
    }

    /// A store over any backend; every record is read into the caches now.
    pub fn with_backend(backend: Box<dyn Backend>) -> Result<Store, StoreError> {
        let shared = Shared {
            backend,
            resellers: DashMap::new(),
            accounts: DashMap::new(),
            plans: DashMap::new(),
            writes: Mutex::new(()),
        };
        for (k, v) in shared.backend.scan(trees::UPSTREAM_ACCOUNTS)? {
            let a: UpstreamAccount = decode(trees::UPSTREAM_ACCOUNTS, &k, &v)?;
            shared.accounts.insert(a.name.clone(), Arc::new(a));
        }
        for (k, v) in shared.backend.scan(trees::RESELLERS)? {
            let r: Reseller = decode(trees::RESELLERS, &k, &v)?;
            shared.resellers.insert(r.login.clone(), Arc::new(r));
        }
        for (k, v) in shared.backend.scan(trees::PLANS)? {
            let p: Plan = decode(trees::PLANS, &k, &v)?;
            shared.plans.insert(p.id, Arc::new(p));
        }
        Ok(Store {
            shared: Arc::new(shared),
        })
    }

    // ---- cache reads (no I/O) ----

    pub fn reseller(&self, login: &str) -> Option<Arc<Reseller>> {
        self.shared
            .resellers
            .get(login)
            .map(|r| Arc::clone(r.value()))
    }

    /// Every reseller, by login.
    pub fn resellers(&self) -> Vec<Arc<Reseller>> {
        let mut v: Vec<_> = self
            .shared
            .resellers
            .iter()
            .map(|r| Arc::clone(r.value()))
            .collect();
        v.sort_by(|a, b| a.login.cmp(&b.login));
        v
    }

    pub fn upstream_account(&self, name: &str) -> Option<Arc<UpstreamAccount>> {
        self.shared
            .accounts
            .get(name)
            .map(|r| Arc::clone(r.value()))
    }

    /// Every upstream account, by name.
    pub fn upstream_accounts(&self) -> Vec<Arc<UpstreamAccount>> {
        let mut v: Vec<_> = self
            .shared
            .accounts
            .iter()
            .map(|r| Arc::clone(r.value()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn plan(&self, id: u64) -> Option<Arc<Plan>> {
        self.shared.plans.get(&id).map(|r| Arc::clone(r.value()))
    }

    /// Every plan, by id.
    pub fn plans(&self) -> Vec<Arc<Plan>> {
        let mut v: Vec<_> = self
            .shared
            .plans
            .iter()
            .map(|r| Arc::clone(r.value()))
            .collect();
        v.sort_by_key(|p| p.id);
        v
    }

    // ---- writes (backend, flush, then cache) ----

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

    /// Upserts every entry of `set` (nothing is deleted) after checking references against
    /// the set and the store; answers the changes, none when the store already matches.
    /// All writes are flushed once, then the caches are updated.
    pub fn apply(&self, set: &MappingSet) -> Result<Vec<Change>, StoreError> {
        let _guard = self.lock();
        set.validate_refs(&|name| self.shared.accounts.contains_key(name), &|id| {
            self.shared.plans.contains_key(&id)
        })?;
        let mut changes = Vec::new();
        let mut writes = Vec::new();
        for e in &set.upstream_accounts {
            let c = diff_account(self.upstream_account(&e.item.name).as_deref(), &e.item);
            if !c.is_empty() {
                changes.extend(c);
                writes.push(Write::Account(Arc::new(e.item.clone())));
            }
        }
        for e in &set.plans {
            let c = diff_plan(self.plan(e.item.id).as_deref(), &e.item);
            if !c.is_empty() {
                changes.extend(c);
                writes.push(Write::Plan(Arc::new(e.item.clone())));
            }
        }
        for e in &set.resellers {
            let c = diff_reseller(self.reseller(&e.item.login).as_deref(), &e.item);
            if !c.is_empty() {
                changes.extend(c);
                writes.push(Write::Reseller(Arc::new(e.item.clone())));
            }
        }
        if !writes.is_empty() {
            self.commit(writes)?;
        }
        Ok(changes)
    }

    /// The whole state as a mapping file (password sources by name, never a value).
    pub fn export(&self) -> MappingFile {
        let accounts = self.upstream_accounts();
        let resellers = self.resellers();
        let plans = self.plans();
        MappingFile::from_records(
            accounts.iter().map(|a| &**a),
            resellers.iter().map(|r| &**r),
            plans.iter().map(|p| &**p),
        )
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data, so a panic while holding it leaves nothing torn.
        self.shared
            .writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

fn encode<T: serde::Serialize>(
    value: &T,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Encode {
        what: what(),
        source,
    })
}

fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    codec::decode(value).map_err(|source| StoreError::Decode {
        tree,
        key: key_text(tree, key),
        source,
    })
}

fn key_text(tree: &str, key: &[u8]) -> String {
    match <[u8; 8]>::try_from(key) {
        Ok(id) if tree == trees::PLANS => u64::from_be_bytes(id).to_string(),
        _ => String::from_utf8_lossy(key).into_owned(),
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rust_decimal::Decimal;

    use super::*;
    use crate::config::load_mappings;
    use crate::secret::PasswordSource;

    fn demo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/demo.toml")
    }

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(Change::to_string).collect()
    }

    fn account(name: &str) -> UpstreamAccount {
        UpstreamAccount {
            name: name.into(),
            login: format!("{name}@x"),
            password: PasswordSource::Env("PW".into()),
        }
    }

    fn plan(id: u64) -> Plan {
        Plan {
            id,
            upstream_id: id + 1000,
            name: None,
            markup: None,
            addons: vec![],
        }
    }

    /// Applying the demo prints every record once, then nothing the second time.
    #[test]
    fn apply_is_idempotent() {
        let store = Store::open_temporary().unwrap();
        let set = load_mappings(&[demo()]).unwrap();
        let first = lines(&store.apply(&set).unwrap());
        assert_eq!(
            first,
            [
                "+ upstream_account acme-up",
                "+ upstream_account globex-up",
                "+ plan 101",
                "+ plan 102",
                "+ plan 103",
                "+ reseller acme",
                "+ reseller globex",
            ]
        );
        assert_eq!(store.apply(&set).unwrap(), vec![]);
        assert_eq!(store.resellers().len(), 2);
        assert_eq!(
            store.plans().iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![101, 102, 103]
        );
    }

    /// Changed fields each get a line; a hash change never prints the hash.
    #[test]
    fn apply_reports_field_changes() {
        let store = Store::open_temporary().unwrap();
        let mut set = load_mappings(&[demo()]).unwrap();
        store.apply(&set).unwrap();
        let p = set.plans.iter_mut().find(|e| e.item.id == 102).unwrap();
        p.item.markup.as_mut().unwrap().percent = Decimal::from(20);
        p.item.name = None;
        let r = set
            .resellers
            .iter_mut()
            .find(|e| e.item.login == "acme")
            .unwrap();
        let old_hash = r.item.password_hash.clone();
        r.item.password_hash = crate::secret::hash_password("new").unwrap();
        r.item.plans = vec![101];
        let out = lines(&store.apply(&set).unwrap());
        assert_eq!(
            out,
            [
                "~ plan 102: name \"PositiveSSL Wildcard\" -> none",
                "~ plan 102: markup percent 15 -> 20",
                "~ reseller acme: password_hash changed",
                "~ reseller acme: plans [101, 102, 103] -> [101]",
            ]
        );
        assert!(!out.concat().contains(&old_hash));
        assert_eq!(
            store.plan(102).unwrap().markup.unwrap().percent,
            Decimal::from(20)
        );
    }

    /// Apply checks references against the set and what the store already holds.
    #[test]
    fn apply_checks_references_against_store() {
        let store = Store::open_temporary().unwrap();
        let full = load_mappings(&[demo()]).unwrap();
        let mut resellers_only = full.clone();
        resellers_only.upstream_accounts.clear();
        resellers_only.plans.clear();
        let e = store.apply(&resellers_only).unwrap_err().to_string();
        assert!(
            e.contains("reseller 'acme': key 'upstream_account': value 'acme-up'"),
            "{e}"
        );
        assert!(store.resellers().is_empty());
        let mut rest = full.clone();
        rest.resellers.clear();
        store.apply(&rest).unwrap();
        assert_eq!(
            lines(&store.apply(&resellers_only).unwrap()),
            ["+ reseller acme", "+ reseller globex"]
        );
    }

    /// export → to_toml → parse → apply into a fresh store reproduces the state exactly.
    #[test]
    fn export_round_trip() {
        let store = Store::open_temporary().unwrap();
        store.apply(&load_mappings(&[demo()]).unwrap()).unwrap();
        store
            .put_upstream_account(UpstreamAccount {
                name: "file-up".into(),
                login: "f@x".into(),
                password: PasswordSource::File("/run/secrets/f".into()),
            })
            .unwrap();
        store
            .put_plan(Plan {
                id: 7,
                upstream_id: 70,
                name: Some("Zero \"markup\"".into()),
                markup: Some(Markup::default()),
                addons: vec![Addon {
                    id: 1,
                    upstream_id: 2,
                }],
            })
            .unwrap();
        let exported = store.export();
        let text = exported.to_toml();
        assert!(!text.contains("demo-pw"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("export.toml");
        std::fs::write(&file, &text).unwrap();
        let set = load_mappings(&[file]).unwrap();
        let fresh = Store::open_temporary().unwrap();
        fresh.apply(&set).unwrap();
        assert_eq!(fresh.resellers(), store.resellers());
        assert_eq!(fresh.plans(), store.plans());
        assert_eq!(fresh.upstream_accounts(), store.upstream_accounts());
        assert_eq!(fresh.export(), exported);
        assert_eq!(store.apply(&set).unwrap(), vec![]);
    }

    /// A write is visible in the cache as soon as it returns.
    #[test]
    fn writes_visible_immediately() {
        let store = Store::open_temporary().unwrap();
        let handle = store.clone();
        assert_eq!(
            lines(&store.put_upstream_account(account("up")).unwrap()),
            ["+ upstream_account up"]
        );
        store.put_plan(plan(1)).unwrap();
        let r = Reseller {
            login: "r".into(),
            password_hash: "$argon2id$x".into(),
            upstream_account: "up".into(),
            plans: vec![1],
            markup: None,
        };
        store.put_reseller(r.clone()).unwrap();
        assert_eq!(handle.reseller("r").as_deref(), Some(&r));
        assert!(store.put_reseller(r.clone()).unwrap().is_empty());

        let e = store.delete_plan(1).unwrap_err().to_string();
        assert!(e.contains("plan 1 cannot be deleted: reseller 'r'"), "{e}");
        let e = store
            .put_reseller(Reseller {
                plans: vec![9],
                ..r.clone()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("plan 9"), "{e}");
        assert_eq!(
            store.delete_reseller("r").unwrap().unwrap().to_string(),
            "- reseller r"
        );
        assert!(handle.reseller("r").is_none());
        assert!(store.delete_reseller("r").unwrap().is_none());
        store.delete_plan(1).unwrap();
        store.delete_upstream_account("up").unwrap();
        assert!(handle.plans().is_empty() && handle.upstream_accounts().is_empty());
    }

    /// Everything written is there after the store is closed and opened again.
    #[test]
    fn reopen_sees_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/store");
        {
            let store = Store::open(&path).unwrap();
            store.apply(&load_mappings(&[demo()]).unwrap()).unwrap();
            store.put_plan(plan(5)).unwrap();
            store.delete_plan(5).unwrap();
            store.put_plan(plan(6)).unwrap();
            let e = Store::open(&path).unwrap_err().to_string();
            assert!(e.contains("in use by a running gateway"), "{e}");
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.plans().iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![6, 101, 102, 103]
        );
        assert_eq!(store.resellers().len(), 2);
        assert_eq!(store.upstream_accounts().len(), 2);
        assert_eq!(
            store.apply(&load_mappings(&[demo()]).unwrap()).unwrap(),
            vec![]
        );
    }

    /// The handle is shared across pingora's worker threads.
    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Store>();
    }

    /// A record with an unknown format version stops the open with a clear error.
    #[test]
    fn unknown_version_byte_is_clear() {
        let backend = SledBackend::temporary().unwrap();
        let mut bytes = codec::encode(&plan(3)).unwrap();
        bytes[0] = 42;
        backend
            .put(trees::PLANS, &3u64.to_be_bytes(), &bytes)
            .unwrap();
        let e = Store::with_backend(Box::new(backend))
            .unwrap_err()
            .to_string();
        assert!(e.contains("store tree 'plans', key '3'"), "{e}");
        assert!(e.contains("unknown value format version 42"), "{e}");
    }
}
