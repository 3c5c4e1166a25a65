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
    let mut summary = snapshot(db, partial, to).await?;
    summary.bytes = std::fs::metadata(partial)
        .map_err(|e| format!("cannot read {}: {e}", partial.display()))?
        .len();
    // A second link under the final name: fails if that name appeared meanwhile, where a
    // rename would replace it.
    match std::fs::hard_link(partial, to) {
        Ok(()) => Ok(summary),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(format!(
            "{} exists; a backup never overwrites a file, choose a new name",
            to.display()
        )),
        Err(link) => {
            // File systems without hard links (FAT, some network shares): a rename,
            // once the name is seen to be still free.
            if to.exists() {
                return Err(format!("{} exists; choose a new name", to.display()));
            }
            std::fs::rename(partial, to)
                .map_err(|e| format!("cannot create {}: {e} (as a link: {link})", to.display()))?;
            Ok(summary)
        }
    }
}

/// Writes a consistent copy of the SQLite database `source` (its `-wal` included) into
/// the new file `partial`, readable by its owner only from the start, syncs it and checks
/// it. `named` is the path the summary reports.
async fn snapshot(source: &Path, partial: &Path, named: &Path) -> Result<BackupSummary, String> {
    let partial_str = partial
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", partial.display()))?;
    // Created empty, mode 0600, before SQLite writes into it (VACUUM INTO takes an empty
    // file): what it holds is never readable by others, even for a moment.
    create_private(partial)?;
    // Read-only: the copy never writes to its source (no migration, no checkpoint), and
    // a server holding the write lock does not delay it.
    let mut from = open(source, true).await?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(partial_str)
        .execute(&mut from)
        .await
        .map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                source.display(),
                partial.display()
            )
        });
    let _ = from.close().await;
    copied?;
    // SQLite does not sync what VACUUM INTO wrote.
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
    let mut copy = open(partial, true).await?;
    let summary = check(&mut copy, named).await;
    let _ = copy.close().await;
    summary
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

/// Creates `path`, which must not exist, empty and readable by its owner only.
fn create_private(path: &Path) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // The database holds the signing keys: like the live one, owner only.
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
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
    match lock_beside(&db, ".lock", true)? {
        Taken::Yes(lock) => Ok(Some(lock)),
        Taken::Held(path) => Err(format!(
            "another tillgate-server process uses {} (it holds {})",
            db.display(),
            path.display()
        )),
    }
}

/// Takes the admin lock of the SQLite database at `url` (`<database>.admin.lock`): shared
/// by the admin commands that open the store, exclusive for `admin copy-to-postgres`, so
/// that no admin command writes while a copy runs or after it marked the database as
/// moved. `Ok(None)` on PostgreSQL.
pub fn lock_admin(url: &str, exclusive: bool) -> Result<Option<DatabaseLock>, String> {
    let Some(db) = sqlite_path(url) else {
        return Ok(None);
    };
    if db
        .parent()
        .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        // No directory, so no database yet: nothing to copy, nothing marked.
        return Ok(None);
    }
    match lock_beside(&db, ".admin.lock", exclusive)? {
        Taken::Yes(lock) => Ok(Some(lock)),
        Taken::Held(_) if exclusive => Err(format!(
            "an admin command is using {}; wait for it to end",
            db.display()
        )),
        Taken::Held(_) => Err(format!(
            "{} is being copied to PostgreSQL (admin copy-to-postgres)",
            db.display()
        )),
    }
}

/// `<database><suffix>`: the name of a file kept beside a SQLite database.
pub fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db.with_file_name(name)
}

/// Whether [`lock_beside`] took its lock.
enum Taken {
    /// Taken; held until dropped.
    Yes(DatabaseLock),
    /// Another process holds it (the lock file's path).
    Held(PathBuf),
}

