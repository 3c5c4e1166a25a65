//! Online backup of the embedded SQLite database (`tillgate-server admin backup`), its
//! restore (`admin restore`, with the server stopped), and the lock that tells them apart.
//!
//! The copy is taken with SQLite's `VACUUM INTO`: a consistent snapshot of the database
//! as of one read transaction, taken while the server keeps serving (in WAL mode a reader
//! blocks no writer). Every transaction acknowledged before the backup began is in it;
//! nothing acknowledged later is. The copy is written next to its final name, synced,
//! checked (`PRAGMA integrity_check`), made readable by its owner only, and only then
//! linked under the name asked for, which must not exist yet: an interrupted backup never
//! leaves a plausible-looking file behind, and no file is ever overwritten.
//!
//! A restore replaces the database only while no server uses it: a serving process holds
//! an exclusive lock on `<database>.lock` ([`lock_database`]), which the restore must
//! take too. The database it replaces is moved aside with its `-wal` and `-shm` files,
//! never deleted; a `-wal` left next to the restored file would be replayed onto it.
//!
//! PostgreSQL has its own tools (`pg_dump`, base backups); these commands refuse it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions as _, Connection as _, Row as _};

use crate::db::sqlite_path;

/// What a finished backup holds, printed by the CLI as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    /// The backup file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The newest schema migration it holds.
    pub schema_version: i64,
    /// Registrations in it.
    pub activations: i64,
    /// Cash transactions in it.
    pub transactions: i64,
    /// Signing keys in it (their seeds as stored: sealed when the server has a KEK).
    pub signing_keys: i64,
}

/// Writes a consistent, checked copy of the SQLite database at `url` to the new file `to`.
///
/// The server may keep running meanwhile. Errors are the CLI's messages: a PostgreSQL
/// URL, a missing database, an existing `to`, or any I/O or SQLite failure (the partial
/// copy is removed).
pub async fn backup(url: &str, to: &Path) -> Result<BackupSummary, String> {
    let Some(db) = sqlite_path(url) else {
        return Err(if url.starts_with("sqlite:") {
            "backup needs a database file (an in-memory database has nothing to back up)".into()
        } else {
            "backup writes SQLite databases only; back PostgreSQL up with its own tools \
             (pg_dump or a base backup, see server/README.md)"
                .into()
        });
    };
    if !db.is_file() {
        return Err(format!("no database at {}", db.display()));
    }
    if to.exists() {
        return Err(format!(
            "{} exists; a backup never overwrites a file, choose a new name",
            to.display()
        ));
    }
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("no directory {}", dir.display()));
    }
    let file_name = to
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", to.display()))?;
    let mut partial_name = file_name.to_os_string();
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = dir.join(partial_name);

    let result = write_checked(&db, &partial, to).await;
    // On success the partial name was only a second link to the backup; on failure it
    // is the incomplete copy. Either way it goes.
    let _ = std::fs::remove_file(&partial);
    let summary = result?;
    sync_dir(&dir)?;
    Ok(summary)
}

async fn write_checked(db: &Path, partial: &Path, to: &Path) -> Result<BackupSummary, String> {
    let partial_str = partial
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", partial.display()))?;
    // Read-only: the backup never writes to the live database (no migration, no
    // checkpoint), and a server holding the write lock does not delay it.
    let mut source = open(db, true).await?;
    let snapshot = sqlx::query("VACUUM INTO $1")
        .bind(partial_str)
        .execute(&mut source)
        .await
        .map_err(|e| format!("cannot write {}: {e}", partial.display()));
    let _ = source.close().await;
    snapshot?;

    // SQLite does not sync what VACUUM INTO wrote.
    let file = std::fs::File::open(partial)
        .map_err(|e| format!("cannot open {}: {e}", partial.display()))?;
    file.sync_all()
        .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
    restrict_permissions(partial)?;

    let mut copy = open(partial, true).await?;
    let summary = check(&mut copy, to).await;
    let _ = copy.close().await;
    let mut summary = summary?;
    summary.bytes = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", partial.display()))?
        .len();

    // A second link under the final name: fails if that name appeared meanwhile, where a
    // rename would replace it.
    std::fs::hard_link(partial, to).map_err(|e| {
        format!(
            "cannot create {} (it must not exist yet): {e}",
            to.display()
        )
    })?;
    Ok(summary)
}

