//! The media side of a webrtc-rs test client, independent of how it signals: a peer
//! connection with Opus and VP8, counting what it receives per publisher, and a generator of
//! labelled media. Used by the SFU tests' `Client` (signals through `SfuHandle`) and by the Janus
//! load client (`bench/sfu/janus_load.rs`, signals over Janus's HTTP API).

use super::network::{Network, NetworkRuntime};
use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use talkconnect::sfu::{CloseReason, TrackInfo};
use tokio::sync::mpsc;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::configure_simulcast_extension_headers;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry,
    SettingEngineBuilder, register_default_interceptors,
};

pub const OPUS_PT: u8 = 111;
pub const VP8_PT: u8 = 96;
pub const H264_PT: u8 = 102;
/// Redundant Opus (RFC 2198), for a client made with [`Peer::with_red`].
pub const RED_PT: u8 = 63;
/// A simulcast publisher's rids, lowest layer first.
pub const SIMULCAST_RIDS: [&str; 3] = ["l", "m", "h"];
/// The order in which a simulcast publisher lists its layers (its encodings, and the rids
/// of its SDP): receivers may rank layers by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerOrder {
    /// `l;m;h`, as the web app sends them (the SFU ranks layers in this order).
    LowestFirst,
    /// `h;m;l`, as Janus's janus.js sends them (Janus takes the first rid for the highest).
    HighestFirst,
}

/// The picture size a simulcast publisher's VP8 keyframes give for each layer.
pub const SIMULCAST_SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];

/// The codec a publishing client sends its camera in (every client receives both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoCodec {
    #[default]
    Vp8,
    /// Constrained baseline, packetization-mode 1.
    H264,
}

impl VideoCodec {
    fn codec(self) -> RTCRtpCodec {
        match self {
            VideoCodec::Vp8 => vp8(),
            VideoCodec::H264 => h264(),
        }
    }

    fn payload_type(self) -> u8 {
        match self {
            VideoCodec::Vp8 => VP8_PT,
            VideoCodec::H264 => H264_PT,
        }
    }

    /// The start of a frame's first packet: a VP8 payload descriptor and frame header, or an
    /// H.264 NAL header (IDR or not).
    fn frame_start(self, key: bool) -> Vec<u8> {
        match self {
            VideoCodec::Vp8 => vec![0x10, if key { 0x00 } else { 0x01 }, 0x9d, 0x01, 0x2a],
            VideoCodec::H264 => vec![if key { 0x65 } else { 0x41 }, 0x88],
        }
    }
}

/// The start of a VP8 keyframe whose header gives its size: payload descriptor (S=1, PID 0),
/// frame tag (P=0), start code, 14-bit width and height.
fn vp8_keyframe_start((width, height): (u16, u16)) -> Vec<u8> {
    let mut start = vec![0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
    start.extend_from_slice(&width.to_le_bytes());
    start.extend_from_slice(&height.to_le_bytes());
    start
}

/// Packets one subscriber received from one publisher.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub audio: u64,
    pub video: u64,
    /// Packets whose payload did not name the publisher the stream id claims.
    pub mislabelled: u64,
    /// Audio packets that came as RED (payload type [`RED_PT`]).
    pub audio_red: u64,
    /// Sequence-number gaps seen (lost packets), per kind summed.
    pub lost: u64,
}

#[derive(Default)]
pub struct ClientState {
    pub received: Mutex<HashMap<String, Received>>,
    pub tracks: Mutex<Vec<TrackInfo>>,
    pub offers: AtomicU64,
    pub last_offer_sdp: Mutex<String>,
    pub connected: AtomicBool,
    pub closed: Mutex<Option<CloseReason>>,
    pub keyframe_requests: AtomicU64,
    pub errors: Mutex<Vec<String>>,
    pub server_candidates: Mutex<Vec<String>>,
    /// RTP packets this publisher handed to its connection (of a simulcast publisher, only
    /// its audio and its top layer: what a subscriber on the top layer is meant to receive).
    pub sent_packets: AtomicU64,
    /// RTP packets of a simulcast publisher's layers below the top one.
    pub sent_lower_layers: AtomicU64,
    /// Video frames received per publisher, to tell complete frames from damaged ones.
    pub video_frames: Mutex<HashMap<String, FrameLog>>,
    /// Who sends each SSRC, as the last server description says (`a=ssrc:<ssrc> msid:<user> …`).
    pub ssrc_owners: Mutex<HashMap<u32, String>>,
    /// The signaling is cut (a socket gone): the loop drops what the SFU sends and what this
    /// peer would trickle, counting them in `missed`.
    pub deaf: AtomicBool,
    pub missed: AtomicU64,
}

