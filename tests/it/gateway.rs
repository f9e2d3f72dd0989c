//! The request path end to end: authentication, the authinfo swap, sessions, the
//! function policy, paths and output formats.

use crate::client;
use resellgate::billmgr::Format;

use crate::harness::*;

/// A reseller's call reaches the upstream under its own upstream account, and the
/// reseller's credentials do not.
#[test]
fn authinfo_is_swapped_for_the_resellers_upstream_account() {
    let env = TestEnv::start();
    let resp = env.acme("func=whoami");
    let d = doc(&resp, Format::Xml);
    assert_eq!(
        d.find("user").and_then(|u| u.child_text("name")),
        Some(ACME_UP.0),
        "{}",
        resp.text()
    );
    let up = env.last_upstream();
    assert_eq!(
        up.get("authinfo"),
        Some(format!("{}:{}", ACME_UP.0, ACME_UP.1).as_str())
    );
    assert_eq!(up.count("authinfo"), 1);
    assert_eq!(up.get("func"), Some("whoami"));
    assert!(
        !up.iter().any(|(_, v)| v.contains(ACME.1)),
        "the reseller's password reached the upstream"
    );
}

/// Each reseller is locked to its own upstream account.
#[test]
fn two_resellers_use_their_own_accounts() {
    let env = TestEnv::start();
    env.globex("func=whoami");
    assert_eq!(
        env.last_upstream().get("authinfo"),
        Some("globex@sandbox:globex-upstream-pw")
    );
    env.acme("func=whoami");
    assert_eq!(
        env.last_upstream().get("authinfo"),
        Some("acme@sandbox:acme-upstream-pw")
    );
}

/// Query string and body are merged; GET works as well as POST.
#[test]
fn get_and_post_and_merged_parameters() {
    let env = TestEnv::start();
    let resp = env.get(&format!(
        "/billmgr?func=whoami&out=json&authinfo={}:{}",
        ACME.0, ACME.1
    ));
    let d = doc(&resp, Format::Json);
    assert!(d.find("user").is_some(), "{}", resp.text());
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let resp = client::post_form(
        env.addr(),
        "/billmgr?func=whoami&out=bjson",
        &format!("authinfo={}:{}", ACME.0, ACME.1),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["user"]["name"], ACME_UP.0, "{}", resp.text());
}

/// All three BILLmanager paths answer; anything else is a 404 error document.
#[test]
fn paths() {
    let env = TestEnv::start();
    for path in ["/billmgr", "/manager/billmgr", "/"] {
        let resp = client::post_form(
            env.addr(),
            path,
            &format!("func=whoami&authinfo={}:{}", ACME.0, ACME.1),
        )
        .unwrap();
        assert!(
            doc(&resp, Format::Xml).find("user").is_some(),
            "{path}: {}",
            resp.text()
        );
    }
    let resp = client::get(env.addr(), "/admin?func=whoami").unwrap();
    assert_eq!(resp.status, 404);
    let e = resellgate::billmgr::BmError::from_doc(
        &resellgate::billmgr::parse(&resp.body, Format::Xml).unwrap(),
    )
    .unwrap();
    assert_eq!(e.object.as_deref(), Some("path"));
}

/// Every request's outcome is counted once, in the logging phase: refused paths and
/// methods too, not only the calls that reach the gateway's pipeline.
#[test]
fn outcomes_are_counted_for_every_request() {
    let env = TestEnv::start();
    let metrics = &env.gateway.gateway.metrics;
    let count = |outcome: &str| metrics.outcome_count(outcome);
    // The count is written after the answer: wait for it.
    let wait_for = |outcome: &str, n: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count(outcome) < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        count(outcome)
    };
    assert_eq!(
        client::get(env.addr(), "/admin?func=whoami")
            .unwrap()
            .status,
        404
    );
    assert_eq!(wait_for("refused", 1), 1);
    let resp = client::blocking(
        env.addr(),
        "PUT",
        "/billmgr?func=whoami",
        &[],
        b"",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(resp.status, 405);
    assert_eq!(wait_for("refused", 2), 2);
    env.acme("func=whoami");
    assert_eq!(wait_for("ok", 1), 1);
    // Counted once each.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!((count("refused"), count("ok")), (2, 1));
}

/// A wrong password is an `auth` error in the format asked for, and nothing is forwarded.
#[test]
fn wrong_password_is_refused_in_every_format() {
    let env = TestEnv::start();
    for (out, f) in [
        ("xml", Format::Xml),
        ("json", Format::Json),
        ("sjson", Format::Sjson),
        ("bjson", Format::Bjson),
    ] {
        let resp = env.post(&format!("func=whoami&out={out}&authinfo=acme:wrong"));
        assert_error(&resp, f, "auth", "authinfo");
    }
    let resp = env.post("func=whoami&out=text&authinfo=nobody:x");
    assert_eq!(
        resp.text(),
        "ERROR auth(authinfo): Invalid login or password\n"
    );
    assert!(env.sandbox.sandbox.received().is_empty());
}

/// Text output is rendered by the gateway from the upstream's XML.
#[test]
fn text_output() {
    let env = TestEnv::start();
    let resp = env.acme("func=whoami&out=text");
    assert!(resp.text().contains("name=acme@sandbox"), "{}", resp.text());
    assert_eq!(env.last_upstream().get("out"), Some("xml"));
}

