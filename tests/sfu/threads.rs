//! The SFU's threads: a room lives on one, many rooms use them all. With two threads:
//! - two rooms opened one after the other go one to each thread; a new room goes to the
//!   thread whose rooms hold fewer people, even where it holds more rooms; when a room ends
//!   its place is given back, and the next room goes to the thread it left;
//! - while media flows in one room only, that room's work, its webrtc-rs connections
//!   included (a connection's driver runs where the room's task built it), is done on its
//!   own thread: the other thread, holding a room with one silent listener, spends a small
//!   fraction of that CPU time.

use std::time::Duration;
use talkconnect::sfu::{Sfu, SfuConfig, SfuHandle};
use talkconnect_testkit::sfu_client::{Client, wait_for};
use talkconnect_testkit::sfu_measure::thread_cpu_ticks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_the_threads_and_a_rooms_work_stays_on_its_thread() {
    let sfu = Sfu::start(SfuConfig {
        worker_threads: 2,
        ..SfuConfig::loopback(42600, 42619)
    })
    .expect("sfu starts");
    let h = sfu.handle();
    let tids: Vec<u32> = h.thread_ids().into_iter().flatten().collect();
    assert_eq!(tids.len(), 2, "two SFU threads with OS ids: {tids:?}");

    // A quiet room first (a listener, nobody publishing), then a busy one.
    let quiet = Client::join(&h, "quiet", "listener", false).await;
    assert_eq!(h.rooms_per_thread(), vec![1, 0]);
    let mut alice = Client::join(&h, "busy", "alice", true).await;
    let mut bob = Client::join(&h, "busy", "bob", true).await;
    assert_eq!(
        h.rooms_per_thread(),
        vec![1, 1],
        "the busy room took the free thread"
    );
    alice.start_media(200, 1000);
    bob.start_media(200, 1000);
    let carol = Client::join(&h, "busy", "carol", false).await;
    wait_for("media in the busy room", Duration::from_secs(30), || {
        ["alice", "bob"]
            .iter()
            .all(|p| carol.state.received_from(p).video >= 50)
    })
    .await;

    // Three seconds of forwarding: the busy room's thread does it.
    let before: Vec<u64> = tids.iter().map(|t| thread_cpu_ticks(*t)).collect();
    let received = carol.state.received_from("alice").video;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        carol.state.received_from("alice").video >= received + 100,
        "media kept flowing"
    );
    let spent: Vec<u64> = tids
        .iter()
        .zip(&before)
        .map(|(t, b)| thread_cpu_ticks(*t) - b)
        .collect();
    assert!(
        spent[1] >= 5 && spent[0] * 4 <= spent[1],
        "CPU ticks of the quiet room's thread and the busy room's: {spent:?}"
    );

    // New rooms go where fewer people are: both to the quiet thread, even when it already
    // holds more rooms than the busy one.
    assert_eq!(h.people_per_thread(), vec![1, 3]);
    let third = Client::join(&h, "third", "erin", false).await;
    let fourth = Client::join(&h, "fourth", "frank", false).await;
    assert_eq!(
        (h.rooms_per_thread(), h.people_per_thread()),
        (vec![3, 1], vec![3, 3]),
        "rooms and people per thread"
    );
    end_rooms(
        &h,
        vec![("third", third), ("fourth", fourth)],
        [1, 1],
        [1, 3],
    )
    .await;

    // The quiet room ends; its thread takes the next room.
    end_rooms(&h, vec![("quiet", quiet)], [0, 1], [0, 3]).await;
    let next = Client::join(&h, "next", "dave", false).await;
    assert_eq!(h.rooms_per_thread(), vec![1, 1]);

    next.close().await;
    for c in [alice, bob, carol] {
        c.close().await;
    }
    sfu.shutdown().await;
}

/// Ends each room and closes its client, then waits until the threads hold `rooms` rooms and
/// `people` people: the rooms' places given back.
async fn end_rooms(
    h: &SfuHandle,
    ended: Vec<(&str, Client)>,
    rooms: [usize; 2],
    people: [usize; 2],
) {
    for (room, client) in ended {
        h.end_room(room).await.expect("end the room");
        client.close().await;
    }
    wait_for(
        "the rooms' places given back",
        Duration::from_secs(10),
        || h.rooms_per_thread() == rooms && h.people_per_thread() == people,
    )
    .await;
}
