//! Client events of room moderation that are not about seats: `chat:delete` and
//! `room:report`. Each is a named handler the table in `mod.rs` registers; the chat service
//! and `moderation::reports` do the work.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::kit::Call;
use crate::error::ApiError;
use crate::ids::{RoomId, UserId};
use crate::moderation::reports::{self, ReportRequest};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMessageRequest {
    room_id: Option<RoomId>,
    message_id: Uuid,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomReportRequest {
    room_id: Option<RoomId>,
    user_id: UserId,
    reason: String,
    message: Option<String>,
}

/// `chat:delete`: the author, a host or a co-host; the room hears `chat:deleted`.
pub async fn chat_delete(call: Call<DeleteMessageRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    call.state
        .chat
        .delete(room_id, call.user_id(), call.input.message_id)
        .await?;
    Ok(json!({}))
}

/// `room:report`: anyone seated reports someone who holds or held a seat in the room.
pub async fn report(call: Call<RoomReportRequest>) -> Result<Value, ApiError> {
    let room_id = call.room(call.input.room_id)?;
    let body = ReportRequest {
        user_id: call.input.user_id,
        reason: call.input.reason.clone(),
        message: call.input.message.clone(),
    };
    let report = reports::file_report(&call.state, room_id, call.user_id(), body).await?;
    Ok(json!({ "report": report }))
}
