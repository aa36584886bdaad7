//! Capacity load tool: ROOMS rooms of PER_ROOM people, each a webrtc-rs client that signs in
//! as a guest, takes its seat over REST, and joins the room and its media through the real
//! binary's Socket.IO gateway (`sfu:join`, offers and answers over the socket), as a browser
//! does. Everyone publishes Opus (50 packets/s) and, unless `--video-pps 0`, video; everyone
//! receives everyone else in the room. The server is another process (`--server-pid`): its
//! CPU and resident memory are read from /proc, and loss is what the clients did not receive
//! of what the others in their room sent. bench/capacity/run.sh sweeps it.
//!
//! cargo run --release --example capacity_load -- --server-pid PID --rooms 10 --video-pps 0
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::future::join_all;
use serde_json::{Value, json};
use talkconnect_testkit::gateway::GatewayPeer;
use talkconnect_testkit::sfu_client::ClientState;
use talkconnect_testkit::sfu_measure::{
    self, process_cpu_ticks, process_rss_kib, udp_buffer_errors,
};

#[derive(Parser, Debug)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:3500")]
    url: String,
    /// The server's process id (its CPU and memory are read from /proc).
    #[arg(long)]
    server_pid: u32,
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    #[arg(long, default_value_t = 6)]
    per_room: usize,
    /// Video packets a second per person; 0: audio only (cameras off).
    #[arg(long, default_value_t = 0)]
    video_pps: u32,
    /// Bytes of each video payload.
    #[arg(long, default_value_t = 1000)]
    payload: usize,
    /// The measured window, after everyone hears everyone.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rooms set up at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
}

struct Person {
    id: String,
    token: String,
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut request = http.post(format!("{url}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// One room: its people seated over REST, then each one's socket and media session.
async fn room(http: reqwest::Client, args: Arc<Args>, n: usize) -> Vec<GatewayPeer> {
    let url = args.url.as_str();
    let mut people = Vec::new();
    for i in 0..args.per_room {
        let body = call(
            &http,
            url,
            "/api/auth/guest",
            None,
            json!({ "displayName": format!("Người {n}-{i}") }),
        )
        .await;
        people.push(Person {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        });
    }
    let created = call(
        &http,
        url,
        "/api/rooms",
        Some(&people[0].token),
        json!({ "title": format!("Phòng {n}"), "maxParticipants": args.per_room }),
    )
    .await;
    let room = created["id"].as_str().unwrap().to_owned();
    for person in &people[1..] {
        call(
            &http,
            url,
            &format!("/api/rooms/{room}/join"),
            Some(&person.token),
            json!({}),
        )
        .await;
    }
    let mut peers = Vec::new();
    for person in &people {
        peers.push(GatewayPeer::join(url, &person.token, &person.id, &room).await);
    }
    peers
}

/// Whether each person of each room hears every other one.
fn everyone_heard(rooms: &[Vec<GatewayPeer>]) -> bool {
    rooms.iter().all(|room| {
        room.iter().all(|listener| {
            room.iter()
                .filter(|speaker| speaker.peer.user != listener.peer.user)
                .all(|speaker| listener.peer.state.received_from(&speaker.peer.user).audio > 0)
        })
    })
}

struct Snapshot {
    at: Instant,
    sent: u64,
    received: u64,
    server_ticks: u64,
    load_ticks: u64,
    rcvbuf_drops: u64,
}

fn received(state: &ClientState) -> u64 {
    state
        .received
        .lock()
        .unwrap()
        .values()
        .map(|r| r.audio + r.video)
        .sum()
}

fn snapshot(states: &[Arc<ClientState>], server_pid: u32) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        sent: states
            .iter()
            .map(|s| s.sent_packets.load(Ordering::Relaxed))
            .sum(),
        received: states.iter().map(|s| received(s)).sum(),
        server_ticks: process_cpu_ticks(server_pid),
        load_ticks: process_cpu_ticks(std::process::id()),
        rcvbuf_drops: udp_buffer_errors().0,
    }
}

fn main() {
    sfu_measure::init_tracing();
    let args = Arc::new(Args::parse());
    let runtime = sfu_measure::load_runtime(args.load_threads);
    runtime.block_on(async move {
        let started = Instant::now();
        let http = reqwest::Client::new();
        let mut rooms = Vec::new();
        for first in (0..args.rooms).step_by(args.parallel.max(1)) {
            let batch = (first..(first + args.parallel).min(args.rooms))
                .map(|n| room(http.clone(), Arc::clone(&args), n));
            rooms.extend(join_all(batch).await);
        }

        for peer in rooms.iter_mut().flatten() {
            peer.peer.start_media(args.video_pps, args.payload);
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while !everyone_heard(&rooms) {
            assert!(Instant::now() < deadline, "not everyone hears everyone after 90 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // From the first guest signing in to everyone hearing everyone.
        let ready = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let states: Vec<Arc<ClientState>> = rooms
            .iter()
            .flatten()
            .map(|p| Arc::clone(&p.peer.state))
            .collect();
        let s0 = snapshot(&states, args.server_pid);
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let s1 = snapshot(&states, args.server_pid);
        let secs = (s1.at - s0.at).as_secs_f64();
        let ticks = 100.0; // USER_HZ
        let listeners = (args.per_room - 1) as f64;
        let offered = (s1.sent - s0.sent) as f64 * listeners / secs;
        let delivered = (s1.received - s0.received) as f64 / secs;
        let loss = if offered > 0.0 { (1.0 - delivered / offered).max(0.0) * 100.0 } else { 0.0 };
        let server_cpu = (s1.server_ticks - s0.server_ticks) as f64 / ticks / secs * 100.0;
        let load_cpu = (s1.load_ticks - s0.load_ticks) as f64 / ticks / secs * 100.0;
        let people = args.rooms * args.per_room;
        sfu_measure::print_line(&format!(
            "rooms={} per_room={} people={people} video_pps={} offered_pps={offered:.0} delivered_pps={delivered:.0} loss={loss:.2}% server_cpu={server_cpu:.0}% server_rss_mib={:.0} server_cpu_per_person={:.2}% load_cpu={load_cpu:.0}% rcvbuf_drops_pps={:.0} ready_s={:.1}",
            args.rooms,
            args.per_room,
            args.video_pps,
            process_rss_kib(args.server_pid) as f64 / 1024.0,
            server_cpu / people as f64,
            (s1.rcvbuf_drops - s0.rcvbuf_drops) as f64 / secs,
            ready.as_secs_f64(),
        ));
    });
    // Closing hundreds of peers one by one would only renegotiate the rest: the process ends
    // here, and the server sees the sockets and media go.
    std::process::exit(0);
}
