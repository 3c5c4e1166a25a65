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
//! While the files move, a marker beside the database ([`restoring_marker`]) keeps every
//! server and admin command off it, so that a crash in the middle never lets a server
//! create an empty database in its place or open a new file beside an old `-wal`; the
//! restore run again finishes the move.
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

/// Makes the entries just created in or removed from `dir` durable (an fsync of the
/// directory); a no-op where directories cannot be synced.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), String> {
    // The new directory entry is durable once the directory is synced.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// The directory a file is in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Holds the database's lock file for as long as it lives.
#[derive(Debug)]
pub struct DatabaseLock(#[allow(dead_code)] std::fs::File);

/// Why [`lock_database`] did not take the lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// Another process holds it: a server uses the database (or a restore or a copy to
    /// PostgreSQL runs).
    #[error("another tillgate-server process uses {db} (it holds {lock})")]
    Held {
        /// The database.
        db: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The lock file could not be opened or locked (a missing directory, permissions).
    #[error("{0}")]
    Io(String),
}

impl LockError {
    /// The message for a command that needs the server stopped: a held lock says so.
    pub fn stop_the_server(self) -> String {
        match self {
            held @ LockError::Held { .. } => format!("{held}; stop the server first"),
            LockError::Io(e) => e,
        }
    }
}

/// Takes the exclusive lock of the SQLite database at `url` (`<database>.lock`, created
/// beside it), or says who holds it. `Ok(None)` on PostgreSQL, where several servers share
/// one database by design. The operating system releases it when the process ends, even
/// when it is killed.
pub fn lock_database(url: &str) -> Result<Option<DatabaseLock>, LockError> {
    let Some(db) = sqlite_path(url) else {
        return Ok(None);
    };
    match lock_beside(&db, ".lock", true).map_err(LockError::Io)? {
        Taken::Yes(lock) => Ok(Some(lock)),
        Taken::Held(lock) => Err(LockError::Held { db, lock }),
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
            "an admin restore or copy-to-postgres is running on {}; wait for it to end",
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
    /// The `before-restore-*` directory of an interrupted restore that this one
    /// finished: the database that restore replaced is there, with its `-wal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<PathBuf>,
    /// The newest schema migration in the restored database.
    pub schema_version: i64,
    /// Registrations in it.
    pub activations: i64,
    /// Cash transactions in it.
    pub transactions: i64,
}

/// The file beside a SQLite database that says a restore is replacing it:
/// `<database>.restoring`. [`restore`] writes it (synced) before it moves the first
/// file and removes it once the backup is in place and both directories are synced;
/// while it exists no server starts on the database and no admin command but `restore`
/// uses it ([`refuse_if_restoring`]): after a crash in between, the database may be
/// missing (a server would create an empty one, with a new signing key) or an old
/// `-wal` may lie beside the new file (SQLite would replay it onto it). Its first line
/// is `before-restore: <directory name>`, the directory beside the database that the
/// replaced files go to (empty when there were none); `restore` run again reads it and
/// finishes the move.
pub fn restoring_marker(db: &Path) -> PathBuf {
    beside(db, ".restoring")
}

/// The first line of a [`restoring_marker`], before the directory's name.
const ASIDE_LINE: &str = "before-restore: ";

/// Refuses a SQLite database that a restore is replacing, or left half replaced when it
/// was interrupted (see [`restoring_marker`]).
pub fn refuse_if_restoring(url: &str) -> Result<(), String> {
    let Some(db) = sqlite_path(url) else {
        return Ok(());
    };
    let marker = restoring_marker(&db);
    if !marker.exists() {
        return Ok(());
    }
    let kept = match read_restoring_marker(&marker) {
        Ok(Some(aside)) => format!(
            "; the files it replaces are kept in {}",
            parent_dir(&db).join(aside).display()
        ),
        _ => String::new(),
    };
    Err(format!(
        "{} is being restored, or a restore of it was interrupted ({} says so): if no \
         `tillgate-server admin restore` is running, run it again, the server stopped, \
         with the backup to restore, to finish{kept}",
        db.display(),
        marker.display()
    ))
}

/// The `before-restore-*` directory's name a [`restoring_marker`] names (`None`: it
/// moved nothing).
fn read_restoring_marker(marker: &Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(marker)
        .map_err(|e| format!("cannot read {}: {e}", marker.display()))?;
    let name = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(ASIDE_LINE))
        .ok_or_else(|| {
            format!(
                "{} does not name a before-restore directory",
                marker.display()
            )
        })?
        .trim();
    if name.is_empty() {
        return Ok(None);
    }
    // Only a name that `create_aside_dir` gives: never a path leading elsewhere.
    if !name.starts_with("before-restore-") || name.contains(['/', '\\']) || name.contains("..") {
        return Err(format!(
            "{} names {name:?}, not a before-restore directory",
            marker.display()
        ));
    }
    Ok(Some(name.to_owned()))
}

/// Writes the [`restoring_marker`] naming `aside` (its file name), durably: a temporary
/// file, synced, renamed into place, the directory synced.
fn write_restoring_marker(
    marker: &Path,
    aside: Option<&Path>,
    from: &Path,
    now: i64,
) -> Result<(), String> {
    use std::io::Write as _;
    let name = aside
        .and_then(|a| a.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = format!(
        "{ASIDE_LINE}{name}\n\
         An `admin restore` from {} began at Unix time {now} and has not finished: no \
         server and no admin command but `restore` uses this database while this file \
         exists. With the server stopped, run `tillgate-server admin restore \
         <backup-file>` again to finish; the files it replaces are kept in the directory \
         above.\n",
        from.display()
    );
    let tmp = beside(marker, ".tmp");
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, marker)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", marker.display()));
    }
    sync_dir(&parent_dir(marker))
}

