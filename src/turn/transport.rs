//! How clients reach the relay: UDP datagrams, and framed streams (TCP, or TLS handed over by
//! the HTTPS listener). A stream carries STUN messages and padded ChannelData back to back
//! (RFC 8656 §12.5); each frame is read whole, within a bound, before it is handled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::message::{self as stun, HEADER_LEN};
use super::server::{Client, MAX_DATAGRAM, Reply, STREAM_QUEUE, TurnServer};

/// A stream that holds no allocation after this long is closed.
const IDLE_STREAM: Duration = Duration::from_secs(30);
/// Largest frame a stream may announce (a STUN message or ChannelData with its padding).
const MAX_FRAME: usize = HEADER_LEN + MAX_DATAGRAM;

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// Serves TURN over UDP on `socket` until the server stops.
pub async fn serve_udp(
    server: Arc<TurnServer>,
    socket: UdpSocket,
    stop: tokio_util::sync::CancellationToken,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let Ok((n, from)) = received else {
            continue;
        };
        let client = Client {
            addr: from,
            conn: 0,
        };
        let reply = Reply::Udp {
            socket: Arc::clone(&socket),
            to: from,
        };
        server.handle(client, &reply, &buf[..n]).await;
    }
}

/// Serves TURN over TCP on `listener`, with at most `max_connections` open at once.
pub async fn serve_tcp(
    server: Arc<TurnServer>,
    listener: TcpListener,
    max_connections: usize,
    stop: tokio_util::sync::CancellationToken,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        if open.fetch_add(1, Ordering::AcqRel) >= max_connections {
            open.fetch_sub(1, Ordering::AcqRel);
            continue; // dropped: closed at once
        }
        let _ = stream.set_nodelay(true);
        let server = Arc::clone(&server);
        let open = Arc::clone(&open);
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_stream(server, stream, peer, Vec::new(), stop).await;
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// One stream client until it closes, idles without an allocation, or the server stops.
/// `already` holds bytes read from the stream before it was handed over (the sniffed start).
pub async fn serve_stream<S>(
    server: Arc<TurnServer>,
    stream: S,
    peer: SocketAddr,
    already: Vec<u8>,
    stop: tokio_util::sync::CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Client {
        addr: peer,
        conn: CONNECTIONS.fetch_add(1, Ordering::Relaxed),
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(STREAM_QUEUE);
    let writing = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let reply = Reply::Stream(tx);
    let mut buf = already;
    'read: loop {
        // Whole frames first, from what has been read.
        while buf.len() >= 4 {
            match stun::stream_frame_len(&buf) {
                // Not TURN, or a frame larger than any we relay: the connection ends.
                None => break 'read,
                Some(len) if len > MAX_FRAME => break 'read,
                Some(len) if buf.len() < len => break,
                Some(len) => {
                    let frame: Vec<u8> = buf.drain(..len).collect();
                    server.handle(client, &reply, &frame).await;
                }
            }
        }
        let mut chunk = [0u8; 4096];
        let idle = if server.has_allocation(client) {
            Duration::from_secs(u64::from(server.config().max_lifetime_secs) + 60)
        } else {
            IDLE_STREAM
        };
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(idle, reader.read(&mut chunk)) => r,
        };
        match read {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    server.client_gone(client);
    drop(reply);
    let _ = writing.await;
}
