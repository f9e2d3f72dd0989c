//! Services, ownership of `elid`s, exactly-once orders, reconciliation, the service
//! history and the ledger, against the sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client;
use resellgate::billmgr::Format;
use resellgate::sandbox::{Fault, FaultPhase};
use resellgate::store::orders::OrderState;

use crate::harness::*;

fn reconcile(env: &TestEnv) -> resellgate::reconcile::ReconcileReport {
    let gw = env.gateway.reconciler.clone();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move { gw.reconcile_orders(Duration::ZERO).await })
        .unwrap()
}

/// Certificates per remoteid, counted on the sandbox's side.
fn upstream_by_remoteid(env: &TestEnv) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for c in env.sandbox.sandbox.certificates() {
        m.entry(c.remoteid.unwrap_or_default())
            .or_default()
            .push(c.id);
    }
    m
}

/// Point 2: an order is recorded; an identical retry (other order, other format, other
/// language) gets the stored answer without a second upstream order; other parameters
/// with the same remoteid are `exists`; no remoteid is `missed`.
#[test]
fn orders_are_exactly_once_per_remoteid() {
    let env = TestEnv::start();
    let first = env.acme(&order("l1", "shop.example.com"));
    let id = id_of(&first, Format::Xml);
    // the service is recorded with plan and period, durably, before the answer
    let svc = env.store.service(id).unwrap().expect("service recorded");
    assert_eq!(svc.reseller, "acme");
    assert_eq!(svc.remoteid.as_deref(), Some("l1"));
    assert_eq!(svc.plan.as_deref(), Some("3033"));
    assert_eq!(svc.period.as_deref(), Some("12"));

    // identical retry: parameters reordered, out/lang differ
    let form = order("l1", "shop.example.com");
    let mut pairs: Vec<&str> = form.split('&').collect();
    pairs.reverse();
    let retry = env.acme(&format!("{}&out=json&lang=ru", pairs.join("&")));
    assert_eq!(id_of(&retry, Format::Json), id);
    assert!(doc(&retry, Format::Json).find("ok").is_some());
    assert_eq!(env.sandbox.sandbox.order_count(), 1);

    // same remoteid, other parameters
    assert_error(
        &env.acme(&order("l1", "other.example.com")),
        Format::Xml,
        "exists",
        "remoteid",
    );
    // no remoteid
    let no_remoteid = order("", "x.example.com").replace("remoteid=&", "");
    env.sandbox.sandbox.clear_received();
    assert_error(&env.acme(&no_remoteid), Format::Xml, "missed", "remoteid");
    assert!(env.sandbox.sandbox.received().is_empty());
    // the same remoteid at another reseller is another key
    let g = env.globex(&order("l1", "shop.example.com"));
    assert_ne!(id_of(&g, Format::Xml), id);
    assert_eq!(env.sandbox.sandbox.order_count(), 2);
}

/// Point 2: concurrent duplicates produce exactly one upstream order; the others see
/// the claim (`pending`) or, once done, the stored answer.
#[test]
fn concurrent_duplicates_make_one_order() {
    let env = TestEnv::start();
    env.sandbox.sandbox.knobs().set_latency_ms(300);
    let form = order("dup", "dup.example.com");
    let answers: Vec<client::Response> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| env.acme(&form))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    env.sandbox.sandbox.knobs().set_latency_ms(0);
    let mut ok = 0;
    for r in &answers {
        let d = doc(r, Format::Xml);
        if d.find("ok").is_some() {
            ok += 1;
        } else {
            let e = error_of(r, Format::Xml);
            assert_eq!(
                (e.kind.as_str(), e.object.as_deref()),
                ("pending", Some("remoteid")),
                "{}",
                r.text()
            );
        }
    }
    assert!(ok >= 1);
    assert_eq!(env.sandbox.sandbox.order_count(), 1);
    let id = id_of(&env.acme(&form), Format::Xml);
    assert_eq!(upstream_by_remoteid(&env)["dup"], vec![id]);
}

