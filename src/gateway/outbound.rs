//! Domain events → Socket.IO events: which Socket.IO rooms hear what, with which payload.
//! Translation only; what else an event changes (presence, media, membership) is `seats`'s.
//! Emitted to this node's sockets only (`local`): in a cluster every replica receives every
//! bus event and tells its own sockets.

use serde_json::{Value, json};

use super::kit::{LOBBY, room_room, user_room};
use crate::events::DomainEvent;
use crate::realtime::{EmitError, SocketIo};
use crate::rooms::RoomView;
use crate::rooms::rules::SeatChange;

/// One Socket.IO event to the sockets in any of `to`.
#[derive(Debug, PartialEq)]
pub struct Emission {
    pub to: Vec<String>,
    pub name: &'static str,
    pub body: Value,
}

fn emission(to: impl Into<Vec<String>>, name: &'static str, body: Value) -> Emission {
    Emission {
        to: to.into(),
        name,
        body,
    }
}

/// `room:list-update {action, room}` to every socket.
pub fn lobby_update(action: &'static str, room: &RoomView) -> Emission {
    emission(
        [LOBBY.to_owned()],
        "room:list-update",
        json!({ "action": action, "room": room }),
    )
}

/// What the browsers hear of `event`.
pub fn translate(event: &DomainEvent) -> Vec<Emission> {
    match event {
        DomainEvent::RoomCreated { room } => vec![lobby_update("created", room)],
        DomainEvent::RoomUpdated { room } => vec![lobby_update("updated", room)],
        DomainEvent::RoomEnded { room, reason } => vec![
            lobby_update("ended", room),
            emission(
                [room_room(room.id)],
                "room:ended",
                json!({ "roomId": room.id, "reason": reason }),
            ),
        ],
        DomainEvent::ParticipantJoined {
            room_id,
            participant,
        } => {
            let user = json!({
                "id": participant.user_id,
                "username": participant.username,
                "displayName": participant.display_name,
                "isGuest": participant.is_guest,
            });
            vec![emission(
                [room_room(*room_id)],
                "room:user-joined",
                json!({ "roomId": room_id, "user": user, "participant": participant }),
            )]
        }
        DomainEvent::ParticipantLeft {
            room_id,
            user_id,
            new_host_id,
        } => vec![emission(
            [room_room(*room_id)],
            "room:user-left",
            json!({ "roomId": room_id, "userId": user_id, "newHostId": new_host_id }),
        )],
        DomainEvent::ParticipantKicked { room_id, user_id } => vec![emission(
            [room_room(*room_id), user_room(*user_id)],
            "room:user-kicked",
            json!({ "roomId": room_id, "userId": user_id }),
        )],
        DomainEvent::SeatChanged {
            room_id,
            user_id,
            change,
        } => {
            let (name, body) = match change {
                SeatChange::Mic { muted } => (
                    "media:user-muted",
                    json!({ "roomId": room_id, "userId": user_id, "isMuted": muted }),
                ),
                SeatChange::Camera { off } => (
                    "media:user-video",
                    json!({ "roomId": room_id, "userId": user_id, "isVideoOff": off }),
                ),
                SeatChange::Hand { raised: true } => (
                    "hand:raised",
                    json!({ "roomId": room_id, "userId": user_id }),
                ),
                SeatChange::Hand { raised: false } => (
                    "hand:lowered",
                    json!({ "roomId": room_id, "userId": user_id }),
                ),
            };
            vec![emission([room_room(*room_id)], name, body)]
        }
        DomainEvent::ParticipantUpdated {
            room_id,
            participant,
        } => vec![emission(
            [room_room(*room_id)],
            "room:participant-updated",
            json!({ "roomId": room_id, "participant": participant }),
        )],
        DomainEvent::ChatMessagePosted { message } => vec![emission(
            [room_room(message.room_id)],
            "chat:message",
            json!({ "roomId": message.room_id, "message": message, "sender": message.sender }),
        )],
        DomainEvent::ChatMessageDeleted {
            room_id,
            message_id,
        } => vec![emission(
            [room_room(*room_id)],
            "chat:deleted",
            json!({ "roomId": room_id, "messageId": message_id }),
        )],
        DomainEvent::UserBanned {
            user_id,
            reason,
            until,
        } => vec![emission(
            [user_room(*user_id)],
            "session:banned",
            json!({ "reason": reason, "until": until }),
        )],
        DomainEvent::UserUnbanned { .. } => Vec::new(),
    }
}

