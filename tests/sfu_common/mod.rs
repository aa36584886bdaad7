//! A webrtc-rs client that talks to the SFU exactly as the gateway would relay a browser:
//! through `SfuHandle::join` / `signal` and the `SfuEvent` channel. Shared by the SFU tests and
//! the load tool (`bench/sfu`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
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
use talkconnect::sfu::{
    ClientSignal, CloseReason, IceCandidate, JoinOptions, MediaKind, SdpPayload, ServerSignal,
    SfuEvent, SfuEventKind, SfuHandle, TrackInfo,
};
use tokio::sync::mpsc;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder, register_default_interceptors,
};

pub const OPUS_PT: u8 = 111;
pub const VP8_PT: u8 = 96;

/// Packets one subscriber received from one publisher.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub audio: u64,
    pub video: u64,
    /// Packets whose payload did not name the publisher the stream id claims.
    pub mislabelled: u64,
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
    /// RTP packets this publisher handed to its connection.
    pub sent_packets: AtomicU64,
}

impl ClientState {
    pub fn received_from(&self, user: &str) -> Received {
        self.received
            .lock()
            .unwrap()
            .get(user)
            .cloned()
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

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "pli".into(),
            },
        ],
    }
}

struct ClientHandler {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    state: Arc<ClientState>,
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
        tokio::spawn(async move {
            let publisher = track.stream_id().await.to_string();
            let kind = track.kind().await;
            let mut last_seq: Option<u16> = None;
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                let seq = packet.header.sequence_number;
                let gap = last_seq.map_or(0, |l| u64::from(seq.wrapping_sub(l).wrapping_sub(1)));
                let gap = if gap > 1000 { 0 } else { gap };
                last_seq = Some(seq);
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
            }
        });
    }
}

