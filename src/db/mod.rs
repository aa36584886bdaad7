//! The database: one diesel connection type for SQLite, PostgreSQL and (built with the
//! `mysql` feature) MySQL/MariaDB, its pool, the embedded migrations, and the two ways
//! services use it (`run` off the async threads, `write_transaction` for the invariants).

pub mod backup;
pub mod cursor;
pub mod schema;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DatabaseSettings, DatabaseUrl};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// Any PostgreSQL advisory-lock key will do, as long as every replica uses the same one.
const MIGRATION_LOCK_KEY: i64 = 0x7461_6c6b_636f_6e6e;
/// MySQL's named lock for the same (`GET_LOCK`), and how long a replica waits for it.
#[cfg(feature = "mysql")]
const MYSQL_MIGRATION_LOCK: &str = "talkconnect_migrations";
#[cfg(feature = "mysql")]
const MYSQL_MIGRATION_LOCK_WAIT_SECS: u32 = 120;

// The derive knows no `#[cfg]` on a variant: one enum per build.
#[cfg(not(feature = "mysql"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[cfg(feature = "mysql")]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
    Mysql(MysqlConnection),
}

pub type DbPool = r2d2::Pool<ConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection free in time")]
    PoolTimeout,
    #[error("the blocking database task failed: {0}")]
    TaskFailed(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl DbError {
    /// The database rolled the transaction back to get out of a conflict with another one
    /// (a deadlock, a serialization failure) or gave up waiting for a row another holds (a
    /// lock-wait timeout, MySQL): trying again shortly will likely work.
    pub fn is_conflict(&self) -> bool {
        matches!(self, DbError::Query(err) if is_conflict(err))
    }
}

fn is_conflict(err: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind as Kind;
    match err {
        diesel::result::Error::DatabaseError(Kind::SerializationFailure, _) => true,
        // MySQL's ER_LOCK_WAIT_TIMEOUT (1205), which diesel does not classify.
        diesel::result::Error::DatabaseError(_, info) => {
            info.message().starts_with("Lock wait timeout exceeded")
        }
        _ => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create the database folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("cannot create the database file {0}: {1}")]
    File(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Open(#[from] ConnectionError),
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("migrations failed: {0}")]
    Migrations(String),
    #[error("{0}")]
    Unsupported(String),
}

/// Opens connections of the variant the URL's scheme names.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    counters: Arc<DbCounters>,
}

/// What one pool counts for the operator (src/metrics): waits for a connection and queries
/// that failed. Atomics, bumped by the pool's event handler and each connection's
/// instrumentation.
#[derive(Debug, Default)]
pub struct DbCounters {
    /// Connections handed out.
    pub checkouts: AtomicU64,
    /// Microseconds spent waiting for them, summed.
    pub checkout_wait_micros: AtomicU64,
    /// Waits that ended without a connection (`connect_timeout_secs`).
    pub checkout_timeouts: AtomicU64,
    /// Failed queries: unique, foreign-key, check or not-null violations (often expected:
    /// a name taken is a 409)…
    pub constraint_errors: AtomicU64,
    /// …serialization failures, deadlocks and lock-wait timeouts (the transaction was rolled
    /// back)…
    pub conflict_errors: AtomicU64,
    /// …and every other failure (connection lost, bad SQL, database down).
    pub other_errors: AtomicU64,
}

impl DbCounters {
    fn count_error(&self, error: &diesel::result::Error) {
        use diesel::result::DatabaseErrorKind as Kind;
        use diesel::result::Error;
        let counter = match error {
            Error::DatabaseError(
                Kind::UniqueViolation
                | Kind::ForeignKeyViolation
                | Kind::CheckViolation
                | Kind::NotNullViolation,
                _,
            ) => &self.constraint_errors,
            _ if is_conflict(error) => &self.conflict_errors,
            _ => &self.other_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Feeds the pool's checkouts and timeouts into its [`DbCounters`].
#[derive(Debug)]
struct PoolEvents(Arc<DbCounters>);

impl r2d2::HandleEvent for PoolEvents {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        let waited = u64::try_from(event.duration().as_micros()).unwrap_or(u64::MAX);
        self.0.checkouts.fetch_add(1, Ordering::Relaxed);
        self.0
            .checkout_wait_micros
            .fetch_add(waited, Ordering::Relaxed);
    }

    fn handle_timeout(&self, _event: r2d2::event::TimeoutEvent) {
        self.0.checkout_timeouts.fetch_add(1, Ordering::Relaxed);
    }
}

impl ConnectionManager {
    fn establish(&self) -> ConnectionResult<DbConnection> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConnection::Postgres),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // The busy timeout first: switching to WAL takes a lock, and without the
                // timeout a connection opened while another writes fails at once ("database is
                // locked"). WAL lets readers go on while one writer commits; writers queue on
                // the busy timeout; SQLite leaves foreign keys off by default.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
            #[cfg(feature = "mysql")]
            DatabaseUrl::Mysql(url) => {
                let mut conn = MysqlConnection::establish(url)?;
                // diesel sets UTC and utf8mb4 for the session. READ COMMITTED as on
                // PostgreSQL: a rule's reads after its row lock see what was committed before
                // it got the lock, not a snapshot from its first read.
                conn.batch_execute(
                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                     SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES');",
                )
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Mysql(conn))
            }
            #[cfg(not(feature = "mysql"))]
            DatabaseUrl::Mysql(_) => Err(ConnectionError::BadConnection(
                "this binary was built without MySQL support: build it with `cargo build --release --features mysql` (README, MySQL and MariaDB)".into(),
            )),
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        let mut conn = self.establish()?;
        let counters = Arc::clone(&self.counters);
        conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::FinishQuery {
                error: Some(error),
                ..
            } = event
            {
                counters.count_error(error);
            }
        });
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1")
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// Creates the SQLite folder if needed, runs the pending migrations, then builds the pool.
pub fn connect(url: &DatabaseUrl, settings: &DatabaseSettings) -> Result<DbPool, ConnectError> {
    connect_counted(url, settings, Arc::default())
}

