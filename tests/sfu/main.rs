#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The SFU through its public API (`Sfu`, `SfuHandle`), with real webrtc-rs peers
//! (`talkconnect_testkit::sfu_client`) on loopback: forwarding, typed errors, offer collisions,
//! ICE-TCP and single-port transport, join/leave cycles that leave nothing behind, publisher
//! churn that recycles m-lines, and clients
//! that misbehave on purpose. Needs no service; each test takes its own media ports in
//! 42000–42599, or ports the kernel hands out.

mod churn;
mod errors;
mod forwarding;
mod hardening;
mod lifecycle;
mod negotiation;
mod transport;
