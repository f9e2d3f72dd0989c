//! Bounds on downstream connections, below HTTP: a cap on concurrent connections per
//! client address and a total deadline for reading each request's header.
//!
//! pingora 0.9 only bounds each *read* of a request header (`read_timeout`, and the
//! keep-alive timeout between requests), so a client trickling one byte every few seconds
//! holds a connection forever. [`Guarded`] wraps the proxy application: it refuses a
//! connection over the per-address cap with an error document, and wraps the stream in
//! [`HeaderDeadline`], which fails reads once a request's header has taken longer than
//! `header_timeout` (counted from the connection's start, and on a kept-alive connection
//! from the first byte of the next request) — pingora then closes the connection.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use pingora::apps::ServerApp;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::billmgr::Format;

/// `[server]` bounds on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Concurrent connections from one client address.
    pub max_per_ip: usize,
    /// The longest a request's header may take to arrive.
    pub header_timeout: Duration,
}

/// Open connections by client address.
#[derive(Debug, Default)]
pub struct ConnCounts {
    open: DashMap<IpAddr, usize>,
}

/// One counted connection; dropping it uncounts it.
pub struct ConnSlot {
    counts: Arc<ConnCounts>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.counts.open.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

impl ConnCounts {
    /// Count a connection from `ip` unless `max` are open already.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ConnSlot> {
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        drop(n);
        Some(ConnSlot {
            counts: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).map_or(0, |n| *n)
    }
}

/// The proxy application behind the connection bounds.
pub struct Guarded<A> {
    pub inner: Arc<A>,
    pub limits: ConnLimits,
    pub counts: Arc<ConnCounts>,
}

/// The bytes sent to a connection over the per-address cap: an error document (the
/// request was not read, so its format is unknown: XML) and `Connection: close`.
pub fn over_cap_response(max: usize) -> Vec<u8> {
    let body = super::Refusal::TooManyConnections { max }.document(Format::Xml, "en");
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        Format::Xml.content_type(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let _slot = match ip {
            Some(ip) => match self.counts.acquire(ip, self.limits.max_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!(client = %ip, max = self.limits.max_per_ip, "connection refused: too many from this address");
                    let _ = stream
                        .write_all(&over_cap_response(self.limits.max_per_ip))
                        .await;
                    let _ = stream.flush().await;
                    // Read what the client sent (briefly) so closing does not reset the
                    // connection before it read the answer.
                    let mut sink = [0u8; 4096];
                    let _ = tokio::time::timeout(Duration::from_millis(200), async {
                        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                    })
                    .await;
                    return None;
                }
            },
            None => None,
        };
        let stream: Stream = Box::new(HeaderDeadline::new(stream, self.limits.header_timeout));
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Where a connection is in its request/response cycle, as seen in its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: no deadline (pingora's keep-alive timeout applies).
    Idle,
    /// Reading a request header: the deadline runs.
    Header,
    /// The header is complete: the body and the answer (bounded elsewhere).
    Body,
}

/// Tracks the end of request headers in the bytes read and the start of answers in the
/// bytes written. Plain data in, phase out (unit-tested without sockets).
#[derive(Debug, Clone)]
pub struct HeaderWatch {
    phase: Phase,
    /// The last bytes of the header read so far (a terminator may span two reads).
    tail: Vec<u8>,
}

impl HeaderWatch {
    /// A new connection: its first request's header is awaited.
    pub fn new() -> Self {
        HeaderWatch {
            phase: Phase::Header,
            tail: Vec::new(),
        }
    }

    /// Bytes were read. Answers `true` when a new header started with them (the deadline
    /// starts now).
    pub fn on_read(&mut self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let started = self.phase == Phase::Idle;
        if started {
            self.phase = Phase::Header;
            self.tail.clear();
        }
        if self.phase == Phase::Header {
            let mut window = std::mem::take(&mut self.tail);
            window.extend_from_slice(bytes);
            let ended = window.windows(4).any(|w| w == b"\r\n\r\n")
                || window.windows(2).any(|w| w == b"\n\n");
            if ended {
                self.phase = Phase::Body;
            } else {
                let keep = window.len().saturating_sub(3);
                self.tail = window.split_off(keep);
            }
        }
        started
    }

    /// Bytes were written. A final answer (anything but an interim `HTTP/1.x 1xx`)
    /// ends the request: the next bytes read start a new header.
    pub fn on_write(&mut self, bytes: &[u8]) {
        let interim = bytes.len() > 9 && bytes.starts_with(b"HTTP/1.") && bytes[9] == b'1';
        if self.phase == Phase::Body && !interim && !bytes.is_empty() {
            self.phase = Phase::Idle;
        }
    }

    /// Is a request header being read (is the deadline running)?
    pub fn in_header(&self) -> bool {
        self.phase == Phase::Header
    }
}

impl Default for HeaderWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// A stream whose reads fail once a request header has taken longer than its deadline.
pub struct HeaderDeadline {
    inner: Stream,
    timeout: Duration,
    watch: HeaderWatch,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HeaderDeadline {
    pub fn new(inner: Stream, timeout: Duration) -> Self {
        HeaderDeadline {
            inner,
            timeout,
            watch: HeaderWatch::new(),
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl std::fmt::Debug for HeaderDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDeadline")
            .field("inner", &self.inner)
            .field("header", &self.watch.in_header())
            .finish()
    }
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.watch.in_header() {
            if let Some(d) = this.deadline.as_mut() {
                if d.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request header did not arrive in time",
                    )));
                }
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if this.watch.on_read(read) {
            this.deadline = Some(Box::pin(tokio::time::sleep(this.timeout)));
        }
        if !this.watch.in_header() {
            this.deadline = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.watch.on_write(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await
    }
}

impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderDeadline {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billmgr::{BmError, ErrorType};

    #[test]
    fn header_end_is_found_across_reads() {
        let mut w = HeaderWatch::new();
        assert!(w.in_header());
        assert!(!w.on_read(b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(w.in_header());
        w.on_read(b"\n\r");
        assert!(w.in_header());
        w.on_read(b"\nbody");
        assert!(!w.in_header());
        // an interim 100 Continue does not end the request; the answer does
        w.on_write(b"HTTP/1.1 100 Continue\r\n\r\n");
        w.on_read(b"more body");
        assert!(!w.in_header());
        w.on_write(b"HTTP/1.1 200 OK\r\n");
        w.on_write(b"<doc/>");
        // the next request on the connection starts with its first byte
        assert!(!w.in_header());
        assert!(w.on_read(b"P"));
        assert!(w.in_header());
        w.on_read(b"OST / HTTP/1.1\n\n");
        assert!(!w.in_header());
    }

    #[test]
    fn one_byte_at_a_time_stays_in_the_header() {
        let mut w = HeaderWatch::new();
        for b in b"GET / HTTP/1.1\r\nX-A: 1\r\n" {
            w.on_read(std::slice::from_ref(b));
            assert!(w.in_header());
        }
        w.on_read(b"\r");
        w.on_read(b"\n");
        assert!(!w.in_header());
    }

    #[test]
    fn connections_are_counted_per_address_up_to_the_cap() {
        let c = Arc::new(ConnCounts::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let a = c.acquire(ip, 2).unwrap();
        let _b = c.acquire(ip, 2).unwrap();
        assert!(c.acquire(ip, 2).is_none());
        let _x = c.acquire(other, 2).unwrap();
        drop(a);
        assert_eq!(c.open(ip), 1);
        let _c2 = c.acquire(ip, 2).unwrap();
        assert_eq!(c.open(ip), 2);
    }

    #[test]
    fn over_cap_answer_is_an_error_document() {
        let raw = over_cap_response(3);
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let doc = crate::billmgr::parse(body.as_bytes(), Format::Xml).unwrap();
        let e = BmError::from_doc(&doc).unwrap();
        assert_eq!(
            (e.kind, e.object.as_deref()),
            (ErrorType::Access, Some("connection"))
        );
    }
}
