//! The Socket.IO adapter over Redis, in the spirit of `@socket.io/redis-adapter` (not wire
//! compatible with it: messages are JSON). It wraps `LocalAdapter` for membership and local
//! delivery and forwards what targets other replicas:
//!
//! * a broadcast to exactly one named room goes to that room's channel
//!   `<p>sio#<nsp>#<room>#`, to which a replica subscribes while it has local members in the
//!   room (checked on join, unsubscribed by a sweep), so replicas without members never see
//!   the message; any other broadcast (several rooms, everyone, socket ids) goes to the
//!   namespace channel `<p>sio#<nsp>#` that every replica subscribes to;
//! * `fetch_sockets` is a request on `<p>sio-req#<nsp>#` answered by every other replica on
//!   the requester's `<p>sio-res#<nsp>#<uid>#`, gathered until each has answered (the count
//!   of subscribers of the request channel) or `cluster.request_timeout_ms`;
//! * `sockets_join`, `sockets_leave` and `disconnect_sockets` are applied locally, then sent
//!   as requests on the same channel; each other replica applies them and answers `done`, so
//!   when the call returns the change holds everywhere (or it answers `Timeout`);
//! * every message carries the sender's uid (the instance id); a replica drops its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::pubsub::Handler;
use super::{Redis, wire};
use crate::realtime::{
    Adapter, AdapterError, BroadcastOptions, EncodedPacket, LocalAdapter, LocalNamespace, Room,
    Sid, SocketInfo,
};

/// How often room channels without local members are unsubscribed.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize, Default)]
struct WireOpts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rooms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    except: Vec<String>,
}

