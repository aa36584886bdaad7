//! The `Adapter` seam: every broadcast and every room-membership change goes through it, so a
//! cluster implementation (Redis) can forward them to other nodes. [`LocalAdapter`] is the
//! in-memory one; a Redis adapter wraps it for local delivery, like `@socket.io/redis-adapter`
//! extends the in-memory adapter.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use parking_lot::RwLock;

use super::namespace::Namespace;
use super::packet::EncodedPacket;
use super::sid::Sid;
use super::socket::SocketRef;

/// A room name. Every socket is also, implicitly, in the room named after its id.
pub type Room = Arc<str>;

/// Which sockets an operation targets: in any of `rooms` (all sockets when empty) and in none
/// of `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    pub rooms: Vec<Room>,
    pub except: Vec<Room>,
    pub flags: BroadcastFlags,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// Only this node's sockets (a cluster adapter does not forward).
    pub local: bool,
}

/// What `fetch_sockets` returns for each socket, wherever it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    pub id: Sid,
    pub nsp: String,
    pub rooms: Vec<Room>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("adapter backend failed: {0}")]
    Backend(String),
    #[error("adapter request timed out")]
    Timeout,
}

/// Broadcasting and room membership for one namespace. Object-safe (`Arc<dyn Adapter>`).
///
/// Every adapter has a [`LocalAdapter`] for this node's sockets (`local`), and every method
/// has a default that works on it alone: an in-memory adapter is `local` and nothing more.
/// The membership methods (`add_all`, `del`, `del_all`, `sockets`, `socket_rooms`) are about
/// this node's sockets. The targeted methods (`broadcast`, `fetch_sockets`, `add_sockets`,
/// `del_sockets`, `disconnect_sockets`) act on every node unless `flags.local` is set: a
/// cluster adapter overrides them to apply them locally and forward them (the Redis
/// adapter's `socketsJoin` / `socketsLeave` / `disconnectSockets` / `fetchSockets` requests).
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// This node's sockets and their rooms.
    fn local(&self) -> &LocalAdapter;
    /// Adds a local socket to rooms.
    async fn add_all(&self, sid: Sid, rooms: Vec<Room>) {
        self.local().join_rooms(sid, rooms);
    }
    /// Removes a local socket from one room.
    async fn del(&self, sid: Sid, room: Room) {
        self.local().leave_room(sid, &room);
    }
    /// Removes a local socket from every room (it disconnected).
    async fn del_all(&self, sid: Sid) {
        self.local().leave_all(sid);
    }
    /// Delivers an encoded packet to the targeted sockets. The packet is encoded once and
    /// shared by all recipients.
    async fn broadcast(
        &self,
        packet: Arc<EncodedPacket>,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        self.local().broadcast_local(&packet, &opts);
        Ok(())
    }
    /// Ids of the local sockets in any of `rooms` (all local sockets when empty).
    async fn sockets(&self, rooms: Vec<Room>) -> Vec<Sid> {
        self.local().targets(&BroadcastOptions {
            rooms,
            ..BroadcastOptions::default()
        })
    }
    /// Rooms of a local socket (including its own-id room).
    async fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.local().rooms_of(sid)
    }
    /// The targeted sockets, on every node.
    async fn fetch_sockets(&self, opts: BroadcastOptions) -> Result<Vec<SocketInfo>, AdapterError> {
        Ok(self.local().fetch_local(&opts))
    }
    /// Makes the targeted sockets join `rooms` (socket.io's `socketsJoin`).
    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> Result<(), AdapterError> {
        self.local().add_local(&opts, &rooms);
        Ok(())
    }
    /// Makes the targeted sockets leave `rooms` (socket.io's `socketsLeave`).
    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> Result<(), AdapterError> {
        self.local().del_local(&opts, &rooms);
        Ok(())
    }
    /// Disconnects the targeted sockets; `close` also closes their whole connection.
    async fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> Result<(), AdapterError> {
        self.local().disconnect_local(&opts, close);
        Ok(())
    }
    /// Number of nodes sharing this namespace.
    async fn server_count(&self) -> Result<usize, AdapterError> {
        Ok(1)
    }
}

