//! Load generator for the realtime benchmark: raw Engine.IO v4 / Socket.IO v5 frames over
//! websockets, so the client side is cheap enough to load a server (a Node client saturates
//! near 40k deliveries/s). Drives any server with the conformance events ("join", "to-room",
//! "message-with-ack"): ours (examples/socketio_conformance) or bench/realtime/node-server.mjs.
//!
//! Modes (see bench/realtime/run.sh for the full procedure):
//! - `idle`: N connected sockets answering pings; reports the server's RSS growth per socket.
//! - `broadcast`: N sockets in one room, one sender emitting to the room at a fixed rate;
//!   reports deliveries/s, server CPU, delivery latency.
//! - `ack`: N sockets emitting with acks at a fixed total rate; reports the round-trip p50/p99.

// A command-line tool: its results go to stdout.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
struct Cli {
    /// Server base, e.g. ws://127.0.0.1:3000
    #[arg(long, default_value = "ws://127.0.0.1:3000")]
    url: String,
    /// Server process id, to read its RSS and CPU time from /proc
    #[arg(long)]
    server_pid: Option<u32>,
    /// Handshakes in flight at once
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Idle {
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Seconds to let the server settle before reading its RSS
        #[arg(long, default_value_t = 5)]
        settle_secs: u64,
    },
    Broadcast {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Messages per second the sender emits to the room
        #[arg(long, default_value_t = 20)]
        rate: u32,
        #[arg(long, default_value_t = 3)]
        warmup_secs: u64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    Ack {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Acked emits per second, all clients together
        #[arg(long, default_value_t = 2000)]
        rate: u32,
        #[arg(long, default_value_t = 3)]
        warmup_secs: u64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// (RSS KiB, CPU ticks) of a process.
fn proc_stats(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based) → 11, 12 here.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((rss, ticks))
}

fn ticks_per_sec() -> f64 {
    100.0 // USER_HZ on Linux
}

async fn next_text(ws: &mut Ws) -> Result<String, Error> {
    loop {
        match ws.next().await.ok_or("closed")?? {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(_) => return Err("closed".into()),
            _ => {}
        }
    }
}

/// Websocket + Engine.IO open + Socket.IO CONNECT to "/".
async fn connect(url: &str) -> Result<Ws, Error> {
    // Small realtime frames: no Nagle delay (Node's `ws` does the same on its side).
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("{url}/socket.io/?EIO=4&transport=websocket"),
        None,
        true,
    )
    .await?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("unexpected open packet {open}").into());
    }
    ws.send(Message::text("40")).await?;
    loop {
        let t = next_text(&mut ws).await?;
        if t.starts_with("40") {
            return Ok(ws);
        }
        if t.starts_with("44") {
            return Err(format!("refused: {t}").into());
        }
    }
}

async fn connect_many(url: &str, n: usize, concurrency: usize) -> Vec<Ws> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let sem = Arc::clone(&sem);
        let url = url.to_owned();
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.ok()?;
            for _attempt in 0..5 {
                match connect(&url).await {
                    Ok(ws) => return Some(ws),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            None
        }));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        if let Ok(Some(ws)) = h.await {
            out.push(ws);
        }
    }
    out
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

