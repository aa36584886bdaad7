//! Clients that misbehave on purpose: a join whose media never gets connected is dropped after
//! `connect_timeout_ms` and gives its port back; client candidates naming addresses the server
//! must not probe (loopback unless allowed, private, link-local, unspecified, multicast, `.local`)
//! are ignored without breaking the session; a flood of candidates is refused past the cap.
//! Every SFU here binds 127.0.0.1 only, so nothing is sent off this machine.

use std::time::{Duration, Instant};
use talkconnect::sfu::{
    ClientSignal, CloseReason, IceCandidate, JoinOptions, SdpPayload, Sfu, SfuConfig, SfuError,
    SfuEventKind, SfuHandle,
};
use talkconnect_testkit::sfu_client::{Attribution, Client, Peer, wait_for};
use tokio::sync::mpsc;

const LONG: Duration = Duration::from_secs(20);

/// The cap docs/SFU.md states for distinct client candidates per session.
const MAX_CLIENT_CANDIDATES: usize = 50;

fn candidate(line: &str) -> ClientSignal {
    ClientSignal::Candidate(IceCandidate {
        candidate: line.to_owned(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    })
}

/// Waits for the participant's `Closed` event, passing over what comes before it.
async fn closed_reason(client: &mut Client) -> CloseReason {
    loop {
        if let SfuEventKind::Closed(reason) = client.next_event().await.kind {
            return reason;
        }
    }
}

/// A publisher sending media and a receive-only participant getting it: the part of the room
/// that behaves, and must not notice the rest.
async fn well_behaved_pair(h: &SfuHandle, room: &str) -> (Client, Client) {
    let mut alice = Client::join(h, room, "alice", true).await;
    alice.start_media(50, 300);
    let bob = Client::join(h, room, "bob", false).await;
    wait_for("bob receives alice", LONG, || {
        bob.state.received_from("alice").video >= 10
    })
    .await;
    (alice, bob)
}

/// Both well-behaved participants are still there and media still flows.
async fn still_fine(alice: &Client, bob: &Client) {
    let before = bob.state.received_from("alice").video;
    wait_for("bob still receives alice", LONG, || {
        bob.state.received_from("alice").video > before + 20
    })
    .await;
    assert_eq!(*alice.state.closed.lock().unwrap(), None);
    assert_eq!(*bob.state.closed.lock().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_whose_media_never_connects_are_dropped_and_give_their_ports_back() {
    let connect_timeout = Duration::from_millis(5000);
    let sfu = Sfu::start(SfuConfig {
        connect_timeout_ms: 5000,
        ..SfuConfig::loopback(42500, 42503)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let (alice, bob) = well_behaved_pair(&h, "r").await;

    // mallory joins as a publisher and never offers; trudy offers but never takes the
    // server's answer, so ICE and DTLS never complete. Together they hold the last two ports.
    let joined = Instant::now();
    let mut mallory = Client::join_held(&h, "r", "mallory", true).await;
    let mut trudy = Client::join_held(&h, "r", "trudy", true).await;
    trudy.try_publish().await.expect("trudy's offer is taken");
    assert_eq!(h.stats().leased_ports, 4);
    let (tx, _rx) = mpsc::unbounded_channel();
    assert_eq!(
        h.join("r", "carol", JoinOptions { publish: false }, tx)
            .await,
        Err(SfuError::NoFreePort),
        "the range is used up"
    );

    assert_eq!(
        closed_reason(&mut mallory).await,
        CloseReason::ConnectTimeout
    );
    assert!(
        joined.elapsed() >= connect_timeout,
        "not dropped before the deadline"
    );
    assert_eq!(closed_reason(&mut trudy).await, CloseReason::ConnectTimeout);
    let stats = h.stats();
    assert_eq!(stats.connect_timeouts, 2, "both counted for the operator");
    assert_eq!(stats.connections_failed, 0);
    assert_eq!(
        h.signal("r", "mallory", candidate("")).await,
        Err(SfuError::UnknownParticipant),
        "mallory's SFU state is gone"
    );
    wait_for("both ports are back in the pool", LONG, || {
        let s = h.stats();
        s.leased_ports == 2 && s.peers == 2
    })
    .await;

    // A freed port is handed out again, and the newcomer (who connects) stays.
    let carol = Client::join(&h, "r", "carol", false).await;
    wait_for("carol receives alice", LONG, || {
        carol.state.received_from("alice").video >= 10
    })
    .await;
    still_fine(&alice, &bob).await;
    assert_eq!(*carol.state.closed.lock().unwrap(), None);

    h.end_room("r").await.expect("end room");
    wait_for("nothing left, deadline timers included", LONG, || {
        let s = h.stats();
        s.rooms == 0 && s.peers == 0 && s.tasks == 0 && s.leased_ports == 0
    })
    .await;
    for c in [alice, bob, carol, mallory, trudy] {
        c.close().await;
    }
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_on_addresses_not_to_probe_are_ignored_and_the_session_connects() {
    // Loopback allowed (the clients' own candidates), private addresses not.
    let sfu = Sfu::start(SfuConfig::loopback(42510, 42519)).expect("sfu starts");
    let h = sfu.handle();
    let mut alice = Client::join(&h, "r", "alice", true).await;
    alice.start_media(50, 300);

    // bob answers the server's offer by hand, names addresses the server must not probe,
    // then trickles his real (loopback) candidates.
    let mut bob = Client::join_held(&h, "r", "bob", false).await;
    let offer = bob.next_event().await;
    bob.handle(offer).await;
    let unwanted = [
        "candidate:1 1 udp 2122260223 10.0.0.7 50000 typ host",
        "candidate:2 1 udp 2122260223 192.168.1.20 50001 typ host",
        "candidate:3 1 udp 2122260223 172.20.0.3 50002 typ host",
        "candidate:4 1 udp 2122260223 100.100.100.100 50003 typ host",
        "candidate:5 1 udp 2122260223 169.254.169.254 80 typ host",
        "candidate:6 1 udp 2122260223 fd00::7 50005 typ host",
        "candidate:7 1 udp 2122260223 fe80::1 50006 typ host",
        "candidate:8 1 udp 2122260223 0.0.0.0 50007 typ host",
        "candidate:9 1 udp 2122260223 224.0.0.251 5353 typ host",
        "candidate:10 1 udp 2122260223 4f5c1b52-0d3e-4a8e-9d4b-6c0f2a1e3b7d.local 50009 typ host",
        "candidate:11 1 udp 1686052607 10.1.2.3 50010 typ srflx raddr 0.0.0.0 rport 0",
    ];
    for line in unwanted {
        assert_eq!(
            h.signal("r", "bob", candidate(line)).await,
            Ok(()),
            "ignored, not an error: {line}"
        );
    }
    assert_eq!(h.stats().ignored_candidates, unwanted.len() as u64);
    let err = h
        .signal("r", "bob", candidate("candidate:12 1 udp 1 10.0.0.8"))
        .await
        .expect_err("a line that does not parse");
    assert!(matches!(err, SfuError::InvalidCandidate(_)), "{err:?}");

    bob.start_signaling();
    wait_for("bob receives alice over loopback", LONG, || {
        bob.state.received_from("alice").video >= 10
    })
    .await;
    // The clients bind 127.0.0.1 only: everything else they sent was usable.
    assert_eq!(h.stats().ignored_candidates, unwanted.len() as u64);
    assert!(bob.state.errors.lock().unwrap().is_empty());
    alice.close().await;
    bob.close().await;
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_service_named_as_candidate_gets_no_stun_when_loopback_is_not_allowed() {
    // The SFU binds 127.0.0.1 but does not accept loopback candidates: here loopback stands
    // for the internal hosts a client could otherwise make the server probe.
    let sfu = Sfu::start(SfuConfig {
        allow_loopback: false,
        ..SfuConfig::loopback(42520, 42529)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let service = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = service.local_addr().unwrap().port();

    let mut mallory = Client::join_held(&h, "r", "mallory", true).await;
    mallory.try_publish().await.expect("offer taken");
    let line = format!("candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host");
    assert_eq!(h.signal("r", "mallory", candidate(&line)).await, Ok(()));

    // Clients whose every candidate is ignored still connect: their checks reach the
    // server's candidate and come back as peer-reflexive ones. Meanwhile the service, named
    // as a candidate, hears nothing.
    let (alice, bob) = well_behaved_pair(&h, "r").await;
    let mut buf = [0u8; 1500];
    let probe = tokio::time::timeout(Duration::from_secs(2), service.recv_from(&mut buf)).await;
    if let Ok(Ok((bytes, from))) = probe {
        panic!("the SFU ({from}) sent {bytes} bytes to the service named as a candidate");
    }
    assert!(
        h.stats().ignored_candidates >= 3,
        "mallory's, and alice's and bob's own"
    );
    for c in [alice, bob, mallory] {
        c.close().await;
    }
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_candidates_is_refused_past_the_cap_and_the_room_goes_on() {
    // mallory and oscar never connect: the deadline must not drop them during the test.
    let sfu = Sfu::start(SfuConfig {
        connect_timeout_ms: 120_000,
        ..SfuConfig::loopback(42530, 42539)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let (alice, bob) = well_behaved_pair(&h, "r").await;

    // mallory and oscar signal by hand, from a webrtc-rs peer each: the SFU gets their offers
    // without the candidates the peers gathered, so each has named none yet.
    let offer = |sdp: String| ClientSignal::Offer(SdpPayload { sdp });
    let mut peers = Vec::new();
    let mut offers = Vec::new();
    for user in ["mallory", "oscar"] {
        let (tx, _rx) = mpsc::unbounded_channel();
        h.join("r", user, JoinOptions { publish: true }, tx)
            .await
            .expect("joins");
        let mut peer = Peer::new(user, "127.0.0.1", false, Attribution::StreamId).await;
        peer.add_tracks().await;
        let sdp: String = peer
            .local_offer()
            .await
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("a=candidate:"))
            .collect();
        offers.push(sdp);
        peers.push(peer);
    }
    let line = |i: usize| {
        format!(
            "candidate:{i} 1 udp 2122260223 10.9.{}.{} 9 typ host",
            i / 250,
            i % 250 + 1
        )
    };

    // Trickled: distinct candidates until one is refused.
    assert_eq!(
        h.signal("r", "mallory", offer(offers[0].clone())).await,
        Ok(())
    );
    let mut accepted = 0;
    let refused = loop {
        match h.signal("r", "mallory", candidate(&line(accepted))).await {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= 2 * MAX_CLIENT_CANDIDATES, "no cap");
    };
    assert_eq!(refused, SfuError::TooManyCandidates);
    assert_eq!(accepted, MAX_CLIENT_CANDIDATES);
    let told = talkconnect::error::ApiError::from(refused);
    assert_eq!(told.code.as_str(), "SFU_TOO_MANY_CANDIDATES");
    assert_eq!(
        h.signal("r", "mallory", candidate(&line(3))).await,
        Ok(()),
        "a candidate named before is not a new one"
    );
    assert_eq!(
        h.signal("r", "mallory", candidate(&line(accepted + 1)))
            .await,
        Err(SfuError::TooManyCandidates)
    );

    // In an SDP: an offer carrying more candidates than the cap is refused whole, and the
    // same offer without them is taken.
    let mut flooded = offers[1].clone();
    for i in 0..=MAX_CLIENT_CANDIDATES {
        flooded.push_str(&format!("a={}\r\n", line(i)));
    }
    assert_eq!(
        h.signal("r", "oscar", offer(flooded)).await,
        Err(SfuError::TooManyCandidates)
    );
    assert_eq!(
        h.signal("r", "oscar", offer(offers[1].clone())).await,
        Ok(())
    );

    still_fine(&alice, &bob).await;
    assert_eq!(h.stats().peers, 4, "a refused call drops nobody");
    for c in [alice, bob] {
        c.close().await;
    }
    for peer in peers {
        peer.close().await;
    }
    sfu.shutdown().await;
}
