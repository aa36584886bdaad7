//! Settings of the Engine.IO / Socket.IO layer, with the reference server's defaults.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;

/// Who a request comes from, for the per-address caps: the TCP peer unless the application
/// knows better (a trusted reverse proxy's header).
#[derive(Clone)]
pub struct ClientAddress(Arc<AddressOf>);

type AddressOf = dyn Fn(&HttpRequest) -> Option<IpAddr> + Send + Sync;

impl ClientAddress {
    pub fn new(f: impl Fn(&HttpRequest) -> Option<IpAddr> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn of(&self, req: &HttpRequest) -> Option<IpAddr> {
        (self.0)(req)
    }
}

impl Default for ClientAddress {
    fn default() -> Self {
        Self::new(|req| req.peer_addr().map(|a| a.ip()))
    }
}

impl std::fmt::Debug for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientAddress")
    }
}

/// Which transports the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    pub polling: bool,
    pub websocket: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Transports {
            polling: true,
            websocket: true,
        }
    }
}

/// Everything tunable in the protocol layer. `Config::default()` matches the defaults of the
/// reference Node server (engine.io 6 / socket.io 4) plus our own abuse limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Mount path, with leading and trailing slash (`/socket.io/`).
    pub path: String,
    /// Time between two server pings.
    pub ping_interval: Duration,
    /// How long the server waits for the pong before closing the session.
    pub ping_timeout: Duration,
    /// Largest accepted websocket message or polling request body, in bytes.
    pub max_payload: usize,
    /// A client must CONNECT to a namespace within this time after the Engine.IO handshake.
    pub connect_timeout: Duration,
    /// A websocket upgrade must complete (`5` packet) within this time after it opened.
    pub upgrade_timeout: Duration,
    /// Accepted transports.
    pub transports: Transports,
    /// Sustained rate of packets a client may send per second (0 = unlimited).
    pub max_packets_per_second: u32,
    /// Burst of packets a client may send above the sustained rate.
    pub packet_burst: u32,
    /// Binary attachments allowed in one Socket.IO packet.
    pub max_attachments: usize,
    /// Frames queued for one client before it is closed as too slow.
    pub max_buffered_frames: usize,
    /// Bytes queued for one client before it is closed as too slow.
    pub max_buffered_bytes: usize,
    /// Sessions open at once on this server; more handshakes get 503.
    pub max_sessions: usize,
    /// Sessions open at once from one client address; more get 429 (0 = unlimited).
    pub max_sessions_per_ip: usize,
    /// New sessions one client address may open per second, sustained (0 = unlimited)…
    pub handshakes_per_second_per_ip: u32,
    /// …and in a burst.
    pub handshake_burst_per_ip: u32,
    /// Who a request comes from, for the per-address caps.
    pub client_address: ClientAddress,
    /// Default timeout of `emit_with_ack` from the server.
    pub ack_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: "/socket.io/".to_owned(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_millis(45_000),
            upgrade_timeout: Duration::from_millis(10_000),
            transports: Transports::default(),
            max_packets_per_second: 100,
            packet_burst: 300,
            max_attachments: 10,
            max_buffered_frames: 10_000,
            max_buffered_bytes: 1 << 20,
            // No caps unless the application sets them (the reference server has none).
            max_sessions: usize::MAX,
            max_sessions_per_ip: 0,
            handshakes_per_second_per_ip: 0,
            handshake_burst_per_ip: 1,
            client_address: ClientAddress::default(),
            ack_timeout: Duration::from_millis(10_000),
        }
    }
}

impl Config {
    /// The mount path normalised to `/x/` form.
    pub(crate) fn normalized_path(&self) -> String {
        let trimmed = self.path.trim_matches('/');
        if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        }
    }
}
