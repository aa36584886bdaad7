//! Does the running server's SFU answer on its UDP and TCP ports? The doctor signs in as a
//! guest and asks for connectivity probes (`POST /api/doctor/probe`, as the web app's /doctor
//! page does), then times pings over a webrtc-rs data channel from this machine.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceGatheringState, RTCSessionDescription, SettingEngineBuilder,
};

use super::web::WebTarget;
use super::{Finding, fail, ok, warn};
use crate::config::Settings;
use crate::sfu::{PROBE_BYE, ProbeTransport};

/// Round trips timed per path; the median is reported.
const PINGS: usize = 5;
/// How long a path has to connect and echo every ping.
const PATH_TIMEOUT: Duration = Duration::from_secs(6);
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) fn check(settings: &Settings, web: WebTarget) -> Vec<Finding> {
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let findings = runtime.block_on(async {
        let token = match sign_in(web).await {
            Ok(token) => token,
            Err(e) => {
                return vec![warn(
                    format!("the SFU's ports were not probed: signing in as a guest failed: {e}"),
                    "run the doctor again in a minute (sign-ins are rate limited per address)",
                )];
            }
        };
        let mut findings = Vec::new();
        for transport in [ProbeTransport::Udp, ProbeTransport::Tcp] {
            findings.push(path(settings, web, &token, transport).await);
        }
        findings
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    findings
}

async fn sign_in(web: WebTarget) -> Result<String, String> {
    let body = json!({ "displayName": "Doctor" }).to_string();
    let (status, answer) = blocking(web, "/api/auth/guest", None, body).await?;
    let answer: Value = serde_json::from_str(&answer).unwrap_or_default();
    match answer["token"].as_str() {
        Some(token) if status == 201 => Ok(token.to_owned()),
        _ => Err(format!("HTTP {status} {}", answer["error"]["code"])),
    }
}

async fn blocking(
    web: WebTarget,
    path: &'static str,
    token: Option<String>,
    body: String,
) -> Result<(u16, String), String> {
    tokio::task::spawn_blocking(move || web.request("POST", path, token.as_deref(), Some(&body)))
        .await
        .map_err(|e| e.to_string())?
}

/// One path: the probe's answer, then the round trips.
async fn path(
    settings: &Settings,
    web: WebTarget,
    token: &str,
    transport: ProbeTransport,
) -> Finding {
    let sfu = &settings.sfu;
    let (name, ports) = match transport {
        ProbeTransport::Tcp => (
            "ICE-TCP",
            format!("TCP ports {}-{}", sfu.udp_port_min, sfu.udp_port_max),
        ),
        _ => (
            "UDP",
            match sfu.single_udp_port {
                Some(port) => format!("UDP port {port} (sfu.single_udp_port)"),
                None => format!(
                    "UDP ports {}-{} (sfu.udp_port_min..sfu.udp_port_max)",
                    sfu.udp_port_min, sfu.udp_port_max
                ),
            },
        ),
    };
    let client = match ProbeClient::new(sfu.bind_ip, sfu.allow_loopback, transport).await {
        Ok(client) => client,
        Err(e) => return warn(format!("{name} probe not run: {e}"), "run it again"),
    };
    let body = json!({ "transport": transport, "sdp": client.offer }).to_string();
    let answer = blocking(web, "/api/doctor/probe", Some(token.to_owned()), body).await;
    let answer = match answer {
        Ok((200, answer)) => serde_json::from_str::<Value>(&answer).unwrap_or_default(),
        Ok((status, answer)) => {
            client.close().await;
            return warn(
                format!("{name} probe refused: HTTP {status} {answer}"),
                "run the doctor again in a minute (probes are rate limited per user)",
            );
        }
        Err(e) => {
            client.close().await;
            return warn(format!("{name} probe not run: {e}"), "run it again");
        }
    };
    if answer["reason"] == "iceTcpOff" {
        client.close().await;
        return warn(
            "ICE-TCP is off: browsers on networks that block UDP reach the SFU only through a TURN relay",
            "set sfu.ice_tcp = true and open the SFU's port range for TCP too (or run TURN: turn.enabled = true)",
        );
    }
    let Some(sdp) = answer["sdp"].as_str() else {
        client.close().await;
        return warn(
            format!("{name} probe: the server answered {answer}"),
            "run it again",
        );
    };
    // Behind 1:1 NAT the probe's candidates name the announced address, which this machine may
    // not reach (few NATs loop back): the doctor sends to the local address instead, so what
    // it tests is the SFU and this host, not the NAT.
    let local = local_address(sfu.bind_ip);
    let sdp = to_local(sdp, is_local, local);
    let result = tokio::time::timeout(PATH_TIMEOUT, client.round_trips(&sdp)).await;
    client.close().await;
    match result {
        Ok(Ok(mut rtts)) if !rtts.is_empty() => {
            rtts.sort();
            let median = rtts[rtts.len() / 2];
            ok(format!(
                "the SFU answers over {name} from this machine: round trip {:.1} ms (median of {})",
                median.as_secs_f64() * 1000.0,
                rtts.len()
            ))
        }
        Ok(Err(e)) => fail(
            format!("the SFU's {name} probe failed: {e}"),
            format!("the server's log says more (lines with \"probe\"); check {ports} are open"),
        ),
        _ => fail(
            format!(
                "the SFU does not answer over {name} from this machine within {} s",
                PATH_TIMEOUT.as_secs()
            ),
            match transport {
                ProbeTransport::Tcp => format!(
                    "open {ports} in the firewall (TCP); browsers whose networks block UDP need them"
                ),
                _ => format!(
                    "open {ports} in the firewall for UDP (e.g. `ufw allow {}:{}/udp`); \
                     and check sfu.announced_ip is an address that reaches this machine",
                    sfu.single_udp_port.unwrap_or(sfu.udp_port_min),
                    sfu.single_udp_port.unwrap_or(sfu.udp_port_max)
                ),
            },
        ),
    }
}

/// Can this machine bind `ip`: is it one of its own addresses?
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The address of this machine the SFU listens on: `bind_ip`, or (listening on all) the one
/// this machine sends from by its default route (connecting a UDP socket sends nothing).
fn local_address(bind_ip: IpAddr) -> Option<IpAddr> {
    if !bind_ip.is_unspecified() {
        return Some(bind_ip);
    }
    let socket = std::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0)).ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

/// `sdp` with each candidate that names an address not of this machine (`local_ip` says)
/// naming `local` instead.
fn to_local(sdp: &str, local_ip: impl Fn(IpAddr) -> bool, local: Option<IpAddr>) -> String {
    let Some(local) = local else {
        return sdp.to_owned();
    };
    sdp.split_inclusive('\n')
        .map(|line| {
            let Some(candidate) = line.strip_prefix("a=candidate:") else {
                return line.to_owned();
            };
            // candidate:<foundation> <component> <transport> <priority> <address> <port> …
            let mut fields: Vec<&str> = candidate.split(' ').collect();
            match fields.get(4).and_then(|a| a.parse::<IpAddr>().ok()) {
                Some(ip) if !local_ip(ip) && ip.is_ipv4() == local.is_ipv4() => {
                    let local = local.to_string();
                    fields[4] = &local;
                    format!("a=candidate:{}", fields.join(" "))
                }
                _ => line.to_owned(),
            }
        })
        .collect()
}

struct Gathering(mpsc::UnboundedSender<()>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Gathering {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(());
        }
    }
}

