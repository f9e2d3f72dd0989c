//! The pingora `ProxyHttp` phases. They only read the request off the wire, call
//! [`Gateway::handle`] and write its answer; every decision lives there. The `logging`
//! phase writes the access line and is the only place a request's outcome is counted
//! (every request: refused paths and methods and broken clients too).
//!
//! Every call is answered from `request_filter`: the gateway needs the whole request to
//! decide (authentication, rewriting) and the whole upstream answer before replying
//! (validation, rewriting, recording), so it forwards through pingora's pooled
//! connector ([`crate::upstream`]) rather than the streaming proxy path. That keeps
//! one rule simple: the reseller always receives a complete document with a
//! `Content-Length`, even when the upstream fails half-way.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use super::client_addr::{self, Cidr};
use super::crashpoint::{self, Point};
use super::{auth, rewrite, Gateway, Incoming, Refusal, Reply};
use crate::billmgr::{Format, ParamError};
use crate::telemetry::RequestLog;

pub use crate::billmgr::PATHS;

/// The pingora service around a [`Gateway`].
pub struct GatewayService {
    pub gateway: Arc<Gateway>,
    pub keepalive_timeout_s: u64,
    /// How long a client may take to send its body.
    pub client_timeout: Duration,
    /// The paths the API answers on (`[server] paths`).
    pub paths: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client (`[server] trusted_proxies`).
    pub trusted_proxies: Vec<Cidr>,
}

/// Per-request context: the access-log record.
pub struct Ctx {
    started: Instant,
    log: RequestLog,
}

/// The client's address: the peer's, or the one `X-Forwarded-For` names when the peer is
/// a trusted proxy ([`client_addr::client_ip`]).
fn client_ip(session: &Session, trusted: &[Cidr]) -> IpAddr {
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if trusted.is_empty() {
        return peer;
    }
    let headers = &session.req_header().headers;
    let values: Option<Vec<&str>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .collect();
    match values {
        Some(v) => client_addr::client_ip(peer, &v, trusted),
        // Not text: malformed, the peer it is.
        None => peer,
    }
}

/// An HTTP/1.1 request with `Expect: 100-continue`: the client waits for an interim
/// `100 Continue` before it sends the body.
pub fn expects_continue(req: &pingora::http::RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get(http::header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// A call refused before its body is read (wrong path or method), in the format its
/// query asks for.
fn refusal(ctx: &mut Ctx, query: Option<&str>, status: u16, r: &Refusal) -> (u16, Reply) {
    let format = rewrite::sniff_format(query, b"");
    let reply = super::refuse(r, format, "en", &mut ctx.log);
    (status, reply)
}

impl GatewayService {
    /// Read the body, bounded by size and time. Past the size limit nothing more is read
    /// (what was read still tells the format of the error), and the connection is closed
    /// after the answer.
    async fn read_body(&self, session: &mut Session) -> (Bytes, Option<ParamError>) {
        let limit = self.gateway.limits().max_body_bytes;
        let mut body = BytesMut::new();
        let deadline = tokio::time::Instant::now() + self.client_timeout;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, session.read_request_body()).await {
                Ok(Ok(c)) => c,
                Ok(Err(_)) | Err(_) => {
                    session.set_keepalive(None);
                    return (body.freeze(), Some(ParamError::Incomplete));
                }
            };
            match chunk {
                None => return (body.freeze(), None),
                Some(c) => {
                    if body.len() + c.len() > limit {
                        session.set_keepalive(None);
                        body.extend_from_slice(&c[..limit - body.len()]);
                        return (body.freeze(), Some(ParamError::BodyTooLarge { limit }));
                    }
                    body.extend_from_slice(&c);
                }
            }
        }
    }

    async fn write_reply(session: &mut Session, status: u16, reply: &Reply) -> Result<()> {
        let mut h = ResponseHeader::build(status, Some(5))?;
        h.insert_header(http::header::CONTENT_TYPE, reply.format.content_type())?;
        h.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string())?;
        h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        if let Some(c) = &reply.set_cookie {
            h.insert_header(http::header::SET_COOKIE, c.as_str())?;
        }
        session.write_response_header(Box::new(h), false).await?;
        session
            .write_response_body(Some(reply.body.clone()), true)
            .await
    }
}

#[async_trait]
impl ProxyHttp for GatewayService {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            log: RequestLog {
                outcome: "aborted",
                ..Default::default()
            },
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        session.set_keepalive(Some(self.keepalive_timeout_s));
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.clone();
        let query = session.req_header().uri.query().map(str::to_string);
        let client = client_ip(session, &self.trusted_proxies);
        ctx.log.client = Some(client);
        let (status, reply) = if !self.paths.contains(&path) {
            let r = Refusal::UnknownPath {
                hint: self
                    .paths
                    .first()
                    .map_or("/billmgr", String::as_str)
                    .to_string(),
            };
            refusal(ctx, query.as_deref(), 404, &r)
        } else if method != http::Method::GET && method != http::Method::POST {
            session.set_keepalive(None);
            refusal(ctx, query.as_deref(), 405, &Refusal::WrongMethod)
        } else {
            if expects_continue(session.req_header()) {
                // The client waits for this before sending its body (curl: 1 s).
                session.write_continue_response().await?;
            }
            let (body, body_error) = self.read_body(session).await;
            let cookie = session
                .req_header()
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(auth::session_cookie)
                .map(str::to_string);
            let incoming = Incoming {
                query: query.as_deref(),
                body,
                body_error,
                cookie_sid: cookie.as_deref(),
                client_ip: client,
            };
            (200, self.gateway.handle(incoming, &mut ctx.log).await)
        };
        ctx.log.status = status;
        Self::write_reply(session, status, &reply).await?;
        if ctx
            .log
            .func
            .as_deref()
            .is_some_and(super::functions::is_order)
        {
            crashpoint::reached(Point::ResellerAnswered).await;
        }
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // Unreachable: request_filter answers every call.
        Error::e_explain(
            ErrorType::InternalError,
            "every call is answered in request_filter",
        )
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        // Only a broken downstream gets here (it went away, or sent a malformed request).
        ctx.log.outcome = "client_error";
        let code = match e.etype() {
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => 0,
            _ => {
                let reply = Reply {
                    body: Refusal::RequestUnreadable.document(Format::Xml, "en"),
                    format: Format::Xml,
                    set_cookie: None,
                };
                let _ = Self::write_reply(session, 400, &reply).await;
                400
            }
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, _session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let total = ctx.started.elapsed();
        let metrics = &self.gateway.metrics;
        metrics.count_outcome(ctx.log.outcome);
        metrics.observe_request(ctx.log.func.as_deref(), total, ctx.log.upstream_latency);
        ctx.log.emit(total);
    }

    /// pingora prints this in its error lines; the default includes the query string,
    /// which may carry `authinfo`.
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        format!(
            "{} {}",
            session.req_header().method,
            session.req_header().uri.path()
        )
    }
}
