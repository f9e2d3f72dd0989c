//! The PostgreSQL backend: the store's trees as rows of one table, shared by a fleet of
//! gateways (`[store] url = "postgres://…"`).
//!
//! - **Client**: `tokio-postgres` on a small runtime of its own (one worker thread), so the
//!   [`Backend`] trait stays synchronous: a call sends its query to that runtime and waits on
//!   a channel, never longer than the store timeout. It may be called from any thread (the
//!   gateway calls the store from `spawn_blocking`); it never starts or blocks a runtime of
//!   the caller's.
//! - **Connections**: a few pipelined connections, used round-robin, each re-opened on the
//!   next call after it broke (a restarted server is picked up by itself).
//! - **Durability**: every write is one statement, committed before it returns
//!   (`synchronous_commit = on`), so [`Backend::flush`] has nothing left to do.
//! - **Atomicity across gateways**: [`Backend::compare_and_swap`] is one conditional statement
//!   (`INSERT … ON CONFLICT DO NOTHING`, `UPDATE … WHERE value = old`): two gateways claiming
//!   the same order key race in the database, and one wins.
//! - **Schema**: versioned SQL files in `migrations/postgres/`, applied in order under an
//!   advisory lock ([`PgBackend::migrate`]), recorded in `resellgate_schema`.
//! - **Changes**: a trigger announces every change to a cached record on channel
//!   `resellgate_changes`; [`Backend::watch`] listens on a connection of its own.
//! - **Exclusive work**: [`Backend::try_exclusive`] takes a session advisory lock on a
//!   connection of its own; the lock goes with the guard (or with a crashed gateway's session).

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

use super::backend::{Backend, BackendError, Exclusive, Invalidation, Result};

/// The SQL migrations, in the order they are applied. A file is never edited once
/// released: a change is a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "0001_kv",
    include_str!("../../migrations/postgres/0001_kv.sql"),
)];