/// Creates `dir` and its missing parents, readable by their owner only (a data directory
/// on a fresh host).
fn create_private_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Replaces the SQLite database at `url` with a copy of the backup `from`, which must
/// pass SQLite's integrity check and hold no schema newer than `known_schema`. Refused
/// while a server uses the database. The replaced database is moved, with its `-wal` and
/// `-shm` files, into a new directory `before-restore-<now>` beside it, under the
/// [`restoring_marker`]. A missing data directory is created (mode 0700). After an
/// interrupted restore (the marker left behind), the files it had not moved yet join
/// the ones it had, and the restore goes on as usual.
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
    if db.file_name().is_none() {
        return Err(format!("{} is not a file name", db.display()));
    }
    let dir = parent_dir(&db);
    if !dir.is_dir() {
        // A fresh host, recovering: the directory the server would have made.
        create_private_dir(&dir)?;
    }
    let _lock = lock_database(url)
        .map_err(LockError::stop_the_server)?
        .ok_or("restore needs a SQLite database file")?;
    // No other admin command may write into the file being moved aside (its change
    // would be reported done and then missing from the restored database).
    let _admin = lock_admin(url, true)?;
    let companion = |suffix: &str| beside(&db, suffix);
    let marker = restoring_marker(&db);
    // An interrupted restore: where it moved what it replaced.
    let interrupted = if marker.exists() {
        let stuck = |why: String| {
            format!(
                "{why}: a restore of {} was interrupted and where it moved the files it \
                 replaced is not known. Look in the before-restore-* directories beside \
                 it for the newest; put any {} -wal or -shm file still beside it next to \
                 the database it belongs to there (keep each database with its -wal), then \
                 remove {} and restore again",
                db.display(),
                db.display(),
                marker.display()
            )
        };
        match read_restoring_marker(&marker).map_err(stuck)? {
            None => None,
            Some(name) if dir.join(&name).is_dir() => Some(dir.join(name)),
            Some(name) => return Err(stuck(format!("{} is missing", dir.join(name).display()))),
        }
    } else {
        None
    };

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

    let companions = [db.clone(), companion("-wal"), companion("-shm")];
    if let Some(earlier) = &interrupted {
        // The files the interrupted restore had not moved yet join the ones it had (a
        // `-wal` beside its database); a name it had already moved is a file it put in
        // place, replaced below like any other.
        for p in companions.iter().filter(|p| p.exists()) {
            let to = earlier.join(p.file_name().unwrap_or_default());
            if !to.exists() {
                std::fs::rename(p, &to).map_err(|e| {
                    let _ = std::fs::remove_file(&partial);
                    format!(
                        "cannot move {} to {}: {e}; {} stays, run the restore again",
                        p.display(),
                        to.display(),
                        marker.display()
                    )
                })?;
            }
        }
        sync_dir(earlier)?;
        sync_dir(&dir)?;
    }

    // Move the current database and its companions aside, together, then put the copy
    // in place, all under the marker. On any failure the moved files go back where they
    // were (and the marker goes, unless an interrupted restore left the database
    // incomplete: it stays for the next run).
    let present: Vec<PathBuf> = companions.into_iter().filter(|p| p.exists()).collect();
    let discard = |why: String| {
        let _ = std::fs::remove_file(&partial);
        why
    };
    let previous = if present.is_empty() {
        None
    } else {
        Some(create_aside_dir(&dir, now).map_err(discard)?)
    };
    if let Err(e) = write_restoring_marker(&marker, previous.as_deref(), from, now) {
        if let Some(aside) = &previous {
            let _ = std::fs::remove_dir(aside);
        }
        if interrupted.is_none() {
            let _ = std::fs::remove_file(&marker);
        }
        return Err(discard(e));
    }
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let undo = |moved: &[(PathBuf, PathBuf)], why: String| {
        let mut back = true;
        for (from, to) in moved.iter().rev() {
            back &= std::fs::rename(to, from).is_ok();
        }
        if let Some(aside) = &previous {
            let _ = std::fs::remove_dir(aside);
        }
        let _ = std::fs::remove_file(&partial);
        if back && interrupted.is_none() {
            let _ = std::fs::remove_file(&marker);
            let _ = sync_dir(&dir);
            why
        } else if back {
            format!("{why}; {} stays, run the restore again", marker.display())
        } else {
            format!(
                "{why}; moving the files back failed too: {} stays, see where the files \
                 are in it and in {}",
                marker.display(),
                previous.as_deref().unwrap_or(&dir).display()
            )
        }
    };
    if let Some(aside) = &previous {
        for p in &present {
            let to = aside.join(p.file_name().unwrap_or_default());
            if let Err(e) = std::fs::rename(p, &to) {
                let why = format!("cannot move {} to {}: {e}", p.display(), to.display());
                return Err(undo(&moved, why));
            }
            moved.push((p.clone(), to));
        }
        if let Err(e) = sync_dir(aside).and_then(|()| sync_dir(&dir)) {
            return Err(undo(&moved, e));
        }
    }
    if let Err(e) = std::fs::rename(&partial, &db) {
        let why = format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            db.display()
        );
        return Err(undo(&moved, why));
    }
    // The backup in place and every move durable: only then may servers open it.
    sync_dir(&dir).map_err(|e| format!("{e}; {} stays", marker.display()))?;
    std::fs::remove_file(&marker).map_err(|e| {
        format!(
            "the backup is in place, but {} could not be removed ({e}): remove it to serve",
            marker.display()
        )
    })?;
    sync_dir(&dir)?;
    Ok(RestoreSummary {
        restored: db,
        from: from.to_path_buf(),
        previous,
        interrupted,
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
        assert!(
            e.contains("an admin restore or copy-to-postgres is running"),
            "{e}"
        );
        drop(copy);
        assert!(lock_admin(&url, false).unwrap().is_some());
        // PostgreSQL, and a data directory that does not exist yet: no lock.
        assert!(lock_admin("postgres://h/db", true).unwrap().is_none());
        let missing = format!("sqlite://{}?mode=rwc", dir.join("no/t.db").display());
        assert!(lock_admin(&missing, true).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An empty scratch directory named after the test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tillgate-backup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A held lock tells the operator to stop the server; a lock file that cannot be
    /// made (no such directory) says only that.
    #[test]
    fn a_held_lock_is_told_from_an_io_error() {
        let dir = scratch("lock-errors");
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let held = lock_database(&url).unwrap();
        let e = lock_database(&url).unwrap_err();
        assert!(matches!(e, LockError::Held { .. }), "{e:?}");
        let e = e.stop_the_server();
        assert!(
            e.contains("another tillgate-server process uses")
                && e.ends_with("stop the server first"),
            "{e}"
        );
        drop(held);
        let missing = format!("sqlite://{}?mode=rwc", dir.join("no/t.db").display());
        let e = lock_database(&missing).unwrap_err();
        assert!(matches!(e, LockError::Io(_)), "{e:?}");
        let e = e.stop_the_server();
        assert!(
            e.contains("cannot open") && !e.contains("stop the server"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A restore removes its marker once the backup is in place. One interrupted after
    /// it moved the database aside but not yet its `-wal` (its marker left behind) makes
    /// the database refused until `restore` runs again, which moves the `-wal` next to
    /// its database and puts the backup in place. On a host without the data directory,
    /// restore creates it (owner only).
    #[tokio::test]
    async fn a_restore_is_marked_until_done_and_an_interrupted_one_is_finished() {
        let dir = scratch("restore-marker");
        let db = dir.join("t.db");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let store = crate::db::Store::connect(&url, 2).await.unwrap();
        store.init(1_000).await.unwrap();
        store.close().await;
        let saved = dir.join("saved.db");
        backup(&url, &saved).await.unwrap();
        let known = crate::db::schema_version();
        let marker = restoring_marker(&db);

        let done = restore(&url, &saved, known, 2_000).await.unwrap();
        assert!(!marker.exists());
        assert!(!beside(&db, ".restore-partial").exists());
        assert!(done.previous.unwrap().join("t.db").is_file());
        assert_eq!(done.interrupted, None);
        refuse_if_restoring(&url).unwrap();

        // Interrupted: the database moved aside, its `-wal` still beside the old place.
        let aside = dir.join("before-restore-19700101T010000Z");
        std::fs::create_dir(&aside).unwrap();
        write_restoring_marker(&marker, Some(&aside), &saved, 3_600).unwrap();
        std::fs::rename(&db, aside.join("t.db")).unwrap();
        std::fs::write(beside(&db, "-wal"), b"the replaced database's last commits").unwrap();
        let e = refuse_if_restoring(&url).unwrap_err();
        assert!(
            e.contains("a restore of it was interrupted")
                && e.contains("run it again")
                && e.contains(&aside.display().to_string()),
            "{e}"
        );
        let done = restore(&url, &saved, known, 4_000).await.unwrap();
        assert_eq!(done.interrupted.as_deref(), Some(aside.as_path()));
        assert_eq!(done.previous, None);
        assert!(aside.join("t.db").is_file() && aside.join("t.db-wal").is_file());
        assert!(db.is_file() && !beside(&db, "-wal").exists() && !marker.exists());
        refuse_if_restoring(&url).unwrap();

        // A marker that names no before-restore directory: the operator is told what to do.
        std::fs::write(&marker, "before-restore: ../elsewhere\n").unwrap();
        let e = restore(&url, &saved, known, 5_000).await.unwrap_err();
        assert!(e.contains("remove") && e.contains("restore again"), "{e}");
        assert!(db.is_file() && marker.exists());
        std::fs::remove_file(&marker).unwrap();

        // A fresh host: the data directory is created, readable by its owner only.
        let fresh = dir.join("new/data");
        let fresh_url = format!("sqlite://{}?mode=rwc", fresh.join("t.db").display());
        let done = restore(&fresh_url, &saved, known, 6_000).await.unwrap();
        assert_eq!((done.previous, done.activations), (None, 0));
        assert!(fresh.join("t.db").is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
