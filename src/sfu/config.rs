//! SFU configuration: where media sockets bind, what address is announced, and which
//! STUN/TURN servers browsers are told about. Every field has a serde default so a partial
//! `[sfu]` table (or none) works.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The address browsers are told to send media to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnouncedIp {
    /// The bound address(es) themselves.
    #[default]
    Bound,
    /// Learned from STUN when the server starts; until then (or in a library user that does
    /// not ask), the bound address.
    Auto,
    /// A configured public address.
    Fixed(IpAddr),
}

impl AnnouncedIp {
    /// The public address, when one is known.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            AnnouncedIp::Fixed(ip) => Some(*ip),
            AnnouncedIp::Bound | AnnouncedIp::Auto => None,
        }
    }
}

impl Serialize for AnnouncedIp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AnnouncedIp::Bound => serializer.serialize_none(),
            AnnouncedIp::Auto => serializer.serialize_str("auto"),
            AnnouncedIp::Fixed(ip) => serializer.collect_str(ip),
        }
    }
}

impl<'de> Deserialize<'de> for AnnouncedIp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        match text.trim() {
            "" => Ok(AnnouncedIp::Bound),
            "auto" => Ok(AnnouncedIp::Auto),
            ip => ip.parse().map(AnnouncedIp::Fixed).map_err(|_| {
                serde::de::Error::custom(format!("not an IP address or \"auto\": {ip:?}"))
            }),
        }
    }
}

/// Networking and limits of the embedded SFU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SfuConfig {
    /// Address media sockets bind to. `0.0.0.0` binds one socket per non-loopback interface
    /// (webrtc-rs skips loopback for wildcards); a concrete address binds exactly that one.
    pub bind_ip: IpAddr,
    /// Also bind and announce 127.0.0.1 (needed when browser and server share a machine,
    /// and by the tests; nothing more to bind when `bind_ip` is a loopback address already),
    /// and probe client ICE candidates on loopback addresses, which are ignored without it.
    pub allow_loopback: bool,
    /// Accept client ICE candidates on private addresses (RFC 1918, shared 100.64.0.0/10,
    /// IPv6 ULA `fc00::/7` and site-local). Off, they are ignored, so a client cannot make the
    /// server probe hosts of its own network; browsers on the same LAN still connect (their
    /// checks reach our candidates and come back as peer-reflexive ones). Link-local,
    /// unspecified, multicast and reserved addresses and `.local` names are never probed.
    pub allow_private_candidates: bool,
    /// First UDP port of the media range (inclusive). Each participant uses one port.
    pub udp_port_min: u16,
    /// Last UDP port of the media range (inclusive).
    pub udp_port_max: u16,
    /// Public address announced instead of the bound host address, for servers behind a 1:1
    /// NAT (cloud VMs). Host candidates and SDP `a=candidate` lines are rewritten to it.
    /// `"auto"` asks the `stun:` servers of `ice_servers` at start (`public_address`).
    pub announced_ip: AnnouncedIp,
    /// Single-port mode: when set, every participant's UDP media shares this one port on
    /// `bind_ip` (demultiplexed by ICE ufrag, then remote address); the port range is then
    /// only used for ICE-TCP. Needs a concrete `bind_ip` or an `announced_ip`.
    pub single_udp_port: Option<u16>,
    /// Also listen for ICE-TCP (passive) on the participant's port number, as a fallback
    /// for networks that block UDP.
    pub ice_tcp: bool,
    /// STUN/TURN servers handed to browsers (the SFU itself has a public address and needs none).
    pub ice_servers: Vec<IceServer>,
    /// The SFU's threads (one current-thread runtime each); a room lives on one of them.
    pub worker_threads: usize,
    /// Most participants one room accepts.
    pub max_participants_per_room: usize,
    /// Client offers allowed in a burst before `RateLimited`; refilled by one every
    /// `offer_refill_ms`.
    pub offer_burst: u32,
    /// Milliseconds to earn back one client offer.
    pub offer_refill_ms: u64,
    /// Minimum gap between two keyframe requests sent to one publisher track.
    pub keyframe_request_min_interval_ms: u64,
    /// Packets queued towards one subscriber before new ones are dropped (its loss, nobody else's).
    pub subscriber_queue_packets: usize,
    /// Milliseconds a client has to answer a server offer. A client that does not is dropped
    /// with `answerTimeout` (its browser starts a fresh session) instead of staying stuck on
    /// what was negotiated before.
    pub answer_timeout_ms: u64,
    /// Milliseconds a participant has to get its media connected: a publishing client must
    /// send its offer this long after joining, and ICE + DTLS must be up this long after the
    /// first completed offer/answer. One that does not is dropped with `connectTimeout`, so a
    /// join that never goes anywhere cannot keep a media port.
    pub connect_timeout_ms: u64,
    /// Milliseconds of each published video track's packets kept to answer subscribers'
    /// NACKs from the SFU (0 = off: subscribers' losses are then not repaired, see
    /// docs/SFU.md).
    pub retransmission_buffer_ms: u64,
    /// Most bytes one published track's retransmission buffer holds (RTP header and
    /// payload); the oldest packets go first.
    pub retransmission_buffer_bytes: usize,
    /// Audio first: the video forwarded to a participant is paused while the transport-wide
    /// CC feedback of its connection reports more than this loss (per cent) for
    /// `video_pause_after_ms`; 0 turns the pause (and the estimator) off.
    pub video_pause_loss_percent: u32,
    /// How long the loss must last before video is paused.
    pub video_pause_after_ms: u64,
    /// The first wait before paused video is tried again (doubled after each failed try, up
    /// to `video_retry_max_ms`).
    pub video_retry_after_ms: u64,
    pub video_retry_max_ms: u64,
    /// Milliseconds a connected participant whose connection went `disconnected` or `failed`
    /// has to come back through an ICE restart (the server offers one at once; the browser may
    /// offer its own). Its seat and subscriptions stay meanwhile; only then is it dropped with
    /// `connectionFailed`.
    pub ice_restart_grace_ms: u64,
}

