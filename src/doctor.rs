//! `talkconnect doctor`: checks a server's setup on the machine it runs on and prints, for
//! each problem, what to do about it. Run it with the same settings as the server (the same
//! `--config`, the same `TALKCONNECT__…` variables), before starting it or while it runs.
//!
//! Checked here: the settings; that the web port (and the redirect port) can be bound, or that
//! TalkConnect already answers there; the TLS certificate (readable, its key, expiry, names);
//! the SFU's UDP ports (and ICE-TCP); the address announced to browsers, against what STUN
//! servers see; the TURN relay (an allocation with the relay's own secret). When the server
//! runs, the SFU's UDP and TCP paths are probed from this machine (`probe.rs`).

mod probe;
mod turn;
mod web;

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use crate::config::{MediaMode, Settings, TlsMode};
use web::WebTarget;

/// A certificate this close to expiry is a warning.
const EXPIRY_WARNING_DAYS: i64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One finding, with the fix when something is wrong.
#[derive(Debug, Clone)]
pub struct Finding {
    pub verdict: Verdict,
    pub what: String,
    pub fix: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        write!(f, "{tag}  {}", self.what)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        verdict: Verdict::Ok,
        what: what.into(),
        fix: None,
    }
}

fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        verdict: Verdict::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        verdict: Verdict::Fail,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// The printed report, and whether nothing failed.
pub fn report(settings: &Settings) -> (String, bool) {
    let findings = examine(settings);
    let failed = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fail)
        .count();
    let mut text: String = findings.iter().map(|f| format!("{f}\n")).collect();
    if failed == 0 {
        text.push_str("no problem found\n");
    } else {
        text.push_str(&format!("{failed} problem(s) found\n"));
    }
    (text, failed == 0)
}

/// Every check, in order.
pub fn examine(settings: &Settings) -> Vec<Finding> {
    let mut findings = vec![ok("settings load")];
    let server = &settings.server;
    let tls_on = server.tls.mode != TlsMode::Off;
    let web_at = SocketAddr::new(server.host, server.port);
    let (finding, running) = web_port("server.port", web_at, tls_on);
    findings.push(finding);
    if tls_on && server.tls.redirect_port != 0 {
        let redirect = SocketAddr::new(server.host, server.tls.redirect_port);
        findings.push(web_port("server.tls.redirect_port", redirect, false).0);
    }
    findings.extend(certificate(settings));
    findings.extend(media(settings));
    findings.extend(turn::check(settings));
    if running && settings.media.mode == MediaMode::Sfu {
        findings.extend(probe::check(settings, WebTarget::new(web_at, tls_on)));
    }
    findings
}

