//! A client network a test can break, for ICE restarts: the client's UDP sockets go through a
//! runtime that can cut every socket bound so far (an interface that went away: nothing in,
//! nothing out, no error) while sockets bound later work (the new network). With
//! `discard_local_candidates_during_ice_restart` on, webrtc-rs binds new sockets, on a new
//! port, at each ICE restart: the client then comes back from a new address, as a phone does
//! after moving from Wi-Fi to cellular.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// The switch shared by a client's sockets.
#[derive(Debug, Default)]
pub struct Network {
    sockets: Mutex<Vec<Arc<AtomicBool>>>,
    /// Every socket bound from now on is cut as well (a network that never comes back).
    down: AtomicBool,
}

impl Network {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The sockets bound so far stop carrying anything; sockets bound later work.
    pub fn cut(&self) {
        for cut in self.sockets.lock().unwrap().iter() {
            cut.store(true, Ordering::SeqCst);
        }
    }

    /// Every socket, present and future, is cut: no restart can bring the client back.
    pub fn cut_for_good(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut();
    }

    /// UDP sockets bound so far (an ICE restart that rebinds adds one).
    pub fn sockets_bound(&self) -> usize {
        self.sockets.lock().unwrap().len()
    }

    fn attach(&self) -> Arc<AtomicBool> {
        let cut = Arc::new(AtomicBool::new(self.down.load(Ordering::SeqCst)));
        self.sockets.lock().unwrap().push(Arc::clone(&cut));
        cut
    }
}

/// The tokio runtime with the client's UDP sockets behind the [`Network`] switch.
#[derive(Debug)]
pub(crate) struct NetworkRuntime {
    pub network: Arc<Network>,
}

#[derive(Debug)]
struct SwitchedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    cut: Arc<AtomicBool>,
}

impl AsyncUdpSocket for SwitchedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if self.cut.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(transmit.contents.len()));
        }
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let received = self.inner.poll_recv(cx, bufs, meta);
            if !self.cut.load(Ordering::Relaxed) || !matches!(received, Poll::Ready(Ok(_))) {
                return received;
            }
            // Cut: what arrived is lost; read on until the socket has nothing more.
        }
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

impl Runtime for NetworkRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(SwitchedSocket {
            inner: TokioRuntime.wrap_udp_socket(socket)?,
            cut: self.network.attach(),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
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
