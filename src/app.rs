//! Composes the app and serves it: the shared state, the gateway on the Socket.IO server,
//! every route, and a graceful stop. Tests build it on port 0 and get the bound address back.

use std::net::{SocketAddr, TcpListener};

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{App, web};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::state::{AppState, StartError};
use crate::{auth, chat, gateway, http, platform, retention, rooms, web_ui};

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
        tokio::spawn(retention::run(
            state.pool.clone(),
            state.settings.retention.clone(),
            std::time::Duration::from_secs(state.settings.auth.token_ttl_secs),
            shutdown.clone(),
        ));
        let app_state = state.clone();
        // The capabilities' handlers take their own service, not the whole state.
        let accounts = web::Data::new(state.accounts.clone());
        let rooms = web::Data::new(state.rooms.clone());
        let chat = web::Data::new(state.chat.clone());
        let limits = web::Data::new(state.limits.clone());
        let server = actix_web::HttpServer::new(move || {
            let settings = &app_state.settings;
            App::new()
                .app_data(app_state.clone())
                .app_data(accounts.clone())
                .app_data(rooms.clone())
                .app_data(chat.clone())
                .app_data(limits.clone())
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
    cfg.service(http::get_only("/healthz", platform::healthz))
        .service(http::get_only("/readyz", platform::readyz))
        .service(
            web::scope("/api")
                .configure(auth::routes)
                .configure(rooms::routes)
                .configure(chat::routes)
                .service(http::get_only("/meta", platform::meta))
                .service(http::get_only("/ice-servers", platform::ice_servers))
                .service(http::get_only("/openapi.json", platform::openapi))
                .default_service(web::to(http::not_found)),
        )
        .default_service(web::to(web_ui::serve));
}
