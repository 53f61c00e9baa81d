//! Who is asking: the client's address (behind trusted proxies, from X-Forwarded-For), and
//! the API's bearer token rule: with a token configured, every request must carry it; with
//! none, only loopback clients are served.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The client's address: the peer, or, when the peer is a trusted proxy, the last
/// address in X-Forwarded-For that is not itself a trusted proxy. An entry that is not an
/// address (with or without a port) where the client should be leaves the client unknown:
/// refused, never guessed from the entries around it.
pub fn client_ip(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Result<IpAddr, ApiError> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
    let peer = peer.ip().to_canonical();
    if !is_trusted(&peer) {
        return Ok(peer);
    }
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().map_err(|_| {
            ApiError::forbidden("X-Forwarded-For is not text: the client is unknown")
        })?;
        entries.extend(value.split(','));
    }
    for entry in entries.into_iter().rev() {
        let ip = forwarded_address(entry).ok_or_else(|| {
            ApiError::forbidden(format!(
                "X-Forwarded-For entry {:?} is not an address: the client is unknown",
                entry.trim()
            ))
        })?;
        if !is_trusted(&ip) {
            return Ok(ip);
        }
    }
    Ok(peer)
}

/// One X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:5678`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let bracketed = entry.strip_prefix('[')?.strip_suffix(']')?;
    bracketed
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The credentials of an `Authorization` value with this scheme (the scheme name is
/// case-insensitive, RFC 9110).
pub fn scheme<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let (given, rest) = value.trim_start().split_once(' ')?;
    given.eq_ignore_ascii_case(name).then_some(rest.trim())
}

/// The rule for `/events` and `/api/*`.
pub fn check_api(token: Option<&str>, client: IpAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = token else {
        if client.is_loopback() {
            return Ok(());
        }
        return Err(ApiError::forbidden(
            "this server has no API token, so only loopback clients may use /events and /api (set SWITCHBOARD_API_TOKEN)",
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| scheme(v, "bearer"));
    match given {
        None => Err(ApiError::unauthorized(
            "missing credentials: send Authorization: Bearer <SWITCHBOARD_API_TOKEN>",
        )),
        Some(given) if same_secret(given.trim(), token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("wrong API token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "66.85.240.7, 10.0.0.2".parse().unwrap());
        let proxy: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(proxy, &headers, &trusted).unwrap(),
            ip("66.85.240.7")
        );
        assert_eq!(client_ip(proxy, &headers, &[]).unwrap(), ip("10.0.0.1"));
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        assert_eq!(
            client_ip(stranger, &headers, &trusted).unwrap(),
            ip("203.0.113.9")
        );
        // Ports are allowed; anything else where the client should be is refused.
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", v.parse().unwrap());
            client_ip(proxy, &h, &trusted)
        };
        assert_eq!(with("10.1.2.3, 8.8.8.8:4711").unwrap(), ip("8.8.8.8"));
        assert_eq!(with("[2001:db8::1]:443").unwrap(), ip("2001:db8::1"));
        assert_eq!(with("[2001:db8::1]").unwrap(), ip("2001:db8::1"));
        assert_eq!(with("10.1.2.3, bogus").unwrap_err().status, 403);
        assert_eq!(
            with("66.85.240.7, unknown, 10.0.0.2").unwrap_err().status,
            403
        );
        // Entries left of the client were written by the client itself: not read.
        assert_eq!(with("bogus, 8.8.8.8").unwrap(), ip("8.8.8.8"));
    }

    #[test]
    fn the_api_rule() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        let none = HeaderMap::new();
        let mut good = HeaderMap::new();
        good.insert("authorization", "Bearer s3cret".parse().unwrap());
        let mut bad = HeaderMap::new();
        bad.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(check_api(None, local, &none).is_ok());
        assert_eq!(check_api(None, remote, &none).unwrap_err().status, 403);
        assert_eq!(
            check_api(Some("s3cret"), local, &none).unwrap_err().status,
            401
        );
        assert_eq!(
            check_api(Some("s3cret"), remote, &bad).unwrap_err().status,
            401
        );
        assert!(check_api(Some("s3cret"), remote, &good).is_ok());
        let mut shouting = HeaderMap::new();
        shouting.insert("authorization", "BEARER s3cret".parse().unwrap());
        assert!(check_api(Some("s3cret"), remote, &shouting).is_ok());
        let mapped: SocketAddr = "[::ffff:66.85.240.7]:443".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &HeaderMap::new(), &[]).unwrap(),
            "66.85.240.7".parse::<IpAddr>().unwrap()
        );
    }
}
