//! What a reseller's call costs upstream and waits for: an unknown `elid` refused again
//! is answered from memory (one upstream lookup, not one per call) without ever refusing
//! a certificate the gateway recorded; a new order's ledger cost is read after the
//! reseller was answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::client;
use resellgate::billmgr::{Format, Limits, Params};
use resellgate::sandbox::{Fault, FaultPhase};

use crate::harness::*;

/// How many certificate lists (`func=certificate`) the sandbox received.
fn list_calls(env: &TestEnv) -> usize {
    env.sandbox
        .sandbox
        .received()
        .iter()
        .filter(|p| p.func() == Some("certificate"))
        .count()
}

/// `certificate.edit` on `id` as acme: `Ok` with the CN the upstream shows, or the error.
fn edit(env: &TestEnv, id: u64) -> Result<String, String> {
    let resp = env.acme(&format!("func=certificate.edit&elid={id}"));
    let d = doc(&resp, Format::Xml);
    match d.child_text("CN") {
        Some(cn) => Ok(cn.to_string()),
        None => Err(resp.text()),
    }
}

fn assert_refused(env: &TestEnv, id: u64) {
    let resp = env.acme(&format!("func=certificate.edit&elid={id}"));
    assert_error(&resp, Format::Xml, "access", "elid");
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// An id nobody has, sent again and again, costs one upstream lookup per reseller.
#[test]
fn an_unknown_elid_costs_one_upstream_lookup() {
    let env = TestEnv::start();
    env.sandbox.sandbox.clear_received();
    for _ in 0..5 {
        assert_refused(&env, 999_999);
    }
    assert_eq!(list_calls(&env), 1, "every refusal looked the id up again");
    // in a list with an own id, and in a list of two unknown ids
    let own = id_of(&env.acme(&order("own", "own.example.com")), Format::Xml);
    env.sandbox.sandbox.clear_received();
    for elid in [format!("{own},999999"), "999998,999999".to_string()] {
        let resp = env.acme(&format!("func=certificate.edit&elid={elid}"));
        assert_error(&resp, Format::Xml, "access", "elid");
    }
    assert_eq!(list_calls(&env), 0, "{:?}", env.sandbox.sandbox.received());
    // the refusal is acme's: globex pays its own lookup, once
    for _ in 0..3 {
        let resp = env.globex("func=certificate.edit&elid=999999");
        assert_error(&resp, Format::Xml, "access", "elid");
    }
    assert_eq!(list_calls(&env), 1);
    // nothing of this reached the upstream as an edit
    assert!(env
        .sandbox
        .sandbox
        .received()
        .iter()
        .all(|p| p.func() == Some("certificate")));
}

/// An id refused (and remembered) before the gateway recorded it passes as soon as it is
/// recorded: by an order, by reconciliation of a pending order, by `services sync`. An id
/// created directly upstream stays refused until recorded (or the refusal expires).
#[test]
fn a_recorded_certificate_is_never_refused_from_memory() {
    let env = TestEnv::builder()
        .config("[upstream]\nread_timeout_ms = 30000")
        .start();
    // The sandbox numbers certificates from 5001.
    // 1. an order
    assert_refused(&env, 5001);
    let id = id_of(&env.acme(&order("o1", "o1.example.com")), Format::Xml);
    assert_eq!(id, 5001);
    assert_eq!(edit(&env, 5001).as_deref(), Ok("o1.example.com"));

    // 2. a pending order resolved by reconciliation
    assert_refused(&env, 5002);
    env.sandbox
        .sandbox
        .inject(Fault::Reset, FaultPhase::AfterHandling);
    assert_error(
        &env.acme(&order("o2", "o2.example.com")),
        Format::Xml,
        "pending",
        "remoteid",
    );
    assert!(env
        .sandbox
        .sandbox
        .certificates()
        .iter()
        .any(|c| c.id == 5002));
    env.sandbox.sandbox.clear_received();
    assert_refused(&env, 5002); // not recorded yet: still the remembered refusal
    assert_eq!(list_calls(&env), 0);
    let gw = env.gateway.reconciler.clone();
    let report = block_on(async move { gw.reconcile_orders(Duration::ZERO).await }).unwrap();
    assert_eq!(
        report.found,
        vec![("acme".to_string(), "o2".to_string(), 5002)]
    );
    assert_eq!(edit(&env, 5002).as_deref(), Ok("o2.example.com"));

    // 3. a certificate made directly upstream, recorded by services sync
    assert_refused(&env, 5003);
    let up = order_upstream(env.sandbox.addr, "o3", "o3.example.com");
    assert_eq!(id_of(&up, Format::Xml), 5003);
    assert_refused(&env, 5003);
    let gw = env.gateway.reconciler.clone();
    let reseller = env.store.reseller("acme").unwrap();
    let (recorded, refused) = block_on(async move { gw.sync_services(&reseller).await }).unwrap();
    assert_eq!((recorded, refused), (3, vec![]));
    assert_eq!(edit(&env, 5003).as_deref(), Ok("o3.example.com"));
}

/// An upstream in front of the sandbox that holds every call `hold` picks (e.g. the
/// certificate list, `func=certificate`) until opened. Other calls pass at once.
struct Gate {
    addr: SocketAddr,
    /// (open, lists held so far)
    state: Arc<(Mutex<(bool, usize)>, Condvar)>,
}

impl Gate {
    fn start(upstream: SocketAddr, hold: fn(&Params) -> bool) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new((Mutex::new((false, 0)), Condvar::new()));
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, upstream, hold, &s);
                });
            }
        });
        Gate { addr, state }
    }

    /// Wait until `n` lists are held; `false` after `within`.
    fn wait_held(&self, n: usize, within: Duration) -> bool {
        let (m, cv) = &*self.state;
        let deadline = Instant::now() + within;
        let mut st = m.lock().unwrap();
        while st.1 < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = cv.wait_timeout(st, left).unwrap().0;
        }
        true
    }

    fn open(&self) {
        let (m, cv) = &*self.state;
        m.lock().unwrap().0 = true;
        cv.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

/// Serve one keep-alive connection: read each request, hold what `hold` picks while the
/// gate is closed, forward to `upstream`, answer with a `Content-Length`.
fn serve(
    stream: TcpStream,
    upstream: SocketAddr,
    hold: fn(&Params) -> bool,
    state: &(Mutex<(bool, usize)>, Condvar),
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("POST").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let query = target.split_once('?').map(|(_, q)| q);
        if Params::parse(query, &body, &Limits::default()).is_ok_and(|p| hold(&p)) {
            let (m, cv) = state;
            let mut st = m.lock().unwrap();
            st.1 += 1;
            cv.notify_all();
            while !st.0 {
                st = cv.wait(st).unwrap();
            }
        }
        let resp = client::blocking(
            upstream,
            &method,
            &target,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &body,
            Duration::from_secs(30),
        )?;
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            resp.status,
            resp.body.len()
        );
        if let Some(ct) = resp.header("content-type") {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(&resp.body)?;
        out.flush()?;
    }
}

