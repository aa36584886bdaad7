//! Certificates from an ACME CA (`server.tls.mode = "acme"`) against Debian's pebble (the
//! test CA of Let's Encrypt) and its pebble-challtestsrv as the DNS server that resolves the
//! test domain to 127.0.0.1: issued and served, kept across a restart, renewed without a
//! restart; a challenge the CA cannot check, and a CA that cannot be reached, leave the server
//! up and are retried; acme mode without a domain stops the start.
//!
//! Needs `pebble` and `pebble-challtestsrv` on the PATH (Debian's `pebble`; scripts/test
//! installs it).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::{talkconnect, workdir};

/// The name the certificates are ordered for; the test DNS server answers 127.0.0.1 for it.
const DOMAIN: &str = "talk.acme-test.example";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// pebble and its DNS server, on their own ports, stopped on drop.
struct Pebble {
    processes: Vec<Child>,
    /// The CA of pebble's own https listeners (directory and management API).
    listener_ca: PathBuf,
    directory: String,
    management: u16,
}

impl Pebble {
    /// pebble checks challenges on `http_port` (http-01) and `tls_port` (tls-alpn-01) of
    /// 127.0.0.1, and issues certificates valid for `validity_secs`.
    fn start(dir: &Path, http_port: u16, tls_port: u16, validity_secs: u64) -> Pebble {
        let listener_ca = dir.join("pebble-listener-ca.pem");
        let (cert, key) = listener_pair(&listener_ca);
        std::fs::write(dir.join("pebble-cert.pem"), cert).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key).unwrap();
        let (acme, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        // DNS only (A records: 127.0.0.1 for every name, no AAAA); its challenge servers off.
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args([
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian's pebble) is installed");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian's pebble) is installed");
        let pebble = Pebble {
            processes: vec![dns_server, pebble],
            listener_ca,
            directory: format!("https://127.0.0.1:{acme}/dir"),
            management,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while pebble.fetch(&pebble.directory).is_err() {
            assert!(Instant::now() < deadline, "pebble does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        pebble
    }

    fn fetch(&self, url: &str) -> Result<String, reqwest::Error> {
        let ca = std::fs::read(&self.listener_ca).unwrap();
        let client = reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        client.get(url).send()?.error_for_status()?.text()
    }

    /// From the management API: the root or the intermediate (PEM) pebble made at its start.
    fn management(&self, path: &str) -> String {
        self.fetch(&format!("https://127.0.0.1:{}{path}", self.management))
            .unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// A certificate for localhost/127.0.0.1 signed by a CA written to `ca_path`: (cert, key) PEM.
fn listener_pair(ca_path: &Path) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "TalkConnect test CA for pebble");
    let issuer = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    std::fs::write(ca_path, issuer.as_ref().pem()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The binary running, with every line it logged.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on https://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(address.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs the address it listens on")
            .parse()
            .unwrap();
        Server {
            child,
            address,
            log,
        }
    }

    /// Waits for a logged line containing every one of `parts`.
    fn wait_for_line(&self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|line| parts.iter().all(|part| line.contains(part)))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {parts:?} in the log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn acme_server(dir: &Path, pebble: &Pebble, port: u16) -> Command {
    let mut cmd = talkconnect(dir);
    cmd.env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
        .env("TALKCONNECT__SERVER__PORT", port.to_string())
        .env("TALKCONNECT__SERVER__TLS__MODE", "acme")
        .env("TALKCONNECT__SERVER__TLS__DOMAIN", DOMAIN)
        .env(
            "TALKCONNECT__SERVER__TLS__ACME_DIRECTORY",
            &pebble.directory,
        )
        .env(
            "TALKCONNECT__SERVER__TLS__ACME_CA_FILE",
            &pebble.listener_ca,
        )
        .env(
            "TALKCONNECT__SERVER__TLS__ACME_EMAIL",
            "admin@acme-test.example",
        );
    cmd
}

/// Connects to `DOMAIN` at `address` trusting only `root_pem`: the leaf certificate served
/// (DER) and the HSTS header, or the TLS error.
fn served(root_pem: &str, address: SocketAddr) -> Result<(Vec<u8>, Option<String>), String> {
    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .resolve(DOMAIN, address)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let answer = client
        .get(format!("https://{DOMAIN}:{}/healthz", address.port()))
        .send()
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(answer.status(), 200);
    let leaf = answer
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .unwrap()
        .to_vec();
    let hsts = answer
        .headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((leaf, hsts))
}

/// Waits until `served` succeeds with a leaf other than `not`.
fn wait_for_certificate(root_pem: &str, address: SocketAddr, not: Option<&[u8]>) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = served(root_pem, address);
        match &answer {
            Ok((leaf, _)) if Some(leaf.as_slice()) != not => return leaf.clone(),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no (new) certificate from pebble served: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn issuer_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.issuer().to_string()
}

fn subject_of_pem(pem: &str) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.subject().to_string()
}

/// Anything https, the placeholder included: does the server answer at all?
fn answers_https(address: SocketAddr) -> bool {
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{}/healthz", address.port()))
        .send()
        .is_ok_and(|a| a.status() == 200)
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_certificate_from_the_ca_is_served_kept_across_a_restart_and_renewed_without_one() {
    let dir = workdir();
    let port = free_port();
    // Short-lived certificates: renewal is due a third of the lifetime before expiry.
    let pebble = Pebble::start(&dir, free_port(), port, 60);
    let root = pebble.management("/roots/0");
    let intermediate = pebble.management("/intermediates/0");

    let server = Server::start(acme_server(&dir, &pebble, port));
    let first = wait_for_certificate(&root, server.address, None);
    assert_eq!(issuer_of(&first), subject_of_pem(&intermediate));
    let (_, hsts) = served(&root, server.address).unwrap();
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    let acme_dir = dir.join("data").join("tls").join("acme");
    #[cfg(unix)]
    for private in ["key.pem", "account.json"] {
        assert_eq!(mode_of(&acme_dir.join(private)), 0o600, "{private}");
    }
    server.wait_for_line(
        &["TLS (ACME): new certificate served"],
        Duration::from_secs(10),
    );

    // A restart serves the stored certificate from the first handshake on.
    drop(server);
    let server = Server::start(acme_server(&dir, &pebble, port));
    let (stored, _) = served(&root, server.address).expect("the stored certificate at once");
    assert_eq!(stored, first);

    // Renewed by the running server, and served without a restart.
    let renewed = wait_for_certificate(&root, server.address, Some(&first));
    assert_ne!(renewed, first);
    assert_eq!(issuer_of(&renewed), subject_of_pem(&intermediate));
    drop(server);
    drop(pebble);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn http_01_on_the_redirect_port_gets_a_certificate_too() {
    let dir = workdir();
    let (port, redirect_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, redirect_port, free_port(), 3600);
    let root = pebble.management("/roots/0");
    let mut cmd = acme_server(&dir, &pebble, port);
    cmd.env("TALKCONNECT__SERVER__TLS__ACME_CHALLENGE", "http-01")
        .env(
            "TALKCONNECT__SERVER__TLS__REDIRECT_PORT",
            redirect_port.to_string(),
        );
    let server = Server::start(cmd);
    let leaf = wait_for_certificate(&root, server.address, None);
    assert_eq!(
        issuer_of(&leaf),
        subject_of_pem(&pebble.management("/intermediates/0"))
    );
    // A token that is not under way is not answered.
    let unknown = reqwest::blocking::get(format!(
        "http://127.0.0.1:{redirect_port}/.well-known/acme-challenge/nothing-here"
    ))
    .unwrap();
    assert_eq!(unknown.status(), 404);
    drop(server);
    drop(pebble);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_challenge_the_ca_cannot_check_leaves_the_server_up_and_is_retried() {
    let dir = workdir();
    let (port, redirect_port) = (free_port(), free_port());
    // pebble checks TLS-ALPN-01 on a port nobody answers.
    let pebble = Pebble::start(&dir, free_port(), free_port(), 3600);
    let root = pebble.management("/roots/0");
    let mut cmd = acme_server(&dir, &pebble, port);
    cmd.env(
        "TALKCONNECT__SERVER__TLS__REDIRECT_PORT",
        redirect_port.to_string(),
    );
    let server = Server::start(cmd);
    let line = server.wait_for_line(
        &["no certificate for server.tls.domain", "next try in 30 s"],
        Duration::from_secs(90),
    );
    assert!(line.contains(DOMAIN), "{line}");
    // The CA's reason (pebble's words): it could not connect for the challenge.
    assert!(line.contains("Failed to connect"), "{line}");
    // Still serving: the placeholder over https, and plain HTTP on the redirect port.
    assert!(answers_https(server.address));
    let probe =
        reqwest::blocking::get(format!("http://127.0.0.1:{redirect_port}/healthz")).unwrap();
    assert_eq!(probe.status(), 200);
    assert!(
        served(&root, server.address).is_err(),
        "no certificate from pebble"
    );
    drop(server);
    drop(pebble);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unreachable_ca_leaves_the_server_up_and_is_retried() {
    let dir = workdir();
    let mut cmd = talkconnect(&dir);
    cmd.env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
        .env("TALKCONNECT__SERVER__PORT", "0")
        .env("TALKCONNECT__SERVER__TLS__MODE", "acme")
        .env("TALKCONNECT__SERVER__TLS__DOMAIN", DOMAIN)
        .env(
            "TALKCONNECT__SERVER__TLS__ACME_DIRECTORY",
            format!("https://127.0.0.1:{}/dir", free_port()),
        );
    let server = Server::start(cmd);
    let line = server.wait_for_line(
        &["no certificate for server.tls.domain", "next try in 30 s"],
        Duration::from_secs(60),
    );
    assert!(line.to_lowercase().contains("connect"), "{line}");
    assert!(answers_https(server.address));
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn acme_mode_without_a_domain_stops_the_start_naming_the_setting() {
    let dir = workdir();
    let output = talkconnect(&dir)
        .env("TALKCONNECT__SERVER__TLS__MODE", "acme")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains("server.tls.domain"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
