//! A file-backed queue store (native): one JSON file per queued transaction.
#![cfg(not(target_arch = "wasm32"))]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{
    CorruptRecord, QueueStore, QueuedTransaction, StoreContents, WitnessRecord, decode_record,
    decode_witness,
};
use crate::{ClientError, Result};

const PREFIX: &str = "tx-";
const SUFFIX: &str = ".json";
const TMP_SUFFIX: &str = ".json.tmp";
const WITNESS: &str = "witness.json";
const WITNESS_TMP: &str = "witness.json.tmp";

/// The lock file: held with an exclusive lock while the store lives.
const LOCK: &str = "queue.lock";

/// Queue records as files in a directory the app gives: `tx-<id>.json`, one per queued
/// transaction, and `witness.json`, the register's witness.
///
/// Every write goes to `tx-<id>.json.tmp`, is flushed to disk (`fsync`), renamed over
/// the record, and the directory is flushed, so a crash at any point leaves either the
/// old record or the new one. A record that does not decode (bad JSON, another format)
/// or a directory by a record's name is reported by `load` as unreadable and left in
/// place until the app removes it. A queue record that cannot be read (an I/O error: too
/// many open files, a failing disk) tells nothing about the record, which may read fine
/// the next time: `load` reports it too (`cannot be read for now: ...`), so that one bad
/// file never stops the queue from opening and the till keeps selling, but
/// `remove_corrupt` never deletes it while it cannot be read (it answers the read error):
/// it may hold an unsent sale. It is read again at the next open. The witness
/// (`witness.json`) is the register's evidence and must be read to open: if it cannot be
/// read at all, `load` fails with a storage error naming the file (the queue does not
/// open until it reads, or is moved aside by hand), and it is never reported as
/// unreadable for that. Reading the witness alone (`load_witness`, `update_witness`)
/// answers an error when the read fails.
///
/// The store owns its directory: [`open`](Self::open) takes an exclusive lock on
/// `queue.lock` in it (released when the store is dropped), and a second open of the
/// same directory, by this process or another, fails with
/// [`ClientError::QueueInUse`] (code `queue_in_use`): two outboxes on one directory would
/// give two sales the same record. Give the store to one [`Outbox`](crate::Outbox).
/// Leftover temp files (a crash before the rename) are removed when the lock is taken:
/// the write they belonged to never completed, so it was never reported as done, and no
/// other store can be writing them then.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// The open lock file, holding the directory's lock until the store is dropped.
    _lock: File,
    /// Held while a record is checked and then written or removed (`save_new`,
    /// `update`, `remove_entry`), and by every record write: outboxes given this one
    /// store run those steps one at a time.
    records: Mutex<()>,
    /// Held while the witness is read and then written (`update_witness`), and by every
    /// witness write.
    witness: Mutex<()>,
}

/// Takes the directory's lock without waiting: `Ok(false)` while another holds it.
/// `flock` on Linux and Android (std's `File::try_lock` does not support Android).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes the directory's lock without waiting: `Ok(false)` while another holds it.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

fn storage(what: &str, path: &Path, e: io::Error) -> ClientError {
    ClientError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Flushes a directory (`fsync`): makes the creations, renames and removals in it
/// durable. Directories cannot be opened for syncing on every platform (Windows);
/// there the operation itself is what we get.
fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir) {
        Ok(d) => match d.sync_all() {
            Ok(()) => Ok(()),
            Err(_) if cfg!(windows) => Ok(()),
            Err(e) => Err(storage("syncing", dir, e)),
        },
        Err(_) if cfg!(windows) => Ok(()),
        Err(e) => Err(storage("opening", dir, e)),
    }
}

