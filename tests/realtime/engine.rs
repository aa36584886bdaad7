//! Engine.IO v4 over raw HTTP and websocket, against the echo server at `/engine.io/`: every
//! case of the official engine.io-protocol suite, plus the abuse limits.

use talkconnect_testkit::conformance;
use talkconnect_testkit::realtime::*;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const E: &str = "/engine.io/";

fn q(sid: &str) -> String {
    format!("{E}?EIO=4&transport=polling&sid={sid}")
}

#[actix_web::test]
async fn polling_handshake_announces_the_session() {
    let server = TestServer::start().await;
    let (status, body) = server.get(&format!("{E}?EIO=4&transport=polling")).await;
    assert_eq!(status, 200);
    let open = open_packet(&body);
    let mut keys: Vec<_> = open.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert!(open["sid"].is_string());
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
    server.stop().await;
}

#[actix_web::test]
async fn bad_handshakes_get_400_with_the_reference_error_codes() {
    let server = TestServer::start().await;
    for (query, code) in [
        ("?transport=polling", 5),
        ("?EIO=abc&transport=polling", 5),
        ("?EIO=3&transport=polling", 5),
        ("?EIO=4", 0),
        ("?EIO=4&transport=abc", 0),
        ("?EIO=4&transport=polling&sid=unknown", 1),
        ("?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA", 1),
    ] {
        let (status, body) = server.get(&format!("{E}{query}")).await;
        assert_eq!(status, 400, "{query}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["code"], code, "{query}");
        assert!(err["message"].is_string());
    }
    let (status, body) = server
        .post(&format!("{E}?EIO=4&transport=polling"), "")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body, r#"{"code":2,"message":"Bad handshake method"}"#);
    let res = server
        .http
        .put(server.url(&format!("{E}?EIO=4&transport=polling")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    server.stop().await;
}

#[actix_web::test]
async fn websocket_handshake_and_bad_websocket_queries() {
    let server = TestServer::start().await;
    let (mut ws, open) = server.ws_session(E).await;
    assert_eq!(open["upgrades"], serde_json::json!([]));
    assert_eq!(open["pingInterval"], 300);
    ws.close(None).await.unwrap();
    for query in [
        "?transport=websocket",
        "?EIO=abc&transport=websocket",
        "?EIO=4",
        "?EIO=4&transport=abc",
    ] {
        let result = tokio_tungstenite::connect_async(server.ws_url(&format!("{E}{query}"))).await;
        assert!(result.is_err(), "{query} should be refused");
    }
    server.stop().await;
}

#[actix_web::test]
async fn polling_echoes_text_several_and_binary_packets() {
    let server = TestServer::start().await;
    for body in [
        "4hello",
        "4test1\x1e4test2\x1e4test3",
        "4hello\x1ebAQIDBA==",
    ] {
        let sid = server.polling_session(E).await;
        assert_eq!(server.post(&q(&sid), body).await, (200, "ok".to_owned()));
        assert_eq!(server.get(&q(&sid)).await, (200, body.to_owned()));
    }
    server.stop().await;
}

#[actix_web::test]
async fn polling_invalid_packet_closes_the_session() {
    let server = TestServer::start().await;
    for body in [
        &b"abc"[..],
        b"4ok\x1e",
        b"bnot-base64!",
        &[b'4', 0xff, 0xfe],
        "é4".as_bytes(),
    ] {
        let sid = server.polling_session(E).await;
        let (status, _) = server.post(&q(&sid), body.to_vec()).await;
        assert_eq!(status, 400);
        assert_eq!(server.get(&q(&sid)).await.0, 400);
    }
    server.stop().await;
}

#[actix_web::test]
async fn duplicate_polls_close_the_session() {
    let server = TestServer::start().await;
    let sid = server.polling_session(E).await;
    let url = q(&sid);
    let first = server.get(&url);
    let second = async {
        // Let the first GET become the pending one.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        server.get(&format!("{}&t=burst", q(&sid))).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first, (200, "1".to_owned()));
    assert_eq!(second.0, 400);
    assert_eq!(server.get(&q(&sid)).await.0, 400);
    server.stop().await;
}

#[actix_web::test]
async fn websocket_echoes_text_and_binary() {
    let server = TestServer::start().await;
    let (mut ws, _) = server.ws_session(E).await;
    send_text(&mut ws, "4hello").await;
    assert_eq!(next_text_no_ping(&mut ws).await, "4hello");
    send_binary(&mut ws, &[1, 2, 3, 4]).await;
    loop {
        match next_frame(&mut ws).await {
            WsMessage::Binary(b) => {
                assert_eq!(b.to_vec(), vec![1, 2, 3, 4]);
                break;
            }
            WsMessage::Text(t) if t.as_str() == "2" => send_text(&mut ws, "3").await,
            other => panic!("unexpected {other:?}"),
        }
    }
    server.stop().await;
}

#[actix_web::test]
async fn websocket_invalid_packet_closes_it() {
    let server = TestServer::start().await;
    for bad in ["abc", "", "7", "bAQID", "2", "0", "5", "é4", "€"] {
        let (mut ws, _) = server.ws_session(E).await;
        send_text(&mut ws, bad).await;
        assert!(closed(&mut ws).await, "{bad:?} should close");
    }
    server.stop().await;
}

#[actix_web::test]
async fn polling_heartbeat_and_ping_timeout() {
    let server = TestServer::start().await;
    let sid = server.polling_session(E).await;
    for _ in 0..3 {
        assert_eq!(server.get(&q(&sid)).await, (200, "2".to_owned()));
        assert_eq!(server.post(&q(&sid), "3").await.0, 200);
    }
    let sid = server.polling_session(E).await;
    // Never answer the ping: the server must drop the session.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(server.get(&q(&sid)).await.0, 400);
    server.stop().await;
}

#[actix_web::test]
async fn websocket_heartbeat_and_ping_timeout() {
    let server = TestServer::start().await;
    let (mut ws, _) = server.ws_session(E).await;
    for _ in 0..3 {
        assert_eq!(next_text(&mut ws).await, "2");
        send_text(&mut ws, "3").await;
    }
    ws.close(None).await.unwrap();
    let (mut silent, _) = server.ws_session(E).await;
    assert_eq!(next_text(&mut silent).await, "2");
    assert!(closed(&mut silent).await);
    server.stop().await;
}

#[actix_web::test]
async fn polling_close_packet_ends_the_pending_poll_with_noop() {
    let server = TestServer::start().await;
    let sid = server.polling_session(E).await;
    let url = q(&sid);
    let poll = server.get(&url);
    let close = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        server.post(&q(&sid), "1").await
    };
    let (poll, close) = tokio::join!(poll, close);
    assert_eq!(poll, (200, "6".to_owned()));
    assert_eq!(close.0, 200);
    assert_eq!(server.get(&q(&sid)).await.0, 400);
    server.stop().await;
}

#[actix_web::test]
async fn websocket_close_packet_closes_it() {
    let server = TestServer::start().await;
    let (mut ws, _) = server.ws_session(E).await;
    send_text(&mut ws, "1").await;
    assert!(closed(&mut ws).await);
    server.stop().await;
}

#[actix_web::test]
async fn upgrade_from_polling_to_websocket() {
    // No heartbeat during the test: a ping due mid-upgrade would end the poll instead of the noop.
    let server = TestServer::start_with(talkconnect::realtime::Config {
        ping_interval: std::time::Duration::from_secs(30),
        ping_timeout: std::time::Duration::from_secs(30),
        ..conformance::suite_config()
    })
    .await;
    let sid = server.polling_session(E).await;
    let mut ws = server
        .ws(&format!("{E}?EIO=4&transport=websocket&sid={sid}"))
        .await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(next_text(&mut ws).await, "3probe");
    // The pending (or next) poll ends with a noop so the client can pause polling.
    assert_eq!(server.get(&q(&sid)).await, (200, "6".to_owned()));
    send_text(&mut ws, "5").await;
    send_text(&mut ws, "4hello").await;
    assert_eq!(next_text_no_ping(&mut ws).await, "4hello");
    server.stop().await;
}

#[actix_web::test]
async fn after_upgrade_polling_and_a_second_websocket_are_refused() {
    let server = TestServer::start().await;
    let sid = server.polling_session(E).await;
    let mut ws = server
        .ws(&format!("{E}?EIO=4&transport=websocket&sid={sid}"))
        .await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(next_text(&mut ws).await, "3probe");
    send_text(&mut ws, "5").await;
    send_text(&mut ws, "4sync").await;
    assert_eq!(next_text_no_ping(&mut ws).await, "4sync");
    assert_eq!(server.get(&q(&sid)).await.0, 400);
    assert_eq!(server.post(&q(&sid), "4x").await.0, 400);
    let mut second = server
        .ws(&format!("{E}?EIO=4&transport=websocket&sid={sid}"))
        .await;
    assert!(closed(&mut second).await);
    send_text(&mut ws, "4hello").await;
    assert_eq!(next_text_no_ping(&mut ws).await, "4hello");
    server.stop().await;
}

#[actix_web::test]
async fn oversize_payloads_close_only_the_offender() {
    let server = TestServer::start_with(talkconnect::realtime::Config {
        max_payload: 1000,
        ..conformance::suite_config()
    })
    .await;
    let (mut bystander, _) = server.ws_session(E).await;
    let sid = server.polling_session(E).await;
    let (status, _) = server
        .post(&q(&sid), format!("4{}", "x".repeat(2000)))
        .await;
    assert_eq!(status, 413);
    assert_eq!(server.get(&q(&sid)).await.0, 400);
    let (mut ws, _) = server.ws_session(E).await;
    send_text(&mut ws, &format!("4{}", "x".repeat(2000))).await;
    assert!(closed(&mut ws).await);
    send_text(&mut bystander, "4still here").await;
    assert_eq!(next_text_no_ping(&mut bystander).await, "4still here");
    server.stop().await;
}

#[actix_web::test]
async fn a_packet_flood_closes_only_the_flooder() {
    let server = TestServer::start_with(talkconnect::realtime::Config {
        max_packets_per_second: 10,
        packet_burst: 20,
        ..conformance::suite_config()
    })
    .await;
    let (mut bystander, _) = server.ws_session(E).await;
    let (mut flooder, _) = server.ws_session(E).await;
    for i in 0..200 {
        if futures_util::SinkExt::send(&mut flooder, WsMessage::text(format!("4m{i}")))
            .await
            .is_err()
        {
            break;
        }
    }
    assert!(closed(&mut flooder).await);
    // A polling flooder too: one POST carrying more packets than the burst.
    let sid = server.polling_session(E).await;
    let body = vec!["4x"; 50].join("\x1e");
    server.post(&q(&sid), body).await;
    assert_eq!(server.get(&q(&sid)).await.0, 400);
    send_text(&mut bystander, "4fine").await;
    assert_eq!(next_text_no_ping(&mut bystander).await, "4fine");
    server.stop().await;
}
