//! `talkconnect doctor` as a self-hoster runs it: each broken setup is named with its fix,
//! and the exit code says whether anything failed.

use std::net::TcpListener;

use crate::cli::{talkconnect, workdir};

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
    assert_eq!(printed.matches("      fix: ").count(), 2, "{printed}");
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
