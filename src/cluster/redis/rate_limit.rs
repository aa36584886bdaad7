//! The generic cell rate algorithm in one Lua script, so every replica counts against the
//! same budget: `<prefix>rl:<key>` holds the key's theoretical arrival time (µs, Redis's own
//! clock, so replicas' clocks do not matter) and expires when the bucket is full again.
//! While Redis is unreachable the limiter lets requests through (logged): refusing every
//! login because the cache is down would turn an outage into a bigger one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Redis;
use crate::cluster::{RateLimiter, RetryAfter};
use crate::config::RateRule;

/// ARGV: interval µs, window µs. Returns 0 (allowed) or the µs to wait.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > window then
  return new_tat - now - window
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

pub struct RedisRateLimiter {
    redis: Arc<Redis>,
    script: redis::Script,
}

impl RedisRateLimiter {
    pub fn new(redis: Arc<Redis>) -> RedisRateLimiter {
        RedisRateLimiter {
            redis,
            script: redis::Script::new(GCRA),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, rule: RateRule) -> Result<(), RetryAfter> {
        let window = Duration::from_secs(rule.per_secs).as_micros() as u64;
        let interval = window / u64::from(rule.count.max(1));
        let mut invocation = self.script.key(self.redis.key(&format!("rl:{key}")));
        invocation.arg(interval).arg(window);
        match self.redis.script::<i64>(&invocation).await {
            Ok(0) => Ok(()),
            Ok(wait) => Err(RetryAfter(Duration::from_micros(wait.max(0) as u64))),
            Err(e) => {
                tracing::warn!(error = %e, key, "rate limit not checked: Redis unavailable");
                Ok(())
            }
        }
    }
}
