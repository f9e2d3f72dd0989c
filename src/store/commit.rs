//! Group commit: concurrent durable writes share one flush.
//!
//! [`Store::write_durable`] runs a write and answers only once it is durable. On sled the
//! write is handed to one committer thread per store, which takes every write waiting,
//! runs them one after the other (each unflushed, under the store's write lock as it
//! needs), then calls [`Backend::flush`] once and answers them all with its outcome. While
//! one flush waits for the disk, the next writes queue up and form the next group, so the
//! number of flushes follows the disk, not the number of orders — with no window to tune
//! and no write acknowledged before the flush that covers it:
//!
//! - a write is answered `Ok` only after a flush that started after it was written;
//! - a flush that fails answers every write of its group with that store error (none is
//!   acknowledged), and the next group flushes again;
//! - a read-only job (a claim that found a stored answer to replay) also waits for its
//!   group's flush, so it never replays an answer an earlier write of the group has not
//!   made durable yet.
//!
//! A write nobody waits on for an answer (a ledger entry's cost read after the order was
//! answered: [`Store::write_durable_background`]) is durable the same way, but does not
//! start a flush of its own while foreground writes (claims, outcomes) keep coming: it
//! waits at most [`BACKGROUND_WAIT`] to join the next group, so under load it costs no
//! flush and no wake-up of the disk, and when idle it is flushed after that wait.
//! Writes that arrive while a group's writes run join that group (they are written
//! before its flush starts).
//!
//! The flushes happen on the committer thread, never on an async worker. On a shared
//! backend (PostgreSQL) every write is committed synchronously and `flush` is a no-op:
//! there is nothing to group, so a write runs on the blocking pool as before, and a
//! gateway's orders reach the database concurrently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{BackendError, Shared, Store, StoreError};

/// A write waiting for the committer: it runs on the committer thread and answers the
/// completion to call with its group's flush (`None` when it has answered already, with
/// its own error).
type Job = Box<dyn FnOnce(&Store) -> Option<Done> + Send>;
/// Called with the outcome of the flush that covers a job's write.
type Done = Box<dyn FnOnce(Result<(), &BackendError>) + Send>;

/// Jobs one group takes at most (bounds the time the first of them waits).
const MAX_GROUP: usize = 1024;

/// How long a background write waits for a foreground write to share a flush with
/// before it is flushed on its own.
pub(super) const BACKGROUND_WAIT: Duration = Duration::from_millis(5);

/// A job and whether a caller waits on it for an answer (foreground) or not.
struct Queued {
    job: Job,
    background: bool,
}

/// The sending half of a store's committer; the thread ends when the store drops.
pub(super) struct Committer {
    tx: mpsc::Sender<Queued>,
    stats: Arc<Counters>,
}

/// What the committer has done so far ([`Store::commit_stats`]; `/metrics`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Flushes made (one per group).
    pub flushes: u64,
    /// Writes made durable by them (acknowledged or not).
    pub writes: u64,
    /// Flushes that failed (every write of their group answered the error).
    pub failed_flushes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    flushes: AtomicU64,
    writes: AtomicU64,
    failed_flushes: AtomicU64,
}

impl Committer {
    /// Starts the committer thread of the store behind `shared` (held weakly, so the
    /// thread keeps neither the store nor its lock alive).
    pub(super) fn start(shared: Weak<Shared>) -> std::io::Result<Committer> {
        let (tx, rx) = mpsc::channel::<Queued>();
        let stats = Arc::new(Counters::default());
        let counters = stats.clone();
        std::thread::Builder::new()
            .name("resellgate-commit".into())
            .spawn(move || run(shared, rx, &counters))?;
        Ok(Committer { tx, stats })
    }
}

