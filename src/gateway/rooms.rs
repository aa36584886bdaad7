//! Client events about rooms, chat and one's seat: `room:join|leave|kick|end`,
//! `chat:message`, `media:toggle-mic|toggle-video`, `hand:raise|lower`. Each is a named
//! handler the table in `mod.rs` registers; the services do the work.

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
    let (room, participant) = call.state.rooms.join(room_id, (*call.user).clone()).await?;
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
    }
    Ok(json!({}))
}
