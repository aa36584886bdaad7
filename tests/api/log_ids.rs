//! The binary's log, text and JSON: a line logged while serving an HTTP request names the
//! request's id, and one logged inside a socket event names the socket's id (the sid its
//! client was given), so an operator can follow one request or one socket through the log.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::{Server, guest_token, post_json, start, talkconnect, workdir};

/// Creates a room over REST, then leaves it from a Socket.IO socket; returns the room id and
/// the socket's sid.
fn create_over_http_and_leave_over_a_socket(address: &str) -> (String, String) {
    let token = guest_token(address);
    let client = reqwest::blocking::Client::new();
    let title = json!({"title": "Logs"});
    let (status, room) = post_json(&client, address, "/api/rooms", Some(&token), title);
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().unwrap().to_owned();
    let port = address.rsplit(':').next().unwrap();
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sid = rt.block_on(leave_over_a_socket(&url, &token, &room_id));
    (room_id, sid)
}

async fn leave_over_a_socket(url: &str, token: &str, room_id: &str) -> String {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(next_text_of(&mut ws).await.starts_with('0'));
    let connect = format!("40{}", json!({ "token": token }));
    ws.send(Message::text(connect)).await.unwrap();
    let sid = loop {
        let text = next_text_of(&mut ws).await;
        if let Some(body) = text.strip_prefix("40") {
            let body: Value = serde_json::from_str(body).unwrap();
            break body["sid"].as_str().unwrap().to_owned();
        }
    };
    let leave = format!("421{}", json!(["room:leave", { "roomId": room_id }]));
    ws.send(Message::text(leave)).await.unwrap();
    loop {
        let text = next_text_of(&mut ws).await;
        if let Some(ack) = text.strip_prefix("431") {
            assert!(ack.contains("\"ok\":true"), "{ack}");
            break;
        }
    }
    sid
}

async fn next_text_of(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> String {
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(text) if text.as_str() != "2" => return text.to_string(),
            _ => {}
        }
    }
}

fn server(json: bool) -> (Server, std::path::PathBuf) {
    let dir = workdir();
    let mut cmd = talkconnect(&dir);
    cmd.env("TALKCONNECT__SERVER__PORT", "0")
        .env("TALKCONNECT__LOG__JSON", json.to_string());
    (start(cmd), dir)
}

fn is_uuid(text: &str) -> bool {
    text.parse::<uuid::Uuid>().is_ok()
}

#[test]
fn text_log_lines_name_their_request_and_their_socket() {
    let (server, dir) = server(false);
    let (room_id, sid) = create_over_http_and_leave_over_a_socket(&server.address);

    let created = server.line_with(&["room created", &room_id]);
    let request_id = created
        .split("request_id=")
        .nth(1)
        .and_then(|rest| rest.split([' ', '}']).next())
        .unwrap_or_else(|| panic!("no request id in {created}"));
    assert!(is_uuid(request_id), "{created}");
    assert!(created.contains("path=/api/rooms"), "{created}");

    let left = server.line_with(&[" left", &room_id]);
    assert!(left.contains(&format!("sid={sid}")), "{left}");
    assert!(left.contains("event=\"room:leave\""), "{left}");
    assert!(!left.contains("request_id"), "{left}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_log_lines_name_their_request_and_their_socket() {
    let (server, dir) = server(true);
    let (room_id, sid) = create_over_http_and_leave_over_a_socket(&server.address);

    let parse = |line: String| -> Value { serde_json::from_str(&line).unwrap() };
    let created = parse(server.line_with(&["room created", &room_id]));
    let span = &created["span"];
    assert_eq!(span["name"], "request", "{created}");
    assert!(
        is_uuid(span["request_id"].as_str().unwrap_or("")),
        "{created}"
    );
    assert_eq!(span["path"], "/api/rooms", "{created}");

    let left = parse(server.line_with(&["\"left\"", &room_id]));
    assert_eq!(left["span"]["sid"], sid.as_str(), "{left}");
    assert_eq!(left["span"]["event"], "room:leave", "{left}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
