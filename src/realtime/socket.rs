//! A Socket.IO socket: one client in one namespace. Holds the app's event handlers, pending
//! server→client acks and typed extensions; sends through its Engine.IO session.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::adapter::{BroadcastOptions, Room};
use super::client::ClientState;
use super::engine::{CloseReason, Conn, Frame, Handshake};
use super::extensions::Extensions;
use super::namespace::Namespace;
use super::operators::BroadcastOperator;
use super::packet::{self, Args, EncodedPacket};
use super::sid::Sid;

/// Shared handle to a socket; cheap to clone, valid after disconnect (sends then fail).
pub type SocketRef = Arc<Socket>;

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type EventHandler = Arc<dyn Fn(SocketRef, Args, Option<AckSender>) -> BoxFuture + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(SocketRef, DisconnectReason) -> BoxFuture + Send + Sync>;

/// Why a socket left its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT for this namespace (`socket.disconnect()` in JS).
    ClientNamespaceDisconnect,
    /// The server called [`Socket::disconnect`] or `disconnect_sockets`.
    ServerNamespaceDisconnect,
    /// The whole connection ended.
    Transport(CloseReason),
}

impl DisconnectReason {
    /// The reason string the reference server uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::Transport(reason) => reason.as_str(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("could not serialise the payload: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the socket is disconnected")]
    Disconnected,
    #[error(transparent)]
    Adapter(#[from] super::adapter::AdapterError),
}

#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("could not serialise the payload: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("no acknowledgement within the timeout")]
    Timeout,
    #[error("the socket disconnected before acknowledging")]
    Disconnected,
}

enum State {
    /// The connect handler runs; frames wait until the CONNECT answer is sent.
    Connecting(Vec<Frame>),
    Connected,
    Disconnected,
}

pub struct Socket {
    id: Sid,
    pub(crate) ns: Arc<Namespace>,
    conn: Arc<Conn<ClientState>>,
    state: Mutex<State>,
    /// Few per socket: a vector is smaller and as fast as a map here.
    handlers: RwLock<Vec<(Cow<'static, str>, EventHandler)>>,
    on_disconnect: Mutex<Option<DisconnectHandler>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Args>>>,
    next_ack: AtomicU64,
    extensions: Extensions,
}

/// Answers an event the client emitted with an acknowledgement callback. Dropping it without
/// sending leaves the client's callback unanswered (its own timeout applies).
pub struct AckSender {
    socket: SocketRef,
    id: u64,
}

impl AckSender {
    /// Acknowledges with one argument.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let args = Args::new().push(data)?;
        self.send_args(args)
    }

    /// Acknowledges with any arguments (including binary ones).
    pub fn send_args(self, args: Args) -> Result<(), EmitError> {
        let packet = packet::encode_ack(&self.socket.ns.name, self.id, args)?;
        self.socket.send_or_fail(&packet)
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("nsp", &self.ns.name)
            .finish()
    }
}

impl Socket {
    pub(crate) fn new(ns: Arc<Namespace>, conn: Arc<Conn<ClientState>>) -> SocketRef {
        Arc::new(Socket {
            id: Sid::random(),
            ns,
            conn,
            state: Mutex::new(State::Connecting(Vec::new())),
            handlers: RwLock::new(Vec::new()),
            on_disconnect: Mutex::new(None),
            acks: Mutex::new(HashMap::new()),
            next_ack: AtomicU64::new(0),
            extensions: Extensions::default(),
        })
    }

    /// The socket id (distinct from the Engine.IO session id, like the reference server).
    pub fn id(&self) -> Sid {
        self.id
    }

    /// The namespace name.
    pub fn nsp(&self) -> &str {
        &self.ns.name
    }

    /// The Engine.IO session id of the underlying connection.
    pub fn engine_sid(&self) -> Sid {
        self.conn.sid()
    }

    /// Peer address of the request that opened the connection.
    pub fn handshake(&self) -> &Handshake {
        self.conn.handshake()
    }

