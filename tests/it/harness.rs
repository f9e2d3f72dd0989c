//! `TestEnv`: the sandbox and the real gateway on ephemeral ports with a temporary
//! store, stopped on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::client::{self, Response};
use resellgate::app::RunningGateway;
use resellgate::billmgr::{self, BmError, Element, Format, Limits, Params};
use resellgate::config::{self, Config};
use resellgate::sandbox::{Sandbox, SandboxHandle};
use resellgate::store::Store;

pub const ACME: (&str, &str) = ("acme", "acme-demo-pw");
pub const GLOBEX: (&str, &str) = ("globex", "globex-demo-pw");
pub const ACME_UP: (&str, &str) = ("acme@sandbox", "acme-upstream-pw");

/// A valid order through the gateway (local plan 101 = upstream 3033; sent directly to
/// the sandbox it needs `pricelist=3033`).
pub fn order(remoteid: &str, cn: &str) -> String {
    format!(
        "func=certificate.order.param&sok=ok&skipbasket=on&remoteid={remoteid}&pricelist=101&period=12&CN={cn}&approver_email_1=admin%40{cn}&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on"
    )
}

/// Order `remoteid` directly at the sandbox as acme's upstream account, bypassing the
/// gateway (a certificate the gateway has never seen).
pub fn order_upstream(sandbox: SocketAddr, remoteid: &str, cn: &str) -> Response {
    let form = order(remoteid, cn).replace("pricelist=101", "pricelist=3033");
    client::post_form(
        sandbox,
        "/billmgr",
        &format!("{form}&authinfo={}:{}", ACME_UP.0, ACME_UP.1),
    )
    .unwrap()
}

/// The certificate id in an order's answer, asserting there is one.
pub fn id_of(resp: &Response, format: Format) -> u64 {
    doc(resp, format)
        .child_text("id")
        .unwrap_or_else(|| panic!("no id: {}", resp.text()))
        .parse()
        .unwrap()
}

/// Run the real binary with `args` to completion.
pub fn run_cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_resellgate"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

/// A port nobody listens on right now, for a server the test starts by its address.
///
/// nextest runs each test in its own process, in parallel. A port the OS picks for a
/// probe (`bind :0`) is free again once the probe closes, so two tests could be handed
/// the same one and one gateway would answer on the other's address. Each process takes
/// its ports from its own slice of 20 below the OS's ephemeral range (10000–29999, by
/// process id), so concurrent tests never share a port and no OS-picked port (the
/// sandboxes' `:0`, client sockets) falls in it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 1000) as u16 * 20;
    for _ in 0..20 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 20;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository's own files (config.toml, mappings/).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The demo mappings with the upstream passwords in files instead of variables.
pub fn write_mappings(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("acme-up.pw"), "acme-upstream-pw\n").unwrap();
    std::fs::write(dir.join("globex-up.pw"), "globex-upstream-pw\n").unwrap();
    let text = std::fs::read_to_string(repo_path("mappings/demo.toml"))
        .unwrap()
        .replace(
            "password_env = \"ACME_UP_PASSWORD\"",
            "password_file = \"acme-up.pw\"",
        )
        .replace(
            "password_env = \"GLOBEX_UP_PASSWORD\"",
            "password_file = \"globex-up.pw\"",
        );
    assert!(
        text.contains("acme-up.pw") && text.contains("globex-up.pw"),
        "demo.toml changed shape"
    );
    let path = dir.join("mappings.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub struct Builder {
    extra: String,
    upstream: Option<String>,
    mappings: Option<String>,
}

