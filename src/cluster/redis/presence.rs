//! Presence shared by the replicas. A seat (room, user) is attended while some replica holds a
//! socket for it; each replica heartbeats its sockets into Redis with an expiry, so the
//! sockets of a replica that dies (SIGKILL, frozen) expire after `cluster.presence_ttl_secs`
//! and its seats go on the grace clock like any seat whose last socket left. Every
//! state change is one Lua script (atomic), timed by Redis's clock; `take_expired` claims the
//! seats it returns inside the same script, so exactly one replica releases a given seat.
//!
//! Keys (`p` = prefix): `p presence:sockets` ZSET `room|user|sid` → expiry ms;
//! `p presence:seat:<room>:<user>` SET of socket ids; `p presence:unattended` ZSET
//! `room|user` → since ms; `p presence:room:<room>` SET of users whose seat is tracked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::ids::{RoomId, UserId};

use super::Redis;
use crate::cluster::Presence;

/// Shared prologue: the prefix, Redis's clock in ms, and the helper that forgets a seat.
const PRELUDE: &str = r"
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sockets = p .. 'presence:sockets'
local unattended = p .. 'presence:unattended'
local function seat_key(room, user) return p .. 'presence:seat:' .. room .. ':' .. user end
local function room_key(room) return p .. 'presence:room:' .. room end
local function free(room, user)
  local seat = seat_key(room, user)
  for _, sid in ipairs(redis.call('SMEMBERS', seat)) do
    redis.call('ZREM', sockets, room .. '|' .. user .. '|' .. sid)
  end
  redis.call('DEL', seat)
  redis.call('ZREM', unattended, room .. '|' .. user)
  redis.call('SREM', room_key(room), user)
end
local function clock(room, user, since)
  if redis.call('SCARD', seat_key(room, user)) == 0
     and redis.call('SISMEMBER', room_key(room), user) == 1 then
    redis.call('ZADD', unattended, 'NX', since, room .. '|' .. user)
  end
end
";

/// ARGV: p, ttl ms, then (room, user, sid) triples: the sockets are (still) here.
const ENTER: &str = r"
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV, 3 do
  local room, user, sid = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('SADD', seat_key(room, user), sid)
  redis.call('ZADD', sockets, now + ttl, room .. '|' .. user .. '|' .. sid)
  redis.call('ZREM', unattended, room .. '|' .. user)
  redis.call('SADD', room_key(room), user)
end
return 1
";

/// ARGV: p, then (room, user, sid) triples that went away. Returns the sockets left on the
/// last seat.
const LEFT: &str = r"
local left = 0
for i = 2, #ARGV, 3 do
  local room, user, sid = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('SREM', seat_key(room, user), sid)
  redis.call('ZREM', sockets, room .. '|' .. user .. '|' .. sid)
  clock(room, user, now)
  left = redis.call('SCARD', seat_key(room, user))
end
return left
";

/// ARGV: p, then (room, user) pairs whose seats were taken.
const TAKEN: &str = r"
for i = 2, #ARGV, 2 do
  redis.call('SADD', room_key(ARGV[i]), ARGV[i + 1])
  clock(ARGV[i], ARGV[i + 1], now)
end
return 1
";

/// ARGV: p, room, users... whose seats are gone.
const FREED: &str = r"
for i = 3, #ARGV do free(ARGV[2], ARGV[i]) end
return 1
";

/// ARGV: p, room: the room ended.
const ENDED: &str = r"
for _, user in ipairs(redis.call('SMEMBERS', room_key(ARGV[2]))) do free(ARGV[2], user) end
redis.call('DEL', room_key(ARGV[2]))
return 1
";

/// ARGV: p, grace ms. Expired sockets put their seats on the clock (since their expiry);
/// seats unattended for `grace` are forgotten and returned: claimed by this caller only.
const TAKE_EXPIRED: &str = r"
local grace = tonumber(ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', sockets, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1000)
for i = 1, #gone, 2 do
  local member = gone[i]
  redis.call('ZREM', sockets, member)
  local room, user, sid = string.match(member, '^([^|]+)|([^|]+)|(.+)$')
  if room then
    redis.call('SREM', seat_key(room, user), sid)
    clock(room, user, tonumber(gone[i + 1]))
  end
end
local due = redis.call('ZRANGEBYSCORE', unattended, '-inf', now - grace, 'LIMIT', 0, 1000)
for _, seat in ipairs(due) do
  redis.call('ZREM', unattended, seat)
  local room, user = string.match(seat, '^([^|]+)|(.+)$')
  if room then free(room, user) end
end
return due
";

/// Largest number of sockets sent in one heartbeat script call.
const HEARTBEAT_CHUNK: usize = 300;

type Entry = (RoomId, UserId, String);

pub struct RedisPresence {
    redis: Arc<Redis>,
    ttl: Duration,
    /// This replica's sockets inside rooms, heartbeated into Redis.
    local: Mutex<HashSet<Entry>>,
    enter: redis::Script,
    left: redis::Script,
    taken: redis::Script,
    freed: redis::Script,
    ended: redis::Script,
    take_expired: redis::Script,
}

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PRELUDE}{body}"))
}

impl RedisPresence {
    pub fn new(redis: Arc<Redis>, ttl: Duration) -> Arc<RedisPresence> {
        Arc::new(RedisPresence {
            redis,
            ttl,
            local: Mutex::new(HashSet::new()),
            enter: script(ENTER),
            left: script(LEFT),
            taken: script(TAKEN),
            freed: script(FREED),
            ended: script(ENDED),
            take_expired: script(TAKE_EXPIRED),
        })
    }

