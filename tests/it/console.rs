//! The web console: its headers, session cookie and CSRF checks over plain HTTP, and an
//! operator's session in a real browser (chromium through WebDriver): log in, change a
//! markup, see the preview and the audit entry, and the reseller's next price list.

use std::time::Duration;

use crate::client;
use crate::operator::{acme_costs, operator_env, READ, WRITE};
use crate::webdriver::Browser;

fn post(
    addr: std::net::SocketAddr,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> client::Response {
    let c = cookie.map(|c| format!("rg_console={c}"));
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(c) = &c {
        headers.push(("Cookie", c.as_str()));
    }
    client::blocking(
        addr,
        "POST",
        path,
        &headers,
        form.as_bytes(),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn get(addr: std::net::SocketAddr, path: &str, cookie: Option<&str>) -> client::Response {
    let c = cookie.map(|c| format!("rg_console={c}"));
    let headers: Vec<(&str, &str)> = c.iter().map(|c| ("Cookie", c.as_str())).collect();
    client::blocking(addr, "GET", path, &headers, b"", Duration::from_secs(10)).unwrap()
}

/// Log in with `token`; answers the session id from the cookie.
fn log_in(addr: std::net::SocketAddr, token: &str) -> String {
    let r = post(addr, "/console/login", None, &format!("token={token}"));
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/console"),
        "{cookie}"
    );
    cookie
        .strip_prefix("rg_console=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string()
}

fn csrf_of(page: &str) -> String {
    let i = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[i..i + 64].to_string()
}

/// Strict headers on every page; a bad token is told so; a form without the session's
/// CSRF token, or from a read token's session, changes nothing; no secret in a page.
#[test]
fn sessions_csrf_and_roles_over_http() {
    let (env, addr) = operator_env("console_http");
    let login = get(addr, "/console/", None);
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!login.text().contains("<script"), "no script");
    assert!(
        !login.text().contains("http://") && !login.text().contains("https://"),
        "no external asset"
    );
    assert_eq!(get(addr, "/console/style.css", None).status, 200);
    // Pages need a session.
    assert_eq!(get(addr, "/console/plans/101", None).status, 303);

    let bad = post(addr, "/console/login", None, "token=wrong");
    assert_eq!(bad.status, 401);
    assert!(bad.text().contains("not an admin token"), "{}", bad.text());
    assert!(!bad.text().contains("wrong"));

    let sid = log_in(addr, WRITE);
    let page = get(addr, "/console/plans/101", Some(&sid));
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(!page.text().contains(WRITE), "the token is never shown");
    let csrf = csrf_of(&page.text());
    let form = |csrf: &str, pc: &str| {
        format!("csrf={csrf}&etag=&upstream_id=3033&name=PositiveSSL&markup_percent={pc}&markup_fixed=0.50&markup_round_to=0.01&addons=201%3D3034")
    };
    let r = post(addr, "/console/plans/101", Some(&sid), &form("0000", "70"));
    assert_eq!(r.status, 403);
    assert_eq!(acme_costs(&env)[0], "11.30");
    let r = post(addr, "/console/plans/101", Some(&sid), &form(&csrf, "lots"));
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("field markup.percent, value &#39;lots&#39;"),
        "{}",
        r.text()
    );
    let r = post(addr, "/console/plans/101", Some(&sid), &form(&csrf, "50"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains("Saved: ~ plan 101: markup percent 20 -&gt; 50"),
        "{}",
        r.text()
    );
    assert_eq!(acme_costs(&env)[0], "14.00");

    // A stale page (its ETag) is refused, not overwritten.
    let etag_old = {
        let t = page.text();
        let i = t.find("name=\"etag\" value=\"").unwrap() + 19;
        let j = t[i..].find('"').unwrap();
        t[i..i + j].to_string()
    };
    let stale = form(&csrf, "10").replace("etag=", &format!("etag={}", urlenc(&etag_old).as_str()));
    let r = post(addr, "/console/plans/101", Some(&sid), &stale);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("someone changed this record"),
        "{}",
        r.text()
    );
    assert_eq!(acme_costs(&env)[0], "14.00");

    let ro = log_in(addr, READ);
    let page = get(addr, "/console/resellers/acme", Some(&ro));
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(!text.contains("argon2"), "no hash on a page");
    let r = post(
        addr,
        "/console/resellers/acme",
        Some(&ro),
        &format!(
            "csrf={}&etag=&upstream_account=acme-up&plans=101",
            csrf_of(&text)
        ),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("role read"), "{}", r.text());
    for p in [
        "/console/orders",
        "/console/services?reseller=acme",
        "/console/ledger?reseller=acme&month=2026-11",
        "/console/audit",
    ] {
        assert_eq!(get(addr, p, Some(&ro)).status, 200, "{p}");
    }
    let csv = get(
        addr,
        "/console/ledger.csv?reseller=acme&month=2026-11",
        Some(&ro),
    );
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains("attachment"));

    // Log out ends the session.
    let r = post(
        addr,
        "/console/logout",
        Some(&ro),
        &format!("csrf={}", csrf_of(&text)),
    );
    assert_eq!(r.status, 303);
    assert_eq!(get(addr, "/console/orders", Some(&ro)).status, 303);
}

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// In chromium: log in, open plan 101, change its markup, see the saved message and the
/// new price in the preview beside the form, then the audit entry; the reseller's next
/// `pricelist.export` has the new price. The screenshot is the README's.
#[test]
fn an_operator_changes_a_markup_in_a_real_browser() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (env, addr) = operator_env("browser");
    let base = format!("http://{addr}");
    browser.go(&format!("{base}/console/"));
    assert!(browser.title().contains("Log in"), "{}", browser.title());
    browser.fill("#token", "not-a-token");
    browser.click("#login");
    assert!(browser.text("#message").contains("not an admin token"));
    browser.fill("#token", WRITE);
    browser.click("#login");
    assert_eq!(browser.text("#token-name"), "ops");

    browser.click("#plan-101");
    assert!(
        browser.text("#preview").contains("11.30"),
        "{}",
        browser.text("#preview")
    );
    browser.fill("#markup_percent", "50");
    browser.click("#save");
    let msg = browser.text("#message");
    assert!(
        msg.contains("Saved: ~ plan 101: markup percent 20 -> 50"),
        "{msg}"
    );
    let preview = browser.text("#preview");
    assert!(
        preview.contains("14.00") && preview.contains("24.50"),
        "{preview}"
    );
    assert_eq!(acme_costs(&env), ["14.00", "24.50", "34.25"]);

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("console-plan.png"), &png).unwrap();

    browser.go(&format!("{base}/console/audit"));
    let audit = browser.text("#audit");
    assert!(
        audit.contains("ops\tconsole\tmodify\tplan 101")
            || audit.contains("ops console modify plan 101"),
        "{audit}"
    );
    assert!(audit.contains("markup percent 20 -> 50"), "{audit}");

    // A mistake is shown to the person, and nothing changes.
    let before = env.store.reseller("globex").unwrap();
    browser.go(&format!("{base}/console/resellers/globex"));
    browser.fill("#plans", "101, nine");
    browser.click("#save");
    let msg = browser.text("#message");
    assert!(
        msg.contains("Not saved") && msg.contains("field plans"),
        "{msg}"
    );
    assert_eq!(env.store.reseller("globex").unwrap(), before);
}
