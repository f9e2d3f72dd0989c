//! The storage interface the [`Store`](super::Store) is written against, and its sled
//! implementation. The PostgreSQL backend for gateway fleets ([`super::postgres`]) implements
//! the same trait; nothing outside `store/` touches sled or PostgreSQL.
//!
//! The model is a set of named trees (tables) of byte keys and byte values. Calls block:
//! from async code, run them in `spawn_blocking` (sled's `flush` waits for the disk).

use std::path::{Path, PathBuf};

use dashmap::DashMap;

/// Why the storage layer failed. Never carries a stored value.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "the store at '{}' is in use by a running gateway (its lock is held); stop that gateway, \
         or point [store] path elsewhere",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error("cannot open the store at '{}': {message}", path.display())]
    Open { path: PathBuf, message: String },
    #[error("store {op} on '{tree}' failed: {message}")]
    Io {
        op: &'static str,
        tree: String,
        message: String,
    },
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// Named trees of byte keys and values. Writes are durable only after [`Backend::flush`].
pub trait Backend: Send + Sync + 'static {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key`; answers whether it was there.
    fn delete(&self, tree: &str, key: &[u8]) -> Result<bool>;
    /// Every pair of `tree`, in key order.
    fn scan(&self, tree: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Sets `key` to `new` (`None` deletes) if its value is `old` (`None`: absent).
    /// `Ok(Err(current))` when it was not.
    fn compare_and_swap(
        &self,
        tree: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<()>;

    /// The names of the trees that hold anything (or were opened), sorted.
    fn tree_names(&self) -> Result<Vec<String>>;

    /// Applies every operation of `ops` as one write: a backend that can (sled, a SQL
    /// transaction) makes them all visible together or none of them. The default applies
    /// them in order. Durable only after [`Backend::flush`].
    fn write_batch(&self, ops: &[BatchOp]) -> Result<()> {
        for op in ops {
            match op {
                BatchOp::Put { tree, key, value } => self.put(tree, key, value)?,
                BatchOp::Delete { tree, key } => {
                    self.delete(tree, key)?;
                }
            }
        }
        Ok(())
    }

    /// Calls `f` with every pair of `tree` in key order until it answers `false`, without
    /// holding the tree in memory: a filter over a large tree (one reseller's services
    /// among a million). The default scans the tree.
    fn for_each(&self, tree: &str, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for (k, v) in self.scan(tree)? {
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// The values of `keys` in `tree`, in the order of `keys` (a bulk read such as
    /// `services import`, where a read per key would cost a round trip each). The default
    /// reads them one by one.
    fn get_many(&self, tree: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(tree, k)).collect()
    }

    /// Puts every pair of `pairs` into `tree` as one write where the backend can (one sled
    /// batch, one SQL statement): a bulk load such as `store copy`, where a write per pair
    /// would cost a round trip and a commit each. The default puts them one by one.
    /// Durable only after [`Backend::flush`].
    fn put_all(&self, tree: &str, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        for (k, v) in pairs {
            self.put(tree, k, v)?;
        }
        Ok(())
    }

    /// The first `limit` pairs of `tree` in key order (a bounded read of its head). The
    /// default scans the tree.
    fn first(&self, tree: &str, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = self.scan(tree)?;
        all.truncate(limit);
        Ok(all)
    }

    /// The pair with the greatest key of `tree`, if any. The default scans the tree.
    fn last(&self, tree: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.scan(tree)?.pop())
    }

    /// Whether other processes (gateways of a fleet) share this backend.
    fn is_shared(&self) -> bool {
        false
    }

    /// Changes made by other processes sharing this backend, for the caches to reload.
    /// `None` (sled): nobody else writes.
    fn watch(&self) -> Option<std::sync::mpsc::Receiver<Invalidation>> {
        None
    }

    /// Work named `name` that one process sharing the backend does at a time (a
    /// reconciliation pass): `Some(guard)` when this process may go ahead, until the guard
    /// drops; `None` when another holds it. sled is never shared, so it always may.
    fn try_exclusive(&self, _name: &str) -> Result<Option<Exclusive>> {
        Ok(Some(Exclusive::new(())))
    }
}

/// A change another process made, as announced by [`Backend::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One key of one tree changed.
    Key(String, Vec<u8>),
    /// Anything in the tree may have changed.
    Tree(String),
    /// Anything may have changed (the watch (re)started).
    All,
    /// The watch broke and is being re-opened; changes meanwhile come as [`Invalidation::All`].
    Reconnecting,
}

