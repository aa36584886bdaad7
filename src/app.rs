//! Composes the app and serves it: the shared state, the gateway on the Socket.IO server,
//! every route, and a graceful stop. Tests build it on port 0 and get the bound address back.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, web};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::state::{AppState, StartError};
use crate::telemetry::RequestSpan;
use crate::tls::Tls;
use crate::{
    auth, chat, gateway, http, media, metrics, moderation, platform, retention, rooms, web_ui,
};

pub struct Application {
    /// The HTTP server(s): actix-web's, and with TURN sharing the HTTPS port, the one that
    /// serves that port (src/shared_port.rs).
    servers: Vec<Server>,
    address: SocketAddr,
    /// With TLS on, the plain-HTTP port that redirects to https, if any.
    redirect: Option<SocketAddr>,
    /// The admin address serving `/metrics` (`metrics.listen`), if any.
    metrics_address: Option<SocketAddr>,
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
        let tls = Tls::from_settings(&settings.server, shutdown.clone())?;
        let redirect = match &tls {
            Some(_) if settings.server.tls.redirect_port != 0 => {
                let at = SocketAddr::new(settings.server.host, settings.server.tls.redirect_port);
                let plain = TcpListener::bind(at).map_err(|source| StartError::Bind {
                    address: at.to_string(),
                    source,
                })?;
                Some(plain)
            }
            _ => None,
        };
        let edge = Edge {
            tls: tls.is_some(),
            hsts: tls
                .as_ref()
                .map_or_else(|| Arc::new(AtomicBool::new(false)), |t| Arc::clone(&t.hsts)),
            https_port: address.port(),
        };
        let http01 = tls.as_ref().and_then(|t| t.http01.clone());
        let state = web::Data::new(AppState::build(settings, shutdown.clone()).await?);
        gateway::install(state.clone(), shutdown.clone());
        tokio::spawn(retention::run(
            state.pool.clone(),
            state.settings.retention.clone(),
            std::time::Duration::from_secs(state.settings.auth.token_ttl_secs),
            shutdown.clone(),
        ));
        tokio::spawn(
            state
                .rooms
                .clone()
                .keep_lobby(state.mode.reconnections(), shutdown.clone()),
        );
        tokio::spawn(metrics::count_domain_events(
            Arc::clone(&state.metrics),
            Arc::clone(&state.bus),
            shutdown.clone(),
        ));
        let app_state = state.clone();
        // The capabilities' handlers take their own service, not the whole state.
        let accounts = web::Data::new(state.accounts.clone());
        let rooms = web::Data::new(state.rooms.clone());
        let chat = web::Data::new(state.chat.clone());
        let limits = web::Data::new(state.limits.clone());
        let media = web::Data::from(state.media.clone());
        let make_app = move || {
            let settings = &app_state.settings;
            App::new()
                .app_data(app_state.clone())
                .app_data(accounts.clone())
                .app_data(rooms.clone())
                .app_data(chat.clone())
                .app_data(limits.clone())
                .app_data(media.clone())
                .app_data(http::json_config(settings.server.max_body_bytes))
                .app_data(http::query_config())
                .app_data(http::path_config())
                .wrap(cors(&settings.server.cors_origins))
                .wrap(from_fn({
                    let edge = edge.clone();
                    move |req, next| https_edge(edge.clone(), req, next)
                }))
                .wrap(from_fn({
                    let state = app_state.clone();
                    move |req, next| count_in_flight(state.clone(), req, next)
                }))
                .wrap(TracingLogger::<RequestSpan>::new())
                .wrap(from_fn({
                    let metrics = Arc::clone(&app_state.metrics);
                    move |req, next| metrics::record_request(Arc::clone(&metrics), req, next)
                }))
                .configure(|cfg| app_state.io.configure(cfg))
                .configure(|cfg| {
                    if let Some(tokens) = &http01 {
                        cfg.app_data(web::Data::from(Arc::clone(tokens))).route(
                            "/.well-known/acme-challenge/{token}",
                            web::get().to(crate::acme::http01_answer),
                        );
                    }
                })
                .configure(routes)
        };
        let server = actix_web::HttpServer::new(make_app.clone())
            // Small realtime frames go out at once instead of waiting for Nagle's timer.
            .on_connect(|conn, _| {
                type Tcp = actix_web::rt::net::TcpStream;
                if let Some(tcp) = conn.downcast_ref::<Tcp>() {
                    let _ = tcp.set_nodelay(true);
                } else if let Some(tls) =
                    conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<Tcp>>()
                {
                    let _ = tls.get_ref().0.set_nodelay(true);
                }
            })
            .workers(workers)
            .disable_signals()
            .shutdown_timeout(10);
        let bind_error = |at: SocketAddr| {
            move |source| StartError::Bind {
                address: at.to_string(),
                source,
            }
        };
        let mut redirect_at = None;
        // TURN over TLS shares the HTTPS port when the relay runs and asks for it.
        let shared_relay = state
            .media
            .relay()
            .filter(|_| tls.is_some() && state.settings.turn.on_https_port)
            .map(|relay| {
                relay.share_https_port(address.port());
                Arc::clone(&relay.server)
            });
        let mut servers = Vec::new();
        let server = match (tls, shared_relay) {
            (None, _) => Some(server.listen(listener).map_err(bind_error(address))?),
            (Some(tls), Some(relay)) => {
                servers.push(
                    crate::shared_port::serve(
                        listener,
                        tls.config,
                        make_app,
                        relay,
                        workers,
                        shutdown.clone(),
                    )
                    .map_err(bind_error(address))?,
                );
                match redirect {
                    Some(plain) => {
                        let at = plain.local_addr().map_err(bind_error(address))?;
                        redirect_at = Some(at);
                        Some(server.listen(plain).map_err(bind_error(at))?)
                    }
                    None => None,
                }
            }
            (Some(tls), None) => {
                let server = server
                    .listen_rustls_0_23(listener, tls.config)
                    .map_err(bind_error(address))?;
                Some(match redirect {
                    Some(plain) => {
                        let at = plain.local_addr().map_err(bind_error(address))?;
                        redirect_at = Some(at);
                        server.listen(plain).map_err(bind_error(at))?
                    }
                    None => server,
                })
            }
        };
        servers.extend(server.map(|s| s.run()));
        let admin = metrics::serve_admin(state.clone())?;
        let metrics_address = admin.as_ref().map(|a| a.address);
        servers.extend(admin.map(|a| a.server));
        Ok(Self {
            servers,
            redirect: redirect_at,
            metrics_address,
            address,
            state,
            shutdown,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The admin address serving `/metrics`, when `metrics.listen` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then drains (`AppState::drain`: no new seats or
    /// connections, rooms handed over, sockets told to reconnect), waits until nothing is
    /// served here or `server.drain_secs` passed, finishes the requests in flight and stops
    /// the background tasks. A second signal skips the waiting.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let scheme = match self.state.settings.server.tls.mode {
            crate::config::TlsMode::Off => "http",
            _ => "https",
        };
        tracing::info!(address = %self.address, "listening on {scheme}://{}", self.address);
        tracing::info!(
            "{}",
            start_summary(
                &self.state.settings,
                self.address,
                self.redirect,
                &self.state.media.to_string(),
                self.state.media.relay().map(media::Relay::summary),
            )
        );
        if !web_ui::ui_built() {
            tracing::warn!(
                "the web app is not embedded (built without web/dist): see the page at /"
            );
        }
        let handles: Vec<_> = self.servers.iter().map(Server::handle).collect();
        let state = self.state.clone();
        let shutdown = self.shutdown.clone();
        let drain_for = Duration::from_secs(self.state.settings.server.drain_secs);
        // A second signal: no more waiting for anything.
        let (at_once, stop_now) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            stop_signal().await;
            tracing::info!(
                "stopping: no new rooms, seats or connections here; rooms and sockets move on \
                 (up to {} s; a second signal stops at once)",
                drain_for.as_secs()
            );
            state.drain().await;
            let second_signal = tokio::select! {
                () = drained(&state) => false,
                () = tokio::time::sleep(drain_for) => {
                    tracing::warn!("stopping: the drain deadline passed; closing what is left");
                    false
                }
                () = stop_signal() => true,
            };
            shutdown.cancel();
            let second_signal = second_signal
                || tokio::select! {
                    // Requests in flight finish (up to the shutdown timeout)...
                    () = async {
                        for handle in &handles {
                            handle.stop(true).await;
                        }
                    } => false,
                    // ...unless a second signal comes first.
                    () = stop_signal() => true,
                };
            if second_signal {
                tracing::info!("second signal: stopping now");
                let _ = at_once.send(());
            }
        });
        let servers = futures_util::future::join_all(self.servers);
        let result = tokio::select! {
            results = servers => results
                .into_iter()
                .collect::<std::io::Result<Vec<()>>>()
                .map(drop),
            Ok(()) = stop_now => Ok(()),
        };
        self.state.io.close();
        self.shutdown.cancel();
        result
    }
}

