//! `GET|POST /api/rooms/:id/chat`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

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
