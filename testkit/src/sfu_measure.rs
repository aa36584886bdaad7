//! The measuring side of the SFU load tools (`sfu_load` against our SFU, `sfu_janus_load`
//! against Janus): CPU ticks from /proc, kernel UDP buffer drops, core pinning, the warm-up
//! wait, the counters of the measurement window and the one-line report.

use crate::sfu_client::{ClientState, wait_for};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The load both tools generate, and where it runs.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Publishers (each sends Opus at 50 pps plus VP8 at --video-pps).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Receive-only subscribers (publishers also receive each other).
    #[arg(long, default_value_t = 4)]
    pub subscribers: usize,
    /// VP8 packets per second per publisher.
    #[arg(long, default_value_t = 100)]
    pub video_pps: u32,
    /// VP8 payload bytes.
    #[arg(long, default_value_t = 1000)]
    pub payload: usize,
    /// Measurement window after warm-up.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Core for SFU threads; the load generator gets every other core.
    #[arg(long, default_value_t = 0)]
    pub sfu_core: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub load_threads: usize,
    /// Skip pinning.
    #[arg(long)]
    pub no_pin: bool,
    /// Publishers send their video as three simulcast layers (rids l, m, h: a quarter, half
    /// and all of --video-pps); each subscriber is forwarded one of them.
    #[arg(long)]
    pub simulcast: bool,
}

/// Logs errors only unless RUST_LOG says otherwise, to stderr: stdout is the report.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .try_init();
}

/// The load generator's runtime (threads named `load`).
pub fn load_runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("load")
        .enable_all()
        .build()
        .expect("client runtime")
}

/// Name and utime+stime ticks of one /proc `stat` line.
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((stat[open + 1..close].to_owned(), field(11) + field(12)))
}

/// (utime+stime ticks of this process's threads named `sfu…`, of all its other threads).
pub fn own_cpu_ticks() -> (u64, u64) {
    let mut sfu = 0;
    let mut rest = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((name, ticks)) = stat_ticks(&stat) else {
            continue;
        };
        if name.starts_with("sfu") {
            sfu += ticks;
        } else {
            rest += ticks;
        }
    }
    (sfu, rest)
}

/// utime+stime ticks of one thread of this process, by its OS id; 0 when unreadable.
pub fn thread_cpu_ticks(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| stat_ticks(&s))
        .map_or(0, |(_, ticks)| ticks)
}

/// Pins one thread of this process to `cpus` (a taskset list, e.g. `0` or `0,1`).
pub fn pin_thread(tid: u32, cpus: &str) {
    let _ = std::process::Command::new("taskset")
        .args(["-pc", cpus, &tid.to_string()])
        .stdout(std::process::Stdio::null())
        .status();
}

/// The cgroup v1 `cpu` hierarchy that [`cap_threads`] uses.
const CPU_CGROUPS: &str = "/sys/fs/cgroup/cpu";

/// CFS period of the caps: short, so a capped thread is never held off for long (a 100 ms
/// period would let it run 45 ms and then stop it for 55, with packets piling up meanwhile).
const CAP_PERIOD_US: u64 = 10_000;

/// Threads held to a share of one core each, until dropped.
pub struct CpuCaps {
    /// Each capped thread, its cgroup, and the cgroup it came from.
    threads: Vec<(u32, std::path::PathBuf, String)>,
}

