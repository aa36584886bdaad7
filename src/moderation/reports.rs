//! Reports: someone seated in a room reports a person who holds or held a seat there. The
//! report keeps the room's last chat lines as evidence; admins page through reports and
//! resolve them (`list`, `resolve`, called by the admin endpoints).
//! `POST /api/rooms/:id/reports` here; `room:report` in the gateway.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::{AuthUser, UserPublic};
use crate::db::cursor::{PageCursor, split_page};
use crate::db::schema::{reports, room_chat_messages, room_participants, rooms, users};
use crate::db::{self, DbConnection, DbError, write_transaction};
use crate::error::{ApiError, ErrorCode};
use crate::http::{Budget, allow};
use crate::ids::{RoomId, UserId};
use crate::moderation::audit::{self, AuditAction, AuditEntry};
use crate::rooms::RoomError;
use crate::rooms::rules::seat_in_live_room;
use crate::state::AppState;
use crate::text::TextRule;

/// How many of the room's last chat lines a report keeps.
pub const EVIDENCE_LINES: i64 = 20;

/// The reporter's own words: up to 500 characters, line breaks allowed.
pub const MESSAGE_RULE: TextRule = TextRule {
    max_chars: 500,
    multiline: true,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/rooms/{room_id}/reports")
            .route(web::post().to(post_report))
            .default_service(allow("POST")),
    );
}

/// Why someone is reported.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReportReason {
    Spam,
    Harassment,
    Hate,
    Sexual,
    Underage,
    Other,
}

impl ReportReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("room not found")]
    RoomNotFound,
    #[error("room has ended")]
    RoomEnded,
    #[error("the reporter is not seated in the room")]
    NotParticipant,
    #[error("cannot report yourself")]
    SelfReport,
    #[error("the reported user never had a seat in the room")]
    ParticipantNotFound,
    #[error("no such report")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ReportError {
    fn from(err: diesel::result::Error) -> Self {
        ReportError::Db(err.into())
    }
}

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> Self {
        match err {
            ReportError::RoomNotFound => {
                ApiError::not_found(ErrorCode::RoomNotFound, "No such room")
            }
            ReportError::RoomEnded => {
                ApiError::conflict(ErrorCode::RoomEnded, "This room has ended")
            }
            ReportError::NotParticipant => ApiError::forbidden(
                ErrorCode::NotAParticipant,
                "Only people in the room can report someone in it",
            ),
            ReportError::SelfReport => {
                ApiError::unprocessable(ErrorCode::InvalidTarget, "You cannot report yourself")
            }
            ReportError::ParticipantNotFound => ApiError::not_found(
                ErrorCode::ParticipantNotFound,
                "That user has never been in this room",
            ),
            ReportError::NotFound => ApiError::not_found(ErrorCode::NotFound, "No such report"),
            ReportError::Db(e) => e.into(),
        }
    }
}

/// A report as filed: checked input.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub room_id: RoomId,
    pub reporter: UserId,
    pub reported: UserId,
    pub reason: ReportReason,
    pub message: Option<String>,
}

/// The body of `POST /api/rooms/:id/reports` and of `room:report` (with `roomId`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRequest {
    pub user_id: UserId,
    pub reason: String,
    pub message: Option<String>,
}

