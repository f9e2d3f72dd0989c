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
//! The store as a whole has a format version ([`migrate`]), checked and brought up to
//! date when it is opened.
//!
//! - [`model`]    — the operator's records: upstream accounts, resellers, plans, markups.
//! - [`plan_index`] — plans indexed by upstream id and name, rebuilt per catalogue change.
//! - [`records`]  — writing them, one by one or as a [`Batch`], with the [`Change`]s made.
//! - [`edit`]     — one audited edit, conditioned on an entity tag (the admin API's).
//! - [`services`] — upstream certificates, their owner and history.
//! - [`orders`]   — exactly-once order records and their pending and failed indexes.
//! - [`ledger`]   — billable events and their CSV.
//! - [`audit`]    — the audit log of operator changes, written in the same batch as them.
//! - [`backend`], [`codec`], [`migrate`] — sled, value encoding, format versions.
//! - [`postgres`] — the PostgreSQL backend a fleet of gateways shares; other gateways'
//!   changes reach the caches through [`Backend::watch`] ([`Store::reload`]).
//!
//! The store knows neither the config nor the catalogue: mapping files become records in
//! `crate::config::mappings`, prices are computed in `crate::catalog::pricing`.

pub mod audit;
pub mod backend;
pub mod codec;
mod commit;
pub mod copy;
pub mod edit;
pub mod ledger;
pub mod migrate;
pub mod model;
pub mod orders;
mod pg_tls;
pub mod plan_index;
pub mod postgres;
pub mod records;
pub mod services;
pub mod sessions;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use dashmap::DashMap;

pub use audit::{Actor, AuditEntry, AuditFilter, Via};
pub use backend::{Backend, BackendError, BatchOp, Exclusive, Invalidation, SledBackend};
pub use codec::CodecError;
pub use commit::CommitStats;
pub use edit::Edit;
pub use model::{Addon, Markup, Plan, Reseller, UpstreamAccount};
pub use postgres::{PgBackend, PgOptions};
pub use records::{Batch, Change, ChangeOp, RecordKind};

/// Names of the trees. Keys: logins and names as UTF-8, ids as 8 big-endian bytes (so a
/// scan is in id order).
pub mod trees {
    /// [`Reseller`](super::Reseller) by login.
    pub const RESELLERS: &str = "resellers";
    /// [`UpstreamAccount`](super::UpstreamAccount) by name.
    pub const UPSTREAM_ACCOUNTS: &str = "upstream_accounts";
    /// [`Plan`](super::Plan) by local id.
    pub const PLANS: &str = "plans";
    /// Services, `(reseller, upstream certificate id)` ↔ `remoteid`.
    pub const SERVICES: &str = "services";
    /// Order records by `(reseller, remoteid)` — pending, then the stored answer.
    pub const ORDERS: &str = "orders";
    /// Index: the key of every pending order (values empty).
    pub const ORDERS_PENDING: &str = "orders_pending";
    /// Index: failed orders, by the time they failed (8 big-endian bytes) then their key.
    pub const ORDERS_FAILED: &str = "orders_failed";
    /// The audit log of admin changes, by time-ordered id ([`super::audit`]).
    pub const AUDIT: &str = "audit";
    /// The store's own facts: its format version ([`super::migrate`]).
    pub const META: &str = "meta";
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
    #[error(
        "the store has format {found}, newer than this build reads ({}); it was written by a \
         newer resellgate",
        migrate::FORMAT
    )]
    NewerFormat { found: u32 },
    #[error("{what} refers to {missing}, which does not exist")]
    MissingRef { what: String, missing: String },
    #[error("{what} cannot be deleted: {by} still uses it")]
    StillUsed { what: String, by: String },
    #[error("{what} was changed since it was read (If-Match does not match its ETag)")]
    Stale { what: String },
    #[error("there is no {what}")]
    NotFound { what: String },
    #[error("{what} exists already")]
    Exists { what: String },
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
    /// The last audit id written (read from the backend on first use).
    audit_last: Mutex<Option<u64>>,
    /// The group committer of [`Store::write_durable`] (sled; none on a shared backend).
    committer: std::sync::OnceLock<commit::Committer>,
    /// Bumped after every change of a cached reseller or plan ([`plan_index`]).
    catalog_generation: std::sync::atomic::AtomicU64,
    /// Plans indexed for the answer rewrites, rebuilt per catalogue generation.
    plan_indexes: plan_index::PlanIndexes,
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

/// Where a store lives (built from `[store]` by the caller; the store reads no config).
#[derive(Debug, Clone)]
pub enum Location {
    /// A sled directory and its page cache in MiB.
    Sled { path: PathBuf, cache_mb: u64 },
    /// A PostgreSQL database shared by a fleet of gateways.
    Postgres(PgOptions),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sled { path, .. } => write!(f, "sled:{}", path.display()),
            Location::Postgres(o) => f.write_str(&o.url),
        }
    }
}

