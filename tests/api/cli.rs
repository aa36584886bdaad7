//! The `talkconnect` binary as a self-hoster runs it: nothing configured, bad configuration,
//! `--config`, `migrate`, and the JWT secret kept across restarts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_talkconnect");

pub(crate) fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tc-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command in `dir` with no TALKCONNECT__ variable inherited from the caller.
pub(crate) fn talkconnect(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TALKCONNECT__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    cmd
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub address: String,
    /// Every line the server wrote to stdout (its log) so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server and reads the bound address from its log (http or https).
pub(crate) fn start(mut cmd: Command) -> Server {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line.clone());
            let rest = line
                .split("listening on http://")
                .nth(1)
                .or_else(|| line.split("listening on https://").nth(1));
            if let Some(rest) = rest {
                // Text ends it with a space, JSON with its string's quote.
                let address = rest
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(address);
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server logs the address it listens on");
    Server {
        child,
        address,
        log,
    }
}

impl Server {
    /// The first line of the log that contains every one of `parts` (waits for it, bounded).
    pub(crate) fn line_with(&self, parts: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log.lock().unwrap();
            if let Some(line) = log.iter().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no line with {parts:?} in the log:\n{}",
                log.join("\n")
            );
            drop(log);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn http_get(address: &str, path: &str) -> (u16, String) {
    let port = address.rsplit(':').next().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

/// POSTs `body` to the server at `address` (with `token` as bearer when given): the status and
/// the JSON answer (null when there is none).
pub(crate) fn post_json(
    client: &reqwest::blocking::Client,
    address: &str,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let port = address.rsplit(':').next().unwrap();
    let mut request = client
        .post(format!("http://127.0.0.1:{port}{path}"))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

pub(crate) fn guest_token(address: &str) -> String {
    let client = reqwest::blocking::Client::new();
    let guest = serde_json::json!({"displayName": "Lan"});
    let (_, body) = post_json(&client, address, "/api/auth/guest", None, guest);
    body["token"].as_str().unwrap().to_string()
}

fn me_status(address: &str, token: &str) -> u16 {
    let port = address.rsplit(':').next().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

#[test]
fn with_nothing_configured_it_serves_from_data_and_keeps_its_secret() {
    let dir = workdir();
    let mut cmd = talkconnect(&dir);
    cmd.env("TALKCONNECT__SERVER__PORT", "0");
    let server = start(cmd);
    assert!(server.address.starts_with("0.0.0.0:"), "{}", server.address);
    assert_eq!(http_get(&server.address, "/healthz").0, 200);
    assert!(dir.join("data/talkconnect.db").is_file());
    let secret = std::fs::read_to_string(dir.join("data/jwt_secret")).unwrap();
    assert!(secret.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("data/jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret is readable by its owner only");
    }
    let token = guest_token(&server.address);
    drop(server);

    // A restart keeps the secret, so sessions survive it.
    let mut cmd = talkconnect(&dir);
    cmd.env("TALKCONNECT__SERVER__PORT", "0");
    let server = start(cmd);
    assert_eq!(
        std::fs::read_to_string(dir.join("data/jwt_secret")).unwrap(),
        secret
    );
    assert_eq!(me_status(&server.address, &token), 200);
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_config_file_and_the_environment_override_the_defaults() {
    let dir = workdir();
    std::fs::write(
        dir.join("custom.toml"),
        "[server]\nhost = \"127.0.0.1\"\nport = 1\ndata_dir = \"state\"\n[database]\nurl = \"sqlite://state/db.sqlite\"\n",
    )
    .unwrap();
    let mut cmd = talkconnect(&dir);
    cmd.args(["--config", "custom.toml"])
        .env("TALKCONNECT__SERVER__PORT", "0");
    let server = start(cmd);
    assert!(
        server.address.starts_with("127.0.0.1:"),
        "{}",
        server.address
    );
    assert!(dir.join("state/db.sqlite").is_file());
    assert!(dir.join("state/jwt_secret").is_file());
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_key() {
    let dir = workdir();
    let cases: [(&str, &str, &str); 5] = [
        ("TALKCONNECT__SERVER__PORT", "eighty", "server.port"),
        (
            "TALKCONNECT__DATABASE__URL",
            "mongodb://localhost/talk",
            "database.url",
        ),
        (
            "TALKCONNECT__RATE_LIMIT__ENABLED",
            "perhaps",
            "rate_limit.enabled",
        ),
        (
            "TALKCONNECT__ROOMS__DEFAULT_MAX_PARTICIPANTS",
            "30",
            "rooms.default_max_participants",
        ),
        (
            "TALKCONNECT__METRICS__LISTEN",
            "localhost",
            "metrics.listen",
        ),
    ];
    for (key, value, named) in cases {
        let output = talkconnect(&dir).env(key, value).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{key}={value} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {key}={value}: {stderr}");
        assert!(lines[0].contains(named), "{key}={value}: {stderr}");
    }
    let output = talkconnect(&dir)
        .args(["--config", "missing.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
    assert!(!dir.join("data").exists(), "a refused start writes nothing");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn migrate_creates_the_schema_and_exits() {
    let dir = workdir();
    let output = talkconnect(&dir)
        .arg("migrate")
        .env("TALKCONNECT__DATABASE__URL", "sqlite://db/fresh.db")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.join("db/fresh.db").is_file());
    // Twice is fine: nothing left to run.
    let output = talkconnect(&dir)
        .arg("migrate")
        .env("TALKCONNECT__DATABASE__URL", "sqlite://db/fresh.db")
        .output()
        .unwrap();
    assert!(output.status.success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn logs_carry_no_colour_codes_when_not_written_to_a_terminal() {
    let dir = workdir();
    let mut cmd = talkconnect(&dir);
    // No NO_COLOR: a pipe alone must be enough (systemd's journal, docker logs, a file).
    cmd.env_remove("NO_COLOR").arg("migrate");
    let output = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
    assert!(text.contains("INFO"), "a log line was written: {text}");
    assert!(!text.contains('\u{1b}'), "colour codes in {text:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_version_names_the_release_and_the_commit() {
    let output = Command::new(BIN).arg("--version").output().unwrap();
    assert!(output.status.success());
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let expected = format!("talkconnect {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected), "{line}");
    let commit = line.trim_start_matches(&expected).trim_end_matches(')');
    let hex = commit.trim_end_matches("-modified");
    assert!(
        hex == "unknown" || (hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit())),
        "{line}"
    );
}
