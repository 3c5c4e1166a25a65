//! An in-memory queue store, for tests and for apps that keep nothing across restarts.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{
    CorruptRecord, QueueStore, QueuedTransaction, StoreContents, WitnessRecord, decode_record,
    decode_witness,
};
use crate::Result;

/// Records in memory, encoded exactly as a persistent store encodes them. Lost when the
/// process ends: use `FileStore` (native) or `LocalStorageStore` (browsers) for a
/// real till.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<u64, Vec<u8>>>,
    witness: Mutex<Option<Vec<u8>>>,
}

/// The witness record's name in a [`MemoryStore`].
const WITNESS: &str = "witness";

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Vec<u8>>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores raw bytes as record `id` (to test how corrupt records are handled).
    pub fn insert_raw(&self, id: u64, bytes: Vec<u8>) {
        self.lock().insert(id, bytes);
    }

    /// Removes every record and the witness, as a browser's `localStorage.clear()` does
    /// (to test a wiped store).
    pub fn clear(&self) {
        self.lock().clear();
        *self.witness() = None;
    }

    /// The raw bytes of record `id`.
    pub fn raw(&self, id: u64) -> Option<Vec<u8>> {
        self.lock().get(&id).cloned()
    }

    fn witness(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        self.witness.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores raw bytes as the witness record (to test an unreadable one).
    pub fn insert_raw_witness(&self, bytes: Vec<u8>) {
        *self.witness() = Some(bytes);
    }

    /// The raw bytes of the witness record.
    pub fn raw_witness(&self) -> Option<Vec<u8>> {
        self.witness().clone()
    }
}

impl QueueStore for MemoryStore {
    fn load(&self) -> Result<StoreContents> {
        let mut out = StoreContents::default();
        for (id, bytes) in self.lock().iter() {
            match decode_record(bytes, *id) {
                Ok(e) => out.entries.push(e),
                Err(reason) => out.corrupt.push(CorruptRecord {
                    name: id.to_string(),
                    id: Some(*id),
                    reason,
                }),
            }
        }
        out.witness = read_witness(&self.witness());
        Ok(out)
    }

    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        let bytes = super::encode_record(entry)?;
        self.lock().insert(entry.id, bytes);
        Ok(())
    }

    fn save_new(&self, entry: &QueuedTransaction) -> Result<bool> {
        let bytes = super::encode_record(entry)?;
        let mut records = self.lock();
        if records.contains_key(&entry.id) {
            return Ok(false);
        }
        records.insert(entry.id, bytes);
        Ok(true)
    }

    fn remove(&self, id: u64) -> Result<()> {
        self.lock().remove(&id);
        Ok(())
    }

    fn update(&self, entry: &QueuedTransaction) -> Result<()> {
        let bytes = super::encode_record(entry)?;
        let mut records = self.lock();
        // Shared by several outboxes (as tests do): only the same sale is changed.
        if let Some(stored) = records.get_mut(&entry.id)
            && super::holds_sale(stored, entry)
        {
            *stored = bytes;
        }
        Ok(())
    }

    fn remove_entry(&self, entry: &QueuedTransaction) -> Result<()> {
        let mut records = self.lock();
        if records
            .get(&entry.id)
            .is_some_and(|stored| super::holds_sale(stored, entry))
        {
            records.remove(&entry.id);
        }
        Ok(())
    }

    fn remove_corrupt(&self, name: &str) -> Result<()> {
        // Only while it still cannot be read: another outbox may have written it since.
        if name == WITNESS {
            let mut stored = self.witness();
            if stored
                .as_deref()
                .is_some_and(|b| decode_witness(b).is_err())
            {
                *stored = None;
            }
        } else if let Ok(id) = name.parse::<u64>() {
            let mut records = self.lock();
            if records
                .get(&id)
                .is_some_and(|b| decode_record(b, id).is_err())
            {
                records.remove(&id);
            }
        }
        Ok(())
    }

    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        let bytes = super::encode_witness(record)?;
        *self.witness() = Some(bytes);
        Ok(())
    }

    fn load_witness(&self) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        Ok(read_witness(&self.witness()))
    }

    fn update_witness(
        &self,
        change: &mut dyn FnMut(
            Option<std::result::Result<WitnessRecord, CorruptRecord>>,
        ) -> Option<WitnessRecord>,
    ) -> Result<()> {
        // Held from the read to the write: outboxes sharing the store change it one at a
        // time.
        let mut stored = self.witness();
        if let Some(record) = change(read_witness(&stored)) {
            *stored = Some(super::encode_witness(&record)?);
        }
        Ok(())
    }
}

/// The witness record as stored, decoded.
fn read_witness(
    stored: &Option<Vec<u8>>,
) -> Option<std::result::Result<WitnessRecord, CorruptRecord>> {
    stored.as_deref().map(|bytes| {
        decode_witness(bytes).map_err(|reason| CorruptRecord {
            name: WITNESS.into(),
            id: None,
            reason,
        })
    })
}
