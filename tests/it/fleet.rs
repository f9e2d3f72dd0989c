//! Fleet mode: several gateways on one PostgreSQL database (`pg.rs` makes a fresh one per
//! test). Pinned here, counted on the sandbox: concurrent identical orders through two
//! gateways make one upstream order each; SIGKILL of one gateway mid-burst loses and
//! duplicates nothing once the other reconciles and the billing retries; and with the
//! database unreachable every call still gets an error document within the timeout, no
//! order is acknowledged, and service resumes by itself when it is back.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client;
use crate::harness::{free_port, order, write_mappings, TestEnv, ACME};
use crate::pg::{TestDb, PASSWORD_ENV};
use resellgate::billmgr::Format;

/// One gateway of the fleet: a config of its own (its port), the fleet's database.
struct Member {
    config: PathBuf,
    addr: SocketAddr,
}

/// A running `resellgate serve` and the crash points it reported reaching.
struct Serving {
    child: std::process::Child,
    crashpoints: std::sync::mpsc::Receiver<String>,
}

impl Serving {
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

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Member {
    fn new(dir: &Path, name: &str, db: &TestDb, sandbox: SocketAddr) -> Member {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://{sandbox}/billmgr\"\nconnect_timeout_ms = 500\nread_timeout_ms = 5000\n{}[orders]\nreconcile_interval_s = 1\nsettle_ms = 300\n",
                db.store_toml()
            ),
        )
        .unwrap();
        Member {
            config,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_resellgate"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    fn serve(&self, crashpoint: Option<&str>) -> Serving {
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

    /// The order's id, or the error document's text; `None` when no answer came.
    fn order(&self, remoteid: &str) -> Option<Result<u64, String>> {
        order_at(self.addr, remoteid)
    }

    /// Retry as a billing does until the order has its id (`pending` is retried).
    fn order_until_done(&self, remoteid: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.order(remoteid) {
                Some(Ok(id)) => return id,
                Some(Err(text)) if text.contains("pending") => {}
                other => panic!("{remoteid}: retry failed: {other:?}"),
            }
            assert!(Instant::now() < deadline, "{remoteid}: still pending");
            std::thread::sleep(Duration::from_millis(100)); // the billing's back-off
        }
    }
}

fn order_at(addr: SocketAddr, remoteid: &str) -> Option<Result<u64, String>> {
    let form = format!(
        "{}&authinfo={}:{}",
        order(remoteid, &format!("{remoteid}.example.com")),
        ACME.0,
        ACME.1
    );
    let resp = client::post_form(addr, "/billmgr", &form).ok()?;
    let d = resellgate::billmgr::parse(&resp.body, Format::Xml).ok()?;
    match d.child_text("id") {
        Some(id) => Some(Ok(id.parse().unwrap())),
        None => Some(Err(resp.text().to_string())),
    }
}

/// Certificates on the sandbox by remoteid.
fn upstream_orders(sandbox: &resellgate::sandbox::SandboxHandle) -> BTreeMap<String, Vec<u64>> {
    let mut by_remoteid: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for c in sandbox.sandbox.certificates() {
        by_remoteid
            .entry(c.remoteid.unwrap_or_default())
            .or_default()
            .push(c.id);
    }
    by_remoteid
}

