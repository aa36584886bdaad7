//! Settings: the embedded `config/default.toml`, then an optional `--config FILE`, then
//! environment variables `TALKCONNECT__SECTION__KEY`. Errors name the offending key.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use config::builder::{ConfigBuilder, DefaultState};
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any folder with nothing configured.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub rooms: RoomSettings,
    pub rate_limit: RateLimitSettings,
    pub realtime: RealtimeSettings,
    pub media: MediaSettings,
    pub sfu: crate::sfu::SfuConfig,
    pub turn: crate::turn::TurnConfig,
    pub redis: RedisSettings,
    pub cluster: ClusterSettings,
    pub retention: RetentionSettings,
    pub metrics: MetricsSettings,
    pub moderation: ModerationSettings,
    pub log: LogSettings,
}

/// The instance's admins and the key of the address hashes kept for guest bans
/// (docs/MODERATION.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModerationSettings {
    /// Usernames (registered accounts) or user ids.
    pub admins: Vec<String>,
    /// The HMAC key of `users.ip_hash`; empty = derived from the JWT secret (which every
    /// replica of a cluster already shares).
    pub ip_hash_secret: String,
}

/// Where Prometheus metrics are served (src/metrics): an admin address, the main port behind
/// a token, both, or (both empty) nowhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Admin `host:port` serving `/metrics` without a token; empty = none.
    pub listen: String,
    /// Bearer token for `/metrics` on the main port; empty = not served there.
    pub token: String,
}

impl MetricsSettings {
    /// The admin address, if one is set.
    pub fn listen_address(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let raw = self.listen.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(|_| {
            ConfigError(format!(
                "metrics.listen: {raw:?} is not an address and port (e.g. 127.0.0.1:9464)"
            ))
        })
    }
}

/// How long what strangers leave behind is kept (0 = forever).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Ended rooms, with their seats and chat, this many days after they ended.
    pub ended_room_days: u32,
    /// Guest accounts this many days after they were made (never before their token expires,
    /// and never while they hold a seat or a room names them).
    pub guest_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    pub mode: MediaMode,
    /// SFU sessions one person may hold at once on this server (one per seat).
    pub max_sessions_per_user: usize,
    /// SFU sessions from one client address at once (each holds a UDP port).
    pub max_sessions_per_ip: usize,
    /// What one browser may send in all, in kbit/s: the web app caps its video senders to it
    /// (in mesh mode divided among its peers). Handed out with the ICE servers.
    pub uplink_kbps: u32,
    /// The web app publishes its camera in 2–3 simulcast layers (SFU mode) and the SFU
    /// forwards each subscriber the one its link and tile size call for. Handed out in the
    /// `sfu:join` ack.
    pub simulcast: bool,
    /// The web app asks to send its microphone as redundant audio (RFC 2198 RED: each packet
    /// carries the last Opus frame again), where the browser can. The SFU forwards RED to
    /// listeners that take it and plain Opus to the others. Handed out in the `sfu:join` ack.
    pub audio_red: bool,
    /// A socket that vanished (no pong, a transport error: its network went away) leaves its
    /// SFU session waiting this long for `sfu:resume` from the page's next socket; the media
    /// carries on meanwhile. A socket that closed cleanly ends it at once. 0: at once always.
    pub resume_grace_secs: u64,
}

/// The longest `media.resume_grace_secs`: an orphaned session holds a UDP port and is
/// forwarded to.
pub const MAX_RESUME_GRACE_SECS: u64 = 120;

/// The uplink budget's bounds: below, not even one small video stream fits beside audio;
/// above, the cap means nothing.
pub const UPLINK_KBPS_RANGE: std::ops::RangeInclusive<u32> = 150..=100_000;

/// A configured signing secret shorter than this is refused: HS256 keys shorter than the
/// hash are easier to guess offline from one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// Which header a trusted proxy names the client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}

