//! Who the client is. The TCP peer, unless the peer is one of the configured reverse proxies:
//! then the proxy's header names the client, read from the right (the hops nearest to us),
//! skipping the addresses of trusted proxies; the first other address is the client. What the
//! client put into the header itself sits further left and is never reached, so nobody picks
//! their own address for the per-address limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

use crate::config::ClientIpHeader;

#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<[IpNet]>,
    header: ClientIpHeader,
}

impl ClientIp {
    pub fn new(trusted: Vec<IpNet>, header: ClientIpHeader) -> Self {
        Self {
            trusted: trusted.into(),
            header,
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request.
    pub fn of(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        Some(self.resolve(canonical(peer), req.headers()))
    }

    fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = match self.header {
            ClientIpHeader::XForwardedFor => x_forwarded_for(headers),
            ClientIpHeader::Forwarded => forwarded(headers),
        };
        // Nearest first. A hop that does not parse ends the walk: nothing beyond it can be
        // vouched for, so the last trusted address stands.
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.is_trusted(*ip) => client = *ip,
                Some(ip) => return *ip,
                None => return client,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 peers) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One hop: an address, with or without a port, IPv6 in brackets or not.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    raw.parse::<IpAddr>()
        .or_else(|_| raw.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| raw.trim_start_matches('[').trim_end_matches(']').parse())
        .ok()
        .map(canonical)
}

/// Every `X-Forwarded-For` line, in order, split at commas.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .flat_map(|v| v.to_str().ok().unwrap_or("").split(',').map(parse_hop))
        .collect()
}

/// The `for=` of every `Forwarded` element, in order (RFC 7239 §4).
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .flat_map(|v| v.to_str().ok().unwrap_or("").split(',').map(str::to_owned))
        .map(|element| {
            element
                .split(';')
                .find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| value.to_owned())
                })
                .and_then(|value| parse_hop(&value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn behind_nginx() -> ClientIp {
        ClientIp::new(
            vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            ClientIpHeader::XForwardedFor,
        )
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            behind_nginx().resolve(ip("203.0.113.9"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        // The client wrote 1.2.3.4 itself; nginx appended the address it saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7")]);
        assert_eq!(
            behind_nginx().resolve(ip("127.0.0.1"), &h),
            ip("198.51.100.7")
        );
        // Two trusted proxies in a row.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.5")]);
        assert_eq!(
            behind_nginx().resolve(ip("127.0.0.1"), &h),
            ip("198.51.100.7")
        );
        // Several header lines read as one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            behind_nginx().resolve(ip("127.0.0.1"), &h),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn garbage_or_missing_headers_fall_back_to_the_nearest_trusted_hop() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4, not-an-ip")]);
        assert_eq!(behind_nginx().resolve(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        assert_eq!(
            behind_nginx().resolve(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn forwarded_is_read_only_when_configured() {
        let h = headers(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            behind_nginx().resolve(ip("127.0.0.1"), &h),
            ip("198.51.100.7")
        );
        let rfc = ClientIp::new(
            vec!["127.0.0.1/32".parse().unwrap()],
            ClientIpHeader::Forwarded,
        );
        let h = headers(&[(
            "forwarded",
            r#"for=1.2.3.4, for="[2001:db8::1]:4711";proto=https"#,
        )]);
        assert_eq!(rfc.resolve(ip("127.0.0.1"), &h), ip("2001:db8::1"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            behind_nginx().resolve(canonical(ip("::ffff:127.0.0.1")), &h),
            ip("198.51.100.7")
        );
    }
}