/// `func=auth` answers a session of the gateway's own; it works as `auth=` and as the
/// `billmgrses5` cookie, and never reaches the upstream.
#[test]
fn sessions() {
    let env = TestEnv::start();
    let resp = env.post(&format!(
        "func=auth&username={}&password={}",
        ACME.0, ACME.1
    ));
    let d = doc(&resp, Format::Xml);
    let auth = d.find("auth").expect("auth element");
    let sid = auth.get_attr("id").unwrap().to_string();
    assert_eq!(auth.text.as_deref(), Some(sid.as_str()));
    assert!(resp
        .header("set-cookie")
        .unwrap()
        .starts_with(&format!("billmgrses5={sid}")));
    assert!(
        env.sandbox.sandbox.received().is_empty(),
        "func=auth reached the upstream"
    );

    let resp = env.post(&format!("func=whoami&auth={sid}"));
    assert!(
        doc(&resp, Format::Xml).find("user").is_some(),
        "{}",
        resp.text()
    );
    let up = env.last_upstream();
    assert_eq!(up.get("auth"), None);
    assert_eq!(up.get("authinfo"), Some("acme@sandbox:acme-upstream-pw"));

    let cookie = format!("billmgrses5={sid}");
    let resp = client::blocking(
        env.addr(),
        "POST",
        "/billmgr",
        &[("Cookie", cookie.as_str())],
        b"func=whoami&out=json",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        doc(&resp, Format::Json).find("user").is_some(),
        "{}",
        resp.text()
    );

    let resp = env.post("func=whoami&auth=0123456789abcdef");
    assert_error(&resp, Format::Xml, "auth", "auth");

    // json: doc.auth.$id
    let resp = env.post(&format!(
        "func=auth&out=json&username={}&password={}",
        ACME.0, ACME.1
    ));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(
        v["doc"]["auth"]["$id"]
            .as_str()
            .is_some_and(|s| s.len() == 48),
        "{}",
        resp.text()
    );
}

/// More than 10 failures in a minute for one login from one address lock that login
/// out from that address, even with the right password; other logins are unaffected.
#[test]
fn failed_logins_are_throttled() {
    let env = TestEnv::start();
    for _ in 0..10 {
        assert_error(
            &env.post("func=whoami&authinfo=acme:bad"),
            Format::Xml,
            "auth",
            "authinfo",
        );
    }
    let e = assert_error(&env.acme("func=whoami"), Format::Xml, "auth", "authinfo");
    assert!(e.msg.contains("Too many failed logins"), "{}", e.msg);
    let resp = env.globex("func=whoami");
    assert!(doc(&resp, Format::Xml).find("user").is_some());
}

/// Functions outside the policy are refused with `access`, counted by name, and not
/// forwarded; `su` is refused, never dropped.
#[test]
fn function_policy_and_su() {
    let env = TestEnv::start();
    let resp = env.acme("func=user.edit&out=json");
    let e = assert_error(&resp, Format::Json, "access", "func");
    assert!(e.msg.contains("user.edit"));
    env.acme("func=user.edit");
    assert_eq!(
        env.gateway.gateway.metrics.refused_func_count("user.edit"),
        2
    );
    assert_error(
        &env.acme("func=certificate&su=admin"),
        Format::Xml,
        "access",
        "su",
    );
    assert!(env.sandbox.sandbox.received().is_empty());
}

/// `[policy] passthrough` lets the operator's extra functions through.
#[test]
fn passthrough_functions_are_forwarded() {
    let env = TestEnv::builder()
        .config("[policy]\npassthrough = [\"checkevent\"]")
        .start();
    env.acme("func=checkevent");
    assert_eq!(env.last_upstream().get("func"), Some("checkevent"));
}

/// Upstream error documents reach the reseller unchanged in meaning and format.
#[test]
fn upstream_errors_pass_through() {
    let env = TestEnv::start();
    let resp = env.acme(
        "func=certificate.order.param&sok=ok&out=json&remoteid=r1&pricelist=101&period=12&CN=a.example.com&approver_email_1=bad%40other.org&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on",
    );
    assert_error(&resp, Format::Json, "value", "approver_email_1");
}

/// The whole certificate flow through the gateway: order, list, reissue, renew, delete.
#[test]
fn certificate_lifecycle() {
    let env = TestEnv::start();
    let resp = env.acme(
        "func=certificate.order.param&sok=ok&skipbasket=on&remoteid=r1&pricelist=101&period=12&CN=shop.example.com&approver_email_1=admin%40shop.example.com&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on",
    );
    let d = doc(&resp, Format::Xml);
    let id = d
        .child_text("id")
        .unwrap_or_else(|| panic!("{}", resp.text()))
        .to_string();
    assert_eq!(env.last_upstream().get("remoteid"), Some("r1"));
    let d = doc(&env.acme("func=certificate"), Format::Xml);
    assert_eq!(d.find_all("elem").count(), 1);
    let d = doc(&env.acme(&format!("func=certificate.reissue.step2&elid={id}&crt_type=oldrequest&approver_email_1=admin%40shop.example.com&sok=ok")), Format::Xml);
    assert!(d.find("ok").is_some());
    let d = doc(
        &env.acme(&format!("func=service.prolong&elid={id}&period=12&sok=ok")),
        Format::Xml,
    );
    // the nested doc ISPsystem's own client reads (/doc/doc/newexpiredate)
    assert!(d
        .find("doc")
        .and_then(|n| n.child_text("newexpiredate"))
        .is_some());
    let d = doc(
        &env.acme(&format!("func=certificate.delete&elid={id}&sok=ok")),
        Format::Xml,
    );
    assert!(d.find("ok").is_some());
    assert_eq!(env.sandbox.sandbox.order_count(), 1);
}
