//! Single-port mode: every participant's ICE/DTLS/SRTP traffic over ONE UDP socket.
//! webrtc-rs 0.21.1 has no UDP mux, so each connection gets its own [`SfuRuntime`], whose
//! `wrap_udp_socket` throws away the placeholder socket the driver bound and hands back a
//! virtual [`MuxSocket`] on the shared socket. Datagrams are routed to a connection by the
//! ICE username fragment of STUN requests, then by remote address. A connection's ufrag is
//! the one of its latest local description ([`MuxRoute::follow`]): an ICE restart brings new
//! credentials, and the route follows them. Host candidates are rewritten to the shared address.

use bytes::Bytes;
use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Datagrams queued per connection before the demuxer drops (that connection's loss only).
const ENDPOINT_QUEUE: usize = 2048;

type Datagram = (SocketAddr, Bytes);

struct Endpoint {
    id: u64,
    queue: mpsc::Sender<Datagram>,
    /// Set (under the routes lock) when its socket is dropped: no route may name it again.
    closed: AtomicBool,
}

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Arc<Endpoint>>,
    by_remote: HashMap<SocketAddr, Arc<Endpoint>>,
}

/// The shared socket and its routing table.
pub(crate) struct UdpMux {
    socket: tokio::net::UdpSocket,
    local_addr: SocketAddr,
    routes: Mutex<Routes>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for UdpMux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpMux")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl UdpMux {
    /// Binds the shared socket; call inside the context of an SFU thread (`sfu0`).
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Arc<Self>> {
        let std_socket = std::net::UdpSocket::bind(addr)?;
        std_socket.set_nonblocking(true)?;
        let local_addr = std_socket.local_addr()?;
        Ok(Arc::new(Self {
            socket: tokio::net::UdpSocket::from_std(std_socket)?,
            local_addr,
            routes: Mutex::new(Routes::default()),
            next_id: AtomicU64::new(1),
        }))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reads the shared socket until cancelled and routes every datagram.
    pub(crate) async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut buf = vec![0u8; 2048];
        loop {
            let received = tokio::select! {
                () = cancel.cancelled() => break,
                received = self.socket.recv_from(&mut buf) => received,
            };
            match received {
                Ok((n, from)) => self.dispatch(&buf[..n], from),
                Err(e) => tracing::debug!(error = %e, "sfu mux: recv error"),
            }
        }
    }

    fn dispatch(&self, data: &[u8], from: SocketAddr) {
        let endpoint = {
            let Ok(mut routes) = self.routes.lock() else {
                return;
            };
            // A STUN request names its connection; it also (re)binds the sender's address.
            let by_ufrag =
                stun_request_ufrag(data).and_then(|ufrag| routes.by_ufrag.get(ufrag).cloned());
            match by_ufrag {
                Some(endpoint) => {
                    routes.by_remote.insert(from, Arc::clone(&endpoint));
                    Some(endpoint)
                }
                None => routes.by_remote.get(&from).cloned(),
            }
        };
        if let Some(endpoint) = endpoint {
            let _ = endpoint
                .queue
                .try_send((from, Bytes::copy_from_slice(data)));
        }
    }

    /// A new connection's view of the shared socket. It is reached by remote address only
    /// until its route names a ufrag ([`MuxRoute::follow`]).
    fn register(self: &Arc<Self>) -> MuxSocket {
        let (tx, rx) = mpsc::channel(ENDPOINT_QUEUE);
        let endpoint = Arc::new(Endpoint {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            queue: tx,
            closed: AtomicBool::new(false),
        });
        MuxSocket {
            mux: Arc::clone(self),
            endpoint,
            incoming: Mutex::new(rx),
        }
    }

    /// Routes STUN requests for `ufrag` to `endpoint`, in place of the ufrag it had: after an
    /// ICE restart the old credentials are dead, so one ufrag per connection is enough.
    fn route_ufrag(&self, endpoint: &Weak<Endpoint>, ufrag: &str) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let Some(endpoint) = endpoint.upgrade() else {
            return;
        };
        if endpoint.closed.load(Ordering::Acquire) {
            return;
        }
        routes.by_ufrag.retain(|_, e| e.id != endpoint.id);
        routes.by_ufrag.insert(ufrag.to_owned(), endpoint);
    }

    fn route_outgoing(&self, destination: SocketAddr, endpoint: &Arc<Endpoint>) {
        if let Ok(mut routes) = self.routes.lock() {
            routes
                .by_remote
                .entry(destination)
                .or_insert_with(|| Arc::clone(endpoint));
        }
    }

    /// Routes currently held (for tests: they must go away with their connections).
    pub(crate) fn route_count(&self) -> usize {
        self.routes
            .lock()
            .map(|r| r.by_ufrag.len() + r.by_remote.len())
            .unwrap_or(0)
    }
}

