//! Bounded work before a login (issue 9, point 3): concurrent wrong passwords are
//! throttled like wrong passwords in a row, verifications beyond the queue are refused at
//! once, and sessions are capped per reseller (oldest evicted).

use std::sync::{Arc, Barrier};

use crate::client;
use resellgate::billmgr::{self, BmError, Format};

use crate::harness::*;

/// Send `forms` at once, one connection each; answers the error of each reply.
fn at_once(env: &TestEnv, forms: Vec<String>) -> Vec<BmError> {
    let addr = env.addr();
    let barrier = Arc::new(Barrier::new(forms.len()));
    let threads: Vec<_> = forms
        .into_iter()
        .map(|form| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                client::post_form(addr, "/billmgr", &form).unwrap()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| {
            let resp = t.join().unwrap();
            error_of(&resp, Format::Xml)
        })
        .collect()
}

/// 40 different wrong passwords sent at once: at most `max_failures` (10) are verified,
/// the rest are throttled — as if they had come one after the other — and the right
/// password is then throttled too until the window passes.
#[test]
fn concurrent_wrong_passwords_are_throttled_like_sequential_ones() {
    let env = TestEnv::start();
    let forms = (0..40)
        .map(|i| format!("func=whoami&authinfo=acme:wrong-{i}"))
        .collect();
    let errors = at_once(&env, forms);
    assert!(
        errors.iter().all(|e| e.kind.as_str() == "auth"),
        "{errors:?}"
    );
    let verified = errors
        .iter()
        .filter(|e| e.msg.contains("Invalid login or password"))
        .count();
    assert!(verified <= 10, "{verified} of 40 were verified: {errors:?}");
    let throttled = errors.iter().filter(|e| e.msg.contains("Too many")).count();
    assert!(throttled >= 30, "{throttled} throttled: {errors:?}");
    let resp = env.acme("func=whoami");
    let e = assert_error(&resp, Format::Xml, "auth", "authinfo");
    assert!(e.msg.contains("Too many failed logins"), "{}", e.msg);
}

/// With one verification slot and no queue, logins that arrive while one is being
/// checked are refused at once with `auth`, and the gateway serves on.
#[test]
fn verifications_beyond_the_queue_are_refused_fast() {
    let env = TestEnv::builder()
        .config("[auth]\nmax_concurrent_verifications = 1\nmax_queued_verifications = 0")
        .start();
    // distinct logins: the per-login throttle plays no part
    let forms = (0..12)
        .map(|i| format!("func=whoami&authinfo=nobody{i}:wrong"))
        .collect();
    let errors = at_once(&env, forms);
    assert!(
        errors.iter().all(|e| e.kind.as_str() == "auth"),
        "{errors:?}"
    );
    let busy = errors
        .iter()
        .filter(|e| e.msg.contains("Too many logins are being checked"))
        .count();
    assert!(busy >= 1, "none refused as busy: {errors:?}");
    assert!(busy < 12, "all refused: {errors:?}");
    assert_eq!(
        env.gateway.gateway.authenticator().verifications_admitted(),
        0
    );
    let resp = env.acme("func=whoami");
    assert!(
        doc(&resp, Format::Xml).find("user").is_some(),
        "{}",
        resp.text()
    );
}

fn login(env: &TestEnv) -> String {
    let resp = env.post(&format!(
        "func=auth&username={}&password={}",
        ACME.0, ACME.1
    ));
    let d = billmgr::parse(&resp.body, Format::Xml).unwrap();
    d.find("auth").unwrap().get_attr("id").unwrap().to_string()
}

/// `max_sessions_per_reseller = 2`: two sessions live (the edge); a third evicts the
/// least recently used.
#[test]
fn sessions_per_reseller_are_capped() {
    let env = TestEnv::builder()
        .config("[auth]\nmax_sessions_per_reseller = 2")
        .start();
    let (a, b) = (login(&env), login(&env));
    for sid in [&a, &b] {
        let resp = env.post(&format!("func=whoami&auth={sid}"));
        assert!(
            doc(&resp, Format::Xml).find("user").is_some(),
            "{}",
            resp.text()
        );
    }
    let c = login(&env);
    let resp = env.post(&format!("func=whoami&auth={a}"));
    assert_error(&resp, Format::Xml, "auth", "auth");
    for sid in [&b, &c] {
        let resp = env.post(&format!("func=whoami&auth={sid}"));
        assert!(
            doc(&resp, Format::Xml).find("user").is_some(),
            "{}",
            resp.text()
        );
    }
    assert_eq!(env.gateway.gateway.authenticator().session_count(), 2);
}
