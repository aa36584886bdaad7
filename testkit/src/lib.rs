//! What TalkConnect's tests, examples and benchmarks share: the Socket.IO conformance server
//! (served by `examples/socketio_conformance`, started on a random port by the realtime
//! tests), raw Engine.IO/websocket clients, a webrtc-rs client of the SFU (the SFU tests and
//! the load tools in `bench/sfu`), what those load tools measure, and network namespaces.
//!
//! A failed step panics, as it would in a test: this crate is never part of the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;
pub mod gateway;
pub mod netns;
pub mod realtime;
pub mod sfu_client;
pub mod sfu_measure;
