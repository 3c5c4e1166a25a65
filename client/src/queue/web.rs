//! A `localStorage` queue store for browsers.

use web_sys::Storage;

use super::{
    CorruptRecord, QueueStore, QueuedTransaction, StoreContents, WitnessRecord, decode_record,
    decode_witness,
};
use crate::{ClientError, Result};

/// Queue records in the browser's `localStorage`, one key per record:
/// `<namespace>tx-<id>`, and the register's witness under `<namespace>witness`. Each
/// `setItem` replaces a value atomically, so a record is either the old one or the new
/// one. Values that do not decode are reported, never dropped; `getItem` failing is an
/// error of the call.
///
/// Two tabs of a web POS on one origin share the namespace's records. A new record never
/// replaces one already stored ([`QueueStore::save_new`]): when another tab took the
/// id, the outbox reads the store again and takes the next free one. Each tab sends
/// what it queued and what it found in the store at the start of each sync (the sales
/// other tabs queued); a sale both send is stored once by the server (same idempotency
/// key). A pending sale a tab holds whose record is gone at a sync (another tab sent it,
/// or `localStorage` was cleared) is written back and sent again, never dropped: the
/// server answers a sale it has with the stored one, so a sale another tab sent costs
/// one resend by each tab that still held it (see [`Outbox::sync`](crate::Outbox::sync)).
/// A record is changed or removed only while it still holds the tab's sale
/// ([`QueueStore::update`], [`QueueStore::remove_entry`]): once one tab sent a sale and
/// removed it, another may reuse its id for a new sale, which a tab still holding the
/// old one never touches. `localStorage` has no compare-and-set: the check and the write
/// happen back to back in one synchronous call, so only two tabs writing the same new id
/// within that instant could still collide; the tab whose sale was written over then
/// writes it back under a free id at its next sync, and sends it.
///
/// The witness is shared the same way: every change reads the stored record and decides
/// against it in the call that writes it ([`QueueStore::update_witness`]), so a tab never
/// erases the problem another tab kept, nor moves the witness back past what another
/// stored. Within one page nothing runs between that read and write; across tabs the
/// browser may let another tab's write land in that instant (as for new records above).
///
/// `localStorage` is per origin and synchronous; records are small (a few hundred
/// bytes), so a till's queue stays far below the usual 5 MiB quota. A full quota is
/// reported as a storage error by [`Outbox::enqueue`](crate::Outbox::enqueue).
#[derive(Debug, Clone)]
pub struct LocalStorageStore {
    prefix: String,
    witness_key: String,
}

fn js_err(what: &str, e: web_sys::wasm_bindgen::JsValue) -> ClientError {
    ClientError::Storage(format!("{what}: {e:?}"))
}

impl LocalStorageStore {
    /// Uses keys starting with `namespace` (e.g. `"tillgate.register-1."`).
    pub fn new(namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        LocalStorageStore {
            prefix: format!("{namespace}tx-"),
            witness_key: format!("{namespace}witness"),
        }
    }

    fn storage(&self) -> Result<Storage> {
        web_sys::window()
            .ok_or_else(|| ClientError::Storage("no window (not in a browser page)".into()))?
            .local_storage()
            .map_err(|e| js_err("localStorage", e))?
            .ok_or_else(|| ClientError::Storage("localStorage is not available".into()))
    }

    fn key(&self, id: u64) -> String {
        format!("{}{id:020}", self.prefix)
    }

    fn corrupt_witness(&self, reason: String) -> CorruptRecord {
        CorruptRecord {
            name: self.witness_key.clone(),
            id: None,
            reason,
        }
    }

    /// Reads the witness record: `None` if there is none, `Err` inside if it does not
    /// decode; `getItem` failing is an error of the call (it tells nothing about the
    /// record).
    fn read_witness(
        &self,
        s: &Storage,
    ) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        let value = s
            .get_item(&self.witness_key)
            .map_err(|e| js_err("localStorage.getItem", e))?;
        Ok(value
            .map(|v| decode_witness(v.as_bytes()).map_err(|reason| self.corrupt_witness(reason))))
    }

    fn write_witness(&self, s: &Storage, record: &WitnessRecord) -> Result<()> {
        let bytes = super::encode_witness(record)?;
        let text = String::from_utf8(bytes).map_err(|e| ClientError::Storage(e.to_string()))?;
        s.set_item(&self.witness_key, &text)
            .map_err(|e| js_err("localStorage.setItem", e))
    }

    /// Whether the record under `entry`'s id still holds its sale: another tab may have
    /// sent and removed it, and a third reused the id for a new sale since.
    fn holds(&self, entry: &QueuedTransaction) -> Result<bool> {
        let stored = self
            .storage()?
            .get_item(&self.key(entry.id))
            .map_err(|e| js_err("localStorage.getItem", e))?;
        Ok(stored.is_some_and(|t| super::holds_sale(t.as_bytes(), entry)))
    }
}

