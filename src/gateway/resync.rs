//! After the link to the other replicas comes back (cluster mode, Redis away): their events
//! were lost meanwhile, and the shared caches and presence may be gone too (a Redis restart
//! without persistence). This replica tells its lobby sockets every live room (as `updated`)
//! and every room it had announced that ended meanwhile (as `ended`), restores the caches,
//! and, one presence period later (when every replica has announced its sockets again), puts
//! the seats of live rooms back on the grace clock. One process never loses its link, so
//! there this waits forever.

use std::collections::HashSet;

use actix_web::web;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::outbound::{self, lobby_update};
use super::seats;
use crate::events::DomainEvent;
use crate::ids::RoomId;
use crate::rooms::{RoomError, RoomView};
use crate::state::AppState;

pub async fn resync_after_outages(state: web::Data<AppState>, shutdown: CancellationToken) {
    let mut reconnections = state.mode.reconnections();
    let mut seen = *reconnections.borrow_and_update();
    let mut events = state.bus.subscribe();
    // Rooms this replica's lobby sockets may be showing.
    let mut announced: HashSet<RoomId> = match live_rooms(&state).await {
        Ok(rooms) => rooms.iter().map(|r| r.id).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the live rooms");
            HashSet::new()
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(event) => match &*event {
                    DomainEvent::RoomCreated { room } | DomainEvent::RoomUpdated { room } => {
                        announced.insert(room.id);
                    }
                    DomainEvent::RoomEnded { room, .. } => {
                        announced.remove(&room.id);
                    }
                    _ => {}
                },
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            changed = reconnections.changed() => {
                if changed.is_err() {
                    return;
                }
                let epoch = *reconnections.borrow_and_update();
                if epoch > seen {
                    seen = epoch;
                    match resync_lobby(&state, &announced).await {
                        Ok(live) => announced = live,
                        Err(e) => tracing::warn!(error = %e, "lobby not resynchronised after the outage"),
                    }
                }
            }
        }
    }
}

async fn live_rooms(state: &AppState) -> Result<Vec<RoomView>, RoomError> {
    state.rooms.live_from_db().await
}

async fn resync_lobby(
    state: &web::Data<AppState>,
    announced: &HashSet<RoomId>,
) -> Result<HashSet<RoomId>, RoomError> {
    let rooms = live_rooms(state).await?;
    let live: HashSet<RoomId> = rooms.iter().map(|r| r.id).collect();
    let mut updates = Vec::new();
    for gone in announced.difference(&live) {
        if let Ok(detail) = state.rooms.get(*gone).await {
            updates.push(lobby_update("ended", &detail.room));
        }
    }
    updates.extend(rooms.iter().map(|room| lobby_update("updated", room)));
    if let Err(e) = outbound::emit(&state.io, updates).await {
        tracing::warn!(error = %e, "lobby updates not sent after the outage");
    }
    state.mode.restore_caches(&rooms).await;
    tracing::info!(
        live = rooms.len(),
        ended = announced.difference(&live).count(),
        "the link to the other replicas is back: lobby resynchronised"
    );
    let state = state.clone();
    let wait = state.mode.presence_period();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        seats::clock_every_seat(&state).await;
    });
    Ok(live)
}