impl ReportRequest {
    /// Checks the reason and the message (`VALIDATION_FAILED` naming the field).
    pub fn parse(self, room_id: RoomId, reporter: UserId) -> Result<NewReport, ApiError> {
        let reason = self.reason.parse::<ReportReason>().map_err(|_| {
            ApiError::invalid_field(
                "reason",
                "must be one of spam, harassment, hate, sexual, underage, other",
            )
        })?;
        let message = match self.message.as_deref() {
            None => None,
            Some(raw) => {
                let text = MESSAGE_RULE
                    .clean(raw)
                    .map_err(|m| ApiError::invalid_field("message", m))?;
                (!text.is_empty()).then_some(text)
            }
        };
        Ok(NewReport {
            room_id,
            reporter,
            reported: self.user_id,
            reason,
            message,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
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

/// A report as the reporter and admins see it. `reporter`/`reported` are `null` when that
/// account is gone (purged guests); the ids stay. `roomTitle` likewise.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportView {
    pub id: Uuid,
    pub room_id: RoomId,
    pub room_title: Option<String>,
    pub reporter_id: UserId,
    pub reporter: Option<UserPublic>,
    pub reported_id: UserId,
    pub reported: Option<UserPublic>,
    pub reason: ReportReason,
    pub message: Option<String>,
    /// The room's last chat lines when filed, oldest first:
    /// `[{id, userId, displayName, message, createdAt}]`.
    pub evidence: Value,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp::option")]
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<UserId>,
}

/// Files a report: the reporter holds a seat in the live room, the reported user holds or
/// held one and is someone else. Audited in the same transaction.
pub fn file(conn: &mut DbConnection, new: NewReport) -> Result<ReportView, ReportError> {
    if new.reporter == new.reported {
        return Err(ReportError::SelfReport);
    }
    write_transaction(conn, |conn| {
        match seat_in_live_room(conn, new.room_id, new.reporter) {
            Ok(_) => {}
            Err(RoomError::NotFound) => return Err(ReportError::RoomNotFound),
            Err(RoomError::Ended) => return Err(ReportError::RoomEnded),
            Err(RoomError::Db(e)) => return Err(ReportError::Db(e)),
            Err(_) => return Err(ReportError::NotParticipant),
        }
        let had_seat: i64 = room_participants::table
            .filter(room_participants::room_id.eq(new.room_id.to_string()))
            .filter(room_participants::user_id.eq(new.reported.to_string()))
            .count()
            .get_result(conn)?;
        if had_seat == 0 {
            return Err(ReportError::ParticipantNotFound);
        }
        let row = ReportRow {
            id: Uuid::new_v4().to_string(),
            room_id: new.room_id.to_string(),
            reporter_id: new.reporter.to_string(),
            reported_id: new.reported.to_string(),
            reason: new.reason.as_str().to_owned(),
            message: new.message.clone(),
            evidence: evidence(conn, new.room_id)?.to_string(),
            created_at: db::now(),
            resolved_at: None,
            resolved_by: None,
        };
        diesel::insert_into(reports::table)
            .values(&row)
            .execute(conn)?;
        let entry = AuditEntry::new(Some(new.reporter), AuditAction::Report)
            .target(new.reported)
            .room(new.room_id)
            .details(json!({ "reportId": row.id, "reason": row.reason }));
        audit::record(conn, &entry)?;
        Ok(views(conn, vec![row])?.remove(0))
    })
}

/// The room's last chat lines, oldest first.
fn evidence(conn: &mut DbConnection, room_id: RoomId) -> QueryResult<Value> {
    let mut lines: Vec<(String, String, String, NaiveDateTime, String)> = room_chat_messages::table
        .inner_join(users::table)
        .filter(room_chat_messages::room_id.eq(room_id.to_string()))
        .order((
            room_chat_messages::created_at.desc(),
            room_chat_messages::id.desc(),
        ))
        .limit(EVIDENCE_LINES)
        .select((
            room_chat_messages::id,
            room_chat_messages::user_id,
            room_chat_messages::message,
            room_chat_messages::created_at,
            users::display_name,
        ))
        .load(conn)?;
    lines.reverse();
    Ok(Value::Array(
        lines
            .into_iter()
            .map(|(id, user_id, message, at, display_name)| {
                json!({
                    "id": id,
                    "userId": user_id,
                    "displayName": display_name,
                    "message": message,
                    "createdAt": crate::timestamp::format(&at.and_utc()),
                })
            })
            .collect(),
    ))
}

/// Rows → views, with the people and room titles that still exist.
fn views(conn: &mut DbConnection, rows: Vec<ReportRow>) -> QueryResult<Vec<ReportView>> {
    let people = crate::auth::users::public_by_ids(
        conn,
        rows.iter()
            .flat_map(|r| [r.reporter_id.as_str(), r.reported_id.as_str()]),
    )?;
    let mut room_ids: Vec<&str> = rows.iter().map(|r| r.room_id.as_str()).collect();
    room_ids.sort_unstable();
    room_ids.dedup();
    let titles: HashMap<String, String> = rooms::table
        .filter(rooms::id.eq_any(&room_ids))
        .select((rooms::id, rooms::title))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| ReportView {
            id: Uuid::parse_str(&r.id).unwrap_or_default(),
            room_id: RoomId::from_stored(&r.room_id),
            room_title: titles.get(&r.room_id).cloned(),
            reporter_id: UserId::from_stored(&r.reporter_id),
            reporter: people.get(&r.reporter_id).cloned(),
            reported_id: UserId::from_stored(&r.reported_id),
            reported: people.get(&r.reported_id).cloned(),
            reason: r.reason.parse().unwrap_or(ReportReason::Other),
            message: r.message,
            evidence: serde_json::from_str(&r.evidence).unwrap_or(Value::Array(Vec::new())),
            created_at: r.created_at.and_utc(),
            resolved_at: r.resolved_at.map(|at| at.and_utc()),
            resolved_by: r.resolved_by.as_deref().map(UserId::from_stored),
        })
        .collect())
}

/// Which reports `list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFilter {
    /// Not resolved yet.
    Open,
    All,
}

