//! WebSocket transport: a fresh session over websocket, or the probe/upgrade of a polling
//! session. Frames are decoded and encoded with actix-http's websocket codec directly: the
//! response body pulls frames from the session queue (no per-connection channel), and one
//! reader task per connection decodes, dispatches and (for fresh sessions) pings.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_codec::{Decoder as _, Encoder as _};
use actix_http::body::{BodyStream, MessageBody as _};
use actix_http::ws::{self, Codec, Item, ProtocolError};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{Stream, StreamExt as _};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::conn::{Beat, WsControl};
use super::packet::{self, Frame, Message, Packet};
use super::{CloseReason, Conn, Engine, EngineError, EngineHandler, TransportKind};

pub(super) fn accept<H: EngineHandler>(
    engine: Arc<Engine<H>>,
    req: &HttpRequest,
    body: web::Payload,
    existing: Option<Arc<Conn<H::Data>>>,
) -> HttpResponse {
    let Ok(mut builder) = ws::handshake(req.head()) else {
        return EngineError::BadRequest.response();
    };
    let reader = FrameReader::new(body, engine.config.max_payload);
    let (conn, generation, fresh) = match existing {
        None => match engine.open(TransportKind::Websocket, req) {
            Ok(conn) => (conn, 0, true),
            Err(refusal) => return refusal.response(),
        },
        Some(conn) => match conn.begin_upgrade() {
            Some(generation) => (conn, generation, false),
            None => {
                // Already upgraded or upgrading: complete the handshake, then close at once.
                return respond(&mut builder, CloseOnly(Some(encode_close())));
            }
        },
    };
    let writer = WsWriter {
        conn: Arc::clone(&conn),
        generation,
        codec: Codec::new(),
        done: false,
    };
    let span = tracing::debug_span!("engine.io", sid = %conn.sid());
    if fresh {
        // The open packet is the first thing the writer sends.
        let open = engine.open_packet(conn.sid(), TransportKind::Websocket);
        conn.send(open);
        actix_web::rt::spawn(run_fresh(engine, conn, reader).instrument(span));
    } else {
        actix_web::rt::spawn(run_upgrade(engine, conn, generation, reader).instrument(span));
    }
    respond(&mut builder, writer)
}

fn respond<S>(builder: &mut actix_http::ResponseBuilder, body: S) -> HttpResponse
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + 'static,
{
    match builder.message_body(BodyStream::new(body).boxed()) {
        Ok(response) => response.into(),
        Err(_) => EngineError::BadRequest.response(),
    }
}

fn encode_close() -> Bytes {
    let mut buf = BytesMut::new();
    let _ = Codec::new().encode(ws::Message::Close(None), &mut buf);
    buf.freeze()
}

/// Body of a refused websocket: one close frame.
struct CloseOnly(Option<Bytes>);

impl Stream for CloseOnly {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.get_mut().0.take().map(Ok))
    }
}

/// The response body of a websocket: encodes what the session queued, when it is the active
/// transport, plus the control frames of this websocket.
struct WsWriter<D> {
    conn: Arc<Conn<D>>,
    generation: u32,
    codec: Codec,
    done: bool,
}

impl<D> Drop for WsWriter<D> {
    fn drop(&mut self) {
        self.conn.ws_writer_dropped(self.generation);
    }
}

impl<D> Stream for WsWriter<D> {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let out = this.conn.ws_poll(this.generation, cx.waker());
        let mut buf = BytesMut::new();
        for control in out.control {
            let msg = match control {
                WsControl::PongProbe => ws::Message::Text(ByteString::from_static("3probe")),
                WsControl::Pong(data) => ws::Message::Pong(data),
                WsControl::Close => continue,
            };
            let _ = this.codec.encode(msg, &mut buf);
        }
        for frame in out.frames {
            let msg = match frame {
                Frame::Text(text) => ws::Message::Text(text),
                Frame::Binary(data) => ws::Message::Binary(data),
            };
            let _ = this.codec.encode(msg, &mut buf);
        }
        if out.close {
            let _ = this.codec.encode(ws::Message::Close(None), &mut buf);
            this.done = true;
        }
        if buf.is_empty() {
            if this.done {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        } else {
            Poll::Ready(Some(Ok(buf.freeze())))
        }
    }
}

