//! Large upstream answers: read up to `limits.max_response_bytes` (one byte more is an
//! `upstream` error), rewritten one plan at a time on the blocking pool, and at most
//! `limits.max_large_responses` answers over `limits.large_response_bytes` held at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::client;
use resellgate::billmgr::Format;

use crate::harness::*;

/// A price list of `n` plans: every 100th is upstream plan 3033 (acme's 101), the rest
/// unmapped.
fn export(n: usize) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc lang=\"en\">");
    for i in 0..n {
        let id = if i % 100 == 0 { 3033 } else { 100_000 + i };
        s.push_str(&format!(
            "<pricelist><id>{id}</id><name>Plan {i}</name><price currency=\"EUR\"><period cost=\"10.0000\" length=\"12\">1 year</period></price></pricelist>"
        ));
    }
    s.push_str("</doc>\n");
    s
}

/// An answer several times the large-answer size is rewritten whole: every mapped plan,
/// marked up, nothing else.
#[test]
fn a_large_export_is_rewritten_whole() {
    let body = export(20_000); // about 2.4 MB
    assert!(body.len() > 2_000_000);
    let up = RecordingUpstream::start(move |_| body.clone().into_bytes());
    let env = TestEnv::builder()
        .upstream_url(&up.url())
        .config("[limits]\nlarge_response_bytes = 100000\nmax_large_responses = 1")
        .start();
    let d = doc(&env.acme("func=pricelist.export"), Format::Xml);
    let plans: Vec<_> = d.find_all("pricelist").collect();
    assert_eq!(plans.len(), 200);
    for p in plans {
        assert_eq!(p.child_text("id"), Some("101"));
        let period = p.find("price").unwrap().find("period").unwrap();
        assert_eq!(period.get_attr("cost"), Some("12.50"));
        assert_eq!(period.text.as_deref(), Some("1 year"));
    }
}

/// `max_response_bytes` is the largest answer read: exactly that many bytes pass, one
/// more is an `upstream` error.
#[test]
fn max_response_bytes_at_its_edge() {
    let body = "<doc><user>acme@sandbox</user></doc>";
    let limit = body.len();
    for (extra, ok) in [("", true), (" ", false)] {
        let answer = format!("{body}{extra}");
        let up = RecordingUpstream::start(move |_| answer.clone().into_bytes());
        let env = TestEnv::builder()
            .upstream_url(&up.url())
            .config(&format!(
                "[limits]\nmax_response_bytes = {limit}\nlarge_response_bytes = {limit}"
            ))
            .start();
        let resp = env.acme("func=whoami");
        if ok {
            assert_eq!(
                doc(&resp, Format::Xml).child_text("user"),
                Some("acme@sandbox")
            );
        } else {
            let e = assert_error(&resp, Format::Xml, "upstream", "upstream");
            assert!(
                e.msg.contains(&format!("more than {limit} bytes")),
                "{}",
                e.msg
            );
        }
    }
}

/// An upstream that sends the first half of a large answer to the first call, then waits
/// for `gate` before the rest; later calls get their large answer at once. Reports on
/// `events` when the first half is out and when each later answer is written.
fn gated_upstream(gate: mpsc::Receiver<()>, events: mpsc::Sender<&'static str>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = export(2_000).into_bytes(); // about 240 kB
    std::thread::spawn(move || {
        let gate = std::sync::Mutex::new(Some(gate));
        let mut first = true;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            read_request(&mut conn);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            conn.write_all(head.as_bytes()).unwrap();
            if std::mem::take(&mut first) {
                conn.write_all(&body[..body.len() / 2]).unwrap();
                conn.flush().unwrap();
                events.send("first half").unwrap();
                let g = gate.lock().unwrap().take().unwrap();
                let (body, events) = (body.clone(), events.clone());
                std::thread::spawn(move || {
                    g.recv().unwrap();
                    conn.write_all(&body[body.len() / 2..]).unwrap();
                    events.send("first done").ok();
                });
            } else {
                conn.write_all(&body).unwrap();
                events.send("second written").unwrap();
            }
        }
    });
    addr
}

fn read_request(conn: &mut TcpStream) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
}

/// With `max_large_responses = 1`, a second large answer is not taken in while the first
/// is held: it is answered only after the first one completes. (The window the second
/// would need to finish without the bound is given 1 s.)
#[test]
fn max_large_responses_bounds_answers_held_at_once() {
    let (open, gate) = mpsc::channel();
    let (events_tx, events) = mpsc::channel();
    let addr = gated_upstream(gate, events_tx);
    let env = TestEnv::builder()
        .upstream_url(&format!("http://{addr}/billmgr"))
        .config("[limits]\nlarge_response_bytes = 50000\nmax_large_responses = 1\n[upstream]\nretries = 0")
        .start();
    let gw = env.addr();
    let call = move || {
        client::post_form(
            gw,
            "/billmgr",
            &format!("func=pricelist.export&authinfo={}:{}", ACME.0, ACME.1),
        )
        .unwrap()
    };
    let first = std::thread::spawn(call);
    assert_eq!(
        events.recv_timeout(Duration::from_secs(10)).unwrap(),
        "first half"
    );
    let (done_tx, done) = mpsc::channel();
    let second = std::thread::spawn(move || {
        let r = call();
        done_tx.send(Instant::now()).unwrap();
        r
    });
    assert_eq!(
        events.recv_timeout(Duration::from_secs(10)).unwrap(),
        "second written"
    );
    assert!(
        done.recv_timeout(Duration::from_secs(1)).is_err(),
        "the second large answer was taken in while the first held the only permit"
    );
    let opened = Instant::now();
    open.send(()).unwrap();
    let finished = done.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(finished >= opened);
    for r in [first.join().unwrap(), second.join().unwrap()] {
        let d = doc(&r, Format::Xml);
        assert_eq!(d.find_all("pricelist").count(), 20, "{}", r.text());
    }
}
