//! Real webrtc-rs peers on loopback through the SFU's public API: fan-out with publisher
//! labels, keyframe requests for late joiners, mute/unmute, leave, and clean teardown.

use std::sync::atomic::Ordering;
use std::time::Duration;
use talkconnect::sfu::{CloseReason, MediaKind, Sfu, SfuConfig};
use talkconnect_testkit::sfu_client::{Client, has_kind, wait_for};

const LONG: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_to_every_subscriber_and_state_goes_away_with_participants() {
    init_tracing();
    let sfu = Sfu::start(SfuConfig::loopback(42000, 42049)).expect("sfu starts");
    let handle = sfu.handle();
    let room = "room-a";

    let mut alice = Client::join(&handle, room, "alice", true).await;
    alice.start_media(150, 900);
    let bob = Client::join(&handle, room, "bob", false).await;
    let carol = Client::join(&handle, room, "carol", false).await;

    for sub in [&bob, &carol] {
        wait_for("alice's audio and video at a subscriber", LONG, || {
            let r = sub.state.received_from("alice");
            r.audio >= 25 && r.video >= 50
        })
        .await;
        let r = sub.state.received_from("alice");
        assert_eq!(
            r.mislabelled, 0,
            "every packet on stream 'alice' carries alice's payload"
        );
        let tracks = sub.state.tracks.lock().unwrap().clone();
        assert!(
            has_kind(&tracks, "alice", MediaKind::Audio),
            "track map: {tracks:?}"
        );
        assert!(
            has_kind(&tracks, "alice", MediaKind::Video),
            "track map: {tracks:?}"
        );
        assert!(sub.state.errors.lock().unwrap().is_empty());
    }
    wait_for("a keyframe request at the publisher", LONG, || {
        alice.state.keyframe_requests.load(Ordering::SeqCst) >= 1
    })
    .await;

    // A late subscriber causes a fresh keyframe request once it is connected.
    let before = alice.state.keyframe_requests.load(Ordering::SeqCst);
    let dave = Client::join(&handle, room, "dave", false).await;
    wait_for("late joiner gets media", LONG, || {
        dave.state.received_from("alice").video >= 20
    })
    .await;
    wait_for("late joiner triggers a PLI", LONG, || {
        alice.state.keyframe_requests.load(Ordering::SeqCst) > before
    })
    .await;

    // Mute video: audio keeps flowing, video stops (judged by audio progress, not the clock).
    handle
        .set_muted(room, "alice", MediaKind::Video, true)
        .await
        .expect("mute");
    let audio_at = |n: u64| {
        let bob = &bob;
        move || bob.state.received_from("alice").audio >= n
    };
    let a0 = bob.state.received_from("alice").audio;
    wait_for("audio continues after mute", LONG, audio_at(a0 + 25)).await;
    let v1 = bob.state.received_from("alice").video;
    let a1 = bob.state.received_from("alice").audio;
    wait_for("more audio while video is muted", LONG, audio_at(a1 + 50)).await;
    assert_eq!(
        bob.state.received_from("alice").video,
        v1,
        "no video is forwarded while muted"
    );
    let pli_before_unmute = alice.state.keyframe_requests.load(Ordering::SeqCst);
    handle
        .set_muted(room, "alice", MediaKind::Video, false)
        .await
        .expect("unmute");
    wait_for("video resumes after unmute", LONG, || {
        bob.state.received_from("alice").video > v1 + 20
    })
    .await;
    wait_for("unmute asks for a keyframe", LONG, || {
        alice.state.keyframe_requests.load(Ordering::SeqCst) > pli_before_unmute
    })
    .await;

    // Kick one subscriber: it is told, and counters drop by one peer.
    handle.kick(room, "dave").await.expect("kick");
    wait_for("dave learns he was kicked", LONG, || {
        *dave.state.closed.lock().unwrap() == Some(CloseReason::Kicked)
    })
    .await;
    assert_eq!(handle.stats().peers, 3);
    dave.close().await;

    // The publisher leaves: the others get a renegotiation without its tracks.
    let offers_before = bob.state.offers.load(Ordering::SeqCst);
    handle.leave(room, "alice").await.expect("leave");
    for sub in [&bob, &carol] {
        wait_for("renegotiation removing alice", LONG, || {
            sub.state.offers.load(Ordering::SeqCst) > offers_before
                && !sub
                    .state
                    .tracks
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|t| t.user_id == "alice")
        })
        .await;
        // Her m-lines stay, inactive, for the next publisher to reuse: none sends anymore.
        let sdp = sub.state.last_offer_sdp.lock().unwrap().clone();
        assert!(
            !sdp.split("\r\nm=")
                .any(|m| m.contains("a=msid:alice ") && !m.contains("a=inactive")),
            "alice's m-lines are inactive in the offer"
        );
    }
    let frozen = bob.state.received_from("alice");
    let carol_frozen = carol.state.received_from("alice");
    alice.close().await;

    handle.leave(room, "bob").await.expect("bob leaves");
    handle.leave(room, "carol").await.expect("carol leaves");
    assert!(
        handle.leave(room, "carol").await.is_err(),
        "leaving twice is an error (room is gone)"
    );
    wait_for("all SFU state is dropped", LONG, || {
        let s = handle.stats();
        s.rooms == 0 && s.peers == 0 && s.tasks == 0 && s.leased_ports == 0 && s.runtime_tasks == 0
    })
    .await;
    let stats = handle.stats();
    assert!(stats.forwarded_packets > 0);
    // Nothing was forwarded after alice left (her forwarders are gone).
    assert_eq!(bob.state.received_from("alice").video, frozen.video);
    assert_eq!(carol.state.received_from("alice").audio, carol_frozen.audio);
    bob.close().await;
    carol.close().await;
    sfu.shutdown().await;
}
