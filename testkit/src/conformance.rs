//! The server the official Engine.IO / Socket.IO protocol suites expect, plus a few events the
//! project's own tests use (rooms, broadcasts, server→client acks, refused namespaces).
//! Served by `examples/socketio_conformance` and started on a random port by the realtime tests
//! (`crate::realtime::TestServer`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use serde_json::{Value, json};
use talkconnect::realtime::engine::{CloseReason, Conn, Engine, EngineHandler, Frame, Message};
use talkconnect::realtime::{Args, Config, ConnectError, SocketIo, SocketRef};

/// Engine.IO echo handler for `/engine.io/`.
pub struct Echo;

impl EngineHandler for Echo {
    type Data = ();

    fn on_open(&self, _conn: &Arc<Conn<()>>) {}

    fn on_message(&self, conn: &Arc<Conn<()>>, message: Message) {
        conn.send(match message {
            Message::Text(text) => Frame::message_text(&text),
            Message::Binary(data) => Frame::Binary(data),
        });
    }

    fn on_close(&self, _conn: &Arc<Conn<()>>, _reason: CloseReason) {}
}

/// The timings of the official suites.
pub fn suite_config() -> Config {
    Config {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        connect_timeout: Duration::from_millis(1000),
        ..Config::default()
    }
}

pub struct Servers {
    pub io: SocketIo,
    pub echo: Arc<Engine<Echo>>,
}

impl Servers {
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        self.io.configure(cfg);
        self.echo.configure(cfg);
    }
}

/// `auth_delay`: how long after the CONNECT answer the "auth" event is emitted. The official
/// Socket.IO suite attaches its listener for "auth" only after it processed the CONNECT answer,
/// so when both arrive in one TCP read (Node's `ws` emits them in the same tick) the event is
/// lost; the reference Node server loses it too (28–30/32). A few ms apart avoids that race.
pub fn build(config: Config, auth_delay: Duration) -> Servers {
    let echo = Engine::new(
        Config {
            path: "/engine.io/".to_owned(),
            ..config.clone()
        },
        Echo,
    );
    let io = SocketIo::builder(config).build();
    io.ns("/", {
        let io = io.clone();
        move |socket, auth| on_connect(io.clone(), socket, auth, auth_delay)
    });
    io.ns("/custom", {
        let io = io.clone();
        move |socket, auth| on_connect(io.clone(), socket, auth, auth_delay)
    });
    // A namespace that only lets in `{"token":"secret"}`.
    io.ns("/private", |socket, auth| async move {
        if auth.get("token") != Some(&json!("secret")) {
            return Err(ConnectError::new("unauthorized").with_data(json!({"code": "BAD_TOKEN"})));
        }
        socket.extensions().insert(String::from("user-1"));
        socket.on("whoami", |socket, _data, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send(&socket.extensions().get::<String>());
            }
        });
        Ok(())
    });
    Servers { io, echo }
}

