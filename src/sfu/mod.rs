//! Embedded WebRTC SFU on webrtc-rs: one server-side peer connection per participant, each
//! participant's tracks forwarded to every other participant of the room, keyframe requests,
//! mute, and the UDP/NAT configuration. Knows nothing of rooms-the-product, HTTP or Socket.IO:
//! the gateway drives it through [`SfuHandle`] and relays [`SfuEvent`]s as `sfu:*` events.

mod candidate;
mod config;
mod congestion;
mod error;
mod forward;
mod handle;
mod mux;
mod peer;
mod ports;
mod probe;
pub mod public_address;
mod red;
mod retransmit;
mod room;
mod rtcp;
mod shards;
mod signal;
mod simulcast;
mod stats;

pub use candidate::{
    AddressClass, CandidatePolicy, MAX_CLIENT_CANDIDATES, RemoteCandidates, Verdict,
};
pub use config::{AnnouncedIp, IceServer, SfuConfig};
pub use error::SfuError;
pub use handle::{JoinOptions, Sfu, SfuHandle, SfuStartError};
pub use probe::{
    MAX_ECHO_BYTES, MAX_ECHOES, PROBE_BYE, PROBE_LIFETIME, ProbeAnswer, ProbeTransport,
};
pub use room::parse_client_offer;
pub use signal::{
    ClientSignal, CloseReason, DescriptionPayload, IceCandidate, MediaKind, SdpPayload,
    ServerSignal, SfuEvent, SfuEventKind, TrackInfo, VideoState,
};
pub use stats::SfuStats;
