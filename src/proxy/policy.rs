//! Which functions pass: the function table ([`super::functions`]) plus the operator's
//! `[policy] passthrough` list for names the table does not know. Anything else is
//! refused with an error of type `access` naming the function, and counted by name so
//! operators can see what a billing asked for.

use super::functions::{self, Decision, Refused};

pub use super::functions::printable;

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

    /// May `func` be forwarded (or answered locally) for an authenticated reseller?
    pub fn check(&self, func: &str) -> Result<Decision, Refused> {
        functions::decide(func, &self.passthrough)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_functions_pass_others_are_refused() {
        let p = Policy::new(&["checkevent".to_string()]);
        assert_eq!(p.check("checkevent"), Ok(Decision::Passthrough));
        for f in [
            "certificate",
            "certificate.order.param",
            "certificate.reissue.step2",
            "pricelist.export",
            "service.prolong",
            "whoami",
        ] {
            assert!(matches!(p.check(f), Ok(Decision::Known(_))), "{f}");
        }
        for f in [
            "user.edit",
            "certificatex",
            "certificate.",
            "certificate.suspend",
            "su",
            "pricelist",
            "service.prolongx",
        ] {
            let e = p.check(f).unwrap_err().error(f);
            assert_eq!(
                (e.kind.as_str(), e.object.as_deref()),
                ("access", Some("func")),
                "{f}"
            );
        }
    }
}