/// The sockets of one namespace on this node, as an adapter sees them.
#[derive(Clone)]
pub struct LocalNamespace {
    pub(crate) ns: Weak<Namespace>,
    pub(crate) name: Arc<str>,
}

impl LocalNamespace {
    /// The namespace name (`/`, `/custom`); known already when the adapter is built, so a
    /// cluster adapter can subscribe to the namespace's channel then.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A local socket by id.
    pub fn socket(&self, sid: Sid) -> Option<SocketRef> {
        self.ns.upgrade()?.socket(sid)
    }

    /// Runs `f` on each local socket of `sids` that is still there.
    pub fn for_each(&self, sids: impl IntoIterator<Item = Sid>, mut f: impl FnMut(&SocketRef)) {
        let Some(ns) = self.ns.upgrade() else { return };
        let sockets = ns.sockets.read();
        for sid in sids {
            if let Some(socket) = sockets.get(&sid) {
                f(socket);
            }
        }
    }

    /// Ids of every local socket.
    pub fn all_ids(&self) -> Vec<Sid> {
        self.ns
            .upgrade()
            .map(|ns| ns.sockets.read().keys().copied().collect())
            .unwrap_or_default()
    }

    fn contains(&self, sid: Sid) -> bool {
        self.ns
            .upgrade()
            .is_some_and(|ns| ns.sockets.read().contains_key(&sid))
    }
}

#[derive(Default)]
struct RoomIndex {
    rooms: HashMap<Room, HashSet<Sid>>,
    sids: HashMap<Sid, HashSet<Room>>,
}

/// In-memory adapter: room index plus local delivery. Also the local half of a cluster adapter.
pub struct LocalAdapter {
    local: LocalNamespace,
    index: RwLock<RoomIndex>,
}

impl LocalAdapter {
    pub fn new(local: LocalNamespace) -> LocalAdapter {
        LocalAdapter {
            local,
            index: RwLock::new(RoomIndex::default()),
        }
    }

    pub fn local(&self) -> &LocalNamespace {
        &self.local
    }

    /// Local sockets targeted by `opts`. A room that is not in the index but names a local
    /// socket is that socket's own room.
    pub fn targets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let index = self.index.read();
        let collect = |rooms: &[Room], out: &mut HashSet<Sid>| {
            for room in rooms {
                if let Some(members) = index.rooms.get(room) {
                    out.extend(members.iter().copied());
                } else if let Ok(sid) = room.parse::<Sid>() {
                    if self.local.contains(sid) {
                        out.insert(sid);
                    }
                }
            }
        };
        let mut except = HashSet::new();
        collect(&opts.except, &mut except);
        if opts.rooms.is_empty() {
            let mut all = self.local.all_ids();
            all.retain(|sid| !except.contains(sid));
            all
        } else {
            let mut targets = HashSet::new();
            collect(&opts.rooms, &mut targets);
            targets.retain(|sid| !except.contains(sid));
            targets.into_iter().collect()
        }
    }

    /// Delivers to local targets only (what a cluster adapter calls for remote broadcasts).
    pub fn broadcast_local(&self, packet: &EncodedPacket, opts: &BroadcastOptions) {
        let targets = self.targets(opts);
        self.local.for_each(targets, |socket| {
            socket.send_encoded(packet);
        });
    }

    pub fn fetch_local(&self, opts: &BroadcastOptions) -> Vec<SocketInfo> {
        let nsp = self.local.name().to_owned();
        self.targets(opts)
            .into_iter()
            .map(|sid| SocketInfo {
                id: sid,
                nsp: nsp.clone(),
                rooms: self.rooms_of(sid),
            })
            .collect()
    }

    pub fn add_local(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let targets = self.targets(opts);
        let mut index = self.index.write();
        for sid in targets {
            join(&mut index, sid, rooms.iter().cloned());
        }
    }

    pub fn del_local(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let targets = self.targets(opts);
        let mut index = self.index.write();
        for sid in targets {
            for room in rooms {
                leave(&mut index, sid, room);
            }
        }
    }

    pub fn disconnect_local(&self, opts: &BroadcastOptions, close: bool) {
        let targets = self.targets(opts);
        let mut sockets = Vec::with_capacity(targets.len());
        self.local
            .for_each(targets, |s| sockets.push(Arc::clone(s)));
        for socket in sockets {
            if close {
                socket.close_transport();
            } else {
                socket.disconnect();
            }
        }
    }

    /// Adds a local socket to rooms.
    pub fn join_rooms(&self, sid: Sid, rooms: Vec<Room>) {
        join(&mut self.index.write(), sid, rooms);
    }

    /// Removes a local socket from one room.
    pub fn leave_room(&self, sid: Sid, room: &Room) {
        leave(&mut self.index.write(), sid, room);
    }

    /// Removes a local socket from every room.
    pub fn leave_all(&self, sid: Sid) {
        let mut index = self.index.write();
        if let Some(rooms) = index.sids.remove(&sid) {
            for room in rooms {
                if let Some(members) = index.rooms.get_mut(&room) {
                    members.remove(&sid);
                    if members.is_empty() {
                        index.rooms.remove(&room);
                    }
                }
            }
        }
    }

    /// Rooms of a local socket, its own-id room first.
    pub fn rooms_of(&self, sid: Sid) -> Vec<Room> {
        let mut rooms: Vec<Room> = vec![Room::from(sid.as_str())];
        if let Some(set) = self.index.read().sids.get(&sid) {
            rooms.extend(set.iter().cloned());
        }
        rooms
    }
}

