#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Cluster mode: the binary's refusals to start a cluster that cannot work (config), and the
//! Redis implementations of presence, rate limits, the Socket.IO adapter, the seat cache and
//! media placement, with two replicas in one process (redis). The refusals need no service;
//! the Redis tests need Redis on 127.0.0.1:6379 (`scripts/services`) and skip without it,
//! except under CI=true where they fail.

mod config;
mod redis;
