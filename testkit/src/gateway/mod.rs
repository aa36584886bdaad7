//! A client of the real binary's realtime gateway: a Socket.IO socket (`sio`) and a webrtc-rs
//! peer whose SFU signaling goes over it (`peer`). Shared by the API tests and the capacity
//! load tool (`bench/capacity`).

mod peer;
pub mod sio;

pub use peer::{GatewayPeer, resume_on_new_socket};
pub use sio::{Sio, Ws};
