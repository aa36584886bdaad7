//! `Chat`: the message store and its rules.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{User, UserPublic};
use crate::cluster::Bus;
use crate::db::cursor::PageCursor;
use crate::db::schema::{room_chat_messages, users};
use crate::db::{self, DbConnection, DbError, DbPool, write_transaction};
use crate::events::DomainEvent;
use crate::ids::{RoomId, UserId};
use crate::rooms::RoomError;
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
) -> Result<(), ChatError> {
    match seat_in_live_room(conn, room_id, user_id) {
        Ok(_) => Ok(()),
        Err(RoomError::NotFound) => Err(ChatError::RoomNotFound),
        Err(RoomError::Ended) => Err(ChatError::RoomEnded),
        Err(RoomError::Db(e)) => Err(ChatError::Db(e)),
        Err(_) => Err(ChatError::NotParticipant),
    }
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
                require_seat(conn, room_id, sender_id)?;
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
            let mut rows: Vec<(ChatMessageRow, User)> = query
                .order((
                    room_chat_messages::created_at.desc(),
                    room_chat_messages::id.desc(),
                ))
                .limit(limit + 1)
                .load(conn)?;
            let next = if rows.len() as i64 > limit {
                rows.truncate(limit as usize);
                rows.last().map(|(m, _)| PageCursor {
                    at: m.created_at,
                    id: m.id.clone(),
                })
            } else {
                None
            };
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
}
