//! The relay's state: allocations, their permissions and channels, and the answers to each
//! TURN request (RFC 8656, UDP relaying). Transports (`transport.rs`) feed it messages from a
//! client and give it a way to answer; relayed sockets feed it packets from peers.
//!
//! Not an open relay: every peer address is checked with the [`PeerPolicy`] before a
//! permission or channel is granted, packets go only where a permission allows (and, for this
//! server's own addresses, only to the exact address that was checked), and each user has an
//! allocation count and a byte budget.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::TurnConfig;
use super::credentials::{self, CredentialError};
use super::message::{self as stun, Builder, Class, Message};

/// How long a permission lasts without a refresh (RFC 8656 §9).
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// How long a channel binding lasts without a refresh (RFC 8656 §12).
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// The lifetime given when a client asks for none.
const DEFAULT_LIFETIME: u32 = 600;
/// A nonce is good for this long; then the client is told 438 Stale Nonce and takes a new one.
const NONCE_LIFETIME: Duration = Duration::from_secs(600);
/// Largest datagram relayed (larger ones are cut by the receive buffer and dropped).
pub const MAX_DATAGRAM: usize = 1600;
/// Distinct peers one allocation may hold permissions for (a browser needs a handful).
const MAX_PERMISSIONS: usize = 64;
/// Packets queued towards one stream client before newer ones are dropped: a bound in
/// bytes of `STREAM_QUEUE * (MAX_DATAGRAM + 36)`.
pub const STREAM_QUEUE: usize = 256;

/// Who decides where a user's relayed packets may go. The product gives one for SFU mode
/// (only the SFU's own addresses) and one for mesh mode (only the users one shares a room with).
#[async_trait::async_trait]
pub trait PeerPolicy: Send + Sync + 'static {
    /// Whether `user` may relay to `other`, a user whose allocation on this server owns the
    /// peer address (its relayed address, or the address its client connects from).
    async fn may_reach_user(&self, user: &str, other: &str) -> bool;
    /// Where a packet for `peer` (an address that belongs to no client of this relay) goes,
    /// or `None` when it may not go there.
    fn route(&self, peer: SocketAddr) -> Option<SocketAddr>;
    /// The address a peer is known by to clients, for a packet that arrived from `source`
    /// (the inverse of `route`: e.g. the SFU's loopback address back to its public one).
    fn unroute(&self, source: SocketAddr) -> SocketAddr;
}

/// A client of the relay: its address and, for a stream transport, which connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client {
    pub addr: SocketAddr,
    /// 0 for UDP; a connection number for TCP/TLS.
    pub conn: u64,
}

/// How answers and relayed data reach a client.
#[derive(Debug, Clone)]
pub enum Reply {
    Udp {
        socket: Arc<UdpSocket>,
        to: SocketAddr,
    },
    /// A stream connection's writer (framed by the sender).
    Stream(mpsc::Sender<Vec<u8>>),
}

impl Reply {
    fn send(&self, bytes: Vec<u8>) {
        match self {
            Reply::Udp { socket, to } => {
                let _ = socket.try_send_to(&bytes, *to);
            }
            Reply::Stream(tx) => {
                let _ = tx.try_send(bytes);
            }
        }
    }

    fn is_stream(&self) -> bool {
        matches!(self, Reply::Stream(_))
    }
}

/// A user's share of the relay: how many allocations, and a token bucket of bytes.
struct Usage {
    allocations: usize,
    tokens: f64,
    refilled: Instant,
}

struct Permission {
    expires: Instant,
}

struct Channels {
    by_number: HashMap<u16, (SocketAddr, Instant)>,
    by_peer: HashMap<SocketAddr, u16>,
}

struct Allocation {
    user: String,
    username: String,
    key: [u8; 16],
    client: Client,
    reply: Reply,
    socket: Arc<UdpSocket>,
    relayed: SocketAddr,
    transaction: [u8; 12],
    expires: Mutex<Instant>,
    permissions: Mutex<HashMap<IpAddr, Permission>>,
    /// Peers checked with the policy, until when: among this server's own addresses (relayed
    /// or client ones) only these exact addresses are reachable.
    checked: Mutex<HashMap<SocketAddr, Instant>>,
    channels: Mutex<Channels>,
    stop: CancellationToken,
}

