//! `server.tls.mode = "acme"`: certificates for `server.tls.domain` ordered from an ACME CA
//! (RFC 8555; Let's Encrypt by default) and renewed by the running server.
//!
//! - The account key and the certificate live under `data_dir/tls/acme/` (private files 0600).
//!   A stored certificate for the configured names is served at once; until one exists a
//!   self-signed placeholder is, and the order runs in the background: the start never waits
//!   on the CA.
//! - The CA checks the names by TLS-ALPN-01 (RFC 8737: on the https port itself, the
//!   `acme-tls/1` protocol answered with a challenge certificate by `tls::Resolver`) or by
//!   HTTP-01 (a token under `/.well-known/acme-challenge/` on the plain-HTTP redirect port).
//! - A certificate is renewed `acme_renew_days` before it expires (at most a third of its
//!   lifetime before), and the new one served from the next handshake on. A failed order is
//!   logged in one line and tried again after 30 s, then twice as long each time, up to an hour.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::{AcmeChallenge, ConfigError, ServerSettings};
use crate::tls::{Resolver, certified_key, write_private};

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

const FIRST_RETRY: Duration = Duration::from_secs(30);
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// One request to the CA.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The CA checking the challenges, then signing.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);

/// What the TLS side serves in acme mode.
pub struct Serving {
    pub resolver: Arc<Resolver>,
    /// On once a certificate from the CA is served (never with the placeholder).
    pub hsts: Arc<AtomicBool>,
    /// HTTP-01's answers, for the route on the plain-HTTP port.
    pub http01: Option<Arc<Http01Tokens>>,
}

/// Tokens of the HTTP-01 challenges under way and their key authorizations.
#[derive(Debug, Default)]
pub struct Http01Tokens(RwLock<HashMap<String, String>>);

impl Http01Tokens {
    fn set(&self, token: String, key_authorization: String) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token, key_authorization);
    }

    fn remove(&self, token: &str) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(token);
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
    }
}

/// `GET /.well-known/acme-challenge/{token}`: the key authorization while a challenge is under
/// way, 404 otherwise.
pub async fn http01_answer(
    tokens: web::Data<Http01Tokens>,
    token: web::Path<String>,
) -> HttpResponse {
    match tokens.get(&token) {
        Some(answer) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(answer),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Serves the stored certificate (or a placeholder) and starts ordering and renewing in the
/// background. Errors are the settings' (a CA root file that cannot be read, a data_dir that
/// cannot be written); the CA itself is never asked here.
pub fn start(server: &ServerSettings, shutdown: CancellationToken) -> Result<Serving, ConfigError> {
    let tls = &server.tls;
    let names = tls.domains();
    let store = Store {
        dir: server.data_dir.join("tls").join("acme"),
    };
    std::fs::create_dir_all(&store.dir)
        .map_err(|e| ConfigError(format!("server.data_dir: {}: {e}", store.dir.display())))?;
    let http = AcmeHttp::new(&tls.acme_ca_file)?;
    let stored = store.certificate().filter(|c| c.names_cover(&names));
    let now = OffsetDateTime::now_utc();
    let (first, hsts, current) = match stored {
        Some(stored) if stored.facts.not_after > now => {
            tracing::info!(
                names = %names.join(","),
                "TLS (ACME): serving the stored certificate, valid until {}",
                stored.facts.not_after
            );
            (stored.key, true, Some(stored.facts))
        }
        _ => (placeholder(&names)?, false, None),
    };
    let resolver = Arc::new(Resolver::new(first));
    let hsts = Arc::new(AtomicBool::new(hsts));
    let http01 =
        (tls.acme_challenge == AcmeChallenge::Http01).then(|| Arc::new(Http01Tokens::default()));
    let client = Client {
        names,
        directory: tls.acme_directory.clone(),
        email: tls.acme_email.clone(),
        challenge: tls.acme_challenge,
        renew_days: tls.acme_renew_days,
        http,
        store,
        resolver: Arc::clone(&resolver),
        hsts: Arc::clone(&hsts),
        http01: http01.clone(),
    };
    tokio::spawn(client.run(current, shutdown));
    Ok(Serving {
        resolver,
        hsts,
        http01,
    })
}

/// A self-signed certificate for the names, served until the CA's arrives.
fn placeholder(names: &[String]) -> Result<CertifiedKey, ConfigError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| {
        ConfigError(format!(
            "server.tls.domain: cannot make a placeholder certificate: {e}"
        ))
    })?;
    certified_key(
        made.cert.pem().as_bytes(),
        made.signing_key.serialize_pem().as_bytes(),
    )
}

