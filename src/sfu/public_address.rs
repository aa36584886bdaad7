//! The server's public address, learned from STUN (RFC 8489 Binding): what a server behind a
//! 1:1 NAT announces to browsers when its address is not configured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// `host:port` of each `stun:` URL (not `stuns:`/`turn:`), in order.
pub fn stun_hosts(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter_map(|url| url.strip_prefix("stun:"))
        .map(|rest| {
            let rest = rest.split('?').next().unwrap_or(rest);
            if rest
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                && !rest.ends_with(']')
            {
                rest.to_owned()
            } else {
                format!("{rest}:3478")
            }
        })
        .collect()
}

/// Asks one STUN server (`host:port`) which address our packets come from.
pub async fn ask(server: &str, timeout: Duration) -> Result<SocketAddr, String> {
    let target = tokio::net::lookup_host(server)
        .await
        .map_err(|e| format!("{server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server}: no address"))?;
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let transaction: [u8; 12] = rand::random();
    let request = binding_request(&transaction);
    let mut buf = [0u8; 1500];
    // Three tries within the timeout: UDP may lose one.
    let per_try = timeout / 3;
    for _ in 0..3 {
        socket
            .send_to(&request, target)
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        let deadline = tokio::time::Instant::now() + per_try;
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            let (n, from) = received.map_err(|e| format!("{server}: {e}"))?;
            if from != target {
                continue;
            }
            if let Some(mapped) = mapped_address(&buf[..n], &transaction) {
                return Ok(mapped);
            }
        }
    }
    Err(format!(
        "{server}: no answer within {} ms",
        timeout.as_millis()
    ))
}

/// The first STUN server that answers tells the address; errors name every server tried.
pub async fn discover(urls: &[String], timeout: Duration) -> Result<(IpAddr, String), String> {
    let hosts = stun_hosts(urls);
    if hosts.is_empty() {
        return Err("no stun: server in sfu.ice_servers to ask".to_owned());
    }
    let mut failures = Vec::new();
    for host in hosts {
        match ask(&host, timeout).await {
            Ok(mapped) => return Ok((mapped.ip(), host)),
            Err(e) => failures.push(e),
        }
    }
    Err(failures.join("; "))
}

fn binding_request(transaction: &[u8; 12]) -> Vec<u8> {
    let mut message = Vec::with_capacity(20);
    message.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    message.extend_from_slice(&0u16.to_be_bytes());
    message.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message.extend_from_slice(transaction);
    message
}

/// The (XOR-)MAPPED-ADDRESS of a Binding success answering `transaction`; anything else
/// (another message, a short or malformed one) is `None`.
pub fn mapped_address(message: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    let header = message.get(..20)?;
    if u16::from_be_bytes([header[0], header[1]]) != BINDING_SUCCESS
        || header[4..8] != MAGIC_COOKIE.to_be_bytes()
        || header[8..20] != transaction[..]
    {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = message.get(20..20 + length)?;
    let mut plain = None;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let size = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + size)?;
        match kind {
            XOR_MAPPED_ADDRESS => return address(value, Some(transaction)),
            MAPPED_ADDRESS => plain = address(value, None),
            _ => {}
        }
        // Attributes are padded to four bytes.
        let next = (4 + size).div_ceil(4) * 4;
        attributes = attributes.get(next..).unwrap_or_default();
    }
    plain
}

/// An address attribute's value; XOR-ed with the cookie (and transaction) when `xor` is set.
fn address(value: &[u8], xor: Option<&[u8; 12]>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    // A plain MAPPED-ADDRESS is an XOR one with an all-zero mask.
    let mask = xor.map_or([0u8; 16], xor_mask);
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?])
        ^ u16::from_be_bytes([mask[0], mask[1]]);
    let unmask = |bytes: &[u8]| -> Vec<u8> { bytes.iter().zip(mask).map(|(b, m)| b ^ m).collect() };
    let ip = match family {
        0x01 => {
            let octets: [u8; 4] = unmask(value.get(4..8)?).try_into().ok()?;
            IpAddr::from(octets)
        }
        0x02 => {
            let octets: [u8; 16] = unmask(value.get(4..20)?).try_into().ok()?;
            IpAddr::from(octets)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// What XOR-MAPPED-ADDRESS values are XOR-ed with: the magic cookie, then the transaction
/// (whose bytes only IPv6 addresses reach).
fn xor_mask(transaction: &[u8; 12]) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction);
    mask
}

