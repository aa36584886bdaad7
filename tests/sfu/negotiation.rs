//! Offer collisions: a client offer arriving while a server offer is outstanding is taken
//! (the server rolls back and re-offers), and both directions of media then work.

use std::sync::atomic::Ordering;
use std::time::Duration;
use talkconnect::sfu::{
    ClientSignal, CloseReason, SdpPayload, ServerSignal, Sfu, SfuConfig, SfuError, SfuEventKind,
};
use talkconnect_testkit::sfu_client::{Client, wait_for};

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_offer_during_pending_server_offer_is_answered_then_reoffered() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sfu = Sfu::start(SfuConfig::loopback(42300, 42349)).expect("sfu starts");
    let h = sfu.handle();
    let mut alice = Client::join(&h, "g", "alice", true).await;
    alice.start_media(50, 300);
    let bob = Client::join(&h, "g", "bob", false).await;
    wait_for("alice publishes", LONG, || {
        bob.state.received_from("alice").video > 0
    })
    .await;

    // x joins receive-only, so the server offers alice's tracks at once; x does not answer.
    let mut x = Client::join_held(&h, "g", "x", false).await;
    let first = x.next_event().await;
    assert!(
        matches!(first.kind, SfuEventKind::Signal(ServerSignal::Offer(_))),
        "server offers first: {first:?}"
    );
    // Glare: x offers its own media while that offer is pending. The server (impolite)
    // refuses; x (polite) answers the server's offer, then offers again.
    assert_eq!(
        x.try_publish().await,
        Err(SfuError::NegotiationInProgress),
        "colliding client offer is refused"
    );
    x.rollback_local().await;
    x.handle(first).await;
    x.resend_offer()
        .await
        .expect("offer after answering is accepted");
    x.start_signaling();
    let mut carol = Client::join(&h, "g", "carol", true).await;
    carol.start_media(50, 300);
    x.start_media(50, 300);
    wait_for("x receives alice after the collision", LONG, || {
        x.state.received_from("alice").video > 10 && x.state.received_from("carol").video > 10
    })
    .await;
    wait_for("bob receives x's media", LONG, || {
        bob.state.received_from("x").video > 10
    })
    .await;
    assert!(x.state.offers.load(Ordering::SeqCst) >= 1);
    for c in [alice, bob, carol, x] {
        c.close().await;
    }
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_is_dropped_and_the_room_goes_on() {
    let sfu = Sfu::start(SfuConfig {
        answer_timeout_ms: 600,
        ..SfuConfig::loopback(42350, 42369)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let mut alice = Client::join(&h, "t", "alice", true).await;
    alice.start_media(50, 300);
    let bob = Client::join(&h, "t", "bob", false).await;

    // x joins receive-only: the server offers alice's tracks and x never answers.
    let mut x = Client::join_held(&h, "t", "x", false).await;
    let first = x.next_event().await;
    assert!(
        matches!(first.kind, SfuEventKind::Signal(ServerSignal::Offer(_))),
        "server offers first: {first:?}"
    );
    let closed = loop {
        let event = x.next_event().await;
        if let SfuEventKind::Closed(reason) = event.kind {
            break reason;
        }
    };
    assert_eq!(closed, CloseReason::AnswerTimeout);
    assert_eq!(
        h.signal(
            "t",
            "x",
            ClientSignal::Answer(SdpPayload { sdp: String::new() })
        )
        .await,
        Err(SfuError::UnknownParticipant),
        "x's SFU state is gone"
    );

    // Those who answer stay, well past several timeouts, and keep receiving.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let before = bob.state.received_from("alice").video;
    wait_for("bob still receives alice", LONG, || {
        bob.state.received_from("alice").video > before + 20
    })
    .await;
    assert_eq!(*bob.state.closed.lock().unwrap(), None);
    assert_eq!(*alice.state.closed.lock().unwrap(), None);

    // x can come back, and with a client that answers it stays.
    drop(x);
    let x = Client::join(&h, "t", "x", false).await;
    wait_for("x receives alice after rejoining", LONG, || {
        x.state.received_from("alice").video > 10
    })
    .await;
    for c in [alice, bob, x] {
        c.close().await;
    }
    sfu.shutdown().await;
}
