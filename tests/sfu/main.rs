#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The SFU through its public API (`Sfu`, `SfuHandle`), with real webrtc-rs peers
//! (`talkconnect_testkit::sfu_client`) on loopback: forwarding, typed errors, offer collisions,
//! ICE-TCP and single-port transport, and join/leave cycles that leave nothing behind. Needs no
//! service; each test takes its own media ports in 42000–42499, or ports the kernel hands out.

mod errors;
mod forwarding;
mod lifecycle;
mod negotiation;
mod transport;
