//! Forwarding one call to the selling BILLmanager over pingora's pooled connector.
//!
//! Every call goes out as `POST <upstream path>` with a form body (so `authinfo` never
//! lands in the upstream's access log). Connect, read and write timeouts come from
//! config; only calls that change nothing (no `sok`, not a toolbar action such as
//! `certificate.delete`) are retried. Failures are [`UpstreamError`]s, which the
//! proxy names as refusals (`upstream` error documents).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

/// Where and how to reach the upstream.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub ca_file: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub retries: u32,
    pub max_response_bytes: usize,
    /// Answers larger than this hold one of `max_large_responses` permits while they
    /// are read, rewritten and sent.
    pub large_response_bytes: usize,
    pub max_large_responses: usize,
}

/// A large answer's bytes and the permit that let it be read: the permit goes back when
/// the last copy of the bytes is dropped (after the reseller got them).
struct LargeBody {
    bytes: Vec<u8>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for LargeBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// How many informational (1xx) answers may precede the upstream's real answer.
const MAX_INFORMATIONAL: usize = 8;

/// What the upstream answered.
#[derive(Debug)]
pub struct UpstreamAnswer {
    pub status: u16,
    pub body: Bytes,
    pub latency: Duration,
    pub attempts: u32,
}

/// Why a call failed. Messages name no address, account or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream billing could not be reached")]
    Connect,
    #[error("the upstream billing did not answer in time")]
    Timeout,
    #[error("the upstream billing closed the connection before answering")]
    Closed,
    #[error("the upstream billing answered more than {0} bytes")]
    TooLarge(usize),
    #[error("the upstream billing answered HTTP {0}")]
    Status(u16),
    #[error("the upstream billing answered a document that could not be read")]
    Garbage,
}

impl UpstreamError {
    /// Could retrying help (for a call that changes nothing)?
    fn retryable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect | UpstreamError::Closed | UpstreamError::Timeout
        )
    }

    /// `Connect` means nothing was sent: an order failing so is known not to have happened.
    pub fn request_was_sent(&self) -> bool {
        !matches!(self, UpstreamError::Connect)
    }

    pub fn label(&self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Closed => "closed",
            UpstreamError::TooLarge(_) => "too_large",
            UpstreamError::Status(_) => "status",
            UpstreamError::Garbage => "garbage",
        }
    }
}

/// The upstream and a pool of connections to it.
pub struct Upstream {
    settings: UpstreamSettings,
    /// Permits for large answers (see [`UpstreamSettings::large_response_bytes`]).
    large: std::sync::Arc<tokio::sync::Semaphore>,
    connector: Connector,
    peer: HttpPeer,
    host_header: String,
}

