//! Hard mutes reach the SFU: a webrtc-rs publisher that keeps sending audio after a host
//! locks its microphone delivers no more audio packets to the others (its camera still
//! flows), and a room turned `noMic` stops every microphone the same way. The counters are
//! the subscriber's own: packets received per publisher and kind.

use std::time::Duration;

use serde_json::json;
use talkconnect::ids::RoomId;
use talkconnect_testkit::sfu_client::{Client, wait_for};

use crate::gateway_peer::{self, sfu_settings};
use crate::helpers::{Backend, TestApp, TestUser};

/// An SFU app on the UDP `ports`, and a room of `title` its host opened and a guest joined.
async fn host_and_guest(
    ports: (&'static str, &'static str),
    title: &str,
) -> (TestApp, TestUser, TestUser, RoomId) {
    let app = TestApp::spawn_with(Backend::Sqlite, &sfu_settings(ports)).await;
    let host = app.guest("Host").await;
    let guest = app.guest("Guest").await;
    let room = app.room(&host, json!({ "title": title })).await;
    let (status, _) = app.join(room, &guest).await;
    assert_eq!(status, 200);
    (app, host, guest, room)
}

/// `host` hard-mutes `guest`'s microphone.
async fn lock_mic(app: &TestApp, room: RoomId, host: &TestUser, guest: &TestUser) {
    let (status, body) = app
        .post(
            &format!("/api/rooms/{room}/participants/{}/mute", guest.id),
            Some(&host.token),
            json!({ "mic": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Audio packets `subscriber` received from `publisher` in `window`, once what was in flight
/// has landed.
async fn audio_in(subscriber: &Client, publisher: &str, window: Duration) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = subscriber.state.received_from(publisher).audio;
    tokio::time::sleep(window).await;
    subscriber.state.received_from(publisher).audio - before
}

#[actix_web::test]
async fn a_hard_muted_publisher_delivers_no_audio_through_the_sfu() {
    let (app, host, guest, room) = host_and_guest(("47340", "47359"), "Loud").await;

    let sfu = app.state.media.sfu_handle().expect("SFU mode");
    let room_key = room.to_string();
    let (host_id, guest_id) = (host.id.to_string(), guest.id.to_string());
    let mut a = Client::join(&sfu, &room_key, &host_id, true).await;
    let mut b = Client::join(&sfu, &room_key, &guest_id, true).await;
    a.start_media(30, 400);
    b.start_media(30, 400);
    let (a_state, b_state) = (a.state.clone(), b.state.clone());
    wait_for("audio both ways", Duration::from_secs(20), || {
        a_state.received_from(&guest_id).audio > 20 && b_state.received_from(&host_id).audio > 20
    })
    .await;
    assert!(audio_in(&a, &guest_id, Duration::from_secs(1)).await > 10);

    // The host locks the guest's microphone; the guest's client keeps sending.
    lock_mic(&app, room, &host, &guest).await;
    let sent_before = b
        .state
        .sent_packets
        .load(std::sync::atomic::Ordering::Relaxed);
    let video_before = a.state.received_from(&guest_id).video;
    assert_eq!(
        audio_in(&a, &guest_id, Duration::from_secs(2)).await,
        0,
        "a hard-muted microphone still reached the host"
    );
    assert!(
        b.state
            .sent_packets
            .load(std::sync::atomic::Ordering::Relaxed)
            > sent_before + 20,
        "the muted client kept sending"
    );
    assert!(
        a.state.received_from(&guest_id).video > video_before + 20,
        "the camera, not locked, still flows"
    );
    // The host's own microphone still reaches the guest.
    assert!(audio_in(&b, &host_id, Duration::from_secs(1)).await > 10);

    // A noMic room: every microphone stops, the host's too.
    let (status, body) = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/rooms/{room}"),
            Some(&host.token),
            Some(json!({ "noMic": true })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        audio_in(&b, &host_id, Duration::from_secs(2)).await,
        0,
        "a noMic room still forwarded a microphone"
    );
    a.close().await;
    b.close().await;
}

/// Someone hard-muted before their media session exists: the session `sfu:join` opens
/// through the gateway starts muted in the SFU, whatever the client sends.
#[actix_web::test]
async fn a_new_sfu_session_of_a_hard_muted_person_starts_muted() {
    let (app, host, guest, room) = host_and_guest(("47360", "47379"), "Quiet").await;
    lock_mic(&app, room, &host, &guest).await;

    let sfu = app.state.media.sfu_handle().expect("SFU mode");
    let guest_id = guest.id.to_string();
    let listener = Client::join(&sfu, &room.to_string(), &host.id.to_string(), false).await;
    let mut publisher = gateway_peer::join(&app, &guest, room).await;
    publisher.peer.start_media(30, 400);
    let state = listener.state.clone();
    wait_for("the guest's camera", Duration::from_secs(20), || {
        state.received_from(&guest_id).video > 20
    })
    .await;
    assert!(
        publisher
            .peer
            .state
            .sent_packets
            .load(std::sync::atomic::Ordering::Relaxed)
            > 40
    );
    assert_eq!(
        listener.state.received_from(&guest_id).audio,
        0,
        "a hard-muted microphone reached the host in a new session"
    );
    assert_eq!(
        audio_in(&listener, &guest_id, Duration::from_secs(1)).await,
        0
    );
    publisher.close().await;
    listener.close().await;
}
