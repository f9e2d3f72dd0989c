//! Responses: upstream plan ids, names and prices → what the reseller sees.
//!
//! The document was parsed from the caller's format, so every field is read as
//! attribute-or-child (bjson folds attributes into children) and written back where it was.
//!
//! - `pricelist.export`: only the reseller's plans, under local ids (an upstream plan
//!   mapped to several local plans of the reseller appears once per local plan), display
//!   names, every period cost (attribute and text) and add-on price marked up; add-ons
//!   under local ids, unmapped add-ons dropped. A plan with a price that cannot be read
//!   is withheld (and logged), never shown at the upstream price.
//! - `certificate` (list): `pricelist_id` and a numeric `pricelist` → local id, a plan
//!   name in `pricelist` → the display name, `cost` marked up (blank when it cannot be).
//! - Any other answer (order, renew and edit forms): a `pricelist` value → local id,
//!   `addon_<upstream id>` → `addon_<local id>`, `slist` entries keyed by plan filtered to
//!   the reseller's plans under local ids, every `cost` in an `slist` entry marked up
//!   (and the same amount inside the entry's text).

use std::sync::Arc;

use crate::billmgr::{Element, Params};
use crate::store::model::{Markup, Plan, Reseller};
use crate::store::Store;

use super::markup;
use super::request::addon_key;

/// The markup the reseller pays on `plan`: its own replaces the plan's as a whole.
pub fn effective_markup(reseller: &Reseller, plan: &Plan) -> Option<Markup> {
    reseller.markup.or(plan.markup)
}

/// One price string under `markup` (no markup: the upstream's price, once it reads as one).
fn price(markup: Option<&Markup>, s: &str) -> Option<String> {
    match markup {
        Some(m) => markup::mark_up_str(m, s),
        None => markup::parse_price(s).map(|_| s.trim().to_string()),
    }
}

/// Set a field where it is (a child's text, or an attribute). False when absent.
fn set_field(e: &mut Element, name: &str, value: &str) -> bool {
    if let Some(c) = e.find_mut(name) {
        c.text = Some(value.to_string());
        return true;
    }
    if e.get_attr(name).is_some() {
        e.set_attr(name, value);
        return true;
    }
    false
}

fn remove_field(e: &mut Element, name: &str) {
    e.children.retain(|c| c.name != name);
    e.attrs.retain(|(k, _)| k != name);
}

fn parse_id(s: Option<&str>) -> Option<u64> {
    s.and_then(|s| s.trim().parse().ok())
}

/// The reseller's local plans over upstream plan `up`, in the reseller's order.
fn set_plans_for(store: &Store, reseller: &Reseller, up: u64) -> Vec<Arc<Plan>> {
    reseller
        .plans
        .iter()
        .filter_map(|id| store.plan(*id))
        .filter(|p| p.upstream_id == up)
        .collect()
}

/// The local plan to show for upstream plan `up`: one of the reseller's, else any local
/// plan over it (a certificate bought before the reseller's set changed).
fn any_plan_for(store: &Store, reseller: &Reseller, up: u64) -> Option<Arc<Plan>> {
    set_plans_for(store, reseller, up)
        .into_iter()
        .next()
        .or_else(|| store.plans().into_iter().find(|p| p.upstream_id == up))
}

pub fn map(
    store: &Store,
    reseller: &Reseller,
    func: &str,
    params: &Params,
    service_plan: Option<u64>,
    doc: &mut Element,
) -> bool {
    if let Some(err) = doc.find_mut("error") {
        return error_value(store, reseller, err);
    }
    match func {
        "pricelist.export" => export(store, reseller, params, doc),
        "certificate" => list(store, reseller, doc),
        _ => form(store, reseller, params, service_plan, doc),
    }
}

