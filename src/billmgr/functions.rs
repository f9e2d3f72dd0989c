//! The function table: every `func` the gateway knows, as data, and the decisions derived
//! from it — whether a call passes ([`decide`]), whether its `elid` is a certificate to
//! ownership-check ([`Function::elid`]), whether it changes state and so is never resent
//! ([`changes_state`]), whether it lands in a service's history ([`is_recorded`]), and
//! whether it is an exactly-once order ([`is_order`]). `docs/protocol.md` prints the same
//! table with the reasons.
//!
//! A name that is not in the table is refused (counted by name, logged with its parameter
//! names) unless the operator lists it in `[policy] passthrough`; a passthrough function
//! has its `elid` ownership-checked like a certificate's and is never resent (an event
//! poll empties the list it reads, so even a read may change state). A passthrough entry
//! cannot re-open a row the table refuses, nor an order form the table does not know.

use super::{BmError, Params};

/// What a call of the function does on the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A list: reads only.
    List,
    /// A form: read without `sok`, submitted (changes state) with a non-empty `sok`.
    Form,
    /// A toolbar action: acts when called, `sok` or not.
    Toolbar,
    /// A file download: reads only.
    Download,
    /// Answered by the gateway itself, never forwarded.
    Local,
}

/// What the `elid` of a call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elid {
    /// No `elid` expected (it is still ownership-checked if one is sent).
    None,
    /// Certificate ids of the caller's upstream account: each must be the reseller's.
    Certificate,
    /// A plan id (local → upstream, like `pricelist`).
    Plan,
}

/// Whether the gateway lets the function through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allow,
    /// Allowed as an exactly-once order per (reseller, `remoteid`) when submitted.
    Order,
    /// Opens a session as another user (like the `su` parameter).
    RefuseSu,
    /// Admin-level on BILLmanager 6; the upstream account is customer-level.
    RefuseAdmin,
    /// Key login (`session.newkey`): the gateway issues no keys.
    RefuseKey,
    /// Called by CA processing modules inside a billing, never by a reseller.
    RefuseModule,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    pub kind: Kind,
    pub elid: Elid,
    pub access: Access,
}

const fn row(name: &'static str, kind: Kind, elid: Elid, access: Access) -> Function {
    Function {
        name,
        kind,
        elid,
        access,
    }
}

use Access::*;
use Elid::{Certificate as Cert, None as NoElid, Plan as PlanId};
use Kind::*;

/// Every function the gateway knows (BILLmanager 6's "List of API functions" for
/// certificates, plus the generic ones a reselling billing sends).
pub const TABLE: &[Function] = &[
    // Sessions, answered locally.
    row("auth", Local, NoElid, Allow),
    row("keepalive", Local, NoElid, Allow),
    row("session.newkey", Local, NoElid, RefuseKey),
    // Account and catalogue.
    row("whoami", Form, NoElid, Allow),
    row("pricelist.export", List, PlanId, Allow),
    // Certificates.
    row("certificate", List, NoElid, Allow),
    row("certificate.filter", Form, NoElid, Allow),
    row("certificate.order", Form, NoElid, Allow),
    row("certificate.order.csr", Form, NoElid, Allow),
    row("certificate.order.param", Form, NoElid, Order),
    row("v2.certificate.order.param", Form, NoElid, Order),
    row("certificate.reissue", Form, Cert, Allow),
    row("certificate.reissue.step1", Form, Cert, Allow),
    row("certificate.reissue.step2", Form, Cert, Allow),
    row("certificate.edit", Form, Cert, Allow),
    row("certificate.delete", Toolbar, Cert, Allow),
    row("certificate.sync", Toolbar, Cert, Allow),
    row("certificate.file", Download, Cert, Allow),
    row("certificate.file.edit", Form, Cert, Allow),
    row("sslkey.download", Download, Cert, Allow),
    row("sslkey.edit", Form, Cert, Allow),
    row("sslkey.delete", Toolbar, Cert, Allow),
    row("service.prolong", Form, Cert, Allow),
    // Refused.
    row("certificate.su", Toolbar, Cert, RefuseSu),
    row("certificate.open", Toolbar, Cert, RefuseAdmin),
    row("certificate.retry", Toolbar, Cert, RefuseAdmin),
    row("certificate.resume", Toolbar, Cert, RefuseAdmin),
    row("certificate.setfilter", Form, NoElid, RefuseAdmin),
    row("certificate.save", Form, Cert, RefuseModule),
    row("certificate.failed", Form, Cert, RefuseModule),
    row("service.setstatus", Form, Cert, RefuseModule),
    row("service.setexpiredate", Form, Cert, RefuseModule),
];

