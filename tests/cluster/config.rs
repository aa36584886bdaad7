//! Cluster mode refuses to start when it cannot work: no shared JWT secret, SQLite, a
//! malformed or unreachable `redis.url`. Each refusal is one line naming the key and a
//! non-zero exit, before anything is served.

use std::process::{Command, Output};

fn talkconnect(env: &[(&str, &str)]) -> Output {
    let data = std::env::temp_dir().join(format!("tc-cluster-config-{}", uuid::Uuid::new_v4()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_talkconnect"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TALKCONNECT__SERVER__HOST", "127.0.0.1")
        .env("TALKCONNECT__SERVER__PORT", "0")
        .env("TALKCONNECT__SERVER__DATA_DIR", &data)
        .env("RUST_LOG", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(data);
    out
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    text
}

const REDIS: (&str, &str) = ("TALKCONNECT__REDIS__URL", "redis://127.0.0.1:6379");
const POSTGRES: (&str, &str) = (
    "TALKCONNECT__DATABASE__URL",
    "postgres://postgres@127.0.0.1:5432/never_created_by_this_test",
);
const SECRET: (&str, &str) = (
    "TALKCONNECT__AUTH__JWT_SECRET",
    "a-shared-secret-of-at-least-32-characters",
);

#[test]
fn a_cluster_without_a_shared_jwt_secret_is_refused() {
    let out = talkconnect(&[REDIS, POSTGRES]);
    assert_eq!(out.status.code(), Some(2));
    let line = stderr_line(&out);
    assert!(line.starts_with("talkconnect: auth.jwt_secret:"), "{line}");
}

#[test]
fn a_cluster_on_sqlite_is_refused() {
    let out = talkconnect(&[
        REDIS,
        SECRET,
        ("TALKCONNECT__DATABASE__URL", "sqlite://data/x.db"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let line = stderr_line(&out);
    assert!(
        line.starts_with("talkconnect: database.url:") && line.contains("PostgreSQL"),
        "{line}"
    );
}

#[test]
fn a_malformed_redis_url_is_refused() {
    let out = talkconnect(&[
        ("TALKCONNECT__REDIS__URL", "http://127.0.0.1:6379"),
        SECRET,
        POSTGRES,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).starts_with("talkconnect: redis.url:"));
}

#[test]
fn an_unreachable_redis_fails_the_start_with_its_address() {
    // Port 1 on loopback: nothing listens there. Redis is checked before the database.
    let out = talkconnect(&[
        ("TALKCONNECT__REDIS__URL", "redis://:secret@127.0.0.1:1"),
        SECRET,
        POSTGRES,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(
        line.starts_with("talkconnect: redis.url: cannot reach Redis at redis://***@127.0.0.1:1"),
        "{line}"
    );
    assert!(!line.contains("secret"), "no password in messages: {line}");
}
