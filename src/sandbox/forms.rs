//! The sandbox's stateless parts: order forms, the checks of ordered fields (plan,
//! period, contacts, names, approver e-mail) and small document builders.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::catalog::{self, money4, Plan};
use super::csr;
use crate::billmgr::{BmError, Element, ErrorType, Params};

/// What a handler answers: a document, or an error [`super::logic`] turns into one.
pub(super) type Answer = Result<Element, BmError>;

/// Mailboxes a CA accepts for domain-control validation.
pub(super) const APPROVER_MAILBOXES: [&str; 5] = [
    "admin",
    "administrator",
    "hostmaster",
    "postmaster",
    "webmaster",
];
pub(super) const CONTACT_FIELDS: [&str; 4] = ["fname", "lname", "email", "phone"];

/// A PEM-shaped stand-in for a certificate's `label` object.
pub(super) fn fake_pem(label: &str, id: u64) -> String {
    format!("-----BEGIN {label}-----\nc2FuZGJveC0{id}\n-----END {label}-----\n")
}

pub(super) fn ok() -> Element {
    Element::doc().child(Element::new("ok"))
}

/// A BILLmanager flag value.
pub(super) fn on_off(flag: bool) -> &'static str {
    if flag {
        "on"
    } else {
        "off"
    }
}

pub(super) fn status_msg(status: u8) -> &'static str {
    match status {
        3 => "Requested",
        4 => "Enrolled",
        5 => "Issued",
        6 => "Failed",
        _ => "Unknown",
    }
}

pub(super) fn slist(name: &str, vals: &[(&str, &str)]) -> Element {
    let mut e = Element::new("slist").attr("name", name);
    for (k, v) in vals {
        e.push(Element::new("val").attr("key", *k).text(*v));
    }
    e
}

pub(super) fn order_csr(p: &Params) -> Answer {
    if !p.is_submit() {
        return Ok(Element::doc()
            .child(Element::leaf("crt_type", "generate"))
            .child(slist(
                "crt_type",
                &[("generate", "Generate a CSR"), ("manual", "Enter a CSR")],
            )));
    }
    let cn = p
        .get_nonempty("CN")
        .ok_or_else(|| BmError::missed("CN"))?
        .trim()
        .to_ascii_lowercase();
    if !valid_domain(&cn, true) {
        return Err(BmError::invalid("CN", cn));
    }
    Ok(Element::doc()
        .child(
            Element::new("model")
                .child(Element::leaf("csr", csr::fake_csr(&cn)))
                .child(Element::leaf("key", csr::fake_key())),
        )
        .child(Element::new("ok")))
}

pub(super) fn order_form(p: &Params) -> Element {
    let plan = p
        .get_nonempty("pricelist")
        .and_then(|v| v.trim().parse().ok())
        .and_then(catalog::plan);
    let mut pricelists = Element::new("slist").attr("name", "pricelist");
    for pl in catalog::PLANS {
        pricelists.push(
            Element::new("val")
                .attr("key", pl.id.to_string())
                .text(pl.name),
        );
    }
    let mut periods = Element::new("slist").attr("name", "period");
    for pl in catalog::PLANS
        .iter()
        .filter(|pl| plan.is_none_or(|x| x.id == pl.id))
    {
        for (months, cents) in pl.periods {
            periods.push(
                Element::new("val")
                    .attr("key", months.to_string())
                    .attr("pricelist", pl.id.to_string())
                    .attr("cost", money4(Decimal::new(*cents, 2)))
                    .text(format!("{months} months")),
            );
        }
    }
    let mut doc = Element::doc();
    if let Some(pl) = plan {
        doc.push(Element::leaf("pricelist", pl.id.to_string()));
        doc.push(Element::leaf("period", pl.periods[0].0.to_string()));
        if let Some(a) = pl.addon {
            doc.push(Element::leaf(format!("addon_{}", a.id), "0"));
        }
    }
    doc.child(pricelists).child(periods)
}

