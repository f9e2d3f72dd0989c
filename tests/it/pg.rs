//! A fresh PostgreSQL database per test, on the cluster `.ci/postgres.sh` starts
//! (`RESELLGATE_TEST_PG_URL`, `RESELLGATE_TEST_PG_PASSWORD`). Without it a test skips with a
//! printed reason, except under `CI=true`, where a missing PostgreSQL is a failure.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resellgate::secret::Secret;
use resellgate::store::{Location, PgOptions};

pub const PASSWORD_ENV: &str = "RESELLGATE_TEST_PG_PASSWORD";

/// A database created for one test, dropped (with its connections) when this drops.
pub struct TestDb {
    pub name: String,
    /// `postgres://resellgate@127.0.0.1:PORT/NAME`, no password.
    pub url: String,
    admin_url: String,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn admin_exec(admin_url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::from_str(admin_url)?;
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        config.password(p);
    }
    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    let r = client.batch_execute(sql).await;
    drop(client);
    let _ = task.await;
    r
}

impl TestDb {
    /// A new empty database, or `None` (printed) when no PostgreSQL is configured outside CI.
    pub fn create() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("RESELLGATE_TEST_PG_URL") else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but RESELLGATE_TEST_PG_URL is unset: run `eval \"$(bash .ci/postgres.sh)\"` (make test does)");
            }
            eprintln!("SKIPPED: no PostgreSQL (RESELLGATE_TEST_PG_URL unset; `eval \"$(bash .ci/postgres.sh)\"` starts one)");
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rg_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        block_on(admin_exec(&admin_url, &format!("CREATE DATABASE {name}")))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e:?}"));
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap();
        Some(TestDb {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        })
    }

    pub fn options(&self) -> PgOptions {
        PgOptions {
            url: self.url.clone(),
            password: std::env::var(PASSWORD_ENV).ok().map(Secret::new),
            timeout: Duration::from_secs(5),
            connections: 2,
            ca_file: None,
        }
    }

    pub fn location(&self) -> Location {
        Location::Postgres(self.options())
    }

    /// config.toml lines for a gateway on this database.
    pub fn store_toml(&self) -> String {
        format!(
            "[store]\nurl = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\ntimeout_ms = 2000\n",
            self.url
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = block_on(admin_exec(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ));
    }
}
