//! One owner task per room: it alone holds the room's peer connections, publications and
//! subscriptions, and changes them in response to commands (from `SfuHandle`) and to events
//! (from webrtc-rs handlers, which only post messages here and never touch the state).

use super::candidate::{CandidatePolicy, RemoteCandidates, Verdict};
use super::config::SfuConfig;
use super::congestion::{DownlinkEstimate, DownlinkVideo, run_gate};
use super::error::{SfuError, internal};
use super::forward::{
    DownlinkCmd, DownlinkPacket, FEEDBACK_QUEUE, Forwarder, ForwarderCmd, LegFeedback, LegMapping,
    SourceId, run_downlink, run_leg_feedback,
};
use super::mux::{MuxRoute, UdpMux, sdp_ice_ufrag};
use super::peer::{
    CandidateRewrite, FORWARDED_EXTENSIONS, announce_candidate, announce_sdp, build_peer_connection,
};
use super::ports::{PortLease, PortPool};
use super::probe::ProbeRegistry;
use super::red;
use super::retransmit::RetransmitSettings;
use super::shards::Placement;
use super::signal::{
    ClientSignal, CloseReason, DescriptionPayload, IceCandidate, MediaKind, ServerSignal, SfuEvent,
    SfuEventKind, TrackInfo, VideoState,
};
use super::simulcast::keep_simulcast_receivers;
use super::stats::{SfuMetrics, spawn_counted};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::{RtpSender, RtpTransceiver};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

/// Sending m-lines one client offer may carry: microphone, camera and room to spare
/// (screen share). More is refused rather than turned into forwarders for everyone.
const MAX_PUBLISHED_SECTIONS: usize = 4;

/// Largest SDP accepted from a client (a 50-person room's offer is about 60 KiB).
pub(crate) const MAX_SDP_BYTES: usize = 256 * 1024;
/// Ports of the range tried when another program holds them, before a join gives up.
const BUSY_PORT_ATTEMPTS: usize = 16;

