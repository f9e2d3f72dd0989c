//! Slow and greedy clients (issue 9, point 4): a request header must arrive whole within
//! `header_timeout_ms`, one address holds at most `max_connections_per_ip` connections,
//! and `Expect: 100-continue` gets its interim answer before the body is sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use resellgate::billmgr::{self, BmError, Format};

use crate::harness::*;

/// Read until the server closes (or `within` passes); answers what was read and whether
/// the server closed.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// Send `header` one byte at a time, waiting up to 100 ms for an answer after each; answers
/// how long after the first byte the server closed the connection (`None`: it never did).
/// A partial header must never be answered.
fn trickle(s: &mut TcpStream, header: &[u8]) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    for b in header {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            return Some(start.elapsed());
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(n) => panic!("answered a partial header: {:?}", &buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => {}
        }
    }
    None
}

/// A client trickling its header one byte every 100 ms is disconnected at the deadline
/// (1 s here), long before its header would be complete.
#[test]
fn a_trickled_header_is_cut_off_at_the_deadline() {
    let env = TestEnv::builder()
        .config("[server]\nheader_timeout_ms = 1000")
        .start();
    let mut s = TcpStream::connect(env.addr()).unwrap();
    let header = format!(
        "GET /billmgr?func=whoami&authinfo={}:{} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        ACME.0,
        ACME.1,
        "a".repeat(40)
    );
    let closed_at = trickle(&mut s, header.as_bytes());
    let at = closed_at.expect("the connection stayed open for the whole trickled header");
    assert!(
        at >= Duration::from_millis(900) && at < Duration::from_millis(2500),
        "closed after {at:?}"
    );
}

/// The admin listener has the same deadline.
#[test]
fn a_trickled_header_is_cut_off_on_the_admin_listener_too() {
    std::env::set_var("RG_TEST_SLOW_ADMIN_TOKEN", "t0ken");
    let port = free_port();
    let env = TestEnv::builder()
        .config(&format!("[server]\nheader_timeout_ms = 1000\n[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_env = \"RG_TEST_SLOW_ADMIN_TOKEN\""))
        .start();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    resellgate::app::wait_until_accepting(admin, Duration::from_secs(10)).unwrap();
    let mut s = TcpStream::connect(admin).unwrap();
    let header =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let closed_at = trickle(&mut s, header);
    let at = closed_at.expect("the admin connection stayed open for the whole trickled header");
    assert!(at < Duration::from_millis(2500), "closed after {at:?}");
    drop(env);
}

/// A header that arrives in pieces but within the deadline is answered.
#[test]
fn a_slow_header_within_the_deadline_is_answered() {
    let env = TestEnv::builder()
        .config("[server]\nheader_timeout_ms = 2000")
        .start();
    let mut s = TcpStream::connect(env.addr()).unwrap();
    let header = format!(
        "GET /billmgr?func=whoami&authinfo={}:{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ACME.0, ACME.1
    );
    for chunk in header.as_bytes().chunks(header.len() / 5 + 1) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let (resp, _) = read_until_closed(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("<user"), "{text}");
}

/// Two connections from one address are served (the edge); a third gets an error
/// document and is closed; once one closes, a new one is served.
#[test]
fn connections_per_address_are_capped() {
    let env = TestEnv::builder()
        .config("[server]\nmax_connections_per_ip = 2\nheader_timeout_ms = 30000")
        .start();
    let first = TcpStream::connect(env.addr()).unwrap();
    let second = TcpStream::connect(env.addr()).unwrap();
    // Wait until both are counted (accepted and handed to the application).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut third = TcpStream::connect(env.addr()).unwrap();
        third
            .write_all(b"GET /billmgr?func=whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (resp, closed) = read_until_closed(&mut third, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&resp).to_string();
        if text.contains("object=\"connection\"") {
            assert!(closed, "the refused connection stayed open");
            let (_, body) = text.split_once("\r\n\r\n").unwrap();
            let d = billmgr::parse(body.as_bytes(), Format::Xml).unwrap();
            let e = BmError::from_doc(&d).unwrap();
            assert_eq!(
                (e.kind.as_str(), e.object.as_deref()),
                ("access", Some("connection"))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a third connection was served: {text}"
        );
    }
    // The two within the cap are served.
    let (mut first, mut second) = (first, second);
    for s in [&mut first, &mut second] {
        write!(
            s,
            "GET /billmgr?func=whoami&authinfo={}:{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ACME.0, ACME.1
        )
        .unwrap();
        let (resp, _) = read_until_closed(s, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&resp);
        assert!(text.contains("<user"), "{text}");
    }
    drop(first);
    // The closed one is uncounted as soon as the gateway sees it close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = crate::client::get(
            env.addr(),
            &format!("/billmgr?func=whoami&authinfo={}:{}", ACME.0, ACME.1),
        )
        .unwrap();
        if resp.text().contains("<user") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", resp.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(second);
}

/// `Expect: 100-continue`: `100 Continue` arrives before the body is sent; then the
/// answer.
#[test]
fn expect_continue_is_answered_before_the_body() {
    let env = TestEnv::start();
    let body = format!("func=whoami&authinfo={}:{}", ACME.0, ACME.1);
    let mut s = TcpStream::connect(env.addr()).unwrap();
    write!(
        s,
        "POST /billmgr HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut interim = Vec::new();
    let mut buf = [0u8; 256];
    while !interim.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf).expect("no interim answer before the body");
        assert!(n > 0, "closed before the interim answer");
        interim.extend_from_slice(&buf[..n]);
    }
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(&interim[..], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    let (resp, _) = read_until_closed(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("<user"), "{text}");
}
