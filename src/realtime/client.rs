//! The Socket.IO side of one Engine.IO session: decodes packets (reassembling binary
//! attachments), routes them to the namespace sockets, enforces the connect timeout.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures_util::FutureExt as _;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tracing::Instrument as _;

use super::Config;
use super::engine::{CloseReason, Conn, EngineHandler, Message};
use super::namespace::Namespace;
use super::packet::{self, Packet, PacketType, Reassembly};
use super::socket::{DisconnectReason, Socket, SocketRef};

/// Per-connection Socket.IO state, stored in the Engine.IO session.
#[derive(Default)]
pub struct ClientState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// One socket per connected (or connecting) namespace; usually one.
    sockets: Vec<SocketRef>,
    /// A binary packet waiting for its attachments.
    reassembly: Reassembly,
    closed: bool,
}

impl ClientState {
    fn find(&self, nsp: &str) -> Option<SocketRef> {
        self.inner
            .lock()
            .sockets
            .iter()
            .find(|s| s.nsp() == nsp)
            .cloned()
    }

    /// Forgets a socket that left its namespace.
    pub(crate) fn remove(&self, socket: &Socket) {
        self.inner
            .lock()
            .sockets
            .retain(|s| !std::ptr::eq(Arc::as_ptr(s), socket));
    }
}

/// Namespaces by name, shared by every connection.
pub(crate) struct Registry {
    pub namespaces: RwLock<HashMap<Arc<str>, Arc<Namespace>>>,
    pub config: Arc<Config>,
}

/// The Socket.IO protocol as an Engine.IO handler.
pub(crate) struct SocketIoHandler {
    pub registry: Arc<Registry>,
}

impl SocketIoHandler {
    fn dispatch(&self, conn: &Arc<Conn<ClientState>>, packet: Packet, binary: Vec<Bytes>) {
        let client = conn.data();
        match packet.kind {
            PacketType::Connect => self.connect(conn, packet),
            PacketType::Disconnect => {
                if let Some(socket) = client.find(&packet.nsp) {
                    client.remove(&socket);
                    socket.terminate(DisconnectReason::ClientNamespaceDisconnect, true);
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                if let (Some(socket), Some(Value::Array(values))) =
                    (client.find(&packet.nsp), packet.data)
                {
                    socket.on_event(values, packet.id, binary);
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {
                if let (Some(socket), Some(id), Some(Value::Array(values))) =
                    (client.find(&packet.nsp), packet.id, packet.data)
                {
                    socket.on_ack(id, values, binary);
                }
            }
            // Rejected by the parser: only servers send it.
            PacketType::ConnectError => conn.close(CloseReason::ParseError),
        }
    }

    fn connect(&self, conn: &Arc<Conn<ClientState>>, packet: Packet) {
        let client = conn.data();
        let ns = self
            .registry
            .namespaces
            .read()
            .get(packet.nsp.as_str())
            .cloned();
        let Some(ns) = ns else {
            conn.send_all(
                packet::encode_connect_error(&packet.nsp, "Invalid namespace", None).frames(),
            );
            return;
        };
        let socket = {
            let mut inner = client.inner.lock();
            if inner.closed || inner.sockets.iter().any(|s| s.nsp() == packet.nsp) {
                return;
            }
            let socket = Socket::new(Arc::clone(&ns), Arc::clone(conn));
            inner.sockets.push(Arc::clone(&socket));
            socket
        };
        ns.insert(Arc::clone(&socket));
        let handler = ns.handler.read().clone();
        let auth = packet
            .data
            .unwrap_or_else(|| Value::Object(Default::default()));
        let span = tracing::info_span!("socket connect", sid = %socket.id());
        tokio::spawn(
            async move {
                let result = AssertUnwindSafe(handler(Arc::clone(&socket), auth))
                    .catch_unwind()
                    .await;
                match result {
                    Ok(Ok(())) => {
                        if socket.accept() {
                            tracing::debug!("socket connected");
                        }
                    }
                    Ok(Err(err)) => {
                        tracing::debug!(message = err.message, "connection refused");
                        socket.refuse(&err.message, err.data.as_ref());
                    }
                    Err(_) => {
                        tracing::error!("connect handler panicked");
                        socket.refuse("Internal server error", None);
                    }
                }
            }
            .instrument(span),
        );
    }
}

impl EngineHandler for SocketIoHandler {
    type Data = ClientState;

    fn on_open(&self, conn: &Arc<Conn<ClientState>>) {
        let weak: Weak<Conn<ClientState>> = Arc::downgrade(conn);
        let timeout = self.registry.config.connect_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(conn) = weak.upgrade() {
                // Like the reference server: no namespace joined by then (none asked, or all
                // refused) and the connection goes.
                if !conn.is_closed() && conn.data().inner.lock().sockets.is_empty() {
                    tracing::debug!(sid = %conn.sid(), "no namespace within connect_timeout, closing");
                    conn.close(CloseReason::ServerClose);
                }
            }
        });
    }

    fn on_message(&self, conn: &Arc<Conn<ClientState>>, message: Message) {
        let max_attachments = self.registry.config.max_attachments;
        let max_payload = self.registry.config.max_payload;
        let ready = conn
            .data()
            .inner
            .lock()
            .reassembly
            .push(message, max_attachments, max_payload);
        match ready {
            Ok(Some((packet, binary))) => self.dispatch(conn, packet, binary),
            Ok(None) => {}
            Err(why) => {
                tracing::debug!(sid = %conn.sid(), why, "socket.io protocol violation, closing");
                conn.close(CloseReason::ParseError);
            }
        }
    }

    fn on_close(&self, conn: &Arc<Conn<ClientState>>, reason: CloseReason) {
        let sockets = {
            let mut inner = conn.data().inner.lock();
            inner.closed = true;
            inner.reassembly.clear();
            std::mem::take(&mut inner.sockets)
        };
        for socket in sockets {
            socket.terminate(DisconnectReason::Transport(reason), true);
        }
    }
}