/// The local ufrag of a STUN Binding request (`USERNAME` = "<our ufrag>:<their ufrag>").
pub(crate) fn stun_request_ufrag(data: &[u8]) -> Option<&str> {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    if data.len() < 20 || data[0] > 1 || data[4..8] != MAGIC {
        return None;
    }
    let mut attrs = data.get(20..)?;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if kind == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        let padded = 4 + len.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

/// The `a=ice-ufrag` of a description (session level or the first media section's: the SFU
/// bundles everything on one transport, so they are all the same).
pub(crate) fn sdp_ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

/// A connection's place in the mux, kept by its owner: it names the connection's current
/// local ufrag to the demultiplexer. Cheap to clone; the routes themselves go away with the
/// connection's socket.
#[derive(Clone)]
pub(crate) struct MuxRoute {
    mux: Arc<UdpMux>,
    /// The connection's socket once the driver has wrapped it (again, after a rebind).
    endpoint: Arc<Mutex<Weak<Endpoint>>>,
}

impl std::fmt::Debug for MuxRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxRoute").finish_non_exhaustive()
    }
}

impl MuxRoute {
    pub(crate) fn new(mux: &Arc<UdpMux>) -> Self {
        Self {
            mux: Arc::clone(mux),
            endpoint: Arc::new(Mutex::new(Weak::new())),
        }
    }

    /// Call with each local description before it is sent: STUN requests naming its ufrag
    /// (the first one's, or the fresh one of an ICE restart) reach this connection.
    pub(crate) fn follow(&self, local_sdp: &str) {
        let Some(ufrag) = sdp_ice_ufrag(local_sdp) else {
            return;
        };
        let endpoint = match self.endpoint.lock() {
            Ok(endpoint) => endpoint.clone(),
            Err(_) => return,
        };
        self.mux.route_ufrag(&endpoint, ufrag);
    }

    fn wrap(&self) -> MuxSocket {
        let socket = self.mux.register();
        if let Ok(mut endpoint) = self.endpoint.lock() {
            *endpoint = Arc::downgrade(&socket.endpoint);
        }
        socket
    }
}

/// One connection's view of the shared socket.
pub(crate) struct MuxSocket {
    mux: Arc<UdpMux>,
    endpoint: Arc<Endpoint>,
    incoming: Mutex<mpsc::Receiver<Datagram>>,
}

impl std::fmt::Debug for MuxSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxSocket")
            .field("endpoint", &self.endpoint.id)
            .finish()
    }
}

impl Drop for MuxSocket {
    fn drop(&mut self) {
        let id = self.endpoint.id;
        if let Ok(mut routes) = self.mux.routes.lock() {
            self.endpoint.closed.store(true, Ordering::Release);
            routes.by_ufrag.retain(|_, e| e.id != id);
            routes.by_remote.retain(|_, e| e.id != id);
        }
    }
}

impl AsyncUdpSocket for MuxSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.mux.local_addr)
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        // Our own connectivity checks bind the peer's address too, so replies that carry no
        // USERNAME (binding responses) still find their way back.
        if transmit.contents.first().is_some_and(|b| *b <= 1) {
            self.mux
                .route_outgoing(transmit.destination, &self.endpoint);
        }
        self.mux
            .socket
            .poll_send_to(cx, transmit.contents, transmit.destination)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Ok(mut incoming) = self.incoming.lock() else {
            return Poll::Ready(Err(io::Error::other("mux socket poisoned")));
        };
        let mut filled = 0;
        let slots = bufs.len().min(meta.len());
        while filled < slots {
            let next = if filled == 0 {
                match incoming.poll_recv(cx) {
                    Poll::Ready(next) => next,
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                incoming.try_recv().ok()
            };
            let Some((from, data)) = next else {
                if filled == 0 {
                    return Poll::Ready(Err(io::Error::other("sfu mux closed")));
                }
                break;
            };
            let n = data.len().min(bufs[filled].len());
            bufs[filled][..n].copy_from_slice(&data[..n]);
            let mut received = RecvMeta::default();
            received.addr = from;
            received.len = n;
            received.stride = n.max(1);
            meta[filled] = received;
            filled += 1;
        }
        Poll::Ready(Ok(filled))
    }
}

