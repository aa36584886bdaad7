//! `/api/admin/*`: what instance admins (`[moderation] admins`) see and do: live rooms,
//! reports, bans, the audit log. Everyone else is refused `NOT_ADMIN`.

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit;
use super::bans::{self, BanError, NewBan};
use super::reports::{self, ReportFilter};
use crate::auth::{Accounts, AuthUser};
use crate::db::schema::rooms;
use crate::db::{self, DbConnection, DbError};
use crate::error::{ApiError, ErrorCode};
use crate::events::DomainEvent;
use crate::http::{allow, page_cursor, page_limit};
use crate::ids::{RoomId, UserId};
use crate::rooms::domain::RoomStatus;
use crate::rooms::model::RoomRow;
use crate::rooms::{RoomDetail, Rooms, queries};
use crate::state::AppState;
use crate::text::TextRule;

/// A ban's reason: up to 500 characters, line breaks allowed.
pub const REASON: TextRule = TextRule {
    max_chars: 500,
    multiline: true,
};
/// The longest ban: ten years (longer is "for good": leave `durationSecs` out).
const MAX_BAN_SECS: i64 = 10 * 365 * 24 * 3600;
/// Live rooms shown at once.
const MAX_ROOMS: i64 = 500;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/rooms")
            .route(web::get().to(list_rooms))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/admin/rooms/{room_id}")
            .route(web::delete().to(end_room))
            .default_service(allow("DELETE")),
    )
    .service(
        web::resource("/admin/reports")
            .route(web::get().to(list_reports))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/admin/reports/{report_id}/resolve")
            .route(web::post().to(resolve_report))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/admin/bans")
            .route(web::get().to(list_bans))
            .route(web::post().to(ban))
            .default_service(allow("GET, POST")),
    )
    .service(
        web::resource("/admin/bans/{user_id}")
            .route(web::delete().to(unban))
            .default_service(allow("DELETE")),
    )
    .service(
        web::resource("/admin/audit")
            .route(web::get().to(list_audit))
            .default_service(allow("GET")),
    );
}

/// The signed-in admin's id, or `NOT_ADMIN`.
fn admin(accounts: &Accounts, user: &AuthUser) -> Result<UserId, ApiError> {
    if accounts.is_admin(&user.0) {
        Ok(user.0.user_id())
    } else {
        Err(ApiError::forbidden(
            ErrorCode::NotAdmin,
            "Only an admin of this server may do this",
        ))
    }
}

impl From<BanError> for ApiError {
    fn from(err: BanError) -> Self {
        match err {
            BanError::UserNotFound => ApiError::not_found(ErrorCode::NotFound, "No such user"),
            BanError::TargetIsAdmin => {
                ApiError::unprocessable(ErrorCode::InvalidTarget, "An admin cannot be banned")
            }
            BanError::SelfBan => {
                ApiError::unprocessable(ErrorCode::InvalidTarget, "You cannot ban yourself")
            }
            BanError::NotBanned => {
                ApiError::not_found(ErrorCode::NotFound, "That user is not banned")
            }
            BanError::Db(e) => e.into(),
        }
    }
}

/// A live room as admins see it: the room, its people with their roles, open reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRoom {
    pub room: RoomDetail,
    pub open_reports: i64,
}

/// Every live room, newest first, with its people and its open reports.
pub fn live_rooms(conn: &mut DbConnection) -> Result<Vec<AdminRoom>, DbError> {
    let rows: Vec<RoomRow> = rooms::table
        .filter(rooms::status.eq(RoomStatus::Live.as_str()))
        .order((rooms::created_at.desc(), rooms::id.desc()))
        .limit(MAX_ROOMS)
        .select(RoomRow::as_select())
        .load(conn)?;
    let ids: Vec<RoomId> = rows.iter().map(RoomRow::room_id).collect();
    let counts = reports::open_counts(conn, &ids)?;
    Ok(queries::details(conn, &rows)?
        .into_iter()
        .map(|detail| AdminRoom {
            open_reports: counts.get(&detail.room.id).copied().unwrap_or(0),
            room: detail,
        })
        .collect())
}