fn run(shared: Weak<Shared>, rx: mpsc::Receiver<Queued>, stats: &Counters) {
    // Background jobs waiting for a foreground one, and since when the oldest waits.
    let mut background: Vec<Job> = Vec::new();
    let mut since: Option<Instant> = None;
    let mut open = true;
    while open || !background.is_empty() {
        let mut group: Vec<Job> = Vec::new();
        let first = match since {
            None => rx.recv().ok(),
            Some(t) => {
                let left = (t + BACKGROUND_WAIT).saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(q) => Some(q),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            }
        };
        match first {
            Some(q) if q.background => {
                background.push(q.job);
                since.get_or_insert_with(Instant::now);
                if background.len() < MAX_GROUP {
                    continue; // wait for a foreground job (or the end of the wait)
                }
            }
            Some(q) => group.push(q.job),
            None if since.is_none() => return, // closed, nothing waiting
            None => {}                         // the wait is over (or closed): flush them
        }
        take_waiting(&rx, &mut group, &mut background);
        group.append(&mut background);
        since = None;
        let Some(shared) = shared.upgrade() else {
            return; // the store is gone: dropping the jobs answers their callers an error
        };
        let store = Store { shared };
        let mut waiting: Vec<Done> = Vec::new();
        // Jobs that came while the group ran join it: written before its flush starts.
        while !group.is_empty() {
            waiting.extend(group.drain(..).filter_map(|job| run_job(job, &store)));
            if waiting.len() < MAX_GROUP {
                take_waiting(&rx, &mut group, &mut background);
                group.append(&mut background);
            }
        }
        if waiting.is_empty() {
            continue;
        }
        let flushed = store.shared.backend.flush();
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(waiting.len() as u64, Ordering::Relaxed);
        if let Err(e) = &flushed {
            stats.failed_flushes.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, writes = waiting.len(), "store flush failed: none of its writes is acknowledged");
        }
        for done in waiting {
            done(flushed.as_ref().map(|_| ()));
        }
    }
}

/// Moves every job waiting in `rx` (up to [`MAX_GROUP`] in all) to `group` or
/// `background`.
fn take_waiting(rx: &mpsc::Receiver<Queued>, group: &mut Vec<Job>, background: &mut Vec<Job>) {
    while group.len() + background.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(q) if q.background => background.push(q.job),
            Ok(q) => group.push(q.job),
            Err(_) => break,
        }
    }
}

/// Runs one job; a job that panics drops its answer: its caller gets an error, the
/// others go on.
fn run_job(job: Job, store: &Store) -> Option<Done> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(store)))
        .ok()
        .flatten()
}

impl BackendError {
    /// The same error again, for each write of a group whose flush failed.
    fn duplicate(&self) -> BackendError {
        match self {
            BackendError::InUse { path } => BackendError::InUse { path: path.clone() },
            BackendError::Open { path, message } => BackendError::Open {
                path: path.clone(),
                message: message.clone(),
            },
            BackendError::Io { op, tree, message } => BackendError::Io {
                op,
                tree: tree.clone(),
                message: message.clone(),
            },
        }
    }
}

impl Store {
    /// The group committer's counters (`None` on a shared backend, which has none).
    pub fn commit_stats(&self) -> Option<CommitStats> {
        let c = &self.shared.committer.get()?.stats;
        Some(CommitStats {
            flushes: c.flushes.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            failed_flushes: c.failed_flushes.load(Ordering::Relaxed),
        })
    }

    /// Runs `write` (writes without a flush, taking the write lock as they need) and
    /// answers its result once it is durable: on sled after the committer's next flush,
    /// shared with every write waiting with it (see the module doc); on a shared backend
    /// on the blocking pool, flushed on its own. A failed flush answers its error.
    pub async fn write_durable<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_durable_as(write, false).await
    }

    /// [`Store::write_durable`] for a write no caller waits on (work after an answer): as
    /// durable when it answers, but on sled it starts no flush of its own while
    /// foreground writes come; it joins the next group within 5 ms (`BACKGROUND_WAIT`).
    pub async fn write_durable_background<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_durable_as(write, true).await
    }

    async fn write_durable_as<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        background: bool,
    ) -> Result<T, StoreError> {
        let Some(committer) = self.shared.committer.get() else {
            let store = self.clone();
            return tokio::task::spawn_blocking(move || {
                let v = write(&store)?;
                store.shared.backend.flush()?;
                Ok(v)
            })
            .await
            .map_err(|e| gone(&e.to_string()))?;
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |store: &Store| match write(store) {
            Err(e) => {
                let _ = tx.send(Err(e));
                None
            }
            Ok(v) => Some(Box::new(move |flushed: Result<(), &BackendError>| {
                let _ = tx.send(
                    flushed
                        .map(|()| v)
                        .map_err(|e| StoreError::Backend(e.duplicate())),
                );
            })),
        });
        committer
            .tx
            .send(Queued { job, background })
            .map_err(|_| gone("the committer has stopped"))?;
        rx.await
            .map_err(|_| gone("the committer stopped before the write was durable"))?
    }
}

