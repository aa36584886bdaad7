//! The shared state every handler and the gateway read (`AppState`), built once at start in
//! the mode the settings name: one process alone, or one replica of a cluster through Redis
//! (`Mode`). Imports no handler: `app.rs` composes it with the routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, Accounts, JwtKeys};
use crate::chat::Chat;
use crate::client_ip::ClientIp;
use crate::cluster::redis::{
    Redis, RedisAdapter, RedisBus, RedisPlacement, RedisPresence, RedisRateLimiter, RedisStartError,
};
use crate::cluster::{
    Bus, InMemoryBus, InMemoryPresence, InMemoryRateLimiter, LocalPlacement, MediaPlacement,
    Presence, RateLimiter,
};
use crate::config::{ConfigError, Settings};
use crate::db::{self, DbPool};
use crate::events::DomainEvent;
use crate::http::Limits;
use crate::media::{Media, Relay, RelayStart};
use crate::metrics::Metrics;
use crate::moderation::bans::{Admins, Bans};
use crate::realtime::{self, SocketIo};
use crate::rooms::lobby::Link;
use crate::rooms::{RoomLocks, RoomView, Rooms, seat_cache};

/// Everything handlers share, built once.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub accounts: Accounts,
    pub bus: Arc<dyn Bus<DomainEvent>>,
    pub limits: Limits,
    pub rooms: Rooms,
    pub chat: Chat,
    pub presence: Arc<dyn Presence>,
    /// One room's seat changes and the sockets that follow them, in order on this node.
    pub room_locks: RoomLocks,
    pub io: SocketIo,
    pub media: Arc<Media>,
    pub mode: Mode,
    /// This application's Prometheus registry (src/metrics).
    pub metrics: Arc<Metrics>,
    /// Set by [`AppState::drain`]: the process is stopping.
    draining: AtomicBool,
    /// HTTP requests being answered (app.rs counts them), so a stop waits for them.
    pub requests_in_flight: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] db::ConnectError),
    #[error("JWT secret in {path}: {source}")]
    Secret {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("startup task failed: {0}")]
    Task(String),
    #[error("media: {0}")]
    Media(#[from] crate::sfu::SfuStartError),
    #[error(transparent)]
    Redis(#[from] RedisStartError),
}

/// Events published and not yet read by a slow subscriber before it starts losing them.
const BUS_CAPACITY: usize = 4096;

/// What this process shares with others. Business code asks it questions (is the shared
/// state reachable, did the link come back) instead of asking which mode it is in.
pub enum Mode {
    /// One process: nothing is shared, nothing can be lost in between.
    Embedded {
        /// Never bumped: one process has no link to lose.
        reconnections: watch::Sender<u64>,
    },
    /// One replica of a cluster: events, presence, limits and broadcasts go through Redis.
    Cluster {
        redis: Arc<Redis>,
        presence_period: Duration,
    },
}

impl Mode {
    /// Can this process reach what it shares with the others? One process always can.
    pub async fn shared_state_ready(&self) -> bool {
        match self {
            Mode::Embedded { .. } => true,
            Mode::Cluster { redis, .. } => redis.ready().await,
        }
    }

    /// Bumps each time the link to the other replicas comes back after an outage, when
    /// their events may have been lost meanwhile.
    pub fn reconnections(&self) -> watch::Receiver<u64> {
        match self {
            Mode::Embedded { reconnections } => reconnections.subscribe(),
            Mode::Cluster { redis, .. } => redis.hub().epochs(),
        }
    }

    /// Whether the other replicas' events reach this process now, as the link's epoch
    /// (`None`: they do not). One process is always linked, at epoch 0.
    pub fn link(&self) -> Link {
        match self {
            Mode::Embedded { .. } => Arc::new(|| Some(0)),
            Mode::Cluster { redis, .. } => {
                let hub = Arc::clone(redis.hub());
                Arc::new(move || hub.is_up().then(|| hub.epoch()))
            }
        }
    }

    /// After an outage: makes the shared caches (the seat counts) match the live rooms.
    pub async fn restore_caches(&self, live: &[RoomView]) {
        if let Mode::Cluster { redis, .. } = self {
            if let Err(e) = seat_cache::rebuild(redis, live).await {
                tracing::warn!(error = %e, "seat-count cache not rebuilt");
            }
        }
    }

    /// How long after an outage until every replica has announced its sockets again.
    pub fn presence_period(&self) -> Duration {
        match self {
            Mode::Embedded { .. } => Duration::ZERO,
            Mode::Cluster {
                presence_period, ..
            } => *presence_period,
        }
    }
}

/// The parts that differ between one process and a cluster (docs/CLUSTER.md).
struct Parts {
    bus: Arc<dyn Bus<DomainEvent>>,
    presence: Arc<dyn Presence>,
    limiter: Arc<dyn RateLimiter>,
    io: SocketIo,
    placement: Arc<dyn MediaPlacement>,
    mode: Mode,
}

impl Parts {
    fn embedded(settings: &Settings, client_ip: &ClientIp) -> Parts {
        Parts {
            bus: Arc::new(InMemoryBus::new(BUS_CAPACITY)),
            presence: Arc::new(InMemoryPresence::new()),
            limiter: Arc::new(InMemoryRateLimiter::new()),
            io: SocketIo::new(protocol_config(settings, client_ip)),
            placement: Arc::new(LocalPlacement),
            mode: Mode::Embedded {
                reconnections: watch::channel(0).0,
            },
        }
    }

    /// Redis for events, presence, rate limits and Socket.IO broadcasts.
    async fn cluster(
        settings: &Settings,
        client_ip: &ClientIp,
        shutdown: CancellationToken,
    ) -> Result<Parts, StartError> {
        let redis = Redis::connect(&settings.redis, &settings.cluster, shutdown.clone()).await?;
        let cluster = &settings.cluster;
        let bus = RedisBus::new(
            Arc::clone(&redis),
            BUS_CAPACITY,
            Some(Arc::new(seat_cache::commands)),
        )
        .await;
        let presence = RedisPresence::new(
            Arc::clone(&redis),
            Duration::from_secs(cluster.presence_ttl_secs),
        );
        presence.start_heartbeat(cluster.media_address.clone(), shutdown);
        let io = SocketIo::builder(protocol_config(settings, client_ip))
            .adapter(RedisAdapter::factory(
                Arc::clone(&redis),
                Duration::from_millis(cluster.request_timeout_ms),
            ))
            .build();
        let placement = RedisPlacement::new(
            Arc::clone(&redis),
            Duration::from_secs(cluster.media_lease_secs),
            Duration::from_millis(cluster.request_timeout_ms),
        )
        .await;
        Ok(Parts {
            placement,
            bus: Arc::new(bus),
            presence,
            limiter: Arc::new(RedisRateLimiter::new(Arc::clone(&redis))),
            io,
            mode: Mode::Cluster {
                redis,
                presence_period: Duration::from_secs(cluster.presence_ttl_secs),
            },
        })
    }
}

/// The protocol settings from the product's configuration.
/// `rate_limit.enabled = false` lifts the per-address caps too (load tests from one address);
/// the per-connection byte budgets and the global cap stay.
fn protocol_config(settings: &Settings, client_ip: &ClientIp) -> realtime::Config {
    let client_ip = client_ip.clone();
    let per_ip = settings.rate_limit.enabled;
    let settings = &settings.realtime;
    realtime::Config {
        ping_interval: Duration::from_millis(settings.ping_interval_ms),
        ping_timeout: Duration::from_millis(settings.ping_timeout_ms),
        max_payload: settings.max_payload_bytes,
        connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
        max_packets_per_second: settings.max_packets_per_second,
        packet_burst: settings.packet_burst,
        max_buffered_bytes: settings.max_buffered_bytes,
        max_sessions: settings.max_connections,
        max_sessions_per_ip: if per_ip {
            settings.max_connections_per_ip
        } else {
            0
        },
        handshakes_per_second_per_ip: if per_ip {
            settings.connects_per_second_per_ip
        } else {
            0
        },
        handshake_burst_per_ip: settings.connect_burst_per_ip,
        client_address: realtime::ClientAddress::new(move |req| client_ip.of(req)),
        ..realtime::Config::default()
    }
}

/// `sfu.announced_ip = "auto"`: asks the configured STUN servers which address this machine's
/// packets come from, once at start. None answering stops the start (a wrong address would
/// leave every browser without media).
async fn learn_public_address(sfu: &mut crate::sfu::SfuConfig) -> Result<(), StartError> {
    use crate::sfu::AnnouncedIp;
    use crate::sfu::public_address;
    if sfu.announced_ip != AnnouncedIp::Auto {
        return Ok(());
    }
    let urls: Vec<String> = sfu
        .ice_servers
        .iter()
        .flat_map(|s| s.urls.clone())
        .collect();
    let (ip, from) = public_address::discover(&urls, Duration::from_secs(3))
        .await
        .map_err(|e| ConfigError(format!("sfu.announced_ip = \"auto\": {e}")))?;
    tracing::info!(%ip, stun = %from, "public address learned from STUN");
    sfu.announced_ip = AnnouncedIp::Fixed(ip);
    Ok(())
}

impl AppState {
    /// Builds the state; background work (Redis pub/sub, heartbeats, media upkeep) stops
    /// with `shutdown`.
    pub async fn build(
        mut settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        learn_public_address(&mut settings.sfu).await?;
        let client_ip = ClientIp::new(
            settings.server.trusted_proxy_nets()?,
            settings.server.client_ip_header,
        );
        // Redis first: a wrong redis.url fails before migrations touch the database.
        let parts = if settings.cluster_mode() {
            Parts::cluster(&settings, &client_ip, shutdown.clone()).await?
        } else {
            Parts::embedded(&settings, &client_ip)
        };
        let url = settings.database_url()?;
        let db_settings = settings.database.clone();
        let metrics = Arc::new(Metrics::new());
        let db_counters = Arc::clone(&metrics.db);
        let pool = tokio::task::spawn_blocking(move || {
            db::connect_counted(&url, &db_settings, db_counters)
        })
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
        let secret = auth::token::load_or_create_secret(
            &settings.auth.jwt_secret,
            &settings.server.data_dir,
        )
        .map_err(|source| StartError::Secret {
            path: settings
                .server
                .data_dir
                .join("jwt_secret")
                .display()
                .to_string(),
            source,
        })?;
        let jwt = JwtKeys::new(&secret, settings.auth.token_ttl_secs);
        let ip_secret = match settings.moderation.ip_hash_secret.trim() {
            "" => secret.as_ref(),
            own => own.as_bytes(),
        };
        let bans = Bans::new(
            pool.clone(),
            Admins::new(&settings.moderation.admins),
            ip_secret,
        );
        bans.refresh()
            .await
            .map_err(|e| StartError::Task(format!("bans not loaded: {e}")))?;
        let limits = Limits::new(settings.rate_limit.clone(), parts.limiter, client_ip);
        let media = Media::start(
            &settings.media,
            &settings.sfu,
            parts.io.clone(),
            parts.placement,
            Duration::from_secs(settings.cluster.media_lease_secs),
            Duration::from_secs(settings.turn.credential_ttl_secs),
            shutdown.clone(),
        )
        .await?;
        tracing::info!(media = %media, "media");
        let rooms = Rooms::new(
            pool.clone(),
            parts.bus.clone(),
            settings.rooms.clone(),
            parts.mode.link(),
        );
        let real_certificate = matches!(
            settings.server.tls.mode,
            crate::config::TlsMode::Files | crate::config::TlsMode::Acme
        );
        let domain = settings.server.tls.domains().into_iter().next();
        let relay = Relay::start(
            RelayStart {
                turn: &settings.turn,
                sfu: &settings.sfu,
                mode: settings.media.mode,
                rooms: rooms.clone(),
                jwt_secret: &secret,
                tls_domain: domain.filter(|_| real_certificate),
            },
            shutdown,
        )
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
        if let Some(relay) = relay {
            media.attach_relay(relay);
        }
        Ok(Self {
            rooms,
            chat: Chat::new(pool.clone(), parts.bus.clone()),
            presence: parts.presence,
            room_locks: RoomLocks::new(),
            io: parts.io,
            media,
            mode: parts.mode,
            metrics,
            settings: Arc::new(settings),
            accounts: Accounts::new(pool.clone(), jwt, bans),
            pool,
            bus: parts.bus,
            limits,
            draining: AtomicBool::new(false),
            requests_in_flight: AtomicUsize::new(0),
        })
    }

    /// Is this process stopping? `/readyz` says 503 from the first signal on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The first step of a stop, so that nobody notices it: no new room, seat or connection
    /// here; the rooms whose media this process serves are handed over (their browsers join
    /// again wherever the room lands); every socket is told to reconnect (through the proxy to
    /// another replica, or here after a restart), and its seat waits on the grace clock for
    /// its owner to come back.
    pub async fn drain(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        self.rooms.stop_seating();
        self.media.drain().await;
        self.io.drain();
        self.presence.node_stopping().await;
    }

    /// Nothing is served here any more: no request being answered, no connection, no media
    /// session.
    pub fn drained(&self) -> bool {
        self.requests_in_flight.load(Ordering::Acquire) == 0
            && self.io.connection_count() == 0
            && self.media.sessions_here() == 0
    }
}
