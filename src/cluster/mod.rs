//! What differs between one process and a cluster: the event `Bus`, `Presence`, the
//! `RateLimiter` and the Socket.IO adapter. Each trait has an in-memory implementation here
//! and a Redis one in `redis/` (cluster mode, docs/CLUSTER.md).

pub mod bus;
pub mod presence;
pub mod rate_limit;
pub mod redis;

pub use bus::{Bus, InMemoryBus};
pub use presence::{InMemoryPresence, Presence};
pub use rate_limit::{InMemoryRateLimiter, RateLimiter, RetryAfter};