/// One line saying what this process serves: the web address (and TLS), the media, where
/// the data lives and whether it is one replica of several.
fn start_summary(
    settings: &Settings,
    address: SocketAddr,
    redirect: Option<SocketAddr>,
    media: &str,
    relay: Option<String>,
) -> String {
    use crate::config::TlsMode;
    let tls = &settings.server.tls;
    let web = match tls.mode {
        TlsMode::Off => {
            format!("http://{address} (no TLS: browsers allow microphones only on localhost)")
        }
        TlsMode::Files => format!("https://{address} (TLS: certificate files, HSTS)"),
        TlsMode::SelfSigned => format!("https://{address} (TLS: self-signed, browsers warn)"),
        TlsMode::Acme => format!(
            "https://{address} (TLS: ACME certificate for {} from {}, {})",
            tls.domains().join(","),
            tls.acme_directory,
            tls.acme_challenge
        ),
    };
    let redirect = redirect.map_or(String::new(), |at| {
        format!(", http://{at} redirects to https")
    });
    let sfu = &settings.sfu;
    let media = if media.starts_with("sfu") && sfu.single_udp_port.is_none() {
        format!("{media} on UDP {}-{}", sfu.udp_port_min, sfu.udp_port_max)
    } else {
        media.to_owned()
    };
    let tcp = if media.starts_with("sfu") && sfu.ice_tcp {
        " + ICE-TCP"
    } else {
        ""
    };
    let public = match sfu.announced_ip.ip() {
        Some(ip) => format!("announced as {ip}"),
        None => "no announced address (set sfu.announced_ip behind NAT)".to_owned(),
    };
    let data = match settings.database_url() {
        Ok(crate::config::DatabaseUrl::Postgres(_)) => "PostgreSQL",
        Ok(crate::config::DatabaseUrl::Mysql(_)) => "MySQL",
        _ => "SQLite",
    };
    let cluster = if settings.cluster_mode() {
        ", one replica of a cluster (Redis)"
    } else {
        ""
    };
    let relay = relay.map_or_else(
        || "no TURN relay".to_owned(),
        |r| format!("TURN relay on {r}"),
    );
    format!(
        "serving {web}{redirect}; media: {media}{tcp}, {public}; {relay}; data: {data}{cluster}"
    )
}

