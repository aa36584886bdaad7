//! Client events about media: the `sfu:*` signaling between a browser and the SFU (carried by
//! the media service to whichever replica serves the room), and — in mesh mode — the
//! `webrtc:*` relay between browsers, delivered only to the target's sockets inside the
//! sender's room.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::kit::{Call, room_room, user_room};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{RoomId, UserId};
use crate::media::ReceivePrefs;
use crate::sfu::MediaKind;

/// The mesh relay's events: the same name goes to the target with `senderUserId`.
pub const RELAY_EVENTS: [&str; 3] = ["webrtc:offer", "webrtc:answer", "webrtc:ice-candidate"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuJoinRequest {
    room_id: Option<RoomId>,
    /// False for listen-only participants (no camera or microphone).
    #[serde(default = "publishes")]
    publish: bool,
}

fn publishes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuLeaveRequest {
    room_id: Option<RoomId>,
}

/// `sfu:resume`: the `sessionId` of the `sfu:join` ack.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuResumeRequest {
    room_id: Option<RoomId>,
    session_id: String,
}

/// `sfu:prefs`: what this participant wants to receive.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuPrefsRequest {
    room_id: Option<RoomId>,
    /// False: audio-only, no one's video is sent to this participant.
    video: Option<bool>,
    /// Publisher user id → the height in device pixels of its tile on this page (simulcast
    /// layer choice). Replaces the last map.
    tiles: Option<BTreeMap<UserId, u32>>,
}

/// At most this many tiles in one `sfu:prefs` (more than any room has seats).
const MAX_PREF_TILES: usize = 64;
/// Taller tiles count as this tall.
const MAX_TILE_HEIGHT: u32 = 4320;

/// A `webrtc:*` relay: the target and whatever the browsers exchange (SDP, candidates).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayRequest {
    target_user_id: UserId,
    #[serde(flatten)]
    payload: serde_json::Map<String, Value>,
}

/// `sfu:join`: this socket takes the seat's media session (another tab's is replaced).
pub async fn sfu_join(call: Call<SfuJoinRequest>) -> Result<Value, ApiError> {
    let room = call.inside(call.input.room_id)?;
    // The socket's mark could be stale (a lost kick event): media costs a port, so ask the
    // database.
    call.state.rooms.require_seat(room, call.user_id()).await?;
    let ip = call.socket.handshake().client_ip;
    let answer = call
        .state
        .media
        .join(
            room,
            call.user_id(),
            call.input.publish,
            call.socket_id(),
            ip,
        )
        .await?;
    // A hard-muted person (or anyone in a `noMic` room) starts muted in the SFU, whatever
    // the browser says; no media flows before the answer, so nothing slips through.
    let (mic, camera) = call.state.rooms.forced_mutes(room, call.user_id()).await?;
    for (kind, forced) in [(MediaKind::Audio, mic), (MediaKind::Video, camera)] {
        if forced {
            call.state
                .media
                .set_muted(room, call.user_id(), kind, true)
                .await;
        }
    }
    Ok(answer)
}

/// `sfu:leave`: the session this socket holds closes.
pub async fn sfu_leave(call: Call<SfuLeaveRequest>) -> Result<Value, ApiError> {
    let room = call.inside(call.input.room_id)?;
    call.state
        .media
        .leave_session(room, call.user_id(), &call.socket_id())
        .await;
    Ok(json!({}))
}

/// `sfu:resume`: this socket takes over the session an earlier socket of the same page held
/// (its network went away); the peer connection goes on. Answers like `sfu:join`.
pub async fn sfu_resume(call: Call<SfuResumeRequest>) -> Result<Value, ApiError> {
    call.state.media.require_sfu()?;
    let room = call.inside(call.input.room_id)?;
    call.state.rooms.require_seat(room, call.user_id()).await?;
    let ip = call.socket.handshake().client_ip;
    let session = &call.input.session_id;
    call.state
        .media
        .resume(room, call.user_id(), session, call.socket_id(), ip)
        .await
}

/// `sfu:offer`, `sfu:answer`, `sfu:candidate`.
pub async fn sfu_signal(call: Call<Value>, event: &'static str) -> Result<Value, ApiError> {
    call.state.media.require_sfu()?;
    let room = call.inside(None)?;
    let socket = call.socket_id();
    call.state
        .media
        .signal(room, call.user_id(), socket, event, call.input)
        .await
}

/// `sfu:prefs {video}`: audio-only on (`false`) or off, for the session this socket holds.
pub async fn sfu_prefs(call: Call<SfuPrefsRequest>) -> Result<Value, ApiError> {
    call.state.media.require_sfu()?;
    let room = call.inside(call.input.room_id)?;
    let socket = call.socket_id();
    let user = call.user_id();
    let SfuPrefsRequest { video, tiles, .. } = call.input;
    if video.is_none() && tiles.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "sfu:prefs needs video (true or false), tiles, or both",
        ));
    }
    if tiles.as_ref().is_some_and(|t| t.len() > MAX_PREF_TILES) {
        return Err(ApiError::invalid_field(
            "tiles",
            format_args!("at most {MAX_PREF_TILES} tiles"),
        ));
    }
    let tiles = tiles.map(|t| {
        t.into_iter()
            .map(|(user, height)| (user, height.min(MAX_TILE_HEIGHT) as u16))
            .collect()
    });
    call.state
        .media
        .set_prefs(room, user, socket, ReceivePrefs { video, tiles })
        .await
}

/// `webrtc:offer|answer|ice-candidate` (mesh mode).
pub async fn relay(call: Call<RelayRequest>, event: &'static str) -> Result<Value, ApiError> {
    call.state.media.require_mesh()?;
    let room_id = call.inside(None)?;
    if event == "webrtc:offer" {
        // A new connection to someone: the database, not the socket's mark, says who is in.
        call.state
            .rooms
            .require_seat(room_id, call.user_id())
            .await?;
    }
    let target = call.input.target_user_id;
    if target == call.user_id() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTarget,
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
            ErrorCode::ParticipantNotFound,
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
