//! The certificate lifecycle through the gateway: the toolbar actions `certificate.retry`,
//! `certificate.suspend` and `certificate.resume` (called with `elid`, no `sok`) reach
//! the sandbox only for the caller's own certificates, land in the service's history,
//! pass the upstream's refusals on unchanged, and are never sent twice.

use resellgate::billmgr::{self, BmError, Format};
use resellgate::client;
use resellgate::sandbox::{Fault, FaultPhase};

use crate::harness::*;

const ACTIONS: [&str; 3] = [
    "certificate.retry",
    "certificate.suspend",
    "certificate.resume",
];

/// Order `remoteid` as `auth` ("login:password") and answer the new certificate's id.
fn ordered(env: &TestEnv, auth: (&str, &str), remoteid: &str) -> u64 {
    let resp = env.post(&format!(
        "{}&authinfo={}:{}",
        order(remoteid, &format!("{remoteid}.example.com")),
        auth.0,
        auth.1
    ));
    id_of(&resp, Format::Xml)
}

fn assert_ok(resp: &client::Response, format: Format) {
    let d = doc(resp, format);
    assert!(
        d.find("ok").is_some() && BmError::from_doc(&d).is_none(),
        "{}",
        resp.text()
    );
}

/// The service's history as (func, outcome), oldest first.
fn history(env: &TestEnv, id: u64) -> Vec<(String, String)> {
    env.store
        .service(id)
        .unwrap()
        .expect("service recorded")
        .history
        .into_iter()
        .map(|e| (e.func, e.outcome))
        .collect()
}

fn event(func: &str, outcome: &str) -> (String, String) {
    (func.to_string(), outcome.to_string())
}

fn upstream_cert(env: &TestEnv, id: u64) -> resellgate::sandbox::Certificate {
    env.sandbox
        .sandbox
        .certificates()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap()
}

/// The `func`s the sandbox received since it was last cleared.
fn upstream_funcs(env: &TestEnv) -> Vec<String> {
    env.sandbox
        .sandbox
        .received()
        .iter()
        .map(|p| p.func().unwrap_or("").to_string())
        .collect()
}

/// (a) Retrying a certificate whose issuance failed: the reseller gets `<ok/>`, the
/// upstream shows it Requested again, and the service's history records the retry.
#[test]
fn retry_of_a_failed_certificate_restarts_it() {
    let env = TestEnv::start();
    let id = ordered(&env, ACME, "r1");
    assert!(env.sandbox.sandbox.fail_issuance(id));
    // what the reseller's billing sees before: Failed
    let list = doc(&env.acme("func=certificate"), Format::Xml);
    let row = list.find("elem").unwrap();
    assert_eq!(row.child_text("status_msg"), Some("Failed"));

    env.sandbox.sandbox.clear_received();
    assert_ok(
        &env.acme(&format!("func=certificate.retry&elid={id}")),
        Format::Xml,
    );
    assert_eq!(upstream_funcs(&env), ["certificate.retry"]);
    assert_eq!(upstream_cert(&env, id).status, 3);
    let list = doc(&env.acme("func=certificate&out=json"), Format::Json);
    let row = list.find("elem").unwrap();
    assert_eq!(
        (row.child_text("status_msg"), row.child_text("item_status")),
        (Some("Requested"), Some("3"))
    );
    assert_eq!(
        history(&env, id),
        [
            event("certificate.order.param", "ok"),
            event("certificate.retry", "ok"),
        ]
    );
}

/// (b) Retrying a certificate that did not fail: the upstream's refusal reaches the
/// reseller with the same type, object, value and message as the upstream gave it, in
/// the format asked (xml and json), and is recorded as a refused retry.
#[test]
fn retry_refusal_reaches_the_reseller_unchanged() {
    let env = TestEnv::start();
    let id = ordered(&env, ACME, "r2");
    // the upstream's own answer, asked directly with the upstream account
    let direct = client::post_form(
        env.sandbox.addr,
        "/billmgr",
        &format!(
            "func=certificate.retry&elid={id}&out=json&authinfo={}:{}",
            ACME_UP.0, ACME_UP.1
        ),
    )
    .unwrap();
    let upstream = error_of(&direct, Format::Json);
    assert_eq!(
        (upstream.kind.as_str(), upstream.object.as_deref()),
        ("value", Some("elid"))
    );
    assert!(upstream.msg.contains("Requested"), "{}", upstream.msg);

    for (out, format) in [("xml", Format::Xml), ("json", Format::Json)] {
        let resp = env.acme(&format!("func=certificate.retry&elid={id}&out={out}"));
        let e = assert_error(&resp, format, "value", "elid");
        assert_eq!(e.value.as_deref(), Some(id.to_string().as_str()), "{out}");
        assert_eq!(e.msg, upstream.msg, "{out}");
        // the document is in the format asked, not the other one
        let other = if format == Format::Xml {
            Format::Json
        } else {
            Format::Xml
        };
        assert!(
            billmgr::parse(&resp.body, other).is_err(),
            "{out}: {}",
            resp.text()
        );
    }
    assert_eq!(upstream_cert(&env, id).status, 3);
    assert_eq!(
        history(&env, id),
        [
            event("certificate.order.param", "ok"),
            event("certificate.retry", "error:value"),
            event("certificate.retry", "error:value"),
        ]
    );
}