/// An upstream error about `pricelist` names the upstream id it was sent: show the
/// local one instead.
fn error_value(store: &Store, reseller: &Reseller, err: &mut Element) -> bool {
    if err.child_text("object") != Some("pricelist") {
        return false;
    }
    let mut changed = false;
    for p in err.children.iter_mut().filter(|c| c.name == "param") {
        if p.child_text("name") != Some("value") {
            continue;
        }
        if let Some(up) = parse_id(p.text.as_deref()) {
            let local = any_plan_for(store, reseller, up).map(|pl| pl.id.to_string());
            p.text = Some(local.unwrap_or_default());
            changed = true;
        }
    }
    changed
}

// ---------- pricelist.export ----------

fn export(store: &Store, reseller: &Reseller, params: &Params, doc: &mut Element) -> bool {
    // Local ids the reseller filtered on (already checked by the request mapping).
    let wanted: Vec<u64> = params
        .get_all("pricelist")
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut changed = false;
    for child in std::mem::take(&mut doc.children) {
        if child.name != "pricelist" {
            doc.children.push(child);
            continue;
        }
        changed = true;
        let Some(up) = parse_id(child.child_text("id")) else {
            continue;
        };
        for plan in set_plans_for(store, reseller, up) {
            if !wanted.is_empty() && !wanted.contains(&plan.id) {
                continue;
            }
            let mut c = child.clone();
            match rewrite_plan(reseller, &plan, &mut c) {
                Ok(()) => doc.children.push(c),
                Err(field) => tracing::warn!(
                    reseller = %reseller.login,
                    plan = plan.id,
                    upstream_plan = up,
                    field,
                    "withholding a plan whose upstream price cannot be read or marked up"
                ),
            }
        }
    }
    changed
}

/// Rewrite one `<pricelist>`; `Err(field)` names what could not be priced.
fn rewrite_plan(reseller: &Reseller, plan: &Plan, pl: &mut Element) -> Result<(), &'static str> {
    let m = effective_markup(reseller, plan);
    set_field(pl, "id", &plan.id.to_string());
    if let Some(name) = &plan.name {
        set_field(pl, "name", name);
    }
    for price_el in pl.children.iter_mut().filter(|c| c.name == "price") {
        rewrite_prices(m.as_ref(), price_el).map_err(|_| "price")?;
    }
    let mut addons_ok = true;
    pl.children.retain_mut(|c| {
        if c.name != "addon" {
            return true;
        }
        let Some(local) = parse_id(c.child_text("id")).and_then(|up| plan.addon_local_id(up))
        else {
            return false; // not mapped: the reseller cannot order it
        };
        set_field(c, "id", &local.to_string());
        for price_el in c.children.iter_mut().filter(|p| p.name == "price") {
            if rewrite_prices(m.as_ref(), price_el).is_err() {
                addons_ok = false;
            }
        }
        true
    });
    if addons_ok {
        Ok(())
    } else {
        Err("addon price")
    }
}

/// Mark up a `<price>`: each period's `cost` and text, and the price's own text.
fn rewrite_prices(m: Option<&Markup>, price_el: &mut Element) -> Result<(), ()> {
    mark_text(m, price_el)?;
    mark_field(m, price_el, "cost")?;
    for period in price_el.children.iter_mut().filter(|c| c.name == "period") {
        mark_field(m, period, "cost")?;
        mark_text(m, period)?;
    }
    Ok(())
}

fn mark_field(m: Option<&Markup>, e: &mut Element, name: &str) -> Result<(), ()> {
    let Some(v) = e.child_text(name) else {
        return Ok(());
    };
    let new = price(m, v).ok_or(())?;
    set_field(e, name, &new);
    Ok(())
}

fn mark_text(m: Option<&Markup>, e: &mut Element) -> Result<(), ()> {
    let Some(t) = e.text.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Ok(());
    };
    e.text = Some(price(m, t).ok_or(())?);
    Ok(())
}

// ---------- certificate (list) ----------