/// When a certificate is due for renewal: `renew_days` before it expires, or a third of its
/// lifetime before when that is shorter (short-lived certificates).
pub fn renew_at(facts: &CertFacts, renew_days: u64) -> OffsetDateTime {
    let lifetime = facts.not_after - facts.not_before;
    let days = time::Duration::days(i64::try_from(renew_days).unwrap_or(i64::MAX / 86_400_000));
    facts.not_after - days.min(lifetime / 3)
}

/// Dates and names of a certificate chain's leaf.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub names: Vec<String>,
}

impl CertFacts {
    pub fn of_pem(chain_pem: &[u8]) -> Option<CertFacts> {
        let leaf = CertificateDer::pem_slice_iter(chain_pem).next()?.ok()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
        let names = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            Some(dns.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(CertFacts {
            not_before: parsed.validity().not_before.to_datetime(),
            not_after: parsed.validity().not_after.to_datetime(),
            names,
        })
    }
}

/// The certificate stored under `data_dir/tls/acme/`, for the doctor.
pub fn stored_facts(data_dir: &Path) -> Option<CertFacts> {
    let store = Store {
        dir: data_dir.join("tls").join("acme"),
    };
    CertFacts::of_pem(&std::fs::read(store.cert()).ok()?)
}

struct Stored {
    key: CertifiedKey,
    facts: CertFacts,
}

impl Stored {
    fn names_cover(&self, names: &[String]) -> bool {
        names.iter().all(|name| self.facts.names.contains(name))
    }
}

/// `data_dir/tls/acme/`: account.json (the account and its key), cert.pem (the chain),
/// key.pem (its key).
struct Store {
    dir: PathBuf,
}

/// account.json: the account, for the directory it was made on.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

impl Store {
    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn account(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    fn certificate(&self) -> Option<Stored> {
        let chain = std::fs::read(self.cert()).ok()?;
        let key = std::fs::read(self.key()).ok()?;
        let facts = CertFacts::of_pem(&chain)?;
        match certified_key(&chain, &key) {
            Ok(key) => Some(Stored { key, facts }),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "TLS (ACME): the stored certificate is unusable; ordering a new one");
                None
            }
        }
    }

    /// Replaces the pair; each file is written aside, then renamed over the old one.
    fn save_certificate(&self, chain: &str, key: &str) -> Result<(), OrderError> {
        replace_private(&self.key(), key.as_bytes())?;
        replace_private(&self.cert(), chain.as_bytes())
    }

    fn credentials(&self, directory: &str) -> Option<AccountCredentials> {
        let text = std::fs::read(self.account()).ok()?;
        let stored: StoredAccount = serde_json::from_slice(&text).ok()?;
        (stored.directory == directory).then_some(stored.credentials)
    }

    fn save_credentials(
        &self,
        directory: &str,
        credentials: AccountCredentials,
    ) -> Result<(), OrderError> {
        let stored = StoredAccount {
            directory: directory.to_owned(),
            credentials,
        };
        let text = serde_json::to_vec_pretty(&stored).map_err(|e| OrderError::Store {
            path: self.account(),
            source: std::io::Error::other(e),
        })?;
        replace_private(&self.account(), &text)
    }

    fn forget_account(&self) {
        let _ = std::fs::remove_file(self.account());
    }
}

fn replace_private(path: &Path, bytes: &[u8]) -> Result<(), OrderError> {
    let aside = path.with_extension("new");
    // A leftover from a stopped write keeps its old mode: start afresh.
    let _ = std::fs::remove_file(&aside);
    write_private(&aside, bytes)
        .and_then(|()| std::fs::rename(&aside, path))
        .map_err(|source| OrderError::Store {
            path: path.to_owned(),
            source,
        })
}

/// Why an order failed (logged, then tried again).
#[derive(Debug, thiserror::Error)]
enum OrderError {
    #[error("{0}")]
    Acme(String),
    #[error("the CA offers no {challenge} challenge for {name}")]
    NoChallenge {
        challenge: AcmeChallenge,
        name: String,
    },
    #[error("the authorization for {name} is {status:?}")]
    Authorization {
        name: String,
        status: AuthorizationStatus,
    },
    #[error("the order ended {0:?} after the challenges")]
    NotReady(OrderStatus),
    #[error("the CA's certificate is unusable: {0}")]
    Certificate(String),
    #[error("cannot store {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<instant_acme::Error> for OrderError {
    fn from(e: instant_acme::Error) -> Self {
        OrderError::Acme(error_chain(&e))
    }
}

