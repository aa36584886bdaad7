//! The SFU's retransmission buffer under real loss: a webrtc-rs publisher and subscriber
//! through the SFU, inside a network namespace this test makes, where nftables drops 5 % of
//! the packets the SFU sends to the subscriber (`numgen random mod 100 < 5 drop`; the kernel
//! here has no netem). Run once with the buffer on and once off: with it on, subscriber NACKs
//! are answered from the buffer and fewer video frames are lost.
//!
//! The scenario runs in a child process of this test binary started with `ip netns exec`, so
//! every socket (SFU and peers, all in-process) lives in the namespace and no rule touches the
//! machine's own network. Needs root, iproute2 and nftables (scripts/test installs them); a
//! missing tool fails the test, it never skips.

use serde::{Deserialize, Serialize};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig};
use talkconnect_testkit::netns::{Namespace, nft};
use talkconnect_testkit::sfu_client::{Client, wait_for};

const SCENARIO: &str = "retransmission::scenario_in_namespace";
const BUFFER_MS_ENV: &str = "TC_RTX_BUFFER_MS";
const RESULT_ENV: &str = "TC_RTX_RESULT";
/// The subscriber's address: the loss rule matches it.
const SUBSCRIBER_IP: &str = "127.0.0.2";
const LONG: Duration = Duration::from_secs(30);
/// Frames younger than this may still be repaired and are not judged.
const GRACE: Duration = Duration::from_millis(1500);

/// What one run of the scenario measured.
#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    frames_complete: u64,
    frames_lost: u64,
    nack_requested: u64,
    nack_answered: u64,
    nack_relayed: u64,
    nack_limited: u64,
    dropped_by_rule: u64,
}

#[test]
fn nacks_are_answered_from_the_buffer_and_fewer_frames_are_lost() {
    let on = run_in_namespace(1000);
    let off = run_in_namespace(0);
    eprintln!("buffer on: {on:?}\nbuffer off: {off:?}");
    assert!(off.dropped_by_rule > 0, "the loss rule dropped packets");
    assert!(
        off.frames_lost > 0,
        "5 % loss damages frames without the buffer"
    );
    assert!(off.nack_requested > 0, "the subscriber NACKs");
    assert_eq!(
        off.nack_answered, 0,
        "nothing is answered with the buffer off"
    );
    assert!(
        off.nack_relayed > 0,
        "without the buffer NACKs go to the publisher"
    );
    assert!(
        on.nack_answered > 0,
        "NACKs answered from the buffer: {on:?}"
    );
    assert!(
        on.frames_lost < off.frames_lost,
        "fewer frames lost with the buffer on ({on:?}) than off ({off:?})"
    );
}

/// Runs the scenario in a fresh namespace and returns what it measured.
fn run_in_namespace(buffer_ms: u64) -> Outcome {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    // Not `tcs-…`: the browser lab of web/e2e/simulcast.test.mjs deletes every such namespace.
    let name = format!(
        "tcrtx-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let ns = Namespace::new(&name);
    let result = std::env::temp_dir().join(format!("{name}.json"));
    let exe = std::env::current_exe().expect("test binary path");
    let status = ns
        .command(exe)
        .args([SCENARIO, "--exact", "--ignored", "--nocapture"])
        .env(BUFFER_MS_ENV, buffer_ms.to_string())
        .env(RESULT_ENV, &result)
        .status()
        .expect("ip netns exec runs");
    assert!(status.success(), "the scenario with buffer {buffer_ms} ms");
    let text = std::fs::read_to_string(&result).expect("the scenario wrote its outcome");
    let _ = std::fs::remove_file(&result);
    serde_json::from_str(&text).expect("outcome parses")
}

/// The scenario itself; run only by the test above, inside its namespace.
#[test]
#[ignore = "runs inside the namespace made by nacks_are_answered_from_the_buffer_and_fewer_frames_are_lost"]
fn scenario_in_namespace() {
    let buffer_ms: u64 = std::env::var(BUFFER_MS_ENV)
        .expect("started by the retransmission test")
        .parse()
        .expect("a number");
    let result = std::env::var(RESULT_ENV).expect("a result path");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(scenario(buffer_ms));
    std::fs::write(result, serde_json::to_string(&outcome).expect("json")).expect("write result");
}

async fn scenario(buffer_ms: u64) -> Outcome {
    let sfu = Sfu::start(SfuConfig {
        retransmission_buffer_ms: buffer_ms,
        ..SfuConfig::loopback(42590, 42599)
    })
    .expect("sfu starts");
    let handle = sfu.handle();
    let mut alice = Client::join(&handle, "rtx", "alice", true).await;
    // 50 frames/s of 5 packets each, like a modest camera.
    alice.start_media(250, 900);
    let bob = Client::join_on_ip(&handle, "rtx", "bob", SUBSCRIBER_IP).await;
    wait_for("video at the subscriber", LONG, || {
        bob.state.received_from("alice").video >= 100
    })
    .await;

    nft(
        Command::new("nft"),
        &format!(
            "table ip rtx_loss {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  \
         ip daddr {SUBSCRIBER_IP} ip protocol udp numgen random mod 100 < 5 counter drop\n }}\n}}\n"
        ),
    );
    // About 8 s of media under loss, counted by what the publisher sent (audio included).
    let sent = alice.state.sent_packets.load(Ordering::SeqCst);
    wait_for("media under loss", LONG, || {
        alice.state.sent_packets.load(Ordering::SeqCst) >= sent + 2400
    })
    .await;
    let dropped_by_rule = nft_dropped();
    // Let the last frames judged be repaired or given up on.
    tokio::time::sleep(GRACE).await;
    let frames = bob.state.video_frames_from("alice", GRACE);
    let stats = handle.stats();
    assert!(bob.state.errors.lock().unwrap().is_empty());
    bob.close().await;
    alice.close().await;
    sfu.shutdown().await;
    Outcome {
        frames_complete: frames.complete,
        frames_lost: frames.lost,
        nack_requested: stats.nack_requested_packets,
        nack_answered: stats.nack_answered_packets,
        nack_relayed: stats.nack_relayed_packets,
        nack_limited: stats.nack_limited_packets,
        dropped_by_rule,
    }
}

/// Packets the loss rule has dropped so far.
fn nft_dropped() -> u64 {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "rtx_loss"])
        .output()
        .expect("nft lists");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
