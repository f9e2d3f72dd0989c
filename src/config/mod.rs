//! `config.toml` and mapping files.
//!
//! Layers, as in river and pingora: a serde schema (`schema`) with `deny_unknown_fields`
//! and defaults defined once, then [`Config::parse`] resolves relative paths against the
//! config file's directory and validates, naming file, key and value in every error
//! ([`ConfigError`]). Mapping files ([`mappings`]) are loaded into a [`MappingSet`] that
//! the store applies; [`check`] is `resellgate check-config`.

pub mod cidr;
mod error;
pub mod mappings;
mod schema;
mod url;

use std::path::{Path, PathBuf};

pub use cidr::Cidr;
pub use error::ConfigError;
pub use mappings::{
    load_mappings, AddonSpec, Entry, MappingFile, MappingSet, MarkupSpec, PlanSpec, ResellerSpec,
    UpstreamAccountSpec,
};
pub use schema::{
    default_verifications, AdminConfig, AdminRole, AdminTokenConfig, AuthConfig, LimitsConfig,
    OrdersConfig, PolicyConfig, ServerConfig, StoreConfig, UpstreamConfig,
};
pub use url::UpstreamUrl;

/// The validated configuration. Relative paths are already resolved against the
/// directory of [`Config::file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this was loaded from.
    pub file: PathBuf,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub store: StoreConfig,
    pub admin: AdminConfig,
    pub policy: PolicyConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub orders: OrdersConfig,
    upstream_url: UpstreamUrl,
}