    /// Refreshes this replica's sockets (and its announcement) every `ttl / 3` until
    /// `shutdown`. Re-registering is idempotent, so it also restores them after Redis lost
    /// its data (restart without persistence).
    pub fn start_heartbeat(self: &Arc<Self>, media_address: String, shutdown: CancellationToken) {
        let presence = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(presence.ttl / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                presence.heartbeat().await;
                presence.redis.announce(&media_address, presence.ttl).await;
            }
        });
    }

    async fn heartbeat(&self) {
        let entries: Vec<Entry> = self.local.lock().iter().cloned().collect();
        for chunk in entries.chunks(HEARTBEAT_CHUNK) {
            let mut call = self.enter.prepare_invoke();
            call.arg(self.redis.prefix())
                .arg(self.ttl.as_millis() as u64);
            for (room, user, sid) in chunk {
                call.arg(room.to_string()).arg(user.to_string()).arg(sid);
            }
            if let Err(e) = self.redis.script::<i64>(&call).await {
                tracing::warn!(error = %e, "presence heartbeat failed");
                return;
            }
        }
    }

    fn forget_local(&self, keep: impl Fn(&Entry) -> bool) {
        self.local.lock().retain(|e| keep(e));
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn seat_taken(&self, room: RoomId, user: UserId) {
        let mut call = self.taken.prepare_invoke();
        call.arg(self.redis.prefix())
            .arg(room.to_string())
            .arg(user.to_string());
        if let Err(e) = self.redis.script::<i64>(&call).await {
            tracing::warn!(%room, %user, error = %e, "presence: seat not put on the clock");
        }
    }

    async fn socket_entered(&self, room: RoomId, user: UserId, socket: &str) {
        self.local.lock().insert((room, user, socket.to_owned()));
        let mut call = self.enter.prepare_invoke();
        call.arg(self.redis.prefix())
            .arg(self.ttl.as_millis() as u64)
            .arg(room.to_string())
            .arg(user.to_string())
            .arg(socket);
        if let Err(e) = self.redis.script::<i64>(&call).await {
            tracing::warn!(%room, %user, error = %e, "presence: socket recorded locally only (heartbeat retries)");
        }
    }

    async fn socket_left(&self, room: RoomId, user: UserId, socket: &str) -> usize {
        let locally_left = {
            let mut local = self.local.lock();
            local.remove(&(room, user, socket.to_owned()));
            local.iter().filter(|e| e.0 == room && e.1 == user).count()
        };
        let mut call = self.left.prepare_invoke();
        call.arg(self.redis.prefix())
            .arg(room.to_string())
            .arg(user.to_string())
            .arg(socket);
        match self.redis.script::<i64>(&call).await {
            Ok(left) => left.max(0) as usize,
            Err(e) => {
                tracing::warn!(%room, %user, error = %e, "presence: socket left; Redis forgets it by expiry");
                locally_left
            }
        }
    }

    async fn seat_freed(&self, room: RoomId, user: UserId) {
        self.forget_local(|e| !(e.0 == room && e.1 == user));
        let mut call = self.freed.prepare_invoke();
        call.arg(self.redis.prefix())
            .arg(room.to_string())
            .arg(user.to_string());
        if let Err(e) = self.redis.script::<i64>(&call).await {
            tracing::warn!(%room, %user, error = %e, "presence: freed seat not forgotten in Redis");
        }
    }

    async fn room_ended(&self, room: RoomId) {
        self.forget_local(|e| e.0 != room);
        let mut call = self.ended.prepare_invoke();
        call.arg(self.redis.prefix()).arg(room.to_string());
        if let Err(e) = self.redis.script::<i64>(&call).await {
            tracing::warn!(%room, error = %e, "presence: ended room not forgotten in Redis");
        }
    }

    async fn take_expired(&self, grace: Duration) -> Vec<(RoomId, UserId)> {
        let mut call = self.take_expired.prepare_invoke();
        call.arg(self.redis.prefix()).arg(grace.as_millis() as u64);
        let due: Vec<String> = match self.redis.script(&call).await {
            Ok(due) => due,
            Err(e) => {
                tracing::debug!(error = %e, "presence: expired seats not checked");
                return Vec::new();
            }
        };
        due.iter()
            .filter_map(|seat| {
                let (room, user) = seat.split_once('|')?;
                Some((room.parse().ok()?, user.parse().ok()?))
            })
            .collect()
    }

    fn held_here(&self, room: RoomId, user: UserId) -> bool {
        self.local.lock().iter().any(|e| e.0 == room && e.1 == user)
    }

    /// Graceful stop: this replica's sockets go away now, so their seats start the grace
    /// clock at once and users who reconnect through another replica keep them.
    async fn node_stopping(&self) {
        let entries: Vec<Entry> = self.local.lock().drain().collect();
        for chunk in entries.chunks(HEARTBEAT_CHUNK) {
            let mut call = self.left.prepare_invoke();
            call.arg(self.redis.prefix());
            for (room, user, sid) in chunk {
                call.arg(room.to_string()).arg(user.to_string()).arg(sid);
            }
            if let Err(e) = self.redis.script::<i64>(&call).await {
                tracing::warn!(error = %e, "presence: sockets not handed over; Redis expires them");
            }
        }
        self.redis.withdraw().await;
        tracing::info!(
            sockets = entries.len(),
            "presence: this replica's seats are on the grace clock"
        );
    }
}
