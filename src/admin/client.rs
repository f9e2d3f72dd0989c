//! The command line's client of a running gateway's admin listener, over pingora's
//! connector (the product's one HTTP client stack). Plain HTTP to `http://HOST:PORT`
//! (the admin listener has no TLS); one request per call; the answer is bounded.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use crate::secret::Secret;

/// Largest admin answer read (a mapping export, an audit page, a ledger month).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Why a call to the admin listener failed (before an HTTP answer).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the admin URL '{0}' is not http://HOST:PORT")]
    BadUrl(String),
    #[error("cannot reach the admin listener at {0}")]
    Connect(String),
    #[error("the admin listener at {0} broke off the exchange")]
    Exchange(String),
    #[error("the admin answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
}

/// What the admin listener answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `http://HOST:PORT[/]` → the address and the Host header.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String), ClientError> {
    let bad = || ClientError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.is_empty() || hostport.contains('/') || hostport.contains('@') {
        return Err(bad());
    }
    let addr = hostport
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)?;
    Ok((addr, hostport.to_string()))
}

/// One request to the admin listener at `url` with `token`.
pub async fn call(
    url: &str,
    token: &Secret,
    method: &str,
    path_and_query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Answer, ClientError> {
    let (addr, host) = parse_url(url)?;
    let mut peer = HttpPeer::new(addr, false, String::new());
    let t = Duration::from_secs(5);
    peer.options.connection_timeout = Some(t);
    peer.options.total_connection_timeout = Some(t);
    let read = Duration::from_secs(300);
    peer.options.read_timeout = Some(read);
    peer.options.write_timeout = Some(read);
    let connector = Connector::new(None);
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|_| ClientError::Connect(url.to_string()))?;
    let broke = |_| ClientError::Exchange(url.to_string());
    let mut req = RequestHeader::build(method, path_and_query.as_bytes(), None)
        .map_err(|_| ClientError::BadUrl(url.to_string()))?;
    let bearer = format!("Bearer {}", token.expose());
    for (k, v) in [
        ("Host", host.as_str()),
        ("Authorization", bearer.as_str()),
        ("Content-Type", content_type),
        ("Content-Length", &body.len().to_string()),
        ("Connection", "close"),
    ] {
        req.insert_header(k.to_string(), v.to_string())
            .map_err(|_| ClientError::BadUrl(url.to_string()))?;
    }
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(broke)?;
    session
        .write_request_body(Bytes::from(body), true)
        .await
        .map_err(broke)?;
    session.finish_request_body().await.map_err(broke)?;
    session.read_response_header().await.map_err(broke)?;
    let status = session
        .response_header()
        .map(|h| h.status.as_u16())
        .unwrap_or(0);
    let mut out = Vec::new();
    while let Some(chunk) = session.read_response_body().await.map_err(broke)? {
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ClientError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        body: Bytes::from(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(parse_url("http://127.0.0.1:1501").is_ok());
        assert!(parse_url("http://127.0.0.1:1501/").is_ok());
        for bad in [
            "https://127.0.0.1:1501",
            "127.0.0.1:1501",
            "http://a@127.0.0.1:1",
            "http://127.0.0.1:1501/x",
            "http://",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
