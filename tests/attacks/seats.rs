//! Findings 4, 12 and 14: seats and the sockets that hold them. A room ends when its last
//! person is gone, whatever way they went: mid-join, by a reset connection, by a long-poll
//! that vanished. And a websocket cannot take over a session that another already upgraded.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::raw::{RawWs, text};
use crate::server::Server;

const GRACE: &str = "2";

/// A room whose only seat is `guest`'s (the host made it and left).
async fn room_left_to(server: &Server, guest_token: &str, title: &str) -> String {
    let (_, host) = server.guest("Host").await;
    let room = server.room(&host, title).await;
    let joined = server
        .http
        .post(server.url(&format!("/api/rooms/{room}/join")))
        .bearer_auth(guest_token)
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 200);
    let left = server
        .http
        .post(server.url(&format!("/api/rooms/{room}/leave")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 200);
    room
}

/// Finding 4: a socket that goes while its `room:join` waits on the database leaves no ghost
/// seat: the room still ends after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_gone_mid_join_leaves_no_ghost_seat() {
    let server = Server::start(&[("TALKCONNECT__REALTIME__SEAT_GRACE_SECS", GRACE)]).await;
    let mut rooms = Vec::new();
    for i in 0..5 {
        let (_, host) = server.guest("Host").await;
        let room = server.room(&host, &format!("Ghost {i}")).await;
        let (_, guest) = server.guest("Guest").await;
        let mut ws = RawWs::socket_io(&server.addr, &guest).await;
        // Join and go in the same breath: the join is still in the database when the
        // connection ends.
        ws.send(&text(&format!(r#"421["room:join",{{"roomId":"{room}"}}]"#)))
            .await
            .unwrap();
        ws.stream.shutdown().await.unwrap();
        drop(ws);
        // The host leaves too: only the guest's seat (taken or not) is left.
        server
            .http
            .post(server.url(&format!("/api/rooms/{room}/leave")))
            .bearer_auth(&host)
            .send()
            .await
            .unwrap();
        rooms.push(room);
    }
    for room in rooms {
        assert!(
            server
                .room_ends_within(&room, Duration::from_secs(10))
                .await,
            "room {room} is still LIVE long after its grace period"
        );
    }
}

/// Finding 14: a reset websocket is noticed at once, not at the next missed pong: the seat
/// goes on the grace clock and the room ends after it (the heartbeat here is a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_websocket_frees_its_seat_after_the_grace_period() {
    let server = Server::start(&[
        ("TALKCONNECT__REALTIME__SEAT_GRACE_SECS", GRACE),
        ("TALKCONNECT__REALTIME__PING_INTERVAL_MS", "60000"),
    ])
    .await;
    let (_, guest) = server.guest("Guest").await;
    let mut ws = RawWs::socket_io(&server.addr, &guest).await;
    let room = room_left_to(&server, &guest, "Reset").await;
    ws.send(&text(&format!(r#"421["room:join",{{"roomId":"{room}"}}]"#)))
        .await
        .unwrap();
    let ack = ws.expect("431").await;
    assert!(ack.contains(r#""ok":true"#), "{ack}");
    ws.reset();
    assert!(
        server
            .room_ends_within(&room, Duration::from_secs(15))
            .await,
        "the seat of a reset connection was held past grace + 13 s"
    );
}

/// Finding 14, long-polling: a pending poll whose connection vanished ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_long_poll_frees_its_seat_after_the_grace_period() {
    let server = Server::start(&[
        // Long enough for the socket to take the REST seat over on a loaded machine.
        ("TALKCONNECT__REALTIME__SEAT_GRACE_SECS", "5"),
        ("TALKCONNECT__REALTIME__PING_INTERVAL_MS", "60000"),
    ])
    .await;
    let (_, guest) = server.guest("Guest").await;
    let room = room_left_to(&server, &guest, "Vanished").await;
    let polling = |sid: &str| server.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
    let sid = server.polling_session().await;
    let post = |body: String| {
        let url = polling(&sid);
        let http = server.http.clone();
        async move {
            let response = http.post(url).body(body).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    let poll = || async {
        server
            .http
            .get(polling(&sid))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // As the official client does: the join only once the namespace is connected (an event
    // for a namespace still connecting is dropped, as in the reference server).
    post(format!(r#"40{{"token":"{guest}"}}"#)).await;
    let connected = poll().await;
    assert!(connected.starts_with("40{"), "{connected}");
    post(format!(r#"421["room:join",{{"roomId":"{room}"}}]"#)).await;
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let body = poll().await;
        let acked = body.contains("431");
        seen.push(body);
        if acked {
            break;
        }
    }
    let ack = seen.last().cloned().unwrap_or_default();
    assert!(
        ack.contains(r#"431[{"ok":true"#),
        "no join ack in: {seen:?}"
    );
    // A poll that waits, then its connection is reset.
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Long enough for a loaded server to have the poll waiting (parallel tests, two cores).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.set_zero_linger().unwrap();
    drop(stream);
    assert!(
        server
            .room_ends_within(&room, Duration::from_secs(15))
            .await,
        "the seat of a vanished long-poll was held past grace + 10 s"
    );
}

/// Finding 12: once a session is upgraded, a second websocket with its sid is refused (a
/// close, never `3probe`), however many sessions upgrade at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_session_cannot_be_taken_by_a_second_websocket() {
    let server = Server::start(&[("TALKCONNECT__RATE_LIMIT__ENABLED", "false")]).await;
    let tries = (0..60).map(|_| {
        let server = &server;
        async move {
            let addr = &server.addr;
            let sid = server.polling_session().await;
            let query = format!("&sid={sid}");
            let mut first = RawWs::open(addr, &query).await;
            first.send(&text("2probe")).await.unwrap();
            assert_eq!(first.next_text().await.as_deref(), Some("3probe"));
            first.send(&text("5")).await.unwrap();
            let mut second = RawWs::open(addr, &query).await;
            let _ = second.send(&text("2probe")).await;
            let answer = second.next_text().await;
            drop(first);
            answer
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let taken = answers
        .iter()
        .filter(|a| a.as_deref() == Some("3probe"))
        .count();
    assert_eq!(
        taken, 0,
        "{taken} of 60 upgraded sessions answered a second websocket"
    );
}