impl WireOpts {
    fn from(opts: &BroadcastOptions) -> WireOpts {
        WireOpts {
            rooms: opts.rooms.iter().map(|r| r.to_string()).collect(),
            except: opts.except.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn options(&self) -> BroadcastOptions {
        BroadcastOptions {
            rooms: self.rooms.iter().map(|r| Room::from(r.as_str())).collect(),
            except: self.except.iter().map(|r| Room::from(r.as_str())).collect(),
            flags: Default::default(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct WireSocket {
    id: String,
    rooms: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
enum Message {
    Broadcast {
        uid: String,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        binary: Vec<String>,
        opts: WireOpts,
    },
    Fetch {
        uid: String,
        id: u64,
        opts: WireOpts,
    },
    FetchReply {
        uid: String,
        id: u64,
        sockets: Vec<WireSocket>,
    },
    Join {
        uid: String,
        id: u64,
        opts: WireOpts,
        rooms: Vec<String>,
    },
    Leave {
        uid: String,
        id: u64,
        opts: WireOpts,
        rooms: Vec<String>,
    },
    Disconnect {
        uid: String,
        id: u64,
        opts: WireOpts,
        close: bool,
    },
    /// A join, leave or disconnect request was applied.
    Done { uid: String, id: u64 },
}

impl Message {
    fn uid(&self) -> &str {
        match self {
            Message::Broadcast { uid, .. }
            | Message::Fetch { uid, .. }
            | Message::FetchReply { uid, .. }
            | Message::Join { uid, .. }
            | Message::Leave { uid, .. }
            | Message::Disconnect { uid, .. }
            | Message::Done { uid, .. } => uid,
        }
    }
}

struct Pending {
    remaining: usize,
    sockets: Vec<SocketInfo>,
    done: Option<oneshot::Sender<()>>,
}

/// What the other replicas answered to a request.
struct Gathered {
    sockets: Vec<SocketInfo>,
    /// Replicas that did not answer in time.
    missing: usize,
}

pub struct RedisAdapter {
    local: LocalAdapter,
    redis: Arc<Redis>,
    uid: String,
    nsp: String,
    ns_channel: String,
    req_channel: String,
    request_timeout: Duration,
    /// Rooms whose channel this replica subscribed to; the lock also orders joins against
    /// the sweep that unsubscribes.
    subscribed: tokio::sync::Mutex<HashSet<Room>>,
    pending: parking_lot::Mutex<HashMap<u64, Pending>>,
    next_request: AtomicU64,
    /// The handler of broadcast channels (the namespace's and every room's).
    on_broadcast: Handler,
}

impl RedisAdapter {
    /// The factory for `SocketIoBuilder::adapter`: one adapter per namespace.
    pub fn factory(
        redis: Arc<Redis>,
        request_timeout: Duration,
    ) -> impl Fn(LocalNamespace) -> Arc<dyn Adapter> + Send + Sync + 'static {
        move |local| RedisAdapter::build(Arc::clone(&redis), local, request_timeout)
    }

    fn build(
        redis: Arc<Redis>,
        local: LocalNamespace,
        request_timeout: Duration,
    ) -> Arc<dyn Adapter> {
        let nsp = local.name().to_owned();
        let uid = redis.instance_id().to_owned();
        let adapter = Arc::new_cyclic(|me: &Weak<RedisAdapter>| {
            let weak = me.clone();
            let on_broadcast: Handler = Arc::new(move |payload: &[u8]| {
                if let Some(adapter) = weak.upgrade() {
                    adapter.on_message(payload);
                }
            });
            RedisAdapter {
                local: LocalAdapter::new(local),
                ns_channel: redis.key(&format!("sio#{nsp}#")),
                req_channel: redis.key(&format!("sio-req#{nsp}#")),
                redis: Arc::clone(&redis),
                uid,
                nsp,
                request_timeout,
                subscribed: tokio::sync::Mutex::new(HashSet::new()),
                pending: parking_lot::Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(1),
                on_broadcast,
            }
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let weak = Arc::downgrade(&adapter);
                runtime.spawn(async move {
                    if let Some(adapter) = weak.upgrade() {
                        adapter.subscribe_namespace().await;
                    }
                    sweep_unused_rooms(weak).await;
                });
            }
            Err(_) => tracing::error!(
                nsp = %adapter.nsp,
                "Redis adapter built outside a runtime: it will not hear other replicas"
            ),
        }
        adapter
    }

    fn res_channel(&self, uid: &str) -> String {
        self.redis.key(&format!("sio-res#{}#{uid}#", self.nsp))
    }

    fn room_channel(&self, room: &str) -> String {
        self.redis.key(&format!("sio#{}#{room}#", self.nsp))
    }

    async fn subscribe_namespace(&self) {
        let hub = self.redis.hub();
        hub.subscribe(self.ns_channel.clone(), Arc::clone(&self.on_broadcast))
            .await;
        hub.subscribe(self.req_channel.clone(), Arc::clone(&self.on_broadcast))
            .await;
        hub.subscribe(self.res_channel(&self.uid), Arc::clone(&self.on_broadcast))
            .await;
    }

    /// Where a broadcast goes: one named room → its channel; anything else → the namespace's.
    fn channel_for(&self, opts: &BroadcastOptions) -> String {
        match opts.rooms.as_slice() {
            [room] if room.parse::<Sid>().is_err() => self.room_channel(room),
            _ => self.ns_channel.clone(),
        }
    }

    async fn send(&self, channel: &str, message: &Message) -> Result<(), AdapterError> {
        if !self.redis.is_up() {
            return Err(AdapterError::Backend(
                "Redis is unreachable: other replicas not reached".into(),
            ));
        }
        let payload = wire::encode(message).map_err(|e| AdapterError::Backend(e.to_string()))?;
        self.redis
            .publish(channel, &payload)
            .await
            .map(|_| ())
            .map_err(|e| AdapterError::Backend(e.to_string()))
    }

    /// A message from the hub (any of this adapter's channels).
    fn on_message(self: Arc<Self>, payload: &[u8]) {
        let Some(message) = wire::decode::<Message>(
            "a Socket.IO adapter message",
            payload,
            &self.redis.hub().lag,
        ) else {
            return;
        };
        if message.uid() == self.uid {
            return;
        }
        match message {
            Message::Broadcast {
                text, binary, opts, ..
            } => {
                let binary = binary
                    .iter()
                    .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .map(Bytes::from)
                    .collect();
                let packet = EncodedPacket {
                    text: ByteString::from(text),
                    binary,
                };
                self.local.broadcast_local(&packet, &opts.options());
            }
            Message::Fetch { uid, id, opts } => {
                let sockets = self
                    .local
                    .fetch_local(&opts.options())
                    .into_iter()
                    .map(|s| WireSocket {
                        id: s.id.to_string(),
                        rooms: s.rooms.iter().map(|r| r.to_string()).collect(),
                    })
                    .collect();
                let reply = Message::FetchReply {
                    uid: self.uid.clone(),
                    id,
                    sockets,
                };
                let channel = self.res_channel(&uid);
                tokio::spawn(async move {
                    if let Err(e) = self.send(&channel, &reply).await {
                        tracing::warn!(error = %e, "fetchSockets answer not sent");
                    }
                });
            }
            Message::FetchReply { id, sockets, .. } => {
                let sockets = sockets
                    .into_iter()
                    .filter_map(|s| {
                        Some(SocketInfo {
                            id: s.id.parse().ok()?,
                            nsp: self.nsp.clone(),
                            rooms: s.rooms.iter().map(|r| Room::from(r.as_str())).collect(),
                        })
                    })
                    .collect();
                self.answered(id, sockets);
            }
            Message::Done { id, .. } => self.answered(id, Vec::new()),
            Message::Join {
                uid,
                id,
                opts,
                rooms,
            } => {
                let rooms: Vec<Room> = rooms.iter().map(|r| Room::from(r.as_str())).collect();
                tokio::spawn(async move {
                    self.join_local(&opts.options(), rooms).await;
                    self.reply_done(&uid, id).await;
                });
            }
            Message::Leave {
                uid,
                id,
                opts,
                rooms,
            } => {
                let rooms: Vec<Room> = rooms.iter().map(|r| Room::from(r.as_str())).collect();
                self.local.del_local(&opts.options(), &rooms);
                tokio::spawn(async move { self.reply_done(&uid, id).await });
            }
            Message::Disconnect {
                uid,
                id,
                opts,
                close,
            } => {
                self.local.disconnect_local(&opts.options(), close);
                tokio::spawn(async move { self.reply_done(&uid, id).await });
            }
        }
    }

    async fn reply_done(&self, requester: &str, id: u64) {
        let done = Message::Done {
            uid: self.uid.clone(),
            id,
        };
        if let Err(e) = self.send(&self.res_channel(requester), &done).await {
            tracing::warn!(error = %e, "adapter request not acknowledged");
        }
    }

    /// One replica answered request `id`.
    fn answered(&self, id: u64, sockets: Vec<SocketInfo>) {
        let mut pending = self.pending.lock();
        if let Some(request) = pending.get_mut(&id) {
            request.sockets.extend(sockets);
            request.remaining = request.remaining.saturating_sub(1);
            if request.remaining == 0 {
                if let Some(done) = request.done.take() {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Publishes a request to the other replicas and gathers their answers until all have
    /// answered or the timeout. `Ok(None)` when there is no other replica; `Err` when Redis
    /// could not be asked; `missing` counts the replicas that did not answer in time.
    async fn request(
        &self,
        build: impl FnOnce(u64) -> Message,
    ) -> Result<Option<Gathered>, AdapterError> {
        if !self.redis.is_up() {
            return Err(AdapterError::Backend(
                "Redis is unreachable: other replicas not reached".into(),
            ));
        }
        let others = self.other_nodes().await?;
        if others == 0 {
            return Ok(None);
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (done, answered) = oneshot::channel();
        self.pending.lock().insert(
            id,
            Pending {
                remaining: others,
                sockets: Vec::new(),
                done: Some(done),
            },
        );
        if let Err(e) = self.send(&self.req_channel, &build(id)).await {
            self.pending.lock().remove(&id);
            return Err(e);
        }
        let _ = tokio::time::timeout(self.request_timeout, answered).await;
        let request = self.pending.lock().remove(&id);
        Ok(request.map(|r| Gathered {
            sockets: r.sockets,
            missing: r.remaining,
        }))
    }

    /// A join/leave/disconnect request: an error when a replica did not confirm.
    async fn command(&self, build: impl FnOnce(u64) -> Message) -> Result<(), AdapterError> {
        match self.request(build).await? {
            Some(gathered) if gathered.missing > 0 => {
                tracing::warn!(
                    missing = gathered.missing,
                    "adapter request: some replicas did not confirm in time"
                );
                Err(AdapterError::Timeout)
            }
            _ => Ok(()),
        }
    }

    /// Makes the local targets join `rooms`, subscribing to the rooms' channels first.
    async fn join_local(&self, opts: &BroadcastOptions, rooms: Vec<Room>) {
        for sid in self.local.targets(opts) {
            self.add_all(sid, rooms.clone()).await;
        }
    }

    /// `socketsJoin` (`join`) or `socketsLeave`: here, then on the other replicas unless local.
    async fn change_membership(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
        join: bool,
    ) -> Result<(), AdapterError> {
        if join {
            self.join_local(&opts, rooms.clone()).await;
        } else {
            self.local.del_local(&opts, &rooms);
        }
        if opts.flags.local {
            return Ok(());
        }
        let (uid, wire) = (self.uid.clone(), WireOpts::from(&opts));
        let rooms = rooms.iter().map(|r| r.to_string()).collect();
        self.command(|id| {
            if join {
                Message::Join {
                    uid,
                    id,
                    opts: wire,
                    rooms,
                }
            } else {
                Message::Leave {
                    uid,
                    id,
                    opts: wire,
                    rooms,
                }
            }
        })
        .await
    }

    /// How many other replicas serve this namespace (subscribers of the request channel).
    async fn other_nodes(&self) -> Result<usize, AdapterError> {
        let (_, count): (String, i64) = self
            .redis
            .query(redis::cmd("PUBSUB").arg("NUMSUB").arg(&self.req_channel))
            .await
            .map_err(|e| AdapterError::Backend(e.to_string()))?;
        Ok((count.max(1) - 1) as usize)
    }
}

/// Unsubscribes, every `SWEEP_EVERY`, from room channels with no local member left.
async fn sweep_unused_rooms(adapter: Weak<RedisAdapter>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(adapter) = adapter.upgrade() else {
            return;
        };
        let mut subscribed = adapter.subscribed.lock().await;
        let mut unused = Vec::new();
        for room in subscribed.iter() {
            if adapter.local.sockets(vec![room.clone()]).await.is_empty() {
                unused.push(room.clone());
            }
        }
        for room in unused {
            adapter
                .redis
                .hub()
                .unsubscribe(&adapter.room_channel(&room))
                .await;
            subscribed.remove(&room);
        }
    }
}

#[async_trait]
impl Adapter for RedisAdapter {
    fn local(&self) -> &LocalAdapter {
        &self.local
    }

    async fn add_all(&self, sid: Sid, rooms: Vec<Room>) {
        let mut subscribed = self.subscribed.lock().await;
        for room in &rooms {
            if room.as_ref() != sid.as_str() && !subscribed.contains(room) {
                self.redis
                    .hub()
                    .subscribe(self.room_channel(room), Arc::clone(&self.on_broadcast))
                    .await;
                subscribed.insert(room.clone());
            }
        }
        self.local.join_rooms(sid, rooms);
    }

    async fn broadcast(
        &self,
        packet: Arc<EncodedPacket>,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        self.local.broadcast_local(&packet, &opts);
        if opts.flags.local {
            return Ok(());
        }
        let message = Message::Broadcast {
            uid: self.uid.clone(),
            text: packet.text.to_string(),
            binary: packet
                .binary
                .iter()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                .collect(),
            opts: WireOpts::from(&opts),
        };
        self.send(&self.channel_for(&opts), &message).await
    }

    async fn fetch_sockets(&self, opts: BroadcastOptions) -> Result<Vec<SocketInfo>, AdapterError> {
        let mut sockets = self.local.fetch_local(&opts);
        if opts.flags.local {
            return Ok(sockets);
        }
        let wire = WireOpts::from(&opts);
        let uid = self.uid.clone();
        // What the replicas that answered know is more useful than an error (the mesh relay
        // still reaches them); a replica that did not answer is logged.
        match self
            .request(|id| Message::Fetch {
                uid,
                id,
                opts: wire,
            })
            .await
        {
            Ok(Some(gathered)) => {
                if gathered.missing > 0 {
                    tracing::warn!(
                        missing = gathered.missing,
                        "fetchSockets: some replicas did not answer in time"
                    );
                }
                sockets.extend(gathered.sockets);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "fetchSockets: other replicas not asked"),
        }
        Ok(sockets)
    }

    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> Result<(), AdapterError> {
        self.change_membership(opts, rooms, true).await
    }

    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> Result<(), AdapterError> {
        self.change_membership(opts, rooms, false).await
    }

    async fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> Result<(), AdapterError> {
        self.local.disconnect_local(&opts, close);
        if opts.flags.local {
            return Ok(());
        }
        let (uid, wire) = (self.uid.clone(), WireOpts::from(&opts));
        self.command(|id| Message::Disconnect {
            uid,
            id,
            opts: wire,
            close,
        })
        .await
    }

    async fn server_count(&self) -> Result<usize, AdapterError> {
        Ok(self.other_nodes().await? + 1)
    }
}
