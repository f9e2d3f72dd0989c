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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::PasswordSource;
    use crate::store::{Markup, Plan, Reseller, UpstreamAccount};

    /// The plan's markup over the upstream plan, the reseller's own instead when set, the
    /// cost itself for a plan the reseller does not have.
    #[test]
    fn price_follows_the_catalogue_markup() {
        let store = Store::open_temporary().unwrap();
        store
            .put_upstream_account(UpstreamAccount {
                name: "up".into(),
                login: "u@x".into(),
                password: PasswordSource::Env("PW".into()),
            })
            .unwrap();
        let markup = |percent: i64, fixed: Decimal| Markup {
            percent: Decimal::from(percent),
            fixed,
            ..Markup::default()
        };
        store
            .put_plan(Plan {
                id: 101,
                upstream_id: 3033,
                name: None,
                markup: Some(markup(20, Decimal::new(50, 2))),
                addons: vec![],
            })
            .unwrap();
        let reseller = |login: &str, markup: Option<Markup>| Reseller {
            login: login.into(),
            password_hash: "$argon2id$x".into(),
            upstream_account: "up".into(),
            plans: vec![101],
            markup,
        };
        store.put_reseller(reseller("acme", None)).unwrap();
        store
            .put_reseller(reseller("globex", Some(markup(10, Decimal::ZERO))))
            .unwrap();
        let nine = Decimal::new(900, 2);
        let price =
            |r: &str, plan: Option<&str>| marked_up_price(&store, r, plan, nine).to_string();
        assert_eq!(price("acme", Some("3033")), "11.30");
        assert_eq!(price("acme", Some(" 3033 ")), "11.30");
        assert_eq!(price("globex", Some("3033")), "9.90");
        assert_eq!(price("acme", Some("3040")), "9.00");
        assert_eq!(price("acme", None), "9.00");
        assert_eq!(price("nobody", Some("3033")), "9.00");
    }
}
