//! The `config.toml` schema. Every table refuses unknown keys; every default is defined
//! once, in the `Default` impls below, and `#[serde(default)]` uses them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The file as written, before validation and path resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub store: StoreConfig,
    pub admin: AdminConfig,
    pub policy: PolicyConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub orders: OrdersConfig,
}

/// `[server]` — the proxy listener resellers' billings talk to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `HOST:PORT` (validated as a socket address at load).
    pub listen: String,
    /// PEM certificate chain; with `tls_key` the listener speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// How long an idle downstream keep-alive connection is kept, in seconds.
    pub keepalive_timeout_s: u64,
    /// How long a client may take to send its request body, in milliseconds.
    pub client_timeout_ms: u64,
    /// Reverse proxies (CIDRs, `10.0.0.0/8`, or addresses) whose `X-Forwarded-For` names
    /// the client for session binding, throttling and logs. Empty: the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// The paths the API answers on.
    pub paths: Vec<String>,
    /// How long a client may take to send a request's header (all of it), in
    /// milliseconds: from the connection's start, then from the first byte of each
    /// following request on a kept-alive connection.
    pub header_timeout_ms: u64,
    /// Concurrent connections from one client address; more are answered with an error
    /// document and closed.
    pub max_connections_per_ip: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:1500".into(),
            tls_cert: None,
            tls_key: None,
            threads: 1,
            keepalive_timeout_s: 60,
            client_timeout_ms: 30_000,
            trusted_proxies: Vec::new(),
            paths: crate::billmgr::PATHS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            header_timeout_ms: 10_000,
            max_connections_per_ip: 64,
        }
    }
}

impl ServerConfig {
    /// The listen address as a socket address (validated at load).
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, std::net::AddrParseError> {
        self.listen.parse()
    }

    pub fn client_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.client_timeout_ms)
    }

    /// Whether the proxy listener speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// `[upstream]` — the selling BILLmanager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Required: `https://host[:port]/billmgr` (`http://` allowed, with a warning at start).
    pub url: String,
    /// PEM bundle of CAs to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// Retries of calls that change nothing (reads: no `sok`, not a toolbar action such as
    /// `certificate.delete`); orders and other changes are never retried.
    pub retries: u32,
    /// How long a pooled idle upstream connection is kept.
    pub idle_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: String::new(),
            ca_file: None,
            connect_timeout_ms: 3000,
            read_timeout_ms: 30000,
            retries: 1,
            idle_timeout_ms: 30000,
        }
    }
}

/// `[store]` — where the state lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the sled database (relative to the config file).
    pub path: PathBuf,
    /// sled's page cache, in MiB (sled's own default would be 1 GiB).
    pub cache_mb: u64,
    /// Fleet mode: a PostgreSQL URL without password (`postgres://user@host/db`); set, it
    /// replaces `path`.
    pub url: Option<String>,
    /// The environment variable holding the PostgreSQL password (unset: none sent).
    pub password_env: String,
    /// Every PostgreSQL call answers or fails within this time (and connects within it).
    pub timeout_ms: u64,
    /// Pipelined PostgreSQL connections of one gateway.
    pub connections: usize,
    /// PEM CA bundle to verify PostgreSQL with under `sslmode=require` (system roots if
    /// unset; relative to the config file).
    pub ca_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("data/resellgate"),
            cache_mb: crate::store::backend::DEFAULT_CACHE_MB,
            url: None,
            password_env: "RESELLGATE_STORE_PASSWORD".into(),
            timeout_ms: 5000,
            connections: 4,
            ca_file: None,
        }
    }
}

/// `[admin]` — the operator's API listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: String,
    /// The environment variable holding the bearer token; unset means the admin API is off.
    /// This token is a `write` token named `admin`.
    pub token_env: String,
    /// `[[admin.token]]`: named tokens with a role, besides (or instead of) `token_env`.
    pub token: Vec<AdminTokenConfig>,
    /// A console session ends this long after its last use.
    pub console_session_ttl_s: u64,
    /// Console sessions at once; a new one ends the least recently used.
    pub max_console_sessions: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:1501".into(),
            token_env: "RESELLGATE_ADMIN_TOKEN".into(),
            token: Vec::new(),
            console_session_ttl_s: 3600,
            max_console_sessions: 64,
        }
    }
}

