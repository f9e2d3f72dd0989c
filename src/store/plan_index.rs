//! The catalogue as the answer rewrites read it: a reseller's plans indexed by upstream
//! plan id and by display name, and every plan by upstream id, built once per catalogue
//! change instead of once per answer (or per row).
//!
//! Every change to a cached reseller or plan — a local write ([`Store::commit`]) or another
//! gateway's, reloaded ([`Store::reload`]) — bumps the store's catalogue generation after
//! the cache holds it. An index remembers the generation it was built at (read before
//! building, so an index built while a change lands is rebuilt on its next use) and the
//! reseller's plan list it was built for; a stale one is rebuilt on use.
//!
//! [`Store::commit`]: super::records
//! [`Store::reload`]: Store::reload

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::model::{Markup, Plan, Reseller};
use super::Store;

/// At most this many resellers' indexes are kept; past it the cache starts over.
const MAX_INDEXES: usize = 10_000;

/// One reseller's plans, indexed.
#[derive(Debug, Default)]
pub struct ResellerPlans {
    generation: u64,
    /// The reseller's plan list this index was built for.
    plan_ids: Vec<u64>,
    /// The reseller's local plans over each upstream plan, in the reseller's order.
    by_upstream: HashMap<u64, Vec<Arc<Plan>>>,
    /// The reseller's first plan of each display name (trimmed).
    by_name: HashMap<String, Arc<Plan>>,
    /// The markup all of the reseller's plans share (`Some(None)`: none of them has one);
    /// `None` when they differ or there are no plans. The reseller's own markup is not
    /// part of it.
    shared_markup: Option<Option<Markup>>,
}

impl ResellerPlans {
    fn build(store: &Store, reseller: &Reseller, generation: u64) -> ResellerPlans {
        let mut ix = ResellerPlans {
            generation,
            plan_ids: reseller.plans.clone(),
            ..Default::default()
        };
        let mut markups = Vec::new();
        for plan in reseller.plans.iter().filter_map(|id| store.plan(*id)) {
            if let Some(name) = plan.name.as_deref() {
                ix.by_name
                    .entry(name.trim().to_string())
                    .or_insert_with(|| plan.clone());
            }
            markups.push(plan.markup);
            ix.by_upstream
                .entry(plan.upstream_id)
                .or_default()
                .push(plan);
        }
        let mut all = markups.into_iter();
        ix.shared_markup = all.next().filter(|first| all.all(|m| m == *first));
        ix
    }

    /// The reseller's local plans over upstream plan `up`, in the reseller's order.
    pub fn over(&self, up: u64) -> &[Arc<Plan>] {
        self.by_upstream.get(&up).map_or(&[], Vec::as_slice)
    }

    /// The reseller's first plan shown under display name `name` (trimmed).
    pub fn named(&self, name: &str) -> Option<&Arc<Plan>> {
        self.by_name.get(name.trim())
    }

    /// The one markup of all the reseller's plans, if they share one (see the field).
    pub fn shared_markup(&self) -> Option<Option<Markup>> {
        self.shared_markup
    }
}

/// Every local plan by upstream id: the first (lowest local id) over each.
#[derive(Debug, Default)]
pub struct AllPlans {
    generation: u64,
    by_upstream: HashMap<u64, Arc<Plan>>,
}

impl AllPlans {
    pub fn over(&self, up: u64) -> Option<&Arc<Plan>> {
        self.by_upstream.get(&up)
    }
}

/// The indexes, held by the store beside its caches.
#[derive(Debug, Default)]
pub(super) struct PlanIndexes {
    resellers: dashmap::DashMap<String, Arc<ResellerPlans>>,
    all: std::sync::RwLock<Arc<AllPlans>>,
}

impl Store {
    /// The catalogue generation: changes whenever a cached reseller or plan does.
    pub fn catalog_generation(&self) -> u64 {
        self.shared.catalog_generation.load(Ordering::Acquire)
    }

