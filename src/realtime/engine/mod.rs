//! Engine.IO v4 server: the HTTP long-polling and WebSocket transports, the upgrade between
//! them and the heartbeat. It hands whole messages to an [`EngineHandler`] and knows nothing
//! of Socket.IO; mount it with [`Engine::configure`].

mod conn;
pub mod packet;
pub mod polling;
pub mod websocket;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use parking_lot::Mutex;

pub(crate) use conn::Limits;
pub use conn::{CloseReason, Conn, Handshake, TransportKind};
pub use packet::{Frame, Message};

use crate::realtime::config::Config;
use crate::realtime::sid::Sid;
use crate::realtime::stats::Counters;

/// What the layer above Engine.IO implements. Callbacks are synchronous and must not block:
/// spawn a task for anything slow.
pub trait EngineHandler: Send + Sync + 'static {
    /// Per-session state of the layer above, created with the session.
    type Data: Default + Send + Sync + 'static;

    /// A session opened (after the handshake was sent).
    fn on_open(&self, conn: &Arc<Conn<Self::Data>>);
    /// A `message` packet arrived.
    fn on_message(&self, conn: &Arc<Conn<Self::Data>>, message: Message);
    /// The session closed; called exactly once, after it left the session table.
    fn on_close(&self, conn: &Arc<Conn<Self::Data>>, reason: CloseReason);
}

/// The Engine.IO protocol errors, answered as `{"code":..,"message":..}` like the reference server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    UnsupportedProtocolVersion,
}

impl EngineError {
    fn code(self) -> u8 {
        match self {
            EngineError::UnknownTransport => 0,
            EngineError::UnknownSid => 1,
            EngineError::BadHandshakeMethod => 2,
            EngineError::BadRequest => 3,
            EngineError::UnsupportedProtocolVersion => 5,
        }
    }

    fn message(self) -> &'static str {
        match self {
            EngineError::UnknownTransport => "Transport unknown",
            EngineError::UnknownSid => "Session ID unknown",
            EngineError::BadHandshakeMethod => "Bad handshake method",
            EngineError::BadRequest => "Bad request",
            EngineError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    pub(crate) fn response(self) -> HttpResponse {
        HttpResponse::build(StatusCode::BAD_REQUEST)
            .content_type("application/json")
            .body(format!(
                r#"{{"code":{},"message":"{}"}}"#,
                self.code(),
                self.message()
            ))
    }
}

/// The Engine.IO server for one mount path.
pub struct Engine<H: EngineHandler> {
    pub(crate) config: Config,
    pub(crate) handler: H,
    sessions: Mutex<HashMap<Sid, Arc<Conn<H::Data>>>>,
    admission: Mutex<Admission>,
    pub(crate) counters: Arc<Counters>,
    /// Set by [`Engine::stop_admitting`]: handshakes are refused from then on.
    stopping: AtomicBool,
}

/// Sessions and handshake budget per client address.
#[derive(Default)]
struct Admission {
    by_ip: HashMap<IpAddr, PerIp>,
    since_sweep: u32,
}

struct PerIp {
    sessions: usize,
    tokens: f32,
    refilled: Instant,
}

/// Why a handshake was refused before any session existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    ServerFull,
    TooManyFromAddress,
    /// The server is stopping: the client reconnects elsewhere (a proxy moves it to another
    /// replica) or here after the restart.
    Stopping,
}

impl Refusal {
    pub(crate) fn response(self) -> HttpResponse {
        let (status, message) = match self {
            Refusal::ServerFull => (StatusCode::SERVICE_UNAVAILABLE, "Server full"),
            Refusal::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "Server stopping"),
            Refusal::TooManyFromAddress => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many connections from this address",
            ),
        };
        HttpResponse::build(status)
            .content_type("application/json")
            .insert_header(("Retry-After", "5"))
            .body(format!(r#"{{"code":3,"message":"{message}"}}"#))
    }
}

/// The query parameters of an Engine.IO request.
struct Query<'a> {
    transport: Option<&'a str>,
    sid: Option<&'a str>,
    eio: Option<&'a str>,
}

fn parse_query(qs: &str) -> Query<'_> {
    let mut q = Query {
        transport: None,
        sid: None,
        eio: None,
    };
    for pair in qs.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "transport" => q.transport = Some(v),
            "sid" => q.sid = Some(v),
            "EIO" => q.eio = Some(v),
            _ => {}
        }
    }
    q
}

