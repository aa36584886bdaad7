//! What differs between one process and a cluster: the event `Bus`, `Presence` and the
//! `RateLimiter`.
//! Each is a trait with an in-memory implementation here; the Redis ones come with cluster mode.

pub mod bus;
pub mod presence;
pub mod rate_limit;

pub use bus::{Bus, InMemoryBus};
pub use presence::{InMemoryPresence, Presence};
pub use rate_limit::{InMemoryRateLimiter, RateLimiter, RetryAfter};
