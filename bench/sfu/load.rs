//! SFU load tool: R rooms of N publishers × M receive-only subscribers of webrtc-rs clients on
//! loopback, all in one process. The SFU's threads (named `sfu0`, `sfu1`, …) are pinned to one
//! core and the clients to the other with `taskset`, and CPU is read per thread from /proc, so
//! the SFU's share is measured apart from the load generator's.
//!
//! cargo run --release --example sfu_load -- --publishers 2 --subscribers 8 --seconds 10
//! cargo run --release --example sfu_load -- --rooms 4 --sfu-threads 2 --no-pin ...
//! cargo run --release --example sfu_load -- --rooms 4 --sfu-threads 2 --spread --sfu-cpu-percent 40 ...
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
    /// The SFU's threads (`sfu.worker_threads`); a room lives on one of them.
    #[arg(long, default_value_t = 1)]
    sfu_threads: usize,
    /// Rooms, each with --publishers and --subscribers of its own.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Pin SFU thread i to core i (modulo the cores) and leave the load generator unpinned,
    /// instead of every SFU thread on --sfu-core and the load generator on the others.
    #[arg(long)]
    spread: bool,
    /// `sfu.retransmission_buffer_ms` (0 = off), to weigh the buffer's cost.
    #[arg(long, default_value_t = SfuConfig::default().retransmission_buffer_ms)]
    retransmission_buffer_ms: u64,
    /// Hold each SFU thread to this share of one core (cgroup v1 `cpu`, root; 0 = no cap):
    /// with --spread, N threads capped at P % stand for N cores of P % each, the load
    /// generator taking the rest of the machine (bench/sfu/cores.sh).
    #[arg(long, default_value_t = 0)]
    sfu_cpu_percent: u64,
}

fn main() {
    sfu_measure::init_tracing();
    let Args {
        load: args,
        sfu_threads,
        rooms,
        spread,
        retransmission_buffer_ms,
        sfu_cpu_percent,
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
        let mut publishers = Vec::new();
        let mut subscribers = Vec::new();
        for r in 0..rooms {
            // One room keeps the plain names; with several, `room/user` (sfu_measure::Load).
            let (room, prefix) = match rooms {
                1 => ("bench".to_owned(), String::new()),
                _ => (format!("bench{r}"), format!("bench{r}/")),
            };
            for i in 0..args.publishers {
                let name = format!("{prefix}pub{i}");
                let mut p = if args.simulcast {
                    Client::join_simulcast(&handle, &room, &name).await
                } else {
                    Client::join(&handle, &room, &name, true).await
                };
                p.start_media(args.video_pps, args.payload);
                publishers.push(p);
            }
            for i in 0..args.subscribers {
                let name = format!("{prefix}sub{i}");
                subscribers.push(Client::join(&handle, &room, &name, false).await);
            }
        }
        tracing::info!(
            rooms_per_thread = ?handle.rooms_per_thread(),
            people_per_thread = ?handle.people_per_thread(),
            "rooms placed"
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if spread {
            for (i, tid) in handle.thread_ids().into_iter().enumerate() {
                if let Some(tid) = tid {
                    sfu_measure::pin_thread(tid, &(i % cores).to_string());
                }
            }
        } else if !args.no_pin {
            sfu_measure::pin_threads(args.sfu_core);
        }
        let caps = (sfu_cpu_percent > 0).then(|| {
            let tids: Vec<u32> = handle.thread_ids().into_iter().flatten().collect();
            sfu_measure::cap_threads(&tids, sfu_cpu_percent).expect("cap the SFU threads' CPU")
        });
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
        // Each SFU thread's share of the window, in ticks (USER_HZ), to see the rooms spread.
        let per_thread: Vec<String> = handle
            .thread_ids()
            .into_iter()
            .flatten()
            .map(|tid| sfu_measure::thread_cpu_ticks(tid).to_string())
            .collect();
        tracing::info!(ticks = %per_thread.join(","), "sfu threads' CPU since start");
        if let Some(caps) = &caps {
            tracing::info!(throttled = ?caps.throttled(), "times each capped SFU thread was held off");
        }
        drop(caps);
        sfu_measure::print_line(&sfu_measure::report_rooms(
            rooms,
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
