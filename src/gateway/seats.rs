//! Seats and the sockets that hold them: a socket entering and leaving a room, what a domain
//! event changes besides what the browsers hear (presence, the SFU, Socket.IO membership), a
//! socket going away, and the grace clock that releases seats nobody holds a connection to.

use std::time::Duration;

use actix_web::web;
use tokio_util::sync::CancellationToken;

use super::kit::{Call, InRoom, SocketUser, room_room, user_room};
use super::outbound;
use crate::db;
use crate::error::{ApiError, ErrorCode};
use crate::events::DomainEvent;
use crate::ids::{RoomId, UserId};
use crate::realtime::{BroadcastOperator, CloseReason, DisconnectReason, SocketRef};
use crate::rooms::RoomError;
use crate::rooms::rules::SeatChange;
use crate::sfu::MediaKind;
use crate::state::AppState;

/// Puts the socket inside the room (leaving the one it was in) and holds the seat for it.
/// The socket may have gone while the seat was being taken: then everything is undone and the
/// seat stays on the grace clock, as if its owner had closed the tab.
pub async fn enter_room<T>(call: &Call<T>, room_id: RoomId) -> Result<(), ApiError> {
    let socket = &call.socket;
    let user_id = call.user_id();
    if let Some(InRoom(previous)) = socket.extensions().insert(InRoom(room_id)) {
        if previous != room_id {
            socket.leave(room_room(previous)).await;
            call.state
                .presence
                .socket_left(previous, user_id, &call.socket_id())
                .await;
        }
    }
    socket.join(room_room(room_id)).await;
    call.state
        .presence
        .socket_entered(room_id, user_id, &call.socket_id())
        .await;
    // The mark above is set before presence counts the socket, and the disconnect handler
    // reads the mark: whichever runs last, the socket is not left counted.
    if !socket.connected() {
        exit_room(call, room_id).await;
        return Err(ApiError::conflict(
            ErrorCode::NotInRoom,
            "The connection closed while joining",
        ));
    }
    Ok(())
}

/// Takes the socket out of the room; the seat goes on the clock if no other socket holds it.
pub async fn exit_room<T>(call: &Call<T>, room_id: RoomId) {
    let socket = &call.socket;
    let was_inside = socket
        .extensions()
        .with(|r: &mut InRoom| r.0 == room_id)
        .unwrap_or(false);
    if was_inside {
        socket.extensions().remove::<InRoom>();
    }
    socket.leave(room_room(room_id)).await;
    call.state
        .presence
        .socket_left(room_id, call.user_id(), &call.socket_id())
        .await;
}

/// A socket disconnected: its seat goes on the clock, and its media session closes, at once
/// if the socket closed cleanly, or after the resume grace if it vanished (its page may come
/// back on a new socket and take the session over, `sfu:resume`).
pub async fn socket_gone(state: web::Data<AppState>, socket: SocketRef, reason: DisconnectReason) {
    let (Some(SocketUser(user)), Some(InRoom(room_id))) = (
        socket.extensions().get::<SocketUser>(),
        socket.extensions().get::<InRoom>(),
    ) else {
        return;
    };
    let socket_id = socket.id().to_string();
    let media = &state.media;
    if vanished(reason) {
        media
            .socket_vanished(room_id, user.user_id(), &socket_id)
            .await;
    } else {
        media
            .leave_session(room_id, user.user_id(), &socket_id)
            .await;
    }
    let left = state
        .presence
        .socket_left(room_id, user.user_id(), &socket_id)
        .await;
    tracing::debug!(%room_id, user_id = %user.id, reason = reason.as_str(), sockets_left = left, "socket gone");
}

/// The socket's network went away (no pong, a broken transport), rather than its page
/// closing it.
fn vanished(reason: DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::Transport(CloseReason::PingTimeout | CloseReason::TransportError)
    )
}

/// Delivers one domain event on this node: what the browsers hear, then what else it
/// changes. An event about a room waits for the room's turn (`RoomLocks`), so it never lands
/// in the middle of a join on this node.
pub async fn deliver(state: &AppState, event: &DomainEvent) {
    let _room_turn = match event.seats_of() {
        Some(room_id) => Some(state.room_locks.lock(room_id).await),
        None => None,
    };
    let emissions = outbound::translate(event);
    if let DomainEvent::ParticipantLeft {
        room_id, user_id, ..
    } = event
    {
        if seated_again(state, *room_id, *user_id).await {
            // The seat was taken again after this leave (a join overtook the event): the
            // room hears both, the user's tabs stay inside.
            let except = user_room(*user_id);
            if let Err(e) = outbound::emit_except(&state.io, emissions, Some(&except)).await {
                tracing::warn!(error = %e, "a domain event was not delivered");
            }
            return;
        }
    }
    if let Err(e) = outbound::emit(&state.io, emissions).await {
        tracing::warn!(error = %e, "a domain event was not delivered");
    }
    react(state, event).await;
}

/// Does the user hold the seat now (the database's word)?
async fn seated_again(state: &AppState, room_id: RoomId, user_id: UserId) -> bool {
    match state.rooms.require_seat(room_id, user_id).await {
        Ok(()) => true,
        Err(RoomError::NotInRoom | RoomError::NotFound | RoomError::Ended | RoomError::Kicked) => {
            false
        }
        Err(e) => {
            tracing::warn!(%room_id, %user_id, error = %e, "seat not checked; the leave stands");
            false
        }
    }
}

