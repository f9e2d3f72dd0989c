//! One meaning per request (issue 9, points 1 and 2): a control parameter given twice or
//! readable two ways, and control characters anywhere, are refused with `value` before
//! anything is forwarded; any non-empty `sok` is a submit; multi-line CSRs still pass.

use resellgate::billmgr::Format;

use crate::harness::*;

/// Calls of `func` the sandbox received.
fn upstream_calls(env: &TestEnv, func: &str) -> usize {
    env.sandbox
        .sandbox
        .received()
        .iter()
        .filter(|p| p.func() == Some(func))
        .count()
}

/// An empty, padded or blank `sok`, or two of them (query and body together), is refused: the
/// gateway would have taken it for a form read (no claim, retried) while BILLmanager
/// orders.
#[test]
fn ambiguous_sok_is_refused_and_nothing_is_ordered() {
    let env = TestEnv::start();
    let base = order("amb1", "amb1.example.com").replace("sok=ok&", "");
    for sok in [
        "sok=",
        "sok=%20",
        "sok=%09ok",
        "sok=ok%20",
        "sok=&sok=ok",
        "sok=ok&sok=ok",
    ] {
        let resp = env.acme(&format!("{base}&{sok}&out=json"));
        assert_error(&resp, Format::Json, "value", "sok");
    }
    // empty in the query, set in the body
    let resp = crate::client::post_form(
        env.addr(),
        "/billmgr?sok=",
        &format!("{base}&sok=ok&authinfo={}:{}", ACME.0, ACME.1),
    )
    .unwrap();
    assert_error(&resp, Format::Xml, "value", "sok");
    assert_eq!(upstream_calls(&env, "certificate.order.param"), 0);
}

/// Two `func`s, two `remoteid`s, two `elid`s: refused, nothing forwarded.
#[test]
fn repeated_control_parameters_are_refused() {
    let env = TestEnv::start();
    env.sandbox.sandbox.clear_received();
    let resp = env.acme("func=whoami&func=user.edit");
    assert_error(&resp, Format::Xml, "value", "func");
    let resp = env.acme(&format!("{}&remoteid=B", order("A", "a.example.com")));
    assert_error(&resp, Format::Xml, "value", "remoteid");
    let resp = env.acme("func=certificate.edit&elid=1&elid=2");
    assert_error(&resp, Format::Xml, "value", "elid");
    let resp = env.acme("func=whoami&out=json&out=xml");
    assert_error(&resp, Format::Json, "value", "out");
    assert!(
        env.sandbox.sandbox.received().is_empty(),
        "{:?}",
        env.sandbox.sandbox.received()
    );
}

/// `sok=yes` (or any non-empty value) is a submit: the order is claimed, a retry is
/// answered from the record, and the upstream ordered once.
#[test]
fn any_non_empty_sok_is_a_submit() {
    let env = TestEnv::start();
    let form = order("yes1", "yes1.example.com").replace("sok=ok", "sok=yes");
    let first = id_of(&env.acme(&form), Format::Xml);
    let again = id_of(&env.acme(&form), Format::Xml);
    assert_eq!(first, again);
    assert_eq!(upstream_calls(&env, "certificate.order.param"), 1);
    let rec = env.store.order("acme", "yes1").unwrap().unwrap();
    assert_eq!(rec.state_name(), "done");
}

/// NUL and other control characters in keys and values are refused with `value`.
#[test]
fn control_characters_are_refused() {
    let env = TestEnv::start();
    env.sandbox.sandbox.clear_received();
    for (form, object) in [
        ("func=certificate&su%00=root".to_string(), "su\\u{0}"),
        (
            "func=certificate.edit&elid%00=5001".to_string(),
            "elid\\u{0}",
        ),
        ("func=certificate.delete%00&elid=1".to_string(), "func"),
        (order("nul1", "a%00.evil"), "CN"),
        (order("l1%0aINFO+forged", "lf.example.com"), "remoteid"),
    ] {
        let resp = env.acme(&form);
        assert_error(&resp, Format::Xml, "value", object);
    }
    assert!(env.sandbox.sandbox.received().is_empty());
}

/// A CSR keeps its CR/LF line breaks on the way to the upstream.
#[test]
fn multi_line_csr_passes_unchanged() {
    let env = TestEnv::start();
    let csr = "-----BEGIN CERTIFICATE REQUEST-----\r\nMIIBVjCB\r\nwAIBADAX\r\n-----END CERTIFICATE REQUEST-----\r\n";
    let encoded: String = csr
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace(' ', "+");
    let resp = env.acme(&format!(
        "func=certificate.order.param&pricelist=101&period=12&crt_type=manual&csr={encoded}"
    ));
    assert_eq!(resp.status, 200);
    let up = env.last_upstream();
    assert_eq!(up.func(), Some("certificate.order.param"));
    assert_eq!(up.get("csr"), Some(csr));
}