impl Config {
    /// Where `[store]` says the state lives: PostgreSQL when `url` is set (its password read
    /// from `password_env` now), else the sled directory `path`.
    pub fn store_location(&self) -> crate::store::Location {
        match &self.store.url {
            Some(url) => crate::store::Location::Postgres(crate::store::PgOptions {
                url: url.clone(),
                password: std::env::var(&self.store.password_env)
                    .ok()
                    .filter(|p| !p.is_empty())
                    .map(crate::secret::Secret::new),
                timeout: std::time::Duration::from_millis(self.store.timeout_ms),
                connections: self.store.connections,
                ca_file: self.store.ca_file.clone(),
            }),
            None => crate::store::Location::Sled {
                path: self.store.path.clone(),
                cache_mb: self.store.cache_mb,
            },
        }
    }

    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text` as if read from `file` (relative paths resolve against
    /// `file`'s directory; the file itself need not exist).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: schema::ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError::file(file, toml_message(&e)))?;
        let dir = base_dir(file);
        let schema::ConfigFile {
            mut server,
            mut upstream,
            mut store,
            admin,
            policy,
            limits,
            auth,
            orders,
        } = raw;
        server.tls_cert = server.tls_cert.map(|p| dir.join(p));
        server.tls_key = server.tls_key.map(|p| dir.join(p));
        upstream.ca_file = upstream.ca_file.map(|p| dir.join(p));
        store.path = dir.join(&store.path);
        store.ca_file = store.ca_file.map(|p| dir.join(p));

        if upstream.url.is_empty() {
            return Err(ConfigError::key(
                file,
                "upstream.url",
                "",
                "is required (e.g. \"https://billing.example.com/billmgr\")",
            )
            .without_value());
        }
        let upstream_url = UpstreamUrl::parse(&upstream.url)
            .map_err(|why| ConfigError::key(file, "upstream.url", &upstream.url, why))?;
        let config = Config {
            file: file.to_path_buf(),
            server,
            upstream,
            store,
            admin,
            policy,
            limits,
            auth,
            orders,
            upstream_url,
        };
        config.validate()?;
        Ok(config)
    }

    /// How old a pending order must be before reconciliation judges it
    /// (`[orders] settle_ms`, by default the longest an upstream call can take).
    pub fn order_settle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.orders
                .settle_ms
                .unwrap_or(self.upstream.connect_timeout_ms + self.upstream.read_timeout_ms),
        )
    }

    /// How often `serve` reconciles pending orders (`[orders] reconcile_interval_s`).
    pub fn reconcile_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.orders.reconcile_interval_s)
    }

    /// Checks everything serde cannot: addresses, positive numbers, files that must exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let file = self.file.as_path();
        let err = |key: &str, value: &dyn std::fmt::Display, msg: &str| {
            ConfigError::key(file, key, value, msg)
        };
        if self.server.listen_addr().is_err() {
            return Err(err(
                "server.listen",
                &self.server.listen,
                "not a socket address (HOST:PORT, e.g. 127.0.0.1:1500)",
            ));
        }
        if self.admin.listen_addr().is_err() {
            return Err(err(
                "admin.listen",
                &self.admin.listen,
                "not a socket address (HOST:PORT, e.g. 127.0.0.1:1501)",
            ));
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(c), None) => {
                return Err(err(
                    "server.tls_key",
                    &"",
                    &format!("is required with server.tls_cert ('{}')", c.display()),
                )
                .without_value())
            }
            (None, Some(k)) => {
                return Err(err(
                    "server.tls_cert",
                    &"",
                    &format!("is required with server.tls_key ('{}')", k.display()),
                )
                .without_value())
            }
            _ => {}
        }
        for (key, path) in [
            ("server.tls_cert", &self.server.tls_cert),
            ("server.tls_key", &self.server.tls_key),
            ("upstream.ca_file", &self.upstream.ca_file),
        ] {
            if let Some(p) = path {
                if !p.is_file() {
                    return Err(err(
                        key,
                        &p.display(),
                        "the file does not exist or is not a regular file",
                    ));
                }
            }
        }
        if let Err((entry, why)) = cidr::parse_all(&self.server.trusted_proxies) {
            return Err(err("server.trusted_proxies", &entry, &why));
        }
        if self.server.paths.is_empty() {
            return Err(err("server.paths", &"", "must list at least one path").without_value());
        }
        if let Some(p) = self.server.paths.iter().find(|p| {
            !p.starts_with('/') || p.contains(['?', '#']) || p.chars().any(char::is_whitespace)
        }) {
            return Err(err(
                "server.paths",
                p,
                "a path starts with '/' and has no query, fragment or spaces",
            ));
        }
        if self.server.threads == 0 {
            return Err(err("server.threads", &0, "must be at least 1"));
        }
        let positive: [(&str, u64); 15] = [
            ("store.cache_mb", self.store.cache_mb),
            ("store.timeout_ms", self.store.timeout_ms),
            ("store.connections", self.store.connections as u64),
            ("orders.failed_retention_s", self.orders.failed_retention_s),
            ("server.header_timeout_ms", self.server.header_timeout_ms),
            (
                "server.max_connections_per_ip",
                self.server.max_connections_per_ip as u64,
            ),
            (
                "server.keepalive_timeout_s",
                self.server.keepalive_timeout_s,
            ),
            ("server.client_timeout_ms", self.server.client_timeout_ms),
            (
                "upstream.connect_timeout_ms",
                self.upstream.connect_timeout_ms,
            ),
            ("upstream.read_timeout_ms", self.upstream.read_timeout_ms),
            ("upstream.idle_timeout_ms", self.upstream.idle_timeout_ms),
            ("auth.session_ttl_s", self.auth.session_ttl_s),
            ("auth.max_failures", u64::from(self.auth.max_failures)),
            ("auth.failure_window_s", self.auth.failure_window_s),
            (
                "orders.reconcile_interval_s",
                self.orders.reconcile_interval_s,
            ),
        ];
        let limits: [(&str, usize); 9] = [
            (
                "auth.max_concurrent_verifications",
                self.auth.verifications(),
            ),
            (
                "auth.max_sessions_per_reseller",
                self.auth.max_sessions_per_reseller,
            ),
            ("auth.max_sessions", self.auth.max_sessions),
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            ("limits.max_params", self.limits.max_params),
            ("limits.max_value_bytes", self.limits.max_value_bytes),
            ("limits.max_response_bytes", self.limits.max_response_bytes),
            (
                "limits.large_response_bytes",
                self.limits.large_response_bytes,
            ),
            (
                "limits.max_large_responses",
                self.limits.max_large_responses,
            ),
        ];
        for (key, v) in positive
            .into_iter()
            .chain(limits.map(|(k, v)| (k, v as u64)))
        {
            if v == 0 {
                return Err(err(key, &0, "must be greater than 0"));
            }
        }
        if self.store.path.as_os_str().is_empty() {
            return Err(err("store.path", &"", "must not be empty").without_value());
        }
        if let Some(url) = &self.store.url {
            // The URL is shown in the error only when it has no password in it.
            crate::store::postgres::check_url(url).map_err(|why| {
                if why.contains("password") {
                    err("store.url", &"", &why).without_value()
                } else {
                    err("store.url", url, &why)
                }
            })?;
        }
        if self.store.connections > 64 {
            return Err(err(
                "store.connections",
                &self.store.connections,
                "must be at most 64",
            ));
        }
        if !is_env_name(&self.store.password_env) {
            return Err(err(
                "store.password_env",
                &self.store.password_env,
                "not an environment variable name (letters, digits, '_')",
            ));
        }
        if !is_env_name(&self.admin.token_env) {
            return Err(err(
                "admin.token_env",
                &self.admin.token_env,
                "not an environment variable name (letters, digits, '_')",
            ));
        }
        if self.admin.console_session_ttl_s == 0 {
            return Err(err(
                "admin.console_session_ttl_s",
                &0,
                "must be greater than 0",
            ));
        }
        if self.admin.max_console_sessions == 0 {
            return Err(err(
                "admin.max_console_sessions",
                &0,
                "must be greater than 0",
            ));
        }
        let mut names = std::collections::BTreeSet::from(["admin".to_string()]);
        for (i, t) in self.admin.token.iter().enumerate() {
            let key = |k: &str| format!("admin.token[{i}].{k}");
            if t.name.is_empty()
                || t.name.len() > 64
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(err(
                    &key("name"),
                    &t.name,
                    "1 to 64 letters, digits, '.', '_' or '-'",
                ));
            }
            if !names.insert(t.name.clone()) {
                return Err(err(
                    &key("name"),
                    &t.name,
                    "used twice ('admin' is the token_env token)",
                ));
            }
            if !is_env_name(&t.env) {
                return Err(err(
                    &key("env"),
                    &t.env,
                    "not an environment variable name (letters, digits, '_')",
                ));
            }
        }
        for (i, name) in self.policy.passthrough.iter().enumerate() {
            let key = format!("policy.passthrough[{i}]");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(err(
                    &key,
                    name,
                    "not a function name (letters, digits, '.', '_', '-')",
                ));
            }
            if name == "su" || name == "auth" {
                return Err(err(
                    &key,
                    name,
                    "this function is handled by the gateway and cannot be passed through",
                ));
            }
        }
        Ok(())
    }

    /// The request bounds the protocol module enforces.
    pub fn limits(&self) -> crate::billmgr::Limits {
        crate::billmgr::Limits::from(&self.limits)
    }

    /// The parsed `upstream.url`.
    pub fn upstream_url(&self) -> &UpstreamUrl {
        &self.upstream_url
    }

    /// The directory relative paths resolve against.
    pub fn dir(&self) -> PathBuf {
        base_dir(&self.file)
    }

    /// The default mapping folder: `mappings/` beside the config file.
    pub fn default_mappings_dir(&self) -> PathBuf {
        self.dir().join("mappings")
    }
}

/// `resellgate check-config`: validates the config and the mapping files (by default the
/// `mappings/` folder beside the config; a missing default folder is fine) and answers a
/// one-line summary. Upstream password variables need not be set.
pub fn check(config_path: &Path, mapping_paths: &[PathBuf]) -> Result<String, ConfigError> {
    let config = Config::load(config_path)?;
    let paths: Vec<PathBuf> = if mapping_paths.is_empty() {
        let dir = config.default_mappings_dir();
        if dir.is_dir() {
            vec![dir]
        } else {
            Vec::new()
        }
    } else {
        mapping_paths.to_vec()
    };
    let set = load_mappings(&paths)?;
    set.validate_refs(&|_| false, &|_| false)?;
    Ok(format!(
        "{}: ok; {}: {}, {}, {}",
        config_path.display(),
        plural(set.files.len(), "mapping file", "mapping files"),
        plural(
            set.upstream_accounts.len(),
            "upstream account",
            "upstream accounts"
        ),
        plural(set.resellers.len(), "reseller", "resellers"),
        plural(set.plans.len(), "plan", "plans"),
    ))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The directory of `file`, made absolute so resolved paths survive a change of directory.
pub(crate) fn base_dir(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// toml's message already names the key and shows the line; keep it on one logical block.
pub(crate) fn toml_message(e: &toml::de::Error) -> String {
    e.to_string().trim_end().to_string()
}

pub(crate) fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