impl<H: EngineHandler> Engine<H> {
    pub fn new(config: Config, handler: H) -> Arc<Engine<H>> {
        Arc::new(Engine {
            config,
            handler,
            sessions: Mutex::new(HashMap::new()),
            admission: Mutex::new(Admission::default()),
            counters: Arc::default(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Registers the transports at `config.path` (with and without the trailing slash).
    pub fn configure(self: &Arc<Self>, cfg: &mut web::ServiceConfig) {
        let path = self.config.normalized_path();
        let bare = path.trim_end_matches('/').to_owned();
        let mut paths = vec![path];
        if !bare.is_empty() {
            paths.push(bare);
        }
        let engine = Arc::clone(self);
        cfg.service(
            web::resource(paths).to(move |req: HttpRequest, body: web::Payload| {
                let engine = Arc::clone(&engine);
                async move { engine.dispatch(req, body).await }
            }),
        );
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Open sessions on (long-polling, WebSocket).
    pub fn sessions_by_transport(&self) -> (usize, usize) {
        let sessions = self.sessions.lock();
        let websocket = sessions
            .values()
            .filter(|c| c.transport() == TransportKind::Websocket)
            .count();
        (sessions.len() - websocket, websocket)
    }

    /// Looks a session up by id.
    pub fn session(&self, sid: Sid) -> Option<Arc<Conn<H::Data>>> {
        self.sessions.lock().get(&sid).cloned()
    }

    /// Refuses every handshake from now on (503, `Retry-After`); open sessions go on.
    pub fn stop_admitting(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Closes every session (graceful shutdown).
    pub fn close_all(&self) {
        let all: Vec<_> = self.sessions.lock().values().cloned().collect();
        for conn in all {
            conn.close(CloseReason::ServerClose);
        }
    }

    async fn dispatch(self: Arc<Self>, req: HttpRequest, body: web::Payload) -> HttpResponse {
        let query = parse_query(req.query_string());
        let transport = match query.transport {
            Some("polling") if self.config.transports.polling => TransportKind::Polling,
            Some("websocket") if self.config.transports.websocket => TransportKind::Websocket,
            _ => return EngineError::UnknownTransport.response(),
        };
        if query.eio != Some("4") {
            return EngineError::UnsupportedProtocolVersion.response();
        }
        let sid = match query.sid {
            None => None,
            Some(s) => match s.parse::<Sid>() {
                Ok(sid) => Some(sid),
                Err(_) => return EngineError::UnknownSid.response(),
            },
        };
        match (transport, sid) {
            (TransportKind::Polling, None) => {
                if req.method() != Method::GET {
                    return EngineError::BadHandshakeMethod.response();
                }
                polling::handshake(&self, &req)
            }
            (TransportKind::Polling, Some(sid)) => {
                let Some(conn) = self.session(sid) else {
                    return EngineError::UnknownSid.response();
                };
                match *req.method() {
                    Method::GET => polling::get(conn).await,
                    Method::POST => polling::post(&self, conn, body).await,
                    _ => EngineError::BadRequest.response(),
                }
            }
            (TransportKind::Websocket, sid) => {
                if req.method() != Method::GET {
                    return EngineError::BadHandshakeMethod.response();
                }
                let conn = match sid {
                    None => None,
                    Some(sid) => match self.session(sid) {
                        Some(conn) => Some(conn),
                        None => return EngineError::UnknownSid.response(),
                    },
                };
                websocket::accept(self, &req, body, conn)
            }
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            ping_interval: self.config.ping_interval,
            ping_timeout: self.config.ping_timeout,
            rate: self.config.max_packets_per_second as f32,
            burst: self.config.packet_burst.max(1) as f32,
            max_buffered: self.config.max_buffered_frames,
            max_buffered_bytes: self.config.max_buffered_bytes,
        }
    }

    /// Counts a new session against the global and per-address caps.
    fn admit(&self, ip: Option<IpAddr>) -> Result<(), Refusal> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(Refusal::Stopping);
        }
        if self.sessions.lock().len() >= self.config.max_sessions {
            return Err(Refusal::ServerFull);
        }
        let Some(ip) = ip else { return Ok(()) };
        let rate = self.config.handshakes_per_second_per_ip as f32;
        let burst = self.config.handshake_burst_per_ip.max(1) as f32;
        let now = Instant::now();
        let mut admission = self.admission.lock();
        admission.since_sweep += 1;
        if admission.since_sweep >= 1024 {
            // Forget addresses with no session and a full budget again.
            admission.since_sweep = 0;
            admission.by_ip.retain(|_, e| {
                e.sessions > 0
                    || (e.tokens + now.duration_since(e.refilled).as_secs_f32() * rate) < burst
            });
        }
        let entry = admission.by_ip.entry(ip).or_insert(PerIp {
            sessions: 0,
            tokens: burst,
            refilled: now,
        });
        let cap = self.config.max_sessions_per_ip;
        if cap > 0 && entry.sessions >= cap {
            return Err(Refusal::TooManyFromAddress);
        }
        if rate > 0.0 {
            let elapsed = now.duration_since(entry.refilled).as_secs_f32();
            entry.tokens = (entry.tokens + elapsed * rate).min(burst);
            entry.refilled = now;
            if entry.tokens < 1.0 {
                return Err(Refusal::TooManyFromAddress);
            }
            entry.tokens -= 1.0;
        }
        entry.sessions += 1;
        Ok(())
    }

    /// A session of `ip` ended.
    fn release(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut admission = self.admission.lock();
        if let Some(entry) = admission.by_ip.get_mut(&ip) {
            entry.sessions = entry.sessions.saturating_sub(1);
        }
    }

    /// Creates and registers a session, if the caps allow one more.
    fn open(
        &self,
        transport: TransportKind,
        req: &HttpRequest,
    ) -> Result<Arc<Conn<H::Data>>, Refusal> {
        let peer_addr = req.peer_addr();
        let client_ip = self.config.client_address.of(req);
        if let Err(refusal) = self.admit(client_ip) {
            let counter = match refusal {
                Refusal::ServerFull => &self.counters.refused_server_full,
                Refusal::TooManyFromAddress => &self.counters.refused_per_address,
                Refusal::Stopping => &self.counters.refused_stopping,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(refusal);
        }
        let handshake = Handshake {
            peer_addr,
            client_ip,
        };
        let mut sessions = self.sessions.lock();
        let mut sid = Sid::random();
        while sessions.contains_key(&sid) {
            sid = Sid::random();
        }
        let conn = Arc::new(Conn::new(
            sid,
            transport,
            handshake,
            self.limits(),
            H::Data::default(),
        ));
        sessions.insert(sid, Arc::clone(&conn));
        Ok(conn)
    }

    /// The `0{...}` open packet.
    fn open_packet(&self, sid: Sid, transport: TransportKind) -> Frame {
        let upgrades = if transport == TransportKind::Polling && self.config.transports.websocket {
            r#"["websocket"]"#
        } else {
            "[]"
        };
        Frame::Text(
            format!(
                r#"0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
                self.config.ping_interval.as_millis(),
                self.config.ping_timeout.as_millis(),
                self.config.max_payload
            )
            .into(),
        )
    }

    /// Removes a closed session and tells the handler; run by the session's owner task.
    fn finalize(&self, conn: &Arc<Conn<H::Data>>) {
        let removed = self.sessions.lock().remove(&conn.sid()).is_some();
        if removed {
            self.release(conn.handshake().client_ip);
            let reason = conn.close_reason().unwrap_or(CloseReason::ServerClose);
            if reason == CloseReason::RateLimited {
                self.counters
                    .rate_limited_sessions
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.handler.on_close(conn, reason);
        }
    }

    /// Handles one packet from the client on the active transport. Returns false when the
    /// session was closed because of it.
    fn on_packet(&self, conn: &Arc<Conn<H::Data>>, packet: packet::Packet) -> bool {
        use packet::Packet;
        if !conn.take_token() {
            tracing::warn!(sid = %conn.sid(), "client exceeded its packet rate, closing");
            conn.close(CloseReason::RateLimited);
            return false;
        }
        match packet {
            Packet::Pong { probe: false } => conn.on_pong(),
            Packet::Message(message) => self.handler.on_message(conn, message),
            Packet::Close => {
                conn.close(CloseReason::TransportClose);
                return false;
            }
            Packet::Noop => {}
            // A v4 client never pings, opens or upgrades on an established transport.
            Packet::Ping { .. } | Packet::Pong { probe: true } | Packet::Open | Packet::Upgrade => {
                conn.close(CloseReason::ParseError);
                return false;
            }
        }
        !conn.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_takes_the_engine_parameters() {
        let q = parse_query("EIO=4&transport=polling&t=abc&sid=xyz");
        assert_eq!(q.eio, Some("4"));
        assert_eq!(q.transport, Some("polling"));
        assert_eq!(q.sid, Some("xyz"));
        let q = parse_query("");
        assert!(q.eio.is_none() && q.transport.is_none() && q.sid.is_none());
    }

    #[test]
    fn errors_carry_the_reference_codes() {
        assert_eq!(EngineError::UnknownTransport.code(), 0);
        assert_eq!(EngineError::UnknownSid.code(), 1);
        assert_eq!(EngineError::BadHandshakeMethod.code(), 2);
        assert_eq!(EngineError::BadRequest.code(), 3);
        assert_eq!(EngineError::UnsupportedProtocolVersion.code(), 5);
    }
}
