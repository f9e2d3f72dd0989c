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

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{base_dir, is_env_name, toml_message, ConfigError};
use crate::secret::{validate_hash, PasswordSource};
use crate::store::model::{Addon, Markup, Plan, Reseller, UpstreamAccount};

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
    #[serde(default)]
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

    /// Builds the file that declares exactly these records (what `mappings export` prints).
    pub fn from_records<'a>(
        accounts: impl IntoIterator<Item = &'a UpstreamAccount>,
        resellers: impl IntoIterator<Item = &'a Reseller>,
        plans: impl IntoIterator<Item = &'a Plan>,
    ) -> MappingFile {
        MappingFile {
            upstream_account: accounts
                .into_iter()
                .map(UpstreamAccountSpec::from)
                .collect(),
            reseller: resellers.into_iter().map(ResellerSpec::from).collect(),
            plan: plans.into_iter().map(PlanSpec::from).collect(),
        }
    }

    /// The file as TOML, in the documented layout (inline markups and add-ons).
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for a in &self.upstream_account {
            out.push_str("[[upstream_account]]\n");
            kv(&mut out, "name", &q(&a.name));
            kv(&mut out, "login", &q(&a.login));
            if let Some(env) = &a.password_env {
                kv(&mut out, "password_env", &q(env));
            }
            if let Some(file) = &a.password_file {
                kv(&mut out, "password_file", &q(&file.to_string_lossy()));
            }
            out.push('\n');
        }
        for r in &self.reseller {
            out.push_str("[[reseller]]\n");
            kv(&mut out, "login", &q(&r.login));
            kv(&mut out, "password_hash", &q(&r.password_hash));
            kv(&mut out, "upstream_account", &q(&r.upstream_account));
            let plans: Vec<String> = r.plans.iter().map(u64::to_string).collect();
            kv(&mut out, "plans", &format!("[{}]", plans.join(", ")));
            if let Some(m) = &r.markup {
                kv(&mut out, "markup", &markup_inline(m));
            }
            out.push('\n');
        }
        for p in &self.plan {
            out.push_str("[[plan]]\n");
            kv(&mut out, "id", &p.id.to_string());
            kv(&mut out, "upstream_id", &p.upstream_id.to_string());
            if let Some(name) = &p.name {
                kv(&mut out, "name", &q(name));
            }
            if let Some(m) = &p.markup {
                kv(&mut out, "markup", &markup_inline(m));
            }
            if !p.addons.is_empty() {
                let addons: Vec<String> = p
                    .addons
                    .iter()
                    .map(|a| format!("{{ id = {}, upstream_id = {} }}", a.id, a.upstream_id))
                    .collect();
                kv(&mut out, "addons", &format!("[{}]", addons.join(", ")));
            }
            out.push('\n');
        }
        if out.ends_with("\n\n") {
            out.pop();
        }
        out
    }
}

fn kv(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {value}");
}

/// A TOML basic string with everything escaped that must be.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn markup_inline(m: &MarkupSpec) -> String {
    let parts: Vec<String> = [
        ("percent", &m.percent),
        ("fixed", &m.fixed),
        ("round_to", &m.round_to),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} = {}", q(v))))
    .collect();
    if parts.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

impl From<&UpstreamAccount> for UpstreamAccountSpec {
    fn from(a: &UpstreamAccount) -> Self {
        let (password_env, password_file) = match &a.password {
            PasswordSource::Env(name) => (Some(name.clone()), None),
            PasswordSource::File(path) => (None, Some(path.clone())),
        };
        UpstreamAccountSpec {
            name: a.name.clone(),
            login: a.login.clone(),
            password_env,
            password_file,
        }
    }
}

impl From<&Reseller> for ResellerSpec {
    fn from(r: &Reseller) -> Self {
        ResellerSpec {
            login: r.login.clone(),
            password_hash: r.password_hash.clone(),
            upstream_account: r.upstream_account.clone(),
            plans: r.plans.clone(),
            markup: r.markup.as_ref().map(MarkupSpec::from),
        }
    }
}

