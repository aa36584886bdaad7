//! SFU load tool: N publishers × M receive-only subscribers of webrtc-rs clients on loopback,
//! all in one process. The SFU's runtime threads (named `sfu`) are pinned to one core and the
//! clients to the other with `taskset`, and CPU is read per thread from /proc, so the SFU's
//! share is measured apart from the load generator's.
//!
//! cargo run --release --example sfu_load -- --publishers 2 --subscribers 8 --seconds 10
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/sfu_common/mod.rs"]
mod client;

use clap::Parser;
use client::Client;
use std::time::{Duration, Instant};
use talkconnect::sfu::{Sfu, SfuConfig};

#[derive(Parser, Debug)]
struct Args {
    /// Publishers (each sends Opus at 50 pps plus VP8 at --video-pps).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Receive-only subscribers (publishers also receive each other).
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// VP8 packets per second per publisher.
    #[arg(long, default_value_t = 100)]
    video_pps: u32,
    /// VP8 payload bytes.
    #[arg(long, default_value_t = 1000)]
    payload: usize,
    /// Measurement window after warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Core for SFU threads; the load generator gets every other core.
    #[arg(long, default_value_t = 0)]
    sfu_core: usize,
    /// Worker threads of the SFU runtime.
    #[arg(long, default_value_t = 1)]
    sfu_threads: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
    /// Skip pinning.
    #[arg(long)]
    no_pin: bool,
}

/// (utime+stime ticks of threads named `sfu`, of all other threads).
fn cpu_ticks() -> (u64, u64) {
    let mut sfu = 0;
    let mut rest = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks: u64 = fields
            .get(11)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        if name.starts_with("sfu") {
            sfu += ticks;
        } else {
            rest += ticks;
        }
    }
    (sfu, rest)
}

/// Kernel UDP counters (RcvbufErrors, SndbufErrors): datagrams dropped by full socket buffers.
fn udp_buffer_errors() -> (u64, u64) {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return (0, 0);
    };
    let pick = |key: &str| -> u64 {
        names
            .split_whitespace()
            .position(|n| n == key)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (pick("RcvbufErrors"), pick("SndbufErrors"))
}

fn pin_threads(sfu_core: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let others: Vec<String> = (0..cores)
        .filter(|c| *c != sfu_core)
        .map(|c| c.to_string())
        .collect();
    let others = if others.is_empty() {
        sfu_core.to_string()
    } else {
        others.join(",")
    };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().to_string();
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let cpus = if name.starts_with("sfu") {
            sfu_core.to_string()
        } else {
            others.clone()
        };
        let _ = std::process::Command::new("taskset")
            .args(["-pc", &cpus, &tid])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .try_init();
    let args = Args::parse();
    let sfu = Sfu::start(SfuConfig {
        worker_threads: args.sfu_threads,
        subscriber_queue_packets: 2048,
        max_participants_per_room: 1000,
        ..SfuConfig::loopback(43000, 43999)
    })
    .expect("sfu");
    let handle = sfu.handle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.load_threads)
        .thread_name("load")
        .enable_all()
        .build()
        .expect("client runtime");
    runtime.block_on(async move {
        let room = "bench";
        let mut publishers = Vec::new();
        for i in 0..args.publishers {
            let mut p = Client::join(&handle, room, &format!("pub{i}"), true).await;
            p.start_media(args.video_pps, args.payload);
            publishers.push(p);
        }
        let mut subscribers = Vec::new();
        for i in 0..args.subscribers {
            subscribers.push(Client::join(&handle, room, &format!("sub{i}"), false).await);
        }
        if !args.no_pin {
            pin_threads(args.sfu_core);
        }
        // Warm-up: every receiver gets media from every publisher.
        let names: Vec<String> = publishers.iter().map(|p| p.user.clone()).collect();
        let everyone: Vec<&Client> = publishers.iter().chain(subscribers.iter()).collect();
        client::wait_for("warm-up", Duration::from_secs(60), || {
            everyone.iter().all(|c| {
                names
                    .iter()
                    .filter(|n| **n != c.user)
                    .all(|n| c.state.received_from(n).video > 0)
            })
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;

        let received = || -> (u64, u64) {
            everyone.iter().fold((0, 0), |(pk, lost), c| {
                names
                    .iter()
                    .filter(|n| **n != c.user)
                    .fold((pk, lost), |(pk, lost), n| {
                        let r = c.state.received_from(n);
                        (pk + r.audio + r.video, lost + r.lost)
                    })
            })
        };
        let sent = || -> u64 {
            publishers
                .iter()
                .map(|p| {
                    p.state
                        .sent_packets
                        .load(std::sync::atomic::Ordering::Relaxed)
                })
                .sum()
        };
        let sent0 = sent();
        let s0 = handle.stats();
        let (r0, l0) = received();
        let (c0_sfu, c0_rest) = cpu_ticks();
        let (rcvbuf0, sndbuf0) = udp_buffer_errors();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let elapsed = t0.elapsed().as_secs_f64();
        let sent1 = sent();
        let s1 = handle.stats();
        let (r1, l1) = received();
        let (c1_sfu, c1_rest) = cpu_ticks();
        let (rcvbuf1, sndbuf1) = udp_buffer_errors();

        let ticks = 100.0; // USER_HZ
        let sfu_cpu = (c1_sfu - c0_sfu) as f64 / ticks / elapsed;
        let load_cpu = (c1_rest - c0_rest) as f64 / ticks / elapsed;
        let forwarded = (s1.forwarded_packets - s0.forwarded_packets) as f64 / elapsed;
        let dropped = (s1.dropped_packets - s0.dropped_packets) as f64 / elapsed;
        let delivered = (r1 - r0) as f64 / elapsed;
        let lost = (l1 - l0) as f64 / elapsed;
        let receivers_per_pub = (args.subscribers + args.publishers - 1) as f64;
        let offered = (sent1 - sent0) as f64 / elapsed * receivers_per_pub;
        let streams = args.publishers as f64 * 2.0 * receivers_per_pub;
        let loss = if offered > 0.0 {
            (1.0 - delivered / offered).max(0.0)
        } else {
            0.0
        };
        tracing::info!(?s1, "final stats");
        let line = format!(
            "pubs={} subs={} streams={} offered_pps={:.0} forwarded_pps={:.0} delivered_pps={:.0} \
             sfu_dropped_pps={:.0} seq_gaps_pps={:.0} loss={:.2}% sfu_cpu={:.0}% load_cpu={:.0}% \
             sfu_us_per_pkt={:.1} sfu_cpu_per_stream={:.2}% kernel_rcvbuf_drops_pps={:.0} \
             kernel_sndbuf_drops_pps={:.0} missing_before_fanout_pps={:.0}",
            args.publishers,
            args.subscribers,
            streams,
            offered,
            forwarded,
            delivered,
            dropped,
            lost,
            loss * 100.0,
            sfu_cpu * 100.0,
            load_cpu * 100.0,
            if forwarded > 0.0 {
                sfu_cpu * 1e6 / forwarded
            } else {
                0.0
            },
            sfu_cpu * 100.0 / streams.max(1.0),
            (rcvbuf1 - rcvbuf0) as f64 / elapsed,
            (sndbuf1 - sndbuf0) as f64 / elapsed,
            (offered - forwarded - dropped).max(0.0),
        );
        // The report is this tool's output.
        std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes()).ok();
        for c in publishers.into_iter().chain(subscribers) {
            c.close().await;
        }
    });
    drop(sfu);
}