/// What the room owner can be asked to do.
pub(crate) enum RoomCmd {
    Join {
        user: String,
        publish: bool,
        events: mpsc::UnboundedSender<SfuEvent>,
        reply: Reply<()>,
    },
    Signal {
        user: String,
        signal: ClientSignal,
        reply: Reply<()>,
    },
    SetMuted {
        user: String,
        kind: MediaKind,
        muted: bool,
        reply: Reply<()>,
    },
    SetTileHeights {
        user: String,
        heights: HashMap<String, u16>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    SetReceiveVideo {
        user: String,
        video: bool,
        reply: Reply<()>,
    },
    Leave {
        user: String,
        reason: CloseReason,
        reply: Reply<()>,
    },
    End {
        reply: Reply<()>,
    },
    SignalingAway {
        user: String,
        reply: Reply<()>,
    },
    Resume {
        user: String,
        reply: Reply<()>,
    },
    // Posted by webrtc-rs handlers; `peer` tells a stale connection from the current one.
    LocalCandidate {
        user: String,
        peer: u64,
        candidate: RTCIceCandidateInit,
    },
    PeerState {
        user: String,
        peer: u64,
        state: RTCPeerConnectionState,
    },
    TrackOpened {
        user: String,
        peer: u64,
        opened: OpenedTrack,
    },
    /// Posted `answer_timeout_ms` after server offer number `offer` went out.
    AnswerDue {
        user: String,
        peer: u64,
        offer: u64,
    },
    /// Posted `connect_timeout_ms` after connect deadline `deadline` was set.
    ConnectDue {
        user: String,
        deadline: u64,
    },
    /// Posted by a participant's video gate (src/sfu/congestion.rs) when it paused or resumed
    /// the video forwarded to that participant.
    VideoGate {
        user: String,
        peer: u64,
        paused: bool,
    },
    /// Posted `ice_restart_grace_ms` after the connection of a connected participant broke.
    RestartDue {
        user: String,
        deadline: u64,
    },
}

/// A publisher track whose forwarder is already running.
pub(crate) struct OpenedTrack {
    source: SourceId,
    kind: MediaKind,
    track: Arc<dyn TrackRemote>,
    forwarder: mpsc::UnboundedSender<ForwarderCmd>,
    feedback: mpsc::Sender<LegFeedback>,
}

/// Entry of a live room in the SFU's registry.
pub(crate) struct RoomEntry {
    pub id: u64,
    pub commands: mpsc::UnboundedSender<RoomCmd>,
}

pub(crate) type RoomRegistry = Arc<Mutex<HashMap<String, RoomEntry>>>;

/// What every room shares with the SFU.
#[derive(Clone)]
pub(crate) struct SfuShared {
    pub config: Arc<SfuConfig>,
    pub ports: Arc<PortPool>,
    pub metrics: Arc<SfuMetrics>,
    pub rooms: RoomRegistry,
    pub cancel: CancellationToken,
    pub mux: Option<Arc<UdpMux>>,
    /// The live connectivity probes, one per owner.
    pub probes: ProbeRegistry,
}

impl SfuShared {
    /// Leases a port of the range and builds a peer connection on it (the same for a
    /// participant and for a connectivity probe). A port that another program holds cannot be
    /// bound: the next ones are tried, the busy ones kept leased meanwhile so they are not
    /// handed out again at once.
    pub(crate) async fn lease_peer(
        &self,
        handler: Arc<dyn PeerConnectionEventHandler>,
        estimate: Option<Arc<DownlinkEstimate>>,
    ) -> Result<LeasedPeer, SfuError> {
        let mut busy = Vec::new();
        loop {
            let port = self.ports.lease().ok_or(SfuError::NoFreePort)?;
            match build_peer_connection(
                &self.config,
                port.port(),
                self.mux.as_ref(),
                Arc::clone(&handler),
                estimate.clone(),
            )
            .await
            {
                Ok((pc, mux_route)) => {
                    return Ok(LeasedPeer {
                        port,
                        pc,
                        mux_route,
                    });
                }
                Err(SfuError::NoFreePort) if busy.len() < BUSY_PORT_ATTEMPTS => busy.push(port),
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn candidate_rewrite(&self) -> CandidateRewrite {
        CandidateRewrite {
            announced: self.config.announced_ip.ip(),
            single_port: self.mux.as_ref().map(|mux| {
                let ip = self.config.announced_ip.ip().unwrap_or(self.config.bind_ip);
                std::net::SocketAddr::new(ip, mux.local_addr().port())
            }),
        }
    }
}

/// A peer connection with its port, and in single-port mode its route in the mux.
pub(crate) struct LeasedPeer {
    pub port: PortLease,
    pub pc: Arc<dyn PeerConnection>,
    /// Shown every local description before it is sent (single-port mode).
    pub mux_route: Option<MuxRoute>,
}

struct Publication {
    source: SourceId,
    kind: MediaKind,
    forwarder: mpsc::UnboundedSender<ForwarderCmd>,
    /// Where its subscribers' legs send their RTCP feedback (bounded).
    feedback: mpsc::Sender<LegFeedback>,
    codec: RTCRtpCodec,
    codecs: Vec<(u8, RTCRtpCodec)>,
    extensions: Vec<(u16, String)>,
}

struct Subscription {
    publisher: String,
    kind: MediaKind,
    leg: SendLeg,
    ssrc: u32,
    /// Ends this subscription's feedback task (the leg may outlive it, recycled).
    feedback: CancellationToken,
    /// `offers_sent` when it was made: a server offer after that one carries it.
    since_offer: u64,
    ready: bool,
}

/// One server-created send m-line of a subscriber's connection. It outlives the subscription
/// it was made for: when that publisher goes, the leg turns inactive and waits in
/// `Participant::idle_legs` for the next publisher's track of the same kind (m-line reuse), so
/// a long-lived room's SDP does not grow with every departure.
struct SendLeg {
    kind: MediaKind,
    /// The msid track id, fixed for the life of the m-line: webrtc-rs routes the subscriber's
    /// RTCP for this sender by it, and only to the track it was first bound with.
    track_id: String,
    /// The track bound to the sender: every forwarded packet is written through it, whichever
    /// publisher the leg carries now.
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    transceiver: Arc<dyn RtpTransceiver>,
}

/// Client offers allowed per participant: a token bucket.
struct OfferBudget {
    tokens: f64,
    burst: f64,
    refill: Duration,
    last: Instant,
}

impl OfferBudget {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() / self.refill.as_secs_f64();
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Participant {
    peer: u64,
    pc: Arc<dyn PeerConnection>,
    port: PortLease,
    mux_route: Option<MuxRoute>,
    events: mpsc::UnboundedSender<SfuEvent>,
    cancel: CancellationToken,
    /// Wait for the client's publish offer before the first server offer (avoids glare).
    awaits_client_offer: bool,
    negotiation_needed: bool,
    offer_in_flight: bool,
    /// Server offers sent so far: tells the answer deadline of the current one from older ones.
    offers_sent: u64,
    connected: bool,
    /// The first offer/answer has completed (the connect deadline then starts again, for
    /// ICE + DTLS alone).
    negotiated: bool,
    /// Until connected: the current connect deadline's id and the token that stops its timer.
    connect_deadline: Option<(u64, CancellationToken)>,
    /// While a connected participant's connection is broken (ICE disconnected or failed): the
    /// grace deadline's id and the token that stops its timer. An ICE restart brings it back.
    restart_deadline: Option<(u64, CancellationToken)>,
    /// The next server offer restarts ICE (new credentials).
    ice_restart_wanted: bool,
    /// An ICE restart (either side's) is under way: keyframes are due once connected.
    ice_restarting: bool,
    /// Its socket vanished: the answer and restart deadlines wait for `Resume`.
    signaling_away: bool,
    remote_candidates: RemoteCandidates,
    first_mid: Option<String>,
    offer_budget: OfferBudget,
    muted: HashSet<MediaKind>,
    /// False: audio-only, the downlink skips every video leg (see `set_receive_video`).
    receive_video: bool,
    /// Mids of its simulcast m-lines already set up (see `keep_simulcast_receivers`).
    simulcast_mids: HashSet<String>,
    /// How much video its downlink carries (the congestion gate's level).
    video: Arc<DownlinkVideo>,
    /// The height (device pixels) at which it shows each publisher's video, by user id.
    tile_heights: HashMap<String, u16>,
    published: HashMap<SourceId, Publication>,
    subscriptions: HashMap<SourceId, Subscription>,
    /// Send m-lines whose publisher left, inactive, kept for reuse (see [`SendLeg`]), each with
    /// `offers_sent` when it turned inactive.
    idle_legs: Vec<(u64, SendLeg)>,
    /// Subscriptions waiting for the client's first offer to be applied: transceivers added
    /// before it would be matched to the client's own m-lines.
    deferred: Vec<(String, SourceId)>,
    downlink_queue: mpsc::Sender<DownlinkPacket>,
    downlink: mpsc::UnboundedSender<DownlinkCmd>,
}

impl Participant {
    /// Server offers answered so far (at most one is outstanding).
    fn offers_answered(&self) -> u64 {
        self.offers_sent - u64::from(self.offer_in_flight)
    }
}

pub(crate) struct Room {
    id: String,
    registry_id: u64,
    shared: SfuShared,
    commands: mpsc::WeakUnboundedSender<RoomCmd>,
    participants: HashMap<String, Participant>,
    /// The room's place on its SFU thread, told of who joins and leaves, given back when the
    /// room ends.
    placement: Placement,
}

/// Starts the owner task of room `id` on the current runtime: the SFU thread of `placement`.
pub(crate) fn spawn_room(
    id: String,
    registry_id: u64,
    shared: SfuShared,
    placement: Placement,
) -> mpsc::UnboundedSender<RoomCmd> {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Room {
        id,
        registry_id,
        commands: tx.downgrade(),
        shared: shared.clone(),
        participants: HashMap::new(),
        placement,
    };
    shared.metrics.rooms.fetch_add(1, Ordering::Relaxed);
    let metrics = Arc::clone(&shared.metrics);
    spawn_counted(&metrics, room.run(rx));
    tx
}

impl Room {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<RoomCmd>) {
        let cancel = self.shared.cancel.clone();
        loop {
            let command = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                command = commands.recv() => command,
            };
            let Some(command) = command else {
                self.remove_all(CloseReason::Shutdown).await;
                break;
            };
            self.handle(command).await;
            if self.participants.is_empty() {
                break;
            }
        }
        self.unregister();
        commands.close();
        while let Ok(command) = commands.try_recv() {
            reject_closed(command);
        }
        self.shared.metrics.rooms.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(room = %self.id, "sfu: room closed");
    }

    fn unregister(&self) {
        if let Ok(mut rooms) = self.shared.rooms.lock()
            && rooms
                .get(&self.id)
                .is_some_and(|e| e.id == self.registry_id)
        {
            rooms.remove(&self.id);
        }
    }

    async fn handle(&mut self, command: RoomCmd) {
        match command {
            RoomCmd::Join {
                user,
                publish,
                events,
                reply,
            } => {
                let result = self.join(&user, publish, events).await;
                let _ = reply.send(result);
            }
            RoomCmd::Signal {
                user,
                signal,
                reply,
            } => {
                let result = match signal {
                    ClientSignal::Offer(offer) => self.client_offer(&user, offer.sdp).await,
                    ClientSignal::Answer(answer) => self.client_answer(&user, answer.sdp).await,
                    ClientSignal::Candidate(candidate) => {
                        self.client_candidate(&user, candidate).await
                    }
                };
                let _ = reply.send(result);
            }
            RoomCmd::SetMuted {
                user,
                kind,
                muted,
                reply,
            } => {
                let _ = reply.send(self.set_muted(&user, kind, muted));
            }
            RoomCmd::SetTileHeights {
                user,
                heights,
                reply,
            } => {
                let _ = reply.send(self.set_tile_heights(&user, heights));
            }
            RoomCmd::SetReceiveVideo { user, video, reply } => {
                let _ = reply.send(self.set_receive_video(&user, video));
            }
            RoomCmd::Leave {
                user,
                reason,
                reply,
            } => {
                let result = if self.participants.contains_key(&user) {
                    self.remove_participant(&user, reason).await;
                    Ok(())
                } else {
                    Err(SfuError::UnknownParticipant)
                };
                let _ = reply.send(result);
            }
            RoomCmd::End { reply } => {
                self.remove_all(CloseReason::RoomEnded).await;
                let _ = reply.send(Ok(()));
            }
            RoomCmd::LocalCandidate {
                user,
                peer,
                candidate,
            } => self.local_candidate(&user, peer, candidate),
            RoomCmd::PeerState { user, peer, state } => self.peer_state(&user, peer, state).await,
            RoomCmd::TrackOpened { user, peer, opened } => {
                self.track_opened(&user, peer, opened).await;
            }
            RoomCmd::SignalingAway { user, reply } => {
                let result = match self.participants.get_mut(&user) {
                    Some(p) => {
                        p.signaling_away = true;
                        Ok(())
                    }
                    None => Err(SfuError::UnknownParticipant),
                };
                let _ = reply.send(result);
            }
            RoomCmd::Resume { user, reply } => {
                let result = self.resume(&user).await;
                let _ = reply.send(result);
            }
            RoomCmd::AnswerDue { user, peer, offer } => {
                // While the signaling is away the offer may never have arrived; `resume`
                // sends it again with a new deadline.
                let unanswered = self.participants.get(&user).is_some_and(|p| {
                    p.peer == peer
                        && p.offer_in_flight
                        && p.offers_sent == offer
                        && !p.signaling_away
                });
                if unanswered {
                    self.remove_participant(&user, CloseReason::AnswerTimeout)
                        .await;
                }
            }
            RoomCmd::RestartDue { user, deadline } => {
                // While the signaling is away no restart can be negotiated: `resume` gives a
                // new grace.
                let late = self.participants.get(&user).is_some_and(|p| {
                    !p.signaling_away
                        && p.restart_deadline
                            .as_ref()
                            .is_some_and(|(id, _)| *id == deadline)
                });
                if late {
                    self.shared
                        .metrics
                        .connections_failed
                        .fetch_add(1, Ordering::Relaxed);
                    self.remove_participant(&user, CloseReason::ConnectionFailed)
                        .await;
                }
            }
            RoomCmd::ConnectDue { user, deadline } => {
                let late = self.participants.get(&user).is_some_and(|p| {
                    p.connect_deadline
                        .as_ref()
                        .is_some_and(|(id, _)| *id == deadline)
                });
                if late {
                    self.shared
                        .metrics
                        .connect_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    self.remove_participant(&user, CloseReason::ConnectTimeout)
                        .await;
                }
            }
            RoomCmd::VideoGate { user, peer, paused } => self.video_gate(&user, peer, paused),
        }
    }

    /// A participant's video gate paused or resumed its incoming video: tell its browser (the
    /// tiles say why the picture stopped) and, on resume, ask every publisher it receives video
    /// from for a keyframe, which its decoder needs after the gap.
    fn video_gate(&self, user: &str, peer: u64, paused: bool) {
        if self.participants.get(user).is_none_or(|p| p.peer != peer) {
            return;
        }
        if paused {
            self.shared
                .metrics
                .video_pauses
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.request_received_keyframes(user);
        }
        self.emit(
            user,
            SfuEventKind::Signal(ServerSignal::Video(VideoState {
                paused,
                reason: "congestion",
            })),
        );
    }

    fn emit(&self, user: &str, kind: SfuEventKind) {
        if let Some(p) = self.participants.get(user) {
            let _ = p.events.send(SfuEvent {
                room_id: self.id.clone(),
                user_id: user.to_owned(),
                kind,
            });
        }
    }

    async fn join(
        &mut self,
        user: &str,
        publish: bool,
        events: mpsc::UnboundedSender<SfuEvent>,
    ) -> Result<(), SfuError> {
        if self.participants.contains_key(user) {
            return Err(SfuError::AlreadyJoined);
        }
        if self.participants.len() >= self.shared.config.max_participants_per_room {
            return Err(SfuError::RoomFull);
        }
        let peer = self.shared.metrics.next_id();
        let cancel = self.shared.cancel.child_token();
        let handler = Arc::new(PeerHandler {
            user: user.to_owned(),
            peer,
            room: self.commands.clone(),
            metrics: Arc::clone(&self.shared.metrics),
            cancel: cancel.clone(),
            keyframe_interval: Duration::from_millis(
                self.shared.config.keyframe_request_min_interval_ms,
            ),
            retransmission: self.shared.config.retransmission(),
        });
        let gate = self.shared.config.video_gate();
        let estimate = gate.map(|_| Arc::new(DownlinkEstimate::default()));
        let LeasedPeer {
            port,
            pc,
            mux_route,
        } = self.shared.lease_peer(handler, estimate.clone()).await?;
        let (queue_tx, queue_rx) = mpsc::channel(self.shared.config.subscriber_queue_packets);
        let (downlink_tx, downlink_rx) = mpsc::unbounded_channel();
        let video = Arc::new(DownlinkVideo::default());
        spawn_counted(
            &self.shared.metrics,
            run_downlink(
                queue_rx,
                downlink_rx,
                cancel.clone(),
                Arc::clone(&self.shared.metrics),
                Arc::clone(&video),
            ),
        );
        if let (Some(gate), Some(estimate)) = (gate, estimate) {
            spawn_counted(
                &self.shared.metrics,
                run_gate(
                    estimate,
                    Arc::clone(&video),
                    gate,
                    self.commands.clone(),
                    user.to_owned(),
                    peer,
                    cancel.clone(),
                ),
            );
        }
        let config = &self.shared.config;
        self.participants.insert(
            user.to_owned(),
            Participant {
                peer,
                pc,
                port,
                mux_route,
                events,
                cancel,
                awaits_client_offer: publish,
                negotiation_needed: false,
                offer_in_flight: false,
                offers_sent: 0,
                connected: false,
                negotiated: false,
                connect_deadline: None,
                restart_deadline: None,
                ice_restart_wanted: false,
                ice_restarting: false,
                signaling_away: false,
                remote_candidates: RemoteCandidates::default(),
                first_mid: None,
                offer_budget: OfferBudget {
                    tokens: f64::from(config.offer_burst),
                    burst: f64::from(config.offer_burst),
                    refill: Duration::from_millis(config.offer_refill_ms.max(1)),
                    last: Instant::now(),
                },
                muted: HashSet::new(),
                receive_video: true,
                video,
                simulcast_mids: HashSet::new(),
                tile_heights: HashMap::new(),
                published: HashMap::new(),
                subscriptions: HashMap::new(),
                idle_legs: Vec::new(),
                deferred: Vec::new(),
                downlink_queue: queue_tx,
                downlink: downlink_tx,
            },
        );
        self.shared.metrics.peers.fetch_add(1, Ordering::Relaxed);
        self.placement.joined();
        tracing::info!(room = %self.id, user, peer, "sfu: participant joined");
        if publish {
            // Its offer is due: a join that never offers must not keep its port.
            self.connect_deadline(user);
        }

        let sources: Vec<(String, SourceId)> = self
            .participants
            .iter()
            .filter(|(other, _)| other.as_str() != user)
            .flat_map(|(other, p)| p.published.keys().map(|s| (other.clone(), *s)))
            .collect();
        for (publisher, source) in sources {
            if let Err(e) = self.subscribe(user, &publisher, source).await {
                tracing::warn!(room = %self.id, user, error = %e, "sfu: subscribe on join failed");
            }
        }
        self.maybe_offer(user).await;
        Ok(())
    }

    /// Gives `subscriber` a send-only leg for `publisher`'s `source`: an idle m-line of the same
    /// kind when it has one, else a new transceiver.
    async fn subscribe(
        &mut self,
        subscriber: &str,
        publisher: &str,
        source: SourceId,
    ) -> Result<(), SfuError> {
        let (kind, offered, feedback_tx) = {
            let publication = self
                .participants
                .get(publisher)
                .and_then(|p| p.published.get(&source))
                .ok_or(SfuError::UnknownParticipant)?;
            (
                publication.kind,
                offered_codecs(publication),
                publication.feedback.clone(),
            )
        };
        let metrics = Arc::clone(&self.shared.metrics);
        let room = self.id.clone();
        let sub = self
            .participants
            .get_mut(subscriber)
            .ok_or(SfuError::UnknownParticipant)?;
        if sub.subscriptions.contains_key(&source) {
            return Ok(());
        }
        if sub.awaits_client_offer {
            if !sub.deferred.iter().any(|(_, s)| *s == source) {
                sub.deferred.push((publisher.to_owned(), source));
            }
            return Ok(());
        }
        let ssrc = loop {
            let candidate = rand::random::<u32>();
            if candidate != 0 {
                break candidate;
            }
        };
        // Stream id = publisher's user id, so the browser's `event.streams[0].id` names the
        // owner (and CNAME, so its audio and video are synchronised together).
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: offered[0].rtp_codec.clone(),
            ..Default::default()
        };
        let leg = match take_idle_leg(sub, kind) {
            Some(leg) => {
                match recycle_leg(&leg, publisher, encoding.clone(), offered.clone()).await {
                    Ok(()) => {
                        metrics.recycled_legs.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(room = %room, subscriber, publisher, track = %leg.track_id,
                        "sfu: idle m-line reused");
                        Some(leg)
                    }
                    Err(e) => {
                        // recycle_leg left it inactive; it is dropped from the idle legs (an
                        // inactive m-line, as before reuse existed) and the subscription gets a
                        // new m-line.
                        tracing::warn!(room = %room, subscriber, error = %e, "sfu: m-line reuse failed");
                        None
                    }
                }
            }
            None => None,
        };
        let leg = match leg {
            Some(leg) => leg,
            None => {
                let leg = new_leg(sub, publisher, kind, source, encoding).await?;
                // A new m-line offers its encoding's codec; RED needs Opus beside it.
                if offered.len() > 1 {
                    prefer_codecs(&leg.transceiver, offered)
                        .await
                        .map_err(|e| internal("codec preferences", e))?;
                }
                leg
            }
        };
        let feedback = sub.cancel.child_token();
        spawn_counted(
            &metrics,
            run_leg_feedback(
                Arc::clone(&leg.track),
                sub.peer,
                feedback_tx,
                feedback.clone(),
            ),
        );
        sub.subscriptions.insert(
            source,
            Subscription {
                publisher: publisher.to_owned(),
                kind,
                leg,
                ssrc,
                feedback,
                since_offer: sub.offers_sent,
                ready: false,
            },
        );
        sub.negotiation_needed = true;
        Ok(())
    }

    /// Stops forwarding `source` to `subscriber`; its m-line turns inactive at the next offer
    /// and becomes an idle leg for the next publisher.
    async fn unsubscribe(&mut self, subscriber: &str, source: SourceId) {
        let Some(sub) = self.participants.get_mut(subscriber) else {
            return;
        };
        sub.deferred.retain(|(_, s)| *s != source);
        let Some(subscription) = sub.subscriptions.remove(&source) else {
            return;
        };
        let _ = sub.downlink.send(DownlinkCmd::RemoveLeg { source });
        subscription.feedback.cancel();
        let leg = subscription.leg;
        match leg
            .transceiver
            .set_direction(RTCRtpTransceiverDirection::Inactive)
            .await
        {
            Ok(()) => sub.idle_legs.push((sub.offers_sent, leg)),
            Err(e) => {
                tracing::debug!(error = %e, "sfu: idle m-line not kept");
                if let Err(e) = sub.pc.remove_track(&leg.sender).await {
                    tracing::debug!(error = %e, "sfu: remove_track failed");
                }
            }
        }
        sub.negotiation_needed = true;
    }

    /// Sends a server offer when one is needed and none is outstanding.
    async fn maybe_offer(&mut self, user: &str) {
        let Some(p) = self.participants.get_mut(user) else {
            return;
        };
        let wanted = p.negotiation_needed || p.ice_restart_wanted;
        if !wanted || p.offer_in_flight || p.awaits_client_offer {
            return;
        }
        if p.subscriptions.is_empty() && p.pc.current_local_description().await.is_none() {
            // Nothing to receive yet and nothing negotiated: an offer would be empty.
            return;
        }
        let options = p
            .ice_restart_wanted
            .then_some(RTCOfferOptions { ice_restart: true });
        let offer = match p.pc.create_offer(options).await {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!(user, error = %e, "sfu: create_offer failed");
                return;
            }
        };
        if let Err(e) = p.pc.set_local_description(offer).await {
            tracing::warn!(user, error = %e, "sfu: set_local_description(offer) failed");
            return;
        }
        p.negotiation_needed = false;
        if p.ice_restart_wanted {
            p.ice_restart_wanted = false;
            p.ice_restarting = true;
            tracing::info!(room = %self.id, user, "sfu: ICE restart offered");
        }
        p.offer_in_flight = true;
        p.offers_sent += 1;
        self.send_offer(user).await;
    }