impl Builder {
    /// Extra config.toml lines, appended to the tables they name (e.g. "[upstream]\nretries = 0").
    pub fn config(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Point the gateway at another upstream URL than the sandbox.
    pub fn upstream_url(mut self, url: &str) -> Self {
        self.upstream = Some(url.to_string());
        self
    }

    /// Use this mapping file text instead of the demo mappings.
    pub fn mappings(mut self, text: &str) -> Self {
        self.mappings = Some(text.to_string());
        self
    }

    pub fn start(self) -> TestEnv {
        resellgate::telemetry::init();
        let dir = tempfile::tempdir().unwrap();
        let sandbox = resellgate::sandbox::spawn("127.0.0.1:0", Sandbox::demo()).unwrap();
        let port = free_port();
        let url = self
            .upstream
            .unwrap_or_else(|| format!("http://{}/billmgr", sandbox.addr));
        let text = merge_toml(
            &format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"{url}\"\nconnect_timeout_ms = 1000\nread_timeout_ms = 5000\n[store]\npath = \"store\"\n"
            ),
            &self.extra,
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open_at(&config.store_location()).unwrap();
        let mappings = match &self.mappings {
            Some(text) => {
                let p = dir.path().join("mappings.toml");
                std::fs::write(&p, text).unwrap();
                p
            }
            None => write_mappings(dir.path()),
        };
        let set = config::load_mappings(&[mappings]).unwrap_or_else(|e| panic!("{e}"));
        set.apply_to(&store).unwrap();
        let gateway = resellgate::app::spawn(&config, store.clone()).unwrap();
        TestEnv {
            gateway,
            sandbox,
            store,
            config,
            dir,
        }
    }
}

/// Merge two small TOML documents table by table (the second wins).
fn merge_toml(base: &str, extra: &str) -> String {
    let mut a: toml::Table = base.parse().unwrap();
    let b: toml::Table = extra.parse().unwrap();
    for (k, v) in b {
        match (a.get_mut(&k), v) {
            (Some(toml::Value::Table(t)), toml::Value::Table(u)) => t.extend(u),
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
    toml::to_string(&a).unwrap()
}

#[allow(dead_code)] // not every test module reads every field
pub struct TestEnv {
    pub gateway: RunningGateway,
    pub sandbox: SandboxHandle,
    pub store: Store,
    pub config: Config,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn builder() -> Builder {
        Builder {
            extra: String::new(),
            upstream: None,
            mappings: None,
        }
    }

    pub fn start() -> TestEnv {
        Self::builder().start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.gateway.addr
    }

    /// GET through the gateway; returns once the gateway's work after the answer is done
    /// (see [`TestEnv::settle`]).
    pub fn get(&self, path_and_query: &str) -> Response {
        let r = client::get(self.addr(), path_and_query).unwrap();
        self.settle();
        r
    }

    /// POST a form through the gateway; returns once the gateway's work after the answer
    /// is done (see [`TestEnv::settle`]).
    pub fn post(&self, form: &str) -> Response {
        let r = client::post_form(self.addr(), "/billmgr", form).unwrap();
        self.settle();
        r
    }

    /// Wait until the gateway has finished what it does after answering (a new order's
    /// ledger cost is read from the upstream then), so the store and the sandbox's record
    /// of calls are settled. Work started before an answer is counted before it is sent.
    pub fn settle(&self) {
        assert!(
            self.gateway
                .reconciler
                .after_answer()
                .wait_idle(std::time::Duration::from_secs(20)),
            "the gateway's work after answering did not finish within 20 s"
        );
    }

    /// POST `form` with acme's authinfo.
    pub fn acme(&self, form: &str) -> Response {
        self.post(&format!("{form}&authinfo={}:{}", ACME.0, ACME.1))
    }

    /// POST `form` with globex's authinfo.
    pub fn globex(&self, form: &str) -> Response {
        self.post(&format!("{form}&authinfo={}:{}", GLOBEX.0, GLOBEX.1))
    }

    /// The parameters of the last call the sandbox received.
    pub fn last_upstream(&self) -> resellgate::billmgr::Params {
        self.sandbox
            .sandbox
            .received()
            .pop()
            .expect("the upstream received nothing")
    }
}

/// Parse a response body in `format`, asserting HTTP 200.
pub fn doc(resp: &Response, format: Format) -> Element {
    assert_eq!(resp.status, 200, "HTTP status; body: {}", resp.text());
    billmgr::parse(&resp.body, format).unwrap_or_else(|e| panic!("{e}: {}", resp.text()))
}

/// The error in a response (asserting it is one), as (type, object).
pub fn error_of(resp: &Response, format: Format) -> BmError {
    let d = doc(resp, format);
    BmError::from_doc(&d).unwrap_or_else(|| panic!("not an error document: {}", resp.text()))
}

pub fn assert_error(resp: &Response, format: Format, kind: &str, object: &str) -> BmError {
    let e = error_of(resp, format);
    assert_eq!(
        (e.kind.as_str(), e.object.as_deref().unwrap_or("")),
        (kind, object),
        "{}",
        resp.text()
    );
    e
}

/// An upstream that answers each call with `answer(params)` (a body, or a whole HTTP
/// response when it starts with `HTTP/1.`) and records what it got.
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Params>>>,
}

impl RecordingUpstream {
    pub fn start(answer: impl Fn(&Params) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let rec = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (answer, rec) = (answer.clone(), rec.clone());
                std::thread::spawn(move || serve_conn(conn, &*answer, &rec));
            }
        });
        RecordingUpstream { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}/billmgr", self.addr)
    }

    pub fn last(&self) -> Params {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("nothing received")
    }
}

fn serve_conn(
    conn: std::net::TcpStream,
    answer: &(dyn Fn(&Params) -> Vec<u8> + Send + Sync),
    rec: &Mutex<Vec<Params>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut len = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let query = target.split_once('?').map(|(_, q)| q.to_string());
        let limits = Limits {
            max_body_bytes: usize::MAX,
            max_params: usize::MAX,
            max_value_bytes: usize::MAX,
        };
        let params = Params::parse(query.as_deref(), &body, &limits).unwrap();
        let out = answer(&params);
        rec.lock().unwrap().push(params);
        // An answer that is a whole HTTP response is sent as it is.
        let head = if out.starts_with(b"HTTP/1.") {
            String::new()
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
                out.len()
            )
        };
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&out).is_err() {
            return;
        }
    }
}
