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
