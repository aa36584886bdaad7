//! The seat-count cache (the design's "state cache"): `<prefix>room:<id>` is a hash
//! `{count, max, updated}` for each live room and `<prefix>rooms:live` the set of live room
//! ids. PostgreSQL stays the source of truth: the cache is written after commit, by the
//! replica that published the event, in the same round trip as the event; a view older than
//! the cached one (`updated`, µs) is ignored, and an ended room leaves a tombstone for an hour
//! so a late update cannot bring it back. It is rebuilt from the database when Redis comes
//! back after an outage. Nothing in the request path reads it (seat checks must be
//! transactional, the lobby is served from each replica's own memory, lobby.rs): it is
//! there for dashboards, external tools and the media-routing work that needs room sizes
//! without a database.

use super::RoomView;
use crate::cluster::redis::{ClusterRedisError, Redis};
use crate::events::DomainEvent;
use crate::ids::RoomId;

/// Sets a room's counts unless the cache holds a newer view or the room ended.
const SET_IF_NEWER: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'updated', 'ended')
if cur[2] then return 0 end
if cur[1] and tonumber(cur[1]) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'count', ARGV[1], 'max', ARGV[2], 'updated', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
";

/// Replaces a room's entry with a tombstone that expires.
const MARK_ENDED: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'ended', '1', 'updated', ARGV[1])
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('SREM', KEYS[2], ARGV[2])
return 1
";

fn room_key(redis: &Redis, id: &RoomId) -> String {
    redis.key(&format!("room:{id}"))
}

fn set_counts(redis: &Redis, room: &RoomView) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SET_IF_NEWER)
        .arg(2)
        .arg(room_key(redis, &room.id))
        .arg(redis.key("rooms:live"))
        .arg(room.participant_count)
        .arg(room.max_participants)
        .arg(room.updated_at.timestamp_micros())
        .arg(room.id.to_string());
    cmd
}

fn mark_ended(redis: &Redis, id: &RoomId, updated_micros: i64) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(MARK_ENDED)
        .arg(2)
        .arg(room_key(redis, id))
        .arg(redis.key("rooms:live"))
        .arg(updated_micros)
        .arg(id.to_string());
    cmd
}

/// The cache writes for an event this replica publishes (the bus's publish hook).
pub fn commands(event: &DomainEvent, redis: &Redis) -> Vec<redis::Cmd> {
    match event {
        DomainEvent::RoomCreated { room } | DomainEvent::RoomUpdated { room } => {
            vec![set_counts(redis, room)]
        }
        DomainEvent::RoomEnded { room, .. } => {
            vec![mark_ended(
                redis,
                &room.id,
                room.updated_at.timestamp_micros(),
            )]
        }
        _ => Vec::new(),
    }
}

/// Makes the cache match the database's live rooms (after Redis came back).
pub async fn rebuild(redis: &Redis, live: &[RoomView]) -> Result<(), ClusterRedisError> {
    let cached: Vec<String> = redis
        .query(redis::cmd("SMEMBERS").arg(redis.key("rooms:live")))
        .await?;
    let mut pipe = redis::pipe();
    for id in cached {
        let Ok(id) = id.parse::<RoomId>() else {
            continue;
        };
        if !live.iter().any(|r| r.id == id) {
            pipe.add_command(mark_ended(redis, &id, i64::MAX)).ignore();
        }
    }
    for room in live {
        pipe.add_command(set_counts(redis, room)).ignore();
    }
    redis.pipe::<()>(&pipe).await
}