/// `[[admin.token]]`: `name` is what the audit log records, `env` the variable holding the
/// token (unset: this token is off), `role` what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenConfig {
    pub name: String,
    pub env: String,
    #[serde(default)]
    pub role: AdminRole,
}

/// What a token may do: `read` only reads; `write` also changes (every non-GET request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    #[default]
    Read,
    Write,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Read => "read",
            AdminRole::Write => "write",
        }
    }
}

impl AdminConfig {
    /// Every token the config names: `token_env` as the write token `admin`, then each
    /// `[[admin.token]]`, as (name, variable, role).
    pub fn tokens(&self) -> Vec<(String, String, AdminRole)> {
        std::iter::once((
            "admin".to_string(),
            self.token_env.clone(),
            AdminRole::Write,
        ))
        .chain(
            self.token
                .iter()
                .map(|t| (t.name.clone(), t.env.clone(), t.role)),
        )
        .collect()
    }

    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, std::net::AddrParseError> {
        self.listen.parse()
    }
}

/// `[policy]` — which functions pass besides the built-in reseller set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Extra `func` names allowed through unchanged, e.g. `checkevent`.
    pub passthrough: Vec<String>,
}

/// `[limits]` — bounds on requests and upstream answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_params: usize,
    pub max_value_bytes: usize,
    /// Largest upstream response body the gateway reads (to rewrite it).
    pub max_response_bytes: usize,
    /// An upstream answer larger than this is a large answer: only
    /// `max_large_responses` of them are read and rewritten at a time.
    pub large_response_bytes: usize,
    /// How many large answers are held in memory at once; further ones wait.
    pub max_large_responses: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = crate::billmgr::Limits::default();
        LimitsConfig {
            max_body_bytes: l.max_body_bytes,
            max_params: l.max_params,
            max_value_bytes: l.max_value_bytes,
            max_response_bytes: 80 * 1024 * 1024,
            large_response_bytes: 1024 * 1024,
            max_large_responses: 2,
        }
    }
}

/// The request bounds the protocol module enforces ([`crate::billmgr::Params::parse`]).
impl From<&LimitsConfig> for crate::billmgr::Limits {
    fn from(l: &LimitsConfig) -> Self {
        crate::billmgr::Limits {
            max_body_bytes: l.max_body_bytes,
            max_params: l.max_params,
            max_value_bytes: l.max_value_bytes,
        }
    }
}

/// `[auth]` — sessions and login throttling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Sliding expiry of `func=auth` sessions.
    pub session_ttl_s: u64,
    /// Failed logins (per login and address) tolerated within `failure_window_s`.
    pub max_failures: u32,
    pub failure_window_s: u64,
    /// argon2id password verifications running at once. Unset: the number of cores.
    pub max_concurrent_verifications: Option<usize>,
    /// Verifications waiting for a slot; a login beyond them is refused at once (`auth`).
    pub max_queued_verifications: usize,
    /// Live `func=auth` sessions per reseller; a new one evicts the least recently used.
    pub max_sessions_per_reseller: usize,
    /// Live sessions in total; a new one evicts the least recently used.
    pub max_sessions: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl_s: 3600,
            max_failures: 10,
            failure_window_s: 60,
            max_concurrent_verifications: None,
            max_queued_verifications: 32,
            max_sessions_per_reseller: 1000,
            max_sessions: 100_000,
        }
    }
}

impl AuthConfig {
    /// `max_concurrent_verifications`, or the number of cores when unset.
    pub fn verifications(&self) -> usize {
        self.max_concurrent_verifications
            .unwrap_or_else(default_verifications)
    }
}

/// One verification per core: argon2id is CPU- and memory-bound.
pub fn default_verifications() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `[orders]` — reconciliation of orders whose outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    /// How often `serve` looks pending orders up on the upstream, in seconds.
    pub reconcile_interval_s: u64,
    /// Only orders claimed at least this long ago are judged, in milliseconds. Unset: the
    /// longest an upstream call can take (`upstream.connect_timeout_ms + read_timeout_ms`),
    /// so an order still in flight is never judged "not found".
    pub settle_ms: Option<u64>,
    /// How long a failed (refused, not sent, not found) order record is kept, in
    /// seconds; older ones are deleted.
    pub failed_retention_s: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            reconcile_interval_s: 60,
            settle_ms: None,
            failed_retention_s: 86_400,
        }
    }
}