/// The reseller's answer to an order does not wait for the upstream list that reads the
/// order's cost: with that list held, the answer arrives and the ledger entry is already
/// there without a cost; once the list is let through, the cost and price are filled in.
#[test]
fn an_order_is_answered_before_its_ledger_cost_is_read() {
    let sandbox =
        resellgate::sandbox::spawn("127.0.0.1:0", resellgate::sandbox::Sandbox::demo()).unwrap();
    let gate = Gate::start(sandbox.addr, |p| p.func() == Some("certificate"));
    let env = TestEnv::builder()
        .upstream_url(&format!("http://{}/billmgr", gate.addr))
        .config("[upstream]\nread_timeout_ms = 30000")
        .start();
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = env.addr();
    std::thread::spawn(move || {
        let form = format!(
            "{}&authinfo={}:{}",
            order("c1", "c1.example.com"),
            ACME.0,
            ACME.1
        );
        let _ = tx.send(client::post_form(addr, "/billmgr", &form));
    });
    // The gate is closed: an answer that waited for the list would never come.
    let resp = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the order's answer waited for the ledger cost lookup")
        .unwrap();
    let id = id_of(&resp, Format::Xml);
    assert!(
        gate.wait_held(1, Duration::from_secs(10)),
        "the cost lookup never reached the upstream"
    );
    let entries = env.store.ledger(Some("acme")).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].upstream_id, entries[0].remoteid.as_deref()),
        (id, Some("c1"))
    );
    assert_eq!(entries[0].upstream_cost, None);
    assert_eq!(env.gateway.reconciler.after_answer().count(), 1);

    gate.open();
    env.settle();
    let entries = env.store.ledger(Some("acme")).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(
        (
            e.kind.as_str(),
            e.upstream_id,
            e.plan.as_deref(),
            e.period.as_deref(),
            e.upstream_cost_text().as_deref(),
            e.price_text().as_deref()
        ),
        (
            "order",
            id,
            Some("3033"),
            Some("12"),
            Some("9.0000"),
            Some("11.30")
        )
    );
    // the answer recorded with the order is untouched
    assert!(env.store.order("acme", "c1").unwrap().unwrap().state_name() == "done");
}

