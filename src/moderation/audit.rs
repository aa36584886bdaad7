//! The audit log: who did what to whom, where and when, for every moderation action. Written
//! in the same transaction as the action itself, so an action and its line stand or fall
//! together; read by admins (REST and `talkconnect admin`).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::auth::UserPublic;
use crate::auth::users;
use crate::db::cursor::{PageCursor, split_page};
use crate::db::schema::audit_log;
use crate::db::{self, DbConnection};
use crate::ids::{RoomId, UserId};

/// What was done, as stored in `audit_log.action` and shown to admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    Kick,
    EndRoom,
    MakeCohost,
    RemoveCohost,
    TransferHost,
    HardMute,
    LiftMute,
    MuteAll,
    LockRoom,
    UnlockRoom,
    UpdateRoom,
    DeleteMessage,
    SlowMode,
    Report,
    ResolveReport,
    Ban,
    Unban,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One line to write. `actor` is `None` for the command line.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: Option<UserId>,
    pub action: AuditAction,
    pub target: Option<UserId>,
    pub room: Option<RoomId>,
    /// A JSON object: whatever else the action needs to be understood later.
    pub details: Value,
}

impl AuditEntry {
    pub fn new(actor: Option<UserId>, action: AuditAction) -> Self {
        Self {
            actor,
            action,
            target: None,
            room: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, user: UserId) -> Self {
        self.target = Some(user);
        self
    }

    pub fn room(mut self, room: RoomId) -> Self {
        self.room = Some(room);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_user_id: Option<String>,
    pub room_id: Option<String>,
    pub details: String,
    pub created_at: NaiveDateTime,
}

/// Writes one line; call it inside the action's own transaction.
pub fn record(conn: &mut DbConnection, entry: &AuditEntry) -> QueryResult<()> {
    let row = AuditRow {
        id: uuid::Uuid::new_v4().to_string(),
        actor_id: entry.actor.map(|u| u.to_string()),
        action: entry.action.as_str().to_owned(),
        target_user_id: entry.target.map(|u| u.to_string()),
        room_id: entry.room.map(|r| r.to_string()),
        details: entry.details.to_string(),
        created_at: db::now(),
    };
    diesel::insert_into(audit_log::table)
        .values(&row)
        .execute(conn)
        .map(|_| ())
}

/// A line as admins see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub id: String,
    /// `None`: the command line.
    pub actor_id: Option<UserId>,
    pub action: String,
    pub target_user_id: Option<UserId>,
    /// Who acted and on whom, while those accounts exist.
    pub actor: Option<UserPublic>,
    pub target: Option<UserPublic>,
    pub room_id: Option<RoomId>,
    pub details: Value,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
}

impl AuditView {
    fn new(row: AuditRow, people: &HashMap<String, UserPublic>) -> Self {
        let named = |id: &Option<String>| id.as_ref().and_then(|id| people.get(id)).cloned();
        Self {
            actor: named(&row.actor_id),
            target: named(&row.target_user_id),
            actor_id: row.actor_id.as_deref().map(UserId::from_stored),
            action: row.action,
            target_user_id: row.target_user_id.as_deref().map(UserId::from_stored),
            room_id: row.room_id.as_deref().map(RoomId::from_stored),
            details: serde_json::from_str(&row.details).unwrap_or(Value::Null),
            created_at: row.created_at.and_utc(),
            id: row.id,
        }
    }
}

/// One page of the log, newest first, and the cursor of the next page if there is one.
pub fn list(
    conn: &mut DbConnection,
    limit: i64,
    after: Option<&PageCursor>,
) -> QueryResult<(Vec<AuditView>, Option<PageCursor>)> {
    let mut query = audit_log::table
        .select(AuditRow::as_select())
        .order((audit_log::created_at.desc(), audit_log::id.desc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some(cursor) = after {
        query = query.filter(
            audit_log::created_at.lt(cursor.at).or(audit_log::created_at
                .eq(cursor.at)
                .and(audit_log::id.lt(cursor.id.clone()))),
        );
    }
    let (rows, next) = split_page(query.load(conn)?, limit, |r: &AuditRow| PageCursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    let people = users::public_by_ids(
        conn,
        rows.iter()
            .flat_map(|r| [r.actor_id.as_deref(), r.target_user_id.as_deref()])
            .flatten(),
    )?;
    let views = rows
        .into_iter()
        .map(|r| AuditView::new(r, &people))
        .collect();
    Ok((views, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_stored_in_snake_case() {
        assert_eq!(AuditAction::MakeCohost.as_str(), "make_cohost");
        assert_eq!(
            "delete_message".parse::<AuditAction>().unwrap(),
            AuditAction::DeleteMessage
        );
    }
}
