//! A small TURN client over UDP or TCP: enough to allocate, ask for permissions, bind
//! channels and move data (Send/Data indications, or ChannelData as browsers send media). The
//! doctor uses it to see that a relay allocates; tests use it to probe what the relay refuses;
//! the relay benchmark (bench/turn/load.rs) drives load through it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;

use super::message::{self as stun, Builder, Class, Message};

/// What went wrong, as a person reads it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("no answer from {0} within {1} ms")]
    Timeout(SocketAddr, u128),
    /// Nothing accepts a TCP connection there.
    #[error("{0} refuses the connection: {1}")]
    Unreachable(SocketAddr, String),
    #[error("{0}")]
    Io(String),
    /// The relay answered with an error code (401 wrong or expired credentials, 403 peer
    /// refused, 486 quota, …).
    #[error("the relay answered {code} {reason}")]
    Refused { code: u16, reason: String },
    #[error("the relay's answer is malformed")]
    Malformed,
}

/// How the client reaches the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The client's connection: a UDP socket, or a TCP stream carrying whole frames back to back.
enum Link {
    Udp(UdpSocket),
    Tcp {
        reader: Mutex<(OwnedReadHalf, Vec<u8>)>,
        writer: Mutex<OwnedWriteHalf>,
    },
}

impl Link {
    /// `local`: the address a UDP link is bound to (any, when `None`).
    async fn open(
        transport: Transport,
        server: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Result<Link, ClientError> {
        match transport {
            Transport::Udp => {
                let any: SocketAddr = if server.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap_or_else(|_| unreachable!())
                } else {
                    "[::]:0".parse().unwrap_or_else(|_| unreachable!())
                };
                let local = local.unwrap_or(any);
                let socket = UdpSocket::bind(local)
                    .await
                    .map_err(|e| ClientError::Io(e.to_string()))?;
                Ok(Link::Udp(socket))
            }
            Transport::Tcp => {
                let stream = TcpStream::connect(server)
                    .await
                    .map_err(|e| ClientError::Unreachable(server, e.to_string()))?;
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                Ok(Link::Tcp {
                    reader: Mutex::new((reader, Vec::new())),
                    writer: Mutex::new(writer),
                })
            }
        }
    }

    async fn send(&self, bytes: &[u8], server: SocketAddr) -> Result<(), ClientError> {
        let sent = match self {
            Link::Udp(socket) => socket.send_to(bytes, server).await.map(drop),
            Link::Tcp { writer, .. } => writer.lock().await.write_all(bytes).await,
        };
        sent.map_err(|e| ClientError::Io(e.to_string()))
    }