    /// Sends the participant the outstanding server offer (its local description) and starts
    /// the wait for its answer.
    async fn send_offer(&mut self, user: &str) {
        self.answer_deadline(user);
        let sdp = self.local_sdp(user).await;
        let tracks = self.track_map(user).await;
        self.emit(
            user,
            SfuEventKind::Signal(ServerSignal::Offer(DescriptionPayload { sdp, tracks })),
        );
    }

    /// Reminds the room when the participant's current offer should have been answered.
    fn answer_deadline(&self, user: &str) {
        let Some(p) = self.participants.get(user) else {
            return;
        };
        let due = RoomCmd::AnswerDue {
            user: user.to_owned(),
            peer: p.peer,
            offer: p.offers_sent,
        };
        let wait = Duration::from_millis(self.shared.config.answer_timeout_ms);
        self.remind(p.cancel.child_token(), wait, due);
    }

    /// Gives the participant `connect_timeout_ms` from now to be connected, replacing (and
    /// stopping) the deadline it had.
    fn connect_deadline(&mut self, user: &str) {
        let id = self.shared.metrics.next_id();
        let Some(p) = self.participants.get_mut(user) else {
            return;
        };
        let cancel = p.cancel.child_token();
        if let Some((_, previous)) = p.connect_deadline.replace((id, cancel.clone())) {
            previous.cancel();
        }
        let due = RoomCmd::ConnectDue {
            user: user.to_owned(),
            deadline: id,
        };
        let wait = Duration::from_millis(self.shared.config.connect_timeout_ms);
        self.remind(cancel, wait, due);
    }