impl Location {
    /// The backend at this location, opened (PostgreSQL: schema migrations applied).
    pub fn open_backend(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Location::Sled { path, cache_mb } => {
                Box::new(SledBackend::open_with_cache(path, *cache_mb)?)
            }
            Location::Postgres(options) => Box::new(PgBackend::open(options.clone())?),
        })
    }
}

impl Store {
    /// Opens the store at `location` and loads the caches.
    pub fn open_at(location: &Location) -> Result<Store, StoreError> {
        Store::with_backend(location.open_backend()?)
    }

    /// Opens (creating it if needed) the sled store at `path` and loads the caches.
    /// If another process holds the store, the error says a running gateway uses it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::with_backend(Box::new(SledBackend::open(path)?))
    }

    /// [`Store::open`] with sled's page cache bounded to `cache_mb` MiB (`[store] cache_mb`).
    pub fn open_with_cache(path: &Path, cache_mb: u64) -> Result<Store, StoreError> {
        Store::with_backend(Box::new(SledBackend::open_with_cache(path, cache_mb)?))
    }

    /// [`Store::open`] by a process that has just dropped its own handle of the store: sled's
    /// flusher thread lets go of the store's lock a moment after the last handle drops, so
    /// "in use" is retried for at most `wait`.
    pub fn open_when_free(path: &Path, wait: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Store::open(path) {
                Err(StoreError::Backend(BackendError::InUse { .. }))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                r => return r,
            }
        }
    }

    /// A store in a temporary sled database, gone when the last handle drops (tests).
    pub fn open_temporary() -> Result<Store, StoreError> {
        Store::with_backend(Box::new(SledBackend::temporary()?))
    }

    /// A store over any backend: brought to this build's format ([`migrate`]), then every
    /// record is read into the caches.
    pub fn with_backend(backend: Box<dyn Backend>) -> Result<Store, StoreError> {
        migrate::run(&*backend)?;
        let shared = Shared {
            backend,
            resellers: DashMap::new(),
            accounts: DashMap::new(),
            plans: DashMap::new(),
            writes: Mutex::new(()),
            audit_last: Mutex::new(None),
            committer: std::sync::OnceLock::new(),
            catalog_generation: std::sync::atomic::AtomicU64::new(1),
            plan_indexes: Default::default(),
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
        let watch = shared.backend.watch();
        let store = Store {
            shared: Arc::new(shared),
        };
        if !store.shared.backend.is_shared() {
            let committer =
                commit::Committer::start(Arc::downgrade(&store.shared)).map_err(|e| {
                    BackendError::Io {
                        op: "commit",
                        tree: "*".into(),
                        message: e.to_string(),
                    }
                })?;
            let _ = store.shared.committer.set(committer);
        }
        if let Some(rx) = watch {
            let weak = Arc::downgrade(&store.shared);
            std::thread::Builder::new()
                .name("resellgate-store-watch".into())
                .spawn(move || watch_changes(weak, rx))
                .map_err(|e| BackendError::Io {
                    op: "watch",
                    tree: "*".into(),
                    message: e.to_string(),
                })?;
        }
        Ok(store)
    }

    /// Reloads the cached record `key` of `tree` from the backend (another gateway changed
    /// it). Other trees are not cached: nothing to do.
    pub fn reload(&self, inv: &Invalidation) -> Result<(), StoreError> {
        reload(&self.shared, inv)
    }

    /// Work named `name` held by this process until the guard drops, or `None` when
    /// another process sharing the backend holds it ([`Backend::try_exclusive`]).
    pub fn try_exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        Ok(self.shared.backend.try_exclusive(name)?)
    }

    /// Runs `work` unless another process sharing the backend runs work named `name` now
    /// ([`Backend::try_exclusive`]); answers `None` then.
    pub fn exclusive<T>(
        &self,
        name: &str,
        work: impl FnOnce() -> T,
    ) -> Result<Option<T>, StoreError> {
        match self.shared.backend.try_exclusive(name)? {
            Some(guard) => {
                let r = work();
                drop(guard);
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    /// The backend, for copying a store ([`copy::copy`]).
    pub fn backend(&self) -> &dyn Backend {
        &*self.shared.backend
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data, so a panic while holding it leaves nothing torn.
        self.shared
            .writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The cached trees.
const CACHED: [&str; 3] = [trees::RESELLERS, trees::UPSTREAM_ACCOUNTS, trees::PLANS];

fn watch_changes(shared: Weak<Shared>, rx: std::sync::mpsc::Receiver<Invalidation>) {
    while let Ok(inv) = rx.recv() {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if inv == Invalidation::Reconnecting {
            tracing::warn!("store: lost the change feed; re-listening, then reloading");
            continue;
        }
        if let Err(e) = reload(&shared, &inv) {
            tracing::warn!(error = %e, "store: cannot reload a changed record");
        }
    }
}

fn reload(shared: &Shared, inv: &Invalidation) -> Result<(), StoreError> {
    match inv {
        Invalidation::Key(tree, key) => reload_key(shared, tree, key),
        Invalidation::Tree(tree) => reload_tree(shared, tree),
        Invalidation::All => CACHED.iter().try_for_each(|t| reload_tree(shared, t)),
        Invalidation::Reconnecting => Ok(()),
    }
}

fn reload_key(shared: &Shared, tree: &str, key: &[u8]) -> Result<(), StoreError> {
    let Some(tree) = CACHED.into_iter().find(|t| *t == tree) else {
        return Ok(());
    };
    // Read and cache under the write lock, so a local write cannot interleave.
    let _guard = shared.writes.lock().unwrap_or_else(|p| p.into_inner());
    let value = shared.backend.get(tree, key)?;
    cache_put(shared, tree, key, value.as_deref())
}

fn cache_put(
    shared: &Shared,
    tree: &'static str,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    match (tree, value) {
        (trees::RESELLERS, Some(v)) => {
            let r: Reseller = decode(tree, key, v)?;
            shared.resellers.insert(r.login.clone(), Arc::new(r));
        }
        (trees::RESELLERS, None) => {
            shared
                .resellers
                .remove(String::from_utf8_lossy(key).as_ref());
        }
        (trees::UPSTREAM_ACCOUNTS, Some(v)) => {
            let a: UpstreamAccount = decode(tree, key, v)?;
            shared.accounts.insert(a.name.clone(), Arc::new(a));
        }
        (trees::UPSTREAM_ACCOUNTS, None) => {
            shared
                .accounts
                .remove(String::from_utf8_lossy(key).as_ref());
        }
        (trees::PLANS, Some(v)) => {
            let p: Plan = decode(tree, key, v)?;
            shared.plans.insert(p.id, Arc::new(p));
        }
        (trees::PLANS, None) => {
            if let Ok(id) = <[u8; 8]>::try_from(key) {
                shared.plans.remove(&u64::from_be_bytes(id));
            }
        }
        _ => return Ok(()),
    }
    if tree != trees::UPSTREAM_ACCOUNTS {
        Store::bump_catalog(shared);
    }
    Ok(())
}

fn reload_tree(shared: &Shared, tree: &str) -> Result<(), StoreError> {
    let Some(tree) = CACHED.into_iter().find(|t| *t == tree) else {
        return Ok(());
    };
    let _guard = shared.writes.lock().unwrap_or_else(|p| p.into_inner());
    let rows = shared.backend.scan(tree)?;
    let keys: std::collections::HashSet<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
    for (k, v) in &rows {
        cache_put(shared, tree, k, Some(v))?;
    }
    let stale: Vec<Vec<u8>> = match tree {
        trees::RESELLERS => shared
            .resellers
            .iter()
            .map(|r| r.key().as_bytes().to_vec())
            .collect(),
        trees::UPSTREAM_ACCOUNTS => shared
            .accounts
            .iter()
            .map(|r| r.key().as_bytes().to_vec())
            .collect(),
        _ => shared
            .plans
            .iter()
            .map(|r| r.key().to_be_bytes().to_vec())
            .collect(),
    };
    for k in stale.into_iter().filter(|k| !keys.contains(k.as_slice())) {
        cache_put(shared, tree, &k, None)?;
    }
    Ok(())
}

pub(crate) fn encode<T: serde::Serialize>(
    value: &T,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Encode {
        what: what(),
        source,
    })
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
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

/// [`decode`] of a value's leading fields only ([`codec::decode_head`]).
pub(crate) fn decode_head<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    codec::decode_head(value).map_err(|source| StoreError::Decode {
        tree,
        key: key_text(tree, key),
        source,
    })
}

impl Store {
    /// Every record of `tree` (services, the ledger: records whose first field is a
    /// `u64` and second `owner`) that is `reseller`'s, all when `None`, in key order. Read
    /// one at a time ([`Backend::for_each`]), another reseller's passed over undecoded
    /// ([`codec::may_belong`]): memory holds the records answered, not the tree.
    pub(crate) fn records_of<T: serde::de::DeserializeOwned>(
        &self,
        tree: &'static str,
        reseller: Option<&str>,
        owner: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut failed = None;
        self.shared.backend.for_each(tree, &mut |k, v| {
            if reseller.is_some_and(|r| !codec::may_belong(v, r)) {
                return true;
            }
            match decode::<T>(tree, k, v) {
                Ok(rec) if reseller.is_none_or(|r| r == owner(&rec)) => out.push(rec),
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
            true
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

pub(crate) fn key_text(tree: &str, key: &[u8]) -> String {
    match <[u8; 8]>::try_from(key) {
        Ok(id) if tree == trees::PLANS => u64::from_be_bytes(id).to_string(),
        _ => String::from_utf8_lossy(key).into_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
