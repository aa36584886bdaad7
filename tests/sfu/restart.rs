//! Network switches: a participant's path breaks mid-call and ICE restarts without leaving the
//! room. The clients' UDP sockets sit behind a switch (`Network`): `cut` makes every socket
//! bound so far go silent, and at an ICE restart the client binds a new socket on a new port,
//! so it comes back from a new address. Asserted, in port-range and single-port mode:
//! - a client restart (an offer with new ICE credentials through the usual client offer)
//!   after its path broke: media it publishes reaches the others again;
//! - a server restart: a receive-only participant's path breaks, the SFU offers new
//!   credentials by itself, and that participant receives again;
//! - neither releases anything: no `Closed` event, the same peers and subscriptions;
//! - a participant that never comes back is dropped (`connectionFailed`) once
//!   `ice_restart_grace_ms` has passed, and the others' SDP loses its tracks;
//! - a participant whose signaling is away too (its socket gone with the network) is kept past
//!   the answer and restart deadlines, and once the signaling is back (`resume`) the offer it
//!   missed comes again and its media returns.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use talkconnect::sfu::{CloseReason, MediaKind, Sfu, SfuConfig, SfuHandle};
use talkconnect_testkit::sfu_client::{Client, Network, has_kind, ice_ufrag, wait_for};

const MEDIA: Duration = Duration::from_secs(30);
/// webrtc-rs notices a silent path after 5 s (disconnected); the restart then takes a moment.
const RESTART: Duration = Duration::from_secs(45);

/// Single-port mode where the SFU probes none of the clients' (loopback) candidates: the
/// clients' own STUN requests, routed by the ufrag they name, are then the only way in, and an
/// ICE restart's new ufrag must be routed too.
fn single_port(port: u16, min: u16, max: u16) -> SfuConfig {
    SfuConfig {
        single_udp_port: Some(port),
        allow_loopback: false,
        ..SfuConfig::loopback(min, max)
    }
}

/// Alice publishes on a switchable network, Bob only receives (also on one).
async fn call(h: &SfuHandle) -> (Client, Arc<Network>, Client, Arc<Network>) {
    let alice_net = Network::new();
    let mut alice = Client::join_on(h, "r", "alice", true, Arc::clone(&alice_net)).await;
    alice.start_media(50, 400);
    let bob_net = Network::new();
    let bob = Client::join_on(h, "r", "bob", false, Arc::clone(&bob_net)).await;
    wait_for("media before the switch", MEDIA, || {
        let r = bob.state.received_from("alice");
        r.audio >= 20 && r.video >= 20
    })
    .await;
    (alice, alice_net, bob, bob_net)
}

/// Waits until Bob has received `more` audio and video packets from Alice beyond now.
async fn media_grows(bob: &Client, what: &str, more: u64) {
    let before = bob.state.received_from("alice");
    wait_for(what, RESTART, || {
        let now = bob.state.received_from("alice");
        now.audio >= before.audio + more && now.video >= before.video + more
    })
    .await;
}

/// Nothing was released: both still in, nobody closed, no client error.
fn nothing_released(h: &SfuHandle, clients: &[&Client]) {
    assert_eq!(h.stats().peers, 2, "both participants are still in");
    for client in clients {
        assert_eq!(
            *client.state.closed.lock().unwrap(),
            None,
            "{}",
            client.user
        );
        assert!(
            client.state.errors.lock().unwrap().is_empty(),
            "{}: {:?}",
            client.user,
            client.state.errors.lock().unwrap()
        );
    }
}

async fn client_restart_after_the_path_broke(config: SfuConfig) {
    let sfu = Sfu::start(config).expect("sfu starts");
    let h = sfu.handle();
    let (alice, alice_net, bob, _bob_net) = call(&h).await;
    let ufrag_before = ice_ufrag(&alice.pc.local_description().await.unwrap().sdp);

    alice_net.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let frozen = bob.state.received_from("alice");
    alice.restart_ice().await.expect("restart offer accepted");
    media_grows(&bob, "Alice's media after her restart", 50).await;

    let sdp = alice.pc.local_description().await.unwrap().sdp;
    assert_ne!(ice_ufrag(&sdp), ufrag_before, "new ICE credentials");
    assert!(
        alice_net.sockets_bound() >= 2,
        "Alice came back on a new socket"
    );
    assert!(bob.state.received_from("alice").video > frozen.video);
    nothing_released(&h, &[&alice, &bob]);
    alice.close().await;
    bob.close().await;
    sfu.shutdown().await;
}