/// Holds each of `tids` (threads of this process) to `percent` of one core: one cgroup per
/// thread under the cgroup v1 `cpu` controller, `cpu.cfs_quota_us` = percent of a 10 ms
/// period. A stand-in for a machine with more cores than this one: threads capped at 40 % on
/// two cores are two "cores" of 0.40, while the load generator takes what is left. Needs
/// root and the v1 controller mounted at /sys/fs/cgroup/cpu.
pub fn cap_threads(tids: &[u32], percent: u64) -> std::io::Result<CpuCaps> {
    let mut caps = CpuCaps {
        threads: Vec::new(),
    };
    for &tid in tids {
        let from = std::fs::read_to_string(format!("/proc/self/task/{tid}/cgroup"))?
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let controllers = parts.nth(1)?;
                controllers
                    .split(',')
                    .any(|c| c == "cpu")
                    .then(|| parts.next().map(str::to_owned))?
            })
            .ok_or_else(|| std::io::Error::other("no cgroup v1 cpu controller"))?;
        let dir = std::path::Path::new(CPU_CGROUPS)
            .join(format!("talkconnect-bench-{}-{tid}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        caps.threads.push((tid, dir.clone(), from));
        std::fs::write(dir.join("cpu.cfs_period_us"), CAP_PERIOD_US.to_string())?;
        std::fs::write(
            dir.join("cpu.cfs_quota_us"),
            (CAP_PERIOD_US * percent / 100).to_string(),
        )?;
        std::fs::write(dir.join("tasks"), tid.to_string())?;
    }
    Ok(caps)
}

