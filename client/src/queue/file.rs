//! A file-backed queue store (native): one JSON file per queued transaction.
#![cfg(not(target_arch = "wasm32"))]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

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

/// Queue records as files in a directory the app gives: `tx-<id>.json`, one per queued
/// transaction, and `witness.json`, the register's witness.
///
/// Every write goes to `tx-<id>.json.tmp`, is flushed to disk (`fsync`), renamed over
/// the record, and the directory is flushed, so a crash at any point leaves either the
/// old record or the new one. Leftover temp files (a crash before the rename) are
/// removed at load: the write they belonged to never completed, so it was never
/// reported as done. A record that cannot be parsed is reported and left in place.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

fn storage(what: &str, path: &Path, e: io::Error) -> ClientError {
    ClientError::Storage(format!("{what} {}: {e}", path.display()))
}

impl FileStore {
    /// Uses `dir`, creating it if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| storage("creating", &dir, e))?;
        Ok(FileStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id:020}{SUFFIX}"))
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
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<()> {
        // Makes renames and removals durable. Directories cannot be opened for syncing
        // on every platform (Windows); there the rename itself is what we get.
        match File::open(&self.dir) {
            Ok(d) => match d.sync_all() {
                Ok(()) => Ok(()),
                Err(e) if cfg!(windows) => {
                    let _ = e;
                    Ok(())
                }
                Err(e) => Err(storage("syncing", &self.dir, e)),
            },
            Err(_) if cfg!(windows) => Ok(()),
            Err(e) => Err(storage("opening", &self.dir, e)),
        }
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
    fn load(&self) -> Result<StoreContents> {
        let mut out = StoreContents::default();
        let rd = fs::read_dir(&self.dir).map_err(|e| storage("reading", &self.dir, e))?;
        let mut removed_tmp = false;
        for ent in rd {
            let ent = ent.map_err(|e| storage("reading", &self.dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let path = ent.path();
            if name == WITNESS_TMP {
                fs::remove_file(&path).map_err(|e| storage("removing", &path, e))?;
                removed_tmp = true;
                continue;
            }
            if name == WITNESS {
                let bytes = fs::read(&path).map_err(|e| storage("reading", &path, e))?;
                out.witness = Some(decode_witness(&bytes).map_err(|reason| CorruptRecord {
                    name,
                    id: None,
                    reason,
                }));
                continue;
            }
            if !name.starts_with(PREFIX) {
                continue;
            }
            if name.ends_with(TMP_SUFFIX) {
                fs::remove_file(&path).map_err(|e| storage("removing", &path, e))?;
                removed_tmp = true;
                continue;
            }
            if !name.ends_with(SUFFIX) {
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
            let bytes = fs::read(&path).map_err(|e| storage("reading", &path, e))?;
            match decode_record(&bytes, id) {
                Ok(e) => out.entries.push(e),
                Err(reason) => out.corrupt.push(CorruptRecord {
                    name,
                    id: Some(id),
                    reason,
                }),
            }
        }
        if removed_tmp {
            self.sync_dir()?;
        }
        out.entries.sort_by_key(|e| e.id);
        out.corrupt.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        let bytes = super::encode_record(entry)?;
        let tmp = self
            .dir
            .join(format!("{PREFIX}{:020}{TMP_SUFFIX}", entry.id));
        self.replace(&self.record_path(entry.id), &tmp, &bytes)
    }

    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        let bytes = super::encode_witness(record)?;
        self.replace(&self.dir.join(WITNESS), &self.dir.join(WITNESS_TMP), &bytes)
    }

    fn remove(&self, id: u64) -> Result<()> {
        let path = self.record_path(id);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
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
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage("removing", &path, e)),
        }
    }
}
