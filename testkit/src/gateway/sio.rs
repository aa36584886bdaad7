//! A Socket.IO client over a raw WebSocket (the API tests, the capacity load tool): enough
//! protocol to sign in, emit with acks and wait for an event (the events that arrive while
//! waiting for an ack are kept).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Sio {
    ws: Ws,
    next_ack: u64,
    /// Events that arrived while waiting for an ack: (name, payload).
    heard: Vec<(String, Value)>,
}

impl Sio {
    /// Opens the socket to the server at `base` (`http://host:port`) and signs in with
    /// `token`.
    pub async fn connect(base: &str, token: &str) -> Sio {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut sio = Sio {
            ws,
            next_ack: 0,
            heard: Vec::new(),
        };
        assert!(sio.next_text().await.starts_with('0'));
        sio.send(&format!("40{}", json!({ "token": token }))).await;
        assert!(sio.next_text().await.starts_with("40"));
        sio
    }

    /// The WebSocket itself, for a test that speaks the protocol on its own from here on.
    pub fn into_ws(self) -> Ws {
        self.ws
    }

    /// The events heard while waiting for acks, oldest first, handed over.
    pub fn take_heard(&mut self) -> Vec<(String, Value)> {
        std::mem::take(&mut self.heard)
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// The next text frame, answering pings on the way.
    pub async fn next_text(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")
                .expect("the socket is open")
                .unwrap();
            if let Message::Text(text) = frame {
                if &*text == "2" {
                    self.send("3").await;
                    continue;
                }
                return text.to_string();
            }
        }
    }

    /// Keeps an event frame (`42[name, payload]`) for `event`.
    fn keep(&mut self, text: &str) {
        if let Some(body) = text.strip_prefix("42") {
            if let Ok(Value::Array(args)) = serde_json::from_str::<Value>(body) {
                if let Some(name) = args.first().and_then(Value::as_str) {
                    let payload = args.get(1).cloned().unwrap_or(Value::Null);
                    self.heard.push((name.to_owned(), payload));
                }
            }
        }
    }

    /// Emits `event` and waits for its ack (`{ok, data}` or `{ok: false, error}`), keeping
    /// the events in between.
    pub async fn call(&mut self, event: &str, payload: Value) -> Value {
        self.next_ack += 1;
        let id = self.next_ack;
        self.send(&format!("42{id}{}", json!([event, payload])))
            .await;
        let prefix = format!("43{id}");
        loop {
            let text = self.next_text().await;
            if let Some(body) = text.strip_prefix(&prefix) {
                let args: Value = serde_json::from_str(body).unwrap();
                return args[0].clone();
            }
            self.keep(&text);
        }
    }

    /// The first event called `name` (heard already, or coming within 10 s).
    pub async fn event(&mut self, name: &str) -> Value {
        loop {
            if let Some(at) = self.heard.iter().position(|(n, _)| n == name) {
                return self.heard.remove(at).1;
            }
            let text = self.next_text().await;
            self.keep(&text);
        }
    }
}