/// The row of `func`, if the gateway knows it.
pub fn lookup(func: &str) -> Option<&'static Function> {
    TABLE.iter().find(|f| f.name == func)
}

/// How a function is treated: a row of the table, or an operator's passthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A row that allows it.
    Known(&'static Function),
    /// Not in the table; listed in `[policy] passthrough`.
    Passthrough,
}

/// Why a function was refused; [`Refused::error`] is what the reseller receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A row that refuses it.
    Row(&'static Function),
    /// Not in the table and not a passthrough.
    Unknown,
    /// An order form the table does not know (`v2.vds.order.param`): never forwarded
    /// without a claim, passthrough or not.
    UnknownOrder,
}

impl Refused {
    pub fn error(&self, func: &str) -> BmError {
        let name = printable(func);
        let msg = match self {
            Refused::Row(f) => match f.access {
                RefuseSu => format!(
                    "The function '{name}' opens a session as another user and is not allowed through this gateway"
                ),
                RefuseAdmin => format!(
                    "The function '{name}' needs administrator rights on the upstream billing; this gateway's accounts are customer accounts"
                ),
                RefuseKey => format!(
                    "Key login ('{name}') is not supported by this gateway: log in with func=auth&username=…&password=… or send authinfo"
                ),
                RefuseModule => format!(
                    "The function '{name}' is called by processing modules inside a billing and is not available through this gateway"
                ),
                Allow | Order => format!("The function '{name}' is not available"),
            },
            Refused::Unknown => {
                format!("The function '{name}' is not available through this gateway")
            }
            Refused::UnknownOrder => format!(
                "The order function '{name}' is not available through this gateway: order with certificate.order.param"
            ),
        };
        BmError::access("func", msg).value(name)
    }

    /// Was the name unknown to the table (worth logging with its parameter names)?
    pub fn is_unknown(&self) -> bool {
        !matches!(self, Refused::Row(_))
    }
}

/// `func=auth&key=…` (a key from `session.newkey`): refused, the gateway issues no keys.
pub fn key_login_refused() -> BmError {
    BmError::access(
        "key",
        "Key login (session.newkey, func=auth&key=…) is not supported by this gateway: log in with func=auth&username=…&password=… or send authinfo",
    )
}

/// Is `func` an order form by its name (`*.order.param`)?
fn looks_like_order(func: &str) -> bool {
    func.ends_with(".order.param")
}

/// May `func` be forwarded (or answered locally)?
pub fn decide(func: &str, passthrough: &[String]) -> Result<Decision, Refused> {
    match lookup(func) {
        Some(f) if matches!(f.access, Allow | Order) => Ok(Decision::Known(f)),
        Some(f) => Err(Refused::Row(f)),
        None if looks_like_order(func) => Err(Refused::UnknownOrder),
        None if passthrough.iter().any(|p| p == func) => Ok(Decision::Passthrough),
        None => Err(Refused::Unknown),
    }
}

/// Is the submitted call an exactly-once order?
pub fn is_order(func: &str) -> bool {
    lookup(func).is_some_and(|f| f.access == Order)
}

