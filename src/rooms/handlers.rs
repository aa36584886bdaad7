//! `/api/rooms…`: create, list, show, change, end, join, leave, kick; co-hosts, the host
//! hand-over, hard mutes, mute-all, the lock and its key (docs/MODERATION.md).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::ContentType;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::domain::{
    LanguageCode, Level, RoomStatus, RoomTitle, SeatLimit, Topic, fold_for_search,
};
use super::moderation::RoomUpdate;
use super::queries::{LobbyCursor, LobbySort, RoomFilter};
use super::rules::{NewRoom, RoomError};
use super::service::Rooms;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::http::{Budget, Limits, allow, bad_query, page_limit};
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
            .route(web::patch().to(update_room))
            .route(web::delete().to(end_room))
            .default_service(allow("GET, PATCH, DELETE")),
    )
    .service(
        web::resource("/rooms/{room_id}/cohosts")
            .route(web::post().to(make_cohost))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/rooms/{room_id}/cohosts/{user_id}")
            .route(web::delete().to(unmake_cohost))
            .default_service(allow("DELETE")),
    )
    .service(
        web::resource("/rooms/{room_id}/host")
            .route(web::post().to(transfer_host))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/rooms/{room_id}/participants/{user_id}/mute")
            .route(web::post().to(hard_mute))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/rooms/{room_id}/mute-all")
            .route(web::post().to(mute_all))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/rooms/{room_id}/lock")
            .route(web::post().to(lock_room))
            .route(web::delete().to(unlock_room))
            .default_service(allow("POST, DELETE")),
    )
    .service(
        web::resource("/rooms/{room_id}/key")
            .route(web::get().to(room_key))
            .default_service(allow("GET")),
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
            RoomError::NotCohost => ApiError::forbidden(
                ErrorCode::NotCohost,
                "Only the host or a co-host may do this",
            ),
            RoomError::InvalidTarget => {
                ApiError::unprocessable(ErrorCode::InvalidTarget, "You cannot do this to yourself")
            }
            RoomError::RoomLocked => ApiError::forbidden(
                ErrorCode::RoomLocked,
                "This room is locked; you need an invite link to join",
            ),
            RoomError::BadRoomKey => ApiError::forbidden(
                ErrorCode::BadRoomKey,
                "This invite link's key is wrong or out of date",
            ),
            RoomError::MutedByHost => {
                ApiError::forbidden(ErrorCode::MutedByHost, "A host has turned this off for you")
            }
            RoomError::Invalid { field, message } => ApiError::invalid_field(field, message),
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

/// A room route's call: what its path names (the room, or the room and a user) and who,
/// signed in, makes it. The path is read before the sign-in, as two extractors would be.
struct Acting<P> {
    target: P,
    by: UserId,
}

impl<P: serde::de::DeserializeOwned + 'static> FromRequest for Acting<P> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let target = web::Path::<P>::from_request(req, payload).into_inner();
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let target = target?.into_inner();
            let by = user.await?.0.user_id();
            Ok(Acting { target, by })
        })
    }
}

/// `200` with the one-field object `{ key: value }` most room routes answer.
fn answer(key: &str, value: impl Serialize) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ key: value })))
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
    #[serde(default, deserialize_with = "crate::http::whole_number")]
    max_participants: Option<i64>,
    second_language: Option<String>,
    #[serde(default)]
    mic_required: bool,
    #[serde(default)]
    no_mic: bool,
}

/// A second language: absent or `null` means none.
fn second_language(raw: Option<&str>, known: &[String]) -> Result<Option<LanguageCode>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => LanguageCode::parse(raw, known)
            .map(Some)
            .map_err(|m| ApiError::invalid_field("secondLanguage", &m)),
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
        let second_language =
            second_language(self.second_language.as_deref(), &settings.languages)?;
        Ok(NewRoom {
            title,
            topic,
            language,
            second_language,
            level,
            seats,
            mic_required: self.mic_required,
            no_mic: self.no_mic,
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
    mic_required: Option<bool>,
    sort: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
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
        mic_required: query.mic_required,
        sort: match query.sort.as_deref().map(str::trim) {
            None | Some("") | Some("newest") => LobbySort::Newest,
            Some("popular") => LobbySort::Popular,
            Some(_) => return Err(bad_query("sort", "must be newest or popular")),
        },
    };
    let limit = page_limit(query.limit)?;
    let after = match query.cursor.as_deref() {
        None => None,
        Some(raw) => Some(LobbyCursor::decode(filter.sort, raw).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidCursor,
                "The cursor is not one this server gave out for this order",
            )
        })?),
    };
    let body = rooms.lobby_page(filter, limit, after).await?;
    Ok(HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(body))
}

