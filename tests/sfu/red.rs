//! Redundant audio (RFC 2198 RED) through the real SFU: a webrtc-rs publisher that offers RED
//! first and sends its voice in it; a subscriber that takes RED gets the RED packets, one
//! that does not gets plain Opus (the primary block alone, its label intact), and so does one
//! whose connection had already agreed on Opus alone (it published first, without RED, as
//! Firefox does); no audio is lost on the way for any of them.

use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig};
use talkconnect_testkit::sfu_client::{Client, wait_for};

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_reaches_subscribers_that_take_it_and_plain_opus_the_others() {
    let sfu = Sfu::start(SfuConfig::loopback(42970, 42989)).expect("sfu starts");
    let handle = sfu.handle();
    let room = "room-red";
    let plain = Client::join(&handle, room, "plain", false).await;
    let redundant = Client::join_red(&handle, room, "redundant", false).await;
    // Publishes before alice arrives: its connection agreed on Opus alone.
    let publisher = Client::join(&handle, room, "publisher", true).await;
    let mut alice = Client::join_red(&handle, room, "alice", true).await;
    alice.start_media(50, 300);
    wait_for("every subscriber hears alice", LONG, || {
        [&plain, &redundant, &publisher]
            .iter()
            .all(|c| c.state.received_from("alice").audio >= 100)
    })
    .await;

    let to_plain = plain.state.received_from("alice");
    assert_eq!(to_plain.audio_red, 0, "no RED to a subscriber without it");
    let to_red = redundant.state.received_from("alice");
    assert_eq!(
        to_red.audio_red, to_red.audio,
        "every audio packet as RED to a subscriber that takes it"
    );
    let to_publisher = publisher.state.received_from("alice");
    assert_eq!(
        to_publisher.audio_red, 0,
        "no RED where Opus alone was agreed"
    );
    for (who, received) in [
        ("plain", &to_plain),
        ("redundant", &to_red),
        ("publisher", &to_publisher),
    ] {
        assert_eq!(received.mislabelled, 0, "{who}: every packet names alice");
        assert_eq!(received.lost, 0, "{who}: nothing lost on loopback");
        assert!(received.video > 0, "{who}: video too");
    }
    for client in [&plain, &redundant, &publisher] {
        assert!(client.state.errors.lock().unwrap().is_empty());
    }

    for client in [alice, plain, redundant, publisher] {
        handle.leave(room, &client.user).await.expect("leave");
        client.close().await;
    }
    sfu.shutdown().await;
}
