//! A small W3C WebDriver client over the test HTTP client: enough to drive Debian's
//! chromium through chromedriver (headless) — navigate, find, type, click, read text,
//! take a screenshot.
//!
//! [`Browser::start`] answers `None` when chromedriver is not installed, unless `CI=true`:
//! then a missing browser fails the test (`.ci/deps.sh` installs it).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::client;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

fn find_program(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    for n in names {
        for dir in path.split(':') {
            let p = std::path::Path::new(dir).join(n);
            if p.is_file() {
                return Some(p.display().to_string());
            }
        }
    }
    None
}

impl Browser {
    pub fn start() -> Option<Browser> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let (Some(driver), Some(chromium)) = (
            find_program(&["chromedriver"]),
            find_program(&["chromium", "chromium-browser"]),
        ) else {
            assert!(
                !ci,
                "CI=true but chromium/chromedriver are missing: .ci/deps.sh installs them"
            );
            eprintln!("skipped: chromium and chromedriver are not installed (run .ci/deps.sh)");
            return None;
        };
        let port = crate::harness::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        resellgate::app::wait_until_accepting(addr, Duration::from_secs(20))
            .expect("chromedriver listens");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,860", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let mut b = Browser {
            driver: child,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let v = b.raw("POST", "/session", Some(caps));
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        // Finding an element waits for it (a page still loading after a click), up to 10 s.
        b.cmd("POST", "/timeouts", Some(json!({"implicit": 10_000})));
        Some(b)
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = client::blocking(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            Duration::from_secs(60),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", r.text()));
        assert_eq!(r.status, 200, "{method} {path}: {v}");
        v
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        self.raw(method, &p, body)["value"].take()
    }

    pub fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    #[allow(dead_code)]
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let p = format!("/session/{}", self.session);
            let _ = client::blocking(self.addr, "DELETE", &p, &[], b"", Duration::from_secs(10));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
