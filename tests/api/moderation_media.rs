//! Hard mutes reach the SFU: a webrtc-rs publisher that keeps sending audio after a host
//! locks its microphone delivers no more audio packets to the others (its camera still
//! flows), and a room turned `noMic` stops every microphone the same way. The counters are
//! the subscriber's own: packets received per publisher and kind.

use std::time::Duration;

use serde_json::json;
use talkconnect_testkit::sfu_client::{Client, wait_for};

use crate::helpers::{Backend, TestApp};

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
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1"),
            ("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true"),
            ("TALKCONNECT__SFU__UDP_PORT_MIN", "47340"),
            ("TALKCONNECT__SFU__UDP_PORT_MAX", "47359"),
        ],
    )
    .await;
    let host = app.guest("Host").await;
    let guest = app.guest("Guest").await;
    let room = app.room(&host, json!({"title": "Loud"})).await;
    let (status, _) = app.join(room, &guest).await;
    assert_eq!(status, 200);

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
    let (status, body) = app
        .post(
            &format!("/api/rooms/{room}/participants/{}/mute", guest.id),
            Some(&host.token),
            json!({ "mic": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
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
