//! Which address a request comes from. Behind a reverse proxy the peer is the proxy: when
//! the peer is one of `[server] trusted_proxies`, `X-Forwarded-For` names the client. The
//! address decided here binds sessions, keys login throttling and goes into the logs.
//!
//! Rule: read every `X-Forwarded-For` header in order as one comma-separated list and take
//! the right-most address that is not itself a trusted proxy (everything left of it was
//! written by hosts nobody vouches for). When every listed address is trusted, the
//! left-most is the client. A header from an untrusted peer is ignored; a malformed one
//! (an entry that is not an IP address, or no entry) from a trusted peer is ignored too,
//! and the peer's address is used.

use std::net::IpAddr;

use crate::config::cidr::canonical;
pub use crate::config::cidr::{parse_all, Cidr};

/// The client's address: the peer's, or the one `X-Forwarded-For` names when the peer is
/// a trusted proxy (see the module doc for the rule).
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if forwarded_for.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let mut hops = Vec::new();
    for header in forwarded_for {
        for entry in header.split(',') {
            match parse_hop(entry) {
                Some(ip) => hops.push(canonical(ip)),
                None => return peer,
            }
        }
    }
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(**ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]`, `[v6]:port` or `v4:port`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse() {
        return Some(ip);
    }
    if let Some(rest) = e.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse().ok();
    }
    let (v4, port) = e.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        parse_all(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn cidrs() {
        let n = nets(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "0.0.0.0/0"]);
        assert!(n[0].contains(ip("10.255.0.1")) && !n[0].contains(ip("11.0.0.1")));
        assert!(n[1].contains(ip("192.168.1.7")) && !n[1].contains(ip("192.168.1.8")));
        assert!(n[2].contains(ip("2001:db8:1::5")) && !n[2].contains(ip("2001:db9::1")));
        assert!(n[0].contains(ip("::ffff:10.1.2.3")));
        assert!(n[3].contains(ip("8.8.8.8")) && !n[3].contains(ip("::1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/", "::/129", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let t = nets(&["127.0.0.0/8", "10.0.0.0/8"]);
        let proxy = ip("127.0.0.1");
        // untrusted peer: the header is ignored
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["198.51.100.1"], &t),
            ip("203.0.113.9")
        );
        // trusted peer: the right-most untrusted address
        assert_eq!(client_ip(proxy, &["198.51.100.1"], &t), ip("198.51.100.1"));
        assert_eq!(
            client_ip(proxy, &["6.6.6.6, 198.51.100.1, 10.0.0.5"], &t),
            ip("198.51.100.1")
        );
        // several headers are one list, in order
        assert_eq!(
            client_ip(proxy, &["6.6.6.6", "198.51.100.1, 10.0.0.5"], &t),
            ip("198.51.100.1")
        );
        // every hop trusted: the left-most
        assert_eq!(
            client_ip(proxy, &["10.0.0.9, 10.0.0.5"], &t),
            ip("10.0.0.9")
        );
        // ports and brackets
        assert_eq!(
            client_ip(proxy, &["198.51.100.1:5555"], &t),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(proxy, &["[2001:db8::1]:443"], &t),
            ip("2001:db8::1")
        );
        // no header, or a malformed one: the peer
        assert_eq!(client_ip(proxy, &[], &t), proxy);
        for bad in ["", "unknown", "198.51.100.1, ,", "1.2.3.4, x"] {
            assert_eq!(client_ip(proxy, &[bad], &t), proxy, "{bad:?}");
        }
        // nothing trusted: never read
        assert_eq!(client_ip(proxy, &["198.51.100.1"], &[]), proxy);
    }
}