/// The notification channel of changes to cached records.
pub const CHANNEL: &str = "resellgate_changes";

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user@host[:port]/database[?sslmode=disable]`, without a password.
    pub url: String,
    /// The password (from the environment), if the server asks for one.
    pub password: Option<crate::secret::Secret>,
    /// Every call answers (or fails) within this time; also the connect timeout.
    pub timeout: Duration,
    /// Pipelined connections for ordinary calls.
    pub connections: usize,
    /// PEM CA certificates to verify the server with under `sslmode=require` (system roots
    /// when `None`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("connections", &self.connections)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Checks a `[store] url`: a PostgreSQL URL tokio-postgres accepts, without a password
/// (the password comes from the environment). Answers why not.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// (or postgresql://)".into());
    }
    let config = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
    if config.get_password().is_some() {
        return Err(
            "must not contain a password: name the environment variable holding it in \
             store.password_env"
                .into(),
        );
    }
    if config
        .get_hosts()
        .iter()
        .any(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)))
    {
        return Err("must name a TCP host (not a Unix socket directory)".into());
    }
    Ok(())
}

struct Conn {
    client: Client,
    get: Statement,
    put: Statement,
    delete: Statement,
    scan: Statement,
    insert_new: Statement,
    update_if: Statement,
    delete_if: Statement,
    batch: Statement,
    last: Statement,
    first: Statement,
    get_many: Statement,
    scan_after: Statement,
}

/// PostgreSQL behind the [`Backend`] trait.
pub struct PgBackend {
    rt: Option<tokio::runtime::Runtime>,
    options: PgOptions,
    config: Connector,
    slots: Arc<Vec<Mutex<Option<Arc<Conn>>>>>,
    next: AtomicUsize,
}

const TABLE: &str = "resellgate_kv";

fn io(op: &'static str, tree: &str, message: impl Into<String>) -> BackendError {
    BackendError::Io {
        op,
        tree: tree.to_string(),
        message: message.into(),
    }
}

/// Rows of `SELECT key, value …` as pairs.
fn pairs<C: FromIterator<(Vec<u8>, Vec<u8>)>>(rows: Vec<tokio_postgres::Row>) -> C {
    rows.into_iter()
        .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
        .collect()
}

/// A tokio-postgres error with its cause (the server's message), never a parameter.
fn pg_message(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("PostgreSQL: {e}: {source}"),
        None => format!("PostgreSQL: {e}"),
    }
}

impl PgBackend {
    /// Connects (one connection, to fail early on a wrong URL or password) and applies the
    /// schema migrations.
    pub fn open(options: PgOptions) -> Result<PgBackend> {
        check_url(&options.url).map_err(|why| BackendError::Open {
            path: options.url.clone().into(),
            message: why,
        })?;
        let mut config =
            tokio_postgres::Config::from_str(&options.url).map_err(|e| BackendError::Open {
                path: options.url.clone().into(),
                message: e.to_string(),
            })?;
        if let Some(p) = &options.password {
            config.password(p.expose());
        }
        config
            .connect_timeout(options.timeout)
            .application_name("resellgate")
            .options("-c synchronous_commit=on");
        // TLS only when asked for (`sslmode=require`), and then verified; `prefer` (the
        // URL default) and `disable` connect in the clear, as they say.
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => Some(
                super::pg_tls::MakeRustls::new(options.ca_file.as_deref()).map_err(|why| {
                    BackendError::Open {
                        path: options.url.clone().into(),
                        message: format!("TLS: {why}"),
                    }
                })?,
            ),
            _ => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
        };
        let config = Connector { config, tls };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("resellgate-pg")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Open {
                path: options.url.clone().into(),
                message: format!("cannot start the PostgreSQL client's runtime: {e}"),
            })?;
        let slots = Arc::new(
            (0..options.connections.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
        );
        let backend = PgBackend {
            rt: Some(rt),
            options,
            config,
            slots,
            next: AtomicUsize::new(0),
        };
        backend.migrate().map_err(|e| BackendError::Open {
            path: backend.options.url.clone().into(),
            message: e.to_string(),
        })?;
        Ok(backend)
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        // Present until drop.
        self.rt.as_ref().map(|rt| rt.handle()).expect("runtime")
    }

    /// Runs `fut` on the client's runtime and waits for it, at most the store timeout.
    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        tree: &str,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let timeout = self.options.timeout;
        self.handle().spawn(async move {
            let r = match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(io(op, "*", "PostgreSQL did not answer in time")),
            };
            let _ = tx.send(r);
        });
        match rx.recv_timeout(timeout + Duration::from_millis(200)) {
            Ok(r) => r.map_err(|e| match e {
                BackendError::Io { op, message, .. } => io(op, tree, message),
                e => e,
            }),
            Err(_) => Err(io(
                op,
                tree,
                format!(
                    "PostgreSQL did not answer within {} ms",
                    timeout.as_millis()
                ),
            )),
        }
    }

    /// Runs `f` on a live connection of the pool (opened now if its slot is empty or
    /// broken); when that connection turns out broken (the database restarted since its
    /// last use), once more on a new one — all of it within one store timeout. A retried
    /// write may have been applied the first time: every write here is a put, a delete or
    /// a compare-and-swap, whose repeat changes nothing more (a compare-and-swap then
    /// reports the value it wrote itself as the current one).
    fn call<T, F, Fut>(&self, op: &'static str, tree: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Arc<Conn>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slots = Arc::clone(&self.slots);
        let connector = self.config.clone();
        self.run(op, tree, async move {
            let c = live(&slots[i], &connector).await?;
            match f(Arc::clone(&c)).await {
                Err(_) if c.client.is_closed() => f(live(&slots[i], &connector).await?).await,
                r => r,
            }
        })
    }

    /// Applies the migrations not yet applied, each in a transaction, under an advisory lock
    /// (gateways starting together apply each once). Answers the versions applied now.
    pub fn migrate(&self) -> Result<Vec<i32>> {
        let config = self.config.clone();
        self.run("migrate", "resellgate_schema", async move {
            let (mut client, task) = config
                .open(None, false)
                .await
                .map_err(|e| io("connect", "*", pg_message(&e)))?;
            let r = apply_migrations(&mut client).await;
            drop(client);
            let _ = task.await;
            r
        })
    }

    /// The schema version the database is at (0: none applied).
    pub fn schema_version(&self) -> Result<i32> {
        self.call("schema_version", "resellgate_schema", |c| async move {
            let row = c
                .client
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM resellgate_schema",
                    &[],
                )
                .await
                .map_err(|e| io("query", "*", pg_message(&e)))?;
            Ok(row.get::<_, i32>(0))
        })
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        // Not `drop(rt)`: that blocks, and a store may be dropped inside async code.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// How to open a connection: the client config and, under `sslmode=require`, TLS.
#[derive(Clone)]
struct Connector {
    config: tokio_postgres::Config,
    tls: Option<super::pg_tls::MakeRustls>,
}

impl Connector {
    /// A connection, its driver spawned; notifications go to `notify` when given, and a
    /// break is logged when `log_break`.
    async fn open(
        &self,
        notify: Option<tokio::sync::mpsc::UnboundedSender<String>>,
        log_break: bool,
    ) -> std::result::Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        Ok(match &self.tls {
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await?;
                (client, tokio::spawn(drive(conn, notify, log_break)))
            }
            None => {
                let (client, conn) = self.config.connect(NoTls).await?;
                (client, tokio::spawn(drive(conn, notify, log_break)))
            }
        })
    }
}

/// Runs a connection until it ends, forwarding notifications.
async fn drive<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    notify: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    log_break: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) => {
                if let Some(tx) = &notify {
                    if tx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if log_break {
                    tracing::warn!(error = %pg_message(&e), "store: a PostgreSQL connection broke");
                }
                return;
            }
            None => return,
        }
    }
}

/// The connection in `slot`, or a new one put there if it is empty or broken.
async fn live(slot: &Mutex<Option<Arc<Conn>>>, connector: &Connector) -> Result<Arc<Conn>> {
    {
        let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(Arc::clone(c));
        }
    }
    let c = Arc::new(connect(connector.clone()).await?);
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&c));
    Ok(c)
}

async fn connect(config: Connector) -> Result<Conn> {
    let (client, _driver) = config
        .open(None, true)
        .await
        .map_err(|e| io("connect", "*", pg_message(&e)))?;
    let prep = |sql: String| {
        let client = &client;
        async move {
            client
                .prepare(&sql)
                .await
                .map_err(|e| io("prepare", "*", pg_message(&e)))
        }
    };
    let t = TABLE;
    Ok(Conn {
        get: prep(format!(
            "SELECT value FROM {t} WHERE tree = $1 AND key = $2"
        ))
        .await?,
        put: prep(format!(
            "INSERT INTO {t} (tree, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value"
        ))
        .await?,
        delete: prep(format!("DELETE FROM {t} WHERE tree = $1 AND key = $2")).await?,
        scan: prep(format!(
            "SELECT key, value FROM {t} WHERE tree = $1 ORDER BY key"
        ))
        .await?,
        insert_new: prep(format!(
            "INSERT INTO {t} (tree, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        ))
        .await?,
        update_if: prep(format!(
            "UPDATE {t} SET value = $4 WHERE tree = $1 AND key = $2 AND value = $3"
        ))
        .await?,
        delete_if: prep(format!(
            "DELETE FROM {t} WHERE tree = $1 AND key = $2 AND value = $3"
        ))
        .await?,
        // One statement is one atomic write: deletes and upserts of distinct keys
        // (`write_batch` keeps only the last operation on each key).
        batch: prep(format!(
            "WITH gone AS (DELETE FROM {t} k USING unnest($1::text[], $2::bytea[]) AS d(tree, key) \
             WHERE k.tree = d.tree AND k.key = d.key) \
             INSERT INTO {t} (tree, key, value) SELECT * FROM unnest($3::text[], $4::bytea[], $5::bytea[]) \
             ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value"
        ))
        .await?,
        last: prep(format!(
            "SELECT key, value FROM {t} WHERE tree = $1 ORDER BY key DESC LIMIT 1"
        ))
        .await?,
        first: prep(format!(
            "SELECT key, value FROM {t} WHERE tree = $1 ORDER BY key LIMIT $2"
        ))
        .await?,
        get_many: prep(format!(
            "SELECT key, value FROM {t} WHERE tree = $1 AND key = ANY($2)"
        ))
        .await?,
        // A page of a scan: the keys after $2 (from the first when NULL).
        scan_after: prep(format!(
            "SELECT key, value FROM {t} WHERE tree = $1 \
             AND ($2::bytea IS NULL OR key > $2) ORDER BY key LIMIT $3"
        ))
        .await?,
        client,
    })
}

async fn apply_migrations(client: &mut Client) -> Result<Vec<i32>> {
    let e = |e: tokio_postgres::Error| io("migrate", "resellgate_schema", pg_message(&e));
    let tx = client.transaction().await.map_err(e)?;
    // One gateway at a time; the others wait here, then find the work done.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('resellgate_migrate'))",
        &[],
    )
    .await
    .map_err(e)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS resellgate_schema (\
             version integer PRIMARY KEY, \
             name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(e)?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM resellgate_schema",
            &[],
        )
        .await
        .map_err(e)?
        .get(0);
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > newest {
        return Err(io(
            "migrate",
            "resellgate_schema",
            format!(
                "the database has schema version {current}, newer than this build knows \
                 ({newest}); it was migrated by a newer resellgate"
            ),
        ));
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|err| {
            io(
                "migrate",
                "resellgate_schema",
                format!("migration {name}: {}", pg_message(&err)),
            )
        })?;
        tx.execute(
            "INSERT INTO resellgate_schema (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(e)?;
        applied.push(*version);
    }
    tx.commit().await.map_err(e)?;
    Ok(applied)
}

impl Backend for PgBackend {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let (t, k) = (tree.to_string(), key.to_vec());
        self.call("get", tree, move |c| {
            let (t, k) = (t.clone(), k.clone());
            async move {
                let row = c
                    .client
                    .query_opt(&c.get, &[&t, &k])
                    .await
                    .map_err(|e| io("get", "*", pg_message(&e)))?;
                Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
            }
        })
    }

    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let (t, k, v) = (tree.to_string(), key.to_vec(), value.to_vec());
        self.call("put", tree, move |c| {
            let (t, k, v) = (t.clone(), k.clone(), v.clone());
            async move {
                c.client
                    .execute(&c.put, &[&t, &k, &v])
                    .await
                    .map_err(|e| io("put", "*", pg_message(&e)))?;
                Ok(())
            }
        })
    }

    fn delete(&self, tree: &str, key: &[u8]) -> Result<bool> {
        let (t, k) = (tree.to_string(), key.to_vec());
        self.call("delete", tree, move |c| {
            let (t, k) = (t.clone(), k.clone());
            async move {
                let n = c
                    .client
                    .execute(&c.delete, &[&t, &k])
                    .await
                    .map_err(|e| io("delete", "*", pg_message(&e)))?;
                Ok(n > 0)
            }
        })
    }

    fn scan(&self, tree: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let t = tree.to_string();
        self.call("scan", tree, move |c| {
            let t = t.clone();
            async move {
                let rows = c
                    .client
                    .query(&c.scan, &[&t])
                    .await
                    .map_err(|e| io("scan", "*", pg_message(&e)))?;
                Ok(pairs(rows))
            }
        })
    }

    fn compare_and_swap(
        &self,
        tree: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Option<Vec<u8>>>> {
        let (t, k) = (tree.to_string(), key.to_vec());
        let (old, new) = (old.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        self.call("compare_and_swap", tree, move |c| {
            let (t, k, old, new) = (t.clone(), k.clone(), old.clone(), new.clone());
            async move {
                let e = |e: tokio_postgres::Error| io("compare_and_swap", "*", pg_message(&e));
                let changed = match (&old, &new) {
                    (None, Some(v)) => c.client.execute(&c.insert_new, &[&t, &k, v]).await,
                    (Some(o), Some(v)) => c.client.execute(&c.update_if, &[&t, &k, o, v]).await,
                    (Some(o), None) => c.client.execute(&c.delete_if, &[&t, &k, o]).await,
                    (None, None) => Ok(0),
                }
                .map_err(e)?;
                if changed == 1 {
                    return Ok(Ok(()));
                }
                let current = c
                    .client
                    .query_opt(&c.get, &[&t, &k])
                    .await
                    .map_err(e)?
                    .map(|r| r.get::<_, Vec<u8>>(0));
                if old.is_none() && new.is_none() && current.is_none() {
                    return Ok(Ok(()));
                }
                Ok(Err(current))
            }
        })
    }

    /// One SQL statement, so all of `ops` or none: PostgreSQL runs a statement atomically,
    /// and the change triggers announce every cached key it touched. Repeating it (the
    /// retry on a broken connection) changes nothing more.
    fn write_batch(&self, ops: &[super::BatchOp]) -> Result<()> {
        use super::BatchOp;
        // The last operation on a key decides it, as applying them in order would.
        let mut last: std::collections::BTreeMap<(&str, &[u8]), Option<&[u8]>> =
            std::collections::BTreeMap::new();
        for op in ops {
            match op {
                BatchOp::Put { tree, key, value } => {
                    last.insert((tree, key.as_slice()), Some(value.as_slice()))
                }
                BatchOp::Delete { tree, key } => last.insert((tree, key.as_slice()), None),
            };
        }
        let (mut dt, mut dk) = (Vec::<String>::new(), Vec::<Vec<u8>>::new());
        let (mut pt, mut pk, mut pv) = (
            Vec::<String>::new(),
            Vec::<Vec<u8>>::new(),
            Vec::<Vec<u8>>::new(),
        );
        for ((tree, key), value) in last {
            match value {
                Some(v) => {
                    pt.push(tree.to_string());
                    pk.push(key.to_vec());
                    pv.push(v.to_vec());
                }
                None => {
                    dt.push(tree.to_string());
                    dk.push(key.to_vec());
                }
            }
        }
        let mut trees: Vec<&str> = ops
            .iter()
            .map(|op| match op {
                BatchOp::Put { tree, .. } | BatchOp::Delete { tree, .. } => *tree,
            })
            .collect();
        trees.sort_unstable();
        trees.dedup();
        self.call("write_batch", &trees.join(","), move |c| {
            let (dt, dk, pt, pk, pv) = (dt.clone(), dk.clone(), pt.clone(), pk.clone(), pv.clone());
            async move {
                c.client
                    .execute(&c.batch, &[&dt, &dk, &pt, &pk, &pv])
                    .await
                    .map_err(|e| io("write_batch", "*", pg_message(&e)))?;
                Ok(())
            }
        })
    }

    fn for_each(&self, tree: &str, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        // Pages of SCAN_PAGE pairs, each starting after the last key of the one before.
        const SCAN_PAGE: i64 = 5_000;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (t, from) = (tree.to_string(), after.clone());
            let page: Vec<(Vec<u8>, Vec<u8>)> = self.call("scan", tree, move |c| {
                let (t, from) = (t.clone(), from.clone());
                async move {
                    let rows = c
                        .client
                        .query(&c.scan_after, &[&t, &from, &SCAN_PAGE])
                        .await
                        .map_err(|e| io("scan", "*", pg_message(&e)))?;
                    Ok(pairs(rows))
                }
            })?;
            let full = page.len() as i64 == SCAN_PAGE;
            for (k, v) in &page {
                if !f(k, v) {
                    return Ok(());
                }
            }
            match page.into_iter().last() {
                Some((k, _)) if full => after = Some(k),
                _ => return Ok(()),
            }
        }
    }

    fn get_many(&self, tree: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (t, ks) = (tree.to_string(), keys.to_vec());
        let found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            self.call("get_many", tree, move |c| {
                let (t, ks) = (t.clone(), ks.clone());
                async move {
                    let rows = c
                        .client
                        .query(&c.get_many, &[&t, &ks])
                        .await
                        .map_err(|e| io("get_many", "*", pg_message(&e)))?;
                    Ok(pairs(rows))
                }
            })?;
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    fn put_all(&self, tree: &str, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        // The batch statement with nothing to delete: one round trip, one commit.
        let pt = vec![tree.to_string(); pairs.len()];
        let (pk, pv): (Vec<Vec<u8>>, Vec<Vec<u8>>) = pairs.iter().cloned().unzip();
        self.call("put_all", tree, move |c| {
            let (pt, pk, pv) = (pt.clone(), pk.clone(), pv.clone());
            async move {
                let none: (Vec<String>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
                c.client
                    .execute(&c.batch, &[&none.0, &none.1, &pt, &pk, &pv])
                    .await
                    .map_err(|e| io("put_all", "*", pg_message(&e)))?;
                Ok(())
            }
        })
    }

    fn last(&self, tree: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let t = tree.to_string();
        self.call("last", tree, move |c| {
            let t = t.clone();
            async move {
                let row = c
                    .client
                    .query_opt(&c.last, &[&t])
                    .await
                    .map_err(|e| io("last", "*", pg_message(&e)))?;
                Ok(row.map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1))))
            }
        })
    }

    fn first(&self, tree: &str, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let t = tree.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call("first", tree, move |c| {
            let t = t.clone();
            async move {
                let rows = c
                    .client
                    .query(&c.first, &[&t, &limit])
                    .await
                    .map_err(|e| io("first", "*", pg_message(&e)))?;
                Ok(pairs(rows))
            }
        })
    }

    fn tree_names(&self) -> Result<Vec<String>> {
        self.call("tree_names", "*", |c| async move {
            let rows = c
                .client
                .query(
                    &format!("SELECT DISTINCT tree FROM {TABLE} ORDER BY tree"),
                    &[],
                )
                .await
                .map_err(|e| io("scan", "*", pg_message(&e)))?;
            Ok(rows.into_iter().map(|r| r.get::<_, String>(0)).collect())
        })
    }

    fn flush(&self) -> Result<()> {
        // Every write committed (synchronously) before it returned.
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn watch(&self) -> Option<mpsc::Receiver<Invalidation>> {
        let (tx, rx) = mpsc::channel();
        let config = self.config.clone();
        let retry = self.options.timeout.min(Duration::from_secs(1));
        self.handle().spawn(async move {
            // A failure to connect is logged once per outage, not once a second.
            let mut down = false;
            loop {
                down = !listen(&config, &tx, !down).await;
                if tx.send(Invalidation::Reconnecting).is_err() {
                    return; // the store is gone
                }
                tokio::time::sleep(retry).await;
            }
        });
        Some(rx)
    }

    fn try_exclusive(&self, name: &str) -> Result<Option<Exclusive>> {
        let config = self.config.clone();
        let name = name.to_string();
        let held = self.run("try_exclusive", "*", async move {
            let (client, task) = config
                .open(None, false)
                .await
                .map_err(|e| io("connect", "*", pg_message(&e)))?;
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&name])
                .await
                .map_err(|e| io("try_exclusive", "*", pg_message(&e)))?
                .get(0);
            if got {
                Ok(Some((client, task)))
            } else {
                task.abort();
                Ok(None)
            }
        })?;
        Ok(held.map(|(client, task)| {
            // Dropping the guard closes the session, which releases the lock.
            Exclusive::new(LockSession {
                _client: client,
                task,
            })
        }))
    }
}

struct LockSession {
    _client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LockSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on [`CHANNEL`] until the connection breaks, forwarding each change. Answers
/// whether it got to listen.
async fn listen(config: &Connector, tx: &mpsc::Sender<Invalidation>, log_failure: bool) -> bool {
    let (msg_tx, mut msg_rx) = tokio::sync::mpsc::unbounded_channel();
    let (client, driver) = match config.open(Some(msg_tx), false).await {
        Ok(pair) => pair,
        Err(e) => {
            if log_failure {
                tracing::warn!(error = %pg_message(&e), "store: cannot listen for changes");
            }
            return false;
        }
    };
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        if log_failure {
            tracing::warn!(error = %pg_message(&e), "store: cannot listen for changes");
        }
        driver.abort();
        return false;
    }
    // Listening now: whatever changed while we were not is reloaded.
    if tx.send(Invalidation::All).is_err() {
        driver.abort();
        return true;
    }
    while let Some(payload) = msg_rx.recv().await {
        if let Some(inv) = parse_payload(&payload) {
            if tx.send(inv).is_err() {
                break;
            }
        }
    }
    driver.abort();
    true
}

/// `tree:hexkey` or `tree:*`.
fn parse_payload(payload: &str) -> Option<Invalidation> {
    let (tree, key) = payload.split_once(':')?;
    if key == "*" {
        return Some(Invalidation::Tree(tree.to_string()));
    }
    if key.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..key.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(key.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Invalidation::Key(tree.to_string(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("postgres://gw@db.example.com:5432/resellgate").is_ok());
        assert!(check_url("postgresql://gw@10.0.0.5/resellgate?sslmode=disable").is_ok());
        assert!(check_url("mysql://gw@db/x").is_err());
        let e = check_url("postgres://gw:hunter2@db/x").unwrap_err();
        assert!(e.contains("password_env") && !e.contains("hunter2"), "{e}");
        assert!(check_url("postgres://gw@db/x?sslmode=require").is_ok());
        assert!(check_url("postgres://gw@%2Frun%2Fpostgresql/x").is_err());
    }

    #[test]
    fn payloads_parse() {
        assert_eq!(
            parse_payload("resellers:61636d65"),
            Some(Invalidation::Key("resellers".into(), b"acme".to_vec()))
        );
        assert_eq!(
            parse_payload("plans:*"),
            Some(Invalidation::Tree("plans".into()))
        );
        assert_eq!(parse_payload("plans:6"), None);
        assert_eq!(parse_payload("plans:zz"), None);
        assert_eq!(parse_payload("garbage"), None);
    }
}
