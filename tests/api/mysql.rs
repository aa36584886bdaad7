//! What is MySQL's own (a build with the `mysql` feature, against the MariaDB that
//! scripts/services starts; the REST suite itself runs on it through `on_every_backend!`):
//! - a server that is down, a refused login and a database the account may not use each stop
//!   the start with one line and exit code 2;
//! - `talkconnect migrate` creates the schema, and replicas migrating together run each
//!   migration once (`GET_LOCK`);
//! - a deadlock and a lock-wait timeout, as MariaDB reports them, answer 503 with Retry-After
//!   rather than 500.

use std::process::Output;
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use talkconnect::db::DbError;
use talkconnect::error::ApiError;

use crate::cli::{talkconnect, workdir};
use crate::helpers::{Backend, TestApp, mysql_admin_url};

/// A fresh, empty database; dropped by the returned guard.
struct FreshDb(String);

impl FreshDb {
    fn create() -> Self {
        let name = format!("tc_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin =
            MysqlConnection::establish(&mysql_admin_url()).expect("MariaDB (scripts/services)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            .unwrap();
        FreshDb(name)
    }

    fn url(&self) -> String {
        format!("{}/{}", mysql_admin_url(), self.0)
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = MysqlConnection::establish(&mysql_admin_url()) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.0));
        }
    }
}

fn one_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_owned()
}

#[test]
fn an_unusable_mysql_stops_the_start_with_one_line_and_exit_code_2() {
    let dir = workdir();
    let db = FreshDb::create();
    let user = format!(
        "tc_noprivs_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut admin = MysqlConnection::establish(&mysql_admin_url()).unwrap();
    admin
        .batch_execute(&format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'secret-of-{user}'"
        ))
        .unwrap();
    let cases = [
        // Nothing listens on port 1.
        (
            "mysql://talkconnect_test:talkconnect_test@127.0.0.1:1/talk".to_owned(),
            "connect",
        ),
        (
            format!(
                "mysql://talkconnect_test:wrong-password@127.0.0.1:3306/{}",
                db.0
            ),
            "Access denied",
        ),
        (
            format!("mysql://{user}:secret-of-{user}@127.0.0.1:3306/{}", db.0),
            "Access denied",
        ),
    ];
    for (url, says) in &cases {
        let output = talkconnect(&dir)
            .env("TALKCONNECT__DATABASE__URL", url)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{url}");
        let line = one_line(&output);
        assert!(line.contains("database"), "{url}: {line}");
        assert!(line.contains(says), "{url}: {line}");
        assert!(
            !line.contains("secret-of"),
            "no password in the line: {line}"
        );
    }
    let _ = admin.batch_execute(&format!("DROP USER '{user}'@'127.0.0.1'"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn replicas_migrating_together_run_each_migration_once() {
    let dir = workdir();
    let db = FreshDb::create();
    let children: Vec<_> = (0..3)
        .map(|_| {
            talkconnect(&dir)
                .arg("migrate")
                .env("TALKCONNECT__DATABASE__URL", db.url())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut conn = MysqlConnection::establish(&db.url()).unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let ran: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")
        .get_result(&mut conn)
        .unwrap();
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql"))
        .unwrap()
        .count();
    assert_eq!(ran.n, on_disk as i64, "each migration once");
    let tables: Vec<Count> = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() \
         AND table_name IN ('users', 'rooms', 'room_participants', 'room_chat_messages', \
         'user_blocks', 'reports', 'bans', 'audit_log')",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(tables[0].n, 8);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Two transactions that each hold a row the other wants: MariaDB rolls one back (deadlock);
/// one that waits past `innodb_lock_wait_timeout` gives up. Both are 503 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_and_a_lock_wait_timeout_are_a_503_to_retry() {
    let app = TestApp::spawn(Backend::Mysql).await;
    let [a, b] = app.guests(["A", "B"]).await;
    let url = app.state.settings.database.url.clone();
    let (a, b) = (a.id.to_string(), b.id.to_string());
    let lock = |conn: &mut MysqlConnection, id: &str| {
        diesel::sql_query("SELECT id FROM users WHERE id = ? FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(conn)
    };

    let mut first = MysqlConnection::establish(&url).unwrap();
    let mut second = MysqlConnection::establish(&url).unwrap();
    first.batch_execute("BEGIN").unwrap();
    second.batch_execute("BEGIN").unwrap();
    lock(&mut first, &a).unwrap();
    lock(&mut second, &b).unwrap();
    let b_for_first = b.clone();
    let waiting = thread::spawn(move || {
        let result = lock(&mut first, &b_for_first);
        let _ = first.batch_execute("ROLLBACK");
        result
    });
    thread::sleep(Duration::from_millis(300));
    let crossed = lock(&mut second, &a);
    let _ = second.batch_execute("ROLLBACK");
    let waited = waiting.join().unwrap();
    let deadlock = [crossed, waited]
        .into_iter()
        .find_map(Result::err)
        .expect("MariaDB chose a deadlock victim");
    let api = ApiError::from(DbError::from(deadlock));
    assert_eq!(api.status.as_u16(), 503, "{}", api.message);
    assert_eq!(api.retry_after_secs, Some(1));

    let mut holder = MysqlConnection::establish(&url).unwrap();
    let mut waiter = MysqlConnection::establish(&url).unwrap();
    holder.batch_execute("BEGIN").unwrap();
    lock(&mut holder, &a).unwrap();
    waiter
        .batch_execute("SET SESSION innodb_lock_wait_timeout = 1; BEGIN")
        .unwrap();
    let timeout = lock(&mut waiter, &a).expect_err("the row is held");
    let _ = holder.batch_execute("ROLLBACK");
    let api = ApiError::from(DbError::from(timeout));
    assert_eq!(api.status.as_u16(), 503, "{}", api.message);
}
