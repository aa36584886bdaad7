#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The realtime layer (`src/realtime`: Engine.IO v4, Socket.IO v5) against servers on random
//! loopback ports, driven with raw HTTP and websocket frames: the official protocol suites'
//! cases and abuse limits (engine, socketio), the API a gateway uses (api), and the `Adapter`
//! seam with two nodes in one process (cluster). Needs no service.

mod api;
mod cluster;
mod engine;
mod socketio;
