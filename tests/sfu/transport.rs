//! Transport options: ICE-TCP fallback for a client that has no UDP at all.

use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig};
use talkconnect_testkit::sfu_client::{Client, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_only_subscriber_receives_media_over_ice_tcp() {
    let sfu = Sfu::start(SfuConfig {
        ice_tcp: true,
        ..SfuConfig::loopback(42400, 42449)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let mut alice = Client::join(&h, "t", "alice", true).await;
    alice.start_media(50, 500);
    let bob = Client::join_tcp_only(&h, "t", "bob").await;
    wait_for("media over ICE-TCP", Duration::from_secs(30), || {
        let r = bob.state.received_from("alice");
        r.video >= 20 && r.audio >= 20
    })
    .await;
    assert_eq!(bob.state.received_from("alice").mislabelled, 0);
    alice.close().await;
    bob.close().await;
    sfu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_shares_one_udp_port_in_single_port_mode() {
    let shared_port = 42460;
    let sfu = Sfu::start(SfuConfig {
        single_udp_port: Some(shared_port),
        ..SfuConfig::loopback(42461, 42499)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    assert_eq!(h.single_port_addr().map(|a| a.port()), Some(shared_port));
    let baseline_runtime_tasks = h.stats().runtime_tasks; // the demultiplexer
    let mut alice = Client::join(&h, "s", "alice", true).await;
    alice.start_media(50, 500);
    let mut carol = Client::join(&h, "s", "carol", true).await;
    carol.start_media(50, 500);
    let bob = Client::join(&h, "s", "bob", false).await;
    wait_for(
        "media through the shared port",
        Duration::from_secs(30),
        || {
            [
                ("alice", &bob),
                ("carol", &bob),
                ("alice", &carol),
                ("carol", &alice),
            ]
            .iter()
            .all(|(from, to)| to.state.received_from(from).video >= 20)
        },
    )
    .await;
    for client in [&alice, &bob, &carol] {
        let sdp = client.pc.remote_description().await.expect("remote").sdp;
        let mut udp_hosts: Vec<String> = sdp
            .lines()
            .filter_map(|l| l.strip_prefix("a="))
            .map(str::to_owned)
            .chain(
                client
                    .state
                    .server_candidates
                    .lock()
                    .unwrap()
                    .iter()
                    .cloned(),
            )
            .filter(|c| c.contains(" udp ") && c.contains("typ host"))
            .collect();
        udp_hosts.dedup();
        assert!(
            !udp_hosts.is_empty(),
            "server advertised a UDP host candidate"
        );
        for c in &udp_hosts {
            assert!(
                c.contains(&format!(" 127.0.0.1 {shared_port} typ host")),
                "every server UDP candidate names the shared port: {c}"
            );
        }
    }
    h.end_room("s").await.expect("end");
    wait_for("routes and peers gone", Duration::from_secs(20), || {
        let s = h.stats();
        s.peers == 0
            && s.mux_routes == 0
            && s.tasks == 0
            && s.runtime_tasks == baseline_runtime_tasks
    })
    .await;
    for c in [alice, bob, carol] {
        c.close().await;
    }
    sfu.shutdown().await;
}
