//! `talkconnect backup FILE`: a consistent copy of the SQLite database, taken while the server
//! runs. `VACUUM INTO` reads the whole database inside one read transaction, so the copy is one
//! snapshot (every transaction committed before it began, none half-written), and in WAL mode
//! the server's writers go on meanwhile. It is SQL, so no FFI to `sqlite3_backup_*`
//! (`unsafe_code` is forbidden), and it writes a compact file without the -wal beside it.
//! The copy goes to a private temporary file in the target's folder, is checked, synced, then
//! renamed over the target: a crash never leaves a half-written backup under the real name.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::config::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "backup copies a SQLite database; for PostgreSQL use pg_dump (docs/OPERATIONS.md, Backup and restore)"
    )]
    Postgres,
    #[error(
        "backup copies a SQLite database; for MySQL or MariaDB use mysqldump --single-transaction (docs/OPERATIONS.md, Backup and restore)"
    )]
    Mysql,
    #[error("the database {0} does not exist")]
    DatabaseMissing(String),
    #[error("{0} already exists; pass --force to replace it")]
    TargetExists(String),
    #[error("the folder {0} does not exist")]
    FolderMissing(String),
    #[error("cannot write in the folder {0}: {1}")]
    FolderUnwritable(String, io::Error),
    #[error("the backup path {0} is not valid UTF-8")]
    NotUtf8(String),
    #[error("cannot open the database {0}: {1}")]
    Open(String, ConnectionError),
    #[error("the copy failed: {0}")]
    Copy(String),
    #[error("cannot finish the backup {0}: {1}")]
    Finish(String, io::Error),
}

impl BackupError {
    /// Exit code 2 for what the person running it can fix by changing the command or the
    /// setup (as for bad configuration), 1 for a failure during the copy.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Open(..) | Self::Copy(_) | Self::Finish(..) => 1,
            _ => 2,
        }
    }
}

/// Copies the database at `url` to `target`; an existing target is replaced only with
/// `replace`. Returns the size of the backup in bytes.
pub fn backup(url: &DatabaseUrl, target: &Path, replace: bool) -> Result<u64, BackupError> {
    let source = match url {
        DatabaseUrl::Sqlite(path) => path,
        DatabaseUrl::Postgres(_) => return Err(BackupError::Postgres),
        DatabaseUrl::Mysql(_) => return Err(BackupError::Mysql),
    };
    // Checked first: opening a missing file would create an empty database.
    if !Path::new(source).is_file() {
        return Err(BackupError::DatabaseMissing(source.clone()));
    }
    let shown = target.display().to_string();
    if !replace && target.symlink_metadata().is_ok() {
        return Err(BackupError::TargetExists(shown));
    }
    let partial = Partial::create(target)?;
    let result = copy_into(source, &partial.path).and_then(|()| partial.finish(target));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial.path);
    }
    result
}

/// The temporary file the copy is written to, next to the target (so the rename is atomic).
struct Partial {
    path: PathBuf,
    folder: PathBuf,
}

impl Partial {
    fn create(target: &Path) -> Result<Self, BackupError> {
        let folder = match target.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => parent.to_path_buf(),
            None => PathBuf::from("."),
        };
        let shown = folder.display().to_string();
        // Absolute, so SQLite never reads the name as a `file:` URI.
        let folder = folder.canonicalize().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BackupError::FolderMissing(shown.clone()),
            _ => BackupError::FolderUnwritable(shown.clone(), e),
        })?;
        if !folder.is_dir() {
            return Err(BackupError::FolderMissing(shown));
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "talkconnect.db".to_owned());
        let path = folder.join(format!(".{name}.partial-{}", std::process::id()));
        // VACUUM INTO accepts an empty file; made here so it is private (the backup holds
        // password hashes) and so an unwritable folder is reported before any work.
        private_new_file(&path).map_err(|e| BackupError::FolderUnwritable(shown, e))?;
        Ok(Self { path, folder })
    }

    /// Syncs the copy, renames it over the target and syncs the folder, so the name survives
    /// a power cut.
    fn finish(&self, target: &Path) -> Result<u64, BackupError> {
        let failed = |e| BackupError::Finish(target.display().to_string(), e);
        let file = File::open(&self.path).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        let size = file.metadata().map_err(failed)?.len();
        std::fs::rename(&self.path, target).map_err(failed)?;
        File::open(&self.folder)
            .and_then(|f| f.sync_all())
            .map_err(failed)?;
        Ok(size)
    }
}

