//! The sandbox's HTTP/1.1 server: tokio + httparse, no framework, because injected faults
//! need raw control of the connection (reset it, hang it, answer garbage).
//!
//! - `GET` and `POST` (`application/x-www-form-urlencoded`, `Content-Length` body) on
//!   `/billmgr`, `/manager/billmgr` and `/`; other paths answer a 404 HTML page, other
//!   methods 405. A request body in `Transfer-Encoding` is refused with 411.
//! - Query and body are merged by [`Params::parse`]; unreadable parameters answer a
//!   BILLmanager error document (HTTP 200, like every API error).
//! - Keep-alive by default on HTTP/1.1, `Connection: close` honoured; HTTP/1.0 closes unless
//!   it asks for keep-alive. Headers are bounded to 64 KiB, bodies to 1 MiB.
//! - The `billmgrses5` cookie is accepted as a session id like `auth=`.
//!
//! ```text
//! curl 'http://127.0.0.1:1600/billmgr?func=whoami&authinfo=acme@sandbox:acme-upstream-pw&out=json'
//! ```

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::{money2, Fault, FaultPhase, Sandbox};
use crate::billmgr::{render, BmError, Element, Format, Limits, Params};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const SERVER: &str = "resellgate-sandbox";

/// A bound sandbox server; [`SandboxServer::run`] serves until the shutdown future resolves.
pub struct SandboxServer {
    listener: TcpListener,
    sandbox: Sandbox,
}

impl SandboxServer {
    pub async fn bind(addr: &str, sandbox: Sandbox) -> io::Result<SandboxServer> {
        Ok(SandboxServer {
            listener: TcpListener::bind(addr).await?,
            sandbox,
        })
    }