impl From<&Plan> for PlanSpec {
    fn from(p: &Plan) -> Self {
        PlanSpec {
            id: p.id,
            upstream_id: p.upstream_id,
            name: p.name.clone(),
            markup: p.markup.as_ref().map(MarkupSpec::from),
            addons: p
                .addons
                .iter()
                .map(|a| AddonSpec {
                    id: a.id,
                    upstream_id: a.upstream_id,
                })
                .collect(),
        }
    }
}

impl From<&Markup> for MarkupSpec {
    /// Default parts are left out, so an export reads like a hand-written file.
    fn from(m: &Markup) -> Self {
        let d = Markup::default();
        MarkupSpec {
            percent: (m.percent != d.percent).then(|| m.percent.to_string()),
            fixed: (m.fixed != d.fixed).then(|| m.fixed.to_string()),
            round_to: (m.round_to != d.round_to).then(|| m.round_to.to_string()),
        }
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

/// A login goes into `authinfo=login:password`: no `:`, no spaces or control characters.
fn check_login(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.len() > 256 {
        return Err("is longer than 256 bytes");
    }
    if value.contains(':') {
        return Err("must not contain ':' (authinfo is login:password)");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    Ok(())
}

fn account_from_spec(
    spec: UpstreamAccountSpec,
    file: &Path,
    dir: &Path,
) -> Result<UpstreamAccount, ConfigError> {
    let entry = format!("upstream_account '{}'", spec.name);
    let err = |key: &str, value: &dyn std::fmt::Display, msg: &str| {
        ConfigError::key(file, key, value, msg).in_entry(entry.clone())
    };
    if spec.name.is_empty()
        || spec
            .name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(err(
            "name",
            &spec.name,
            "must be non-empty, without spaces or control characters",
        ));
    }
    check_login(&spec.login).map_err(|m| err("login", &spec.login, m))?;
    let password = match (spec.password_env, spec.password_file) {
        (Some(env), None) => {
            if !is_env_name(&env) {
                return Err(err(
                    "password_env",
                    &env,
                    "not an environment variable name (letters, digits, '_')",
                ));
            }
            PasswordSource::Env(env)
        }
        (None, Some(path)) => {
            if path.as_os_str().is_empty() {
                return Err(err("password_file", &"", "must not be empty").without_value());
            }
            PasswordSource::File(dir.join(path))
        }
        (Some(_), Some(_)) => {
            return Err(err(
                "password_env",
                &"",
                "give password_env or password_file, not both",
            )
            .without_value())
        }
        (None, None) => {
            return Err(err(
                "password_env",
                &"",
                "one of password_env or password_file is required",
            )
            .without_value())
        }
    };
    Ok(UpstreamAccount {
        name: spec.name,
        login: spec.login,
        password,
    })
}

fn reseller_from_spec(spec: ResellerSpec, file: &Path) -> Result<Reseller, ConfigError> {
    let entry = format!("reseller '{}'", spec.login);
    let err = |key: &str, value: &dyn std::fmt::Display, msg: &str| {
        ConfigError::key(file, key, value, msg).in_entry(entry.clone())
    };
    check_login(&spec.login).map_err(|m| err("login", &spec.login, m))?;
    // Never echo the value: a plaintext password pasted by mistake must not reach a log.
    validate_hash(&spec.password_hash).map_err(|e| {
        err(
            "password_hash",
            &"",
            &format!("{e} (make one with `resellgate hash-password`)"),
        )
        .without_value()
    })?;
    if spec.upstream_account.is_empty() {
        return Err(err("upstream_account", &"", "must not be empty").without_value());
    }
    let mut seen = BTreeSet::new();
    for id in &spec.plans {
        if !seen.insert(*id) {
            return Err(err("plans", id, "listed twice"));
        }
    }
    let markup = spec
        .markup
        .as_ref()
        .map(|m| markup_from_spec(m, file, &entry))
        .transpose()?;
    Ok(Reseller {
        login: spec.login,
        password_hash: spec.password_hash,
        upstream_account: spec.upstream_account,
        plans: spec.plans,
        markup,
    })
}

fn plan_from_spec(spec: PlanSpec, file: &Path) -> Result<Plan, ConfigError> {
    let entry = format!("plan {}", spec.id);
    let err = |key: &str, value: &dyn std::fmt::Display, msg: &str| {
        ConfigError::key(file, key, value, msg).in_entry(entry.clone())
    };
    if spec.id == 0 {
        return Err(err("id", &0, "must be greater than 0"));
    }
    if spec.upstream_id == 0 {
        return Err(err("upstream_id", &0, "must be greater than 0"));
    }
    if let Some(name) = &spec.name {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(err(
                "name",
                name,
                "must be non-empty, without control characters",
            ));
        }
    }
    let mut local = HashMap::new();
    let mut upstream = HashMap::new();
    for (i, a) in spec.addons.iter().enumerate() {
        if a.id == 0 {
            return Err(err(
                &format!("addons[{i}].id"),
                &0,
                "must be greater than 0",
            ));
        }
        if a.upstream_id == 0 {
            return Err(err(
                &format!("addons[{i}].upstream_id"),
                &0,
                "must be greater than 0",
            ));
        }
        if local.insert(a.id, i).is_some() {
            return Err(err(
                &format!("addons[{i}].id"),
                &a.id,
                "listed twice in this plan",
            ));
        }
        if upstream.insert(a.upstream_id, i).is_some() {
            return Err(err(
                &format!("addons[{i}].upstream_id"),
                &a.upstream_id,
                "listed twice in this plan",
            ));
        }
    }
    let markup = spec
        .markup
        .as_ref()
        .map(|m| markup_from_spec(m, file, &entry))
        .transpose()?;
    Ok(Plan {
        id: spec.id,
        upstream_id: spec.upstream_id,
        name: spec.name,
        markup,
        addons: spec
            .addons
            .iter()
            .map(|a| Addon {
                id: a.id,
                upstream_id: a.upstream_id,
            })
            .collect(),
    })
}

/// Parses a markup; missing parts take [`Markup::default`]'s values.
pub fn markup_from_spec(
    spec: &MarkupSpec,
    file: &Path,
    entry: &str,
) -> Result<Markup, ConfigError> {
    let d = Markup::default();
    let parse = |key: &str, v: &Option<String>, default: Decimal| -> Result<Decimal, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => Decimal::from_str(s.trim()).map_err(|_| {
                ConfigError::key(
                    file,
                    format!("markup.{key}"),
                    s,
                    "not a decimal number (e.g. \"15\" or \"0.50\")",
                )
                .in_entry(entry)
            }),
        }
    };
    let m = Markup {
        percent: parse("percent", &spec.percent, d.percent)?,
        fixed: parse("fixed", &spec.fixed, d.fixed)?,
        round_to: parse("round_to", &spec.round_to, d.round_to)?,
    };
    if m.percent < Decimal::from(-100) {
        return Err(
            ConfigError::key(file, "markup.percent", m.percent, "must be at least -100")
                .in_entry(entry),
        );
    }
    if m.round_to <= Decimal::ZERO {
        return Err(ConfigError::key(
            file,
            "markup.round_to",
            m.round_to,
            "must be greater than 0",
        )
        .in_entry(entry));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/demo.toml")
    }

    /// A valid argon2id hash, made once (hashing is slow in debug builds).
    fn hash() -> &'static str {
        static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        H.get_or_init(|| crate::secret::hash_password("pw").unwrap())
    }

    fn one(text: &str) -> Result<MappingSet, ConfigError> {
        let mut set = MappingSet::default();
        set.add(
            MappingFile::parse(text, Path::new("/m/a.toml"))?,
            Path::new("/m/a.toml"),
        )?;
        set.validate_refs(&|_| false, &|_| false)?;
        Ok(set)
    }

    fn err(text: &str) -> String {
        one(text).unwrap_err().to_string()
    }

    fn reseller(extra: &str) -> String {
        format!(
            "[[upstream_account]]\nname = \"up\"\nlogin = \"u@x\"\npassword_env = \"UP_PW\"\n\
             [[plan]]\nid = 1\nupstream_id = 10\n\
             [[reseller]]\nlogin = \"acme\"\npassword_hash = \"{}\"\nupstream_account = \"up\"\nplans = [1]\n{extra}",
            hash()
        )
    }

    #[test]
    fn demo_loads_and_validates() {
        let set = load_mappings(&[demo()]).unwrap();
        set.validate_refs(&|_| false, &|_| false).unwrap();
        assert_eq!(set.files, vec![demo()]);
        assert_eq!(set.upstream_accounts.len(), 2);
        assert_eq!(set.resellers.len(), 2);
        assert_eq!(set.plans.len(), 3);
        let acme = &set
            .resellers
            .iter()
            .find(|e| e.item.login == "acme")
            .unwrap()
            .item;
        assert_eq!(acme.plans, vec![101, 102, 103]);
        assert!(crate::secret::verify_password(
            &acme.password_hash,
            "acme-demo-pw"
        ));
        let globex = &set
            .resellers
            .iter()
            .find(|e| e.item.login == "globex")
            .unwrap()
            .item;
        assert!(crate::secret::verify_password(
            &globex.password_hash,
            "globex-demo-pw"
        ));
        assert_eq!(globex.markup.unwrap().percent, Decimal::from(10));
        let p101 = &set.plans.iter().find(|e| e.item.id == 101).unwrap().item;
        assert_eq!(p101.upstream_id, 3033);
        assert_eq!(p101.addon_upstream_id(201), Some(3034));
        let m = p101.markup.unwrap();
        assert_eq!(
            (m.percent, m.fixed, m.round_to),
            (Decimal::from(20), Decimal::new(50, 2), Decimal::new(1, 2))
        );
        let p103 = &set.plans.iter().find(|e| e.item.id == 103).unwrap().item;
        assert_eq!(p103.markup.unwrap().round_to, Decimal::ONE);
        let acc = &set.upstream_accounts[0].item;
        assert_eq!(acc.password, PasswordSource::Env("ACME_UP_PASSWORD".into()));
    }

    #[test]
    fn directory_loads_toml_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "[[plan]]\nid = 2\nupstream_id = 20\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "[[plan]]\nid = 1\nupstream_id = 10\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not toml").unwrap();
        let set = load_mappings(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(
            set.files,
            vec![dir.path().join("a.toml"), dir.path().join("b.toml")]
        );
        assert_eq!(
            set.plans.iter().map(|e| e.item.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn duplicates_across_files_name_both() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        std::fs::write(&a, "[[plan]]\nid = 7\nupstream_id = 10\n").unwrap();
        std::fs::write(&b, "[[plan]]\nid = 7\nupstream_id = 11\n").unwrap();
        let e = load_mappings(&[a.clone(), b.clone()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}: plan 7: key 'id': value '7'", b.display())),
            "{e}"
        );
        assert!(
            e.contains(&format!("already defined in {}", a.display())),
            "{e}"
        );
        let e = err(&format!("{}{}", reseller(""), reseller("")));
        assert!(
            e.contains("upstream_account 'up': key 'name': value 'up': defined twice"),
            "{e}"
        );
    }

    #[test]
    fn valid_reseller_entry() {
        let set = one(&reseller("markup = { percent = \"15\" }\n")).unwrap();
        assert_eq!(
            set.resellers[0].item.markup.unwrap().percent,
            Decimal::from(15)
        );
        assert_eq!(
            set.resellers[0].item.markup.unwrap().round_to,
            Decimal::new(1, 2)
        );
    }

    #[test]
    fn reference_errors_name_entry_key_value() {
        let text = reseller("").replace("upstream_account = \"up\"", "upstream_account = \"nope\"");
        assert_eq!(
            err(&text),
            "/m/a.toml: reseller 'acme': key 'upstream_account': value 'nope': no upstream_account has this name"
        );
        let text = reseller("").replace("plans = [1]", "plans = [1, 9]");
        assert_eq!(
            err(&text),
            "/m/a.toml: reseller 'acme': key 'plans': value '9': plan 9 is not defined"
        );
        // Known elsewhere (the store): fine.
        let mut set = MappingSet::default();
        set.add(
            MappingFile::parse(&text, Path::new("/m/a.toml")).unwrap(),
            Path::new("/m/a.toml"),
        )
        .unwrap();
        set.validate_refs(&|_| false, &|id| id == 9).unwrap();
    }

    #[test]
    fn bad_hash_named_without_value() {
        let text = reseller("").replace(hash(), "hunter2");
        let e = err(&text);
        assert!(
            e.starts_with("/m/a.toml: reseller 'acme': key 'password_hash': "),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn markup_errors() {
        let e = err(&reseller("markup = { percent = \"abc\" }\n"));
        assert!(
            e.contains("reseller 'acme': key 'markup.percent': value 'abc': not a decimal"),
            "{e}"
        );
        let e = err(&reseller("markup = { percent = \"-101\" }\n"));
        assert!(
            e.contains("key 'markup.percent': value '-101': must be at least -100"),
            "{e}"
        );
        let e = err(&reseller("markup = { round_to = \"0\" }\n"));
        assert!(e.contains("key 'markup.round_to': value '0'"), "{e}");
        let e = err(
            "[[plan]]\nid = 5\nupstream_id = 50\nmarkup = { percent = \"1\", extra = \"2\" }\n",
        );
        assert!(e.starts_with("/m/a.toml: ") && e.contains("extra"), "{e}");
        let e = err("[[plan]]\nid = 5\nupstream_id = 50\nmarkup = { percent = 15 }\n");
        assert!(e.starts_with("/m/a.toml: ") && e.contains("percent"), "{e}");
    }

    #[test]
    fn entry_errors() {
        let e = err("[[plan]]\nid = 5\nupstream_id = 50\naddons = [{ id = 1, upstream_id = 2 }, { id = 1, upstream_id = 3 }]\n");
        assert!(
            e.contains("plan 5: key 'addons[1].id': value '1': listed twice"),
            "{e}"
        );
        let e = err("[[plan]]\nid = 0\nupstream_id = 50\n");
        assert!(e.contains("plan 0: key 'id'"), "{e}");
        let e = err("[[upstream_account]]\nname = \"up\"\nlogin = \"a:b\"\npassword_env = \"X\"\n");
        assert!(
            e.contains("upstream_account 'up': key 'login': value 'a:b'"),
            "{e}"
        );
        let e = err("[[upstream_account]]\nname = \"up\"\nlogin = \"a\"\n");
        assert!(
            e.contains("upstream_account 'up': key 'password_env'") && e.contains("required"),
            "{e}"
        );
        let e = err("[[upstream_account]]\nname = \"up\"\nlogin = \"a\"\npassword_env = \"X\"\npassword_file = \"f\"\n");
        assert!(e.contains("not both"), "{e}");
        let e = err(&reseller("").replace("plans = [1]", "plans = [1, 1]"));
        assert!(
            e.contains("reseller 'acme': key 'plans': value '1': listed twice"),
            "{e}"
        );
        let e = err("[[reseler]]\nlogin = \"x\"\n");
        assert!(e.starts_with("/m/a.toml: ") && e.contains("reseler"), "{e}");
    }

    #[test]
    fn password_file_relative_to_mapping_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("maps");
        std::fs::create_dir(&sub).unwrap();
        let f = sub.join("x.toml");
        std::fs::write(&f, "[[upstream_account]]\nname = \"up\"\nlogin = \"a\"\npassword_file = \"secrets/up.pw\"\n").unwrap();
        let set = load_mappings(&[f]).unwrap();
        assert_eq!(
            set.upstream_accounts[0].item.password,
            PasswordSource::File(sub.join("secrets/up.pw"))
        );
    }

    #[test]
    fn to_toml_round_trips() {
        let set = load_mappings(&[demo()]).unwrap();
        let mf = MappingFile::from_records(
            set.upstream_accounts.iter().map(|e| &e.item),
            set.resellers.iter().map(|e| &e.item),
            set.plans.iter().map(|e| &e.item),
        );
        let text = mf.to_toml();
        assert!(
            text.contains("markup = { percent = \"20\", fixed = \"0.50\" }"),
            "{text}"
        );
        assert_eq!(MappingFile::parse(&text, Path::new("x.toml")).unwrap(), mf);
        let odd = MappingFile {
            upstream_account: vec![UpstreamAccountSpec {
                name: "we\"ird\\\u{1}".into(),
                login: "l".into(),
                password_env: None,
                password_file: Some("/a b/\"c\"".into()),
            }],
            reseller: vec![],
            plan: vec![PlanSpec {
                id: 1,
                upstream_id: 2,
                name: Some("ü\n".into()),
                markup: Some(MarkupSpec::default()),
                addons: vec![],
            }],
        };
        assert_eq!(
            MappingFile::parse(&odd.to_toml(), Path::new("x.toml")).unwrap(),
            odd
        );
    }
}
