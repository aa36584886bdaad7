//! The doctor's way to the server running on this machine: one HTTP/1.1 request per
//! connection, plain or over TLS. The certificate is not verified here (the doctor reaches the
//! server by a local address its certificate is not for; the certificate has a check of its
//! own), and only answers of a few KiB are read.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Longest answer read: the doctor's requests get small JSON bodies.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(3);

/// Where the server listens and whether it speaks TLS there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WebTarget {
    pub at: SocketAddr,
    pub tls: bool,
}

impl WebTarget {
    /// `at` as a client reaches it: an unspecified listening address means this machine.
    pub fn new(at: SocketAddr, tls: bool) -> Self {
        let at = match at.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], at.port())),
            IpAddr::V6(v6) if v6.is_unspecified() => {
                SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), at.port())
            }
            _ => at,
        };
        WebTarget { at, tls }
    }

    /// Sends one request; answers the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<&str>,
    ) -> Result<(u16, String), String> {
        let stream = TcpStream::connect_timeout(&self.at, TIMEOUT)
            .map_err(|e| format!("{}: {e}", self.at))?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.at
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = json.unwrap_or_default();
        if json.is_some() {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body);
        let answer = if self.tls {
            let server_name = ServerName::from(self.at.ip());
            let connection =
                rustls::ClientConnection::new(Arc::new(unverified_client()), server_name)
                    .map_err(|e| e.to_string())?;
            exchange(rustls::StreamOwned::new(connection, stream), &head)?
        } else {
            exchange(stream, &head)?
        };
        parse(&answer).ok_or_else(|| format!("{}: not an HTTP answer", self.at))
    }
}

fn exchange(mut stream: impl Read + Write, request: &str) -> Result<Vec<u8>, String> {
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // A TLS peer that closes without close_notify, or a read timeout after the body, still
    // leaves a usable answer.
    let _ = stream.take(MAX_ANSWER_BYTES).read_to_end(&mut answer);
    Ok(answer)
}

/// Status and body of an HTTP/1.1 answer (Content-Length or chunked).
fn parse(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    if !chunked {
        return Some((status, body.to_owned()));
    }
    let mut rest = body;
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some((status, out));
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

/// A client that accepts whatever certificate the server presents, with the signatures
/// still checked by the provider.
fn unverified_client() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_a_length_or_in_chunks_are_read() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse(plain), Some((201, "{}".to_owned())));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse(chunked), Some((200, "{\"a\":1}".to_owned())));
        assert_eq!(parse(b"garbage"), None);
    }
}