    /// Wrap an already bound std listener (must be called inside a tokio runtime).
    pub fn from_std(listener: StdTcpListener, sandbox: Sandbox) -> io::Result<SandboxServer> {
        listener.set_nonblocking(true)?;
        Ok(SandboxServer {
            listener: TcpListener::from_std(listener)?,
            sandbox,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Serve until `shutdown` resolves; then every open connection (hanging ones included)
    /// is closed at its next step.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        // Dropping `_stop` (when this function returns) wakes every connection's `changed()`.
        let (_stop, stopped) = watch::channel(());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let sandbox = self.sandbox.clone();
                        let stopped = stopped.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_connection(stream, peer, sandbox, stopped).await {
                                tracing::debug!(%peer, error = %e, "sandbox connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "sandbox accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

/// A sandbox server on its own thread and tokio runtime; stopped (and its connections,
/// hanging ones included, closed) when dropped.
pub struct SandboxHandle {
    pub addr: SocketAddr,
    pub sandbox: Sandbox,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SandboxHandle {
    /// `http://ADDR/billmgr`.
    pub fn url(&self) -> String {
        format!("http://{}/billmgr", self.addr)
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start a sandbox server on `addr` (e.g. `127.0.0.1:0`) on its own thread. Usable from
/// inside or outside a tokio runtime.
pub fn spawn(addr: &str, sandbox: Sandbox) -> io::Result<SandboxHandle> {
    let listener = StdTcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sandbox")
        .enable_all()
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let sb = sandbox.clone();
    let thread = std::thread::Builder::new()
        .name("sandbox".into())
        .spawn(move || {
            rt.block_on(async move {
                match SandboxServer::from_std(listener, sb) {
                    Ok(server) => {
                        server
                            .run(async {
                                let _ = stopped.await;
                            })
                            .await
                    }
                    Err(e) => tracing::error!(error = %e, "sandbox server could not start"),
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(SandboxHandle {
        addr: local,
        sandbox,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// `resellgate sandbox`: serve the demo seed on `listen` until Ctrl-C.
pub fn run_cli(
    listen: &str,
    latency_ms: u64,
    fail_rate: f64,
    balance: Option<rust_decimal::Decimal>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut config = super::SandboxConfig::default();
    if let Some(b) = balance {
        for a in &mut config.accounts {
            a.balance = b;
        }
    }
    let sandbox = Sandbox::new(config);
    sandbox.knobs().set_latency_ms(latency_ms);
    sandbox.knobs().set_fail_rate(fail_rate);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let server = SandboxServer::bind(listen, sandbox.clone())
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = server.local_addr()?;
        println!("sandbox listening on http://{addr}/billmgr");
        println!("demo accounts (login / password / balance):");
        let currency = sandbox.currency();
        for a in sandbox.accounts() {
            println!(
                "  {} / {} / {} {currency}",
                a.login,
                a.password,
                money2(a.balance)
            );
        }
        if latency_ms > 0 || fail_rate > 0.0 {
            println!(
                "knobs: latency {latency_ms} ms, fail rate {}",
                sandbox.knobs().fail_rate()
            );
        }
        println!(
            "try: curl '{}'",
            format_args!(
                "http://{addr}/billmgr?func=pricelist.export&itemtype=certificate&out=json"
            )
        );
        server
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
        Ok(())
    })
}

// ---------- one connection ----------

struct Request {
    method: String,
    path: String,
    query: Option<String>,
    http11: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        let has = |t: &str| conn.split(',').any(|x| x.trim() == t);
        if self.http11 {
            !has("close")
        } else {
            has("keep-alive")
        }
    }

    fn session_cookie(&self) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("billmgrses5="))
    }
}

enum Incoming {
    /// The peer closed an idle connection.
    Closed,
    Request(Request),
    /// A request we refuse at the HTTP level; the connection is closed after the answer.
    Reject(u16, &'static str),
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    sandbox: Sandbox,
    mut stopped: watch::Receiver<()>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let incoming = tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut stream, &mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            },
            _ = stopped.changed() => return Ok(()),
        };
        let req = match incoming {
            Incoming::Closed => return Ok(()),
            Incoming::Reject(status, reason) => {
                write_html(&mut stream, status, reason, false).await?;
                return Ok(());
            }
            Incoming::Request(req) => req,
        };
        let keep_alive = req.keep_alive();
        if req.method != "GET" && req.method != "POST" {
            write_html(&mut stream, 405, "Method Not Allowed", keep_alive).await?;
        } else if !matches!(req.path.as_str(), "/billmgr" | "/manager/billmgr" | "/") {
            write_html(&mut stream, 404, "Not Found", keep_alive).await?;
        } else {
            let go_on = tokio::select! {
                r = answer(&mut stream, &req, peer, &sandbox, keep_alive) => r?,
                _ = stopped.changed() => return Ok(()),
            };
            if !go_on {
                return Ok(());
            }
        }
        if !keep_alive {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// Answer one API call, with latency and faults. `false` = the connection must end now.
async fn answer(
    stream: &mut TcpStream,
    req: &Request,
    peer: SocketAddr,
    sandbox: &Sandbox,
    keep_alive: bool,
) -> io::Result<bool> {
    let limits = Limits {
        max_body_bytes: MAX_BODY,
        max_params: 10_000,
        max_value_bytes: MAX_BODY,
    };
    let latency = sandbox.knobs().latency_ms();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let params = match Params::parse(req.query.as_deref(), &req.body, &limits) {
        Ok(p) => p,
        Err(e) => {
            let format = crate::billmgr::sniff_format(req.query.as_deref(), &req.body);
            let doc = BmError::from(e).to_doc("en");
            write_doc(stream, &doc, format, keep_alive).await?;
            return Ok(true);
        }
    };
    let format = params.format();
    let fault = sandbox.knobs().next_fault();
    let cookie = req.session_cookie();
    match fault {
        None => {
            let doc = sandbox.handle_request(&params, peer.ip(), cookie);
            write_doc(stream, &doc, format, keep_alive).await?;
            Ok(true)
        }
        Some((fault, phase)) => {
            match phase {
                FaultPhase::BeforeHandling => sandbox.record(&params),
                FaultPhase::AfterHandling => {
                    let _ = sandbox.handle_request(&params, peer.ip(), cookie);
                }
            }
            tracing::debug!(
                ?fault,
                ?phase,
                func = params.func().unwrap_or(""),
                "sandbox fault injected"
            );
            misbehave(stream, fault, format, keep_alive).await
        }
    }
}

async fn misbehave(
    stream: &mut TcpStream,
    fault: Fault,
    format: Format,
    keep_alive: bool,
) -> io::Result<bool> {
    match fault {
        Fault::Reset => {
            // An RST rather than a FIN, like a crashed upstream.
            let _ = stream.set_zero_linger();
            Ok(false)
        }
        Fault::Hang => {
            // Never answer; the caller's select ends this when the server stops.
            std::future::pending::<()>().await;
            Ok(false)
        }
        Fault::Garbage => {
            let n = 64 + rand::random::<usize>() % 448;
            let mut body: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
            body[0] = 0xff; // never valid UTF-8, so never a document by chance
            write_response(stream, 200, "OK", format.content_type(), &body, keep_alive).await?;
            Ok(true)
        }
        Fault::Html502 => {
            write_html(stream, 502, "Bad Gateway", keep_alive).await?;
            Ok(true)
        }
        Fault::Empty => {
            write_response(stream, 200, "OK", format.content_type(), b"", keep_alive).await?;
            Ok(true)
        }
    }
}

/// Read one request (head and `Content-Length` body) from `stream`, keeping any bytes of
/// the next pipelined request in `buf`.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Incoming> {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let target = parsed.path.unwrap_or("/");
                    let (path, query) = match target.split_once('?') {
                        Some((p, q)) => (p.to_string(), Some(q.to_string())),
                        None => (target.to_string(), None),
                    };
                    let req_headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let mut req = Request {
                        method: parsed.method.unwrap_or("").to_string(),
                        path,
                        query,
                        http11: parsed.version == Some(1),
                        headers: req_headers,
                        body: Vec::new(),
                    };
                    buf.drain(..head_len);
                    if req.header("transfer-encoding").is_some() {
                        return Ok(Incoming::Reject(411, "Length Required"));
                    }
                    let len = match req.header("content-length") {
                        None => 0,
                        Some(v) => match v.trim().parse::<usize>() {
                            Ok(n) => n,
                            Err(_) => return Ok(Incoming::Reject(400, "Bad Request")),
                        },
                    };
                    if len > MAX_BODY {
                        return Ok(Incoming::Reject(413, "Payload Too Large"));
                    }
                    let expects = req
                        .header("expect")
                        .is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"));
                    if expects && buf.len() < len {
                        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                    }
                    while buf.len() < len {
                        if read_more(stream, buf).await? == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "body cut short",
                            ));
                        }
                    }
                    req.body = buf.drain(..len).collect();
                    return Ok(Incoming::Request(req));
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                    return Ok(Incoming::Reject(431, "Request Header Fields Too Large"))
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Ok(Incoming::Reject(431, "Request Header Fields Too Large"))
                }
                Err(_) => return Ok(Incoming::Reject(400, "Bad Request")),
            }
        }
        if read_more(stream, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(Incoming::Closed)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request head cut short",
                ))
            };
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: {SERVER}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.flush().await
}

/// A document in `format`, HTTP 200, as a BILLmanager answers everything.
async fn write_doc(
    stream: &mut TcpStream,
    doc: &Element,
    format: Format,
    keep_alive: bool,
) -> io::Result<()> {
    let body = render(doc, format);
    write_response(stream, 200, "OK", format.content_type(), &body, keep_alive).await
}

/// A web server's HTML status page (404, 405, 502, …).
async fn write_html(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let body = format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>{SERVER}</center>\r\n</body>\r\n</html>\r\n"
    );
    write_response(
        stream,
        status,
        reason,
        "text/html",
        body.as_bytes(),
        keep_alive,
    )
    .await
}
