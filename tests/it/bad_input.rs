//! Hostile and broken requests: each gets a clear error document and the gateway keeps
//! serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::client;
use resellgate::billmgr::Format;

use crate::harness::*;

fn still_serving(env: &TestEnv) {
    let resp = env.acme("func=whoami");
    assert!(
        doc(&resp, Format::Xml).find("user").is_some(),
        "gateway stopped serving: {}",
        resp.text()
    );
}

#[test]
fn broken_percent_encoding() {
    let env = TestEnv::start();
    let e = assert_error(
        &env.get("/billmgr?func=whoami&out=json&x=%zz"),
        Format::Json,
        "value",
        "request",
    );
    assert!(e.msg.contains("percent-encoding"), "{}", e.msg);
    still_serving(&env);
}

#[test]
fn oversized_body() {
    let env = TestEnv::start();
    let body = format!("func=whoami&out=json&x={}", "a".repeat(70 * 1024));
    let e = assert_error(&env.post(&body), Format::Json, "value", "request");
    assert!(e.msg.contains("larger than"), "{}", e.msg);
    still_serving(&env);
}

#[test]
fn ten_thousand_parameters() {
    let env = TestEnv::builder()
        .config("[limits]\nmax_body_bytes = 65536")
        .start();
    let body: Vec<String> = (0..10_000).map(|i| format!("p{i}=1")).collect();
    let resp = env.post(&body.join("&"));
    let e = assert_error(&resp, Format::Xml, "value", "request");
    assert!(
        e.msg.contains("parameters") || e.msg.contains("larger"),
        "{}",
        e.msg
    );
    let small: Vec<String> = (0..1_500).map(|i| format!("p{i}=1")).collect();
    let e = assert_error(
        &env.post(&format!("out=json&{}", small.join("&"))),
        Format::Json,
        "value",
        "request",
    );
    assert!(e.msg.contains("more than 1000 parameters"), "{}", e.msg);
    still_serving(&env);
}

#[test]
fn missing_func() {
    let env = TestEnv::start();
    assert_error(
        &env.post(&format!("out=json&authinfo={}:{}", ACME.0, ACME.1)),
        Format::Json,
        "missed",
        "func",
    );
    assert_error(&env.get("/billmgr"), Format::Xml, "missed", "func");
}

#[test]
fn two_authinfo_values() {
    let env = TestEnv::start();
    let resp = env.post(&format!(
        "func=whoami&authinfo={}:{}&authinfo=globex:globex-demo-pw",
        ACME.0, ACME.1
    ));
    assert_error(&resp, Format::Xml, "value", "authinfo");
    assert!(env.sandbox.sandbox.received().is_empty());
}

#[test]
fn binary_garbage() {
    let env = TestEnv::start();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let resp = client::blocking(
        env.addr(),
        "POST",
        "/billmgr",
        &[],
        &garbage,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_error(&resp, Format::Xml, "value", "request");
    // garbage instead of an HTTP request: the connection is closed, nothing else happens
    let mut s = TcpStream::connect(env.addr()).unwrap();
    s.write_all(&garbage).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("<html"),
        "an HTML page was sent"
    );
    still_serving(&env);
}

/// A client that announces a body and stalls is answered when `client_timeout_ms` runs
/// out; other clients are served meanwhile.
#[test]
fn slow_client() {
    let env = TestEnv::builder()
        .config("[server]\nclient_timeout_ms = 500")
        .start();
    let mut s = TcpStream::connect(env.addr()).unwrap();
    s.write_all(b"POST /billmgr HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nfunc=who").unwrap();
    still_serving(&env);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("type=\"value\""), "{text}");
    assert!(text.contains("did not arrive in time"), "{text}");
}

/// Hostile values come back escaped, never breaking the document.
#[test]
fn hostile_values_are_escaped() {
    let env = TestEnv::start();
    // A func that is not a function name is refused before anything else (issue 9),
    // in a well-formed document.
    let resp = env.get("/billmgr?func=%3Cscript%3E%26%22&out=xml");
    let e = assert_error(&resp, Format::Xml, "value", "func");
    assert!(!e.msg.is_empty());
    let resp = env.acme("func=%3Cb%3E%26%22%0A&out=xml");
    assert_error(&resp, Format::Xml, "value", "func");
    // A function name that passes the check but not the policy is shown printable.
    let resp = env.acme("func=user.edit-x_1&out=xml");
    let e = assert_error(&resp, Format::Xml, "access", "func");
    assert!(e.msg.contains("'user.edit-x_1'"), "{}", e.msg);
}
