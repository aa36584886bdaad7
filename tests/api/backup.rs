//! `talkconnect backup FILE` as a self-hoster runs it: taken from a running server while a
//! writer posts chat messages, the copy passes SQLite's integrity check, holds every message
//! acknowledged before it began, and serves again once restored; and each bad command line
//! gets one clear line and exit code 2.

use std::collections::HashSet;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{Value, json};

use crate::cli::{guest_token, post_json, start, talkconnect, workdir};

fn server_in(dir: &Path) -> crate::cli::Server {
    let mut cmd = talkconnect(dir);
    cmd.env("TALKCONNECT__SERVER__PORT", "0")
        .env("TALKCONNECT__RATE_LIMIT__ENABLED", "false")
        // The writer holds its seat over REST only: keep the room alive without a socket.
        .env("TALKCONNECT__REALTIME__SEAT_GRACE_SECS", "3600");
    start(cmd)
}

fn base(server: &crate::cli::Server) -> String {
    let port = server.address.rsplit(':').next().unwrap();
    format!("http://127.0.0.1:{port}")
}

/// Waits (bounded) until `cond` holds.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn texts(conn: &mut SqliteConnection, sql: &str) -> Vec<String> {
    let rows: Vec<Text> = diesel::sql_query(sql).load(conn).unwrap();
    rows.into_iter().map(|r| r.value).collect()
}

#[test]
fn a_backup_taken_under_write_load_restores_every_acknowledged_message() {
    let dir = workdir();
    let server = server_in(&dir);
    let token = guest_token(&server.address);
    let client = reqwest::blocking::Client::new();
    let title = json!({"title": "Backups"});
    let (status, room) = post_json(&client, &server.address, "/api/rooms", Some(&token), title);
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().unwrap().to_owned();

    // The writer: one message after another, each remembered once the server answered 201.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, client) = (Arc::clone(&acked), Arc::clone(&stop), client.clone());
        let (address, path) = (server.address.clone(), format!("/api/rooms/{room_id}/chat"));
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let text = format!("message {sent}");
                sent += 1;
                let message = json!({"message": text});
                let (status, body) = post_json(&client, &address, &path, Some(&token), message);
                assert_eq!(status, 201, "{body}");
                acked.lock().unwrap().push(text);
            }
            sent
        })
    };
    let count = || acked.lock().unwrap().len();
    wait_until("50 messages before the backup", || count() >= 50);
    let before: Vec<String> = acked.lock().unwrap().clone();

    std::fs::create_dir(dir.join("backups")).unwrap();
    let output = talkconnect(&dir)
        .args(["backup", "backups/talkconnect.db"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // Writes went on after the copy, and the server kept answering.
    let after_backup = count();
    wait_until("more messages after the backup", || {
        count() >= after_backup + 20
    });
    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().unwrap();
    drop(server);

    let copy = dir.join("backups/talkconnect.db");
    let mut conn = SqliteConnection::establish(copy.to_str().unwrap()).unwrap();
    assert_eq!(
        talkconnect::db::backup::integrity_check(&mut conn).unwrap(),
        "ok"
    );
    // No message without its room and its author: nothing half-written.
    let orphans = texts(
        &mut conn,
        "SELECT \"table\" AS value FROM pragma_foreign_key_check",
    );
    assert!(orphans.is_empty(), "{orphans:?}");
    let kept: HashSet<String> = texts(
        &mut conn,
        &format!("SELECT message AS value FROM room_chat_messages WHERE room_id = '{room_id}'"),
    )
    .into_iter()
    .collect();
    for text in &before {
        assert!(
            kept.contains(text),
            "{text} was acknowledged before the backup"
        );
    }
    let written: HashSet<String> = (0..sent).map(|i| format!("message {i}")).collect();
    assert!(kept.is_subset(&written), "only messages the writer sent");
    assert!(
        kept.len() < sent,
        "the copy is a snapshot: it lacks the messages sent after it"
    );
    drop(conn);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is readable by its owner only");
    }

    // Restore as the docs say: the file into data/ of a stopped (here: new) server.
    let restored = workdir();
    std::fs::create_dir(restored.join("data")).unwrap();
    std::fs::copy(&copy, restored.join("data/talkconnect.db")).unwrap();
    let server = server_in(&restored);
    let list: Value = client
        .get(format!("{}/api/rooms?status=ALL", base(&server)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rooms = list["rooms"].as_array().unwrap_or_else(|| panic!("{list}"));
    assert!(
        rooms.iter().any(|r| r["id"] == room_id.as_str()),
        "the restored server lists the room: {list}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(restored);
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit code 2 and one line on stderr that contains `says`.
fn refused(output: &Output, says: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {text}");
    assert!(lines[0].contains(says), "{text}");
}

#[test]
fn a_bad_backup_command_gets_one_clear_line() {
    let dir = workdir();
    // No database yet: nothing to copy (and none is created).
    let output = talkconnect(&dir).args(["backup", "b.db"]).output().unwrap();
    refused(&output, "does not exist");
    assert!(!dir.join("data").exists());

    let output = talkconnect(&dir).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let output = talkconnect(&dir)
        .args(["backup", "missing/b.db"])
        .output()
        .unwrap();
    refused(&output, "the folder missing does not exist");

    // A folder nobody may write in (root writes anywhere a mode allows, not in /sys).
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let probe = locked.join("probe");
    let locked = if std::fs::write(&probe, b"").is_ok() {
        Path::new("/sys").to_path_buf()
    } else {
        locked
    };
    let output = talkconnect(&dir)
        .arg("backup")
        .arg(locked.join("b.db"))
        .output()
        .unwrap();
    refused(&output, "cannot write in the folder");

    std::fs::write(dir.join("kept.db"), b"precious").unwrap();
    let output = talkconnect(&dir)
        .args(["backup", "kept.db"])
        .output()
        .unwrap();
    refused(&output, "already exists; pass --force");
    assert_eq!(std::fs::read(dir.join("kept.db")).unwrap(), b"precious");
    let output = talkconnect(&dir)
        .args(["backup", "--force", "kept.db"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let output = talkconnect(&dir)
        .args(["backup", "b.db"])
        .env("TALKCONNECT__DATABASE__URL", "postgres://127.0.0.1/talk")
        .output()
        .unwrap();
    refused(&output, "pg_dump");
    let _ = std::fs::remove_dir_all(dir);
}