/// Is the call's `elid` a list of certificate ids to ownership-check? True for rows that
/// say so and, conservatively, for every function outside the table (a passthrough); an
/// `elid` on a row with no `elid` is checked too, so no id goes through unchecked.
pub fn elid_is_certificate(func: &str) -> bool {
    lookup(func).is_none_or(|f| f.elid != Elid::Plan)
}

/// Does the call change something upstream? A submit (non-empty `sok`), a toolbar action,
/// or a function outside the table. Such a call is never sent twice by the gateway.
pub fn changes_state(params: &Params) -> bool {
    let Some(func) = params.func() else {
        return params.is_submit();
    };
    match lookup(func) {
        Some(f) => f.kind == Toolbar || (params.is_submit() && f.kind != Local),
        None => true,
    }
}

/// Is a forwarded call recorded in the history of the services its `elid` names? Every
/// call that changes state on a row whose `elid` is a certificate.
pub fn is_recorded(func: &str, params: &Params) -> bool {
    lookup(func).is_some_and(|f| f.elid == Elid::Certificate) && changes_state(params)
}

/// A function name as it may appear in a message or a metric label: at most 64
/// characters of `[A-Za-z0-9._-]`, anything else replaced by `?` (a label's character
/// set, stricter than [`crate::telemetry::printable`], which escapes and keeps the rest).
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