/// An error and its causes, on one line ("client error (Connect): tcp connect error: …").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = next.source();
    }
    text
}

/// The ACME client of one server: orders, stores, serves.
struct Client {
    names: Vec<String>,
    directory: String,
    email: String,
    challenge: AcmeChallenge,
    renew_days: u64,
    http: AcmeHttp,
    store: Store,
    resolver: Arc<Resolver>,
    hsts: Arc<AtomicBool>,
    http01: Option<Arc<Http01Tokens>>,
}

/// A challenge answered, to take back after the order.
enum Answer {
    Alpn(String),
    Http(String),
}

impl Client {
    /// Orders when there is no certificate or it is due, sleeps until the next renewal
    /// otherwise; failures wait longer each time.
    async fn run(self, mut current: Option<CertFacts>, shutdown: CancellationToken) {
        let mut retry = FIRST_RETRY;
        let mut announced = false;
        loop {
            if let Some(facts) = &current {
                let due = renew_at(facts, self.renew_days);
                let wait = due - OffsetDateTime::now_utc();
                if wait.is_positive() {
                    if !announced {
                        tracing::info!(
                            names = %self.names.join(","),
                            "TLS (ACME): certificate valid until {}; renewal from {due}",
                            facts.not_after
                        );
                        announced = true;
                    }
                    // In steps, so a clock that jumps (a suspended machine) is caught up with.
                    let step = Duration::try_from(wait)
                        .unwrap_or(Duration::ZERO)
                        .min(Duration::from_secs(3600));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(step) => continue,
                    }
                }
            }
            let ordered = tokio::select! {
                _ = shutdown.cancelled() => return,
                ordered = self.order() => ordered,
            };
            match ordered {
                Ok(stored) => {
                    tracing::info!(
                        names = %self.names.join(","),
                        directory = %self.directory,
                        "TLS (ACME): new certificate served, valid until {}",
                        stored.facts.not_after
                    );
                    self.resolver.serve(stored.key);
                    self.hsts.store(true, Ordering::Relaxed);
                    current = Some(stored.facts);
                    retry = FIRST_RETRY;
                    announced = false;
                }
                Err(e) => {
                    tracing::warn!(
                        "TLS (ACME): no certificate for server.tls.domain = \"{}\" from server.tls.acme_directory = {} ({} challenge): {e}; next try in {} s",
                        self.names.join(","),
                        self.directory,
                        self.challenge,
                        retry.as_secs()
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(LONGEST_RETRY);
                }
            }
        }
    }

    async fn account(&self) -> Result<Account, OrderError> {
        let builder = || Account::builder_with_http(Box::new(self.http.clone()));
        if let Some(credentials) = self.store.credentials(&self.directory) {
            return Ok(builder().from_credentials(credentials).await?);
        }
        let contact = format!("mailto:{}", self.email);
        let contacts: Vec<&str> = if self.email.is_empty() {
            Vec::new()
        } else {
            vec![contact.as_str()]
        };
        let (account, credentials) = builder()
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory.clone(),
                None,
            )
            .await?;
        self.store.save_credentials(&self.directory, credentials)?;
        tracing::info!(directory = %self.directory, "TLS (ACME): account created");
        Ok(account)
    }

    /// One order, start to end: the stored and parsed certificate.
    async fn order(&self) -> Result<Stored, OrderError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .names
            .iter()
            .map(|name| Identifier::Dns(name.clone()))
            .collect();
        let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
            Ok(order) => order,
            Err(e) => {
                // A CA that forgot the account (a test CA restarted): make a new one next time.
                let gone = matches!(&e, instant_acme::Error::Api(problem)
                    if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"));
                if gone {
                    self.store.forget_account();
                }
                return Err(e.into());
            }
        };
        let mut answers = Vec::new();
        let proven = self.prove(&mut order, &mut answers).await;
        for answer in answers {
            match answer {
                Answer::Alpn(name) => self.resolver.clear_challenge(&name),
                Answer::Http(token) => {
                    if let Some(tokens) = &self.http01 {
                        tokens.remove(&token);
                    }
                }
            }
        }
        proven?;
        let key_pem = order.finalize().await?;
        let chain = order
            .poll_certificate(&RetryPolicy::new().timeout(VALIDATION_TIMEOUT))
            .await?;
        let key = certified_key(chain.as_bytes(), key_pem.as_bytes())
            .map_err(|e| OrderError::Certificate(e.to_string()))?;
        let facts = CertFacts::of_pem(chain.as_bytes())
            .ok_or_else(|| OrderError::Certificate("no readable leaf".to_owned()))?;
        self.store.save_certificate(&chain, &key_pem)?;
        Ok(Stored { key, facts })
    }

    /// Answers every pending authorization's challenge and waits for the CA to check them.
    async fn prove(&self, order: &mut Order, answers: &mut Vec<Answer>) -> Result<(), OrderError> {
        let kind = match self.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            let name = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                status => return Err(OrderError::Authorization { name, status }),
            }
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                return Err(OrderError::NoChallenge {
                    challenge: self.challenge,
                    name,
                });
            };
            let key_authorization = challenge.key_authorization();
            match (&self.http01, self.challenge) {
                (Some(tokens), AcmeChallenge::Http01) => {
                    tokens.set(
                        challenge.token.clone(),
                        key_authorization.as_str().to_owned(),
                    );
                    answers.push(Answer::Http(challenge.token.clone()));
                }
                _ => {
                    let certificate = alpn_certificate(&name, key_authorization.digest().as_ref())?;
                    self.resolver.set_challenge(&name, certificate);
                    answers.push(Answer::Alpn(name));
                }
            }
            challenge.set_ready().await?;
        }
        let status = order
            .poll_ready(&RetryPolicy::new().timeout(VALIDATION_TIMEOUT))
            .await?;
        if status != OrderStatus::Ready {
            return Err(OrderError::NotReady(status));
        }
        Ok(())
    }
}