/// What the reader got from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    /// Close frame or end of stream.
    Closed,
    TooLarge,
    Invalid,
}

/// Decodes client frames from the bytes fed to it, reassembling continuations; no I/O, so
/// [`FrameReader`] and the fuzz target drive the same code.
pub struct FrameDecoder {
    buf: BytesMut,
    codec: Codec,
    partial: Option<(bool, BytesMut)>,
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing messages over `max` bytes.
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max),
            partial: None,
            max,
        }
    }

    /// Appends bytes as they arrived from the client.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held for frames not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.partial.as_ref().map_or(0, |(_, acc)| acc.len())
    }

    fn text(data: Bytes) -> Incoming {
        match ByteString::try_from(data) {
            Ok(text) => Incoming::Text(text),
            Err(_) => Incoming::Invalid,
        }
    }

    fn append(&mut self, data: &[u8]) -> bool {
        match &mut self.partial {
            Some((_, acc)) if acc.len() + data.len() <= self.max => {
                acc.extend_from_slice(data);
                true
            }
            _ => false,
        }
    }

    /// Refuses a frame as soon as its header is in: a data frame whose declared length (plus
    /// what a fragmented message already holds) is over `max`, or a control frame over 125
    /// bytes. actix-http's codec would otherwise buffer the whole frame before refusing it.
    fn declared_too_large(&self) -> bool {
        let Some((opcode, length)) = declared_frame(&self.buf) else {
            return false;
        };
        let is_control = opcode & 0x08 != 0;
        if is_control {
            return length > 125;
        }
        let held = self.partial.as_ref().map_or(0, |(_, acc)| acc.len() as u64);
        held.saturating_add(length) > self.max as u64
    }

    /// The next message from what was fed, or `None` until more bytes arrive.
    pub fn next_message(&mut self) -> Option<Incoming> {
        loop {
            if self.declared_too_large() {
                return Some(Incoming::TooLarge);
            }
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if self.buf.is_empty() && self.buf.capacity() > 4096 {
                        // Do not keep a large buffer around for an idle connection.
                        self.buf = BytesMut::new();
                    }
                    match frame {
                        ws::Frame::Text(data) => return Some(FrameDecoder::text(data)),
                        ws::Frame::Binary(data) => return Some(Incoming::Binary(data)),
                        ws::Frame::Ping(data) => return Some(Incoming::Ping(data)),
                        ws::Frame::Pong(_) => {}
                        ws::Frame::Close(_) => return Some(Incoming::Closed),
                        ws::Frame::Continuation(item) => match item {
                            Item::FirstText(data) => {
                                self.partial = Some((true, BytesMut::from(&data[..])))
                            }
                            Item::FirstBinary(data) => {
                                self.partial = Some((false, BytesMut::from(&data[..])))
                            }
                            Item::Continue(data) => {
                                if !self.append(&data) {
                                    return Some(Incoming::TooLarge);
                                }
                            }
                            Item::Last(data) => {
                                if !self.append(&data) {
                                    return Some(Incoming::TooLarge);
                                }
                                if let Some((is_text, acc)) = self.partial.take() {
                                    let data = acc.freeze();
                                    return Some(if is_text {
                                        FrameDecoder::text(data)
                                    } else {
                                        Incoming::Binary(data)
                                    });
                                }
                            }
                        },
                    }
                    continue;
                }
                Ok(None) => return None,
                Err(ProtocolError::Overflow) => return Some(Incoming::TooLarge),
                Err(_) => return Some(Incoming::Invalid),
            }
        }
    }
}

/// Reads client frames from the request payload.
struct FrameReader {
    payload: web::Payload,
    decoder: FrameDecoder,
}

impl FrameReader {
    fn new(payload: web::Payload, max: usize) -> FrameReader {
        FrameReader {
            payload,
            decoder: FrameDecoder::new(max),
        }
    }

