#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The public server attacked the way a stranger on the internet would, one test per finding
//! of the security review (issue "Hardening"): the real binary, its defaults, raw sockets.
//! Memory is read from /proc; nothing here asserts a timing beyond "within a deadline far
//! longer than the fix needs and far shorter than the flaw took". Needs no service.

mod limits;
mod media;
mod memory;
mod raw;
mod seats;
mod server;
mod startup;