/// A Binding success carrying XOR-MAPPED-ADDRESS `mapped` (IPv4 or IPv6), as a STUN server
/// answers the request `transaction` (for tests and tools that stand in for one).
pub fn answer(transaction: &[u8; 12], mapped: SocketAddr) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mask = xor_mask(transaction);
    let (family, octets) = match mapped.ip() {
        IpAddr::V4(ip) => (0x01, ip.octets().to_vec()),
        IpAddr::V6(ip) => (0x02, ip.octets().to_vec()),
    };
    let mut value = vec![0, family];
    value.extend_from_slice(&(mapped.port() ^ 0x2112).to_be_bytes());
    value.extend(octets.iter().zip(mask).map(|(b, m)| b ^ m));
    let mut message = BINDING_SUCCESS.to_be_bytes().to_vec();
    message.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    message.extend_from_slice(&cookie);
    message.extend_from_slice(transaction);
    message.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    message.extend_from_slice(&(value.len() as u16).to_be_bytes());
    message.extend_from_slice(&value);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_names_the_mapped_address() {
        let v6: SocketAddr = "[2001:db8::7]:3478".parse().unwrap();
        assert_eq!(
            mapped_address(&answer(&[1u8; 12], v6), &[1u8; 12]),
            Some(v6)
        );
        let transaction = [7u8; 12];
        let mapped: SocketAddr = "203.0.113.9:40123".parse().unwrap();
        assert_eq!(
            mapped_address(&answer(&transaction, mapped), &transaction),
            Some(mapped)
        );
        assert_eq!(
            mapped_address(&answer(&transaction, mapped), &[8u8; 12]),
            None,
            "another transaction"
        );
    }

    #[test]
    fn short_or_malformed_messages_are_ignored() {
        let transaction = [7u8; 12];
        let good = answer(&transaction, "203.0.113.9:1".parse().unwrap());
        for cut in 0..good.len() {
            assert_eq!(
                mapped_address(&good[..cut], &transaction),
                None,
                "cut at {cut}"
            );
        }
        let mut lying = good.clone();
        lying[3] = 200; // a length past the end
        assert_eq!(mapped_address(&lying, &transaction), None);
    }

    #[test]
    fn stun_urls_become_host_and_port() {
        let urls = [
            "stun:stun.example.org".to_owned(),
            "stun:127.0.0.1:19302".to_owned(),
            "turn:turn.example.org:3478?transport=udp".to_owned(),
        ];
        assert_eq!(
            stun_hosts(&urls),
            vec![
                "stun.example.org:3478".to_owned(),
                "127.0.0.1:19302".to_owned()
            ]
        );
    }

    #[tokio::test]
    async fn a_server_that_answers_tells_the_address_and_a_silent_one_is_named() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let transaction: [u8; 12] = buf[8..20].try_into().unwrap();
                if n >= 20 {
                    let reply = answer(&transaction, "198.51.100.4:5000".parse().unwrap());
                    let _ = server.send_to(&reply, from).await;
                }
            }
        });
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_at = silent.local_addr().unwrap();
        let urls = [format!("stun:{silent_at}"), format!("stun:{at}")];
        let (ip, from) = discover(&urls, Duration::from_millis(600)).await.unwrap();
        assert_eq!(ip, "198.51.100.4".parse::<IpAddr>().unwrap());
        assert_eq!(from, at.to_string());
        let err = discover(&urls[..1], Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            err.contains(&silent_at.to_string()) && err.contains("no answer"),
            "{err}"
        );
    }
}
