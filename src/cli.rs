//! The command line. Each subcommand is a few lines over the library; errors are
//! printed as one message and become an exit code (64 for bad configuration or input,
//! 1 for anything else), never a panic.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    },
    /// Sandbox + gateway + mappings/demo.toml, a scripted reseller session, then keep serving.
    Demo {
        /// Port of the gateway (the sandbox takes the next one).
        #[arg(long, default_value_t = 1500)]
        port: u16,
        /// Run the script and exit instead of serving on.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Load FILE_OR_DIR... into the store, printing what changed.
    Apply {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the store as a mapping file.
    Export {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
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
    fn other(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: e.to_string(),
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

fn open_store(config: &Config) -> Result<Store, Failure> {
    Store::open(&config.store.path).map_err(Failure::other)
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
            crate::proxy::server::run(&config, store).map_err(Failure::other)
        }
        Command::CheckConfig { config, mappings } => {
            let summary = config::check(&config, &mappings).map_err(Failure::config)?;
            println!("{summary}");
            Ok(())
        }
        Command::Mappings {
            action: MappingsCommand::Apply { config, paths },
        } => {
            let config = load_config(&config)?;
            let set = config::load_mappings(&paths).map_err(Failure::config)?;
            let store = open_store(&config)?;
            let changes = store.apply(&set).map_err(Failure::config)?;
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
            action: MappingsCommand::Export { config },
        } => {
            let config = load_config(&config)?;
            let store = open_store(&config)?;
            print!("{}", store.export().to_toml());
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
        Command::Sandbox {
            listen,
            latency_ms,
            fail_rate,
        } => {
            crate::telemetry::init();
            if !(0.0..=1.0).contains(&fail_rate) {
                return Err(Failure::config(format!(
                    "--fail-rate {fail_rate}: must be between 0 and 1"
                )));
            }
            crate::sandbox::run_cli(&listen, latency_ms, fail_rate).map_err(Failure::other)
        }
        Command::Demo { port, once } => {
            crate::telemetry::init();
            crate::demo::run(port, once).map_err(Failure::other)
        }
    }
}