/// Creates `dir` and its missing parents, and flushes the parent of each directory it
/// created: without that, a power loss could take the new directory, and every record
/// written in it, away with it.
fn create_dir_durably(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next {
        if d.as_os_str().is_empty() || fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d);
        next = d.parent();
    }
    fs::create_dir_all(dir).map_err(|e| storage("creating", dir, e))?;
    for d in missing.iter().rev() {
        match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => sync_dir(p)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

fn is_temp(name: &str) -> bool {
    name == WITNESS_TMP || (name.starts_with(PREFIX) && name.ends_with(TMP_SUFFIX))
}

impl FileStore {
    /// Uses `dir`, creating it (durably) if needed, and locks it: fails with
    /// [`ClientError::QueueInUse`] while another `FileStore` holds it, in this process or
    /// another.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        create_dir_durably(&dir)?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| storage("opening", &lock_path, e))?;
        match try_lock(&lock) {
            Ok(true) => {}
            Ok(false) => return Err(ClientError::QueueInUse(dir.display().to_string())),
            Err(e) => return Err(storage("locking", &lock_path, e)),
        }
        let store = FileStore {
            dir,
            _lock: lock,
            records: Mutex::new(()),
            witness: Mutex::new(()),
        };
        store.remove_temp_files()?;
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id:020}{SUFFIX}"))
    }

    fn records(&self) -> MutexGuard<'_, ()> {
        // Guards no data: a panic while it was held leaves nothing half-changed in it.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn witness_lock(&self) -> MutexGuard<'_, ()> {
        // Guards no data, like `records`.
        self.witness.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `witness.json`: `None` if there is none, `Err` inside if it does not decode.
    /// Reading it failing (an I/O error, a directory by its name) is an error of the
    /// call: it tells nothing about the record, which may read fine the next time.
    fn read_witness(&self) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        let path = self.dir.join(WITNESS);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(storage("reading", &path, e)),
        };
        Ok(Some(decode_witness(&bytes).map_err(|reason| {
            CorruptRecord {
                name: WITNESS.into(),
                id: None,
                reason,
            }
        })))
    }

    /// Removes the record at `path` if it still cannot be read: a directory by its name
    /// (removed if empty), or bytes `bad` refuses. One that reads fine now, or is gone,
    /// is left. A file reading fails on (too many open files, say) is left too, and the
    /// read error answered: its bytes may be a sale or the witness, readable the next
    /// time. The caller holds the lock the record's writes take.
    fn remove_if_unreadable(&self, path: &Path, bad: impl FnOnce(&[u8]) -> bool) -> Result<()> {
        let removed = match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::remove_dir(path),
            Ok(_) => match fs::read(path) {
                Ok(bytes) if bad(&bytes) => fs::remove_file(path),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(storage("reading", path, e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(storage("reading", path, e)),
        };
        match removed {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage("removing", path, e)),
        }
    }

    /// Writes `witness.json` (the caller holds [`FileStore::witness`]).
    fn write_witness(&self, record: &WitnessRecord) -> Result<()> {
        let bytes = super::encode_witness(record)?;
        self.replace(&self.dir.join(WITNESS), &self.dir.join(WITNESS_TMP), &bytes)
    }

    /// Writes `entry`'s record (the caller holds [`FileStore::records`]).
    fn write_record(&self, entry: &QueuedTransaction) -> Result<()> {
        let bytes = super::encode_record(entry)?;
        let tmp = self
            .dir
            .join(format!("{PREFIX}{:020}{TMP_SUFFIX}", entry.id));
        self.replace(&self.record_path(entry.id), &tmp, &bytes)
    }

    /// Whether `entry`'s record still holds its sale (see [`QueueStore::update`]).
    fn holds(&self, entry: &QueuedTransaction) -> Result<bool> {
        let path = self.record_path(entry.id);
        match fs::read(&path) {
            Ok(bytes) => Ok(super::holds_sale(&bytes, entry)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(storage("reading", &path, e)),
        }
    }

    /// Removes the temp files of writes that never completed (a crash before the
    /// rename). Only at open, under the lock: then no write of this store is under way,
    /// and no other store can have one. One that cannot be removed is left (the next
    /// write of that record truncates it).
    fn remove_temp_files(&self) -> Result<()> {
        let rd = fs::read_dir(&self.dir).map_err(|e| storage("reading", &self.dir, e))?;
        let mut removed = false;
        for ent in rd.flatten() {
            let name = ent.file_name();
            if is_temp(&name.to_string_lossy()) && fs::remove_file(ent.path()).is_ok() {
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Writes `bytes` to `tmp`, flushes it, renames it over `path` and flushes the
    /// directory: `path` is then the old contents or the new, never torn.
    fn replace(&self, path: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| storage("creating", tmp, e))?;
        let written = f.write_all(bytes).and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written.and_then(|()| fs::rename(tmp, path)) {
            // A full disk, typically: the half-written temp file would only hold on to
            // space the next sale needs. The record, if there was one, is untouched.
            let _ = fs::remove_file(tmp);
            return Err(storage("writing", tmp, e));
        }
        // The rename is done: from here on every reader (this outbox, the next start)
        // finds the new record. If flushing the directory fails now, answering "not
        // saved" would be the harmful answer: the app would queue the sale again, a
        // second record (with a new key unless the app chose its own: a second sale on
        // the server, since this record is loaded and sent too). Removing the record
        // again cannot be made durable either (it needs the very directory flush that
        // just failed), so after a crash it could come back beside the app's retry: a
        // duplicate again. So the write counts as done: the outbox keeps the record in
        // memory and sends it at the next sync, and the next directory flush (every
        // write and removal does one) makes this rename durable too. Only a power loss
        // before either, on a disk already failing its flushes, could lose it.
        let _ = sync_dir(&self.dir);
        Ok(())
    }
}

/// Why `load` reports a directory by a record's name.
const DIRECTORY: &str = "cannot be read: it is a directory";

/// Why `load` reports a file reading failed on (`cannot be read for now: ...`): it may
/// read fine the next time, and `remove_corrupt` leaves it while it cannot be read.
fn unreadable(e: &crate::ClientError) -> String {
    format!("cannot be read for now: {e}")
}

/// What reading a record's directory entry found.
enum Read {
    /// Removed since the directory was listed (a sale sent meanwhile).
    Gone,
    /// A directory by the record's name: never a record.
    Dir,
    Bytes(Vec<u8>),
}

/// Reads the record at `ent`; a read that fails (other than the file being gone) is
/// an error.
fn read_record(ent: &fs::DirEntry) -> Result<Read> {
    let path = ent.path();
    match ent.file_type() {
        Ok(t) if t.is_dir() => return Ok(Read::Dir),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::Gone),
        Err(e) => return Err(storage("reading", &path, e)),
    }
    match fs::read(&path) {
        Ok(bytes) => Ok(Read::Bytes(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Read::Gone),
        Err(e) => Err(storage("reading", &path, e)),
    }
}

fn parse_id(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl QueueStore for FileStore {
    /// No: it holds its directory's lock, so no other `FileStore` uses the directory.
    fn is_shared(&self) -> bool {
        false
    }

    fn load(&self) -> Result<StoreContents> {
        let mut out = StoreContents::default();
        let rd = fs::read_dir(&self.dir).map_err(|e| storage("reading", &self.dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| storage("reading", &self.dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            // A temp file is a write of this store under way, or one left by a crash
            // that could not be removed at open: never a record. Never removed here.
            if is_temp(&name) {
                continue;
            }
            if name == WITNESS {
                // The register's evidence: one that cannot be read at all (an I/O
                // error) fails the load, rather than be taken as unreadable (see the
                // type's notes). Only bytes that do not decode, or a directory, are.
                out.witness = match read_record(&ent)? {
                    Read::Gone => None,
                    Read::Dir => Some(Err(DIRECTORY.into())),
                    Read::Bytes(bytes) => Some(decode_witness(&bytes)),
                }
                .map(|r| {
                    r.map_err(|reason| CorruptRecord {
                        name,
                        id: None,
                        reason,
                    })
                });
                continue;
            }
            if !name.starts_with(PREFIX) || !name.ends_with(SUFFIX) {
                continue;
            }
            let Some(id) = parse_id(&name, SUFFIX) else {
                out.corrupt.push(CorruptRecord {
                    name,
                    id: None,
                    reason: "file name is not tx-<id>.json".into(),
                });
                continue;
            };
            // A record that does not decode, a directory by its name, or a file reading
            // fails on is reported; it never stops the queue from opening (see the
            // type's notes: one that cannot be read is never deleted).
            let decoded = match read_record(&ent) {
                Ok(Read::Gone) => continue,
                Ok(Read::Dir) => Err(DIRECTORY.into()),
                Ok(Read::Bytes(bytes)) => decode_record(&bytes, id),
                Err(e) => Err(unreadable(&e)),
            };
            match decoded {
                Ok(e) => out.entries.push(e),
                Err(reason) => out.corrupt.push(CorruptRecord {
                    name,
                    id: Some(id),
                    reason,
                }),
            }
        }
        out.entries.sort_by_key(|e| e.id);
        out.corrupt.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        let _records = self.records();
        self.write_record(entry)
    }

    fn save_new(&self, entry: &QueuedTransaction) -> Result<bool> {
        // The directory's lock keeps other processes and other stores out; this keeps
        // two outboxes given this one store from writing over each other's sale.
        let _records = self.records();
        let path = self.record_path(entry.id);
        match fs::symlink_metadata(&path) {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(storage("reading", &path, e)),
        }
        self.write_record(entry).map(|()| true)
    }

    fn update(&self, entry: &QueuedTransaction) -> Result<()> {
        let _records = self.records();
        if self.holds(entry)? {
            self.write_record(entry)?;
        }
        Ok(())
    }

    fn remove_entry(&self, entry: &QueuedTransaction) -> Result<()> {
        let _records = self.records();
        if self.holds(entry)? {
            self.remove(entry.id)?;
        }
        Ok(())
    }

    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        let _witness = self.witness_lock();
        self.write_witness(record)
    }

    fn load_witness(&self) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        self.read_witness()
    }

    fn update_witness(
        &self,
        change: &mut dyn FnMut(
            Option<std::result::Result<WitnessRecord, CorruptRecord>>,
        ) -> Option<WitnessRecord>,
    ) -> Result<()> {
        // The directory's lock keeps other stores out; this keeps outboxes given this
        // one store from deciding on a witness another is about to replace.
        let _witness = self.witness_lock();
        match change(self.read_witness()?) {
            Some(record) => self.write_witness(&record),
            None => Ok(()),
        }
    }

    fn remove(&self, id: u64) -> Result<()> {
        let path = self.record_path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage("removing", &path, e)),
        }
    }

    fn remove_corrupt(&self, name: &str) -> Result<()> {
        if !(name.starts_with(PREFIX) || name == WITNESS)
            || name.contains(['/', '\\'])
            || name.contains("..")
        {
            return Err(ClientError::Storage(format!("not a queue record: {name}")));
        }
        let path = self.dir.join(name);
        // Removed only if it still cannot be read, checked and removed under the lock
        // its writes take: the app's list of unreadable records may be older than a
        // record written since (the witness reset, say), or the record could not be read
        // only for a moment.
        if name == WITNESS {
            let _witness = self.witness_lock();
            self.remove_if_unreadable(&path, |b| decode_witness(b).is_err())
        } else {
            let _records = self.records();
            self.remove_if_unreadable(&path, |b| {
                parse_id(name, SUFFIX).is_none_or(|id| decode_record(b, id).is_err())
            })
        }
    }
}
