//! `MediaPlacement` over Redis: `<prefix>sfu:owner:<room>` holds the owning replica's
//! instance id with a lease (`cluster.media_lease_secs`), renewed while the owner serves
//! someone in the room and dropped when it serves nobody; a dead owner's lease runs out and
//! the next replica that needs the room claims it. Requests travel on
//! `<prefix>media:<instance id>` as `{"id","from","request"}`, answers come back on the
//! sender's channel as `{"id","reply"}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::ids::RoomId;

use super::{Redis, wire};
use crate::cluster::placement::{MediaPlacement, Owner, PlacementError, RequestHandler};

/// Claims the key for ARGV[1] when vacant; answers the owner.
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]";

/// Renews the lease when ARGV[1] still holds it; answers 1 if so.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// Deletes the key when ARGV[1] holds it.
const VACATE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

#[derive(Serialize, Deserialize)]
struct Envelope {
    id: u64,
    /// Set on requests: where the answer goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<Value>,
}

pub struct RedisPlacement {
    redis: Arc<Redis>,
    lease: Duration,
    timeout: Duration,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    handler: Mutex<Option<RequestHandler>>,
    claim: redis::Script,
    renew: redis::Script,
    vacate: redis::Script,
}

impl RedisPlacement {
    /// Subscribes this replica's media channel.
    pub async fn new(redis: Arc<Redis>, lease: Duration, timeout: Duration) -> Arc<Self> {
        let placement = Arc::new(Self {
            redis,
            lease,
            timeout,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            handler: Mutex::new(None),
            claim: redis::Script::new(CLAIM),
            renew: redis::Script::new(RENEW),
            vacate: redis::Script::new(VACATE),
        });
        let weak = Arc::downgrade(&placement);
        let channel = placement.channel(placement.redis.instance_id());
        placement
            .redis
            .hub()
            .subscribe(
                channel,
                Arc::new(move |payload: &[u8]| {
                    if let Some(placement) = weak.upgrade() {
                        placement.on_message(payload);
                    }
                }),
            )
            .await;
        placement
    }

    fn channel(&self, instance: &str) -> String {
        self.redis.key(&format!("media:{instance}"))
    }

    fn owner_key(&self, room: RoomId) -> String {
        self.redis.key(&format!("sfu:owner:{room}"))
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis() as u64
    }

    fn on_message(self: &Arc<Self>, payload: &[u8]) {
        let Some(envelope) =
            wire::decode::<Envelope>("a media request", payload, &self.redis.hub().lag)
        else {
            return;
        };
        if let Some(reply) = envelope.reply {
            if let Some(waiter) = self.pending.lock().remove(&envelope.id) {
                let _ = waiter.send(reply);
            }
            return;
        }
        let (Some(from), Some(request)) = (envelope.from, envelope.request) else {
            return;
        };
        let Some(handler) = self.handler.lock().clone() else {
            return;
        };
        let placement = Arc::clone(self);
        tokio::spawn(async move {
            let reply = handler(request).await;
            let answer = Envelope {
                id: envelope.id,
                from: None,
                request: None,
                reply: Some(reply),
            };
            if let Ok(bytes) = wire::encode(&answer) {
                let channel = placement.channel(&from);
                if let Err(e) = placement.redis.publish(&channel, &bytes).await {
                    tracing::warn!(error = %e, "media placement: the answer was not sent");
                }
            }
        });
    }
}

#[async_trait]
impl MediaPlacement for RedisPlacement {
    async fn owner(&self, room: RoomId) -> Result<Owner, PlacementError> {
        let me = self.redis.instance_id();
        let owner: String = self
            .redis
            .script(
                self.claim
                    .key(self.owner_key(room))
                    .arg(me)
                    .arg(self.lease_ms()),
            )
            .await
            .map_err(|e| PlacementError::Unavailable(e.to_string()))?;
        Ok(if owner == me {
            Owner::Here
        } else {
            Owner::Elsewhere(owner)
        })
    }

    async fn is_owner(&self, room: RoomId, node: &str) -> bool {
        match self
            .redis
            .query::<Option<String>>(redis::cmd("GET").arg(self.owner_key(room)))
            .await
        {
            Ok(owner) => owner.as_deref() == Some(node),
            // Redis away: no news is not bad news; keep the session.
            Err(_) => true,
        }
    }

    async fn keep(&self, rooms: &[RoomId]) -> Vec<RoomId> {
        let me = self.redis.instance_id();
        let mut lost = Vec::new();
        for room in rooms {
            let kept: Result<i64, _> = self
                .redis
                .script(
                    self.renew
                        .key(self.owner_key(*room))
                        .arg(me)
                        .arg(self.lease_ms()),
                )
                .await;
            match kept {
                Ok(1) => {}
                Ok(_) => lost.push(*room),
                Err(e) => {
                    tracing::debug!(%room, error = %e, "media lease not renewed (Redis away)")
                }
            }
        }
        lost
    }

    async fn vacate(&self, room: RoomId) {
        let me = self.redis.instance_id();
        let _: Result<i64, _> = self
            .redis
            .script(self.vacate.key(self.owner_key(room)).arg(me))
            .await;
    }

    async fn call(&self, node: &str, request: Value) -> Result<Value, PlacementError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        self.pending.lock().insert(id, waiter);
        let envelope = Envelope {
            id,
            from: Some(self.redis.instance_id().to_owned()),
            request: Some(request),
            reply: None,
        };
        let bytes =
            wire::encode(&envelope).map_err(|e| PlacementError::Unavailable(e.to_string()))?;
        let delivered = self.redis.publish(&self.channel(node), &bytes).await;
        if !matches!(delivered, Ok(n) if n > 0) {
            self.pending.lock().remove(&id);
            return Err(PlacementError::Unreachable);
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => {
                self.pending.lock().remove(&id);
                Err(PlacementError::Unreachable)
            }
        }
    }

    async fn serve(&self, handler: RequestHandler) {
        *self.handler.lock() = Some(handler);
    }
}
