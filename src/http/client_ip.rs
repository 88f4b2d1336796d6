//! The client's address: the socket peer, or, behind a trusted proxy, the
//! nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
//! Forwarding headers from anyone else are ignored: they are trivial to forge.

use std::net::IpAddr;

use rocket::Request;

use crate::config::{canonical_ip as canonical, IpNet};

/// One `X-Forwarded-For` hop: an address, with any port stripped
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`); `None` for anything else
/// (`unknown`, obfuscated identifiers, garbage).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    match hop.rsplit_once(':') {
        Some((v4, port)) if port.bytes().all(|b| b.is_ascii_digit()) => v4.parse().ok(),
        _ => None,
    }
}

/// The client address of `req` under the given trusted proxies: the
/// socket peer, or, when that is a trusted proxy, the nearest
/// `X-Forwarded-For` hop that is not one. Unparseable hops are skipped.
/// When no hop names a client, the address is unknown (`None`): a proxy's
/// own address never stands for its clients, or they would all share one
/// rate-limit bucket.
pub fn client_ip(req: &Request<'_>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(req.remote()?.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Right to left: each trusted hop vouches for the address before it.
    let headers: Vec<&str> = req.headers().get("X-Forwarded-For").collect();
    headers
        .iter()
        .rev()
        .flat_map(|h| h.rsplit(','))
        .filter_map(parse_hop)
        .map(canonical)
        .find(|ip| !is_trusted(*ip))
}

#[cfg(test)]
mod tests {
    use super::parse_hop;

    #[test]
    fn hops_with_ports_parse_and_garbage_does_not() {
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(parse_hop(" 203.0.113.9 "), ip("203.0.113.9"));
        assert_eq!(parse_hop("203.0.113.9:5678"), ip("203.0.113.9"));
        assert_eq!(parse_hop("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(parse_hop("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(parse_hop("unknown"), None);
        assert_eq!(parse_hop("_hidden"), None);
        assert_eq!(parse_hop("1.2.3.4:x"), None);
        assert_eq!(parse_hop(""), None);
    }
}
