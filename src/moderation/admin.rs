//! `/api/admin/*`: what instance admins (`[moderation] admins`) see and do: live rooms,
//! reports, bans, the audit log. Everyone else is refused `NOT_ADMIN`.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::audit::{self, AuditAction, AuditEntry};
use super::bans::{self, BanError, NewBan};
use crate::auth::{Accounts, AuthUser};
use crate::db::cursor::PageCursor;
use crate::db::schema::{reports, rooms};
use crate::db::{self, DbConnection, DbError, write_transaction};
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
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let counts: HashMap<String, i64> = reports::table
        .filter(reports::room_id.eq_any(&ids))
        .filter(reports::resolved_at.is_null())
        .group_by(reports::room_id)
        .select((reports::room_id, diesel::dsl::count_star()))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    Ok(queries::details(conn, &rows)?
        .into_iter()
        .map(|detail| AdminRoom {
            open_reports: counts
                .get(&detail.room.id.to_string())
                .copied()
                .unwrap_or(0),
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

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reports)]
struct ReportRow {
    id: String,
    room_id: String,
    reporter_id: String,
    reported_id: String,
    reason: String,
    message: Option<String>,
    evidence: String,
    created_at: NaiveDateTime,
    resolved_at: Option<NaiveDateTime>,
    resolved_by: Option<String>,
}

/// A report as admins see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminReport {
    id: String,
    room_id: RoomId,
    reporter_id: UserId,
    reported_id: UserId,
    reason: String,
    message: Option<String>,
    /// The room's last chat lines when the report was made.
    evidence: Value,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<UserId>,
}

impl From<ReportRow> for AdminReport {
    fn from(row: ReportRow) -> Self {
        Self {
            room_id: RoomId::from_stored(&row.room_id),
            reporter_id: UserId::from_stored(&row.reporter_id),
            reported_id: UserId::from_stored(&row.reported_id),
            reason: row.reason,
            message: row.message,
            evidence: serde_json::from_str(&row.evidence).unwrap_or(Value::Null),
            created_at: row.created_at.and_utc(),
            resolved_at: row.resolved_at.map(|t| t.and_utc()),
            resolved_by: row.resolved_by.as_deref().map(UserId::from_stored),
            id: row.id,
        }
    }
}

/// One page of reports, newest first; `open` keeps the unresolved ones only.
pub fn list_reports_page(
    conn: &mut DbConnection,
    open: bool,
    limit: i64,
    after: Option<&PageCursor>,
) -> Result<(Vec<AdminReport>, Option<PageCursor>), DbError> {
    let mut query = reports::table
        .select(ReportRow::as_select())
        .order((reports::created_at.desc(), reports::id.desc()))
        .limit(limit + 1)
        .into_boxed();
    if open {
        query = query.filter(reports::resolved_at.is_null());
    }
    if let Some(cursor) = after {
        query = query.filter(
            reports::created_at.lt(cursor.at).or(reports::created_at
                .eq(cursor.at)
                .and(reports::id.lt(cursor.id.clone()))),
        );
    }
    let mut rows = query.load(conn)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| PageCursor {
            at: r.created_at,
            id: r.id.clone(),
        })
    } else {
        None
    };
    Ok((rows.into_iter().map(AdminReport::from).collect(), next))
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
    let open = query.open.unwrap_or(false);
    let (reports, next) = db::run(&state.pool, move |conn| {
        list_reports_page(conn, open, limit, after.as_ref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "reports": reports,
        "nextCursor": next.map(|c| c.encode()),
    })))
}

/// Marks a report resolved (again is harmless: the first resolution stands).
pub fn resolve(
    conn: &mut DbConnection,
    actor: Option<UserId>,
    report_id: uuid::Uuid,
) -> Result<Option<AdminReport>, DbError> {
    write_transaction(conn, |conn| {
        let key = report_id.to_string();
        let Some(row) = reports::table
            .find(&key)
            .select(ReportRow::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        if row.resolved_at.is_some() {
            return Ok(Some(row.into()));
        }
        diesel::update(reports::table.find(&key))
            .set((
                reports::resolved_at.eq(Some(db::now())),
                reports::resolved_by.eq(actor.map(|a| a.to_string())),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            &AuditEntry::new(actor, AuditAction::ResolveReport)
                .target(UserId::from_stored(&row.reported_id))
                .room(RoomId::from_stored(&row.room_id))
                .details(json!({ "reportId": key })),
        )?;
        let row = reports::table
            .find(&key)
            .select(ReportRow::as_select())
            .first(conn)?;
        Ok(Some(row.into()))
    })
}

async fn resolve_report(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin(&state.accounts, &user)?;
    let report_id = path.into_inner();
    let report = db::run(&state.pool, move |conn| {
        resolve(conn, Some(actor), report_id)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(ErrorCode::NotFound, "No such report"))?;
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