    /// The first offer/answer of the participant is done: ICE and DTLS now have their own
    /// `connect_timeout_ms`. Later negotiations do not extend it.
    fn first_negotiation_done(&mut self, user: &str) {
        let Some(p) = self.participants.get_mut(user) else {
            return;
        };
        if p.negotiated {
            return;
        }
        p.negotiated = true;
        if !p.connected {
            self.connect_deadline(user);
        }
    }

    /// Posts `due` to the room after `wait` unless `cancel` fires first. `cancel` is a child of
    /// the participant's token, so no reminder outlives its participant.
    fn remind(&self, cancel: CancellationToken, wait: Duration, due: RoomCmd) {
        let commands = self.commands.clone();
        spawn_counted(&self.shared.metrics, async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(wait) => {
                    if let Some(commands) = commands.upgrade() {
                        let _ = commands.send(due);
                    }
                }
            }
        });
    }

    /// The local description as sent: host addresses announced, first mid remembered for
    /// trickled candidates.
    async fn local_sdp(&mut self, user: &str) -> String {
        let rewrite = self.shared.candidate_rewrite();
        let Some(p) = self.participants.get_mut(user) else {
            return String::new();
        };
        let sdp =
            p.pc.local_description()
                .await
                .map(|d| d.sdp)
                .unwrap_or_default();
        p.first_mid = sdp
            .lines()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(|m| m.trim().to_owned());
        if let Some(route) = &p.mux_route {
            route.follow(&sdp);
        }
        announce_sdp(&sdp, &rewrite)
    }

    async fn track_map(&self, user: &str) -> Vec<TrackInfo> {
        let Some(p) = self.participants.get(user) else {
            return vec![];
        };
        let mut tracks = Vec::with_capacity(p.subscriptions.len());
        for subscription in p.subscriptions.values() {
            if let Ok(Some(mid)) = subscription.leg.transceiver.mid().await {
                tracks.push(TrackInfo {
                    mid,
                    user_id: subscription.publisher.clone(),
                    kind: subscription.kind,
                    track_id: subscription.leg.track_id.clone(),
                });
            }
        }
        tracks.sort_by(|a, b| a.mid.cmp(&b.mid));
        tracks
    }

    async fn client_offer(&mut self, user: &str, sdp: String) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(user)
            .ok_or(SfuError::UnknownParticipant)?;
        if !p.offer_budget.take() {
            return Err(SfuError::RateLimited);
        }
        if sdp.len() > MAX_SDP_BYTES {
            return Err(SfuError::InvalidSdp(format!(
                "longer than {MAX_SDP_BYTES} bytes"
            )));
        }
        let sdp = filter_sdp_candidates(p, &self.shared, &sdp)?;
        let (sdp, new_simulcast) = keep_simulcast_receivers(&sdp, &p.simulcast_mids);
        let offer = parse_client_offer(sdp)?;
        if p.offer_in_flight {
            // Glare: the server is the impolite side. The browser (polite) applies the pending
            // server offer, answers it, and sends its own offer again.
            return Err(SfuError::NegotiationInProgress);
        }
        let restarts_ice = match p.pc.remote_description().await {
            Some(current) => sdp_ice_ufrag(&current.sdp) != sdp_ice_ufrag(&offer.sdp),
            None => false,
        };
        if let Err(e) = p.pc.set_remote_description(offer).await {
            return Err(SfuError::InvalidSdp(e.to_string()));
        }
        p.simulcast_mids.extend(new_simulcast);
        if restarts_ice {
            // The client's offer restarts ICE (its network changed): ours is not needed.
            p.ice_restart_wanted = false;
            p.ice_restarting = true;
            tracing::info!(room = %self.id, user, "sfu: ICE restart by the client");
        }
        let answer = match p.pc.create_answer(None).await {
            Ok(answer) => answer,
            Err(e) => {
                let _ =
                    p.pc.set_remote_description(
                        RTCSessionDescription::rollback(None)
                            .map_err(|e| internal("rollback", e))?,
                    )
                    .await;
                return Err(SfuError::InvalidSdp(e.to_string()));
            }
        };
        p.pc.set_local_description(answer)
            .await
            .map_err(|e| internal("set_local_description(answer)", e))?;
        p.awaits_client_offer = false;
        let deferred = std::mem::take(&mut p.deferred);
        self.first_negotiation_done(user);
        let sdp = self.local_sdp(user).await;
        let tracks = self.track_map(user).await;
        self.emit(
            user,
            SfuEventKind::Signal(ServerSignal::Answer(DescriptionPayload { sdp, tracks })),
        );
        for (publisher, source) in deferred {
            if let Err(e) = self.subscribe(user, &publisher, source).await {
                tracing::debug!(user, error = %e, "sfu: deferred subscription dropped");
            }
        }
        self.refresh_legs(user).await;
        self.maybe_offer(user).await;
        Ok(())
    }

    async fn client_answer(&mut self, user: &str, sdp: String) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(user)
            .ok_or(SfuError::UnknownParticipant)?;
        if !p.offer_in_flight {
            return Err(SfuError::UnexpectedAnswer);
        }
        let sdp = filter_sdp_candidates(p, &self.shared, &sdp)?;
        let (sdp, new_simulcast) = keep_simulcast_receivers(&sdp, &p.simulcast_mids);
        let answer =
            RTCSessionDescription::answer(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let applied = match answer.unmarshal() {
            Ok(_) => p.pc.set_remote_description(answer).await,
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            // The offer stays outstanding: the client may still send a valid answer.
            return Err(SfuError::InvalidSdp(e.to_string()));
        }
        p.offer_in_flight = false;
        p.simulcast_mids.extend(new_simulcast);
        self.first_negotiation_done(user);
        self.refresh_legs(user).await;
        self.maybe_offer(user).await;
        Ok(())
    }

    async fn client_candidate(
        &mut self,
        user: &str,
        candidate: IceCandidate,
    ) -> Result<(), SfuError> {
        let policy = CandidatePolicy::of(&self.shared.config);
        let p = self
            .participants
            .get_mut(user)
            .ok_or(SfuError::UnknownParticipant)?;
        if p.pc.remote_description().await.is_none() {
            return Err(SfuError::CandidateBeforeDescription);
        }
        if candidate.candidate.trim().is_empty() {
            return Ok(());
        }
        if let Verdict::Ignore(class) = p.remote_candidates.admit(&candidate.candidate, policy)? {
            tracing::debug!(room = %self.id, user, ?class, "sfu: client candidate ignored");
            self.shared
                .metrics
                .ignored_candidates
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        p.pc.add_ice_candidate(RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_m_line_index,
            username_fragment: candidate.username_fragment,
            url: None,
        })
        .await
        .map_err(|e| SfuError::InvalidCandidate(e.to_string()))
    }

    /// After a negotiation completed: every subscription whose m-line is now sending gets its
    /// wire mapping, joins its publisher's fan-out, and (once connected) asks for a keyframe.
    async fn refresh_legs(&mut self, user: &str) {
        let Some(sub) = self.participants.get(user) else {
            return;
        };
        let mut ready = Vec::new();
        for (source, subscription) in &sub.subscriptions {
            if subscription.ready {
                continue;
            }
            // Ready once a server offer made after it was answered: a client's offer answered
            // meanwhile, or an older offer, did not carry its SSRC and codec. That answer
            // reset the m-line's codecs to what it listed (the previous publisher's, for a
            // recycled one): the next offer must list this publisher's again.
            if sub.offers_answered() <= subscription.since_offer {
                if let Some(publication) = self
                    .participants
                    .get(&subscription.publisher)
                    .and_then(|p| p.published.get(source))
                    && let Err(e) =
                        prefer_codecs(&subscription.leg.transceiver, offered_codecs(publication))
                            .await
                {
                    tracing::debug!(error = %e, "sfu: codec preference not set");
                }
                continue;
            }
            let sending = matches!(
                subscription.leg.transceiver.current_direction().await,
                Ok(RTCRtpTransceiverDirection::Sendonly | RTCRtpTransceiverDirection::Sendrecv)
            );
            if !sending {
                continue;
            }
            let Ok(params) = subscription.leg.sender.get_parameters().await else {
                continue;
            };
            let Some(publication) = self
                .participants
                .get(&subscription.publisher)
                .and_then(|p| p.published.get(source))
            else {
                continue;
            };
            let sub_codecs: Vec<(u8, RTCRtpCodec)> = params
                .rtp_parameters
                .codecs
                .iter()
                .map(|c| (c.payload_type, c.rtp_codec.clone()))
                .collect();
            let sub_exts: Vec<(u16, String)> = params
                .rtp_parameters
                .header_extensions
                .iter()
                .map(|h| (h.id, h.uri.clone()))
                .collect();
            match LegMapping::negotiate(
                subscription.ssrc,
                &publication.codecs,
                &sub_codecs,
                &publication.extensions,
                &sub_exts,
                &FORWARDED_EXTENSIONS,
            ) {
                Some(mapping) => ready.push((*source, mapping, publication.forwarder.clone())),
                None => tracing::warn!(
                    room = %self.id, user, source,
                    "sfu: subscriber shares no codec with the publisher; track not forwarded"
                ),
            }
        }
        let Some(sub) = self.participants.get_mut(user) else {
            return;
        };
        for (source, mapping, forwarder) in ready {
            let Some(subscription) = sub.subscriptions.get_mut(&source) else {
                continue;
            };
            let height = sub.tile_heights.get(&subscription.publisher).copied();
            subscription.ready = true;
            let _ = sub.downlink.send(DownlinkCmd::SetLeg {
                source,
                kind: subscription.kind,
                track: Arc::clone(&subscription.leg.track),
                mapping: Box::new(mapping),
            });
            // Until the subscriber is connected it could not decrypt anything: it joins the
            // fan-out (and asks for a keyframe) when it reports Connected.
            if sub.connected {
                let _ = forwarder.send(ForwarderCmd::AddSubscriber {
                    peer: sub.peer,
                    queue: sub.downlink_queue.clone(),
                    video: Arc::clone(&sub.video),
                });
                let _ = forwarder.send(ForwarderCmd::TileHeight {
                    peer: sub.peer,
                    height,
                });
                let _ = forwarder.send(ForwarderCmd::KeyframeRequest);
            }
        }
    }

    fn set_muted(&mut self, user: &str, kind: MediaKind, muted: bool) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(user)
            .ok_or(SfuError::UnknownParticipant)?;
        if muted {
            p.muted.insert(kind);
        } else {
            p.muted.remove(&kind);
        }
        for publication in p.published.values().filter(|pb| pb.kind == kind) {
            let _ = publication.forwarder.send(ForwarderCmd::SetMuted(muted));
        }
        Ok(())
    }

    /// Audio-only for one subscriber: its downlink skips (or resumes) every video leg, so the
    /// bandwidth is saved on its link alone; m-lines and publishers stay as they are. Resuming
    /// asks each publisher for a keyframe, which the subscriber needs to decode again.
    fn set_receive_video(&mut self, user: &str, video: bool) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(user)
            .ok_or(SfuError::UnknownParticipant)?;
        if p.receive_video == video {
            return Ok(());
        }
        p.receive_video = video;
        let _ = p.downlink.send(DownlinkCmd::ReceiveVideo(video));
        if video {
            self.request_received_keyframes(user);
        }
        Ok(())
    }

    /// Tile sizes for one subscriber: each video leg's forwarder learns its height (`None`
    /// where the publisher is not named).
    fn set_tile_heights(
        &mut self,
        user: &str,
        heights: HashMap<String, u16>,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(user)
            .ok_or(SfuError::UnknownParticipant)?;
        p.tile_heights = heights;
        let p = &self.participants[user];
        let videos = p
            .subscriptions
            .iter()
            .filter(|(_, s)| s.kind == MediaKind::Video);
        for (source, subscription) in videos {
            if let Some(publication) = self
                .participants
                .get(&subscription.publisher)
                .and_then(|pb| pb.published.get(source))
            {
                let _ = publication.forwarder.send(ForwarderCmd::TileHeight {
                    peer: p.peer,
                    height: p.tile_heights.get(&subscription.publisher).copied(),
                });
            }
        }
        Ok(())
    }

    /// Asks the publisher of every video `user` receives for a keyframe: its decoder needs one
    /// after a gap (video resumed, the connection restored).
    fn request_received_keyframes(&self, user: &str) {
        let Some(p) = self.participants.get(user) else {
            return;
        };
        let videos = p
            .subscriptions
            .iter()
            .filter(|(_, s)| s.ready && s.kind == MediaKind::Video);
        for (source, subscription) in videos {
            if let Some(publication) = self
                .participants
                .get(&subscription.publisher)
                .and_then(|pb| pb.published.get(source))
            {
                let _ = publication.forwarder.send(ForwarderCmd::KeyframeRequest);
            }
        }
    }

    fn local_candidate(&self, user: &str, peer: u64, candidate: RTCIceCandidateInit) {
        let Some(p) = self.participants.get(user).filter(|p| p.peer == peer) else {
            return;
        };
        if candidate.candidate.is_empty() {
            return;
        }
        let text = announce_candidate(&candidate.candidate, &self.shared.candidate_rewrite());
        self.emit(
            user,
            SfuEventKind::Signal(ServerSignal::Candidate(IceCandidate {
                candidate: text,
                sdp_mid: p.first_mid.clone().or(Some("0".to_owned())),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            })),
        );
    }

    async fn peer_state(&mut self, user: &str, peer: u64, state: RTCPeerConnectionState) {
        let Some(p) = self.participants.get(user).filter(|p| p.peer == peer) else {
            return;
        };
        match state {
            RTCPeerConnectionState::Connected if !p.connected => {
                // Keyframes requested before the subscriber could decrypt would be wasted.
                let forwarders: Vec<_> = p
                    .subscriptions
                    .iter()
                    .filter(|(_, s)| s.ready)
                    .filter_map(|(source, s)| {
                        self.participants
                            .get(&s.publisher)
                            .and_then(|pb| pb.published.get(source))
                            .map(|pb| {
                                (
                                    pb.forwarder.clone(),
                                    p.tile_heights.get(&s.publisher).copied(),
                                )
                            })
                    })
                    .collect();
                let (peer, queue) = (p.peer, p.downlink_queue.clone());
                for (forwarder, height) in forwarders {
                    let _ = forwarder.send(ForwarderCmd::AddSubscriber {
                        peer,
                        queue: queue.clone(),
                        video: Arc::clone(&p.video),
                    });
                    let _ = forwarder.send(ForwarderCmd::TileHeight { peer, height });
                    let _ = forwarder.send(ForwarderCmd::KeyframeRequest);
                }
                if let Some(p) = self.participants.get_mut(user) {
                    p.connected = true;
                    if let Some((_, timer)) = p.connect_deadline.take() {
                        timer.cancel();
                    }
                }
                self.emit(user, SfuEventKind::Connected);
            }
            RTCPeerConnectionState::Connected => self.reconnected(user),
            RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Failed
                if p.connected =>
            {
                self.connection_broke(user, state).await;
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                if state == RTCPeerConnectionState::Failed {
                    self.shared
                        .metrics
                        .connections_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.remove_participant(user, CloseReason::ConnectionFailed)
                    .await;
            }
            _ => {}
        }
    }

    /// A connected participant's connection broke (its network changed, or went away): its
    /// seat, tracks and subscriptions stay while the server offers an ICE restart, and the
    /// participant has `ice_restart_grace_ms` to be connected again. The others see its media
    /// freeze meanwhile; nothing is renegotiated for them.
    async fn connection_broke(&mut self, user: &str, state: RTCPeerConnectionState) {
        let Some(p) = self.participants.get(user) else {
            return;
        };
        if p.restart_deadline.is_some() {
            // Already restarting (disconnected, then failed): one offer per break.
            return;
        }
        tracing::info!(room = %self.id, user, ?state, "sfu: connection broke, restarting ICE");
        self.restart_with_grace(user);
        self.maybe_offer(user).await;
    }

    /// The next server offer restarts ICE, and the participant has `ice_restart_grace_ms` from
    /// now to be connected again (replacing the grace it had).
    fn restart_with_grace(&mut self, user: &str) {
        let grace = Duration::from_millis(self.shared.config.ice_restart_grace_ms);
        let id = self.shared.metrics.next_id();
        let Some(p) = self.participants.get_mut(user) else {
            return;
        };
        let cancel = p.cancel.child_token();
        if let Some((_, previous)) = p.restart_deadline.replace((id, cancel.clone())) {
            previous.cancel();
        }
        p.ice_restart_wanted = true;
        let due = RoomCmd::RestartDue {
            user: user.to_owned(),
            deadline: id,
        };
        self.remind(cancel, grace, due);
    }

    /// Connected again after a break or an ICE restart: the grace deadline ends, and every
    /// video it receives or publishes asks for a keyframe (what was lost meanwhile left decoders without a
    /// reference: its own, and the others' for its video).
    fn reconnected(&mut self, user: &str) {
        let Some(p) = self.participants.get_mut(user) else {
            return;
        };
        let broken = p.restart_deadline.take();
        if broken.is_none() && !p.ice_restarting {
            return;
        }
        if let Some((_, timer)) = broken {
            timer.cancel();
        }
        p.ice_restart_wanted = false;
        p.ice_restarting = false;
        tracing::info!(room = %self.id, user, "sfu: connection restored");
        // Its own video too: the others' decoders saw the same gap.
        for publication in p
            .published
            .values()
            .filter(|pb| pb.kind == MediaKind::Video)
        {
            let _ = publication.forwarder.send(ForwarderCmd::KeyframeRequest);
        }
        self.request_received_keyframes(user);
    }

    /// The participant's signaling is back on a new socket. What it was sent while away is
    /// lost: an unanswered offer goes again (with a new answer deadline); a broken connection
    /// gets a new grace and an ICE restart offer (unless the offer sent again is one); a paused
    /// video is said again.
    async fn resume(&mut self, user: &str) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(user)
            .ok_or(SfuError::UnknownParticipant)?;
        p.signaling_away = false;
        let paused = p.video.paused();
        let resend = p.offer_in_flight;
        // A restart offer sent again restarts as well as a new one would.
        let restart_resent = resend && p.ice_restarting;
        if p.restart_deadline.is_some() {
            self.restart_with_grace(user);
            if let Some(p) = self.participants.get_mut(user) {
                p.ice_restart_wanted &= !restart_resent;
            }
        }
        if resend {
            self.send_offer(user).await;
        }
        if paused {
            self.emit(
                user,
                SfuEventKind::Signal(ServerSignal::Video(VideoState {
                    paused,
                    reason: "congestion",
                })),
            );
        }
        tracing::info!(room = %self.id, user, resend, "sfu: signaling resumed");
        self.maybe_offer(user).await;
        Ok(())
    }

    async fn track_opened(&mut self, user: &str, peer: u64, opened: OpenedTrack) {
        let Some(p) = self.participants.get_mut(user).filter(|p| p.peer == peer) else {
            return; // dropping `opened` closes the forwarder's command channel: it ends
        };
        let track_id = opened.track.track_id().await;
        let mut codecs = Vec::new();
        let mut extensions = Vec::new();
        for receiver in p.pc.get_receivers().await {
            if receiver.track().track_id().await != track_id {
                continue;
            }
            if let Ok(params) = receiver.get_parameters().await {
                codecs = params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .map(|c| (c.payload_type, c.rtp_codec.clone()))
                    .collect();
                extensions = params
                    .rtp_parameters
                    .header_extensions
                    .iter()
                    .map(|h| (h.id, h.uri.clone()))
                    .collect();
            }
        }
        let ssrc = opened.track.ssrcs().await.first().copied().unwrap_or(0);
        let codec = match opened.track.codec(ssrc).await {
            Some(codec) => codec,
            None => match codecs.first() {
                Some((_, codec)) => codec.clone(),
                None => {
                    tracing::warn!(user, "sfu: published track without codec ignored");
                    return;
                }
            },
        };
        if p.muted.contains(&opened.kind) {
            let _ = opened.forwarder.send(ForwarderCmd::SetMuted(true));
        }
        tracing::info!(room = %self.id, user, source = opened.source, kind = %opened.kind,
            codec = %codec.mime_type, "sfu: track published");
        p.published.insert(
            opened.source,
            Publication {
                source: opened.source,
                kind: opened.kind,
                forwarder: opened.forwarder,
                feedback: opened.feedback,
                codec,
                codecs,
                extensions,
            },
        );
        let others: Vec<String> = self
            .participants
            .keys()
            .filter(|u| u.as_str() != user)
            .cloned()
            .collect();
        for other in others {
            if let Err(e) = self.subscribe(&other, user, opened.source).await {
                tracing::warn!(room = %self.id, subscriber = %other, error = %e, "sfu: subscribe failed");
            }
            self.maybe_offer(&other).await;
        }
    }

    /// Drops every trace of `user`: its connection is closed, its tracks leave the other
    /// participants' connections (renegotiated at once), its tasks end.
    async fn remove_participant(&mut self, user: &str, reason: CloseReason) {
        let Some(p) = self.participants.get(user) else {
            return;
        };
        let _ = p.events.send(SfuEvent {
            room_id: self.id.clone(),
            user_id: user.to_owned(),
            kind: SfuEventKind::Closed(reason),
        });
        let Some(p) = self.participants.remove(user) else {
            return;
        };
        tracing::info!(room = %self.id, user, ?reason, "sfu: participant removed");
        p.cancel.cancel();
        let published: Vec<(SourceId, String)> = p
            .published
            .values()
            .map(|pb| (pb.source, user.to_owned()))
            .collect();
        // Its own subscriptions: leave the publishers' fan-out lists.
        for (source, subscription) in &p.subscriptions {
            if let Some(pb) = self
                .participants
                .get(&subscription.publisher)
                .and_then(|pp| pp.published.get(source))
            {
                let _ = pb
                    .forwarder
                    .send(ForwarderCmd::RemoveSubscriber { peer: p.peer });
            }
        }
        let metrics = Arc::clone(&self.shared.metrics);
        let Participant { pc, port, .. } = p;
        spawn_counted(&metrics, async move {
            if let Err(e) = pc.close().await {
                tracing::debug!(error = %e, "sfu: close failed");
            }
            drop(pc);
            drop(port);
        });
        self.shared.metrics.peers.fetch_sub(1, Ordering::Relaxed);
        self.placement.left();

        let others: Vec<String> = self.participants.keys().cloned().collect();
        for other in others {
            for (source, _) in &published {
                self.unsubscribe(&other, *source).await;
            }
            self.maybe_offer(&other).await;
        }
    }

    async fn remove_all(&mut self, reason: CloseReason) {
        let users: Vec<String> = self.participants.keys().cloned().collect();
        for user in users {
            self.remove_participant(&user, reason).await;
        }
    }
}