/// Sends each emission to this node's sockets.
pub async fn emit(io: &SocketIo, emissions: Vec<Emission>) -> Result<(), EmitError> {
    emit_except(io, emissions, None).await
}

/// Sends each emission to this node's sockets, but not to those in `except`.
pub async fn emit_except(
    io: &SocketIo,
    emissions: Vec<Emission>,
    except: Option<&str>,
) -> Result<(), EmitError> {
    for Emission { to, name, body } in emissions {
        let mut rooms = to.into_iter();
        let Some(first) = rooms.next() else { continue };
        let mut operator = rooms.fold(io.to(first), |op, room| op.to(room));
        if let Some(except) = except {
            operator = operator.except(except.to_owned());
        }
        operator.local().emit(name, &body).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RoomId, UserId};

    #[test]
    fn a_kick_is_told_to_the_room_and_to_every_tab_of_the_kicked() {
        let (room_id, user_id) = (RoomId::random(), UserId::random());
        let out = translate(&DomainEvent::ParticipantKicked { room_id, user_id });
        assert_eq!(
            out,
            vec![Emission {
                to: vec![format!("room:{room_id}"), format!("user:{user_id}")],
                name: "room:user-kicked",
                body: json!({ "roomId": room_id, "userId": user_id }),
            }]
        );
    }

    #[test]
    fn a_changed_seat_goes_to_the_room_whole() {
        let room_id = RoomId::random();
        let participant: crate::rooms::ParticipantView = serde_json::from_value(json!({
            "userId": UserId::random(), "displayName": "Ann", "username": null,
            "isGuest": true, "role": "COHOST", "isMuted": true, "isVideoOff": false,
            "handRaised": false, "joinedAt": "2026-01-01T00:00:00Z",
            "micLocked": true, "cameraLocked": false,
        }))
        .unwrap();
        let out = translate(&DomainEvent::ParticipantUpdated {
            room_id,
            participant: participant.clone(),
        });
        assert_eq!(
            out,
            vec![Emission {
                to: vec![format!("room:{room_id}")],
                name: "room:participant-updated",
                body: json!({ "roomId": room_id, "participant": participant }),
            }]
        );
    }

    #[test]
    fn a_deleted_message_is_told_to_the_room() {
        let (room_id, message_id) = (RoomId::random(), uuid::Uuid::new_v4());
        let out = translate(&DomainEvent::ChatMessageDeleted {
            room_id,
            message_id,
        });
        assert_eq!(
            out,
            vec![Emission {
                to: vec![format!("room:{room_id}")],
                name: "chat:deleted",
                body: json!({ "roomId": room_id, "messageId": message_id }),
            }]
        );
    }

    #[test]
    fn a_ban_is_told_to_every_tab_of_the_banned_only() {
        let user_id = UserId::random();
        let out = translate(&DomainEvent::UserBanned {
            user_id,
            reason: Some("spam".into()),
            until: None,
        });
        assert_eq!(
            out,
            vec![Emission {
                to: vec![format!("user:{user_id}")],
                name: "session:banned",
                body: json!({ "reason": "spam", "until": null }),
            }]
        );
        assert!(translate(&DomainEvent::UserUnbanned { user_id }).is_empty());
    }

    #[test]
    fn a_lowered_hand_names_the_seat() {
        let (room_id, user_id) = (RoomId::random(), UserId::random());
        let out = translate(&DomainEvent::SeatChanged {
            room_id,
            user_id,
            change: SeatChange::Hand { raised: false },
        });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "hand:lowered");
        assert_eq!(out[0].to, vec![format!("room:{room_id}")]);
    }
}