/// What a domain event changes on this node besides what the browsers hear: seats to watch,
/// sockets to take out of a room, media sessions to close.
async fn react(state: &AppState, event: &DomainEvent) {
    match event {
        // The creator holds the first seat and must connect to keep it.
        DomainEvent::RoomCreated { room } => state.presence.seat_taken(room.id, room.host.id).await,
        DomainEvent::ParticipantJoined {
            room_id,
            participant,
        } => {
            state
                .presence
                .seat_taken(*room_id, participant.user_id)
                .await;
        }
        DomainEvent::RoomEnded { room, .. } => {
            let inside = room_room(room.id);
            forget_room_on_sockets(state, state.io.in_(inside.clone()), room.id).await;
            if let Err(e) = state
                .io
                .in_(inside.clone())
                .local()
                .sockets_leave(inside)
                .await
            {
                tracing::warn!(room_id = %room.id, error = %e, "sockets not taken out of an ended room");
            }
            state.presence.room_ended(room.id).await;
            state.media.room_gone(room.id).await;
        }
        DomainEvent::ParticipantLeft {
            room_id, user_id, ..
        } => {
            remove_user_from_room(state, *room_id, *user_id).await;
            state.media.seat_gone(*room_id, *user_id, false).await;
        }
        DomainEvent::ParticipantKicked { room_id, user_id } => {
            remove_user_from_room(state, *room_id, *user_id).await;
            state.media.seat_gone(*room_id, *user_id, true).await;
        }
        // A hard mute, `mute-all` or a `noMic` room: the SFU that serves the seat stops
        // forwarding at once, whatever the browser does.
        DomainEvent::ParticipantUpdated {
            room_id,
            participant,
        } => {
            let user = participant.user_id;
            if participant.mic_locked {
                state
                    .media
                    .mute_here(*room_id, user, MediaKind::Audio)
                    .await;
            }
            if participant.camera_locked {
                state
                    .media
                    .mute_here(*room_id, user, MediaKind::Video)
                    .await;
            }
        }
        DomainEvent::SeatChanged {
            room_id,
            user_id,
            change,
        } => match change {
            SeatChange::Mic { muted: true } => {
                state
                    .media
                    .mute_here(*room_id, *user_id, MediaKind::Audio)
                    .await;
            }
            SeatChange::Camera { off: true } => {
                state
                    .media
                    .mute_here(*room_id, *user_id, MediaKind::Video)
                    .await;
            }
            _ => {}
        },
        DomainEvent::UserBanned { user_id, .. } => {
            state.accounts.bans().apply(event);
            super::bans::banned(state, *user_id).await;
        }
        DomainEvent::UserUnbanned { .. } => {
            state.accounts.bans().apply(event);
        }
        DomainEvent::RoomUpdated { .. }
        | DomainEvent::ChatMessagePosted { .. }
        | DomainEvent::ChatMessageDeleted { .. } => {}
    }
}

/// Every tab of the user leaves the room's Socket.IO room; the seat is forgotten.
async fn remove_user_from_room(state: &AppState, room_id: RoomId, user_id: UserId) {
    let io = &state.io;
    forget_room_on_sockets(state, io.in_(user_room(user_id)), room_id).await;
    if let Err(e) = io
        .in_(user_room(user_id))
        .local()
        .sockets_leave(room_room(room_id))
        .await
    {
        tracing::warn!(%room_id, %user_id, error = %e, "sockets not taken out of the room");
    }
    state.presence.seat_freed(room_id, user_id).await;
}

/// Clears the `InRoom` mark of this node's sockets that were inside `room_id`.
async fn forget_room_on_sockets(state: &AppState, selection: BroadcastOperator, room_id: RoomId) {
    let Ok(sockets) = selection.local().fetch_sockets().await else {
        return;
    };
    for info in sockets {
        if let Some(socket) = state.io.socket(&info.nsp, info.id) {
            let inside = socket
                .extensions()
                .with(|r: &mut InRoom| r.0 == room_id)
                .unwrap_or(false);
            if inside {
                socket.extensions().remove::<InRoom>();
            }
        }
    }
}

/// Puts every seat of a live room on the grace clock: whoever does not come back within it
/// loses the seat.
pub async fn clock_every_seat(state: &AppState) {
    match db::run(
        &state.pool,
        crate::rooms::queries::active_seats_of_live_rooms,
    )
    .await
    {
        Ok(seats) => {
            for (room_id, user_id) in seats {
                state.presence.seat_taken(room_id, user_id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "seats not put on the clock"),
    }
}

/// Releases seats nobody has held a connection to for the grace period. At start, every
/// seat of a live room is put on the clock: after a restart, people who come back within
/// the grace period keep their seats, the others are released.
pub async fn release_unattended_seats(state: web::Data<AppState>, shutdown: CancellationToken) {
    let grace = Duration::from_secs(state.settings.realtime.seat_grace_secs);
    clock_every_seat(&state).await;
    let mut tick =
        tokio::time::interval(Duration::from_secs(1).min(grace.max(Duration::from_millis(100))));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (room_id, user_id) in state.presence.take_expired(grace).await {
            // Not while a socket of this node is stepping into the seat; and if one stepped
            // in since the clock ran out, the seat is held again.
            let _room_turn = state.room_locks.lock(room_id).await;
            if state.presence.held_here(room_id, user_id) {
                tracing::debug!(%room_id, %user_id, "seat held again just in time");
                continue;
            }
            match state.rooms.leave(room_id, user_id).await {
                Ok(left) => {
                    tracing::info!(%room_id, %user_id, room_ended = left.room_ended, "seat released: nobody connected")
                }
                Err(RoomError::NotInRoom | RoomError::NotFound) => {}
                Err(e) => {
                    tracing::warn!(%room_id, %user_id, error = %e, "could not release a seat")
                }
            }
        }
    }
}
