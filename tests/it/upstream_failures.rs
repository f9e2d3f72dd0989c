//! An upstream that is down, slow, resets, or answers garbage gives the reseller a
//! BILLmanager error document (type `upstream`, HTTP 200) in its format — never an
//! HTML page, never a hang — and only reads (no `sok`, not a toolbar action) are retried.

use std::time::{Duration, Instant};

use resellgate::billmgr::Format;
use resellgate::sandbox::{Fault, FaultPhase};

use crate::harness::*;

/// Nothing listens where the upstream should be.
#[test]
fn upstream_down() {
    let port = free_port();
    let env = TestEnv::builder()
        .upstream_url(&format!("http://127.0.0.1:{port}/billmgr"))
        .start();
    let e = assert_error(
        &env.acme("func=whoami&out=json"),
        Format::Json,
        "upstream",
        "upstream",
    );
    assert!(e.msg.contains("could not be reached"), "{}", e.msg);
    let resp = env.acme("func=whoami&out=bjson");
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["error"]["type"], "upstream");
}

/// An upstream slower than `read_timeout_ms` is cut off at the timeout.
#[test]
fn upstream_slow_past_the_timeout() {
    let env = TestEnv::builder()
        .config("[upstream]\nread_timeout_ms = 300\nretries = 0")
        .start();
    env.sandbox.sandbox.knobs().set_latency_ms(3000);
    let t = Instant::now();
    let e = assert_error(
        &env.acme("func=whoami"),
        Format::Xml,
        "upstream",
        "upstream",
    );
    assert!(e.msg.contains("in time"), "{}", e.msg);
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        t.elapsed()
    );
}

/// Every misbehaviour of the upstream on a call that changes something (no retry).
#[test]
fn upstream_misbehaviour_becomes_an_error_document() {
    let env = TestEnv::builder()
        .config("[upstream]\nread_timeout_ms = 500")
        .start();
    for fault in Fault::ALL {
        env.sandbox.sandbox.clear_received();
        env.sandbox
            .sandbox
            .inject(fault, FaultPhase::BeforeHandling);
        let resp = env.acme("func=certificate.order.csr&sok=ok&out=json");
        assert_error(&resp, Format::Json, "upstream", "upstream");
        assert_eq!(
            env.sandbox.sandbox.received().len(),
            1,
            "{fault:?}: a call with sok was retried"
        );
        // and the gateway keeps serving
        assert!(
            doc(&env.acme("func=whoami"), Format::Xml)
                .find("user")
                .is_some(),
            "{fault:?}"
        );
    }
}

/// A call that changes nothing is retried once after a reset and succeeds.
#[test]
fn reads_are_retried() {
    let env = TestEnv::start();
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::BeforeHandling);
    let resp = env.acme("func=whoami");
    assert!(
        doc(&resp, Format::Xml).find("user").is_some(),
        "{}",
        resp.text()
    );
}

/// With retries off, the same reset is reported.
#[test]
fn retries_can_be_turned_off() {
    let env = TestEnv::builder().config("[upstream]\nretries = 0").start();
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::BeforeHandling);
    assert_error(
        &env.acme("func=whoami"),
        Format::Xml,
        "upstream",
        "upstream",
    );
}