fn room_of(data: &Value, key: &str) -> String {
    data.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn ok(ack: Option<talkconnect::realtime::AckSender>, value: Value) {
    if let Some(ack) = ack {
        let _ = ack.send(&value);
    }
}

async fn on_connect(
    io: SocketIo,
    socket: SocketRef,
    auth: Value,
    auth_delay: Duration,
) -> Result<(), ConnectError> {
    // The suites read the auth payload back from this event.
    if auth_delay.is_zero() {
        let _ = socket.emit("auth", &auth);
    } else {
        let socket = socket.clone();
        tokio::spawn(async move {
            tokio::time::sleep(auth_delay).await;
            let _ = socket.emit("auth", &auth);
        });
    }

    socket.on_args("message", |socket, args, _ack| async move {
        let _ = socket.emit_args("message-back", args);
    });
    socket.on_args("message-with-ack", |_socket, args, ack| async move {
        if let Some(ack) = ack {
            let _ = ack.send_args(args);
        }
    });

    // --- used by the project's own tests ---
    socket.on("join", |socket, data, ack| async move {
        socket.join(room_of(&data, "room")).await;
        ok(
            ack,
            json!({"ok": true, "rooms": socket.rooms().await.len()}),
        );
    });
    socket.on("leave", |socket, data, ack| async move {
        socket.leave(room_of(&data, "room")).await;
        ok(ack, json!({"ok": true}));
    });
    // Broadcast from this socket to a room (the sender is excluded).
    socket.on("to-room", |socket, data, ack| async move {
        let result = socket
            .to(room_of(&data, "room"))
            .emit("room-message", &data["payload"])
            .await;
        ok(ack, json!({"ok": result.is_ok()}));
    });
    // io.to(room).except(other): the server-wide operator.
    socket.on("to-room-except", {
        let io = io.clone();
        move |_socket, data, ack| {
            let io = io.clone();
            async move {
                let result = io
                    .to(room_of(&data, "room"))
                    .except(room_of(&data, "except"))
                    .emit("room-message", &data["payload"])
                    .await;
                ok(ack, json!({"ok": result.is_ok()}));
            }
        }
    });
    socket.on("everyone", {
        let io = io.clone();
        move |_socket, data, ack| {
            let io = io.clone();
            async move {
                let result = io.emit("everyone", &data).await;
                ok(ack, json!({"ok": result.is_ok()}));
            }
        }
    });
    // Binary both ways: answer with the received attachments plus one of our own.
    socket.on_args("binary", |socket, args, _ack| async move {
        let mut reply = Args::new().value(json!(args.binary.len()));
        for data in args.binary {
            reply = reply.push_binary(data);
        }
        reply = reply.push_binary(vec![0xde_u8, 0xad, 0xbe, 0xef]);
        let _ = socket.emit_args("binary-back", reply);
    });
    // Server → client emit with ack: the answer is reported through the ack of this event.
    socket.on("ask-me", |socket, data, ack| async move {
        let answer = socket.emit_with_ack("question", &data).await;
        ok(
            ack,
            match answer {
                Ok(args) => json!({"ok": true, "answer": args.values}),
                Err(err) => json!({"ok": false, "error": err.to_string()}),
            },
        );
    });
    socket.on("rooms-of-server", {
        let io = io.clone();
        move |_socket, data, ack| {
            let io = io.clone();
            async move {
                let sockets = io.in_(room_of(&data, "room")).fetch_sockets().await;
                ok(ack, json!({"count": sockets.map(|s| s.len()).unwrap_or(0)}));
            }
        }
    });
    socket.on("kick-room", {
        let io = io.clone();
        move |_socket, data, ack| {
            let io = io.clone();
            async move {
                let room = room_of(&data, "room");
                let left = io
                    .in_(room.clone())
                    .sockets_leave(room.clone())
                    .await
                    .is_ok();
                ok(ack, json!({"ok": left}));
            }
        }
    });
    socket.on("disconnect-room", {
        let io = io.clone();
        move |_socket, data, ack| {
            let io = io.clone();
            async move {
                ok(ack, json!({"ok": true}));
                let _ = io.in_(room_of(&data, "room")).disconnect_sockets().await;
            }
        }
    });
    socket.on("disconnect-me", |socket, _data, _ack| async move {
        socket.disconnect();
    });
    socket.on("panic", |_socket, _data, _ack| async move {
        panic!("handler panic requested by a test");
    });
    Ok(())
}

/// Only the events of bench/realtime/node-server.mjs, so both servers run the same app.
pub fn build_bench(config: Config) -> Servers {
    let echo = Engine::new(
        Config {
            path: "/engine.io/".to_owned(),
            ..config.clone()
        },
        Echo,
    );
    let io = SocketIo::builder(config).build();
    io.ns("/", |socket: SocketRef, auth: Value| async move {
        let _ = socket.emit("auth", &auth);
        socket.on_args("message", |socket, args, _ack| async move {
            let _ = socket.emit_args("message-back", args);
        });
        socket.on_args("message-with-ack", |_socket, args, ack| async move {
            if let Some(ack) = ack {
                let _ = ack.send_args(args);
            }
        });
        socket.on("join", |socket, data, ack| async move {
            socket.join(room_of(&data, "room")).await;
            ok(
                ack,
                json!({"ok": true, "rooms": socket.rooms().await.len()}),
            );
        });
        socket.on("to-room", |socket, data, ack| async move {
            let result = socket
                .to(room_of(&data, "room"))
                .emit("room-message", &data["payload"])
                .await;
            ok(ack, json!({"ok": result.is_ok()}));
        });
        Ok(())
    });
    Servers { io, echo }
}
