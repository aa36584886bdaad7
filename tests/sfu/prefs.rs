//! A subscriber's receive preferences: audio-only (`set_receive_video(false)`) stops every
//! video packet to that subscriber alone, chosen before a publisher arrives or while its video
//! flows, while audio and the other subscribers go on; turning video back on starts it with a
//! keyframe request. The server's SDPs ask for Opus in-band FEC and DTX.

use std::sync::atomic::Ordering;
use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig, SfuError};
use talkconnect_testkit::sfu_client::{Client, wait_for};

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_stops_video_to_that_subscriber_alone_and_resumes_with_a_keyframe() {
    let sfu = Sfu::start(SfuConfig::loopback(42580, 42599)).expect("sfu starts");
    let handle = sfu.handle();
    let room = "room-prefs";

    // Bob chooses audio-only before anyone publishes: legs made later are skipped too.
    let bob = Client::join(&handle, room, "bob", false).await;
    let carol = Client::join(&handle, room, "carol", false).await;
    handle
        .set_receive_video(room, "bob", false)
        .await
        .expect("audio-only");
    let mut alice = Client::join(&handle, room, "alice", true).await;
    alice.start_media(150, 900);
    wait_for("carol gets alice's video, bob her audio", LONG, || {
        carol.state.received_from("alice").video >= 50
            && bob.state.received_from("alice").audio >= 50
    })
    .await;
    assert_eq!(
        bob.state.received_from("alice").video,
        0,
        "no video reaches an audio-only subscriber"
    );
    let offer = bob.state.last_offer_sdp.lock().unwrap().clone();
    assert!(
        offer.contains("useinbandfec=1") && offer.contains("usedtx=1"),
        "the server's Opus fmtp asks for FEC and DTX: {offer}"
    );

    let plis = alice.state.keyframe_requests.load(Ordering::SeqCst);
    handle
        .set_receive_video(room, "bob", true)
        .await
        .expect("video again");
    wait_for("bob's video starts", LONG, || {
        bob.state.received_from("alice").video > 20
    })
    .await;
    wait_for("resuming asks the publisher for a keyframe", LONG, || {
        alice.state.keyframe_requests.load(Ordering::SeqCst) > plis
    })
    .await;

    // Audio-only again, on a leg that is flowing.
    handle
        .set_receive_video(room, "bob", false)
        .await
        .expect("audio-only again");
    let bob_audio = |n: u64| {
        let bob = &bob;
        move || bob.state.received_from("alice").audio >= n
    };
    // Packets already on the wire land first: settle on audio progress, not on the clock.
    let a0 = bob.state.received_from("alice").audio;
    wait_for("bob's audio goes on", LONG, bob_audio(a0 + 25)).await;
    let (v1, carol_v1) = (
        bob.state.received_from("alice").video,
        carol.state.received_from("alice").video,
    );
    let a1 = bob.state.received_from("alice").audio;
    wait_for("more audio for bob, audio-only", LONG, bob_audio(a1 + 50)).await;
    assert_eq!(
        bob.state.received_from("alice").video,
        v1,
        "video stops for the audio-only subscriber"
    );
    assert!(
        carol.state.received_from("alice").video > carol_v1,
        "the other subscriber still gets video"
    );
    assert!(bob.state.errors.lock().unwrap().is_empty());

    assert!(matches!(
        handle.set_receive_video(room, "nobody", false).await,
        Err(SfuError::UnknownParticipant)
    ));
    assert!(matches!(
        handle.set_receive_video("no-room", "bob", false).await,
        Err(SfuError::UnknownRoom)
    ));

    for client in [alice, bob, carol] {
        handle.leave(room, &client.user).await.expect("leave");
        client.close().await;
    }
    sfu.shutdown().await;
}
