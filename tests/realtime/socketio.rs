//! Socket.IO v5 over raw websocket frames against the conformance server: every case of the
//! official socket.io-protocol suite, plus refusal, rooms, acks both ways and robustness.

use std::time::Duration;

use serde_json::{Value, json};
use talkconnect_testkit::conformance;
use talkconnect_testkit::realtime::*;

const S: &str = "/socket.io/";

/// A config without pings during the test (heartbeat is covered separately).
fn quiet() -> talkconnect::realtime::Config {
    talkconnect::realtime::Config {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        ..conformance::suite_config()
    }
}

fn sid_of(connect: &str, prefix: &str) -> String {
    assert!(connect.starts_with(prefix), "{connect}");
    let handshake: Value = serde_json::from_str(&connect[prefix.len()..]).unwrap();
    assert_eq!(
        handshake.as_object().unwrap().len(),
        1,
        "only sid: {handshake}"
    );
    handshake["sid"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn engine_io_layer_behaves_the_same_under_socket_io() {
    let server = TestServer::start().await;
    let (status, body) = server.get(&format!("{S}?EIO=4&transport=polling")).await;
    assert_eq!(status, 200);
    assert_eq!(open_packet(&body)["upgrades"], json!(["websocket"]));
    assert_eq!(server.get(&format!("{S}?transport=polling")).await.0, 400);
    assert_eq!(server.get(&format!("{S}?EIO=4&transport=abc")).await.0, 400);
    assert_eq!(
        server
            .post(&format!("{S}?EIO=4&transport=polling"), "")
            .await
            .0,
        400
    );
    // Heartbeat over polling.
    let sid = server.polling_session(S).await;
    let q = format!("{S}?EIO=4&transport=polling&sid={sid}");
    assert_eq!(server.get(&q).await, (200, "2".to_owned()));
    assert_eq!(server.post(&q, "3").await.0, 200);
    // Upgrade.
    let sid = server.polling_session(S).await;
    let mut ws = server
        .ws(&format!("{S}?EIO=4&transport=websocket&sid={sid}"))
        .await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(next_text(&mut ws).await, "3probe");
    send_text(&mut ws, "5").await;
    send_text(&mut ws, "40").await;
    assert!(next_text_no_ping(&mut ws).await.starts_with("40{"));
    assert_eq!(
        server
            .get(&format!("{S}?EIO=4&transport=polling&sid={sid}"))
            .await
            .0,
        400
    );
    server.stop().await;
}

#[actix_web::test]
async fn connect_to_main_and_custom_namespaces_with_and_without_auth() {
    let server = TestServer::start_with(quiet()).await;
    for (connect, prefix, auth) in [
        ("40", "40", r#"42["auth",{}]"#),
        (
            r#"40{"token":"123"}"#,
            "40",
            r#"42["auth",{"token":"123"}]"#,
        ),
        ("40/custom,", "40/custom,", r#"42/custom,["auth",{}]"#),
        ("40/custom", "40/custom,", r#"42/custom,["auth",{}]"#),
        (
            r#"40/custom,{"token":"abc"}"#,
            "40/custom,",
            r#"42/custom,["auth",{"token":"abc"}]"#,
        ),
    ] {
        let (mut ws, _) = server.ws_session(S).await;
        send_text(&mut ws, connect).await;
        let sid = sid_of(&next_text(&mut ws).await, prefix);
        assert_eq!(sid.len(), 20);
        assert_eq!(next_text(&mut ws).await, auth, "{connect}");
    }
    server.stop().await;
}

#[actix_web::test]
async fn unknown_namespace_and_refused_connect_get_connect_error() {
    let server = TestServer::start_with(quiet()).await;
    let (mut ws, _) = server.ws_session(S).await;
    send_text(&mut ws, "40/random").await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    send_text(&mut ws, r#"40/private,{"token":"wrong"}"#).await;
    let refused = next_text(&mut ws).await;
    let body: Value = serde_json::from_str(refused.strip_prefix("44/private,").unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"message": "unauthorized", "data": {"code": "BAD_TOKEN"}})
    );
    // The connection is still usable: the right token gets in, and extensions work.
    send_text(&mut ws, r#"40/private,{"token":"secret"}"#).await;
    sid_of(&next_text(&mut ws).await, "40/private,");
    send_text(&mut ws, r#"42/private,1["whoami"]"#).await;
    assert_eq!(next_text(&mut ws).await, r#"43/private,1["user-1"]"#);
    server.stop().await;
}

#[actix_web::test]
async fn invalid_handshake_and_missing_handshake_close_the_connection() {
    let server = TestServer::start().await;
    let (mut ws, _) = server.ws_session(S).await;
    send_text(&mut ws, "4abc").await;
    assert!(closed(&mut ws).await);
    // No CONNECT within connect_timeout (1 s); pings are answered so only that timeout applies.
    let (mut ws, _) = server.ws_session(S).await;
    loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) if t.as_str() == "2" => {
                send_text(&mut ws, "3").await
            }
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                panic!("unexpected {t}")
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) => break,
            Err(_) => panic!("not closed"),
        }
    }
    server.stop().await;
}

#[actix_web::test]
async fn a_client_refused_everywhere_is_closed_at_connect_timeout() {
    let server = TestServer::start().await;
    let (mut ws, _) = server.ws_session(S).await;
    send_text(&mut ws, "40/random").await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    // Pings are answered, so only connect_timeout (1 s) can end it.
    loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) if t.as_str() == "2" => {
                send_text(&mut ws, "3").await
            }
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                panic!("unexpected {t}")
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) => break,
            Err(_) => panic!("not closed"),
        }
    }
    server.stop().await;
}