async fn server_restart_for_a_receive_only_participant(config: SfuConfig) {
    let sfu = Sfu::start(config).expect("sfu starts");
    let h = sfu.handle();
    let (alice, _alice_net, bob, bob_net) = call(&h).await;
    let offers_before = bob.state.offers.load(std::sync::atomic::Ordering::SeqCst);
    let ufrag_before = ice_ufrag(&bob.state.last_offer_sdp.lock().unwrap());

    // Bob never offers: only the server can restart his ICE.
    bob_net.cut();
    wait_for("a server offer with new ICE credentials", RESTART, || {
        let sdp = bob.state.last_offer_sdp.lock().unwrap();
        ice_ufrag(&sdp) != ufrag_before
    })
    .await;
    media_grows(&bob, "Bob receives again after the server's restart", 50).await;

    assert!(
        bob.state.offers.load(std::sync::atomic::Ordering::SeqCst) > offers_before,
        "the restart came as a server offer"
    );
    assert!(
        bob_net.sockets_bound() >= 2,
        "Bob came back on a new socket"
    );
    let tracks = bob.state.tracks.lock().unwrap().clone();
    assert!(has_kind(&tracks, "alice", MediaKind::Video), "{tracks:?}");
    nothing_released(&h, &[&alice, &bob]);
    alice.close().await;
    bob.close().await;
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_restart_brings_its_media_back() {
    client_restart_after_the_path_broke(SfuConfig::loopback(42900, 42909)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_restarts_a_receive_only_participant_whose_path_broke() {
    server_restart_for_a_receive_only_participant(SfuConfig::loopback(42910, 42919)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_restart_through_the_single_port() {
    client_restart_after_the_path_broke(single_port(42920, 42921, 42929)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_through_the_single_port() {
    server_restart_for_a_receive_only_participant(single_port(42930, 42931, 42939)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_never_comes_back_is_dropped_after_the_grace() {
    let sfu = Sfu::start(SfuConfig {
        ice_restart_grace_ms: 3000,
        ..SfuConfig::loopback(42940, 42949)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let (alice, alice_net, bob, _bob_net) = call(&h).await;
    alice_net.cut_for_good();
    wait_for("Alice dropped after the grace", RESTART, || {
        alice.state.closed.lock().unwrap().is_some()
    })
    .await;
    assert_eq!(
        *alice.state.closed.lock().unwrap(),
        Some(CloseReason::ConnectionFailed)
    );
    wait_for("Alice's tracks leave Bob's SDP", MEDIA, || {
        !has_kind(&bob.state.tracks.lock().unwrap(), "alice", MediaKind::Video)
    })
    .await;
    assert_eq!(*bob.state.closed.lock().unwrap(), None);
    assert_eq!(h.stats().peers, 1);
    alice.close().await;
    bob.close().await;
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_signaling_is_away_too_is_kept_and_resumed() {
    let sfu = Sfu::start(SfuConfig {
        ice_restart_grace_ms: 3000,
        answer_timeout_ms: 2000,
        ..SfuConfig::loopback(42990, 42999)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let (alice, _alice_net, bob, bob_net) = call(&h).await;
    let ufrag_before = ice_ufrag(&bob.state.last_offer_sdp.lock().unwrap());

    // Bob's socket goes with his network: nothing the SFU says reaches him.
    bob.state.deaf.store(true, Ordering::SeqCst);
    h.signaling_away("r", "bob").await.expect("bob is in");
    bob_net.cut();
    wait_for("the SFU's restart offer (lost)", RESTART, || {
        bob.state.missed.load(Ordering::SeqCst) >= 1
    })
    .await;
    // Past both deadlines (answer 2 s, restart grace 3 s): he is still in.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(*bob.state.closed.lock().unwrap(), None);
    assert_eq!(
        h.stats().peers,
        2,
        "Bob is kept while his signaling is away"
    );

    bob.state.deaf.store(false, Ordering::SeqCst);
    h.resume("r", "bob").await.expect("bob is still in");
    wait_for(
        "the missed offer again, new ICE credentials",
        RESTART,
        || ice_ufrag(&bob.state.last_offer_sdp.lock().unwrap()) != ufrag_before,
    )
    .await;
    media_grows(&bob, "Bob receives again after the resume", 50).await;
    nothing_released(&h, &[&alice, &bob]);
    assert_eq!(
        h.resume("r", "carol").await,
        Err(talkconnect::sfu::SfuError::UnknownParticipant)
    );
    alice.close().await;
    bob.close().await;
    sfu.shutdown().await;
}
