//! `Media`: which mode, the SFU, and who holds each seat's session. One SFU session per seat,
//! held by the socket that asked for it (a second tab takes it over).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::relay::{self, Relay};
use super::sessions::{Holder, Seat, Sessions};
use super::sfu_events::{forward_sfu_events, log_removal};
use super::wire::{
    MediaRequest, ReceivePrefs, from_wire, not_joined, session_gone, to_wire, too_many_sessions,
    unavailable, wrong_mode,
};
use crate::cluster::{MediaPlacement, Owner};
use crate::config::{MediaMode, MediaSettings};
use crate::error::ApiError;
use crate::ids::{RoomId, UserId};
use crate::realtime::SocketIo;
use crate::sfu::{
    ClientSignal, IceServer, JoinOptions, Sfu, SfuConfig, SfuError, SfuHandle, SfuStartError,
};

/// The media side of rooms: which mode, the SFU, where rooms' media live, and who holds each
/// session.
pub struct Media {
    pub(super) mode: MediaMode,
    max_per_user: usize,
    max_per_ip: usize,
    uplink_kbps: u32,
    simulcast: bool,
    audio_red: bool,
    /// How long the session of a vanished socket waits for `sfu:resume`.
    pub(super) resume_grace: Duration,
    /// Owns the SFU's runtime; dropping it stops the SFU.
    _sfu: Option<Sfu>,
    pub(super) sfu: Option<SfuHandle>,
    ice_servers: Vec<IceServer>,
    pub(super) io: SocketIo,
    pub(super) placement: Arc<dyn MediaPlacement>,
    pub(super) sessions: Arc<Sessions>,
    /// The TURN relay in this binary, once started (`AppState` starts it after the rooms).
    relay: OnceLock<Relay>,
    /// How long a credential minted for an external TURN server (`secret`) lasts.
    credential_ttl: Duration,
    /// Set by `drain` (the process is stopping): no session starts here any more.
    pub(super) draining: AtomicBool,
}

