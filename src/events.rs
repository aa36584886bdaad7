//! Domain events: what happened to rooms, seats and chat, published on the `Bus` after the
//! change is committed. The realtime layer turns them into Socket.IO events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{RoomId, UserId};

use crate::chat::ChatMessageView;
use crate::rooms::rules::SeatChange;
use crate::rooms::{ParticipantView, RoomView};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum DomainEvent {
    RoomCreated {
        room: RoomView,
    },
    /// Seats taken or freed, host changed.
    RoomUpdated {
        room: RoomView,
    },
    RoomEnded {
        room: RoomView,
        reason: EndReason,
    },
    ParticipantJoined {
        room_id: RoomId,
        participant: ParticipantView,
    },
    ParticipantLeft {
        room_id: RoomId,
        user_id: UserId,
        new_host_id: Option<UserId>,
    },
    ParticipantKicked {
        room_id: RoomId,
        user_id: UserId,
    },
    /// Mic, camera or raised hand of a seat.
    SeatChanged {
        room_id: RoomId,
        user_id: UserId,
        change: SeatChange,
    },
    ChatMessagePosted {
        message: ChatMessageView,
    },
    /// A seat's role or hard-mute locks changed: the whole view, clients replace theirs.
    ParticipantUpdated {
        room_id: RoomId,
        participant: ParticipantView,
    },
    /// A host, co-host or the author deleted a chat message.
    ChatMessageDeleted {
        room_id: RoomId,
        message_id: Uuid,
    },
    /// An admin banned the user: every replica tells and closes the user's sockets, frees
    /// their seats, and refuses their token from now on.
    UserBanned {
        user_id: UserId,
        reason: Option<String>,
        #[serde(with = "crate::timestamp::option")]
        until: Option<DateTime<Utc>>,
    },
    UserUnbanned {
        user_id: UserId,
    },
}

impl DomainEvent {
    /// The room whose seats this event takes, frees or ends (not a chat line or a lobby
    /// update): the gateway delivers these in order with that room's joins.
    pub fn seats_of(&self) -> Option<RoomId> {
        match self {
            DomainEvent::RoomCreated { room } | DomainEvent::RoomEnded { room, .. } => {
                Some(room.id)
            }
            DomainEvent::ParticipantJoined { room_id, .. }
            | DomainEvent::ParticipantLeft { room_id, .. }
            | DomainEvent::ParticipantKicked { room_id, .. } => Some(*room_id),
            DomainEvent::RoomUpdated { .. }
            | DomainEvent::SeatChanged { .. }
            | DomainEvent::ParticipantUpdated { .. }
            | DomainEvent::ChatMessagePosted { .. }
            | DomainEvent::ChatMessageDeleted { .. }
            | DomainEvent::UserBanned { .. }
            | DomainEvent::UserUnbanned { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The last participant left.
    LastLeft,
    /// The host ended the room.
    HostEnded,
}
