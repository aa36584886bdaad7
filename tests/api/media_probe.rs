//! `POST /api/doctor/probe` against the real server with its SFU on loopback: sign-in
//! required, bad offers refused with 400, a real webrtc-rs client (UDP, then ICE-TCP) that
//! connects to the probe and gets its pings echoed, one probe per user at a time (a second
//! closes the first), a `bye` closing it, and the paths a server does not have.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceGatheringState, RTCSessionDescription, SettingEngineBuilder,
};

use crate::helpers::{Backend, TestApp, code};

const PROBE: &str = "/api/doctor/probe";

async fn sfu_app(ports: (u16, u16), extra: &[(&str, &str)]) -> TestApp {
    let min = ports.0.to_string();
    let max = ports.1.to_string();
    let mut env = vec![
        ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1"),
        ("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true"),
        ("TALKCONNECT__SFU__UDP_PORT_MIN", min.as_str()),
        ("TALKCONNECT__SFU__UDP_PORT_MAX", max.as_str()),
    ];
    env.extend_from_slice(extra);
    TestApp::spawn_with(Backend::Sqlite, &env).await
}

fn leased_ports(app: &TestApp) -> usize {
    app.state.media.sfu_stats().expect("sfu mode").leased_ports
}

fn probes(app: &TestApp) -> usize {
    app.state.media.sfu_stats().expect("sfu mode").probes
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Gathering(mpsc::UnboundedSender<()>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Gathering {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(());
        }
    }
}

/// A browser stand-in: one data channel, on UDP or (with `tcp`) ICE-TCP only.
struct ProbeClient {
    pc: Arc<dyn PeerConnection>,
    channel: Arc<dyn DataChannel>,
}

impl ProbeClient {
    async fn new(tcp: bool) -> (Self, String) {
        let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
        let mut settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        let (udp, tcp_addrs) = if tcp {
            settings = settings.with_network_types(vec![rtc::ice::network_type::NetworkType::Tcp4]);
            (vec![], vec!["127.0.0.1:0"])
        } else {
            (vec!["127.0.0.1:0"], vec![])
        };
        let pc = PeerConnectionBuilder::new()
            .with_setting_engine(settings.build())
            .with_handler(Arc::new(Gathering(gathered_tx)))
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp_addrs)
            .build()
            .await
            .expect("client peer connection");
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let channel = pc
            .create_data_channel("doctor", None)
            .await
            .expect("data channel");
        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer).await.expect("local offer");
        let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
        let sdp = pc.local_description().await.expect("local").sdp;
        (Self { pc, channel }, sdp)
    }

    async fn answer(&self, sdp: &str) {
        let answer = RTCSessionDescription::answer(sdp.to_owned()).expect("answer parses");
        self.pc
            .set_remote_description(answer)
            .await
            .expect("answer applies");
        // webrtc-rs opens ICE-TCP connections only to passive candidates handed to
        // add_ice_candidate, not to those inside a description (browsers take both).
        for line in sdp.lines().filter_map(|l| l.strip_prefix("a=")) {
            if line.starts_with("candidate:") && line.contains("tcptype passive") {
                self.pc
                    .add_ice_candidate(RTCIceCandidateInit {
                        candidate: line.to_owned(),
                        sdp_mid: Some("0".to_owned()),
                        sdp_mline_index: Some(0),
                        ..Default::default()
                    })
                    .await
                    .expect("candidate applies");
            }
        }
    }

    /// Waits for the channel to open, then sends `count` pings and returns how many came
    /// back unchanged.
    async fn ping(&self, count: usize) -> usize {
        let mut echoed = 0;
        let mut sent = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let event = tokio::time::timeout_at(deadline, self.channel.poll())
                .await
                .expect("the probe answers in time");
            match event {
                Some(DataChannelEvent::OnOpen) => {
                    self.channel.send_text("ping:0").await.expect("send");
                    sent = 1;
                }
                Some(DataChannelEvent::OnMessage(message)) => {
                    assert!(message.is_string, "text comes back as text");
                    assert_eq!(
                        std::str::from_utf8(&message.data).unwrap(),
                        format!("ping:{echoed}")
                    );
                    echoed += 1;
                    if sent == count {
                        return echoed;
                    }
                    let next = format!("ping:{sent}");
                    self.channel.send_text(&next).await.expect("send");
                    sent += 1;
                }
                Some(DataChannelEvent::OnClose) | None => return echoed,
                Some(_) => {}
            }
        }
    }
}