/// A new send-only transceiver (a new m-line) carrying `publisher`'s track to `sub`.
async fn new_leg(
    sub: &Participant,
    publisher: &str,
    kind: MediaKind,
    source: SourceId,
    encoding: RTCRtpEncodingParameters,
) -> Result<SendLeg, SfuError> {
    // Unique per m-line, so a rejoin never reuses one.
    let track_id = format!("{publisher}-{kind}-{source}");
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        publisher.to_owned(),
        track_id.clone(),
        track_id.clone(),
        rtc_kind(kind),
        vec![encoding],
    )));
    let transceiver = sub
        .pc
        .add_transceiver_from_track(
            Arc::clone(&track) as Arc<dyn webrtc::media_stream::track_local::TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await
        .map_err(|e| internal("add transceiver", e))?;
    let sender = transceiver
        .sender()
        .await
        .map_err(|e| internal("transceiver sender", e))?
        .ok_or(SfuError::Internal)?;
    Ok(SendLeg {
        kind,
        track_id,
        track,
        sender,
        transceiver,
    })
}

/// An idle leg of `kind` whose inactive state the subscriber has already answered (a server
/// offer made after it turned inactive was answered): only then does the next offer
/// turn it back on, a fresh `track` event in the browser, rather than switch an m-line the
/// browser still plays from one publisher to another.
fn take_idle_leg(sub: &mut Participant, kind: MediaKind) -> Option<SendLeg> {
    let answered = sub.offers_answered();
    let i = sub
        .idle_legs
        .iter()
        .position(|(since, leg)| leg.kind == kind && answered > *since)?;
    Some(sub.idle_legs.swap_remove(i).1)
}

