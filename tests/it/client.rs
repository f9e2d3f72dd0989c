//! A tiny HTTP/1.1 client for the tests (the product's one client is pingora's connector,
//! `resellgate::proxy::upstream`): one connection per call, `Connection: close`, bodies
//! read by `Content-Length`, chunked transfer-encoding, or until the server closes. Every call has a deadline ([`DEFAULT_TIMEOUT`] unless given) so a test
//! never hangs forever; running out of time is an [`io::ErrorKind::TimedOut`] error.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A response as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request with the default timeout.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_with_timeout(addr, method, path_and_query, headers, body, DEFAULT_TIMEOUT).await
}

/// One request that must complete (connect, send, read the whole response) within `timeout`.
pub async fn request_with_timeout(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let call = exchange(addr, method, path_and_query, headers, body);
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{method} {addr} got no complete answer within {timeout:?}"),
        )),
    }
}

/// Blocking `GET` with the default timeout.
pub fn get(addr: SocketAddr, path_and_query: &str) -> io::Result<Response> {
    blocking(addr, "GET", path_and_query, &[], b"", DEFAULT_TIMEOUT)
}

/// Blocking `POST` of an `application/x-www-form-urlencoded` body with the default timeout.
pub fn post_form(addr: SocketAddr, path: &str, form: &str) -> io::Result<Response> {
    blocking(addr, "POST", path, &[], form.as_bytes(), DEFAULT_TIMEOUT)
}

/// Any request, blocking, on a small current-thread runtime. Safe to call from inside a
/// runtime too (it then runs on a scoped helper thread).
pub fn blocking(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let run = || -> io::Result<Response> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(request_with_timeout(
            addr,
            method,
            path_and_query,
            headers,
            body,
            timeout,
        ))
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(run).join())
            .unwrap_or_else(|_| Err(io::Error::other("the client thread panicked")))
    } else {
        run()
    }
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path_and_query} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        if !has("content-type") {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.flush().await?;
    read_response(&mut stream, method.eq_ignore_ascii_case("HEAD")).await
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Read one response from `stream` (which the server may close at the end).
pub async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    head_request: bool,
) -> io::Result<Response> {
    let mut r = Reader {
        inner: stream,
        buf: Vec::with_capacity(8192),
        pos: 0,
    };
    let (status, headers, head_len) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Response::new(&mut hs);
        match parsed.parse(&r.buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = parsed.code.unwrap_or(0);
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (status, headers, n);
            }
            Ok(httparse::Status::Partial) => {
                if r.buf.len() > MAX_HEAD {
                    return Err(bad("response head larger than 64 KiB"));
                }
                if r.fill().await? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        if r.buf.is_empty() {
                            "the server closed the connection without answering"
                        } else {
                            "response head cut short"
                        },
                    ));
                }
            }
            Err(e) => return Err(bad(format!("malformed response head: {e}"))),
        }
    };
    r.pos = head_len;
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status / 100 == 1 || status == 204 || status == 304 {
        return Ok(resp);
    }
    let chunked = resp.header("transfer-encoding").is_some_and(|te| {
        te.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
    });
    resp.body = if chunked {
        r.read_chunked().await?
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| bad("invalid Content-Length"))?;
        if len > MAX_BODY {
            return Err(bad("response body too large"));
        }
        r.read_exact(len).await?
    } else {
        r.read_to_end().await?
    };
    Ok(resp)
}

/// A buffered reader over the stream; `buf[pos..]` is read but not consumed.
struct Reader<'a, R> {
    inner: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: tokio::io::AsyncRead + Unpin> Reader<'_, R> {
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.inner.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn available(&self) -> usize {
        self.buf.len() - self.pos
    }

    async fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.available() < n {
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "response body cut short",
                ));
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// One line without its CRLF (a bare LF is tolerated).
    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|b| *b == b'\n') {
                let line = &self.buf[self.pos..self.pos + i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let s = String::from_utf8_lossy(line).into_owned();
                self.pos += i + 1;
                return Ok(s);
            }
            if self.available() > MAX_HEAD {
                return Err(bad("chunk line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "chunked body cut short",
                ));
            }
        }
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("invalid chunk size {size:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("response body too large"));
            }
            body.extend(self.read_exact(size).await?);
            if !self.read_line().await?.is_empty() {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
    }

    async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? > 0 {
            if self.available() > MAX_BODY {
                return Err(bad("response body too large"));
            }
        }
        let out = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serve one canned response on an ephemeral port, after reading the request head.
    async fn canned(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            // Dribble the answer in small pieces to exercise partial reads.
            for piece in response.chunks(7) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
            }
        });
        addr
    }

    /// A chunked response (with an extension and a trailer) is decoded, not passed raw.
    #[tokio::test]
    async fn decodes_chunked_bodies() {
        let addr = canned(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/xml\r\n\r\n5;ext=1\r\n<doc>\r\nB\r\n<ok/></doc>\r\n0\r\nX-Trailer: 1\r\n\r\n",
        )
        .await;
        let r = request(addr, "GET", "/billmgr?func=x", &[], b"")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/xml"));
        assert_eq!(r.text(), "<doc><ok/></doc>");
    }

    /// Without Content-Length or chunking the body runs until the server closes.
    #[tokio::test]
    async fn reads_until_close() {
        let addr =
            canned(b"HTTP/1.0 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html>bad</html>")
                .await;
        let r = request(addr, "GET", "/", &[], b"").await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (502, "<html>bad</html>"));
    }

    /// A body shorter than its Content-Length is an error, not a silently short body.
    #[tokio::test]
    async fn short_body_is_an_error() {
        let addr = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").await;
        let e = request(addr, "GET", "/", &[], b"").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A server that never answers ends in TimedOut, not a hung test.
    #[tokio::test]
    async fn times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let keep = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let e = request_with_timeout(addr, "GET", "/", &[], b"", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        keep.abort();
    }

    /// The request on the wire: Host, Content-Type default, Content-Length, Connection: close.
    #[tokio::test]
    async fn sends_a_well_formed_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"a=1&b=2") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let r = request(addr, "POST", "/billmgr", &[("X-Test", "yes")], b"a=1&b=2")
            .await
            .unwrap();
        assert_eq!(r.status, 204);
        let sent = server.await.unwrap();
        assert!(sent.starts_with("POST /billmgr HTTP/1.1\r\n"), "{sent}");
        for h in [
            format!("Host: {addr}\r\n"),
            "X-Test: yes\r\n".into(),
            "Content-Type: application/x-www-form-urlencoded\r\n".into(),
            "Content-Length: 7\r\n".into(),
            "Connection: close\r\n".into(),
        ] {
            assert!(sent.contains(&h), "{h:?} missing in {sent}");
        }
    }
}
