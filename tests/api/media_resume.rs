//! A media session outlives a socket that vanished (its network went away: no pong) and a
//! new socket of the same page takes it over with `sfu:resume`: the peer connection, its
//! tracks and the others' view of them never stop, and what the SFU says from then on reaches
//! the new socket. Unclaimed, it closes after `[media] resume_grace_secs`; a socket closed
//! cleanly ends its session without waiting. Real gateway, real SFU, webrtc-rs peers.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use talkconnect_testkit::sfu_client::{Client, wait_for};
use tokio_tungstenite::tungstenite::Message;

use crate::gateway_peer::{self, resume_on_new_socket, sfu_settings};
use crate::helpers::{Backend, TestApp};

const MEDIA: Duration = Duration::from_secs(20);

/// Short Engine.IO pings, so a silent socket is found dead within a second.
const FAST_PINGS: [(&str, &str); 2] = [
    ("TALKCONNECT__REALTIME__PING_INTERVAL_MS", "300"),
    ("TALKCONNECT__REALTIME__PING_TIMEOUT_MS", "300"),
];

async fn app_with(ports: (&'static str, &'static str), extra: &[(&str, &str)]) -> TestApp {
    let mut settings: Vec<(&str, &str)> = sfu_settings(ports).to_vec();
    settings.extend_from_slice(&FAST_PINGS);
    settings.extend_from_slice(extra);
    TestApp::spawn_with(Backend::Sqlite, &settings).await
}

/// Waits until the server has dropped sockets down to `count` (a silent one timed out).
async fn sockets_down_to(app: &TestApp, count: usize) {
    let io = app.state.io.clone();
    wait_for("the silent socket dropped", MEDIA, || {
        io.socket_count("/") <= count
    })
    .await;
}

#[actix_web::test]
async fn a_new_socket_takes_over_the_media_session_of_one_that_vanished() {
    let app = app_with(("47390", "47395"), &[]).await;
    let [host, guest, third] = app.guests(["Host", "Guest", "Third"]).await;
    let room = app.room(&host, json!({ "title": "Moving" })).await;
    for user in [&guest, &third] {
        let (status, _) = app.join(room, user).await;
        assert_eq!(status, 200);
    }
    let sfu = app.state.media.sfu_handle().expect("SFU mode");
    let (room_key, guest_id) = (room.to_string(), guest.id.to_string());
    let listener = Client::join(&sfu, &room_key, &host.id.to_string(), false).await;
    let mut mover = gateway_peer::join(&app, &guest, room).await;
    mover.peer.start_media(30, 400);
    let heard = listener.state.clone();
    wait_for("the guest's camera at the host", MEDIA, || {
        heard.received_from(&guest_id).video > 20
    })
    .await;
    let sockets = app.state.io.socket_count("/");

    // The guest's socket goes silent; the server times it out.
    let _dead = mover.go_silent().await;
    sockets_down_to(&app, sockets - 1).await;
    // The session was kept: the host still receives the guest.
    let before = listener.state.received_from(&guest_id).video;
    wait_for("the guest's camera, with its socket gone", MEDIA, || {
        heard.received_from(&guest_id).video > before + 30
    })
    .await;
    // (The host's listener talks to the SFU directly: only the guest's is the gateway's.)
    assert_eq!(
        app.state.media.sessions_here(),
        1,
        "the guest's session is kept"
    );

    // Only the session's own id, and only its own user, take it over.
    for (who, id) in [
        (&guest, "123"),
        (&guest, "not a number"),
        (&third, &*mover.session_id),
    ] {
        let (_socket, ack) = resume_on_new_socket(&app, who, room, id).await;
        assert_eq!(ack["ok"], false, "{ack}");
        assert_eq!(ack["error"]["code"], "SFU_NOT_JOINED", "{ack}");
    }
    let session = mover.session_id.clone();
    let ack = gateway_peer::resume(&mut mover, &app, &guest, room, &session).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["sessionId"], mover.session_id.as_str(), "{ack}");
    assert!(ack["iceServers"].is_array(), "{ack}");

    // A new publisher: the SFU's offer to the guest reaches the new socket, the guest answers
    // over it and receives the newcomer.
    let third_id = third.id.to_string();
    let mut newcomer = Client::join(&sfu, &room_key, &third_id, true).await;
    newcomer.start_media(30, 400);
    let received = mover.peer.state.clone();
    wait_for("the newcomer's camera at the guest", MEDIA, || {
        received.received_from(&third_id).video > 20
    })
    .await;
    let before = listener.state.received_from(&guest_id).video;
    wait_for("the guest's camera after the resume", MEDIA, || {
        heard.received_from(&guest_id).video > before + 30
    })
    .await;
    newcomer.close().await;
    mover.close().await;
    listener.close().await;
}

#[actix_web::test]
async fn a_cleanly_closed_socket_ends_its_session_without_waiting() {
    // A grace far longer than the test waits.
    let grace = [("TALKCONNECT__MEDIA__RESUME_GRACE_SECS", "90")];
    let app = app_with(("47396", "47397"), &grace).await;
    let [host, guest] = app.guests(["Host", "Guest"]).await;
    let room = app.room(&host, json!({ "title": "Closing" })).await;
    let (status, _) = app.join(room, &guest).await;
    assert_eq!(status, 200);
    let mut leaver = gateway_peer::join(&app, &guest, room).await;
    let media = app.state.media.clone();
    assert_eq!(media.sessions_here(), 1);
    let mut ws = leaver.go_silent().await;
    ws.send(Message::Close(None)).await.unwrap();
    wait_for("a cleanly closed socket's session ends", MEDIA, || {
        media.sessions_here() == 0
    })
    .await;
    leaver.close().await;
}

#[actix_web::test]
async fn an_unclaimed_session_closes_after_the_grace() {
    let grace = [("TALKCONNECT__MEDIA__RESUME_GRACE_SECS", "1")];
    let app = app_with(("47398", "47399"), &grace).await;
    let [host, guest] = app.guests(["Host", "Guest"]).await;
    let room = app.room(&host, json!({ "title": "Gone" })).await;
    let (status, _) = app.join(room, &guest).await;
    assert_eq!(status, 200);
    let media = app.state.media.clone();
    let mut mover = gateway_peer::join(&app, &guest, room).await;
    assert_eq!(media.sessions_here(), 1);
    let sockets = app.state.io.socket_count("/");
    let _dead = mover.go_silent().await;
    sockets_down_to(&app, sockets - 1).await;
    wait_for("the unclaimed session ends", MEDIA, || {
        media.sessions_here() == 0
    })
    .await;
    let session = mover.session_id.clone();
    let ack = gateway_peer::resume(&mut mover, &app, &guest, room, &session).await;
    assert_eq!(ack["error"]["code"], "SFU_NOT_JOINED", "{ack}");
    mover.close().await;
}