/// TLS-ALPN-01's certificate for `name`: self-signed, carrying the SHA-256 of the key
/// authorization in the critical acmeIdentifier extension (RFC 8737, section 3).
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, OrderError> {
    let made = || -> Result<CertifiedKey, String> {
        let mut params =
            rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = any_supported_type(&der).map_err(|e| e.to_string())?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
    };
    made().map_err(|e| OrderError::Certificate(format!("tls-alpn-01 certificate: {e}")))
}

/// The HTTPS client that speaks to the CA: rustls on ring, the public roots (webpki-roots)
/// plus `server.tls.acme_ca_file`, no dependence on the machine's certificate store.
#[derive(Clone)]
struct AcmeHttp(HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl AcmeHttp {
    fn new(ca_file: &Path) -> Result<Self, ConfigError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if !ca_file.as_os_str().is_empty() {
            let bad = |why: String| {
                ConfigError(format!(
                    "server.tls.acme_ca_file: {}: {why}",
                    ca_file.display()
                ))
            };
            let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(bad("holds no certificate".to_owned()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("server.tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        Ok(Self(
            HyperClient::builder(TokioExecutor::new()).build(connector),
        ))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let answer = self.0.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(error_chain(&e).into())),
                Err(_) => Err(instant_acme::Error::Str("the CA did not answer in time")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(days_valid: i64) -> CertFacts {
        let not_before = OffsetDateTime::now_utc();
        CertFacts {
            not_before,
            not_after: not_before + time::Duration::days(days_valid),
            names: vec!["talk.example".to_owned()],
        }
    }

    #[test]
    fn renewal_is_due_the_set_days_before_expiry_or_a_third_of_a_short_lifetime() {
        let long = facts(90);
        assert_eq!(
            renew_at(&long, 30),
            long.not_after - time::Duration::days(30)
        );
        let short = facts(6);
        assert_eq!(
            renew_at(&short, 30),
            short.not_after - time::Duration::days(2)
        );
    }

    #[test]
    fn the_alpn_challenge_certificate_names_the_domain_and_carries_the_digest() {
        let digest = [7u8; 32];
        let made = alpn_certificate("talk.example", &digest).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&made.cert[0]).unwrap();
        let acme = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(acme.critical);
        // An OCTET STRING of the 32 bytes.
        assert_eq!(&acme.value[..2], &[0x04, 32]);
        assert_eq!(&acme.value[2..], &digest);
        let names = CertFacts::of_pem(pem_of(&made.cert[0]).as_bytes())
            .unwrap()
            .names;
        assert_eq!(names, vec!["talk.example".to_owned()]);
    }

    fn pem_of(der: &CertificateDer<'_>) -> String {
        use base64::Engine;
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        )
    }
}
