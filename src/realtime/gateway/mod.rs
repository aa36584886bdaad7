//! The product on top of the protocol layer: authenticates sockets with the REST JWT, maps
//! client events onto the room and chat services, turns domain events from the `Bus` into
//! Socket.IO events, and releases seats whose owners are gone (presence grace period).
//!
//! Socket.IO rooms used here: `lobby` (every socket: lobby updates), `user:<id>` (every tab
//! of a user), `room:<id>` (sockets inside a room). Bus events are emitted to this node's
//! sockets only (`local`): in a cluster every replica receives every bus event.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{AckSender, Config, ConnectError, SocketRef};
use crate::app::AppState;
use crate::auth::{TokenError, User, users};
use crate::chat::ChatText;
use crate::config::{RateRule, RealtimeSettings};
use crate::db;
use crate::error::ApiError;
use crate::events::DomainEvent;
use crate::rooms::RoomError;
use crate::rooms::rules::SeatChange;
use crate::sfu::MediaKind;

mod media;
pub use media::Media;

const LOBBY: &str = "lobby";

fn user_room(user: Uuid) -> String {
    format!("user:{user}")
}

fn room_room(room: Uuid) -> String {
    format!("room:{room}")
}

/// The protocol settings from the product's configuration.
pub fn protocol_config(settings: &RealtimeSettings) -> Config {
    Config {
        ping_interval: Duration::from_millis(settings.ping_interval_ms),
        ping_timeout: Duration::from_millis(settings.ping_timeout_ms),
        max_payload: settings.max_payload_bytes,
        connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
        max_packets_per_second: settings.max_packets_per_second,
        packet_burst: settings.packet_burst,
        ..Config::default()
    }
}

/// The signed-in user of a socket (absent for an anonymous lobby watcher).
#[derive(Clone)]
struct SocketUser(Arc<User>);

/// The room this socket is inside, if any.
#[derive(Clone, Copy)]
struct InRoom(Uuid);

/// Wires the gateway onto `io` and starts its background work, which stops with `shutdown`.
pub fn install(state: web::Data<AppState>, shutdown: CancellationToken) {
    let connect_state = state.clone();
    state.io.ns("/", move |socket, auth| {
        let state = connect_state.clone();
        async move { on_connect(state, socket, auth).await }
    });
    tokio::spawn(relay_domain_events(state.clone(), shutdown.clone()));
    if state.redis.is_some() {
        tokio::spawn(resync_after_redis_outage(state.clone(), shutdown.clone()));
        let lease = Duration::from_secs(state.settings.cluster.media_lease_secs);
        let media = Arc::clone(&state.media);
        let until = shutdown.clone();
        tokio::spawn(async move { media.keep_placement(lease, until).await });
    }
    tokio::spawn(release_unattended_seats(state, shutdown));
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
            register_handlers(&state, &socket);
            return Ok(());
        }
        return Err(ConnectError::new("UNAUTHENTICATED"));
    };
    let claims = state.jwt.verify(token).map_err(|e| {
        ConnectError::new(match e {
            TokenError::Expired => "TOKEN_EXPIRED",
            TokenError::Invalid => "INVALID_TOKEN",
        })
    })?;
    let user = db::run(&state.pool, move |conn| users::find(conn, claims.sub))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "socket authentication could not reach the database");
            ConnectError::new("SERVICE_UNAVAILABLE")
        })?
        .ok_or_else(|| ConnectError::new("INVALID_TOKEN"))?;
    let user_id = user.uuid();
    socket.extensions().insert(SocketUser(Arc::new(user)));
    socket
        .join_all([LOBBY.to_owned(), user_room(user_id)])
        .await;
    register_handlers(&state, &socket);
    tracing::debug!(sid = %socket.id(), %user_id, "socket signed in");
    Ok(())
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

/// What a handler gets: the app, the socket, its user and the parsed payload.
struct Call<T> {
    state: web::Data<AppState>,
    socket: SocketRef,
    user: Arc<User>,
    input: T,
}

