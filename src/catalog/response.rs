//! Responses: upstream plan ids, names and prices → what the reseller sees.
//!
//! Documents are rewritten in their own format ([`crate::billmgr::edit`]): only the values
//! below change; shape, order and unknown fields stay the upstream's. Every field is read
//! as attribute-or-child (bjson folds attributes into children) and written back where it
//! was.
//!
//! - `pricelist.export` (one plan at a time): only the reseller's plans (and, with
//!   `pricelist=`/`elid=`, only those asked for), under local ids (an upstream plan mapped
//!   to several local plans of the reseller appears once per local plan), display names,
//!   every period's `cost` and add-on price marked up; add-ons under local ids, unmapped
//!   add-ons dropped. The price is the `cost`; a period's text is a label (`1 year`,
//!   `1 год`, kept) or an amount (rewritten: the cost again, or any other amount marked
//!   up). A plan whose cost cannot be read is withheld (and logged), never shown at the
//!   upstream price.
//! - `certificate` (list, one row at a time): `pricelist_id` and a numeric `pricelist` →
//!   local id, a plan name in `pricelist` → the display name, `cost` marked up with the
//!   row's plan — found by id, else by the service the gateway recorded for the row's
//!   certificate, else by the plan's name — or blank when no markup can be known.
//! - Any other answer (order, renew and edit forms): a `pricelist` value → local id,
//!   `addon_<upstream id>` → `addon_<local id>`, `slist` entries keyed by plan filtered to
//!   the reseller's plans under local ids, every `cost` in an `slist` entry and every
//!   amount in its text marked up.
//! - An upstream error about `pricelist` shows the local id it was sent as.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use rust_decimal::Decimal;

use crate::billmgr::edit::{
    rewrite_list_and_rest, rewrite_list_until, rewrite_whole, Fields, ListItem,
};
use crate::billmgr::{DocError, Format, Node, Params};
use crate::store::model::{Markup, Plan, Reseller};
use crate::store::plan_index::{AllPlans, ResellerPlans};
use crate::store::Store;

use super::markup;
use super::request::addon_key;

/// Upstream plan names seen in price lists, so that a list row or a form that names its
/// plan only by name can still be priced with that plan's markup. Bounded: an upstream
/// has far fewer plans than `UpstreamNames::MAX`.
#[derive(Debug, Default)]
pub struct UpstreamNames(DashMap<String, u64>);

impl UpstreamNames {
    const MAX: usize = 100_000;

    fn learn(&self, name: &str, up: u64) {
        let name = name.trim();
        if name.is_empty() || self.get(name) == Some(up) {
            return; // known already: no allocation per plan per price list
        }
        if self.0.len() < Self::MAX || self.0.contains_key(name) {
            self.0.insert(name.to_string(), up);
        }
    }

    fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name.trim()).map(|v| *v)
    }
}

/// What a response rewrite reads: the catalogue, upstream plan names seen so far, and how
/// certificate-list rows find the services the gateway recorded.
#[derive(Clone, Copy)]
pub struct Catalog<'a> {
    pub store: &'a Store,
    pub names: &'a UpstreamNames,
    pub rows: RowServices<'a>,
}

impl<'a> Catalog<'a> {
    /// The catalogue with rows' services read from the store.
    pub fn new(store: &'a Store, names: &'a UpstreamNames) -> Catalog<'a> {
        Catalog {
            store,
            names,
            rows: RowServices::Store,
        }
    }

    pub fn with_rows(self, rows: RowServices<'a>) -> Catalog<'a> {
        Catalog { rows, ..self }
    }
}