/// Keeps a socket alive (answers pings) until `deadline`; counts room messages.
async fn hold(
    mut ws: Ws,
    deadline: Instant,
    deliveries: Arc<AtomicU64>,
    latencies: Option<Arc<parking_lot::Mutex<Vec<u64>>>>,
    window: Arc<AtomicUsize>,
) {
    let mut local = Vec::new();
    loop {
        let msg = tokio::select! {
            msg = ws.next() => msg,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let Some(Ok(Message::Text(t))) = msg else {
            if matches!(msg, Some(Ok(_))) {
                continue;
            }
            break;
        };
        if t.as_str() == "2" {
            if ws.send(Message::text("3")).await.is_err() {
                break;
            }
        } else if let Some(rest) = t.as_str().strip_prefix(r#"42["room-message",{"t":"#) {
            if window.load(Ordering::Relaxed) == 1 {
                deliveries.fetch_add(1, Ordering::Relaxed);
                if latencies.is_some() {
                    let sent: u64 = rest.trim_end_matches("}]").parse().unwrap_or(0);
                    local.push(now_micros().saturating_sub(sent));
                }
            }
        }
    }
    if let Some(lat) = latencies {
        lat.lock().extend(local);
    }
    let _ = ws.close(None).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    match cli.mode {
        Mode::Idle { conns, settle_secs } => {
            let before = cli.server_pid.and_then(proc_stats);
            let start = Instant::now();
            let sockets = connect_many(&cli.url, conns, cli.concurrency).await;
            let connected = sockets.len();
            println!(
                "idle: {connected}/{conns} sockets connected in {:.1}s",
                start.elapsed().as_secs_f64()
            );
            let deadline =
                Instant::now() + Duration::from_secs(settle_secs) + Duration::from_secs(2);
            let zero = Arc::new(AtomicU64::new(0));
            let window = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = sockets
                .into_iter()
                .map(|ws| {
                    tokio::spawn(hold(
                        ws,
                        deadline,
                        Arc::clone(&zero),
                        None,
                        Arc::clone(&window),
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(settle_secs)).await;
            if let (Some(pid), Some((rss0, _))) = (cli.server_pid, before) {
                if let Some((rss1, _)) = proc_stats(pid) {
                    println!(
                        "idle: server RSS {rss0} KiB -> {rss1} KiB: {:.2} KiB per socket",
                        (rss1.saturating_sub(rss0)) as f64 / connected.max(1) as f64
                    );
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        Mode::Broadcast {
            clients,
            rate,
            warmup_secs,
            secs,
        } => {
            let receivers = connect_many(&cli.url, clients, cli.concurrency).await;
            let mut joined = Vec::with_capacity(receivers.len());
            for mut ws in receivers {
                ws.send(Message::text(r#"421["join",{"room":"bench"}]"#))
                    .await?;
                loop {
                    let t = next_text(&mut ws).await?;
                    if t.starts_with("431") {
                        break;
                    }
                    if t == "2" {
                        ws.send(Message::text("3")).await?;
                    }
                }
                joined.push(ws);
            }
            let n = joined.len();
            println!("broadcast: {n} sockets in the room, sender at {rate} msg/s");
            let deliveries = Arc::new(AtomicU64::new(0));
            let latencies = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let window = Arc::new(AtomicUsize::new(0));
            let end = Instant::now() + Duration::from_secs(warmup_secs + secs + 2);
            let tasks: Vec<_> = joined
                .into_iter()
                .map(|ws| {
                    tokio::spawn(hold(
                        ws,
                        end,
                        Arc::clone(&deliveries),
                        Some(Arc::clone(&latencies)),
                        Arc::clone(&window),
                    ))
                })
                .collect();
            let mut sender = connect(&cli.url).await?;
            let send_until = Instant::now() + Duration::from_secs(warmup_secs + secs);
            let sender_task = tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                while Instant::now() < send_until {
                    tick.tick().await;
                    let msg = format!(
                        r#"42["to-room",{{"room":"bench","payload":{{"t":{}}}}}]"#,
                        now_micros()
                    );
                    if sender.send(Message::text(msg)).await.is_err() {
                        break;
                    }
                    // Drain pings so the sender stays connected.
                    while let Ok(Some(Ok(Message::Text(t)))) =
                        tokio::time::timeout(Duration::ZERO, sender.next()).await
                    {
                        if t.as_str() == "2" {
                            let _ = sender.send(Message::text("3")).await;
                        }
                    }
                }
            });
            tokio::time::sleep(Duration::from_secs(warmup_secs)).await;
            let cpu0 = cli.server_pid.and_then(proc_stats);
            window.store(1, Ordering::Relaxed);
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            window.store(0, Ordering::Relaxed);
            let elapsed = t0.elapsed().as_secs_f64();
            let cpu1 = cli.server_pid.and_then(proc_stats);
            let _ = sender_task.await;
            for t in tasks {
                let _ = t.await;
            }
            let per_sec = deliveries.load(Ordering::Relaxed) as f64 / elapsed;
            println!(
                "broadcast: {per_sec:.0} deliveries/s (expected {})",
                u64::from(rate) * n as u64
            );
            if let (Some((_, c0)), Some((_, c1))) = (cpu0, cpu1) {
                let cpu = (c1 - c0) as f64 / ticks_per_sec() / elapsed * 100.0;
                println!(
                    "broadcast: server CPU {cpu:.1}% of one core, {:.2}% per 1000 deliveries/s",
                    cpu / (per_sec / 1000.0)
                );
            }
            let mut lat = std::mem::take(&mut *latencies.lock());
            lat.sort_unstable();
            println!(
                "broadcast: delivery latency p50 {:.2} ms, p99 {:.2} ms ({} samples)",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                lat.len()
            );
        }
        Mode::Ack {
            clients,
            rate,
            warmup_secs,
            secs,
        } => {
            let sockets = connect_many(&cli.url, clients, cli.concurrency).await;
            let n = sockets.len();
            println!("ack: {n} sockets, {rate} acked emits/s in total");
            let per_client = Duration::from_secs_f64(n as f64 / f64::from(rate));
            let start = Instant::now();
            let window_start = start + Duration::from_secs(warmup_secs);
            let window_end = window_start + Duration::from_secs(secs);
            let tasks: Vec<_> = sockets
                .into_iter()
                .enumerate()
                .map(|(i, mut ws)| {
                    tokio::spawn(async move {
                        // Spread the clients' send times over one period.
                        let offset = per_client.mul_f64(i as f64 / n as f64);
                        let mut tick = tokio::time::interval_at(start + offset, per_client);
                        let mut pending: HashMap<u64, Instant> = HashMap::new();
                        let mut rtts = Vec::new();
                        let mut id = 0u64;
                        loop {
                            tokio::select! {
                                at = tick.tick() => {
                                    if at >= window_end {
                                        break;
                                    }
                                    id += 1;
                                    pending.insert(id, Instant::now());
                                    let msg = format!(r#"42{id}["message-with-ack",{id}]"#);
                                    if ws.send(Message::text(msg)).await.is_err() {
                                        break;
                                    }
                                }
                                msg = ws.next() => {
                                    let Some(Ok(msg)) = msg else { break };
                                    let Message::Text(t) = msg else { continue };
                                    if t.as_str() == "2" {
                                        let _ = ws.send(Message::text("3")).await;
                                    } else if let Some(rest) = t.as_str().strip_prefix("43") {
                                        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                                        if let Some(sent) = digits.parse().ok().and_then(|id: u64| pending.remove(&id)) {
                                            if sent >= window_start {
                                                rtts.push(sent.elapsed().as_micros() as u64);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        let _ = ws.close(None).await;
                        rtts
                    })
                })
                .collect();
            tokio::time::sleep_until(window_start).await;
            let cpu0 = cli.server_pid.and_then(proc_stats);
            tokio::time::sleep_until(window_end).await;
            let cpu1 = cli.server_pid.and_then(proc_stats);
            let mut all = Vec::new();
            for t in tasks {
                if let Ok(rtts) = t.await {
                    all.extend(rtts);
                }
            }
            all.sort_unstable();
            println!(
                "ack: round trip p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
                percentile(&all, 0.5),
                percentile(&all, 0.99),
                percentile(&all, 0.999),
                percentile(&all, 1.0),
                all.len()
            );
            if let (Some((_, c0)), Some((_, c1))) = (cpu0, cpu1) {
                let cpu = (c1 - c0) as f64 / ticks_per_sec() / secs as f64 * 100.0;
                println!("ack: server CPU {cpu:.1}% of one core");
            }
        }
    }
    Ok(())
}
