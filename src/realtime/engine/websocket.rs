//! WebSocket transport: a fresh session over websocket, or the probe/upgrade of a polling
//! session. One task per connection reads, writes and (for fresh sessions) pings.

use std::sync::Arc;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, ProtocolError, Session};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::conn::Beat;
use super::packet::{self, Frame, Message, Packet};
use super::{CloseReason, Conn, Engine, EngineError, EngineHandler, TransportKind};

pub(super) fn accept<H: EngineHandler>(
    engine: Arc<Engine<H>>,
    req: &actix_web::HttpRequest,
    body: actix_web::web::Payload,
    existing: Option<Arc<Conn<H::Data>>>,
) -> actix_web::HttpResponse {
    let (response, session, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(_) => return EngineError::BadRequest.response(),
    };
    let max = engine.config.max_payload;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    match existing {
        None => {
            let conn = engine.open(TransportKind::Websocket, req);
            let span = tracing::debug_span!("engine.io", sid = %conn.sid());
            actix_web::rt::spawn(run_fresh(engine, conn, session, stream).instrument(span));
        }
        Some(conn) if conn.begin_upgrade() => {
            let span = tracing::debug_span!("engine.io", sid = %conn.sid());
            actix_web::rt::spawn(run_upgrade(engine, conn, session, stream).instrument(span));
        }
        Some(_) => {
            // Already upgraded or upgrading: refuse this second websocket.
            actix_web::rt::spawn(async move {
                let _ = session.close(None).await;
            });
        }
    }
    response
}

async fn write(session: &mut Session, frame: Frame) -> bool {
    match frame {
        Frame::Text(text) => session.text(text).await.is_ok(),
        Frame::Binary(data) => session.binary(data).await.is_ok(),
    }
}

async fn run_fresh<H: EngineHandler>(
    engine: Arc<Engine<H>>,
    conn: Arc<Conn<H::Data>>,
    mut session: Session,
    mut stream: AggregatedMessageStream,
) {
    let open = engine.open_packet(conn.sid(), TransportKind::Websocket);
    if write(&mut session, open).await {
        engine.handler.on_open(&conn);
        run_transport(&engine, &conn, &mut session, &mut stream, true).await;
    } else {
        conn.close(CloseReason::TransportClose);
    }
    flush_and_close(&conn, session).await;
    engine.finalize(&conn);
}

async fn run_upgrade<H: EngineHandler>(
    engine: Arc<Engine<H>>,
    conn: Arc<Conn<H::Data>>,
    mut session: Session,
    mut stream: AggregatedMessageStream,
) {
    let deadline = Instant::now() + engine.config.upgrade_timeout;
    let upgraded = loop {
        tokio::select! {
            msg = stream.recv() => match msg {
                Some(Ok(AggregatedMessage::Text(text))) if &*text == "2probe" => {
                    if !write(&mut session, Frame::PONG_PROBE).await {
                        break false;
                    }
                    conn.probe_answered();
                }
                Some(Ok(AggregatedMessage::Text(text))) if &*text == "5" => {
                    conn.finish_upgrade();
                    break true;
                }
                Some(Ok(AggregatedMessage::Ping(data))) => {
                    if session.pong(&data).await.is_err() {
                        break false;
                    }
                }
                _ => break false,
            },
            _ = tokio::time::sleep_until(deadline) => break false,
        }
    };
    if !upgraded || conn.is_closed() {
        conn.cancel_upgrade();
        let _ = session.close(None).await;
        return;
    }
    tracing::debug!("upgraded to websocket");
    // The polling owner task keeps the heartbeat and removes the session when it closes.
    run_transport(&engine, &conn, &mut session, &mut stream, false).await;
    flush_and_close(&conn, session).await;
}

/// Sends what is still queued (e.g. a DISCONNECT before a server close), then the close frame.
async fn flush_and_close<D>(conn: &Conn<D>, mut session: Session) {
    for frame in conn.drain() {
        if !write(&mut session, frame).await {
            return;
        }
    }
    let _ = session.close(None).await;
}

/// The read/write loop of an active websocket transport; returns once the session is closed.
async fn run_transport<H: EngineHandler>(
    engine: &Engine<H>,
    conn: &Arc<Conn<H::Data>>,
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
    owns_heartbeat: bool,
) {
    // One timer for the connection's life, moved with `reset`.
    let heartbeat = tokio::time::sleep(engine.config.ping_interval);
    tokio::pin!(heartbeat);
    // Frames queued before this transport became active.
    for frame in conn.drain() {
        if !write(session, frame).await {
            conn.close(CloseReason::TransportClose);
            return;
        }
    }
    loop {
        tokio::select! {
            biased;
            _ = conn.writable.notified() => {
                if conn.is_closed() {
                    return;
                }
                for frame in conn.drain() {
                    if !write(session, frame).await {
                        conn.close(CloseReason::TransportClose);
                        return;
                    }
                }
            }
            msg = stream.recv() => {
                let packet = match msg {
                    Some(Ok(AggregatedMessage::Text(text))) => packet::decode_text(text, false),
                    Some(Ok(AggregatedMessage::Binary(data))) => {
                        Ok(Packet::Message(Message::Binary(data)))
                    }
                    Some(Ok(AggregatedMessage::Ping(data))) => {
                        let _ = session.pong(&data).await;
                        continue;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => continue,
                    Some(Ok(AggregatedMessage::Close(_))) | None => {
                        conn.close(CloseReason::TransportClose);
                        return;
                    }
                    Some(Err(ProtocolError::Overflow)) => {
                        tracing::warn!("websocket message over max_payload, closing");
                        conn.close(CloseReason::PayloadTooLarge);
                        return;
                    }
                    Some(Err(err)) => {
                        tracing::debug!(%err, "websocket protocol error, closing");
                        conn.close(CloseReason::TransportError);
                        return;
                    }
                };
                match packet {
                    Ok(packet) => {
                        if !engine.on_packet(conn, packet) {
                            return;
                        }
                    }
                    Err(err) => {
                        tracing::debug!(%err, "invalid packet, closing");
                        conn.close(CloseReason::ParseError);
                        return;
                    }
                }
            }
            _ = &mut heartbeat, if owns_heartbeat => {
                match conn.heartbeat(Instant::now()) {
                    Beat::TimedOut => return,
                    Beat::Wait(next) => heartbeat.as_mut().reset(next),
                }
            }
        }
    }
}
