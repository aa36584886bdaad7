//! TURN relay load: N allocations on a relay (ours in the `talkconnect` binary, or coturn),
//! each sending ~1200-byte packets at a share of a fixed total rate to one UDP sink peer on
//! loopback, over a bound channel (ChannelData, what browsers send media with) or as Send
//! indications; the sink echoes every packet back through the relay. The relay runs in its own
//! process: its CPU is utime+stime from /proc/<pid>/stat over the window, divided by the
//! packets it forwarded (client → sink and sink → client both count).
//!
//! bench/turn/run.sh starts both relays and runs this against each, side by side; by hand:
//!
//! turn_load --server 127.0.0.1:3478 --secret S --server-pid PID --sink-port 47600 \
//!     --allocations 20 --rate 20000 --seconds 8
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, ValueEnum};
use talkconnect::turn::client::TurnClient;
use talkconnect::turn::credentials;
use talkconnect::turn::message::{self as stun, Builder, Class, Message};
use talkconnect_testkit::sfu_measure::{process_cpu_ticks, udp_buffer_errors};
use tokio::net::UdpSocket;

#[derive(Parser, Debug)]
struct Args {
    /// The relay's TURN/UDP address.
    #[arg(long)]
    server: SocketAddr,
    /// The relay's shared secret (TURN REST API credentials, coturn's static-auth-secret).
    #[arg(long)]
    secret: String,
    /// The relay's process id, whose CPU is measured.
    #[arg(long)]
    server_pid: u32,
    /// Port of the sink peer (for our relay: inside the SFU's media ports).
    #[arg(long)]
    sink_port: u16,
    /// Address of the sink peer: loopback, or this host's own address to see the relay treat
    /// the peer as a public one (traffic between local addresses stays on the loopback device).
    #[arg(long, default_value = "127.0.0.1")]
    sink_ip: std::net::IpAddr,
    /// Address the clients send from (default: whatever the route to the relay gives). With
    /// the relay and the sink on this host's own address, clients on 127.0.0.1 are told apart
    /// from the peer, as clients elsewhere on the internet are.
    #[arg(long)]
    client_ip: Option<std::net::IpAddr>,
    /// Allocations, each with its own client socket and user.
    #[arg(long, default_value_t = 20)]
    allocations: usize,
    /// Packets per second sent by all allocations together (the sink echoes as many).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Bytes of each packet's payload.
    #[arg(long, default_value_t = 1200)]
    payload: usize,
    /// Measured window after the warm-up, in seconds.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Warm-up before the window, in seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// How clients send: ChannelData on a bound channel, or Send indications.
    #[arg(long, value_enum, default_value_t = Mode::Channel)]
    mode: Mode,
    /// Name printed at the start of the report line.
    #[arg(long, default_value = "relay")]
    label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Channel,
    Send,
}

const CHANNEL: u16 = 0x4000;

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    send_blocked: AtomicU64,
    at_sink: AtomicU64,
    back: AtomicU64,
}

impl Counters {
    fn get(&self) -> [u64; 4] {
        [
            self.sent.load(Ordering::Relaxed),
            self.send_blocked.load(Ordering::Relaxed),
            self.at_sink.load(Ordering::Relaxed),
            self.back.load(Ordering::Relaxed),
        ]
    }
}

/// /proc's clock ticks (USER_HZ): 100 on every Linux this runs on.
fn ticks_per_second() -> f64 {
    100.0
}