/// How a certificate-list row that names its plan only by name finds the service the
/// gateway recorded for its certificate (the only read of a rewrite that may leave the
/// store's cache: see [`reads_store`]).
#[derive(Clone, Copy, Debug)]
pub enum RowServices<'a> {
    /// Read from the store, one row at a time.
    Store,
    /// Not read: the first row that needs one sets the flag, and the pass ends there with
    /// [`crate::billmgr::DocError::Stopped`]; the caller rewrites the answer again where a
    /// read may block.
    Stop(&'a Cell<bool>),
    /// Not read: each such row's certificate id is noted and the row left unpriced (the
    /// first of two passes; the second reads them at once, [`Store::service_plans`]).
    Collect(&'a RefCell<Vec<u64>>),
    /// Read beforehand: certificate id → the upstream plan of the reseller's service.
    Known(&'a HashMap<u64, u64>),
}

impl<'a> RowServices<'a> {
    /// The flag that ends a list's pass ([`RowServices::Stop`]).
    fn stop(self) -> Option<&'a Cell<bool>> {
        match self {
            RowServices::Stop(stopped) => Some(stopped),
            _ => None,
        }
    }
}

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

fn parse_id<S: AsRef<str>>(s: Option<S>) -> Option<u64> {
    s.and_then(|s| s.as_ref().trim().parse().ok())
}

/// The reseller's plans indexed by upstream id and by name, and every plan by upstream
/// id: the store's indexes, rebuilt once per catalogue change
/// ([`crate::store::plan_index`]), so a price list of n plans costs n look-ups and no
/// answer rebuilds them.
struct Plans {
    mine: Arc<ResellerPlans>,
    /// Any local plan over each upstream plan (fetched once, when first needed).
    all: OnceLock<Arc<AllPlans>>,
}

impl Plans {
    fn new(store: &Store, reseller: &Reseller) -> Plans {
        Plans {
            mine: store.reseller_plans(reseller),
            all: OnceLock::new(),
        }
    }

    /// The reseller's local plans over upstream plan `up`, in the reseller's order.
    fn mine(&self, up: u64) -> &[Arc<Plan>] {
        self.mine.over(up)
    }

    /// The local plan to show for upstream plan `up`: one of the reseller's, else any
    /// local plan over it (a certificate bought before the reseller's set changed).
    fn any(&self, store: &Store, up: u64) -> Option<Arc<Plan>> {
        if let Some(p) = self.mine.over(up).first() {
            return Some(p.clone());
        }
        self.all.get_or_init(|| store.all_plans()).over(up).cloned()
    }
}

/// One answer being rewritten for one reseller.
struct Ctx<'a> {
    cat: Catalog<'a>,
    reseller: &'a Reseller,
    plans: Plans,
    /// [`plan_independent_markup`] of the reseller.
    fallback: Option<Option<Markup>>,
}

impl<'a> Ctx<'a> {
    fn new(cat: Catalog<'a>, reseller: &'a Reseller) -> Self {
        let plans = Plans::new(cat.store, reseller);
        Ctx {
            cat,
            reseller,
            fallback: plan_independent_markup(reseller, &plans.mine),
            plans,
        }
    }
}

fn set_plans_for<'c>(cx: &'c Ctx, up: u64) -> &'c [Arc<Plan>] {
    cx.plans.mine(up)
}

fn any_plan_for(cx: &Ctx, up: u64) -> Option<Arc<Plan>> {
    cx.plans.any(cx.cat.store, up)
}

/// The plan a name stands for: an upstream name seen in a price list, else one of the
/// reseller's plans shown under that display name.
fn plan_by_name(cx: &Ctx, name: &str) -> Option<Arc<Plan>> {
    if let Some(up) = cx.cat.names.get(name) {
        return any_plan_for(cx, up);
    }
    cx.plans.mine.named(name).cloned()
}

/// The one markup that applies whatever the plan, if there is one: the reseller's own,
/// or the markup all of its plans share.
fn plan_independent_markup(reseller: &Reseller, plans: &ResellerPlans) -> Option<Option<Markup>> {
    if reseller.markup.is_some() {
        return Some(reseller.markup);
    }
    plans.shared_markup()
}

/// Whether rewriting `func`'s answer may read the store's backend (not only its cache):
/// a certificate-list row that names its plan only by name is priced through the
/// service recorded for its certificate. Such a rewrite is tried without reads
/// ([`RowServices::Stop`]) and, when a row needs one, done again on the blocking pool.
pub fn reads_store(func: &str) -> bool {
    func == "certificate"
}

/// The top-level items of a list function's answer, rewritten one at a time.
pub fn list_items(func: &str) -> Option<&'static [&'static str]> {
    match func {
        "pricelist.export" => Some(&["pricelist"]),
        "certificate" => Some(&["elem"]),
        _ => None,
    }
}