    /// Called after a reseller or plan in the cache changed.
    pub(super) fn bump_catalog(shared: &super::Shared) {
        shared.catalog_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// `reseller`'s plans indexed (see [`ResellerPlans`]), from the cache when nothing
    /// changed since it was built for the same plan list.
    pub fn reseller_plans(&self, reseller: &Reseller) -> Arc<ResellerPlans> {
        let generation = self.catalog_generation();
        let indexes = &self.shared.plan_indexes;
        if let Some(ix) = indexes.resellers.get(&reseller.login) {
            if ix.generation == generation && ix.plan_ids == reseller.plans {
                return ix.clone();
            }
        }
        let ix = Arc::new(ResellerPlans::build(self, reseller, generation));
        if indexes.resellers.len() >= MAX_INDEXES {
            indexes.resellers.clear();
        }
        indexes.resellers.insert(reseller.login.clone(), ix.clone());
        ix
    }

    /// Every plan by upstream id (see [`AllPlans`]), rebuilt once per catalogue change.
    pub fn all_plans(&self) -> Arc<AllPlans> {
        let generation = self.catalog_generation();
        let lock = &self.shared.plan_indexes.all;
        {
            let cur = lock.read().unwrap_or_else(|p| p.into_inner());
            if cur.generation == generation {
                return cur.clone();
            }
        }
        let mut by_upstream = HashMap::new();
        for p in self.plans() {
            by_upstream.entry(p.upstream_id).or_insert(p);
        }
        let all = Arc::new(AllPlans {
            generation,
            by_upstream,
        });
        *lock.write().unwrap_or_else(|p| p.into_inner()) = all.clone();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Markup, UpstreamAccount};
    use crate::store::Batch;

    fn plan(id: u64, up: u64, name: &str, pct: i64) -> Plan {
        Plan {
            id,
            upstream_id: up,
            name: Some(name.into()),
            markup: Some(Markup {
                percent: pct.into(),
                ..Default::default()
            }),
            addons: vec![],
        }
    }

    fn seeded() -> (Store, Reseller) {
        let store = Store::open_temporary().unwrap();
        let r = Reseller {
            login: "r".into(),
            password_hash: String::new(),
            upstream_account: "up".into(),
            plans: vec![2, 1, 3],
            markup: None,
        };
        let batch = Batch {
            upstream_accounts: vec![UpstreamAccount {
                name: "up".into(),
                login: "u".into(),
                password: crate::secret::PasswordSource::Env("X".into()),
            }],
            plans: vec![
                plan(1, 10, "One", 10),
                plan(2, 10, " Two ", 10),
                plan(3, 30, "Three", 10),
                plan(4, 40, "Four", 10),
            ],
            resellers: vec![r.clone()],
        };
        store
            .apply_batch(batch, |_| Ok::<_, StoreError>(()))
            .unwrap();
        (store, r)
    }

    use crate::store::StoreError;

    #[test]
    fn indexes_follow_the_resellers_order_and_names() {
        let (store, r) = seeded();
        let ix = store.reseller_plans(&r);
        let ids: Vec<u64> = ix.over(10).iter().map(|p| p.id).collect();
        assert_eq!(ids, [2, 1]);
        assert!(ix.over(40).is_empty(), "not the reseller's");
        assert_eq!(ix.named("Two").map(|p| p.id), Some(2));
        assert_eq!(ix.named(" Three").map(|p| p.id), Some(3));
        assert_eq!(
            ix.shared_markup().map(|m| m.map(|m| m.percent)),
            Some(Some(10.into()))
        );
        assert_eq!(store.all_plans().over(40).map(|p| p.id), Some(4));
        assert_eq!(store.all_plans().over(10).map(|p| p.id), Some(1));
        // Unchanged: the same index.
        assert!(Arc::ptr_eq(&ix, &store.reseller_plans(&r)));
    }

    /// A plan changed, or a reseller with another plan list, is seen at once.
    #[test]
    fn a_catalogue_change_rebuilds_the_index() {
        let (store, r) = seeded();
        let before = store.reseller_plans(&r);
        let all_before = store.all_plans();
        let g = store.catalog_generation();
        store.put_plan(plan(3, 31, "Three", 25)).unwrap();
        assert!(store.catalog_generation() > g);
        let ix = store.reseller_plans(&r);
        assert!(!Arc::ptr_eq(&before, &ix));
        assert!(ix.over(30).is_empty());
        assert_eq!(ix.over(31)[0].id, 3);
        assert_eq!(ix.shared_markup(), None, "markups differ now");
        assert!(!Arc::ptr_eq(&all_before, &store.all_plans()));
        assert_eq!(store.all_plans().over(31).map(|p| p.id), Some(3));
        // The same login with another plan list (e.g. a reseller read before a change).
        let other = Reseller {
            plans: vec![1],
            ..r.clone()
        };
        assert_eq!(store.reseller_plans(&other).over(10).len(), 1);
        assert_eq!(store.reseller_plans(&r).over(10).len(), 2);
        // Reloading from the backend (another gateway's change) bumps it too.
        let g = store.catalog_generation();
        store
            .reload(&crate::store::Invalidation::Tree(
                crate::store::trees::PLANS.into(),
            ))
            .unwrap();
        assert!(store.catalog_generation() > g);
    }
}