fn list(store: &Store, reseller: &Reseller, doc: &mut Element) -> bool {
    let mut changed = false;
    for elem in doc.children.iter_mut().filter(|c| c.name == "elem") {
        let by_id = parse_id(elem.child_text("pricelist_id"));
        let pl_text = elem.child_text("pricelist").map(str::to_string);
        let by_pl = parse_id(pl_text.as_deref());
        let Some(up) = by_id.or(by_pl) else { continue };
        changed = true;
        let plan = any_plan_for(store, reseller, up);
        let local = plan.as_ref().map(|p| p.id.to_string()).unwrap_or_default();
        if by_id.is_some() {
            set_field(elem, "pricelist_id", &local);
        }
        match (&pl_text, by_pl) {
            (_, Some(_)) => {
                set_field(elem, "pricelist", &local);
            }
            (Some(_), None) => {
                if let Some(name) = plan.as_ref().and_then(|p| p.name.as_deref()) {
                    set_field(elem, "pricelist", name);
                }
            }
            _ => {}
        }
        let cost = elem.child_text("cost").map(str::to_string);
        if let Some(cost) = cost {
            let new = plan
                .as_ref()
                .and_then(|p| price(effective_markup(reseller, p).as_ref(), &cost));
            if new.is_none() {
                tracing::warn!(
                    reseller = %reseller.login,
                    upstream_plan = up,
                    mapped = plan.is_some(),
                    "withholding a certificate's cost that cannot be read or marked up"
                );
            }
            set_field(elem, "cost", &new.unwrap_or_default());
        }
    }
    changed
}

// ---------- forms ----------

fn form(
    store: &Store,
    reseller: &Reseller,
    params: &Params,
    service_plan: Option<u64>,
    doc: &mut Element,
) -> bool {
    // The plan the call is about: the local id the reseller sent, else the plan of the
    // service it names (a renewal form does not say its plan).
    let mut asked: Vec<Arc<Plan>> = params
        .get_all("pricelist")
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .filter_map(|id| store.plan(id))
        .collect();
    if asked.is_empty() {
        asked.extend(service_plan.and_then(|up| any_plan_for(store, reseller, up)));
    }
    let mut changed = form_values(store, reseller, &asked, doc);
    if let Some(model) = doc.find_mut("model") {
        changed |= form_values(store, reseller, &asked, model);
    }
    changed
}

/// The local plan for upstream plan `up` in a form: the one asked for, else the reseller's.
fn form_plan(
    store: &Store,
    reseller: &Reseller,
    asked: &[Arc<Plan>],
    up: u64,
) -> Option<Arc<Plan>> {
    asked
        .iter()
        .find(|p| p.upstream_id == up)
        .cloned()
        .or_else(|| any_plan_for(store, reseller, up))
}

/// The one markup that applies whatever the plan, if there is one: the reseller's own,
/// or the markup all of its plans share.
fn plan_independent_markup(store: &Store, reseller: &Reseller) -> Option<Option<Markup>> {
    if reseller.markup.is_some() {
        return Some(reseller.markup);
    }
    let mut all = reseller
        .plans
        .iter()
        .filter_map(|id| store.plan(*id))
        .map(|p| p.markup);
    let first = all.next()?;
    all.all(|m| m == first).then_some(first)
}

