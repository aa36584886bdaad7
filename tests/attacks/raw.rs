//! A websocket spoken by hand over a TCP stream, so a test can send what no well-behaved
//! client would: a header announcing a gigabyte, a flood of pings, a reset instead of a close.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One frame as the client masks it (RFC 6455 §5.2), announcing `declared` bytes but
/// carrying `payload` (what follows may be sent separately).
pub fn frame_header(opcode: u8, fin: bool, declared: u64) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    if declared < 126 {
        out.push(0x80 | declared as u8);
    } else if declared <= u64::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(declared as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&declared.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]); // a zero mask: the payload goes as it is
    out
}

pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(opcode, true, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

pub fn text(payload: &str) -> Vec<u8> {
    frame(0x1, payload.as_bytes())
}

impl RawWs {
    /// Opens `/socket.io/?EIO=4&transport=websocket` (with `query` appended).
    pub async fn open(addr: &str, query: &str) -> RawWs {
        RawWs::open_with(addr, query, None).await
    }

    /// `open`, with a small receive buffer when the test plays a client that does not read
    /// (so the kernel does not absorb what the server's own cap should stop).
    pub async fn open_with(addr: &str, query: &str, recv_buffer: Option<u32>) -> RawWs {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
        let request = format!(
            "GET /socket.io/?EIO=4&transport=websocket{query} HTTP/1.1\r\nHost: {addr}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut ws = RawWs {
            stream,
            buf: Vec::new(),
        };
        // The 101 response head.
        loop {
            if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&ws.buf[..end]).to_string();
                assert!(head.starts_with("HTTP/1.1 101"), "{head}");
                ws.buf.drain(..end + 4);
                break;
            }
            let mut chunk = [0u8; 4096];
            let n = ws.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed during the handshake");
            ws.buf.extend_from_slice(&chunk[..n]);
        }
        ws
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next server frame: (opcode, payload); None when the connection ended.
    pub async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0F;
                let len7 = (self.buf[1] & 0x7F) as usize;
                let (len, start) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= start + len {
                    let payload = self.buf[start..start + len].to_vec();
                    self.buf.drain(..start + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next text frame, skipping pings and other control frames; None when closed.
    pub async fn next_text(&mut self) -> Option<String> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.next()).await {
                Ok(Some((0x1, payload))) => return Some(String::from_utf8(payload).unwrap()),
                Ok(Some((0x8, _))) | Ok(None) | Err(_) => return None,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Waits for the next text frame that starts with `prefix`.
    pub async fn expect(&mut self, prefix: &str) -> String {
        loop {
            let text = self.next_text().await.expect("the connection stays open");
            if text.starts_with(prefix) {
                return text;
            }
        }
    }

    /// True once the server has closed the connection (a close frame or end of stream)
    /// within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                match self.next().await {
                    None | Some((0x8, _)) => return,
                    Some(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    /// A Socket.IO client on "/" with the JWT: the open packet, then CONNECT.
    pub async fn socket_io(addr: &str, token: &str) -> RawWs {
        let mut ws = RawWs::open(addr, "").await;
        ws.expect("0{").await;
        ws.send(&text(&format!(r#"40{{"token":"{token}"}}"#)))
            .await
            .unwrap();
        ws.expect("40{").await;
        ws
    }

    /// Resets the TCP connection (SO_LINGER 0): no close frame, no FIN.
    pub fn reset(self) {
        let _ = self.stream.set_zero_linger();
        drop(self.stream);
    }
}