/// Rewrite an upstream answer (`body`, in the upstream's `format`) for the reseller.
/// `params` is the reseller's original call; `service_plan` the upstream plan of the
/// service its `elid` names (it prices a renewal form, which does not name its plan).
/// `None` when nothing had to change (the upstream's bytes can go as they are).
pub fn rewrite(
    cat: Catalog,
    reseller: &Reseller,
    func: &str,
    params: &Params,
    service_plan: Option<u64>,
    body: &[u8],
    format: Format,
) -> Result<Option<Vec<u8>>, DocError> {
    let cx = &Ctx::new(cat, reseller);
    if let Some((list, items)) = list_items(func).zip(rewritten_items(func)) {
        let wanted = asked_plans(params, &["pricelist", "elid"]);
        return rewrite_list_until(
            body,
            format,
            items,
            &mut |name, item| list_item(cx, list, &wanted, name, item),
            cx.cat.rows.stop(),
        )
        .map(Some);
    }
    rewrite_whole(body, format, &mut |doc| {
        if doc.field_names().iter().any(|n| n == "error") {
            let mut changed = false;
            Fields::each_child(doc, "error", &mut |e| changed |= error_value(cx, e));
            return changed;
        }
        form(cx, params, service_plan, doc)
    })
}

/// A rewritten list answer and the upstream's answer without its list items.
pub type ListAnswer = (Vec<u8>, Vec<u8>);

/// A list function's answer rewritten ([`rewrite`]), and the upstream's answer without
/// its list items — the light document the call is judged by, as
/// [`crate::billmgr::edit::delimit_items`] gives it — from the same pass over an xml
/// answer. `None` when `func` is not a list function.
pub fn rewrite_list_answer(
    cat: Catalog,
    reseller: &Reseller,
    func: &str,
    params: &Params,
    body: &[u8],
    format: Format,
) -> Option<Result<ListAnswer, DocError>> {
    let (list, items) = list_items(func).zip(rewritten_items(func))?;
    let cx = &Ctx::new(cat, reseller);
    let wanted = asked_plans(params, &["pricelist", "elid"]);
    Some(rewrite_list_and_rest(
        body,
        format,
        items,
        list,
        &mut |name, item| list_item(cx, list, &wanted, name, item),
        cat.rows.stop(),
    ))
}

/// The top-level items a list function's answer is rewritten by: its list's, and an
/// `error`.
fn rewritten_items(func: &str) -> Option<&'static [&'static str]> {
    match func {
        "pricelist.export" => Some(&["pricelist", "error"]),
        "certificate" => Some(&["elem", "error"]),
        _ => None,
    }
}

/// One top-level item of a list answer (`list` names the list's items): a plan, a row,
/// or an error.
fn list_item(cx: &Ctx, list: &[&str], wanted: &[u64], name: &str, item: &mut dyn ListItem) {
    match name {
        "error" => {
            error_value(cx, item.copy(true));
            item.emit();
        }
        "pricelist" if list == ["pricelist"] => export_plan(cx, wanted, item),
        _ => {
            list_row(cx, item.copy(true));
            item.emit();
        }
    }
}