/// Video frames of one received track, by RTP timestamp: which sequence numbers arrived
/// (first copy only) and which one carried the marker bit. Holds at most `MAX_FRAMES` frames.
#[derive(Debug, Default)]
pub struct FrameLog {
    highest: Option<u64>,
    frames: HashMap<u32, LoggedFrame>,
}

#[derive(Debug)]
struct LoggedFrame {
    first_arrival: Instant,
    seqs: Vec<u64>,
    marker: Option<u64>,
}

/// Frames judged by [`FrameLog::count`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameCount {
    /// Every packet of the frame arrived.
    pub complete: u64,
    /// Expected between the first and the last frame judged, but damaged or missing.
    pub lost: u64,
}

impl FrameLog {
    const MAX_FRAMES: usize = 20_000;

    /// Records one packet; `seq` is extended over wrap-arounds.
    pub fn record(&mut self, now: Instant, seq: u16, timestamp: u32, marker: bool) {
        // Extended numbers start at 2^16 so a late packet from before the first still fits.
        let ext = match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => h.wrapping_add_signed(i64::from(seq.wrapping_sub(h as u16) as i16)),
        };
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        if self.frames.len() >= Self::MAX_FRAMES && !self.frames.contains_key(&timestamp) {
            return;
        }
        let frame = self.frames.entry(timestamp).or_insert(LoggedFrame {
            first_arrival: now,
            seqs: Vec::new(),
            marker: None,
        });
        if !frame.seqs.contains(&ext) {
            frame.seqs.push(ext);
        }
        if marker {
            frame.marker = Some(ext);
        }
    }

    /// Judges the frames whose first packet came at least `grace` before `now` (later ones may
    /// still be repaired). A frame spans the sequence numbers after the previous frame's marker
    /// up to its own; when the previous marker is unknown, as many as the largest frame seen.
    /// Assumes timestamps rise by a constant step per frame, as `Peer::start_media` sends them.
    pub fn count(&self, now: Instant, grace: Duration) -> FrameCount {
        let mut judged: Vec<(u32, &LoggedFrame)> = self
            .frames
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.first_arrival) >= grace)
            .map(|(ts, f)| (*ts, f))
            .collect();
        judged.sort_by_key(|(ts, _)| *ts);
        let (Some(first), Some(last)) = (judged.first(), judged.last()) else {
            return FrameCount::default();
        };
        let step = judged
            .windows(2)
            .map(|w| w[1].0.wrapping_sub(w[0].0))
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(1);
        let expected = u64::from(last.0.wrapping_sub(first.0) / step) + 1;
        let largest = judged.iter().map(|(_, f)| f.seqs.len()).max().unwrap_or(1) as u64;
        let mut complete = 0;
        for (ts, frame) in &judged {
            let Some(marker) = frame.marker else { continue };
            let start = match self
                .frames
                .get(&ts.wrapping_sub(step))
                .and_then(|p| p.marker)
            {
                Some(previous) => previous + 1,
                None => (marker + 1).saturating_sub(largest),
            };
            if (start..=marker).all(|s| frame.seqs.contains(&s)) {
                complete += 1;
            }
        }
        FrameCount {
            complete,
            lost: expected.saturating_sub(complete),
        }
    }
}

impl ClientState {
    /// Learns from a server description which publisher each SSRC belongs to.
    pub fn learn_ssrc_owners(&self, sdp: &str) {
        let owners = sdp.lines().filter_map(|line| {
            let (ssrc, rest) = line.strip_prefix("a=ssrc:")?.split_once(' ')?;
            let stream = rest.strip_prefix("msid:")?.split(' ').next()?;
            Some((ssrc.parse().ok()?, stream.to_owned()))
        });
        self.ssrc_owners.lock().unwrap().extend(owners);
    }