/// What the HTTP edge adds with TLS on (`https_edge`).
#[derive(Clone)]
struct Edge {
    tls: bool,
    /// Switched on by acme mode once a CA's certificate is served.
    hsts: Arc<AtomicBool>,
    https_port: u16,
}

/// With TLS on, a request that came in plain (on the redirect port) is sent to https, except
/// the health probes and ACME's HTTP-01 challenge; https answers carry HSTS when the
/// certificate is a real one.
async fn https_edge(
    edge: Edge,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if !edge.tls {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let path = req.path();
    let plain_allowed =
        path == "/healthz" || path == "/readyz" || path.starts_with("/.well-known/acme-challenge/");
    if !req.app_config().secure() && !plain_allowed {
        let host = req.connection_info().host().to_owned();
        let location = https_location(&host, edge.https_port, req.uri());
        let response = HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, location))
            .finish();
        return Ok(req.into_response(response));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    if edge.hsts.load(Ordering::Relaxed) && response.request().app_config().secure() {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000"),
        );
    }
    Ok(response)
}

/// Counts the requests being answered: a stop waits for them (`AppState::drained`) before it
/// closes the connections, as actix's own graceful stop can miss a request still arriving.
async fn count_in_flight(
    state: web::Data<AppState>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    struct InFlight(web::Data<AppState>);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.requests_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
    state.requests_in_flight.fetch_add(1, Ordering::AcqRel);
    let _in_flight = InFlight(state);
    next.call(req).await
}

/// `https://host[:port]/path?query` for a request that named `host` (with or without a port).
fn https_location(host: &str, https_port: u16, uri: &actix_web::http::Uri) -> String {
    let name = match host.rsplit_once(':') {
        // Not the colons of a bare IPv6 address.
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{https_port}{path}")
    }
}

/// Waits until nothing is served here any more (connections and media sessions gone).
async fn drained(state: &AppState) {
    while !state.drained() {
        tokio::time::sleep(Duration::from_millis(50)).await;
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
        .configure(metrics::routes)
        .service(
            web::scope("/api")
                .configure(auth::routes)
                .configure(rooms::routes)
                .configure(chat::routes)
                .configure(moderation::routes)
                .configure(media::probe_routes)
                .service(http::get_only("/meta", platform::meta))
                .service(http::get_only("/ice-servers", platform::ice_servers))
                .service(http::get_only("/openapi.json", platform::openapi))
                .default_service(web::to(http::not_found)),
        )
        .default_service(web::to(web_ui::serve));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Settings {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(None, Some(env)).unwrap()
    }

    #[test]
    fn the_start_line_says_what_is_served() {
        let at: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let line = start_summary(&settings(&[]), at, None, "sfu", None);
        assert_eq!(
            line,
            "serving http://0.0.0.0:8080 (no TLS: browsers allow microphones only on localhost); \
             media: sfu on UDP 40000-40999 + ICE-TCP, no announced address (set sfu.announced_ip behind NAT); \
             no TURN relay; data: SQLite"
        );
        let tls = settings(&[
            ("TALKCONNECT__SERVER__TLS__MODE", "self-signed"),
            ("TALKCONNECT__SFU__ANNOUNCED_IP", "203.0.113.7"),
        ]);
        let redirect = Some("0.0.0.0:80".parse().unwrap());
        let line = start_summary(
            &tls,
            "0.0.0.0:443".parse().unwrap(),
            redirect,
            "sfu",
            Some("UDP 3478".into()),
        );
        assert!(line.starts_with("serving https://0.0.0.0:443 (TLS: self-signed, browsers warn), http://0.0.0.0:80 redirects to https;"), "{line}");
        assert!(line.contains("announced as 203.0.113.7"), "{line}");
        assert!(line.contains("; TURN relay on UDP 3478;"), "{line}");
    }
}