/// Local plan ids named by `keys` (comma lists allowed; already checked by the request
/// mapping).
fn asked_plans(params: &Params, keys: &[&str]) -> Vec<u64> {
    keys.iter()
        .flat_map(|k| params.get_all(k))
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// An upstream error about `pricelist` names the upstream id it was sent: show the
/// local one instead. True when it did.
fn error_value(cx: &Ctx, err: &mut dyn Fields) -> bool {
    if err.field("object").as_deref() != Some("pricelist") {
        return false;
    }
    let mut changed = false;
    err.each_child("param", &mut |p| {
        if p.field("name").as_deref() != Some("value") {
            return;
        }
        if let Some(up) = parse_id(p.text()) {
            let local = any_plan_for(cx, up).map(|pl| pl.id.to_string());
            p.set_text(&local.unwrap_or_default());
            changed = true;
        }
    });
    changed
}

// ---------- pricelist.export ----------

/// One upstream plan of a price list: a copy per local plan of the reseller's over it
/// (none when it is not the reseller's: dropped without a copy).
fn export_plan(cx: &Ctx, wanted: &[u64], item: &mut dyn ListItem) {
    let (cat, reseller) = (cx.cat, cx.reseller);
    let up = {
        let upstream = item.upstream();
        let Some(up) = parse_id(upstream.field("id")) else {
            return;
        };
        if let Some(name) = upstream.field("name") {
            cat.names.learn(&name, up);
        }
        up
    };
    let is_wanted = |p: &&Arc<Plan>| wanted.is_empty() || wanted.contains(&p.id);
    let count = set_plans_for(cx, up).iter().filter(is_wanted).count();
    for (i, plan) in set_plans_for(cx, up).iter().filter(is_wanted).enumerate() {
        // The last copy is the upstream's own.
        match rewrite_plan(reseller, plan, item.copy(i + 1 == count)) {
            Ok(()) => item.emit(),
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

/// Rewrite one plan; `Err(field)` names what could not be priced.
fn rewrite_plan(reseller: &Reseller, plan: &Plan, pl: &mut dyn Fields) -> Result<(), &'static str> {
    let m = effective_markup(reseller, plan);
    pl.set_field("id", &plan.id.to_string());
    if let Some(name) = &plan.name {
        pl.set_field("name", name);
    }
    let mut ok = true;
    pl.each_child("price", &mut |p| {
        ok &= rewrite_prices(m.as_ref(), p).is_ok()
    });
    if !ok {
        return Err("price");
    }
    pl.retain_children("addon", &mut |a| {
        let Some(local) = parse_id(a.field("id")).and_then(|up| plan.addon_local_id(up)) else {
            return false; // not mapped: the reseller cannot order it
        };
        a.set_field("id", &local.to_string());
        a.each_child("price", &mut |p| {
            ok &= rewrite_prices(m.as_ref(), p).is_ok()
        });
        if a.field("cost").is_some() {
            ok &= mark_period(m.as_ref(), a).is_ok();
        }
        true
    });
    if ok {
        Ok(())
    } else {
        Err("addon price")
    }
}

/// Mark up a `price`: its own cost and text, and each period's.
fn rewrite_prices(m: Option<&Markup>, price_el: &mut dyn Fields) -> Result<(), ()> {
    mark_period(m, price_el)?;
    let mut ok = true;
    price_el.each_child("period", &mut |p| ok &= mark_period(m, p).is_ok());
    ok.then_some(()).ok_or(())
}

/// Mark up one priced node: its `cost` is the price; its text is a label (kept) or holds
/// amounts (the cost again → the new cost, any other amount marked up). Without a cost
/// the text's amounts are the price.
fn mark_period(m: Option<&Markup>, e: &mut dyn Fields) -> Result<(), ()> {
    let new_cost = match e.field("cost") {
        Some(c) => {
            // Read once: the price to mark up, and the amount the text may repeat.
            let cost = markup::parse_price(&c).ok_or(())?;
            let new = match m {
                Some(m) => markup::decimal_text(markup::apply(m, cost).ok_or(())?),
                None => c.trim().to_string(),
            };
            e.set_field("cost", &new);
            Some((cost, new))
        }
        None => None,
    };
    if m.is_none() {
        return Ok(()); // nothing to mark up: the text stays as written
    }
    let Some(text) = e.text().filter(|t| markup::may_hold_amounts(t)) else {
        return Ok(()); // a label, or no text: nothing to mark up
    };
    let new_text = mark_amounts(m, &text, new_cost.as_ref()).ok_or(())?;
    if new_text != *text {
        e.set_text(&new_text);
    }
    Ok(())
}

/// Every amount in `text` marked up; an amount that is `cost` (as written, or rounded to
/// the text's decimals) becomes the marked-up cost exactly.
fn mark_amounts(
    m: Option<&Markup>,
    text: &str,
    cost: Option<&(Decimal, String)>,
) -> Option<String> {
    markup::replace_amounts(text, |amount, written| {
        if let Some((c, new)) = cost {
            let scale = written
                .rfind(['.', ','])
                .map_or(0, |p| (written.len() - p - 1) as u32);
            if *c == amount || c.round_dp(scale) == amount {
                return Some(new.clone());
            }
        }
        match m {
            Some(m) => markup::apply(m, amount).map(markup::decimal_text),
            None => Some(written.to_string()),
        }
    })
}

/// Remove every amount from a text whose price cannot be known (`Basic - 10.00 EUR` →
/// `Basic`).
fn strip_amounts(text: &str) -> String {
    let cut = markup::replace_amounts(text, |_, _| Some("\u{0}".into())).unwrap_or_default();
    let head = cut.split('\u{0}').next().unwrap_or_default();
    head.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '-' | '–' | ':' | '('))
        .to_string()
}

// ---------- certificate (list) ----------

fn list_row(cx: &Ctx, row: &mut dyn Fields) {
    let reseller = cx.reseller;
    let by_id = parse_id(row.field("pricelist_id"));
    let pl_text = row.field("pricelist").map(Cow::into_owned);
    let by_pl = parse_id(pl_text.as_deref());
    let plan = match by_id.or(by_pl) {
        Some(up) => any_plan_for(cx, up),
        None => {
            let recorded = match parse_id(row.field("id")) {
                Some(id) => match recorded_plan(cx, id) {
                    Some(up) => up,
                    None => return, // to be read elsewhere: the row stays as it is
                },
                None => None,
            };
            recorded
                .and_then(|up| any_plan_for(cx, up))
                .or_else(|| pl_text.as_deref().and_then(|name| plan_by_name(cx, name)))
        }
    };
    let local = plan.as_ref().map(|p| p.id.to_string()).unwrap_or_default();
    if by_id.is_some() {
        row.set_field("pricelist_id", &local);
    }
    match (by_pl, &plan) {
        (Some(_), _) => {
            row.set_field("pricelist", &local);
        }
        (None, Some(p)) => {
            if let Some(name) = &p.name {
                row.set_field("pricelist", name);
            }
        }
        (None, None) => {}
    }
    let cost = row.field("cost").map(|cost| {
        let m = match &plan {
            Some(p) => Some(effective_markup(reseller, p)),
            None => cx.fallback,
        };
        (
            m.and_then(|m| price(m.as_ref(), &cost)),
            cost.trim().is_empty(),
        )
    });
    if let Some((new, blank)) = cost {
        if new.is_none() && !blank {
            tracing::warn!(
                reseller = %reseller.login,
                mapped = plan.is_some(),
                "withholding a certificate's cost that cannot be read or marked up"
            );
        }
        row.set_field("cost", &new.unwrap_or_default());
    }
}

/// The upstream plan of the reseller's service the gateway recorded for certificate `id`
/// (`Some(None)`: none recorded, or another reseller's, or without a plan); `None` when
/// it is not read in this pass.
fn recorded_plan(cx: &Ctx, id: u64) -> Option<Option<u64>> {
    match cx.cat.rows {
        RowServices::Store => Some(
            cx.cat
                .store
                .service_head(id)
                .ok()
                .flatten()
                .filter(|s| s.reseller == cx.reseller.login)
                .and_then(|s| s.plan_id()),
        ),
        RowServices::Known(plans) => Some(plans.get(&id).copied()),
        RowServices::Stop(stopped) => {
            stopped.set(true);
            None
        }
        RowServices::Collect(ids) => {
            ids.borrow_mut().push(id);
            None
        }
    }
}

// ---------- forms ----------

fn form(cx: &Ctx, params: &Params, service_plan: Option<u64>, doc: &mut Node) -> bool {
    let cat = cx.cat;
    // The plan the call is about: the local id the reseller sent, else the plan of the
    // service it names (a renewal form does not say its plan).
    let mut asked: Vec<Arc<Plan>> = asked_plans(params, &["pricelist"])
        .into_iter()
        .filter_map(|id| cat.store.plan(id))
        .collect();
    if asked.is_empty() {
        asked.extend(service_plan.and_then(|up| any_plan_for(cx, up)));
    }
    let mut changed = form_values(cx, &asked, doc);
    doc.for_children("model", &mut |model| {
        changed |= form_values(cx, &asked, model);
    });
    changed
}

/// The local plan for upstream plan `up` in a form: the one asked for, else the reseller's.
fn form_plan(cx: &Ctx, asked: &[Arc<Plan>], up: u64) -> Option<Arc<Plan>> {
    asked
        .iter()
        .find(|p| p.upstream_id == up)
        .cloned()
        .or_else(|| any_plan_for(cx, up))
}

fn form_values(cx: &Ctx, asked: &[Arc<Plan>], e: &mut Node) -> bool {
    let reseller = cx.reseller;
    let mut changed = false;
    // The form's current plan.
    let mut current: Option<Arc<Plan>> = asked.first().cloned();
    if let Some(up) = parse_id(e.field("pricelist")) {
        let plan = form_plan(cx, asked, up);
        let local = plan.as_ref().map(|p| p.id.to_string()).unwrap_or_default();
        e.set_field("pricelist", &local);
        current = plan.or(current);
        changed = true;
    }
    // addon_<upstream id> fields → addon_<local id>; unmapped ones go.
    for name in e.field_names() {
        let Some(up) = addon_key(&name).map(|s| s.parse::<u64>()) else {
            continue;
        };
        changed = true;
        let local = up.ok().and_then(|up| {
            current
                .iter()
                .chain(asked.iter())
                .find_map(|p| p.addon_local_id(up))
        });
        match local {
            Some(id) => e.rename_field(&name, &format!("addon_{id}")),
            None => e.remove_field(&name),
        }
    }
    // Select lists.
    let fallback = cx.fallback;
    e.for_children("slist", &mut |slist| {
        let is_plan_list = slist.field("name").as_deref() == Some("pricelist");
        slist.flat_map_children("val", &mut |val| {
            if is_plan_list {
                changed = true;
                return plan_choice(cx, &fallback, val);
            }
            if let Some(up) = parse_id(val.field("pricelist")) {
                changed = true;
                let mut out = Vec::new();
                for plan in set_plans_for(cx, up) {
                    let mut v = val.clone();
                    v.set_field("pricelist", &plan.id.to_string());
                    let m = effective_markup(reseller, plan);
                    if mark_val(reseller, Some(m.as_ref()), &mut v) {
                        out.push(v);
                    }
                }
                return out;
            }
            if val.field("cost").is_some() {
                changed = true;
                let mut v = val;
                let m = match (&current, &fallback) {
                    (Some(p), _) => Some(effective_markup(reseller, p)),
                    (None, Some(m)) => Some(*m),
                    (None, None) => None,
                };
                return if mark_val(reseller, m.as_ref().map(Option::as_ref), &mut v) {
                    vec![v]
                } else {
                    Vec::new()
                };
            }
            vec![val]
        });
    });
    changed
}

/// One entry of the form's plan list: keyed by the upstream plan id (→ one entry per
/// local plan of the reseller over it), or by name only. Its cost and the amounts in its
/// text are marked up with that plan's markup; shown under the display name when set.
fn plan_choice(cx: &Ctx, fallback: &Option<Option<Markup>>, val: Node) -> Vec<Node> {
    let reseller = cx.reseller;
    let key = val.field("key").unwrap_or_default();
    if let Ok(up) = key.trim().parse::<u64>() {
        let mut out = Vec::new();
        for plan in set_plans_for(cx, up) {
            let mut v = val.clone();
            v.set_field("key", &plan.id.to_string());
            let m = effective_markup(reseller, plan);
            if !mark_val(reseller, Some(m.as_ref()), &mut v) {
                continue;
            }
            if let Some(name) = &plan.name {
                // The upstream's label gives way to the display name; its (marked-up)
                // amounts stay.
                let t = v.text().unwrap_or_default();
                let label = strip_amounts(&t);
                let new = if label.trim().is_empty() || label == t {
                    name.clone()
                } else {
                    t.replacen(&label, name, 1)
                };
                v.set_text(&new);
            }
            out.push(v);
        }
        return out;
    }
    // Named only: priced by the plan of that name, else the reseller's one markup.
    let name = val.text().unwrap_or_default();
    let by_name = plan_by_name(cx, &key).or_else(|| {
        let label = strip_amounts(&name);
        plan_by_name(cx, &label)
    });
    let m = match &by_name {
        Some(p) => Some(effective_markup(reseller, p)),
        None => *fallback,
    };
    let mut v = val;
    if mark_val(reseller, m.as_ref().map(Option::as_ref), &mut v) {
        vec![v]
    } else {
        Vec::new()
    }
}

/// Mark up an `slist` entry's `cost` and the amounts in its text. `markup` is `None` when
/// the plan is unknown: the price is then withheld (cost removed, amounts cut from the
/// text). False when the entry must be dropped (its price cannot be read).
fn mark_val(reseller: &Reseller, markup: Option<Option<&Markup>>, v: &mut Node) -> bool {
    let Some(m) = markup else {
        let had_cost = v.field("cost").is_some();
        let text = v.text();
        let stripped = text.as_deref().map(strip_amounts);
        if had_cost || stripped != text {
            tracing::warn!(reseller = %reseller.login, "withholding a form price: the plan it belongs to is not known");
        }
        v.remove_field("cost");
        if let (Some(t), Some(s)) = (text, stripped) {
            if s != t {
                v.set_text(&s);
            }
        }
        return true;
    };
    if mark_period(m, v).is_err() {
        tracing::warn!(reseller = %reseller.login, "withholding a form entry whose upstream price cannot be read or marked up");
        return false;
    }
    true
}

#[cfg(test)]
mod tests;
