//! The price a reseller is billed: the same markup the catalogue shows, applied to what
//! the upstream charged. The ledger stores the result; it does not compute prices.

use rust_decimal::Decimal;

use super::markup;
use super::response::effective_markup;
use crate::store::Store;

/// The price a reseller pays for `upstream_cost` on `upstream_plan`: the markup of the
/// reseller's local plan over that upstream plan (the reseller's own markup replaces the
/// plan's), as the catalogue shows it. Without a mapped plan or markup, the cost itself.
pub fn marked_up_price(
    store: &Store,
    reseller: &str,
    upstream_plan: Option<&str>,
    upstream_cost: Decimal,
) -> Decimal {
    let Some(r) = store.reseller(reseller) else {
        return upstream_cost;
    };
    let up: Option<u64> = upstream_plan.and_then(|p| p.trim().parse().ok());
    let plan = store
        .plans()
        .into_iter()
        .find(|p| Some(p.upstream_id) == up && r.plans.contains(&p.id));
    match plan.and_then(|p| effective_markup(&r, &p)) {
        Some(m) => markup::apply(&m, upstream_cost).unwrap_or(upstream_cost),
        None => upstream_cost,
    }
}
