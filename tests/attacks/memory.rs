//! Findings 1–3 and 9: one anonymous client must not be able to make the server hold memory
//! it does not bound — oversized frames, ping floods, a reader that never reads, echoes,
//! attachments, and sessions by the thousand from one address.

use std::time::Duration;

use crate::raw::{RawWs, frame, frame_header, text};
use crate::server::Server;

const MIB: u64 = 1024;

/// Finding 1: a frame announcing 1 GiB is refused from its header; before, the whole frame
/// was buffered first (200 MiB streamed = 200 MiB of RSS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_announcing_a_gigabyte_is_refused_before_its_payload() {
    let server = Server::start(&[]).await;
    let mut ws = RawWs::open(&server.addr, "").await;
    ws.expect("0{").await;
    let before = server.rss_kib();
    ws.send(&frame_header(0x2, true, 1 << 30)).await.unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..64 {
        if ws.send(&chunk).await.is_err() {
            break;
        }
    }
    assert!(ws.closed_within(Duration::from_secs(5)).await);
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 16 * MIB, "RSS grew by {grown} KiB");
}

/// Finding 2: pings are answered by one pending pong and spend the packet budget; a flood
/// from a client that does not read closes it instead of queueing pongs without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_cut_off_and_holds_no_memory() {
    let server = Server::start(&[]).await;
    let mut ws = RawWs::open_with(&server.addr, "", Some(4096)).await;
    ws.expect("0{").await;
    let before = server.rss_kib();
    let ping = frame(0x9, b"0123456789abcdef");
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    for _ in 0..300 {
        if ws.send(&burst).await.is_err() {
            break;
        }
    }
    assert!(
        ws.closed_within(Duration::from_secs(5)).await,
        "the flood was not cut off"
    );
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 16 * MIB, "RSS grew by {grown} KiB");
}

/// Finding 3: what waits for a client that does not read is capped in bytes; past it the
/// client is dropped as too slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_at_its_byte_budget() {
    let server = Server::start(&[
        ("TALKCONNECT__REALTIME__MAX_BUFFERED_BYTES", "65536"),
        ("TALKCONNECT__RATE_LIMIT__ENABLED", "false"),
        (
            "RUST_LOG",
            "warn,talkconnect=info,talkconnect::realtime::engine=debug",
        ),
    ])
    .await;
    // An anonymous lobby watcher on a tiny receive window that never reads.
    let mut idle = RawWs::open_with(&server.addr, "", Some(2048)).await;
    idle.send(&text("40")).await.unwrap();
    let (_, token) = server.guest("Busy host").await;
    // Every room made and ended is two lobby updates of ~1 KiB for the watcher; the kernel's
    // buffers take some before the server's own queue starts to grow.
    let title = "x".repeat(90);
    for i in 0..4000 {
        let room = server.room(&token, &title).await;
        server
            .http
            .delete(server.url(&format!("/api/rooms/{room}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if i % 50 == 49 && server.log_contains("client too slow") {
            break;
        }
    }
    assert!(
        server.log_contains("client too slow"),
        "the silent watcher was never dropped"
    );
    assert!(idle.closed_within(Duration::from_secs(5)).await);
}

/// Finding 3: replies do not echo what the client sent — an unknown namespace of any length
/// is no megaphone, and a refused event quotes nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_do_not_echo_the_input() {
    let server = Server::start(&[]).await;
    let mut ws = RawWs::open(&server.addr, "").await;
    ws.expect("0{").await;
    let long = format!("40/{},", "n".repeat(2000));
    ws.send(&text(&long)).await.unwrap();
    // A 2 000-byte namespace name is not even answered: the connection goes.
    while let Some(reply) = ws.next_text().await {
        assert!(reply.len() < 600, "a {}-byte reply", reply.len());
    }

    let (_, token) = server.guest("Echo").await;
    let mut ws = RawWs::socket_io(&server.addr, &token).await;
    let big = "a".repeat(30_000);
    ws.send(&text(&format!(
        r#"421["media:toggle-mic",{{"isMuted":"{big}"}}]"#
    )))
    .await
    .unwrap();
    let ack = ws.expect("431").await;
    assert!(ack.contains("INVALID_BODY"), "{ack}");
    assert!(ack.len() < 600 && !ack.contains("aaaa"), "{ack}");
}

/// Finding 9: a packet's binary attachments count toward max_payload together, not each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_count_toward_one_payload() {
    let server = Server::start(&[]).await;
    let mut ws = RawWs::open(&server.addr, "").await;
    ws.expect("0{").await;
    ws.send(&text(
        r#"4510-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    ))
    .await
    .unwrap();
    let part = vec![7u8; 60 * 1024];
    for _ in 0..10 {
        if ws.send(&frame(0x2, &part)).await.is_err() {
            break;
        }
    }
    assert!(
        ws.closed_within(Duration::from_secs(5)).await,
        "600 KiB of attachments were held for one packet"
    );
}

/// Finding 9: one address cannot open sessions without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_a_bounded_number_of_sessions() {
    let server = Server::start(&[]).await;
    let mut refused = 0;
    let mut open = Vec::new();
    for _ in 0..120 {
        let response = server
            .http
            .get(server.url("/socket.io/?EIO=4&transport=polling"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => open.push(response.text().await.unwrap()),
            429 => refused += 1,
            other => panic!("handshake answered {other}"),
        }
    }
    assert!(refused > 0, "120 sessions from one address, none refused");
    assert!(open.len() <= 50, "{} sessions from one address", open.len());
}
