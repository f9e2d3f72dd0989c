//! The sandbox server through real sockets, seen from the client side (moved here from
//! the library's unit tests with the test-only HTTP client).

use std::io;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use resellgate::billmgr::{parse, ErrorType, Format};
use resellgate::sandbox::{spawn, Fault, FaultPhase, Sandbox, SandboxHandle, SandboxServer};

use crate::client::{self, read_response, request, request_with_timeout};

const WHOAMI: &str = "/billmgr?func=whoami&authinfo=acme@sandbox:acme-upstream-pw";

fn start() -> SandboxHandle {
    spawn("127.0.0.1:0", Sandbox::demo()).unwrap()
}

const ORDER_FORM: &str = "func=certificate.order.param&sok=ok&skipbasket=on&authinfo=acme%40sandbox%3Aacme-upstream-pw\
&pricelist=3033&period=12&CN=shop.example.com&adm_fname=Ann&adm_lname=Admin&adm_email=ann%40example.com\
&adm_phone=%2B1+555+0100&like_admin=on&approver_email_1=admin%40example.com&remoteid=l1";

/// GET answers XML by default with its content type and length; POST bodies are merged
/// with the query (here `out=json` in the query, the order in the body).
#[test]
fn get_and_post_blocking() {
    let h = start();
    let r = client::get(h.addr, WHOAMI).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/xml; charset=UTF-8"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let doc = parse(&r.body, Format::Xml).unwrap();
    assert_eq!(
        doc.find("user").unwrap().child_text("balance"),
        Some("1000.00")
    );

    let r = client::post_form(h.addr, "/manager/billmgr?out=json", ORDER_FORM).unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(r.text(), r#"{"doc":{"ok":{},"id":{"$":"5001"}}}"#);
    assert_eq!(h.sandbox.order_count(), 1);
    let got = h.sandbox.received();
    assert_eq!(
        got[1].get("authinfo"),
        Some("acme@sandbox:acme-upstream-pw")
    );
    assert_eq!(got[1].get("out"), Some("json"));

    // `/` works too; other paths are a web server's 404 page.
    assert_eq!(
        client::get(h.addr, "/?func=pricelist.export&out=bjson")
            .unwrap()
            .status,
        200
    );
    let r = client::get(h.addr, "/index.html").unwrap();
    assert_eq!(
        (r.status, r.header("content-type")),
        (404, Some("text/html"))
    );
    assert!(r.text().contains("404 Not Found"));
}

/// Broken parameters answer an error document with HTTP 200 in the requested format.
#[tokio::test]
async fn bad_params_are_an_error_document() {
    let h = start();
    let r = request(
        h.addr,
        "GET",
        "/billmgr?func=whoami&out=json&x=%zz",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let doc = parse(&r.body, Format::Json).unwrap();
    assert_eq!(
        resellgate::billmgr::BmError::from_doc(&doc).unwrap().kind,
        ErrorType::Value
    );
}

/// Two requests on one keep-alive connection both answer; `Connection: close` ends it.
#[tokio::test]
async fn keep_alive_two_requests_one_connection() {
    let h = start();
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(format!("GET {WHOAMI} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let r1 = read_response(&mut s, false).await.unwrap();
    assert_eq!(
        (r1.status, r1.header("connection")),
        (200, Some("keep-alive"))
    );
    let body = "func=pricelist.export&out=bjson";
    s.write_all(
        format!(
            "POST /billmgr HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r2 = read_response(&mut s, false).await.unwrap();
    assert_eq!((r2.status, r2.header("connection")), (200, Some("close")));
    assert!(r2.text().starts_with(r#"{"pricelist":["#), "{}", r2.text());
    // The server closed: the next read sees EOF.
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest)
        .await
        .unwrap();
    assert!(rest.is_empty());
}

/// A session from `func=auth` works as the `billmgrses5` cookie.
#[tokio::test]
async fn session_cookie() {
    let h = start();
    let r = request(
        h.addr,
        "POST",
        "/billmgr",
        &[],
        b"func=auth&username=globex%40sandbox&password=globex-upstream-pw&out=json",
    )
    .await
    .unwrap();
    let doc = parse(&r.body, Format::Json).unwrap();
    let sid = doc
        .find("auth")
        .unwrap()
        .get_attr("id")
        .unwrap()
        .to_string();
    let cookie = format!("lang=en; billmgrses5={sid}");
    let r = request(
        h.addr,
        "GET",
        "/billmgr?func=whoami",
        &[("Cookie", &cookie)],
        b"",
    )
    .await
    .unwrap();
    let doc = parse(&r.body, Format::Xml).unwrap();
    assert_eq!(
        doc.find("user").unwrap().child_text("name"),
        Some("globex@sandbox"),
        "{}",
        r.text()
    );
}

/// Chunked request bodies are refused with 411; oversized bodies with 413.
#[tokio::test]
async fn chunked_and_oversized_requests_refused() {
    let h = start();
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(b"POST /billmgr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s, false).await.unwrap().status, 411);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(b"POST /billmgr HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s, false).await.unwrap().status, 413);
}

/// Each injected fault, as a client sees it.
#[tokio::test]
async fn faults_seen_from_the_client() {
    let h = start();
    let sb = &h.sandbox;
    let get =
        |t: u64| request_with_timeout(h.addr, "GET", WHOAMI, &[], b"", Duration::from_millis(t));

    sb.inject(Fault::Reset, FaultPhase::BeforeHandling);
    let e = get(5000).await.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
        ),
        "{e:?}"
    );

    sb.inject(Fault::Hang, FaultPhase::BeforeHandling);
    assert_eq!(get(300).await.unwrap_err().kind(), io::ErrorKind::TimedOut);

    sb.inject(Fault::Garbage, FaultPhase::BeforeHandling);
    let r = get(5000).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
    assert!(parse(&r.body, Format::Xml).is_err());

    sb.inject(Fault::Html502, FaultPhase::BeforeHandling);
    let r = get(5000).await.unwrap();
    assert_eq!(
        (r.status, r.header("content-type")),
        (502, Some("text/html"))
    );
    assert!(r.text().contains("502 Bad Gateway"));

    sb.inject(Fault::Empty, FaultPhase::BeforeHandling);
    let r = get(5000).await.unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));

    // Queue drained: normal answers again; every call was recorded as received.
    assert_eq!(get(5000).await.unwrap().status, 200);
    assert_eq!(sb.received().len(), 6);
}

/// AfterHandling: the order is really taken and charged, but the answer is lost.
#[tokio::test]
async fn fault_after_handling_takes_the_order() {
    let h = start();
    h.sandbox.inject(Fault::Reset, FaultPhase::AfterHandling);
    assert!(
        request(h.addr, "POST", "/billmgr", &[], ORDER_FORM.as_bytes())
            .await
            .is_err()
    );
    assert_eq!(h.sandbox.order_count(), 1);
    assert_eq!(h.sandbox.certificates()[0].remoteid.as_deref(), Some("l1"));
    assert_eq!(
        h.sandbox.balance("acme@sandbox"),
        Some("991.00".parse().unwrap())
    );
    // Before handling: nothing is taken.
    h.sandbox.inject(Fault::Empty, FaultPhase::BeforeHandling);
    let r = request(h.addr, "POST", "/billmgr", &[], ORDER_FORM.as_bytes())
        .await
        .unwrap();
    assert!(r.body.is_empty());
    assert_eq!(h.sandbox.order_count(), 1);
}

/// `latency_ms` delays every answer.
#[tokio::test]
async fn latency_knob() {
    let h = start();
    h.sandbox.knobs().set_latency_ms(150);
    let t = Instant::now();
    assert_eq!(
        request(h.addr, "GET", WHOAMI, &[], b"")
            .await
            .unwrap()
            .status,
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(150));
}

/// Dropping the handle stops the server and ends a hanging connection (the client sees
/// the close, not its timeout).
#[tokio::test]
async fn drop_ends_hanging_connections() {
    let h = start();
    let addr = h.addr;
    h.sandbox.inject(Fault::Hang, FaultPhase::BeforeHandling);
    let pending = tokio::spawn(async move {
        request_with_timeout(addr, "GET", WHOAMI, &[], b"", Duration::from_secs(10)).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    tokio::task::spawn_blocking(move || drop(h)).await.unwrap();
    let e = pending.await.unwrap().unwrap_err();
    assert_ne!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(addr).await.is_err());
}

/// `SandboxServer::run` inside the caller's runtime stops when its shutdown future resolves.
#[tokio::test]
async fn run_with_shutdown_future() {
    let server = SandboxServer::bind("127.0.0.1:0", Sandbox::demo())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    assert_eq!(
        request(addr, "GET", WHOAMI, &[], b"").await.unwrap().status,
        200
    );
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// `Expect: 100-continue` gets its interim answer before the body is sent.
#[tokio::test]
async fn expect_continue() {
    let h = start();
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let body = "func=whoami&authinfo=acme%40sandbox%3Aacme-upstream-pw";
    s.write_all(
        format!("POST /billmgr HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(read_response(&mut s, false).await.unwrap().status, 100);
    s.write_all(body.as_bytes()).await.unwrap();
    let r = read_response(&mut s, false).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("<balance>1000.00</balance>"),
        "{}",
        r.text()
    );
}
