//! Bad input gets a typed error through the public API, and the room carries on.

use std::time::Duration;
use talkconnect::sfu::{
    ClientSignal, IceCandidate, JoinOptions, SdpPayload, Sfu, SfuConfig, SfuError,
};
use talkconnect_testkit::sfu_client::{Client, wait_for};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_typed_errors_and_the_room_goes_on() {
    let sfu = Sfu::start(SfuConfig::loopback(42100, 42149)).expect("sfu starts");
    let h = sfu.handle();
    let offer = |sdp: &str| {
        ClientSignal::Offer(SdpPayload {
            sdp: sdp.to_owned(),
        })
    };

    assert_eq!(
        h.signal("nowhere", "x", offer("v=0")).await,
        Err(SfuError::UnknownRoom)
    );
    assert_eq!(h.end_room("nowhere").await, Err(SfuError::UnknownRoom));

    let (tx, _rx) = mpsc::unbounded_channel();
    h.join("r", "mallory", JoinOptions::default(), tx.clone())
        .await
        .expect("join");
    assert_eq!(
        h.join("r", "mallory", JoinOptions::default(), tx.clone())
            .await,
        Err(SfuError::AlreadyJoined)
    );
    assert_eq!(
        h.signal("r", "ghost", offer("v=0")).await,
        Err(SfuError::UnknownParticipant)
    );
    let candidate = ClientSignal::Candidate(IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    });
    assert_eq!(
        h.signal("r", "mallory", candidate).await,
        Err(SfuError::CandidateBeforeDescription)
    );
    let err = h
        .signal("r", "mallory", offer("this is not sdp"))
        .await
        .expect_err("garbage offer");
    assert!(matches!(err, SfuError::InvalidSdp(_)), "{err:?}");
    // What the browser is told.
    let told = talkconnect::error::ApiError::from(err.clone());
    assert_eq!(told.code.as_str(), "SFU_INVALID_SDP");
    // Too many sending m-lines, and an oversized SDP, are refused before anything is built.
    let mut many = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for mid in 0..5 {
        many.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n"
        ));
    }
    let err = h
        .signal("r", "mallory", offer(&many))
        .await
        .expect_err("5 sending m-lines");
    assert!(
        matches!(&err, SfuError::InvalidSdp(m) if m.contains("sending media sections")),
        "{err:?}"
    );
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(100_000));
    assert!(matches!(
        h.signal("r", "mallory", offer(&huge)).await,
        Err(SfuError::InvalidSdp(_))
    ));
    assert_eq!(
        h.signal(
            "r",
            "mallory",
            ClientSignal::Answer(SdpPayload { sdp: "v=0".into() })
        )
        .await,
        Err(SfuError::UnexpectedAnswer)
    );
    // A flood of renegotiations is cut off by the offer budget.
    let mut limited = false;
    for _ in 0..20 {
        if h.signal("r", "mallory", offer("v=0\r\n")).await == Err(SfuError::RateLimited) {
            limited = true;
            break;
        }
    }
    assert!(limited, "offer flood must hit RateLimited");
    assert!(matches!(
        ClientSignal::from_event("sfu:offer", serde_json::json!([1, 2])),
        Err(SfuError::MalformedMessage(_))
    ));

    // The room still works: a real publisher and subscriber exchange media.
    let mut alice = Client::join(&h, "r", "alice", true).await;
    alice.start_media(50, 200);
    let bob = Client::join(&h, "r", "bob", false).await;
    wait_for(
        "media still flows in the room",
        Duration::from_secs(20),
        || bob.state.received_from("alice").video >= 10,
    )
    .await;
    // Mallory's subscription to alice exists although its own negotiation was garbage.
    assert_eq!(h.stats().peers, 3);

    h.end_room("r").await.expect("end room");
    wait_for("room fully gone", Duration::from_secs(20), || {
        let s = h.stats();
        s.rooms == 0 && s.peers == 0 && s.tasks == 0 && s.leased_ports == 0
    })
    .await;
    alice.close().await;
    bob.close().await;
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_range_exhaustion_is_an_error_not_a_panic() {
    let sfu = Sfu::start(SfuConfig::loopback(42150, 42151)).expect("sfu starts");
    let h = sfu.handle();
    let (tx, _rx) = mpsc::unbounded_channel();
    h.join("r", "a", JoinOptions::default(), tx.clone())
        .await
        .expect("a");
    h.join("r", "b", JoinOptions::default(), tx.clone())
        .await
        .expect("b");
    assert_eq!(
        h.join("r", "c", JoinOptions::default(), tx.clone()).await,
        Err(SfuError::NoFreePort)
    );
    h.leave("r", "a").await.expect("a leaves");
    wait_for("a's port comes back", Duration::from_secs(10), || {
        h.stats().leased_ports == 1
    })
    .await;
    h.join("r", "c", JoinOptions::default(), tx)
        .await
        .expect("c gets a's port");
    sfu.shutdown().await;
}

/// Something else holding port P (UDP and TCP bound to 127.0.0.1:P by this process), with
/// P + 1 and P + 2 free on both: ports the kernel hands out, not fixed ones, which outgoing
/// connections of other tests could be holding (the range is among the ephemeral ports).
fn squat_with_two_free_after() -> (std::net::UdpSocket, std::net::TcpListener, u16) {
    for _ in 0..200 {
        let Ok(tcp) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let port = tcp.local_addr().unwrap().port();
        let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) else {
            continue;
        };
        let free = |p: u16| {
            std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        };
        if port < u16::MAX - 2 && free(port + 1) && free(port + 2) {
            return (udp, tcp, port);
        }
    }
    panic!("no free port with two free ones after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_another_program_is_skipped() {
    // Another program (here: a plain UDP socket) sits on the first port of the range.
    let (squatter, tcp, p) = squat_with_two_free_after();
    drop(tcp);
    let sfu = Sfu::start(SfuConfig::loopback(p, p + 2)).expect("sfu starts");
    let h = sfu.handle();
    let (tx, _rx) = mpsc::unbounded_channel();
    h.join("r", "a", JoinOptions::default(), tx.clone())
        .await
        .expect("a gets the next port");
    h.join("r", "b", JoinOptions::default(), tx.clone())
        .await
        .expect("b gets the last one");
    assert_eq!(
        h.stats().leased_ports,
        2,
        "the busy port is not kept leased"
    );
    assert_eq!(
        h.join("r", "c", JoinOptions::default(), tx).await,
        Err(SfuError::NoFreePort),
        "only the squatted port is left"
    );
    drop(squatter);
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_whose_tcp_side_is_held_is_skipped_when_ice_tcp_is_on() {
    // The UDP port is free but another program holds the same TCP port (an outgoing
    // connection can, the range lies among the ephemeral ports): without the ICE-TCP listener
    // the participant would lose its fallback, so the whole port is skipped.
    let (udp, squatter, p) = squat_with_two_free_after();
    drop(udp);
    let sfu = Sfu::start(SfuConfig {
        ice_tcp: true,
        ..SfuConfig::loopback(p, p + 1)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let (tx, _rx) = mpsc::unbounded_channel();
    h.join("r", "a", JoinOptions::default(), tx.clone())
        .await
        .expect("a gets the port whose TCP side is free");
    assert_eq!(h.stats().leased_ports, 1);
    assert_eq!(
        h.join("r", "b", JoinOptions::default(), tx).await,
        Err(SfuError::NoFreePort),
        "the port with a held TCP side is not handed out"
    );
    drop(squatter);
    sfu.shutdown().await;
}