/// Points an idle leg at a new publisher: the sender's track (msid stream id and CNAME = the
/// publisher, the same track id), its SSRC and codec (a VP8 leg may carry H.264 next), and the
/// direction back to send-only. The next offer says all of it; the wire mapping is negotiated
/// again in `refresh_legs` once answered. On failure the leg is left inactive.
async fn recycle_leg(
    leg: &SendLeg,
    publisher: &str,
    encoding: RTCRtpEncodingParameters,
    offered: Vec<RTCRtpCodecParameters>,
) -> Result<(), webrtc::error::Error> {
    // webrtc-rs hands out the sender of a sending transceiver only: direction first.
    leg.transceiver
        .set_direction(RTCRtpTransceiverDirection::Sendonly)
        .await?;
    let result = repoint_sender(leg, publisher, encoding, offered).await;
    if result.is_err() {
        let _ = leg
            .transceiver
            .set_direction(RTCRtpTransceiverDirection::Inactive)
            .await;
    }
    result
}

async fn repoint_sender(
    leg: &SendLeg,
    publisher: &str,
    encoding: RTCRtpEncodingParameters,
    offered: Vec<RTCRtpCodecParameters>,
) -> Result<(), webrtc::error::Error> {
    let codec = encoding.codec.clone();
    let next = MediaStreamTrack::new(
        publisher.to_owned(),
        leg.track_id.clone(),
        leg.track_id.clone(),
        rtc_kind(leg.kind),
        vec![encoding.clone()],
    );
    leg.sender
        .replace_track(Arc::new(TrackLocalStaticRTP::new(next)))
        .await?;
    // The sender checks each packet's SSRC against its encodings, which replace_track leaves.
    let mut params = leg.sender.get_parameters().await?;
    for e in &mut params.encodings {
        e.rtp_coding_parameters.ssrc = encoding.rtp_coding_parameters.ssrc;
        e.codec = codec.clone();
    }
    leg.sender.set_parameters(params, None).await?;
    // The offer lists only these codecs (as for a new m-line).
    prefer_codecs(&leg.transceiver, offered).await
}

