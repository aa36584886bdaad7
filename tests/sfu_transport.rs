#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Transport options: ICE-TCP fallback for a client that has no UDP at all.

mod sfu_common;

use sfu_common::{Client, wait_for};
use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig};

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
