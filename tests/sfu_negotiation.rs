#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Offer collisions: a client offer arriving while a server offer is outstanding is taken
//! (the server rolls back and re-offers), and both directions of media then work.

mod sfu_common;

use sfu_common::{Client, wait_for};
use std::sync::atomic::Ordering;
use std::time::Duration;
use talkconnect::sfu::{ServerSignal, Sfu, SfuConfig, SfuError, SfuEventKind};

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