fn probe_body(transport: &str, sdp: &str) -> Value {
    json!({ "transport": transport, "sdp": sdp })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_peer_gets_its_pings_echoed_over_udp_and_ice_tcp() {
    let app = sfu_app((46800, 46819), &[("TALKCONNECT__SFU__ICE_TCP", "true")]).await;
    let user = app.guest("Doctor").await;

    let (client, offer) = ProbeClient::new(false).await;
    let (status, body) = app
        .post(PROBE, Some(&user.token), probe_body("udp", &offer))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["available"], true);
    assert_eq!(body["lifetimeMs"], 30_000);
    let answer = body["sdp"].as_str().unwrap();
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "the answer carries candidates");
    assert!(
        candidates.iter().all(|c| c.contains(" udp ")),
        "udp offers only UDP: {candidates:?}"
    );
    assert_eq!(leased_ports(&app), 1, "the probe holds a media port");
    client.answer(answer).await;
    assert_eq!(client.ping(5).await, 5);
    // `bye` closes the probe and gives its port back.
    client.channel.send_text("bye").await.expect("bye");
    eventually("the probe closed after bye", || {
        leased_ports(&app) == 0 && probes(&app) == 0
    })
    .await;
    let _ = client.pc.close().await;

    let (client, offer) = ProbeClient::new(true).await;
    let (status, body) = app
        .post(PROBE, Some(&user.token), probe_body("tcp", &offer))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = body["sdp"].as_str().unwrap();
    assert!(
        answer
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .all(|c| c.contains(" tcp ")),
        "tcp offers only ICE-TCP: {answer}"
    );
    client.answer(answer).await;
    assert_eq!(client.ping(3).await, 3, "echoed over ICE-TCP");
    let _ = client.pc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_probe_per_user_and_bad_input_is_refused() {
    let app = sfu_app((46820, 46829), &[("TALKCONNECT__SFU__ICE_TCP", "false")]).await;
    let alice = app.guest("Alice").await;
    let bob = app.guest("Bob").await;
    let (_client, offer) = ProbeClient::new(false).await;

    // Signed-in users only.
    let (status, body) = app.post(PROBE, None, probe_body("udp", &offer)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(leased_ports(&app), 0);

    // Not an SDP, an SDP with media, and a path that does not exist.
    let (status, body) = app
        .post(PROBE, Some(&alice.token), probe_body("udp", "hello"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "SFU_INVALID_SDP");
    let audio = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n";
    let (status, body) = app
        .post(PROBE, Some(&alice.token), probe_body("udp", audio))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "SFU_INVALID_SDP");
    let (status, body) = app
        .post(
            PROBE,
            Some(&alice.token),
            probe_body("carrier-pigeon", &offer),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&body), "INVALID_BODY");
    assert_eq!(leased_ports(&app), 0, "refused offers hold no port");

    // ICE-TCP is off on this server.
    let (status, body) = app
        .post(PROBE, Some(&alice.token), probe_body("tcp", &offer))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"available": false, "reason": "iceTcpOff"}));

    // A second probe of the same user closes the first; another user's is separate.
    for _ in 0..3 {
        let (_c, offer) = ProbeClient::new(false).await;
        let (status, body) = app
            .post(PROBE, Some(&alice.token), probe_body("udp", &offer))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    eventually("alice keeps one probe", || {
        probes(&app) == 1 && leased_ports(&app) == 1
    })
    .await;
    let (status, _) = app
        .post(PROBE, Some(&bob.token), probe_body("udp", &offer))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(probes(&app), 2);
    assert_eq!(leased_ports(&app), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_rate_limited_and_mesh_mode_has_none() {
    let app = sfu_app(
        (46830, 46839),
        &[
            ("TALKCONNECT__RATE_LIMIT__ENABLED", "true"),
            ("TALKCONNECT__RATE_LIMIT__MEDIA_PROBE_PER_USER__COUNT", "2"),
        ],
    )
    .await;
    let user = app.guest("Busy").await;
    let (_client, offer) = ProbeClient::new(false).await;
    for _ in 0..2 {
        let (status, body) = app
            .post(PROBE, Some(&user.token), probe_body("udp", &offer))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app
        .post(PROBE, Some(&user.token), probe_body("udp", &offer))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&body), "RATE_LIMITED");

    let mesh = TestApp::spawn_with(Backend::Sqlite, &[("TALKCONNECT__MEDIA__MODE", "mesh")]).await;
    let user = mesh.guest("Mesh").await;
    let (status, body) = mesh
        .post(PROBE, Some(&user.token), probe_body("udp", &offer))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"available": false, "reason": "meshMode"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_answers_on_the_single_udp_port() {
    let app = sfu_app(
        (46841, 46849),
        &[
            ("TALKCONNECT__SFU__SINGLE_UDP_PORT", "46840"),
            ("TALKCONNECT__SFU__ICE_TCP", "false"),
        ],
    )
    .await;
    let user = app.guest("Single").await;
    let (client, offer) = ProbeClient::new(false).await;
    let (status, body) = app
        .post(PROBE, Some(&user.token), probe_body("udp", &offer))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = body["sdp"].as_str().unwrap();
    let udp: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:") && l.contains(" udp "))
        .collect();
    assert!(
        !udp.is_empty() && udp.iter().all(|c| c.contains(" 46840 typ host")),
        "every UDP candidate names the shared port: {udp:?}"
    );
    client.answer(answer).await;
    assert_eq!(client.ping(3).await, 3, "echoed through the shared port");
    let _ = client.pc.close().await;
}
