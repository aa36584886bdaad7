//! The app-facing API as a gateway uses it: server-initiated emits and room operations from
//! outside any handler, disconnect handlers and their reasons, extensions, server→client acks
//! with timeout, graceful close.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use talkconnect::realtime::{AckError, Config, DisconnectReason, SocketIo, SocketRef};
use talkconnect_testkit::realtime::*;
use tokio::sync::mpsc;

#[derive(Clone, Debug, PartialEq)]
struct UserId(String);

struct App {
    io: SocketIo,
    connected: mpsc::UnboundedReceiver<SocketRef>,
    reasons: Arc<Mutex<Vec<(String, &'static str)>>>,
    disconnected: mpsc::UnboundedReceiver<()>,
}

fn app() -> App {
    let io = SocketIo::new(Config {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        ..Config::default()
    });
    let (tx, connected) = mpsc::unbounded_channel();
    let (dtx, disconnected) = mpsc::unbounded_channel();
    let reasons: Arc<Mutex<Vec<(String, &'static str)>>> = Arc::default();
    let r = reasons.clone();
    io.ns("/", move |socket: SocketRef, auth: Value| {
        let tx = tx.clone();
        let dtx = dtx.clone();
        let reasons = r.clone();
        async move {
            let user = auth["user"].as_str().unwrap_or("anon").to_owned();
            socket.extensions().insert(UserId(user));
            socket.on_disconnect(move |socket, reason: DisconnectReason| {
                let reasons = reasons.clone();
                let dtx = dtx.clone();
                async move {
                    let user = socket.extensions().get::<UserId>().unwrap().0;
                    reasons.lock().push((user, reason.as_str()));
                    let _ = dtx.send(());
                }
            });
            let _ = tx.send(socket);
            Ok(())
        }
    });
    App {
        io,
        connected,
        reasons,
        disconnected,
    }
}

async fn client(server: &TestServer, user: &str) -> Ws {
    let (mut ws, _) = server.ws_session("/socket.io/").await;
    send_text(&mut ws, &format!(r#"40{{"user":"{user}"}}"#)).await;
    assert!(next_text(&mut ws).await.starts_with("40{"));
    ws
}

#[actix_web::test]
async fn server_initiated_room_operations_and_emits() {
    let mut app = app();
    let server = TestServer::serve(app.io.clone()).await;
    let mut alice = client(&server, "alice").await;
    let a = app.connected.recv().await.unwrap();
    let mut bob = client(&server, "bob").await;
    let b = app.connected.recv().await.unwrap();
    assert_eq!(a.extensions().get::<UserId>(), Some(UserId("alice".into())));
    assert!(app.io.socket("/", a.id()).is_some());

    a.join("room-1").await;
    b.join_all(["room-1", "room-2"]).await;
    app.io
        .to("room-1")
        .except("room-2")
        .emit("hello", &json!({"n": 1}))
        .await
        .unwrap();
    app.io
        .to(b.id().as_str())
        .emit("direct", &"bob only")
        .await
        .unwrap();
    assert_eq!(next_text(&mut alice).await, r#"42["hello",{"n":1}]"#);
    assert_eq!(next_text(&mut bob).await, r#"42["direct","bob only"]"#);

    let in_room = app.io.in_("room-1").fetch_sockets().await.unwrap();
    assert_eq!(in_room.len(), 2);
    app.io.in_("room-2").sockets_leave("room-1").await.unwrap();
    let mut ids: Vec<_> = app
        .io
        .in_("room-1")
        .fetch_sockets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec![a.id()]);
    assert!(b.rooms().await.iter().any(|r| &**r == "room-2"));
    server.stop().await;
}

#[actix_web::test]
async fn server_to_client_ack_succeeds_or_times_out() {
    let mut app = app();
    let server = TestServer::serve(app.io.clone()).await;
    let mut ws = client(&server, "carol").await;
    let socket = app.connected.recv().await.unwrap();
    let ask = tokio::spawn({
        let socket = socket.clone();
        async move { socket.emit_with_ack("question", &json!("?")).await }
    });
    let question = next_text(&mut ws).await;
    let id: String = question[2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    send_text(&mut ws, &format!(r#"43{id}["answer",2]"#)).await;
    let args = ask.await.unwrap().unwrap();
    assert_eq!(args.values, vec![json!("answer"), json!(2)]);

    let silent = socket
        .emit_args_with_ack("question", Default::default(), Duration::from_millis(100))
        .await;
    assert!(matches!(silent, Err(AckError::Timeout)));
    server.stop().await;
}

#[actix_web::test]
async fn disconnect_handlers_get_the_reason() {
    let mut app = app();
    let server = TestServer::serve(app.io.clone()).await;
    let mut dave = client(&server, "dave").await;
    let d = app.connected.recv().await.unwrap();
    let mut erin = client(&server, "erin").await;
    app.connected.recv().await.unwrap();
    let frank = client(&server, "frank").await;
    app.connected.recv().await.unwrap();

    // The server disconnects dave from the namespace: he is told with a DISCONNECT packet.
    d.disconnect();
    assert_eq!(next_text(&mut dave).await, "41");
    app.disconnected.recv().await.unwrap();
    // erin leaves by herself; frank's connection just drops.
    send_text(&mut erin, "41").await;
    app.disconnected.recv().await.unwrap();
    drop(frank);
    app.disconnected.recv().await.unwrap();

    let mut reasons = app.reasons.lock().clone();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("dave".to_owned(), "server namespace disconnect"),
            ("erin".to_owned(), "client namespace disconnect"),
            ("frank".to_owned(), "transport close"),
        ]
    );
    assert_eq!(app.io.socket_count("/"), 0);
    server.stop().await;
}

#[actix_web::test]
async fn close_ends_every_connection() {
    let mut app = app();
    let server = TestServer::serve(app.io.clone()).await;
    let mut gina = client(&server, "gina").await;
    app.connected.recv().await.unwrap();
    app.io.close();
    assert!(closed(&mut gina).await);
    app.disconnected.recv().await.unwrap();
    assert_eq!(
        app.reasons.lock()[0],
        ("gina".to_owned(), "forced server close")
    );
    assert_eq!(app.io.connection_count(), 0);
    server.stop().await;
}
