//! HTTPS served by the binary with certificate files (`server.tls.mode = "files"`): the app
//! over https with HSTS, plain HTTP on the redirect port sent to https, a renewed certificate
//! served without a restart, and a start refused in one line when the files are wrong.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
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