    /// Typed per-socket storage.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    pub fn connected(&self) -> bool {
        matches!(*self.state.lock(), State::Connected)
    }

    /// Registers the handler of `event`; `data` is the first argument (`null` if none).
    /// Events without a handler are ignored.
    pub fn on<F, Fut>(&self, event: impl Into<Cow<'static, str>>, handler: F)
    where
        F: Fn(SocketRef, Value, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler = Arc::new(move |socket, args: Args, ack| {
            let data = args.values.into_iter().next().unwrap_or(Value::Null);
            Box::pin(handler(socket, data, ack))
        });
        self.set_handler(event.into(), handler);
    }

    /// Registers the handler of `event` receiving every argument and binary attachment.
    pub fn on_args<F, Fut>(&self, event: impl Into<Cow<'static, str>>, handler: F)
    where
        F: Fn(SocketRef, Args, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler =
            Arc::new(move |socket, args, ack| Box::pin(handler(socket, args, ack)));
        self.set_handler(event.into(), handler);
    }

    fn set_handler(&self, event: Cow<'static, str>, handler: EventHandler) {
        let mut handlers = self.handlers.write();
        match handlers.iter_mut().find(|(name, _)| *name == event) {
            Some(slot) => slot.1 = handler,
            None => handlers.push((event, handler)),
        }
    }

    /// Removes the handler of `event`.
    pub fn off(&self, event: &str) {
        self.handlers.write().retain(|(name, _)| name != event);
    }

    /// Registers the disconnect handler (runs once, after the socket left its rooms).
    pub fn on_disconnect<F, Fut>(&self, handler: F)
    where
        F: Fn(SocketRef, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        *self.on_disconnect.lock() = Some(Arc::new(move |socket, reason| {
            Box::pin(handler(socket, reason))
        }));
    }

    /// Emits `event` with one argument to this client.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        let packet = packet::encode_event(&self.ns.name, event, data, None)?;
        self.ns.counters.events_out.add(event);
        self.send_or_fail(&packet)
    }

    /// Emits `event` with any arguments (binary ones included).
    pub fn emit_args(&self, event: &str, args: Args) -> Result<(), EmitError> {
        let packet = packet::encode_event_args(&self.ns.name, event, args, None)?;
        self.ns.counters.events_out.add(event);
        self.send_or_fail(&packet)
    }

    /// Emits `event` and waits for the client's acknowledgement (`config.ack_timeout`).
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Args, AckError> {
        let args = Args::new().push(data)?;
        self.emit_args_with_ack(event, args, self.ns.config.ack_timeout)
            .await
    }

    /// Emits `event` with any arguments and waits up to `timeout` for the acknowledgement.
    pub async fn emit_args_with_ack(
        &self,
        event: &str,
        args: Args,
        timeout: Duration,
    ) -> Result<Args, AckError> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let packet = packet::encode_event_args(&self.ns.name, event, args, Some(id))?;
        self.ns.counters.events_out.add(event);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().insert(id, tx);
        if !self.send_encoded(&packet) {
            self.acks.lock().remove(&id);
            return Err(AckError::Disconnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                self.acks.lock().remove(&id);
                Err(AckError::Timeout)
            }
        }
    }

    /// Joins a room.
    pub async fn join(&self, room: impl Into<Room>) {
        self.join_all([room.into()]).await;
    }

    /// Joins several rooms. A socket that is gone joins nothing: its rooms were already
    /// emptied of it, and an entry added now would never be removed.
    pub async fn join_all(&self, rooms: impl IntoIterator<Item = impl Into<Room>>) {
        let rooms = rooms.into_iter().map(Into::into).collect();
        self.ns.adapter.add_all(self.id, rooms).await;
        if matches!(*self.state.lock(), State::Disconnected) {
            self.ns.adapter.del_all(self.id).await;
        }
    }

    /// Leaves a room.
    pub async fn leave(&self, room: impl Into<Room>) {
        self.ns.adapter.del(self.id, room.into()).await;
    }

    /// The rooms this socket is in (its own-id room included).
    pub async fn rooms(&self) -> Vec<Room> {
        self.ns.adapter.socket_rooms(self.id).await
    }

    /// Targets sockets in `room`, except this one.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// Targets every socket of the namespace except this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(
            Arc::clone(&self.ns),
            BroadcastOptions {
                except: vec![Room::from(self.id.as_str())],
                ..BroadcastOptions::default()
            },
        )
    }

    /// Leaves the namespace: sends DISCONNECT to the client, runs the disconnect handler.
    /// The connection stays open for other namespaces.
    pub fn disconnect(self: &Arc<Self>) {
        if self.connected() {
            self.conn
                .send_all(packet::encode_disconnect(&self.ns.name).frames());
        }
        self.conn.data().remove(self);
        self.terminate(DisconnectReason::ServerNamespaceDisconnect, true);
    }

    /// Closes the whole connection (every namespace of this client).
    pub fn close_transport(&self) {
        self.conn.close(CloseReason::ServerClose);
    }

    // --- crate-internal ---

    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Conn<ClientState> {
        &self.conn
    }

    fn send_or_fail(&self, packet: &EncodedPacket) -> Result<(), EmitError> {
        if self.send_encoded(packet) {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }

    /// Queues an encoded packet; false once disconnected.
    pub(crate) fn send_encoded(&self, packet: &EncodedPacket) -> bool {
        let mut state = self.state.lock();
        match &mut *state {
            State::Connecting(pending) => {
                pending.extend(packet.frames());
                true
            }
            State::Connected => self.conn.send_all(packet.frames()),
            State::Disconnected => false,
        }
    }

    /// The connect handler accepted: answer CONNECT, then flush what it emitted meanwhile.
    pub(crate) fn accept(&self) -> bool {
        let mut state = self.state.lock();
        let State::Connecting(pending) = &mut *state else {
            return false;
        };
        let pending = std::mem::take(pending);
        let connect = packet::encode_connect(&self.ns.name, self.id.as_str());
        let sent = self.conn.send_all(connect.frames().chain(pending));
        *state = State::Connected;
        sent
    }

    /// The connect handler refused: answer CONNECT_ERROR and forget the socket quietly.
    pub(crate) fn refuse(self: &Arc<Self>, message: &str, data: Option<&Value>) {
        self.conn
            .send_all(packet::encode_connect_error(&self.ns.name, message, data).frames());
        self.conn.data().remove(self);
        self.terminate(DisconnectReason::ServerNamespaceDisconnect, false);
    }

    /// An EVENT for this socket: run its handler in its own task.
    pub(crate) fn on_event(
        self: &Arc<Self>,
        mut values: Vec<Value>,
        id: Option<u64>,
        binary: Vec<Bytes>,
    ) {
        if !self.connected() || values.is_empty() {
            return;
        }
        let Value::String(event) = values.remove(0) else {
            return;
        };
        let handler = self
            .handlers
            .read()
            .iter()
            .find(|(name, _)| *name == event.as_str())
            .map(|(_, h)| Arc::clone(h));
        let Some(handler) = handler else {
            self.ns
                .counters
                .unknown_events_in
                .fetch_add(1, Ordering::Relaxed);
            tracing::trace!(event, "no handler, ignored");
            return;
        };
        self.ns.counters.events_in.add(&event);
        let ack = id.map(|id| AckSender {
            socket: Arc::clone(self),
            id,
        });
        let fut = handler(Arc::clone(self), Args { values, binary }, ack);
        // Info level, so every line a handler logs names its socket; sid and event only: one
        // span per event is on the hot path.
        let span = tracing::info_span!("socket", sid = %self.id, event);
        tokio::spawn(guarded(fut).instrument(span));
    }

    /// An ACK from the client for a server emit.
    pub(crate) fn on_ack(&self, id: u64, values: Vec<Value>, binary: Vec<Bytes>) {
        match self.acks.lock().remove(&id) {
            Some(tx) => {
                let _ = tx.send(Args { values, binary });
            }
            None => tracing::debug!(sid = %self.id, id, "ack for an unknown id, ignored"),
        }
    }

    /// Ends the socket: out of the namespace and its rooms, pending acks failed, handlers
    /// dropped (they may hold clones of this socket), then the disconnect handler.
    pub(crate) fn terminate(self: &Arc<Self>, reason: DisconnectReason, run_handler: bool) {
        let was_connected = {
            let mut state = self.state.lock();
            let was = matches!(*state, State::Connected);
            if matches!(*state, State::Disconnected) {
                return;
            }
            *state = State::Disconnected;
            was
        };
        self.ns.remove(self.id);
        self.acks.lock().clear();
        self.handlers.write().clear();
        let handler = self
            .on_disconnect
            .lock()
            .take()
            .filter(|_| run_handler && was_connected);
        let socket = Arc::clone(self);
        let span = tracing::info_span!("socket disconnect", sid = %self.id);
        tokio::spawn(
            async move {
                socket.ns.adapter.del_all(socket.id).await;
                tracing::debug!(reason = reason.as_str(), "socket disconnected");
                if let Some(handler) = handler {
                    guarded(handler(Arc::clone(&socket), reason)).await;
                }
            }
            .instrument(span),
        );
    }
}

/// Runs an app future, turning a panic into a log line instead of a dead task.
pub(crate) async fn guarded(fut: BoxFuture) {
    if let Err(panic) = AssertUnwindSafe(fut).catch_unwind().await {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = msg, "socket.io handler panicked");
    }
}
