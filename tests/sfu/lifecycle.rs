//! Many join/leave cycles with real media leave nothing behind: peers, tasks (ours and
//! webrtc-rs's), ports and rooms return to zero after every cycle, and RSS stays flat.

use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig};
use talkconnect_testkit::sfu_client::{Client, wait_for};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_cycles_return_every_counter_to_zero_and_rss_stays_flat() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sfu = Sfu::start(SfuConfig::loopback(42200, 42299)).expect("sfu starts");
    let h = sfu.handle();
    let cycles = 30;
    let mut rss_after_warmup = 0;
    for cycle in 0..cycles {
        let room = format!("cycle-{cycle}");
        let mut publisher = Client::join(&h, &room, "p", true).await;
        publisher.start_media(100, 600);
        let subscriber = Client::join(&h, &room, "s", false).await;
        wait_for("media arrives", Duration::from_secs(20), || {
            subscriber.state.received_from("p").video >= 10
        })
        .await;
        if cycle % 2 == 0 {
            h.leave(&room, "p").await.expect("leave p");
            h.leave(&room, "s").await.expect("leave s");
        } else {
            h.end_room(&room).await.expect("end room");
        }
        publisher.close().await;
        subscriber.close().await;
        wait_for("SFU state back to zero", Duration::from_secs(20), || {
            let s = h.stats();
            s.rooms == 0
                && s.peers == 0
                && s.tasks == 0
                && s.leased_ports == 0
                && s.runtime_tasks == 0
        })
        .await;
        tracing::debug!(cycle, rss = rss_kib(), "cycle done");
        if cycle == 9 {
            rss_after_warmup = rss_kib();
        }
    }
    let rss_end = rss_kib();
    tracing::info!(rss_after_warmup, rss_end, "rss over join/leave cycles");
    // Whole-process RSS (SFU and clients): 20 more cycles may not grow it by 32 MiB
    // (a leak of one connection's state per cycle would be far above that).
    assert!(
        rss_end < rss_after_warmup + 32 * 1024,
        "RSS grew from {rss_after_warmup} KiB to {rss_end} KiB over 20 cycles"
    );
    sfu.shutdown().await;
}
