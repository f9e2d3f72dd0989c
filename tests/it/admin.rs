//! The admin listener: health and metrics, mapping documents applied to a running
//! gateway taking effect on the next request, and services, orders and reconciliation
//! of a running gateway.

use std::time::Duration;

use crate::client;
use resellgate::billmgr::Format;
use resellgate::sandbox::{Fault, FaultPhase};

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
    resellgate::app::wait_until_accepting(addr, Duration::from_secs(10)).unwrap();
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

/// The value of the series `name` whose labels include `label` (0 when absent).
fn series(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `/metrics` shows what an operator needs to watch the gateway's latency: histograms of
/// requests, upstream calls and answer rewrites by func (functions outside the table as
/// `other`, so a client cannot grow the labels), and order counters by event; each
/// call adds to them.
#[test]
fn metrics_have_latency_histograms_by_func_and_order_counters() {
    let (env, addr) = admin_env("RG_TEST_ADMIN_TOKEN_M");
    let get = || admin(addr, "GET", "/metrics", None, "");
    let before = get();
    assert_eq!(before.status, 200);
    let before = before.text();
    for _ in 0..3 {
        assert!(!env.acme("func=whoami").text().contains("<error"));
    }
    env.acme("func=pricelist.export");
    let first = env.acme(&order("m-1", "m1.example.com")).text();
    assert!(!first.contains("<error"), "{first}");
    env.acme(&order("m-1", "m1.example.com")); // the same order again: replayed
    env.acme("func=no.such.function.xyz");
    // A request is counted in its logging phase, just after its answer went out: read
    // until the last call shows (at most 5 s), then check everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let resp = loop {
        let resp = get();
        let other = "func=\"other\"";
        let counted = |name: &str, label: &str| {
            series(&resp.text(), name, label) - series(&before, name, label)
        };
        if std::time::Instant::now() > deadline
            || (counted("resellgate_request_duration_seconds_count", other) >= 1.0
                && counted(
                    "resellgate_request_duration_seconds_count",
                    "func=\"whoami\"",
                ) >= 3.0)
        {
            break resp;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        resp.header("content-type")
    );
    let after = resp.text();
    let grew = |name: &str, label: &str| series(&after, name, label) - series(&before, name, label);
    let whoami = "func=\"whoami\"";
    assert_eq!(
        grew("resellgate_request_duration_seconds_count", whoami),
        3.0,
        "{after}"
    );
    assert_eq!(
        grew("resellgate_upstream_duration_seconds_count", whoami),
        3.0,
        "{after}"
    );
    assert!(grew("resellgate_request_duration_seconds_sum", whoami) > 0.0);
    // Every bucket line is there, up to +Inf, counting all three.
    assert_eq!(
        series(
            &after,
            "resellgate_request_duration_seconds_bucket",
            &format!("{whoami},le=\"+Inf\"")
        ) + series(
            &after,
            "resellgate_request_duration_seconds_bucket",
            &format!("le=\"+Inf\",{whoami}")
        ),
        series(&after, "resellgate_request_duration_seconds_count", whoami),
        "{after}"
    );
    let export = "func=\"pricelist.export\"";
    assert_eq!(
        grew("resellgate_rewrite_duration_seconds_count", export),
        1.0,
        "{after}"
    );
    // Not in the function table: counted as `other`, never under the name a client sent.
    assert!(
        !after
            .lines()
            .any(|l| l.starts_with("resellgate_request_duration") && l.contains("no.such")),
        "{after}"
    );
    assert!(
        grew(
            "resellgate_request_duration_seconds_count",
            "func=\"other\""
        ) >= 1.0
    );
    for (event, n) in [("claimed", 1.0), ("acknowledged", 1.0), ("replayed", 1.0)] {
        assert_eq!(
            grew("resellgate_orders_total", &format!("event=\"{event}\"")),
            n,
            "{event}: {after}"
        );
    }
    // The counters the gateway had before keep their names.
    assert!(
        after.contains("resellgate_requests_total{outcome=\"ok\"}"),
        "{after}"
    );
    assert!(after.trim_end().ends_with("# EOF"), "{after}");
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

const TOKEN: &str = "t0ken-for-tests";

/// An authorised JSON answer, asserting the status.
fn json(addr: std::net::SocketAddr, method: &str, path: &str, status: u16) -> serde_json::Value {
    let resp = admin(addr, method, path, Some(TOKEN), "");
    assert_eq!(resp.status, status, "{method} {path}: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{method} {path}"
    );
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("{e}: {}", resp.text()))
}

/// The message of a JSON error answer (`{"error": "…"}`).
fn error_of(resp: &client::Response) -> String {
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{}",
        resp.text()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("{e}: {}", resp.text()));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"))
        .to_string()
}

