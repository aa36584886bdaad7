//! The gateway's event kit: `on` registers one client event (user, rate limit, payload,
//! ack), `Call` is what a handler gets, `answer` writes the ack, and the marks a socket
//! carries (`SocketUser`, `InRoom`) and the Socket.IO room names.

use std::future::Future;
use std::sync::Arc;

use actix_web::web;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::User;
use crate::error::{ApiError, ErrorCode};
use crate::http::Budget;
use crate::ids::{RoomId, UserId};
use crate::realtime::{AckSender, SocketRef};
use crate::state::AppState;

/// Every socket: lobby updates.
pub const LOBBY: &str = "lobby";

/// Every tab of a user.
pub fn user_room(user: UserId) -> String {
    format!("user:{user}")
}

/// The sockets inside a room.
pub fn room_room(room: RoomId) -> String {
    format!("room:{room}")
}

/// The signed-in user of a socket (absent for an anonymous lobby watcher).
#[derive(Clone)]
pub struct SocketUser(pub Arc<User>);

/// The room this socket is inside, if any.
#[derive(Clone, Copy)]
pub struct InRoom(pub RoomId);

/// Held while a socket joins or leaves a room: one seat change at a time per socket, so a
/// second `room:join` cannot interleave with the first's database work.
#[derive(Clone, Default)]
pub struct SeatLock(pub Arc<tokio::sync::Mutex<()>>);

/// What a handler gets: the app, the socket, its user and the parsed payload.
pub struct Call<T> {
    pub state: web::Data<AppState>,
    pub socket: SocketRef,
    pub user: Arc<User>,
    pub input: T,
}

impl<T> Call<T> {
    pub fn user_id(&self) -> UserId {
        self.user.user_id()
    }

    pub fn socket_id(&self) -> String {
        self.socket.id().to_string()
    }

    /// This socket's seat lock (`SeatLock`).
    pub fn seat_lock(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.socket
            .extensions()
            .get::<SeatLock>()
            .unwrap_or_default()
            .0
    }

    /// The room named in the payload, else the one the socket is inside.
    pub fn room(&self, named: Option<RoomId>) -> Result<RoomId, ApiError> {
        named
            .or_else(|| self.socket.extensions().get::<InRoom>().map(|r| r.0))
            .ok_or_else(|| ApiError::conflict(ErrorCode::NotInRoom, "Join a room first"))
    }

    /// The room this socket is inside (and, if the payload names one, that same room):
    /// media flows only there.
    pub fn inside(&self, named: Option<RoomId>) -> Result<RoomId, ApiError> {
        let current = self.socket.extensions().get::<InRoom>().map(|r| r.0);
        match (current, named) {
            (Some(room), None) => Ok(room),
            (Some(room), Some(named)) if room == named => Ok(room),
            _ => Err(ApiError::conflict(
                ErrorCode::NotInRoom,
                "Join the room first",
            )),
        }
    }
}

/// Registers one client event: parses its payload, checks the user and the rate limit, runs
/// `handler`, and answers the ack.
pub fn on<T, F, Fut>(
    state: &web::Data<AppState>,
    socket: &SocketRef,
    event: &'static str,
    budget: Budget,
    handler: F,
) where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Call<T>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let state = state.clone();
    socket.on(event, move |socket, data, ack| {
        let state = state.clone();
        let metrics = Arc::clone(&state.metrics);
        let handler = handler.clone();
        async move {
            let result = async {
                let user = socket
                    .extensions()
                    .get::<SocketUser>()
                    .ok_or_else(|| {
                        ApiError::unauthorized(ErrorCode::Unauthenticated, "Sign in first")
                    })?
                    .0;
                state.limits.spend(budget, user.user_id(), None).await?;
                let data = if data.is_null() { json!({}) } else { data };
                let input: T = serde_json::from_value(data).map_err(|e| {
                    let why = crate::http::shape_error(&e);
                    ApiError::unprocessable(ErrorCode::InvalidBody, format!("{event}: {why}"))
                })?;
                handler(Call {
                    state,
                    socket,
                    user,
                    input,
                })
                .await
            }
            .await;
            if let Err(err) = &result {
                tracing::debug!(event, code = err.code.as_str(), "event refused");
                metrics.ack_refused(err.code.as_str());
            }
            answer(ack, result);
        }
    });
}

/// Answers a client's ack with `{ok:true, ...value}` or `{ok:false, error}`.
fn answer(ack: Option<AckSender>, result: Result<Value, ApiError>) {
    let Some(ack) = ack else { return };
    let body = match result {
        Ok(Value::Object(mut fields)) => {
            fields.insert("ok".into(), Value::Bool(true));
            Value::Object(fields)
        }
        Ok(_) => json!({ "ok": true }),
        Err(err) => json!({ "ok": false, "error": err.payload() }),
    };
    let _ = ack.send(&body);
}
