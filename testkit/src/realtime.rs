//! Test harness for the realtime integration tests: the conformance server on a random port,
//! plus raw Engine.IO clients over HTTP long-polling and websocket.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpServer};
use futures_util::{SinkExt as _, StreamExt as _};
use talkconnect::realtime::Config;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::conformance;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Guard against hangs; tests never assert on timings.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub io: talkconnect::realtime::SocketIo,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// The example server with the official suites' timings.
    pub async fn start() -> TestServer {
        TestServer::start_with(conformance::suite_config()).await
    }

    pub async fn start_with(config: Config) -> TestServer {
        let servers = std::sync::Arc::new(conformance::build(config, Duration::ZERO));
        let io = servers.io.clone();
        let server = HttpServer::new(move || {
            let servers = servers.clone();
            App::new().configure(move |cfg| servers.configure(cfg))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        TestServer {
            addr,
            http: reqwest::Client::new(),
            io,
            handle,
        }
    }

    /// Serves an app-built `SocketIo` (for tests of the app-facing API).
    pub async fn serve(io: talkconnect::realtime::SocketIo) -> TestServer {
        let served = io.clone();
        let server = HttpServer::new(move || {
            let io = served.clone();
            App::new().configure(move |cfg| io.configure(cfg))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        TestServer {
            addr,
            http: reqwest::Client::new(),
            io,
            handle,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, String) {
        let res = self
            .http
            .get(self.url(path_and_query))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    pub async fn post(
        &self,
        path_and_query: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String) {
        let res = self
            .http
            .post(self.url(path_and_query))
            .body(body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// Opens a polling session at `base` (`/engine.io/` or `/socket.io/`), returns its sid.
    pub async fn polling_session(&self, base: &str) -> String {
        let (status, body) = self.get(&format!("{base}?EIO=4&transport=polling")).await;
        assert_eq!(status, 200);
        open_packet(&body)["sid"].as_str().unwrap().to_owned()
    }

    pub async fn ws(&self, path_and_query: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(self.ws_url(path_and_query))
            .await
            .unwrap();
        ws
    }

    /// A websocket Engine.IO session; the open packet is consumed and returned.
    pub async fn ws_session(&self, base: &str) -> (Ws, serde_json::Value) {
        let mut ws = self.ws(&format!("{base}?EIO=4&transport=websocket")).await;
        let open = next_text(&mut ws).await;
        (ws, open_packet(&open))
    }

    /// A websocket connected to the Socket.IO main namespace; CONNECT answer and the
    /// "auth" event consumed.
    pub async fn sio_client(&self) -> Ws {
        let (mut ws, _) = self.ws_session("/socket.io/").await;
        send_text(&mut ws, "40").await;
        assert!(next_text(&mut ws).await.starts_with("40{"));
        assert_eq!(next_text(&mut ws).await, r#"42["auth",{}]"#);
        ws
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

pub fn open_packet(text: &str) -> serde_json::Value {
    assert!(text.starts_with('0'), "not an open packet: {text}");
    serde_json::from_str(&text[1..]).unwrap()
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(WsMessage::text(text)).await.unwrap();
}

pub async fn send_binary(ws: &mut Ws, data: &[u8]) {
    ws.send(WsMessage::binary(data.to_vec())).await.unwrap();
}

/// Next data frame (text or binary), answering nothing.
pub async fn next_frame(ws: &mut Ws) -> WsMessage {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame in time")
            .expect("stream ended")
            .expect("websocket error");
        match msg {
            WsMessage::Text(_) | WsMessage::Binary(_) => return msg,
            WsMessage::Close(_) => panic!("closed while waiting for a frame"),
            _ => {}
        }
    }
}

pub async fn next_text(ws: &mut Ws) -> String {
    match next_frame(ws).await {
        WsMessage::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Next text frame that is not an Engine.IO ping; pings are answered.
pub async fn next_text_no_ping(ws: &mut Ws) -> String {
    loop {
        let text = next_text(ws).await;
        if text == "2" {
            send_text(ws, "3").await;
        } else {
            return text;
        }
    }
}

pub async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    match next_frame(ws).await {
        WsMessage::Binary(b) => b.to_vec(),
        other => panic!("expected binary, got {other:?}"),
    }
}

/// Waits until the server closes the websocket (close frame, EOF or reset).
pub async fn closed(ws: &mut Ws) -> bool {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}