/// The `remoteid`s of an `orders` answer, in order.
fn remoteids(v: &serde_json::Value) -> Vec<String> {
    v["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["remoteid"].as_str().unwrap().to_string())
        .collect()
}

/// Secrets that must never appear in an admin answer.
fn assert_no_secrets(text: &str) {
    for secret in [
        ACME.1,
        GLOBEX.1,
        ACME_UP.1,
        "globex-upstream-pw",
        TOKEN,
        "authinfo",
        "argon2",
        "params_hash",
        "<doc>",
    ] {
        assert!(!text.contains(secret), "'{secret}' in {text}");
    }
}

/// `GET /services` and `GET /orders` show the store while the gateway runs: a reseller's
/// services with plan, period, source and history; orders by state and reseller, with
/// the upstream id or the failure reason — and nothing secret.
#[test]
fn services_and_orders_while_running() {
    let (env, addr) = admin_env("RG_TEST_ADMIN_TOKEN_3");
    let a = id_of(&env.acme(&order("l1", "l1.example.com")), Format::Xml);
    let edit = env.acme(&format!(
        "func=certificate.edit&elid={a}&adm_phone=2&sok=ok"
    ));
    assert!(
        doc(&edit, Format::Xml).find("ok").is_some(),
        "{}",
        edit.text()
    );
    let refused =
        order("bad", "bad.example.com").replace("admin%40bad.example.com", "x%40other.org");
    assert_error(
        &env.acme(&refused),
        Format::Xml,
        "value",
        "approver_email_1",
    );
    let g = id_of(&env.globex(&order("g1", "g1.example.com")), Format::Xml);

    let v = json(addr, "GET", "/services?reseller=acme", 200);
    assert_eq!(v["reseller"], "acme");
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{v:#}");
    let s = &services[0];
    assert_eq!(
        (
            s["upstream_id"].as_u64(),
            s["remoteid"].as_str(),
            s["plan"].as_str(),
            s["period"].as_str(),
            s["source"].as_str(),
            s["deleted"].as_bool()
        ),
        (
            Some(a),
            Some("l1"),
            Some("3033"),
            Some("12"),
            Some("order"),
            Some(false)
        ),
        "{v:#}"
    );
    let history: Vec<(&str, &str)> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["func"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        history,
        [
            ("certificate.order.param", "ok"),
            ("certificate.edit", "ok")
        ]
    );
    assert!(s["recorded_at"].as_str().unwrap().ends_with('Z'), "{v:#}");
    let v = json(addr, "GET", "/services?reseller=globex", 200);
    assert_eq!(v["services"][0]["upstream_id"].as_u64(), Some(g), "{v:#}");
    assert_eq!(v["services"].as_array().unwrap().len(), 1);

    let all = json(addr, "GET", "/orders", 200);
    assert_eq!(remoteids(&all), ["bad", "l1", "g1"], "{all:#}");
    let done = json(addr, "GET", "/orders?state=done", 200);
    assert_eq!(remoteids(&done), ["l1", "g1"]);
    assert_eq!(done["orders"][0]["upstream_id"].as_u64(), Some(a));
    assert_eq!(done["orders"][0]["state"], "done");
    assert_eq!(done["orders"][0]["failure"], serde_json::Value::Null);
    let failed = json(addr, "GET", "/orders?state=failed&reseller=acme", 200);
    assert_eq!(remoteids(&failed), ["bad"]);
    assert_eq!(failed["orders"][0]["upstream_id"], serde_json::Value::Null);
    let reason = failed["orders"][0]["failure"].as_str().unwrap();
    assert!(reason.starts_with("upstream refused"), "{reason}");
    assert_eq!(
        remoteids(&json(addr, "GET", "/orders?reseller=globex", 200)),
        ["g1"]
    );
    assert!(remoteids(&json(addr, "GET", "/orders?state=pending", 200)).is_empty());

    for path in [
        "/services?reseller=acme",
        "/services?reseller=globex",
        "/orders",
    ] {
        assert_no_secrets(&admin(addr, "GET", path, Some(TOKEN), "").text());
    }
}

/// Without the token (or with a wrong one) every record endpoint answers 401 and nothing
/// else — no data, no hint whether a reseller exists — and reconciliation does not run.
#[test]
fn records_need_the_token() {
    let (env, addr) = admin_env("RG_TEST_ADMIN_TOKEN_4");
    id_of(&env.acme(&order("l1", "l1.example.com")), Format::Xml);
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::AfterHandling);
    assert_error(
        &env.acme(&order("p1", "p1.example.com")),
        Format::Xml,
        "pending",
        "remoteid",
    );
    env.sandbox.sandbox.clear_received();
    for (method, path) in [
        ("GET", "/services?reseller=acme"),
        ("GET", "/services?reseller=nobody"),
        ("GET", "/services"),
        ("GET", "/orders"),
        ("GET", "/orders?state=bogus"),
        ("POST", "/orders/reconcile?settle_ms=0"),
    ] {
        for token in [None, Some("wrong"), Some("")] {
            let resp = admin(addr, method, path, token, "");
            assert_eq!(
                resp.status,
                401,
                "{method} {path} {token:?}: {}",
                resp.text()
            );
            assert_eq!(error_of(&resp), "a valid bearer token is required");
        }
    }
    assert!(
        env.sandbox.sandbox.received().is_empty(),
        "reconciliation ran"
    );
    let rec = env.store.order("acme", "p1").unwrap().unwrap();
    assert_eq!(rec.state_name(), "pending");
}

/// Bad query strings are 400 with a message naming the parameter; an unknown reseller is
/// 404; another method is 405 with `Allow`.
#[test]
fn bad_queries_and_unknown_resellers() {
    let (_env, addr) = admin_env("RG_TEST_ADMIN_TOKEN_5");
    for (method, path, status, message) in [
        (
            "GET",
            "/services",
            400,
            "query parameter 'reseller' is required: GET /services?reseller=LOGIN",
        ),
        (
            "GET",
            "/services?reseller=",
            400,
            "query parameter 'reseller' is empty",
        ),
        (
            "GET",
            "/services?reseller=acme&state=done",
            400,
            "unknown query parameter 'state' (this endpoint takes: reseller)",
        ),
        (
            "GET",
            "/services?reseller=nobody",
            404,
            "there is no reseller 'nobody'",
        ),
        (
            "GET",
            "/orders?state=lost",
            400,
            "query parameter 'state': 'lost' is not one of pending, done, failed",
        ),
        (
            "GET",
            "/orders?stat=done",
            400,
            "unknown query parameter 'stat' (this endpoint takes: state, reseller)",
        ),
        (
            "GET",
            "/orders?state=done&state=failed",
            400,
            "query parameter 'state' is given more than once",
        ),
        (
            "GET",
            "/orders?reseller=nobody&state=done",
            404,
            "there is no reseller 'nobody'",
        ),
        (
            "GET",
            "/orders?reseller=%FF",
            400,
            "the query string is not valid: the query string is not valid UTF-8 after decoding",
        ),
        (
            "POST",
            "/orders/reconcile?settle_ms=soon",
            400,
            "query parameter 'settle_ms': 'soon' is not a whole number of milliseconds",
        ),
        ("GET", "/orders/reconcile", 405, "use POST"),
        ("POST", "/orders", 405, "use GET"),
        ("GET", "/orders/pending", 404, "not found"),
    ] {
        let resp = admin(addr, method, path, Some(TOKEN), "");
        assert_eq!(
            (resp.status, error_of(&resp)),
            (status, message.to_string()),
            "{method} {path}"
        );
        if status == 405 {
            assert!(resp.header("allow").is_some(), "{method} {path}");
        }
    }
}

/// `POST /orders/reconcile` runs one pass now: with the background task's settle time a
/// fresh pending order is left alone; with `settle_ms=0` it is found upstream, recorded,
/// and the billing's retry gets its id — no second order.
#[test]
fn reconcile_endpoint_resolves_a_pending_order() {
    std::env::set_var("RG_TEST_ADMIN_TOKEN_6", TOKEN);
    let port = free_port();
    let env = TestEnv::builder()
        .config(&format!(
            "[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"RG_TEST_ADMIN_TOKEN_6\"\n[upstream]\nread_timeout_ms = 30000"
        ))
        .start();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    resellgate::app::wait_until_accepting(addr, Duration::from_secs(10)).unwrap();

    let form = order("lost", "lost.example.com");
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::AfterHandling);
    assert_error(&env.acme(&form), Format::Xml, "pending", "remoteid");
    let pending = json(addr, "GET", "/orders?state=pending", 200);
    assert_eq!(remoteids(&pending), ["lost"]);
    assert_eq!(pending["orders"][0]["upstream_id"], serde_json::Value::Null);

    // the default settle time: connect (1000 ms) + read (30000 ms) timeout
    let v = json(addr, "POST", "/orders/reconcile", 200);
    assert_eq!(
        v,
        serde_json::json!({"settle_ms": 31000, "done": [], "failed": [],
            "pending": [{"reseller": "acme", "remoteid": "lost"}], "costs_filled": 0})
    );
    assert_eq!(
        env.store
            .order("acme", "lost")
            .unwrap()
            .unwrap()
            .state_name(),
        "pending"
    );

    let v = json(addr, "POST", "/orders/reconcile?settle_ms=0", 200);
    let upstream: Vec<u64> = env
        .sandbox
        .sandbox
        .certificates()
        .iter()
        .filter(|c| c.remoteid.as_deref() == Some("lost"))
        .map(|c| c.id)
        .collect();
    assert_eq!(upstream.len(), 1);
    assert_eq!(
        v,
        serde_json::json!({"settle_ms": 0, "failed": [], "pending": [], "costs_filled": 0,
            "done": [{"reseller": "acme", "remoteid": "lost", "upstream_id": upstream[0]}]})
    );
    assert_eq!(id_of(&env.acme(&form), Format::Xml), upstream[0]);
    assert_eq!(env.sandbox.sandbox.order_count(), 1);
    let done = json(addr, "GET", "/orders?state=done", 200);
    assert_eq!(done["orders"][0]["upstream_id"].as_u64(), Some(upstream[0]));
    let services = json(addr, "GET", "/services?reseller=acme", 200);
    assert_eq!(
        services["services"][0]["source"], "reconcile",
        "{services:#}"
    );
    // nothing left: a further pass finds nothing to do
    assert_eq!(
        json(addr, "POST", "/orders/reconcile?settle_ms=0", 200),
        serde_json::json!({"settle_ms": 0, "done": [], "failed": [], "pending": [], "costs_filled": 0})
    );
}