impl<T> Call<T> {
    fn user_id(&self) -> Uuid {
        self.user.uuid()
    }

    /// The room named in the payload, else the one the socket is inside.
    fn room(&self, named: Option<Uuid>) -> Result<Uuid, ApiError> {
        named
            .or_else(|| self.socket.extensions().get::<InRoom>().map(|r| r.0))
            .ok_or_else(|| ApiError::conflict("NOT_IN_ROOM", "Join a room first"))
    }
}

/// Registers one client event: parses its payload, checks the user and the rate limit, runs
/// `handler`, and answers the ack.
fn on<T, F, Fut>(
    state: &web::Data<AppState>,
    socket: &SocketRef,
    event: &'static str,
    rule: fn(&AppState) -> RateRule,
    handler: F,
) where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Call<T>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let state = state.clone();
    socket.on(event, move |socket, data, ack| {
        let state = state.clone();
        let handler = handler.clone();
        async move {
            let result = async {
                let user = socket
                    .extensions()
                    .get::<SocketUser>()
                    .ok_or_else(|| ApiError::unauthorized("UNAUTHENTICATED", "Sign in first"))?
                    .0;
                state
                    .limits
                    .check(&[(format!("socket:{event}:user:{}", user.id), rule(&state))])
                    .await?;
                let data = if data.is_null() { json!({}) } else { data };
                let input: T = serde_json::from_value(data).map_err(|e| {
                    ApiError::unprocessable("INVALID_BODY", format!("{event}: {e}"))
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
                tracing::debug!(event, code = err.code, "event refused");
            }
            answer(ack, result);
        }
    });
}

fn chat_rule(state: &AppState) -> RateRule {
    state.limits.settings.chat_per_user
}

fn event_rule(state: &AppState) -> RateRule {
    state.limits.settings.events_per_user
}

fn join_rule(state: &AppState) -> RateRule {
    state.limits.settings.join_per_user
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomRef {
    room_id: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinRequest {
    room_id: Uuid,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatRequest {
    room_id: Option<Uuid>,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MicRequest {
    room_id: Option<Uuid>,
    is_muted: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoRequest {
    room_id: Option<Uuid>,
    is_video_off: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LowerHandRequest {
    room_id: Option<Uuid>,
    user_id: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KickRequest {
    room_id: Option<Uuid>,
    user_id: Uuid,
}

fn register_handlers(state: &web::Data<AppState>, socket: &SocketRef) {
    on(
        state,
        socket,
        "room:join",
        join_rule,
        |call: Call<JoinRequest>| async move {
            let room_id = call.input.room_id;
            let (room, participant) = call.state.rooms.join(room_id, (*call.user).clone()).await?;
            enter_room(&call, room_id).await;
            Ok(json!({ "room": room, "participant": participant }))
        },
    );
    on(
        state,
        socket,
        "room:leave",
        event_rule,
        |call: Call<RoomRef>| async move {
            let room_id = call.room(call.input.room_id)?;
            let left = call.state.rooms.leave(room_id, call.user_id()).await;
            // The socket leaves the room even when the seat was already gone.
            exit_room(&call.state, &call.socket, call.user_id(), room_id).await;
            let left = left?;
            Ok(serde_json::to_value(left).unwrap_or_default())
        },
    );
    on(
        state,
        socket,
        "room:kick",
        event_rule,
        |call: Call<KickRequest>| async move {
            let room_id = call.room(call.input.room_id)?;
            call.state
                .rooms
                .kick(room_id, call.user_id(), call.input.user_id)
                .await?;
            Ok(json!({ "kickedUserId": call.input.user_id }))
        },
    );
    on(
        state,
        socket,
        "room:end",
        event_rule,
        |call: Call<RoomRef>| async move {
            let room_id = call.room(call.input.room_id)?;
            let room = call.state.rooms.end(room_id, call.user_id()).await?;
            Ok(json!({ "room": room }))
        },
    );
    on(
        state,
        socket,
        "chat:message",
        chat_rule,
        |call: Call<ChatRequest>| async move {
            let room_id = call.room(call.input.room_id)?;
            let text = ChatText::parse(&call.input.message)
                .map_err(|m| ApiError::invalid_field("message", m))?;
            let message = call
                .state
                .chat
                .post(room_id, (*call.user).clone(), text)
                .await?;
            Ok(json!({ "message": message }))
        },
    );
    on(
        state,
        socket,
        "media:toggle-mic",
        event_rule,
        |call: Call<MicRequest>| async move {
            let muted = call.input.is_muted;
            change_own_seat(&call, call.input.room_id, SeatChange::Mic { muted }).await
        },
    );
    on(
        state,
        socket,
        "media:toggle-video",
        event_rule,
        |call: Call<VideoRequest>| async move {
            let off = call.input.is_video_off;
            change_own_seat(&call, call.input.room_id, SeatChange::Camera { off }).await
        },
    );
    on(
        state,
        socket,
        "hand:raise",
        event_rule,
        |call: Call<RoomRef>| async move {
            change_own_seat(&call, call.input.room_id, SeatChange::Hand { raised: true }).await
        },
    );
    on(
        state,
        socket,
        "hand:lower",
        event_rule,
        |call: Call<LowerHandRequest>| async move {
            let room_id = call.room(call.input.room_id)?;
            let target = call.input.user_id.unwrap_or_else(|| call.user_id());
            call.state
                .rooms
                .change_seat(
                    room_id,
                    call.user_id(),
                    target,
                    SeatChange::Hand { raised: false },
                )
                .await?;
            Ok(json!({}))
        },
    );
    media::register(state, socket);
    let state = state.clone();
    socket.on_disconnect(move |socket, reason| {
        let state = state.clone();
        async move {
            let (Some(SocketUser(user)), Some(InRoom(room_id))) =
                (socket.extensions().get::<SocketUser>(), socket.extensions().get::<InRoom>())
            else {
                return;
            };
            let socket_id = socket.id().to_string();
            state.media.socket_gone(room_id, user.uuid(), &socket_id).await;
            let left = state.presence.socket_left(room_id, user.uuid(), &socket_id).await;
            tracing::debug!(%room_id, user_id = %user.id, reason = reason.as_str(), sockets_left = left, "socket gone");
        }
    });
}

async fn change_own_seat<T>(
    call: &Call<T>,
    named: Option<Uuid>,
    change: SeatChange,
) -> Result<Value, ApiError> {
    let room_id = call.room(named)?;
    call.state
        .rooms
        .change_seat(room_id, call.user_id(), call.user_id(), change)
        .await?;
    // A muted microphone or camera also stops being forwarded by the SFU.
    let media = match change {
        SeatChange::Mic { muted } => Some((MediaKind::Audio, muted)),
        SeatChange::Camera { off } => Some((MediaKind::Video, off)),
        SeatChange::Hand { .. } => None,
    };
    if let Some((kind, muted)) = media {
        call.state
            .media
            .set_muted(room_id, call.user_id(), kind, muted)
            .await;
    }
    Ok(json!({}))
}

/// Puts the socket inside the room (leaving the one it was in) and holds the seat for it.
async fn enter_room<T>(call: &Call<T>, room_id: Uuid) {
    let socket = &call.socket;
    let user_id = call.user_id();
    if let Some(InRoom(previous)) = socket.extensions().insert(InRoom(room_id)) {
        if previous != room_id {
            socket.leave(room_room(previous)).await;
            call.state
                .presence
                .socket_left(previous, user_id, &socket.id().to_string())
                .await;
        }
    }
    socket.join(room_room(room_id)).await;
    call.state
        .presence
        .socket_entered(room_id, user_id, &socket.id().to_string())
        .await;
}

async fn exit_room(state: &AppState, socket: &SocketRef, user_id: Uuid, room_id: Uuid) {
    let was_inside = socket
        .extensions()
        .with(|r: &mut InRoom| r.0 == room_id)
        .unwrap_or(false);
    if was_inside {
        socket.extensions().remove::<InRoom>();
    }
    socket.leave(room_room(room_id)).await;
    state
        .presence
        .socket_left(room_id, user_id, &socket.id().to_string())
        .await;
}

/// Turns what the services publish into what the browsers hear.
async fn relay_domain_events(state: web::Data<AppState>, shutdown: CancellationToken) {
    let mut events = state.bus.subscribe();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => {
                if let Err(e) = deliver(&state, &event).await {
                    tracing::warn!(error = %e, "a domain event was not delivered");
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the gateway fell behind the bus; events were lost");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn deliver(state: &AppState, event: &DomainEvent) -> Result<(), super::EmitError> {
    let io = &state.io;
    match event {
        DomainEvent::RoomCreated { room } => {
            io.to(LOBBY)
                .local()
                .emit(
                    "room:list-update",
                    &json!({ "action": "created", "room": room }),
                )
                .await?;
            // The creator holds the first seat and must connect to keep it.
            state.presence.seat_taken(room.id, room.host.id).await;
        }
        DomainEvent::RoomUpdated { room } => {
            io.to(LOBBY)
                .local()
                .emit(
                    "room:list-update",
                    &json!({ "action": "updated", "room": room }),
                )
                .await?;
        }
        DomainEvent::RoomEnded { room, reason } => {
            io.to(LOBBY)
                .local()
                .emit(
                    "room:list-update",
                    &json!({ "action": "ended", "room": room }),
                )
                .await?;
            let inside = room_room(room.id);
            io.to(inside.clone())
                .local()
                .emit(
                    "room:ended",
                    &json!({ "roomId": room.id, "reason": reason }),
                )
                .await?;
            forget_room_on_sockets(state, io.in_(inside.clone()), room.id).await;
            io.in_(inside.clone()).local().sockets_leave(inside).await?;
            state.presence.room_ended(room.id).await;
            state.media.room_gone(room.id).await;
        }
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
            io.to(room_room(*room_id))
                .local()
                .emit(
                    "room:user-joined",
                    &json!({ "roomId": room_id, "user": user, "participant": participant }),
                )
                .await?;
            state
                .presence
                .seat_taken(*room_id, participant.user_id)
                .await;
        }
        DomainEvent::ParticipantLeft {
            room_id,
            user_id,
            new_host_id,
        } => {
            io.to(room_room(*room_id))
                .local()
                .emit(
                    "room:user-left",
                    &json!({ "roomId": room_id, "userId": user_id, "newHostId": new_host_id }),
                )
                .await?;
            remove_user_from_room(state, *room_id, *user_id).await?;
            state.media.seat_gone(*room_id, *user_id, false).await;
        }
        DomainEvent::ParticipantKicked { room_id, user_id } => {
            io.to(room_room(*room_id))
                .to(user_room(*user_id))
                .local()
                .emit(
                    "room:user-kicked",
                    &json!({ "roomId": room_id, "userId": user_id }),
                )
                .await?;
            remove_user_from_room(state, *room_id, *user_id).await?;
            state.media.seat_gone(*room_id, *user_id, true).await;
        }
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
            io.to(room_room(*room_id)).local().emit(name, &body).await?;
        }
        DomainEvent::ChatMessagePosted { message } => {
            io.to(room_room(message.room_id))
                .local()
                .emit("chat:message", &json!({ "roomId": message.room_id, "message": message, "sender": message.sender }))
                .await?;
        }
    }
    Ok(())
}

/// Every tab of the user leaves the room's Socket.IO room; the seat is forgotten.
async fn remove_user_from_room(
    state: &AppState,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<(), super::EmitError> {
    let io = &state.io;
    forget_room_on_sockets(state, io.in_(user_room(user_id)), room_id).await;
    io.in_(user_room(user_id))
        .local()
        .sockets_leave(room_room(room_id))
        .await?;
    state.presence.seat_freed(room_id, user_id).await;
    Ok(())
}

/// Clears the `InRoom` mark of this node's sockets that were inside `room_id`.
async fn forget_room_on_sockets(
    state: &AppState,
    selection: super::BroadcastOperator,
    room_id: Uuid,
) {
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

/// Releases seats nobody has held a connection to for the grace period. At start, every
/// seat of a live room is put on the clock: after a restart, people who come back within
/// the grace period keep their seats, the others are released.
async fn release_unattended_seats(state: web::Data<AppState>, shutdown: CancellationToken) {
    let grace = Duration::from_secs(state.settings.realtime.seat_grace_secs);
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
        Err(e) => tracing::warn!(error = %e, "could not load the seats held at start"),
    }
    let mut tick =
        tokio::time::interval(Duration::from_secs(1).min(grace.max(Duration::from_millis(100))));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (room_id, user_id) in state.presence.take_expired(grace).await {
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

/// Cluster mode: while Redis was away, the other replicas' events were lost, and Redis may
/// have lost presence and the seat-count cache (a restart without persistence). When the
/// pub/sub link comes back, this replica tells its lobby sockets every live room (as
/// `updated`) and every room it had announced that ended meanwhile (as `ended`), rebuilds the
/// seat-count cache, and, one presence period later (when every replica's heartbeat has
/// restored its sockets), puts the seats of live rooms back on the grace clock.
async fn resync_after_redis_outage(state: web::Data<AppState>, shutdown: CancellationToken) {
    let Some(redis) = state.redis.clone() else {
        return;
    };
    let mut epochs = redis.hub().epochs();
    let mut seen = *epochs.borrow_and_update();
    let mut events = state.bus.subscribe();
    // Rooms this replica's lobby sockets may be showing.
    let mut announced: std::collections::HashSet<Uuid> = match live_rooms(&state).await {
        Ok(rooms) => rooms.iter().map(|r| r.id).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the live rooms");
            Default::default()
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
            changed = epochs.changed() => {
                if changed.is_err() {
                    return;
                }
                let epoch = *epochs.borrow_and_update();
                if epoch > seen {
                    seen = epoch;
                    match resync_lobby(&state, &redis, &announced).await {
                        Ok(live) => announced = live,
                        Err(e) => tracing::warn!(error = %e, "lobby not resynchronised after the Redis outage"),
                    }
                }
            }
        }
    }
}

async fn live_rooms(state: &AppState) -> Result<Vec<crate::rooms::RoomView>, RoomError> {
    let filter = crate::rooms::queries::RoomFilter {
        status: Some(crate::rooms::domain::RoomStatus::Live),
        ..Default::default()
    };
    let mut rooms = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = state
            .rooms
            .list(filter.clone(), crate::http::MAX_PAGE, cursor)
            .await?;
        rooms.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(rooms),
        }
    }
}

async fn resync_lobby(
    state: &web::Data<AppState>,
    redis: &crate::cluster::redis::Redis,
    announced: &std::collections::HashSet<Uuid>,
) -> Result<std::collections::HashSet<Uuid>, RoomError> {
    let rooms = live_rooms(state).await?;
    let live: std::collections::HashSet<Uuid> = rooms.iter().map(|r| r.id).collect();
    let lobby = |action: &'static str, room: &crate::rooms::RoomView| {
        let update = json!({ "action": action, "room": room });
        let io = state.io.clone();
        async move { io.to(LOBBY).local().emit("room:list-update", &update).await }
    };
    for gone in announced.difference(&live) {
        if let Ok(detail) = state.rooms.get(*gone).await {
            let _ = lobby("ended", &detail.room).await;
        }
    }
    for room in &rooms {
        let _ = lobby("updated", room).await;
    }
    if let Err(e) = crate::cluster::redis::seats::rebuild(redis, &rooms).await {
        tracing::warn!(error = %e, "seat-count cache not rebuilt");
    }
    tracing::info!(
        live = rooms.len(),
        ended = announced.difference(&live).count(),
        "Redis is back: lobby resynchronised"
    );
    let state = state.clone();
    let wait = Duration::from_secs(state.settings.cluster.presence_ttl_secs);
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
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
            Err(e) => tracing::warn!(error = %e, "seats not put back on the clock"),
        }
    });
    Ok(live)
}