/// Point 2: the upstream creates the order and the answer is lost → pending (first call
/// and retries); reconcile finds it → the retry gets the id; no second order.
#[test]
fn lost_answer_is_pending_then_reconciled_as_done() {
    let env = TestEnv::builder()
        .config("[upstream]\nread_timeout_ms = 500")
        .start();
    for (n, fault) in [Fault::Reset, Fault::Garbage, Fault::Hang, Fault::Empty]
        .into_iter()
        .enumerate()
    {
        let remoteid = format!("lost{n}");
        let form = order(&remoteid, &format!("lost{n}.example.com"));
        env.sandbox.sandbox.inject(fault, FaultPhase::AfterHandling);
        assert_error(&env.acme(&form), Format::Xml, "pending", "remoteid");
        let before = env.sandbox.sandbox.received().len();
        assert_error(&env.acme(&form), Format::Xml, "pending", "remoteid");
        assert_eq!(
            env.sandbox.sandbox.received().len(),
            before,
            "{fault:?}: a pending order was sent again"
        );
        let report = reconcile(&env);
        assert_eq!(report.found.len(), 1, "{fault:?}: {report:?}");
        let id = id_of(&env.acme(&form), Format::Xml);
        assert_eq!(upstream_by_remoteid(&env)[&remoteid], vec![id], "{fault:?}");
        assert_eq!(env.store.service(id).unwrap().unwrap().reseller, "acme");
    }
    assert_eq!(env.sandbox.sandbox.order_count(), 4);
}

/// Point 2: the request was sent but never processed → pending; reconcile does not find
/// it → failed; the retry orders once.
#[test]
fn unprocessed_order_is_reconciled_as_failed_then_retried() {
    let env = TestEnv::start();
    let form = order("nf", "nf.example.com");
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::BeforeHandling);
    assert_error(&env.acme(&form), Format::Xml, "pending", "remoteid");
    assert_eq!(env.sandbox.sandbox.order_count(), 0);
    let report = reconcile(&env);
    assert_eq!(report.failed, vec![("acme".to_string(), "nf".to_string())]);
    let id = id_of(&env.acme(&form), Format::Xml);
    assert_eq!(upstream_by_remoteid(&env)["nf"], vec![id]);
}

/// Point 2: an upstream error document releases the claim (the billing fixes and
/// resends with the same remoteid); a connect failure releases it too.
#[test]
fn refusals_and_connect_failures_release_the_claim() {
    let env = TestEnv::start();
    let bad = order("fix", "fix.example.com").replace("admin%40fix.example.com", "bad%40other.org");
    let resp = env.acme(&format!("{bad}&out=json"));
    assert_error(&resp, Format::Json, "value", "approver_email_1");
    let rec = env.store.order("acme", "fix").unwrap().unwrap();
    assert!(matches!(rec.state, OrderState::Failed { .. }), "{rec:?}");
    let id = id_of(&env.acme(&order("fix", "fix.example.com")), Format::Xml);
    assert_eq!(upstream_by_remoteid(&env)["fix"], vec![id]);

    let down = TestEnv::builder()
        .upstream_url(&format!("http://127.0.0.1:{}/billmgr", free_port()))
        .start();
    assert_error(
        &down.acme(&order("c1", "c1.example.com")),
        Format::Xml,
        "upstream",
        "upstream",
    );
    let rec = down.store.order("acme", "c1").unwrap().unwrap();
    assert!(matches!(rec.state, OrderState::Failed { .. }), "{rec:?}");
}

