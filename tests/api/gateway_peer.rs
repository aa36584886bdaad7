//! The gateway peer of the media tests lives in the testkit (shared with the capacity load
//! tool); these are its calls in the tests' terms, and the SFU settings the tests use.

use serde_json::Value;
use talkconnect::ids::RoomId;
pub use talkconnect_testkit::gateway::GatewayPeer;
use talkconnect_testkit::gateway::Sio;

use crate::helpers::{TestApp, TestUser};

/// An app's SFU on 127.0.0.1, its UDP ports from `ports`.
pub fn sfu_settings(ports: (&'static str, &'static str)) -> [(&'static str, &'static str); 4] {
    [
        ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1"),
        ("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true"),
        ("TALKCONNECT__SFU__UDP_PORT_MIN", ports.0),
        ("TALKCONNECT__SFU__UDP_PORT_MAX", ports.1),
    ]
}

/// `user` enters `room` on `app`, opens an SFU session and publishes (media not started).
pub async fn join(app: &TestApp, user: &TestUser, room: RoomId) -> GatewayPeer {
    GatewayPeer::join(
        &app.address,
        &user.token,
        &user.id.to_string(),
        &room.to_string(),
    )
    .await
}

/// A new socket of `user` takes `session_id` over in `peer`; the ack.
pub async fn resume(
    peer: &mut GatewayPeer,
    app: &TestApp,
    user: &TestUser,
    room: RoomId,
    session_id: &str,
) -> Value {
    peer.resume(&app.address, &user.token, &room.to_string(), session_id)
        .await
}

/// A new socket of `user` enters `room` and asks `sfu:resume` for `session_id`.
pub async fn resume_on_new_socket(
    app: &TestApp,
    user: &TestUser,
    room: RoomId,
    session_id: &str,
) -> (Sio, Value) {
    talkconnect_testkit::gateway::resume_on_new_socket(
        &app.address,
        &user.token,
        &room.to_string(),
        session_id,
    )
    .await
}
