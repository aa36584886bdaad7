//! Finding 8: media sessions (each holds a UDP port of the media range until it ends) are
//! capped per person and per address, so a few guests cannot take every port.

use crate::raw::{RawWs, text};
use crate::server::Server;

async fn seated_socket(server: &Server, title: &str) -> (RawWs, String) {
    let (_, token) = server.guest("Media").await;
    let room = server.room(&token, title).await;
    let mut ws = RawWs::socket_io(&server.addr, &token).await;
    ws.send(&text(&format!(r#"421["room:join",{{"roomId":"{room}"}}]"#)))
        .await
        .unwrap();
    let ack = ws.expect("431").await;
    assert!(ack.contains(r#""ok":true"#), "{ack}");
    (ws, token)
}

async fn sfu_join(ws: &mut RawWs, ack_id: u32) -> String {
    ws.send(&text(&format!(r#"42{ack_id}["sfu:join",{{}}]"#)))
        .await
        .unwrap();
    ws.expect(&format!("43{ack_id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_sessions_are_capped_per_address() {
    let server = Server::start(&[("TALKCONNECT__MEDIA__MAX_SESSIONS_PER_IP", "2")]).await;
    let mut sockets = Vec::new();
    for i in 0..3 {
        sockets.push(seated_socket(&server, &format!("Room {i}")).await.0);
    }
    assert!(sfu_join(&mut sockets[0], 2).await.contains(r#""ok":true"#));
    assert!(sfu_join(&mut sockets[1], 2).await.contains(r#""ok":true"#));
    let third = sfu_join(&mut sockets[2], 2).await;
    assert!(third.contains("TOO_MANY_MEDIA_SESSIONS"), "{third}");
    // One session ends: its port is back for the next.
    sockets[0]
        .send(&text(r#"423["sfu:leave",{}]"#))
        .await
        .unwrap();
    sockets[0].expect("433").await;
    assert!(sfu_join(&mut sockets[2], 4).await.contains(r#""ok":true"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_sessions_are_capped_per_person() {
    let server = Server::start(&[("TALKCONNECT__MEDIA__MAX_SESSIONS_PER_USER", "1")]).await;
    let (mut first, token) = seated_socket(&server, "Mine").await;
    assert!(sfu_join(&mut first, 2).await.contains(r#""ok":true"#));
    // The same person in a second room, from a second tab.
    let (_, host) = server.guest("Host").await;
    let other = server.room(&host, "Theirs").await;
    let mut second = RawWs::socket_io(&server.addr, &token).await;
    second
        .send(&text(&format!(
            r#"421["room:join",{{"roomId":"{other}"}}]"#
        )))
        .await
        .unwrap();
    assert!(second.expect("431").await.contains(r#""ok":true"#));
    let refused = sfu_join(&mut second, 2).await;
    assert!(refused.contains("TOO_MANY_MEDIA_SESSIONS"), "{refused}");
}
