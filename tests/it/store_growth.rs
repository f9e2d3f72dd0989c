//! Store growth (issue 9, point 7): failed order records are deleted once past
//! `[orders] failed_retention_s`; the remoteid can then be ordered again.

use resellgate::billmgr::Format;
use resellgate::reconcile::record::now_ms;

use crate::harness::*;

/// An order the upstream refuses leaves a failed record; pruning past its retention
/// deletes it (and only it), and the remoteid orders normally afterwards.
#[test]
fn refused_order_records_are_pruned_after_retention() {
    let env = TestEnv::builder()
        .config("[orders]\nfailed_retention_s = 1\n[store]\ncache_mb = 4")
        .start();
    let good = id_of(&env.acme(&order("kept", "kept.example.com")), Format::Xml);
    // no approver e-mail: the upstream refuses the order
    let refused =
        order("gone", "gone.example.com").replace("&approver_email_1=admin%40gone.example.com", "");
    let resp = env.acme(&refused);
    let e = error_of(&resp, Format::Xml);
    assert_ne!(e.kind.as_str(), "upstream", "{}", resp.text());
    let rec = env.store.order("acme", "gone").unwrap().unwrap();
    assert_eq!(rec.state_name(), "failed");
    // not yet past the retention (1 s): kept
    let cutoff = |now: u64| now.saturating_sub(1_000);
    assert_eq!(
        env.store
            .prune_failed_orders(cutoff(rec.updated_at_ms))
            .unwrap(),
        0
    );
    // past it: deleted, the done order kept
    assert_eq!(
        env.store
            .prune_failed_orders(cutoff(rec.updated_at_ms + 1_001))
            .unwrap(),
        1
    );
    assert!(env.store.order("acme", "gone").unwrap().is_none());
    assert_eq!(
        env.store
            .order("acme", "kept")
            .unwrap()
            .unwrap()
            .state_name(),
        "done"
    );
    assert!(now_ms() >= rec.updated_at_ms);
    // the remoteid orders again, once
    let id = id_of(&env.acme(&order("gone", "gone.example.com")), Format::Xml);
    assert_ne!(id, good);
}

/// The running gateway prunes by itself (every 5 s, on the store's committer): a refused
/// order's record is gone soon after its retention, with no call to prune.
#[test]
fn the_running_gateway_prunes_refused_orders_by_itself() {
    let env = TestEnv::builder()
        .config("[orders]\nfailed_retention_s = 1")
        .start();
    let refused =
        order("gone", "gone.example.com").replace("&approver_email_1=admin%40gone.example.com", "");
    let resp = env.acme(&refused);
    assert_ne!(
        error_of(&resp, Format::Xml).kind.as_str(),
        "upstream",
        "{}",
        resp.text()
    );
    assert_eq!(
        env.store
            .order("acme", "gone")
            .unwrap()
            .unwrap()
            .state_name(),
        "failed"
    );
    // retention 1 s + at most one 5 s period, with room for a loaded machine
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.store.order("acme", "gone").unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed record was not pruned within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