async fn get_room(
    rooms: web::Data<Rooms>,
    path: web::Path<RoomId>,
) -> Result<HttpResponse, ApiError> {
    let detail = rooms.get(path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(detail))
}

async fn end_room(rooms: web::Data<Rooms>, call: Acting<RoomId>) -> Result<HttpResponse, ApiError> {
    let room = rooms.end(call.target, call.by).await?;
    Ok(HttpResponse::Ok().json(room))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinResponse {
    room: super::model::RoomDetail,
    participant: super::model::ParticipantView,
}

/// `POST …/join`'s optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinRequest {
    /// The key of a locked room, from an invite link.
    room_key: Option<String>,
}

async fn join_room(
    rooms: web::Data<Rooms>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    path: web::Path<RoomId>,
    user: AuthUser,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The body is optional: none (as before locks existed) is `{}`.
    let body: JoinRequest = match body.is_empty() {
        true => JoinRequest::default(),
        false => serde_json::from_slice(&body).map_err(|e| match e.is_data() {
            true => ApiError::unprocessable(
                ErrorCode::InvalidBody,
                format!("The body does not fit: {e}"),
            ),
            false => ApiError::bad_request(ErrorCode::MalformedJson, "The body is not valid JSON"),
        })?,
    };
    limits
        .spend(Budget::JoinRoom, user.0.user_id(), limits.client_ip(&req))
        .await?;
    let key = body.room_key;
    let (room, participant) = rooms.join(path.into_inner(), user.0, key).await?;
    Ok(HttpResponse::Ok().json(JoinResponse { room, participant }))
}

async fn leave_room(
    rooms: web::Data<Rooms>,
    call: Acting<RoomId>,
) -> Result<HttpResponse, ApiError> {
    let left = rooms.leave(call.target, call.by).await?;
    Ok(HttpResponse::Ok().json(left))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KickResponse {
    kicked_user_id: UserId,
}

async fn kick_user(
    rooms: web::Data<Rooms>,
    call: Acting<(RoomId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    let (room_id, target) = call.target;
    rooms.kick(room_id, call.by, target).await?;
    Ok(HttpResponse::Ok().json(KickResponse {
        kicked_user_id: target,
    }))
}

/// `PATCH /api/rooms/:id`: every field optional; `null` clears a topic or second language.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRoomRequest {
    #[serde(default, deserialize_with = "not_null")]
    title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    topic: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    language: Option<String>,
    #[serde(default, deserialize_with = "present")]
    second_language: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    level: Option<String>,
    #[serde(default, deserialize_with = "whole_number_not_null")]
    max_participants: Option<i64>,
    #[serde(default, deserialize_with = "not_null")]
    no_mic: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    mic_required: Option<bool>,
    #[serde(default, deserialize_with = "whole_number_not_null")]
    slow_mode_secs: Option<i64>,
}

/// A field that is present (`Some`), even as `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A field that may be absent but not `null` (only the topic and second language clear).
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

fn whole_number_not_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    crate::http::whole_number(d)?
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("null is not a number"))
}

