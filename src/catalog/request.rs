//! Requests: local plan ids → upstream plan ids.
//!
//! `pricelist` (every occurrence; a comma-separated list is mapped item by item) and every
//! `addon_<local id>` key are rewritten on every function that carries them, and so is
//! `elid` where the function table says it is a plan id (`pricelist.export&elid=N`). An id that
//! is not a local plan (an upstream id sent directly included), a plan outside the
//! reseller's set, or an add-on that is not one of the plan's mapped add-ons is refused
//! with `value`, naming the field; nothing is forwarded then.

use std::sync::Arc;

use crate::billmgr::{BmError, ErrorType, Params};
use crate::store::model::{Plan, Reseller};
use crate::store::Store;

fn refuse(object: &str, value: &str, why: &str) -> BmError {
    BmError::new(
        ErrorType::Value,
        format!("The value of the '{object}' field is invalid: {why}"),
    )
    .object(object)
    .value(value)
}

/// The reseller's local plan `raw` (a local id), or a `value` error on `object`.
fn local_plan(
    store: &Store,
    reseller: &Reseller,
    object: &str,
    raw: &str,
) -> Result<Arc<Plan>, BmError> {
    let id: u64 = raw
        .trim()
        .parse()
        .map_err(|_| refuse(object, raw, "not a plan id"))?;
    if !reseller.has_plan(id) {
        return Err(refuse(object, raw, "no such plan"));
    }
    store
        .plan(id)
        .ok_or_else(|| refuse(object, raw, "no such plan"))
}

/// The local add-on id in an `addon_<id>` key, if the key is one.
pub fn addon_key(key: &str) -> Option<&str> {
    key.strip_prefix("addon_")
}