fn join(index: &mut RoomIndex, sid: Sid, rooms: impl IntoIterator<Item = Room>) {
    for room in rooms {
        if room.as_ref() == sid.as_str() {
            continue; // implicit
        }
        index.sids.entry(sid).or_default().insert(room.clone());
        index.rooms.entry(room).or_default().insert(sid);
    }
}

fn leave(index: &mut RoomIndex, sid: Sid, room: &Room) {
    if let Some(members) = index.rooms.get_mut(room) {
        members.remove(&sid);
        if members.is_empty() {
            index.rooms.remove(room);
        }
    }
    if let Some(rooms) = index.sids.get_mut(&sid) {
        rooms.remove(room);
        if rooms.is_empty() {
            index.sids.remove(&sid);
        }
    }
}

impl Adapter for LocalAdapter {
    fn local(&self) -> &LocalAdapter {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::realtime::Config;
    use crate::realtime::client::ClientState;
    use crate::realtime::engine::{Conn, Frame, Handshake, Limits, TransportKind};
    use crate::realtime::namespace::{AdapterFactory, ConnectHandler};
    use crate::realtime::packet::encode_event;
    use crate::realtime::socket::Socket;

    struct Fixture {
        ns: Arc<Namespace>,
        adapter: Arc<LocalAdapter>,
        sockets: Vec<SocketRef>,
    }

    fn fixture(n: usize) -> Fixture {
        let slot: Arc<OnceLock<Arc<LocalAdapter>>> = Arc::default();
        let factory: AdapterFactory = {
            let slot = Arc::clone(&slot);
            Arc::new(move |local| {
                let adapter = Arc::new(LocalAdapter::new(local));
                let _ = slot.set(Arc::clone(&adapter));
                adapter as Arc<dyn Adapter>
            })
        };
        let accept: ConnectHandler = Arc::new(|_, _| Box::pin(async { Ok(()) }));
        let ns = Namespace::new(
            Arc::from("/"),
            accept,
            &factory,
            Arc::new(Config::default()),
            Arc::default(),
        );
        let limits = Limits {
            ping_interval: std::time::Duration::from_secs(30),
            ping_timeout: std::time::Duration::from_secs(30),
            rate: 0.0,
            burst: 1.0,
            max_buffered: 100,
            max_buffered_bytes: 1 << 20,
        };
        let sockets = (0..n)
            .map(|_| {
                let conn = Arc::new(Conn::new(
                    Sid::random(),
                    TransportKind::Websocket,
                    Handshake::default(),
                    limits,
                    ClientState::default(),
                ));
                let socket = Socket::new(Arc::clone(&ns), conn);
                ns.insert(Arc::clone(&socket));
                assert!(socket.accept());
                socket
            })
            .collect();
        let adapter = slot.get().cloned().unwrap();
        Fixture {
            ns,
            adapter,
            sockets,
        }
    }

    fn opts(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
            except: except.iter().map(|r| Room::from(*r)).collect(),
            flags: BroadcastFlags::default(),
        }
    }

