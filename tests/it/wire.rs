//! Wire fidelity with real BILLmanager 6 clients (issue 8, points 4–6): the function
//! table's refusals and new functions, BILLmanager 6's order API, `skipbasket`, the
//! prolong answer's nested doc, sessions as clients use them, `X-Forwarded-For` from
//! trusted proxies and configured paths.

use std::net::SocketAddr;
use std::time::Duration;

use crate::client::{self, Response};
use resellgate::billmgr::Format;

use crate::harness::*;

/// The `func`s the sandbox received since it was last cleared.
fn upstream_funcs(env: &TestEnv) -> Vec<String> {
    env.sandbox
        .sandbox
        .received()
        .iter()
        .map(|p| p.func().unwrap_or("").to_string())
        .collect()
}

/// POST `form` to `path` with extra request headers.
fn post_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)], form: &str) -> Response {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    client::blocking(
        addr,
        "POST",
        path,
        &h,
        form.as_bytes(),
        Duration::from_secs(10),
    )
    .unwrap()
}

/// A v2 order (`order_period`) of local plan 101 for `remoteid`, without `skipbasket`.
fn v2_order(remoteid: &str) -> String {
    format!(
        "func=v2.certificate.order.param&sok=ok&remoteid={remoteid}&pricelist=101&order_period=12&CN={remoteid}.example.com&approver_email_1=admin%40{remoteid}.example.com&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on"
    )
}

/// Every function the table refuses is `access`/`func` naming it, counted by name, and
/// never reaches the upstream — `certificate.su` like `su`, the admin-level ones because
/// the upstream account is customer-level, and a `certificate.*` name the table does not
/// know (shown on the admin `/metrics`). With `[policy] passthrough` the unknown one is
/// forwarded.
#[test]
fn refused_functions_never_reach_the_upstream() {
    std::env::set_var("RG_TEST_ADMIN_TOKEN_WIRE", "t0ken-for-tests");
    let port = free_port();
    let env = TestEnv::builder()
        .config(&format!(
            "[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"RG_TEST_ADMIN_TOKEN_WIRE\""
        ))
        .start();
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    resellgate::app::wait_until_accepting(admin, Duration::from_secs(10)).unwrap();
    let id = id_of(&env.acme(&order("f1", "f1.example.com")), Format::Xml);
    env.sandbox.sandbox.clear_received();
    for (func, why) in [
        ("certificate.su", "another user"),
        ("certificate.open", "administrator"),
        ("certificate.retry", "administrator"),
        ("certificate.resume", "administrator"),
        ("certificate.setfilter", "administrator"),
        ("certificate.xyz", "not available"),
    ] {
        for (out, format) in [("xml", Format::Xml), ("sjson", Format::Sjson)] {
            let resp = env.acme(&format!("func={func}&elid={id}&out={out}"));
            let e = assert_error(&resp, format, "access", "func");
            assert!(e.msg.contains(func) && e.msg.contains(why), "{}", e.msg);
            assert_eq!(e.value.as_deref(), Some(func));
        }
    }
    assert!(
        upstream_funcs(&env).is_empty(),
        "{:?}",
        upstream_funcs(&env)
    );
    let m = client::blocking(admin, "GET", "/metrics", &[], b"", Duration::from_secs(10))
        .unwrap()
        .text();
    for func in ["certificate.xyz", "certificate.su", "certificate.retry"] {
        assert!(
            m.contains(&format!(
                "resellgate_refused_functions_total{{func=\"{func}\"}} 2"
            )),
            "{func}: {m}"
        );
    }

    let env = TestEnv::builder()
        .config("[policy]\npassthrough = [\"certificate.xyz\", \"certificate.retry\"]")
        .start();
    env.acme("func=certificate.xyz");
    assert_eq!(upstream_funcs(&env), ["certificate.xyz"]);
    // a passthrough entry does not re-open a refused row
    assert_error(
        &env.acme("func=certificate.retry"),
        Format::Xml,
        "access",
        "func",
    );
    assert_eq!(upstream_funcs(&env), ["certificate.xyz"]);
}

