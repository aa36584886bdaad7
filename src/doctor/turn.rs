//! The TURN relay as a browser meets it: the doctor mints a credential with the relay's secret
//! (the one a server with these settings uses) and allocates on `turn.udp_port`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

use super::{Finding, fail, ok, warn};
use crate::config::{Settings, TlsMode};
use crate::turn::client::{ClientError, TurnClient};
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
    if turn.udp_port == 0 {
        return vec![ok(
            "TURN: turn.udp_port = 0, only TCP/TLS are served (not checked from here)",
        )];
    }
    let ip = match turn.listen_ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let server = SocketAddr::new(ip, turn.udp_port);
    let secret = match secret(settings) {
        Ok(secret) => secret,
        Err(finding) => return vec![finding],
    };
    // Without a secret (no server ever started with this data_dir) a made-up one still tells
    // whether anything answers.
    let known = secret.is_some();
    let secret = secret.unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
    let credential = credentials::mint(
        &secret,
        "talkconnect-doctor",
        Duration::from_secs(60),
        SystemTime::now(),
    );
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let allocated = runtime.block_on(async {
        let client = TurnClient::allocate(
            server,
            &credential.username,
            &credential.password,
            ALLOCATE_TIMEOUT,
        )
        .await?;
        let relayed = client.relayed;
        let _ = client.release().await;
        Ok::<_, ClientError>(relayed)
    });
    let finding = match allocated {
        Ok(relayed) => ok(format!(
            "TURN allocates on UDP {server} (turn.udp_port): relayed address {relayed}"
        )),
        Err(ClientError::Timeout(..)) => {
            let nobody = UdpSocket::bind(SocketAddr::new(turn.listen_ip, turn.udp_port)).is_ok();
            fail(
                format!(
                    "TURN down: no answer on UDP {server} (turn.udp_port {}) within {} s",
                    turn.udp_port,
                    ALLOCATE_TIMEOUT.as_secs()
                ),
                if nobody {
                    format!(
                        "nothing listens on UDP port {}: is the server running (talkconnect serve, with these settings)? \
                         Then open UDP port {} (turn.udp_port) in the firewall for browsers",
                        turn.udp_port, turn.udp_port
                    )
                } else {
                    format!(
                        "UDP port {} is held but nothing answers TURN there: is it TalkConnect (`ss -lunp 'sport = :{}'`)? \
                         Is turn.udp_port open in the firewall?",
                        turn.udp_port, turn.udp_port
                    )
                },
            )
        }
        Err(ClientError::Refused { code: 401, .. }) if !known => fail(
            format!(
                "TURN on UDP {server} answers, but the doctor has no secret to sign in with: neither turn.secret, auth.jwt_secret nor {} is set",
                settings.server.data_dir.join("jwt_secret").display()
            ),
            "run the doctor with the server's settings (the same --config, TALKCONNECT__ variables and server.data_dir)",
        ),
        Err(ClientError::Refused { code: 401, .. }) => fail(
            format!(
                "TURN on UDP {server} refuses the doctor's credential (401): the secret differs between this configuration and the running server's"
            ),
            "run the doctor with the server's settings; the server and everything minting credentials need the same turn.secret \
             (or, when it is empty, the same auth.jwt_secret / server.data_dir/jwt_secret)",
        ),
        Err(e) => fail(
            format!("TURN on UDP {server}: {e}"),
            "the server's log says more (lines with \"turn\"); check turn.relay_port_min..turn.relay_port_max are free",
        ),
    };
    vec![finding]
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
