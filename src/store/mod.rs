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
//! - [`records`]  — writing them, one by one or as a [`Batch`], with the [`Change`]s made.
//! - [`edit`]     — one audited edit, conditioned on an entity tag (the admin API's).
//! - [`services`] — upstream certificates, their owner and history.
//! - [`orders`]   — exactly-once order records and their pending and failed indexes.
//! - [`ledger`]   — billable events and their CSV.
//! - [`audit`]    — the audit log of operator changes, written in the same batch as them.
//! - [`backend`], [`codec`], [`migrate`] — sled, value encoding, format versions.
//!
//! The store knows neither the config nor the catalogue: mapping files become records in
//! [`crate::config::mappings`], prices are computed in [`crate::catalog::pricing`].

pub mod audit;
pub mod backend;
pub mod codec;
pub mod edit;
pub mod ledger;
pub mod migrate;
pub mod model;
pub mod orders;
pub mod records;
pub mod services;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;

pub use audit::{Actor, AuditEntry, AuditFilter, Via};
pub use backend::{Backend, BackendError, BatchOp, SledBackend};
pub use codec::CodecError;
pub use edit::Edit;
pub use model::{Addon, Markup, Plan, Reseller, UpstreamAccount};
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data, so a panic while holding it leaves nothing torn.
        self.shared
            .writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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

pub(crate) fn key_text(tree: &str, key: &[u8]) -> String {
    match <[u8; 8]>::try_from(key) {
        Ok(id) if tree == trees::PLANS => u64::from_be_bytes(id).to_string(),
        _ => String::from_utf8_lossy(key).into_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
