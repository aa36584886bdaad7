//! What TalkConnect's tests, examples and benchmarks share: the Socket.IO conformance server
//! (served by `examples/socketio_conformance`, started on a random port by the realtime
//! tests) and raw Engine.IO/websocket clients.
//!
//! A failed step panics, as it would in a test: this crate is never part of the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;
pub mod realtime;