/// Sets the codecs an m-line offers. A subscriber whose connection has not negotiated the
/// later ones (RED, when its own offer had none: Firefox, webrtc-rs) is offered the first
/// alone, and gets RED as plain Opus (`red.rs`).
async fn prefer_codecs(
    transceiver: &Arc<dyn RtpTransceiver>,
    offered: Vec<RTCRtpCodecParameters>,
) -> Result<(), webrtc::error::Error> {
    let first = offered.first().cloned();
    match transceiver.set_codec_preferences(offered).await {
        Err(_) if first.is_some() => {
            let first = first.into_iter().collect();
            transceiver.set_codec_preferences(first).await
        }
        result => result,
    }
}

/// The codecs a subscriber's m-line for `publication` offers: the publisher's codec, and for
/// a RED publisher (`red.rs`) Opus first then RED, so a subscriber without RED still gets
/// Opus. webrtc-rs matches them to its own payload types for the offer, and the answer sets
/// the ones used; the first is the leg's encoding codec.
fn offered_codecs(publication: &Publication) -> Vec<RTCRtpCodecParameters> {
    let param = |codec: &RTCRtpCodec| RTCRtpCodecParameters {
        rtp_codec: codec.clone(),
        payload_type: publication
            .codecs
            .iter()
            .find(|(_, c)| c.mime_type.eq_ignore_ascii_case(&codec.mime_type))
            .map_or(0, |(pt, _)| *pt),
    };
    let is_red = |c: &RTCRtpCodec| c.mime_type.eq_ignore_ascii_case(red::MIME_TYPE_RED);
    let Some(red_codec) = publication
        .codecs
        .iter()
        .map(|(_, c)| c)
        .find(|c| is_red(c))
    else {
        return vec![param(&publication.codec)];
    };
    let primary = if is_red(&publication.codec) {
        publication
            .codecs
            .iter()
            .map(|(_, c)| c)
            .find(|c| !is_red(c))
    } else {
        Some(&publication.codec)
    };
    match primary {
        Some(primary) => vec![param(primary), param(red_codec)],
        None => vec![param(red_codec)],
    }
}

