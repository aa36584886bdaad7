//! The TURN relay in the binary (`[turn]`), driven by a real TURN client over UDP against the
//! running app: credentials minted per user and refused when forged or expired, relaying to
//! the SFU's media ports only (SFU mode) or between room-mates only (mesh mode), quotas.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::json;
use talkconnect::turn::client::{ClientError, TurnClient};
use talkconnect::turn::credentials;
use tokio::net::UdpSocket;

use crate::helpers::{Backend, TestApp, TestUser};

const SECRET: &str = "a-turn-secret-for-the-tests";
const WAIT: Duration = Duration::from_secs(3);

fn free_udp_port() -> u16 {
    StdUdp::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An app with the relay on free loopback ports; SFU media ports `sfu_ports`.
async fn app_with_relay(
    mode: &str,
    sfu_ports: (u16, u16),
    extra: &[(&str, &str)],
) -> (TestApp, SocketAddr) {
    let port = free_udp_port();
    let (relay_min, relay_max) = {
        let base = 20000 + (port % 20000);
        // The relay's own port must lie outside its relayed range.
        let base = if (base..=base + 50).contains(&port) {
            base + 100
        } else {
            base
        };
        (base, base + 50)
    };
    let (port_s, min_s, max_s) = (
        port.to_string(),
        relay_min.to_string(),
        relay_max.to_string(),
    );
    let (sfu_min, sfu_max) = (sfu_ports.0.to_string(), sfu_ports.1.to_string());
    let mut settings = vec![
        ("TALKCONNECT__MEDIA__MODE", mode),
        ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1"),
        ("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true"),
        ("TALKCONNECT__SFU__UDP_PORT_MIN", sfu_min.as_str()),
        ("TALKCONNECT__SFU__UDP_PORT_MAX", sfu_max.as_str()),
        ("TALKCONNECT__TURN__ENABLED", "true"),
        ("TALKCONNECT__TURN__LISTEN_IP", "127.0.0.1"),
        ("TALKCONNECT__TURN__UDP_PORT", port_s.as_str()),
        ("TALKCONNECT__TURN__TCP_PORT", "0"),
        ("TALKCONNECT__TURN__RELAY_PORT_MIN", min_s.as_str()),
        ("TALKCONNECT__TURN__RELAY_PORT_MAX", max_s.as_str()),
        ("TALKCONNECT__TURN__SECRET", SECRET),
    ];
    settings.extend_from_slice(extra);
    let app = TestApp::spawn_with(Backend::Sqlite, &settings).await;
    (app, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The relay's entry in GET /api/ice-servers for `user`: (urls, username, credential).
async fn relay_entry(app: &TestApp, user: &TestUser) -> (Vec<String>, String, String) {
    let (status, body) = app.get("/api/ice-servers", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let servers = body["iceServers"].as_array().unwrap();
    let turn = servers
        .iter()
        .find(|s| {
            s["urls"][0]
                .as_str()
                .is_some_and(|u| u.starts_with("turn:"))
        })
        .unwrap_or_else(|| panic!("no turn: entry in {body}"));
    let urls = turn["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    (
        urls,
        turn["username"].as_str().unwrap().to_owned(),
        turn["credential"].as_str().unwrap().to_owned(),
    )
}

async fn allocate(
    relay: SocketAddr,
    username: &str,
    password: &str,
) -> Result<TurnClient, ClientError> {
    TurnClient::allocate(relay, username, password, WAIT).await
}

#[tokio::test]
async fn a_signed_in_user_gets_credentials_that_allocate_and_forged_or_expired_ones_do_not() {
    let (app, relay) = app_with_relay("sfu", (45100, 45109), &[]).await;
    let user = app.guest("Relayed").await;

    // Without a token: no relay entry (nothing to mint a credential for).
    let (status, body) = app.get("/api/ice-servers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.to_string().contains("turn:"), "{body}");
    // A bad token is refused, not ignored.
    let (status, body) = app.get("/api/ice-servers", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (urls, username, password) = relay_entry(&app, &user).await;
    assert_eq!(
        urls,
        vec![format!("turn:127.0.0.1:{}?transport=udp", relay.port())]
    );
    assert!(username.ends_with(&format!(":{}", user.id)), "{username}");

    let client = allocate(relay, &username, &password)
        .await
        .expect("allocates");
    assert_eq!(client.relayed.ip().to_string(), "127.0.0.1");
    client.release().await.expect("released");

    let forged = allocate(relay, &username, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=").await;
    assert!(
        matches!(forged, Err(ClientError::Refused { code: 401, .. })),
        "{:?}",
        forged.err()
    );
    // Someone else's name on a credential made for this user: refused too.
    let (_, user_part) = username.split_once(':').unwrap();
    let stolen = username.replace(user_part, "00000000-0000-0000-0000-000000000000");
    let stolen = allocate(relay, &stolen, &password).await;
    assert!(matches!(
        stolen,
        Err(ClientError::Refused { code: 401, .. })
    ));

    let expired = credentials::mint(
        SECRET.as_bytes(),
        &user.id.to_string(),
        Duration::ZERO,
        SystemTime::now() - Duration::from_secs(5),
    );
    let refused = allocate(relay, &expired.username, &expired.password).await;
    match refused {
        Err(ClientError::Refused { code: 401, reason }) => {
            assert!(reason.contains("expired"), "{reason}")
        }
        other => panic!("an expired credential allocated: {:?}", other.err()),
    }
    let stats = &app.state.media.relay().unwrap().server.stats;
    assert!(
        stats
            .refused_credentials
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
}

#[tokio::test]
async fn in_sfu_mode_the_relay_reaches_the_sfu_media_ports_and_nothing_else() {
    // A socket inside the SFU's port range stands where the SFU's port would be, so the
    // relayed bytes can be seen arriving and answered.
    let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media_port = media.local_addr().unwrap().port();
    let (app, relay) = app_with_relay("sfu", (media_port, media_port), &[]).await;
    let user = app.guest("Relayed").await;
    let (_, username, password) = relay_entry(&app, &user).await;
    let mut client = allocate(relay, &username, &password).await.unwrap();

    for outside in [
        "127.0.0.1:5432",
        "127.0.0.1:22",
        "8.8.8.8:53",
        "10.0.0.1:40000",
    ] {
        let refused = client.create_permission(outside.parse().unwrap()).await;
        assert_eq!(
            refused,
            Err(ClientError::Refused {
                code: 403,
                reason: "Forbidden".into()
            }),
            "{outside}"
        );
    }

    let sfu: SocketAddr = ([127, 0, 0, 1], media_port).into();
    client
        .create_permission(sfu)
        .await
        .expect("the SFU is allowed");
    client.send(sfu, b"to the sfu").await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, media.recv_from(&mut buf))
        .await
        .expect("relayed to the media port")
        .unwrap();
    assert_eq!(&buf[..n], b"to the sfu");
    assert_eq!(
        from.port(),
        client.relayed.port(),
        "sent from the relayed address"
    );
    media.send_to(b"back", from).await.unwrap();
    let (peer, data) = client.receive(WAIT).await.expect("relayed back");
    assert_eq!((peer, data.as_slice()), (sfu, &b"back"[..]));

    // A port of the SFU's address outside its media range is not reachable even with the
    // address permitted.
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send(other.local_addr().unwrap(), b"not media")
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), other.recv_from(&mut buf))
            .await
            .is_err(),
        "relayed outside the media ports"
    );
}

#[tokio::test]
async fn a_channel_bound_to_the_sfu_carries_channel_data_both_ways_and_one_elsewhere_is_refused() {
    // What browsers do for media: ChannelBind once, then 4-byte-header ChannelData.
    let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media_port = media.local_addr().unwrap().port();
    let (app, relay) = app_with_relay("sfu", (media_port, media_port), &[]).await;
    let user = app.guest("Channelled").await;
    let (_, username, password) = relay_entry(&app, &user).await;
    let mut client = allocate(relay, &username, &password).await.unwrap();

    let refused = client
        .channel_bind(0x4001, "127.0.0.1:5432".parse().unwrap())
        .await;
    assert!(
        matches!(refused, Err(ClientError::Refused { code: 403, .. })),
        "{refused:?}"
    );
    let out_of_range = client
        .channel_bind(0x3FFF, ([127, 0, 0, 1], media_port).into())
        .await;
    assert!(
        matches!(out_of_range, Err(ClientError::Refused { code: 400, .. })),
        "{out_of_range:?}"
    );

    let sfu: SocketAddr = ([127, 0, 0, 1], media_port).into();
    client.channel_bind(0x4001, sfu).await.expect("bound");
    client
        .send_channel(0x4001, b"rtp over a channel")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, media.recv_from(&mut buf))
        .await
        .expect("relayed to the media port")
        .unwrap();
    assert_eq!(&buf[..n], b"rtp over a channel");
    assert_eq!(from.port(), client.relayed.port());
    media.send_to(b"rtp back", from).await.unwrap();
    let (peer, data) = client.receive(WAIT).await.expect("relayed back");
    assert_eq!((peer, data.as_slice()), (sfu, &b"rtp back"[..]));
    let stats = &app.state.media.relay().unwrap().server.stats;
    assert_eq!(
        stats
            .relayed_packets
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// This host's address towards the internet, when it is a public one (route lookup only:
/// connecting a UDP socket sends nothing).
fn host_public_ip() -> Option<std::net::IpAddr> {
    let socket = StdUdp::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    talkconnect::turn::is_global(ip).then_some(ip)
}

#[tokio::test]
async fn a_public_client_address_belongs_to_its_allocation_until_that_is_released() {
    // The relay tells a user's client address (public) from the SFU's: a packet or permission
    // towards it is the policy's "user" question, never a route to the SFU. It looks the owner
    // up by address for every relayed packet, so the lookup must be right as allocations come
    // and go. Needs an address the relay counts as public: this host's own.
    let Some(host) = host_public_ip() else {
        eprintln!("skipped: this host has no public address to stand for a client's");
        return;
    };
    // A's client socket sits where an SFU media port would be.
    let a_socket = StdUdp::bind((host, 0)).unwrap();
    let a_port = a_socket.local_addr().unwrap().port();
    drop(a_socket);
    let host_s = host.to_string();
    let (app, relay) = app_with_relay(
        "sfu",
        (a_port, a_port),
        &[("TALKCONNECT__TURN__LISTEN_IP", host_s.as_str())],
    )
    .await;
    let relay = SocketAddr::new(host, relay.port());
    let (an, binh) = (app.guest("An").await, app.guest("Binh").await);
    let (_, an_name, an_password) = relay_entry(&app, &an).await;
    let (_, binh_name, binh_password) = relay_entry(&app, &binh).await;
    let a_addr = SocketAddr::new(host, a_port);
    let a = TurnClient::allocate_from(a_addr, relay, &an_name, &an_password, WAIT)
        .await
        .expect("A allocates from its public address");
    let mut b = TurnClient::allocate_from(
        "127.0.0.1:0".parse().unwrap(),
        relay,
        &binh_name,
        &binh_password,
        WAIT,
    )
    .await
    .expect("B allocates");

    let refused = b.create_permission(a_addr).await;
    assert!(
        matches!(refused, Err(ClientError::Refused { code: 403, .. })),
        "another user's client address was reachable in SFU mode: {refused:?}"
    );
    a.release().await.expect("A released");
    // Nobody's client any more: an SFU media port like any other.
    b.create_permission(a_addr)
        .await
        .expect("the address is the SFU's once A is gone");
}

#[tokio::test]
async fn in_mesh_mode_the_relay_joins_room_mates_only() {
    let (app, relay) = app_with_relay("mesh", (45110, 45119), &[]).await;
    let host = app.guest("Host").await;
    let mate = app.guest("Mate").await;
    let stranger = app.guest("Stranger").await;
    let room = app
        .room(
            &host,
            json!({"title": "Relayed", "topic": "Travel", "maxParticipants": 5}),
        )
        .await;
    let (status, body) = app.join(room, &mate).await;
    assert!(status.is_success(), "{body}");

    let mut clients = Vec::new();
    for user in [&host, &mate, &stranger] {
        let (_, username, password) = relay_entry(&app, user).await;
        clients.push(allocate(relay, &username, &password).await.unwrap());
    }
    let [mut a, mut b, mut c]: [TurnClient; 3] = clients.try_into().ok().unwrap();

    a.create_permission(b.relayed)
        .await
        .expect("room-mates reach each other");
    b.create_permission(a.relayed)
        .await
        .expect("room-mates reach each other");
    a.send(b.relayed, b"hello mate").await.unwrap();
    let (from, data) = b.receive(WAIT).await.expect("relayed between the two");
    assert_eq!((from, data.as_slice()), (a.relayed, &b"hello mate"[..]));

    let refused = c.create_permission(a.relayed).await;
    assert!(
        matches!(refused, Err(ClientError::Refused { code: 403, .. })),
        "{refused:?}"
    );
    let refused = a.create_permission(c.relayed).await;
    assert!(matches!(
        refused,
        Err(ClientError::Refused { code: 403, .. })
    ));
    let refused = a.create_permission("127.0.0.1:6379".parse().unwrap()).await;
    assert!(matches!(
        refused,
        Err(ClientError::Refused { code: 403, .. })
    ));

    // The mate leaves: refreshing the permission towards them is refused.
    let (status, body) = app
        .post_empty(&format!("/api/rooms/{room}/leave"), Some(&mate.token))
        .await;
    assert!(status.is_success(), "{body}");
    let refused = a.create_permission(b.relayed).await;
    assert!(
        matches!(refused, Err(ClientError::Refused { code: 403, .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn each_user_has_an_allocation_quota() {
    let (app, relay) = app_with_relay(
        "sfu",
        (45120, 45129),
        &[("TALKCONNECT__TURN__MAX_ALLOCATIONS_PER_USER", "2")],
    )
    .await;
    let user = app.guest("Greedy").await;
    let (_, username, password) = relay_entry(&app, &user).await;
    let first = allocate(relay, &username, &password).await.unwrap();
    let _second = allocate(relay, &username, &password).await.unwrap();
    let third = allocate(relay, &username, &password).await;
    assert!(
        matches!(third, Err(ClientError::Refused { code: 486, .. })),
        "{:?}",
        third.err()
    );
    // Another user is not held back by this one.
    let other = app.guest("Other").await;
    let (_, u2, p2) = relay_entry(&app, &other).await;
    allocate(relay, &u2, &p2)
        .await
        .expect("another user allocates");
    // A released allocation gives the place back.
    first.release().await.unwrap();
    allocate(relay, &username, &password)
        .await
        .expect("allocates again after a release");
}

#[tokio::test]
async fn a_relay_port_already_in_use_stops_the_start_naming_the_setting() {
    let taken = StdUdp::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile_dir();
    let settings = crate::helpers::test_settings(
        &format!("sqlite://{}", dir.join("t.db").display()),
        &dir,
        &[
            ("TALKCONNECT__TURN__ENABLED", "true"),
            ("TALKCONNECT__TURN__LISTEN_IP", "127.0.0.1"),
            ("TALKCONNECT__TURN__UDP_PORT", port.as_str()),
            ("TALKCONNECT__TURN__TCP_PORT", "0"),
            // Below the ephemeral ports, where the taken one lies: the settings stay valid.
            ("TALKCONNECT__TURN__RELAY_PORT_MIN", "30100"),
            ("TALKCONNECT__TURN__RELAY_PORT_MAX", "30109"),
            ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1"),
            ("TALKCONNECT__SFU__UDP_PORT_MIN", "45130"),
            ("TALKCONNECT__SFU__UDP_PORT_MAX", "45139"),
        ],
    );
    let Err(err) = talkconnect::app::Application::build(settings).await else {
        panic!("started with the relay's port taken");
    };
    let line = err.to_string();
    assert!(line.starts_with("turn.udp_port: "), "{line}");
    assert!(
        matches!(err, talkconnect::state::StartError::Config(_)),
        "exit code 2: {line}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tc-turn-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