impl ServerSettings {
    /// `trusted_proxies` parsed; a bare address is a one-address network.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|raw| {
                let raw = raw.trim();
                raw.parse::<ipnet::IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "server.trusted_proxies: {raw:?} is not an address or a CIDR (10.0.0.0/8)"
                        ))
                    })
            })
            .collect()
    }
}

/// How browsers exchange audio and video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Through the embedded SFU: no participant sees another's address.
    Sfu,
    /// Browser to browser over the `webrtc:*` relay: participants see each other's addresses.
    Mesh,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub cors_origins: Vec<String>,
    /// CIDRs (or single addresses) of the reverse proxies allowed to name the client.
    pub trusted_proxies: Vec<String>,
    pub client_ip_header: ClientIpHeader,
    pub max_body_bytes: usize,
    pub workers: usize,
    /// On SIGTERM, how long to wait at most for the sockets and media sessions to move away
    /// before exiting (a second signal exits at once).
    pub drain_secs: u64,
    pub tls: TlsSettings,
}

/// `[server.tls]`: HTTPS served by the binary (src/tls.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The name(s) the certificate is for, separated by commas (`domains()`): what ACME
    /// orders, and what a self-signed certificate names besides localhost.
    pub domain: String,
    /// Seconds between checks of the files for a renewed pair; 0 = never.
    pub reload_secs: u64,
    /// Plain-HTTP port answering with a redirect to https; 0 = none.
    pub redirect_port: u16,
    /// ACME: the CA's directory URL (Let's Encrypt production by default).
    pub acme_directory: String,
    /// ACME: the contact address given to the CA (expiry warnings); may be empty.
    pub acme_email: String,
    /// ACME: a PEM root to trust for the directory besides the public ones (a test CA).
    pub acme_ca_file: PathBuf,
    /// ACME: how the CA checks that this server answers for the names.
    pub acme_challenge: AcmeChallenge,
    /// ACME: order a new certificate this many days before the current one expires (at most
    /// a third of its lifetime, for short-lived certificates).
    pub acme_renew_days: u64,
}

impl TlsSettings {
    /// The names of `domain`, split on commas and blanks.
    pub fn domains(&self) -> Vec<String> {
        self.domain
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|name| !name.is_empty())
            .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Off,
    Files,
    SelfSigned,
    /// Certificates ordered from an ACME CA (Let's Encrypt) and renewed by the server.
    Acme,
}

/// The ACME challenge answered (src/acme.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
pub enum AcmeChallenge {
    /// On the https port itself (443): no other port needs to be open.
    #[serde(rename = "tls-alpn-01")]
    #[strum(serialize = "tls-alpn-01")]
    TlsAlpn01,
    /// A file under /.well-known/acme-challenge/ on the plain-HTTP `redirect_port` (80).
    #[serde(rename = "http-01")]
    #[strum(serialize = "http-01")]
    Http01,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: String,
    pub token_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    pub languages: Vec<String>,
    pub default_language: String,
    pub default_max_participants: u8,
    /// Seats one person may hold at once, across live rooms (hosting included).
    pub max_seats_per_user: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub count: u32,
    pub per_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub auth_per_ip: RateRule,
    pub auth_per_login: RateRule,
    pub create_room_per_user: RateRule,
    pub create_room_per_ip: RateRule,
    pub join_per_user: RateRule,
    pub join_per_ip: RateRule,
    pub chat_per_user: RateRule,
    pub events_per_user: RateRule,
    pub lobby_per_ip: RateRule,
    pub media_probe_per_user: RateRule,
    pub report_per_user: RateRule,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeSettings {
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload_bytes: usize,
    pub connect_timeout_ms: u64,
    pub max_packets_per_second: u32,
    pub packet_burst: u32,
    pub max_buffered_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub connects_per_second_per_ip: u32,
    pub connect_burst_per_ip: u32,
    pub seat_grace_secs: u64,
    pub allow_anonymous_lobby: bool,
}

/// Redis: set `url` and the binary runs as one replica of a cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    pub key_prefix: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
}

