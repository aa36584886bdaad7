//! What differs between one process and a cluster: the event `Bus`, `Presence`, the
//! `RateLimiter`, the Socket.IO adapter and where a room's SFU lives (`MediaPlacement`). Each trait has an in-memory implementation here
//! and a Redis one in `redis/` (cluster mode, docs/CLUSTER.md).

pub mod bus;
pub mod placement;
pub mod presence;
pub mod rate_limit;
pub mod redis;

pub use bus::{Bus, InMemoryBus};
pub use placement::{LocalPlacement, MediaPlacement, Owner};
pub use presence::{InMemoryPresence, Presence};
pub use rate_limit::{InMemoryRateLimiter, RateLimiter, RetryAfter};