/// Held while a process does work named in [`Backend::try_exclusive`]; dropping it lets
/// another process take it.
pub struct Exclusive {
    _held: Box<dyn Send>,
}

impl Exclusive {
    pub fn new(held: impl Send + 'static) -> Exclusive {
        Exclusive {
            _held: Box::new(held),
        }
    }
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exclusive")
    }
}

/// One operation of a [`Backend::write_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put {
        tree: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        tree: &'static str,
        key: Vec<u8>,
    },
}

impl BatchOp {
    fn tree(&self) -> &'static str {
        match self {
            BatchOp::Put { tree, .. } | BatchOp::Delete { tree, .. } => tree,
        }
    }
}

/// sled 0.34: one database directory, trees opened on first use and cached.
pub struct SledBackend {
    db: sled::Db,
    trees: DashMap<String, sled::Tree>,
}

/// sled's page cache unless configured (`[store] cache_mb`); sled's own default is 1 GiB.
pub const DEFAULT_CACHE_MB: u64 = 16;

impl SledBackend {
    /// Opens (creating directories as needed) the database at `path`, with the default
    /// page cache.
    pub fn open(path: &Path) -> Result<SledBackend> {
        SledBackend::open_with_cache(path, DEFAULT_CACHE_MB)
    }

    /// Opens the database at `path` with a page cache of at most `cache_mb` MiB.
    pub fn open_with_cache(path: &Path, cache_mb: u64) -> Result<SledBackend> {
        std::fs::create_dir_all(path).map_err(|e| BackendError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .open()
            .map_err(|e| open_error(path, e))?;
        Ok(SledBackend {
            db,
            trees: DashMap::new(),
        })
    }

    /// A database in a temporary directory, removed when dropped (tests).
    pub fn temporary() -> Result<SledBackend> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(DEFAULT_CACHE_MB * 1024 * 1024)
            .open()
            .map_err(|e| open_error(Path::new("<temporary>"), e))?;
        Ok(SledBackend {
            db,
            trees: DashMap::new(),
        })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree> {
        if let Some(t) = self.trees.get(name) {
            return Ok(t.clone());
        }
        let t = self.db.open_tree(name).map_err(|e| io("open", name, e))?;
        self.trees.insert(name.to_string(), t.clone());
        Ok(t)
    }
}

fn open_error(path: &Path, e: sled::Error) -> BackendError {
    let message = e.to_string();
    // sled reports a held lock as a plain io error "could not acquire lock on …".
    if message.contains("could not acquire lock") {
        BackendError::InUse {
            path: path.to_path_buf(),
        }
    } else {
        BackendError::Open {
            path: path.to_path_buf(),
            message,
        }
    }
}

fn io(op: &'static str, tree: &str, e: sled::Error) -> BackendError {
    BackendError::Io {
        op,
        tree: tree.to_string(),
        message: e.to_string(),
    }
}

impl Backend for SledBackend {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = self.tree(tree)?.get(key).map_err(|e| io("get", tree, e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree(tree)?
            .insert(key, value)
            .map_err(|e| io("put", tree, e))?;
        Ok(())
    }

    fn delete(&self, tree: &str, key: &[u8]) -> Result<bool> {
        let old = self
            .tree(tree)?
            .remove(key)
            .map_err(|e| io("delete", tree, e))?;
        Ok(old.is_some())
    }

    fn scan(&self, tree: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree(tree)?
            .iter()
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| io("scan", tree, e))
            })
            .collect()
    }

    fn compare_and_swap(
        &self,
        tree: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>> {
        let r = self
            .tree(tree)?
            .compare_and_swap(key, old, new.map(sled::IVec::from))
            .map_err(|e| io("compare_and_swap", tree, e))?;
        Ok(r.map_err(|cas| cas.current.map(|v| v.to_vec())))
    }

    fn tree_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .db
            .tree_names()
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .filter(|n| n != "__sled__default")
            .collect();
        names.sort();
        Ok(names)
    }

    fn for_each(&self, tree: &str, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for pair in self.tree(tree)?.iter() {
            let (k, v) = pair.map_err(|e| io("scan", tree, e))?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn put_all(&self, tree: &str, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in pairs {
            batch.insert(k.as_slice(), v.as_slice());
        }
        self.tree(tree)?
            .apply_batch(batch)
            .map_err(|e| io("put_all", tree, e))
    }

    fn write_batch(&self, ops: &[BatchOp]) -> Result<()> {
        if ops.is_empty() {
            return Ok(()); // sled's transaction over no tree panics
        }
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let mut names: Vec<&'static str> = ops.iter().map(BatchOp::tree).collect();
        names.sort_unstable();
        names.dedup();
        let trees = names
            .iter()
            .map(|n| self.tree(n))
            .collect::<Result<Vec<sled::Tree>>>()?;
        let refs: Vec<&sled::Tree> = trees.iter().collect();
        let at = |tree: &str| names.iter().position(|n| *n == tree).unwrap_or(0);
        let r: std::result::Result<(), TransactionError<()>> = refs.as_slice().transaction(|tx| {
            for op in ops {
                match op {
                    BatchOp::Put { tree, key, value } => {
                        tx[at(tree)].insert(key.as_slice(), value.as_slice())?;
                    }
                    BatchOp::Delete { tree, key } => {
                        tx[at(tree)].remove(key.as_slice())?;
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        r.map_err(|e| BackendError::Io {
            op: "write_batch",
            tree: names.join(","),
            message: match e {
                TransactionError::Abort(()) => "aborted".to_string(),
                TransactionError::Storage(e) => e.to_string(),
            },
        })
    }

    fn first(&self, tree: &str, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree(tree)?
            .iter()
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| io("first", tree, e))
            })
            .collect()
    }

    fn last(&self, tree: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let v = self.tree(tree)?.last().map_err(|e| io("last", tree, e))?;
        Ok(v.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn flush(&self) -> Result<()> {
        // Trees share the database's log, so one flush covers them all.
        self.db.flush().map_err(|e| io("flush", "*", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_basic_operations() {
        let b = SledBackend::temporary().unwrap();
        assert_eq!(b.get("t", b"k").unwrap(), None);
        b.put("t", b"k", b"v").unwrap();
        b.put("t", b"a", b"1").unwrap();
        b.put("other", b"k", b"x").unwrap();
        assert_eq!(b.get("t", b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(
            b.scan("t").unwrap(),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"k".to_vec(), b"v".to_vec())
            ]
        );
        assert!(b.delete("t", b"a").unwrap());
        assert!(!b.delete("t", b"a").unwrap());
        b.flush().unwrap();
    }

    #[test]
    fn sled_compare_and_swap() {
        let b = SledBackend::temporary().unwrap();
        assert_eq!(
            b.compare_and_swap("t", b"k", None, Some(b"1")).unwrap(),
            Ok(())
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", None, Some(b"2")).unwrap(),
            Err(Some(b"1".to_vec()))
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", Some(b"1"), Some(b"2"))
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", Some(b"2"), None).unwrap(),
            Ok(())
        );
        assert_eq!(b.get("t", b"k").unwrap(), None);
    }

    #[test]
    fn sled_write_batch_spans_trees() {
        let b = SledBackend::temporary().unwrap();
        b.put("a", b"gone", b"x").unwrap();
        b.write_batch(&[
            BatchOp::Put {
                tree: "a",
                key: b"k".to_vec(),
                value: b"1".to_vec(),
            },
            BatchOp::Put {
                tree: "b",
                key: b"k".to_vec(),
                value: b"2".to_vec(),
            },
            BatchOp::Delete {
                tree: "a",
                key: b"gone".to_vec(),
            },
        ])
        .unwrap();
        assert_eq!(b.get("a", b"k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(b.get("b", b"k").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(b.get("a", b"gone").unwrap(), None);
        assert_eq!(b.last("a").unwrap(), Some((b"k".to_vec(), b"1".to_vec())));
        assert_eq!(b.last("empty").unwrap(), None);
    }

    #[test]
    fn second_open_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledBackend::open(dir.path()).unwrap();
        match SledBackend::open(dir.path()) {
            Err(e @ BackendError::InUse { .. }) => {
                assert!(e.to_string().contains("in use by a running gateway"), "{e}")
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("opened twice"),
        }
    }
}