/// The tokio runtime, with two changes for the SFU's peers:
/// - Nagle's algorithm off on ICE-TCP connections: webrtc-rs leaves it on, and each small
///   packet then waits for the last one's (delayed) ACK, about 40 ms per round trip. Set on
///   the listening socket, the option is inherited by the connections it accepts (Linux);
/// - in single-port mode (`mux`: this connection's route), UDP sockets become views of the
///   shared socket.
#[derive(Debug, Default)]
pub(crate) struct SfuRuntime {
    pub mux: Option<MuxRoute>,
}

impl Runtime for SfuRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        match &self.mux {
            Some(route) => {
                // The driver bound a placeholder; the shared socket carries the traffic.
                drop(socket);
                Ok(Arc::new(route.wrap()))
            }
            None => TokioRuntime.wrap_udp_socket(socket),
        }
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        no_delay(&listener)?;
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.connect_tcp(remote_addr).await })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.resolve_host(host).await })
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future);
    }
}

/// Nagle off for every connection `listener` accepts.
fn no_delay(listener: &std::net::TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).set_tcp_nodelay(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_tcp_connections_are_accepted_with_nagle_off() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        no_delay(&listener).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "the option is not inherited here"
        );
    }

    fn binding_request(username: &str) -> Vec<u8> {
        let mut msg = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        msg.extend_from_slice(&[7; 12]);
        // a PRIORITY attribute first, then USERNAME (padded)
        msg.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        let len = username.len() as u16;
        msg.extend_from_slice(&[0x00, 0x06]);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(username.as_bytes());
        while msg.len() % 4 != 0 {
            msg.push(0);
        }
        msg
    }

    #[test]
    fn ufrag_is_read_from_binding_requests_only() {
        assert_eq!(
            stun_request_ufrag(&binding_request("srvA:cliB")),
            Some("srvA")
        );
        assert_eq!(stun_request_ufrag(&binding_request("abc:d1")), Some("abc"));
        let mut dtls = binding_request("srvA:cliB");
        dtls[0] = 22;
        assert_eq!(stun_request_ufrag(&dtls), None, "DTLS record");
        assert_eq!(stun_request_ufrag(&[0; 8]), None, "too short");
        let truncated = &binding_request("srvA:cliB")[..30];
        assert_eq!(stun_request_ufrag(truncated), None);
    }

    #[test]
    fn description_ufrag_is_found() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\na=ice-pwd:x\r\n";
        assert_eq!(sdp_ice_ufrag(sdp), Some("AbCd"));
        assert_eq!(sdp_ice_ufrag("v=0\r\n"), None);
    }

    fn endpoint_of(mux: &UdpMux, data: &[u8]) -> Option<u64> {
        let routes = mux.routes.lock().unwrap();
        stun_request_ufrag(data)
            .and_then(|u| routes.by_ufrag.get(u))
            .map(|e| e.id)
    }

    /// An ICE restart gives the connection a new local ufrag: requests naming it are routed to
    /// the same connection, the old ufrag no longer routes, and nothing is left once the
    /// connection's socket is gone (a late `follow` included).
    #[tokio::test]
    async fn the_route_follows_a_restart_and_goes_with_its_socket() {
        let mux = UdpMux::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let route = MuxRoute::new(&mux);
        let socket = route.wrap();
        let id = socket.endpoint.id;
        route.follow("a=ice-ufrag:first\r\n");
        assert_eq!(endpoint_of(&mux, &binding_request("first:cli")), Some(id));
        route.follow("a=ice-ufrag:second\r\n");
        assert_eq!(endpoint_of(&mux, &binding_request("second:cli")), Some(id));
        assert_eq!(endpoint_of(&mux, &binding_request("first:cli")), None);
        assert_eq!(mux.route_count(), 1);
        drop(socket);
        assert_eq!(mux.route_count(), 0);
        route.follow("a=ice-ufrag:third\r\n");
        assert_eq!(
            mux.route_count(),
            0,
            "a dropped connection is never routed again"
        );
    }
}