/// Point 1: every id of `elid` must be the caller's; unknown ids are looked up once in
/// the caller's own upstream account and recorded; foreign ids are refused unforwarded.
#[test]
fn elid_ownership() {
    let env = TestEnv::start();
    let a = id_of(&env.acme(&order("a1", "a1.example.com")), Format::Xml);
    let b = id_of(&env.acme(&order("a2", "a2.example.com")), Format::Xml);
    let g = id_of(&env.globex(&order("g1", "g1.example.com")), Format::Xml);

    env.sandbox.sandbox.clear_received();
    for elid in [
        format!("{g}"),
        format!("{a}, {g}"),
        format!("{a},{b}, {g}"),
        "abc".to_string(),
    ] {
        let resp = env.acme(&format!(
            "func=certificate.delete&elid={}&sok=ok",
            elid.replace(' ', "%20")
        ));
        assert_error(&resp, Format::Xml, "access", "elid");
    }
    assert!(
        env.sandbox.sandbox.received().is_empty(),
        "a foreign elid was forwarded"
    );
    assert_eq!(
        env.sandbox
            .sandbox
            .certificates()
            .iter()
            .filter(|c| c.deleted)
            .count(),
        0
    );
    // a list of own ids passes
    let d = doc(
        &env.acme(&format!("func=certificate.delete&elid={a},%20{b}&sok=ok")),
        Format::Xml,
    );
    assert!(d.find("ok").is_some());

    // a certificate made directly upstream (not through the gateway) is found and recorded
    let up = order_upstream(env.sandbox.addr, "direct", "direct.example.com");
    let direct = id_of(&up, Format::Xml);
    assert!(env.store.service(direct).unwrap().is_none());
    let d = doc(
        &env.acme(&format!("func=certificate.edit&elid={direct}")),
        Format::Xml,
    );
    assert!(d.child_text("CN").is_some(), "{d:?}");
    let svc = env.store.service(direct).unwrap().unwrap();
    assert_eq!(
        (svc.reseller.as_str(), svc.source.as_str()),
        ("acme", "lookup")
    );
    // ...but not for another reseller, and an id nobody has is refused
    assert_error(
        &env.globex(&format!("func=certificate.edit&elid={direct}")),
        Format::Xml,
        "access",
        "elid",
    );
    assert_error(
        &env.acme("func=certificate.edit&elid=999999"),
        Format::Xml,
        "access",
        "elid",
    );
}

/// Point 3: lifecycle calls pass the ownership check and land in the service's history;
/// upstream errors reach the reseller unchanged.
#[test]
fn lifecycle_is_recorded_in_the_history() {
    let env = TestEnv::start();
    let id = id_of(&env.acme(&order("life", "life.example.com")), Format::Xml);
    let calls = [
        format!("func=certificate.reissue.step2&elid={id}&crt_type=oldrequest&approver_email_1=admin%40life.example.com&sok=ok"),
        format!("func=certificate.edit&elid={id}&adm_phone=2&org_name=Life%20Ltd&approver_email=hostmaster%40life.example.com&sok=ok"),
        format!("func=service.prolong&elid={id}&period=12&sok=ok"),
    ];
    for c in &calls {
        assert!(doc(&env.acme(c), Format::Xml).find("ok").is_some(), "{c}");
    }
    // the edit reached the upstream: contacts, organisation, approver e-mail
    let cert = env
        .sandbox
        .sandbox
        .certificates()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap();
    assert_eq!(
        (
            cert.contacts.get("adm_phone").map(String::as_str),
            cert.contacts.get("org_name").map(String::as_str),
            cert.approver_email.as_str()
        ),
        (Some("2"), Some("Life Ltd"), "hostmaster@life.example.com")
    );
    // an upstream error passes through unchanged and is recorded as such
    let resp = env.acme(&format!(
        "func=certificate.edit&elid={id}&approver_email=bad%40other.org&sok=ok&out=json"
    ));
    assert_error(&resp, Format::Json, "value", "approver_email");
    assert!(doc(
        &env.acme(&format!("func=certificate.delete&elid={id}&sok=ok")),
        Format::Xml
    )
    .find("ok")
    .is_some());
    let svc = env.store.service(id).unwrap().unwrap();
    let outcomes: Vec<String> = svc.history.iter().map(|e| e.outcome.to_string()).collect();
    let h: Vec<(&str, &str)> = svc
        .history
        .iter()
        .zip(&outcomes)
        .map(|(e, outcome)| (e.func.as_str(), outcome.as_str()))
        .collect();
    assert_eq!(
        h,
        [
            ("certificate.order.param", "ok"),
            ("certificate.reissue.step2", "ok"),
            ("certificate.edit", "ok"),
            ("service.prolong", "ok"),
            ("certificate.edit", "error:value"),
            ("certificate.delete", "ok"),
        ]
    );
    assert!(svc.deleted);
    // another reseller cannot touch it
    assert_error(
        &env.globex(&format!("func=service.prolong&elid={id}&period=12&sok=ok")),
        Format::Xml,
        "access",
        "elid",
    );
}

