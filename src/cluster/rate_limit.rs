//! Rate limiting by key ("auth:ip:1.2.3.4", "room:join:user:<id>", …) with the generic cell
//! rate algorithm: one timestamp per key, bursts of up to `count`, refilled evenly over
//! `per_secs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::RateRule;

/// How long the caller should wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for the `Retry-After` header, never 0.
    pub fn secs(self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request for `key`; refuses it when the key is over `rule`.
    async fn hit(&self, key: &str, rule: RateRule) -> Result<(), RetryAfter>;
}

/// Keys are forgotten once their bucket is full again, swept every `SWEEP_EVERY` hits.
const SWEEP_EVERY: u32 = 1024;

#[derive(Default)]
pub struct InMemoryRateLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    /// Theoretical arrival time of the next request per key.
    next_free: HashMap<String, Instant>,
    hits_since_sweep: u32,
}

impl InMemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn hit_at(&self, key: &str, rule: RateRule, now: Instant) -> Result<(), RetryAfter> {
        let window = Duration::from_secs(rule.per_secs);
        let interval = window / rule.count.max(1);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.hits_since_sweep += 1;
        if state.hits_since_sweep >= SWEEP_EVERY {
            state.hits_since_sweep = 0;
            state.next_free.retain(|_, tat| *tat > now);
        }
        let tat = state.next_free.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        // Allow the request while the bucket's debt stays within one window.
        if new_tat.duration_since(now) > window {
            return Err(RetryAfter(new_tat.duration_since(now) - window));
        }
        state.next_free.insert(key.to_owned(), new_tat);
        Ok(())
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.next_free.len())
            .unwrap_or_default()
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn hit(&self, key: &str, rule: RateRule) -> Result<(), RetryAfter> {
        self.hit_at(key, rule, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_PER_MINUTE: RateRule = RateRule {
        count: 3,
        per_secs: 60,
    };

    #[test]
    fn allows_a_burst_of_count_then_refuses() {
        let limiter = InMemoryRateLimiter::new();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.hit_at("k", THREE_PER_MINUTE, now).is_ok());
        }
        let retry = limiter.hit_at("k", THREE_PER_MINUTE, now).unwrap_err();
        assert_eq!(retry.0, Duration::from_secs(20));
        assert_eq!(retry.secs(), 20);
    }

    #[test]
    fn refills_evenly_over_the_window() {
        let limiter = InMemoryRateLimiter::new();
        let now = Instant::now();
        for _ in 0..3 {
            limiter.hit_at("k", THREE_PER_MINUTE, now).unwrap();
        }
        assert!(
            limiter
                .hit_at("k", THREE_PER_MINUTE, now + Duration::from_secs(19))
                .is_err()
        );
        assert!(
            limiter
                .hit_at("k", THREE_PER_MINUTE, now + Duration::from_secs(20))
                .is_ok()
        );
    }

    #[test]
    fn keys_are_independent() {
        let limiter = InMemoryRateLimiter::new();
        let now = Instant::now();
        for _ in 0..3 {
            limiter.hit_at("a", THREE_PER_MINUTE, now).unwrap();
        }
        assert!(limiter.hit_at("a", THREE_PER_MINUTE, now).is_err());
        assert!(limiter.hit_at("b", THREE_PER_MINUTE, now).is_ok());
    }

    #[test]
    fn idle_keys_are_swept() {
        let limiter = InMemoryRateLimiter::new();
        let now = Instant::now();
        limiter.hit_at("old", THREE_PER_MINUTE, now).unwrap();
        let later = now + Duration::from_secs(120);
        for i in 0..SWEEP_EVERY {
            limiter
                .hit_at(&format!("k{}", i % 4), THREE_PER_MINUTE, later)
                .ok();
        }
        assert_eq!(limiter.tracked_keys(), 4);
    }
}
