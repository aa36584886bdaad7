//! HTTP long-polling transport: handshake, GET (server → client) and POST (client → server),
//! plus the task that drives the heartbeat of sessions opened over polling.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::conn::{Beat, PollError};
use super::packet::{self, Frame};
use super::{CloseReason, Conn, Engine, EngineError, EngineHandler, TransportKind};

/// How long a client `close` waits for a GET that is still in flight.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a poll that starts during an upgrade waits for the upgrade to complete.
const UPGRADE_GRACE_STEP: std::time::Duration = std::time::Duration::from_millis(5);
const UPGRADE_GRACE_STEPS: u32 = 10;

fn payload_response(frames: &[Frame]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=UTF-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(packet::encode_payload(frames))
}

fn poll_error(err: PollError) -> HttpResponse {
    match err {
        PollError::Closed => EngineError::UnknownSid.response(),
        PollError::WrongTransport | PollError::Overlap => EngineError::BadRequest.response(),
    }
}

/// Opens a session over polling; the response carries the open packet.
pub(super) fn handshake<H: EngineHandler>(
    engine: &Arc<Engine<H>>,
    req: &HttpRequest,
) -> HttpResponse {
    let conn = match engine.open(TransportKind::Polling, req) {
        Ok(conn) => conn,
        Err(refusal) => return refusal.response(),
    };
    let open = engine.open_packet(conn.sid(), TransportKind::Polling);
    let span = tracing::debug_span!("engine.io", sid = %conn.sid());
    actix_web::rt::spawn(drive_heartbeat(Arc::clone(engine), Arc::clone(&conn)).instrument(span));
    engine.handler.on_open(&conn);
    payload_response(&[open])
}

/// Owner task of a session opened over polling: pings, detects the timeout, and removes the
/// session once closed (whichever transport it ends on).
async fn drive_heartbeat<H: EngineHandler>(engine: Arc<Engine<H>>, conn: Arc<Conn<H::Data>>) {
    let closed = conn.closed.notified();
    tokio::pin!(closed);
    closed.as_mut().enable();
    let sleep = tokio::time::sleep(engine.config.ping_interval);
    tokio::pin!(sleep);
    while !conn.is_closed() {
        match conn.heartbeat(Instant::now()) {
            Beat::TimedOut => break,
            Beat::Wait(deadline) => {
                sleep.as_mut().reset(deadline);
                tokio::select! {
                    _ = &mut sleep => {}
                    _ = &mut closed => break,
                }
            }
        }
    }
    engine.finalize(&conn);
}

/// Ends the GET's turn; a GET dropped before it answered lost its connection (the HTTP
/// layer drops the handler of a connection the client reset or closed), and the session ends
/// with it, as the reference server's "poll connection closed prematurely".
struct GetGuard<'a, D> {
    conn: &'a Conn<D>,
    answered: bool,
}

impl<D> Drop for GetGuard<'_, D> {
    fn drop(&mut self) {
        self.conn.end_get();
        if !self.answered {
            self.conn.close(CloseReason::TransportClose);
        }
    }
}

struct PostGuard<'a, D>(&'a Conn<D>);

impl<D> Drop for PostGuard<'_, D> {
    fn drop(&mut self) {
        self.0.end_post();
    }
}

/// A long-poll: answers as soon as something is queued (the heartbeat guarantees it will be).
pub(super) async fn get<D>(conn: Arc<Conn<D>>) -> HttpResponse {
    if let Err(err) = conn.begin_get() {
        return poll_error(err);
    }
    let mut guard = GetGuard {
        conn: &conn,
        answered: false,
    };
    if conn.upgrading() {
        // A poll that starts while a websocket is probing may race with the `5` that completes
        // the upgrade on another worker: wait briefly, then answer as if it came after it.
        for _ in 0..UPGRADE_GRACE_STEPS {
            tokio::time::sleep(UPGRADE_GRACE_STEP).await;
            if !conn.upgrading() {
                break;
            }
        }
        if conn.transport() != TransportKind::Polling {
            guard.answered = true;
            return EngineError::BadRequest.response();
        }
    }
    loop {
        let notified = conn.writable.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(frames) = conn.poll_ready() {
            guard.answered = true;
            return payload_response(&frames);
        }
        notified.await;
    }
}

/// The body of a POST as its chunks arrive: refused as soon as it is over `max` bytes,
/// decoded into packets once complete. No I/O, so [`post`] and the fuzz target run the same
/// code.
pub struct PostBody {
    buf: BytesMut,
    max: usize,
}

/// A POST body over `max_payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge;

impl PostBody {
    pub fn new(max: usize) -> PostBody {
        PostBody {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Appends one chunk, unless the body would then be over `max`.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyTooLarge> {
        if self.buf.len() + chunk.len() > self.max {
            return Err(BodyTooLarge);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes held so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The packets of the complete body.
    pub fn decode(self) -> Result<Vec<packet::Packet>, packet::DecodeError> {
        packet::decode_payload(self.buf.freeze())
    }
}

/// Client → server packets.
pub(super) async fn post<H: EngineHandler>(
    engine: &Arc<Engine<H>>,
    conn: Arc<Conn<H::Data>>,
    mut body: web::Payload,
) -> HttpResponse {
    if let Err(err) = conn.begin_post() {
        return poll_error(err);
    }
    let _guard = PostGuard(&conn);
    let mut post_body = PostBody::new(engine.config.max_payload);
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            conn.close(CloseReason::TransportError);
            return EngineError::BadRequest.response();
        };
        if post_body.push(&chunk).is_err() {
            tracing::warn!(sid = %conn.sid(), "polling payload over max_payload, closing");
            conn.close(CloseReason::PayloadTooLarge);
            return HttpResponse::PayloadTooLarge().finish();
        }
    }
    let packets = match post_body.decode() {
        Ok(packets) => packets,
        Err(err) => {
            tracing::debug!(sid = %conn.sid(), %err, "invalid polling payload, closing");
            conn.close(CloseReason::ParseError);
            return EngineError::BadRequest.response();
        }
    };
    for packet in packets {
        if packet == packet::Packet::Close && !conn.get_pending() {
            // The client's pending GET may still be on its way through another worker; give
            // it a moment so it ends with `noop`, as on a single-threaded server.
            tokio::time::sleep(CLOSE_GRACE).await;
        }
        if !engine.on_packet(&conn, packet) {
            break;
        }
    }
    if conn.close_reason() == Some(CloseReason::RateLimited) {
        return HttpResponse::TooManyRequests()
            .content_type("application/json")
            .body(r#"{"code":3,"message":"Too many packets"}"#);
    }
    HttpResponse::Ok().content_type("text/html").body("ok")
}
