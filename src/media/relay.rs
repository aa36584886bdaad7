//! The product's side of the TURN relay (`turn/`): where a user's relayed packets may go, and
//! the ICE servers each signed-in browser is handed, with credentials minted for that user.
//!
//! - SFU mode: only to the SFU's own addresses and media ports (delivered to a local address
//!   when the announced one sits on a NAT in front of this machine);
//! - mesh mode: only to the users one holds a seat with in a live room.
//!
//! An external TURN server (`sfu.ice_servers` with a `secret`, coturn's `use-auth-secret`)
//! gets credentials in the same form.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::config::MediaMode;
use crate::ids::UserId;
use crate::rooms::Rooms;
use crate::sfu::{IceServer, SfuConfig};
use crate::turn::{self, PeerPolicy, TurnConfig, TurnServer, credentials};

/// The relay as the product runs it: the server and what browsers are told about it.
pub struct Relay {
    pub server: Arc<TurnServer>,
    urls: RelayUrls,
}

/// Where browsers reach the relay.
struct RelayUrls {
    /// `turn.public_host`, when set: always used.
    host: Option<String>,
    /// The certificate's domain (files or acme mode): used when the browser's own host for
    /// this server is not known (the `sfu:join` answer).
    tls_domain: Option<String>,
    udp_port: u16,
    tcp_port: u16,
    /// The HTTPS port when TURN over TLS shares it (0: it does not).
    tls_port: AtomicU16,
}

/// What the relay needs from the rest of the server to start.
pub struct RelayStart<'a> {
    pub turn: &'a TurnConfig,
    pub sfu: &'a SfuConfig,
    pub mode: MediaMode,
    pub rooms: Rooms,
    /// The resolved JWT secret: the credentials' secret is derived from it when none is set.
    pub jwt_secret: &'a [u8],
    /// The certificate's domain, in files or acme mode (a self-signed certificate's name need
    /// not resolve).
    pub tls_domain: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayStartError {
    #[error("{setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
}

impl Relay {
    pub async fn start(
        start: RelayStart<'_>,
        shutdown: CancellationToken,
    ) -> Result<Option<Relay>, RelayStartError> {
        let config = start.turn;
        if !config.enabled {
            return Ok(None);
        }
        if config.relay_port_min == 0 || config.relay_port_min > config.relay_port_max {
            return Err(RelayStartError::Setting {
                setting: "turn.relay_port_min",
                message: format!(
                    "the relay port range {}..{} is empty",
                    config.relay_port_min, config.relay_port_max
                ),
            });
        }
        let relay_ip = config
            .relay_ip
            .or(start.sfu.announced_ip.ip())
            .or_else(|| concrete(config.listen_ip))
            .or_else(outbound_ip)
            .ok_or_else(|| RelayStartError::Setting {
                setting: "turn.relay_ip",
                message: "no public address known for relayed addresses: set it".to_owned(),
            })?;
        let secret = if config.secret.is_empty() {
            derived_secret(start.jwt_secret)
        } else {
            config.secret.as_bytes().to_vec()
        };
        let policy: Arc<dyn PeerPolicy> = match start.mode {
            MediaMode::Sfu => Arc::new(SfuOnly::new(start.sfu, relay_ip)),
            MediaMode::Mesh => Arc::new(RoomMates { rooms: start.rooms }),
        };
        let server = TurnServer::new(config.clone(), secret, relay_ip, policy, shutdown.clone());
        turn::listen(&server, shutdown)
            .await
            .map_err(|(setting, e)| RelayStartError::Setting {
                setting,
                message: e.to_string(),
            })?;
        let host = Some(config.public_host.trim())
            .filter(|h| !h.is_empty())
            .map(str::to_owned);
        tracing::info!(%relay_ip, udp = config.udp_port, tcp = config.tcp_port, "turn relay");
        Ok(Some(Relay {
            server,
            urls: RelayUrls {
                host,
                tls_domain: start.tls_domain,
                udp_port: config.udp_port,
                tcp_port: config.tcp_port,
                tls_port: AtomicU16::new(0),
            },
        }))
    }

