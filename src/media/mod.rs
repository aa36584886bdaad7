//! Media for rooms, as a service the gateway calls: the embedded SFU (or, in mesh mode, none),
//! which socket holds each seat's SFU session, and — in a cluster — where each room's SFU
//! lives, with requests carried to that replica and its answers back.
//!
//! In a cluster a room's SFU lives on one replica, its owner (`MediaPlacement`): a socket on
//! another replica has its `sfu:*` requests carried to the owner, whose SFU answers the socket
//! directly (a Socket.IO emit to a socket id reaches it on any replica), so the ICE candidates
//! the browser gets are the owner's. When the owner dies its lease runs out; the replicas of
//! the sockets it served tell them (`sfu:closed {reason: connectionFailed}`) and their next
//! `sfu:join` lands on the replica that claims the room.

mod lifecycle;
mod probe;
mod relay;
mod service;
mod sessions;
mod sfu_events;
mod wire;

pub use probe::{ProbeUnavailable, routes as probe_routes};
pub(crate) use relay::derived_secret;
pub use relay::{Relay, RelayStart, RelayStartError};
pub use service::Media;
pub use wire::ReceivePrefs;
