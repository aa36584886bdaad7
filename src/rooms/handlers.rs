//! `/api/rooms…`: create, list, show, end, join, leave, kick.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::domain::{
    LanguageCode, Level, RoomStatus, RoomTitle, SeatLimit, Topic, fold_for_search,
};
use super::model::RoomView;
use super::queries::RoomFilter;
use super::rules::{NewRoom, RoomError};
use super::service::Rooms;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::http::{Budget, Limits, allow, bad_query, page_cursor, page_limit};
use crate::ids::{RoomId, UserId};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/rooms")
            .route(web::get().to(list_rooms))
            .route(web::post().to(create_room))
            .default_service(allow("GET, POST")),
    )
    .service(
        web::resource("/rooms/{room_id}")
            .route(web::get().to(get_room))
            .route(web::delete().to(end_room))
            .default_service(allow("GET, DELETE")),
    )
    .service(
        web::resource("/rooms/{room_id}/join")
            .route(web::post().to(join_room))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/rooms/{room_id}/leave")
            .route(web::post().to(leave_room))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/rooms/{room_id}/kick/{user_id}")
            .route(web::post().to(kick_user))
            .default_service(allow("POST")),
    );
}

impl From<RoomError> for ApiError {
    fn from(err: RoomError) -> Self {
        match err {
            RoomError::NotFound => ApiError::not_found(ErrorCode::RoomNotFound, "No such room"),
            RoomError::Ended => ApiError::conflict(ErrorCode::RoomEnded, "This room has ended"),
            RoomError::Full => ApiError::conflict(ErrorCode::RoomFull, "This room is full"),
            RoomError::Kicked => ApiError::forbidden(
                ErrorCode::Kicked,
                "You were removed from this room and cannot rejoin it",
            ),
            RoomError::NotHost => {
                ApiError::forbidden(ErrorCode::NotHost, "Only the host may do this")
            }
            RoomError::NotInRoom => {
                ApiError::conflict(ErrorCode::NotInRoom, "You are not in this room")
            }
            RoomError::CannotKickSelf => {
                ApiError::unprocessable(ErrorCode::CannotKickSelf, "The host cannot kick themself")
            }
            RoomError::ParticipantNotFound => ApiError::not_found(
                ErrorCode::ParticipantNotFound,
                "That user has no seat in this room",
            ),
            RoomError::TooManySeats => ApiError::conflict(
                ErrorCode::TooManySeats,
                "You are seated in as many rooms as one person may be; leave one first",
            ),
            RoomError::Blocked => {
                ApiError::forbidden(ErrorCode::Blocked, "You can't join this room right now.")
            }
            RoomError::Draining => ApiError::draining(),
            RoomError::Db(e) => e.into(),
        }
    }
}

/// Each field is checked by the type it becomes (`rooms::domain`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRoomRequest {
    title: String,
    topic: Option<String>,
    language: Option<String>,
    level: Option<String>,
    /// JSON has one number type: 12.0 is the integer 12, as JSON Schema says.
    #[serde(default, deserialize_with = "whole_number")]
    max_participants: Option<i64>,
}

/// An integer that may be written with a zero fraction (`12.0`); anything else is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom("not a whole number")),
    }
}

impl CreateRoomRequest {
    fn parse(self, rooms: &Rooms) -> Result<NewRoom, ApiError> {
        let settings = rooms.settings();
        let title =
            RoomTitle::parse(&self.title).map_err(|m| ApiError::invalid_field("title", m))?;
        let topic = match self.topic.as_deref() {
            Some(raw) => Topic::parse(raw).map_err(|m| ApiError::invalid_field("topic", m))?,
            None => None,
        };
        let language = LanguageCode::parse(
            self.language
                .as_deref()
                .unwrap_or(&settings.default_language),
            &settings.languages,
        )
        .map_err(|m| ApiError::invalid_field("language", &m))?;
        let level = match self.level.as_deref() {
            Some(raw) => Level::parse(raw).map_err(|m| ApiError::invalid_field("level", &m))?,
            None => Level::Any,
        };
        let seats = SeatLimit::parse(
            self.max_participants
                .unwrap_or(i64::from(settings.default_max_participants)),
        )
        .map_err(|m| ApiError::invalid_field("maxParticipants", m))?;
        Ok(NewRoom {
            title,
            topic,
            language,
            level,
            seats,
        })
    }
}