#[actix_web::test]
async fn disconnect_from_main_namespace_sends_nothing_back() {
    let server = TestServer::start().await;
    let mut ws = server.sio_client().await;
    send_text(&mut ws, "41").await;
    // The next frame is the periodic ping: no answer to a client DISCONNECT.
    assert_eq!(next_text(&mut ws).await, "2");
    server.stop().await;
}

#[actix_web::test]
async fn connect_then_disconnect_a_custom_namespace_keeps_the_main_one() {
    let server = TestServer::start_with(quiet()).await;
    let mut ws = server.sio_client().await;
    send_text(&mut ws, "40/custom").await;
    sid_of(&next_text(&mut ws).await, "40/custom,");
    assert_eq!(next_text(&mut ws).await, r#"42/custom,["auth",{}]"#);
    send_text(&mut ws, "41/custom").await;
    send_text(&mut ws, r#"42/custom,["message","to custom"]"#).await;
    send_text(&mut ws, r#"42["message","message to main namespace"]"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"42["message-back","message to main namespace"]"#
    );
    server.stop().await;
}

#[actix_web::test]
async fn events_and_acks_plain_and_binary() {
    let server = TestServer::start_with(quiet()).await;
    let mut ws = server.sio_client().await;
    send_text(&mut ws, r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );

    send_text(
        &mut ws,
        r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
    send_binary(&mut ws, &[1, 2, 3]).await;
    send_binary(&mut ws, &[4, 5, 6]).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(next_binary(&mut ws).await, vec![1, 2, 3]);
    assert_eq!(next_binary(&mut ws).await, vec![4, 5, 6]);

    send_text(&mut ws, r#"42456["message-with-ack",1,"2",{"3":[false]}]"#).await;
    assert_eq!(next_text(&mut ws).await, r#"43456[1,"2",{"3":[false]}]"#);

    send_text(&mut ws, r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#).await;
    send_binary(&mut ws, &[1, 2, 3]).await;
    send_binary(&mut ws, &[4, 5, 6]).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(next_binary(&mut ws).await, vec![1, 2, 3]);
    assert_eq!(next_binary(&mut ws).await, vec![4, 5, 6]);
    server.stop().await;
}

#[actix_web::test]
async fn server_to_client_ack_round_trip() {
    let server = TestServer::start_with(quiet()).await;
    let mut ws = server.sio_client().await;
    send_text(&mut ws, r#"421["ask-me",{"q":"color?"}]"#).await;
    let question = next_text(&mut ws).await;
    // 42<id>["question",{"q":"color?"}]
    let rest = question.strip_prefix("42").unwrap();
    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(&rest[id.len()..], r#"["question",{"q":"color?"}]"#);
    // An ack for an id the server never used is ignored.
    send_text(&mut ws, r#"4399999["nope"]"#).await;
    send_text(&mut ws, &format!(r#"43{id}["blue"]"#)).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"431[{"answer":["blue"],"ok":true}]"#
    );
    server.stop().await;
}

#[actix_web::test]
async fn malformed_socket_io_packets_close_only_the_offender() {
    let server = TestServer::start_with(quiet()).await;
    let mut bystander = server.sio_client().await;
    for bad in [
        "4abc",
        "42{}",
        r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
        "42[]",
        "42[1]",
        "42\"str\"",
        "43[1]",
        r#"44{"message":"x"}"#,
        "4999-[]",
        "42[\"unterminated\"",
        "4é",
        "42é[\"message\"]",
    ] {
        let mut ws = server.sio_client().await;
        send_text(&mut ws, bad).await;
        assert!(closed(&mut ws).await, "{bad:?} should close");
    }
    // A text packet while announced attachments are still missing.
    let mut ws = server.sio_client().await;
    send_text(&mut ws, r#"451-["message",{"_placeholder":true,"num":0}]"#).await;
    send_text(&mut ws, r#"42["message","too early"]"#).await;
    assert!(closed(&mut ws).await);
    // Binary data that no packet announced.
    let mut ws = server.sio_client().await;
    send_binary(&mut ws, &[1]).await;
    assert!(closed(&mut ws).await);
    send_text(&mut bystander, r#"42["message","alive"]"#).await;
    assert_eq!(
        next_text(&mut bystander).await,
        r#"42["message-back","alive"]"#
    );
    server.stop().await;
}

#[actix_web::test]
async fn unknown_events_are_ignored_and_handler_panics_are_contained() {
    let server = TestServer::start_with(quiet()).await;
    let mut ws = server.sio_client().await;
    send_text(&mut ws, r#"42["no-such-event",1]"#).await;
    send_text(&mut ws, r#"42["panic"]"#).await;
    send_text(&mut ws, r#"42["message","after"]"#).await;
    assert_eq!(next_text(&mut ws).await, r#"42["message-back","after"]"#);
    server.stop().await;
}

#[actix_web::test]
async fn rooms_broadcast_to_members_except_the_sender() {
    let server = TestServer::start_with(quiet()).await;
    let mut a = server.sio_client().await;
    let mut b = server.sio_client().await;
    let mut c = server.sio_client().await;
    for ws in [&mut a, &mut b] {
        send_text(ws, r#"421["join",{"room":"r1"}]"#).await;
        assert!(next_text(ws).await.starts_with(r#"431[{"ok":true"#));
    }
    send_text(&mut a, r#"422["to-room",{"room":"r1","payload":"hi"}]"#).await;
    assert_eq!(next_text(&mut a).await, r#"432[{"ok":true}]"#);
    assert_eq!(next_text(&mut b).await, r#"42["room-message","hi"]"#);
    // c is not in the room and a is the sender: a message that reaches everyone proves they
    // did not get "hi" first.
    send_text(&mut c, r#"423["everyone","marker"]"#).await;
    assert_eq!(next_text(&mut c).await, r#"42["everyone","marker"]"#);
    assert_eq!(next_text(&mut c).await, r#"433[{"ok":true}]"#);
    assert_eq!(next_text(&mut a).await, r#"42["everyone","marker"]"#);
    assert_eq!(next_text(&mut b).await, r#"42["everyone","marker"]"#);
    server.stop().await;
}

#[actix_web::test]
async fn server_side_room_operations_go_through_the_adapter() {
    let server = TestServer::start_with(quiet()).await;
    let mut a = server.sio_client().await;
    let mut b = server.sio_client().await;
    for ws in [&mut a, &mut b] {
        send_text(ws, r#"421["join",{"room":"lobby"}]"#).await;
        next_text(ws).await;
    }
    send_text(&mut a, r#"422["rooms-of-server",{"room":"lobby"}]"#).await;
    assert_eq!(next_text(&mut a).await, r#"432[{"count":2}]"#);
    assert_eq!(server.io.socket_count("/"), 2);
    send_text(&mut a, r#"423["kick-room",{"room":"lobby"}]"#).await;
    assert_eq!(next_text(&mut a).await, r#"433[{"ok":true}]"#);
    send_text(&mut a, r#"424["rooms-of-server",{"room":"lobby"}]"#).await;
    assert_eq!(next_text(&mut a).await, r#"434[{"count":0}]"#);
    // disconnect_sockets: both get DISCONNECT for "/".
    for ws in [&mut a, &mut b] {
        send_text(ws, r#"425["join",{"room":"doomed"}]"#).await;
        next_text(ws).await;
    }
    send_text(&mut a, r#"426["disconnect-room",{"room":"doomed"}]"#).await;
    assert_eq!(next_text(&mut a).await, r#"436[{"ok":true}]"#);
    assert_eq!(next_text(&mut a).await, "41");
    assert_eq!(next_text(&mut b).await, "41");
    server.stop().await;
}

#[actix_web::test]
async fn socket_io_over_polling_with_binary_as_base64() {
    let server = TestServer::start_with(quiet()).await;
    let sid = server.polling_session(S).await;
    let q = format!("{S}?EIO=4&transport=polling&sid={sid}");
    assert_eq!(server.post(&q, "40").await.0, 200);
    let (_, body) = server.get(&q).await;
    let packets: Vec<&str> = body.split('\x1e').collect();
    sid_of(packets[0], "40");
    let body = if packets.len() > 1 {
        packets[1].to_owned()
    } else {
        server.get(&q).await.1
    };
    assert_eq!(body, r#"42["auth",{}]"#);
    let send = "451-[\"binary\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID";
    assert_eq!(server.post(&q, send).await.0, 200);
    let (_, body) = server.get(&q).await;
    assert_eq!(
        body,
        "452-[\"binary-back\",1,{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]\x1ebAQID\x1eb3q2+7w=="
    );
    server.stop().await;
}
