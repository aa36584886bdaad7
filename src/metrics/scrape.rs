//! One scrape: the readings of the parts that keep their own counters (SFU, Socket.IO,
//! database pool, rate budgets, Redis link, process), taken together, then written out.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::PREFIX;
use super::process::{self, ProcessStats};
use crate::realtime::RealtimeStats;
use crate::sfu::SfuStats;
use crate::state::{AppState, Mode};

/// Live rooms and seats come from the database (the same numbers on every replica); a
/// scrape reuses them for this long so a tight scrape interval costs no more queries.
const ROOM_COUNTS_TTL: Duration = Duration::from_secs(5);

/// Rooms live and seats taken in them, and when they were counted.
#[derive(Debug, Clone, Copy)]
pub(super) struct RoomCounts {
    at: Instant,
    rooms: i64,
    seats: i64,
}

#[derive(Debug)]
struct Readings {
    sfu: Option<SfuStats>,
    realtime: RealtimeStats,
    pool: PoolReading,
    rate_limited: Vec<(&'static str, u64)>,
    rooms: Option<RoomCounts>,
    redis: Option<RedisReading>,
    process: Option<ProcessStats>,
}

#[derive(Debug)]
struct PoolReading {
    max: u32,
    open: u32,
    idle: u32,
    checkouts: u64,
    wait_seconds: f64,
    timeouts: u64,
    errors: [(&'static str, u64); 3],
}

/// The whole exposition for `state`'s application.
pub(super) async fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let readings = Readings {
        sfu: state.media.sfu_stats(),
        realtime: state.io.stats(),
        pool: pool_reading(state),
        rate_limited: state.limits.refusals().counts(),
        rooms: room_counts(state).await,
        redis: redis_reading(&state.mode).await,
        process: process::read(),
    };
    state.metrics.encode(Box::new(readings))
}

fn pool_reading(state: &AppState) -> PoolReading {
    let pool = state.pool.state();
    let db = &state.metrics.db;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    PoolReading {
        max: state.pool.max_size(),
        open: pool.connections,
        idle: pool.idle_connections,
        checkouts: load(&db.checkouts),
        wait_seconds: load(&db.checkout_wait_micros) as f64 / 1e6,
        timeouts: load(&db.checkout_timeouts),
        errors: [
            ("constraint", load(&db.constraint_errors)),
            ("conflict", load(&db.conflict_errors)),
            ("other", load(&db.other_errors)),
        ],
    }
}

/// Live rooms and their seats, at most [`ROOM_COUNTS_TTL`] old; None when the database does
/// not answer (the scrape still shows everything else).
async fn room_counts(state: &AppState) -> Option<RoomCounts> {
    let cached = *state.metrics.room_counts.lock();
    if let Some(counts) = cached.filter(|c| c.at.elapsed() < ROOM_COUNTS_TTL) {
        return Some(counts);
    }
    let counted = crate::db::run(&state.pool, |conn| {
        crate::rooms::queries::live_counts(conn).map_err(crate::db::DbError::from)
    })
    .await;
    match counted {
        Ok((rooms, seats)) => {
            let counts = RoomCounts {
                at: Instant::now(),
                rooms,
                seats,
            };
            *state.metrics.room_counts.lock() = Some(counts);
            Some(counts)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: live rooms not counted");
            None
        }
    }
}

/// In a cluster: whether Redis answers, how often the link came back after an outage, and
/// how late the other replicas' messages arrive.
#[derive(Debug)]
struct RedisReading {
    up: bool,
    reconnects: u64,
    /// (messages timed, sum of their delays in ms).
    lag: (u64, u64),
}

async fn redis_reading(mode: &Mode) -> Option<RedisReading> {
    match mode {
        Mode::Embedded { .. } => None,
        Mode::Cluster { redis, .. } => Some(RedisReading {
            up: mode.shared_state_ready().await,
            // The pub/sub link's first connection counts as one; reconnections are the rest.
            reconnects: mode.reconnections().borrow().saturating_sub(1),
            lag: redis.hub().lag.read(),
        }),
    }
}

/// Writes families of constant values.
struct Out<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Out<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let name = format!("{PREFIX}{name}");
        let metric = self
            .0
            .encode_descriptor(&name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(metric)
    }

