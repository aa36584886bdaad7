//! HTTPS served by the binary with certificate files (`server.tls.mode = "files"`): the app
//! over https with HSTS, plain HTTP on the redirect port sent to https, a renewed certificate
//! served without a restart, and a start refused in one line when the files are wrong.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{start, talkconnect, workdir};

/// A certificate for localhost and 127.0.0.1, written as cert.pem/key.pem in `dir`; answers
/// the certificate's PEM (what a client trusts).
fn write_pair(dir: &Path) -> String {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    // The key first: a reload between the two writes sees a mismatched pair and waits.
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    made.cert.pem()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn with_tls(dir: &Path) -> Command {
    let mut cmd = talkconnect(dir);
    cmd.env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
        .env("TALKCONNECT__SERVER__PORT", "0")
        .env("TALKCONNECT__SERVER__TLS__MODE", "files")
        .env("TALKCONNECT__SERVER__TLS__CERT_FILE", dir.join("cert.pem"))
        .env("TALKCONNECT__SERVER__TLS__KEY_FILE", dir.join("key.pem"));
    cmd
}

/// A client that trusts `cert_pem` only and reaches `localhost` at `address`.
fn client_trusting(cert_pem: &str, address: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", address)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[test]
fn certificate_files_serve_https_redirect_http_and_reload_without_a_restart() {
    let dir = workdir();
    let first = write_pair(&dir);
    let redirect_port = free_port();
    let mut cmd = with_tls(&dir);
    cmd.env(
        "TALKCONNECT__SERVER__TLS__REDIRECT_PORT",
        redirect_port.to_string(),
    )
    .env("TALKCONNECT__SERVER__TLS__RELOAD_SECS", "1");
    let server = start(cmd);
    let address: SocketAddr = server.address.parse().unwrap();
    let port = address.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = client_trusting(&first, address);
        let health = client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(
            health.headers()["strict-transport-security"],
            "max-age=31536000"
        );
        // The Socket.IO handshake over https (the official client over wss: e2e/gateway/tls).
        let open = client
            .get(format!(
                "https://localhost:{port}/socket.io/?EIO=4&transport=polling"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(open.status(), 200);
        assert!(open.text().await.unwrap().contains(r#""sid""#));

        // Plain HTTP: sent to https with the path and query, except the health probes.
        let plain = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let redirected = plain
            .post(format!("http://localhost:{redirect_port}/r/abc?lang=vi"))
            .send()
            .await
            .unwrap();
        assert_eq!(redirected.status(), 308);
        assert_eq!(
            redirected.headers()["location"],
            format!("https://localhost:{port}/r/abc?lang=vi").as_str()
        );
        let probe = plain
            .get(format!("http://127.0.0.1:{redirect_port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(probe.status(), 200);
        assert!(
            plain
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .is_err(),
            "no plain HTTP on the https port"
        );

        // A renewed pair is served from the next handshake on.
        let second = write_pair(&dir);
        let renewed = client_trusting(&second, address);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = renewed
                .get(format!("https://localhost:{port}/healthz"))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status() == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the renewed certificate is not served"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let old = client_trusting(&first, address)
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await;
        assert!(old.is_err(), "the old certificate is no longer served");
    });
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn wrong_certificate_files_stop_the_start_in_one_line_naming_the_setting() {
    let dir = workdir();
    write_pair(&dir);
    let other = workdir();
    write_pair(&other);
    let cases: [(&str, &Path, &str); 3] = [
        (
            "TALKCONNECT__SERVER__TLS__CERT_FILE",
            &dir.join("missing.pem"),
            "server.tls.cert_file",
        ),
        (
            "TALKCONNECT__SERVER__TLS__KEY_FILE",
            &dir.join("cert.pem"),
            "server.tls.key_file",
        ),
        (
            "TALKCONNECT__SERVER__TLS__KEY_FILE",
            &other.join("key.pem"),
            "server.tls.key_file",
        ),
    ];
    for (key, value, named) in cases {
        let output = with_tls(&dir).env(key, value).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{key}={}", value.display());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(named), "{stderr}");
    }
    let output = with_tls(&dir)
        .env("TALKCONNECT__SERVER__TLS__CERT_FILE", "")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("server.tls.cert_file"));
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(other).unwrap();
}

/// One STUN exchange over a stream: writes `request`, reads one whole message back.
async fn stun_exchange<S>(stream: &mut S, request: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.unwrap();
    let mut head = [0u8; 20];
    stream.read_exact(&mut head).await.unwrap();
    let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut answer = head.to_vec();
    answer.resize(20 + length, 0);
    stream.read_exact(&mut answer[20..]).await.unwrap();
    answer
}

#[test]
fn turn_over_tls_shares_the_https_port_with_the_app() {
    use talkconnect::turn::message::{self as stun, Builder, Class, Message};

    let dir = workdir();
    let cert = write_pair(&dir);
    let mut cmd = with_tls(&dir);
    cmd.env("TALKCONNECT__TURN__ENABLED", "true")
        .env("TALKCONNECT__TURN__LISTEN_IP", "127.0.0.1")
        .env("TALKCONNECT__TURN__UDP_PORT", "0")
        .env("TALKCONNECT__TURN__TCP_PORT", "0")
        .env("TALKCONNECT__TURN__RELAY_PORT_MIN", "45200")
        .env("TALKCONNECT__TURN__RELAY_PORT_MAX", "45209")
        .env("TALKCONNECT__TURN__SECRET", "shared-port-secret")
        .env("TALKCONNECT__SFU__BIND_IP", "127.0.0.1")
        .env("TALKCONNECT__SFU__UDP_PORT_MIN", "45210")
        .env("TALKCONNECT__SFU__UDP_PORT_MAX", "45219");
    let server = start(cmd);
    let address: SocketAddr = server.address.parse().unwrap();
    let port = address.port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The app, over https (HTTP/1.1 and HTTP/2 alike), on the port TURN shares.
        let client = client_trusting(&cert, address);
        let health = client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let guest: serde_json::Value = client
            .post(format!("https://localhost:{port}/api/auth/guest"))
            .json(&serde_json::json!({"displayName": "Shared port"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = guest["token"].as_str().unwrap();
        let servers: serde_json::Value = client
            .get(format!("https://localhost:{port}/api/ice-servers"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let turn = &servers["iceServers"][0];
        assert_eq!(
            turn["urls"],
            serde_json::json!([format!("turns:localhost:{port}?transport=tcp")]),
            "{servers}"
        );
        let username = turn["username"].as_str().unwrap();
        let password = turn["credential"].as_str().unwrap();

        // TURN over TLS on the same port, with and without the stun.turn ALPN.
        for alpn in [Vec::new(), vec![b"stun.turn".to_vec()]] {
            let mut roots = rustls::RootCertStore::empty();
            for der in rustls_pemfile_certs(&cert) {
                roots.add(der).unwrap();
            }
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = alpn.clone();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();

            let first = Builder::new(stun::ALLOCATE, Class::Request, rand::random())
                .attribute(stun::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
                .finish(None);
            let answer = stun_exchange(&mut tls, &first).await;
            let challenge = Message::parse(&answer).expect("a STUN answer on the https port");
            assert_eq!(challenge.class, Class::Error, "alpn {alpn:?}");
            let realm = challenge.text(stun::REALM).unwrap().to_owned();
            let nonce = challenge.text(stun::NONCE).unwrap().to_owned();
            let key = stun::long_term_key(username, &realm, password);
            let allocate = Builder::new(stun::ALLOCATE, Class::Request, rand::random())
                .attribute(stun::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
                .attribute(stun::USERNAME, username.as_bytes())
                .attribute(stun::REALM, realm.as_bytes())
                .attribute(stun::NONCE, nonce.as_bytes())
                .finish(Some(&key));
            let answer = stun_exchange(&mut tls, &allocate).await;
            let allocated = Message::parse(&answer).unwrap();
            assert_eq!(allocated.class, Class::Success, "alpn {alpn:?}");
            let relayed = allocated.xor_address(stun::XOR_RELAYED_ADDRESS).unwrap();
            assert!((45200..=45209).contains(&relayed.port()), "{relayed}");
        }
    });
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}