/// One participant: a webrtc-rs peer connection plus the loop that answers the SFU.
pub struct Client {
    pub user: String,
    pub room: String,
    pub pc: Arc<dyn PeerConnection>,
    pub state: Arc<ClientState>,
    sfu: SfuHandle,
    audio: Option<Arc<TrackLocalStaticRTP>>,
    video: Option<Arc<TrackLocalStaticRTP>>,
    candidates: Option<mpsc::UnboundedReceiver<RTCIceCandidateInit>>,
    events: Option<mpsc::UnboundedReceiver<SfuEvent>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Client {
    /// Joins `room` through the handle. `publish` adds an Opus and a VP8 track and sends the
    /// client offer; otherwise the client only answers server offers.
    pub async fn join(sfu: &SfuHandle, room: &str, user: &str, publish: bool) -> Client {
        let mut client = Self::join_held(sfu, room, user, publish).await;
        if publish {
            client.publish().await;
        }
        client.start_signaling();
        client
    }

    /// Joins without publishing and without starting the signaling loop, so a test can
    /// interleave messages by hand (`next_event`, `publish`, `start_signaling`).
    pub async fn join_held(sfu: &SfuHandle, room: &str, user: &str, publish: bool) -> Client {
        Self::join_held_on(sfu, room, user, publish, false).await
    }

    /// Joins receive-only over ICE-TCP alone: no UDP socket, TCP network types only.
    pub async fn join_tcp_only(sfu: &SfuHandle, room: &str, user: &str) -> Client {
        let mut client = Self::join_held_on(sfu, room, user, false, true).await;
        client.start_signaling();
        client
    }

    async fn join_held_on(
        sfu: &SfuHandle,
        room: &str,
        user: &str,
        publish: bool,
        tcp_only: bool,
    ) -> Client {
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
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: vp8(),
                    payload_type: VP8_PT,
                },
                RtpCodecKind::Video,
            )
            .unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut engine)
            .unwrap()
            .with(Slot::from(14_000usize), KeyframeRequestMarker::default());
        let mut settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        if tcp_only {
            settings = settings.with_network_types(vec![rtc::ice::network_type::NetworkType::Tcp4]);
        }
        let (udp, tcp) = if tcp_only {
            (vec![], vec!["127.0.0.1:0".to_owned()])
        } else {
            (vec!["127.0.0.1:0".to_owned()], vec![])
        };
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(Arc::new(ClientHandler {
                candidates: cand_tx,
                state: Arc::clone(&state),
            }))
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp)
            .build()
            .await
            .expect("client peer connection");
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        sfu.join(room, user, JoinOptions { publish }, events_tx)
            .await
            .expect("join");
        Client {
            user: user.to_owned(),
            room: room.to_owned(),
            pc,
            state,
            sfu: sfu.clone(),
            audio: None,
            video: None,
            candidates: Some(cand_rx),
            events: Some(events_rx),
            tasks: vec![],
        }
    }

    /// The next SFU event, before the signaling loop runs.
    pub async fn next_event(&mut self) -> SfuEvent {
        let events = self.events.as_mut().expect("signaling loop not started");
        tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an SFU event in time")
            .expect("events channel open")
    }

    /// Adds an Opus and a VP8 track and sends the client offer; returns the SFU's verdict.
    pub async fn try_publish(&mut self) -> Result<(), talkconnect::sfu::SfuError> {
        self.add_tracks().await;
        let offer = self.pc.create_offer(None).await.expect("offer");
        self.pc
            .set_local_description(offer)
            .await
            .expect("set local offer");
        let sdp = self.pc.local_description().await.expect("local").sdp;
        self.sfu
            .signal(
                &self.room,
                &self.user,
                ClientSignal::Offer(SdpPayload { sdp }),
            )
            .await
    }

    /// Drops a pending local offer (what a polite browser does on collision).
    pub async fn rollback_local(&self) {
        let rollback = RTCSessionDescription::rollback(None).unwrap();
        self.pc
            .set_local_description(rollback)
            .await
            .expect("rollback");
    }

    /// Offers again with the tracks already added.
    pub async fn resend_offer(&self) -> Result<(), talkconnect::sfu::SfuError> {
        let offer = self.pc.create_offer(None).await.expect("offer");
        self.pc
            .set_local_description(offer)
            .await
            .expect("set local offer");
        let sdp = self.pc.local_description().await.expect("local").sdp;
        self.sfu
            .signal(
                &self.room,
                &self.user,
                ClientSignal::Offer(SdpPayload { sdp }),
            )
            .await
    }

    pub async fn publish(&mut self) {
        self.try_publish().await.expect("publish offer accepted");
    }

    async fn add_tracks(&mut self) {
        for (kind, codec) in [(RtpCodecKind::Audio, opus()), (RtpCodecKind::Video, vp8())] {
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("{}-stream", self.user),
                format!("{}-{kind}", self.user),
                format!("{}-{kind}", self.user),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(rand::random::<u32>() | 1),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            )));
            self.pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await
                .expect("add_track");
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

    /// Answers server offers, applies server answers and candidates, and trickles ours.
    pub fn start_signaling(&mut self) {
        let mut events = self.events.take().expect("events");
        let mut candidates = self.candidates.take().expect("candidates");
        let pc = Arc::clone(&self.pc);
        let sfu = self.sfu.clone();
        let (room, user) = (self.room.clone(), self.user.clone());
        let state = Arc::clone(&self.state);
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        handle_event(&pc, &sfu, &room, &user, &state, event).await;
                    }
                    candidate = candidates.recv() => {
                        let Some(c) = candidate else { break };
                        let signal = ClientSignal::Candidate(IceCandidate {
                            candidate: c.candidate,
                            sdp_mid: c.sdp_mid,
                            sdp_m_line_index: c.sdp_mline_index,
                            username_fragment: c.username_fragment,
                        });
                        if let Err(e) = sfu.signal(&room, &user, signal).await {
                            state.errors.lock().unwrap().push(format!("local candidate: {e}"));
                        }
                    }
                }
            }
        }));
    }

    /// Applies one SFU event the way the signaling loop does.
    pub async fn handle(&self, event: SfuEvent) {
        handle_event(
            &self.pc,
            &self.sfu,
            &self.room,
            &self.user,
            &self.state,
            event,
        )
        .await;
    }

    /// Sends generated media: 50 Opus packets/s and `video_pps` VP8 packets/s (a keyframe-like
    /// packet every second), each payload naming the publisher so receivers can check labels.
    pub fn start_media(&mut self, video_pps: u32, payload_len: usize) {
        let (Some(audio), Some(video)) = (self.audio.clone(), self.video.clone()) else {
            panic!("start_media needs a publishing client");
        };
        let label = self.user.clone().into_bytes();
        let state = Arc::clone(&self.state);
        self.tasks.push(tokio::spawn(async move {
            let audio_ssrc = audio.ssrcs().await[0];
            let video_ssrc = video.ssrcs().await[0];
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let per_tick = (video_pps / 50).max(1);
            let (mut aseq, mut vseq, mut n) = (0u16, 0u16, 0u32);
            loop {
                tick.tick().await;
                n += 1;
                let mut payload = vec![0xfcu8, 0xff, 0xfe];
                payload.extend_from_slice(&label);
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        payload_type: OPUS_PT,
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
                for i in 0..per_tick {
                    // VP8 descriptor (S=1, PID 0) then a frame header: P=0 (key) once a second.
                    let key = n % 50 == 1 && i == 0;
                    let mut payload = vec![0x10, if key { 0x00 } else { 0x01 }, 0x9d, 0x01, 0x2a];
                    payload.extend_from_slice(&label);
                    payload.resize(payload_len.max(payload.len()), 0x55);
                    let packet = rtp::Packet {
                        header: rtp::header::Header {
                            version: 2,
                            payload_type: VP8_PT,
                            sequence_number: vseq,
                            timestamp: n * 1800,
                            ssrc: video_ssrc,
                            marker: i + 1 == per_tick,
                            ..Default::default()
                        },
                        payload: Bytes::from(payload),
                    };
                    vseq = vseq.wrapping_add(1);
                    if video.write_rtp(packet).await.is_ok() {
                        state.sent_packets.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    pub async fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.pc.close().await;
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn has_kind(tracks: &[TrackInfo], user: &str, kind: MediaKind) -> bool {
    tracks.iter().any(|t| t.user_id == user && t.kind == kind)
}

async fn handle_event(
    pc: &Arc<dyn PeerConnection>,
    sfu: &SfuHandle,
    room: &str,
    user: &str,
    state: &Arc<ClientState>,
    event: SfuEvent,
) {
    // Errors are recorded, not panicked on: a renegotiation can race with the test closing
    // this client, and a panic's backtrace would distort memory measurements.
    let record = |what: &str, e: &dyn std::fmt::Display| {
        state.errors.lock().unwrap().push(format!("{what}: {e}"));
    };
    match event.kind {
        SfuEventKind::Signal(ServerSignal::Offer(offer)) => {
            *state.tracks.lock().unwrap() = offer.tracks.clone();
            *state.last_offer_sdp.lock().unwrap() = offer.sdp.clone();
            let desc = RTCSessionDescription::offer(offer.sdp).unwrap();
            if let Err(e) = pc.set_remote_description(desc).await {
                return record("apply server offer", &e);
            }
            let answer = match pc.create_answer(None).await {
                Ok(answer) => answer,
                Err(e) => return record("create answer", &e),
            };
            if let Err(e) = pc.set_local_description(answer).await {
                return record("set answer", &e);
            }
            let Some(local) = pc.local_description().await else {
                return record("local description", &"missing");
            };
            if let Err(e) = sfu
                .signal(
                    room,
                    user,
                    ClientSignal::Answer(SdpPayload { sdp: local.sdp }),
                )
                .await
            {
                record("answer", &e);
            }
            state.offers.fetch_add(1, Ordering::SeqCst);
        }
        SfuEventKind::Signal(ServerSignal::Answer(answer)) => {
            *state.tracks.lock().unwrap() = answer.tracks.clone();
            let desc = RTCSessionDescription::answer(answer.sdp).unwrap();
            if let Err(e) = pc.set_remote_description(desc).await {
                record("apply server answer", &e);
            }
        }
        SfuEventKind::Signal(ServerSignal::Candidate(c)) => {
            state
                .server_candidates
                .lock()
                .unwrap()
                .push(c.candidate.clone());
            let init = RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_m_line_index,
                username_fragment: c.username_fragment,
                url: None,
            };
            if let Err(e) = pc.add_ice_candidate(init).await {
                state.errors.lock().unwrap().push(format!("candidate: {e}"));
            }
        }
        SfuEventKind::Connected => {}
        SfuEventKind::Closed(reason) => {
            *state.closed.lock().unwrap() = Some(reason);
        }
    }
}
