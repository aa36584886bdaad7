//! Room broadcast through the Redis adapter: two Socket.IO servers (one actix worker each)
//! with `RedisAdapter` on a fresh key prefix, `--clients` raw websocket clients in room "r" on
//! each, and a server-side emitter on server 1 sending `io.to("r").emit(...)` at `--rate`
//! messages/s. Every message reaches server 1's clients locally and server 2's through one
//! Redis PUBLISH on the room's channel. Reports deliveries/s per server and the latency of
//! deliveries on server 2 (emit → client, one process clock).
//!
//! `cargo run --release --example cluster_adapter_bench -- --clients 500 --rate 100 --seconds 10`
//! (needs Redis on 127.0.0.1:6379: scripts/services).

// A command-line tool: its results go to stdout.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use parking_lot::Mutex;
use talkconnect::cluster::redis::{Redis, RedisAdapter};
use talkconnect::config::{ClusterSettings, RedisSettings};
use talkconnect::realtime::{Config, SocketIo};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Clients in the room on each server
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Messages per second emitted to the room on server 1
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Counters {
    delivered: [AtomicU64; 2],
    counting: AtomicBool,
    remote_latency_us: Mutex<Vec<u64>>,
    start: Instant,
}

async fn node(redis_url: &str, prefix: &str, id: &str) -> (SocketIo, std::net::SocketAddr) {
    let redis = Redis::connect(
        &RedisSettings {
            url: redis_url.into(),
            key_prefix: prefix.into(),
            pool_size: 8,
            timeout_ms: 2000,
        },
        &ClusterSettings {
            node_id: id.into(),
            media_address: String::new(),
            presence_ttl_secs: 10,
            request_timeout_ms: 2000,
            media_lease_secs: 10,
        },
        CancellationToken::new(),
    )
    .await
    .expect("Redis");
    let io = SocketIo::builder(Config {
        ping_interval: Duration::from_secs(25),
        ping_timeout: Duration::from_secs(20),
        max_packets_per_second: 0,
        ..Config::default()
    })
    .adapter(RedisAdapter::factory(redis, Duration::from_secs(2)))
    .build();
    io.ns("/", |socket, _auth| async move {
        socket.join("r").await;
        Ok(())
    });
    let served = io.clone();
    let server = HttpServer::new(move || {
        let io = served.clone();
        App::new().configure(move |cfg| io.configure(cfg))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (io, addr)
}

async fn client(addr: std::net::SocketAddr, server: usize, counters: Arc<Counters>) {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let _open = ws.next().await;
    ws.send(Message::text("40")).await.unwrap();
    let _connected = ws.next().await;
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            if text.as_str() == "2" {
                let _ = ws.send(Message::text("3")).await;
                continue;
            }
            if !counters.counting.load(Ordering::Relaxed) {
                continue;
            }
            counters.delivered[server].fetch_add(1, Ordering::Relaxed);
            if server == 1 {
                // 42["m",<seq>,<sent µs since start>]
                if let Some(sent) = text
                    .as_str()
                    .trim_end_matches(']')
                    .rsplit(',')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    let now = counters.start.elapsed().as_micros() as u64;
                    counters
                        .remote_latency_us
                        .lock()
                        .push(now.saturating_sub(sent));
                }
            }
        }
    });
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64) as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let cli = Cli::parse();
    actix_web::rt::System::new().block_on(async move {
        let prefix = format!("tc-bench:{}:", uuid::Uuid::new_v4().simple());
        let (io1, addr1) = node(&cli.redis, &prefix, "bench-1").await;
        let (_io2, addr2) = node(&cli.redis, &prefix, "bench-2").await;
        let counters = Arc::new(Counters {
            delivered: [AtomicU64::new(0), AtomicU64::new(0)],
            counting: AtomicBool::new(false),
            remote_latency_us: Mutex::new(Vec::new()),
            start: Instant::now(),
        });
        for i in 0..cli.clients * 2 {
            let (addr, server) = if i % 2 == 0 { (addr1, 0) } else { (addr2, 1) };
            client(addr, server, Arc::clone(&counters)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let period = Duration::from_secs_f64(1.0 / f64::from(cli.rate.max(1)));
        let mut tick = tokio::time::interval(period);
        let warmup = Instant::now() + Duration::from_secs(2);
        let end = warmup + Duration::from_secs(cli.seconds);
        let mut seq = 0u64;
        let mut sent_in_window = 0u64;
        loop {
            tick.tick().await;
            let now = Instant::now();
            if now >= end {
                break;
            }
            if now >= warmup && !counters.counting.load(Ordering::Relaxed) {
                counters.counting.store(true, Ordering::Relaxed);
            }
            let sent = counters.start.elapsed().as_micros() as u64;
            io1.to("r").emit("m", &(seq, sent)).await.unwrap();
            seq += 1;
            if now >= warmup {
                sent_in_window += 1;
            }
        }
        // Let the last messages arrive before reading the counters.
        tokio::time::sleep(Duration::from_millis(500)).await;
        counters.counting.store(false, Ordering::Relaxed);
        let secs = cli.seconds as f64;
        let local = counters.delivered[0].load(Ordering::Relaxed) as f64;
        let remote = counters.delivered[1].load(Ordering::Relaxed) as f64;
        let expected = sent_in_window as f64 * cli.clients as f64;
        let mut lat = counters.remote_latency_us.lock().clone();
        lat.sort_unstable();
        println!(
            "clients/server={} rate={}/s window={}s: local deliveries/s {:.0} ({:.1}% of expected), \
             via Redis deliveries/s {:.0} ({:.1}%), total {:.0}; remote latency p50 {:.2} ms p99 {:.2} ms",
            cli.clients,
            cli.rate,
            cli.seconds,
            local / secs,
            100.0 * local / expected,
            remote / secs,
            100.0 * remote / expected,
            (local + remote) / secs,
            pct(&lat, 50.0),
            pct(&lat, 99.0),
        );
        std::process::exit(0);
    });
}
