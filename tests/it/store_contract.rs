//! The store's contract, run against both backends: sled and PostgreSQL (a fresh database
//! per test, see `pg.rs`). What the gateway relies on — key order, compare-and-swap, order
//! claims taken once, idempotent ledger writes — holds on each; and on PostgreSQL also across
//! two stores on one database (two gateways): one claim wins, a change made through one is
//! seen by the other within a second, exclusive work runs on one at a time.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::harness::write_mappings;
use crate::pg::TestDb;
use resellgate::config;
use resellgate::store::ledger::{LedgerEntry, LedgerKind};
use resellgate::store::orders::{Claim, OrderRecord, OrderState};
use resellgate::store::{Backend, Location, PgBackend, SledBackend, Store};

/// Runs `test` with a fresh sled store, then with a fresh PostgreSQL one (if configured).
/// `open` opens another store on the same state (a second gateway on PostgreSQL; for sled,
/// another handle of the same store, since sled is one process's).
fn each_backend(test: impl Fn(&str, &dyn Fn() -> Store)) {
    let sled = Store::open_temporary().unwrap();
    test("sled", &|| sled.clone());
    if let Some(db) = TestDb::create() {
        let location = db.location();
        test("postgres", &|| Store::open_at(&location).unwrap());
    }
}

fn each_raw_backend(test: impl Fn(&str, &dyn Backend)) {
    test("sled", &SledBackend::temporary().unwrap());
    if let Some(db) = TestDb::create() {
        test("postgres", &PgBackend::open(db.options()).unwrap());
    }
}

#[test]
fn keys_scan_in_byte_order_and_deletes_answer_presence() {
    each_raw_backend(|name, b| {
        let keys: [&[u8]; 5] = [b"\xff", b"a\x00b", b"", b"a", b"\x00\x01"];
        for (i, k) in keys.iter().enumerate() {
            b.put("t", k, &[i as u8]).unwrap();
        }
        b.put("t", b"a", b"again").unwrap(); // a put replaces
        b.put("u", b"a", b"other tree").unwrap();
        let got: Vec<Vec<u8>> = b.scan("t").unwrap().into_iter().map(|(k, _)| k).collect();
        let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        want.sort();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            b.get("t", b"a").unwrap().as_deref(),
            Some(&b"again"[..]),
            "{name}"
        );
        assert_eq!(b.get("t", b"missing").unwrap(), None, "{name}");
        assert!(b.delete("t", b"a").unwrap(), "{name}");
        assert!(!b.delete("t", b"a").unwrap(), "{name}");
        b.flush().unwrap();
        let names = b.tree_names().unwrap();
        assert!(
            names.contains(&"t".to_string()) && names.contains(&"u".to_string()),
            "{name}: {names:?}"
        );
    });
}

/// A batch (an admin change and its audit entry) is one write on either backend: the last
/// operation on a key decides it; `last` is the greatest key, `first` the head.
#[test]
fn a_batch_is_one_write_and_last_is_the_greatest_key() {
    use resellgate::store::BatchOp;
    each_raw_backend(|name, b| {
        b.put("t", b"gone", b"x").unwrap();
        b.write_batch(&[
            BatchOp::Put {
                tree: "t",
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            BatchOp::Put {
                tree: "audit",
                key: vec![0, 2],
                value: b"entry".to_vec(),
            },
            BatchOp::Delete {
                tree: "t",
                key: b"gone".to_vec(),
            },
            BatchOp::Put {
                tree: "t",
                key: b"b".to_vec(),
                value: b"first".to_vec(),
            },
            BatchOp::Delete {
                tree: "t",
                key: b"b".to_vec(),
            },
            BatchOp::Put {
                tree: "t",
                key: b"c".to_vec(),
                value: b"first".to_vec(),
            },
            BatchOp::Put {
                tree: "t",
                key: b"c".to_vec(),
                value: b"second".to_vec(),
            },
        ])
        .unwrap();
        b.flush().unwrap();
        let got = b.scan("t").unwrap();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"c".to_vec(), b"second".to_vec())
            ],
            "{name}"
        );
        b.put("audit", &[0, 10], b"later").unwrap();
        b.put("audit", &[0, 1], b"earlier").unwrap();
        assert_eq!(
            b.last("audit").unwrap(),
            Some((vec![0, 10], b"later".to_vec())),
            "{name}"
        );
        // `first` reads the head only, in key order, at most `limit` pairs
        assert_eq!(
            b.first("audit", 2).unwrap(),
            vec![
                (vec![0, 1], b"earlier".to_vec()),
                (vec![0, 2], b"entry".to_vec())
            ],
            "{name}"
        );
        assert_eq!(b.first("audit", 10).unwrap().len(), 3, "{name}");
        assert!(b.first("audit", 0).unwrap().is_empty(), "{name}");
        assert!(b.first("nothing-here", 5).unwrap().is_empty(), "{name}");
        assert_eq!(b.last("empty").unwrap(), None, "{name}");
        b.write_batch(&[]).unwrap();
    });
}

