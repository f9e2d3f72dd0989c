//! The operator's API on a running gateway: named tokens with roles, JSON resources with
//! validation and ETag/If-Match, the pricelist preview matching what the reseller
//! imports, and the audit log written with every change.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client;
use crate::harness::*;
use resellgate::billmgr::Format;

pub const WRITE: &str = "ops-write-t0ken";
pub const READ: &str = "ops-read-t0ken";

/// A gateway with the write token `ops` and the read token `viewer` (variables unique
/// to `tag`, so tests in one process do not share them).
pub fn operator_env(tag: &str) -> (TestEnv, SocketAddr) {
    let (w, r) = (format!("RG_OPS_W_{tag}"), format!("RG_OPS_R_{tag}"));
    std::env::set_var(&w, WRITE);
    std::env::set_var(&r, READ);
    let port = free_port();
    let env = TestEnv::builder()
        .config(&format!(
            "[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"RG_OPS_UNSET_{tag}\"\n\
             token = [{{ name = \"ops\", env = \"{w}\", role = \"write\" }}, {{ name = \"viewer\", env = \"{r}\", role = \"read\" }}]"
        ))
        .start();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    resellgate::app::wait_until_accepting(addr, Duration::from_secs(10)).unwrap();
    (env, addr)
}

pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> client::Response {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
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

fn json_of(r: &client::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// The period costs of plan 101 in `acme`'s price list, as a document in `format`.
pub fn acme_costs(env: &TestEnv) -> Vec<String> {
    let d = doc(
        &env.acme("func=pricelist.export&itemtype=certificate&pricelist=101"),
        Format::Xml,
    );
    let p = d.find("pricelist").expect("plan 101");
    p.find("price")
        .unwrap()
        .children
        .iter()
        .filter(|c| c.name == "period")
        .map(|c| c.get_attr("cost").unwrap().to_string())
        .collect()
}

/// A read token reads everything and changes nothing; a write token changes; no token
/// or a wrong one is 401.
#[test]
fn roles() {
    let (_env, addr) = operator_env("roles");
    for path in [
        "/plans",
        "/resellers",
        "/upstream_accounts",
        "/audit",
        "/plans/101",
    ] {
        let r = call(addr, "GET", path, READ, &[], "");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = call(addr, "DELETE", "/resellers/globex", READ, &[], "");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("'viewer' has role read"), "{}", r.text());
    for (m, p) in [
        ("POST", "/mappings"),
        ("POST", "/orders/reconcile"),
        ("POST", "/services/sync?reseller=acme"),
        ("PUT", "/plans/101/markup"),
    ] {
        assert_eq!(call(addr, m, p, READ, &[], "{}").status, 403, "{m} {p}");
    }
    assert_eq!(call(addr, "GET", "/plans", "nope", &[], "").status, 401);
    // The description of the API is open.
    let doc = client::blocking(
        addr,
        "GET",
        "/openapi.json",
        &[],
        b"",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(doc.status, 200);
    assert_eq!(json_of(&doc)["openapi"], "3.1.0");
}

/// A markup changed through the API shows in the preview and in the reseller's next
/// `pricelist.export` alike; a stale If-Match is 412 and changes nothing; the change is
/// in the audit log under the token's name, with before and after.
#[test]
fn markup_edit_preview_and_audit() {
    let (env, addr) = operator_env("markup");
    assert_eq!(acme_costs(&env), ["11.30", "19.70", "27.50"]);
    let preview = json_of(&call(
        addr,
        "GET",
        "/resellers/acme/pricelist",
        READ,
        &[],
        "",
    ));
    assert!(preview.to_string().contains("11.30"), "{preview:#}");

    let got = call(addr, "GET", "/plans/101/markup", WRITE, &[], "");
    assert_eq!(
        json_of(&got),
        json!({"percent": "20", "fixed": "0.50", "round_to": "0.01"})
    );
    let etag = got.header("etag").unwrap().to_string();
    let put = call(
        addr,
        "PUT",
        "/plans/101/markup",
        WRITE,
        &[("If-Match", &etag)],
        r#"{"percent": "50"}"#,
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let v = json_of(&put);
    assert_eq!(v["record"]["markup"]["percent"], "50");
    assert_ne!(put.header("etag").unwrap(), etag);

    // 9.00 × 1.5 = 13.50: the preview and the reseller's own call agree.
    let preview = json_of(&call(
        addr,
        "GET",
        "/resellers/acme/pricelist",
        WRITE,
        &[],
        "",
    ));
    assert!(preview.to_string().contains("13.50"), "{preview:#}");
    assert_eq!(acme_costs(&env), ["13.50", "24.00", "33.75"]);

    // The old tag is stale now.
    let stale = call(
        addr,
        "PUT",
        "/plans/101/markup",
        WRITE,
        &[("If-Match", &etag)],
        r#"{"percent": "10"}"#,
    );
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert_eq!(acme_costs(&env)[0], "13.50");

    // Validation names the field and the value.
    let bad = call(
        addr,
        "PUT",
        "/plans/101/markup",
        WRITE,
        &[],
        r#"{"percent": "lots"}"#,
    );
    assert_eq!(bad.status, 400);
    let e = json_of(&bad);
    assert_eq!(
        (e["field"].as_str(), e["value"].as_str()),
        (Some("markup.percent"), Some("lots")),
        "{e}"
    );

    let audit = json_of(&call(
        addr,
        "GET",
        "/audit?kind=plan&key=101",
        READ,
        &[],
        "",
    ));
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit:#}");
    let e = &entries[0];
    assert_eq!(
        (e["token"].as_str(), e["via"].as_str()),
        (Some("ops"), Some("api"))
    );
    assert_eq!(e["before"]["markup"]["percent"], "20");
    assert_eq!(e["after"]["markup"]["percent"], "50");
    assert_eq!(e["changes"][0], "markup percent 20 -> 50");
    assert!(e["at"].as_str().unwrap().ends_with('Z'));
    let none = json_of(&call(addr, "GET", "/audit?until=2000-01-01", READ, &[], ""));
    assert!(none["entries"].as_array().unwrap().is_empty());
    assert_eq!(
        call(addr, "GET", "/audit?kind=cat", READ, &[], "").status,
        400
    );
    assert_eq!(
        call(addr, "GET", "/audit?limit=1001", READ, &[], "").status,
        400
    );
    assert_eq!(
        call(addr, "GET", "/audit?limit=1000", READ, &[], "").status,
        200
    );
}

/// Create, conflict, replace (the hash kept when not sent), delete; references and uses
/// are checked; nothing answered or audited carries a hash.
#[test]
fn reseller_lifecycle() {
    let (env, addr) = operator_env("reseller");
    let hash = env.store.reseller("acme").unwrap().password_hash.clone();
    let body = json!({"login": "initech", "password_hash": hash, "upstream_account": "acme-up", "plans": [101]}).to_string();
    let r = call(addr, "POST", "/resellers", WRITE, &[], &body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        call(addr, "POST", "/resellers", WRITE, &[], &body).status,
        409
    );
    let r = call(
        addr,
        "PUT",
        "/resellers/initech",
        WRITE,
        &[],
        r#"{"upstream_account": "acme-up", "plans": [101, 102], "markup": {"percent": "5"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(env.store.reseller("initech").unwrap().password_hash, hash);
    let r = call(
        addr,
        "PUT",
        "/resellers/initech",
        WRITE,
        &[],
        r#"{"upstream_account": "nobody"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(json_of(&r)["field"], "upstream_account");
    let r = call(
        addr,
        "PUT",
        "/resellers/initech",
        WRITE,
        &[],
        r#"{"login": "other", "upstream_account": "acme-up"}"#,
    );
    assert_eq!(json_of(&r)["field"], "login");
    assert_eq!(
        call(addr, "DELETE", "/plans/101", WRITE, &[], "").status,
        409
    );
    assert_eq!(
        call(addr, "DELETE", "/resellers/initech", WRITE, &[], "").status,
        200
    );
    assert_eq!(
        call(addr, "GET", "/resellers/initech", WRITE, &[], "").status,
        404
    );
    assert_eq!(
        call(addr, "DELETE", "/resellers/initech", WRITE, &[], "").status,
        404
    );

    for path in ["/resellers", "/resellers/acme", "/audit?limit=1000"] {
        let text = call(addr, "GET", path, READ, &[], "").text();
        assert!(
            !text.contains(&hash) && !text.contains("argon2"),
            "{path}: {text}"
        );
    }
    let audit = json_of(&call(
        addr,
        "GET",
        "/audit?kind=reseller&key=initech",
        READ,
        &[],
        "",
    ));
    let ops: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["delete", "modify", "add"]);
}

/// A mapping document posted to the running gateway is audited under the token's name.
#[test]
fn mapping_apply_is_audited() {
    let (_env, addr) = operator_env("apply");
    let doc = "[[plan]]\nid = 555\nupstream_id = 3040\nname = \"Wildcard\"\n";
    let r = call(addr, "POST", "/mappings", WRITE, &[], doc);
    assert_eq!(r.status, 200, "{}", r.text());
    let audit = json_of(&call(
        addr,
        "GET",
        "/audit?kind=plan&key=555",
        READ,
        &[],
        "",
    ));
    let e = &audit["entries"][0];
    assert_eq!(
        (e["token"].as_str(), e["via"].as_str(), e["op"].as_str()),
        (Some("ops"), Some("mappings"), Some("add"))
    );
    assert_eq!(e["after"]["name"], "Wildcard");
}

/// The CLI while the gateway runs (its store locked): `mappings apply` goes through the
/// admin API, takes effect on the next call, and is audited under the token's name;
/// the read commands answer from the running gateway too.
#[test]
fn cli_talks_to_the_running_gateway() {
    let (env, _addr) = operator_env("cli");
    let cfg = env.dir.path().join("config.toml");
    let file = env.dir.path().join("markup.toml");
    std::fs::write(
        &file,
        "[[plan]]\nid = 101\nupstream_id = 3033\nname = \"PositiveSSL\"\nmarkup = { percent = \"50\" }\naddons = [{ id = 201, upstream_id = 3034 }]\n",
    )
    .unwrap();
    let o = run_cli(&[&"mappings", &"apply", &"--config", &cfg, &file]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("~ plan 101: markup percent 20 -> 50"), "{out}");
    assert!(err.contains("using its admin API"), "{err}");
    assert_eq!(acme_costs(&env)[0], "13.50");

    let o = run_cli(&[&"audit", &"list", &"--config", &cfg, &"--kind", &"plan"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("\tops\tmappings\tmodify\tplan 101\tmarkup percent 20 -> 50"),
        "{out}"
    );

    for args in [
        vec!["mappings", "export"],
        vec!["orders", "list"],
        vec!["services", "list", "--reseller", "acme"],
        vec![
            "ledger",
            "export",
            "--reseller",
            "acme",
            "--month",
            "2026-11",
        ],
    ] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|s| s as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        a.push(&"--config");
        a.push(&cfg);
        let o = run_cli(&a);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = run_cli(&[&"mappings", &"export", &"--config", &cfg]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("percent = \"50\""));
    // A bad answer of the API is the CLI's exit code 64 with the gateway's message.
    let o = run_cli(&[
        &"ledger",
        &"export",
        &"--config",
        &cfg,
        &"--reseller",
        &"nobody",
        &"--month",
        &"2026-11",
    ]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `services sync` while the gateway runs: through `POST /services/sync` (a write token),
/// recording the reseller's certificates on the upstream; a missing or unknown reseller is
/// named in the refusal.
#[test]
fn services_sync_through_the_running_gateway() {
    let (env, addr) = operator_env("sync");
    // A certificate acme ordered straight on the upstream, unknown to the gateway.
    let made = env.sandbox.sandbox.order_count();
    let r = call(addr, "POST", "/services/sync?reseller=acme", WRITE, &[], "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json_of(&r);
    assert_eq!(v["reseller"], "acme");
    assert!(v["recorded"].is_u64() && v["refused"].is_array(), "{v}");
    assert_eq!(
        env.sandbox.sandbox.order_count(),
        made,
        "a sync orders nothing"
    );

    let r = call(addr, "POST", "/services/sync", WRITE, &[], "");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(json_of(&r)["field"], "reseller");
    let r = call(
        addr,
        "POST",
        "/services/sync?reseller=nobody",
        WRITE,
        &[],
        "",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("nobody"), "{}", r.text());

    let cfg = env.dir.path().join("config.toml");
    let o = run_cli(&[
        &"services",
        &"sync",
        &"--config",
        &cfg,
        &"--reseller",
        &"acme",
    ]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains("using its admin API"), "{err}");
    assert!(
        out.contains(&format!("{} services recorded for acme", v["recorded"])),
        "{out}"
    );
    let o = run_cli(&[
        &"services",
        &"sync",
        &"--config",
        &cfg,
        &"--reseller",
        &"nobody",
    ]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every path and method of `GET /openapi.json` is routed by the running listener (a
/// read token: GETs reach their handler, changes are refused by role, never "not found"
/// or "use …"), and the listener routes nothing the document leaves out.
#[test]
fn openapi_is_what_the_listener_serves() {
    let (_env, addr) = operator_env("openapi");
    let doc = client::blocking(
        addr,
        "GET",
        "/openapi.json",
        &[],
        b"",
        Duration::from_secs(5),
    )
    .unwrap();
    let doc = json_of(&doc);
    let mut n = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{login}", "nobody")
            .replace("{name}", "nobody")
            .replace("{id}", "999999");
        for method in ops.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let r = call(addr, &m, &concrete, READ, &[], "");
            let text = r.text();
            assert!(
                r.status != 405 && !text.contains("\"not found\""),
                "{m} {path}: {} {text}",
                r.status
            );
            if m != "GET" {
                assert_eq!(r.status, 403, "{m} {path}: {text}");
            }
            n += 1;
        }
    }
    assert!(n >= 30, "{n} operations");
    assert_eq!(
        call(addr, "GET", "/plans/1/addons", READ, &[], "").status,
        404
    );
}

/// Upstream accounts: the password variable must resolve before anything is written;
/// an account in use cannot be deleted; tokens never reach the audit log.
#[test]
fn upstream_accounts_and_no_token_in_the_audit_log() {
    let (_env, addr) = operator_env("accounts");
    let body =
        r#"{"name": "initech-up", "login": "initech@sandbox", "password_env": "RG_OPS_UNSET_PW"}"#;
    let r = call(addr, "POST", "/upstream_accounts", WRITE, &[], body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(json_of(&r)["field"], "password_env");
    assert_eq!(
        call(addr, "GET", "/upstream_accounts/initech-up", READ, &[], "").status,
        404
    );
    std::env::set_var("RG_OPS_SET_PW", "initech-upstream-pw");
    let body = body.replace("RG_OPS_UNSET_PW", "RG_OPS_SET_PW");
    let r = call(addr, "POST", "/upstream_accounts", WRITE, &[], &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let got = json_of(&call(
        addr,
        "GET",
        "/upstream_accounts/initech-up",
        READ,
        &[],
        "",
    ));
    assert_eq!(
        got,
        json!({"name": "initech-up", "login": "initech@sandbox", "password_env": "RG_OPS_SET_PW"})
    );
    assert_eq!(
        call(addr, "DELETE", "/upstream_accounts/acme-up", WRITE, &[], "").status,
        409
    );
    assert_eq!(
        call(
            addr,
            "DELETE",
            "/upstream_accounts/initech-up",
            WRITE,
            &[],
            ""
        )
        .status,
        200
    );
    let audit = call(addr, "GET", "/audit?limit=1000", READ, &[], "").text();
    assert!(audit.contains("initech-up"), "{audit}");
    for secret in [WRITE, READ, "initech-upstream-pw"] {
        assert!(!audit.contains(secret), "{secret} in {audit}");
    }
}

/// With the gateway stopped, `mappings apply` writes the store directly and is audited
/// as `cli`; `audit list` reads it there, its options checked.
#[test]
fn cli_on_a_stopped_store_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[upstream]\nurl = \"http://127.0.0.1:9/billmgr\"\n[store]\npath = \"store\"\n",
    )
    .unwrap();
    let mappings = write_mappings(dir.path());
    let o = run_cli(&[&"mappings", &"apply", &"--config", &cfg, &mappings]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_cli(&[&"audit", &"list", &"--config", &cfg, &"--kind", &"reseller"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("\tcli\tmappings\tadd\treseller acme\t"),
        "{out}"
    );
    assert!(!out.contains("plan "), "{out}");
    assert!(!out.contains("argon2"), "{out}");
    for bad in [
        ["--limit", "0"],
        ["--since", "yesterday"],
        ["--kind", "cat"],
    ] {
        let o = run_cli(&[&"audit", &"list", &"--config", &cfg, &bad[0], &bad[1]]);
        assert_eq!(o.status.code(), Some(64), "{bad:?}");
    }
}
