//! The audit log: who did what to whom, where and when, for every moderation action. Written
//! in the same transaction as the action itself, so an action and its line stand or fall
//! together; read by admins (REST and `talkconnect admin`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

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