/// Two gateways on one database. Round 1: every order of a burst of 8 is sent at once
/// through both (16 concurrent calls). Round 2: the same (half through A only), and gateway
/// A is SIGKILLed after the upstream answered its 2nd order (before A recorded it), other
/// orders in flight on both; B reconciles what A
/// left pending and the billing retries every order through B, then through A restarted.
/// Counted on the sandbox: one certificate per remoteid, and every id a gateway
/// acknowledged is that one.
#[test]
fn two_gateways_one_database_no_duplicate_no_lost_order_across_a_kill() {
    let Some(db) = TestDb::create() else { return };
    let sandbox =
        resellgate::sandbox::spawn("127.0.0.1:0", resellgate::sandbox::Sandbox::demo()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = Member::new(dir.path(), "a", &db, sandbox.addr);
    let b = Member::new(dir.path(), "b", &db, sandbox.addr);
    let mappings = write_mappings(dir.path());
    let out = a.cli(&["mappings", "apply", mappings.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = a.cli(&["store", "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut all = Vec::new();
    for round in 0..2 {
        let crash = round == 1;
        let mut serving_a = Some(a.serve(crash.then_some("upstream-answered:2")));
        let serving_b = b.serve(None);
        let ids: Vec<String> = (0..8).map(|i| format!("f{round}x{i}")).collect();
        all.extend(ids.iter().cloned());
        let answers = std::thread::scope(|s| {
            // In the crash round the first half goes through A only, so A surely forwards
            // (at least) the two orders the crash point counts.
            let hs: Vec<_> = ids
                .iter()
                .enumerate()
                .flat_map(|(i, r)| {
                    let both = !crash || i >= 4;
                    [Some((r, &a)), both.then_some((r, &b))]
                })
                .flatten()
                .map(|(r, m)| s.spawn(move || (r.clone(), m.order(r))))
                .collect();
            if crash {
                let killed = serving_a.take().unwrap();
                killed.crashpoint("upstream-answered");
                let at_kill = sandbox.sandbox.order_count();
                killed.kill();
                eprintln!("gateway A killed with {at_kill} upstream orders made");
            }
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        for (r, answer) in answers {
            if let Some(Ok(id)) = answer {
                if let Some(prev) = acked.insert(r.clone(), id) {
                    assert_eq!(prev, id, "{r}: two gateways acknowledged different ids");
                }
            }
        }
        if !crash {
            assert_eq!(
                acked.len(),
                8,
                "round 1: every order answered by one of them"
            );
        }
        // The billing retries every order through B (A may be dead), then through A.
        for r in &ids {
            let id = b.order_until_done(r);
            if let Some(prev) = acked.get(r) {
                assert_eq!(*prev, id, "{r}: acknowledged id changed");
            }
            acked.insert(r.clone(), id);
        }
        let serving_a = serving_a.unwrap_or_else(|| a.serve(None));
        for r in &ids {
            assert_eq!(a.order_until_done(r), acked[r], "{r}: A replays another id");
        }
        serving_a.kill();
        serving_b.kill();
    }
    let by_remoteid = upstream_orders(&sandbox);
    assert_eq!(by_remoteid.len(), all.len(), "{by_remoteid:?}");
    for r in &all {
        assert_eq!(
            by_remoteid[r],
            vec![acked[r]],
            "{r}: duplicate or lost order"
        );
    }
    // The ledger has each order once, whichever gateway recorded it.
    let month = resellgate::store::ledger::month_of(resellgate::reconcile::record::now_ms());
    let out = b.cli(&["ledger", "export", "--reseller", "acme", "--month", &month]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), all.len() + 1, "{csv}");
}

/// A TCP relay to PostgreSQL that the test can cut (closing every relayed connection and
/// refusing new ones) and restore.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bytes are held, not forwarded: the database hangs.
    stalled: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stalled = Arc::new(AtomicBool::new(false));
        let (up2, conns2, stalled2) = (Arc::clone(&up), Arc::clone(&conns), Arc::clone(&stalled));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut c = conns2.lock().unwrap();
                    c.push(client.try_clone().unwrap());
                    c.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let stalled = Arc::clone(&stalled2);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            while stalled.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            addr,
            up,
            stalled,
            conns,
        }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// PostgreSQL unreachable (its connections cut, new ones refused), then hanging (bytes
/// held): an order gets an error document within `[store] timeout_ms` plus the request's
/// own time and is not acknowledged, nor sent upstream; when the database is back the
/// same order goes through with no restart.
#[test]
fn database_down_error_documents_in_time_then_service_resumes() {
    let Some(db) = TestDb::create() else { return };
    let target: SocketAddr = db
        .url
        .trim_start_matches("postgres://")
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hostport, _)| hostport.parse().unwrap())
        .unwrap();
    let relay = Relay::start(target);
    let url = db.url.replace(&target.to_string(), &relay.addr.to_string());
    let env = TestEnv::builder()
        .config(&format!(
            "[store]\nurl = \"{url}\"\npassword_env = \"{PASSWORD_ENV}\"\ntimeout_ms = 1000\n"
        ))
        .start();
    let ok = order_at(env.addr(), "before").unwrap().unwrap();
    assert!(ok > 0);

    relay.cut();
    let orders_before = env.sandbox.sandbox.order_count();
    for i in 0..3 {
        let start = Instant::now();
        let answer = order_at(env.addr(), &format!("down{i}"));
        let took = start.elapsed();
        let text = match answer {
            Some(Err(text)) => text,
            other => panic!("down{i}: {other:?}"),
        };
        assert!(
            text.contains("upstream") && text.contains("store"),
            "{text}"
        );
        assert!(
            took < Duration::from_secs(3),
            "down{i}: answered after {took:?}"
        );
    }
    assert_eq!(
        env.sandbox.sandbox.order_count(),
        orders_before,
        "sent without a claim"
    );

    // Hanging instead of refusing: answered within the timeout (1 s) all the same.
    relay.restore();
    relay.stall(true);
    for i in 0..2 {
        let start = Instant::now();
        let answer = order_at(env.addr(), &format!("hang{i}"));
        let took = start.elapsed();
        match answer {
            Some(Err(text)) => assert!(text.contains("store"), "{text}"),
            other => panic!("hang{i}: {other:?}"),
        }
        assert!(
            took < Duration::from_millis(2500),
            "hang{i}: answered after {took:?}"
        );
    }
    assert_eq!(
        env.sandbox.sandbox.order_count(),
        orders_before,
        "sent without a claim"
    );
    relay.stall(false);

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        match order_at(env.addr(), "down0") {
            Some(Ok(id)) => break id,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "service did not resume: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(upstream_orders(&env.sandbox)["down0"], vec![id]);
}

/// Two gateways (in-process) on one database, as behind a load balancer: a session opened
/// by `func=auth` on one is accepted by the other, and failed logins count on both — the
/// budget spent half on each refuses the next attempt everywhere.
#[test]
fn sessions_and_login_throttling_are_shared_by_the_fleet() {
    let Some(db) = TestDb::create() else { return };
    let a = TestEnv::builder()
        .config(&db.store_toml())
        .config("[auth]\nmax_failures = 4\n")
        .start();
    let b = TestEnv::builder()
        .config(&db.store_toml())
        .config("[auth]\nmax_failures = 4\n")
        .start();
    let resp = a.post(&format!(
        "func=auth&username={}&password={}",
        ACME.0, ACME.1
    ));
    let d = crate::harness::doc(&resp, Format::Xml);
    let sid = d
        .find("auth")
        .and_then(|e| e.get_attr("id"))
        .unwrap()
        .to_string();
    for env in [&b, &a, &b] {
        let resp = env.post(&format!("func=whoami&auth={sid}"));
        assert!(
            crate::harness::doc(&resp, Format::Xml)
                .find("user")
                .is_some(),
            "{}",
            resp.text()
        );
    }
    // The id is stored hashed, never as it is.
    let stored = a
        .store
        .backend()
        .scan(resellgate::store::sessions::SESSIONS)
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].0.windows(sid.len()).any(|w| w == sid.as_bytes()));
    let resp = b.post("func=whoami&auth=00000000000000000000000000000000");
    crate::harness::assert_error(&resp, Format::Xml, "auth", "auth");

    // 4 failures, alternating gateways, then the right password is refused on both.
    for i in 0..4 {
        let env = if i % 2 == 0 { &a } else { &b };
        let resp = env.post(&format!("func=whoami&authinfo={}:wrong{i}", ACME.0));
        crate::harness::assert_error(&resp, Format::Xml, "auth", "authinfo");
    }
    for env in [&a, &b] {
        let resp = env.post(&format!("func=whoami&authinfo={}:{}", ACME.0, ACME.1));
        let text = resp.text().to_string();
        assert!(
            text.contains("auth") && !text.contains("<user"),
            "not throttled: {text}"
        );
    }
    // Another login is not throttled.
    let resp = b.post(&format!(
        "func=whoami&authinfo={}:{}",
        crate::harness::GLOBEX.0,
        crate::harness::GLOBEX.1
    ));
    assert!(
        crate::harness::doc(&resp, Format::Xml)
            .find("user")
            .is_some(),
        "{}",
        resp.text()
    );
}

/// The PostgreSQL client logs every statement's parameters (stored records, password
/// hashes among them) at `debug`: a gateway on PostgreSQL run at `debug` writes none of
/// that, and no secret of the run.
#[test]
fn a_fleet_gateway_at_debug_logs_no_statement_and_no_secret() {
    let Some(db) = TestDb::create() else { return };
    let sandbox =
        resellgate::sandbox::spawn("127.0.0.1:0", resellgate::sandbox::Sandbox::demo()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = Member::new(dir.path(), "a", &db, sandbox.addr);
    let mappings = write_mappings(dir.path());
    let out = m.cli(&["mappings", "apply", mappings.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log_path = dir.path().join("gateway.log");
    // In a `Serving`, so that a failed assertion does not leave the gateway running.
    let serving = Serving {
        child: std::process::Command::new(env!("CARGO_BIN_EXE_resellgate"))
            .args(["serve", "--config"])
            .arg(&m.config)
            .env("RESELLGATE_LOG", "debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
        crashpoints: std::sync::mpsc::channel().1,
    };
    resellgate::app::wait_until_accepting(m.addr, Duration::from_secs(20)).unwrap();
    let resp = client::post_form(
        m.addr,
        "/billmgr",
        &format!("func=auth&username={}&password={}", ACME.0, ACME.1),
    )
    .unwrap();
    let sid = resellgate::billmgr::parse(&resp.body, Format::Xml)
        .unwrap()
        .find("auth")
        .and_then(|e| e.get_attr("id"))
        .unwrap()
        .to_string();
    client::post_form(m.addr, "/billmgr", &format!("func=whoami&auth={sid}")).unwrap();
    client::post_form(m.addr, "/billmgr", "func=whoami&authinfo=acme:wrong-pw-991").unwrap();
    assert!(m.order("dbg1").unwrap().is_ok());
    serving.kill();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("access"), "{log}");
    for needle in ["executing statement", "preparing query", "with parameters"] {
        assert!(!log.contains(needle), "{needle}:\n{log}");
    }
    let secrets = [
        ACME.1,
        "acme-upstream-pw",
        "wrong-pw-991",
        sid.as_str(),
        &std::env::var(PASSWORD_ENV).unwrap(),
    ];
    for s in secrets {
        assert!(!log.contains(s), "a secret appears in the logs:\n{log}");
    }
}