fn rtc_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    }
}

/// Parses a client offer (its candidates already filtered) and refuses one that publishes more
/// than [`MAX_PUBLISHED_SECTIONS`] media sections: the checks before webrtc-rs applies it.
pub fn parse_client_offer(sdp: String) -> Result<RTCSessionDescription, SfuError> {
    let offer =
        RTCSessionDescription::offer(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
    let parsed = offer
        .unmarshal()
        .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
    let sending = parsed
        .media_descriptions
        .iter()
        .filter(|m| m.attribute("sendonly").is_some() || m.attribute("sendrecv").is_some())
        .count();
    if sending > MAX_PUBLISHED_SECTIONS {
        return Err(SfuError::InvalidSdp(format!(
            "{sending} sending media sections, at most {MAX_PUBLISHED_SECTIONS} allowed"
        )));
    }
    Ok(offer)
}

/// Drops the `a=candidate:` lines of a client SDP that the SFU does not probe; each one counts
/// against the participant's candidate cap.
fn filter_sdp_candidates(
    p: &mut Participant,
    shared: &SfuShared,
    sdp: &str,
) -> Result<String, SfuError> {
    let policy = CandidatePolicy::of(&shared.config);
    let (sdp, ignored) = p.remote_candidates.filter_sdp(sdp, policy)?;
    if ignored > 0 {
        tracing::debug!(peer = p.peer, ignored, "sfu: SDP candidates ignored");
        shared
            .metrics
            .ignored_candidates
            .fetch_add(ignored as u64, Ordering::Relaxed);
    }
    Ok(sdp)
}

/// Answers commands that arrived after the room decided to close. A `Join` gets
/// `UnknownRoom`, which tells `SfuHandle::join` to create the room afresh.
fn reject_closed(command: RoomCmd) {
    match command {
        RoomCmd::Join { reply, .. } | RoomCmd::End { reply } => {
            let _ = reply.send(Err(SfuError::UnknownRoom));
        }
        RoomCmd::Signal { reply, .. }
        | RoomCmd::SetMuted { reply, .. }
        | RoomCmd::SetReceiveVideo { reply, .. }
        | RoomCmd::SetTileHeights { reply, .. }
        | RoomCmd::SignalingAway { reply, .. }
        | RoomCmd::Resume { reply, .. }
        | RoomCmd::Leave { reply, .. } => {
            let _ = reply.send(Err(SfuError::UnknownParticipant));
        }
        RoomCmd::LocalCandidate { .. }
        | RoomCmd::PeerState { .. }
        | RoomCmd::TrackOpened { .. }
        | RoomCmd::AnswerDue { .. }
        | RoomCmd::ConnectDue { .. }
        | RoomCmd::VideoGate { .. }
        | RoomCmd::RestartDue { .. } => {}
    }
}

/// webrtc-rs calls these inline on the connection's driver task: each one only posts a
/// message to the room (or spawns the forwarder) and returns. It holds no connection.
struct PeerHandler {
    user: String,
    peer: u64,
    room: mpsc::WeakUnboundedSender<RoomCmd>,
    metrics: Arc<SfuMetrics>,
    cancel: CancellationToken,
    keyframe_interval: Duration,
    retransmission: RetransmitSettings,
}

impl PeerHandler {
    fn post(&self, command: RoomCmd) {
        if let Some(room) = self.room.upgrade() {
            let _ = room.send(command);
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(candidate) = event.candidate.to_json() {
            self.post(RoomCmd::LocalCandidate {
                user: self.user.clone(),
                peer: self.peer,
                candidate,
            });
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.post(RoomCmd::PeerState {
            user: self.user.clone(),
            peer: self.peer,
            state,
        });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = match track.kind().await {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return,
        };
        let media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
        let source = self.metrics.next_id();
        let (tx, rx) = mpsc::unbounded_channel();
        let (feedback_tx, feedback_rx) = mpsc::channel(FEEDBACK_QUEUE);
        // Start polling at once: the track's queue holds only 256 events.
        spawn_counted(
            &self.metrics,
            Forwarder {
                source,
                kind,
                media_ssrc,
                track: Arc::clone(&track),
                commands: rx,
                feedback: feedback_rx,
                cancel: self.cancel.clone(),
                metrics: Arc::clone(&self.metrics),
                keyframe_interval: self.keyframe_interval,
                retransmission: self.retransmission,
                muted: false,
            }
            .run(),
        );
        self.post(RoomCmd::TrackOpened {
            user: self.user.clone(),
            peer: self.peer,
            opened: OpenedTrack {
                source,
                kind,
                track,
                forwarder: tx,
                feedback: feedback_tx,
            },
        });
    }
}
