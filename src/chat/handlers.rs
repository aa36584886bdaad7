//! `GET|POST /api/rooms/:id/chat`, `DELETE /api/rooms/:id/chat/:messageId`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::service::{Chat, ChatError, ChatMessageView, ChatText};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::http::{Budget, Limits, allow, page_cursor, page_limit};
use crate::ids::RoomId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/rooms/{room_id}/chat")
            .route(web::get().to(history))
            .route(web::post().to(post_message))
            .default_service(allow("GET, POST")),
    )
    .service(
        web::resource("/rooms/{room_id}/chat/{message_id}")
            .route(web::delete().to(delete_message))
            .default_service(allow("DELETE")),
    );
}

impl From<ChatError> for ApiError {
    fn from(err: ChatError) -> Self {
        match err {
            ChatError::RoomNotFound => ApiError::not_found(ErrorCode::RoomNotFound, "No such room"),
            ChatError::RoomEnded => ApiError::conflict(ErrorCode::RoomEnded, "This room has ended"),
            ChatError::NotParticipant => ApiError::forbidden(
                ErrorCode::NotAParticipant,
                "Only people in the room can use its chat",
            ),
            ChatError::SlowMode { retry_after_secs } => {
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::SlowMode,
                    format!("Slow mode is on; you can write again in {retry_after_secs} s"),
                )
                .with_details(json!({ "retryAfterSecs": retry_after_secs }));
                err.retry_after_secs = Some(retry_after_secs);
                err
            }
            ChatError::MessageNotFound => {
                ApiError::not_found(ErrorCode::MessageNotFound, "No such message in this room")
            }
            ChatError::NotCohost => ApiError::forbidden(
                ErrorCode::NotCohost,
                "Only a host, a co-host or its author may delete a message",
            ),
            ChatError::Db(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessagePage {
    messages: Vec<ChatMessageView>,
    next_cursor: Option<String>,
}

async fn history(
    chat: web::Data<Chat>,
    path: web::Path<RoomId>,
    query: web::Query<HistoryQuery>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = page_cursor(query.cursor.as_deref())?;
    let (messages, next) = chat
        .history(path.into_inner(), user.0.user_id(), limit, after)
        .await?;
    Ok(HttpResponse::Ok().json(MessagePage {
        messages,
        next_cursor: next.map(|c| c.encode()),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostMessageRequest {
    /// Checked by `ChatText`.
    message: String,
}

async fn post_message(
    chat: web::Data<Chat>,
    limits: web::Data<Limits>,
    path: web::Path<RoomId>,
    user: AuthUser,
    body: web::Json<PostMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let text = ChatText::parse(&body.message).map_err(|m| ApiError::invalid_field("message", m))?;
    // The same budget as the socket's chat:message: one person, one pace, either way.
    limits.spend(Budget::Chat, user.0.user_id(), None).await?;
    let message = chat.post(path.into_inner(), user.0, text).await?;
    Ok(HttpResponse::Created().json(message))
}

/// `DELETE /api/rooms/:id/chat/:messageId`: the author, a host or a co-host.
async fn delete_message(
    chat: web::Data<Chat>,
    path: web::Path<(RoomId, Uuid)>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (room_id, message_id) = path.into_inner();
    chat.delete(room_id, user.0.user_id(), message_id).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}
