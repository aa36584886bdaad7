//! The `Bus` over Redis pub/sub: an event published on one replica reaches the subscribers
//! of every replica. Local subscribers get it at once, in process (so a replica keeps
//! serving its own users while Redis is away); the other replicas get it from the channel
//! `<prefix>bus`, as `{"v": 1, "node": <sender instance id>, "event": <serde JSON>}`
//! (versioned: wire.rs), and drop their own.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::{Redis, wire};
use crate::cluster::Bus;
use crate::cluster::bus::{Observer, Observers};

/// Extra commands sent in the same round trip as an event this replica publishes (the seat
/// count cache: `seats::commands`).
pub type PublishHook<E> = Arc<dyn Fn(&E, &Redis) -> Vec<redis::Cmd> + Send + Sync>;

pub struct RedisBus<E> {
    redis: Arc<Redis>,
    channel: String,
    local: broadcast::Sender<Arc<E>>,
    hook: Option<PublishHook<E>>,
    observers: Arc<Observers<E>>,
}

#[derive(Serialize)]
struct Outgoing<'a, E> {
    node: &'a str,
    event: &'a E,
}

#[derive(serde::Deserialize)]
struct Incoming<E> {
    node: String,
    event: E,
}

impl<E> RedisBus<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Subscribes to the bus channel (waits for Redis to confirm when connected).
    pub async fn new(
        redis: Arc<Redis>,
        capacity: usize,
        hook: Option<PublishHook<E>>,
    ) -> RedisBus<E> {
        let (local, _) = broadcast::channel(capacity.max(1));
        let channel = redis.key("bus");
        let sender = local.clone();
        let observers: Arc<Observers<E>> = Arc::default();
        let observing = Arc::clone(&observers);
        let node = redis.instance_id().to_owned();
        let hub = Arc::clone(redis.hub());
        redis
            .hub()
            .subscribe(
                channel.clone(),
                Arc::new(move |payload: &[u8]| {
                    match wire::decode::<Incoming<E>>("a bus event", payload, &hub.lag) {
                        Some(incoming) if incoming.node == node => {} // our own, delivered already
                        Some(incoming) => {
                            observing.tell(&incoming.event);
                            let _ = sender.send(Arc::new(incoming.event));
                        }
                        None => {}
                    }
                }),
            )
            .await;
        RedisBus {
            redis,
            channel,
            local,
            hook,
            observers,
        }
    }
}

#[async_trait]
impl<E> Bus<E> for RedisBus<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn publish(&self, event: E) {
        self.observers.tell(&event);
        let event = Arc::new(event);
        let _ = self.local.send(Arc::clone(&event));
        if !self.redis.is_up() {
            // The other replicas resynchronise their lobbies when Redis is back.
            tracing::debug!("Redis is down: event delivered on this replica only");
            return;
        }
        let payload = match wire::encode(&Outgoing {
            node: self.redis.instance_id(),
            event: &*event,
        }) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(error = %e, "event not serializable");
                return;
            }
        };
        let mut pipe = redis::pipe();
        pipe.cmd("PUBLISH").arg(&self.channel).arg(payload).ignore();
        if let Some(hook) = &self.hook {
            for cmd in hook(&event, &self.redis) {
                pipe.add_command(cmd).ignore();
            }
        }
        if let Err(e) = self.redis.pipe::<()>(&pipe).await {
            tracing::warn!(error = %e, "event not published to the other replicas");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<E>> {
        self.local.subscribe()
    }

    fn observe(&self, observer: Observer<E>) {
        self.observers.add(observer);
    }
}
