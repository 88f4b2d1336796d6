//! The client's address: the socket peer, or, behind a trusted proxy, the
//! nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
//! Forwarding headers from anyone else are ignored: they are trivial to forge.

use std::net::IpAddr;

use rocket::Request;

use crate::config::{canonical_ip as canonical, IpNet};

/// The client address of `req` under the given trusted proxies.
pub fn client_ip(req: &Request<'_>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(req.remote()?.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Right to left: each trusted hop vouches for the address before it.
    let mut client = peer;
    for header in req
        .headers()
        .get("X-Forwarded-For")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        for hop in header.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(canonical(ip)) => client = canonical(ip),
                Ok(ip) => return Some(canonical(ip)),
                Err(_) => return Some(client),
            }
        }
    }
    Some(client)
}