/// A bulk put (`store copy`) writes every pair, replaces what a key held, leaves other
/// trees and keys alone, and takes no pair at all; a bulk read (`services import`) reads
/// them back; a tree read one pair at a time (one reseller's services) sees every pair in
/// order.
#[test]
fn bulk_reads_and_writes() {
    each_raw_backend(|name, b| {
        b.put("t", b"b", b"old").unwrap();
        b.put("t", b"z", b"kept").unwrap();
        b.put("other", b"a", b"other").unwrap();
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0u32..1200)
            .map(|i| (i.to_be_bytes().to_vec(), format!("v{i}").into_bytes()))
            .chain([(b"b".to_vec(), b"new".to_vec())])
            .collect();
        b.put_all("t", &pairs).unwrap();
        b.put_all("t", &[]).unwrap();
        b.flush().unwrap();
        let got = b.scan("t").unwrap();
        assert_eq!(got.len(), 1202, "{name}");
        assert_eq!(
            got[5],
            (5u32.to_be_bytes().to_vec(), b"v5".to_vec()),
            "{name}"
        );
        assert_eq!(b.get("t", b"b").unwrap(), Some(b"new".to_vec()), "{name}");
        assert_eq!(b.get("t", b"z").unwrap(), Some(b"kept".to_vec()), "{name}");
        assert_eq!(b.scan("other").unwrap().len(), 1, "{name}");
        // A bulk read answers in the order asked, absent keys as `None`, a key twice twice.
        let k5 = 5u32.to_be_bytes().to_vec();
        assert_eq!(
            b.get_many("t", &[k5.clone(), b"nope".to_vec(), b"b".to_vec(), k5])
                .unwrap(),
            vec![
                Some(b"v5".to_vec()),
                None,
                Some(b"new".to_vec()),
                Some(b"v5".to_vec())
            ],
            "{name}"
        );
        assert!(b.get_many("t", &[]).unwrap().is_empty(), "{name}");
        // Read one pair at a time, over more than one of PostgreSQL's pages (5,000), in
        // key order, the empty key included; stopped when asked.
        let many: Vec<(Vec<u8>, Vec<u8>)> = (0u32..10_003)
            .map(|i| (i.to_be_bytes().to_vec(), vec![1]))
            .chain([(Vec::new(), vec![2])])
            .collect();
        b.put_all("each", &many).unwrap();
        let mut seen = Vec::new();
        b.for_each("each", &mut |k, _| {
            seen.push(k.to_vec());
            true
        })
        .unwrap();
        assert_eq!(seen.len(), 10_004, "{name}");
        assert!(seen[0].is_empty(), "{name}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{name}");
        let mut n = 0;
        b.for_each("each", &mut |_, _| {
            n += 1;
            n < 7
        })
        .unwrap();
        assert_eq!(n, 7, "{name}");
        b.for_each("nothing-here", &mut |_, _| panic!("{name}"))
            .unwrap();
    });
}