async fn create_room(
    rooms: web::Data<Rooms>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    user: AuthUser,
    body: web::Json<CreateRoomRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().parse(&rooms)?;
    limits
        .spend(Budget::CreateRoom, user.0.user_id(), limits.client_ip(&req))
        .await?;
    let detail = rooms.create(user.0, new).await?;
    Ok(HttpResponse::Created().json(detail))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRoomsQuery {
    status: Option<String>,
    language: Option<String>,
    topic: Option<String>,
    level: Option<String>,
    q: Option<String>,
    has_seat: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomPage {
    rooms: Vec<RoomView>,
    next_cursor: Option<String>,
}

/// A non-blank text parameter, folded for search.
fn folded(raw: Option<&str>) -> Option<String> {
    raw.map(fold_for_search).filter(|s| !s.is_empty())
}

async fn list_rooms(
    rooms: web::Data<Rooms>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    query: web::Query<ListRoomsQuery>,
) -> Result<HttpResponse, ApiError> {
    limits
        .spend_by_address(Budget::Lobby, limits.client_ip(&req))
        .await?;
    let query = query.into_inner();
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") => Some(RoomStatus::Live),
        Some(s) if s.eq_ignore_ascii_case("all") => None,
        Some(s) => Some(
            RoomStatus::parse(s)
                .ok_or_else(|| bad_query("status", "must be LIVE, ENDED or ALL"))?,
        ),
    };
    let language = match query
        .language
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => Some(
            LanguageCode::parse(raw, &rooms.settings().languages)
                .map_err(|m| bad_query("language", &m))?
                .as_str()
                .to_owned(),
        ),
    };
    let level = match query
        .level
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => Some(Level::parse(raw).map_err(|m| bad_query("level", &m))?),
    };
    for (name, value) in [("q", &query.q), ("topic", &query.topic)] {
        if value.as_deref().is_some_and(|v| v.chars().count() > 100) {
            return Err(bad_query(name, "must be at most 100 characters"));
        }
    }
    let filter = RoomFilter {
        status,
        language,
        topic_key: folded(query.topic.as_deref()),
        level,
        text: folded(query.q.as_deref()),
        has_seat: query.has_seat.unwrap_or(false),
    };
    let limit = page_limit(query.limit)?;
    let after = page_cursor(query.cursor.as_deref())?;
    let (rooms, next) = rooms.list(filter, limit, after).await?;
    Ok(HttpResponse::Ok().json(RoomPage {
        rooms,
        next_cursor: next.map(|c| c.encode()),
    }))
}

async fn get_room(
    rooms: web::Data<Rooms>,
    path: web::Path<RoomId>,
) -> Result<HttpResponse, ApiError> {
    let detail = rooms.get(path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(detail))
}

async fn end_room(
    rooms: web::Data<Rooms>,
    path: web::Path<RoomId>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let room = rooms.end(path.into_inner(), user.0.user_id()).await?;
    Ok(HttpResponse::Ok().json(room))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinResponse {
    room: super::model::RoomDetail,
    participant: super::model::ParticipantView,
}

async fn join_room(
    rooms: web::Data<Rooms>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    path: web::Path<RoomId>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    limits
        .spend(Budget::JoinRoom, user.0.user_id(), limits.client_ip(&req))
        .await?;
    let (room, participant) = rooms.join(path.into_inner(), user.0).await?;
    Ok(HttpResponse::Ok().json(JoinResponse { room, participant }))
}

async fn leave_room(
    rooms: web::Data<Rooms>,
    path: web::Path<RoomId>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let left = rooms.leave(path.into_inner(), user.0.user_id()).await?;
    Ok(HttpResponse::Ok().json(left))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KickResponse {
    kicked_user_id: UserId,
}

async fn kick_user(
    rooms: web::Data<Rooms>,
    path: web::Path<(RoomId, UserId)>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let (room_id, target) = path.into_inner();
    rooms.kick(room_id, user.0.user_id(), target).await?;
    Ok(HttpResponse::Ok().json(KickResponse {
        kicked_user_id: target,
    }))
}
