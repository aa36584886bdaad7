//! SFU load tool: N publishers × M receive-only subscribers of webrtc-rs clients on loopback,
//! all in one process. The SFU's runtime threads (named `sfu`) are pinned to one core and the
//! clients to the other with `taskset`, and CPU is read per thread from /proc, so the SFU's
//! share is measured apart from the load generator's.
//!
//! cargo run --release --example sfu_load -- --publishers 2 --subscribers 8 --seconds 10
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig};
use talkconnect_testkit::sfu_client::Client;
use talkconnect_testkit::sfu_measure::{self, Load, LoadArgs, Snapshot};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    load: LoadArgs,
    /// Worker threads of the SFU runtime.
    #[arg(long, default_value_t = 1)]
    sfu_threads: usize,
    /// `sfu.retransmission_buffer_ms` (0 = off), to weigh the buffer's cost.
    #[arg(long, default_value_t = SfuConfig::default().retransmission_buffer_ms)]
    retransmission_buffer_ms: u64,
}

fn main() {
    sfu_measure::init_tracing();
    let Args {
        load: args,
        sfu_threads,
        retransmission_buffer_ms,
    } = Args::parse();
    let sfu = Sfu::start(SfuConfig {
        worker_threads: sfu_threads,
        subscriber_queue_packets: 2048,
        max_participants_per_room: 1000,
        retransmission_buffer_ms,
        ..SfuConfig::loopback(43000, 43999)
    })
    .expect("sfu");
    let handle = sfu.handle();
    let runtime = sfu_measure::load_runtime(args.load_threads);
    runtime.block_on(async move {
        let room = "bench";
        let mut publishers = Vec::new();
        for i in 0..args.publishers {
            let name = format!("pub{i}");
            let mut p = if args.simulcast {
                Client::join_simulcast(&handle, room, &name).await
            } else {
                Client::join(&handle, room, &name, true).await
            };
            p.start_media(args.video_pps, args.payload);
            publishers.push(p);
        }
        let mut subscribers = Vec::new();
        for i in 0..args.subscribers {
            subscribers.push(Client::join(&handle, room, &format!("sub{i}"), false).await);
        }
        if !args.no_pin {
            sfu_measure::pin_threads(args.sfu_core);
        }
        let load = Load {
            names: publishers.iter().map(|p| p.user.clone()).collect(),
            senders: publishers.iter().map(|p| &*p.state).collect(),
            receivers: publishers
                .iter()
                .chain(subscribers.iter())
                .map(|c| (c.user.as_str(), &*c.state))
                .collect(),
        };
        load.warm_up().await;
        let snapshot = || {
            let stats = handle.stats();
            Snapshot::take(
                &load,
                sfu_measure::own_cpu_ticks(),
                Some((stats.forwarded_packets, stats.dropped_packets)),
            )
        };
        let s0 = snapshot();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let s1 = snapshot();
        tracing::info!(stats = ?handle.stats(), "final stats");
        sfu_measure::print_line(&sfu_measure::report(
            args.publishers,
            args.subscribers,
            &s0,
            &s1,
        ));
        drop(load);
        for c in publishers.into_iter().chain(subscribers) {
            c.close().await;
        }
    });
    drop(sfu);
}