fn private_new_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// `VACUUM INTO` the (empty) file at `into`, then an integrity check of the copy.
fn copy_into(source: &str, into: &Path) -> Result<(), BackupError> {
    let into_str = into
        .to_str()
        .ok_or_else(|| BackupError::NotUtf8(into.display().to_string()))?;
    let mut conn =
        SqliteConnection::establish(source).map_err(|e| BackupError::Open(source.to_owned(), e))?;
    // The server may hold the write lock for a moment; the snapshot only needs to read.
    let copy = format!(
        "PRAGMA busy_timeout = 15000; VACUUM INTO '{}';",
        into_str.replace('\'', "''")
    );
    conn.batch_execute(&copy)
        .map_err(|e| BackupError::Copy(e.to_string()))?;
    drop(conn);
    let mut copy =
        SqliteConnection::establish(into_str).map_err(|e| BackupError::Copy(e.to_string()))?;
    let verdict = integrity_check(&mut copy).map_err(|e| BackupError::Copy(e.to_string()))?;
    if verdict != "ok" {
        return Err(BackupError::Copy(format!("integrity check: {verdict}")));
    }
    Ok(())
}

#[derive(QueryableByName)]
struct IntegrityCheck {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

/// `PRAGMA integrity_check`: "ok", or the first problem it found.
pub fn integrity_check(conn: &mut SqliteConnection) -> QueryResult<String> {
    let rows: Vec<IntegrityCheck> = diesel::sql_query("PRAGMA integrity_check").load(conn)?;
    Ok(rows
        .into_iter()
        .next()
        .map(|row| row.integrity_check)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tc-backup-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn database(dir: &Path) -> DatabaseUrl {
        let path = dir.join("source.db").display().to_string();
        let mut conn = SqliteConnection::establish(&path).unwrap();
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('kept');",
        )
        .unwrap();
        DatabaseUrl::Sqlite(path)
    }

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        x: String,
    }

    fn rows(path: &str) -> Vec<String> {
        let mut conn = SqliteConnection::establish(path).unwrap();
        let rows: Vec<Row> = diesel::sql_query("SELECT x FROM t")
            .load(&mut conn)
            .unwrap();
        rows.into_iter().map(|r| r.x).collect()
    }

    #[test]
    fn a_quote_in_the_path_is_part_of_the_name() {
        let dir = workdir();
        let url = database(&dir);
        let target = dir.join("it's'; DROP TABLE t; --.db");
        backup(&url, &target, false).unwrap();
        let mut copy = SqliteConnection::establish(target.to_str().unwrap()).unwrap();
        assert_eq!(integrity_check(&mut copy).unwrap(), "ok");
        assert_eq!(rows(target.to_str().unwrap()), ["kept"]);
        let DatabaseUrl::Sqlite(source) = url else {
            unreachable!()
        };
        assert_eq!(rows(&source), ["kept"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_existing_target_is_kept_unless_replacing_is_asked() {
        let dir = workdir();
        let url = database(&dir);
        let target = dir.join("backup.db");
        std::fs::write(&target, b"precious").unwrap();
        let err = backup(&url, &target, false).unwrap_err();
        assert!(matches!(err, BackupError::TargetExists(_)), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        backup(&url, &target, true).unwrap();
        assert_ne!(std::fs::read(&target).unwrap(), b"precious");
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