/// This replica's place in a cluster (used only when `redis.url` is set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    pub node_id: String,
    pub media_address: String,
    pub presence_ttl_secs: u64,
    pub request_timeout_ms: u64,
    pub media_lease_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub json: bool,
}

/// Where the data lives, decided from the URL scheme (never by trial: SQLite accepts any string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
    /// MySQL 8 or MariaDB 10.11+ (`mysql://`); served by a binary built with `--features mysql`.
    Mysql(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads the layered settings from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Loads the layered settings; `env` replaces the process environment (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = Self::defaults();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "--config: no such file {}",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let mut environment = Environment::with_prefix("TALKCONNECT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("server.cors_origins")
            .with_list_parse_key("server.trusted_proxies")
            .with_list_parse_key("rooms.languages")
            .with_list_parse_key("moderation.admins");
        if let Some(env) = env {
            environment = environment.source(Some(env.into_iter().collect()));
        }
        Self::build(builder.add_source(environment))
    }

    /// The embedded defaults overlaid with `toml` (a configuration file's text), without the
    /// environment: what `--config` does, as a pure function (the fuzz target's entry point).
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::build(Self::defaults().add_source(File::from_str(toml, FileFormat::Toml)))
    }

    fn defaults() -> ConfigBuilder<DefaultState> {
        Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
    }

    fn build(layers: ConfigBuilder<DefaultState>) -> Result<Self, ConfigError> {
        let settings: Settings = layers
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| ConfigError(format!("bad configuration: {e}")))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.database_url()?;
        self.server.trusted_proxy_nets()?;
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        let tls = &self.server.tls;
        if tls.mode == TlsMode::Files {
            if tls.cert_file.as_os_str().is_empty() {
                return bad(
                    "server.tls.cert_file",
                    "name the PEM certificate (chain) file",
                );
            }
            if tls.key_file.as_os_str().is_empty() {
                return bad("server.tls.key_file", "name the PEM private key file");
            }
        }
        if tls.mode == TlsMode::Acme {
            validate_acme(tls)?;
        }
        if tls.mode != TlsMode::Off
            && tls.redirect_port != 0
            && tls.redirect_port == self.server.port
        {
            return bad("server.tls.redirect_port", "must differ from server.port");
        }
        if self.auth.token_ttl_secs == 0 {
            return bad("auth.token_ttl_secs", "must be at least 1");
        }
        if self.rooms.languages.is_empty() {
            return bad("rooms.languages", "must list at least one language code");
        }
        if !self.rooms.languages.contains(&self.rooms.default_language) {
            return bad("rooms.default_language", "must be one of rooms.languages");
        }
        if self.rooms.max_seats_per_user == 0 {
            return bad("rooms.max_seats_per_user", "must be at least 1");
        }
        if self.media.max_sessions_per_user == 0 || self.media.max_sessions_per_ip == 0 {
            return bad(
                "media.max_sessions_per_user",
                "media.max_sessions_per_user and max_sessions_per_ip must be at least 1",
            );
        }
        if !UPLINK_KBPS_RANGE.contains(&self.media.uplink_kbps) {
            return bad("media.uplink_kbps", "must be between 150 and 100000");
        }
        if self.media.resume_grace_secs > MAX_RESUME_GRACE_SECS {
            return bad(
                "media.resume_grace_secs",
                &format!("must be at most {MAX_RESUME_GRACE_SECS}"),
            );
        }
        if !(2..=12).contains(&self.rooms.default_max_participants) {
            return bad("rooms.default_max_participants", "must be between 2 and 12");
        }
        let rules = [
            ("rate_limit.auth_per_ip", self.rate_limit.auth_per_ip),
            ("rate_limit.auth_per_login", self.rate_limit.auth_per_login),
            (
                "rate_limit.create_room_per_user",
                self.rate_limit.create_room_per_user,
            ),
            (
                "rate_limit.create_room_per_ip",
                self.rate_limit.create_room_per_ip,
            ),
            ("rate_limit.join_per_user", self.rate_limit.join_per_user),
            ("rate_limit.join_per_ip", self.rate_limit.join_per_ip),
            ("rate_limit.chat_per_user", self.rate_limit.chat_per_user),
            (
                "rate_limit.events_per_user",
                self.rate_limit.events_per_user,
            ),
            ("rate_limit.lobby_per_ip", self.rate_limit.lobby_per_ip),
            (
                "rate_limit.media_probe_per_user",
                self.rate_limit.media_probe_per_user,
            ),
            (
                "rate_limit.report_per_user",
                self.rate_limit.report_per_user,
            ),
        ];
        for (key, rule) in rules {
            if rule.count == 0 || rule.per_secs == 0 {
                return bad(key, "count and per_secs must be at least 1");
            }
        }
        if self.media.mode == MediaMode::Sfu {
            self.sfu
                .validate()
                .map_err(|why| ConfigError(format!("sfu: {why}")))?;
        }
        let realtime = &self.realtime;
        if realtime.ping_interval_ms == 0 || realtime.ping_timeout_ms == 0 {
            return bad(
                "realtime.ping_interval_ms",
                "ping interval and timeout must be at least 1 ms",
            );
        }
        if realtime.max_payload_bytes < 1024 {
            return bad("realtime.max_payload_bytes", "must be at least 1024");
        }
        if realtime.max_buffered_bytes < realtime.max_payload_bytes {
            return bad(
                "realtime.max_buffered_bytes",
                "must be at least realtime.max_payload_bytes",
            );
        }
        self.validate_cluster()?;
        self.metrics.listen_address()?;
        let token = &self.metrics.token;
        if !token.is_empty() && (token.len() < 16 || token.trim() != token) {
            return bad(
                "metrics.token",
                "must be at least 16 characters without surrounding spaces (or empty: no /metrics on the main port)",
            );
        }
        validate_ice_servers(&self.sfu.ice_servers)?;
        validate_turn(&self.turn)?;
        let secret = self.auth.jwt_secret.trim();
        if !secret.is_empty() && secret.len() < MIN_SECRET_BYTES {
            return bad(
                "auth.jwt_secret",
                "must be at least 32 characters (e.g. head -c 32 /dev/urandom | base64)",
            );
        }
        let ip_secret = self.moderation.ip_hash_secret.trim();
        if !ip_secret.is_empty() && ip_secret.len() < MIN_SECRET_BYTES {
            return bad(
                "moderation.ip_hash_secret",
                "must be at least 32 characters, or empty (derived from the JWT secret)",
            );
        }
        if let Some(blank) = self.moderation.admins.iter().find(|a| a.trim().is_empty()) {
            return bad(
                "moderation.admins",
                &format!("{blank:?}: each entry is a username or a user id"),
            );
        }
        Ok(())
    }

    /// Cluster mode (`redis.url` set) needs what every replica must share.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        let cluster = &self.cluster;
        if !cluster.node_id.is_empty()
            && (cluster.node_id.len() > 64
                || !cluster
                    .node_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return bad(
                "cluster.node_id",
                "use at most 64 letters, digits, '-', '_' or '.'",
            );
        }
        if cluster.presence_ttl_secs < 3 {
            return bad("cluster.presence_ttl_secs", "must be at least 3");
        }
        if cluster.media_lease_secs < 3 {
            return bad("cluster.media_lease_secs", "must be at least 3");
        }
        if cluster.request_timeout_ms == 0 {
            return bad("cluster.request_timeout_ms", "must be at least 1");
        }
        if self.redis.pool_size == 0 {
            return bad("redis.pool_size", "must be at least 1");
        }
        if self.redis.timeout_ms == 0 {
            return bad("redis.timeout_ms", "must be at least 1");
        }
        if !self.cluster_mode() {
            return Ok(());
        }
        let url = self.redis.url.trim();
        if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
            return bad(
                "redis.url",
                "expected redis://[:password@]host[:port][/db] or redis+unix:///path",
            );
        }
        if self.auth.jwt_secret.trim().is_empty() {
            return bad(
                "auth.jwt_secret",
                "must be set when redis.url is set: every replica signs and checks the same tokens",
            );
        }
        if matches!(self.database_url()?, DatabaseUrl::Sqlite(_)) {
            return bad(
                "database.url",
                "must be a PostgreSQL or MySQL URL (postgres://…, mysql://…) when redis.url is set: with SQLite each replica would have its own database",
            );
        }
        Ok(())
    }

    /// Several replicas share Redis and PostgreSQL (`redis.url` is set).
    pub fn cluster_mode(&self) -> bool {
        !self.redis.url.trim().is_empty()
    }

    pub fn database_url(&self) -> Result<DatabaseUrl, ConfigError> {
        DatabaseUrl::parse(&self.database.url)
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError(
                    "database.url: sqlite:// needs a file path, e.g. sqlite://data/talkconnect.db"
                        .into(),
                ));
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if url.starts_with("mysql://") {
            return Ok(Self::Mysql(url.to_owned()));
        }
        let scheme = url.split("://").next().unwrap_or(url);
        Err(ConfigError(format!(
            "database.url: unknown scheme '{scheme}' (expected sqlite://PATH, postgres://… or mysql://…)"
        )))
    }
}