/// The parameter names of a call, printable and without repeats, for the log line of an
/// unknown function (never the values: they may carry secrets).
pub fn param_names(params: &Params) -> String {
    let mut names: Vec<String> = Vec::new();
    for (k, _) in params.iter() {
        let k = printable(k);
        if !names.contains(&k) {
            names.push(k);
        }
        if names.len() >= 64 {
            break;
        }
    }
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn names_are_unique_and_printable() {
        for (i, f) in TABLE.iter().enumerate() {
            assert_eq!(printable(f.name), f.name);
            assert!(
                TABLE[i + 1..].iter().all(|g| g.name != f.name),
                "{}",
                f.name
            );
        }
    }

    /// docs/protocol.md prints the table: every row is there.
    #[test]
    fn every_row_is_documented() {
        let doc = include_str!("../../docs/protocol.md");
        let table = &doc[doc.find("## The function table").unwrap()..];
        for f in TABLE {
            assert!(
                table.contains(&format!("| `{}`", f.name))
                    || table.contains(&format!(", `{}`", f.name)),
                "{} is missing from docs/protocol.md",
                f.name
            );
        }
    }

    #[test]
    fn allowed_functions() {
        for f in [
            "auth",
            "keepalive",
            "whoami",
            "pricelist.export",
            "certificate",
            "certificate.filter",
            "certificate.order.param",
            "v2.certificate.order.param",
            "certificate.reissue.step2",
            "certificate.edit",
            "certificate.delete",
            "certificate.sync",
            "certificate.file",
            "certificate.file.edit",
            "sslkey.download",
            "sslkey.edit",
            "sslkey.delete",
            "service.prolong",
        ] {
            assert!(
                matches!(decide(f, &[]), Ok(Decision::Known(_))),
                "{f}: {:?}",
                decide(f, &[])
            );
        }
    }

    #[test]
    fn refusals_are_access_on_func_naming_the_function() {
        let pass = vec![
            "certificate.retry".to_string(),
            "certificate.xyz".to_string(),
            "v2.vds.order.param".to_string(),
            "checkevent".to_string(),
        ];
        for (f, why) in [
            ("certificate.su", "another user"),
            ("certificate.open", "administrator"),
            ("certificate.retry", "administrator"),
            ("certificate.resume", "administrator"),
            ("certificate.setfilter", "administrator"),
            ("session.newkey", "Key login"),
            ("certificate.save", "processing modules"),
            ("service.setexpiredate", "processing modules"),
            ("v2.vds.order.param", "order function"),
            ("certificate.suspend", "not available"),
            ("user.edit", "not available"),
            ("certificate.", "not available"),
        ] {
            // a passthrough entry does not re-open a refused row or an unknown order
            let r = decide(f, &pass).unwrap_err();
            let e = r.error(f);
            assert_eq!(
                (e.kind.as_str(), e.object.as_deref(), e.value.as_deref()),
                ("access", Some("func"), Some(f)),
                "{f}"
            );
            assert!(e.msg.contains(f) && e.msg.contains(why), "{f}: {}", e.msg);
        }
        assert!(decide("certificate.suspend", &[]).unwrap_err().is_unknown());
        assert!(!decide("certificate.su", &[]).unwrap_err().is_unknown());
    }

    #[test]
    fn passthrough_allows_unknown_names_only() {
        let pass = vec!["checkevent".to_string(), "certificate.xyz".to_string()];
        assert_eq!(decide("checkevent", &pass), Ok(Decision::Passthrough));
        assert_eq!(decide("certificate.xyz", &pass), Ok(Decision::Passthrough));
        assert_eq!(decide("certificate.xyz", &[]), Err(Refused::Unknown));
    }

    #[test]
    fn orders() {
        assert!(is_order("certificate.order.param"));
        assert!(is_order("v2.certificate.order.param"));
        assert!(!is_order("certificate.order"));
        assert!(!is_order("certificate.order.csr"));
        assert!(!is_order("v2.vds.order.param"));
    }

    #[test]
    fn elid_kinds() {
        assert!(!elid_is_certificate("pricelist.export"));
        for f in [
            "sslkey.download",
            "certificate.file",
            "service.prolong",
            "certificate",
            "checkevent",
        ] {
            assert!(elid_is_certificate(f), "{f}");
        }
    }

    /// Toolbar actions change state with or without `sok`; forms only when submitted
    /// (any non-empty `sok`); lists and downloads never; functions outside the table
    /// always. Recorded: what changes state on a certificate.
    #[test]
    fn state_and_history() {
        for f in ["certificate.delete", "certificate.sync", "sslkey.delete"] {
            for p in [
                call(&[("func", f), ("elid", "5001")]),
                call(&[("func", f), ("elid", "5001, 5002"), ("sok", "ok")]),
            ] {
                assert!(changes_state(&p) && is_recorded(f, &p), "{f}");
            }
        }
        for f in [
            "certificate.edit",
            "certificate.reissue.step2",
            "service.prolong",
            "sslkey.edit",
            "certificate.file.edit",
        ] {
            let read = call(&[("func", f), ("elid", "5001")]);
            assert!(!changes_state(&read) && !is_recorded(f, &read), "{f}");
            for sok in ["ok", "yes"] {
                let submit = call(&[("func", f), ("elid", "5001"), ("sok", sok)]);
                assert!(changes_state(&submit) && is_recorded(f, &submit), "{f}");
            }
        }
        for f in [
            "certificate",
            "whoami",
            "certificate.file",
            "sslkey.download",
            "pricelist.export",
        ] {
            let read = call(&[("func", f), ("elid", "5001")]);
            assert!(!changes_state(&read) && !is_recorded(f, &read), "{f}");
        }
        let order = call(&[("func", "v2.certificate.order.param"), ("sok", "ok")]);
        assert!(changes_state(&order));
        assert!(!is_recorded("v2.certificate.order.param", &order));
        let filter = call(&[("func", "certificate.filter"), ("sok", "ok")]);
        assert!(changes_state(&filter) && !is_recorded("certificate.filter", &filter));
        let poll = call(&[("func", "checkevent")]);
        assert!(changes_state(&poll) && !is_recorded("checkevent", &poll));
    }

    #[test]
    fn printable_names_and_param_names() {
        assert_eq!(printable("user.edit"), "user.edit");
        assert_eq!(printable("a<b>\n"), "a?b??");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
        let p = call(&[
            ("func", "certificate.xyz"),
            ("elid", "5001"),
            ("authinfo", "acme:secret"),
            ("elid", "5002"),
        ]);
        assert_eq!(param_names(&p), "func,elid,authinfo");
    }
}