    /// The next message from the relay (a UDP datagram from `server`, or one whole frame of
    /// the stream); `None` at `deadline`.
    async fn next(
        &self,
        server: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        match self {
            Link::Udp(socket) => {
                let mut buf = vec![0u8; 2048];
                loop {
                    let Ok(received) =
                        tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
                    else {
                        return Ok(None);
                    };
                    let (n, from) = received.map_err(|e| ClientError::Io(e.to_string()))?;
                    if from == server {
                        return Ok(Some(buf[..n].to_vec()));
                    }
                }
            }
            Link::Tcp { reader, .. } => {
                let mut guard = reader.lock().await;
                let (stream, pending) = &mut *guard;
                loop {
                    if pending.len() >= 4 {
                        let len = stun::stream_frame_len(pending).ok_or(ClientError::Malformed)?;
                        if pending.len() >= len {
                            return Ok(Some(pending.drain(..len).collect()));
                        }
                    }
                    let mut chunk = [0u8; 2048];
                    let Ok(read) = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await
                    else {
                        return Ok(None);
                    };
                    match read.map_err(|e| ClientError::Io(e.to_string()))? {
                        0 => return Err(ClientError::Io("the relay closed the connection".into())),
                        n => pending.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        }
    }
}

/// One allocation on a relay.
pub struct TurnClient {
    link: Link,
    server: SocketAddr,
    username: String,
    realm: String,
    nonce: String,
    key: [u8; 16],
    pub relayed: SocketAddr,
    pub mapped: Option<SocketAddr>,
    timeout: Duration,
    /// Channels this client bound, and to which peer.
    channels: Vec<(u16, SocketAddr)>,
}

impl TurnClient {
    /// Allocates a relayed address on `server` over UDP with a long-term credential.
    pub async fn allocate(
        server: SocketAddr,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<TurnClient, ClientError> {
        Self::allocate_over(Transport::Udp, server, username, password, timeout).await
    }

    /// [`TurnClient::allocate`] from a UDP socket bound to `local` (an address of this host:
    /// the relay then sees the client connect from it).
    pub async fn allocate_from(
        local: SocketAddr,
        server: SocketAddr,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<TurnClient, ClientError> {
        Self::allocate_with(
            Transport::Udp,
            Some(local),
            server,
            username,
            password,
            timeout,
        )
        .await
    }

    /// Allocates a relayed (UDP) address on `server`, reached over `transport`.
    pub async fn allocate_over(
        transport: Transport,
        server: SocketAddr,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<TurnClient, ClientError> {
        Self::allocate_with(transport, None, server, username, password, timeout).await
    }

    async fn allocate_with(
        transport: Transport,
        local: Option<SocketAddr>,
        server: SocketAddr,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<TurnClient, ClientError> {
        let link = tokio::time::timeout(timeout, Link::open(transport, server, local))
            .await
            .map_err(|_| ClientError::Timeout(server, timeout.as_millis()))??;
        let mut client = TurnClient {
            link,
            server,
            username: username.to_owned(),
            realm: String::new(),
            nonce: String::new(),
            key: [0; 16],
            relayed: server,
            mapped: None,
            timeout,
            channels: Vec::new(),
        };
        // The first request has no credentials: the answer names the realm and a nonce.
        let first = Builder::new(stun::ALLOCATE, Class::Request, rand::random())
            .attribute(stun::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .finish(None);
        let answer = client.exchange(&first).await?;
        let m = Message::parse(&answer).ok_or(ClientError::Malformed)?;
        client.realm = m
            .text(stun::REALM)
            .ok_or(ClientError::Malformed)?
            .to_owned();
        client.nonce = m
            .text(stun::NONCE)
            .ok_or(ClientError::Malformed)?
            .to_owned();
        client.key = stun::long_term_key(username, &client.realm, password);
        let answer = client
            .request(stun::ALLOCATE, |b| {
                b.attribute(stun::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            })
            .await?;
        let m = Message::parse(&answer).ok_or(ClientError::Malformed)?;
        client.relayed = m
            .xor_address(stun::XOR_RELAYED_ADDRESS)
            .ok_or(ClientError::Malformed)?;
        client.mapped = m.xor_address(stun::XOR_MAPPED_ADDRESS);
        Ok(client)
    }

    /// Asks for a permission towards `peer`.
    pub async fn create_permission(&mut self, peer: SocketAddr) -> Result<(), ClientError> {
        self.request(stun::CREATE_PERMISSION, |b| {
            b.xor_address(stun::XOR_PEER_ADDRESS, peer)
        })
        .await
        .map(drop)
    }

    /// Sends `data` to `peer` through the relay (a Send indication).
    pub async fn send(&self, peer: SocketAddr, data: &[u8]) -> Result<(), ClientError> {
        let bytes = Builder::new(stun::SEND, Class::Indication, rand::random())
            .xor_address(stun::XOR_PEER_ADDRESS, peer)
            .attribute(stun::DATA_ATTR, data)
            .finish(None);
        self.link.send(&bytes, self.server).await
    }

    /// Binds channel `number` (0x4000–0x4FFF) to `peer`; it also installs or refreshes the
    /// permission towards `peer`'s address.
    pub async fn channel_bind(&mut self, number: u16, peer: SocketAddr) -> Result<(), ClientError> {
        self.request(stun::CHANNEL_BIND, |b| {
            b.attribute(
                stun::CHANNEL_NUMBER,
                &[(number >> 8) as u8, number as u8, 0, 0],
            )
            .xor_address(stun::XOR_PEER_ADDRESS, peer)
        })
        .await?;
        self.channels.retain(|(n, p)| *n != number && *p != peer);
        self.channels.push((number, peer));
        Ok(())
    }

    /// Sends `data` to the peer bound to channel `number` (a ChannelData message; padded to
    /// four bytes over TCP).
    pub async fn send_channel(&self, number: u16, data: &[u8]) -> Result<(), ClientError> {
        let padded = matches!(self.link, Link::Tcp { .. });
        self.link
            .send(&stun::channel_data(number, data, padded), self.server)
            .await
    }

    /// The UDP socket the allocation was made from and the relay's address (`None` over
    /// TCP): for a caller that moves many packets itself (the benchmark), with ChannelData
    /// built by [`stun::channel_data`] and read with [`stun::parse_channel_data`].
    pub fn socket(&self) -> Option<(&UdpSocket, SocketAddr)> {
        match &self.link {
            Link::Udp(socket) => Some((socket, self.server)),
            Link::Tcp { .. } => None,
        }
    }

    /// The next packet relayed from a peer (a Data indication, or ChannelData on a channel
    /// this client bound): who sent it and what.
    pub async fn receive(&self, within: Duration) -> Result<(SocketAddr, Vec<u8>), ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = self
                .link
                .next(self.server, deadline)
                .await?
                .ok_or(ClientError::Timeout(self.server, within.as_millis()))?;
            if let Some((number, data)) = stun::parse_channel_data(&message)
                && let Some((_, peer)) = self.channels.iter().find(|(n, _)| *n == number)
            {
                return Ok((*peer, data.to_vec()));
            }
            if let Some(m) = Message::parse(&message)
                && m.class == Class::Indication
                && m.method == stun::DATA
                && let (Some(peer), Some(data)) = (
                    m.xor_address(stun::XOR_PEER_ADDRESS),
                    m.get(stun::DATA_ATTR),
                )
            {
                return Ok((peer, data.to_vec()));
            }
        }
    }

    /// Gives the allocation back (Refresh with lifetime 0).
    pub async fn release(mut self) -> Result<(), ClientError> {
        self.request(stun::REFRESH, |b| b.u32(stun::LIFETIME, 0))
            .await
            .map(drop)
    }

    /// An authenticated request; a stale nonce is renewed once.
    async fn request(
        &mut self,
        method: u16,
        attributes: impl Fn(Builder) -> Builder,
    ) -> Result<Vec<u8>, ClientError> {
        for _ in 0..2 {
            let builder = Builder::new(method, Class::Request, rand::random())
                .attribute(stun::USERNAME, self.username.as_bytes())
                .attribute(stun::REALM, self.realm.as_bytes())
                .attribute(stun::NONCE, self.nonce.as_bytes());
            let bytes = attributes(builder).finish(Some(&self.key));
            let answer = self.exchange(&bytes).await;
            match answer {
                Err(ClientError::Refused { code: 438, .. }) => continue,
                other => return other,
            }
        }
        Err(ClientError::Refused {
            code: 438,
            reason: "Stale Nonce".to_owned(),
        })
    }

    /// Sends a request and waits for its answer (over UDP three tries within the timeout;
    /// a stream delivers the one).
    async fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        let transaction = &request[8..20];
        let tries = match self.link {
            Link::Udp(_) => 3,
            Link::Tcp { .. } => 1,
        };
        let per_try = self.timeout / tries;
        for _ in 0..tries {
            self.link.send(request, self.server).await?;
            let deadline = tokio::time::Instant::now() + per_try;
            while let Some(message) = self.link.next(self.server, deadline).await? {
                let Some(m) = Message::parse(&message) else {
                    continue;
                };
                if m.transaction != transaction {
                    continue;
                }
                if m.class == Class::Error {
                    let value = m.get(stun::ERROR_CODE).ok_or(ClientError::Malformed)?;
                    let code = u16::from(*value.get(2).ok_or(ClientError::Malformed)?) * 100
                        + u16::from(*value.get(3).ok_or(ClientError::Malformed)?);
                    let reason = String::from_utf8_lossy(value.get(4..).unwrap_or_default());
                    if let Some(nonce) = m.text(stun::NONCE) {
                        self.nonce = nonce.to_owned();
                    }
                    if let Some(realm) = m.text(stun::REALM)
                        && self.realm.is_empty()
                    {
                        self.realm = realm.to_owned();
                    }
                    // The first unauthenticated Allocate is meant to get 401 with a nonce.
                    if code == 401 && self.key == [0; 16] {
                        return Ok(message);
                    }
                    return Err(ClientError::Refused {
                        code,
                        reason: reason.into_owned(),
                    });
                }
                return Ok(message);
            }
        }
        Err(ClientError::Timeout(self.server, self.timeout.as_millis()))
    }
}