/// The newly allowed functions pass for the caller's own certificates and answer what the
/// upstream answers; on another reseller's id they are `access`/`elid` and never reach
/// the upstream (`sslkey.download` of a foreign key included).
#[test]
fn new_functions_on_owned_and_foreign_ids() {
    let env = TestEnv::start();
    let own = id_of(&env.acme(&order("o1", "o1.example.com")), Format::Xml);
    let foreign = id_of(&env.globex(&order("g1", "g1.example.com")), Format::Xml);
    let key = doc(
        &env.acme(&format!("func=sslkey.download&elid={own}")),
        Format::Xml,
    );
    assert!(key
        .child_text("sslkey")
        .is_some_and(|k| k.starts_with("-----BEGIN PRIVATE KEY-----")));
    let files = doc(
        &env.acme(&format!("func=certificate.file&elid={own}&out=json")),
        Format::Json,
    );
    assert_eq!(files.find_all("elem").count(), 2);
    for q in [
        format!("func=certificate.file.edit&elid={own}&file=crt"),
        format!("func=sslkey.edit&elid={own}"),
        format!("func=certificate.sync&elid={own}"),
        "func=certificate.filter&CN=o1".to_string(),
    ] {
        let d = doc(&env.acme(&q), Format::Xml);
        assert!(
            resellgate::billmgr::BmError::from_doc(&d).is_none(),
            "{q}: {d:?}"
        );
    }

    env.sandbox.sandbox.clear_received();
    for func in [
        "sslkey.download",
        "sslkey.edit",
        "sslkey.delete",
        "certificate.file",
        "certificate.file.edit",
        "certificate.sync",
    ] {
        assert_error(
            &env.acme(&format!("func={func}&elid={foreign}")),
            Format::Xml,
            "access",
            "elid",
        );
    }
    assert!(
        upstream_funcs(&env).is_empty(),
        "{:?}",
        upstream_funcs(&env)
    );
    let c = env
        .sandbox
        .sandbox
        .certificates()
        .into_iter()
        .find(|c| c.id == foreign)
        .unwrap();
    assert!(!c.key_deleted);
}

/// `pricelist.export&elid=N` names a plan: the upstream receives the upstream id; an
/// unmapped or foreign plan is `value`/`elid` and nothing is forwarded.
#[test]
fn pricelist_export_elid_is_a_plan_id() {
    let env = TestEnv::start();
    env.sandbox.sandbox.clear_received();
    let resp = env.acme("func=pricelist.export&itemtype=certificate&elid=101");
    let d = doc(&resp, Format::Xml);
    assert_eq!(env.last_upstream().get("elid"), Some("3033"));
    // the upstream answered plan 3033 only, shown as local 101
    let ids: Vec<_> = d
        .find_all("pricelist")
        .filter_map(|p| p.child_text("id"))
        .collect();
    assert_eq!(ids, ["101"], "{}", resp.text());
    env.sandbox.sandbox.clear_received();
    for (who, elid) in [("globex", "102"), ("acme", "3033"), ("acme", "999")] {
        let q = format!("func=pricelist.export&elid={elid}");
        let resp = if who == "acme" {
            env.acme(&q)
        } else {
            env.globex(&q)
        };
        let e = assert_error(&resp, Format::Xml, "value", "elid");
        assert_eq!(e.value.as_deref(), Some(elid));
    }
    assert!(upstream_funcs(&env).is_empty());
}