/// Locks the file `<database><suffix>` (created if needed), exclusively or shared,
/// without waiting.
fn lock_beside(db: &Path, suffix: &str, exclusive: bool) -> Result<Taken, String> {
    let path = beside(db, suffix);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let taken = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match taken {
        Ok(()) => Ok(Taken::Yes(DatabaseLock(file))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Taken::Held(path)),
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
    // No other admin command may write into the file being moved aside (its change
    // would be reported done and then missing from the restored database).
    let _admin = lock_admin(url, true)?;
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if db.file_name().is_none() {
        return Err(format!("{} is not a file name", db.display()));
    }
    let companion = |suffix: &str| beside(&db, suffix);

    // The copy first, beside the database, through SQLite (so that a backup with its own
    // `-wal`, such as a database moved aside by an earlier restore, comes whole), then
    // checked: until it is in place nothing else changes.
    let partial = companion(".restore-partial");
    let _ = std::fs::remove_file(&partial); // left by an interrupted restore
    let checked = match snapshot(from, &partial, &db).await {
        Ok(c) if c.schema_version > known_schema => Err(format!(
            "{} has schema version {}, newer than this tillgate-server knows ({known_schema})",
            from.display(),
            c.schema_version
        )),
        Ok(c) => Ok(c),
        Err(e) => Err(format!("{}: {e}", from.display())),
    };
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };

    // Move the current database and its companions aside, together, then put the copy
    // in place. On any failure the moved files go back where they were.
    let present: Vec<PathBuf> = [db.clone(), companion("-wal"), companion("-shm")]
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let undo = |moved: &[(PathBuf, PathBuf)], why: String| {
        for (from, to) in moved.iter().rev() {
            let _ = std::fs::rename(to, from);
        }
        let _ = std::fs::remove_file(&partial);
        why
    };
    let previous = if present.is_empty() {
        None
    } else {
        let aside = create_aside_dir(&dir, now).map_err(|e| undo(&[], e))?;
        for p in &present {
            let to = aside.join(p.file_name().unwrap_or_default());
            if let Err(e) = std::fs::rename(p, &to) {
                let why = format!("cannot move {} to {}: {e}", p.display(), to.display());
                let why = undo(&moved, why);
                let _ = std::fs::remove_dir(&aside);
                return Err(why);
            }
            moved.push((p.clone(), to));
        }
        Some(aside)
    };
    if let Err(e) = std::fs::rename(&partial, &db) {
        let why = format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            db.display()
        );
        let why = undo(&moved, why);
        if let Some(aside) = &previous {
            let _ = std::fs::remove_dir(aside);
        }
        return Err(why);
    }
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

/// A new directory `before-restore-<UTC time>` in `dir` (`-2`, `-3`, ... if taken).
fn create_aside_dir(dir: &Path, now: i64) -> Result<PathBuf, String> {
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
    let mut last = String::new();
    for n in 1..100 {
        let name = if n == 1 {
            format!("before-restore-{stamp}")
        } else {
            format!("before-restore-{stamp}-{n}")
        };
        let aside = dir.join(name);
        match std::fs::create_dir(&aside) {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e.to_string(),
            Err(e) => return Err(format!("cannot create {}: {e}", aside.display())),
        }
    }
    Err(format!(
        "cannot create a before-restore directory in {}: {last}",
        dir.display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Admin commands share the admin lock; a copy to PostgreSQL takes it alone.
    #[test]
    fn the_admin_lock_is_shared_by_commands_and_exclusive_for_a_copy() {
        let dir = std::env::temp_dir().join(format!("tillgate-admin-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let a = lock_admin(&url, false).unwrap();
        let b = lock_admin(&url, false).unwrap();
        assert!(a.is_some() && b.is_some());
        let e = lock_admin(&url, true).unwrap_err();
        assert!(e.contains("an admin command is using"), "{e}");
        drop((a, b));
        let copy = lock_admin(&url, true).unwrap();
        let e = lock_admin(&url, false).unwrap_err();
        assert!(e.contains("is being copied to PostgreSQL"), "{e}");
        drop(copy);
        assert!(lock_admin(&url, false).unwrap().is_some());
        // PostgreSQL, and a data directory that does not exist yet: no lock.
        assert!(lock_admin("postgres://h/db", true).unwrap().is_none());
        let missing = format!("sqlite://{}?mode=rwc", dir.join("no/t.db").display());
        assert!(lock_admin(&missing, true).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