fn form_values(store: &Store, reseller: &Reseller, asked: &[Arc<Plan>], e: &mut Element) -> bool {
    let mut changed = false;
    // The form's current plan.
    let mut current: Option<Arc<Plan>> = asked.first().cloned();
    if let Some(up) = parse_id(e.child_text("pricelist")) {
        let plan = form_plan(store, reseller, asked, up);
        let local = plan.as_ref().map(|p| p.id.to_string()).unwrap_or_default();
        set_field(e, "pricelist", &local);
        current = plan.or(current);
        changed = true;
    }
    // addon_<upstream id> values → addon_<local id>.
    let mut renamed = Vec::new();
    e.children.retain_mut(|c| {
        let Some(up) = addon_key(&c.name).map(|s| s.parse::<u64>()) else {
            return true;
        };
        changed = true;
        let local = up.ok().and_then(|up| {
            current
                .iter()
                .chain(asked.iter())
                .find_map(|p| p.addon_local_id(up))
        });
        match local {
            Some(id) => {
                c.name = format!("addon_{id}");
                true
            }
            None => false,
        }
    });
    for (k, v) in e.attrs.iter_mut() {
        if let Some(Ok(up)) = addon_key(k).map(|s| s.parse::<u64>()) {
            if let Some(id) = current.as_ref().and_then(|p| p.addon_local_id(up)) {
                renamed.push((k.clone(), format!("addon_{id}"), v.clone()));
            }
        }
    }
    let before = e.attrs.len();
    e.attrs.retain(|(k, _)| addon_key(k).is_none());
    changed |= e.attrs.len() != before;
    for (_, k, v) in renamed {
        e.attrs.push((k, v));
    }
    // Select lists.
    let fallback = plan_independent_markup(store, reseller);
    for slist in e.children.iter_mut().filter(|c| c.name == "slist") {
        let is_plan_list = slist.child_text("name") == Some("pricelist");
        let vals = std::mem::take(&mut slist.children);
        for val in vals {
            if val.name != "val" {
                slist.children.push(val);
                continue;
            }
            if is_plan_list {
                changed = true;
                let Some(up) = parse_id(val.child_text("key")) else {
                    continue;
                };
                for plan in set_plans_for(store, reseller, up) {
                    let mut v = val.clone();
                    set_field(&mut v, "key", &plan.id.to_string());
                    if let Some(name) = &plan.name {
                        v.text = Some(name.clone());
                    }
                    slist.children.push(v);
                }
                continue;
            }
            if let Some(up) = parse_id(val.child_text("pricelist")) {
                changed = true;
                for plan in set_plans_for(store, reseller, up) {
                    let mut v = val.clone();
                    set_field(&mut v, "pricelist", &plan.id.to_string());
                    let m = effective_markup(reseller, &plan);
                    if mark_val(reseller, Some(m.as_ref()), &mut v) {
                        slist.children.push(v);
                    }
                }
                continue;
            }
            if val.child_text("cost").is_some() {
                changed = true;
                let mut v = val;
                let m = match (&current, &fallback) {
                    (Some(p), _) => Some(effective_markup(reseller, p)),
                    (None, Some(m)) => Some(*m),
                    (None, None) => None,
                };
                if mark_val(reseller, m.as_ref().map(Option::as_ref), &mut v) {
                    slist.children.push(v);
                }
                continue;
            }
            slist.children.push(val);
        }
    }
    changed
}

