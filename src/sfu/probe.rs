//! The connectivity probe behind a "does my media get through?" page: a short-lived peer
//! connection built exactly like a participant's (a port of the same range, the single-port
//! mux, ICE-TCP, the same candidate policy) that offers only the transport under test and
//! echoes what arrives on its data channel, so the browser can time round trips. One per
//! owner at a time (a newer one closes the older), closed after [`PROBE_LIFETIME`], on a
//! failed connection, on the client's `bye` and when the SFU stops.

use super::candidate::{Candidate, CandidatePolicy, RemoteCandidates, map_candidate_lines};
use super::error::{SfuError, internal};
use super::peer::announce_sdp;
use super::room::{LeasedPeer, MAX_SDP_BYTES, SfuShared, parse_client_offer};
use super::stats::{SfuMetrics, spawn_counted};
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};

/// How long a probe lives at most: long enough for ICE over TCP or a relay and a few dozen
/// pings, short enough that an abandoned one gives its port back soon.
pub const PROBE_LIFETIME: Duration = Duration::from_secs(30);
/// Longest message echoed; a ping is a few bytes. Longer ones are dropped.
pub const MAX_ECHO_BYTES: usize = 256;
/// Messages echoed per probe; later ones are dropped.
pub const MAX_ECHOES: u32 = 100;
/// The text a client sends on the data channel when it is done: the probe closes at once.
pub const PROBE_BYE: &str = "bye";
/// How long the server's own candidates may take to gather (host candidates: at once).
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// The path a probe tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeTransport {
    /// Straight UDP to the SFU: only UDP candidates on either side.
    Udp,
    /// ICE-TCP: only TCP candidates on either side.
    Tcp,
    /// Through the client's TURN relay to the SFU's UDP candidates: only the client's relayed
    /// candidates are used.
    Relay,
}

impl ProbeTransport {
    /// Whether a candidate of the client's offer belongs to this path.
    fn client_uses(self, candidate: &Candidate) -> bool {
        let relay = candidate.kind() == "relay";
        match self {
            ProbeTransport::Udp => candidate.transport() == "udp" && !relay,
            ProbeTransport::Tcp => candidate.transport() == "tcp" && !relay,
            ProbeTransport::Relay => relay,
        }
    }

    /// Whether one of our own candidates is offered on this path.
    fn server_offers(self, candidate: &Candidate) -> bool {
        match self {
            ProbeTransport::Udp | ProbeTransport::Relay => candidate.transport() == "udp",
            ProbeTransport::Tcp => candidate.transport() == "tcp",
        }
    }
}

/// What the SFU makes of a probe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The probe is up: the SDP answer to apply.
    Ready { sdp: String },
    /// This server does not offer the path (ICE-TCP is off).
    TransportOff,
}

pub(crate) struct ProbeSlot {
    id: u64,
    cancel: CancellationToken,
}

/// The live probes by owner.
pub(crate) type ProbeRegistry = Arc<Mutex<HashMap<String, ProbeSlot>>>;

/// Takes the owner's slot out of the registry when its probe ends, unless a newer probe
/// holds it by then.
struct SlotGuard {
    probes: ProbeRegistry,
    owner: String,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut probes) = self.probes.lock()
            && probes
                .get(&self.owner)
                .is_some_and(|slot| slot.id == self.id)
        {
            probes.remove(&self.owner);
        }
    }
}

/// Number of probes alive now.
pub(crate) fn live_probes(probes: &ProbeRegistry) -> usize {
    probes.lock().map(|p| p.len()).unwrap_or(0)
}

/// Starts a probe for `owner` from the client's offer (ICE gathering complete, so its
/// candidates are in it: there is no trickling). Runs on the SFU's runtime.
pub(crate) async fn start_probe(
    shared: SfuShared,
    owner: String,
    transport: ProbeTransport,
    offer: String,
) -> Result<ProbeAnswer, SfuError> {
    if transport == ProbeTransport::Tcp && !shared.config.ice_tcp {
        return Ok(ProbeAnswer::TransportOff);
    }
    let offer = client_offer(&shared, transport, offer)?;
    let id = shared.metrics.next_id();
    let cancel = shared.cancel.child_token();
    {
        let mut probes = shared.probes.lock().map_err(|_| SfuError::Internal)?;
        let slot = ProbeSlot {
            id,
            cancel: cancel.clone(),
        };
        if let Some(older) = probes.insert(owner.clone(), slot) {
            older.cancel.cancel();
        }
    }
    let guard = SlotGuard {
        probes: Arc::clone(&shared.probes),
        owner: owner.clone(),
        id,
    };
    let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
    let handler = Arc::new(ProbeHandler {
        gathered: gathered_tx,
        cancel: cancel.clone(),
        metrics: Arc::clone(&shared.metrics),
    });
    let LeasedPeer {
        port: lease,
        pc,
        mux_route,
    } = shared.lease_peer(handler, None).await?;
    let answer = async {
        pc.set_remote_description(offer)
            .await
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        pc.set_local_description(answer)
            .await
            .map_err(|e| internal("probe set_local_description", e))?;
        let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await;
        let sdp = pc.local_description().await.ok_or(SfuError::Internal)?.sdp;
        if let Some(route) = &mux_route {
            route.follow(&sdp);
        }
        let sdp = keep_candidates(&sdp, |c| transport.server_offers(c))?;
        Ok(announce_sdp(&sdp, &shared.candidate_rewrite()))
    }
    .await;
    let sdp = match answer {
        Ok(sdp) => sdp,
        Err(e) => {
            let _ = pc.close().await;
            return Err(e);
        }
    };
    tracing::info!(owner, probe = id, ?transport, "sfu: probe started");
    spawn_counted(&shared.metrics, async move {
        tokio::select! {
            () = tokio::time::sleep(PROBE_LIFETIME) => {}
            () = cancel.cancelled() => {}
        }
        cancel.cancel();
        let _ = pc.close().await;
        drop(lease);
        drop(guard);
        tracing::info!(owner, probe = id, "sfu: probe closed");
    });
    Ok(ProbeAnswer::Ready { sdp })
}