impl CpuCaps {
    /// Times each capped thread was held off for having used its share (`nr_throttled`).
    pub fn throttled(&self) -> Vec<u64> {
        self.threads
            .iter()
            .map(|(_, dir, _)| {
                std::fs::read_to_string(dir.join("cpu.stat"))
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| l.strip_prefix("nr_throttled "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}

impl Drop for CpuCaps {
    fn drop(&mut self) {
        for (tid, dir, from) in &self.threads {
            let back = std::path::Path::new(CPU_CGROUPS)
                .join(from.trim_start_matches('/'))
                .join("tasks");
            let _ = std::fs::write(back, tid.to_string());
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// utime+stime ticks of a whole process (all its threads, live and exited).
pub fn process_cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_ticks(&s))
        .map_or(0, |(_, ticks)| ticks)
}

/// Resident memory of a process (`VmRSS` of /proc/<pid>/status), in KiB; 0 when unreadable.
pub fn process_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Kernel UDP counters (RcvbufErrors, SndbufErrors): datagrams dropped by full socket buffers.
pub fn udp_buffer_errors() -> (u64, u64) {
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

/// Pins this process's threads named `sfu…` to `sfu_core` and every other thread to the
/// other cores.
pub fn pin_threads(sfu_core: usize) {
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
        if let Ok(tid) = tid.parse() {
            pin_thread(tid, &cpus);
        }
    }
}

/// Who sends and who receives: publishers' names and send counters, and every receiving
/// connection's user and counters (a publisher receives everyone but itself). With several
/// rooms, names are `room/user` and a receiver hears the publishers of its own room only.
pub struct Load<'a> {
    pub names: Vec<String>,
    pub senders: Vec<&'a ClientState>,
    pub receivers: Vec<(&'a str, &'a ClientState)>,
}

impl Load<'_> {
    /// Waits until every receiver gets video from every other publisher, then 2 s more.
    pub async fn warm_up(&self) {
        wait_for("warm-up", Duration::from_secs(120), || {
            self.receivers.iter().all(|(user, state)| {
                heard_by(&self.names, user).all(|n| state.received_from(n).video > 0)
            })
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    /// (packets received from other publishers, sequence gaps), over all receivers.
    fn received(&self) -> (u64, u64) {
        self.receivers
            .iter()
            .fold((0, 0), |(pk, lost), (user, state)| {
                heard_by(&self.names, user).fold((pk, lost), |(pk, lost), n| {
                    let r = state.received_from(n);
                    (pk + r.audio + r.video, lost + r.lost)
                })
            })
    }

    /// One send counter summed over the publishers.
    fn sum_sent(&self, counter: fn(&ClientState) -> &AtomicU64) -> u64 {
        self.senders
            .iter()
            .map(|s| counter(s).load(Ordering::Relaxed))
            .sum()
    }
}

/// The publishers `user` hears: the others of its room (the part of a name before `/`).
fn heard_by<'n>(names: &'n [String], user: &'n str) -> impl Iterator<Item = &'n String> {
    let room = |name: &'n str| name.split_once('/').map_or("", |(room, _)| room);
    names
        .iter()
        .filter(move |n| n.as_str() != user && room(n) == room(user))
}

/// Counters at one instant. `forwarded`/`dropped` are the SFU's own counters when it has
/// them (Janus has none: then forwarded is estimated from what the clients received).
pub struct Snapshot {
    at: Instant,
    sent: u64,
    sent_lower: u64,
    received: u64,
    lost: u64,
    sfu_ticks: u64,
    load_ticks: u64,
    rcvbuf: u64,
    sndbuf: u64,
    forwarded: Option<(u64, u64)>,
}

impl Snapshot {
    /// `cpu` is (SFU ticks, load generator ticks); `forwarded` (forwarded, dropped) if known.
    pub fn take(load: &Load<'_>, cpu: (u64, u64), forwarded: Option<(u64, u64)>) -> Snapshot {
        let (received, lost) = load.received();
        let (rcvbuf, sndbuf) = udp_buffer_errors();
        Snapshot {
            at: Instant::now(),
            sent: load.sum_sent(|s| &s.sent_packets),
            // Simulcast layers below the top one: ingested by the SFU, forwarded to none
            // while every subscriber takes the top layer.
            sent_lower: load.sum_sent(|s| &s.sent_lower_layers),
            received,
            lost,
            sfu_ticks: cpu.0,
            load_ticks: cpu.1,
            rcvbuf,
            sndbuf,
            forwarded,
        }
    }
}

/// The report line of one window between two snapshots, for one room.
pub fn report(publishers: usize, subscribers: usize, s0: &Snapshot, s1: &Snapshot) -> String {
    report_rooms(1, publishers, subscribers, s0, s1)
}

/// The report line of one window between two snapshots: `rooms` rooms of `publishers` and
/// `subscribers` each.
pub fn report_rooms(
    rooms: usize,
    publishers: usize,
    subscribers: usize,
    s0: &Snapshot,
    s1: &Snapshot,
) -> String {
    let elapsed = s1.at.duration_since(s0.at).as_secs_f64();
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / elapsed;
    let ticks = 100.0; // USER_HZ
    let sfu_cpu = rate(s0.sfu_ticks, s1.sfu_ticks) / ticks;
    let load_cpu = rate(s0.load_ticks, s1.load_ticks) / ticks;
    let delivered = rate(s0.received, s1.received);
    let (forwarded, dropped) = match (s0.forwarded, s1.forwarded) {
        (Some((f0, d0)), Some((f1, d1))) => (rate(f0, f1), rate(d0, d1)),
        _ => (delivered, 0.0),
    };
    let lost = rate(s0.lost, s1.lost);
    let receivers_per_pub = (subscribers + publishers - 1) as f64;
    let offered = rate(s0.sent, s1.sent) * receivers_per_pub;
    let streams = rooms as f64 * publishers as f64 * 2.0 * receivers_per_pub;
    let loss = if offered > 0.0 {
        (1.0 - delivered / offered).max(0.0)
    } else {
        0.0
    };
    format!(
        "rooms={} pubs={} subs={} streams={} offered_pps={:.0} forwarded_pps={:.0} delivered_pps={:.0} \
         sfu_dropped_pps={:.0} seq_gaps_pps={:.0} loss={:.2}% sfu_cpu={:.0}% load_cpu={:.0}% \
         sfu_us_per_pkt={:.1} sfu_cpu_per_stream={:.2}% kernel_rcvbuf_drops_pps={:.0} \
         kernel_sndbuf_drops_pps={:.0} missing_before_fanout_pps={:.0} lower_layers_in_pps={:.0}",
        rooms,
        publishers,
        subscribers,
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
        rate(s0.rcvbuf, s1.rcvbuf),
        rate(s0.sndbuf, s1.sndbuf),
        (offered - forwarded - dropped).max(0.0),
        rate(s0.sent_lower, s1.sent_lower),
    )
}

/// Writes the report line to stdout (the tools' output).
pub fn print_line(line: &str) {
    std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes()).ok();
}