    /// TURN over TLS is served on the HTTPS port `port` (src/shared_port.rs): browsers are told.
    pub fn share_https_port(&self, port: u16) {
        let public = self.server.config().public_tls_port;
        let port = if public != 0 { public } else { port };
        self.urls.tls_port.store(port, Ordering::Relaxed);
    }

    /// Where the relay listens, for the start line: `UDP 3478, TCP 3478, TLS 443 (shared with
    /// https), relayed UDP 49160-49999 as 203.0.113.7`.
    pub fn summary(&self) -> String {
        let config = self.server.config();
        let mut parts = Vec::new();
        if self.urls.udp_port != 0 {
            parts.push(format!("UDP {}", self.urls.udp_port));
        }
        if self.urls.tcp_port != 0 {
            parts.push(format!("TCP {}", self.urls.tcp_port));
        }
        let tls_port = self.urls.tls_port.load(Ordering::Relaxed);
        if tls_port != 0 {
            parts.push(format!("TLS {tls_port} (shared with https)"));
        }
        parts.push(format!(
            "relayed UDP {}-{} as {}",
            config.relay_port_min,
            config.relay_port_max,
            self.server.relay_ip()
        ));
        parts.join(", ")
    }

    /// The relay's entry for `user`, who reached this server by `request_host` (the HTTP Host
    /// without its port), when known. The host in the URLs: `turn.public_host`, else the one
    /// the browser reached us by (it resolves for that browser), else the certificate's
    /// domain, else the relayed address.
    pub fn ice_server(&self, user: UserId, request_host: Option<&str>) -> Option<IceServer> {
        let host = self
            .urls
            .host
            .clone()
            .or_else(|| request_host.map(str::to_owned))
            .or_else(|| self.urls.tls_domain.clone())
            .unwrap_or_else(|| self.server.relay_ip().to_string());
        let host = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => host,
        };
        let mut urls = Vec::new();
        if self.urls.udp_port != 0 {
            urls.push(format!("turn:{host}:{}?transport=udp", self.urls.udp_port));
        }
        if self.urls.tcp_port != 0 {
            urls.push(format!("turn:{host}:{}?transport=tcp", self.urls.tcp_port));
        }
        let tls_port = self.urls.tls_port.load(Ordering::Relaxed);
        if tls_port != 0 {
            urls.push(format!("turns:{host}:{tls_port}?transport=tcp"));
        }
        let credential = self.server.credential(&user.to_string());
        Some(IceServer {
            urls,
            username: Some(credential.username),
            credential: Some(credential.password),
            secret: None,
        })
    }
}

/// Servers of `sfu.ice_servers` as `user` gets them: those with a shared secret get a
/// credential minted for the user (and are left out when nobody is signed in).
pub fn configured_for(
    servers: &[IceServer],
    user: Option<UserId>,
    ttl: Duration,
) -> Vec<IceServer> {
    servers
        .iter()
        .filter_map(|server| match (&server.secret, user) {
            (None, _) => Some(server.clone()),
            (Some(_), None) => None,
            (Some(secret), Some(user)) => {
                let c =
                    credentials::mint(secret.as_bytes(), &user.to_string(), ttl, SystemTime::now());
                Some(IceServer {
                    urls: server.urls.clone(),
                    username: Some(c.username),
                    credential: Some(c.password),
                    secret: None,
                })
            }
        })
        .collect()
}

/// The relay's credential secret when `turn.secret` is empty: derived from the JWT secret, so
/// the replicas of a cluster (and the doctor) agree without one more setting.
pub(crate) fn derived_secret(jwt_secret: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(jwt_secret).unwrap_or_else(|_| unreachable!());
    mac.update(b"talkconnect turn credentials");
    mac.finalize().into_bytes().to_vec()
}

fn concrete(ip: IpAddr) -> Option<IpAddr> {
    (!ip.is_unspecified()).then_some(ip)
}

