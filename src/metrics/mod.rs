//! Prometheus metrics: one registry per application (tests run many in one process), the
//! counters the product bumps itself (HTTP requests, refused acks, room events), and at each
//! scrape the numbers the libraries already keep (SFU, Socket.IO, database pool, rate
//! budgets, the process), read rather than instrumented: the packet path takes no lock for it.
//! `serve.rs`: `/metrics` on the main port behind a token and on the admin address.

mod process;
mod scrape;
mod serve;

use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::events::{DomainEvent, EndReason};

pub use serve::{AdminServer, record_request, routes, serve_admin};

/// Every metric name starts with this.
pub const PREFIX: &str = "talkconnect_";

/// Seconds, for request latencies: 5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label of requests that matched no route (the web app's files, unknown paths): the raw
/// path is never a label, or anyone could mint series.
const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

/// The application's registry and the counters the product bumps itself.
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<RequestLabels, Counter>,
    http_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    acks_refused: Family<CodeLabel, Counter>,
    rooms_created: Counter,
    room_joins: Counter,
    room_leaves: Family<CauseLabel, Counter>,
    rooms_ended: Family<CauseLabel, Counter>,
    chat_messages: Counter,
    /// The database pool's waits and failed queries (`db::connect_counted`).
    pub db: std::sync::Arc<crate::db::DbCounters>,
    room_counts: Mutex<Option<scrape::RoomCounts>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::default()),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            acks_refused: Family::default(),
            rooms_created: Counter::default(),
            room_joins: Counter::default(),
            room_leaves: Family::default(),
            rooms_ended: Family::default(),
            chat_messages: Counter::default(),
            db: std::sync::Arc::default(),
            room_counts: Mutex::new(None),
        };
        // Every cause shows from the start (at 0), so rate() and dashboards see the series.
        for cause in ["left", "kicked"] {
            metrics
                .room_leaves
                .get_or_create(&CauseLabel { cause })
                .inc_by(0);
        }
        for cause in ["last_left", "host_ended"] {
            metrics
                .rooms_ended
                .get_or_create(&CauseLabel { cause })
                .inc_by(0);
        }
        {
            let mut r = metrics.registry.lock();
            let name = |n: &str| format!("{PREFIX}{n}");
            r.register(
                name("http_requests"),
                "HTTP requests answered, by route pattern, method and status",
                metrics.http_requests.clone(),
            );
            r.register(
                name("http_request_duration_seconds"),
                "Time to answer an HTTP request (to the response head), by route pattern and method",
                metrics.http_latency.clone(),
            );
            r.register(
                name("socketio_acks_refused"),
                "Client events answered with {ok:false}, by error code",
                metrics.acks_refused.clone(),
            );
            r.register(
                name("rooms_created"),
                "Rooms created (every replica's, as seen on the event bus)",
                metrics.rooms_created.clone(),
            );
            r.register(
                name("room_joins"),
                "Seats taken (every replica's, as seen on the event bus)",
                metrics.room_joins.clone(),
            );
            r.register(
                name("room_leaves"),
                "Seats freed, by cause: left (or disconnected past the grace period) or kicked",
                metrics.room_leaves.clone(),
            );
            r.register(
                name("rooms_ended"),
                "Rooms ended, by cause: last_left or host_ended",
                metrics.rooms_ended.clone(),
            );
            r.register(
                name("chat_messages"),
                "Chat messages posted (every replica's, as seen on the event bus)",
                metrics.chat_messages.clone(),
            );
        }
        metrics
    }

    /// Adds a collector read at every scrape: the seam for parts that keep their own
    /// counters (the Redis link in cluster mode registers here). Names must start with
    /// [`PREFIX`].
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry.lock().register_collector(collector);
    }

    /// One HTTP request answered.
    pub fn http_request(&self, route: Option<String>, method: &str, status: u16, took: Duration) {
        // `{room_id}` written `:room_id`: braces in a label value trip simple parsers and
        // need escaping in PromQL regexes.
        let route = route.map_or_else(
            || UNMATCHED_ROUTE.to_owned(),
            |r| r.replace('{', ":").replace('}', ""),
        );
        let method = known_method(method);
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// A client event refused with `code` (an `ErrorCode`'s name: a fixed set).
    pub fn ack_refused(&self, code: &'static str) {
        self.acks_refused.get_or_create(&CodeLabel { code }).inc();
    }

    /// Counts what a domain event says happened to rooms, seats and chat.
    pub fn domain_event(&self, event: &DomainEvent) {
        match event {
            DomainEvent::RoomCreated { .. } => {
                self.rooms_created.inc();
            }
            DomainEvent::ParticipantJoined { .. } => {
                self.room_joins.inc();
            }
            DomainEvent::ParticipantLeft { .. } => {
                self.room_leaves
                    .get_or_create(&CauseLabel { cause: "left" })
                    .inc();
            }
            DomainEvent::ParticipantKicked { .. } => {
                self.room_leaves
                    .get_or_create(&CauseLabel { cause: "kicked" })
                    .inc();
            }
            DomainEvent::RoomEnded { reason, .. } => {
                let cause = match reason {
                    EndReason::LastLeft => "last_left",
                    EndReason::HostEnded => "host_ended",
                };
                self.rooms_ended.get_or_create(&CauseLabel { cause }).inc();
            }
            DomainEvent::ChatMessagePosted { .. } => {
                self.chat_messages.inc();
            }
            DomainEvent::RoomUpdated { .. }
            | DomainEvent::SeatChanged { .. }
            | DomainEvent::ParticipantUpdated { .. }
            | DomainEvent::ChatMessageDeleted { .. }
            | DomainEvent::UserBanned { .. }
            | DomainEvent::UserUnbanned { .. } => {}
        }
    }

    /// The registry and `extra` (this scrape's readings) in the Prometheus text format.
    fn encode(&self, extra: Box<dyn Collector>) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry.lock())?;
        let mut readings = Registry::default();
        readings.register_collector(extra);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &readings)?;
        Ok(text)
    }
}

/// The method as a label: a fixed set, so made-up methods cannot mint series.
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Counts the bus's room, seat and chat events until `shutdown`.
pub async fn count_domain_events(
    metrics: std::sync::Arc<Metrics>,
    bus: std::sync::Arc<dyn crate::cluster::Bus<DomainEvent>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = bus.subscribe();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => metrics.domain_event(&event),
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    "metrics fell behind the bus; some events not counted"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}
