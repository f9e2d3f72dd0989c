//! The admin listener: health and metrics, and mapping documents applied to a running
//! gateway taking effect on the next request.

use std::time::Duration;

use resellgate::billmgr::Format;
use resellgate::client;

use crate::harness::*;

fn admin_env(var: &str) -> (TestEnv, std::net::SocketAddr) {
    std::env::set_var(var, "t0ken-for-tests");
    let port = free_port();
    let env = TestEnv::builder()
        .config(&format!(
            "[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"{var}\""
        ))
        .start();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    resellgate::proxy::server::wait_until_accepting(addr, Duration::from_secs(10)).unwrap();
    (env, addr)
}

fn admin(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> client::Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    client::blocking(
        addr,
        method,
        path,
        &headers,
        body.as_bytes(),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn price_of_101(env: &TestEnv) -> String {
    let d = doc(
        &env.acme("func=pricelist.export&itemtype=certificate&pricelist=101"),
        Format::Xml,
    );
    let p = d.find("pricelist").expect("plan 101");
    let cost = p
        .find("price")
        .unwrap()
        .find("period")
        .unwrap()
        .get_attr("cost")
        .unwrap()
        .to_string();
    cost
}

#[test]
fn health_metrics_and_token() {
    let (env, addr) = admin_env("RG_TEST_ADMIN_TOKEN_1");
    assert_eq!(admin(addr, "GET", "/healthz", None, "").text(), "ok\n");
    assert_eq!(admin(addr, "GET", "/readyz", None, "").text(), "ready\n");
    env.acme("func=user.edit");
    let m = admin(addr, "GET", "/metrics", None, "").text();
    assert!(
        m.contains("resellgate_refused_functions_total{func=\"user.edit\"} 1"),
        "{m}"
    );
    assert_eq!(admin(addr, "GET", "/mappings", None, "").status, 401);
    assert_eq!(
        admin(addr, "GET", "/mappings", Some("wrong"), "").status,
        401
    );
    let export = admin(addr, "GET", "/mappings", Some("t0ken-for-tests"), "");
    assert_eq!(export.status, 200);
    assert!(
        export.text().contains("login = \"acme\""),
        "{}",
        export.text()
    );
    assert!(!export.text().contains("upstream-pw"));
}

/// A markup changed through the admin API is what the next price list shows.
#[test]
fn mappings_applied_live_take_effect_on_the_next_request() {
    let (env, addr) = admin_env("RG_TEST_ADMIN_TOKEN_2");
    assert_eq!(price_of_101(&env), "11.30");
    let doc_text = "[[plan]]\nid = 101\nupstream_id = 3033\nname = \"PositiveSSL\"\nmarkup = { percent = \"50\", fixed = \"0.50\" }\naddons = [{ id = 201, upstream_id = 3034 }]\n";
    let resp = admin(addr, "POST", "/mappings", Some("t0ken-for-tests"), doc_text);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("plan 101"), "{}", resp.text());
    assert_eq!(price_of_101(&env), "14.00");
    let again = admin(addr, "POST", "/mappings", Some("t0ken-for-tests"), doc_text);
    assert_eq!(again.text(), "no changes\n");
    let bad = admin(
        addr,
        "POST",
        "/mappings",
        Some("t0ken-for-tests"),
        "[[plan]]\nid = 0\n",
    );
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(price_of_101(&env), "14.00");
}