/// Point 3: reissue with a new CSR and with a new domain list goes through, and every
/// upstream refusal (a bad CSR, more domains than paid for, a bad approver, an unknown
/// reissue type) reaches the reseller as the upstream said it — same type, object and
/// message — in the format the reseller asked for.
#[test]
fn reissue_variants_and_upstream_refusals_pass_through() {
    let env = TestEnv::start();
    let cn = "re.example.com";
    // one extra domain paid for (add-on 201 = upstream 3034)
    let id = id_of(
        &env.acme(&format!("{}&addon_201=1", order("re", cn))),
        Format::Xml,
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec![cn.to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let reissue =
        format!("func=certificate.reissue.step2&elid={id}&sok=ok&approver_email_1=admin%40{cn}");
    for ok in [
        format!("{reissue}&crt_type=manual&csr={}", enc(&csr)),
        format!("{reissue}&crt_type=altname&altname=www.{cn}"),
    ] {
        assert!(
            doc(&env.acme(&ok), Format::Xml).find("ok").is_some(),
            "{ok}"
        );
    }
    let cert = env
        .sandbox
        .sandbox
        .certificates()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap();
    assert_eq!(cert.csr.as_deref(), Some(csr.as_str()));
    assert_eq!(cert.altnames, vec![format!("www.{cn}")]);

    let refused = [
        format!("{reissue}&crt_type=manual&csr=not-a-csr"),
        format!("{reissue}&crt_type=altname&altname=a.{cn}%20b.{cn}"),
        format!("{reissue}&crt_type=sideways"),
        format!("func=certificate.reissue.step2&elid={id}&sok=ok&crt_type=oldrequest&approver_email_1=root%40{cn}"),
        format!("func=certificate.edit&elid={id}&sok=ok&tech_email=not-an-email"),
    ];
    for call in &refused {
        for format in [Format::Xml, Format::Json] {
            let out = format!("{call}&out={}", format.as_str());
            let via_gateway = error_of(&env.acme(&out), format);
            let direct = client::post_form(
                env.sandbox.addr,
                "/billmgr",
                &format!("{out}&authinfo={}:{}", ACME_UP.0, ACME_UP.1),
            )
            .unwrap();
            let direct = error_of(&direct, format);
            assert_eq!(
                (via_gateway.kind, &via_gateway.object, &via_gateway.msg),
                (direct.kind, &direct.object, &direct.msg),
                "{out}"
            );
        }
    }
    // nothing refused changed the certificate
    let after = env
        .sandbox
        .sandbox
        .certificates()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap();
    assert_eq!(after, cert);
}

/// Point 4: orders and renewals are in the ledger with the upstream cost and a price.
#[test]
fn ledger_records_orders_and_renewals() {
    let env = TestEnv::start();
    let id = id_of(&env.acme(&order("led", "led.example.com")), Format::Xml);
    assert!(doc(
        &env.acme(&format!("func=service.prolong&elid={id}&period=24&sok=ok")),
        Format::Xml
    )
    .find("ok")
    .is_some());
    let entries = env.store.ledger(Some("acme")).unwrap();
    let texts: Vec<_> = entries
        .iter()
        .map(|e| (e.upstream_cost_text(), e.price_text()))
        .collect();
    #[allow(clippy::type_complexity)]
    let rows: Vec<(&str, u64, Option<&str>, Option<&str>, Option<&str>)> = entries
        .iter()
        .zip(&texts)
        .map(|(e, (cost, price))| {
            (
                e.kind.as_str(),
                e.upstream_id,
                e.period.as_deref(),
                cost.as_deref(),
                price.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("order", id, Some("12"), Some("9.0000"), Some("11.30")),
            ("renewal", id, Some("24"), Some("16.0000"), Some("19.70")),
        ]
    );
    assert!(env.store.ledger(Some("globex")).unwrap().is_empty());
    let month = resellgate::store::ledger::month_of(entries[0].at_ms);
    let csv = resellgate::store::ledger::to_csv(&entries, &month);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time,reseller,kind,service_id,remoteid,plan,period,upstream_cost,price"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].contains(&format!(",acme,order,{id},led,3033,12,9.0000,11.30")),
        "{csv}"
    );
    assert_eq!(
        resellgate::store::ledger::to_csv(&entries, "1999-01")
            .lines()
            .count(),
        1
    );
}

/// The real binary as a child process over one store; it reconciles every second, judging
/// orders claimed at least 300 ms ago.
struct Binary {
    config: std::path::PathBuf,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

/// A running `resellgate serve`, and the crash points it reported reaching.
struct Serving {
    child: std::process::Child,
    crashpoints: std::sync::mpsc::Receiver<String>,
}

impl Serving {
    /// Wait until the armed crash point was reached.
    fn crashpoint(&self, name: &str) {
        let line = self
            .crashpoints
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("crash point {name} not reached: {e}"));
        assert!(line.contains(name), "{line}");
    }

    /// SIGKILL.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Binary {
    fn new(sandbox: &resellgate::sandbox::SandboxHandle) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://{}/billmgr\"\nconnect_timeout_ms = 500\nread_timeout_ms = 5000\n[store]\npath = \"store\"\n[orders]\nreconcile_interval_s = 1\nsettle_ms = 300\n", sandbox.addr),
        )
        .unwrap();
        let mappings = write_mappings(dir.path());
        let out = Self::cli_in(
            &config,
            &["mappings", "apply"],
            &[mappings.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Binary {
            config,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            _dir: dir,
        }
    }

    fn cli_in(config: &std::path::Path, cmd: &[&str], rest: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_resellgate"))
            .args(cmd)
            .arg("--config")
            .arg(config)
            .args(rest)
            .output()
            .unwrap()
    }

    fn cli(&self, cmd: &[&str], rest: &[&str]) -> String {
        let out = Self::cli_in(&self.config, cmd, rest);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `serve`, with `RESELLGATE_CRASHPOINT` set to `crashpoint` when given.
    fn serve(&self, crashpoint: Option<&str>) -> Serving {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_resellgate"));
        cmd.args(["serve", "--config"])
            .arg(&self.config)
            .env_remove(resellgate::proxy::crashpoint::ENV)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(c) = crashpoint {
            cmd.env(resellgate::proxy::crashpoint::ENV, c);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, crashpoints) = std::sync::mpsc::channel();
        // drains stderr (so the child never blocks on it) and reports crash points
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("crashpoint") {
                    let _ = tx.send(line);
                }
            }
        });
        resellgate::app::wait_until_accepting(self.addr, Duration::from_secs(20)).unwrap();
        Serving { child, crashpoints }
    }

    fn order(&self, remoteid: &str) -> Option<Result<u64, String>> {
        let form = format!(
            "{}&authinfo={}:{}",
            order(remoteid, &format!("{remoteid}.example.com")),
            ACME.0,
            ACME.1
        );
        let resp = client::post_form(self.addr, "/billmgr", &form).ok()?;
        let d = resellgate::billmgr::parse(&resp.body, Format::Xml).ok()?;
        match d.child_text("id") {
            Some(id) => Some(Ok(id.parse().unwrap())),
            None => Some(Err(resp.text().to_string())),
        }
    }

    /// What a billing does after a crash: retry until the order has its id. `pending`
    /// answers are retried (background reconciliation resolves them within seconds);
    /// anything else is a failure.
    fn order_until_done(&self, remoteid: &str) -> u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match self.order(remoteid) {
                Some(Ok(id)) => return id,
                Some(Err(text)) if text.contains("pending") => {}
                other => panic!("{remoteid}: retry failed: {other:?}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{remoteid}: still pending"
            );
            std::thread::sleep(Duration::from_millis(100)); // the billing's retry back-off
        }
    }
}

