//! `[turn]`: the TURN relay in the binary. Every field has a serde default, so a partial table
//! (or none) works; config/default.toml shows and explains each one.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Run the relay and hand its credentials to signed-in browsers.
    pub enabled: bool,
    /// Address the relay's listening sockets and relayed sockets bind to.
    pub listen_ip: IpAddr,
    /// TURN over UDP; 0 = none.
    pub udp_port: u16,
    /// TURN over TCP (plain); 0 = none.
    pub tcp_port: u16,
    /// TURN over TLS on the HTTPS port, told apart from HTTPS after the handshake (by ALPN
    /// `stun.turn` or by the first bytes). Only with `server.tls` on.
    pub on_https_port: bool,
    /// The port browsers reach that HTTPS port at, when a NAT or a container publishes it
    /// under another number; 0 = the HTTPS port itself.
    pub public_tls_port: u16,
    /// Public address written into relayed addresses; unset = the SFU's announced address,
    /// else `listen_ip` when it is a concrete address.
    pub relay_ip: Option<IpAddr>,
    /// Host name or address put in the `turn:` URLs handed to browsers; unset = the host the
    /// browser reached the server by, else the certificate's domain, else the relay address.
    pub public_host: String,
    /// First UDP port of relayed addresses (inclusive).
    pub relay_port_min: u16,
    /// Last UDP port of relayed addresses (inclusive).
    pub relay_port_max: u16,
    /// The long-term credential realm.
    pub realm: String,
    /// Shared secret of the credentials (TURN REST API); empty = derived from the JWT secret,
    /// so the replicas of a cluster agree without one more setting.
    pub secret: String,
    /// Seconds a credential handed to a browser stays good for new allocations.
    pub credential_ttl_secs: u64,
    /// Allocations alive at once on this server.
    pub max_allocations: usize,
    /// Allocations one user may hold at once.
    pub max_allocations_per_user: usize,
    /// Relayed traffic one user may send and receive, in kilobits per second (both ways
    /// counted together); packets above it are dropped.
    pub user_kbps: u32,
    /// Most seconds an allocation lives between refreshes.
    pub max_lifetime_secs: u32,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen_ip: IpAddr::from([0, 0, 0, 0]),
            udp_port: 3478,
            tcp_port: 3478,
            on_https_port: true,
            public_tls_port: 0,
            relay_ip: None,
            public_host: String::new(),
            relay_port_min: 49160,
            relay_port_max: 49999,
            realm: "talkconnect".to_owned(),
            secret: String::new(),
            credential_ttl_secs: 3600,
            max_allocations: 1000,
            max_allocations_per_user: 30,
            user_kbps: 6000,
            max_lifetime_secs: 3600,
        }
    }
}
