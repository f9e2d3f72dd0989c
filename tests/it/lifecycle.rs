//! The certificate lifecycle through the gateway: the toolbar actions `certificate.sync`,
//! `sslkey.delete` and `certificate.delete` (called with `elid`, no `sok`) reach the
//! sandbox only for the caller's own certificates, land in the service's history, pass
//! the upstream's refusals on unchanged, and are never sent twice. The admin-level
//! `certificate.retry` and `certificate.resume` (and `certificate.suspend`, which
//! BILLmanager 6 does not have) are refused by the gateway without reaching the upstream.

use crate::client;
use resellgate::billmgr::{self, BmError, Format};
use resellgate::sandbox::{Fault, FaultPhase};

use crate::harness::*;

const ACTIONS: [&str; 3] = ["certificate.sync", "sslkey.delete", "certificate.delete"];

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
        .map(|e| (e.func, e.outcome.to_string()))
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

/// (a) Retrying a certificate whose issuance failed used to reach the upstream; on
/// BILLmanager 6 `certificate.retry` (and `certificate.resume`) is admin-level, so the
/// gateway refuses it itself: `access`/`func` naming the function, in the format asked,
/// nothing sent upstream, nothing in the history, the certificate still Failed.
#[test]
fn retry_and_resume_are_refused_by_the_gateway() {
    let env = TestEnv::start();
    let id = ordered(&env, ACME, "r1");
    assert!(env.sandbox.sandbox.fail_issuance(id));
    env.sandbox.sandbox.clear_received();
    for func in ["certificate.retry", "certificate.resume"] {
        for (out, format) in [("xml", Format::Xml), ("json", Format::Json)] {
            let resp = env.acme(&format!("func={func}&elid={id}&out={out}"));
            let e = assert_error(&resp, format, "access", "func");
            assert!(e.msg.contains(func), "{}", e.msg);
            assert!(e.msg.contains("administrator"), "{}", e.msg);
        }
    }
    assert!(
        upstream_funcs(&env).is_empty(),
        "{:?}",
        upstream_funcs(&env)
    );
    assert_eq!(upstream_cert(&env, id).status, 6);
    assert_eq!(history(&env, id), [event("certificate.order.param", "ok")]);
}

/// (b) An upstream refusal of a toolbar action reaches the reseller unchanged, in the
/// format asked (xml and json), and is recorded as a refused call.
#[test]
fn toolbar_refusal_reaches_the_reseller_unchanged() {
    let env = TestEnv::start();
    let id = ordered(&env, ACME, "r2");
    assert_ok(
        &env.acme(&format!("func=sslkey.delete&elid={id}")),
        Format::Xml,
    );
    // the upstream's own answer, asked directly with the upstream account
    let direct = client::post_form(
        env.sandbox.addr,
        "/billmgr",
        &format!(
            "func=sslkey.download&elid={id}&out=json&authinfo={}:{}",
            ACME_UP.0, ACME_UP.1
        ),
    )
    .unwrap();
    let upstream = error_of(&direct, Format::Json);
    assert_eq!(upstream.kind.as_str(), "missed");
    for (out, format) in [("xml", Format::Xml), ("json", Format::Json)] {
        let resp = env.acme(&format!("func=sslkey.download&elid={id}&out={out}"));
        let e = assert_error(&resp, format, "missed", "sslkey");
        assert_eq!(e.msg, upstream.msg, "{out}");
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
    // a download changes nothing: not in the history
    assert_eq!(
        history(&env, id),
        [
            event("certificate.order.param", "ok"),
            event("sslkey.delete", "ok"),
        ]
    );
}

/// (c) sync/sslkey.delete/delete with another reseller's `elid`, alone or in a list with the
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
        assert_eq!(
            (c.status, c.key_deleted, c.deleted),
            (status, false, false),
            "{id}"
        );
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
        &env.acme(&format!("func=certificate.sync&elid={own}")),
        Format::Xml,
    );
}

/// (d) `certificate.suspend` does not exist on BILLmanager 6: refused as an unknown
/// function (`access`/`func`), counted, never forwarded. `certificate.sync` and
/// `sslkey.delete` on a list of own ids: one call upstream, an event on each service.
#[test]
fn suspend_is_unknown_and_toolbar_lists_reach_every_service() {
    let env = TestEnv::start();
    let id = ordered(&env, ACME, "s1");
    let id2 = ordered(&env, ACME, "s2");
    env.sandbox.sandbox.clear_received();
    let e = assert_error(
        &env.acme(&format!("func=certificate.suspend&elid={id}")),
        Format::Xml,
        "access",
        "func",
    );
    assert!(e.msg.contains("certificate.suspend"), "{}", e.msg);
    assert_eq!(
        env.gateway
            .gateway
            .metrics
            .refused_func_count("certificate.suspend"),
        1
    );
    assert!(upstream_funcs(&env).is_empty());

    assert_ok(
        &env.acme(&format!("func=certificate.sync&elid={id},%20{id2}")),
        Format::Xml,
    );
    assert_ok(
        &env.acme(&format!("func=sslkey.delete&elid={id},%20{id2}&out=json")),
        Format::Json,
    );
    assert_eq!(upstream_funcs(&env), ["certificate.sync", "sslkey.delete"]);
    assert!(upstream_cert(&env, id).key_deleted && upstream_cert(&env, id2).key_deleted);
    for i in [id, id2] {
        assert_eq!(
            history(&env, i),
            [
                event("certificate.order.param", "ok"),
                event("certificate.sync", "ok"),
                event("sslkey.delete", "ok"),
            ]
        );
    }
}

/// A toolbar action changes something although it carries no `sok`: when its answer is
/// lost the gateway reports `upstream` and does not send it again (the key is gone
/// upstream; a second call would be a second deletion).
#[test]
fn toolbar_actions_are_not_resent() {
    let env = TestEnv::builder().config("[upstream]\nretries = 1").start();
    let id = ordered(&env, ACME, "t1");
    env.sandbox.sandbox.clear_received();
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::AfterHandling);
    assert_error(
        &env.acme(&format!("func=sslkey.delete&elid={id}")),
        Format::Xml,
        "upstream",
        "upstream",
    );
    assert_eq!(upstream_funcs(&env), ["sslkey.delete"]);
    assert!(upstream_cert(&env, id).key_deleted);
    // the history says the outcome is unknown, rather than nothing
    assert_eq!(
        history(&env, id).last(),
        Some(&event("sslkey.delete", "unknown:closed"))
    );
    // a read is still retried after the same fault
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::BeforeHandling);
    assert_eq!(
        doc(&env.acme("func=certificate"), Format::Xml)
            .find("elem")
            .and_then(|e| e.child_text("id")),
        Some(id.to_string().as_str())
    );
}
