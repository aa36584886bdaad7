//! A stopping server (SIGTERM: a restart or an upgrade) drains: `/readyz` says 503, it opens no
//! room, gives no new seat and takes no new connection, confirms the seats already held, and
//! tells its sockets to reconnect. The binary: one signal lets requests in flight finish, a
//! second one stops at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::cli::{start, talkconnect, workdir};
use crate::helpers::{Backend, TestApp, code};
use crate::on_every_backend;

on_every_backend!(a_draining_server_keeps_seats_but_takes_no_new_ones);

async fn a_draining_server_keeps_seats_but_takes_no_new_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = app.guest("Host").await;
    let seated = app.guest("Seated").await;
    let newcomer = app.guest("Newcomer").await;
    let room = app
        .room(&host, json!({ "title": "Before the restart" }))
        .await;
    assert_eq!(app.join(room, &seated).await.0, StatusCode::OK);
    let handshake = format!("{}/socket.io/?EIO=4&transport=polling", app.address);
    let before = app.client.get(&handshake).send().await.unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    assert_eq!(app.state.io.connection_count(), 1);

    app.state.drain().await;

    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVER_DRAINING")
    );
    // No new room, no new seat; the answer says when to try again (another replica will).
    let response = app
        .client
        .post(format!("{}/api/rooms", app.address))
        .bearer_auth(&newcomer.token)
        .json(&json!({ "title": "During the restart" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "SERVER_DRAINING");
    let (status, body) = app.join(room, &newcomer).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVER_DRAINING")
    );
    // A seat held already is confirmed, not refused.
    let (status, body) = app.join(room, &seated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No new connection; the open one was closed so that its client reconnects.
    let refused = app.client.get(&handshake).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.io.connection_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.state.io.connection_count(), 0);
    assert!(app.state.drained());
    // The room goes on: both seats are kept for their owners to come back.
    let (status, detail) = app.get(&format!("/api/rooms/{room}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "LIVE", "{detail}");
    assert_eq!(
        detail["participants"].as_array().unwrap().len(),
        2,
        "{detail}"
    );
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A request whose body has not all arrived: the server waits for it.
fn request_in_flight(address: &str) -> TcpStream {
    let port = address.rsplit(':').next().unwrap();
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let body = br#"{"displayName":"Slow"}"#;
    write!(
        stream,
        "POST /api/auth/guest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..5]).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Waits for the process to exit (up to `within`); its exit status.
fn exit_within(
    server: &mut crate::cli::Server,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The binary with nothing configured but a free port.
fn start_binary() -> (std::path::PathBuf, crate::cli::Server) {
    let dir = workdir();
    let mut cmd = talkconnect(&dir);
    cmd.env("TALKCONNECT__SERVER__PORT", "0");
    (dir.clone(), start(cmd))
}

#[test]
fn one_signal_lets_requests_in_flight_finish() {
    let (dir, mut server) = start_binary();
    let mut stream = request_in_flight(&server.address);
    std::thread::sleep(Duration::from_millis(300));
    signal(server.child.id(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    stream
        .write_all(&br#"{"displayName":"Slow"}"#[5..])
        .unwrap();
    let mut answer = [0u8; 12];
    let read = stream.read_exact(&mut answer);
    let status = exit_within(&mut server, Duration::from_secs(30)).expect("the server exits");
    assert_eq!(
        (read.map_err(|e| e.to_string()), &answer),
        (Ok(()), b"HTTP/1.1 201"),
        "{status:?}"
    );
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_signal_during_the_drain_stops_at_once() {
    let (dir, mut server) = start_binary();
    let mut stream = request_in_flight(&server.address);
    std::thread::sleep(Duration::from_millis(300));
    signal(server.child.id(), "TERM");
    // The first signal waits for the request (up to server.drain_secs)...
    assert!(exit_within(&mut server, Duration::from_secs(1)).is_none());
    signal(server.child.id(), "TERM");
    // ...the second does not.
    let status = exit_within(&mut server, Duration::from_secs(5)).expect("the server exits");
    assert!(status.success(), "{status}");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        !answer.contains("201"),
        "the unfinished request got no answer: {answer}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