/// [`connect`], counting the pool's waits and failed queries into `counters`.
pub fn connect_counted(
    url: &DatabaseUrl,
    settings: &DatabaseSettings,
    counters: Arc<DbCounters>,
) -> Result<DbPool, ConnectError> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| ConnectError::Folder(parent.display().to_string(), e))?;
        }
        private_file(Path::new(path)).map_err(|e| ConnectError::File(path.to_owned(), e))?;
    }
    let manager = ConnectionManager {
        url: url.clone(),
        counters: Arc::clone(&counters),
    };
    let mut conn = manager.establish()?;
    check_version(&mut conn)?;
    run_migrations(&mut conn)?;
    drop(conn);
    let pool = r2d2::Pool::builder()
        .max_size(settings.max_connections)
        .connection_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)))
        .event_handler(Box::new(PoolEvents(counters)))
        .build(manager)?;
    Ok(pool)
}

/// The SQLite file holds password hashes and chat: only the server's user may read it. Made
/// before SQLite opens it, so its -wal and -shm files (which copy its mode) are private too.
fn private_file(path: &Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Refuses a MySQL or MariaDB older than the supported ones (MySQL 8.0, MariaDB 10.11),
/// naming its version.
fn check_version(conn: &mut DbConnection) -> Result<(), ConnectError> {
    #[cfg(feature = "mysql")]
    if let DbConnection::Mysql(c) = conn {
        let version: String =
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("VERSION()"))
                .get_result(c)
                .map_err(|e| ConnectError::Migrations(e.to_string()))?;
        if let Some(why) = unsupported_mysql(&version) {
            return Err(ConnectError::Unsupported(why));
        }
    }
    let _ = conn;
    Ok(())
}

/// Why a server of `version` (`SELECT VERSION()`) is not supported, if it is not.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
fn unsupported_mysql(version: &str) -> Option<String> {
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    let (name, least) = if version.contains("MariaDB") {
        ("MariaDB", (10, 11))
    } else {
        ("MySQL", (8, 0))
    };
    (found < least).then(|| {
        format!(
            "{name} {version} is too old: TalkConnect needs MySQL 8.0 or MariaDB 10.11 and newer"
        )
    })
}

/// Runs the pending migrations of the connection's backend. Under PostgreSQL, replicas that
/// start together take turns through an advisory lock; under MySQL, through `GET_LOCK`.
pub fn run_migrations(conn: &mut DbConnection) -> Result<(), ConnectError> {
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>| ConnectError::Migrations(e.to_string());
    match conn {
        DbConnection::Sqlite(c) => {
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(failed)?;
        }
        DbConnection::Postgres(c) => {
            let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})");
            c.batch_execute(&lock)
                .map_err(|e| ConnectError::Migrations(e.to_string()))?;
            let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
            let unlock = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})");
            let _ = c.batch_execute(&unlock);
            result.map_err(failed)?;
        }
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => {
            use diesel::sql_types::{Integer, Nullable};
            let lock =
                format!("GET_LOCK('{MYSQL_MIGRATION_LOCK}', {MYSQL_MIGRATION_LOCK_WAIT_SECS})");
            let got: Option<i32> = diesel::select(diesel::dsl::sql::<Nullable<Integer>>(&lock))
                .get_result(c)
                .map_err(|e| ConnectError::Migrations(e.to_string()))?;
            if got != Some(1) {
                return Err(ConnectError::Migrations(format!(
                    "another replica held the migration lock for {MYSQL_MIGRATION_LOCK_WAIT_SECS} s"
                )));
            }
            let result = c.run_pending_migrations(MYSQL_MIGRATIONS).map(|_| ());
            let _ = c.batch_execute(&format!("DO RELEASE_LOCK('{MYSQL_MIGRATION_LOCK}')"));
            result.map_err(failed)?;
        }
    }
    Ok(())
}