impl Upstream {
    /// Resolve the upstream's address once and set up the connector.
    pub fn new(settings: UpstreamSettings) -> anyhow::Result<Upstream> {
        let addr: SocketAddr = (settings.host.as_str(), settings.port)
            .to_socket_addrs()
            .map_err(|e| {
                anyhow::anyhow!("cannot resolve the upstream host '{}': {e}", settings.host)
            })?
            .next()
            .ok_or_else(|| {
                anyhow::anyhow!("the upstream host '{}' has no address", settings.host)
            })?;
        let mut peer = HttpPeer::new(addr, settings.tls, settings.host.clone());
        peer.options.connection_timeout = Some(settings.connect_timeout);
        peer.options.total_connection_timeout = Some(settings.connect_timeout);
        peer.options.read_timeout = Some(settings.read_timeout);
        peer.options.write_timeout = Some(settings.read_timeout);
        peer.options.idle_timeout = Some(settings.idle_timeout);
        let mut opts = ConnectorOptions::new(128);
        opts.ca_file = settings.ca_file.clone();
        let default_port = if settings.tls { 443 } else { 80 };
        let host_header = if settings.port == default_port {
            settings.host.clone()
        } else if settings.host.contains(':') {
            format!("[{}]:{}", settings.host, settings.port)
        } else {
            format!("{}:{}", settings.host, settings.port)
        };
        Ok(Upstream {
            large: std::sync::Arc::new(tokio::sync::Semaphore::new(
                settings.max_large_responses.max(1),
            )),
            connector: Connector::new(Some(opts)),
            peer,
            host_header,
            settings,
        })
    }

    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    /// Send `form`; retry when `retry_allowed` (the call changes nothing).
    pub async fn call(
        &self,
        form: Bytes,
        retry_allowed: bool,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let start = Instant::now();
        let max_attempts = if retry_allowed {
            1 + self.settings.retries
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let deadline = self.settings.connect_timeout + self.settings.read_timeout;
            let result = match tokio::time::timeout(deadline, self.call_once(form.clone())).await {
                Ok(r) => r,
                Err(_) => Err(UpstreamError::Timeout),
            };
            match result {
                Ok((status, body)) => {
                    return Ok(UpstreamAnswer {
                        status,
                        body,
                        latency: start.elapsed(),
                        attempts: attempt,
                    });
                }
                Err(e) if e.retryable() && attempt < max_attempts => {
                    tracing::debug!(error = %e, attempt, "retrying upstream call");
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn call_once(&self, form: Bytes) -> Result<(u16, Bytes), UpstreamError> {
        let (mut session, _reused) =
            self.connector
                .get_http_session(&self.peer)
                .await
                .map_err(|e| {
                    // A connect timeout is still "nothing was sent": Connect, not Timeout.
                    tracing::debug!(error = %e, "upstream connect failed");
                    UpstreamError::Connect
                })?;
        session.set_read_timeout(Some(self.settings.read_timeout));
        session.set_write_timeout(Some(self.settings.read_timeout));
        let io = |e: Box<pingora::Error>| {
            tracing::debug!(error = %e, "upstream exchange failed");
            match e.etype() {
                pingora::ErrorType::ReadTimedout | pingora::ErrorType::WriteTimedout => {
                    UpstreamError::Timeout
                }
                _ => UpstreamError::Closed,
            }
        };
        let mut req = RequestHeader::build("POST", self.settings.path.as_bytes(), None)
            .map_err(|_| UpstreamError::Connect)?;
        // Borrowed values: no String per header per call.
        let length = form.len().to_string();
        let headers: [(&str, &str); 5] = [
            ("Host", &self.host_header),
            (
                "User-Agent",
                concat!("resellgate/", env!("CARGO_PKG_VERSION")),
            ),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", &length),
            ("Accept-Encoding", "identity"),
        ];
        for (k, v) in headers {
            req.insert_header(k, v)
                .map_err(|_| UpstreamError::Connect)?;
        }
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(io)?;
        session.write_request_body(form, true).await.map_err(io)?;
        session.finish_request_body().await.map_err(io)?;
        // Informational answers (`100 Continue`, `103 Early Hints`) come before the real
        // one: skip them, a bounded number of times.
        let mut status = 0;
        for _ in 0..MAX_INFORMATIONAL + 1 {
            session.read_response_header().await.map_err(io)?;
            status = session
                .response_header()
                .map(|h| h.status.as_u16())
                .unwrap_or(0);
            if !(100..200).contains(&status) {
                break;
            }
        }
        if (100..200).contains(&status) {
            return Err(UpstreamError::Status(status));
        }
        // An answer that arrives in one chunk is kept as that chunk (pingora's own copy
        // of it): no second copy of the whole document. Later chunks are appended.
        let mut first: Option<Bytes> = None;
        let mut body = Vec::new();
        let mut permit = None;
        while let Some(chunk) = session.read_response_body().await.map_err(io)? {
            let held = first.as_ref().map_or(0, Bytes::len) + body.len();
            if held + chunk.len() > self.settings.max_response_bytes {
                return Err(UpstreamError::TooLarge(self.settings.max_response_bytes));
            }
            if permit.is_none() && held + chunk.len() > self.settings.large_response_bytes {
                // Wait for a large-answer permit before holding more; the call's deadline
                // still runs.
                permit = Some(
                    self.large
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| UpstreamError::Closed)?,
                );
            }
            if held == 0 && first.is_none() {
                first = Some(chunk);
                continue;
            }
            if let Some(f) = first.take() {
                body.reserve(f.len() + chunk.len());
                body.extend_from_slice(&f);
            }
            body.extend_from_slice(&chunk);
        }
        if session.response_done() {
            self.connector
                .release_http_session(session, &self.peer, Some(self.settings.idle_timeout))
                .await;
        }
        if status != 200 {
            return Err(UpstreamError::Status(status));
        }
        let body = match (permit, first) {
            (Some(p), first) => Bytes::from_owner(LargeBody {
                bytes: match first {
                    Some(f) => f.to_vec(),
                    None => body,
                },
                _permit: p,
            }),
            (None, Some(f)) => f,
            (None, None) => Bytes::from(body),
        };
        Ok((status, body))
    }
}