/// Can the server listen at `at`? Taken is fine when TalkConnect itself answers there (the
/// second value says it does).
fn web_port(setting: &str, at: SocketAddr, tls: bool) -> (Finding, bool) {
    let finding = match TcpListener::bind(at) {
        Ok(_) => ok(format!("{setting}: {at} is free to listen on")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if talkconnect_answers(WebTarget::new(at, tls)) {
                return (ok(format!("{setting}: TalkConnect answers on {at}")), true);
            }
            fail(
                format!("{setting}: {at} is in use by another program"),
                format!(
                    "stop that program (`ss -ltnp 'sport = :{}'` names it) or choose another port",
                    at.port()
                ),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => fail(
            format!("{setting}: not allowed to listen on {at}"),
            "ports below 1024 need root or CAP_NET_BIND_SERVICE \
             (`setcap cap_net_bind_service=+ep talkconnect`, or AmbientCapabilities= in the systemd unit)",
        ),
        Err(e) => fail(
            format!("{setting}: cannot listen on {at}: {e}"),
            "check server.host: it must be an address of this machine (0.0.0.0 for all)",
        ),
    };
    (finding, false)
}

/// Does `GET /healthz` answer TalkConnect's `{"status":"ok"}`?
fn talkconnect_answers(web: WebTarget) -> bool {
    web.request("GET", "/healthz", None, None)
        .is_ok_and(|(status, body)| status == 200 && body.contains(r#"{"status":"ok"}"#))
}

/// The certificate the server would serve: readable, with its key, in date, for which names.
fn certificate(settings: &Settings) -> Vec<Finding> {
    let tls = &settings.server.tls;
    let (cert_file, key_file) = match tls.mode {
        TlsMode::Off => {
            return vec![warn(
                "server.tls.mode is off: browsers on other machines get no microphone or camera over plain HTTP",
                "set server.tls.mode = \"files\" with your certificate (or put a TLS proxy in front; \
                 \"self-signed\" on a LAN)",
            )];
        }
        TlsMode::Files => (tls.cert_file.clone(), tls.key_file.clone()),
        TlsMode::Acme => return acme(settings, time::OffsetDateTime::now_utc()),
        TlsMode::SelfSigned => {
            let dir = settings.server.data_dir.join("tls");
            let cert = dir.join("self-signed.crt");
            if !cert.is_file() {
                return vec![ok(format!(
                    "server.tls: a self-signed certificate will be made in {} at start",
                    dir.display()
                ))];
            }
            (cert, dir.join("self-signed.key"))
        }
    };
    let read = |setting: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            fail(
                format!("{setting}: cannot read {}: {e}", path.display()),
                format!(
                    "check the path and that the user running talkconnect may read it (ls -l {})",
                    path.display()
                ),
            )
        })
    };
    let (cert_pem, key_pem) = match (
        read("server.tls.cert_file", &cert_file),
        read("server.tls.key_file", &key_file),
    ) {
        (Ok(cert), Ok(key)) => (cert, key),
        (cert, key) => return [cert.err(), key.err()].into_iter().flatten().collect(),
    };
    if let Err(e) = crate::tls::certified_key(&cert_pem, &key_pem) {
        return vec![fail(
            e.to_string(),
            "cert_file must hold the certificate (then its chain) and key_file its private key, both PEM",
        )];
    }
    vec![validity(&cert_pem, time::OffsetDateTime::now_utc())]
}

/// acme mode: the port the CA checks, and the certificate stored under data_dir/tls/acme/.
fn acme(settings: &Settings, now: time::OffsetDateTime) -> Vec<Finding> {
    use crate::config::AcmeChallenge;
    let tls = &settings.server.tls;
    let names = tls.domains().join(", ");
    let (setting, port, wanted) = match tls.acme_challenge {
        AcmeChallenge::TlsAlpn01 => ("server.port", settings.server.port, 443),
        AcmeChallenge::Http01 => ("server.tls.redirect_port", tls.redirect_port, 80),
    };
    let mut findings = vec![if port == wanted {
        ok(format!(
            "ACME {}: the CA checks {names} on port {wanted} ({setting}); open it to the internet",
            tls.acme_challenge
        ))
    } else {
        warn(
            format!(
                "ACME {}: the CA connects to port {wanted} of {names}, but {setting} is {port}",
                tls.acme_challenge
            ),
            format!("set {setting} = {wanted}, or forward port {wanted} to {port}"),
        )
    }];
    let dir = settings.server.data_dir.join("tls").join("acme");
    let logs = "the server's log says why an order failed, in lines naming server.tls.domain";
    let Some(facts) = crate::acme::stored_facts(&settings.server.data_dir) else {
        findings.push(warn(
            format!(
                "server.tls (acme): no certificate yet in {}; the server serves a self-signed placeholder until {} issues one for {names}",
                dir.display(),
                tls.acme_directory
            ),
            format!(
                "point {names} (DNS) at this machine, open port {wanted} and start the server: it orders the certificate itself; {logs}"
            ),
        ));
        return findings;
    };
    let what = format!(
        "ACME certificate for {} valid until {}",
        facts.names.join(", "),
        facts.not_after.date()
    );
    let due = crate::acme::renew_at(&facts, tls.acme_renew_days);
    let missing: Vec<String> = tls
        .domains()
        .into_iter()
        .filter(|name| !facts.names.contains(name))
        .collect();
    findings.push(if facts.not_after <= now {
        fail(
            format!("{what}: EXPIRED, browsers refuse it"),
            format!("start the server: it orders a new one at once; {logs}"),
        )
    } else if !missing.is_empty() {
        warn(
            format!("{what}: not for {}", missing.join(", ")),
            "the server orders one for server.tls.domain at start",
        )
    } else if due <= now {
        warn(
            format!("{what}: expiring, due for renewal since {}", due.date()),
            format!("a running server renews it by itself; if this stays, {logs}"),
        )
    } else {
        ok(format!("{what}; renewed from {}", due.date()))
    });
    findings
}

/// Expiry and names of the first (leaf) certificate of a PEM chain.
fn validity(cert_pem: &[u8], now: time::OffsetDateTime) -> Finding {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let Some(Ok(leaf)) = CertificateDer::pem_slice_iter(cert_pem).next() else {
        return fail(
            "server.tls.cert_file holds no certificate",
            "export it as PEM",
        );
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&leaf) else {
        return fail(
            "server.tls.cert_file: the certificate cannot be read",
            "export it again as PEM",
        );
    };
    let not_after = parsed.validity().not_after.to_datetime();
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.iter().filter_map(name).collect())
        .unwrap_or_default();
    let days = (not_after - now).whole_days();
    let what = format!(
        "TLS certificate for {} expires {} ({days} days)",
        if names.is_empty() {
            "no names".to_owned()
        } else {
            names.join(", ")
        },
        not_after.date()
    );
    if not_after <= now {
        fail(
            format!("{what}: EXPIRED, browsers refuse it"),
            "renew it (certbot renew, or your CA) and write the new files in place: the server picks them up without a restart",
        )
    } else if days < EXPIRY_WARNING_DAYS {
        warn(
            what,
            "renew it soon; the running server picks the new files up by itself",
        )
    } else {
        ok(what)
    }
}

