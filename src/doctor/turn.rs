//! The TURN relay as a browser meets it: the doctor mints a credential with the relay's secret
//! (the one a server with these settings uses) and allocates on `turn.udp_port` and
//! `turn.tcp_port`.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, SystemTime};

use super::{Finding, fail, ok, warn};
use crate::config::{Settings, TlsMode};
use crate::turn::client::{ClientError, Transport, TurnClient};
use crate::turn::credentials;

/// How long the relay has to answer an Allocate (three tries within it).
const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn check(settings: &Settings) -> Vec<Finding> {
    let turn = &settings.turn;
    if !turn.enabled {
        let external = settings
            .sfu
            .ice_servers
            .iter()
            .flat_map(|s| &s.urls)
            .any(|url| url.starts_with("turn:") || url.starts_with("turns:"));
        return if external {
            vec![ok(
                "TURN: sfu.ice_servers names a turn: server (not checked from here)",
            )]
        } else if settings.server.tls.mode != TlsMode::Off {
            vec![warn(
                "TURN is off: users behind strict firewalls (UDP blocked, only web ports open) get no media",
                "set turn.enabled = true (and open turn.udp_port / turn.tcp_port), or list a TURN server in sfu.ice_servers",
            )]
        } else {
            Vec::new()
        };
    }
    let ip = match turn.listen_ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let secret = match secret(settings) {
        Ok(secret) => secret,
        Err(finding) => return vec![finding],
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let findings: Vec<Finding> = [
        (Transport::Udp, turn.udp_port),
        (Transport::Tcp, turn.tcp_port),
    ]
    .into_iter()
    .filter(|(_, port)| *port != 0)
    .map(|(transport, port)| {
        let relay = Relay {
            transport,
            server: SocketAddr::new(ip, port),
            listen: SocketAddr::new(turn.listen_ip, port),
        };
        runtime.block_on(allocate(settings, &relay, secret.as_deref()))
    })
    .collect();
    if findings.is_empty() {
        return vec![ok(
            "TURN: turn.udp_port and turn.tcp_port are 0, only TLS on the HTTPS port is served (not checked from here)",
        )];
    }
    findings
}

/// One of the relay's listeners.
struct Relay {
    transport: Transport,
    /// Where the doctor reaches it.
    server: SocketAddr,
    /// Where the server listens (for "does anything listen there?").
    listen: SocketAddr,
}

impl Relay {
    fn name(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    fn setting(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "turn.udp_port",
            Transport::Tcp => "turn.tcp_port",
        }
    }

    /// Nothing holds the port on this machine: no server listens there.
    fn nobody_listens(&self) -> bool {
        match self.transport {
            Transport::Udp => UdpSocket::bind(self.listen).is_ok(),
            Transport::Tcp => TcpListener::bind(self.listen).is_ok(),
        }
    }
}

/// An allocation with a credential minted from `secret` (`None`: the doctor knows no secret,
/// and a made-up one still tells whether anything answers).
async fn allocate(settings: &Settings, relay: &Relay, secret: Option<&[u8]>) -> Finding {
    let made_up: [u8; 32] = rand::random();
    let credential = credentials::mint(
        secret.unwrap_or(&made_up),
        "talkconnect-doctor",
        Duration::from_secs(60),
        SystemTime::now(),
    );
    let (name, setting, server) = (relay.name(), relay.setting(), relay.server);
    let port = server.port();
    let allocated = async {
        let client = TurnClient::allocate_over(
            relay.transport,
            server,
            &credential.username,
            &credential.password,
            ALLOCATE_TIMEOUT,
        )
        .await?;
        let relayed = client.relayed;
        let _ = client.release().await;
        Ok::<_, ClientError>(relayed)
    }
    .await;
    match allocated {
        Ok(relayed) => ok(format!(
            "TURN allocates on {name} {server} ({setting}): relayed address {relayed}"
        )),
        Err(e @ (ClientError::Timeout(..) | ClientError::Unreachable(..))) => fail(
            format!("TURN down: no answer on {name} {server} ({setting} {port}): {e}"),
            if relay.nobody_listens() {
                format!(
                    "nothing listens on {name} port {port}: is the server running (talkconnect serve, with these settings)? \
                     Then open {name} port {port} ({setting}) in the firewall for browsers"
                )
            } else {
                format!(
                    "{name} port {port} is held but nothing answers TURN there: is it TalkConnect \
                     (`ss -lnp 'sport = :{port}'` names the program)? Is {setting} open in the firewall?"
                )
            },
        ),
        Err(ClientError::Refused { code: 401, .. }) if secret.is_none() => fail(
            format!(
                "TURN on {name} {server} answers, but the doctor has no secret to sign in with: neither turn.secret, auth.jwt_secret nor {} is set",
                settings.server.data_dir.join("jwt_secret").display()
            ),
            "run the doctor with the server's settings (the same --config, TALKCONNECT__ variables and server.data_dir)",
        ),
        Err(ClientError::Refused { code: 401, .. }) => fail(
            format!(
                "TURN on {name} {server} refuses the doctor's credential (401): the secret differs between this configuration and the running server's"
            ),
            "run the doctor with the server's settings; the server and everything minting credentials need the same turn.secret \
             (or, when it is empty, the same auth.jwt_secret / server.data_dir/jwt_secret)",
        ),
        Err(e) => fail(
            format!("TURN on {name} {server}: {e}"),
            "the server's log says more (lines with \"turn\"); check turn.relay_port_min..turn.relay_port_max are free",
        ),
    }
}

/// The credentials' secret a server with these settings uses, as `media/relay.rs` derives
/// it; `None` when it would be made at the server's first start.
fn secret(settings: &Settings) -> Result<Option<Vec<u8>>, Finding> {
    if !settings.turn.secret.is_empty() {
        return Ok(Some(settings.turn.secret.as_bytes().to_vec()));
    }
    let data_dir = &settings.server.data_dir;
    match crate::auth::token::existing_secret(&settings.auth.jwt_secret, data_dir) {
        Ok(jwt) => Ok(jwt.map(|jwt| crate::media::derived_secret(&jwt))),
        Err(e) => Err(fail(
            format!(
                "TURN: cannot read {}: {e}",
                data_dir.join("jwt_secret").display()
            ),
            "run the doctor as the user the server runs as, or set turn.secret",
        )),
    }
}