#[test]
fn compare_and_swap_takes_a_key_once() {
    each_raw_backend(|name, b| {
        assert_eq!(
            b.compare_and_swap("t", b"k", None, Some(b"1")).unwrap(),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", None, Some(b"2")).unwrap(),
            Err(Some(b"1".to_vec())),
            "{name}"
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", Some(b"x"), Some(b"2"))
                .unwrap(),
            Err(Some(b"1".to_vec())),
            "{name}"
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", Some(b"1"), Some(b"2"))
                .unwrap(),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", Some(b"2"), None).unwrap(),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", Some(b"2"), None).unwrap(),
            Err(None),
            "{name}"
        );
        assert_eq!(
            b.compare_and_swap("t", b"k", None, None).unwrap(),
            Ok(()),
            "{name}"
        );
        assert_eq!(b.get("t", b"k").unwrap(), None, "{name}");
    });
}

fn order(remoteid: &str, hash: u8, at: u64) -> OrderRecord {
    OrderRecord {
        reseller: "acme".into(),
        remoteid: remoteid.into(),
        params_hash: vec![hash],
        plan: Some("3033".into()),
        period: Some("12".into()),
        claimed_at_ms: at,
        updated_at_ms: at,
        state: OrderState::Pending,
    }
}

#[test]
fn an_order_is_claimed_once_then_replayed_or_refused() {
    each_backend(|name, open| {
        let s = open();
        assert!(
            matches!(s.claim_order(&order("r1", 1, 10)).unwrap(), Claim::Claimed),
            "{name}"
        );
        assert!(
            matches!(
                s.claim_order(&order("r1", 1, 11)).unwrap(),
                Claim::Pending(_)
            ),
            "{name}"
        );
        assert!(
            matches!(
                s.claim_order(&order("r1", 2, 11)).unwrap(),
                Claim::Conflict(_)
            ),
            "{name}"
        );
        assert_eq!(s.pending_orders().unwrap().len(), 1, "{name}");
        let done = OrderState::Done {
            upstream_id: 7,
            answer_xml: "<doc/>".into(),
        };
        assert!(
            s.resolve_order("acme", "r1", 10, done.clone(), None, None, 20)
                .unwrap(),
            "{name}"
        );
        // The resolve happens once: the claim it names is gone.
        assert!(
            !s.resolve_order("acme", "r1", 10, done, None, None, 21)
                .unwrap(),
            "{name}"
        );
        assert!(
            matches!(
                s.claim_order(&order("r1", 1, 30)).unwrap(),
                Claim::Replay(_)
            ),
            "{name}"
        );
        assert!(s.pending_orders().unwrap().is_empty(), "{name}");
        // A failed order may be claimed again.
        assert!(
            matches!(s.claim_order(&order("r2", 1, 40)).unwrap(), Claim::Claimed),
            "{name}"
        );
        let failed = OrderState::Failed {
            reason: "refused".into(),
        };
        assert!(
            s.resolve_order("acme", "r2", 40, failed, None, None, 41)
                .unwrap(),
            "{name}"
        );
        assert!(
            matches!(s.claim_order(&order("r2", 1, 50)).unwrap(), Claim::Claimed),
            "{name}"
        );
        // Another store on the same state sees all of it.
        let other = open();
        assert_eq!(other.orders().unwrap().len(), 2, "{name}");
        assert_eq!(
            other.order("acme", "r2").unwrap().unwrap().claimed_at_ms,
            50,
            "{name}"
        );
    });
}

#[test]
fn concurrent_claims_from_two_stores_make_one_winner() {
    each_backend(|name, open| {
        let stores = [open(), open()];
        for round in 0..20 {
            let remoteid = format!("race-{round}");
            let barrier = Arc::new(Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let s = stores[i % 2].clone();
                    let barrier = Arc::clone(&barrier);
                    let rec = order(&remoteid, 1, 100 + i as u64);
                    std::thread::spawn(move || {
                        barrier.wait();
                        matches!(s.claim_order(&rec).unwrap(), Claim::Claimed)
                    })
                })
                .collect();
            let won = handles
                .into_iter()
                .filter(|_| true)
                .map(|h| h.join().unwrap())
                .filter(|w| *w)
                .count();
            assert_eq!(won, 1, "{name}: round {round}");
        }
    });
}