    fn counter_f64(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        let name = format!("{PREFIX}{name}");
        let metric = self
            .0
            .encode_descriptor(&name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(metric)
    }

    fn gauge(&mut self, name: &str, help: &str, value: i64) -> std::fmt::Result {
        let name = format!("{PREFIX}{name}");
        let metric = self
            .0
            .encode_descriptor(&name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(metric)
    }

    /// One family, one series per `(label value, count)`.
    fn labelled<L: AsRef<str>>(
        &mut self,
        kind: MetricType,
        name: &str,
        help: &str,
        label: &str,
        values: &[(L, i64)],
    ) -> std::fmt::Result {
        let name = format!("{PREFIX}{name}");
        let mut metric = self.0.encode_descriptor(&name, help, None, kind)?;
        for (value, n) in values {
            let labels = [(label, value.as_ref())];
            let series = metric.encode_family(&labels)?;
            match kind {
                MetricType::Gauge => ConstGauge::new(*n).encode(series)?,
                _ => ConstCounter::new(u64::try_from(*n).unwrap_or(0)).encode(series)?,
            }
        }
        Ok(())
    }
}

fn signed<L: Clone>(values: &[(L, u64)]) -> Vec<(L, i64)> {
    values
        .iter()
        .map(|(l, n)| (l.clone(), i64::try_from(*n).unwrap_or(i64::MAX)))
        .collect()
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut out = Out(&mut encoder);
        let rt = &self.realtime;
        out.labelled(
            MetricType::Gauge,
            "socketio_connections",
            "Open Engine.IO connections on this node, by current transport",
            "transport",
            &[
                ("polling", rt.polling_sessions as i64),
                ("websocket", rt.websocket_sessions as i64),
            ],
        )?;
        out.gauge(
            "socketio_sockets",
            "Sockets connected to the main namespace on this node",
            rt.sockets as i64,
        )?;
        let mut events_in = signed(&rt.events_in);
        events_in.push(("unknown".to_owned(), rt.unknown_events_in as i64));
        out.labelled(
            MetricType::Counter,
            "socketio_events_received",
            "Client events received, by name (names without a handler count as unknown)",
            "event",
            &events_in,
        )?;
        out.labelled(
            MetricType::Counter,
            "socketio_events_sent",
            "Events emitted by this node, by name (one per emit, to one socket or a room)",
            "event",
            &signed(&rt.events_out),
        )?;
        out.counter(
            "socketio_rate_limited_connections",
            "Connections closed for going over realtime.max_packets_per_second",
            rt.rate_limited_sessions,
        )?;
        out.labelled(
            MetricType::Counter,
            "socketio_handshakes_refused",
            "Engine.IO handshakes refused, by reason (server_full, per_address cap or rate, stopping)",
            "reason",
            &signed(&[
                ("server_full", rt.refused_server_full),
                ("per_address", rt.refused_per_address),
                ("stopping", rt.refused_stopping),
            ]),
        )?;
        out.labelled(
            MetricType::Counter,
            "rate_limited",
            "Requests and events refused by a rate budget on this node, by budget",
            "budget",
            &signed(&self.rate_limited),
        )?;
        if let Some(rooms) = self.rooms {
            out.gauge(
                "rooms_live",
                "Rooms live (from the database: the same on every replica)",
                rooms.rooms,
            )?;
            out.gauge(
                "seats_taken",
                "Seats taken in live rooms (from the database: the same on every replica)",
                rooms.seats,
            )?;
        }
        if let Some(sfu) = &self.sfu {
            encode_sfu(&mut out, sfu)?;
        }
        let pool = &self.pool;
        out.gauge(
            "db_pool_max_connections",
            "database.max_connections",
            i64::from(pool.max),
        )?;
        out.labelled(
            MetricType::Gauge,
            "db_pool_connections",
            "Database connections open, by state",
            "state",
            &[
                ("idle", i64::from(pool.idle)),
                ("busy", i64::from(pool.open.saturating_sub(pool.idle))),
            ],
        )?;
        out.counter(
            "db_pool_checkouts",
            "Connections taken from the pool",
            pool.checkouts,
        )?;
        out.counter_f64(
            "db_pool_wait_seconds",
            "Time spent waiting for a pooled connection, summed over checkouts",
            pool.wait_seconds,
        )?;
        out.counter(
            "db_pool_timeouts",
            "Waits for a pooled connection that ran out (database.connect_timeout_secs)",
            pool.timeouts,
        )?;
        out.labelled(
            MetricType::Counter,
            "db_query_errors",
            "Failed queries, by kind: constraint (often expected, e.g. a name taken), conflict (serialization), other",
            "kind",
            &signed(&pool.errors),
        )?;
        if let Some(redis) = &self.redis {
            out.gauge(
                "redis_up",
                "1 when Redis answers this replica, 0 when not (cluster mode only)",
                i64::from(redis.up),
            )?;
            out.counter(
                "redis_reconnects",
                "Times the Redis link came back after an outage",
                redis.reconnects,
            )?;
            out.counter(
                "redis_pubsub_messages",
                "Messages received over Redis pub/sub (bus events, Socket.IO adapter messages, media requests; a replica hears its own too)",
                redis.lag.0,
            )?;
            out.counter(
                "redis_pubsub_lag_milliseconds",
                "Sum of those messages' delays from sending to arrival (the hosts' clocks must agree); \
                 rate(lag)/rate(messages) is the mean pub/sub lag",
                redis.lag.1,
            )?;
        }
        if let Some(process) = &self.process {
            encode_process(&mut encoder, process)?;
        }
        Ok(())
    }
}

fn encode_sfu(out: &mut Out<'_, '_>, sfu: &SfuStats) -> std::fmt::Result {
    out.gauge(
        "sfu_rooms",
        "Rooms with media on this node's SFU",
        sfu.rooms as i64,
    )?;
    out.gauge(
        "sfu_peers",
        "Peer connections (participants) on this node's SFU",
        sfu.peers as i64,
    )?;
    out.gauge(
        "sfu_ports_leased",
        "Media ports leased (peers and connectivity probes)",
        sfu.leased_ports as i64,
    )?;
    out.counter(
        "sfu_packets_received",
        "RTP packets read from publishers",
        sfu.received_packets,
    )?;
    out.counter(
        "sfu_received_bytes",
        "RTP bytes read from publishers (bitrate in: rate() * 8)",
        sfu.received_bytes,
    )?;
    out.counter(
        "sfu_packets_forwarded",
        "RTP packets written to subscribers",
        sfu.forwarded_packets,
    )?;
    out.counter(
        "sfu_forwarded_bytes",
        "RTP bytes written to subscribers (bitrate out: rate() * 8)",
        sfu.forwarded_bytes,
    )?;
    out.counter(
        "sfu_packets_dropped",
        "RTP packets dropped: a subscriber's queue full or its leg not ready",
        sfu.dropped_packets,
    )?;
    out.counter(
        "sfu_nacks_relayed",
        "NACK messages sent to publishers for packets the retransmission buffer lacked",
        sfu.relayed_nacks,
    )?;
    out.counter(
        "sfu_nack_packets_requested",
        "Sequence numbers subscribers asked for in NACKs",
        sfu.nack_requested_packets,
    )?;
    out.labelled(
        MetricType::Counter,
        "sfu_nack_packets",
        "What became of the sequence numbers subscribers NACKed",
        "outcome",
        &signed(&[
            ("answered", sfu.nack_answered_packets),
            ("relayed", sfu.nack_relayed_packets),
            ("limited", sfu.nack_limited_packets),
        ]),
    )?;
    out.counter(
        "sfu_keyframe_requests",
        "PLIs (keyframe requests) sent to publishers",
        sfu.keyframe_requests,
    )?;
    out.labelled(
        MetricType::Counter,
        "sfu_connection_failures",
        "Peer connections that failed: ICE/DTLS failed, or not connected within sfu.connect_timeout_ms",
        "cause",
        &signed(&[
            ("failed", sfu.connections_failed),
            ("timeout", sfu.connect_timeouts),
        ]),
    )?;
    out.counter(
        "sfu_ignored_candidates",
        "Client ICE candidates not probed (addresses the configuration does not allow)",
        sfu.ignored_candidates,
    )?;
    out.counter(
        "sfu_video_pauses",
        "Times the video forwarded to a participant was paused because its downlink lost packets",
        sfu.video_pauses,
    )?;
    out.counter(
        "sfu_layer_switches",
        "Times a subscriber switched from one simulcast layer of a publisher's video to another",
        sfu.layer_switches,
    )
}

/// The process family under the names every Prometheus client uses (`process_*`), so
/// existing dashboards and alerts apply.
fn encode_process(encoder: &mut DescriptorEncoder, p: &ProcessStats) -> std::fmt::Result {
    let gauge = |e: &mut DescriptorEncoder, name: &str, help: &str, v: i64| {
        let metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(v).encode(metric)
    };
    gauge(
        encoder,
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        i64::try_from(p.resident_bytes).unwrap_or(i64::MAX),
    )?;
    gauge(
        encoder,
        "process_open_fds",
        "Open file descriptors",
        i64::try_from(p.open_fds).unwrap_or(i64::MAX),
    )?;
    if let Some(max) = p.max_fds {
        gauge(
            encoder,
            "process_max_fds",
            "Maximum number of open file descriptors",
            i64::try_from(max).unwrap_or(i64::MAX),
        )?;
    }
    let cpu = encoder.encode_descriptor(
        "process_cpu_seconds",
        "User and system CPU time spent, in seconds",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(p.cpu_seconds).encode(cpu)
}