/// Each `stun:` server: does it answer, and with which public address?
fn stun(sfu: &crate::sfu::SfuConfig) -> Vec<Finding> {
    use crate::sfu::{AnnouncedIp, public_address};
    let urls: Vec<String> = sfu
        .ice_servers
        .iter()
        .flat_map(|s| s.urls.clone())
        .collect();
    let hosts = public_address::stun_hosts(&urls);
    if hosts.is_empty() && sfu.announced_ip == AnnouncedIp::Auto {
        return vec![fail(
            "sfu.announced_ip = \"auto\" but sfu.ice_servers lists no stun: server to ask",
            "add one, e.g. { urls = [\"stun:stun.l.google.com:19302\"] }, or set the address",
        )];
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    hosts
        .into_iter()
        .map(
            |host| match runtime.block_on(public_address::ask(&host, Duration::from_secs(3))) {
                Ok(mapped) => match sfu.announced_ip {
                    AnnouncedIp::Fixed(announced) if announced != mapped.ip() => fail(
                        format!(
                            "wrong announced IP: sfu.announced_ip is {announced}, but STUN {host} sees this machine as {}",
                            mapped.ip()
                        ),
                        format!(
                            "set sfu.announced_ip = \"{}\" (or \"auto\" to learn it at start): browsers send media to the announced address",
                            mapped.ip()
                        ),
                    ),
                    _ => ok(format!(
                        "STUN {host} answers: this machine is seen as {}",
                        mapped.ip()
                    )),
                },
                Err(e) => fail(
                    format!("STUN {e}"),
                    "check the address, and that outgoing UDP to it is allowed",
                ),
            },
        )
        .collect()
}

/// A DNS name or an IP address a certificate is for.
fn name(general: &x509_parser::extensions::GeneralName<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    match general {
        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes)
                .ok()
                .map(|b| IpAddr::from(b).to_string()),
            16 => <[u8; 16]>::try_from(*bytes)
                .ok()
                .map(|b| IpAddr::from(b).to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The SFU's ports and the address browsers are told to send media to.
fn media(settings: &Settings) -> Vec<Finding> {
    if settings.media.mode == MediaMode::Mesh {
        return vec![ok(
            "media.mode = \"mesh\": browsers connect to each other (they see each other's addresses)",
        )];
    }
    let sfu = &settings.sfu;
    let mut findings = Vec::new();
    let ports: Vec<u16> = match sfu.single_udp_port {
        Some(port) => vec![port],
        None => (sfu.udp_port_min..=sfu.udp_port_max).collect(),
    };
    let free_udp = ports
        .iter()
        .filter(|port| UdpSocket::bind(SocketAddr::new(sfu.bind_ip, **port)).is_ok())
        .count();
    let range = match sfu.single_udp_port {
        Some(port) => format!("sfu.single_udp_port {port}"),
        None => format!("sfu UDP ports {}-{}", sfu.udp_port_min, sfu.udp_port_max),
    };
    if free_udp == 0 {
        findings.push(fail(
            format!("{range}: none is free on {}", sfu.bind_ip),
            "another program (or a running TalkConnect with everyone in rooms) holds them; \
             choose another range, and reserve it: sysctl net.ipv4.ip_local_reserved_ports",
        ));
    } else {
        findings.push(ok(format!(
            "{range}: {free_udp} of {} free on {}; open them for UDP in the firewall",
            ports.len(),
            sfu.bind_ip
        )));
    }
    findings.extend(stun(sfu));
    match sfu.announced_ip.ip() {
        Some(ip) => findings.push(ok(format!(
            "browsers send media to {ip} (sfu.announced_ip)"
        ))),
        None if sfu.bind_ip.is_unspecified() => findings.push(warn(
            "sfu.announced_ip is not set: browsers are told this machine's own addresses",
            "behind NAT (most cloud VMs) set sfu.announced_ip to the public address",
        )),
        None => findings.push(ok(format!("browsers send media to {}", sfu.bind_ip))),
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_valid_until(year: i32) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["talk.example".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem().into_bytes()
    }

    #[test]
    fn an_expired_certificate_fails_with_a_fix() {
        let now = time::OffsetDateTime::now_utc();
        let finding = validity(&pem_valid_until(2021), now);
        assert_eq!(finding.verdict, Verdict::Fail, "{finding}");
        assert!(finding.what.contains("EXPIRED"), "{finding}");
        assert!(finding.what.contains("talk.example"), "{finding}");
        assert!(finding.fix.is_some());
        let finding = validity(&pem_valid_until(now.year() + 2), now);
        assert_eq!(finding.verdict, Verdict::Ok, "{finding}");
    }

    #[test]
    fn acme_mode_reports_the_stored_certificate_with_a_fix() {
        let data = std::env::temp_dir().join(format!("tc-doctor-acme-{}", uuid::Uuid::new_v4()));
        let data_dir = data.to_string_lossy().into_owned();
        let env: std::collections::HashMap<String, String> = [
            ("TALKCONNECT__SERVER__TLS__MODE", "acme"),
            ("TALKCONNECT__SERVER__TLS__DOMAIN", "talk.example"),
            ("TALKCONNECT__SERVER__PORT", "8443"),
            ("TALKCONNECT__SERVER__DATA_DIR", data_dir.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let settings = Settings::load_with_env(None, Some(env)).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let findings = acme(&settings, now);
        assert_eq!(findings[0].verdict, Verdict::Warn, "{}", findings[0]);
        assert!(findings[0].to_string().contains("server.port = 443"));
        assert_eq!(findings[1].verdict, Verdict::Warn, "{}", findings[1]);
        assert!(findings[1].what.contains("no certificate yet"));
        let dir = data.join("tls").join("acme");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), pem_valid_until(now.year() + 2)).unwrap();
        let stored = &acme(&settings, now)[1];
        assert_eq!(stored.verdict, Verdict::Ok, "{stored}");
        assert!(stored.what.contains("valid until"), "{stored}");
        std::fs::write(dir.join("cert.pem"), pem_valid_until(now.year())).unwrap();
        let expiring = &acme(
            &settings,
            time::OffsetDateTime::new_utc(
                time::Date::from_calendar_date(now.year() - 1, time::Month::December, 25).unwrap(),
                time::Time::MIDNIGHT,
            ),
        )[1];
        assert_eq!(expiring.verdict, Verdict::Warn, "{expiring}");
        assert!(expiring.what.contains("expiring"), "{expiring}");
        std::fs::write(dir.join("cert.pem"), pem_valid_until(2021)).unwrap();
        let expired = &acme(&settings, now)[1];
        assert_eq!(expired.verdict, Verdict::Fail, "{expired}");
        assert!(
            expired
                .fix
                .as_deref()
                .unwrap()
                .contains("server.tls.domain")
        );
        std::fs::remove_dir_all(data).unwrap();
    }

    #[test]
    fn a_port_held_by_another_program_fails_with_a_fix() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = holder.local_addr().unwrap();
        let (finding, running) = web_port("server.port", at, false);
        assert_eq!(finding.verdict, Verdict::Fail, "{finding}");
        assert!(!running);
        assert!(finding.to_string().contains("fix:"), "{finding}");
        drop(holder);
        assert_eq!(web_port("server.port", at, false).0.verdict, Verdict::Ok);
    }
}
