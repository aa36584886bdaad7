//! Engine.IO v4 + Socket.IO v5 server on actix-web, hand-written so that the official
//! `socket.io-client` v4 works unchanged. Knows nothing about rooms-the-product: the product's
//! live layer (`src/gateway/`) sits on top of this public face.
//!
//! ```no_run
//! use talkconnect::realtime::{Config, ConnectError, SocketIo};
//! use actix_web::{App, HttpServer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::builder(Config::default()).build();
//! io.ns("/", |socket, auth| async move {
//!     let Some(token) = auth.get("token").and_then(|t| t.as_str()) else {
//!         return Err(ConnectError::new("unauthorized"));
//!     };
//!     socket.extensions().insert(token.to_owned());
//!     socket.on("room:join", |socket, data, ack| async move {
//!         let room = data["roomId"].as_str().unwrap_or_default().to_owned();
//!         socket.join(room.clone()).await;
//!         let _ = socket.to(room).emit("room:user-joined", &socket.id()).await;
//!         if let Some(ack) = ack {
//!             let _ = ack.send(&serde_json::json!({"ok": true}));
//!         }
//!     });
//!     socket.on_disconnect(|socket, reason| async move {
//!         tracing::info!(sid = %socket.id(), reason = reason.as_str(), "left");
//!     });
//!     Ok(())
//! });
//! HttpServer::new(move || App::new().configure(|cfg| io.configure(cfg)))
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! Layout: `engine/` (transports, sessions, heartbeat), `packet` (Socket.IO codec),
//! `client` (per-connection routing), `socket`, `namespace`, `adapter` (the broadcast seam),
//! `operators` (`to`/`except`/… chains), `server` (the `SocketIo` handle). See
//! docs/REALTIME.md for the protocol details and limits.

mod adapter;
mod client;
mod config;
pub mod engine;
mod extensions;
mod namespace;
mod operators;
pub mod packet;
mod server;
mod sid;
mod socket;
mod stats;

pub use adapter::{
    Adapter, AdapterError, BroadcastFlags, BroadcastOptions, LocalAdapter, LocalNamespace, Room,
    SocketInfo,
};
pub use config::{ClientAddress, Config, Transports};
pub use engine::CloseReason;
pub use extensions::Extensions;
pub use namespace::{AdapterFactory, ConnectError};
pub use operators::BroadcastOperator;
pub use packet::{Args, EncodedPacket};
pub use server::{SocketIo, SocketIoBuilder};
pub use sid::{InvalidSid, Sid};
pub use socket::{AckError, AckSender, DisconnectReason, EmitError, Socket, SocketRef};
pub use stats::{OTHER_EVENTS, RealtimeStats};