/// Where a crash round kills the gateway.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// At a crash point, reached by the 3rd order of the burst (and every later one).
    At(&'static str),
    /// While the upstream is answering: it has made the certificate, the answer never comes.
    UpstreamAnswering,
}

/// Point 5: SIGKILL the real gateway during bursts of 8 concurrent orders at each crash
/// point (before forwarding, while the upstream is answering, after it answered, right
/// after answering the reseller); restart it and retry every order as a billing would,
/// while its background reconciliation resolves what the crash left pending. Counted on
/// the sandbox: one certificate per remoteid, and every acknowledged id is that one.
#[test]
fn crashes_lose_no_acknowledged_order_and_duplicate_none() {
    let sandbox =
        resellgate::sandbox::spawn("127.0.0.1:0", resellgate::sandbox::Sandbox::demo()).unwrap();
    let bin = Binary::new(&sandbox);
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut all = Vec::new();
    let rounds = [
        Kill::At("order-claimed"),
        Kill::UpstreamAnswering,
        Kill::At("upstream-answered"),
        Kill::At("reseller-answered"),
    ];
    for (round, kill) in rounds.into_iter().enumerate() {
        let before = sandbox.sandbox.order_count();
        let spec = match kill {
            Kill::At(point) => Some(format!("{point}:3")),
            Kill::UpstreamAnswering => None,
        };
        let serving = bin.serve(spec.as_deref());
        if let Kill::UpstreamAnswering = kill {
            sandbox
                .sandbox
                .inject(Fault::Hang, FaultPhase::AfterHandling);
        }
        let ids: Vec<String> = (0..8).map(|i| format!("c{round}x{i}")).collect();
        all.extend(ids.iter().cloned());
        let (answers, at_kill) = std::thread::scope(|s| {
            let hs: Vec<_> = ids
                .iter()
                .map(|r| {
                    let bin = &bin;
                    s.spawn(move || (r.clone(), bin.order(r)))
                })
                .collect();
            match kill {
                Kill::At(point) => serving.crashpoint(point),
                Kill::UpstreamAnswering => {
                    let deadline = std::time::Instant::now() + Duration::from_secs(20);
                    while sandbox.sandbox.knobs().pending_faults() > 0 {
                        assert!(std::time::Instant::now() < deadline, "the hang never came");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            let at_kill = sandbox.sandbox.order_count() - before;
            serving.kill();
            let answers: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            (answers, at_kill)
        });
        let acked_now: BTreeMap<String, u64> = answers
            .into_iter()
            .filter_map(|(r, a)| Some((r, a?.ok()?)))
            .collect();
        eprintln!(
            "round {round} ({kill:?}): {at_kill} upstream orders at the kill, {} acknowledged",
            acked_now.len()
        );
        // the kill landed where it was meant to
        match kill {
            Kill::At("order-claimed") => assert!(at_kill <= 2, "{at_kill}"),
            Kill::At("upstream-answered") => {
                assert!(at_kill >= 3, "{at_kill}");
                assert!(acked_now.len() <= 2, "{acked_now:?}");
            }
            Kill::At(_) => assert!(acked_now.len() >= 3, "{acked_now:?}"),
            Kill::UpstreamAnswering => assert!(at_kill >= 1, "{at_kill}"),
        }
        acked.extend(acked_now);

        // restart; the billing retries every order of the burst
        let serving = bin.serve(None);
        for r in &ids {
            let id = bin.order_until_done(r);
            if let Some(prev) = acked.get(r) {
                assert_eq!(*prev, id, "{r}: acknowledged id changed");
            }
            acked.insert(r.clone(), id);
        }
        serving.kill();
    }
    let mut by_remoteid: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for c in sandbox.sandbox.certificates() {
        by_remoteid
            .entry(c.remoteid.unwrap_or_default())
            .or_default()
            .push(c.id);
    }
    assert_eq!(by_remoteid.len(), all.len(), "{by_remoteid:?}");
    for r in &all {
        assert_eq!(
            by_remoteid[r],
            vec![acked[r]],
            "{r}: duplicates or lost order"
        );
    }

    // the operator commands over the same store
    let month = resellgate::store::ledger::month_of(resellgate::reconcile::record::now_ms());
    let csv = bin.cli(
        &["ledger", "export"],
        &["--reseller", "acme", "--month", &month],
    );
    assert_eq!(
        csv.lines().count(),
        all.len() + 1,
        "{csv}\n{}",
        bin.cli(&["orders", "list"], &[])
    );
    let up = order_upstream(sandbox.addr, "direct", "direct.example.com");
    assert!(up.text().contains("<id>"));
    let out = bin.cli(&["services", "sync"], &["--reseller", "acme"]);
    assert!(
        out.contains(&format!("{} services recorded for acme", all.len() + 1)),
        "{out}"
    );
    let out = bin.cli(&["services", "list"], &["--reseller", "acme"]);
    assert!(out.contains("direct\t3033\t12\tsync"), "{out}");
    let out = bin.cli(&["orders", "list"], &[]);
    assert_eq!(
        out.lines().filter(|l| l.contains("\tdone\t")).count(),
        all.len(),
        "{out}"
    );
}
