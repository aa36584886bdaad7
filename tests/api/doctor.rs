//! `talkconnect doctor` as a self-hoster runs it: each broken setup is named with its fix,
//! and the exit code says whether anything failed.

use std::net::TcpListener;

use crate::cli::{talkconnect, workdir};
use talkconnect_testkit::netns::{Namespace, nft};

/// Runs the doctor in `dir` with `env`; answers its exit code and what it printed.
fn doctor(dir: &std::path::Path, env: &[(&str, String)]) -> (i32, String) {
    let mut cmd = talkconnect(dir);
    cmd.arg("doctor")
        .env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
        .env("TALKCONNECT__SFU__BIND_IP", "127.0.0.1")
        // A block of its own, far from the other tests' SFU ports.
        .env("TALKCONNECT__SFU__UDP_PORT_MIN", "44900")
        .env("TALKCONNECT__SFU__UDP_PORT_MAX", "44909");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd.output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), printed)
}

#[test]
fn a_sound_setup_passes_and_a_broken_one_is_named_with_its_fix() {
    let dir = workdir();
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let (code, printed) = doctor(&dir, &[("TALKCONNECT__SERVER__PORT", port.to_string())]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("no problem found"), "{printed}");

    // Another program on the web port, and an expired certificate.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let mut params = rcgen::CertificateParams::new(vec!["talk.example".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let (code, printed) = doctor(
        &dir,
        &[
            ("TALKCONNECT__SERVER__PORT", taken.to_string()),
            ("TALKCONNECT__SERVER__TLS__MODE", "files".to_owned()),
            (
                "TALKCONNECT__SERVER__TLS__CERT_FILE",
                dir.join("cert.pem").display().to_string(),
            ),
            (
                "TALKCONNECT__SERVER__TLS__KEY_FILE",
                dir.join("key.pem").display().to_string(),
            ),
        ],
    );
    assert_eq!(code, 1, "{printed}");
    assert!(
        printed.contains(&format!("FAIL  server.port: 127.0.0.1:{taken} is in use")),
        "{printed}"
    );
    assert!(
        printed.contains("FAIL  TLS certificate for talk.example expires 2021-01-01"),
        "{printed}"
    );
    // Each failure has its fix; so has the warning about TURN being off with TLS on.
    assert_eq!(printed.matches("      fix: ").count(), 3, "{printed}");
    assert!(printed.contains("2 problem(s) found"), "{printed}");
    drop(holder);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A STUN server on loopback that says every request comes from `seen_as`.
fn stun_server(seen_as: &str) -> std::net::SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let at = socket.local_addr().unwrap();
    let seen_as: std::net::SocketAddr = seen_as.parse().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if n >= 20 {
                let transaction: [u8; 12] = buf[8..20].try_into().unwrap();
                let reply = talkconnect::sfu::public_address::answer(&transaction, seen_as);
                let _ = socket.send_to(&reply, from);
            }
        }
    });
    at
}