/// `v2.certificate.order.param` is an order: exactly once per remoteid (a repeat gets the
/// stored answer, the sandbox counts one order), refused without `remoteid`, and sent with
/// `skipbasket=on` although the billing did not send it. The form read passes unclaimed.
#[test]
fn v2_orders_are_exactly_once_with_skipbasket() {
    let env = TestEnv::start();
    let first = env.acme(&v2_order("v1"));
    let id = id_of(&first, Format::Xml);
    let sent: Vec<_> = env
        .sandbox
        .sandbox
        .received()
        .into_iter()
        .filter(|p| p.func() == Some("v2.certificate.order.param"))
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].get_all("skipbasket").collect::<Vec<_>>(),
        ["on"],
        "{:?}",
        sent[0]
    );
    assert_eq!(sent[0].get("pricelist"), Some("3033"));
    assert_eq!(id_of(&env.acme(&v2_order("v1")), Format::Xml), id);
    assert_eq!(env.sandbox.sandbox.order_count(), 1);
    let record = env
        .store
        .order("acme", "v1")
        .unwrap()
        .expect("order record");
    assert_eq!(record.period.as_deref(), Some("12"));

    let without = v2_order("v2").replace("remoteid=v2&", "");
    assert_error(&env.acme(&without), Format::Xml, "missed", "remoteid");
    assert_eq!(env.sandbox.sandbox.order_count(), 1);

    // the v1 form gets skipbasket=on too
    env.acme(&order("v3", "v3.example.com").replace("&skipbasket=on", ""));
    let v1 = env
        .sandbox
        .sandbox
        .received()
        .into_iter()
        .rfind(|p| p.func() == Some("certificate.order.param"))
        .unwrap();
    assert_eq!(v1.get("skipbasket"), Some("on"));
    assert_eq!(env.sandbox.sandbox.order_count(), 2);
    assert_eq!(env.sandbox.sandbox.basket_count(), 0);

    // a form read is not an order
    env.sandbox.sandbox.clear_received();
    doc(
        &env.acme("func=v2.certificate.order.param&pricelist=101"),
        Format::Xml,
    );
    assert_eq!(upstream_funcs(&env), ["v2.certificate.order.param"]);
    assert!(env.last_upstream().get("skipbasket").is_none());
}

