//! Simulcast through the real SFU with a webrtc-rs publisher that sends three layers as a
//! browser does (rids `l`, `m`, `h` on their own SSRCs, with the mid and rid extensions, VP8
//! keyframes that give each layer's size): a subscriber with no tile size gets the top layer
//! alone; one that shows the tile 180 pixels high is switched to the lowest layer, with its
//! sequence numbers continuous; naming a larger tile brings it back up.

use std::collections::HashMap;
use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig, SfuHandle};
use talkconnect_testkit::sfu_client::{Client, ClientState, wait_for};

const LONG: Duration = Duration::from_secs(20);

/// Packets (audio + video) `state` received from alice while she sends 100 more packets of
/// audio and top layer; and the top-layer-plus-audio count she sent meanwhile.
async fn window(alice: &Client, state: &ClientState) -> (u64, u64) {
    let sent = || {
        alice
            .state
            .sent_packets
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let received = || {
        let r = state.received_from("alice");
        r.audio + r.video
    };
    let (s0, r0) = (sent(), received());
    wait_for("alice sends 250 packets", LONG, || sent() >= s0 + 250).await;
    (received() - r0, sent() - s0)
}

/// Carol shows alice's tile `height` pixels high; returns once the SFU switched her layer
/// and the switch's keyframe (one a second per layer) has had time to land.
async fn carol_shows_alice_at(handle: &SfuHandle, room: &str, height: u16) {
    let switches = handle.stats().layer_switches;
    handle
        .set_tile_heights(room, "carol", HashMap::from([("alice".to_owned(), height)]))
        .await
        .expect("tile heights");
    wait_for("carol is switched", LONG, || {
        handle.stats().layer_switches > switches
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_one_layer_chosen_by_its_tile_size_with_continuous_numbers() {
    let sfu = Sfu::start(SfuConfig::loopback(42950, 42969)).expect("sfu starts");
    let handle = sfu.handle();
    let room = "room-simulcast";
    let bob = Client::join(&handle, room, "bob", false).await;
    let carol = Client::join(&handle, room, "carol", false).await;
    let mut alice = Client::join_simulcast(&handle, room, "alice").await;
    // Per 20 ms: 1 audio packet, 4 of `h`, 2 of `m`, 1 of `l`.
    alice.start_media(200, 600);
    wait_for("bob and carol get alice's video", LONG, || {
        bob.state.received_from("alice").video >= 100
            && carol.state.received_from("alice").video >= 100
    })
    .await;

    // No tile size: the top layer, and nothing of the others.
    let (got, sent) = window(&alice, &bob.state).await;
    assert!(
        got * 10 >= sent * 9 && got * 10 <= sent * 11,
        "bob receives the top layer and audio alone: {got} packets while alice sent {sent} of them"
    );

    // Carol shows alice 180 pixels high: the lowest layer (320x180) is enough.
    carol_shows_alice_at(&handle, room, 180).await;
    let lost = carol.state.received_from("alice").lost;
    let (got, sent) = window(&alice, &carol.state).await;
    // Of each 5 packets alice sends of audio and `h`, carol now gets 2: audio and `l`.
    assert!(
        got * 5 >= sent * 2 * 9 / 10 && got * 5 <= sent * 2 * 11 / 10,
        "carol receives the lowest layer and audio: {got} packets while alice sent {sent} of audio and h"
    );
    assert_eq!(
        carol.state.received_from("alice").lost,
        lost,
        "the switch leaves no gap in carol's sequence numbers"
    );
    let (got, sent) = window(&alice, &bob.state).await;
    assert!(
        got * 10 >= sent * 9,
        "bob still gets the top layer: {got} of {sent}"
    );

    // A 700-pixel tile needs the top layer again.
    carol_shows_alice_at(&handle, room, 700).await;
    let (got, sent) = window(&alice, &carol.state).await;
    assert!(
        got * 10 >= sent * 9 && got * 10 <= sent * 11,
        "carol is back on the top layer: {got} of {sent}"
    );
    for client in [&bob, &carol] {
        assert_eq!(
            client.state.received_from("alice").mislabelled,
            0,
            "every packet names its publisher"
        );
        assert!(client.state.errors.lock().unwrap().is_empty());
    }

    for client in [alice, bob, carol] {
        handle.leave(room, &client.user).await.expect("leave");
        client.close().await;
    }
    sfu.shutdown().await;
}