/// `server.tls.mode = "acme"` needs names a CA can check, and a way for it to check them.
/// TURN entries of `sfu.ice_servers` must carry what a browser needs: a username and a
/// credential, or the server's shared secret to make them per user. A credential in the TURN
/// REST form (`<expiry>:<user>`) that has expired would leave every browser without the relay.
fn validate_ice_servers(servers: &[crate::sfu::IceServer]) -> Result<(), ConfigError> {
    for (i, server) in servers.iter().enumerate() {
        let key = format!("sfu.ice_servers[{i}]");
        let bad = |why: String| Err(ConfigError(format!("{key}: {why}")));
        if server.urls.is_empty() {
            return bad("lists no urls".to_owned());
        }
        let turn = server
            .urls
            .iter()
            .any(|u| u.starts_with("turn:") || u.starts_with("turns:"));
        let static_pair = server.username.is_some() || server.credential.is_some();
        if server.secret.is_some() && static_pair {
            return bad("give either a secret or a username and credential, not both".to_owned());
        }
        if turn
            && server.secret.is_none()
            && (server.username.is_none() || server.credential.is_none())
        {
            return bad(
                "a turn: server needs a username and a credential, or its shared secret (secret = …)"
                    .to_owned(),
            );
        }
        if let Some(username) = &server.username
            && let Some((expiry, _)) = username.split_once(':')
            && let Ok(expiry) = expiry.parse::<u64>()
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if expiry <= now {
                return bad(format!(
                    "the username is a TURN REST credential that expired {} s ago; give the \
                     TURN server's secret instead (secret = …) so each user gets a fresh one",
                    now - expiry
                ));
            }
        }
    }
    Ok(())
}