    async fn next(&mut self) -> Incoming {
        loop {
            if let Some(incoming) = self.decoder.next_message() {
                return incoming;
            }
            match self.payload.next().await {
                Some(Ok(chunk)) => self.decoder.feed(&chunk),
                _ => return Incoming::Closed,
            }
        }
    }
}

/// The opcode and declared payload length of the frame at the start of `buf`, once its
/// header has arrived (RFC 6455 §5.2: 7-bit length, or 126 + u16, or 127 + u64).
fn declared_frame(buf: &[u8]) -> Option<(u8, u64)> {
    let (&first, &second) = (buf.first()?, buf.get(1)?);
    let opcode = first & 0x0F;
    let length = match second & 0x7F {
        126 => u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        short => u64::from(short),
    };
    Some((opcode, length))
}

async fn run_fresh<H: EngineHandler>(
    engine: Arc<Engine<H>>,
    conn: Arc<Conn<H::Data>>,
    mut reader: FrameReader,
) {
    engine.handler.on_open(&conn);
    run_transport(&engine, &conn, 0, &mut reader, true).await;
    engine.finalize(&conn);
}

async fn run_upgrade<H: EngineHandler>(
    engine: Arc<Engine<H>>,
    conn: Arc<Conn<H::Data>>,
    generation: u32,
    mut reader: FrameReader,
) {
    let deadline = tokio::time::sleep(engine.config.upgrade_timeout);
    tokio::pin!(deadline);
    let upgraded = loop {
        // Biased: a `5` that has arrived completes the upgrade even if the deadline fired in
        // the same instant (under load both can be ready; a random pick would cancel an
        // upgrade the client already finished, and let a second websocket take the session).
        tokio::select! {
            biased;
            incoming = reader.next() => match incoming {
                Incoming::Text(text) if &*text == "2probe" => {
                    conn.ws_control(generation, WsControl::PongProbe);
                    conn.probe_answered();
                }
                Incoming::Text(text) if &*text == "5" => {
                    conn.finish_upgrade();
                    break true;
                }
                Incoming::Ping(data) if conn.take_token() => {
                    conn.ws_control(generation, WsControl::Pong(data))
                }
                _ => break false,
            },
            _ = &mut deadline => break false,
        }
    };
    if !upgraded || conn.is_closed() {
        conn.cancel_upgrade();
        conn.ws_control(generation, WsControl::Close);
        return;
    }
    tracing::debug!("upgraded to websocket");
    // The polling owner task keeps the heartbeat and removes the session when it closes.
    run_transport(&engine, &conn, generation, &mut reader, false).await;
}

/// The read loop of an active websocket transport; returns once the session is closed.
async fn run_transport<H: EngineHandler>(
    engine: &Engine<H>,
    conn: &Arc<Conn<H::Data>>,
    generation: u32,
    reader: &mut FrameReader,
    owns_heartbeat: bool,
) {
    let closed = conn.closed.notified();
    tokio::pin!(closed);
    closed.as_mut().enable();
    // One timer for the connection's life, moved with `reset`.
    let heartbeat = tokio::time::sleep(engine.config.ping_interval);
    tokio::pin!(heartbeat);
    if conn.is_closed() {
        return;
    }
    loop {
        tokio::select! {
            _ = &mut closed => return,
            incoming = reader.next() => {
                let packet = match incoming {
                    Incoming::Text(text) => packet::decode_text(text, false),
                    Incoming::Binary(data) => Ok(Packet::Message(Message::Binary(data))),
                    Incoming::Ping(data) => {
                        // Control frames spend the packet budget too: a ping flood is a flood.
                        if !conn.take_token() {
                            tracing::warn!("client exceeded its packet rate with pings, closing");
                            conn.close(CloseReason::RateLimited);
                            return;
                        }
                        conn.ws_control(generation, WsControl::Pong(data));
                        continue;
                    }
                    Incoming::Closed => {
                        conn.close(CloseReason::TransportClose);
                        return;
                    }
                    Incoming::TooLarge => {
                        tracing::warn!("websocket message over max_payload, closing");
                        conn.close(CloseReason::PayloadTooLarge);
                        return;
                    }
                    Incoming::Invalid => {
                        tracing::debug!("websocket protocol error, closing");
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