/// A STUN or TURN server as the browser's `RTCPeerConnection` configuration wants it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…`
    pub urls: Vec<String>,
    /// TURN username, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// A TURN server's shared secret (coturn's `static-auth-secret`): each signed-in user is
    /// then handed a short-lived username and credential made from it. Never sent to browsers.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            allow_loopback: false,
            allow_private_candidates: false,
            udp_port_min: 40000,
            udp_port_max: 40999,
            announced_ip: AnnouncedIp::Bound,
            single_udp_port: None,
            ice_tcp: false,
            ice_servers: Vec::new(),
            worker_threads: 2,
            max_participants_per_room: 50,
            offer_burst: 5,
            offer_refill_ms: 2000,
            keyframe_request_min_interval_ms: 300,
            subscriber_queue_packets: 1024,
            answer_timeout_ms: 15_000,
            connect_timeout_ms: 20_000,
            retransmission_buffer_ms: 1000,
            retransmission_buffer_bytes: 1 << 20,
            video_pause_loss_percent: 10,
            video_pause_after_ms: 1000,
            video_retry_after_ms: 8000,
            video_retry_max_ms: 60_000,
            ice_restart_grace_ms: 20_000,
        }
    }
}

impl SfuConfig {
    /// The downlink video gate's settings, `None` when `video_pause_loss_percent` is 0.
    pub(crate) fn video_gate(&self) -> Option<super::congestion::GateConfig> {
        (self.video_pause_loss_percent > 0).then(|| super::congestion::GateConfig {
            pause_loss: f64::from(self.video_pause_loss_percent.min(100)) / 100.0,
            pause_after: std::time::Duration::from_millis(self.video_pause_after_ms),
            first_backoff: std::time::Duration::from_millis(self.video_retry_after_ms.max(1000)),
            max_backoff: std::time::Duration::from_millis(
                self.video_retry_max_ms
                    .max(self.video_retry_after_ms.max(1000)),
            ),
            probe: super::congestion::TRY_LENGTH,
        })
    }

    /// A configuration for tests and single-machine use: loopback only, ports from `range`.
    pub fn loopback(udp_port_min: u16, udp_port_max: u16) -> Self {
        Self {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            allow_loopback: true,
            udp_port_min,
            udp_port_max,
            ..Self::default()
        }
    }

    /// Checks what serde cannot: a non-empty port range, at least one worker thread.
    pub fn validate(&self) -> Result<(), String> {
        if self.udp_port_min == 0 || self.udp_port_min > self.udp_port_max {
            return Err(format!(
                "sfu udp port range {}..={} is empty or starts at 0",
                self.udp_port_min, self.udp_port_max
            ));
        }
        if self.worker_threads == 0 {
            return Err("sfu worker_threads must be at least 1".to_owned());
        }
        if self.single_udp_port.is_some()
            && self.bind_ip.is_unspecified()
            && self.announced_ip == AnnouncedIp::Bound
        {
            return Err(
                "sfu single_udp_port needs a concrete bind_ip or an announced_ip to advertise"
                    .to_owned(),
            );
        }
        if self.max_participants_per_room == 0 || self.subscriber_queue_packets == 0 {
            return Err("sfu limits must be at least 1".to_owned());
        }
        Ok(())
    }

    /// How much of each published track the forwarder keeps for retransmissions.
    pub(crate) fn retransmission(&self) -> super::retransmit::RetransmitSettings {
        super::retransmit::RetransmitSettings {
            window: std::time::Duration::from_millis(self.retransmission_buffer_ms),
            max_bytes: self.retransmission_buffer_bytes,
        }
    }

    /// The addresses one participant's sockets bind on `port`.
    pub(crate) fn bind_addrs(&self, port: u16) -> Vec<std::net::SocketAddr> {
        let mut addrs = vec![std::net::SocketAddr::new(self.bind_ip, port)];
        let loopback = IpAddr::from([127, 0, 0, 1]);
        if self.allow_loopback && !self.bind_ip.is_loopback() {
            addrs.push(std::net::SocketAddr::new(loopback, port));
        }
        addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_config_takes_defaults() {
        let config: SfuConfig = serde_json::from_str(r#"{"udpPortMin":1}"#).unwrap_or_default();
        assert_eq!(
            config,
            SfuConfig::default(),
            "unknown camelCase key is rejected"
        );
        let config: SfuConfig =
            serde_json::from_str(r#"{"udp_port_min":5000,"udp_port_max":5010}"#)
                .expect("snake_case keys parse");
        assert_eq!(config.udp_port_min, 5000);
        assert_eq!(config.worker_threads, 2);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn empty_range_is_invalid() {
        let config = SfuConfig::loopback(5010, 5000);
        assert!(config.validate().is_err());
    }

    #[test]
    fn wildcard_with_loopback_binds_both() {
        let config = SfuConfig {
            allow_loopback: true,
            ..SfuConfig::default()
        };
        let addrs = config.bind_addrs(4000);
        assert_eq!(addrs.len(), 2);
        assert!(addrs.iter().any(|a| a.ip().is_loopback()));
        assert_eq!(SfuConfig::loopback(1, 2).bind_addrs(7).len(), 1);
    }
}
