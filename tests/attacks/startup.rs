//! Finding 10 and 11 at start and under a burst: what the self-hoster configures is checked,
//! the database file is private, and a burst of writes on SQLite loses nothing and logs no
//! "database is locked".

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::Server;

/// A configured JWT secret shorter than 32 characters is refused at start, naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_configured_secret_is_refused() {
    let dir = std::env::temp_dir().join(format!("tc-attack-secret-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = std::env::var("TALKCONNECT_ATTACK_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_talkconnect").to_owned());
    let child = tokio::process::Command::new(bin)
        .current_dir(&dir)
        .env("TALKCONNECT__AUTH__JWT_SECRET", "hunter2")
        .env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
        .env("TALKCONNECT__SERVER__PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // A server that accepts the secret keeps running: the wait ends it.
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await;
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("the server refuses to start instead of serving");
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.jwt_secret: must be at least 32"),
        "{stderr}"
    );
}

/// The SQLite file (password hashes, chat) is readable by the server's user only.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start(&[]).await;
    server.guest("Lan").await;
    for file in ["talkconnect.db", "talkconnect.db-wal"] {
        let path = server.dir.join("data").join(file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
    }
}

/// Finding 11: a fresh SQLite database logs no "database is locked", at start or under a
/// burst of writes, and loses no write: pooled connections opened together used to switch to
/// WAL before their busy timeout was set, and one of them failed at once. (The race is
/// timing-bound here; src/db/mod.rs has the deterministic test of its cause.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_starts_and_bursts_without_database_is_locked() {
    for start in 0..8 {
        let server = Server::start(&[
            ("TALKCONNECT__RATE_LIMIT__ENABLED", "false"),
            ("TALKCONNECT__DATABASE__MAX_CONNECTIONS", "16"),
        ])
        .await;
        let (_, token) = server.guest("Burst").await;
        let room = server.room(&token, "Burst").await;
        let posts = (0..40).map(|i| {
            server
                .http
                .post(server.url(&format!("/api/rooms/{room}/chat")))
                .bearer_auth(&token)
                .json(&json!({ "message": format!("burst {i}") }))
                .send()
        });
        for response in futures_util::future::join_all(posts).await {
            assert_eq!(response.unwrap().status(), StatusCode::CREATED);
        }
        let page: Value = server
            .http
            .get(server.url(&format!("/api/rooms/{room}/chat?limit=100")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["messages"].as_array().unwrap().len(), 40);
        assert!(
            !server.log_contains("database is locked"),
            "start {start}: the log says 'database is locked'"
        );
    }
}