impl QueueStore for LocalStorageStore {
    fn load(&self) -> Result<StoreContents> {
        let s = self.storage()?;
        let n = s.length().map_err(|e| js_err("localStorage.length", e))?;
        let mut out = StoreContents::default();
        for i in 0..n {
            let Some(key) = s.key(i).map_err(|e| js_err("localStorage.key", e))? else {
                continue;
            };
            let Some(rest) = key.strip_prefix(&self.prefix) else {
                continue;
            };
            let id = rest.parse::<u64>().ok();
            // A value that does not decode is reported; `getItem` failing tells nothing
            // about the record (it may read the next time): an error of the load, like
            // `FileStore`'s.
            let Some(value) = s
                .get_item(&key)
                .map_err(|e| js_err("localStorage.getItem", e))?
            else {
                continue;
            };
            match id {
                Some(id) => match decode_record(value.as_bytes(), id) {
                    Ok(e) => out.entries.push(e),
                    Err(reason) => out.corrupt.push(CorruptRecord {
                        name: key,
                        id: Some(id),
                        reason,
                    }),
                },
                None => out.corrupt.push(CorruptRecord {
                    name: key,
                    id: None,
                    reason: "key does not end in a record id".into(),
                }),
            }
        }
        out.entries.sort_by_key(|e| e.id);
        out.witness = self.read_witness(&s)?;
        Ok(out)
    }

    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        let bytes = super::encode_record(entry)?;
        let text = String::from_utf8(bytes).map_err(|e| ClientError::Storage(e.to_string()))?;
        self.storage()?
            .set_item(&self.key(entry.id), &text)
            .map_err(|e| js_err("localStorage.setItem", e))
    }

    fn save_new(&self, entry: &QueuedTransaction) -> Result<bool> {
        let bytes = super::encode_record(entry)?;
        let text = String::from_utf8(bytes).map_err(|e| ClientError::Storage(e.to_string()))?;
        let s = self.storage()?;
        let key = self.key(entry.id);
        // Another tab on this origin may have taken the id: never write over its sale.
        if s.get_item(&key)
            .map_err(|e| js_err("localStorage.getItem", e))?
            .is_some()
        {
            return Ok(false);
        }
        s.set_item(&key, &text)
            .map_err(|e| js_err("localStorage.setItem", e))?;
        Ok(true)
    }

    fn remove(&self, id: u64) -> Result<()> {
        self.storage()?
            .remove_item(&self.key(id))
            .map_err(|e| js_err("localStorage.removeItem", e))
    }

    fn update(&self, entry: &QueuedTransaction) -> Result<()> {
        if self.holds(entry)? {
            self.save(entry)?;
        }
        Ok(())
    }

    fn remove_entry(&self, entry: &QueuedTransaction) -> Result<()> {
        if self.holds(entry)? {
            self.remove(entry.id)?;
        }
        Ok(())
    }

    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        self.write_witness(&self.storage()?, record)
    }

    fn load_witness(&self) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        self.read_witness(&self.storage()?)
    }

    fn update_witness(
        &self,
        change: &mut dyn FnMut(
            Option<std::result::Result<WitnessRecord, CorruptRecord>>,
        ) -> Option<WitnessRecord>,
    ) -> Result<()> {
        // Read, decided and written in one synchronous call: no other code of this page
        // runs in between, and another tab's write lands before the read or after the
        // write (see the type's notes on what `localStorage` promises across tabs).
        let s = self.storage()?;
        match change(self.read_witness(&s)?) {
            Some(record) => self.write_witness(&s, &record),
            None => Ok(()),
        }
    }

    fn remove_corrupt(&self, name: &str) -> Result<()> {
        if !name.starts_with(&self.prefix) && name != self.witness_key {
            return Err(ClientError::Storage(format!("not a queue record: {name}")));
        }
        // Only while it still cannot be read (another tab may have written it since):
        // read, checked and removed in one synchronous call, like `update_witness`.
        let s = self.storage()?;
        let Some(value) = s
            .get_item(name)
            .map_err(|e| js_err("localStorage.getItem", e))?
        else {
            return Ok(());
        };
        let readable = if name == self.witness_key {
            decode_witness(value.as_bytes()).is_ok()
        } else {
            name.strip_prefix(&self.prefix)
                .and_then(|rest| rest.parse::<u64>().ok())
                .is_some_and(|id| decode_record(value.as_bytes(), id).is_ok())
        };
        if readable {
            return Ok(());
        }
        s.remove_item(name)
            .map_err(|e| js_err("localStorage.removeItem", e))
    }
}
