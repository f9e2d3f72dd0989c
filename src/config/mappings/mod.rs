//! Mapping files: upstream accounts, resellers and plans, declared in TOML and applied to
//! the store idempotently.
//!
//! ```toml
//! [[upstream_account]]
//! name = "acme-up"
//! login = "acme@billing.example.com"
//! password_env = "ACME_UP_PASSWORD"      # or password_file = "…" (relative to this file)
//!
//! [[reseller]]
//! login = "acme"
//! password_hash = "$argon2id$…"
//! upstream_account = "acme-up"
//! plans = [101, 102]
//! markup = { percent = "15" }
//!
//! [[plan]]
//! id = 101
//! upstream_id = 3033
//! name = "PositiveSSL"
//! markup = { percent = "20", fixed = "0.50", round_to = "0.01" }
//! addons = [{ id = 201, upstream_id = 3034 }]
//! ```
//!
//! Loading goes spec (serde, as written) → validated record ([`crate::store::model`]) kept
//! with the file it came from ([`Entry`]). Cross-references (a reseller's account and
//! plans) are checked by [`MappingSet::validate_refs`], which is told what else is known —
//! the store, when applying.
//!
//! - [`spec`]   — a spec as written → a validated record, errors naming file, key, value.
//! - [`export`] — records → a file again (`mappings export`, `GET /mappings`), and a set
//!   applied to the [`Store`](crate::store::Store) as one batch of records.

pub mod export;
pub mod spec;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{base_dir, toml_message, ConfigError};
use crate::store::model::{Plan, Reseller, UpstreamAccount};

pub use export::ApplyError;
pub use spec::markup_from_spec;
use spec::{account_from_spec, plan_from_spec, reseller_from_spec};

/// One mapping file as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingFile {
    pub upstream_account: Vec<UpstreamAccountSpec>,
    pub reseller: Vec<ResellerSpec>,
    pub plan: Vec<PlanSpec>,
}

/// `[[upstream_account]]`: exactly one of `password_env` and `password_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAccountSpec {
    pub name: String,
    pub login: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// `[[reseller]]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResellerSpec {
    pub login: String,
    pub password_hash: String,
    pub upstream_account: String,
    #[serde(default)]
    pub plans: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markup: Option<MarkupSpec>,
}

impl std::fmt::Debug for ResellerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResellerSpec")
            .field("login", &self.login)
            .field("password_hash", &"***")
            .field("upstream_account", &self.upstream_account)
            .field("plans", &self.plans)
            .field("markup", &self.markup)
            .finish()
    }
}

/// `[[plan]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    pub id: u64,
    pub upstream_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markup: Option<MarkupSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<AddonSpec>,
}

/// `{ id = 201, upstream_id = 3034 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonSpec {
    pub id: u64,
    pub upstream_id: u64,
}

/// `{ percent = "20", fixed = "0.50", round_to = "0.01" }` — decimals as strings, so that
/// money is never a float.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkupSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_to: Option<String>,
}

/// A validated record and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    pub file: PathBuf,
    pub item: T,
}

/// The merged, validated content of a list of mapping files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingSet {
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
    pub upstream_accounts: Vec<Entry<UpstreamAccount>>,
    pub resellers: Vec<Entry<Reseller>>,
    pub plans: Vec<Entry<Plan>>,
}

/// Loads mapping files: each path is a file, or a directory whose `*.toml` files are read
/// in name order. Entries are validated one by one and for duplicates across the set;
/// cross-references are left to [`MappingSet::validate_refs`].
pub fn load_mappings(paths: &[PathBuf]) -> Result<MappingSet, ConfigError> {
    let mut set = MappingSet::default();
    for path in paths {
        if path.is_dir() {
            let read = std::fs::read_dir(path)
                .map_err(|e| ConfigError::file(path, format!("cannot list the directory: {e}")))?;
            let mut files = Vec::new();
            for entry in read {
                let entry = entry.map_err(|e| {
                    ConfigError::file(path, format!("cannot list the directory: {e}"))
                })?;
                let p = entry.path();
                if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            for f in files {
                set.load_file(&f)?;
            }
        } else {
            set.load_file(path)?;
        }
    }
    Ok(set)
}

impl MappingFile {
    /// Parses one mapping file's text (serde only; see [`MappingSet::add`] for validation).
    pub fn parse(text: &str, file: &Path) -> Result<MappingFile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::file(file, toml_message(&e)))
    }
}