/// Map the call's plan fields; `elid_is_plan` when the function's `elid` is a plan id.
pub fn map(
    store: &Store,
    reseller: &Reseller,
    params: &Params,
    elid_is_plan: bool,
) -> Result<Params, BmError> {
    let is_plan_field = |k: &str| k == "pricelist" || (elid_is_plan && k == "elid");
    let carries = params
        .iter()
        .any(|(k, _)| is_plan_field(k) || addon_key(k).is_some());
    if !carries {
        return Ok(params.clone());
    }
    let mut out = params.clone();
    // Plans named by the call, for its add-on keys.
    let mut named: Vec<Arc<Plan>> = Vec::new();
    for (k, v) in out.pairs_mut().iter_mut() {
        if !is_plan_field(k) || v.trim().is_empty() {
            continue;
        }
        let mut mapped = Vec::new();
        for item in v.split(',') {
            if item.trim().is_empty() {
                continue;
            }
            let plan = local_plan(store, reseller, k, item)?;
            mapped.push(plan.upstream_id.to_string());
            named.push(plan);
        }
        *v = mapped.join(",");
    }
    for (k, _) in out.pairs_mut().iter_mut() {
        let Some(raw) = addon_key(k).map(str::to_string) else {
            continue;
        };
        let key = k.clone();
        let unmapped = || refuse(&key, &raw, "no such add-on for this plan");
        let id: u64 = raw.parse().map_err(|_| unmapped())?;
        let upstream = if named.is_empty() {
            // No plan in the call (a form read or a renewal by elid): the add-on must belong
            // to one of the reseller's plans.
            reseller
                .plans
                .iter()
                .filter_map(|p| store.plan(*p))
                .find_map(|p| p.addon_upstream_id(id))
        } else {
            named.iter().find_map(|p| p.addon_upstream_id(id))
        };
        let upstream = upstream.ok_or_else(unmapped)?;
        *k = format!("addon_{upstream}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Addon, Markup};

    fn store() -> Store {
        let s = Store::open_temporary().unwrap();
        for (id, up, addons) in [
            (
                101,
                3033,
                vec![Addon {
                    id: 201,
                    upstream_id: 3034,
                }],
            ),
            (102, 3040, vec![]),
            (
                103,
                3050,
                vec![Addon {
                    id: 203,
                    upstream_id: 3051,
                }],
            ),
        ] {
            s.put_plan(Plan {
                id,
                upstream_id: up,
                name: None,
                markup: Some(Markup::default()),
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

    fn p(q: &str) -> Params {
        Params::parse(Some(q), b"", &Default::default()).unwrap()
    }

    fn mapped(q: &str, plans: &[u64]) -> Result<Vec<(String, String)>, (String, String)> {
        let q = p(q);
        let plan_elid = q.func() == Some("pricelist.export");
        map(&store(), &reseller(plans), &q, plan_elid)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .map_err(|e| {
                assert_eq!(e.kind, ErrorType::Value);
                (e.object.unwrap(), e.value.unwrap())
            })
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn maps_plan_and_addons_keeping_order_and_values() {
        assert_eq!(
            mapped(
                "func=certificate.order.param&pricelist=101&addon_201=2&period=12",
                &[101]
            ),
            Ok(kv(&[
                ("func", "certificate.order.param"),
                ("pricelist", "3033"),
                ("addon_3034", "2"),
                ("period", "12")
            ]))
        );
        assert_eq!(
            mapped("func=pricelist.export&pricelist=101,103", &[101, 103]),
            Ok(kv(&[
                ("func", "pricelist.export"),
                ("pricelist", "3033,3050")
            ]))
        );
    }

    /// `pricelist.export&elid=N` names a plan: mapped like `pricelist`, refused with
    /// `value`/`elid` when unmapped or outside the reseller's set; elsewhere `elid` is a
    /// certificate id and is left alone.
    #[test]
    fn export_elid_is_a_plan() {
        assert_eq!(
            mapped("func=pricelist.export&elid=101&out=json", &[101]),
            Ok(kv(&[
                ("func", "pricelist.export"),
                ("elid", "3033"),
                ("out", "json")
            ]))
        );
        for (q, v) in [
            ("func=pricelist.export&elid=102", "102"),
            ("func=pricelist.export&elid=3033", "3033"),
            ("func=pricelist.export&elid=x", "x"),
        ] {
            assert_eq!(mapped(q, &[101]), Err(("elid".into(), v.into())), "{q}");
        }
        assert_eq!(
            mapped("func=certificate.edit&elid=101", &[101]),
            Ok(kv(&[("func", "certificate.edit"), ("elid", "101")]))
        );
    }

    #[test]
    fn without_plan_fields_nothing_changes() {
        assert_eq!(
            mapped("func=certificate&out=json", &[]),
            Ok(kv(&[("func", "certificate"), ("out", "json")]))
        );
        // An empty pricelist (no plan chosen yet on a form) passes.
        assert_eq!(
            mapped("func=certificate.order.param&pricelist=", &[101]),
            Ok(kv(&[
                ("func", "certificate.order.param"),
                ("pricelist", "")
            ]))
        );
    }

    #[test]
    fn addon_without_plan_uses_the_resellers_plans() {
        assert_eq!(
            mapped("func=service.prolong&elid=5&addon_203=1", &[101, 103]),
            Ok(kv(&[
                ("func", "service.prolong"),
                ("elid", "5"),
                ("addon_3051", "1")
            ]))
        );
        assert_eq!(
            mapped("func=service.prolong&elid=5&addon_203=1", &[101]),
            Err(("addon_203".into(), "203".into()))
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let e = |q: &str, plans: &[u64]| mapped(q, plans).unwrap_err();
        // An upstream id sent directly.
        assert_eq!(
            e("pricelist=3033", &[101]),
            ("pricelist".into(), "3033".into())
        );
        // Unknown.
        assert_eq!(
            e("pricelist=999", &[101]),
            ("pricelist".into(), "999".into())
        );
        // Outside the reseller's set.
        assert_eq!(
            e("pricelist=102", &[101]),
            ("pricelist".into(), "102".into())
        );
        // In the set but not in the store.
        assert_eq!(
            e("pricelist=104", &[104]),
            ("pricelist".into(), "104".into())
        );
        assert_eq!(
            e("pricelist=abc", &[101]),
            ("pricelist".into(), "abc".into())
        );
        assert_eq!(
            e("pricelist=101,3040", &[101]),
            ("pricelist".into(), "3040".into())
        );
        // Add-on of another plan, an upstream add-on id, garbage.
        assert_eq!(
            e("pricelist=101&addon_203=1", &[101, 103]),
            ("addon_203".into(), "203".into())
        );
        assert_eq!(
            e("pricelist=101&addon_3034=1", &[101]),
            ("addon_3034".into(), "3034".into())
        );
        assert_eq!(
            e("pricelist=101&addon_x=1", &[101]),
            ("addon_x".into(), "x".into())
        );
        assert_eq!(
            e("pricelist=101&addon_=1", &[101]),
            ("addon_".into(), "".into())
        );
    }
}