/// A browser stand-in with one data channel, gathering only the path's candidates.
struct ProbeClient {
    pc: Arc<dyn PeerConnection>,
    channel: Arc<dyn DataChannel>,
    offer: String,
}

impl ProbeClient {
    async fn new(
        sfu_ip: IpAddr,
        allow_loopback: bool,
        transport: ProbeTransport,
    ) -> Result<Self, String> {
        use rtc::ice::network_type::NetworkType;
        // From the SFU's own address (all of this machine's when it listens on all).
        let mut addrs = vec![SocketAddr::new(sfu_ip, 0)];
        if allow_loopback && !sfu_ip.is_loopback() {
            addrs.push(SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
        let mut settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        let (udp, tcp) = if transport == ProbeTransport::Tcp {
            let network = if sfu_ip.is_ipv6() {
                NetworkType::Tcp6
            } else {
                NetworkType::Tcp4
            };
            settings = settings.with_network_types(vec![network]);
            (vec![], addrs)
        } else {
            (addrs, vec![])
        };
        let pc = PeerConnectionBuilder::new()
            .with_setting_engine(settings.build())
            .with_handler(Arc::new(Gathering(gathered_tx)))
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp)
            .build()
            .await
            .map_err(|e| format!("a local peer connection: {e}"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let channel = pc
            .create_data_channel("doctor", None)
            .await
            .map_err(|e| e.to_string())?;
        let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
        pc.set_local_description(offer)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await;
        let offer = pc
            .local_description()
            .await
            .ok_or("no local description")?
            .sdp;
        Ok(Self { pc, channel, offer })
    }

    /// Applies the probe's answer, waits for the channel and times [`PINGS`] echoes.
    async fn round_trips(&self, sdp: &str) -> Result<Vec<Duration>, String> {
        let answer = RTCSessionDescription::answer(sdp.to_owned()).map_err(|e| e.to_string())?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| e.to_string())?;
        // webrtc-rs connects over ICE-TCP only to passive candidates handed to
        // add_ice_candidate, not to those inside a description.
        for line in sdp.lines().filter_map(|l| l.strip_prefix("a=")) {
            if line.starts_with("candidate:") && line.contains("tcptype passive") {
                self.pc
                    .add_ice_candidate(RTCIceCandidateInit {
                        candidate: line.to_owned(),
                        sdp_mid: Some("0".to_owned()),
                        sdp_mline_index: Some(0),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut rtts = Vec::with_capacity(PINGS);
        let mut sent_at = Instant::now();
        loop {
            match self.channel.poll().await {
                Some(DataChannelEvent::OnOpen) => {
                    sent_at = Instant::now();
                    self.send(0).await?;
                }
                Some(DataChannelEvent::OnMessage(message)) => {
                    if message.data.as_ref() != format!("ping:{}", rtts.len()).as_bytes() {
                        return Err("the probe echoed something else".to_owned());
                    }
                    rtts.push(sent_at.elapsed());
                    if rtts.len() == PINGS {
                        let _ = self.channel.send_text(PROBE_BYE).await;
                        return Ok(rtts);
                    }
                    sent_at = Instant::now();
                    self.send(rtts.len()).await?;
                }
                Some(DataChannelEvent::OnClose) | None => {
                    return Err("the probe closed its data channel".to_owned());
                }
                Some(_) => {}
            }
        }
    }

    async fn send(&self, n: usize) -> Result<(), String> {
        self.channel
            .send_text(&format!("ping:{n}"))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_candidates_are_sent_to_the_local_address() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 203.0.113.9 40000 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host\r\na=end-of-candidates\r\n";
        let local = Some(IpAddr::from([10, 0, 0, 5]));
        let mapped = to_local(sdp, |ip| ip.is_loopback(), local);
        assert_eq!(
            mapped,
            "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n\
             a=candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host\r\na=end-of-candidates\r\n"
        );
        assert_eq!(to_local(sdp, |_| true, local), sdp);
        assert_eq!(to_local(sdp, |_| false, None), sdp);
    }
}