impl UpdateRoomRequest {
    fn parse(self, rooms: &Rooms) -> Result<RoomUpdate, ApiError> {
        let known = &rooms.settings().languages;
        let title = match self.title.as_deref() {
            Some(raw) => {
                Some(RoomTitle::parse(raw).map_err(|m| ApiError::invalid_field("title", m))?)
            }
            None => None,
        };
        let topic = match self.topic {
            Some(raw) => Some(
                Topic::parse(raw.as_deref().unwrap_or(""))
                    .map_err(|m| ApiError::invalid_field("topic", m))?,
            ),
            None => None,
        };
        let language = match self.language.as_deref() {
            Some(raw) => Some(
                LanguageCode::parse(raw, known)
                    .map_err(|m| ApiError::invalid_field("language", &m))?,
            ),
            None => None,
        };
        let second_language = match self.second_language {
            Some(raw) => Some(second_language(raw.as_deref(), known)?),
            None => None,
        };
        let level = match self.level.as_deref() {
            Some(raw) => Some(Level::parse(raw).map_err(|m| ApiError::invalid_field("level", &m))?),
            None => None,
        };
        let seats = match self.max_participants {
            Some(n) => Some(
                SeatLimit::parse(n).map_err(|m| ApiError::invalid_field("maxParticipants", m))?,
            ),
            None => None,
        };
        let slow_mode_secs = match self.slow_mode_secs {
            Some(n) => Some(
                i32::try_from(n)
                    .ok()
                    .filter(|n| (0..=super::moderation::MAX_SLOW_MODE_SECS).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_field("slowModeSecs", "must be between 0 and 300")
                    })?,
            ),
            None => None,
        };
        Ok(RoomUpdate {
            title,
            topic,
            language,
            second_language,
            level,
            seats,
            no_mic: self.no_mic,
            mic_required: self.mic_required,
            slow_mode_secs,
        })
    }
}

/// Reads `PATCH /api/rooms/:id`'s (and `room:update`'s) fields.
pub fn parse_update(body: serde_json::Value, rooms: &Rooms) -> Result<RoomUpdate, ApiError> {
    let request: UpdateRoomRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidBody, e.to_string()))?;
    request.parse(rooms)
}

async fn update_room(
    rooms: web::Data<Rooms>,
    call: Acting<RoomId>,
    body: web::Json<UpdateRoomRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = body.into_inner().parse(&rooms)?;
    let detail = rooms.update(call.target, call.by, change).await?;
    answer("room", detail)
}

/// A body naming one user.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRef {
    user_id: UserId,
}

async fn make_cohost(
    rooms: web::Data<Rooms>,
    call: Acting<RoomId>,
    body: web::Json<UserRef>,
) -> Result<HttpResponse, ApiError> {
    let participant = rooms
        .set_cohost(call.target, call.by, body.user_id, true)
        .await?;
    answer("participant", participant)
}

async fn unmake_cohost(
    rooms: web::Data<Rooms>,
    call: Acting<(RoomId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    let (room_id, target) = call.target;
    let participant = rooms.set_cohost(room_id, call.by, target, false).await?;
    answer("participant", participant)
}

async fn transfer_host(
    rooms: web::Data<Rooms>,
    call: Acting<RoomId>,
    body: web::Json<UserRef>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms
        .transfer_host(call.target, call.by, body.user_id)
        .await?;
    answer("room", room)
}

/// `true`: muted (camera off) and locked; `false`: the lock lifted.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HardMuteRequest {
    #[serde(default, deserialize_with = "not_null")]
    mic: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    camera: Option<bool>,
}

async fn hard_mute(
    rooms: web::Data<Rooms>,
    call: Acting<(RoomId, UserId)>,
    body: web::Json<HardMuteRequest>,
) -> Result<HttpResponse, ApiError> {
    let (room_id, target) = call.target;
    let participant = rooms
        .hard_mute(room_id, call.by, target, body.mic, body.camera)
        .await?;
    answer("participant", participant)
}

async fn mute_all(rooms: web::Data<Rooms>, call: Acting<RoomId>) -> Result<HttpResponse, ApiError> {
    let muted = rooms.mute_all(call.target, call.by).await?;
    answer("muted", muted)
}

async fn lock_room(
    rooms: web::Data<Rooms>,
    call: Acting<RoomId>,
) -> Result<HttpResponse, ApiError> {
    let key = rooms.set_lock(call.target, call.by, true).await?;
    answer("roomKey", key)
}

async fn unlock_room(
    rooms: web::Data<Rooms>,
    call: Acting<RoomId>,
) -> Result<HttpResponse, ApiError> {
    rooms.set_lock(call.target, call.by, false).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

async fn room_key(rooms: web::Data<Rooms>, call: Acting<RoomId>) -> Result<HttpResponse, ApiError> {
    let key = rooms.room_key(call.target, call.by).await?;
    answer("roomKey", key)
}