/// (c) retry/suspend/resume with another reseller's `elid`, alone or in a list with the
/// caller's own ids, or with an id nobody has: `access`/`elid`, and none of these calls
/// reaches the upstream; nothing changes there and nothing is recorded.
#[test]
fn foreign_elids_are_refused_before_the_upstream() {
    let env = TestEnv::start();
    let own = ordered(&env, ACME, "own1");
    let own2 = ordered(&env, ACME, "own2");
    let foreign = ordered(&env, GLOBEX, "g1");
    assert!(env.sandbox.sandbox.fail_issuance(foreign));
    assert!(env.sandbox.sandbox.fail_issuance(own));

    env.sandbox.sandbox.clear_received();
    for func in ACTIONS {
        for elid in [
            format!("{foreign}"),
            format!("{own},%20{foreign}"),
            format!("{own},{own2},%20{foreign}"),
            format!("{foreign},%20{own}"),
            "999999".to_string(),
            format!("{own},%20999999"),
        ] {
            let resp = env.acme(&format!("func={func}&elid={elid}&out=json"));
            assert_error(&resp, Format::Json, "access", "elid");
        }
        // with sok too, and by the other reseller on acme's certificate
        assert_error(
            &env.acme(&format!("func={func}&elid={foreign}&sok=ok")),
            Format::Xml,
            "access",
            "elid",
        );
        assert_error(
            &env.globex(&format!("func={func}&elid={own}")),
            Format::Xml,
            "access",
            "elid",
        );
    }
    let reached: Vec<String> = upstream_funcs(&env)
        .into_iter()
        .filter(|f| ACTIONS.contains(&f.as_str()))
        .collect();
    assert!(reached.is_empty(), "forwarded: {reached:?}");
    for (id, status) in [(foreign, 6), (own, 6), (own2, 3)] {
        let c = upstream_cert(&env, id);
        assert_eq!((c.status, c.suspended), (status, false), "{id}");
    }
    for id in [own, own2, foreign] {
        assert_eq!(
            history(&env, id),
            [event("certificate.order.param", "ok")],
            "{id}"
        );
    }
    assert!(env.store.service(999999).unwrap().is_none());
    // the caller's own ids still pass
    assert_ok(
        &env.acme(&format!("func=certificate.retry&elid={own}")),
        Format::Xml,
    );
}

/// (d) Suspend then resume: the reseller's certificate list shows the flag, a second
/// resume is the upstream's refusal, and the history has all three.
#[test]
fn suspend_then_resume_round_trip() {
    let env = TestEnv::start();
    let id = ordered(&env, ACME, "s1");
    let id2 = ordered(&env, ACME, "s2");
    let suspended = |env: &TestEnv| -> Vec<String> {
        doc(&env.acme("func=certificate"), Format::Xml)
            .find_all("elem")
            .map(|e| e.child_text("suspended").unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(suspended(&env), ["off", "off"]);

    assert_ok(
        &env.acme(&format!("func=certificate.suspend&elid={id}")),
        Format::Xml,
    );
    assert!(upstream_cert(&env, id).suspended);
    assert_eq!(suspended(&env), ["on", "off"]);

    assert_ok(
        &env.acme(&format!("func=certificate.resume&elid={id}&out=json")),
        Format::Json,
    );
    assert!(!upstream_cert(&env, id).suspended);
    assert_eq!(suspended(&env), ["off", "off"]);

    let e = assert_error(
        &env.acme(&format!("func=certificate.resume&elid={id}")),
        Format::Xml,
        "value",
        "elid",
    );
    assert!(e.msg.contains("not suspended"), "{}", e.msg);
    assert_eq!(
        history(&env, id),
        [
            event("certificate.order.param", "ok"),
            event("certificate.suspend", "ok"),
            event("certificate.resume", "ok"),
            event("certificate.resume", "error:value"),
        ]
    );

    // a list of own ids: one call upstream, an event on each service
    assert_ok(
        &env.acme(&format!("func=certificate.suspend&elid={id},%20{id2}")),
        Format::Xml,
    );
    assert_eq!(suspended(&env), ["on", "on"]);
    assert_eq!(
        history(&env, id2),
        [
            event("certificate.order.param", "ok"),
            event("certificate.suspend", "ok"),
        ]
    );
}

/// A toolbar action changes something although it carries no `sok`: when its answer is
/// lost the gateway reports `upstream` and does not send it again (a second suspend
/// would answer "already suspended" for a suspension that worked).
#[test]
fn toolbar_actions_are_not_resent() {
    let env = TestEnv::builder().config("[upstream]\nretries = 1").start();
    let id = ordered(&env, ACME, "t1");
    env.sandbox.sandbox.clear_received();
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::AfterHandling);
    assert_error(
        &env.acme(&format!("func=certificate.suspend&elid={id}")),
        Format::Xml,
        "upstream",
        "upstream",
    );
    assert_eq!(upstream_funcs(&env), ["certificate.suspend"]);
    assert!(upstream_cert(&env, id).suspended);
    // the history says the outcome is unknown, rather than nothing
    assert_eq!(
        history(&env, id).last(),
        Some(&event("certificate.suspend", "unknown:closed"))
    );
    // a read is still retried after the same fault
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::BeforeHandling);
    assert_eq!(
        doc(&env.acme("func=certificate"), Format::Xml)
            .find("elem")
            .and_then(|e| e.child_text("suspended")),
        Some("on")
    );
}
