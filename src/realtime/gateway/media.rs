//! Media for rooms: the `sfu:*` signaling between a browser and the embedded SFU, or — in
//! mesh mode — the `webrtc:*` relay between browsers. One SFU session per seat, held by the
//! socket that asked for it (a second tab takes it over).
//!
//! In a cluster a room's SFU lives on one replica, its owner (`MediaPlacement`): a socket on
//! another replica has its `sfu:*` requests carried to the owner, whose SFU answers the socket
//! directly (a Socket.IO emit to a socket id reaches it on any replica), so the ICE candidates
//! the browser gets are the owner's. When the owner dies its lease runs out; the replicas of
//! the sockets it served tell them (`sfu:closed {reason: connectionFailed}`) and their next
//! `sfu:join` lands on the replica that claims the room.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Call, InRoom, event_rule, on, room_room, user_room};
use crate::app::AppState;
use crate::cluster::{MediaPlacement, Owner};
use crate::config::MediaMode;
use crate::error::ApiError;
use crate::realtime::{SocketIo, SocketRef};
use crate::sfu::{
    ClientSignal, IceServer, JoinOptions, MediaKind, Sfu, SfuConfig, SfuError, SfuEvent,
    SfuEventKind, SfuHandle, SfuStartError,
};

type Seat = (Uuid, Uuid);

/// The media side of the gateway: which mode, the SFU, where rooms' media live, and who
/// holds each session.
pub struct Media {
    mode: MediaMode,
    /// Owns the SFU's runtime; dropping it stops the SFU.
    _sfu: Option<Sfu>,
    sfu: Option<SfuHandle>,
    ice_servers: Vec<IceServer>,
    io: SocketIo,
    placement: Arc<dyn MediaPlacement>,
    /// Sessions this replica's SFU serves: seat → the socket (on any replica) holding it.
    sessions: Mutex<HashMap<Seat, String>>,
    /// Sessions of this replica's sockets served by another replica: seat → (owner, socket).
    remote: Mutex<HashMap<Seat, (String, String)>>,
}

/// What one replica asks the owner of a room's media (or itself) to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
enum MediaRequest {
    Join {
        room: Uuid,
        user: Uuid,
        publish: bool,
        socket: String,
    },
    Signal {
        room: Uuid,
        user: Uuid,
        socket: String,
        event: String,
        payload: Value,
    },
    /// The socket holding the session is gone or asked to stop.
    Leave {
        room: Uuid,
        user: Uuid,
        socket: String,
    },
    Mute {
        room: Uuid,
        user: Uuid,
        kind: MediaKind,
        muted: bool,
    },
}

/// An `ApiError` as it crosses between replicas.
#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    status: u16,
    code: String,
    message: String,
}

fn to_wire(result: Result<Value, ApiError>) -> Value {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(err) => json!({ "error": WireError {
            status: err.status.as_u16(),
            code: err.code.to_owned(),
            message: err.message.to_string(),
        }}),
    }
}

fn from_wire(reply: Value) -> Result<Value, ApiError> {
    if let Some(ok) = reply.get("ok") {
        return Ok(ok.clone());
    }
    let err: WireError = serde_json::from_value(reply.get("error").cloned().unwrap_or_default())
        .map_err(|e| ApiError::internal(format!("a media reply from another replica: {e}")))?;
    // Codes are &'static in ApiError: keep the known ones, wrap the rest.
    let code = KNOWN_CODES
        .iter()
        .copied()
        .find(|c| *c == err.code)
        .unwrap_or("SFU_INTERNAL");
    Err(ApiError::new(
        StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_GATEWAY),
        code,
        err.message,
    ))
}

const KNOWN_CODES: &[&str] = &[
    "SFU_UNKNOWN_ROOM",
    "SFU_UNKNOWN_PARTICIPANT",
    "SFU_ALREADY_JOINED",
    "SFU_ROOM_FULL",
    "SFU_NO_FREE_PORT",
    "SFU_INVALID_SDP",
    "SFU_INVALID_CANDIDATE",
    "SFU_CANDIDATE_BEFORE_DESCRIPTION",
    "SFU_UNEXPECTED_ANSWER",
    "SFU_NEGOTIATION_IN_PROGRESS",
    "SFU_RATE_LIMITED",
    "SFU_MALFORMED_MESSAGE",
    "SFU_SHUTTING_DOWN",
    "SFU_INTERNAL",
    "SFU_NOT_JOINED",
    "MEDIA_UNAVAILABLE",
    "WRONG_MEDIA_MODE",
];

