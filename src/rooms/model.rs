//! Room and seat rows, and the views clients get of them.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::domain::{Level, Role, RoomStatus};
use crate::auth::UserPublic;
use crate::db::schema::{room_participants, rooms};
use crate::ids::{RoomId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rooms)]
pub struct RoomRow {
    pub id: String,
    pub title: String,
    pub topic: Option<String>,
    pub topic_key: Option<String>,
    pub search_text: String,
    pub language: String,
    pub level: String,
    pub max_participants: i32,
    pub participant_count: i32,
    pub status: String,
    pub host_id: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub second_language: Option<String>,
    pub mic_required: bool,
    /// Listen-and-chat: nobody's microphone is forwarded.
    pub no_mic: bool,
    /// `Some`: locked; only this key (in invite links) lets new people in. Never sent to
    /// anyone but the room's hosts.
    pub lock_key: Option<String>,
    /// 0: off; else one chat message per this many seconds per person.
    pub slow_mode_secs: i32,
}

impl RoomRow {
    pub fn is_live(&self) -> bool {
        self.status == RoomStatus::Live.as_str()
    }

    pub fn room_id(&self) -> RoomId {
        RoomId::from_stored(&self.id)
    }

    pub fn host(&self) -> UserId {
        UserId::from_stored(&self.host_id)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = room_participants)]
pub struct ParticipantRow {
    pub id: String,
    pub room_id: String,
    pub user_id: String,
    pub role: String,
    pub is_muted: bool,
    pub is_video_off: bool,
    pub hand_raised: bool,
    pub is_kicked: bool,
    pub joined_at: NaiveDateTime,
    pub left_at: Option<NaiveDateTime>,
    /// Muted by a host: only a host or co-host may lift it.
    pub mic_locked: bool,
    /// Camera stopped by a host: only a host or co-host may lift it.
    pub camera_locked: bool,
    /// When this person last sent a chat message here (slow mode).
    pub last_chat_at: Option<NaiveDateTime>,
}

impl ParticipantRow {
    pub fn is_active(&self) -> bool {
        self.left_at.is_none() && !self.is_kicked
    }

    pub fn role(&self) -> Role {
        Role::from_stored(&self.role)
    }

    pub fn user(&self) -> UserId {
        UserId::from_stored(&self.user_id)
    }
}

/// A room as the lobby shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub id: RoomId,
    pub title: String,
    pub topic: Option<String>,
    pub language: String,
    pub level: Level,
    pub max_participants: i32,
    pub participant_count: i32,
    pub status: RoomStatus,
    pub host: UserPublic,
    /// Who is inside, longest-present first.
    pub members: Vec<UserPublic>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    /// Changes with every seat taken or freed: clients keep the newest view of a room.
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp::option")]
    pub ended_at: Option<DateTime<Utc>>,
    /// New people need the room key (the key itself is never in a view).
    #[serde(default)]
    pub is_locked: bool,
    #[serde(default)]
    pub second_language: Option<String>,
    #[serde(default)]
    pub mic_required: bool,
    /// Listen-and-chat: nobody's microphone is forwarded.
    #[serde(default)]
    pub no_mic: bool,
    /// 0: off; else one chat message per this many seconds per person.
    #[serde(default)]
    pub slow_mode_secs: i32,
}

/// One seat as the room page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    pub user_id: UserId,
    pub display_name: String,
    pub username: Option<String>,
    pub is_guest: bool,
    pub role: Role,
    pub is_muted: bool,
    pub is_video_off: bool,
    pub hand_raised: bool,
    #[serde(with = "crate::timestamp")]
    pub joined_at: DateTime<Utc>,
    /// Muted by a host or co-host: the person cannot unmute.
    #[serde(default)]
    pub mic_locked: bool,
    /// Camera stopped by a host or co-host: the person cannot start it.
    #[serde(default)]
    pub camera_locked: bool,
}

impl ParticipantView {
    pub fn new(row: &ParticipantRow, user: &UserPublic) -> Self {
        Self {
            user_id: user.id,
            display_name: user.display_name.clone(),
            username: user.username.clone(),
            is_guest: user.is_guest,
            role: Role::from_stored(&row.role),
            is_muted: row.is_muted,
            is_video_off: row.is_video_off,
            hand_raised: row.hand_raised,
            joined_at: row.joined_at.and_utc(),
            mic_locked: row.mic_locked,
            camera_locked: row.camera_locked,
        }
    }
}

/// A room with its seats, for `GET /api/rooms/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDetail {
    #[serde(flatten)]
    pub room: RoomView,
    pub participants: Vec<ParticipantView>,
}
