//! The Redis implementations against a real Redis (127.0.0.1:6379, `scripts/services`), each
//! test on its own key prefix, with two "replicas" in one process: presence claims, expiry of
//! a silent replica's sockets, the shared rate limiter, and the Socket.IO adapter between two
//! servers. Without Redis these tests skip, except under CI=true where they fail.

use std::sync::Arc;
use std::time::Duration;

use talkconnect::cluster::redis::{Redis, RedisAdapter, RedisPresence, RedisRateLimiter};
use talkconnect::cluster::{Presence, RateLimiter};
use talkconnect::config::{ClusterSettings, RateRule, RedisSettings};
use talkconnect::ids::{RoomId, UserId};
use talkconnect::realtime::{AdapterError, Config, EmitError, SocketIo};
use talkconnect_testkit::realtime::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const URL: &str = "redis://127.0.0.1:6379";

/// A replica's connection on a shared prefix; `None` (skip) when Redis is absent outside CI.
async fn replica(prefix: &str, node: &str) -> Option<Arc<Redis>> {
    let settings = RedisSettings {
        url: URL.into(),
        key_prefix: prefix.into(),
        pool_size: 4,
        timeout_ms: 2000,
    };
    let cluster = ClusterSettings {
        node_id: node.into(),
        media_address: String::new(),
        presence_ttl_secs: 3,
        request_timeout_ms: 2000,
        media_lease_secs: 10,
    };
    match Redis::connect(&settings, &cluster, CancellationToken::new()).await {
        Ok(redis) => Some(redis),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: {e} (run scripts/services)");
            None
        }
        Err(e) => panic!("Redis is needed under CI: {e}"),
    }
}