/// One page of reports, newest first (`limit` 1–100; `after`: the cursor the previous page
/// gave). Returns the page and the cursor of the next one.
pub fn list(
    conn: &mut DbConnection,
    filter: ReportFilter,
    limit: i64,
    after: Option<PageCursor>,
) -> QueryResult<(Vec<ReportView>, Option<PageCursor>)> {
    let mut query = reports::table.select(ReportRow::as_select()).into_boxed();
    if filter == ReportFilter::Open {
        query = query.filter(reports::resolved_at.is_null());
    }
    if let Some(cursor) = &after {
        query = query.filter(
            reports::created_at.lt(cursor.at).or(reports::created_at
                .eq(cursor.at)
                .and(reports::id.lt(cursor.id.clone()))),
        );
    }
    let rows: Vec<ReportRow> = query
        .order((reports::created_at.desc(), reports::id.desc()))
        .limit(limit + 1)
        .load(conn)?;
    let (rows, next) = split_page(rows, limit, |r| PageCursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    Ok((views(conn, rows)?, next))
}

/// How many reports are open, per room (for the admin's room list).
pub fn open_counts(
    conn: &mut DbConnection,
    room_ids: &[RoomId],
) -> QueryResult<HashMap<RoomId, i64>> {
    let ids: Vec<String> = room_ids.iter().map(ToString::to_string).collect();
    let counts: Vec<(String, i64)> = reports::table
        .filter(reports::room_id.eq_any(&ids))
        .filter(reports::resolved_at.is_null())
        .group_by(reports::room_id)
        .select((reports::room_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(counts
        .into_iter()
        .map(|(id, n)| (RoomId::from_stored(&id), n))
        .collect())
}

/// Marks a report resolved by `admin` (`None`: the command line), audited. Resolving it again
/// changes nothing and writes no second line.
pub fn resolve(
    conn: &mut DbConnection,
    report_id: Uuid,
    admin: Option<UserId>,
) -> Result<ReportView, ReportError> {
    write_transaction(conn, |conn| {
        let mut row: ReportRow = reports::table
            .find(report_id.to_string())
            .select(ReportRow::as_select())
            .first(conn)
            .optional()?
            .ok_or(ReportError::NotFound)?;
        if row.resolved_at.is_none() {
            let now = db::now();
            diesel::update(reports::table.find(&row.id))
                .set((
                    reports::resolved_at.eq(now),
                    reports::resolved_by.eq(admin.map(|a| a.to_string())),
                ))
                .execute(conn)?;
            row.resolved_at = Some(now);
            row.resolved_by = admin.map(|a| a.to_string());
            let entry = AuditEntry::new(admin, AuditAction::ResolveReport)
                .target(UserId::from_stored(&row.reported_id))
                .room(RoomId::from_stored(&row.room_id))
                .details(json!({ "reportId": row.id }));
            audit::record(conn, &entry)?;
        }
        Ok(views(conn, vec![row])?.remove(0))
    })
}

/// Files a report for the REST handler and the socket event alike: spends the reporter's
/// report budget first.
pub async fn file_report(
    state: &AppState,
    room_id: RoomId,
    reporter: UserId,
    body: ReportRequest,
) -> Result<ReportView, ApiError> {
    let new = body.parse(room_id, reporter)?;
    state.limits.spend(Budget::Report, reporter, None).await?;
    let report = db::run(&state.pool, move |conn| file(conn, new)).await?;
    Ok(report)
}

async fn post_report(
    state: web::Data<AppState>,
    path: web::Path<RoomId>,
    user: AuthUser,
    body: web::Json<ReportRequest>,
) -> Result<HttpResponse, ApiError> {
    let report = file_report(
        &state,
        path.into_inner(),
        user.0.user_id(),
        body.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({ "report": report })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(reason: &str, message: Option<&str>) -> ReportRequest {
        ReportRequest {
            user_id: UserId::random(),
            reason: reason.to_owned(),
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn reasons_and_messages_are_checked() {
        let (room, me) = (RoomId::random(), UserId::random());
        let ok = request("underage", Some("  seems twelve  "))
            .parse(room, me)
            .unwrap();
        assert_eq!(ok.reason, ReportReason::Underage);
        assert_eq!(ok.message.as_deref(), Some("seems twelve"));
        assert_eq!(
            request("spam", Some("   "))
                .parse(room, me)
                .unwrap()
                .message,
            None
        );
        assert!(request("Spam ", None).parse(room, me).is_err());
        assert!(request("rude", None).parse(room, me).is_err());
        assert!(
            request("spam", Some(&"x".repeat(501)))
                .parse(room, me)
                .is_err()
        );
        assert!(request("spam", Some("a\u{200B}b")).parse(room, me).is_err());
        assert_eq!(ReportReason::Harassment.as_str(), "harassment");
    }
}
