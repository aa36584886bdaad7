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

/// Binds the relay's UDP and TCP listeners and serves them until `shutdown`. Errors name the
/// setting whose port could not be bound.
pub async fn listen(
    server: &Arc<TurnServer>,
    shutdown: CancellationToken,
) -> Result<(), (&'static str, std::io::Error)> {
    let config = server.config();
    if config.udp_port != 0 {
        let socket = UdpSocket::bind((config.listen_ip, config.udp_port))
            .await
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
