//! From a spec as written to a validated record: every check of one entry, with errors
//! that name the file, the entry, the key and the value (never a password hash's value).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::{MarkupSpec, PlanSpec, ResellerSpec, UpstreamAccountSpec};
use crate::config::{is_env_name, ConfigError};
use crate::secret::{validate_hash, PasswordSource};
use crate::store::model::{Addon, Markup, Plan, Reseller, UpstreamAccount};

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

pub(super) fn account_from_spec(
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

pub(super) fn reseller_from_spec(spec: ResellerSpec, file: &Path) -> Result<Reseller, ConfigError> {
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

pub(super) fn plan_from_spec(spec: PlanSpec, file: &Path) -> Result<Plan, ConfigError> {
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