#[test]
fn ledger_writes_are_idempotent() {
    each_backend(|name, open| {
        let s = open();
        let entry = LedgerEntry {
            at_ms: 1_000,
            reseller: "acme".into(),
            kind: LedgerKind::Order,
            upstream_id: 42,
            remoteid: Some("r1".into()),
            plan: Some("3033".into()),
            period: Some("12".into()),
            upstream_cost: None,
            price: None,
        };
        s.record_ledger(&entry).unwrap();
        s.record_ledger(&entry).unwrap();
        open()
            .record_ledger(&LedgerEntry {
                at_ms: 2_000,
                ..entry.clone()
            })
            .unwrap();
        assert_eq!(s.ledger(Some("acme")).unwrap().len(), 1, "{name}");
        assert_eq!(s.costless_ledger().unwrap().len(), 1, "{name}");
    });
}

fn apply_demo(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let set = config::load_mappings(&[write_mappings(dir.path())]).unwrap();
    set.apply_to(store).unwrap();
}

/// An admin change through one gateway's store reaches the other's cache within a second,
/// with no poll: PostgreSQL announces it (LISTEN/NOTIFY).
#[test]
fn a_change_on_one_gateway_is_seen_by_the_other_within_a_second() {
    let Some(db) = TestDb::create() else { return };
    let a = Store::open_at(&db.location()).unwrap();
    let b = Store::open_at(&db.location()).unwrap();
    assert!(b.reseller("acme").is_none());
    apply_demo(&a);
    let seen = |f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    };
    assert!(
        seen(&|| b.reseller("acme").is_some() && !b.plans().is_empty()),
        "apply not seen"
    );
    let mut acme = (*a.reseller("acme").unwrap()).clone();
    acme.plans.clear();
    a.put_reseller(acme).unwrap();
    assert!(
        seen(&|| b.reseller("acme").is_some_and(|r| r.plans.is_empty())),
        "edit not seen"
    );
    a.delete_reseller("acme").unwrap();
    assert!(seen(&|| b.reseller("acme").is_none()), "delete not seen");
}

#[test]
fn exclusive_work_runs_on_one_gateway_at_a_time() {
    let Some(db) = TestDb::create() else { return };
    let a = Store::open_at(&db.location()).unwrap();
    let b = Store::open_at(&db.location()).unwrap();
    let inner = a
        .exclusive("reconcile", || b.exclusive("reconcile", || ()).unwrap())
        .unwrap();
    assert_eq!(inner, Some(None), "b ran while a held the lock");
    assert_eq!(
        b.exclusive("reconcile", || 1).unwrap(),
        Some(1),
        "released after a"
    );
    // sled: one process, always granted.
    let s = Store::open_temporary().unwrap();
    assert_eq!(s.exclusive("reconcile", || 2).unwrap(), Some(2));
}

#[test]
fn migrations_apply_once_and_a_store_reopens_with_its_records() {
    let Some(db) = TestDb::create() else { return };
    let b = PgBackend::open(db.options()).unwrap();
    assert_eq!(
        b.schema_version().unwrap(),
        resellgate::store::postgres::MIGRATIONS.len() as i32
    );
    assert!(b.migrate().unwrap().is_empty(), "applied twice");
    drop(b);
    let s = Store::open_at(&db.location()).unwrap();
    apply_demo(&s);
    drop(s);
    let s = Store::open_at(&db.location()).unwrap();
    assert!(s.reseller("acme").is_some());
}

