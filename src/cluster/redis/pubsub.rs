//! One pub/sub connection per replica, shared by the bus and the Socket.IO adapter. Parts
//! register a handler per channel; the hub subscribes, dispatches each message to its
//! channel's handler, and when the connection drops (Redis restarted, network cut) it
//! reconnects with backoff and subscribes to every registered channel again. Each successful
//! (re)connection bumps an epoch that the recovery work watches.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use parking_lot::Mutex;
use redis::aio::PubSubSink;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Called with the payload of every message on its channel, on the hub's task: it must be
/// quick (spawn anything that waits).
pub type Handler = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// How often the hub pings Redis over the pub/sub connection to notice a dead link that
/// was not closed (a frozen Redis, a cut network).
const PING_EVERY: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    handlers: HashMap<String, Handler>,
    sink: Option<PubSubSink>,
}

pub struct PubSubHub {
    client: redis::Client,
    timeout: Duration,
    state: Mutex<State>,
    up: AtomicBool,
    /// Number of successful connections so far (1 after start, +1 per reconnection).
    epoch: watch::Sender<u64>,
    /// How late the other replicas' messages arrive (the metrics read it).
    pub lag: super::wire::Lag,
}

impl PubSubHub {
    pub fn new(client: redis::Client, timeout: Duration) -> Arc<PubSubHub> {
        Arc::new(PubSubHub {
            client,
            timeout,
            state: Mutex::new(State::default()),
            up: AtomicBool::new(false),
            epoch: watch::channel(0).0,
            lag: super::wire::Lag::default(),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The connection count now (see [`Self::epochs`]).
    pub fn epoch(&self) -> u64 {
        *self.epoch.borrow()
    }

    /// Watches the connection count: it changes on every (re)connection.
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Waits for the first connection.
    pub async fn wait_up(&self, within: Duration) -> Result<(), String> {
        let mut epochs = self.epochs();
        match tokio::time::timeout(within, epochs.wait_for(|n| *n > 0)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the hub stopped".into()),
            Err(_) => Err(format!("not connected within {} s", within.as_secs())),
        }
    }

    /// Registers `handler` for `channel` and subscribes now when connected (else at the next
    /// connection). Returns once Redis confirmed the subscription or could not be asked.
    pub async fn subscribe(&self, channel: String, handler: Handler) {
        let sink = {
            let mut state = self.state.lock();
            state.handlers.insert(channel.clone(), handler);
            state.sink.clone()
        };
        if let Some(mut sink) = sink {
            match tokio::time::timeout(self.timeout, sink.subscribe(&channel)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%channel, error = %e, "subscribe failed; retried on reconnect")
                }
                Err(_) => tracing::debug!(%channel, "subscribe timed out; retried on reconnect"),
            }
        }
    }

    /// Forgets the channel's handler and unsubscribes.
    pub async fn unsubscribe(&self, channel: &str) {
        let sink = {
            let mut state = self.state.lock();
            state.handlers.remove(channel);
            state.sink.clone()
        };
        if let Some(mut sink) = sink {
            let _ = tokio::time::timeout(self.timeout, sink.unsubscribe(channel)).await;
        }
    }

    fn handler(&self, channel: &str) -> Option<Handler> {
        self.state.lock().handlers.get(channel).cloned()
    }

    /// Connects, subscribes, dispatches; reconnects when the link drops; stops with
    /// `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.serve_one_connection(&shutdown).await {
                Ok(()) => return, // shut down
                Err(reason) => {
                    let was_up = self.up.swap(false, Ordering::AcqRel);
                    self.state.lock().sink = None;
                    if was_up {
                        tracing::warn!(%reason, "Redis pub/sub connection lost; reconnecting");
                        backoff = BACKOFF_MIN;
                    } else {
                        tracing::debug!(%reason, "Redis pub/sub still unreachable");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection's life; `Ok` only on shutdown.
    async fn serve_one_connection(&self, shutdown: &CancellationToken) -> Result<(), String> {
        let connect = tokio::time::timeout(self.timeout, self.client.get_async_pubsub());
        let pubsub = connect
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let (sink, mut stream) = pubsub.split();
        // The sink is published before the channels are listed, so a concurrent `subscribe`
        // either lands in the list or subscribes by itself.
        let channels: Vec<String> = {
            let mut state = self.state.lock();
            state.sink = Some(sink.clone());
            state.handlers.keys().cloned().collect()
        };
        let mut control = sink;
        for chunk in channels.chunks(256) {
            tokio::time::timeout(self.timeout, control.subscribe(chunk))
                .await
                .map_err(|_| "resubscribe timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        }
        self.up.store(true, Ordering::Release);
        self.epoch.send_modify(|n| *n += 1);
        let epoch = *self.epoch.borrow();
        tracing::info!(channels = channels.len(), epoch, "Redis pub/sub connected");
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = stream.next() => {
                    let Some(message) = message else {
                        return Err("connection closed".into());
                    };
                    if let Some(handler) = self.handler(message.get_channel_name()) {
                        handler(message.get_payload_bytes());
                    }
                }
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(self.timeout, control.ping::<redis::Value>()).await;
                    match answered {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(format!("ping failed: {e}")),
                        Err(_) => return Err("ping timed out".into()),
                    }
                }
            }
        }
    }
}
