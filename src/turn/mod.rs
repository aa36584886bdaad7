//! A TURN relay (RFC 8656, UDP relaying) for browsers whose networks let no media through:
//! over UDP, TCP, and TLS handed over by the HTTPS listener. Credentials are short-lived
//! (TURN REST API form, `credentials.rs`); where packets may go is the [`PeerPolicy`]'s word.
//! Knows nothing of rooms-the-product: `media/relay.rs` gives it its policy.

pub mod client;
mod config;
pub mod credentials;
pub mod message;
mod server;
mod transport;

use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

pub use config::TurnConfig;
pub use server::{Client, PeerPolicy, Reply, TurnServer, TurnStats, is_global};
pub use transport::serve_stream;

/// Receive buffer asked for the UDP listening socket, which every client's packets arrive on
/// and one task reads: it absorbs the bursts that arrive while that task is off the CPU (at
/// 1 200-byte media packets the kernel's usual 208 KiB holds ≈ 90 of them, 3 ms at 30 000
/// packets/s). The kernel caps it at `net.core.rmem_max`.
pub const UDP_RECV_BUFFER: usize = 4 << 20;

/// The relay's UDP listening socket on `addr`, with its receive buffer raised.
pub fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer (a low rmem_max) still relays.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds the relay's UDP and TCP listeners and serves them until `shutdown`. Errors name the
/// setting whose port could not be bound.
pub async fn listen(
    server: &Arc<TurnServer>,
    shutdown: CancellationToken,
) -> Result<(), (&'static str, std::io::Error)> {
    let config = server.config();
    if config.udp_port != 0 {
        let socket = bind_udp((config.listen_ip, config.udp_port).into())
            .map_err(|e| ("turn.udp_port", e))?;
        tokio::spawn(transport::serve_udp(
            Arc::clone(server),
            socket,
            shutdown.clone(),
        ));
    }
    if config.tcp_port != 0 {
        let listener = TcpListener::bind((config.listen_ip, config.tcp_port))
            .await
            .map_err(|e| ("turn.tcp_port", e))?;
        let max = config.max_allocations.saturating_mul(2).max(16);
        tokio::spawn(transport::serve_tcp(
            Arc::clone(server),
            listener,
            max,
            shutdown,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_udp_listener_gets_the_receive_buffer_the_kernel_allows() {
        let socket = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let got = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Linux reports twice what it granted (the doubling covers its bookkeeping).
        assert_eq!(got, 2 * UDP_RECV_BUFFER.min(max));
    }
}
