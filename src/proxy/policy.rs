//! Which functions pass: the function table ([`super::functions`]) plus the operator's
//! `[policy] passthrough` list for names the table does not know. Anything else is
//! refused with an error of type `access` naming the function, and counted by name so
//! operators can see what a billing asked for.

use super::functions::{self, Decision, Refused};
use super::{Gateway, Refusal};
use crate::billmgr::Params;
use crate::store::model::Reseller;

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

impl Gateway {
    /// What is refused before any credential is looked at: `su`, key logins.
    pub(super) fn gate(&self, func: &str, params: &Params) -> Result<(), Refusal> {
        if params.contains("su") {
            return Err(Refusal::ActAsOther);
        }
        // Key login, with or without credentials: the gateway issues no keys.
        if func == "auth" && params.contains("key") {
            return Err(Refusal::KeyLogin);
        }
        if let Err(why @ functions::Refused::Row(f)) = self.policy.check(func) {
            if f.access == functions::Access::RefuseKey {
                self.metrics.count_refused_func(func);
                return Err(Refusal::Function {
                    func: func.to_string(),
                    why,
                });
            }
        }
        Ok(())
    }

    /// May the authenticated reseller call `func`? A refusal is counted by name.
    pub(super) fn decide(
        &self,
        reseller: &Reseller,
        func: &str,
        params: &Params,
    ) -> Result<functions::Decision, Refusal> {
        self.policy.check(func).map_err(|why| {
            let name = printable(func);
            self.metrics.count_refused_func(&name);
            if why.is_unknown() {
                // Names only: a value may be a password or a session id.
                tracing::info!(reseller = %reseller.login, func = %name, params = %functions::param_names(params), "unknown function refused: allow it with [policy] passthrough if it is needed");
            } else {
                tracing::info!(reseller = %reseller.login, func = %name, "function refused by the function table");
            }
            Refusal::Function {
                func: func.to_string(),
                why,
            }
        })
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