    pub fn received_from(&self, user: &str) -> Received {
        self.received
            .lock()
            .unwrap()
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// Video frames from `user` that arrived at least `grace` ago (see [`FrameLog::count`]).
    pub fn video_frames_from(&self, user: &str, grace: Duration) -> FrameCount {
        self.video_frames
            .lock()
            .unwrap()
            .get(user)
            .map(|log| log.count(Instant::now(), grace))
            .unwrap_or_default()
    }
}

/// Marks inbound PLI/FIR for the application, so a publisher can count keyframe requests.
#[derive(Default)]
struct KeyframeRequestMarker {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestMarker {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;
    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestMarker {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

fn red() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/red".to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: format!("{OPUS_PT}/{OPUS_PT}"),
        rtcp_feedback: vec![],
    }
}

/// A RED payload (RFC 2198): `previous` as a redundant block 960 ticks old (none for the
/// first packet), then `primary`.
fn red_payload(previous: Option<&[u8]>, primary: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + previous.map_or(0, <[u8]>::len) + primary.len());
    if let Some(previous) = previous {
        let len = previous.len();
        out.extend_from_slice(&[
            0x80 | OPUS_PT,
            (960u16 >> 6) as u8,
            (((960u16 & 0x3f) << 2) as u8) | (len >> 8) as u8,
            len as u8,
        ]);
    }
    out.push(OPUS_PT);
    if let Some(previous) = previous {
        out.extend_from_slice(previous);
    }
    out.extend_from_slice(primary);
    out
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn video_feedback() -> Vec<RTCPFeedback> {
    vec![
        RTCPFeedback {
            typ: "nack".into(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "nack".into(),
            parameter: "pli".into(),
        },
    ]
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: video_feedback(),
    }
}

fn h264() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: video_feedback(),
    }
}

/// How a receiver tells which publisher a remote track comes from.
#[derive(Clone, Debug)]
pub enum Attribution {
    /// The track's stream id is the publisher's user id (our SFU).
    StreamId,
    /// The longest of these names found in the track's first packet (SFUs that do not carry
    /// the publisher's name in the SDP; the generator puts it into every payload).
    Payload(Vec<String>),
}

impl Attribution {
    fn label_in(&self, payload: &[u8]) -> Option<String> {
        let Attribution::Payload(names) = self else {
            return None;
        };
        names
            .iter()
            .filter(|n| payload.windows(n.len().max(1)).any(|w| w == n.as_bytes()))
            .max_by_key(|n| n.len())
            .cloned()
    }
}

struct ClientHandler {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    state: Arc<ClientState>,
    attribution: Attribution,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(c) = event.candidate.to_json() {
            let _ = self.candidates.send(c);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.state.connected.store(true, Ordering::SeqCst);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let state = Arc::clone(&self.state);
        let attribution = self.attribution.clone();
        tokio::spawn(async move {
            let mut publisher = track.stream_id().await.to_string();
            let kind = track.kind().await;
            let mut last_seq: Option<u16> = None;
            let mut attributed = matches!(attribution, Attribution::StreamId);
            let mut last_ssrc = None;
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                if !attributed {
                    if let Some(name) = attribution.label_in(&packet.payload) {
                        publisher = name;
                    }
                    attributed = true;
                }
                // A recycled m-line carries a new publisher on a new SSRC, and webrtc-rs keeps
                // the track (and its first stream id) instead of firing on_track again: the
                // SDP's SSRC → msid says who it is now.
                if matches!(attribution, Attribution::StreamId)
                    && last_ssrc != Some(packet.header.ssrc)
                {
                    last_ssrc = Some(packet.header.ssrc);
                    if let Some(owner) = state.ssrc_owners.lock().unwrap().get(&packet.header.ssrc)
                    {
                        publisher.clone_from(owner);
                    }
                    last_seq = None;
                }
                let seq = packet.header.sequence_number;
                let gap = last_seq.map_or(0, |l| u64::from(seq.wrapping_sub(l).wrapping_sub(1)));
                // A late packet (a retransmission) is behind: it neither counts nor moves on.
                let gap = if gap > 1000 { 0 } else { gap };
                if last_seq.is_none_or(|l| seq.wrapping_sub(l) < 0x8000) {
                    last_seq = Some(seq);
                }
                let labelled = packet
                    .payload
                    .windows(publisher.len().max(1))
                    .any(|w| w == publisher.as_bytes());
                let mut received = state.received.lock().unwrap();
                let entry = received.entry(publisher.clone()).or_default();
                entry.lost += gap;
                if !labelled {
                    entry.mislabelled += 1;
                }
                match kind {
                    RtpCodecKind::Audio => entry.audio += 1,
                    _ => entry.video += 1,
                }
                if packet.header.payload_type == RED_PT {
                    entry.audio_red += 1;
                }
                drop(received);
                if kind == RtpCodecKind::Video {
                    state
                        .video_frames
                        .lock()
                        .unwrap()
                        .entry(publisher.clone())
                        .or_default()
                        .record(
                            Instant::now(),
                            seq,
                            packet.header.timestamp,
                            packet.header.marker,
                        );
                }
            }
        });
    }
}