/// Runs synchronous diesel work on the blocking thread pool with a pooled connection.
pub async fn run<T, E, F>(pool: &DbPool, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let pool = pool.clone();
    // What the work logs carries the caller's request or socket id.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _caller = span.enter();
        let mut conn = pool.get().map_err(|_| DbError::PoolTimeout)?;
        work(&mut conn)
    })
    .await
    .map_err(|e| DbError::TaskFailed(e.to_string()))?
}

/// A transaction that holds the write lock from its first statement: `BEGIN IMMEDIATE` on
/// SQLite (so two writers never both read the same seat count), a plain `BEGIN` on
/// PostgreSQL and MySQL where the work locks the rows it guards (the room rules lock the
/// room's row).
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DbError>,
{
    let begun = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begun.map_err(DbError::from)?;
    match work(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(DbError::from)?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) =
                <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
            {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

/// Now, in UTC, at the microsecond precision every backend keeps (so cursors round-trip).
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// True when the error is a UNIQUE violation (turned into 409s on purpose).
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_mysql_and_mariadb_are_refused_by_version() {
        for ok in [
            "8.0.36",
            "8.4.2-0ubuntu0.24.04.1",
            "10.11.19-MariaDB-0+deb12u1",
            "11.4.2-MariaDB",
        ] {
            assert_eq!(unsupported_mysql(ok), None, "{ok}");
        }
        for old in [
            "5.7.44-log",
            "10.6.18-MariaDB",
            "10.5.0-MariaDB-1:10.5.0+maria~focal",
        ] {
            let why = unsupported_mysql(old).expect(old);
            assert!(why.contains(old), "{why}");
        }
    }

    #[test]
    fn a_pool_counts_its_checkouts_and_failed_queries() {
        let dir = std::env::temp_dir().join(format!("tc-db-{}", uuid::Uuid::new_v4()));
        let url = DatabaseUrl::Sqlite(dir.join("t.db").display().to_string());
        let settings = DatabaseSettings {
            url: String::new(),
            max_connections: 2,
            connect_timeout_secs: 1,
        };
        let counters = Arc::new(DbCounters::default());
        let pool = connect_counted(&url, &settings, Arc::clone(&counters)).unwrap();
        let mut conn = pool.get().unwrap();
        conn.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        conn.batch_execute("INSERT INTO t VALUES (1)").unwrap();
        assert!(conn.batch_execute("INSERT INTO t VALUES (1)").is_err());
        assert!(conn.batch_execute("SELEC nonsense").is_err());
        drop(conn);
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        assert!(load(&counters.checkouts) >= 1);
        assert_eq!(load(&counters.constraint_errors), 1);
        assert_eq!(load(&counters.other_errors), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Connections opened together on a WAL database that nobody has open: one of them
    /// recovers the WAL index and the others must wait for it. With the busy timeout set
    /// after the switch to WAL they failed at once ("database is locked", logged at start
    /// and when the pool grew under a burst).
    #[test]
    fn connections_opened_together_wait_instead_of_failing() {
        let dir = std::env::temp_dir().join(format!("tc-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db").display().to_string();
        let manager = ConnectionManager {
            url: DatabaseUrl::Sqlite(path),
            counters: Arc::default(),
        };
        let mut first = manager.establish().unwrap();
        run_migrations(&mut first).unwrap();
        drop(first);
        for round in 0..10 {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
            let opened: Vec<_> = (0..16)
                .map(|_| {
                    let manager = manager.clone();
                    let barrier = std::sync::Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        barrier.wait();
                        manager.establish().map_err(|e| e.to_string())
                    })
                })
                .collect();
            let results: Vec<_> = opened.into_iter().map(|t| t.join().unwrap()).collect();
            let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
            assert!(failed.is_empty(), "round {round}: {failed:?}");
            // Every connection closes: the next round opens a database nobody holds.
            drop(results);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