pub(super) fn plan_param(p: &Params) -> Result<&'static Plan, BmError> {
    let v = p
        .get_nonempty("pricelist")
        .ok_or_else(|| BmError::missed("pricelist"))?;
    v.trim()
        .parse()
        .ok()
        .and_then(catalog::plan)
        .ok_or_else(|| BmError::invalid("pricelist", v))
}

pub(super) fn period_param(p: &Params, plan: &Plan) -> Result<u32, BmError> {
    let v = p
        .get_nonempty("period")
        .ok_or_else(|| BmError::missed("period"))?;
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|m| plan.price(*m).is_some())
        .ok_or_else(|| BmError::invalid("period", v))
}

/// `adm_*` (required) and `org_*`/`adm_jtitle` (optional) contacts.
pub(super) fn contacts(p: &Params) -> Result<BTreeMap<String, String>, BmError> {
    let mut out = BTreeMap::new();
    require_contact(p, "adm", &mut out)?;
    for (k, v) in p.iter() {
        if (k.starts_with("org_") || k.ends_with("_jtitle")) && !v.is_empty() {
            out.insert(k.to_string(), v.to_string());
        }
    }
    Ok(out)
}

pub(super) fn require_contact(
    p: &Params,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<(), BmError> {
    for f in CONTACT_FIELDS {
        let key = format!("{prefix}_{f}");
        let v = p
            .get_nonempty(&key)
            .ok_or_else(|| BmError::missed(&key))?
            .trim();
        if f == "email" && !valid_email(v) {
            return Err(BmError::invalid(&key, v));
        }
        out.insert(key, v.to_string());
    }
    Ok(())
}

/// `altname` and `altname_input` (space separated; equal when both are given), validated.
/// `None` when neither is present.
pub(super) fn altnames(p: &Params, allow_wildcard: bool) -> Result<Option<Vec<String>>, BmError> {
    let split = |s: &str| {
        s.split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
    };
    let alt = p.get("altname").map(split);
    let input = p.get("altname_input").map(split);
    let list = match (alt, input) {
        (Some(a), Some(b)) if a != b => {
            return Err(
                BmError::new(ErrorType::Value, "'altname' and 'altname_input' differ")
                    .object("altname")
                    .value(a.join(" ")),
            )
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return Ok(None),
    };
    if let Some(bad) = list.iter().find(|d| !valid_domain(d, allow_wildcard)) {
        return Err(BmError::invalid("altname", bad.as_str()));
    }
    Ok(Some(list))
}

pub(super) fn check_altname_count(altnames: &[String], limit: u32) -> Result<(), BmError> {
    if altnames.len() > limit as usize {
        return Err(BmError::new(
            ErrorType::Value,
            format!(
                "{} additional domains requested, the domainlimit add-on allows {limit}",
                altnames.len()
            ),
        )
        .object("altname")
        .value(altnames.join(" ")));
    }
    Ok(())
}

pub(super) fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains(char::is_whitespace)
        && !domain.contains('@')
        && valid_domain(&domain.to_ascii_lowercase(), false)
}

/// A host name with at least two labels; `*.` in front only when `allow_wildcard`.
pub(super) fn valid_domain(s: &str, allow_wildcard: bool) -> bool {
    let s = match s.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        Some(_) => return false,
        None => s,
    };
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// The approver must be admin@, administrator@, hostmaster@, postmaster@ or webmaster@ the
/// CN's domain or one of its parent domains (of at least two labels).
pub(super) fn check_approver(cn: &str, email: &str, object: &str) -> Result<(), BmError> {
    let email_lc = email.trim().to_ascii_lowercase();
    let base = cn.trim_start_matches("*.");
    let ok = email_lc.split_once('@').is_some_and(|(local, domain)| {
        APPROVER_MAILBOXES.contains(&local)
            && domain.contains('.')
            && (base == domain || base.ends_with(&format!(".{domain}")))
    });
    if ok {
        Ok(())
    } else {
        Err(BmError::new(
            ErrorType::Value,
            format!("The approver e-mail must be admin@, administrator@, hostmaster@, postmaster@ or webmaster@ {base} or a parent domain"),
        )
        .object(object)
        .value(email))
    }
}
