//! The command line. Each subcommand is a few lines over the library; errors are
//! printed as one message and become an exit code (64 for bad configuration or input,
//! 1 for anything else), never a panic.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin::remote::Target;
use crate::config::{self, Config};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "resellgate",
    version,
    about = "A reseller gateway for BILLmanager SSL certificate reselling"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default when no subcommand is given).
    Serve {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Validate config.toml and mapping files (by default the mappings/ folder beside it).
    CheckConfig {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Mapping files or folders to validate.
        mappings: Vec<PathBuf>,
    },
    /// Load mapping files into the store, or print the store as a mapping file.
    Mappings {
        #[command(subcommand)]
        action: MappingsCommand,
    },
    /// Read a password on stdin and print its argon2id hash.
    HashPassword,
    /// Services: upstream certificates recorded against resellers.
    Services {
        #[command(subcommand)]
        action: ServicesCommand,
    },
    /// Orders: list them, resolve pending ones against the upstream.
    Orders {
        #[command(subcommand)]
        action: OrdersCommand,
    },
    /// The ledger of orders and renewals, for invoicing.
    Ledger {
        #[command(subcommand)]
        action: LedgerCommand,
    },
    /// The store itself: schema migrations, copying an installation to PostgreSQL.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
    /// The audit log of operator changes.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Run the built-in upstream BILLmanager simulator.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:1600")]
        listen: String,
        /// Delay every answer by this many milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Fraction (0..1) of calls answered with a random fault.
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
        /// Seed every account with this balance instead of the demo's (e.g. for benchmarks).
        #[arg(long)]
        balance: Option<rust_decimal::Decimal>,
    },
    /// Sandbox + gateway + mappings/demo.toml, a scripted reseller session, then keep serving.
    Demo {
        /// Port of the gateway (the sandbox takes the next one).
        #[arg(long, default_value_t = 1500)]
        port: u16,
        /// Port of the admin listener and console (default: the gateway's port + 1).
        #[arg(long)]
        admin_port: Option<u16>,
        /// Run the script and exit instead of serving on.
        #[arg(long)]
        once: bool,
    },
    /// Time the gateway's own work on price lists and certificate lists, in process
    /// (`bench/rewrite.sh`; see [`crate::perf`]).
    #[command(hide = true)]
    BenchRewrite {
        /// Plans of the reseller and of the upstream's export.
        #[arg(long, default_value_t = 500)]
        plans: usize,
        /// Rows of the certificate list.
        #[arg(long, default_value_t = 200)]
        rows: usize,
        /// Events in the history of each row's recorded service (a service keeps up to 100).
        #[arg(long, default_value_t = 10)]
        history: usize,
        /// Answers timed per case.
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        /// Only these formats (comma-separated: xml, json), e.g. to profile one of them.
        #[arg(long, value_delimiter = ',', default_value = "xml,json")]
        formats: Vec<String>,
        /// Put the store on this (empty) PostgreSQL database instead of a temporary sled
        /// store (password from `RESELLGATE_STORE_PASSWORD`).
        #[arg(long, value_name = "URL")]
        store_url: Option<String>,
        /// Instead of timing, write the upstream documents and a mapping file for reseller
        /// `bench` (with this argon2id hash) into DIR.
        #[arg(long, value_names = ["DIR", "HASH"], num_args = 2)]
        write: Option<Vec<String>>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Load FILE_OR_DIR... into the store, printing what changed.
    Apply {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the store as a mapping file.
    Export {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Read the reseller's certificates through its upstream account and record them.
    Sync {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
        #[arg(long)]
        reseller: String,
    },
    /// Record the services listed in FILE (`-`: stdin), one per line as `services list`
    /// prints them: upstream id, reseller, remoteid, plan, period, tab-separated (`-` for
    /// none; further columns ignored). Needs the gateway stopped, like `sync`.
    Import {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        file: PathBuf,
    },
    /// Print the recorded services (id, reseller, remoteid, plan, period, source, events).
    List {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
        #[arg(long)]
        reseller: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Resolve pending orders by looking their remoteid up on the upstream (never re-orders).
    Reconcile {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
        /// Only orders claimed at least this long ago (default: `[orders] settle_ms`).
        #[arg(long)]
        settle_ms: Option<u64>,
    },
    /// Print every order record (reseller, remoteid, state, upstream id).
    List {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Print a reseller's orders and renewals of one month as CSV.
    Export {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
        #[arg(long)]
        reseller: String,
        /// YYYY-MM (UTC).
        #[arg(long)]
        month: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Bring the configured store to this build's schema and format (also done at start).
    Migrate {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Copy every record of one store into another, empty one (stop the gateways first).
    Copy {
        /// `sled:PATH` or `postgres://user@host/db`.
        #[arg(long)]
        from: String,
        /// `sled:PATH` or `postgres://user@host/db`.
        #[arg(long)]
        to: String,
        /// The environment variable holding the PostgreSQL password.
        #[arg(long, default_value = "RESELLGATE_STORE_PASSWORD")]
        password_env: String,
        /// PEM CA bundle to verify PostgreSQL with (URLs with `sslmode=require`).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit entries, newest first: time, token, via, op, object, changes.
    List {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// The running gateway's admin API (`http://HOST:PORT`); default: the store, or
        /// the API at `[admin] listen` when a running gateway holds the store.
        #[arg(long)]
        admin: Option<String>,
        /// reseller, plan or upstream_account.
        #[arg(long)]
        kind: Option<String>,
        /// The login, id or name.
        #[arg(long)]
        key: Option<String>,
        /// From this time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ), inclusive.
        #[arg(long)]
        since: Option<String>,
        /// Until this time, exclusive.
        #[arg(long)]
        until: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Exit code for bad configuration or input (sysexits' EX_USAGE... EX_DATAERR family).
pub const EXIT_CONFIG: u8 = 64;

/// A failure with its exit code.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    fn config(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: EXIT_CONFIG,
            message: e.to_string(),
        }
    }
    fn remote(e: crate::admin::remote::RemoteError) -> Failure {
        match e {
            crate::admin::remote::RemoteError::Config(m) => Failure::config(m),
            crate::admin::remote::RemoteError::Other(m) => Failure::other(m),
        }
    }
    fn other(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
    /// The same code for the same condition in every command: an upstream account whose
    /// password cannot be resolved is bad configuration; an upstream host that does not
    /// resolve is not.
    fn setup(e: crate::upstream::SetupError) -> Failure {
        match e {
            crate::upstream::SetupError::Account { .. } => Failure::config(e),
            crate::upstream::SetupError::Connector(_) => Failure::other(e),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("resellgate: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn load_config(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::config(format!("invalid configuration: {e}")))
}

/// The store, or the running gateway's admin API (see [`crate::admin::remote`]).
fn target(config: &Config, admin: Option<&str>) -> Result<Target, Failure> {
    crate::admin::remote::target(config, admin).map_err(Failure::remote)
}

fn open_store(config: &Config) -> Result<Store, Failure> {
    Store::open_at(&config.store_location()).map_err(Failure::other)
}

/// `sled:PATH` or a PostgreSQL URL (password from `password_env`), as `store copy` names them.
fn parse_location(
    text: &str,
    password_env: &str,
    ca_file: Option<&Path>,
) -> Result<crate::store::Location, Failure> {
    use crate::store::{Location, PgOptions};
    if let Some(path) = text.strip_prefix("sled:") {
        if path.is_empty() {
            return Err(Failure::config("sled: needs a path (sled:PATH)"));
        }
        return Ok(Location::Sled {
            path: PathBuf::from(path),
            cache_mb: crate::store::backend::DEFAULT_CACHE_MB,
        });
    }
    if let Err(why) = crate::store::postgres::check_url(text) {
        let shown = if why.contains("password") {
            "<url>"
        } else {
            text
        };
        return Err(Failure::config(format!(
            "'{shown}' is neither sled:PATH nor a usable PostgreSQL URL: {why}"
        )));
    }
    Ok(Location::Postgres(PgOptions {
        url: text.to_string(),
        password: std::env::var(password_env)
            .ok()
            .filter(|p| !p.is_empty())
            .map(crate::secret::Secret::new),
        timeout: std::time::Duration::from_secs(30),
        connections: 1,
        ca_file: ca_file.map(Path::to_path_buf),
    }))
}

fn store(action: StoreCommand) -> Result<(), Failure> {
    match action {
        StoreCommand::Migrate { config } => {
            let config = load_config(&config)?;
            let location = config.store_location();
            let store = open_store(&config)?;
            drop(store);
            println!("{location}: up to date");
            Ok(())
        }
        StoreCommand::Copy {
            from,
            to,
            password_env,
            ca_file,
        } => {
            let from = parse_location(&from, &password_env, ca_file.as_deref())?;
            let to = parse_location(&to, &password_env, ca_file.as_deref())?;
            // The source is opened as a store: brought to this build's format first.
            let source = Store::open_at(&from).map_err(Failure::other)?;
            let dest = to.open_backend().map_err(Failure::other)?;
            let report =
                crate::store::copy::copy(source.backend(), &*dest).map_err(Failure::other)?;
            let mut out = std::io::stdout().lock();
            for (tree, n) in &report.trees {
                let _ = writeln!(out, "{tree}: {n}");
            }
            let _ = writeln!(out, "copied {from} to {to}");
            Ok(())
        }
    }
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let command = cli.command.unwrap_or(Command::Serve {
        config: PathBuf::from("config.toml"),
    });
    match command {
        Command::Serve { config } => {
            crate::telemetry::init();
            let config = load_config(&config)?;
            let store = open_store(&config)?;
            let parts = crate::app::Parts::new(&config, store).map_err(Failure::setup)?;
            crate::app::run(&config, &parts).map_err(Failure::other)
        }
        Command::CheckConfig { config, mappings } => {
            let summary = config::check(&config, &mappings).map_err(Failure::config)?;
            println!("{summary}");
            Ok(())
        }
        Command::Mappings {
            action:
                MappingsCommand::Apply {
                    config,
                    admin,
                    paths,
                },
        } => {
            let config = load_config(&config)?;
            let set = config::load_mappings(&paths).map_err(Failure::config)?;
            let store = match target(&config, admin.as_deref())? {
                Target::Store(s) => s,
                Target::Remote(r) => {
                    let doc = config::MappingFile::from_records(
                        set.upstream_accounts.iter().map(|e| &e.item),
                        set.resellers.iter().map(|e| &e.item),
                        set.plans.iter().map(|e| &e.item),
                    )
                    .to_toml();
                    print!("{}", r.apply(doc).map_err(Failure::remote)?);
                    return Ok(());
                }
            };
            let changes = set
                .apply_to_as(
                    &store,
                    Some(&crate::store::Actor::cli(crate::store::Via::Mappings)),
                )
                .map_err(Failure::config)?;
            let mut out = std::io::stdout().lock();
            if changes.is_empty() {
                let _ = writeln!(out, "no changes");
            }
            for c in &changes {
                let _ = writeln!(out, "{c}");
            }
            Ok(())
        }
        Command::Mappings {
            action: MappingsCommand::Export { config, admin },
        } => {
            let config = load_config(&config)?;
            let store = match target(&config, admin.as_deref())? {
                Target::Store(s) => s,
                Target::Remote(r) => {
                    print!("{}", r.export().map_err(Failure::remote)?);
                    return Ok(());
                }
            };
            print!("{}", config::MappingFile::from_store(&store).to_toml());
            Ok(())
        }
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(Failure::other)?;
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            if password.is_empty() {
                return Err(Failure::config("no password on stdin"));
            }
            let hash = crate::secret::hash_password(password).map_err(Failure::other)?;
            println!("{hash}");
            Ok(())
        }
        Command::Services { action } => services(action),
        Command::Store { action } => store(action),
        Command::Audit { action } => audit(action),
        Command::Orders { action } => orders(action),
        Command::Ledger {
            action:
                LedgerCommand::Export {
                    config,
                    admin,
                    reseller,
                    month,
                },
        } => {
            let valid = month.len() == 7
                && month.as_bytes()[4] == b'-'
                && month[..4].parse::<u16>().is_ok()
                && month[5..]
                    .parse::<u8>()
                    .is_ok_and(|m| (1..=12).contains(&m));
            if !valid {
                return Err(Failure::config(format!(
                    "--month '{month}': expected YYYY-MM"
                )));
            }
            let config = load_config(&config)?;
            let store = match target(&config, admin.as_deref())? {
                Target::Store(s) => s,
                Target::Remote(r) => {
                    print!("{}", r.ledger(&reseller, &month).map_err(Failure::remote)?);
                    return Ok(());
                }
            };
            if store.reseller(&reseller).is_none() {
                return Err(Failure::config(format!(
                    "no reseller '{reseller}' in the store"
                )));
            }
            let entries = store.ledger(Some(&reseller)).map_err(Failure::other)?;
            print!("{}", crate::store::ledger::to_csv(&entries, &month));
            Ok(())
        }
        Command::Sandbox {
            listen,
            latency_ms,
            fail_rate,
            balance,
        } => {
            crate::telemetry::init();
            if !(0.0..=1.0).contains(&fail_rate) {
                return Err(Failure::config(format!(
                    "--fail-rate {fail_rate}: must be between 0 and 1"
                )));
            }
            crate::sandbox::run_cli(&listen, latency_ms, fail_rate, balance).map_err(Failure::other)
        }
        Command::Demo {
            port,
            admin_port,
            once,
        } => {
            crate::telemetry::init();
            crate::demo::run(port, admin_port, once).map_err(Failure::other)
        }
        Command::BenchRewrite {
            plans,
            rows,
            history,
            iterations,
            formats,
            store_url,
            write,
        } => {
            if let Some([dir, hash]) = write.as_deref() {
                return crate::perf::write_files(Path::new(dir), plans, rows, hash)
                    .map_err(Failure::other);
            }
            let at = store_url
                .map(|url| parse_location(&url, "RESELLGATE_STORE_PASSWORD", None))
                .transpose()?;
            let timings =
                crate::perf::rewrite_bench(plans, rows, history, iterations, &formats, at.as_ref())
                    .map_err(Failure::other)?;
            println!("case format bytes wall_p50_us wall_p99_us wall_max_us cpu_p50_us cpu_p99_us");
            for t in timings {
                let us = |d: std::time::Duration| d.as_micros();
                println!(
                    "{} {} {} {} {} {} {} {}",
                    t.case.replace(' ', "_"),
                    t.format.as_str(),
                    t.bytes,
                    us(t.wall.p50),
                    us(t.wall.p99),
                    us(t.wall.max),
                    us(t.cpu.p50),
                    us(t.cpu.p99),
                );
            }
            Ok(())
        }
    }
}

/// A reconciler over an open store for one-off upstream calls (sync, reconcile), on a
/// runtime.
fn with_reconciler_on<T>(
    config: &Config,
    store: Store,
    f: impl FnOnce(
        std::sync::Arc<crate::reconcile::Reconciler>,
        Store,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, Failure>>>>,
) -> Result<T, Failure> {
    let parts = crate::app::Parts::new(config, store.clone()).map_err(Failure::setup)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::other)?;
    rt.block_on(f(parts.reconciler, store))
}

fn services(action: ServicesCommand) -> Result<(), Failure> {
    match action {
        ServicesCommand::Sync {
            config,
            admin,
            reseller,
        } => {
            let config = load_config(&config)?;
            let store = match target(&config, admin.as_deref())? {
                Target::Store(s) => s,
                Target::Remote(r) => {
                    print!("{}", r.sync_services(&reseller).map_err(Failure::remote)?);
                    return Ok(());
                }
            };
            with_reconciler_on(&config, store, move |rec, store| {
                Box::pin(async move {
                    let r = store.reseller(&reseller).ok_or_else(|| {
                        Failure::config(format!("no reseller '{reseller}' in the store"))
                    })?;
                    let (recorded, refused) =
                        rec.sync_services(&r).await.map_err(Failure::other)?;
                    println!("{recorded} services recorded for {reseller}");
                    for id in refused {
                        println!("! {id} belongs to another reseller: not recorded");
                    }
                    Ok(())
                })
            })
        }
        ServicesCommand::Import { config, file } => {
            let config = load_config(&config)?;
            let store = open_store(&config)?;
            let (recorded, refused) = import_services(&store, &file)?;
            println!("{recorded} services recorded");
            for id in refused {
                println!("! {id} belongs to another reseller: not recorded");
            }
            Ok(())
        }
        ServicesCommand::List {
            config,
            admin,
            reseller,
        } => {
            let config = load_config(&config)?;
            let store = match target(&config, admin.as_deref())? {
                Target::Store(s) => s,
                Target::Remote(r) => {
                    print!(
                        "{}",
                        r.services(reseller.as_deref()).map_err(Failure::remote)?
                    );
                    return Ok(());
                }
            };
            for s in store
                .services(reseller.as_deref())
                .map_err(Failure::other)?
            {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}{}\t{} events",
                    s.upstream_id,
                    s.reseller,
                    s.remoteid.as_deref().unwrap_or("-"),
                    s.plan.as_deref().unwrap_or("-"),
                    s.period.as_deref().unwrap_or("-"),
                    s.source,
                    if s.deleted { " deleted" } else { "" },
                    s.history.len()
                );
            }
            Ok(())
        }
    }
}

/// `services import`: every line of `file` checked first (a bad line or an unknown
/// reseller is refused, naming file and line, and nothing is written), then recorded in
/// batches ([`Store::record_services`]).
fn import_services(store: &Store, file: &Path) -> Result<(usize, Vec<u64>), Failure> {
    use std::io::BufRead;
    let input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| Failure::config(format!("cannot read '{}': {e}", file.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut services = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let at = || format!("'{}' line {}", file.display(), n + 1);
        let line = line.map_err(|e| Failure::config(format!("{}: {e}", at())))?;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let svc = parse_service_line(&line, now)
            .map_err(|e| Failure::config(format!("{}: {e}", at())))?;
        if store.reseller(&svc.reseller).is_none() {
            return Err(Failure::config(format!(
                "{}: no reseller '{}' in the store",
                at(),
                crate::telemetry::printable(&svc.reseller, 64)
            )));
        }
        services.push(svc);
    }
    store.record_services(services).map_err(Failure::other)
}

/// One line of `services import`: id, reseller, remoteid, plan, period (tab-separated,
/// `-` for none), recorded at `now` (Unix seconds) as source `sync`.
pub fn parse_service_line(line: &str, now: u64) -> Result<crate::store::services::Service, String> {
    use crate::store::services::{Service, ServiceSource};
    let mut cols = line.split('\t');
    let mut col = |name: &str| {
        cols.next()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("no {name} column"))
    };
    let id = col("upstream id")?;
    let upstream_id = id.parse::<u64>().map_err(|_| {
        format!(
            "upstream id '{}' is not a number",
            crate::telemetry::printable(id, 64)
        )
    })?;
    let reseller = col("reseller")?.to_string();
    let opt = |c: Result<&str, String>| c.ok().filter(|c| *c != "-").map(str::to_string);
    let remoteid = opt(col("remoteid"));
    let plan = opt(col("plan"));
    let period = opt(col("period"));
    Ok(Service {
        upstream_id,
        reseller,
        remoteid,
        plan,
        period,
        recorded_at: now,
        source: ServiceSource::Sync,
        deleted: false,
        history: Vec::new(),
    })
}

fn orders(action: OrdersCommand) -> Result<(), Failure> {
    match action {
        OrdersCommand::Reconcile {
            config,
            admin,
            settle_ms,
        } => {
            let config = load_config(&config)?;
            let store = match target(&config, admin.as_deref())? {
                Target::Store(s) => s,
                Target::Remote(r) => {
                    print!("{}", r.reconcile(settle_ms).map_err(Failure::remote)?);
                    return Ok(());
                }
            };
            let settle = settle_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or_else(|| config.order_settle());
            with_reconciler_on(&config, store, move |rec, _| {
                Box::pin(async move {
                    let report = rec.reconcile_orders(settle).await.map_err(Failure::other)?;
                    for (reseller, remoteid, id) in &report.found {
                        println!("done\t{reseller}\t{remoteid}\t{id}");
                    }
                    for (reseller, remoteid) in &report.failed {
                        println!("failed\t{reseller}\t{remoteid}");
                    }
                    for (reseller, remoteid) in &report.left {
                        println!("pending\t{reseller}\t{remoteid}");
                    }
                    println!(
                        "{} found, {} failed, {} still pending",
                        report.found.len(),
                        report.failed.len(),
                        report.left.len()
                    );
                    println!("{} ledger costs filled in", report.costs_filled);
                    Ok(())
                })
            })
        }
        OrdersCommand::List { config, admin } => {
            let config = load_config(&config)?;
            let store = match target(&config, admin.as_deref())? {
                Target::Store(s) => s,
                Target::Remote(r) => {
                    print!("{}", r.orders().map_err(Failure::remote)?);
                    return Ok(());
                }
            };
            for o in store.orders().map_err(Failure::other)? {
                let id = match &o.state {
                    crate::store::orders::OrderState::Done { upstream_id, .. } => {
                        upstream_id.to_string()
                    }
                    _ => "-".into(),
                };
                println!("{}\t{}\t{}\t{}", o.reseller, o.remoteid, o.state_name(), id);
            }
            Ok(())
        }
    }
}

fn audit(action: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::List {
        config,
        admin,
        kind,
        key,
        since,
        until,
        limit,
    } = action;
    let config = load_config(&config)?;
    let query = crate::admin::remote::AuditQuery {
        kind,
        key,
        since,
        until,
        limit,
    };
    let out = match target(&config, admin.as_deref())? {
        Target::Store(s) => query.list(&s),
        Target::Remote(r) => query.fetch(&r),
    }
    .map_err(Failure::remote)?;
    print!("{out}");
    Ok(())
}
