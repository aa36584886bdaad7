//! HTTPS in the binary (`[server.tls]`): browsers give a page its microphone and camera only
//! over https, so a server reached from another machine needs it.
//!
//! - `off`: plain HTTP (the default, fine on localhost);
//! - `files`: a PEM certificate chain and key; the files are watched and a renewed pair is
//!   served from the next handshake on, without a restart (a broken pair is refused and the
//!   current one kept);
//! - `self-signed`: a certificate made once and kept under `data_dir/tls/`, for a LAN or an
//!   address without a domain. Browsers warn about it, so no HSTS is sent with it.
//! - `acme`: certificates ordered from an ACME CA and renewed in the background (src/acme.rs);
//!   the resolver also answers TLS-ALPN-01's `acme-tls/1` handshakes with their challenge
//!   certificate.
//!
//! With TLS on, `redirect_port` (when not 0) answers plain HTTP with a redirect to https.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::acme::{self, ACME_TLS_ALPN, Http01Tokens};
use crate::config::{AcmeChallenge, ConfigError, ServerSettings, TlsMode};

/// The HTTPS side of the server: the rustls configuration and what the app adds to answers.
pub struct Tls {
    pub config: rustls::ServerConfig,
    /// Send `Strict-Transport-Security` (not with a self-signed certificate: a browser could
    /// then no longer click through its warning). In acme mode it turns on with the first
    /// certificate from the CA.
    pub hsts: Arc<AtomicBool>,
    /// ACME's HTTP-01 answers, served on the plain-HTTP port (acme mode with http-01).
    pub http01: Option<Arc<Http01Tokens>>,
}

impl Tls {
    /// The TLS side for these settings; `None` when TLS is off. Errors name the setting.
    pub fn from_settings(
        server: &ServerSettings,
        shutdown: CancellationToken,
    ) -> Result<Option<Tls>, ConfigError> {
        let tls = &server.tls;
        let mut alpn = Vec::new();
        let mut http01 = None;
        let (resolver, hsts) = match tls.mode {
            TlsMode::Off => return Ok(None),
            TlsMode::Files => {
                let pair = CertFiles {
                    cert: tls.cert_file.clone(),
                    key: tls.key_file.clone(),
                };
                let resolver = Arc::new(Resolver::new(pair.load()?));
                if tls.reload_secs > 0 {
                    let watched = Arc::clone(&resolver);
                    let every = Duration::from_secs(tls.reload_secs);
                    tokio::spawn(watch(pair, watched, every, shutdown));
                }
                (resolver, Arc::new(AtomicBool::new(true)))
            }
            TlsMode::SelfSigned => {
                let (cert, key) = self_signed(server)?;
                let pair = CertFiles { cert, key };
                (
                    Arc::new(Resolver::new(pair.load()?)),
                    Arc::new(AtomicBool::new(false)),
                )
            }
            TlsMode::Acme => {
                let serving = acme::start(server, shutdown)?;
                if tls.acme_challenge == AcmeChallenge::TlsAlpn01 {
                    alpn.push(ACME_TLS_ALPN.to_vec());
                }
                http01 = serving.http01;
                (serving.resolver, serving.hsts)
            }
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("server.tls: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
        // actix puts h2 and http/1.1 before these (browsers open websockets over http/1.1);
        // acme-tls/1 is chosen only by a CA that offers nothing else.
        config.alpn_protocols = alpn;
        Ok(Some(Tls {
            config,
            hsts,
            http01,
        }))
    }
}
/// The certificate served, swapped whole when the files change or a new one is issued; and
/// TLS-ALPN-01's challenge certificates, by name, while the CA checks them.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Resolver {
    pub fn new(first: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
            challenges: RwLock::default(),
        }
    }

