//! What reaches the logs of the real binary (issue 9, points 2 and 6): nothing pingora
//! logs carries a request's headers or query — on the proxy and the admin listener, at
//! every log level — and no client-sent line break forges a log line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client;
use resellgate::sandbox::{Sandbox, SandboxHandle};

use crate::harness::*;

const ADMIN_TOKEN: &str = "admin-token-SECRET-7f3a";
const HEADER_SECRET: &str = "hdr-SECRET-91c2";
const QUERY_SECRET: &str = "qry-SECRET-55e0";

/// The real binary serving with `RESELLGATE_LOG=level`, stderr to a file.
struct Binary {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    log: std::path::PathBuf,
    _sandbox: SandboxHandle,
    _dir: tempfile::TempDir,
}

impl Binary {
    fn start(level: &str) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = resellgate::sandbox::spawn("127.0.0.1:0", Sandbox::demo()).unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[upstream]\nurl = \"http://{}/billmgr\"\n[store]\npath = \"store\"\n", sandbox.addr),
        )
        .unwrap();
        let mappings = write_mappings(dir.path());
        let out = run_cli(&[&"mappings", &"apply", &"--config", &config, &mappings]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.path().join("gateway.log");
        let child = Command::new(env!("CARGO_BIN_EXE_resellgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RESELLGATE_LOG", level)
            .env("RESELLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        for a in [proxy, admin] {
            resellgate::app::wait_until_accepting(a, Duration::from_secs(20)).unwrap();
        }
        Binary {
            child,
            proxy,
            admin,
            log,
            _sandbox: sandbox,
            _dir: dir,
        }
    }

    /// Stop the binary and answer its log.
    fn stop(mut self) -> String {
        std::thread::sleep(Duration::from_millis(200)); // let the last lines reach the file
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// Send raw bytes, read what comes back until the server closes or 1 s passes.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Malformed requests carrying secrets in the query and in headers.
fn malformed(path: &str) -> Vec<Vec<u8>> {
    let q = format!("{path}?func=whoami&authinfo=acme:{QUERY_SECRET}&token={QUERY_SECRET}");
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\nX-Secret: {HEADER_SECRET}\r\nCookie: billmgrses5={HEADER_SECRET}");
    vec![
        // a header line without a colon
        format!("GET {q} HTTP/1.1\r\nHost: x\r\n{auth}\r\nthis is not a header\r\n\r\n")
            .into_bytes(),
        // a control byte in a header name
        format!("GET {q} HTTP/1.1\r\nHost: x\r\n{auth}\r\nX\u{1}Y: 1\r\n\r\n").into_bytes(),
        // a broken request line
        format!("GET {q} HTTP/9.9 extra\r\n{auth}\r\n\r\n").into_bytes(),
        // cut off in the middle of the header
        format!("GET {q} HTTP/1.1\r\nHost: x\r\n{auth}\r\nX-Half: ").into_bytes(),
        // a body shorter than announced
        format!("POST {q} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 100\r\n\r\nfunc=whoami")
            .into_bytes(),
    ]
}

/// At every level (and with pingora's own targets asked for at `trace`), malformed
/// requests with secrets in headers and query leave no secret in the logs, on either
/// listener; pingora's error about the malformed admin request is still logged, without
/// the request.
#[test]
fn pingora_logs_carry_no_request_headers_or_query_at_any_level() {
    for level in [
        "error",
        "warn",
        "info",
        "debug",
        "trace",
        "info,pingora_core=trace,pingora_proxy=trace,pingora=trace",
    ] {
        let bin = Binary::start(level);
        std::thread::scope(|s| {
            for addr in [bin.proxy, bin.admin] {
                let path = if addr == bin.admin {
                    "/mappings"
                } else {
                    "/billmgr"
                };
                for req in malformed(path) {
                    s.spawn(move || raw(addr, &req));
                }
            }
        });
        // a well-formed admin call with the token, and a proxy call with the secret in the query
        let _ = client::blocking(
            bin.admin,
            "GET",
            &format!("/mappings?x={QUERY_SECRET}"),
            &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            b"",
            Duration::from_secs(5),
        );
        let _ = client::get(
            bin.proxy,
            &format!("/billmgr?func=whoami&authinfo=acme:{QUERY_SECRET}"),
        );
        let log = bin.stop();
        for secret in [ADMIN_TOKEN, HEADER_SECRET, QUERY_SECRET] {
            assert!(
                !log.contains(secret),
                "level {level}: a secret reached the logs:\n{log}"
            );
        }
        assert!(
            log.contains("buf: <request bytes withheld>"),
            "level {level}: pingora's error about the malformed admin request is missing:\n{log}"
        );
    }
}

/// A line break sent in a value, a key, a login or a function never starts a new log
/// line: every line of the log begins with its timestamp.
#[test]
fn client_line_breaks_never_forge_a_log_line() {
    let bin = Binary::start("trace");
    let ai = format!("authinfo={}:{}", ACME.0, ACME.1);
    let forged = "%0aINFO%20access:%20reseller=%22root%22%20forged%0d%0a";
    for form in [
        format!("{}&{ai}", order(&format!("l1{forged}"), "a.example.com")),
        format!("func=whoami{forged}&{ai}"),
        format!("func=whoami&authinfo=acme{forged}:x"),
        format!("func=whoami&x{forged}=1&{ai}"),
        format!("func=auth&username=acme{forged}&password=x"),
        format!("{}&{ai}", order("l2", &format!("b{forged}.example.com"))),
    ] {
        let resp = client::post_form(bin.proxy, "/billmgr", &form).unwrap();
        assert!(
            resp.text().contains("type=\"value\"") || resp.text().contains("type=\"auth\""),
            "{form}: {}",
            resp.text()
        );
    }
    let _ = raw(
        bin.proxy,
        format!("GET /billmgr{forged}?func=whoami HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    let log = bin.stop();
    assert!(log.lines().count() > 5, "{log}");
    for line in log.lines().filter(|l| !l.is_empty()) {
        let ts = line.split(' ').next().unwrap_or("");
        assert!(
            ts.len() >= 20 && ts.starts_with("20") && ts.ends_with('Z'),
            "a line without a timestamp (forged?): {line:?}\n{log}"
        );
        assert!(!line.starts_with("INFO access"), "{line}");
    }
}