/// Counters the doctor, tests and benchmarks read.
#[derive(Debug, Default)]
pub struct TurnStats {
    pub allocations: AtomicU64,
    pub relayed_packets: AtomicU64,
    pub relayed_bytes: AtomicU64,
    pub refused_peers: AtomicU64,
    pub refused_credentials: AtomicU64,
    pub over_quota_packets: AtomicU64,
}

pub struct TurnServer {
    config: TurnConfig,
    secret: Vec<u8>,
    nonce_key: [u8; 32],
    relay_ip: IpAddr,
    policy: Arc<dyn PeerPolicy>,
    allocations: Mutex<HashMap<Client, Arc<Allocation>>>,
    by_port: Mutex<HashMap<u16, Arc<Allocation>>>,
    /// The allocations' users by the address their clients connect from: who owns a public
    /// peer address, looked up for every relayed packet (not a scan of all allocations).
    by_client_ip: Mutex<HashMap<IpAddr, Vec<(Client, String)>>>,
    usage: Mutex<HashMap<String, Usage>>,
    pub stats: TurnStats,
    shutdown: CancellationToken,
}

impl TurnServer {
    pub fn new(
        config: TurnConfig,
        secret: Vec<u8>,
        relay_ip: IpAddr,
        policy: Arc<dyn PeerPolicy>,
        shutdown: CancellationToken,
    ) -> Arc<TurnServer> {
        let server = Arc::new(TurnServer {
            config,
            secret,
            nonce_key: rand::random(),
            relay_ip,
            policy,
            allocations: Mutex::new(HashMap::new()),
            by_port: Mutex::new(HashMap::new()),
            by_client_ip: Mutex::new(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
            stats: TurnStats::default(),
            shutdown,
        });
        tokio::spawn(Arc::clone(&server).sweep());
        server
    }

    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    pub fn relay_ip(&self) -> IpAddr {
        self.relay_ip
    }

    /// A credential for `user` good for new allocations during `credential_ttl_secs`.
    pub fn credential(&self, user: &str) -> credentials::Credential {
        credentials::mint(
            &self.secret,
            user,
            Duration::from_secs(self.config.credential_ttl_secs),
            SystemTime::now(),
        )
    }

    pub fn has_allocation(&self, client: Client) -> bool {
        lock(&self.allocations).contains_key(&client)
    }

    pub fn allocation_count(&self) -> usize {
        lock(&self.allocations).len()
    }

    /// One message from `client` (a STUN request or indication, or ChannelData).
    pub async fn handle(self: &Arc<Self>, client: Client, reply: &Reply, bytes: &[u8]) {
        match bytes.first().map(|b| b >> 6) {
            Some(0) => {
                if let Some(message) = Message::parse(bytes) {
                    self.handle_stun(client, reply, &message).await;
                }
            }
            Some(1) => {
                if let Some((channel, data)) = stun::parse_channel_data(bytes) {
                    self.channel_data(client, channel, data).await;
                }
            }
            _ => {}
        }
    }

    /// A client's connection closed: its allocations go.
    pub fn client_gone(&self, client: Client) {
        if let Some(allocation) = lock(&self.allocations).remove(&client) {
            self.release(&allocation);
        }
    }

    async fn handle_stun(self: &Arc<Self>, client: Client, reply: &Reply, m: &Message<'_>) {
        match (m.class, m.method) {
            (Class::Request, stun::BINDING) => {
                let answer = Builder::new(stun::BINDING, Class::Success, m.transaction)
                    .xor_address(stun::XOR_MAPPED_ADDRESS, client.addr)
                    .finish(None);
                reply.send(answer);
            }
            (Class::Request, stun::ALLOCATE) => self.allocate(client, reply, m).await,
            (
                Class::Request,
                method @ (stun::REFRESH | stun::CREATE_PERMISSION | stun::CHANNEL_BIND),
            ) => {
                let Some(allocation) = lock(&self.allocations).get(&client).cloned() else {
                    reply.send(error(m, 437, "Allocation Mismatch", None));
                    return;
                };
                if let Err(answer) = self.authenticate_existing(&allocation, m) {
                    reply.send(answer);
                    return;
                }
                let answer = match method {
                    stun::REFRESH => self.refresh(&allocation, m),
                    stun::CREATE_PERMISSION => self.create_permission(&allocation, m).await,
                    _ => self.channel_bind(&allocation, m).await,
                };
                reply.send(answer);
            }
            (Class::Indication, stun::SEND) => {
                let allocation = lock(&self.allocations).get(&client).cloned();
                let (Some(allocation), Some(peer), Some(data)) = (
                    allocation,
                    m.xor_address(stun::XOR_PEER_ADDRESS),
                    m.get(stun::DATA_ATTR),
                ) else {
                    return;
                };
                self.to_peer(&allocation, peer, data).await;
            }
            (Class::Request, _) => reply.send(error(m, 400, "Bad Request", None)),
            _ => {}
        }
    }

    fn nonce(&self) -> String {
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{at:x}-{}", self.nonce_mac(at))
    }

    fn nonce_mac(&self, at: u64) -> String {
        let mut mac =
            <Hmac<Sha1> as Mac>::new_from_slice(&self.nonce_key).unwrap_or_else(|_| unreachable!());
        mac.update(&at.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn nonce_fresh(&self, nonce: &str) -> bool {
        let Some((at, mac)) = nonce.split_once('-') else {
            return false;
        };
        let Ok(at) = u64::from_str_radix(at, 16) else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        mac == self.nonce_mac(at) && now.saturating_sub(at) < NONCE_LIFETIME.as_secs()
    }

    /// 401 with the realm and a fresh nonce: what a client must answer with credentials.
    fn challenge(&self, m: &Message<'_>, code: u16, reason: &str) -> Vec<u8> {
        Builder::new(m.method, Class::Error, m.transaction)
            .error(code, reason)
            .attribute(stun::REALM, self.config.realm.as_bytes())
            .attribute(stun::NONCE, self.nonce().as_bytes())
            .finish(None)
    }

    /// The user and key of a request that carries good credentials, or the answer to send.
    fn authenticate_new(&self, m: &Message<'_>) -> Result<(String, String, [u8; 16]), Vec<u8>> {
        let (Some(username), Some(nonce)) = (m.text(stun::USERNAME), m.text(stun::NONCE)) else {
            return Err(self.challenge(m, 401, "Unauthorized"));
        };
        if m.get(stun::MESSAGE_INTEGRITY).is_none() {
            return Err(self.challenge(m, 401, "Unauthorized"));
        }
        if !self.nonce_fresh(nonce) {
            return Err(self.challenge(m, 438, "Stale Nonce"));
        }
        let user = match credentials::user_of(username, SystemTime::now()) {
            Ok(user) => user.to_owned(),
            Err(e) => {
                self.stats
                    .refused_credentials
                    .fetch_add(1, Ordering::Relaxed);
                let reason = match e {
                    CredentialError::Expired => "Unauthorized: credential expired",
                    CredentialError::Malformed => "Unauthorized",
                };
                return Err(self.challenge(m, 401, reason));
            }
        };
        let password = credentials::password(&self.secret, username);
        let key = stun::long_term_key(username, &self.config.realm, &password);
        if !m.integrity_ok(&key) {
            self.stats
                .refused_credentials
                .fetch_add(1, Ordering::Relaxed);
            return Err(self.challenge(m, 401, "Unauthorized"));
        }
        Ok((user, username.to_owned(), key))
    }

    /// Requests on an allocation must come with its own credentials (checked at allocation:
    /// a call outlives its credential's expiry, a new allocation does not).
    fn authenticate_existing(&self, a: &Allocation, m: &Message<'_>) -> Result<(), Vec<u8>> {
        let (Some(username), Some(nonce)) = (m.text(stun::USERNAME), m.text(stun::NONCE)) else {
            return Err(self.challenge(m, 401, "Unauthorized"));
        };
        if username != a.username {
            return Err(error(m, 441, "Wrong Credentials", None));
        }
        if !self.nonce_fresh(nonce) {
            return Err(self.challenge(m, 438, "Stale Nonce"));
        }
        if !m.integrity_ok(&a.key) {
            return Err(self.challenge(m, 401, "Unauthorized"));
        }
        Ok(())
    }

    async fn allocate(self: &Arc<Self>, client: Client, reply: &Reply, m: &Message<'_>) {
        let (user, username, key) = match self.authenticate_new(m) {
            Ok(ok) => ok,
            Err(answer) => return reply.send(answer),
        };
        let key_ref = Some(&key[..]);
        if let Some(existing) = lock(&self.allocations).get(&client).cloned() {
            // A retransmitted Allocate gets the same answer; anything else is a mismatch.
            let answer = if existing.transaction == m.transaction {
                self.allocate_success(&existing, m)
            } else {
                error(m, 437, "Allocation Mismatch", key_ref)
            };
            return reply.send(answer);
        }
        let unknown = m.unknown_required();
        if !unknown.is_empty() {
            let list: Vec<u8> = unknown.iter().flat_map(|k| k.to_be_bytes()).collect();
            let answer = Builder::new(m.method, Class::Error, m.transaction)
                .error(420, "Unknown Attribute")
                .attribute(stun::UNKNOWN_ATTRIBUTES, &list)
                .finish(key_ref);
            return reply.send(answer);
        }
        match m.get(stun::REQUESTED_TRANSPORT) {
            Some([17, ..]) => {}
            Some(_) => return reply.send(error(m, 442, "Unsupported Transport Protocol", key_ref)),
            None => {
                return reply.send(error(
                    m,
                    400,
                    "Bad Request: no REQUESTED-TRANSPORT",
                    key_ref,
                ));
            }
        }
        if let Some(family) = m.get(stun::REQUESTED_ADDRESS_FAMILY)
            && family.first() != Some(&if self.relay_ip.is_ipv4() { 1 } else { 2 })
        {
            return reply.send(error(m, 440, "Address Family not Supported", key_ref));
        }
        // Quotas: this user's allocations, then the server's.
        if self.allocation_count() >= self.config.max_allocations {
            return reply.send(error(m, 508, "Insufficient Capacity", key_ref));
        }
        {
            let mut usage = lock(&self.usage);
            // An entry exists only while its user holds an allocation: the map stays as small
            // as the allocations.
            let entry = usage.entry(user.clone()).or_insert_with(|| Usage {
                allocations: 0,
                tokens: self.bucket_size(),
                refilled: Instant::now(),
            });
            if entry.allocations >= self.config.max_allocations_per_user {
                return reply.send(error(m, 486, "Allocation Quota Reached", key_ref));
            }
            entry.allocations += 1;
        }
        let Some(socket) = self.bind_relay().await else {
            self.forget_usage(&user);
            return reply.send(error(m, 508, "Insufficient Capacity", key_ref));
        };
        let socket = Arc::new(socket);
        let port = socket.local_addr().map_or(0, |a| a.port());
        let lifetime = self.lifetime(m.u32(stun::LIFETIME));
        let allocation = Arc::new(Allocation {
            user,
            username,
            key,
            client,
            reply: reply.clone(),
            socket,
            relayed: SocketAddr::new(self.relay_ip, port),
            transaction: m.transaction,
            expires: Mutex::new(Instant::now() + Duration::from_secs(lifetime.into())),
            permissions: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
            channels: Mutex::new(Channels {
                by_number: HashMap::new(),
                by_peer: HashMap::new(),
            }),
            stop: self.shutdown.child_token(),
        });
        lock(&self.allocations).insert(client, Arc::clone(&allocation));
        lock(&self.by_port).insert(port, Arc::clone(&allocation));
        lock(&self.by_client_ip)
            .entry(client.addr.ip())
            .or_default()
            .push((client, allocation.user.clone()));
        self.stats.allocations.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(user = %allocation.user, relayed = %allocation.relayed, client = %client.addr, "turn allocation");
        tokio::spawn(Arc::clone(self).relay_from_peers(Arc::clone(&allocation)));
        reply.send(self.allocate_success(&allocation, m));
    }

    fn allocate_success(&self, a: &Allocation, m: &Message<'_>) -> Vec<u8> {
        let left = lock(&a.expires).saturating_duration_since(Instant::now());
        Builder::new(stun::ALLOCATE, Class::Success, m.transaction)
            .xor_address(stun::XOR_RELAYED_ADDRESS, a.relayed)
            .u32(stun::LIFETIME, left.as_secs() as u32)
            .xor_address(stun::XOR_MAPPED_ADDRESS, a.client.addr)
            .finish(Some(&a.key))
    }

    fn lifetime(&self, asked: Option<u32>) -> u32 {
        asked.unwrap_or(DEFAULT_LIFETIME).clamp(
            DEFAULT_LIFETIME.min(self.config.max_lifetime_secs),
            self.config.max_lifetime_secs,
        )
    }

    async fn bind_relay(&self) -> Option<UdpSocket> {
        let (min, max) = (self.config.relay_port_min, self.config.relay_port_max);
        let span = u32::from(max.saturating_sub(min)) + 1;
        let start: u32 = rand::random::<u32>() % span;
        // A bounded search from a random port: taken ports are skipped.
        for i in 0..span.min(64) {
            let port = min + ((start + i * 7919) % span) as u16;
            if lock(&self.by_port).contains_key(&port) {
                continue;
            }
            if let Ok(socket) = UdpSocket::bind((self.config.listen_ip, port)).await {
                return Some(socket);
            }
        }
        None
    }

    fn refresh(&self, a: &Arc<Allocation>, m: &Message<'_>) -> Vec<u8> {
        let asked = m.u32(stun::LIFETIME);
        let lifetime = if asked == Some(0) {
            if let Some(gone) = lock(&self.allocations).remove(&a.client) {
                self.release(&gone);
            }
            0
        } else {
            let lifetime = self.lifetime(asked);
            *lock(&a.expires) = Instant::now() + Duration::from_secs(lifetime.into());
            lifetime
        };
        Builder::new(stun::REFRESH, Class::Success, m.transaction)
            .u32(stun::LIFETIME, lifetime)
            .finish(Some(&a.key))
    }

    /// Whether `a`'s user may relay to `peer`, asked afresh at each permission or channel
    /// request (someone who left the room is not reachable at the next refresh); a yes makes
    /// that exact address reachable for a permission's lifetime.
    async fn check_peer(&self, a: &Allocation, peer: SocketAddr) -> bool {
        let owner = self.owner_of(peer);
        let allowed = match owner {
            Some(other) => other == a.user || self.policy.may_reach_user(&a.user, &other).await,
            None => self.policy.route(peer).is_some(),
        };
        if allowed {
            let mut checked = lock(&a.checked);
            let now = Instant::now();
            checked.retain(|_, until| *until > now);
            if checked.len() < MAX_PERMISSIONS * 4 {
                checked.insert(peer, now + PERMISSION_LIFETIME);
            }
        } else {
            self.stats.refused_peers.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(user = %a.user, %peer, "turn: peer refused");
        }
        allowed
    }

    /// The user whose allocation owns `peer`: its relayed address, or (for a public address)
    /// the address its client connects from.
    fn owner_of(&self, peer: SocketAddr) -> Option<String> {
        if peer.ip() == self.relay_ip
            && let Some(a) = lock(&self.by_port).get(&peer.port())
        {
            return Some(a.user.clone());
        }
        if !is_global(peer.ip()) {
            return None;
        }
        lock(&self.by_client_ip)
            .get(&peer.ip())
            .and_then(|owners| owners.first())
            .map(|(_, user)| user.clone())
    }

    async fn create_permission(&self, a: &Arc<Allocation>, m: &Message<'_>) -> Vec<u8> {
        let peers: Vec<SocketAddr> = m
            .all(stun::XOR_PEER_ADDRESS)
            .filter_map(|v| stun::decode_xor_address(v, &m.transaction))
            .collect();
        if peers.is_empty() {
            return error(m, 400, "Bad Request: no XOR-PEER-ADDRESS", Some(&a.key));
        }
        for peer in &peers {
            if !self.check_peer(a, *peer).await {
                return error(m, 403, "Forbidden", Some(&a.key));
            }
        }
        for peer in peers {
            if !self.permit(a, peer.ip()) {
                return error(m, 508, "Insufficient Capacity", Some(&a.key));
            }
        }
        Builder::new(stun::CREATE_PERMISSION, Class::Success, m.transaction).finish(Some(&a.key))
    }

    fn permit(&self, a: &Allocation, ip: IpAddr) -> bool {
        let mut permissions = lock(&a.permissions);
        let now = Instant::now();
        permissions.retain(|_, p| p.expires > now);
        if permissions.len() >= MAX_PERMISSIONS && !permissions.contains_key(&ip) {
            return false;
        }
        permissions.insert(
            ip,
            Permission {
                expires: now + PERMISSION_LIFETIME,
            },
        );
        true
    }

    fn checked(a: &Allocation, peer: SocketAddr) -> bool {
        lock(&a.checked)
            .get(&peer)
            .is_some_and(|until| *until > Instant::now())
    }

    fn permitted(a: &Allocation, ip: IpAddr) -> bool {
        lock(&a.permissions)
            .get(&ip)
            .is_some_and(|p| p.expires > Instant::now())
    }

    async fn channel_bind(&self, a: &Arc<Allocation>, m: &Message<'_>) -> Vec<u8> {
        let key = Some(&a.key[..]);
        let (Some(number), Some(peer)) = (
            m.get(stun::CHANNEL_NUMBER)
                .and_then(|v| Some(u16::from_be_bytes([*v.first()?, *v.get(1)?]))),
            m.xor_address(stun::XOR_PEER_ADDRESS),
        ) else {
            return error(m, 400, "Bad Request", key);
        };
        if !(0x4000..=0x4FFF).contains(&number) {
            return error(m, 400, "Bad Request: channel number", key);
        }
        if !self.check_peer(a, peer).await {
            return error(m, 403, "Forbidden", key);
        }
        {
            let mut channels = lock(&a.channels);
            let now = Instant::now();
            let taken = channels
                .by_number
                .get(&number)
                .is_some_and(|(p, until)| *p != peer && *until > now);
            let other = channels.by_peer.get(&peer).is_some_and(|n| {
                *n != number
                    && channels
                        .by_number
                        .get(n)
                        .is_some_and(|(_, until)| *until > now)
            });
            if taken || other {
                return error(m, 400, "Bad Request: channel in use", key);
            }
            if channels.by_number.len() >= MAX_PERMISSIONS
                && !channels.by_number.contains_key(&number)
            {
                return error(m, 508, "Insufficient Capacity", key);
            }
            if let Some((old, _)) = channels
                .by_number
                .insert(number, (peer, now + CHANNEL_LIFETIME))
            {
                channels.by_peer.remove(&old);
            }
            channels.by_peer.insert(peer, number);
        }
        if !self.permit(a, peer.ip()) {
            return error(m, 508, "Insufficient Capacity", key);
        }
        Builder::new(stun::CHANNEL_BIND, Class::Success, m.transaction).finish(key)
    }

    async fn channel_data(&self, client: Client, channel: u16, data: &[u8]) {
        let Some(a) = lock(&self.allocations).get(&client).cloned() else {
            return;
        };
        let peer = lock(&a.channels)
            .by_number
            .get(&channel)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(peer, _)| *peer);
        if let Some(peer) = peer {
            self.to_peer(&a, peer, data).await;
        }
    }

    /// Client → peer: only with a permission, only to an address that was checked or that the
    /// policy routes, within the user's budget.
    async fn to_peer(&self, a: &Arc<Allocation>, peer: SocketAddr, data: &[u8]) {
        if !Self::permitted(a, peer.ip()) || !self.charge(&a.user, data.len()) {
            return;
        }
        // Another allocation of this server: handed over in memory.
        if peer.ip() == self.relay_ip {
            let target = lock(&self.by_port).get(&peer.port()).cloned();
            if let Some(target) = target {
                if Self::checked(a, peer) {
                    self.count(data.len());
                    self.deliver_to_client(&target, a.relayed, data);
                }
                return;
            }
        }
        let to = if Self::checked(a, peer) && self.owner_of(peer).is_some() {
            Some(peer)
        } else {
            self.policy.route(peer)
        };
        if let Some(to) = to {
            self.count(data.len());
            let _ = a.socket.try_send_to(data, to);
        }
    }

    fn count(&self, bytes: usize) {
        self.stats.relayed_packets.fetch_add(1, Ordering::Relaxed);
        self.stats
            .relayed_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Peer → client, when the peer has a permission: ChannelData if a channel is bound, else
    /// a Data indication.
    fn deliver_to_client(&self, a: &Allocation, peer: SocketAddr, data: &[u8]) {
        if !Self::permitted(a, peer.ip()) || !self.charge(&a.user, data.len()) {
            return;
        }
        let channel = {
            let channels = lock(&a.channels);
            channels.by_peer.get(&peer).copied().filter(|n| {
                channels
                    .by_number
                    .get(n)
                    .is_some_and(|(_, until)| *until > Instant::now())
            })
        };
        let bytes = match channel {
            Some(n) => stun::channel_data(n, data, a.reply.is_stream()),
            None => Builder::new(stun::DATA, Class::Indication, rand::random())
                .xor_address(stun::XOR_PEER_ADDRESS, peer)
                .attribute(stun::DATA_ATTR, data)
                .finish(None),
        };
        a.reply.send(bytes);
    }

    async fn relay_from_peers(self: Arc<Self>, a: Arc<Allocation>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let received = tokio::select! {
                _ = a.stop.cancelled() => break,
                r = a.socket.recv_from(&mut buf) => r,
            };
            let Ok((n, source)) = received else {
                continue;
            };
            if n == MAX_DATAGRAM {
                continue; // cut: too large to relay whole
            }
            let peer = self.policy.unroute(source);
            self.count(n);
            self.deliver_to_client(&a, peer, &buf[..n]);
        }
    }

    /// Takes `bytes` from `user`'s budget; false (drop the packet) when it is spent.
    fn charge(&self, user: &str, bytes: usize) -> bool {
        let rate = f64::from(self.config.user_kbps) * 125.0;
        let mut usage = lock(&self.usage);
        let Some(u) = usage.get_mut(user) else {
            return false;
        };
        let now = Instant::now();
        u.tokens = (u.tokens + now.duration_since(u.refilled).as_secs_f64() * rate)
            .min(self.bucket_size());
        u.refilled = now;
        if u.tokens < bytes as f64 {
            self.stats
                .over_quota_packets
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        u.tokens -= bytes as f64;
        true
    }

    fn bucket_size(&self) -> f64 {
        // One second's worth: bursts of a keyframe pass, a sustained excess does not.
        f64::from(self.config.user_kbps) * 125.0
    }

    fn release(&self, a: &Allocation) {
        a.stop.cancel();
        let port = a.relayed.port();
        let mut by_port = lock(&self.by_port);
        if by_port.get(&port).is_some_and(|b| b.client == a.client) {
            by_port.remove(&port);
        }
        drop(by_port);
        let mut by_client_ip = lock(&self.by_client_ip);
        if let Some(owners) = by_client_ip.get_mut(&a.client.addr.ip()) {
            owners.retain(|(client, _)| *client != a.client);
            if owners.is_empty() {
                by_client_ip.remove(&a.client.addr.ip());
            }
        }
        drop(by_client_ip);
        self.forget_usage(&a.user);
        tracing::debug!(user = %a.user, relayed = %a.relayed, "turn allocation released");
    }

    fn forget_usage(&self, user: &str) {
        let mut usage = lock(&self.usage);
        if let Some(u) = usage.get_mut(user) {
            u.allocations = u.allocations.saturating_sub(1);
            if u.allocations == 0 {
                usage.remove(user);
            }
        }
    }

    /// Allocations whose lifetime ran out are released every few seconds.
    async fn sweep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let expired: Vec<Arc<Allocation>> = {
                let mut all = lock(&self.allocations);
                let gone: Vec<Client> = all
                    .iter()
                    .filter(|(_, a)| *lock(&a.expires) <= now)
                    .map(|(c, _)| *c)
                    .collect();
                gone.iter().filter_map(|c| all.remove(c)).collect()
            };
            for a in expired {
                self.release(&a);
            }
        }
    }
}

fn error(m: &Message<'_>, code: u16, reason: &str, key: Option<&[u8]>) -> Vec<u8> {
    Builder::new(m.method, Class::Error, m.transaction)
        .error(code, reason)
        .finish(key)
}

/// Addresses a relay may reach on a user's word alone: not loopback, private, link-local,
/// multicast, unspecified or documentation ranges.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xFE00) == 0xFC00
                || (first & 0xFFC0) == 0xFE80
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