impl Media {
    /// Starts the SFU (on its own runtime) when the mode asks for it, serves the media
    /// requests other replicas send, and keeps this replica's claim on the rooms it serves
    /// (renewed every third of `lease`) until `shutdown`.
    pub async fn start(
        settings: &MediaSettings,
        config: &SfuConfig,
        io: SocketIo,
        placement: Arc<dyn MediaPlacement>,
        lease: Duration,
        credential_ttl: Duration,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, SfuStartError> {
        let sfu = match settings.mode {
            MediaMode::Sfu => Some(Sfu::start(config.clone())?),
            MediaMode::Mesh => None,
        };
        let media = Arc::new(Self {
            mode: settings.mode,
            max_per_user: settings.max_sessions_per_user,
            max_per_ip: settings.max_sessions_per_ip,
            uplink_kbps: settings.uplink_kbps,
            simulcast: settings.simulcast,
            audio_red: settings.audio_red,
            resume_grace: Duration::from_secs(settings.resume_grace_secs),
            sfu: sfu.as_ref().map(Sfu::handle),
            _sfu: sfu,
            ice_servers: config.ice_servers.clone(),
            io,
            placement,
            sessions: Arc::default(),
            relay: OnceLock::new(),
            credential_ttl,
            draining: AtomicBool::new(false),
        });
        let weak: Weak<Media> = Arc::downgrade(&media);
        media
            .placement
            .serve(Arc::new(move |request: Value| {
                let weak = weak.clone();
                Box::pin(async move {
                    let Some(media) = weak.upgrade() else {
                        return to_wire(Err(unavailable("shutting down")));
                    };
                    let result = match serde_json::from_value::<MediaRequest>(request) {
                        Ok(request) => media.execute(request).await,
                        // A kind of request from a newer release (wire.rs in cluster/redis).
                        Err(e) => Err(unavailable(format!(
                            "a media request this release cannot read: {e}"
                        ))),
                    };
                    to_wire(result)
                })
            }))
            .await;
        if media.sfu.is_some() {
            let upkeep = Arc::clone(&media);
            tokio::spawn(async move { upkeep.keep_placement(lease, shutdown).await });
        }
        Ok(media)
    }

    pub fn mode(&self) -> MediaMode {
        self.mode
    }

    /// STUN/TURN servers for a browser (`RTCPeerConnection({iceServers})`): the configured
    /// ones, then this binary's relay; TURN credentials are minted for `user` (none without
    /// one). `request_host` is the host the browser reached this server by.
    pub fn ice_servers(&self, user: Option<UserId>, request_host: Option<&str>) -> Vec<IceServer> {
        let mut servers = relay::configured_for(&self.ice_servers, user, self.credential_ttl);
        if let (Some(relay), Some(user)) = (self.relay.get(), user) {
            servers.extend(relay.ice_server(user, request_host));
        }
        servers
    }

    /// The uplink budget browsers cap their senders to (`[media] uplink_kbps`).
    pub fn uplink_kbps(&self) -> u32 {
        self.uplink_kbps
    }

    /// Hands the started relay to the service (once).
    pub fn attach_relay(&self, relay: Relay) {
        let _ = self.relay.set(relay);
    }

    pub fn relay(&self) -> Option<&Relay> {
        self.relay.get()
    }

    /// The SFU's counters (None in mesh mode), for tests and operators.
    pub fn sfu_stats(&self) -> Option<crate::sfu::SfuStats> {
        self.sfu.as_ref().map(SfuHandle::stats)
    }

    /// This replica's SFU (None in mesh mode), for tests that drive peers through it.
    pub fn sfu_handle(&self) -> Option<SfuHandle> {
        self.sfu.clone()
    }

    /// Refuses unless browsers connect to each other (the `webrtc:*` relay).
    pub fn require_mesh(&self) -> Result<(), ApiError> {
        match self.mode {
            MediaMode::Mesh => Ok(()),
            MediaMode::Sfu => Err(wrong_mode("mesh")),
        }
    }

    /// Refuses unless browsers connect to the SFU (the `sfu:*` signaling).
    pub fn require_sfu(&self) -> Result<(), ApiError> {
        self.sfu().map(|_| ())
    }

    fn sfu(&self) -> Result<&SfuHandle, ApiError> {
        self.sfu.as_ref().ok_or_else(|| wrong_mode("SFU"))
    }

    /// Runs a request on this replica's SFU.
    pub(super) async fn execute(
        self: &Arc<Self>,
        request: MediaRequest,
    ) -> Result<Value, ApiError> {
        let sfu = self.sfu()?.clone();
        match request {
            MediaRequest::Join {
                room,
                user,
                publish,
                socket,
                ip,
            } => {
                if self.draining.load(Ordering::Acquire) {
                    // The asking replica's browser tries again and lands on the new owner.
                    return Err(unavailable("this replica is stopping"));
                }
                let holder = Holder {
                    socket,
                    ip,
                    session: rand::random(),
                    away: false,
                };
                self.join_here(&sfu, (room, user), publish, holder).await
            }
            MediaRequest::Signal {
                room,
                user,
                socket,
                event,
                payload,
            } => {
                if !self.sessions.local_holder_is((room, user), &socket) {
                    return Err(not_joined());
                }
                let signal = ClientSignal::from_event(&event, payload)?;
                sfu.signal(&room.to_string(), &user.to_string(), signal)
                    .await?;
                Ok(json!({}))
            }
            MediaRequest::Prefs {
                room,
                user,
                socket,
                prefs,
            } => {
                if !self.sessions.local_holder_is((room, user), &socket) {
                    return Err(not_joined());
                }
                let (room, user) = (room.to_string(), user.to_string());
                if let Some(video) = prefs.video {
                    sfu.set_receive_video(&room, &user, video).await?;
                }
                if let Some(tiles) = prefs.tiles {
                    let heights = tiles.into_iter().map(|(u, h)| (u.to_string(), h));
                    sfu.set_tile_heights(&room, &user, heights.collect())
                        .await?;
                }
                Ok(json!({}))
            }
            MediaRequest::Leave { room, user, socket } => {
                self.close_if_held(&sfu, (room, user), &socket).await;
                Ok(json!({}))
            }
            MediaRequest::Away { room, user, socket } => {
                self.hold_for_resume(&sfu, (room, user), socket).await;
                Ok(json!({}))
            }
            MediaRequest::Resume {
                room,
                user,
                session,
                socket,
                ip,
            } => {
                if !self.sessions.rebind((room, user), session, &socket, ip) {
                    return Err(session_gone());
                }
                if let Err(e) = sfu.resume(&room.to_string(), &user.to_string()).await {
                    // The SFU closed it meanwhile (a deadline): the page starts afresh.
                    tracing::debug!(%room, %user, error = %e, "sfu: session not resumed");
                    self.sessions.release_session((room, user), session);
                    return Err(session_gone());
                }
                tracing::info!(%room, %user, "media: session resumed on a new socket");
                Ok(self.session_answer(user, session))
            }
            MediaRequest::Mute {
                room,
                user,
                kind,
                muted,
            } => {
                if self.sessions.local().contains_key(&(room, user)) {
                    if let Err(e) = sfu
                        .set_muted(&room.to_string(), &user.to_string(), kind, muted)
                        .await
                    {
                        tracing::debug!(%room, %user, error = %e, "sfu: mute not applied");
                    }
                }
                Ok(json!({}))
            }
        }
    }

    async fn join_here(
        self: &Arc<Self>,
        sfu: &SfuHandle,
        seat: Seat,
        publish: bool,
        holder: Holder,
    ) -> Result<Value, ApiError> {
        let (room, user) = seat;
        let (room_key, user_key) = (room.to_string(), user.to_string());
        // Each session holds a UDP port: one person, or one address, cannot take them all.
        let (by_user, by_ip) = self.sessions.held(seat, holder.ip);
        if by_user >= self.max_per_user {
            return Err(too_many_sessions(
                "You already have audio and video open in as many rooms as allowed",
            ));
        }
        if by_ip >= self.max_per_ip {
            return Err(too_many_sessions(
                "Too many audio and video sessions from this address",
            ));
        }
        let socket = holder.socket.clone();
        // Another tab (or an earlier session of this one) held the media: it is replaced.
        let previous = self.sessions.local().remove(&seat);
        if let Some(previous) = previous {
            log_removal(sfu.leave(&room_key, &user_key).await, room, user);
            if previous.socket != socket {
                let _ = self
                    .io
                    .to(previous.socket)
                    .emit(
                        "sfu:closed",
                        &json!({ "roomId": room, "reason": "replaced" }),
                    )
                    .await;
            }
        }
        let (events, receiver) = mpsc::unbounded_channel();
        let options = JoinOptions { publish };
        match sfu
            .join(&room_key, &user_key, options, events.clone())
            .await
        {
            Err(SfuError::AlreadyJoined) => {
                // A session this service no longer tracks (a crashed socket): start afresh.
                log_removal(sfu.leave(&room_key, &user_key).await, room, user);
                sfu.join(&room_key, &user_key, options, events).await?;
            }
            other => other?,
        }
        let session = holder.session;
        self.sessions.local().insert(seat, holder);
        tokio::spawn(forward_sfu_events(
            self.io.clone(),
            Arc::clone(&self.sessions),
            socket,
            seat,
            session,
            receiver,
        ));
        Ok(self.session_answer(user, session))
    }

    /// The ack of `sfu:join` and `sfu:resume`: ICE servers (fresh TURN credentials), what the
    /// browser should send, and the session's id for a later `sfu:resume`.
    fn session_answer(&self, user: UserId, session: u64) -> Value {
        json!({
            "iceServers": self.ice_servers(Some(user), None),
            "uplinkKbps": self.uplink_kbps,
            "simulcast": self.simulcast,
            "audioRed": self.audio_red,
            "sessionId": session.to_string(),
        })
    }

    /// Sends a request to the replica that serves `seat`'s session (none: not joined).
    pub(super) async fn to_session(
        self: &Arc<Self>,
        seat: Seat,
        request: MediaRequest,
    ) -> Result<Value, ApiError> {
        if self.sessions.local().contains_key(&seat) {
            return self.execute(request).await;
        }
        let owner = self
            .sessions
            .remote()
            .get(&seat)
            .map(|(node, _)| node.clone());
        match owner {
            Some(node) => self.call(&node, &request).await,
            None => Err(not_joined()),
        }
    }

    pub(super) async fn call(&self, node: &str, request: &MediaRequest) -> Result<Value, ApiError> {
        let request = serde_json::to_value(request).map_err(ApiError::internal)?;
        let reply = self
            .placement
            .call(node, request)
            .await
            .map_err(unavailable)?;
        from_wire(reply)
    }

    /// `sfu:join` from a socket of this replica: the room's owner serves it. Answers the
    /// ICE servers for the browser.
    pub async fn join(
        self: &Arc<Self>,
        room: RoomId,
        user: UserId,
        publish: bool,
        socket: String,
        ip: Option<IpAddr>,
    ) -> Result<Value, ApiError> {
        self.sfu()?;
        if self.draining.load(Ordering::Acquire) {
            return Err(ApiError::draining());
        }
        let request = MediaRequest::Join {
            room,
            user,
            publish,
            socket: socket.clone(),
            ip,
        };
        self.at_owner((room, user), socket, request).await
    }

    /// Runs `socket`'s request that opens or takes `seat`'s session on the room's owner (here
    /// or elsewhere), and remembers where the session lives.
    async fn at_owner(
        self: &Arc<Self>,
        seat: Seat,
        socket: String,
        request: MediaRequest,
    ) -> Result<Value, ApiError> {
        match self.placement.owner(seat.0).await.map_err(unavailable)? {
            Owner::Here => {
                self.sessions.remote().remove(&seat);
                self.execute(request).await
            }
            Owner::Elsewhere(node) => {
                let answer = self.call(&node, &request).await?;
                self.sessions.remote().insert(seat, (node, socket));
                Ok(answer)
            }
        }
    }

    /// `sfu:resume` from a socket of this replica: session `session` of the seat (opened by an
    /// earlier socket of the same page, whose network went away) goes on with this socket,
    /// its peer connection, tracks and subscriptions as they were. Answers like `sfu:join`.
    pub async fn resume(
        self: &Arc<Self>,
        room: RoomId,
        user: UserId,
        session: &str,
        socket: String,
        ip: Option<IpAddr>,
    ) -> Result<Value, ApiError> {
        self.sfu()?;
        // Not a number: no session has that id.
        let session = session.parse::<u64>().map_err(|_| session_gone())?;
        let request = MediaRequest::Resume {
            room,
            user,
            session,
            socket: socket.clone(),
            ip,
        };
        self.at_owner((room, user), socket, request).await
    }

    /// `sfu:offer`/`sfu:answer`/`sfu:candidate` from the socket that holds the seat's
    /// session, carried to the SFU that serves it.
    pub async fn signal(
        self: &Arc<Self>,
        room: RoomId,
        user: UserId,
        socket: String,
        event: &str,
        payload: Value,
    ) -> Result<Value, ApiError> {
        let request = MediaRequest::Signal {
            room,
            user,
            socket: socket.clone(),
            event: event.to_owned(),
            payload,
        };
        self.from_holder((room, user), &socket, request).await
    }

    /// `sfu:prefs` from the socket that holds the seat's session: `video: false` is
    /// audio-only (the SFU serving the session stops sending it video); `tiles` gives the
    /// size of each publisher's tile (simulcast layer choice).
    pub async fn set_prefs(
        self: &Arc<Self>,
        room: RoomId,
        user: UserId,
        socket: String,
        prefs: ReceivePrefs,
    ) -> Result<Value, ApiError> {
        let request = MediaRequest::Prefs {
            room,
            user,
            socket: socket.clone(),
            prefs,
        };
        self.from_holder((room, user), &socket, request).await
    }

    /// A request of the socket that holds `seat`'s session (any other: not joined), carried
    /// to the SFU that serves it.
    async fn from_holder(
        self: &Arc<Self>,
        seat: Seat,
        socket: &str,
        request: MediaRequest,
    ) -> Result<Value, ApiError> {
        self.sfu()?;
        if !self.sessions.held_by(seat, socket) {
            return Err(not_joined());
        }
        self.to_session(seat, request).await
    }
}

impl std::fmt::Display for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.mode, &self.sfu) {
            (MediaMode::Mesh, _) => {
                f.write_str("mesh (browser to browser; peers see each other's IP)")
            }
            (MediaMode::Sfu, Some(sfu)) => match sfu.single_port_addr() {
                Some(addr) => write!(f, "sfu on the single UDP port {addr}"),
                None => f.write_str("sfu"),
            },
            (MediaMode::Sfu, None) => f.write_str("sfu (not started)"),
        }
    }
}
