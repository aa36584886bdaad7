//! Builds the shared state once, mounts every route, serves, and stops gracefully.
//! Tests build it on port 0 and get the bound address back.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{App, HttpResponse, web};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::auth::{self, JwtKeys};
use crate::chat::{self, Chat};
use crate::cluster::redis::{
    Redis, RedisAdapter, RedisBus, RedisPlacement, RedisPresence, RedisRateLimiter,
    RedisStartError, seats,
};
use crate::cluster::{
    Bus, InMemoryBus, InMemoryPresence, InMemoryRateLimiter, LocalPlacement, MediaPlacement,
    Presence, RateLimiter,
};
use crate::config::{ConfigError, Settings};
use crate::db::{self, DbPool};
use crate::error::ApiError;
use crate::events::DomainEvent;
use crate::http::{self, Limits};
use crate::realtime::{SocketIo, gateway};
use crate::rooms::{
    self, Rooms,
    domain::{Level, MAX_SEATS, MIN_SEATS},
};
use crate::web_ui;

/// Everything handlers share, built once.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: DbPool,
    pub jwt: JwtKeys,
    pub bus: Arc<dyn Bus<DomainEvent>>,
    pub limits: Limits,
    pub rooms: Rooms,
    pub chat: Chat,
    pub presence: Arc<dyn Presence>,
    pub io: SocketIo,
    pub media: Arc<gateway::Media>,
    /// Set in cluster mode (`redis.url`): the replicas' shared Redis.
    pub redis: Option<Arc<Redis>>,
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

/// The parts that differ between one process and a cluster (docs/CLUSTER.md).
struct Mode {
    bus: Arc<dyn Bus<DomainEvent>>,
    presence: Arc<dyn Presence>,
    limiter: Arc<dyn RateLimiter>,
    io: SocketIo,
    placement: Arc<dyn MediaPlacement>,
    redis: Option<Arc<Redis>>,
}

impl Mode {
    fn embedded(settings: &Settings) -> Mode {
        Mode {
            bus: Arc::new(InMemoryBus::new(BUS_CAPACITY)),
            presence: Arc::new(InMemoryPresence::new()),
            limiter: Arc::new(InMemoryRateLimiter::new()),
            io: SocketIo::new(gateway::protocol_config(&settings.realtime)),
            placement: Arc::new(LocalPlacement),
            redis: None,
        }
    }

    /// Redis for events, presence, rate limits and Socket.IO broadcasts.
    async fn cluster(settings: &Settings, shutdown: CancellationToken) -> Result<Mode, StartError> {
        let redis = Redis::connect(&settings.redis, &settings.cluster, shutdown.clone()).await?;
        let cluster = &settings.cluster;
        let bus = RedisBus::new(
            Arc::clone(&redis),
            BUS_CAPACITY,
            Some(Arc::new(seats::commands)),
        )
        .await;
        let presence = RedisPresence::new(
            Arc::clone(&redis),
            Duration::from_secs(cluster.presence_ttl_secs),
        );
        presence.start_heartbeat(cluster.media_address.clone(), shutdown);
        let io = SocketIo::builder(gateway::protocol_config(&settings.realtime))
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
        Ok(Mode {
            placement,
            bus: Arc::new(bus),
            presence,
            limiter: Arc::new(RedisRateLimiter::new(Arc::clone(&redis))),
            io,
            redis: Some(redis),
        })
    }
}

impl AppState {
    /// Builds the state; background work (Redis pub/sub, heartbeats) stops with `shutdown`.
    pub async fn build(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        // Redis first: a wrong redis.url fails before migrations touch the database.
        let mode = if settings.cluster_mode() {
            Mode::cluster(&settings, shutdown).await?
        } else {
            Mode::embedded(&settings)
        };
        let url = settings.database_url()?;
        let db_settings = settings.database.clone();
        let pool = tokio::task::spawn_blocking(move || db::connect(&url, &db_settings))
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
        let limits = Limits::new(settings.rate_limit.clone(), mode.limiter);
        let media = gateway::Media::start(
            settings.media.mode,
            &settings.sfu,
            mode.io.clone(),
            mode.placement,
        )
        .await?;
        tracing::info!(media = %media, "media");
        Ok(Self {
            rooms: Rooms::new(pool.clone(), mode.bus.clone(), settings.rooms.clone()),
            chat: Chat::new(pool.clone(), mode.bus.clone()),
            presence: mode.presence,
            io: mode.io,
            media,
            redis: mode.redis,
            settings: Arc::new(settings),
            pool,
            jwt,
            bus: mode.bus,
            limits,
        })
    }
}