/// A renewal answers as ISPsystem's own client reads it, at `/doc/doc/newexpiredate`,
/// through the gateway in xml and json.
#[test]
fn prolong_answer_keeps_the_nested_doc() {
    let env = TestEnv::start();
    let id = id_of(&env.acme(&order("p1", "p1.example.com")), Format::Xml);
    let xml = env.acme(&format!("func=service.prolong&elid={id}&period=12&sok=ok"));
    let d = doc(&xml, Format::Xml);
    let date = d
        .find("doc")
        .and_then(|n| n.child_text("newexpiredate"))
        .unwrap_or_else(|| panic!("{}", xml.text()))
        .to_string();
    let json = env.acme(&format!(
        "func=service.prolong&elid={id}&period=12&sok=ok&out=json"
    ));
    let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    let next = v["doc"]["doc"]["newexpiredate"]["$"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", json.text()));
    assert!(next > date.as_str(), "{next} after {date}");
}

/// Sessions as clients use them: `checkcookie=no` and `lang` with `func=auth`,
/// `func=keepalive` answered locally for the gateway's session (an unknown session is
/// `auth`), `session.newkey` and `func=auth&key=` refused clearly.
#[test]
fn sessions_as_clients_use_them() {
    let env = TestEnv::start();
    let resp = env.post(&format!(
        "func=auth&username={}&password={}&checkcookie=no&lang=ru",
        ACME.0, ACME.1
    ));
    let sid = doc(&resp, Format::Xml)
        .find("auth")
        .and_then(|a| a.get_attr("id"))
        .unwrap_or_else(|| panic!("{}", resp.text()))
        .to_string();
    env.sandbox.sandbox.clear_received();
    for out in ["xml", "json"] {
        let resp = env.post(&format!("func=keepalive&auth={sid}&out={out}"));
        let format = if out == "xml" {
            Format::Xml
        } else {
            Format::Json
        };
        assert!(doc(&resp, format).find("ok").is_some(), "{}", resp.text());
    }
    assert!(upstream_funcs(&env).is_empty());
    assert_error(
        &env.post("func=keepalive&auth=nosuchsession"),
        Format::Xml,
        "auth",
        "auth",
    );
    let e = assert_error(
        &env.acme("func=session.newkey&username=acme"),
        Format::Xml,
        "access",
        "func",
    );
    assert!(e.msg.contains("Key login"), "{}", e.msg);
    // without credentials too
    assert_error(
        &env.post("func=session.newkey&username=acme"),
        Format::Xml,
        "access",
        "func",
    );
    let e = assert_error(
        &env.post("func=auth&key=abcdef&out=json"),
        Format::Json,
        "access",
        "key",
    );
    assert!(e.msg.contains("Key login"), "{}", e.msg);
    assert!(upstream_funcs(&env).is_empty());
}

/// The session id of a `func=auth` sent with `headers`.
fn login(env: &TestEnv, headers: &[(&str, &str)]) -> String {
    let resp = post_with(
        env.addr(),
        "/billmgr",
        headers,
        &format!("func=auth&username={}&password={}", ACME.0, ACME.1),
    );
    doc(&resp, Format::Xml)
        .find("auth")
        .and_then(|a| a.get_attr("id"))
        .unwrap_or_else(|| panic!("{}", resp.text()))
        .to_string()
}

fn whoami_ok(env: &TestEnv, sid: &str, headers: &[(&str, &str)]) -> bool {
    let resp = post_with(
        env.addr(),
        "/billmgr",
        headers,
        &format!("func=whoami&auth={sid}"),
    );
    resellgate::billmgr::BmError::from_doc(&doc(&resp, Format::Xml)).is_none()
}

/// Behind a trusted proxy `X-Forwarded-For` names the client: a session made via the
/// proxy for client X works for X and not for Y. From an untrusted peer the header is
/// ignored (the session is bound to the peer, whatever the header says), and so is a
/// malformed header from a trusted proxy.
#[test]
fn forwarded_for_from_trusted_proxies_only() {
    let env = TestEnv::builder()
        .config("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]")
        .start();
    let x = [("X-Forwarded-For", "198.51.100.7")];
    let y = [("X-Forwarded-For", "198.51.100.8")];
    let sid = login(&env, &x);
    assert!(whoami_ok(&env, &sid, &x));
    assert!(whoami_ok(
        &env,
        &sid,
        &[("X-Forwarded-For", "203.0.113.1, 198.51.100.7, 127.0.0.1")]
    ));
    assert!(!whoami_ok(&env, &sid, &y));
    assert!(!whoami_ok(&env, &sid, &[]));
    // malformed from the trusted proxy: the peer's address
    let peer_sid = login(&env, &[("X-Forwarded-For", "not-an-address")]);
    assert!(whoami_ok(&env, &peer_sid, &[]));
    assert!(!whoami_ok(&env, &peer_sid, &x));

    // no trusted proxies: the header means nothing
    let env = TestEnv::start();
    let sid = login(&env, &x);
    assert!(whoami_ok(&env, &sid, &y));
    assert!(whoami_ok(&env, &sid, &[]));
}

/// `[server] paths` replaces the default three: a configured path answers, one that is
/// no longer listed is refused with 404.
#[test]
fn configured_extra_path() {
    let env = TestEnv::builder()
        .config("[server]\npaths = [\"/billmgr\", \"/api/billmgr\"]")
        .start();
    let form = format!("func=whoami&authinfo={}:{}", ACME.0, ACME.1);
    let resp = post_with(env.addr(), "/api/billmgr", &[], &form);
    assert!(
        doc(&resp, Format::Xml).find("user").is_some(),
        "{}",
        resp.text()
    );
    let resp = post_with(env.addr(), "/manager/billmgr", &[], &form);
    assert_eq!(resp.status, 404);
    // the default still has the three
    let env = TestEnv::start();
    for path in ["/billmgr", "/manager/billmgr", "/"] {
        let resp = post_with(env.addr(), path, &[], &form);
        assert_eq!(resp.status, 200, "{path}");
    }
}