async fn list_rooms(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    admin(&state.accounts, &user)?;
    let rooms = db::run(&state.pool, live_rooms).await?;
    Ok(HttpResponse::Ok().json(json!({ "rooms": rooms })))
}

async fn end_room(
    state: web::Data<AppState>,
    rooms: web::Data<Rooms>,
    path: web::Path<RoomId>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&state.accounts, &user)?;
    let room = rooms.end_by_admin(path.into_inner(), Some(actor)).await?;
    Ok(HttpResponse::Ok().json(json!({ "room": room })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportsQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// `true`: unresolved reports only.
    open: Option<bool>,
}

async fn list_reports(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ReportsQuery>,
) -> Result<HttpResponse, ApiError> {
    admin(&state.accounts, &user)?;
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let after = page_cursor(query.cursor.as_deref())?;
    let filter = if query.open.unwrap_or(false) {
        ReportFilter::Open
    } else {
        ReportFilter::All
    };
    let (reports, next) = db::run(&state.pool, move |conn| {
        reports::list(conn, filter, limit, after).map_err(DbError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "reports": reports,
        "nextCursor": next.map(|c| c.encode()),
    })))
}

async fn resolve_report(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&state.accounts, &user)?;
    let report_id = path.into_inner();
    let report = db::run(&state.pool, move |conn| {
        reports::resolve(conn, report_id, Some(actor))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "report": report })))
}

async fn list_bans(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    admin(&state.accounts, &user)?;
    let bans = db::run(&state.pool, bans::list).await?;
    Ok(HttpResponse::Ok().json(json!({ "bans": bans })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BanRequest {
    user_id: UserId,
    reason: Option<String>,
    #[serde(default, deserialize_with = "crate::http::whole_number")]
    duration_secs: Option<i64>,
}

impl BanRequest {
    fn parse(self, actor: UserId) -> Result<NewBan, ApiError> {
        let reason = match self.reason.as_deref() {
            Some(raw) => REASON
                .clean(raw)
                .map_err(|m| ApiError::invalid_field("reason", m))?,
            None => String::new(),
        };
        let reason = Some(reason).filter(|r| !r.is_empty());
        if let Some(secs) = self.duration_secs {
            if !(1..=MAX_BAN_SECS).contains(&secs) {
                return Err(ApiError::invalid_field(
                    "durationSecs",
                    "must be 1 to 315360000 seconds (leave it out to ban for good)",
                ));
            }
        }
        Ok(NewBan {
            actor: Some(actor),
            target: self.user_id,
            reason,
            duration_secs: self.duration_secs,
        })
    }
}

async fn ban(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<BanRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&state.accounts, &user)?;
    let new = body.into_inner().parse(actor)?;
    let admins = state.accounts.bans().admins().clone();
    let ban = db::run(&state.pool, move |conn| bans::ban(conn, &admins, new)).await?;
    let event = DomainEvent::UserBanned {
        user_id: ban.user_id,
        reason: ban.reason.clone(),
        until: ban.until,
    };
    // This replica refuses the token before the answer leaves; the others on the event.
    state.accounts.bans().apply(&event);
    state.bus.publish(event).await;
    tracing::info!(user_id = %ban.user_id, admin = %actor, "user banned");
    Ok(HttpResponse::Created().json(json!({ "ban": ban })))
}

async fn unban(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&state.accounts, &user)?;
    let target = path.into_inner();
    db::run(&state.pool, move |conn| {
        bans::unban(conn, Some(actor), target)
    })
    .await?;
    let event = DomainEvent::UserUnbanned { user_id: target };
    state.accounts.bans().apply(&event);
    state.bus.publish(event).await;
    tracing::info!(user_id = %target, admin = %actor, "user unbanned");
    Ok(HttpResponse::Ok().json(json!({})))
}

async fn list_audit(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    admin(&state.accounts, &user)?;
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let after = page_cursor(query.cursor.as_deref())?;
    let (entries, next) = db::run(&state.pool, move |conn| {
        audit::list(conn, limit, after.as_ref()).map_err(DbError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "entries": entries,
        "nextCursor": next.map(|c| c.encode()),
    })))
}
