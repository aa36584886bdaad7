//! Bans on this node's sockets: a banned user's tabs hear `session:banned {reason, until}`
//! and are disconnected, and their seats are freed by the rooms' leave rule (so host
//! hand-over and room end happen as for any leave). Every replica does this for its own
//! sockets, on the Bus event `userBanned` or, for bans it did not hear of (the command
//! line), when its ban view re-reads the table. Two replicas freeing one seat is harmless:
//! the leave rule's transaction lets one of them do it.

use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::kit::user_room;
use crate::db::schema::{room_participants, rooms};
use crate::db::{self, DbError};
use crate::ids::{RoomId, UserId};
use crate::moderation::bans::{BanNotice, REFRESH_SECS};
use crate::rooms::RoomError;
use crate::rooms::domain::RoomStatus;
use crate::state::AppState;

/// Closes the user's sockets on this node and frees their seats.
pub async fn banned(state: &AppState, user_id: UserId) {
    if let Err(e) = state
        .io
        .in_(user_room(user_id))
        .local()
        .disconnect_sockets()
        .await
    {
        tracing::warn!(%user_id, error = %e, "a banned user's sockets were not closed");
    }
    let seats = db::run(&state.pool, move |conn| {
        let ids: Vec<String> = room_participants::table
            .inner_join(rooms::table)
            .filter(room_participants::user_id.eq(user_id.to_string()))
            .filter(room_participants::left_at.is_null())
            .filter(room_participants::is_kicked.eq(false))
            .filter(rooms::status.eq(RoomStatus::Live.as_str()))
            .select(room_participants::room_id)
            .load(conn)?;
        Ok::<_, DbError>(ids)
    })
    .await;
    let seats = match seats {
        Ok(seats) => seats,
        Err(e) => {
            tracing::warn!(%user_id, error = %e, "a banned user's seats were not looked up");
            return;
        }
    };
    for room_id in seats.iter().map(|id| RoomId::from_stored(id)) {
        match state.rooms.leave(room_id, user_id).await {
            Ok(_) | Err(RoomError::NotInRoom | RoomError::NotFound | RoomError::Ended) => {}
            Err(e) => {
                tracing::warn!(%room_id, %user_id, error = %e, "a banned user's seat was not freed")
            }
        }
    }
}

/// Re-reads the bans every few seconds (expiries, other replicas' and the command line's
/// bans), and acts on the bans this node had not heard of.
pub async fn watch(state: web::Data<AppState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(REFRESH_SECS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.accounts.bans().refresh().await {
            Ok(new) => {
                for (user_id, notice) in new {
                    tell(&state, user_id, &notice).await;
                    banned(&state, user_id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "bans not re-read"),
        }
    }
}

async fn tell(state: &AppState, user_id: UserId, notice: &BanNotice) {
    let body = json!({ "reason": notice.reason, "until": notice.until });
    if let Err(e) = state
        .io
        .to(user_room(user_id))
        .local()
        .emit("session:banned", &body)
        .await
    {
        tracing::warn!(%user_id, error = %e, "session:banned not sent");
    }
}