impl MappingSet {
    /// Reads, parses and adds one file.
    pub fn load_file(&mut self, file: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::file(file, format!("cannot read the file: {e}")))?;
        let parsed = MappingFile::parse(&text, file)?;
        self.add(parsed, file)
    }

    /// Validates the entries of `mf` (read from `file`) and adds them. A name, login or id
    /// already in the set is an error naming both files. Relative `password_file` paths
    /// resolve against `file`'s directory.
    pub fn add(&mut self, mf: MappingFile, file: &Path) -> Result<(), ConfigError> {
        let dir = base_dir(file);
        fn entry<T>(file: &Path, item: T) -> Entry<T> {
            Entry {
                file: file.to_path_buf(),
                item,
            }
        }
        let mut accounts = Vec::new();
        for spec in mf.upstream_account {
            let a = account_from_spec(spec, file, &dir)?;
            let earlier = self
                .upstream_accounts
                .iter()
                .chain(&accounts)
                .find(|e: &&Entry<UpstreamAccount>| e.item.name == a.name);
            if let Some(e) = earlier {
                return Err(duplicate(
                    file,
                    &e.file,
                    format!("upstream_account '{}'", a.name),
                    "name",
                    &a.name,
                ));
            }
            accounts.push(entry(file, a));
        }
        let mut plans = Vec::new();
        for spec in mf.plan {
            let p = plan_from_spec(spec, file)?;
            let earlier = self
                .plans
                .iter()
                .chain(&plans)
                .find(|e: &&Entry<Plan>| e.item.id == p.id);
            if let Some(e) = earlier {
                return Err(duplicate(
                    file,
                    &e.file,
                    format!("plan {}", p.id),
                    "id",
                    &p.id,
                ));
            }
            plans.push(entry(file, p));
        }
        let mut resellers = Vec::new();
        for spec in mf.reseller {
            let r = reseller_from_spec(spec, file)?;
            let earlier = self
                .resellers
                .iter()
                .chain(&resellers)
                .find(|e: &&Entry<Reseller>| e.item.login == r.login);
            if let Some(e) = earlier {
                return Err(duplicate(
                    file,
                    &e.file,
                    format!("reseller '{}'", r.login),
                    "login",
                    &r.login,
                ));
            }
            resellers.push(entry(file, r));
        }
        self.files.push(file.to_path_buf());
        self.upstream_accounts.extend(accounts);
        self.plans.extend(plans);
        self.resellers.extend(resellers);
        Ok(())
    }

    /// Checks each reseller's `upstream_account` and `plans` against the set and against
    /// what else is known (e.g. the store). Errors name file, reseller, key and value.
    pub fn validate_refs(
        &self,
        known_accounts: &dyn Fn(&str) -> bool,
        known_plans: &dyn Fn(u64) -> bool,
    ) -> Result<(), ConfigError> {
        let accounts: BTreeSet<&str> = self
            .upstream_accounts
            .iter()
            .map(|e| e.item.name.as_str())
            .collect();
        let plans: BTreeSet<u64> = self.plans.iter().map(|e| e.item.id).collect();
        for Entry { file, item: r } in &self.resellers {
            let name = &r.upstream_account;
            if !accounts.contains(name.as_str()) && !known_accounts(name) {
                return Err(ConfigError::key(
                    file,
                    "upstream_account",
                    name,
                    "no upstream_account has this name",
                )
                .in_entry(format!("reseller '{}'", r.login)));
            }
            for id in &r.plans {
                if !plans.contains(id) && !known_plans(*id) {
                    return Err(ConfigError::key(
                        file,
                        "plans",
                        id,
                        format!("plan {id} is not defined"),
                    )
                    .in_entry(format!("reseller '{}'", r.login)));
                }
            }
        }
        Ok(())
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.upstream_accounts.is_empty() && self.resellers.is_empty() && self.plans.is_empty()
    }
}

fn duplicate(
    file: &Path,
    first: &Path,
    entry: String,
    key: &str,
    value: &dyn std::fmt::Display,
) -> ConfigError {
    let msg = if first == file {
        "defined twice in this file".to_string()
    } else {
        format!("already defined in {}", first.display())
    };
    ConfigError::key(file, key, value, msg).in_entry(entry)
}

#[cfg(test)]
mod tests;
