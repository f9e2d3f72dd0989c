//! Unit tests of the store's records, caches and format: writes, deletes, references,
//! unknown value versions. Applying mapping files is tested in `config::mappings`, with
//! the helpers made `pub(crate)` here.

use super::*;
use crate::secret::PasswordSource;

pub(crate) fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(Change::to_string).collect()
}

fn account(name: &str) -> UpstreamAccount {
    UpstreamAccount {
        name: name.into(),
        login: format!("{name}@x"),
        password: PasswordSource::Env("PW".into()),
    }
}

/// Service `id` of `reseller`, remoteid `r{id}`, recorded by `services sync`.
pub(crate) fn service(id: u64, reseller: &str) -> services::Service {
    services::Service {
        upstream_id: id,
        reseller: reseller.into(),
        remoteid: Some(format!("r{id}")),
        plan: None,
        period: None,
        recorded_at: 1,
        source: services::ServiceSource::Sync,
        deleted: false,
        history: Vec::new(),
    }
}

pub(crate) fn plan(id: u64) -> Plan {
    Plan {
        id,
        upstream_id: id + 1000,
        name: None,
        markup: None,
        addons: vec![],
    }
}

/// A write is visible in the cache as soon as it returns.
#[test]
fn writes_visible_immediately() {
    let store = Store::open_temporary().unwrap();
    let handle = store.clone();
    assert_eq!(
        lines(&store.put_upstream_account(account("up")).unwrap()),
        ["+ upstream_account up"]
    );
    store.put_plan(plan(1)).unwrap();
    let r = Reseller {
        login: "r".into(),
        password_hash: "$argon2id$x".into(),
        upstream_account: "up".into(),
        plans: vec![1],
        markup: None,
    };
    store.put_reseller(r.clone()).unwrap();
    assert_eq!(handle.reseller("r").as_deref(), Some(&r));
    assert!(store.put_reseller(r.clone()).unwrap().is_empty());

    let e = store.delete_plan(1).unwrap_err().to_string();
    assert!(e.contains("plan 1 cannot be deleted: reseller 'r'"), "{e}");
    let e = store
        .put_reseller(Reseller {
            plans: vec![9],
            ..r.clone()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("plan 9"), "{e}");
    assert_eq!(
        store.delete_reseller("r").unwrap().unwrap().to_string(),
        "- reseller r"
    );
    assert!(handle.reseller("r").is_none());
    assert!(store.delete_reseller("r").unwrap().is_none());
    store.delete_plan(1).unwrap();
    store.delete_upstream_account("up").unwrap();
    assert!(handle.plans().is_empty() && handle.upstream_accounts().is_empty());
}

/// The handle is shared across pingora's worker threads.
#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Store>();
}

/// A record with an unknown format version stops the open with a clear error.
#[test]
fn unknown_version_byte_is_clear() {
    let backend = SledBackend::temporary().unwrap();
    let mut bytes = codec::encode(&plan(3)).unwrap();
    bytes[0] = 42;
    backend
        .put(trees::PLANS, &3u64.to_be_bytes(), &bytes)
        .unwrap();
    let e = Store::with_backend(Box::new(backend))
        .unwrap_err()
        .to_string();
    assert!(e.contains("store tree 'plans', key '3'"), "{e}");
    assert!(e.contains("unknown value format version 42"), "{e}");
}

/// The plans of one reseller's services, read in chunks: every asked id past a chunk's
/// edge is found; another reseller's service, one without a plan and an unknown id are
/// left out.
#[test]
fn service_plans_reads_past_a_chunk_and_only_the_resellers() {
    let s = Store::open_temporary().unwrap();
    let edge = services::SERVICE_PLANS_AT_ONCE as u64;
    let with_plan = |id: u64, reseller: &str| services::Service {
        plan: Some(format!(" {} ", 3000 + id)),
        ..service(id, reseller)
    };
    s.record_services([
        with_plan(1, "r"),
        with_plan(edge, "r"),
        with_plan(edge + 1, "r"),
        with_plan(2, "other"),
        services::Service {
            plan: None,
            ..service(3, "r")
        },
    ])
    .unwrap();
    let ids: Vec<u64> = (0..2 * edge + 7).collect();
    let plans = s.service_plans("r", &ids).unwrap();
    assert_eq!(
        plans,
        std::collections::HashMap::from([(1, 3001), (edge, 3000 + edge), (edge + 1, 3001 + edge)])
    );
    assert!(s.service_plans("r", &[]).unwrap().is_empty());
}