fn gone(message: &str) -> StoreError {
    StoreError::Backend(BackendError::Io {
        op: "flush",
        tree: "*".into(),
        message: message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::backend::{Backend, SledBackend};
    use crate::store::orders::{order_key, Claim, OrderRecord, OrderState};
    use crate::store::trees;

    /// sled, remembering which order keys each flush made durable; a flush takes
    /// `FLUSH_MS` (so claims pile up behind it) and fails while `fail` is set.
    struct Recording {
        sled: SledBackend,
        state: Arc<Seen>,
    }

    #[derive(Default)]
    struct Seen {
        written: Mutex<HashSet<Vec<u8>>>,
        durable: Mutex<HashSet<Vec<u8>>>,
        flushes: AtomicUsize,
        fail: AtomicBool,
    }

    const FLUSH_MS: u64 = 20;

    impl Backend for Recording {
        fn get(&self, t: &str, k: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
            self.sled.get(t, k)
        }
        fn put(&self, t: &str, k: &[u8], v: &[u8]) -> Result<(), BackendError> {
            self.sled.put(t, k, v)
        }
        fn delete(&self, t: &str, k: &[u8]) -> Result<bool, BackendError> {
            self.sled.delete(t, k)
        }
        fn scan(&self, t: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, BackendError> {
            self.sled.scan(t)
        }
        fn compare_and_swap(
            &self,
            t: &str,
            k: &[u8],
            o: Option<&[u8]>,
            n: Option<&[u8]>,
        ) -> Result<Result<(), Option<Vec<u8>>>, BackendError> {
            let r = self.sled.compare_and_swap(t, k, o, n)?;
            if t == trees::ORDERS && r.is_ok() {
                self.state.written.lock().unwrap().insert(k.to_vec());
            }
            Ok(r)
        }
        fn flush(&self) -> Result<(), BackendError> {
            // What was written before the flush started is what it makes durable.
            let written = self.state.written.lock().unwrap().clone();
            std::thread::sleep(std::time::Duration::from_millis(FLUSH_MS));
            self.state.flushes.fetch_add(1, Ordering::SeqCst);
            if self.state.fail.load(Ordering::SeqCst) {
                return Err(BackendError::Io {
                    op: "flush",
                    tree: "*".into(),
                    message: "disk full".into(),
                });
            }
            self.sled.flush()?;
            self.state.durable.lock().unwrap().extend(written);
            Ok(())
        }
        fn tree_names(&self) -> Result<Vec<String>, BackendError> {
            self.sled.tree_names()
        }
    }

    fn recording_store() -> (Store, Arc<Seen>) {
        let state = Arc::new(Seen::default());
        let backend = Recording {
            sled: SledBackend::temporary().unwrap(),
            state: state.clone(),
        };
        let store = Store::with_backend(Box::new(backend)).unwrap();
        state.flushes.store(0, Ordering::SeqCst); // opening flushes too
        (store, state)
    }

    fn rec(remoteid: &str) -> OrderRecord {
        OrderRecord {
            reseller: "acme".into(),
            remoteid: remoteid.into(),
            params_hash: vec![1],
            plan: None,
            period: None,
            claimed_at_ms: 1_000,
            updated_at_ms: 1_000,
            state: OrderState::Pending,
        }
    }

    /// Claim `n` orders at once; answers each claim's outcome with whether its record was
    /// durable at the moment the claim was answered.
    async fn claim_many(store: &Store, seen: &Arc<Seen>, n: usize) -> Vec<(Claim, bool)> {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (store, seen) = (store.clone(), seen.clone());
                tokio::spawn(async move {
                    let r = rec(&format!("o{i}"));
                    let k = order_key(&r.reseller, &r.remoteid);
                    let claim = store.claim_order_durable(r).await;
                    let durable = seen.durable.lock().unwrap().contains(&k);
                    claim.map(|c| (c, durable))
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(c) => out.push(c),
                Err(e) => panic!("claim failed: {e}"),
            }
        }
        out
    }

    /// Concurrent claims share flushes, and every one acknowledged is durable when it is
    /// acknowledged (a flush that started after its write covered it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_share_a_flush_and_are_durable_when_acknowledged() {
        let (store, seen) = recording_store();
        let n = 64;
        let claims = claim_many(&store, &seen, n).await;
        assert_eq!(claims.len(), n);
        for (claim, durable) in &claims {
            assert!(matches!(claim, Claim::Claimed), "{claim:?}");
            assert!(durable, "a claim was acknowledged before its flush");
        }
        let flushes = seen.flushes.load(Ordering::SeqCst);
        assert!(
            flushes < n / 4,
            "{flushes} flushes for {n} concurrent claims"
        );
        let stats = store.commit_stats().unwrap();
        assert_eq!((stats.flushes, stats.writes), (flushes as u64, n as u64));
        // A replay waits for a flush too, and answers what is stored.
        let again = store.claim_order_durable(rec("o0")).await.unwrap();
        assert!(matches!(again, Claim::Pending(_)), "{again:?}");
    }

    /// A failed flush fails every write of its group with the store's error: none is
    /// acknowledged. The next group flushes again and is acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_flush_fails_every_write_of_its_group() {
        let (store, seen) = recording_store();
        seen.fail.store(true, Ordering::SeqCst);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.claim_order_durable(rec(&format!("f{i}"))).await })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                Err(e) => assert!(e.to_string().contains("disk full"), "{e}"),
                Ok(c) => panic!("acknowledged although its flush failed: {c:?}"),
            }
        }
        assert!(seen.durable.lock().unwrap().is_empty());
        let stats = store.commit_stats().unwrap();
        assert!(stats.failed_flushes >= 1 && stats.failed_flushes == stats.flushes);
        seen.fail.store(false, Ordering::SeqCst);
        let ok = store.claim_order_durable(rec("g")).await.unwrap();
        assert!(matches!(ok, Claim::Claimed), "{ok:?}");
        assert!(seen
            .durable
            .lock()
            .unwrap()
            .contains(&order_key("acme", "g")));
    }

    /// A background write alone is flushed once [`BACKGROUND_WAIT`] is over, and is
    /// durable when it answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_background_write_alone_is_flushed_after_its_wait() {
        let (store, seen) = recording_store();
        let r = rec("bg");
        let k = order_key(&r.reseller, &r.remoteid);
        let started = std::time::Instant::now();
        let claim = store
            .write_durable_background(move |s| s.claim_order_unflushed(&r))
            .await
            .unwrap();
        assert!(matches!(claim, Claim::Claimed), "{claim:?}");
        assert!(started.elapsed() >= BACKGROUND_WAIT);
        assert!(seen.durable.lock().unwrap().contains(&k));
        let stats = store.commit_stats().unwrap();
        assert_eq!((stats.flushes, stats.writes), (1, 1));
    }

    /// A background write sent just before a foreground one waits for it and shares its
    /// flush: one flush for both, both durable when answered. Background writes alone
    /// (no foreground) make one flush, not one each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_writes_share_the_next_foreground_flush() {
        let (store, seen) = recording_store();
        let (bg, fg) = (rec("bg"), rec("fg"));
        let keys = [
            order_key(&bg.reseller, &bg.remoteid),
            order_key(&fg.reseller, &fg.remoteid),
        ];
        // Polled in one go: both are queued before the committer has waited long.
        let (b, f) = tokio::join!(
            store.write_durable_background(move |s| s.claim_order_unflushed(&bg)),
            store.claim_order_durable(fg),
        );
        assert!(matches!(b.unwrap(), Claim::Claimed));
        assert!(matches!(f.unwrap(), Claim::Claimed));
        for k in &keys {
            assert!(seen.durable.lock().unwrap().contains(k));
        }
        let stats = store.commit_stats().unwrap();
        assert_eq!((stats.flushes, stats.writes), (1, 2));
        let many: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let r = rec(&format!("b{i}"));
                    store
                        .write_durable_background(move |s| s.claim_order_unflushed(&r))
                        .await
                })
            })
            .collect();
        for t in many {
            assert!(matches!(t.await.unwrap().unwrap(), Claim::Claimed));
        }
        let after = store.commit_stats().unwrap();
        assert_eq!(after.writes, 10);
        assert!(
            after.flushes <= 3,
            "{} flushes for 8 background writes",
            after.flushes
        );
    }

    /// A write's own error is answered without waiting, and does not stop the others.
    #[tokio::test]
    async fn a_failing_write_answers_its_own_error() {
        let (store, _) = recording_store();
        let e = store
            .write_durable(|_| -> Result<(), StoreError> {
                Err(StoreError::NotFound { what: "x".into() })
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
        let e = store
            .write_durable(|_| -> Result<(), StoreError> { panic!("a bug") })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("stopped before"), "{e}");
        assert!(matches!(
            store.claim_order_durable(rec("after")).await.unwrap(),
            Claim::Claimed
        ));
    }
}