/// How a [`Peer`] differs from a plain UDP client that sends Opus and one video encoding.
#[derive(Default)]
struct Options {
    /// ICE-TCP alone, no UDP socket.
    tcp_only: bool,
    /// UDP sockets through this network (see [`Peer::on_network`]).
    network: Option<Arc<Network>>,
    /// Video as three simulcast layers, listed in this order.
    simulcast: Option<LayerOrder>,
    /// Takes RED and sends its voice in it.
    red: bool,
}

/// A webrtc-rs peer connection with its local tracks (once added) and its tasks.
pub struct Peer {
    pub user: String,
    pub pc: Arc<dyn PeerConnection>,
    pub state: Arc<ClientState>,
    /// Local ICE candidates, for the signaling loop to trickle.
    pub candidates: Option<mpsc::UnboundedReceiver<RTCIceCandidateInit>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What `add_tracks` publishes the camera in.
    pub video_codec: VideoCodec,
    /// Whether `add_tracks` publishes the camera as three simulcast layers, and in which
    /// order (see [`Peer::simulcast`]).
    simulcast: Option<LayerOrder>,
    /// Whether this client takes RED and sends its voice in it (see [`Peer::with_red`]).
    red: bool,
    audio: Option<Arc<TrackLocalStaticRTP>>,
    video: Option<Arc<TrackLocalStaticRTP>>,
}

impl Peer {
    /// A peer connection on a UDP port of `ip` (or, with `tcp_only`, ICE-TCP alone).
    pub async fn new(user: &str, ip: &str, tcp_only: bool, attribution: Attribution) -> Peer {
        let options = Options {
            tcp_only,
            ..Options::default()
        };
        Self::build(user, ip, attribution, options).await
    }

    /// A peer connection on a UDP port of `ip` that offers redundant Opus (RFC 2198 RED,
    /// payload type [`RED_PT`]) first, as the web app does, and sends its voice in it: each
    /// packet carries the frame before it again.
    pub async fn with_red(user: &str, ip: &str) -> Peer {
        let options = Options {
            red: true,
            ..Options::default()
        };
        Self::build(user, ip, Attribution::StreamId, options).await
    }

    /// A peer connection on a UDP port of `ip` that publishes its camera as three simulcast
    /// layers, rids `l`, `m` and `h` listed in `order`, each on its own SSRC and carrying the
    /// mid and rid header extensions as browsers do. `start_media` sends `h` at the given
    /// rate, `m` at half and `l` at a quarter.
    pub async fn simulcast(
        user: &str,
        ip: &str,
        attribution: Attribution,
        order: LayerOrder,
    ) -> Peer {
        let options = Options {
            simulcast: Some(order),
            ..Options::default()
        };
        Self::build(user, ip, attribution, options).await
    }

    /// A peer connection whose UDP sockets go through `network` (a test can cut them), and
    /// which binds new sockets at each ICE restart: it comes back from a new address.
    pub async fn on_network(user: &str, ip: &str, network: Arc<Network>) -> Peer {
        let options = Options {
            network: Some(network),
            ..Options::default()
        };
        Self::build(user, ip, Attribution::StreamId, options).await
    }

