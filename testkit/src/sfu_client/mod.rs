//! A webrtc-rs client that talks to the SFU exactly as the gateway would relay a browser:
//! through `SfuHandle::join` / `signal` and the `SfuEvent` channel. Shared by the SFU tests and
//! the load tools (`bench/sfu`).

mod network;
mod peer;

pub use network::Network;
pub use peer::*;

use rtc::peer_connection::configuration::RTCOfferOptions;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use talkconnect::sfu::{
    ClientSignal, IceCandidate, JoinOptions, MediaKind, SdpPayload, ServerSignal, SfuEvent,
    SfuEventKind, SfuHandle, TrackInfo,
};
use tokio::sync::mpsc;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};

/// One participant: a webrtc-rs peer connection plus the loop that answers the SFU.
pub struct Client {
    pub user: String,
    pub room: String,
    pub pc: Arc<dyn PeerConnection>,
    pub state: Arc<ClientState>,
    sfu: SfuHandle,
    peer: Peer,
    events: Option<mpsc::UnboundedReceiver<SfuEvent>>,
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

    /// Joins and publishes like `join(.., true)`, the camera in `video`.
    pub async fn join_publishing(
        sfu: &SfuHandle,
        room: &str,
        user: &str,
        video: VideoCodec,
    ) -> Client {
        let mut client = Self::join_held(sfu, room, user, true).await;
        client.peer.video_codec = video;
        client.publish().await;
        client.start_signaling();
        client
    }

    /// Joins and publishes like `join(.., true)`, the camera as three simulcast layers (see
    /// [`Peer::simulcast`]).
    pub async fn join_simulcast(sfu: &SfuHandle, room: &str, user: &str) -> Client {
        let peer = Peer::simulcast(
            user,
            "127.0.0.1",
            Attribution::StreamId,
            LayerOrder::LowestFirst,
        )
        .await;
        let mut client = Self::join_with(sfu, room, user, true, peer).await;
        client.publish().await;
        client.start_signaling();
        client
    }

    /// Joins like `join`, taking RED (RFC 2198) and, when publishing, sending its voice in
    /// it (see [`Peer::with_red`]).
    pub async fn join_red(sfu: &SfuHandle, room: &str, user: &str, publish: bool) -> Client {
        let peer = Peer::with_red(user, "127.0.0.1").await;
        let mut client = Self::join_with(sfu, room, user, publish, peer).await;
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

    /// Joins receive-only with its UDP socket on `ip` (another loopback address than the
    /// SFU's, so a test can filter this client's traffic by address).
    pub async fn join_on_ip(sfu: &SfuHandle, room: &str, user: &str, ip: &str) -> Client {
        let peer = Peer::new(user, ip, false, Attribution::StreamId).await;
        let mut client = Self::join_with(sfu, room, user, false, peer).await;
        client.start_signaling();
        client
    }

    /// Joins with its UDP sockets on `network` (see [`Network`]): a test can break its path,
    /// and an ICE restart brings it back from a new port.
    pub async fn join_on(
        sfu: &SfuHandle,
        room: &str,
        user: &str,
        publish: bool,
        network: Arc<Network>,
    ) -> Client {
        let peer = Peer::on_network(user, "127.0.0.1", network).await;
        let mut client = Self::join_with(sfu, room, user, publish, peer).await;
        if publish {
            client.publish().await;
        }
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
        let peer = Peer::new(user, "127.0.0.1", tcp_only, Attribution::StreamId).await;
        Self::join_with(sfu, room, user, publish, peer).await
    }

    async fn join_with(
        sfu: &SfuHandle,
        room: &str,
        user: &str,
        publish: bool,
        peer: Peer,
    ) -> Client {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        sfu.join(room, user, JoinOptions { publish }, events_tx)
            .await
            .expect("join");
        Client {
            user: user.to_owned(),
            room: room.to_owned(),
            pc: Arc::clone(&peer.pc),
            state: Arc::clone(&peer.state),
            sfu: sfu.clone(),
            peer,
            events: Some(events_rx),
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
        self.peer.add_tracks().await;
        let sdp = local_offer(&self.pc).await;
        self.send_offer(sdp).await
    }

    async fn send_offer(&self, sdp: String) -> Result<(), talkconnect::sfu::SfuError> {
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
        let sdp = local_offer(&self.pc).await;
        self.send_offer(sdp).await
    }

    /// Restarts ICE from this side, as a browser's `restartIce()` does: an offer with new ICE
    /// credentials over the usual client offer; the signaling loop applies the answer.
    pub async fn restart_ice(&self) -> Result<(), talkconnect::sfu::SfuError> {
        let offer = self
            .pc
            .create_offer(Some(RTCOfferOptions { ice_restart: true }))
            .await
            .expect("restart offer");
        self.pc
            .set_local_description(offer)
            .await
            .expect("set restart offer");
        let sdp = self.pc.local_description().await.expect("local").sdp;
        self.send_offer(sdp).await
    }

    pub async fn publish(&mut self) {
        self.try_publish().await.expect("publish offer accepted");
    }

    /// Answers server offers, applies server answers and candidates, and trickles ours.
    pub fn start_signaling(&mut self) {
        let mut events = self.events.take().expect("events");
        let mut candidates = self.peer.candidates.take().expect("candidates");
        let pc = Arc::clone(&self.pc);
        let sfu = self.sfu.clone();
        let (room, user) = (self.room.clone(), self.user.clone());
        let state = Arc::clone(&self.state);
        self.peer.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        if state.deaf.load(Ordering::SeqCst) {
                            state.missed.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        handle_event(&pc, &sfu, &room, &user, &state, event).await;
                    }
                    candidate = candidates.recv() => {
                        let Some(c) = candidate else { break };
                        if state.deaf.load(Ordering::SeqCst) {
                            state.missed.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
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

    /// Sends generated media (see `Peer::start_media`).
    pub fn start_media(&mut self, video_pps: u32, payload_len: usize) {
        self.peer.start_media(video_pps, payload_len);
    }

    pub async fn close(self) {
        self.peer.close().await;
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
            state.learn_ssrc_owners(&offer.sdp);
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
            state.learn_ssrc_owners(&answer.sdp);
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
        // The downlink video gate: a test client on loopback never sees it.
        SfuEventKind::Signal(ServerSignal::Video(_)) | SfuEventKind::Connected => {}
        SfuEventKind::Closed(reason) => {
            *state.closed.lock().unwrap() = Some(reason);
        }
    }
}

/// The `a=ice-ufrag` of an SDP: it changes with every ICE restart.
pub fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
}
