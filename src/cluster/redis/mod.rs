//! The Redis side of cluster mode: one shared connection context (`Redis`: a deadpool pool for
//! commands, one pub/sub connection with automatic reconnection) and the Redis
//! implementations of `Bus`, `Presence`, `RateLimiter` and the Socket.IO `Adapter`.
//! Every key and channel starts with `redis.key_prefix`.

pub mod adapter;
pub mod bus;
pub mod placement;
pub mod presence;
pub mod pubsub;
pub mod rate_limit;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{Config as PoolSettings, Pool, PoolConfig, Runtime, Timeouts};
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterSettings, RedisSettings};

pub use adapter::RedisAdapter;
pub use bus::RedisBus;
pub use placement::RedisPlacement;
pub use presence::RedisPresence;
pub use pubsub::PubSubHub;
pub use rate_limit::RedisRateLimiter;

#[derive(Debug, thiserror::Error)]
pub enum RedisStartError {
    #[error("redis.url: {0}")]
    BadUrl(String),
    #[error("redis.url: cannot reach Redis at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// What every Redis-backed part shares: the pool, the pub/sub hub, the prefix and this
/// replica's id.
pub struct Redis {
    pool: Pool,
    hub: Arc<PubSubHub>,
    prefix: String,
    node_id: String,
    /// `<node_id>#<random>`: tells this process's messages from every other's, even if two
    /// replicas were given the same `cluster.node_id` or a replica restarts under its name.
    instance_id: String,
    timeout: Duration,
}

impl Redis {
    /// Connects (command pool and pub/sub) and checks that Redis answers; a wrong or
    /// unreachable URL fails here with a message naming `redis.url`.
    pub async fn connect(
        settings: &RedisSettings,
        cluster: &ClusterSettings,
        shutdown: CancellationToken,
    ) -> Result<Arc<Redis>, RedisStartError> {
        let url = settings.url.trim().to_owned();
        let shown = redacted(&url);
        let client = redis::Client::open(url.as_str())
            .map_err(|e| RedisStartError::BadUrl(format!("{shown}: {e}")))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut pool_settings = PoolSettings::from_url(url.clone());
        pool_settings.pool = Some(PoolConfig {
            max_size: settings.pool_size,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        });
        let pool = pool_settings
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| RedisStartError::BadUrl(format!("{shown}: {e}")))?;
        let node_id = if cluster.node_id.is_empty() {
            format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
        } else {
            cluster.node_id.clone()
        };
        let instance_id = format!(
            "{node_id}#{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let redis = Redis {
            pool,
            hub: PubSubHub::new(client, timeout),
            prefix: settings.key_prefix.clone(),
            node_id,
            instance_id,
            timeout,
        };
        let unreachable = |reason: String| RedisStartError::Unreachable {
            url: shown.clone(),
            reason,
        };
        let pong: String = redis
            .query(&mut redis::cmd("PING"))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if pong != "PONG" {
            return Err(unreachable(format!("unexpected answer to PING: {pong}")));
        }
        let announced: i64 = redis
            .query(redis::cmd("EXISTS").arg(redis.key(&format!("node:{}", redis.node_id))))
            .await
            .unwrap_or(0);
        if announced > 0 {
            tracing::warn!(
                node_id = %redis.node_id,
                "cluster.node_id is announced already: another replica with this name is running, \
                 or this one restarted within cluster.presence_ttl_secs"
            );
        }
        let redis = Arc::new(redis);
        tokio::spawn(Arc::clone(&redis.hub).run(shutdown));
        redis
            .hub
            .wait_up(Duration::from_secs(10))
            .await
            .map_err(|e| unreachable(format!("pub/sub connection: {e}")))?;
        tracing::info!(node_id = %redis.node_id, redis = %shown, "cluster mode: connected to Redis");
        Ok(redis)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This process's id on the bus and in the adapter (`<node_id>#<random>`).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    pub fn hub(&self) -> &Arc<PubSubHub> {
        &self.hub
    }

    /// `<prefix><name>`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Is the pub/sub connection up (events and broadcasts flow between replicas)?
    pub fn is_up(&self) -> bool {
        self.hub.is_up()
    }

    /// Runs one command (or script invocation) on a pooled connection, within the timeout.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &mut redis::Cmd,
    ) -> Result<T, ClusterRedisError> {
        let work = async {
            let mut conn = self.pool.get().await?;
            Ok::<T, ClusterRedisError>(cmd.query_async(&mut conn).await?)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClusterRedisError::Timeout)?
    }

    /// Runs a pipeline on a pooled connection, within the timeout.
    pub async fn pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, ClusterRedisError> {
        let work = async {
            let mut conn = self.pool.get().await?;
            Ok::<T, ClusterRedisError>(pipe.query_async(&mut conn).await?)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClusterRedisError::Timeout)?
    }

    /// Runs a Lua script (EVALSHA, loading it when Redis does not know it yet).
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ClusterRedisError> {
        let work = async {
            let mut conn = self.pool.get().await?;
            Ok::<T, ClusterRedisError>(invocation.invoke_async(&mut conn).await?)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClusterRedisError::Timeout)?
    }

    /// PUBLISH; returns how many subscribers got it.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<i64, ClusterRedisError> {
        self.query(redis::cmd("PUBLISH").arg(channel).arg(payload))
            .await
    }

    /// Answers whether Redis is usable right now: the pub/sub link is up and a PING answers.
    pub async fn ready(&self) -> bool {
        self.is_up()
            && self
                .query::<String>(&mut redis::cmd("PING"))
                .await
                .is_ok_and(|p| p == "PONG")
    }

    /// Announces this replica (its media address) under `<prefix>node:<id>` with a TTL;
    /// refreshed by the presence heartbeat. The seam for routing a room's media to the
    /// replica that owns its SFU (docs/CLUSTER.md).
    pub async fn announce(&self, media_address: &str, ttl: Duration) {
        let key = self.key(&format!("node:{}", self.node_id));
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(&key)
            .arg("media_address")
            .arg(media_address)
            .arg("version")
            .arg(env!("CARGO_PKG_VERSION"))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl.as_millis() as u64)
            .ignore();
        if let Err(e) = self.pipe::<()>(&pipe).await {
            tracing::debug!(error = %e, "could not announce this replica");
        }
    }

    /// Removes this replica's announcement (graceful stop).
    pub async fn withdraw(&self) {
        let key = self.key(&format!("node:{}", self.node_id));
        let _ = self.query::<i64>(redis::cmd("DEL").arg(key)).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterRedisError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("redis: no answer in time")]
    Timeout,
    #[error("redis message: {0}")]
    Decode(String),
}

/// The URL with any password replaced, for messages and logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redacted("redis://:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
    }
}