/// The client's offer, checked: within the size limit, exactly one media section and that a
/// data channel, only candidates of the path under test and of addresses the SFU probes.
fn client_offer(
    shared: &SfuShared,
    transport: ProbeTransport,
    offer: String,
) -> Result<webrtc::peer_connection::RTCSessionDescription, SfuError> {
    if offer.len() > MAX_SDP_BYTES {
        return Err(SfuError::InvalidSdp(format!(
            "longer than {MAX_SDP_BYTES} bytes"
        )));
    }
    let offer = keep_candidates(&offer, |c| transport.client_uses(c))?;
    let policy = CandidatePolicy::of(&shared.config);
    let (offer, _) = RemoteCandidates::default().filter_sdp(&offer, policy)?;
    let description = parse_client_offer(offer)?;
    let parsed = description
        .unmarshal()
        .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
    let only_data = parsed.media_descriptions.len() == 1
        && parsed.media_descriptions[0].media_name.media == "application";
    if !only_data {
        return Err(SfuError::InvalidSdp(
            "a probe offer carries one data channel and nothing else".to_owned(),
        ));
    }
    Ok(description)
}

/// Keeps the `a=candidate:` lines `keep` accepts; a line that does not parse makes the SDP
/// invalid.
fn keep_candidates(sdp: &str, keep: impl Fn(&Candidate) -> bool) -> Result<String, SfuError> {
    map_candidate_lines(sdp, |line| match Candidate::parse(line) {
        Ok(candidate) if keep(&candidate) => Ok(Some(line.to_owned())),
        Ok(_) => Ok(None),
        Err(why) => Err(SfuError::InvalidSdp(format!(
            "an a=candidate line does not parse ({why})"
        ))),
    })
}

/// Posts what the probe waits for and echoes the data channel; holds no connection.
struct ProbeHandler {
    gathered: mpsc::UnboundedSender<()>,
    cancel: CancellationToken,
    metrics: Arc<SfuMetrics>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ProbeHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if matches!(
            state,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        ) {
            self.cancel.cancel();
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        spawn_counted(&self.metrics, echo(channel, self.cancel.clone()));
    }
}

/// Sends every short message back as it came (text as text), until the probe ends or the
/// client says `bye`.
async fn echo(channel: Arc<dyn DataChannel>, cancel: CancellationToken) {
    let mut echoed = 0u32;
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break,
            event = channel.poll() => event,
        };
        let message = match event {
            Some(DataChannelEvent::OnMessage(message)) => message,
            Some(DataChannelEvent::OnClose) | None => break,
            Some(_) => continue,
        };
        if message.is_string && message.data[..] == *PROBE_BYE.as_bytes() {
            cancel.cancel();
            break;
        }
        if message.data.len() > MAX_ECHO_BYTES || echoed >= MAX_ECHOES {
            continue;
        }
        echoed += 1;
        let sent = if message.is_string {
            match std::str::from_utf8(&message.data) {
                Ok(text) => channel.send_text(text).await,
                Err(_) => continue,
            }
        } else {
            channel.send(BytesMut::from(&message.data[..])).await
        };
        if sent.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
        a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n\
        a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n\
        a=candidate:3 1 udp 41885439 127.0.0.1 3478 typ relay raddr 0.0.0.0 rport 0\r\n";

    fn kept(transport: ProbeTransport, client: bool) -> Vec<String> {
        let out = keep_candidates(SDP, |c| {
            if client {
                transport.client_uses(c)
            } else {
                transport.server_offers(c)
            }
        })
        .expect("parses");
        out.lines()
            .filter_map(|l| l.strip_prefix("a=candidate:"))
            .map(|l| l[..1].to_owned())
            .collect()
    }

    #[test]
    fn each_path_keeps_only_its_candidates() {
        assert_eq!(kept(ProbeTransport::Udp, true), ["1"]);
        assert_eq!(kept(ProbeTransport::Tcp, true), ["2"]);
        assert_eq!(kept(ProbeTransport::Relay, true), ["3"]);
        assert_eq!(kept(ProbeTransport::Udp, false), ["1", "3"]);
        assert_eq!(kept(ProbeTransport::Tcp, false), ["2"]);
    }

    #[test]
    fn a_candidate_that_does_not_parse_is_invalid_sdp() {
        let bad = "v=0\r\na=candidate:x\r\n";
        assert!(matches!(
            keep_candidates(bad, |_| true),
            Err(SfuError::InvalidSdp(_))
        ));
    }
}
