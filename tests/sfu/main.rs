#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The SFU through its public API (`Sfu`, `SfuHandle`), with real webrtc-rs peers
//! (`talkconnect_testkit::sfu_client`) on loopback: forwarding, typed errors, offer collisions,
//! ICE-TCP and single-port transport, join/leave cycles that leave nothing behind, publisher
//! churn that recycles m-lines, clients that misbehave on purpose, retransmissions under loss
//! (in a network namespace of its own, with nftables), ICE restarts after a client's path
//! broke, a simulcast publisher's layers chosen per subscriber, redundant audio (RED) to
//! subscribers with and without it, and rooms spread over the SFU's threads. Needs no service;
//! each test takes its own media ports in 42000–42599 (threads: 42600–42619, restart:
//! 42900–42949, simulcast: 42950–42969, RED: 42970–42989), or ports the kernel hands out.

mod churn;
mod errors;
mod forwarding;
mod hardening;
mod lifecycle;
mod negotiation;
mod prefs;
mod red;
mod restart;
mod retransmission;
mod simulcast;
mod threads;
mod transport;