    /// Served from the next handshake on.
    pub fn serve(&self, key: CertifiedKey) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
    }

    pub fn set_challenge(&self, name: &str, key: CertifiedKey) {
        self.challenges
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_ascii_lowercase(), Arc::new(key));
    }

    pub fn clear_challenge(&self, name: &str) {
        self.challenges
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&name.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only the challenge certificate of the name asked for (RFC 8737), or no handshake.
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&name)
                .cloned();
        }
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn load(&self) -> Result<CertifiedKey, ConfigError> {
        let cert_pem = read("server.tls.cert_file", &self.cert)?;
        let key_pem = read("server.tls.key_file", &self.key)?;
        certified_key(&cert_pem, &key_pem)
    }

    /// When either file last changed (the later of the two).
    fn modified(&self) -> Option<SystemTime> {
        let cert = std::fs::metadata(&self.cert)
            .and_then(|m| m.modified())
            .ok()?;
        let key = std::fs::metadata(&self.key)
            .and_then(|m| m.modified())
            .ok()?;
        Some(cert.max(key))
    }
}

fn read(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError(format!("{setting}: {}: {e}", path.display())))
}

/// A certificate chain and its key, checked to belong together.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError(format!("server.tls.cert_file: not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError(
            "server.tls.cert_file: holds no certificate".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| ConfigError(format!("server.tls.key_file: not a PEM private key: {e}")))?;
    let key =
        any_supported_type(&key).map_err(|e| ConfigError(format!("server.tls.key_file: {e}")))?;
    let certified = CertifiedKey::new(certs, key);
    certified.keys_match().map_err(|_| {
        ConfigError("server.tls.key_file: not the key of server.tls.cert_file".to_owned())
    })?;
    Ok(certified)
}

/// Serves a renewed pair from the next handshake on; a broken one is logged and skipped.
async fn watch(
    files: CertFiles,
    resolver: Arc<Resolver>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut seen = files.modified();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = files.modified();
        if now == seen {
            continue;
        }
        seen = now;
        match files.load() {
            Ok(pair) => {
                resolver.serve(pair);
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded; still serving the previous one");
            }
        }
    }
}

/// The self-signed pair under `data_dir/tls/`, made on first use for `server.tls.domain`
/// (or localhost) and the listening address.
fn self_signed(server: &ServerSettings) -> Result<(PathBuf, PathBuf), ConfigError> {
    let dir = server.data_dir.join("tls");
    let cert = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let mut names = server.tls.domains();
    names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
    if !server.host.is_unspecified() && !server.host.is_loopback() {
        names.push(server.host.to_string());
    }
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| {
        ConfigError(format!(
            "server.tls: cannot make a self-signed certificate: {e}"
        ))
    })?;
    let write = |path: &Path, pem: String| {
        std::fs::create_dir_all(&dir)
            .and_then(|()| write_private(path, pem.as_bytes()))
            .map_err(|e| ConfigError(format!("server.data_dir: {}: {e}", path.display())))
    };
    write(&key, made.signing_key.serialize_pem())?;
    write(&cert, made.cert.pem())?;
    tracing::warn!(
        cert = %cert.display(),
        "TLS: serving a self-signed certificate; browsers warn until it is trusted (use server.tls.mode = \"files\" with a real certificate on the internet)"
    );
    Ok((cert, key))
}

/// Writes a file only its owner may read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let (cert, key) = pair("example.test");
        assert!(certified_key(cert.as_bytes(), key.as_bytes()).is_ok());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_by_name() {
        let (cert, _) = pair("a.test");
        let (_, other_key) = pair("b.test");
        let err = certified_key(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(err.0.starts_with("server.tls.key_file:"), "{err}");
    }

    #[test]
    fn garbage_is_refused_by_name() {
        let (_, key) = pair("a.test");
        let err = certified_key(b"not a certificate", key.as_bytes()).unwrap_err();
        assert!(err.0.starts_with("server.tls.cert_file:"), "{err}");
        let (cert, _) = pair("a.test");
        let err = certified_key(cert.as_bytes(), b"-----BEGIN NOTHING-----").unwrap_err();
        assert!(err.0.starts_with("server.tls.key_file:"), "{err}");
    }
}