/// Datagrams the kernel dropped on the UDP sockets bound to `port` (any address), from the
/// last column of /proc/net/udp: where a loss happened, the relay's socket or the sink's.
fn socket_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let port_hex = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields
                .get(1)
                .is_some_and(|local| local.ends_with(&port_hex))
                .then(|| fields.last()?.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

fn main() {
    let args = Args::parse();
    // One thread: run.sh pins this process to the core the relay does not run on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run(args));
}

async fn run(args: Args) {
    let sink_addr = SocketAddr::new(args.sink_ip, args.sink_port);
    let sink = Rc::new(
        UdpSocket::bind(sink_addr)
            .await
            .unwrap_or_else(|e| panic!("cannot bind the sink on {sink_addr}: {e}")),
    );
    let counters = Rc::new(Counters::default());

    let mut clients = Vec::new();
    for i in 0..args.allocations {
        let credential = credentials::mint(
            args.secret.as_bytes(),
            &format!("bench-{}-{i}", std::process::id()),
            Duration::from_secs(3600),
            SystemTime::now(),
        );
        let local = SocketAddr::new(
            args.client_ip
                .unwrap_or_else(|| std::net::IpAddr::from([0, 0, 0, 0])),
            0,
        );
        let mut client = TurnClient::allocate_from(
            local,
            args.server,
            &credential.username,
            &credential.password,
            Duration::from_secs(3),
        )
        .await
        .unwrap_or_else(|e| panic!("allocation {i} on {}: {e}", args.server));
        match args.mode {
            Mode::Channel => client.channel_bind(CHANNEL, sink_addr).await,
            Mode::Send => client.create_permission(sink_addr).await,
        }
        .unwrap_or_else(|e| panic!("allocation {i}: the sink {sink_addr} is refused: {e}"));
        clients.push(Rc::new(client));
    }

    // The sink echoes every packet to where it came from (the allocation's relayed address).
    {
        let (sink, counters) = (Rc::clone(&sink), Rc::clone(&counters));
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = sink.recv_from(&mut buf).await {
                counters.at_sink.fetch_add(1, Ordering::Relaxed);
                let _ = sink.try_send_to(&buf[..n], from);
            }
        });
    }
    let mut receivers = Vec::new();
    for client in &clients {
        let (client, counters) = (Rc::clone(client), Rc::clone(&counters));
        receivers.push(tokio::task::spawn_local(async move {
            let (socket, _) = client.socket().expect("a UDP allocation");
            let mut buf = vec![0u8; 2048];
            while let Ok(n) = socket.recv(&mut buf).await {
                let relayed = stun::parse_channel_data(&buf[..n]).is_some()
                    || Message::parse(&buf[..n])
                        .is_some_and(|m| m.class == Class::Indication && m.method == stun::DATA);
                if relayed {
                    counters.back.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let payload = vec![0xA5u8; args.payload];
    let frames: Vec<Vec<u8>> = clients
        .iter()
        .map(|_| match args.mode {
            Mode::Channel => stun::channel_data(CHANNEL, &payload, false),
            Mode::Send => Builder::new(stun::SEND, Class::Indication, rand::random())
                .xor_address(stun::XOR_PEER_ADDRESS, sink_addr)
                .attribute(stun::DATA_ATTR, &payload)
                .finish(None),
        })
        .collect();

    // The sender: every millisecond, what the rate asks for by now, round robin.
    let stop_sending = Rc::new(std::cell::Cell::new(false));
    {
        let (clients, counters, stop) = (
            clients.clone(),
            Rc::clone(&counters),
            Rc::clone(&stop_sending),
        );
        let rate = args.rate;
        tokio::task::spawn_local(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut next = 0usize;
            let mut done: u64 = 0;
            while !stop.get() {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                while done < due {
                    let (socket, server) = clients[next].socket().expect("a UDP allocation");
                    match socket.try_send_to(&frames[next], server) {
                        Ok(_) => counters.sent.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counters.send_blocked.fetch_add(1, Ordering::Relaxed),
                    };
                    done += 1;
                    next = (next + 1) % clients.len();
                }
            }
        });
    }

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let t0 = Instant::now();
    let c0 = counters.get();
    let cpu0 = process_cpu_ticks(args.server_pid);
    let own0 = process_cpu_ticks(std::process::id());
    let drops0 = udp_buffer_errors();
    let (relay_drops0, sink_drops0) = (
        socket_drops(args.server.port()),
        socket_drops(args.sink_port),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let c1 = counters.get();
    let cpu1 = process_cpu_ticks(args.server_pid);
    let own1 = process_cpu_ticks(std::process::id());
    let drops1 = udp_buffer_errors();
    let (relay_drops1, sink_drops1) = (
        socket_drops(args.server.port()),
        socket_drops(args.sink_port),
    );
    stop_sending.set(true);
    // What is in flight arrives (or is lost) within this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = counters.get();

    let per_s = |i: usize| (c1[i] - c0[i]) as f64 / elapsed;
    let forwarded = (c1[2] - c0[2]) + (c1[3] - c0[3]);
    let server_cpu_s = (cpu1 - cpu0) as f64 / ticks_per_second();
    let own_cpu_s = (own1 - own0) as f64 / ticks_per_second();
    // Loss over the whole run (warm-up, window and drain), so nothing is in flight at the ends.
    let loss_out = 1.0 - total[2] as f64 / total[0].max(1) as f64;
    let loss_back = 1.0 - total[3] as f64 / total[2].max(1) as f64;
    let loss_round = 1.0 - total[3] as f64 / total[0].max(1) as f64;
    println!(
        "{label} mode={mode:?} allocs={allocs} rate={rate} payload={payload} sent_pps={sent:.0} \
         forwarded_pps={fwd:.0} loss_to_sink={lo:.2}% loss_back={lb:.2}% loss={lr:.2}% \
         relay_cpu={cpu:.0}% us_per_pkt={us:.2} gen_cpu={gen:.0}% send_blocked={blocked} \
         rcvbuf_drops_pps={drops:.0} relay_port_drops_pps={relay_drops:.0} \
         sink_drops_pps={sink_drops:.0}",
        label = args.label,
        mode = args.mode,
        allocs = args.allocations,
        rate = args.rate,
        payload = args.payload,
        sent = per_s(0),
        fwd = forwarded as f64 / elapsed,
        lo = loss_out * 100.0,
        lb = loss_back * 100.0,
        lr = loss_round * 100.0,
        cpu = server_cpu_s / elapsed * 100.0,
        us = server_cpu_s * 1e6 / forwarded.max(1) as f64,
        gen = own_cpu_s / elapsed * 100.0,
        blocked = total[1],
        drops = (drops1.0 - drops0.0) as f64 / elapsed,
        relay_drops = (relay_drops1 - relay_drops0) as f64 / elapsed,
        sink_drops = (sink_drops1 - sink_drops0) as f64 / elapsed,
    );

    // The allocations are given back, so runs one after the other start from none.
    for receiver in receivers {
        receiver.abort();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for client in clients {
        if let Ok(client) = Rc::try_unwrap(client) {
            let _ = client.release().await;
        }
    }
}