fn validate_turn(turn: &crate::turn::TurnConfig) -> Result<(), ConfigError> {
    if !turn.enabled {
        return Ok(());
    }
    let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
    if turn.relay_port_min == 0 || turn.relay_port_min > turn.relay_port_max {
        return bad("turn.relay_port_min", "the relay port range is empty");
    }
    if (turn.relay_port_min..=turn.relay_port_max).contains(&turn.udp_port) {
        return bad(
            "turn.udp_port",
            "must lie outside turn.relay_port_min..relay_port_max",
        );
    }
    if turn.realm.trim().is_empty() {
        return bad("turn.realm", "must not be empty");
    }
    if !turn.secret.is_empty() && turn.secret.len() < 16 {
        return bad(
            "turn.secret",
            "must be at least 16 characters (or empty: derived from the JWT secret)",
        );
    }
    if turn.max_allocations_per_user == 0 || turn.max_allocations == 0 {
        return bad("turn.max_allocations_per_user", "must be at least 1");
    }
    if turn.credential_ttl_secs == 0 {
        return bad("turn.credential_ttl_secs", "must be at least 1");
    }
    Ok(())
}

fn validate_acme(tls: &TlsSettings) -> Result<(), ConfigError> {
    let bad = |key: &str, why: String| Err(ConfigError(format!("{key}: {why}")));
    let names = tls.domains();
    if names.is_empty() {
        return bad(
            "server.tls.domain",
            "name the domain(s) the certificate is for (server.tls.mode = \"acme\"), e.g. talk.example.com".into(),
        );
    }
    for name in &names {
        let dns = name.contains('.')
            && name.parse::<IpAddr>().is_err()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !dns {
            return bad(
                "server.tls.domain",
                format!(
                    "'{name}' is not a DNS name a CA issues for (no addresses, no wildcards; separate names with commas)"
                ),
            );
        }
    }
    if !tls.acme_directory.starts_with("https://") {
        return bad(
            "server.tls.acme_directory",
            "must be the CA's https:// directory URL".into(),
        );
    }
    if tls.acme_challenge == AcmeChallenge::Http01 && tls.redirect_port == 0 {
        return bad(
            "server.tls.redirect_port",
            "acme_challenge = \"http-01\" is answered on the plain-HTTP port: set it (80 on the internet)".into(),
        );
    }
    if tls.acme_renew_days == 0 {
        return bad("server.tls.acme_renew_days", "must be at least 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_unknown_keys_name_the_first_one_every_time() {
        let text = "[server]\nzebra = 1\napple = 2\nmango = 3\n";
        for _ in 0..20 {
            let err = Settings::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains("zebra"), "{err}");
        }
    }
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn embedded_defaults_load() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(
            s.database_url().unwrap(),
            DatabaseUrl::Sqlite("data/talkconnect.db".into())
        );
        assert!(s.rate_limit.enabled);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("TALKCONNECT__SERVER__PORT", "0"),
                ("TALKCONNECT__RATE_LIMIT__ENABLED", "false"),
                (
                    "TALKCONNECT__SERVER__CORS_ORIGINS",
                    "http://a.test,http://b.test",
                ),
                ("TALKCONNECT__DATABASE__URL", "postgres://u@h/db"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 0);
        assert!(!s.rate_limit.enabled);
        assert_eq!(
            s.server.cors_origins,
            vec!["http://a.test", "http://b.test"]
        );
        assert!(matches!(
            s.database_url().unwrap(),
            DatabaseUrl::Postgres(_)
        ));
    }

    #[test]
    fn the_scheme_picks_the_database() {
        assert_eq!(
            DatabaseUrl::parse("mysql://u:p@127.0.0.1:3306/talk").unwrap(),
            DatabaseUrl::Mysql("mysql://u:p@127.0.0.1:3306/talk".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        let err = DatabaseUrl::parse("mongodb://h/db").unwrap_err().0;
        assert!(err.contains("mysql://"), "{err}");
    }

    #[test]
    fn metrics_settings_are_checked_at_load() {
        let load = |pairs: &[(&str, &str)]| {
            Settings::load_with_env(None, env(pairs)).map_err(|e| e.to_string())
        };
        let off = load(&[]).unwrap();
        assert_eq!(off.metrics.listen_address().unwrap(), None);
        assert!(off.metrics.token.is_empty());
        let on = load(&[("TALKCONNECT__METRICS__LISTEN", "127.0.0.1:9464")]).unwrap();
        assert_eq!(
            on.metrics.listen_address().unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        for bad in ["localhost", "127.0.0.1", "9464", "127.0.0.1:99999"] {
            let err = load(&[("TALKCONNECT__METRICS__LISTEN", bad)]).unwrap_err();
            assert!(err.starts_with("metrics.listen:"), "{bad}: {err}");
        }
        let err = load(&[("TALKCONNECT__METRICS__TOKEN", "short")]).unwrap_err();
        assert!(err.starts_with("metrics.token:"), "{err}");
    }

    #[test]
    fn unparsable_value_names_the_key() {
        let err = Settings::load_with_env(None, env(&[("TALKCONNECT__SERVER__PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.port"), "{err}");
    }

    #[test]
    fn acme_mode_needs_dns_names_and_a_way_to_check_them() {
        let acme = |more: &[(&str, &str)]| {
            let mut vars = vec![("TALKCONNECT__SERVER__TLS__MODE", "acme")];
            vars.extend_from_slice(more);
            Settings::load_with_env(None, env(&vars)).map_err(|e| e.to_string())
        };
        let domain = (
            "TALKCONNECT__SERVER__TLS__DOMAIN",
            "talk.example.com, www.talk.example.com",
        );
        let settings = acme(&[domain]).unwrap();
        assert_eq!(
            settings.server.tls.domains(),
            ["talk.example.com", "www.talk.example.com"]
        );
        assert_eq!(settings.server.tls.acme_challenge, AcmeChallenge::TlsAlpn01);
        for bad in ["", "203.0.113.7", "*.example.com", "localhost"] {
            let err = acme(&[("TALKCONNECT__SERVER__TLS__DOMAIN", bad)]).unwrap_err();
            assert!(err.starts_with("server.tls.domain:"), "{bad}: {err}");
        }
        let err = acme(&[
            domain,
            ("TALKCONNECT__SERVER__TLS__ACME_CHALLENGE", "http-01"),
        ])
        .unwrap_err();
        assert!(err.starts_with("server.tls.redirect_port:"), "{err}");
        let err = acme(&[
            domain,
            (
                "TALKCONNECT__SERVER__TLS__ACME_DIRECTORY",
                "http://ca.test/dir",
            ),
        ])
        .unwrap_err();
        assert!(err.starts_with("server.tls.acme_directory:"), "{err}");
        let err = acme(&[
            domain,
            ("TALKCONNECT__SERVER__TLS__ACME_CHALLENGE", "dns-01"),
        ])
        .unwrap_err();
        assert!(err.contains("acme_challenge"), "{err}");
    }

    #[test]
    fn unknown_database_scheme_names_the_key() {
        let err = Settings::load_with_env(
            None,
            env(&[("TALKCONNECT__DATABASE__URL", "mongodb://localhost/x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("database.url") && err.contains("mongodb"),
            "{err}"
        );
    }

    #[test]
    fn cluster_mode_needs_a_shared_secret_and_postgres() {
        let redis = ("TALKCONNECT__REDIS__URL", "redis://127.0.0.1:6379");
        let pg = ("TALKCONNECT__DATABASE__URL", "postgres://u@h/db");
        let secret = (
            "TALKCONNECT__AUTH__JWT_SECRET",
            "a-shared-secret-of-at-least-32-characters",
        );
        let err = Settings::load_with_env(None, env(&[redis, pg]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("auth.jwt_secret:"), "{err}");
        let err = Settings::load_with_env(None, env(&[redis, secret]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("database.url:"), "{err}");
        let err = Settings::load_with_env(
            None,
            env(&[("TALKCONNECT__REDIS__URL", "http://x"), pg, secret]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("redis.url:"), "{err}");
        let s = Settings::load_with_env(None, env(&[redis, pg, secret])).unwrap();
        assert!(s.cluster_mode());
        assert!(
            !Settings::load_with_env(None, env(&[]))
                .unwrap()
                .cluster_mode()
        );
    }

    #[test]
    fn a_short_configured_secret_is_refused() {
        let short = ("TALKCONNECT__AUTH__JWT_SECRET", "shared");
        let err = Settings::load_with_env(None, env(&[short]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("auth.jwt_secret: must be at least 32"),
            "{err}"
        );
    }

    #[test]
    fn moderation_settings_are_checked() {
        let settings = Settings::load_with_env(
            None,
            env(&[("TALKCONNECT__MODERATION__ADMINS", "alice,bob")]),
        )
        .unwrap();
        assert_eq!(settings.moderation.admins, ["alice", "bob"]);
        let err = Settings::load_with_env(
            None,
            env(&[("TALKCONNECT__MODERATION__IP_HASH_SECRET", "short")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("moderation.ip_hash_secret:"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let ok = (
            "TALKCONNECT__SERVER__TRUSTED_PROXIES",
            "127.0.0.1,10.0.0.0/8,::1",
        );
        let s = Settings::load_with_env(None, env(&[ok])).unwrap();
        assert_eq!(s.server.trusted_proxy_nets().unwrap().len(), 3);
        let bad = ("TALKCONNECT__SERVER__TRUSTED_PROXIES", "10.0.0.0/33");
        let err = Settings::load_with_env(None, env(&[bad]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("server.trusted_proxies:"), "{err}");
    }

    #[test]
    fn out_of_range_seat_default_is_refused() {
        let err = Settings::load_with_env(
            None,
            env(&[("TALKCONNECT__ROOMS__DEFAULT_MAX_PARTICIPANTS", "40")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("rooms.default_max_participants"), "{err}");
    }

    #[test]
    fn turn_servers_for_browsers_need_credentials_that_have_not_expired() {
        let refused = |toml: &str| Settings::from_toml_str(toml).unwrap_err().to_string();
        let err = refused("[sfu]\nice_servers = [{ urls = [\"turn:t.example:3478\"] }]");
        assert!(
            err.starts_with("sfu.ice_servers[0]: a turn: server needs"),
            "{err}"
        );
        let err = refused(
            "[sfu]\nice_servers = [{ urls = [\"stun:s.example\"] }, \
             { urls = [\"turn:t.example\"], username = \"1600000000:old\", credential = \"x\" }]",
        );
        assert!(
            err.starts_with(
                "sfu.ice_servers[1]: the username is a TURN REST credential that expired"
            ),
            "{err}"
        );
        let err = refused(
            "[sfu]\nice_servers = [{ urls = [\"turn:t.example\"], secret = \"s\", username = \"u\", credential = \"p\" }]",
        );
        assert!(err.contains("either a secret or a username"), "{err}");
        for ok in [
            "[sfu]\nice_servers = [{ urls = [\"turn:t.example\"], secret = \"shared\" }]",
            "[sfu]\nice_servers = [{ urls = [\"turn:t.example\"], username = \"u\", credential = \"p\" }]",
            "[sfu]\nice_servers = [{ urls = [\"turn:t.example\"], username = \"4000000000:u\", credential = \"p\" }]",
        ] {
            Settings::from_toml_str(ok).unwrap();
        }
    }

    #[test]
    fn the_relay_settings_are_checked_when_it_is_on() {
        let refused = |toml: &str| Settings::from_toml_str(toml).unwrap_err().to_string();
        let err = refused("[turn]\nenabled = true\nrelay_port_min = 5000\nrelay_port_max = 4000");
        assert!(err.starts_with("turn.relay_port_min:"), "{err}");
        let err = refused("[turn]\nenabled = true\nudp_port = 49200");
        assert!(err.starts_with("turn.udp_port:"), "{err}");
        let err = refused("[turn]\nenabled = true\nsecret = \"short\"");
        assert!(err.starts_with("turn.secret:"), "{err}");
        // Off, nothing is checked: the defaults stay valid to leave as they are.
        Settings::from_toml_str("[turn]\nenabled = false\nsecret = \"short\"").unwrap();
    }
}
