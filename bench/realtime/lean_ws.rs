//! The smallest change outside actix-http that brings an idle websocket under 8 KiB, built to
//! be measured (docs/BENCHMARKS.md, "Realtime", idle memory): the listener reads each new
//! connection's request head itself, as src/shared_port.rs reads a first byte to tell HTTP from
//! TURN. A websocket upgrade to `/socket.io/` is then served here, by a loop that holds no
//! buffer while the socket is idle: it waits for readiness, reads into a stack buffer that is
//! gone before the next wait, and keeps only an unfinished frame. Every other connection goes on
//! to actix-http's HTTP/1 dispatcher with its head read again first (`Sniffed`), into the same actix-web
//! app an `HttpServer` would run: a fixed JSON body for every path, as `lobby_bare` answers, so
//! wrk can show what the extra read of the head costs plain HTTP.
//!
//! The websocket side speaks what the load generator's `idle` mode needs and actix_ws_floor
//! answers: the Engine.IO open packet, `40` → `40{sid}`, ping `2` → pong `3`, close. It is a
//! measurement, not a server: no Origin check, no limits beyond a frame's size, no TLS.
//!
//!     lean_ws_floor PORT BODY_FILE

use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use actix_codec::{Decoder as _, Encoder as _};
use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use actix_http::{HttpService, Protocol};
use actix_server::Server;
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _};
use actix_service::{fn_factory, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::http::header::ContentType;
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpResponse, web};
use bytes::BytesMut;
use talkconnect::shared_port::Sniffed;
use talkconnect_testkit::sfu_measure::print_line;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A request head longer than this is not read further (actix-http's own limit is larger; the
/// product would keep its own).
const MAX_HEAD: usize = 8 * 1024;
/// A client frame longer than this closes the socket (the product's Engine.IO limit is its own).
const MAX_FRAME: usize = 64 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const OPEN: &str = r#"0{"sid":"x"}"#;
const CONNECTED: &str = r#"40{"sid":"abcdefghijklmnopqrst"}"#;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(3200);
    let Some(file) = args.next() else {
        print_line("usage: lean_ws_floor PORT BODY_FILE");
        std::process::exit(2);
    };
    let body = web::Bytes::from(std::fs::read(file)?);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    actix_web::rt::System::new().block_on(async move {
        Server::build()
            .workers(1)
            .listen("lean", listener, move || {
                let body = body.clone();
                let app = App::new().default_service(web::to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .insert_header(ContentType::json())
                            .body(body)
                    }
                }));
                // What actix-web's HttpServer gives a plain listener (src/shared_port.rs does
                // the same for its TLS one).
                let http = HttpService::build().finish(map_config(
                    app.into_factory()
                        .map_err(|e: actix_web::Error| e.error_response()),
                    move |_| AppConfig::__priv_test_new(false, addr.to_string(), addr),
                ));
                fn_factory(move || {
                    let http = http.new_service(());
                    async move {
                        let http = Rc::new(http.await.map_err(|_| ())?);
                        Ok::<_, ()>(fn_service(move |tcp: TcpStream| {
                            let http = Rc::clone(&http);
                            async move {
                                let peer = tcp.peer_addr().ok();
                                if let Some((tcp, head)) = read_head(tcp).await {
                                    match websocket_key(&head) {
                                        Some(key) => {
                                            drop(head);
                                            let _ = websocket(tcp, &key).await;
                                        }
                                        None => {
                                            let io = Sniffed::new(tcp, head);
                                            let _ = http.call((io, Protocol::Http1, peer)).await;
                                        }
                                    }
                                }
                                Ok::<_, ()>(())
                            }
                        }))
                    }
                })
            })?
            .run()
            .await
    })
}

/// Reads until the end of the request head (or gives up); the head and the stream.
async fn read_head(mut tcp: TcpStream) -> Option<(TcpStream, Vec<u8>)> {
    let _ = tcp.set_nodelay(true);
    let mut head = Vec::with_capacity(1024);
    let read = async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = tcp.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&chunk[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(());
            }
            if head.len() > MAX_HEAD {
                return None;
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, read).await.ok()??;
    Some((tcp, head))
}

/// The `Sec-WebSocket-Key` of a websocket upgrade to `/socket.io/`, if the head is one.
fn websocket_key(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    if !lines.next()?.starts_with("GET /socket.io/") {
        return None;
    }
    let mut upgrade = false;
    let mut key = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("upgrade") && value.eq_ignore_ascii_case("websocket") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value.to_owned());
        }
    }
    if upgrade { key } else { None }
}

/// One upgraded socket: between messages the task holds the stream, actix-http's websocket
/// codec (a few bytes of state) and, at most, the bytes of an unfinished frame.
async fn websocket(mut tcp: TcpStream, key: &str) -> std::io::Result<()> {
    let accept = actix_http::ws::hash_key(key.as_bytes());
    let mut codec = Codec::new().max_size(MAX_FRAME);
    let mut out = BytesMut::from(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            String::from_utf8_lossy(&accept)
        )
        .as_bytes(),
    );
    codec
        .encode(Message::Text(OPEN.into()), &mut out)
        .map_err(invalid)?;
    tcp.write_all(&out).await?;
    drop(out);
    let mut partial = BytesMut::new();
    loop {
        tcp.readable().await?;
        // The stack buffer lives only in this block, so it is not part of the task's state
        // while it waits.
        let replies = {
            let mut chunk = [0u8; 2048];
            match tcp.try_read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => partial.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
            let mut replies = BytesMut::new();
            while let Some(frame) = codec.decode(&mut partial).map_err(invalid)? {
                let reply = match frame {
                    Frame::Text(text) if &text[..] == b"40" => Message::Text(CONNECTED.into()),
                    Frame::Text(text) if &text[..] == b"2" => Message::Text("3".into()),
                    Frame::Ping(data) => Message::Pong(data),
                    Frame::Close(_) => return Ok(()),
                    _ => continue,
                };
                codec.encode(reply, &mut replies).map_err(invalid)?;
            }
            if partial.is_empty() {
                // Give the capacity back: an idle socket keeps no buffer.
                partial = BytesMut::new();
            }
            replies
        };
        if !replies.is_empty() {
            tcp.write_all(&replies).await?;
        }
    }
}

fn invalid(err: ProtocolError) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, err.to_string())
}