#[test]
fn copy_moves_a_sled_installation_into_postgres() {
    let Some(db) = TestDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sled_path = dir.path().join("store");
    {
        let s = Store::open(&sled_path).unwrap();
        apply_demo(&s);
        assert!(matches!(
            s.claim_order(&order("r1", 1, 10)).unwrap(),
            Claim::Claimed
        ));
        // More services than one bulk write takes: the copy goes in several.
        let n = resellgate::store::copy::COPY_BATCH as u64 + 3;
        let services = (1..=n).map(|id| resellgate::store::services::Service {
            upstream_id: id,
            reseller: "acme".into(),
            remoteid: Some(format!("r{id}")),
            plan: None,
            period: None,
            recorded_at: 1,
            source: resellgate::store::services::ServiceSource::Sync,
            deleted: false,
            history: Vec::new(),
        });
        assert_eq!(s.record_services(services).unwrap().0 as u64, n);
    }
    // sled lets go of its lock a moment after our last handle drops: until then the copy,
    // another process, finds the store in use.
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        let out = crate::harness::run_cli(&[
            &"store",
            &"copy",
            &"--from",
            &format!("sled:{}", sled_path.display()),
            &"--to",
            &db.url,
            &"--password-env",
            &crate::pg::PASSWORD_ENV,
        ]);
        if out.status.success()
            || Instant::now() > deadline
            || !String::from_utf8_lossy(&out.stderr).contains("in use")
        {
            break out;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("resellers: 2")
            && stdout.contains("orders: 1")
            && stdout.contains(&format!(
                "services: {}",
                resellgate::store::copy::COPY_BATCH + 3
            )),
        "{stdout}"
    );
    let pg = Store::open_at(&db.location()).unwrap();
    let sled = Store::open(&sled_path).unwrap();
    assert_eq!(
        config::MappingFile::from_store(&pg).to_toml(),
        config::MappingFile::from_store(&sled).to_toml()
    );
    assert_eq!(pg.orders().unwrap(), sled.orders().unwrap());
    assert_eq!(pg.services(None).unwrap(), sled.services(None).unwrap());
    // A second copy would merge: refused.
    drop(pg);
    drop(sled);
    let again = crate::harness::run_cli(&[
        &"store",
        &"copy",
        &"--from",
        &format!("sled:{}", sled_path.display()),
        &"--to",
        &db.url,
        &"--password-env",
        &crate::pg::PASSWORD_ENV,
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds records"));
}

/// PostgreSQL unreachable: opening fails, with the URL and without a password, in bounded
/// time.
#[test]
fn an_unreachable_database_fails_fast_without_secrets() {
    let port = crate::harness::free_port();
    let options = resellgate::store::PgOptions {
        url: format!("postgres://resellgate@127.0.0.1:{port}/none"),
        password: Some(resellgate::secret::Secret::new("pg-secret-pw")),
        timeout: Duration::from_millis(500),
        connections: 1,
        ca_file: None,
    };
    let start = Instant::now();
    let e = Store::open_at(&Location::Postgres(options))
        .unwrap_err()
        .to_string();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.contains(&port.to_string()) && !e.contains("pg-secret-pw"),
        "{e}"
    );
}

/// `sslmode=require`: the connection is TLS, and the server's certificate is verified
/// against `ca_file` — the test CA works, another CA is refused.
#[test]
fn tls_to_postgres_is_verified_against_the_ca_file() {
    let Some(db) = TestDb::create() else { return };
    let ca = match std::env::var("RESELLGATE_TEST_PG_CA") {
        Ok(ca) => std::path::PathBuf::from(ca),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but RESELLGATE_TEST_PG_CA is unset (.ci/postgres.sh sets it)")
        }
        Err(_) => return eprintln!("SKIPPED: RESELLGATE_TEST_PG_CA unset"),
    };
    let mut options = db.options();
    options.url = format!("{}?sslmode=require", db.url);
    options.ca_file = Some(ca);
    let b = PgBackend::open(options.clone()).unwrap();
    b.put("t", b"k", b"over tls").unwrap();
    assert_eq!(b.get("t", b"k").unwrap().as_deref(), Some(&b"over tls"[..]));

    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["other.example".into()]).unwrap();
    std::fs::write(&other, cert.cert.pem()).unwrap();
    options.ca_file = Some(other);
    let e = match PgBackend::open(options) {
        Ok(_) => panic!("a server certificate from another CA was accepted"),
        Err(e) => e.to_string(),
    };
    let lower = e.to_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("tls"),
        "{e}"
    );
}
