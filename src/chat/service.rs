//! `Chat`: the message store and its rules.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{User, UserPublic};
use crate::cluster::Bus;
use crate::db::cursor::{PageCursor, split_page};
use crate::db::schema::{room_chat_messages, room_participants, users};
use crate::db::{self, DbConnection, DbError, DbPool, write_transaction};
use crate::events::DomainEvent;
use crate::ids::{RoomId, UserId};
use crate::moderation::audit::{self, AuditAction, AuditEntry};
use crate::rooms::RoomError;
use crate::rooms::domain::Role;
use crate::rooms::model::{ParticipantRow, RoomRow};
use crate::rooms::rules::seat_in_live_room;
use crate::text::{TextError, TextRule};

/// Chat text (`crate::text`: 1–1000 characters, line breaks and tabs allowed). It is text,
/// never HTML: clients must render it as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    pub const RULE: TextRule = TextRule {
        max_chars: 1000,
        multiline: true,
    };

    pub fn parse(raw: &str) -> Result<Self, TextError> {
        Self::RULE.require(raw).map(Self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("room not found")]
    RoomNotFound,
    #[error("room has ended")]
    RoomEnded,
    #[error("not a participant of this room")]
    NotParticipant,
    /// Slow mode: this person wrote less than the room's interval ago.
    #[error("slow mode: wait {retry_after_secs} s")]
    SlowMode { retry_after_secs: u64 },
    #[error("no such message in this room")]
    MessageNotFound,
    #[error("only a host, a co-host or the author may delete a message")]
    NotCohost,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ChatError {
    fn from(err: diesel::result::Error) -> Self {
        ChatError::Db(err.into())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = room_chat_messages)]
struct ChatMessageRow {
    id: String,
    room_id: String,
    user_id: String,
    message: String,
    created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageView {
    pub id: Uuid,
    pub room_id: RoomId,
    pub message: String,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    pub sender: UserPublic,
}

impl ChatMessageRow {
    fn view(&self, sender: UserPublic) -> ChatMessageView {
        ChatMessageView {
            id: Uuid::parse_str(&self.id).unwrap_or_default(),
            room_id: RoomId::from_stored(&self.room_id),
            message: self.message.clone(),
            created_at: self.created_at.and_utc(),
            sender,
        }
    }
}

/// The caller must hold a seat in a live room (the room rule), told in chat's words.
fn require_seat(
    conn: &mut DbConnection,
    room_id: RoomId,
    user_id: UserId,
) -> Result<(RoomRow, ParticipantRow), ChatError> {
    match seat_in_live_room(conn, room_id, user_id) {
        Ok(found) => Ok(found),
        Err(RoomError::NotFound) => Err(ChatError::RoomNotFound),
        Err(RoomError::Ended) => Err(ChatError::RoomEnded),
        Err(RoomError::Db(e)) => Err(ChatError::Db(e)),
        Err(_) => Err(ChatError::NotParticipant),
    }
}

/// Slow mode: records this message's time on the seat, or refuses it when the room's
/// interval has not passed since the last one. Hosts and co-hosts are exempt. One UPDATE with
/// the condition in it, so two messages sent at once cannot both pass.
fn pace(
    conn: &mut DbConnection,
    room: &RoomRow,
    seat: &ParticipantRow,
    now: NaiveDateTime,
) -> Result<(), ChatError> {
    let interval = i64::from(room.slow_mode_secs.max(0));
    let stamp = diesel::update(room_participants::table.find(&seat.id));
    if interval == 0 || Role::from_stored(&seat.role).moderates() {
        stamp
            .set(room_participants::last_chat_at.eq(now))
            .execute(conn)?;
        return Ok(());
    }
    let earliest = now - chrono::Duration::seconds(interval);
    let stamped = diesel::update(
        room_participants::table.filter(
            room_participants::id.eq(&seat.id).and(
                room_participants::last_chat_at
                    .is_null()
                    .or(room_participants::last_chat_at.le(earliest)),
            ),
        ),
    )
    .set(room_participants::last_chat_at.eq(now))
    .execute(conn)?;
    if stamped == 1 {
        return Ok(());
    }
    let last: Option<NaiveDateTime> = room_participants::table
        .find(&seat.id)
        .select(room_participants::last_chat_at)
        .first(conn)?;
    Err(ChatError::SlowMode {
        retry_after_secs: retry_after(last, interval, now),
    })
}

/// Whole seconds until `interval` has passed since `last` (at least 1).
fn retry_after(last: Option<NaiveDateTime>, interval: i64, now: NaiveDateTime) -> u64 {
    let Some(last) = last else { return 1 };
    let wait_ms = (last + chrono::Duration::seconds(interval) - now).num_milliseconds();
    u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1)
}

#[derive(Clone)]
pub struct Chat {
    pool: DbPool,
    bus: Arc<dyn Bus<DomainEvent>>,
}

impl Chat {
    pub fn new(pool: DbPool, bus: Arc<dyn Bus<DomainEvent>>) -> Self {
        Self { pool, bus }
    }

    /// Stores the message, then publishes it to the room.
    pub async fn post(
        &self,
        room_id: RoomId,
        sender: User,
        text: ChatText,
    ) -> Result<ChatMessageView, ChatError> {
        let sender_id = sender.user_id();
        let view = db::run(&self.pool, move |conn| {
            let row = ChatMessageRow {
                id: Uuid::new_v4().to_string(),
                room_id: room_id.to_string(),
                user_id: sender.id.clone(),
                message: text.0,
                created_at: db::now(),
            };
            write_transaction(conn, |conn| {
                let (room, seat) = require_seat(conn, room_id, sender_id)?;
                pace(conn, &room, &seat, row.created_at)?;
                diesel::insert_into(room_chat_messages::table)
                    .values(&row)
                    .execute(conn)?;
                Ok::<_, ChatError>(())
            })?;
            Ok::<_, ChatError>(row.view(sender.public()))
        })
        .await?;
        self.bus
            .publish(DomainEvent::ChatMessagePosted {
                message: view.clone(),
            })
            .await;
        Ok(view)
    }

    /// Deletes a message of the room: its author may, and so may the room's hosts and
    /// co-hosts (audited with the text). The room hears `chat:deleted`.
    pub async fn delete(
        &self,
        room_id: RoomId,
        actor_id: UserId,
        message_id: Uuid,
    ) -> Result<(), ChatError> {
        db::run(&self.pool, move |conn| {
            write_transaction(conn, |conn| {
                let (_, seat) = require_seat(conn, room_id, actor_id)?;
                let message: ChatMessageRow = room_chat_messages::table
                    .find(message_id.to_string())
                    .filter(room_chat_messages::room_id.eq(room_id.to_string()))
                    .select(ChatMessageRow::as_select())
                    .first(conn)
                    .optional()?
                    .ok_or(ChatError::MessageNotFound)?;
                let author = UserId::from_stored(&message.user_id);
                if author != actor_id && !Role::from_stored(&seat.role).moderates() {
                    return Err(ChatError::NotCohost);
                }
                diesel::delete(room_chat_messages::table.find(&message.id)).execute(conn)?;
                let entry = AuditEntry::new(Some(actor_id), AuditAction::DeleteMessage)
                    .target(author)
                    .room(room_id)
                    .details(serde_json::json!({
                        "messageId": message.id,
                        "message": message.message,
                        "sentAt": crate::timestamp::format(&message.created_at.and_utc()),
                    }));
                audit::record(conn, &entry)?;
                Ok(())
            })
        })
        .await?;
        self.bus
            .publish(DomainEvent::ChatMessageDeleted {
                room_id,
                message_id,
            })
            .await;
        Ok(())
    }

    /// One page of the room's messages, newest first, for someone seated in it.
    pub async fn history(
        &self,
        room_id: RoomId,
        reader_id: UserId,
        limit: i64,
        after: Option<PageCursor>,
    ) -> Result<(Vec<ChatMessageView>, Option<PageCursor>), ChatError> {
        db::run(&self.pool, move |conn| {
            require_seat(conn, room_id, reader_id)?;
            let room_id = room_id.to_string();
            let mut query = room_chat_messages::table
                .inner_join(users::table)
                .filter(room_chat_messages::room_id.eq(&room_id))
                .select((ChatMessageRow::as_select(), User::as_select()))
                .into_boxed();
            if let Some(cursor) = &after {
                query = query.filter(
                    room_chat_messages::created_at
                        .lt(cursor.at)
                        .or(room_chat_messages::created_at
                            .eq(cursor.at)
                            .and(room_chat_messages::id.lt(cursor.id.clone()))),
                );
            }
            let rows: Vec<(ChatMessageRow, User)> = query
                .order((
                    room_chat_messages::created_at.desc(),
                    room_chat_messages::id.desc(),
                ))
                .limit(limit + 1)
                .load(conn)?;
            let (rows, next) = split_page(rows, limit, |(m, _)| PageCursor {
                at: m.created_at,
                id: m.id.clone(),
            });
            let views = rows.iter().map(|(m, u)| m.view(u.public())).collect();
            Ok((views, next))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_trimmed_and_bounded() {
        assert_eq!(ChatText::parse("  xin chào  ").unwrap().0, "xin chào");
        assert!(ChatText::parse(" \n ").is_err());
        assert!(ChatText::parse(&"á".repeat(1000)).is_ok());
        assert!(ChatText::parse(&"a".repeat(1001)).is_err());
        assert!(ChatText::parse("line one\nline two").is_ok());
        assert!(ChatText::parse("bell\u{7}").is_err());
    }

    #[test]
    fn slow_mode_rounds_the_wait_up() {
        let now = db::now();
        let at = |ms: i64| Some(now - chrono::Duration::milliseconds(ms));
        assert_eq!(retry_after(at(0), 10, now), 10);
        assert_eq!(retry_after(at(500), 10, now), 10);
        assert_eq!(retry_after(at(9_001), 10, now), 1);
        assert_eq!(retry_after(at(20_000), 10, now), 1);
        assert_eq!(retry_after(None, 10, now), 1);
    }
}