fn prefix() -> String {
    format!("tc-test:{}:", Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_replica_claims_an_expired_seat() {
    let prefix = prefix();
    let Some(a) = replica(&prefix, "a").await else {
        return;
    };
    let b = replica(&prefix, "b").await.unwrap();
    let (pa, pb) = (
        RedisPresence::new(a, Duration::from_secs(3)),
        RedisPresence::new(b, Duration::from_secs(3)),
    );
    let room = RoomId::random();
    let seats: Vec<UserId> = (0..20).map(|_| UserId::random()).collect();
    for user in &seats {
        pa.seat_taken(room, *user).await;
    }
    // A socket holds one seat: it is never claimed while attended.
    pb.socket_entered(room, seats[0], "sock-b").await;
    let (ca, cb) = tokio::join!(
        pa.take_expired(Duration::ZERO),
        pb.take_expired(Duration::ZERO)
    );
    let mut claimed: Vec<UserId> = ca.iter().chain(cb.iter()).map(|(_, u)| *u).collect();
    claimed.sort();
    let mut expected = seats[1..].to_vec();
    expected.sort();
    assert_eq!(
        claimed, expected,
        "each unattended seat claimed exactly once"
    );
    assert!(pa.take_expired(Duration::ZERO).await.is_empty());
    // The socket leaves (on B): the seat is on the clock for either replica.
    assert_eq!(pb.socket_left(room, seats[0], "sock-b").await, 0);
    assert_eq!(
        pa.take_expired(Duration::ZERO).await,
        vec![(room, seats[0])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_replicas_sockets_expire_and_a_heartbeating_ones_do_not() {
    let prefix = prefix();
    let Some(a) = replica(&prefix, "a").await else {
        return;
    };
    let b = replica(&prefix, "b").await.unwrap();
    let c = replica(&prefix, "c").await.unwrap();
    let ttl = Duration::from_secs(3);
    let silent = RedisPresence::new(a, ttl); // never heartbeats: as if killed
    let alive = RedisPresence::new(b, ttl);
    let shutdown = CancellationToken::new();
    alive.start_heartbeat(String::new(), shutdown.clone());
    let observer = RedisPresence::new(c, ttl);
    let room = RoomId::random();
    let (gone, here) = (UserId::random(), UserId::random());
    silent.seat_taken(room, gone).await;
    silent.socket_entered(room, gone, "s1").await;
    alive.seat_taken(room, here).await;
    alive.socket_entered(room, here, "s2").await;
    let grace = Duration::from_millis(500);
    let mut released = Vec::new();
    for _ in 0..100 {
        released.extend(observer.take_expired(grace).await);
        if !released.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(released, vec![(room, gone)]);
    // Well past the TTL, the heartbeating replica's seat is still attended.
    tokio::time::sleep(ttl).await;
    assert!(observer.take_expired(grace).await.is_empty());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_rate_limit_budget() {
    let prefix = prefix();
    let Some(a) = replica(&prefix, "a").await else {
        return;
    };
    let b = replica(&prefix, "b").await.unwrap();
    let (la, lb) = (RedisRateLimiter::new(a), RedisRateLimiter::new(b));
    let rule = RateRule {
        count: 4,
        per_secs: 60,
    };
    assert!(la.hit("k", rule).await.is_ok());
    assert!(lb.hit("k", rule).await.is_ok());
    assert!(la.hit("k", rule).await.is_ok());
    assert!(lb.hit("k", rule).await.is_ok());
    let retry = la.hit("k", rule).await.unwrap_err();
    assert!(
        retry.0 > Duration::from_secs(10) && retry.0 <= Duration::from_secs(15),
        "one cell is 15 s: {retry:?}"
    );
    assert!(lb.hit("other", rule).await.is_ok(), "keys are independent");
}

fn node(redis: Arc<Redis>) -> SocketIo {
    let io = SocketIo::builder(Config {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        ..Config::default()
    })
    .adapter(RedisAdapter::factory(redis, Duration::from_secs(2)))
    .build();
    io.ns("/", |socket, auth: serde_json::Value| async move {
        if let Some(room) = auth["room"].as_str() {
            socket.join(room.to_owned()).await;
        }
        socket.on("shout", |socket, data, _ack| async move {
            let room = data["room"].as_str().unwrap_or_default().to_owned();
            let _ = socket.to(room).emit("shouted", &data["text"]).await;
        });
        Ok(())
    });
    io
}

async fn client(server: &TestServer, room: &str) -> Ws {
    let (mut ws, _) = server.ws_session("/socket.io/").await;
    send_text(&mut ws, &format!(r#"40{{"room":"{room}"}}"#)).await;
    assert!(next_text(&mut ws).await.starts_with("40{"));
    ws
}

#[actix_web::test]
async fn the_adapter_reaches_sockets_on_the_other_server() {
    let prefix = prefix();
    let Some(ra) = replica(&prefix, "a").await else {
        return;
    };
    let rb = replica(&prefix, "b").await.unwrap();
    let (io1, io2) = (node(ra), node(rb));
    let s1 = TestServer::serve(io1.clone()).await;
    let s2 = TestServer::serve(io2.clone()).await;
    // Let both adapters subscribe to their namespace channels.
    for _ in 0..100 {
        if io1.server_count().await.unwrap_or(0) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(io1.server_count().await.unwrap(), 2);
    let mut a = client(&s1, "r").await; // node 1
    let mut b = client(&s2, "r").await; // node 2
    let mut c = client(&s2, "other").await; // node 2

    // A socket's broadcast on node 1 reaches the room member on node 2 (room channel).
    send_text(&mut a, r#"42["shout",{"room":"r","text":"hi"}]"#).await;
    assert_eq!(next_text(&mut b).await, r#"42["shouted","hi"]"#);
    // Server-side emits; `local()` stays on its node.
    io2.to("r").emit("news", &1).await.unwrap();
    assert_eq!(next_text(&mut a).await, r#"42["news",1]"#);
    assert_eq!(next_text(&mut b).await, r#"42["news",1]"#);
    io2.to("r").local().emit("news", &2).await.unwrap();
    assert_eq!(next_text(&mut b).await, r#"42["news",2]"#);
    io1.emit("everyone", &"x").await.unwrap();
    assert_eq!(next_text(&mut a).await, r#"42["everyone","x"]"#);
    assert_eq!(next_text(&mut b).await, r#"42["everyone","x"]"#);
    assert_eq!(next_text(&mut c).await, r#"42["everyone","x"]"#);

    // fetchSockets gathers both nodes; emitting to a remote socket id reaches it.
    let found = io1.in_("r").fetch_sockets().await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(io1.in_("r").local().fetch_sockets().await.unwrap().len(), 1);
    let remote = io2.in_("other").local().fetch_sockets().await.unwrap();
    io1.to(remote[0].id.to_string())
        .emit("direct", &3)
        .await
        .unwrap();
    assert_eq!(next_text(&mut c).await, r#"42["direct",3]"#);

    // socketsJoin from node 1 puts node 2's socket in "r": it hears the room from then on.
    // It returns once node 2 confirmed, so the next broadcast reaches the socket.
    io1.in_("other").sockets_join("r").await.unwrap();
    assert_eq!(io1.in_("r").fetch_sockets().await.unwrap().len(), 3);
    io1.to("r").emit("news", &4).await.unwrap();
    assert_eq!(next_text(&mut c).await, r#"42["news",4]"#);

    // disconnectSockets from node 1 disconnects the member on node 2.
    io1.in_("other").disconnect_sockets().await.unwrap();
    assert_eq!(next_text(&mut c).await, "41");

    // A replica that never answers (a bare subscriber of the request channel): requests wait
    // for it until the timeout. fetchSockets returns what the others know; a join/leave
    // reports the timeout, applied everywhere else.
    let mut mute = redis::Client::open(URL)
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    mute.subscribe(format!("{prefix}sio-req#/#")).await.unwrap();
    assert_eq!(io1.server_count().await.unwrap(), 3);
    assert_eq!(io1.in_("r").fetch_sockets().await.unwrap().len(), 2);
    let err = io1.in_("r").sockets_leave("r").await.unwrap_err();
    assert!(
        matches!(err, EmitError::Adapter(AdapterError::Timeout)),
        "{err:?}"
    );
    assert!(
        io2.in_("r")
            .local()
            .fetch_sockets()
            .await
            .unwrap()
            .is_empty()
    );
    drop(mute);
    s1.stop().await;
    s2.stop().await;
}

fn room_view(id: Uuid, count: i32, updated_at: &str, status: &str) -> talkconnect::rooms::RoomView {
    let host = serde_json::json!({
        "id": Uuid::new_v4(), "username": null, "displayName": "Host", "isGuest": true
    });
    serde_json::from_value(serde_json::json!({
        "id": id, "title": "T", "topic": null, "language": "en", "level": "any",
        "maxParticipants": 6, "participantCount": count, "status": status,
        "host": host, "members": [], "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": updated_at, "endedAt": null,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seat_cache_keeps_the_newest_view_and_never_revives_an_ended_room() {
    use talkconnect::events::{DomainEvent, EndReason};
    use talkconnect::rooms::seat_cache as seats;
    let prefix = prefix();
    let Some(redis) = replica(&prefix, "a").await else {
        return;
    };
    let apply = |event: DomainEvent| {
        let redis = Arc::clone(&redis);
        async move {
            let mut pipe = redis::pipe();
            for cmd in seats::commands(&event, &redis) {
                pipe.add_command(cmd).ignore();
            }
            redis.pipe::<()>(&pipe).await.unwrap();
        }
    };
    let count = |id: Uuid| {
        let redis = Arc::clone(&redis);
        async move {
            redis
                .query::<Option<i64>>(
                    redis::cmd("HGET")
                        .arg(redis.key(&format!("room:{id}")))
                        .arg("count"),
                )
                .await
                .unwrap()
        }
    };
    let id = Uuid::new_v4();
    let t = |s: u32| format!("2026-01-01T00:00:{s:02}Z");
    apply(DomainEvent::RoomCreated {
        room: room_view(id, 1, &t(1), "LIVE"),
    })
    .await;
    apply(DomainEvent::RoomUpdated {
        room: room_view(id, 3, &t(3), "LIVE"),
    })
    .await;
    // A view published earlier by another replica arrives late: ignored.
    apply(DomainEvent::RoomUpdated {
        room: room_view(id, 2, &t(2), "LIVE"),
    })
    .await;
    assert_eq!(count(id).await, Some(3));
    let live: Vec<String> = redis
        .query(redis::cmd("SMEMBERS").arg(redis.key("rooms:live")))
        .await
        .unwrap();
    assert_eq!(live, vec![id.to_string()]);
    apply(DomainEvent::RoomEnded {
        room: room_view(id, 0, &t(5), "ENDED"),
        reason: EndReason::LastLeft,
    })
    .await;
    apply(DomainEvent::RoomUpdated {
        room: room_view(id, 4, &t(4), "LIVE"),
    })
    .await;
    assert_eq!(count(id).await, None, "ended stays ended");
    // Rebuilt from the database's live rooms: a room the cache missed appears, the ended one
    // stays out.
    let other = Uuid::new_v4();
    seats::rebuild(&redis, &[room_view(other, 2, &t(9), "LIVE")])
        .await
        .unwrap();
    assert_eq!(count(other).await, Some(2));
    let live: Vec<String> = redis
        .query(redis::cmd("SMEMBERS").arg(redis.key("rooms:live")))
        .await
        .unwrap();
    assert_eq!(live, vec![other.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_media_has_one_owner_that_answers_the_others_and_can_be_taken_over() {
    use talkconnect::cluster::placement::{MediaPlacement, Owner, PlacementError};
    use talkconnect::cluster::redis::RedisPlacement;

    let prefix = prefix();
    let Some(a) = replica(&prefix, "a").await else {
        return;
    };
    let b = replica(&prefix, "b").await.unwrap();
    let a_id = a.instance_id().to_owned();
    let lease = Duration::from_secs(3);
    let timeout = Duration::from_secs(2);
    let pa = RedisPlacement::new(a, lease, timeout).await;
    let pb = RedisPlacement::new(b, lease, timeout).await;
    pa.serve(Arc::new(|request: serde_json::Value| {
        Box::pin(async move { serde_json::json!({ "echo": request, "by": "a" }) })
    }))
    .await;

    let room = RoomId::random();
    assert_eq!(
        pa.owner(room).await.unwrap(),
        Owner::Here,
        "the first to ask claims the room"
    );
    assert_eq!(
        pb.owner(room).await.unwrap(),
        Owner::Elsewhere(a_id.clone())
    );
    assert!(pb.is_owner(room, &a_id).await);

    let reply = pb
        .call(&a_id, serde_json::json!({ "op": "ping" }))
        .await
        .unwrap();
    assert_eq!(
        reply,
        serde_json::json!({ "echo": { "op": "ping" }, "by": "a" })
    );
    // Nobody listens on a made-up replica's channel.
    assert!(matches!(
        pb.call("gone#0000", serde_json::json!({})).await,
        Err(PlacementError::Unreachable)
    ));

    assert!(
        pa.keep(&[room]).await.is_empty(),
        "the owner keeps its room"
    );
    assert_eq!(
        pb.keep(&[room]).await,
        vec![room],
        "a replica that does not own it loses it"
    );

    // The owner gives the room up: the next one to ask takes it.
    pa.vacate(room).await;
    assert!(!pb.is_owner(room, &a_id).await);
    assert_eq!(pb.owner(room).await.unwrap(), Owner::Here);
    assert_eq!(pa.keep(&[room]).await, vec![room], "A's claim is gone");

    // A dead owner's lease runs out by itself.
    let other = Uuid::new_v4();
    assert_eq!(pa.owner(other.into()).await.unwrap(), Owner::Here);
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    assert_eq!(pb.owner(other.into()).await.unwrap(), Owner::Here);
}

/// A rolling upgrade: this release reads the bus events of the release before it (no
/// version) and of the next one (version 2, with fields it does not know), ignores a kind of
/// event it does not know and a message two releases ahead, and goes on reading after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_one_release_apart_understand_each_other() {
    use talkconnect::cluster::Bus;
    use talkconnect::cluster::redis::RedisBus;
    use talkconnect::events::DomainEvent;
    let prefix = prefix();
    let Some(this) = replica(&prefix, "this").await else {
        return;
    };
    let Some(other) = replica(&prefix, "other").await else {
        return;
    };
    let bus: RedisBus<DomainEvent> = RedisBus::new(Arc::clone(&this), 16, None).await;
    let mut heard = bus.subscribe();
    let event = |id: Uuid| {
        serde_json::json!({
            "type": "roomUpdated",
            "room": room_view(id, 2, "2026-01-01T00:00:00Z", "LIVE"),
        })
    };
    let (previous, next) = (Uuid::new_v4(), Uuid::new_v4());
    let mut from_next = event(next);
    from_next["colour"] = "red".into();
    from_next["room"]["badge"] = "new".into();
    let messages = [
        serde_json::json!({ "node": "old#1", "event": event(previous) }),
        serde_json::json!({ "v": 2, "at": 1, "node": "next#1", "tier": "gold", "event": from_next }),
        serde_json::json!({ "v": 2, "node": "next#1", "event": { "type": "roomArchived", "roomId": next } }),
        serde_json::json!({ "v": 3, "node": "far#1", "event": event(Uuid::new_v4()) }),
    ];
    let channel = other.key("bus");
    for message in &messages {
        let payload = serde_json::to_vec(message).unwrap();
        assert_eq!(other.publish(&channel, &payload).await.unwrap(), 1);
    }
    let mut rooms = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(2), heard.recv()).await {
        match &*event {
            DomainEvent::RoomUpdated { room } => rooms.push(room.id),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let rooms: Vec<String> = rooms.iter().map(ToString::to_string).collect();
    assert_eq!(rooms, vec![previous.to_string(), next.to_string()]);
    // Both were timed for the lag metric only when they said when they were sent.
    assert_eq!(this.hub().lag.read().0, 1);
}