    fn sorted(mut v: Vec<Sid>) -> Vec<Sid> {
        v.sort();
        v
    }

    #[tokio::test]
    async fn targets_follow_rooms_except_and_own_id_rooms() {
        let f = fixture(3);
        let [a, b, c] = [f.sockets[0].id(), f.sockets[1].id(), f.sockets[2].id()];
        f.adapter.add_all(a, vec!["r".into(), "x".into()]).await;
        f.adapter.add_all(b, vec!["r".into()]).await;
        assert_eq!(
            sorted(f.adapter.targets(&opts(&["r"], &[]))),
            sorted(vec![a, b])
        );
        assert_eq!(f.adapter.targets(&opts(&["r"], &["x"])), vec![b]);
        assert_eq!(f.adapter.targets(&opts(&["r"], &[a.as_str()])), vec![b]);
        assert_eq!(f.adapter.targets(&opts(&[c.as_str()], &[])), vec![c]);
        assert_eq!(sorted(f.adapter.targets(&opts(&[], &["r"]))), vec![c]);
        assert_eq!(f.adapter.targets(&opts(&["nobody"], &[])), vec![]);
        assert_eq!(f.adapter.socket_rooms(a).await.len(), 3);
        f.adapter.del(a, "r".into()).await;
        assert_eq!(f.adapter.targets(&opts(&["r"], &[])), vec![b]);
        f.adapter.del_all(b).await;
        assert_eq!(f.adapter.targets(&opts(&["r"], &[])), vec![]);
        assert!(
            !f.adapter.index.read().rooms.contains_key("r"),
            "empty rooms are dropped"
        );
    }

    #[tokio::test]
    async fn broadcast_shares_one_encoding_with_every_target() {
        let f = fixture(3);
        for s in &f.sockets {
            s.conn_for_tests().drain();
        }
        f.adapter.add_all(f.sockets[0].id(), vec!["r".into()]).await;
        f.adapter.add_all(f.sockets[1].id(), vec!["r".into()]).await;
        let packet = Arc::new(encode_event("/", "hi", &1, None).unwrap());
        f.adapter
            .broadcast(Arc::clone(&packet), opts(&["r"], &[]))
            .await
            .unwrap();
        let expected = Frame::Text(packet.text.clone());
        for s in &f.sockets[..2] {
            let frames = s.conn_for_tests().drain();
            assert_eq!(frames.len(), 1);
            match (&frames[0], &expected) {
                (Frame::Text(got), Frame::Text(want)) => {
                    assert_eq!(got, want);
                    // Same buffer, not a copy.
                    assert_eq!(got.as_bytes().as_ptr(), want.as_bytes().as_ptr());
                }
                _ => panic!("expected text"),
            }
        }
        assert!(f.sockets[2].conn_for_tests().drain().is_empty());
        f.adapter
            .add_sockets(opts(&["r"], &[]), vec!["s".into()])
            .await
            .unwrap();
        assert_eq!(
            f.adapter
                .fetch_sockets(opts(&["s"], &[]))
                .await
                .unwrap()
                .len(),
            2
        );
        f.adapter
            .del_sockets(opts(&[], &[]), vec!["s".into()])
            .await
            .unwrap();
        assert!(
            f.adapter
                .fetch_sockets(opts(&["s"], &[]))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(f.ns.sockets.read().len(), 3);
    }
}
