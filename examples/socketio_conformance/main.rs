//! Conformance server for the official protocol suites:
//! `cargo run --example socketio_conformance -- --port 3000`
//! Engine.IO echo at `/engine.io/`, Socket.IO at `/socket.io/` (ping 300/200 ms,
//! maxPayload 1e6, connectTimeout 1000 ms).

use actix_web::{App, HttpServer};
use clap::Parser;
use talkconnect_testkit::conformance;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3000)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// actix worker threads (default: one per core)
    #[arg(long)]
    workers: Option<usize>,
    /// Packets per second a client may send (0 = unlimited)
    #[arg(long)]
    rate: Option<u32>,
    /// Override the suites' 300 ms ping interval (benchmarks use the default 25000)
    #[arg(long)]
    ping_interval_ms: Option<u64>,
    #[arg(long)]
    ping_timeout_ms: Option<u64>,
    /// Leave Nagle's algorithm on (for comparison)
    #[arg(long)]
    nagle: bool,
    /// Register only the benchmark's events (same app as bench/realtime/node-server.mjs)
    #[arg(long)]
    bench_app: bool,
    /// Delay of the "auth" event after the CONNECT answer (testkit's conformance.rs: harness race)
    #[arg(long, default_value_t = 10)]
    auth_delay_ms: u64,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let nagle = args.nagle;
    let mut config = conformance::suite_config();
    if let Some(ms) = args.ping_interval_ms {
        config.ping_interval = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = args.ping_timeout_ms {
        config.ping_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(rate) = args.rate {
        config.max_packets_per_second = rate;
    }
    let servers = std::sync::Arc::new(if args.bench_app {
        conformance::build_bench(config)
    } else {
        conformance::build(config, std::time::Duration::from_millis(args.auth_delay_ms))
    });
    let mut server = HttpServer::new({
        let servers = servers.clone();
        move || {
            let servers = servers.clone();
            App::new().configure(move |cfg| servers.configure(cfg))
        }
    })
    // Realtime frames are small: send them at once (Node's `ws` sets TCP_NODELAY too).
    .on_connect(move |conn, _ext| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(!nagle);
        }
    })
    .bind((args.host.as_str(), args.port))?;
    if let Some(workers) = args.workers {
        server = server.workers(workers);
    }
    for addr in server.addrs() {
        tracing::warn!(%addr, "listening");
    }
    server.run().await
}
