//! Client events about rooms, chat and one's seat: `room:join|leave|kick|end`, the hosts'
//! `room:cohost|transfer-host|hard-mute|mute-all|lock|update`, `chat:message`,
//! `media:toggle-mic|toggle-video`, `hand:raise|lower`. Each is a named handler the table in
//! `mod.rs` registers; the services do the work.

use serde::Deserialize;
use serde_json::{Value, json};

use super::kit::Call;
use super::seats;
use crate::chat::ChatText;
use crate::error::ApiError;
use crate::ids::{RoomId, UserId};
use crate::rooms::rules::SeatChange;
use crate::sfu::MediaKind;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    room_id: Option<RoomId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    room_id: RoomId,
    /// The key of a locked room, from an invite link.
    room_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequest {
    room_id: Option<RoomId>,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MicRequest {
    room_id: Option<RoomId>,
    is_muted: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoRequest {
    room_id: Option<RoomId>,
    is_video_off: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LowerHandRequest {
    room_id: Option<RoomId>,
    user_id: Option<UserId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KickRequest {
    room_id: Option<RoomId>,
    user_id: UserId,
}

/// `room:join`: takes the seat if needed; the socket enters the room.
pub async fn join(call: Call<JoinRequest>) -> Result<Value, ApiError> {
    let lock = call.seat_lock();
    let _one_at_a_time = lock.lock().await;
    let room_id = call.input.room_id;
    // From the seat's write until the socket is inside, in order with the room's events: a
    // kick, an end or a release that follows this join finds the socket inside.
    let _room_turn = call.state.room_locks.lock(room_id).await;
    let key = call.input.room_key.clone();
    let (room, participant) = call
        .state
        .rooms
        .join(room_id, (*call.user).clone(), key)
        .await?;
    seats::enter_room(&call, room_id).await?;
    Ok(json!({ "room": room, "participant": participant }))
}

/// `room:leave`: frees the seat; every tab of the user leaves the room.
pub async fn leave(call: Call<RoomRef>) -> Result<Value, ApiError> {
    let lock = call.seat_lock();
    let _one_at_a_time = lock.lock().await;
    let room_id = call.room(call.input.room_id)?;
    let left = call.state.rooms.leave(room_id, call.user_id()).await;
    // The socket leaves the room even when the seat was already gone.
    seats::exit_room(&call, room_id).await;
    let left = left?;
    Ok(serde_json::to_value(left).unwrap_or_default())
}

/// `room:kick` (host only).
pub async fn kick(call: Call<KickRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    call.state
        .rooms
        .kick(room_id, call.user_id(), call.input.user_id)
        .await?;
    Ok(json!({ "kickedUserId": call.input.user_id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CohostRequest {
    room_id: Option<RoomId>,
    user_id: UserId,
    cohost: bool,
}

/// `room:cohost` (host only): make or unmake a co-host.
pub async fn cohost(call: Call<CohostRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let participant = call
        .state
        .rooms
        .set_cohost(
            room_id,
            call.user_id(),
            call.input.user_id,
            call.input.cohost,
        )
        .await?;
    Ok(json!({ "participant": participant }))
}

/// `room:transfer-host` (host only).
pub async fn transfer_host(call: Call<KickRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let room = call
        .state
        .rooms
        .transfer_host(room_id, call.user_id(), call.input.user_id)
        .await?;
    Ok(json!({ "room": room }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardMuteRequest {
    room_id: Option<RoomId>,
    user_id: UserId,
    mic: Option<bool>,
    camera: Option<bool>,
}

/// `room:hard-mute` (host, co-host).
pub async fn hard_mute(call: Call<HardMuteRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let input = &call.input;
    let participant = call
        .state
        .rooms
        .hard_mute(
            room_id,
            call.user_id(),
            input.user_id,
            input.mic,
            input.camera,
        )
        .await?;
    Ok(json!({ "participant": participant }))
}

/// `room:mute-all` (host, co-host).
pub async fn mute_all(call: Call<RoomRef>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let muted = call.state.rooms.mute_all(room_id, call.user_id()).await?;
    Ok(json!({ "muted": muted }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRequest {
    room_id: Option<RoomId>,
    locked: bool,
}

/// `room:lock` (host, co-host): `{roomKey}` when locking, `{}` when unlocking.
pub async fn lock(call: Call<LockRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let key = call
        .state
        .rooms
        .set_lock(room_id, call.user_id(), call.input.locked)
        .await?;
    Ok(match key {
        Some(key) => json!({ "roomKey": key }),
        None => json!({}),
    })
}

/// `room:update` (host, co-host): the fields of `PATCH /api/rooms/:id`.
pub async fn update(call: Call<Value>) -> Result<Value, ApiError> {
    let mut input = call.input.clone();
    let named = input
        .as_object_mut()
        .and_then(|o| o.remove("roomId"))
        .map(serde_json::from_value::<RoomId>)
        .transpose()
        .map_err(|_| ApiError::invalid_field("roomId", "not a room id"))?;
    let room_id = call.room(named)?;
    let change = crate::rooms::parse_update(input, &call.state.rooms)?;
    let room = call
        .state
        .rooms
        .update(room_id, call.user_id(), change)
        .await?;
    Ok(json!({ "room": room }))
}

/// `room:end` (host only).
pub async fn end(call: Call<RoomRef>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let room = call.state.rooms.end(room_id, call.user_id()).await?;
    Ok(json!({ "room": room }))
}

/// `chat:message`.
pub async fn chat_message(call: Call<ChatRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let text =
        ChatText::parse(&call.input.message).map_err(|m| ApiError::invalid_field("message", m))?;
    let message = call
        .state
        .chat
        .post(room_id, (*call.user).clone(), text)
        .await?;
    Ok(json!({ "message": message }))
}

/// `media:toggle-mic`.
pub async fn toggle_mic(call: Call<MicRequest>) -> Result<Value, ApiError> {
    let muted = call.input.is_muted;
    change_own_seat(&call, call.input.room_id, SeatChange::Mic { muted }).await
}

/// `media:toggle-video`.
pub async fn toggle_video(call: Call<VideoRequest>) -> Result<Value, ApiError> {
    let off = call.input.is_video_off;
    change_own_seat(&call, call.input.room_id, SeatChange::Camera { off }).await
}

/// `hand:raise`.
pub async fn raise_hand(call: Call<RoomRef>) -> Result<Value, ApiError> {
    change_own_seat(&call, call.input.room_id, SeatChange::Hand { raised: true }).await
}

/// `hand:lower`: one's own, or (the host) someone else's.
pub async fn lower_hand(call: Call<LowerHandRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let target = call.input.user_id.unwrap_or_else(|| call.user_id());
    call.state
        .rooms
        .change_seat(
            room_id,
            call.user_id(),
            target,
            SeatChange::Hand { raised: false },
        )
        .await?;
    Ok(json!({}))
}

async fn change_own_seat<T>(
    call: &Call<T>,
    named: Option<RoomId>,
    change: SeatChange,
) -> Result<Value, ApiError> {
    let room_id = call.room(named)?;
    call.state
        .rooms
        .change_seat(room_id, call.user_id(), call.user_id(), change)
        .await?;
    // A muted microphone or camera also stops being forwarded by the SFU.
    let media = match change {
        SeatChange::Mic { muted } => Some((MediaKind::Audio, muted)),
        SeatChange::Camera { off } => Some((MediaKind::Video, off)),
        SeatChange::Hand { .. } => None,
    };
    if let Some((kind, muted)) = media {
        call.state
            .media
            .set_muted(room_id, call.user_id(), kind, muted)
            .await;
        if !muted {
            // A hard mute that landed between the unmute's commit and now has muted the SFU
            // already, or is seen here: either way the lock wins.
            let (mic, camera) = call
                .state
                .rooms
                .forced_mutes(room_id, call.user_id())
                .await?;
            let forced = match kind {
                MediaKind::Audio => mic,
                MediaKind::Video => camera,
            };
            if forced {
                call.state
                    .media
                    .set_muted(room_id, call.user_id(), kind, true)
                    .await;
            }
        }
    }
    Ok(json!({}))
}