#[test]
fn the_public_address_is_learned_from_stun_or_the_start_names_the_setting() {
    let dir = workdir();
    let stun = stun_server("198.51.100.4:40000");
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = |server: std::net::SocketAddr| {
        let path = dir.join(format!("stun-{}.toml", server.port()));
        std::fs::write(
            &path,
            format!(
                "[sfu]\nannounced_ip = \"auto\"\nice_servers = [{{ urls = [\"stun:{server}\"] }}]\n"
            ),
        )
        .unwrap();
        path
    };
    let mut server = talkconnect(&dir)
        .args(["--config".as_ref(), config(stun).as_os_str()])
        .env("TALKCONNECT__SERVER__PORT", "0")
        .env("TALKCONNECT__SFU__UDP_PORT_MIN", "44910")
        .env("TALKCONNECT__SFU__UDP_PORT_MAX", "44919")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let serving = std::io::BufRead::lines(stdout)
        .map_while(Result::ok)
        .find(|line| line.contains("serving http"))
        .unwrap_or_default();
    let _ = server.kill();
    let _ = server.wait();
    assert!(serving.contains("announced as 198.51.100.4"), "{serving}");
    let doctor = talkconnect(&dir)
        .args([
            "--config".as_ref(),
            config(stun).as_os_str(),
            "doctor".as_ref(),
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        printed.contains(&format!(
            "ok    STUN {stun} answers: this machine is seen as 198.51.100.4"
        )),
        "{printed}"
    );

    // Nobody answers: the start stops at once, in one line naming the setting.
    let output = talkconnect(&dir)
        .args([
            "--config".as_ref(),
            config(silent.local_addr().unwrap()).as_os_str(),
        ])
        .env("TALKCONNECT__SERVER__PORT", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("sfu.announced_ip = \"auto\"") && lines[0].contains("no answer"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a prepared doctor command; answers its exit code and what it printed.
fn run(mut cmd: std::process::Command) -> (i32, String) {
    let output = cmd.output().unwrap();
    // Shown with a failing test: a settings error (exit 2) says why there.
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), printed)
}

/// The printed finding that starts with `start` (its line and the fix line under it).
fn finding<'a>(printed: &'a str, start: &str) -> &'a str {
    let at = printed
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{printed}"));
    let rest = &printed[at..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i)
        .find(|&i| !rest[i + 1..].starts_with("      fix: "))
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn turn_down_is_named_with_its_port_and_the_secret_file_is_left_alone() {
    let dir = workdir();
    let turn_port = free_udp_port();
    let tcp_port = free_tcp_port();
    let (code, printed) = doctor(
        &dir,
        &[
            ("TALKCONNECT__SERVER__PORT", "0".to_owned()),
            ("TALKCONNECT__TURN__ENABLED", "true".to_owned()),
            ("TALKCONNECT__TURN__LISTEN_IP", "127.0.0.1".to_owned()),
            ("TALKCONNECT__TURN__UDP_PORT", turn_port.to_string()),
            ("TALKCONNECT__TURN__TCP_PORT", tcp_port.to_string()),
            (
                "TALKCONNECT__TURN__RELAY_PORT_MIN",
                RELAY_PORTS.0.to_string(),
            ),
            (
                "TALKCONNECT__TURN__RELAY_PORT_MAX",
                RELAY_PORTS.1.to_string(),
            ),
        ],
    );
    assert_eq!(code, 1, "{printed}");
    let udp = finding(&printed, "FAIL  TURN down: no answer on UDP");
    assert!(
        udp.contains(&format!(
            "no answer on UDP 127.0.0.1:{turn_port} (turn.udp_port {turn_port})"
        )),
        "{udp}"
    );
    assert!(udp.contains("fix: nothing listens on UDP port"), "{udp}");
    assert!(udp.contains("is the server running"), "{udp}");
    let tcp = finding(&printed, "FAIL  TURN down: no answer on TCP");
    assert!(
        tcp.contains(&format!(
            "no answer on TCP 127.0.0.1:{tcp_port} (turn.tcp_port {tcp_port})"
        )),
        "{tcp}"
    );
    assert!(printed.contains("2 problem(s) found"), "{printed}");
    // The doctor read no JWT secret and made none.
    assert!(!dir.join("data").join("jwt_secret").exists());

    // TURN off with TLS on: a warning, not a failure.
    let (code, printed) = doctor(
        &dir,
        &[
            ("TALKCONNECT__SERVER__PORT", "0".to_owned()),
            ("TALKCONNECT__SERVER__TLS__MODE", "self-signed".to_owned()),
            ("TALKCONNECT__SERVER__TLS__REDIRECT_PORT", "0".to_owned()),
        ],
    );
    assert_eq!(code, 0, "{printed}");
    let off = finding(&printed, "warn  TURN is off");
    assert!(off.contains("strict firewalls"), "{off}");
    assert!(off.contains("fix: set turn.enabled = true"), "{off}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_announced_ip_that_stun_contradicts_is_named_with_the_right_one() {
    let dir = workdir();
    let stun = stun_server("198.51.100.4:40000");
    let doctor_announcing = |announced: &str| {
        let config = dir.join(format!("announced-{announced}.toml"));
        std::fs::write(
            &config,
            format!(
                "[sfu]\nannounced_ip = \"{announced}\"\nice_servers = [{{ urls = [\"stun:{stun}\"] }}]\n"
            ),
        )
        .unwrap();
        let mut cmd = talkconnect(&dir);
        cmd.args(["--config".as_ref(), config.as_os_str(), "doctor".as_ref()])
            .env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
            .env("TALKCONNECT__SERVER__PORT", "0")
            .env("TALKCONNECT__SFU__BIND_IP", "127.0.0.1")
            .env("TALKCONNECT__SFU__UDP_PORT_MIN", "44910")
            .env("TALKCONNECT__SFU__UDP_PORT_MAX", "44919");
        run(cmd)
    };
    let (code, printed) = doctor_announcing("203.0.113.9");
    assert_eq!(code, 1, "{printed}");
    let wrong = finding(&printed, "FAIL  wrong announced IP");
    assert!(
        wrong.contains(&format!(
            "sfu.announced_ip is 203.0.113.9, but STUN {stun} sees this machine as 198.51.100.4"
        )),
        "{wrong}"
    );
    assert!(
        wrong.contains("fix: set sfu.announced_ip = \"198.51.100.4\""),
        "{wrong}"
    );
    assert!(printed.contains("1 problem(s) found"), "{printed}");

    // The address STUN sees: no complaint.
    let (code, printed) = doctor_announcing("198.51.100.4");
    assert_eq!(code, 0, "{printed}");
    assert!(!printed.contains("wrong announced IP"), "{printed}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The relay's ports in these tests: below the kernel's ephemeral range (32768-60999), where
/// the free ports picked for `turn.udp_port` come from (the two must not overlap).
const RELAY_PORTS: (u16, u16) = (31940, 31949);

/// Settings a server and its doctor share: loopback only, the SFU on `sfu_ports`, TURN on a
/// free UDP port with its relay ports, the secret derived from the JWT secret in data_dir.
fn running_setup(sfu_ports: (u16, u16), turn_ports: (u16, u16)) -> Vec<(&'static str, String)> {
    vec![
        ("TALKCONNECT__SERVER__HOST", "127.0.0.1".to_owned()),
        ("TALKCONNECT__SFU__BIND_IP", "127.0.0.1".to_owned()),
        ("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true".to_owned()),
        ("TALKCONNECT__SFU__ICE_TCP", "true".to_owned()),
        ("TALKCONNECT__SFU__UDP_PORT_MIN", sfu_ports.0.to_string()),
        ("TALKCONNECT__SFU__UDP_PORT_MAX", sfu_ports.1.to_string()),
        ("TALKCONNECT__TURN__ENABLED", "true".to_owned()),
        ("TALKCONNECT__TURN__LISTEN_IP", "127.0.0.1".to_owned()),
        ("TALKCONNECT__TURN__UDP_PORT", turn_ports.0.to_string()),
        ("TALKCONNECT__TURN__TCP_PORT", turn_ports.1.to_string()),
        ("TALKCONNECT__TURN__ON_HTTPS_PORT", "false".to_owned()),
        // Below the kernel's ephemeral ports, so a free port picked for TURN is never inside.
        (
            "TALKCONNECT__TURN__RELAY_PORT_MIN",
            RELAY_PORTS.0.to_string(),
        ),
        (
            "TALKCONNECT__TURN__RELAY_PORT_MAX",
            RELAY_PORTS.1.to_string(),
        ),
    ]
}

fn port_of(address: &str) -> String {
    address.rsplit(':').next().unwrap().to_owned()
}

#[test]
fn a_running_server_with_turn_passes_with_an_allocation_and_round_trips() {
    let dir = workdir();
    let (turn_port, tcp_port) = (free_udp_port(), free_tcp_port());
    // Over HTTPS (the doctor reaches the server by an address its certificate is not for).
    let mut setup = running_setup((44920, 44929), (turn_port, tcp_port));
    setup.extend([
        ("TALKCONNECT__SERVER__TLS__MODE", "self-signed".to_owned()),
        ("TALKCONNECT__SERVER__TLS__REDIRECT_PORT", "0".to_owned()),
    ]);
    let mut serve = talkconnect(&dir);
    serve
        .envs(setup.clone())
        .env("TALKCONNECT__SERVER__PORT", "0");
    let server = crate::cli::start(serve);

    let mut cmd = talkconnect(&dir);
    cmd.arg("doctor")
        .envs(setup)
        .env("TALKCONNECT__SERVER__PORT", port_of(&server.address));
    let (code, printed) = run(cmd);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("no problem found"), "{printed}");
    assert!(
        printed.contains("ok    server.port: TalkConnect answers on 127.0.0.1:"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "ok    TURN allocates on UDP 127.0.0.1:{turn_port} (turn.udp_port): relayed address 127.0.0.1:3194"
        )),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "ok    TURN allocates on TCP 127.0.0.1:{tcp_port} (turn.tcp_port): relayed address 127.0.0.1:3194"
        )),
        "{printed}"
    );
    assert!(
        printed.contains("ok    the SFU answers over UDP from this machine: round trip "),
        "{printed}"
    );
    assert!(
        printed.contains("ok    the SFU answers over ICE-TCP from this machine: round trip "),
        "{printed}"
    );

    // Another secret than the server's: the relay refuses the doctor's credential.
    let mut cmd = talkconnect(&dir);
    cmd.arg("doctor")
        .envs(running_setup((44920, 44929), (turn_port, tcp_port)))
        .env("TALKCONNECT__SERVER__TLS__MODE", "self-signed")
        .env("TALKCONNECT__SERVER__TLS__REDIRECT_PORT", "0")
        .env("TALKCONNECT__SERVER__PORT", port_of(&server.address))
        .env("TALKCONNECT__TURN__SECRET", "not-the-servers-secret");
    let (code, printed) = run(cmd);
    assert_eq!(code, 1, "{printed}");
    let refused = finding(&printed, "FAIL  TURN on UDP");
    assert!(
        refused.contains("refuses the doctor's credential (401)"),
        "{refused}"
    );
    assert!(refused.contains("secret differs"), "{refused}");
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A network namespace of the test's own, deleted when dropped.
fn namespace() -> Namespace {
    Namespace::new(&format!(
        "tcdoc{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
}

/// `talkconnect` run inside `ns`, in `dir`, with no inherited TALKCONNECT__ variable.
fn talkconnect_in(ns: &Namespace, dir: &std::path::Path) -> std::process::Command {
    let inherited = talkconnect(dir);
    let mut cmd = ns.command(inherited.get_program());
    cmd.current_dir(dir);
    for (key, value) in inherited.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

#[test]
fn a_firewall_dropping_the_sfu_udp_ports_fails_the_udp_probe_with_its_fix() {
    let dir = workdir();
    let ns = namespace();
    // What a self-hoster's firewall does to ports nobody opened: drop, silently.
    nft(
        ns.command("nft"),
        "table inet firewall {\n chain input {\n  type filter hook input priority 0; policy accept;\n  udp dport 44950-44959 drop\n }\n}\n",
    );

    let setup = running_setup((44950, 44959), (44960, 44960));
    let mut serve = talkconnect_in(&ns, &dir);
    serve
        .envs(setup.clone())
        .env("TALKCONNECT__SERVER__PORT", "0");
    let server = crate::cli::start(serve);
    let mut cmd = talkconnect_in(&ns, &dir);
    cmd.arg("doctor")
        .envs(setup)
        .env("TALKCONNECT__SERVER__PORT", port_of(&server.address));
    let (code, printed) = run(cmd);
    assert_eq!(code, 1, "{printed}");
    let udp = finding(
        &printed,
        "FAIL  the SFU does not answer over UDP from this machine",
    );
    assert!(
        udp.contains(
            "fix: open UDP ports 44950-44959 (sfu.udp_port_min..sfu.udp_port_max) in the firewall"
        ),
        "{udp}"
    );
    // TCP is not filtered, nor is TURN's port: those still pass.
    assert!(
        printed.contains("ok    the SFU answers over ICE-TCP from this machine"),
        "{printed}"
    );
    assert!(
        printed.contains("ok    TURN allocates on UDP 127.0.0.1:44960"),
        "{printed}"
    );
    assert!(
        printed.contains("ok    TURN allocates on TCP 127.0.0.1:44960"),
        "{printed}"
    );
    assert!(printed.contains("1 problem(s) found"), "{printed}");
    drop(server);
    drop(ns);
    std::fs::remove_dir_all(dir).unwrap();
}
