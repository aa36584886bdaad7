//! The real binary as an attacker meets it: started with its defaults (plus what a test sets)
//! on a free port with a fresh SQLite database, its log kept for the test to read, its RSS
//! readable from /proc.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub addr: String,
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl Server {
    /// The binary with `env` (TALKCONNECT__… pairs) over its defaults.
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let dir = std::env::temp_dir().join(format!("tc-attack-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // TALKCONNECT_ATTACK_BIN runs the same attacks on another build (an older one, to see
        // them succeed there).
        let bin = std::env::var("TALKCONNECT_ATTACK_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_talkconnect").to_owned());
        let mut cmd = Command::new(bin);
        cmd.current_dir(&dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("TALKCONNECT__") {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", "warn,talkconnect=info")
            .env("NO_COLOR", "1")
            .env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
            .env("TALKCONNECT__SERVER__PORT", "0")
            .env("TALKCONNECT__SERVER__WORKERS", "2")
            // Media on loopback, ports the kernel hands out far from other tests' blocks.
            .env("TALKCONNECT__SFU__BIND_IP", "127.0.0.1")
            .env("TALKCONNECT__SFU__ALLOW_LOOPBACK", "true")
            .env("TALKCONNECT__SFU__UDP_PORT_MIN", "43100")
            .env("TALKCONNECT__SFU__UDP_PORT_MAX", "43999");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let addr = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the server starts within 60 s")
            .expect("the server logs its address");
        Server {
            child,
            addr,
            dir,
            log,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Sends a request and reads its JSON answer.
    pub async fn json(&self, request: reqwest::RequestBuilder) -> Value {
        request.send().await.unwrap().json().await.unwrap()
    }

    pub async fn guest(&self, name: &str) -> (String, String) {
        let body = self
            .json(
                self.http
                    .post(self.url("/api/auth/guest"))
                    .json(&json!({ "displayName": name })),
            )
            .await;
        (
            body["user"]["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn room(&self, token: &str, title: &str) -> String {
        let request = self
            .http
            .post(self.url("/api/rooms"))
            .bearer_auth(token)
            .json(&json!({ "title": title }));
        self.json(request).await["id"].as_str().unwrap().to_owned()
    }

    pub async fn room_status(&self, room: &str) -> String {
        let body = self
            .json(self.http.get(self.url(&format!("/api/rooms/{room}"))))
            .await;
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    /// True once the room has ended, within `within`.
    pub async fn room_ends_within(&self, room: &str, within: Duration) -> bool {
        self.eventually(within, || async { self.room_status(room).await == "ENDED" })
            .await
    }

    /// A fresh Engine.IO session over long-polling: its sid.
    pub async fn polling_session(&self) -> String {
        let url = self.url("/socket.io/?EIO=4&transport=polling");
        let open = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let open: Value = serde_json::from_str(&open[1..]).unwrap();
        open["sid"].as_str().unwrap().to_owned()
    }

    /// Waits until `check` holds, for at most `within`; true when it did.
    pub async fn eventually<F, Fut>(&self, within: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if check().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