/// The address this machine sends from towards the internet: a route lookup (connecting a
/// UDP socket sends nothing), `None` without a default route.
fn outbound_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    concrete(socket.local_addr().ok()?.ip())
}

/// SFU mode: relayed packets go only to the SFU's media ports on this machine's addresses.
struct SfuOnly {
    /// Addresses the SFU is reached by (announced, bound, this machine's, loopback if allowed).
    ips: HashSet<IpAddr>,
    /// The announced address, when the SFU announces one, and the local one to deliver to.
    announced: Option<(IpAddr, IpAddr)>,
    ports: (u16, u16),
    single_port: Option<u16>,
}

impl SfuOnly {
    fn new(sfu: &SfuConfig, relay_ip: IpAddr) -> Self {
        let local = concrete(sfu.bind_ip).or_else(outbound_ip);
        let mut ips: HashSet<IpAddr> = [Some(relay_ip), local, sfu.announced_ip.ip()]
            .into_iter()
            .flatten()
            .collect();
        if sfu.allow_loopback || sfu.bind_ip.is_loopback() {
            ips.insert(IpAddr::from([127, 0, 0, 1]));
        }
        let announced = sfu.announced_ip.ip().map(|public| {
            let deliver = local.unwrap_or(public);
            (public, deliver)
        });
        SfuOnly {
            ips,
            announced,
            ports: (sfu.udp_port_min, sfu.udp_port_max),
            single_port: sfu.single_udp_port,
        }
    }

    fn media_port(&self, port: u16) -> bool {
        self.single_port == Some(port) || (self.ports.0..=self.ports.1).contains(&port)
    }
}

#[async_trait::async_trait]
impl PeerPolicy for SfuOnly {
    async fn may_reach_user(&self, _user: &str, _other: &str) -> bool {
        false
    }

    fn route(&self, peer: SocketAddr) -> Option<SocketAddr> {
        if !self.ips.contains(&peer.ip()) || !self.media_port(peer.port()) {
            return None;
        }
        match self.announced {
            Some((public, local)) if peer.ip() == public => {
                Some(SocketAddr::new(local, peer.port()))
            }
            _ => Some(peer),
        }
    }

    fn unroute(&self, source: SocketAddr) -> SocketAddr {
        match self.announced {
            Some((public, local)) if source.ip() == local && self.media_port(source.port()) => {
                SocketAddr::new(public, source.port())
            }
            _ => source,
        }
    }
}

/// Mesh mode: a user reaches only the users seated with them in a live room.
struct RoomMates {
    rooms: Rooms,
}

#[async_trait::async_trait]
impl PeerPolicy for RoomMates {
    async fn may_reach_user(&self, user: &str, other: &str) -> bool {
        let (Ok(user), Ok(other)) = (user.parse::<UserId>(), other.parse::<UserId>()) else {
            return false;
        };
        self.rooms
            .share_live_room(user, other)
            .await
            .unwrap_or(false)
    }

    fn route(&self, _peer: SocketAddr) -> Option<SocketAddr> {
        None
    }

    fn unroute(&self, source: SocketAddr) -> SocketAddr {
        source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_with_a_secret_gets_a_credential_per_user_and_is_hidden_from_guests_of_none() {
        let servers = vec![
            IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                ..IceServer::default()
            },
            IceServer {
                urls: vec!["turn:turn.example.org:3478".into()],
                secret: Some("coturn-secret".into()),
                ..IceServer::default()
            },
        ];
        let anonymous = configured_for(&servers, None, Duration::from_secs(60));
        assert_eq!(anonymous.len(), 1);
        let user = UserId::random();
        let signed_in = configured_for(&servers, Some(user), Duration::from_secs(60));
        let turn = &signed_in[1];
        let username = turn.username.clone().unwrap();
        assert!(username.ends_with(&format!(":{user}")));
        assert_eq!(
            turn.credential.as_deref(),
            Some(credentials::password(b"coturn-secret", &username).as_str())
        );
        // The secret never reaches a browser.
        assert!(
            !serde_json::to_string(&signed_in)
                .unwrap()
                .contains("coturn-secret")
        );
    }
}
