//! The product's live layer, on top of the Socket.IO library: authenticates sockets with the
//! REST JWT, maps client events onto the room, chat and media services (one table, below),
//! turns domain events from the `Bus` into Socket.IO events, and keeps seats and the sockets
//! holding them in step (presence grace period).
//!
//! Socket.IO rooms used here: `lobby` (every socket: lobby updates), `user:<id>` (every tab
//! of a user), `room:<id>` (sockets inside a room).

mod bans;
mod kit;
mod media;
mod moderation;
mod outbound;
mod resync;
mod rooms;
mod seats;

use std::sync::Arc;

use actix_web::web;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use self::kit::{LOBBY, SeatLock, SocketUser, on, user_room};
use crate::auth::{AccountError, TokenError};
use crate::error::ErrorCode;
use crate::http::Budget;
use crate::realtime::{ConnectError, SocketRef};
use crate::sfu::ClientSignal;
use crate::state::AppState;

/// Wires the gateway onto the state's Socket.IO server and starts its background work, which
/// stops with `shutdown`.
pub fn install(state: web::Data<AppState>, shutdown: CancellationToken) {
    let connect_state = state.clone();
    state.io.ns("/", move |socket, auth| {
        let state = connect_state.clone();
        async move { on_connect(state, socket, auth).await }
    });
    tokio::spawn(relay_domain_events(state.clone(), shutdown.clone()));
    tokio::spawn(resync::resync_after_outages(
        state.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(bans::watch(state.clone(), shutdown.clone()));
    tokio::spawn(seats::release_unattended_seats(state, shutdown));
}

async fn on_connect(
    state: web::Data<AppState>,
    socket: SocketRef,
    auth: Value,
) -> Result<(), ConnectError> {
    let token = auth
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        if state.settings.realtime.allow_anonymous_lobby {
            socket.join(LOBBY).await;
            register(&state, &socket);
            return Ok(());
        }
        return Err(ConnectError::new(ErrorCode::Unauthenticated.as_str()));
    };
    let user = state
        .accounts
        .authenticate(token)
        .await
        .map_err(|e| match e {
            AccountError::Token(TokenError::Expired) => {
                ConnectError::new(ErrorCode::TokenExpired.as_str())
            }
            AccountError::Token(TokenError::Invalid) | AccountError::AccountGone => {
                ConnectError::new(ErrorCode::InvalidToken.as_str())
            }
            AccountError::Banned(_) => ConnectError::new(ErrorCode::Banned.as_str()),
            other => {
                tracing::warn!(error = %other, "socket authentication failed");
                ConnectError::new(ErrorCode::ServiceUnavailable.as_str())
            }
        })?;
    let user_id = user.user_id();
    socket.extensions().insert(SocketUser(Arc::new(user)));
    socket.extensions().insert(SeatLock::default());
    socket
        .join_all([LOBBY.to_owned(), user_room(user_id)])
        .await;
    register(&state, &socket);
    tracing::debug!(sid = %socket.id(), %user_id, "socket signed in");
    Ok(())
}

/// Registers each `"event" => handler` on `socket` with one rate `budget`.
macro_rules! on_each {
    ($state:expr, $socket:expr, $budget:expr, { $($event:literal => $handler:expr),+ $(,)? }) => {
        $(on($state, $socket, $event, $budget, $handler);)+
    };
}

/// Every client event, its rate budget and its handler.
fn register(state: &web::Data<AppState>, socket: &SocketRef) {
    on(state, socket, "room:join", Budget::JoinRoom, rooms::join);
    on_each!(state, socket, Budget::Event, {
        "room:leave" => rooms::leave,
        "room:kick" => rooms::kick,
        "room:end" => rooms::end,
        "room:cohost" => rooms::cohost,
        "room:transfer-host" => rooms::transfer_host,
        "room:hard-mute" => rooms::hard_mute,
        "room:mute-all" => rooms::mute_all,
        "room:lock" => rooms::lock,
        "room:update" => rooms::update,
    });
    on(
        state,
        socket,
        "chat:message",
        Budget::Chat,
        rooms::chat_message,
    );
    on_each!(state, socket, Budget::Event, {
        "chat:delete" => moderation::chat_delete,
        // The report budget is spent by the report itself (REST and socket alike).
        "room:report" => moderation::report,
        "media:toggle-mic" => rooms::toggle_mic,
        "media:toggle-video" => rooms::toggle_video,
        "hand:raise" => rooms::raise_hand,
        "hand:lower" => rooms::lower_hand,
        "sfu:join" => media::sfu_join,
        "sfu:leave" => media::sfu_leave,
        "sfu:resume" => media::sfu_resume,
        "conn:ping" => ping,
        "sfu:prefs" => media::sfu_prefs,
    });
    for event in ClientSignal::EVENT_NAMES {
        on(state, socket, event, Budget::Event, move |call| {
            media::sfu_signal(call, event)
        });
    }
    for event in media::RELAY_EVENTS {
        on(state, socket, event, Budget::Event, move |call| {
            media::relay(call, event)
        });
    }
    let state = state.clone();
    socket.on_disconnect(move |socket, reason| seats::socket_gone(state.clone(), socket, reason));
}

/// `conn:ping`: answered at once. A page whose network changed asks it to learn whether its
/// socket still reaches the server (a dead one is replaced at once, not after the ping
/// timeout).
async fn ping(_call: kit::Call<Value>) -> Result<Value, crate::error::ApiError> {
    Ok(Value::Object(Default::default()))
}

/// Turns what the services publish into what the browsers hear, and what else it changes.
async fn relay_domain_events(state: web::Data<AppState>, shutdown: CancellationToken) {
    let mut events = state.bus.subscribe();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => seats::deliver(&state, &event).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the gateway fell behind the bus; events were lost");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
