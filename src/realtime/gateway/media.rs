//! Media for rooms: the `sfu:*` signaling between a browser and the embedded SFU, or — in
//! mesh mode — the `webrtc:*` relay between browsers. One SFU session per seat, held by the
//! socket that asked for it (a second tab takes it over).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Call, InRoom, event_rule, on, room_room, user_room};
use crate::app::AppState;
use crate::config::MediaMode;
use crate::error::ApiError;
use crate::realtime::{SocketIo, SocketRef};
use crate::sfu::{
    ClientSignal, IceServer, JoinOptions, MediaKind, Sfu, SfuConfig, SfuError, SfuEvent,
    SfuEventKind, SfuHandle, SfuStartError,
};

/// The media side of the gateway: which mode, the SFU, and who holds each session.
pub struct Media {
    mode: MediaMode,
    /// Owns the SFU's runtime; dropping it stops the SFU.
    _sfu: Option<Sfu>,
    sfu: Option<SfuHandle>,
    ice_servers: Vec<IceServer>,
    /// (room, user) → the socket id that holds the SFU session.
    sessions: Mutex<HashMap<(Uuid, Uuid), String>>,
}

impl Media {
    /// Starts the SFU (on its own runtime) when the mode asks for it.
    pub fn start(mode: MediaMode, config: &SfuConfig) -> Result<Self, SfuStartError> {
        let sfu = match mode {
            MediaMode::Sfu => Some(Sfu::start(config.clone())?),
            MediaMode::Mesh => None,
        };
        Ok(Self {
            mode,
            sfu: sfu.as_ref().map(Sfu::handle),
            _sfu: sfu,
            ice_servers: config.ice_servers.clone(),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn mode(&self) -> MediaMode {
        self.mode
    }

    pub fn sfu(&self) -> Option<&SfuHandle> {
        self.sfu.as_ref()
    }

    /// STUN/TURN servers for browsers (`RTCPeerConnection({iceServers})`).
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<(Uuid, Uuid), String>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn holder(&self, room: Uuid, user: Uuid) -> Option<String> {
        self.sessions().get(&(room, user)).cloned()
    }

    /// Forgets the session if `socket` (or anyone, when None) holds it; true when it did.
    fn release(&self, room: Uuid, user: Uuid, socket: Option<&str>) -> bool {
        let mut sessions = self.sessions();
        match sessions.get(&(room, user)) {
            Some(holder) if socket.is_none_or(|s| s == holder) => {
                sessions.remove(&(room, user));
                true
            }
            _ => false,
        }
    }

    /// The seat is gone (left, kicked): its media goes too.
    pub async fn seat_gone(&self, room: Uuid, user: Uuid, kicked: bool) {
        let Some(sfu) = &self.sfu else { return };
        if !self.release(room, user, None) {
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

    /// The socket is gone: if it held a media session, the session closes (the browser
    /// starts a new one when it comes back).
    pub async fn socket_gone(&self, room: Uuid, user: Uuid, socket: &str) {
        let Some(sfu) = &self.sfu else { return };
        if self.release(room, user, Some(socket)) {
            log_removal(
                sfu.disconnect(&room.to_string(), &user.to_string()).await,
                room,
                user,
            );
        }
    }

    /// Mute or unmute forwarding of the participant's microphone or camera.
    pub async fn set_muted(&self, room: Uuid, user: Uuid, kind: MediaKind, muted: bool) {
        let Some(sfu) = &self.sfu else { return };
        if self.holder(room, user).is_none() {
            return;
        }
        if let Err(e) = sfu
            .set_muted(&room.to_string(), &user.to_string(), kind, muted)
            .await
        {
            tracing::debug!(%room, %user, error = %e, "sfu: mute not applied");
        }
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
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE
            }
            SfuError::RateLimited => actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            _ => actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
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
        |call: Call<SfuJoinRequest>| async move { join_sfu(call).await },
    );
    on(
        state,
        socket,
        "sfu:leave",
        event_rule,
        |call: Call<SfuLeaveRequest>| async move {
            let room = inside(&call, call.input.room_id)?;
            let media = &call.state.media;
            media
                .socket_gone(room, call.user_id(), &call.socket.id().to_string())
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
                let sfu = media.sfu().ok_or_else(|| media_mode_error("SFU"))?;
                let room = inside(&call, None)?;
                let user = call.user_id();
                if media.holder(room, user).as_deref()
                    != Some(call.socket.id().to_string().as_str())
                {
                    return Err(ApiError::conflict("SFU_NOT_JOINED", "Send sfu:join first"));
                }
                let signal = ClientSignal::from_event(event, call.input)?;
                sfu.signal(&room.to_string(), &user.to_string(), signal)
                    .await?;
                Ok(json!({}))
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

async fn join_sfu(call: Call<SfuJoinRequest>) -> Result<Value, ApiError> {
    let media = &call.state.media;
    let sfu = media.sfu().ok_or_else(|| media_mode_error("SFU"))?.clone();
    let room = inside(&call, call.input.room_id)?;
    let user = call.user_id();
    let socket_id = call.socket.id().to_string();
    let (room_key, user_key) = (room.to_string(), user.to_string());

    // Another tab (or an earlier session of this one) held the media: it is replaced.
    if let Some(previous) = media.holder(room, user) {
        media.release(room, user, None);
        log_removal(sfu.leave(&room_key, &user_key).await, room, user);
        if previous != socket_id {
            let _ = call
                .state
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
    let options = JoinOptions {
        publish: call.input.publish,
    };
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
    media.sessions().insert((room, user), socket_id.clone());
    tokio::spawn(forward_sfu_events(
        call.state.io.clone(),
        call.state.clone(),
        socket_id,
        room,
        user,
        receiver,
    ));
    Ok(json!({ "iceServers": media.ice_servers() }))
}

/// Carries what the SFU says to the socket that holds the session.
async fn forward_sfu_events(
    io: SocketIo,
    state: actix_web::web::Data<AppState>,
    socket_id: String,
    room: Uuid,
    user: Uuid,
    mut events: mpsc::UnboundedReceiver<SfuEvent>,
) {
    while let Some(event) = events.recv().await {
        let target = io.to(socket_id.clone());
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
                state.media.release(room, user, Some(&socket_id));
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
