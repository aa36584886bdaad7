//! `sfu:prefs` through the gateway: typed errors for a bad payload and for a socket without
//! an SFU session; once joined (the ack carries the uplink budget) it is accepted, both ways.
//! What it does to the media is checked with real peers in tests/sfu/prefs.rs.

use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::sio::Sio;

#[tokio::test]
async fn prefs_are_validated_need_a_session_and_then_apply() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1"),
            ("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true"),
            ("TALKCONNECT__SFU__UDP_PORT_MIN", "47380"),
            ("TALKCONNECT__SFU__UDP_PORT_MAX", "47389"),
            ("TALKCONNECT__MEDIA__UPLINK_KBPS", "800"),
        ],
    )
    .await;
    let host = app.guest("Host").await;
    let room = app.room(&host, json!({ "title": "Prefs" })).await;
    let mut sio = Sio::connect(&app.address, &host.token).await;
    let ack = sio.call("room:join", json!({ "roomId": room })).await;
    assert_eq!(ack["ok"], true, "{ack}");

    for bad in [
        json!({ "video": "no" }),
        json!({}),
        json!({ "video": null }),
    ] {
        let ack = sio.call("sfu:prefs", bad.clone()).await;
        assert_eq!(ack["ok"], false, "{bad} → {ack}");
        assert_eq!(ack["error"]["code"], "INVALID_BODY", "{ack}");
    }
    let many: serde_json::Map<String, serde_json::Value> = (0..65)
        .map(|_| (uuid::Uuid::new_v4().to_string(), json!(240)))
        .collect();
    for (bad, code) in [
        (json!({ "tiles": { "someone": 240 } }), "INVALID_BODY"),
        (
            json!({ "tiles": { host.id.to_string(): -1 } }),
            "INVALID_BODY",
        ),
        (json!({ "tiles": many }), "VALIDATION_FAILED"),
    ] {
        let ack = sio.call("sfu:prefs", bad.clone()).await;
        assert_eq!(ack["ok"], false, "{bad} → {ack}");
        assert_eq!(ack["error"]["code"], code, "{ack}");
    }
    let ack = sio.call("sfu:prefs", json!({ "video": false })).await;
    assert_eq!(
        ack["error"]["code"], "SFU_NOT_JOINED",
        "no session yet: {ack}"
    );

    let ack = sio.call("sfu:join", json!({ "publish": false })).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(
        ack["uplinkKbps"], 800,
        "the budget comes with the join: {ack}"
    );
    assert_eq!(ack["simulcast"], true, "simulcast by default: {ack}");
    assert_eq!(ack["audioRed"], true, "redundant audio by default: {ack}");
    for video in [false, true] {
        let ack = sio
            .call("sfu:prefs", json!({ "video": video, "roomId": room }))
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    // Tile sizes (simulcast layer choice): a huge one is taken as the largest.
    let ack = sio
        .call(
            "sfu:prefs",
            json!({ "tiles": { host.id.to_string(): 100000 }, "roomId": room }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
}