fn unavailable(reason: impl std::fmt::Display) -> ApiError {
    tracing::warn!(%reason, "media: the room's media replica is out of reach");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "MEDIA_UNAVAILABLE",
        "The server that carries this room's audio and video does not answer; try again",
    )
}

fn not_joined() -> ApiError {
    ApiError::conflict("SFU_NOT_JOINED", "Send sfu:join first")
}

impl Media {
    /// Starts the SFU (on its own runtime) when the mode asks for it, and serves the media
    /// requests other replicas send.
    pub async fn start(
        mode: MediaMode,
        config: &SfuConfig,
        io: SocketIo,
        placement: Arc<dyn MediaPlacement>,
    ) -> Result<Arc<Self>, SfuStartError> {
        let sfu = match mode {
            MediaMode::Sfu => Some(Sfu::start(config.clone())?),
            MediaMode::Mesh => None,
        };
        let media = Arc::new(Self {
            mode,
            sfu: sfu.as_ref().map(Sfu::handle),
            _sfu: sfu,
            ice_servers: config.ice_servers.clone(),
            io,
            placement,
            sessions: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
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
                        Err(e) => Err(ApiError::internal(format!("a media request: {e}"))),
                    };
                    to_wire(result)
                })
            }))
            .await;
        Ok(media)
    }

    pub fn mode(&self) -> MediaMode {
        self.mode
    }

    /// STUN/TURN servers for browsers (`RTCPeerConnection({iceServers})`).
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    fn sfu(&self) -> Result<&SfuHandle, ApiError> {
        self.sfu.as_ref().ok_or_else(|| media_mode_error("SFU"))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Seat, String>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remote(&self) -> std::sync::MutexGuard<'_, HashMap<Seat, (String, String)>> {
        self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the local session if `socket` (or anyone, when None) holds it; true when it did.
    fn release(&self, seat: Seat, socket: Option<&str>) -> bool {
        let mut sessions = self.sessions();
        match sessions.get(&seat) {
            Some(holder) if socket.is_none_or(|s| s == holder) => {
                sessions.remove(&seat);
                true
            }
            _ => false,
        }
    }

    /// Runs a request on this replica's SFU.
    async fn execute(self: &Arc<Self>, request: MediaRequest) -> Result<Value, ApiError> {
        let sfu = self.sfu()?.clone();
        match request {
            MediaRequest::Join {
                room,
                user,
                publish,
                socket,
            } => self.join_here(&sfu, (room, user), publish, socket).await,
            MediaRequest::Signal {
                room,
                user,
                socket,
                event,
                payload,
            } => {
                if self.sessions().get(&(room, user)) != Some(&socket) {
                    return Err(not_joined());
                }
                let signal = ClientSignal::from_event(&event, payload)?;
                sfu.signal(&room.to_string(), &user.to_string(), signal)
                    .await?;
                Ok(json!({}))
            }
            MediaRequest::Leave { room, user, socket } => {
                if self.release((room, user), Some(&socket)) {
                    log_removal(
                        sfu.disconnect(&room.to_string(), &user.to_string()).await,
                        room,
                        user,
                    );
                }
                Ok(json!({}))
            }
            MediaRequest::Mute {
                room,
                user,
                kind,
                muted,
            } => {
                if self.sessions().contains_key(&(room, user)) {
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
        socket: String,
    ) -> Result<Value, ApiError> {
        let (room, user) = seat;
        let (room_key, user_key) = (room.to_string(), user.to_string());
        // Another tab (or an earlier session of this one) held the media: it is replaced.
        let previous = self.sessions().remove(&seat);
        if let Some(previous) = previous {
            log_removal(sfu.leave(&room_key, &user_key).await, room, user);
            if previous != socket {
                let _ = self
                    .io
                    .to(previous)
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
                // A session this gateway no longer tracks (a crashed socket): start afresh.
                log_removal(sfu.leave(&room_key, &user_key).await, room, user);
                sfu.join(&room_key, &user_key, options, events).await?;
            }
            other => other?,
        }
        self.sessions().insert(seat, socket.clone());
        tokio::spawn(forward_sfu_events(Arc::clone(self), socket, seat, receiver));
        Ok(json!({ "iceServers": self.ice_servers }))
    }

    /// Sends a request to the replica that serves `seat`'s session (none: not joined).
    async fn to_session(
        self: &Arc<Self>,
        seat: Seat,
        request: MediaRequest,
    ) -> Result<Value, ApiError> {
        if self.sessions().contains_key(&seat) {
            return self.execute(request).await;
        }
        let owner = self.remote().get(&seat).map(|(node, _)| node.clone());
        match owner {
            Some(node) => self.call(&node, &request).await,
            None => Err(not_joined()),
        }
    }

    async fn call(&self, node: &str, request: &MediaRequest) -> Result<Value, ApiError> {
        let request = serde_json::to_value(request).map_err(ApiError::internal)?;
        let reply = self
            .placement
            .call(node, request)
            .await
            .map_err(unavailable)?;
        from_wire(reply)
    }

    /// `sfu:join` from a socket of this replica: the room's owner serves it.
    async fn join(
        self: &Arc<Self>,
        seat: Seat,
        publish: bool,
        socket: String,
    ) -> Result<Value, ApiError> {
        self.sfu()?;
        let (room, user) = seat;
        let request = MediaRequest::Join {
            room,
            user,
            publish,
            socket: socket.clone(),
        };
        match self.placement.owner(room).await.map_err(unavailable)? {
            Owner::Here => {
                self.remote().remove(&seat);
                self.execute(request).await
            }
            Owner::Elsewhere(node) => {
                let answer = self.call(&node, &request).await?;
                self.remote().insert(seat, (node, socket));
                Ok(answer)
            }
        }
    }

    /// The seat is gone (left, kicked): its media goes too. Every replica hears of it; the
    /// one whose SFU serves the seat closes it.
    pub async fn seat_gone(&self, room: Uuid, user: Uuid, kicked: bool) {
        self.remote().remove(&(room, user));
        let Some(sfu) = &self.sfu else { return };
        if !self.release((room, user), None) {
            return;
        }
        let (room_key, user_key) = (room.to_string(), user.to_string());
        let result = if kicked {
            sfu.kick(&room_key, &user_key).await
        } else {
            sfu.leave(&room_key, &user_key).await
        };
        log_removal(result, room, user);
    }

    /// The room ended: every media session in it closes.
    pub async fn room_gone(&self, room: Uuid) {
        self.remote().retain(|(r, _), _| *r != room);
        let Some(sfu) = &self.sfu else { return };
        let had_sessions = {
            let mut sessions = self.sessions();
            let before = sessions.len();
            sessions.retain(|(r, _), _| *r != room);
            before != sessions.len()
        };
        if had_sessions {
            if let Err(e) = sfu.end_room(&room.to_string()).await {
                if !matches!(e, SfuError::UnknownRoom) {
                    tracing::warn!(%room, error = %e, "sfu: ending the room failed");
                }
            }
        }
    }

    /// The socket is gone or asked to stop: if it held a media session, the session closes
    /// (the browser starts a new one when it comes back).
    pub async fn socket_gone(self: &Arc<Self>, room: Uuid, user: Uuid, socket: &str) {
        let seat = (room, user);
        let remote_owner = {
            let mut remote = self.remote();
            match remote.get(&seat) {
                Some((node, holder)) if holder == socket => {
                    let node = node.clone();
                    remote.remove(&seat);
                    Some(node)
                }
                _ => None,
            }
        };
        let request = MediaRequest::Leave {
            room,
            user,
            socket: socket.to_owned(),
        };
        let result = match remote_owner {
            Some(node) => self.call(&node, &request).await,
            None if self.sfu.is_some() => self.execute(request).await,
            None => Ok(Value::Null),
        };
        if let Err(e) = result {
            tracing::debug!(%room, %user, error = %e, "media session not closed");
        }
    }

    /// Mute or unmute forwarding of the participant's microphone or camera.
    pub async fn set_muted(self: &Arc<Self>, room: Uuid, user: Uuid, kind: MediaKind, muted: bool) {
        if self.sfu.is_none() {
            return;
        }
        let request = MediaRequest::Mute {
            room,
            user,
            kind,
            muted,
        };
        match self.to_session((room, user), request).await {
            Ok(_) => {}
            Err(e) if e.code == "SFU_NOT_JOINED" => {}
            Err(e) => tracing::debug!(%room, %user, error = %e, "mute not applied"),
        }
    }

    /// Cluster upkeep, every third of the lease: renews this replica's claim on the rooms it
    /// serves and gives up the ones it serves nobody in; closes sessions whose owner is gone
    /// (here: claim lost; elsewhere: lease ran out), so their browsers join again.
    pub async fn keep_placement(self: &Arc<Self>, lease: Duration, shutdown: CancellationToken) {
        if self.sfu.is_none() {
            return;
        }
        let mut served: HashSet<Uuid> = HashSet::new();
        let mut tick = tokio::time::interval(lease / 3);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now: HashSet<Uuid> = self.sessions().keys().map(|(room, _)| *room).collect();
            for room in served.difference(&now) {
                self.placement.vacate(*room).await;
            }
            let rooms: Vec<Uuid> = now.iter().copied().collect();
            for room in self.placement.keep(&rooms).await {
                tracing::warn!(%room, "media: another replica took this room over");
                let holders: Vec<String> = {
                    let mut sessions = self.sessions();
                    let gone: Vec<Seat> = sessions
                        .keys()
                        .filter(|(r, _)| *r == room)
                        .copied()
                        .collect();
                    gone.iter()
                        .filter_map(|seat| sessions.remove(seat))
                        .collect()
                };
                if let Some(sfu) = &self.sfu {
                    let _ = sfu.end_room(&room.to_string()).await;
                }
                for socket in holders {
                    self.tell_connection_failed(&socket, room).await;
                }
            }
            served = now;
            let remote: Vec<(Seat, String, String)> = self
                .remote()
                .iter()
                .map(|(seat, (node, socket))| (*seat, node.clone(), socket.clone()))
                .collect();
            for ((room, user), node, socket) in remote {
                if !self.placement.is_owner(room, &node).await {
                    tracing::info!(%room, %user, %node, "media: the room's media replica is gone");
                    self.remote().remove(&(room, user));
                    self.tell_connection_failed(&socket, room).await;
                }
            }
        }
    }

    async fn tell_connection_failed(&self, socket: &str, room: Uuid) {
        let _ = self
            .io
            .to(socket.to_owned())
            .emit(
                "sfu:closed",
                &json!({ "roomId": room, "reason": "connectionFailed" }),
            )
            .await;
    }
}

fn log_removal(result: Result<(), SfuError>, room: Uuid, user: Uuid) {
    match result {
        Ok(()) | Err(SfuError::UnknownRoom | SfuError::UnknownParticipant) => {}
        Err(e) => tracing::warn!(%room, %user, error = %e, "sfu: removing a participant failed"),
    }
}

impl From<SfuError> for ApiError {
    fn from(err: SfuError) -> Self {
        let status = match err {
            SfuError::Internal | SfuError::ShuttingDown | SfuError::NoFreePort => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            SfuError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

fn media_mode_error(wanted: &str) -> ApiError {
    ApiError::conflict(
        "WRONG_MEDIA_MODE",
        format!("This server does not use {wanted} media (see GET /api/meta, mediaMode)"),
    )
}

/// The room this socket is inside; media only flows there.
fn inside<T>(call: &Call<T>, named: Option<Uuid>) -> Result<Uuid, ApiError> {
    let current = call.socket.extensions().get::<InRoom>().map(|r| r.0);
    match (current, named) {
        (Some(room), None) => Ok(room),
        (Some(room), Some(named)) if room == named => Ok(room),
        _ => Err(ApiError::conflict("NOT_IN_ROOM", "Join the room first")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SfuJoinRequest {
    room_id: Option<Uuid>,
    /// False for listen-only participants (no camera or microphone).
    #[serde(default = "publishes")]
    publish: bool,
}

fn publishes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SfuLeaveRequest {
    room_id: Option<Uuid>,
}

/// A `webrtc:*` relay: the target and whatever the browsers exchange (SDP, candidates).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RelayRequest {
    target_user_id: Uuid,
    #[serde(flatten)]
    payload: serde_json::Map<String, Value>,
}

pub(super) fn register(state: &actix_web::web::Data<AppState>, socket: &SocketRef) {
    on(
        state,
        socket,
        "sfu:join",
        event_rule,
        |call: Call<SfuJoinRequest>| async move {
            let room = inside(&call, call.input.room_id)?;
            let socket = call.socket.id().to_string();
            call.state
                .media
                .join((room, call.user_id()), call.input.publish, socket)
                .await
        },
    );
    on(
        state,
        socket,
        "sfu:leave",
        event_rule,
        |call: Call<SfuLeaveRequest>| async move {
            let room = inside(&call, call.input.room_id)?;
            let socket = call.socket.id().to_string();
            call.state
                .media
                .socket_gone(room, call.user_id(), &socket)
                .await;
            Ok(json!({}))
        },
    );
    for event in ClientSignal::EVENT_NAMES {
        on(
            state,
            socket,
            event,
            event_rule,
            move |call: Call<Value>| async move {
                let media = &call.state.media;
                media.sfu()?;
                let room = inside(&call, None)?;
                let seat = (room, call.user_id());
                let socket = call.socket.id().to_string();
                let holds = media.sessions().get(&seat) == Some(&socket)
                    || media.remote().get(&seat).is_some_and(|(_, s)| *s == socket);
                if !holds {
                    return Err(not_joined());
                }
                let request = MediaRequest::Signal {
                    room,
                    user: seat.1,
                    socket,
                    event: event.to_owned(),
                    payload: call.input,
                };
                media.to_session(seat, request).await
            },
        );
    }
    for event in ["webrtc:offer", "webrtc:answer", "webrtc:ice-candidate"] {
        on(
            state,
            socket,
            event,
            event_rule,
            move |call: Call<RelayRequest>| relay(call, event),
        );
    }
}

/// Carries what the SFU says to the socket that holds the session (on any replica).
async fn forward_sfu_events(
    media: Arc<Media>,
    socket: String,
    seat: Seat,
    mut events: mpsc::UnboundedReceiver<SfuEvent>,
) {
    let (room, user) = seat;
    while let Some(event) = events.recv().await {
        let target = media.io.to(socket.clone());
        let sent = match event.kind {
            SfuEventKind::Signal(signal) => {
                let mut payload = signal.payload();
                if let Value::Object(fields) = &mut payload {
                    fields.insert("roomId".into(), json!(room));
                }
                target.emit(signal.event_name(), &payload).await
            }
            SfuEventKind::Connected => {
                target
                    .emit("sfu:connected", &json!({ "roomId": room }))
                    .await
            }
            SfuEventKind::Closed(reason) => {
                media.release(seat, Some(&socket));
                let _ = target
                    .emit("sfu:closed", &json!({ "roomId": room, "reason": reason }))
                    .await;
                return;
            }
        };
        if let Err(e) = sent {
            tracing::debug!(%room, %user, error = %e, "sfu event not delivered");
        }
    }
}

/// Mesh-mode signaling: delivered only to the target's sockets inside the sender's room.
async fn relay(call: Call<RelayRequest>, event: &'static str) -> Result<Value, ApiError> {
    if call.state.media.mode() != MediaMode::Mesh {
        return Err(media_mode_error("mesh"));
    }
    let room_id = inside(&call, None)?;
    let target = call.input.target_user_id;
    if target == call.user_id() {
        return Err(ApiError::bad_request(
            "INVALID_TARGET",
            "targetUserId is your own id: signaling goes to another participant",
        ));
    }
    let room = room_room(room_id);
    let targets: Vec<String> = call
        .state
        .io
        .in_(user_room(target))
        .fetch_sockets()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|s| s.rooms.iter().any(|r| **r == *room.as_str()))
        .map(|s| s.id.to_string())
        .collect();
    let Some((first, rest)) = targets.split_first() else {
        return Err(ApiError::not_found(
            "PARTICIPANT_NOT_FOUND",
            "That user is not connected to this room",
        ));
    };
    let sender = call.user_id();
    let mut payload = call.input.payload;
    payload.insert("targetUserId".into(), json!(target));
    payload.insert("senderUserId".into(), json!(sender));
    payload.insert("roomId".into(), json!(room_id));
    let operator = rest
        .iter()
        .fold(call.state.io.to(first.clone()), |op, id| op.to(id.clone()));
    operator
        .emit(event, &Value::Object(payload))
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({}))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_cross_replicas_unchanged() {
        assert_eq!(
            from_wire(to_wire(Ok(json!({"iceServers": []})))).unwrap(),
            json!({"iceServers": []})
        );
        let err = from_wire(to_wire(Err(SfuError::InvalidSdp("bad".into()).into()))).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "SFU_INVALID_SDP")
        );
        let err = from_wire(to_wire(Err(not_joined()))).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::CONFLICT, "SFU_NOT_JOINED")
        );
        // A code this replica does not know stays an error, never a success.
        let odd = json!({"error": {"status": 500, "code": "SOMETHING_NEW", "message": "x"}});
        assert_eq!(from_wire(odd).unwrap_err().code, "SFU_INTERNAL");
    }

    #[test]
    fn requests_are_tagged_json() {
        let room = Uuid::nil();
        let request = MediaRequest::Mute {
            room,
            user: room,
            kind: MediaKind::Video,
            muted: true,
        };
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(wire["op"], "mute");
        assert_eq!(wire["kind"], "video");
        assert!(matches!(
            serde_json::from_value(wire).unwrap(),
            MediaRequest::Mute { muted: true, .. }
        ));
    }
}