async fn open(path: &Path, read_only: bool) -> Result<AnyConnection, String> {
    sqlx::any::install_default_drivers();
    let mode = if read_only { "ro" } else { "rw" };
    let url = format!("sqlite://{}?mode={mode}", path.display());
    let options: AnyConnectOptions = url
        .parse()
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    options
        .connect()
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

async fn check(copy: &mut AnyConnection, to: &Path) -> Result<BackupSummary, String> {
    let broken = |e: sqlx::Error| format!("the copy does not read back: {e}");
    let verdict: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut *copy)
        .await
        .map_err(broken)?
        .try_get(0)
        .map_err(broken)?;
    if verdict != "ok" {
        return Err(format!(
            "the copy failed SQLite's integrity check: {verdict}"
        ));
    }
    let mut counts = [0_i64; 3];
    for (n, sql) in counts.iter_mut().zip([
        "SELECT COUNT(*) FROM activations",
        "SELECT COUNT(*) FROM transactions",
        "SELECT COUNT(*) FROM signing_keys",
    ]) {
        *n = sqlx::query(sql)
            .fetch_one(&mut *copy)
            .await
            .map_err(broken)?
            .try_get(0)
            .map_err(broken)?;
    }
    let schema_version: i64 =
        sqlx::query("SELECT COALESCE(MAX(version), 0) FROM tillgate_migrations")
            .fetch_one(&mut *copy)
            .await
            .map_err(broken)?
            .try_get(0)
            .map_err(broken)?;
    Ok(BackupSummary {
        path: to.to_path_buf(),
        bytes: 0,
        schema_version,
        activations: counts[0],
        transactions: counts[1],
        signing_keys: counts[2],
    })
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    // The database holds the signing keys: readable by its owner only, like the live one.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), String> {
    // The new directory entry is durable once the directory is synced.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// Holds the database's lock file for as long as it lives.
#[derive(Debug)]
pub struct DatabaseLock(#[allow(dead_code)] std::fs::File);

/// Takes the exclusive lock of the SQLite database at `url` (`<database>.lock`, created
/// beside it), or says who holds it. `Ok(None)` on PostgreSQL, where several servers share
/// one database by design. The operating system releases it when the process ends, even
/// when it is killed.
pub fn lock_database(url: &str) -> Result<Option<DatabaseLock>, String> {
    let Some(db) = sqlite_path(url) else {
        return Ok(None);
    };
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let path = db.with_file_name(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(DatabaseLock(file))),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another tillgate-server process uses {} (it holds {})",
            db.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// What a restore did, printed by the CLI as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSummary {
    /// The database file now in place.
    pub restored: PathBuf,
    /// The backup it was copied from.
    pub from: PathBuf,
    /// Where the replaced database and its `-wal` / `-shm` files were moved, if there
    /// was one.
    pub previous: Option<PathBuf>,
    /// The newest schema migration in the restored database.
    pub schema_version: i64,
    /// Registrations in it.
    pub activations: i64,
    /// Cash transactions in it.
    pub transactions: i64,
}

/// Replaces the SQLite database at `url` with a copy of the backup `from`, which must
/// pass SQLite's integrity check and hold no schema newer than `known_schema`. Refused
/// while a server uses the database. The replaced database is moved, with its `-wal` and
/// `-shm` files, into a new directory `before-restore-<now>` beside it.
pub async fn restore(
    url: &str,
    from: &Path,
    known_schema: i64,
    now: i64,
) -> Result<RestoreSummary, String> {
    let Some(db) = sqlite_path(url) else {
        return Err(
            "restore replaces SQLite databases only; restore PostgreSQL with its own tools \
             (pg_restore or psql, see server/README.md)"
                .into(),
        );
    };
    if !from.is_file() {
        return Err(format!("no backup at {}", from.display()));
    }
    let _lock = lock_database(url)
        .map_err(|e| format!("{e}; stop the server first"))?
        .ok_or("restore needs a SQLite database file")?;
    // Check the backup before anything moves.
    let mut copy = open(from, true).await?;
    let checked = check(&mut copy, &db).await;
    let _ = copy.close().await;
    let checked = checked.map_err(|e| format!("{}: {e}", from.display()))?;
    if checked.schema_version > known_schema {
        return Err(format!(
            "{} has schema version {}, newer than this tillgate-server knows ({known_schema})",
            from.display(),
            checked.schema_version
        ));
    }

    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = db
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", db.display()))?
        .to_os_string();
    let companion = |suffix: &str| {
        let mut n = file_name.clone();
        n.push(suffix);
        dir.join(n)
    };
    // The copy first, beside the database: a failure here changes nothing.
    let partial = companion(".restore-partial");
    let _ = std::fs::remove_file(&partial);
    let copied = std::fs::copy(from, &partial)
        .and_then(|_| std::fs::File::open(&partial)?.sync_all())
        .map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                from.display(),
                partial.display()
            )
        });
    if let Err(e) = copied.and_then(|()| restrict_permissions(&partial)) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }

    // Move the current database and its companions aside, together.
    let present: Vec<PathBuf> = [db.clone(), companion("-wal"), companion("-shm")]
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    let previous = if present.is_empty() {
        None
    } else {
        let stamp = time::OffsetDateTime::from_unix_timestamp(now)
            .map(|t| {
                format!(
                    "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            })
            .unwrap_or_else(|_| now.to_string());
        let aside = dir.join(format!("before-restore-{stamp}"));
        std::fs::create_dir(&aside)
            .map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
        for p in &present {
            let to = aside.join(p.file_name().unwrap_or_default());
            std::fs::rename(p, &to).map_err(|e| {
                format!(
                    "cannot move {} to {}: {e} (files already moved are in {})",
                    p.display(),
                    to.display(),
                    aside.display()
                )
            })?;
        }
        Some(aside)
    };
    std::fs::rename(&partial, &db).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            db.display()
        )
    })?;
    sync_dir(&dir)?;
    Ok(RestoreSummary {
        restored: db,
        from: from.to_path_buf(),
        previous,
        schema_version: checked.schema_version,
        activations: checked.activations,
        transactions: checked.transactions,
    })
}