pub struct Application {
    server: Server,
    address: SocketAddr,
    state: web::Data<AppState>,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects the database (running migrations), binds the port and prepares the server.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let address = SocketAddr::new(settings.server.host, settings.server.port);
        let listener = TcpListener::bind(address).map_err(|source| StartError::Bind {
            address: address.to_string(),
            source,
        })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind {
            address: address.to_string(),
            source,
        })?;
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let shutdown = CancellationToken::new();
        let state = web::Data::new(AppState::build(settings, shutdown.clone()).await?);
        gateway::install(state.clone(), shutdown.clone());
        let app_state = state.clone();
        let server = actix_web::HttpServer::new(move || {
            let settings = &app_state.settings;
            App::new()
                .app_data(app_state.clone())
                .app_data(http::json_config(settings.server.max_body_bytes))
                .app_data(http::query_config())
                .app_data(http::path_config())
                .wrap(cors(&settings.server.cors_origins))
                .wrap(TracingLogger::default())
                .configure(|cfg| app_state.io.configure(cfg))
                .configure(routes)
        })
        // Small realtime frames go out at once instead of waiting for Nagle's timer.
        .on_connect(|conn, _| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(|source| StartError::Bind {
            address: address.to_string(),
            source,
        })?
        .run();
        Ok(Self {
            server,
            address,
            state,
            shutdown,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then finishes the requests in flight, closes the
    /// sockets and stops the background tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(address = %self.address, "listening on http://{}", self.address);
        if !web_ui::ui_built() {
            tracing::warn!(
                "the web app is not embedded (built without web/dist): see the page at /"
            );
        }
        let handle = self.server.handle();
        let state = self.state.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            stop_signal().await;
            tracing::info!("stopping: closing sockets, finishing requests");
            // Sockets first: open websockets would otherwise hold the graceful stop.
            state.io.close();
            state.presence.node_stopping().await;
            shutdown.cancel();
            handle.stop(true).await;
        });
        let result = self.server.await;
        self.state.io.close();
        self.shutdown.cancel();
        result
    }
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn cors(origins: &[String]) -> Cors {
    let base = Cors::default()
        .allowed_methods(vec!["GET", "POST", "DELETE", "OPTIONS"])
        .allowed_headers(vec![
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
        ])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        return base.allow_any_origin();
    }
    origins
        .iter()
        .fold(base, |cors, origin| cors.allowed_origin(origin))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)))
        .service(
            web::scope("/api")
                .configure(auth::routes)
                .configure(rooms::routes)
                .configure(chat::routes)
                .service(web::resource("/meta").route(web::get().to(meta)))
                .service(web::resource("/ice-servers").route(web::get().to(ice_servers)))
                .service(web::resource("/openapi.json").route(web::get().to(openapi)))
                .default_service(web::to(http::not_found)),
        )
        .default_service(web::to(web_ui::serve));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and, in cluster mode, Redis too.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(redis) = &state.redis {
        if !redis.ready().await {
            return Err(ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "REDIS_UNAVAILABLE",
                "Redis does not answer: this replica cannot reach the others",
            ));
        }
    }
    db::run(&state.pool, |conn| {
        diesel::connection::SimpleConnection::batch_execute(conn, "SELECT 1")
            .map_err(db::DbError::from)
    })
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "not ready: database");
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            "The database does not answer",
        )
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    version: &'static str,
    languages: &'a [String],
    default_language: &'a str,
    levels: Vec<&'static str>,
    min_participants: i32,
    max_participants: i32,
    default_max_participants: u8,
    media_mode: crate::config::MediaMode,
}

/// What forms need to offer: languages, levels and seat limits of this server.
async fn meta(state: web::Data<AppState>) -> HttpResponse {
    let rooms = state.rooms.settings();
    HttpResponse::Ok().json(Meta {
        version: env!("CARGO_PKG_VERSION"),
        languages: &rooms.languages,
        default_language: &rooms.default_language,
        levels: Level::ALL.iter().map(|l| l.as_str()).collect(),
        min_participants: MIN_SEATS,
        max_participants: MAX_SEATS,
        default_max_participants: rooms.default_max_participants,
        media_mode: state.media.mode(),
    })
}

/// STUN/TURN servers for the browser's `RTCPeerConnection`.
async fn ice_servers(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "iceServers": state.media.ice_servers() }))
}

pub const OPENAPI_JSON: &str = include_str!("../docs/openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON)
}