/// A renewal is billed at once and answered without waiting for the prolong form that
/// tells its upstream cost; the cost and price are filled in afterwards.
#[test]
fn a_renewal_is_answered_before_its_ledger_cost_is_read() {
    let sandbox =
        resellgate::sandbox::spawn("127.0.0.1:0", resellgate::sandbox::Sandbox::demo()).unwrap();
    let gate = Gate::start(sandbox.addr, |p| {
        p.func() == Some("service.prolong") && !p.is_submit()
    });
    let env = TestEnv::builder()
        .upstream_url(&format!("http://{}/billmgr", gate.addr))
        .config("[upstream]\nread_timeout_ms = 30000")
        .start();
    let id = id_of(&env.acme(&order("r1", "r1.example.com")), Format::Xml);
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = env.addr();
    std::thread::spawn(move || {
        let form = format!(
            "func=service.prolong&elid={id}&period=24&sok=ok&authinfo={}:{}",
            ACME.0, ACME.1
        );
        let _ = tx.send(client::post_form(addr, "/billmgr", &form));
    });
    let resp = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the renewal's answer waited for the ledger cost lookup")
        .unwrap();
    assert!(resp.text().contains("<ok"), "{}", resp.text());
    assert!(gate.wait_held(1, Duration::from_secs(10)));
    let renewal = |env: &TestEnv| {
        env.store
            .ledger(Some("acme"))
            .unwrap()
            .into_iter()
            .find(|e| e.kind == resellgate::store::ledger::LedgerKind::Renewal)
            .expect("the renewal is in the ledger")
    };
    let e = renewal(&env);
    assert_eq!(
        (
            e.upstream_id,
            e.period.as_deref(),
            e.upstream_cost_text().as_deref()
        ),
        (id, Some("24"), None)
    );
    gate.open();
    env.settle();
    let e = renewal(&env);
    assert_eq!(
        (
            e.plan.as_deref(),
            e.upstream_cost_text().as_deref(),
            e.price_text().as_deref()
        ),
        (Some("3033"), Some("16.0000"), Some("19.70"))
    );
    assert_eq!(env.store.ledger(Some("acme")).unwrap().len(), 2);
}

/// A new order's cost lookup that fails (here: the upstream holds the list past the read
/// timeout) leaves the ledger entry without a cost; the next reconciliation pass reads
/// it and fills it in.
#[test]
fn reconciliation_fills_in_a_cost_the_first_lookup_missed() {
    let sandbox =
        resellgate::sandbox::spawn("127.0.0.1:0", resellgate::sandbox::Sandbox::demo()).unwrap();
    let gate = Gate::start(sandbox.addr, |p| p.func() == Some("certificate"));
    let env = TestEnv::builder()
        .upstream_url(&format!("http://{}/billmgr", gate.addr))
        .config("[upstream]\nread_timeout_ms = 300\nretries = 0")
        .start();
    let id = id_of(&env.acme(&order("m1", "m1.example.com")), Format::Xml);
    env.settle(); // the lookup timed out
    let entries = env.store.ledger(Some("acme")).unwrap();
    assert_eq!(
        (entries.len(), entries[0].upstream_cost_text().as_deref()),
        (1, None)
    );
    assert_eq!(env.store.costless_ledger().unwrap().len(), 1);
    gate.open();
    let gw = env.gateway.reconciler.clone();
    let report = block_on(async move { gw.reconcile_orders(Duration::ZERO).await }).unwrap();
    assert_eq!(report.costs_filled, 1);
    let e = &env.store.ledger(Some("acme")).unwrap()[0];
    assert_eq!(
        (
            e.upstream_id,
            e.upstream_cost_text().as_deref(),
            e.price_text().as_deref()
        ),
        (id, Some("9.0000"), Some("11.30"))
    );
    assert!(env.store.costless_ledger().unwrap().is_empty());
}