/// Mark up an `slist` entry's `cost` (and that amount in its text). `markup` is `None`
/// when the plan is unknown: the price is then withheld (cost removed, text cut before
/// it). False when the entry must be dropped (its price cannot be read).
fn mark_val(reseller: &Reseller, markup: Option<Option<&Markup>>, v: &mut Element) -> bool {
    let Some(cost) = v.child_text("cost").map(str::to_string) else {
        return true;
    };
    let Some(m) = markup else {
        tracing::warn!(reseller = %reseller.login, "withholding a form price: the plan it belongs to is not known");
        remove_field(v, "cost");
        if let Some(t) = v.text.as_mut() {
            if let Some(pos) = t.find(cost.trim()) {
                *t = t[..pos]
                    .trim_end_matches(|c: char| {
                        c.is_whitespace() || c == '-' || c == '–' || c == ':'
                    })
                    .to_string();
            }
        }
        return true;
    };
    let Some(new) = price(m, &cost) else {
        tracing::warn!(reseller = %reseller.login, "withholding a form entry whose upstream price cannot be read or marked up");
        return false;
    };
    set_field(v, "cost", &new);
    if let Some(t) = v.text.as_mut() {
        if !cost.trim().is_empty() && t.contains(cost.trim()) {
            *t = t.replace(cost.trim(), &new);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::*;
    use crate::billmgr::{parse, render, Format};
    use crate::store::model::Addon;

    fn store() -> Store {
        let s = Store::open_temporary().unwrap();
        let pct = |p: &str| {
            Some(Markup {
                percent: Decimal::from_str(p).unwrap(),
                ..Markup::default()
            })
        };
        for (id, up, name, markup, addons) in [
            (
                101,
                3033,
                Some("Basic"),
                pct("20"),
                vec![Addon {
                    id: 201,
                    upstream_id: 3034,
                }],
            ),
            (105, 3033, Some("Basic cheap"), pct("0"), vec![]),
            (102, 3040, None, None, vec![]),
        ] {
            s.put_plan(Plan {
                id,
                upstream_id: up,
                name: name.map(str::to_string),
                markup,
                addons,
            })
            .unwrap();
        }
        s
    }

    fn reseller(plans: &[u64]) -> Reseller {
        Reseller {
            login: "r".into(),
            password_hash: String::new(),
            upstream_account: "up".into(),
            plans: plans.to_vec(),
            markup: None,
        }
    }

    const EXPORT: &str = r#"<doc><pricelist><id>3033</id><name>PositiveSSL</name><price currency="EUR"><period cost="10.0000" type="month" length="12">10.0000</period></price><addon><id>3034</id><name>domainlimit</name><price currency="EUR"><period cost="5.0000" length="12">5.0000</period></price></addon><addon><id>3035</id><price><period cost="1.00" length="12"/></price></addon></pricelist><pricelist><id>3040</id><name>Wildcard</name><price currency="EUR"><period cost="1 234,50" length="12">1 234,50</period></price></pricelist><pricelist><id>3099</id><name>Other</name></pricelist></doc>"#;

    fn export(plans: &[u64], f: Format, q: &str) -> Element {
        let mut d = parse(EXPORT.as_bytes(), Format::Xml).unwrap();
        // Through the caller's format, as the gateway would have parsed it.
        d = parse(&render(&d, f), f).unwrap();
        let params = Params::parse(Some(q), b"", &Default::default()).unwrap();
        assert!(map(
            &store(),
            &reseller(plans),
            "pricelist.export",
            &params,
            None,
            &mut d
        ));
        // Back to xml to compare one shape.
        d
    }

    fn summary(d: &Element) -> Vec<String> {
        d.find_all("pricelist")
            .map(|p| {
                let mut s = format!(
                    "{} {}",
                    p.child_text("id").unwrap_or(""),
                    p.child_text("name").unwrap_or("")
                );
                for pr in p
                    .find_all("price")
                    .chain(p.find_all("addon").filter_map(|a| a.find("price")))
                {
                    for per in pr.find_all("period") {
                        s.push_str(&format!(
                            " {}/{}",
                            per.child_text("cost").unwrap_or(""),
                            per.text.as_deref().unwrap_or("")
                        ));
                    }
                }
                for a in p.find_all("addon") {
                    s.push_str(&format!(" addon {}", a.child_text("id").unwrap_or("")));
                }
                s
            })
            .collect()
    }

    #[test]
    fn export_in_every_parsed_shape() {
        for f in [Format::Xml, Format::Json, Format::Bjson] {
            let d = export(&[101, 105, 102], f, "func=pricelist.export");
            assert_eq!(
                summary(&d),
                [
                    "101 Basic 12.00/12.00 6.00/6.00 addon 201",
                    "105 Basic cheap 10.00/10.00",
                    // no markup: the upstream's (readable) price as written
                    "102 Wildcard 1 234,50/1 234,50",
                ],
                "{f:?}"
            );
        }
    }

    #[test]
    fn export_filters_by_set_and_by_asked_id() {
        let d = export(&[105], Format::Xml, "func=pricelist.export");
        assert_eq!(summary(&d), ["105 Basic cheap 10.00/10.00"]);
        let d = export(
            &[101, 105],
            Format::Xml,
            "func=pricelist.export&pricelist=101",
        );
        assert_eq!(summary(&d), ["101 Basic 12.00/12.00 6.00/6.00 addon 201"]);
        let d = export(&[], Format::Xml, "func=pricelist.export");
        assert!(summary(&d).is_empty());
    }

    #[test]
    fn unreadable_prices_withhold_the_plan() {
        for bad in ["garbage", "", "-1.00", "99999999999999999999999999999"] {
            let xml = EXPORT.replace("cost=\"10.0000\"", &format!("cost=\"{bad}\""));
            let mut d = parse(xml.as_bytes(), Format::Xml).unwrap();
            let params =
                Params::parse(Some("func=pricelist.export"), b"", &Default::default()).unwrap();
            map(
                &store(),
                &reseller(&[101, 102]),
                "pricelist.export",
                &params,
                None,
                &mut d,
            );
            let ids: Vec<_> = summary(&d);
            assert_eq!(ids.len(), 1, "{bad:?}: {ids:?}");
            assert!(ids[0].starts_with("102"), "{bad:?}: {ids:?}");
            let out = String::from_utf8(render(&d, Format::Xml)).unwrap();
            assert!(!out.contains("3033") && !out.contains("10.0000"), "{out}");
        }
        // An unreadable add-on price withholds the plan too.
        let xml = EXPORT.replace("cost=\"5.0000\"", "cost=\"n/a\"");
        let mut d = parse(xml.as_bytes(), Format::Xml).unwrap();
        let params =
            Params::parse(Some("func=pricelist.export"), b"", &Default::default()).unwrap();
        map(
            &store(),
            &reseller(&[101]),
            "pricelist.export",
            &params,
            None,
            &mut d,
        );
        assert!(summary(&d).is_empty());
    }

    #[test]
    fn reseller_markup_replaces_the_plans() {
        let mut r = reseller(&[101]);
        r.markup = Some(Markup {
            percent: Decimal::ZERO,
            fixed: Decimal::ONE,
            round_to: Decimal::ONE,
        });
        let mut d = parse(EXPORT.as_bytes(), Format::Xml).unwrap();
        let params =
            Params::parse(Some("func=pricelist.export"), b"", &Default::default()).unwrap();
        map(&store(), &r, "pricelist.export", &params, None, &mut d);
        assert_eq!(summary(&d), ["101 Basic 11/11 6/6 addon 201"]);
    }

    #[test]
    fn certificate_list() {
        let xml = r#"<doc><elem><id>7</id><pricelist>PositiveSSL</pricelist><pricelist_id>3033</pricelist_id><cost>10.0000</cost></elem><elem><id>8</id><pricelist>3040</pricelist><cost>bad</cost></elem><elem><id>9</id><pricelist_id>4000</pricelist_id><cost>3.00</cost></elem><p_num>1</p_num></doc>"#;
        let mut d = parse(xml.as_bytes(), Format::Xml).unwrap();
        let params = Params::new();
        assert!(map(
            &store(),
            &reseller(&[101, 102]),
            "certificate",
            &params,
            None,
            &mut d
        ));
        let rows: Vec<_> = d
            .find_all("elem")
            .map(|e| {
                format!(
                    "{}|{}|{}",
                    e.child_text("pricelist").unwrap_or("-"),
                    e.child_text("pricelist_id").unwrap_or("-"),
                    e.child_text("cost").unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(rows, ["Basic|101|12.00", "102|-|", "-||"]);
    }

    #[test]
    fn errors_show_local_plan_ids() {
        let st = store();
        for f in [Format::Xml, Format::Json, Format::Bjson] {
            let e = crate::billmgr::BmError::invalid("period", "7").to_doc("en");
            let mut d = parse(&render(&e, f), f).unwrap();
            let before = d.clone();
            assert!(!map(
                &st,
                &reseller(&[101]),
                "certificate.order.param",
                &Params::new(),
                None,
                &mut d
            ));
            assert_eq!(d, before);
            let e = crate::billmgr::BmError::invalid("pricelist", "3033").to_doc("en");
            let mut d = parse(&render(&e, f), f).unwrap();
            assert!(
                map(
                    &st,
                    &reseller(&[101]),
                    "certificate.order.param",
                    &Params::new(),
                    None,
                    &mut d
                ),
                "{f:?}"
            );
            let back = crate::billmgr::BmError::from_doc(&d).unwrap();
            assert_eq!(back.value.as_deref(), Some("101"), "{f:?}");
        }
    }
}
