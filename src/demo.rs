//! `resellgate demo`: the built-in sandbox as the upstream, the gateway in front of it
//! with `mappings/demo.toml` applied to a fresh store, a scripted reseller session
//! printed step by step, and then both keep serving so you can try it with curl.
//!
//! The script talks to the gateway through the product's own HTTP client, the pingora
//! connector the gateway forwards upstream with ([`crate::upstream::Upstream`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use bytes::Bytes;

use crate::billmgr::{self, BmError, Element, Format};
use crate::config::{self, Config};
use crate::sandbox::{self, Sandbox};
use crate::store::Store;
use crate::upstream::{Upstream, UpstreamSettings};

/// The demo's mapping file, compiled in so the binary runs the demo from anywhere.
pub const DEMO_MAPPINGS: &str = include_str!("../mappings/demo.toml");

/// Demo credentials (public: they exist only in the sandbox and the demo mappings).
pub const DEMO_RESELLER: (&str, &str) = ("acme", "acme-demo-pw");
const UPSTREAM_PASSWORDS: &[(&str, &str)] = &[
    ("ACME_UP_PASSWORD", "acme-upstream-pw"),
    ("GLOBEX_UP_PASSWORD", "globex-upstream-pw"),
];

pub fn run(port: u16, admin_port: Option<u16>, once: bool) -> anyhow::Result<()> {
    let sandbox_port = port.checked_add(100).context("--port is too high")?;
    let dir = std::env::temp_dir().join(format!("resellgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    // 1. The upstream: the built-in sandbox.
    let sb = sandbox::spawn(&format!("127.0.0.1:{sandbox_port}"), Sandbox::demo())
        .with_context(|| format!("cannot start the sandbox on 127.0.0.1:{sandbox_port}"))?;
    println!(
        "== sandbox (the selling BILLmanager) on http://{}/billmgr",
        sb.addr
    );

    // 2. The store: demo mappings applied to a fresh store.
    for (var, value) in UPSTREAM_PASSWORDS {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
    let mappings = dir.join("demo.toml");
    std::fs::write(&mappings, DEMO_MAPPINGS)?;
    // The operator's token: RESELLGATE_ADMIN_TOKEN when set, else a random one.
    let admin_port = match admin_port {
        Some(p) => p,
        None => port.checked_add(1).context("--port is too high")?,
    };
    let token = std::env::var("RESELLGATE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(random_token);
    std::env::set_var("RESELLGATE_ADMIN_TOKEN", &token);
    let config_text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://{}/billmgr\"\n[store]\npath = \"store\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken_env = \"RESELLGATE_ADMIN_TOKEN\"\n",
        sb.addr
    );
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, &config_text)?;
    let config = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = Store::open_at(&config.store_location())?;
    let set = config::load_mappings(&[mappings]).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("== mappings apply mappings/demo.toml");
    let cli = crate::store::Actor::cli(crate::store::Via::Mappings);
    for change in set.apply_to_as(&store, Some(&cli))? {
        println!("   {change}");
    }

    // 3. The gateway.
    let gw = crate::app::spawn(&config, store)?;
    println!(
        "== gateway on http://{}/billmgr (store in {})",
        gw.addr,
        dir.join("store").display()
    );
    println!();

    let script = Script::new(gw.addr)?;
    script.run()?;
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    crate::app::wait_until_accepting(
        format!("127.0.0.1:{admin_port}").parse()?,
        Duration::from_secs(10),
    )?;
    script.operator(&admin_url, &crate::secret::Secret::new(token.clone()))?;
    drop(script);

    if once {
        drop(gw);
        drop(sb);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let (login, password) = DEMO_RESELLER;
    println!();
    println!("The gateway keeps serving. Point a reseller BILLmanager's \"BILLmanager\" processing module at");
    println!("  URL:      http://{}/billmgr", gw.addr);
    println!("  Username: {login}");
    println!("  Password: {password}");
    println!("or try it with curl:");
    println!(
        "  curl 'http://{}/billmgr?func=whoami&out=json&authinfo={login}:{password}'",
        gw.addr
    );
    println!("  curl 'http://{}/billmgr?func=pricelist.export&itemtype=certificate&authinfo={login}:{password}'", gw.addr);
    println!(
        "  curl 'http://{}/billmgr?func=certificate&out=text&authinfo={login}:{password}'",
        gw.addr
    );
    println!();
    println!("The operator's console and admin API:");
    println!("  Console:  {admin_url}/console/   (log in with the token)");
    println!("  Token:    {token}");
    println!("  curl -H 'Authorization: Bearer {token}' {admin_url}/plans/101");
    println!("  curl -H 'Authorization: Bearer {token}' '{admin_url}/audit?kind=plan'");
    println!(
        "  RESELLGATE_ADMIN_TOKEN={token} resellgate audit list --config {} --admin {admin_url}",
        config_path.display()
    );
    println!("Press Ctrl-C to stop.");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A token for the demo's admin listener (32 random bytes, hex).
fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The scripted reseller session: the gateway reached as an upstream is, through
/// pingora's connector, on a runtime of its own.
struct Script {
    client: Upstream,
    rt: tokio::runtime::Runtime,
}

impl Script {
    fn new(gateway: SocketAddr) -> anyhow::Result<Script> {
        let timeout = Duration::from_secs(30);
        let settings = UpstreamSettings {
            tls: false,
            host: gateway.ip().to_string(),
            port: gateway.port(),
            path: "/billmgr".into(),
            ca_file: None,
            connect_timeout: timeout,
            read_timeout: timeout,
            idle_timeout: timeout,
            retries: 0,
            max_response_bytes: 64 * 1024 * 1024,
            large_response_bytes: 64 * 1024 * 1024,
            max_large_responses: 1,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(async { Upstream::new(settings) })?;
        Ok(Script { client, rt })
    }

    /// One call through the gateway; prints the request (credentials masked) and answers
    /// the parsed document.
    fn call(&self, title: &str, form: &str) -> anyhow::Result<Element> {
        let shown: Vec<String> = form
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("authinfo", v)) => {
                    format!("authinfo={}:***", v.split(':').next().unwrap_or(""))
                }
                Some(("auth" | "password", _)) => {
                    format!("{}=***", kv.split('=').next().unwrap_or(""))
                }
                _ => kv.to_string(),
            })
            .collect();
        println!("-- {title}");
        println!("   POST /billmgr {}", shown.join("&"));
        let answer = self
            .rt
            .block_on(self.client.call(Bytes::from(form.to_string()), false))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let doc = billmgr::parse(&answer.body, Format::Xml)
            .map_err(|e| anyhow::anyhow!("unreadable answer: {e}"))?;
        if let Some(err) = BmError::from_doc(&doc) {
            println!(
                "   <- error type={} object={}: {}",
                err.kind,
                err.object.as_deref().unwrap_or("-"),
                err.msg
            );
        }
        Ok(doc)
    }

    /// The plans and prices `acme` imports now.
    fn show_prices(&self, title: &str) -> anyhow::Result<()> {
        let (login, password) = DEMO_RESELLER;
        let doc = self.call(
            title,
            &format!("func=pricelist.export&itemtype=certificate&authinfo={login}:{password}"),
        )?;
        print_plans(&doc);
        Ok(())
    }

    /// One admin API call, printed.
    fn admin(
        &self,
        url: &str,
        token: &crate::secret::Secret,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<crate::admin::client::Answer> {
        println!("   {method} {url}{path} {body}");
        let a = self.rt.block_on(crate::admin::client::call(
            url,
            token,
            method,
            path,
            "application/json",
            body.as_bytes().to_vec(),
        ))?;
        Ok(a)
    }

    /// The operator changes plan 101's markup through the admin API while the gateway
    /// serves; the reseller's next price list has the new prices; the audit log has it.
    fn operator(&self, url: &str, token: &crate::secret::Secret) -> anyhow::Result<()> {
        println!();
        println!("-- the operator raises plan 101's markup to 30 % + 0.50 while the gateway serves (admin API)");
        let a = self.admin(
            url,
            token,
            "PUT",
            "/plans/101/markup",
            r#"{"percent": "30", "fixed": "0.50"}"#,
        )?;
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
        for c in v["changes"].as_array().into_iter().flatten() {
            println!("   <- {}", c.as_str().unwrap_or("?"));
        }
        if a.status != 200 {
            anyhow::bail!("the markup change was refused ({}): {}", a.status, a.text());
        }
        self.show_prices("the reseller's next import (pricelist.export) has the new prices")?;
        let a = self.admin(url, token, "GET", "/audit?kind=plan&key=101&limit=1", "")?;
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
        if let Some(e) = v["entries"].get(0) {
            println!(
                "   <- audit: {} token {} via {}: {}",
                e["at"].as_str().unwrap_or("?"),
                e["token"].as_str().unwrap_or("?"),
                e["via"].as_str().unwrap_or("?"),
                e["changes"][0].as_str().unwrap_or("?")
            );
        }
        Ok(())
    }

    fn run(&self) -> anyhow::Result<()> {
        let (login, password) = DEMO_RESELLER;
        let authinfo = format!("authinfo={login}:{password}");

        let doc = self.call(
            "who am I upstream? (authinfo is swapped for the reseller's upstream account)",
            &format!("func=whoami&{authinfo}"),
        )?;
        if let Some(user) = doc.find("user") {
            println!(
                "   <- upstream account {} balance {} {}",
                user.child_text("name").unwrap_or("?"),
                user.child_text("balance").unwrap_or("?"),
                user.child_text("currency").unwrap_or("")
            );
        }

        let doc = self.call(
            "log in (func=auth): the gateway answers a session of its own",
            &format!("func=auth&username={login}&password={password}"),
        )?;
        let sid = doc
            .find("auth")
            .and_then(|a| a.get_attr("id"))
            .context("no session id in the auth answer")?
            .to_string();
        println!("   <- session started (id hidden; valid 1 hour after the last use, for this address only)");
        let auth = format!("auth={sid}");

        let doc = self.call(
            "import tariffs (pricelist.export)",
            &format!("func=pricelist.export&itemtype=certificate&onlyavailable=on&{auth}"),
        )?;
        print_plans(&doc);

        let order = [
            "func=certificate.order.param",
            "sok=ok",
            "skipbasket=on",
            "remoteid=demo-1",
            "pricelist=101",
            "period=12",
            "CN=shop.example.com",
            "approver_email_1=admin%40shop.example.com",
            "adm_fname=Ivan",
            "adm_lname=Petrov",
            "adm_jtitle=CTO",
            "adm_email=ivan%40example.com",
            "adm_phone=%2B7+111+111-11-11",
            "like_admin=on",
        ]
        .join("&");
        let doc = self.call(
            "order a certificate (certificate.order.param, remoteid=demo-1)",
            &format!("{order}&{auth}"),
        )?;
        let id = doc
            .child_text("id")
            .context("the order answered no certificate id")?
            .to_string();
        println!("   <- ordered: certificate {id}");

        let doc = self.call(
            "the billing retries the same order (a timeout on its side): answered from the store, no second purchase",
            &format!("{order}&{auth}"),
        )?;
        println!(
            "   <- same certificate {} (one order upstream)",
            doc.child_text("id").unwrap_or("?")
        );

        let doc = self.call("list certificates", &format!("func=certificate&{auth}"))?;
        for e in doc.find_all("elem") {
            println!(
                "   <- {} {} plan {} expires {} status {}",
                e.child_text("id").unwrap_or("?"),
                e.child_text("CN").unwrap_or("?"),
                e.child_text("pricelist").unwrap_or("?"),
                e.child_text("expiredate").unwrap_or("?"),
                e.child_text("status_msg")
                    .or(e.child_text("item_status"))
                    .unwrap_or("?"),
            );
        }

        self.call(
            "reissue with the same data (certificate.reissue.step2, crt_type=oldrequest)",
            &format!("func=certificate.reissue.step2&elid={id}&crt_type=oldrequest&approver_method=auth_email&approver_email_1=admin%40shop.example.com&sok=ok&{auth}"),
        )?;
        println!("   <- reissue requested");

        let doc = self.call(
            "renew for 12 months (service.prolong)",
            &format!("func=service.prolong&elid={id}&period=12&sok=ok&{auth}"),
        )?;
        println!(
            "   <- new expiry date {}",
            doc.find("doc")
                .and_then(|d| d.child_text("newexpiredate"))
                .unwrap_or("?")
        );

        let doc = self.call(
            "the certificate's files (certificate.file)",
            &format!("func=certificate.file&elid={id}&{auth}"),
        )?;
        for e in doc.find_all("elem") {
            println!("   <- file {}", e.child_text("name").unwrap_or("?"));
        }
        self.call(
            "refresh its status from the CA (certificate.sync, a toolbar action)",
            &format!("func=certificate.sync&elid={id}&{auth}"),
        )?;
        println!("   <- synced; the call is in the service's history");

        self.call(
            "an admin-level function is refused by the gateway (certificate.retry)",
            &format!("func=certificate.retry&elid={id}&{auth}"),
        )?;

        self.call(
            "a function resellers may not call is refused (func=user.edit)",
            &format!("func=user.edit&{auth}"),
        )?;

        self.call(
            "delete the certificate (certificate.delete)",
            &format!("func=certificate.delete&elid={id}&sok=ok&{auth}"),
        )?;
        println!("   <- deleted");
        Ok(())
    }
}

/// One line per plan of a `pricelist.export` answer: id, name, each period's cost.
fn print_plans(doc: &Element) {
    for p in doc.find_all("pricelist") {
        let periods: Vec<String> = p
            .find("price")
            .map(|pr| {
                pr.find_all("period")
                    .map(|x| {
                        format!(
                            "{} mo: {}",
                            x.get_attr("length").unwrap_or("?"),
                            x.get_attr("cost").unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "   <- plan {} {:<22} {}",
            p.child_text("id").unwrap_or("?"),
            p.child_text("name").unwrap_or("?"),
            periods.join(", ")
        );
    }
}