    async fn build(user: &str, ip: &str, attribution: Attribution, options: Options) -> Peer {
        let Options {
            tcp_only,
            network,
            simulcast,
            red,
        } = options;
        let state = Arc::new(ClientState::default());
        let (cand_tx, cand_rx) = mpsc::unbounded_channel();
        let mut engine = MediaEngine::default();
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: opus(),
                    payload_type: OPUS_PT,
                },
                RtpCodecKind::Audio,
            )
            .unwrap();
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            engine
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: codec.codec(),
                        payload_type: codec.payload_type(),
                    },
                    RtpCodecKind::Video,
                )
                .unwrap();
        }
        if red {
            engine
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: self::red(),
                        payload_type: RED_PT,
                    },
                    RtpCodecKind::Audio,
                )
                .unwrap();
        }
        if simulcast.is_some() {
            configure_simulcast_extension_headers(&mut engine).unwrap();
        }
        let registry = register_default_interceptors(Registry::new(), &mut engine)
            .unwrap()
            .with(Slot::from(14_000usize), KeyframeRequestMarker::default());
        let mut settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        if tcp_only {
            settings = settings.with_network_types(vec![rtc::ice::network_type::NetworkType::Tcp4]);
        }
        if network.is_some() {
            settings = settings.with_discard_local_candidates_during_ice_restart(true);
        }
        let (udp, tcp) = if tcp_only {
            (vec![], vec![format!("{ip}:0")])
        } else {
            (vec![format!("{ip}:0")], vec![])
        };
        let mut builder = PeerConnectionBuilder::new();
        if let Some(network) = network {
            builder = builder.with_runtime(Arc::new(NetworkRuntime { network }));
        }
        let pc = builder
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(Arc::new(ClientHandler {
                candidates: cand_tx,
                state: Arc::clone(&state),
                attribution,
            }))
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp)
            .build()
            .await
            .expect("client peer connection");
        Peer {
            user: user.to_owned(),
            pc: Arc::new(pc),
            state,
            candidates: Some(cand_rx),
            tasks: vec![],
            video_codec: VideoCodec::default(),
            simulcast,
            red,
            audio: None,
            video: None,
        }
    }

    /// Adds an Opus and a video track in `video_codec` (stream id `<user>-stream`).
    pub async fn add_tracks(&mut self) {
        let video = self.video_codec.codec();
        for (kind, codec) in [(RtpCodecKind::Audio, opus()), (RtpCodecKind::Video, video)] {
            let mut rids = vec![""];
            if let (Some(order), RtpCodecKind::Video) = (self.simulcast, kind) {
                rids = SIMULCAST_RIDS.to_vec();
                if order == LayerOrder::HighestFirst {
                    rids.reverse();
                }
            }
            let encodings = rids
                .iter()
                .map(|rid| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: (*rid).to_owned(),
                        ssrc: Some(rand::random::<u32>() | 1),
                        ..Default::default()
                    },
                    codec: codec.clone(),
                    ..Default::default()
                })
                .collect();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("{}-stream", self.user),
                format!("{}-{kind}", self.user),
                format!("{}-{kind}", self.user),
                kind,
                encodings,
            )));
            let sender = self
                .pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await
                .expect("add_track");
            let preferences = if kind == RtpCodecKind::Video {
                // Offer every video codec, the one sent first (as browsers do): the SFU may
                // forward either to this client.
                let others = [VideoCodec::Vp8, VideoCodec::H264]
                    .into_iter()
                    .filter(|c| *c != self.video_codec);
                std::iter::once(self.video_codec)
                    .chain(others)
                    .map(|c| RTCRtpCodecParameters {
                        rtp_codec: c.codec(),
                        payload_type: c.payload_type(),
                    })
                    .collect::<Vec<_>>()
            } else if self.red {
                // RED first: the answer then has it first, and the voice goes out in it.
                vec![
                    RTCRtpCodecParameters {
                        rtp_codec: red(),
                        payload_type: RED_PT,
                    },
                    RTCRtpCodecParameters {
                        rtp_codec: opus(),
                        payload_type: OPUS_PT,
                    },
                ]
            } else {
                vec![]
            };
            if !preferences.is_empty() {
                for transceiver in self.pc.get_transceivers().await {
                    if let Ok(Some(s)) = transceiver.sender().await
                        && s.id() == sender.id()
                    {
                        transceiver
                            .set_codec_preferences(preferences.clone())
                            .await
                            .expect("codec preferences");
                    }
                }
            }
            // Count keyframe requests reaching this publisher.
            let state = Arc::clone(&self.state);
            let reader = Arc::clone(&track);
            self.tasks.push(tokio::spawn(async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = reader.poll().await {
                    let n = packets
                        .iter()
                        .filter(|p| {
                            p.as_any().is::<PictureLossIndication>()
                                || p.as_any().is::<FullIntraRequest>()
                        })
                        .count();
                    state
                        .keyframe_requests
                        .fetch_add(n as u64, Ordering::SeqCst);
                }
            }));
            match kind {
                RtpCodecKind::Audio => self.audio = Some(track),
                _ => self.video = Some(track),
            }
        }
    }

    /// Sends generated media: 50 Opus packets/s and `video_pps` video packets/s (VP8 or H.264;
    /// none at 0)
    /// (a keyframe-like packet every second), each payload naming the publisher so receivers
    /// can check labels. A simulcast publisher sends its top layer at `video_pps`, the one
    /// below at half and the lowest at a quarter (at least one packet per 20 ms each), every
    /// layer with its own sequence numbers and keyframes, and the mid and rid extensions.
    pub fn start_media(&mut self, video_pps: u32, payload_len: usize) {
        let (Some(audio), Some(video)) = (self.audio.clone(), self.video.clone()) else {
            panic!("start_media needs a publishing client");
        };
        let label = self.user.clone().into_bytes();
        let state = Arc::clone(&self.state);
        let codec = self.video_codec;
        let pc = Arc::clone(&self.pc);
        let simulcast = self.simulcast.is_some();
        let red = self.red;
        self.tasks.push(tokio::spawn(async move {
            let audio_ssrc = audio.ssrcs().await[0];
            // (SSRC, layer: 0 the lowest), the top layer last.
            let mut video_ssrcs = Vec::new();
            for ssrc in video.ssrcs().await {
                let rid = video.rid(ssrc).await.unwrap_or_default();
                let layer = SIMULCAST_RIDS.iter().position(|r| *r == rid).unwrap_or(0);
                video_ssrcs.push((ssrc, layer));
            }
            video_ssrcs.sort_by_key(|(_, layer)| *layer);
            let layer_ids = if simulcast {
                let sdp = pc.local_description().await.expect("negotiated").sdp;
                Some(LayerIds::from_sdp(&sdp))
            } else {
                None
            };
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let top = video_ssrcs.len() - 1;
            // Packets of a layer in tick n: what n ticks owe at the layer's rate less what
            // n − 1 ticks owed, so a rate that is no multiple of 50 comes out right on average.
            let per_tick = |layer: usize, n: u32| {
                let pps = u64::from((video_pps >> (top - layer)).max(50));
                let owed = |ticks: u32| pps * u64::from(ticks) / 50;
                owed(n) - owed(n - 1)
            };
            let (mut aseq, mut n) = (0u16, 0u32);
            let mut previous_frame: Option<Vec<u8>> = None;
            let mut vseq = vec![0u16; video_ssrcs.len()];
            loop {
                tick.tick().await;
                n += 1;
                let mut payload = vec![0xfcu8, 0xff, 0xfe];
                payload.extend_from_slice(&label);
                let (payload_type, payload) = if red {
                    let wrapped = red_payload(previous_frame.as_deref(), &payload);
                    previous_frame = Some(payload);
                    (RED_PT, wrapped)
                } else {
                    (OPUS_PT, payload)
                };
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        payload_type,
                        sequence_number: aseq,
                        timestamp: n * 960,
                        ssrc: audio_ssrc,
                        marker: aseq == 0,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                };
                aseq = aseq.wrapping_add(1);
                if audio.write_rtp(packet).await.is_ok() {
                    state.sent_packets.fetch_add(1, Ordering::Relaxed);
                }
                // 0 video packets a second: a camera that is off (audio-only rooms).
                let video_layers = if video_pps == 0 {
                    &[][..]
                } else {
                    &video_ssrcs[..]
                };
                for &(ssrc, layer) in video_layers {
                    let count = per_tick(layer, n);
                    for i in 0..count {
                        // VP8 descriptor (S=1, PID 0) then a frame header: P=0 (key) once a
                        // second.
                        let key = n % 50 == 1 && i == 0;
                        let mut payload = match (key, &layer_ids, codec) {
                            (true, Some(_), VideoCodec::Vp8) => {
                                vp8_keyframe_start(SIMULCAST_SIZES[layer])
                            }
                            _ => codec.frame_start(key),
                        };
                        payload.extend_from_slice(&label);
                        payload.resize(payload_len.max(payload.len()), 0x55);
                        let mut packet = rtp::Packet {
                            header: rtp::header::Header {
                                version: 2,
                                payload_type: codec.payload_type(),
                                sequence_number: vseq[layer],
                                timestamp: n * 1800,
                                ssrc,
                                marker: i + 1 == count,
                                ..Default::default()
                            },
                            payload: Bytes::from(payload),
                        };
                        if let Some(ids) = &layer_ids {
                            ids.mark(&mut packet.header, SIMULCAST_RIDS[layer]);
                        }
                        vseq[layer] = vseq[layer].wrapping_add(1);
                        if video.write_rtp(packet).await.is_ok() {
                            let counter = if layer == top {
                                &state.sent_packets
                            } else {
                                &state.sent_lower_layers
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }

    /// Creates an offer, applies it locally and returns its SDP.
    pub async fn local_offer(&self) -> String {
        local_offer(&self.pc).await
    }

    pub async fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.pc.close().await;
    }
}

/// The video m-line's mid and the header extension ids that name a simulcast layer, as this
/// client offered them (an answer keeps the offered ids).
struct LayerIds {
    mid: Bytes,
    mid_id: u8,
    rid_id: u8,
}

impl LayerIds {
    fn from_sdp(sdp: &str) -> Self {
        let video = &sdp[sdp.find("m=video").expect("a video m-line")..];
        let attr = |prefix: &str| {
            video
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::trim)
        };
        let ext_id = |uri: &str| {
            video
                .lines()
                .filter_map(|l| l.strip_prefix("a=extmap:"))
                .find_map(|l| {
                    let (id, rest) = l.split_once(' ')?;
                    (rest.trim() == uri).then(|| id.split('/').next()?.parse().ok())?
                })
                .unwrap_or_else(|| panic!("no extmap for {uri}"))
        };
        LayerIds {
            mid: Bytes::from(attr("a=mid:").expect("a video mid").to_owned()),
            mid_id: ext_id("urn:ietf:params:rtp-hdrext:sdes:mid"),
            rid_id: ext_id("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
        }
    }

    fn mark(&self, header: &mut rtp::header::Header, rid: &'static str) {
        header.extension = true;
        header.extension_profile = rtp::header::EXTENSION_PROFILE_ONE_BYTE;
        header.set_extension(self.mid_id, self.mid.clone()).unwrap();
        header
            .set_extension(self.rid_id, Bytes::from_static(rid.as_bytes()))
            .unwrap();
    }
}

/// Creates an offer on `pc`, applies it locally and returns its SDP.
pub async fn local_offer(pc: &Arc<dyn PeerConnection>) -> String {
    let offer = pc.create_offer(None).await.expect("offer");
    pc.set_local_description(offer)
        .await
        .expect("set local offer");
    pc.local_description().await.expect("local").sdp
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_log_tells_complete_from_damaged_frames() {
        let t0 = Instant::now();
        let mut log = FrameLog::default();
        // Frames of 3 packets, timestamps 100 apart, numbers wrapping at 65535.
        let mut seq = 65530u16;
        for frame in 0..6u32 {
            for i in 0..3 {
                let lost = (frame == 2 && i == 1) || frame == 4;
                if !lost {
                    log.record(t0, seq, 1000 + frame * 100, i == 2);
                }
                seq = seq.wrapping_add(1);
            }
        }
        let late = t0 + Duration::from_secs(2);
        assert_eq!(
            log.count(late, Duration::from_secs(1)),
            FrameCount {
                complete: 4,
                lost: 2
            }
        );
        // The retransmission of frame 2's middle packet (65530 + 7) repairs it.
        log.record(late, 65530u16.wrapping_add(7), 1200, false);
        assert_eq!(log.count(late, Duration::from_secs(1)).complete, 5);
        assert_eq!(log.count(t0, Duration::from_secs(1)), FrameCount::default());
    }
}
