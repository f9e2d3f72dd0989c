//! Which functions a reseller may call through the gateway.
//!
//! Allowed: `certificate` and `certificate.*`, `pricelist.export`, `service.prolong`,
//! `whoami` (forwarded), `auth` (answered locally), plus the operator's
//! `[policy] passthrough` list. Anything else is refused with an error of type `access`
//! and counted by name so operators can see what a billing asked for.

use crate::billmgr::BmError;

/// Functions the gateway forwards without configuration.
pub const BUILTIN: &[&str] = &["pricelist.export", "service.prolong", "whoami"];

#[derive(Debug, Clone, Default)]
pub struct Policy {
    passthrough: Vec<String>,
}

impl Policy {
    pub fn new(passthrough: &[String]) -> Self {
        Policy {
            passthrough: passthrough.to_vec(),
        }
    }

    /// May `func` be forwarded for an authenticated reseller?
    pub fn check(&self, func: &str) -> Result<(), BmError> {
        let allowed = func == "certificate"
            || func
                .strip_prefix("certificate.")
                .is_some_and(|rest| !rest.is_empty())
            || BUILTIN.contains(&func)
            || self.passthrough.iter().any(|p| p == func);
        if allowed {
            Ok(())
        } else {
            Err(BmError::access(
                "func",
                format!(
                    "The function '{}' is not available through this gateway",
                    printable(func)
                ),
            ))
        }
    }
}

/// A function name as it may appear in a message or a metric label: at most 64
/// characters of `[A-Za-z0-9._-]`, anything else replaced by `?`.
pub fn printable(func: &str) -> String {
    func.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_and_certificate_functions_pass() {
        let p = Policy::new(&[]);
        for f in [
            "certificate",
            "certificate.order.param",
            "certificate.reissue.step2",
            "pricelist.export",
            "service.prolong",
            "whoami",
        ] {
            p.check(f).unwrap();
        }
    }

    #[test]
    fn others_are_refused_with_access() {
        let p = Policy::new(&["checkevent".to_string()]);
        p.check("checkevent").unwrap();
        for f in [
            "user.edit",
            "certificatex",
            "certificate.",
            "su",
            "pricelist",
            "service.prolongx",
        ] {
            let e = p.check(f).unwrap_err();
            assert_eq!(
                (e.kind.as_str(), e.object.as_deref()),
                ("access", Some("func")),
                "{f}"
            );
        }
    }

    #[test]
    fn printable_names() {
        assert_eq!(printable("user.edit"), "user.edit");
        assert_eq!(printable("a<b>\n"), "a?b??");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }
}
