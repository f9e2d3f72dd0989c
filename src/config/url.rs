//! The upstream URL, parsed by hand: `http[s]://host[:port][/path]`.
//!
//! Only what a BILLmanager endpoint needs is accepted: scheme http or https, a host name,
//! IPv4 or bracketed IPv6 address, an optional port (default 80/443) and a path (default
//! `/billmgr`). User info, a query or a fragment are refused: credentials belong in mapping
//! files, and the gateway builds the query itself.

use std::fmt;

/// A validated upstream base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `https` (true) or `http` (false).
    pub tls: bool,
    /// The host without brackets (`billing.example.com`, `127.0.0.1`, `::1`).
    pub host: String,
    pub port: u16,
    /// The request path, starting with `/` (default `/billmgr`).
    pub path: String,
}

impl UpstreamUrl {
    /// Parses and validates `text`; the error is the reason, without the value (the caller
    /// names file, key and value).
    pub fn parse(text: &str) -> Result<UpstreamUrl, String> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the URL must not contain spaces or control characters".into());
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| "expected http://HOST[:PORT][/PATH] or https://…".to_string())?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err("the scheme must be http or https".into()),
        };
        if rest.contains('?') || rest.contains('#') {
            return Err("the URL must not have a query or a fragment".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(
                "the URL must not carry user info (put credentials in mapping files)".into(),
            );
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)?;
        let path = if path.is_empty() || path == "/" {
            "/billmgr".to_string()
        } else {
            path.to_string()
        };
        Ok(UpstreamUrl {
            tls,
            host,
            port,
            path,
        })
    }

    /// `host:port`, with brackets around an IPv6 address — what a socket connect takes.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header value: the port is left out when it is the scheme's default.
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            }
        } else {
            self.authority()
        }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| "an IPv6 host needs a closing ']'".to_string())?;
        let host = &rest[..end];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{host}' is not an IPv6 address"));
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| "unexpected text after ']'".to_string())?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!("'{host}' is not a valid host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("'{p}' is not a valid port (1-65535)")),
            Ok(n) => n,
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> UpstreamUrl {
        UpstreamUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepts_and_defaults() {
        assert_eq!(
            ok("https://billing.example.com"),
            UpstreamUrl {
                tls: true,
                host: "billing.example.com".into(),
                port: 443,
                path: "/billmgr".into()
            }
        );
        assert_eq!(
            ok("http://127.0.0.1:1600/billmgr"),
            UpstreamUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 1600,
                path: "/billmgr".into()
            }
        );
        let u = ok("HTTPS://[::1]:8443/manager/billmgr");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8443, "/manager/billmgr")
        );
        assert_eq!(u.authority(), "[::1]:8443");
        assert_eq!(ok("http://h/").path, "/billmgr");
        assert_eq!(ok("http://h:80/x").to_string(), "http://h/x");
        assert_eq!(
            ok("https://h:444/billmgr").to_string(),
            "https://h:444/billmgr"
        );
    }

    #[test]
    fn refuses() {
        for (bad, why) in [
            ("ftp://x", "scheme"),
            ("billing.example.com", "expected"),
            ("https://user:pw@h/billmgr", "user info"),
            ("https://h/billmgr?func=x", "query"),
            ("https://h/billmgr#x", "fragment"),
            ("https://:443/", "no host"),
            ("https://h:0/", "port"),
            ("https://h:99999/", "port"),
            ("https://h:x/", "port"),
            ("https://[::1/", "closing"),
            ("https://[nope]/", "IPv6"),
            ("https://h h/", "spaces"),
            ("https://h%41/", "host name"),
        ] {
            let e = UpstreamUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
