//! The offline queue ("outbox") for transactions: persisted before the first send,
//! retried with backoff, never duplicated, never lost across restarts.

mod file;
mod memory;
#[cfg(all(target_arch = "wasm32", feature = "web-storage"))]
mod web;
mod witness;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tillgate_core::{FieldError, Transaction, validate_transaction};

#[cfg(not(target_arch = "wasm32"))]
pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(all(target_arch = "wasm32", feature = "web-storage"))]
pub use web::LocalStorageStore;
pub use witness::{WitnessProblem, WitnessRecord, decode_witness, encode_witness};

use crate::{Backoff, Client, ClientError, Result, StoredTransaction};

/// Longest idempotency key the server accepts (core's, shared with the server).
pub use tillgate_core::wire::MAX_IDEMPOTENCY_KEY_LEN;

/// The idempotency key of one transaction (1 to 64 visible ASCII characters) or of an
/// activation (at least 32). The server stores each transaction once per key, so
/// resending with the same key is always safe.
///
/// `Debug` does not show the key (an activation's key can have its API key issued
/// again); [`as_str`](Self::as_str) and `Display` do.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey(<redacted, {} chars>)", self.0.len())
    }
}

impl IdempotencyKey {
    /// Validates a key the app chose (e.g. its own receipt number).
    ///
    /// ```
    /// use tillgate_client::IdempotencyKey;
    /// assert!(IdempotencyKey::new("till-1:receipt-000042").is_ok());
    /// assert_eq!(IdempotencyKey::new("has space").unwrap_err().code(), "invalid_idempotency_key");
    /// ```
    pub fn new(key: &str) -> Result<Self> {
        // Core's rule; what follows only says which part of it failed.
        if tillgate_core::wire::is_idempotency_key(key, 1) {
            return Ok(IdempotencyKey(key.to_owned()));
        }
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(ClientError::InvalidIdempotencyKey(format!(
                "must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
            )));
        }
        let pos = key
            .bytes()
            .position(|b| !b.is_ascii_graphic())
            .unwrap_or_default();
        Err(ClientError::InvalidIdempotencyKey(format!(
            "character at position {pos} is not visible ASCII"
        )))
    }

    /// A new random key (128 bits, 32 hex digits).
    pub fn generate() -> Result<Self> {
        Ok(IdempotencyKey(crate::client::random_hex(16)?))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = ClientError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(&s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

/// Where a queued transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Waiting to be sent (again).
    Pending,
    /// Refused for good: by the server (a 4xx other than authentication and the ones a
    /// proxy answers during a deploy), or by the client's own check of the stored record
    /// before sending (core's `validate_transaction`: a record written by another app
    /// version, or damaged on disk). Kept, not retried; the app decides with
    /// [`Outbox::retry_failed`] or [`Outbox::discard`].
    Failed,
}

/// An error as remembered by the queue: its code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// [`ClientError::code`].
    pub code: String,
    /// The error's message.
    pub message: String,
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
    /// The HTTP status, when the server answered.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// The failing fields the server listed (a 400 `invalid_transaction`), or core's
    /// check of the stored record found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl LastError {
    fn of(e: &ClientError, at_ms: i64) -> Self {
        LastError {
            code: e.code().to_owned(),
            message: e.to_string(),
            at_ms,
            http_status: e.http_status(),
            fields: match e {
                ClientError::Api { fields, .. } => fields.clone(),
                ClientError::Core(e) => e.fields().to_vec(),
                _ => Vec::new(),
            },
        }
    }
}

/// One queued transaction, exactly as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedTransaction {
    /// Record format version (1).
    pub v: u32,
    /// Local, increasing id: the order of sale.
    pub id: u64,
    /// The key the server deduplicates by.
    pub idempotency_key: IdempotencyKey,
    /// The transaction.
    pub transaction: Transaction,
    /// When it was queued, Unix milliseconds.
    pub enqueued_at_ms: i64,
    /// Failed send attempts so far.
    pub attempts: u32,
    /// Not sent before this time (Unix milliseconds) unless a sync is forced.
    pub next_attempt_at_ms: i64,
    /// The last error sending it.
    pub last_error: Option<LastError>,
    /// Pending or failed.
    pub state: EntryState,
}

/// A stored record that could not be read. It stays in the store and is reported at
/// every load until the app removes it ([`Outbox::remove_corrupt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord {
    /// The record's name in the store (file name or storage key).
    pub name: String,
    /// The local id, if the name still tells it.
    pub id: Option<u64>,
    /// What was wrong.
    pub reason: String,
}

/// What a store holds.
#[derive(Debug, Clone, Default)]
pub struct StoreContents {
    /// Every readable record.
    pub entries: Vec<QueuedTransaction>,
    /// Every unreadable queue record.
    pub corrupt: Vec<CorruptRecord>,
    /// The witness record ([`QueueStore::save_witness`]): `None` if there is none yet,
    /// `Err` if it cannot be read (the [`Outbox`] reports it with the corrupt records
    /// and never writes over it unless the app asks).
    pub witness: Option<std::result::Result<WitnessRecord, CorruptRecord>>,
}

/// `Send + Sync` on native targets, nothing on wasm32 (where browser handles are not
/// `Send`).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` on native targets, nothing on wasm32 (where browser handles are not
/// `Send`).
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// Durable storage for queued transactions, one record per local id, and for the
/// register's witness ([`WitnessRecord`], one record).
///
/// Implementations must make [`save`](Self::save) atomic and durable: after it
/// returns, the record survives a crash or power loss, and a crash during it leaves
/// the previous version (or nothing, for a new record), never a torn one. Records that
/// cannot be read are reported in [`StoreContents::corrupt`], never skipped silently, so
/// that one bad queue record never stops the queue from opening. One whose read failed
/// (an I/O error: too many open files, a failing disk) may read fine the next time: such
/// a store must not delete it in [`remove_corrupt`](Self::remove_corrupt) while it still
/// cannot be read, since an app offered a corrupt record may remove it. The witness is
/// the register's evidence and must be read to open: if it cannot be read at all (an
/// I/O error), [`load`](Self::load) fails with a storage error rather than report it as
/// unreadable; only a witness that does not decode is reported unreadable.
///
/// The calls are synchronous and small; on native targets the [`Outbox`] runs them on
/// tokio's blocking pool so the caller's executor never stalls on `fsync`.
pub trait QueueStore: MaybeSendSync {
    /// Reads every record.
    fn load(&self) -> Result<StoreContents>;
    /// Inserts or replaces the record with `entry.id`, atomically and durably.
    fn save(&self, entry: &QueuedTransaction) -> Result<()>;
    /// Stores a new record like [`save`](Self::save), but never replaces one: if a
    /// record with `entry.id` already exists (another outbox on the same storage took
    /// that id, e.g. a second browser tab), it changes nothing and answers `Ok(false)`;
    /// the [`Outbox`] then reads the store again, takes the next free id and tries
    /// again. The default calls `save` and answers `Ok(true)`: right for a store only
    /// one outbox uses at a time (one that locks its storage, or lives in memory).
    fn save_new(&self, entry: &QueuedTransaction) -> Result<bool> {
        self.save(entry).map(|()| true)
    }
    /// Removes the record with this id (no error if it is absent).
    fn remove(&self, id: u64) -> Result<()>;
    /// Replaces `entry`'s record after the [`Outbox`] changed it (an attempt, a refusal,
    /// a retry). A store that other outboxes share (browser tabs) must change it only
    /// while it still holds the same sale (`idempotency_key`): another outbox may have
    /// sent and removed it, and a third may have reused its id for a new sale since.
    /// The default calls [`save`](Self::save).
    fn update(&self, entry: &QueuedTransaction) -> Result<()> {
        self.save(entry)
    }
    /// Removes `entry`'s record once the sale is on the server or discarded. A shared
    /// store must remove it only while it still holds the same sale, as for
    /// [`update`](Self::update). The default calls [`remove`](Self::remove).
    fn remove_entry(&self, entry: &QueuedTransaction) -> Result<()> {
        self.remove(entry.id)
    }
    /// Whether outboxes that did not get this very store object may use its storage at
    /// the same time (browser tabs on one `localStorage`). Then, and when one store
    /// object is given to two outboxes, every [`sync`](Outbox::sync) first reads the
    /// whole store to take in what the others changed. A store that locks its storage
    /// (as [`FileStore`](crate::FileStore) does) answers false and saves that read when
    /// only one outbox holds it. The default is true: the safe answer.
    fn is_shared(&self) -> bool {
        true
    }
    /// Removes an unreadable record (a queue record or the witness) by its name, but only
    /// if it still cannot be read (checked and removed with no write of that record in
    /// between, like [`update_witness`](Self::update_witness)): the app's list of
    /// unreadable records may be older than a record another outbox on the store wrote
    /// since. A record that reads fine now, or is gone, is left, with no error; one that
    /// cannot be read now (an I/O error) is left, and the error answered: it may hold a
    /// sale, or the witness, that reads fine the next time.
    fn remove_corrupt(&self, name: &str) -> Result<()>;
    /// Replaces the witness record, atomically and durably like [`save`](Self::save).
    fn save_witness(&self, record: &WitnessRecord) -> Result<()>;
    /// Reads the witness record alone, as [`load`](Self::load) reports it in
    /// [`StoreContents::witness`]: reading it failing (an I/O error) must be an error
    /// (`Err`), and only a record that does not decode reported as unreadable: the
    /// [`Outbox`] then leaves the witness as it holds it rather than take it as
    /// unreadable. The default reads the whole store with `load`; a store that holds
    /// many records reads the one.
    fn load_witness(&self) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        self.load().map(|c| c.witness)
    }
    /// Changes the witness record in one step: reads it (as
    /// [`load_witness`](Self::load_witness) does), calls `change` once with what it read,
    /// and writes the record `change` answers, if any, like
    /// [`save_witness`](Self::save_witness). The [`Outbox`] decides every move of the
    /// witness, and keeps every problem, against the stored record rather than its own
    /// copy, so that outboxes sharing one store (browser tabs) never erase the evidence
    /// another one kept, nor move the witness back past what another one stored. A store
    /// other outboxes share must let no other write of the witness come between the read
    /// and the write (hold a lock, or read and write with nothing in between that lets
    /// another tab run). The default reads with `load_witness` and writes with
    /// `save_witness`: right for a store only one outbox uses at a time.
    fn update_witness(
        &self,
        change: &mut dyn FnMut(
            Option<std::result::Result<WitnessRecord, CorruptRecord>>,
        ) -> Option<WitnessRecord>,
    ) -> Result<()> {
        match change(self.load_witness()?) {
            Some(record) => self.save_witness(&record),
            None => Ok(()),
        }
    }
}

/// Whether `stored` (a record's bytes) holds `entry`'s sale: the same idempotency key.
/// An unreadable record holds no sale of ours. For the shared stores'
/// [`QueueStore::update`] and [`QueueStore::remove_entry`].
pub(crate) fn holds_sale(stored: &[u8], entry: &QueuedTransaction) -> bool {
    decode_record(stored, entry.id).is_ok_and(|r| r.idempotency_key == entry.idempotency_key)
}

/// Encodes a record as stored (JSON).
pub fn encode_record(entry: &QueuedTransaction) -> Result<Vec<u8>> {
    serde_json::to_vec(entry).map_err(|e| ClientError::Storage(e.to_string()))
}

/// Decodes a stored record; `id` is the id its name says, which must match.
pub fn decode_record(bytes: &[u8], id: u64) -> std::result::Result<QueuedTransaction, String> {
    let entry: QueuedTransaction = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if entry.v != 1 {
        return Err(format!("unsupported record version {}", entry.v));
    }
    if entry.id != id {
        return Err(format!("record says id {} but is stored as {id}", entry.id));
    }
    Ok(entry)
}

/// Runs a store operation; on native inside tokio's blocking pool when a runtime is
/// running, so `fsync` never stalls the caller's executor.
#[cfg(not(target_arch = "wasm32"))]
async fn run_store<T, F>(store: &Arc<dyn QueueStore>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn QueueStore) -> Result<T> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            let store = Arc::clone(store);
            handle
                .spawn_blocking(move || f(store.as_ref()))
                .await
                .map_err(|e| ClientError::Storage(format!("store task failed: {e}")))?
        }
        Err(_) => f(store.as_ref()),
    }
}

#[cfg(target_arch = "wasm32")]
async fn run_store<T, F>(store: &Arc<dyn QueueStore>, f: F) -> Result<T>
where
    F: FnOnce(&dyn QueueStore) -> Result<T>,
{
    f(store.as_ref())
}

/// The most older sales [`Outbox::submit`] sends ahead of the new one: 3. With more
/// pending ahead of it (a backlog after an outage), `submit` sends nothing and answers
/// [`Submitted::Queued`] at once, leaving the backlog to [`Outbox::sync`], which the app
/// calls periodically: a sale at the till then never waits for more than this many
/// round trips (each bounded by the client's timeout) besides its own.
pub const SUBMIT_MAX_AHEAD: usize = 3;

/// The result of [`Outbox::submit`].
#[derive(Debug, Clone, PartialEq)]
// One value per submitted sale, returned and not stored in bulk: boxing the stored
// transaction would only change the public variant's type.
#[allow(clippy::large_enum_variant)]
pub enum Submitted {
    /// The server stored it; here is the stored transaction with its receipt.
    Sent(StoredTransaction),
    /// It is safely queued (persisted) and will be sent by a later sync.
    Queued(IdempotencyKey),
    /// The server refused it for good (a 4xx such as `invalid_transaction`): it is kept
    /// in the queue as [`EntryState::Failed`], for the app to [`Outbox::retry_failed`]
    /// or [`Outbox::discard`]; `error` says why, with the fields the server listed.
    Refused {
        /// The sale's idempotency key.
        key: IdempotencyKey,
        /// The server's refusal.
        error: LastError,
    },
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Transactions the server stored in this run, in order, with their keys.
    pub sent: Vec<(IdempotencyKey, StoredTransaction)>,
    /// Transactions the server refused for good in this run (now [`EntryState::Failed`]).
    pub failed: Vec<(IdempotencyKey, LastError)>,
    /// The error that stopped the run (network down, key expired...), if any.
    pub stopped_by: Option<ClientError>,
    /// Pending transactions left.
    pub remaining: usize,
    /// Another sync was already running; this one did nothing.
    pub already_running: bool,
    /// A receipt of this run that did not fit the register's witness (the first one);
    /// see [`Outbox::witness_problem`]. Its sale was stored all the same.
    pub witness_problem: Option<WitnessProblem>,
}

struct State {
    entries: BTreeMap<u64, QueuedTransaction>,
    /// The ids of sales in `entries` the store lost and that could not be written back
    /// yet ([`take_in`]): absent from the store because this outbox's write failed, not
    /// because another outbox removed them.
    unstored: BTreeSet<u64>,
    corrupt: Vec<CorruptRecord>,
    next_id: u64,
    last_error: Option<LastError>,
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves consistent data (every change is a single
    // insert or remove), so a poisoned lock is still usable.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first id after every record a store holds, readable or not (a corrupt record's
/// id is never reused).
fn next_free_id(contents: &StoreContents) -> u64 {
    contents
        .entries
        .iter()
        .map(|e| e.id)
        .chain(contents.corrupt.iter().filter_map(|c| c.id))
        .max()
        .map_or(1, |m| m.saturating_add(1))
}

/// How many times a new record looks for a free id before giving up.
const MAX_ID_TRIES: usize = 10;

/// The entry already queued under `key`, when there is one: `Ok` if it holds
/// `transaction` (a repeat), [`ClientError::IdempotencyKeyReused`] if another one.
fn repeat(
    st: &State,
    key: &IdempotencyKey,
    transaction: &Transaction,
) -> Option<Result<QueuedTransaction>> {
    let existing = st.entries.values().find(|e| e.idempotency_key == *key)?;
    Some(if existing.transaction == *transaction {
        Ok(existing.clone())
    } else {
        Err(ClientError::IdempotencyKeyReused)
    })
}

/// Held while a new record takes its id, is written and joins the outbox's memory (a
/// sale queued, or one the store lost written back: [`take_in`]), one at a time, with
/// the store call (on native in tokio's blocking pool, never across an `await`). So a
/// key is looked for and its record stored with no other record of that key under way,
/// and ids join the queue in increasing order: a run going forward from the last id it
/// tried misses none. (A record [`Outbox::remove_corrupt`] takes in once it reads again
/// keeps its old id; if a run already went past it, the next run sends it.)
fn lock_new_records(lock: &Mutex<()>) -> MutexGuard<'_, ()> {
    // Guards no data: a panic while holding it leaves nothing inconsistent.
    lock.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stores a new record under a free id, and only then puts it in the outbox's memory.
/// Runs as one store call (on native in tokio's blocking pool, which finishes it even
/// when the caller's future is dropped), so a record is never on disk without the
/// outbox knowing it. If another outbox on the same storage took the id
/// ([`QueueStore::save_new`] answers `false`), the store is read again and the next
/// free id taken.
fn insert_new(
    s: &dyn QueueStore,
    state: &Mutex<State>,
    mut entry: QueuedTransaction,
) -> Result<()> {
    for _ in 0..MAX_ID_TRIES {
        if s.save_new(&entry)? {
            lock_state(state).entries.insert(entry.id, entry);
            return Ok(());
        }
        let stored = s.load()?;
        let mut st = lock_state(state);
        let id = st
            .next_id
            .max(next_free_id(&stored))
            .max(entry.id.saturating_add(1));
        st.next_id = id.saturating_add(1);
        entry.id = id;
    }
    Err(ClientError::Storage(format!(
        "no free record id after {MAX_ID_TRIES} tries: another outbox on the same storage keeps taking them"
    )))
}

/// Drops a removed record from the corrupt list (and the error that reported it).
fn forget_corrupt(state: &Mutex<State>, name: &str) {
    let mut st = lock_state(state);
    st.corrupt.retain(|c| c.name != name);
    if st.corrupt.is_empty()
        && st
            .last_error
            .as_ref()
            .is_some_and(|e| e.code == "queue_record_corrupt")
    {
        st.last_error = None;
    }
}

/// The error that reports unreadable records.
fn corrupt_error(corrupt: &[CorruptRecord]) -> Option<LastError> {
    corrupt.first().map(|c| LastError {
        code: "queue_record_corrupt".into(),
        message: format!(
            "{} queue record(s) unreadable, first {}: {}",
            corrupt.len(),
            c.name,
            c.reason
        ),
        at_ms: 0,
        http_status: None,
        fields: Vec::new(),
    })
}

/// Reports what a look at the stored witness found: a record that cannot be read (any
/// more) joins the corrupt list, one another outbox removed or reset leaves it.
fn witness_readability(state: &Mutex<State>, found: witness::Readability) {
    match found {
        witness::Readability::Same => {}
        witness::Readability::Unreadable(c) => {
            let mut st = lock_state(state);
            if !st.corrupt.iter().any(|k| k.name == c.name) {
                st.corrupt.push(c);
                st.last_error = corrupt_error(&st.corrupt);
            }
        }
        witness::Readability::Readable(name) => forget_corrupt(state, &name),
    }
}

/// Takes in what other outboxes on the same store (browser tabs) changed since this one
/// last looked: the sales they queued (added), unreadable records, the next free id, and
/// the witness ([`witness::WitnessState::look`], with this outbox's unsaved copy judged
/// by `judge`).
///
/// A sale this outbox knew before the store was read and that the store no longer holds
/// (its record is gone, or its id now holds another sale) is never just forgotten:
/// nothing tells a sale another outbox sent (and removed) from a record lost with its
/// storage (`localStorage.clear()` by the app's logout code, site data cleared by the
/// user) or written over by another outbox's new sale (two tabs taking the same free id
/// at the same instant). So:
///
/// - a pending sale is kept, written back under a free id (so it is stored again and
///   other outboxes see it), and sent like any pending one, after the sales queued
///   before its new id. If another outbox had sent it, the server answers the resend
///   with the stored sale and its receipt (same idempotency key: no duplicate, and the
///   witness takes the same receipt again, never as a fork), and it is then removed as
///   usual: the cost of two tabs is one resend per sale by each tab that still held it.
///   Pending sales cannot be discarded ([`Outbox::discard`]), so none is brought back
///   against an app's choice, except one that another outbox, still holding it as
///   failed, discarded while this outbox held it as pending (retried, or not yet known
///   as refused): it is resent, and refused again if the server still refuses it;
/// - a failed sale (refused for good) may have been discarded by another outbox, or
///   retried and sent there: it is forgotten here too, unless the whole store was
///   wiped: no queue record, readable or not, and no witness, where this outbox knew a
///   witness record ([`witness::WitnessState::knew_a_record`]; no outbox removes that
///   one). Then failed sales are written back too, and so is the witness with the
///   evidence of a fork this outbox holds ([`witness::WitnessState::restore_wiped`]),
///   rather than taken as another outbox's reset.
///
/// A sale the store holds under another id (another outbox wrote it back first) is
/// taken from the store instead. One added here while the store was read (a sale queued
/// meanwhile) is kept, and one removed here meanwhile (a discard, a sale answered) does
/// not come back. A record that cannot be read now (an I/O error, a write under way in
/// another tab) may still hold this outbox's sale: the sale is kept. A sale whose write
/// back failed is written back at the next look, whatever its state (it was never stored
/// again, so no other outbox removed it).
///
/// Answers `Err` if the store could not be read (nothing changed), and `Ok(Some(e))` if
/// a sale or the witness could not be written back: it is kept in memory (and sent), and
/// `e` is for the queue's last error.
fn take_in(
    s: &dyn QueueStore,
    state: &Mutex<State>,
    witness: &Mutex<witness::WitnessState>,
    judge: witness::Judge<'_>,
) -> Result<Option<ClientError>> {
    let (known, unstored): (BTreeMap<u64, IdempotencyKey>, BTreeSet<u64>) = {
        let st = lock_state(state);
        let known = (st.entries.values())
            .filter(|e| !st.unstored.contains(&e.id))
            .map(|e| (e.id, e.idempotency_key.clone()))
            .collect();
        (known, st.unstored.clone())
    };
    let (contents, witness_corrupt, wiped, witness_written) = {
        let mut w = witness::lock(witness);
        // Read with the witness held, like every change of it.
        let mut contents = s.load()?;
        let wiped = contents.entries.is_empty()
            && contents.corrupt.is_empty()
            && contents.witness.is_none()
            && w.knew_a_record();
        let mut written = Ok(());
        if wiped {
            written = w.restore_wiped(s, judge);
        } else {
            let stored = match contents.witness.take() {
                // A custom store's `load` may report a witness it could not read like a
                // damaged one; read alone, a store tells a read error (the witness stays
                // as this outbox holds it) from a record that does not decode.
                Some(Err(_)) => s.load_witness(),
                stored => Ok(stored),
            };
            if let Ok(stored) = stored {
                // What the look found is reported with the queue records' below.
                let _ = w.look(stored, judge);
            }
        }
        (contents, w.unreadable_record(), wiped, written)
    };
    let free = next_free_id(&contents);
    let unreadable: BTreeSet<u64> = contents.corrupt.iter().filter_map(|c| c.id).collect();
    let stored_keys: BTreeSet<IdempotencyKey> = (contents.entries.iter())
        .map(|e| e.idempotency_key.clone())
        .collect();
    let stored: BTreeMap<u64, QueuedTransaction> =
        contents.entries.into_iter().map(|e| (e.id, e)).collect();
    let (mut lost, mut still_unstored) = (Vec::new(), BTreeSet::new());
    let mut st = lock_state(state);
    for (id, e) in std::mem::take(&mut st.entries) {
        let held = stored
            .get(&id)
            .is_some_and(|s| s.idempotency_key == e.idempotency_key);
        let unsaved = unstored.contains(&id);
        if held
            || unreadable.contains(&id)
            || (!unsaved && known.get(&id) != Some(&e.idempotency_key))
        {
            if unsaved && !held {
                still_unstored.insert(id);
            }
            st.entries.insert(id, e);
        } else if stored_keys.contains(&e.idempotency_key) {
            // Written back by another outbox under another id: taken in below.
        } else if e.state == EntryState::Pending || wiped || unsaved {
            lost.push(e);
        }
        // Otherwise a failed sale another outbox discarded (or retried and sent).
    }
    for (id, e) in stored {
        let removed_here =
            !st.entries.contains_key(&id) && known.get(&id) == Some(&e.idempotency_key);
        if !removed_here {
            st.entries.entry(id).or_insert(e);
        }
    }
    // The lost sales get free ids in their order of sale (one whose write back failed
    // keeps its own while the store holds nothing from it on), and stay in memory under
    // them whatever happens to their writes.
    let (mut next, mut floor) = (st.next_id.max(free), free);
    for e in &mut lost {
        if !(unstored.contains(&e.id) && e.id >= floor) {
            e.id = next.max(floor);
        }
        floor = e.id.saturating_add(1);
        next = next.max(floor);
        st.entries.insert(e.id, e.clone());
    }
    st.next_id = next;
    still_unstored.extend(lost.iter().map(|e| e.id));
    st.unstored = still_unstored;
    let mut corrupt = contents.corrupt;
    corrupt.extend(witness_corrupt);
    let new = corrupt
        .iter()
        .any(|c| !st.corrupt.iter().any(|k| k.name == c.name));
    st.corrupt = corrupt;
    if new {
        st.last_error = corrupt_error(&st.corrupt);
    } else if st.corrupt.is_empty()
        && st
            .last_error
            .as_ref()
            .is_some_and(|e| e.code == "queue_record_corrupt")
    {
        st.last_error = None;
    }
    drop(st);
    for e in lost {
        if let Err(err) = save_again(s, state, e) {
            return Ok(Some(err));
        }
    }
    Ok(witness_written.err())
}

/// Writes back a sale the store lost ([`take_in`]), which this outbox holds in memory
/// under `entry.id`, a free id, like [`insert_new`]: if another outbox took the id
/// meanwhile, the sale moves to the next free one. Once stored, it leaves the list of
/// sales not stored. If it left this outbox meanwhile (answered by the server, or
/// discarded), its record goes again.
fn save_again(
    s: &dyn QueueStore,
    state: &Mutex<State>,
    mut entry: QueuedTransaction,
) -> Result<()> {
    let here = |st: &State, e: &QueuedTransaction| {
        (st.entries.get(&e.id)).is_some_and(|h| h.idempotency_key == e.idempotency_key)
    };
    for _ in 0..MAX_ID_TRIES {
        if s.save_new(&entry)? {
            let mut st = lock_state(state);
            st.unstored.remove(&entry.id);
            if !here(&st, &entry) {
                drop(st);
                s.remove_entry(&entry)?;
            }
            return Ok(());
        }
        let stored = s.load()?;
        let mut st = lock_state(state);
        if !here(&st, &entry) {
            st.unstored.remove(&entry.id);
            return Ok(());
        }
        let id = st
            .next_id
            .max(next_free_id(&stored))
            .max(entry.id.saturating_add(1));
        st.next_id = id.saturating_add(1);
        st.unstored.remove(&entry.id);
        if let Some(mut held) = st.entries.remove(&entry.id) {
            held.id = id;
            entry = held;
        }
        st.unstored.insert(id);
        st.entries.insert(id, entry.clone());
    }
    Err(ClientError::Storage(format!(
        "no free record id after {MAX_ID_TRIES} tries: another outbox on the same storage keeps taking them"
    )))
}

/// Whether an error sending one queued transaction refuses that transaction for good
/// (it becomes [`EntryState::Failed`] and the run goes on), rather than stopping the run
/// with the transaction kept pending.
fn refuses_for_good(err: &ClientError) -> bool {
    match err {
        // The client's own check of the stored record failed (core's
        // `validate_transaction`: a record written by another app version, or damaged
        // on disk). Sending it again never helps, and it must not hold back the sales
        // behind it.
        ClientError::Core(_) => true,
        // `POST /transactions` always exists: a 404 is a reverse proxy (a deploy under
        // way), not the server refusing this sale.
        ClientError::Api { status: 404, .. } => false,
        // The server answered with another sale (or an altered one): this one is not
        // known to be stored, and nothing says it was refused. It stays pending.
        ClientError::AnswerMismatch(_) => false,
        // A redirect says where the server is, nothing about the sale: it stays pending
        // until the app points the client there.
        ClientError::UnexpectedRedirect { .. } => false,
        _ => {
            !err.is_transient()
                && !err.is_auth()
                && !matches!(err, ClientError::NotActivated)
                && err.http_status().is_some()
        }
    }
}

/// The offline queue. Every transaction goes in here first ([`enqueue`](Self::enqueue)
/// or [`submit`](Self::submit)) and is persisted before anything is sent; a sync sends
/// them in order of sale, each with its own idempotency key, once the oldest is due.
/// A [`submit`](Self::submit) sends its sale at once only behind at most
/// [`SUBMIT_MAX_AHEAD`] pending ones: a longer backlog is left to [`sync`](Self::sync),
/// which the app calls periodically (a timer on [`next_attempt_at`](Self::next_attempt_at),
/// or when the network is back), so a checkout never waits for the whole backlog.
///
/// Time is always passed in (`now_ms`, Unix milliseconds): the queue reads no clock.
/// Use [`crate::unix_time_ms`] for the device's time.
///
/// - A transient failure (no network, timeout, 429, 5xx, and 404, 408, 421, 425, which
///   a reverse proxy answers during a deploy) or a refused credential stops the run;
///   the transaction stays pending with its next attempt scheduled by [`Backoff`] (a
///   server's `Retry-After` is followed up to the backoff's maximum) and the error kept
///   as [`last_error`](Self::last_error).
/// - A permanent refusal of one transaction (400, 409...), or a stored record that
///   fails the client's own check before sending, marks it [`EntryState::Failed`]; it
///   is kept, reported, and the run goes on.
/// - Only a success removes a record. If the app dies between the server's answer and
///   the removal, the next sync resends with the same key and the server answers with
///   the stored transaction: no duplicate.
pub struct Outbox {
    store: Arc<dyn QueueStore>,
    state: Arc<Mutex<State>>,
    /// New records are stored one at a time ([`lock_new_records`]).
    new_records: Arc<Mutex<()>>,
    witness: Arc<Mutex<witness::WitnessState>>,
    syncing: AtomicBool,
    backoff: Backoff,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("len", &self.len())
            .field("last_error", &self.last_error())
            .finish()
    }
}

struct SyncGuard<'a>(&'a AtomicBool);

impl Drop for SyncGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // Without randomness the schedule is still correct, only not spread.
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

impl Outbox {
    /// Opens the queue over `store`, loading what it holds. Records that cannot be read
    /// are kept in the store and reported by [`corrupt_records`](Self::corrupt_records)
    /// and as the [`last_error`](Self::last_error); the rest of the queue works. A queue
    /// record whose read failed for now (an I/O error: too many open files, a failing
    /// disk) is read again at the next open, and removing it is refused while it cannot
    /// be read. The witness must be read to open: if the store cannot read it at all (an
    /// I/O error), the open fails with a storage error (`storage_error`) for the app to
    /// retry, until it reads or is moved aside by hand; a witness that does not decode is
    /// reported with the corrupt records.
    pub async fn open(store: Arc<dyn QueueStore>) -> Result<Self> {
        let mut contents = run_store(&store, |s| s.load()).await?;
        if let Some(Err(c)) = &contents.witness {
            contents.corrupt.push(c.clone());
        }
        let next_id = next_free_id(&contents);
        let witness = witness::WitnessState::loaded(contents.witness);
        let mut entries = BTreeMap::new();
        for e in contents.entries {
            entries.insert(e.id, e);
        }
        let last_error = corrupt_error(&contents.corrupt);
        Ok(Outbox {
            store,
            state: Arc::new(Mutex::new(State {
                entries,
                unstored: BTreeSet::new(),
                corrupt: contents.corrupt,
                next_id,
                last_error,
            })),
            new_records: Arc::new(Mutex::new(())),
            witness: Arc::new(Mutex::new(witness)),
            syncing: AtomicBool::new(false),
            backoff: Backoff::default(),
        })
    }

    /// Uses another retry schedule.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }

    /// Whether a transaction scheduled for `at` is due at `now_ms`: once its time has
    /// come, or when it lies further ahead than the backoff's longest wait (the clock
    /// was set back after it was scheduled; waiting for it could take years).
    fn is_due(&self, at: i64, now_ms: i64) -> bool {
        at <= now_ms || at > now_ms.saturating_add(self.backoff.max_ms())
    }

    /// Queues a transaction: validates it (core), persists it durably, and only then
    /// returns its idempotency key (the one given, or a new random one). Nothing is sent.
    ///
    /// Queuing the same key again with the same transaction returns the existing entry's
    /// key (so an app retrying after a crash does not queue twice), even if the server
    /// refused it (see [`failed`](Self::failed)); with a different transaction it fails
    /// with [`ClientError::IdempotencyKeyReused`]. That holds for calls at the same
    /// moment too (a double tap): the later one waits for the earlier one's write, then
    /// answers as a repeat (or stores the sale itself if that write failed).
    ///
    /// Cancellation-safe: if the returned future is dropped (an app's timeout), the
    /// record is either not stored at all or stored and in the queue, never stored
    /// behind the queue's back. To retry such a call without queuing the sale twice,
    /// pass your own key: a generated one dies with the dropped future.
    pub async fn enqueue(
        &self,
        transaction: Transaction,
        key: Option<IdempotencyKey>,
        now_ms: i64,
    ) -> Result<IdempotencyKey> {
        self.queue(transaction, key, now_ms)
            .await
            .map(|(key, _)| key)
    }

    /// [`enqueue`](Self::enqueue), also answering the entry already queued under the
    /// key, if there was one.
    async fn queue(
        &self,
        transaction: Transaction,
        key: Option<IdempotencyKey>,
        now_ms: i64,
    ) -> Result<(IdempotencyKey, Option<QueuedTransaction>)> {
        validate_transaction(&transaction)?;
        let key = match key {
            Some(k) => k,
            None => IdempotencyKey::generate()?,
        };
        // A repeat of a sale already queued is answered at once.
        if let Some(answer) = repeat(&self.lock(), &key, &transaction) {
            return answer.map(|existing| (key, Some(existing)));
        }
        // Looked for again, and the record stored, with no other new record under way:
        // two calls with the same key at the same moment cannot both queue it (the
        // second waits for the first's write, then answers as a repeat, or stores the
        // sale itself if that write failed).
        let (state, one_at_a_time) = (Arc::clone(&self.state), Arc::clone(&self.new_records));
        let k = key.clone();
        let existing = run_store(&self.store, move |s| {
            let _alone = lock_new_records(&one_at_a_time);
            let entry = {
                let mut st = lock_state(&state);
                if let Some(answer) = repeat(&st, &k, &transaction) {
                    return answer.map(Some);
                }
                let id = st.next_id;
                st.next_id = id.saturating_add(1);
                QueuedTransaction {
                    v: 1,
                    id,
                    idempotency_key: k,
                    transaction,
                    enqueued_at_ms: now_ms,
                    attempts: 0,
                    next_attempt_at_ms: now_ms,
                    last_error: None,
                    state: EntryState::Pending,
                }
            };
            insert_new(s, &state, entry).map(|()| None)
        })
        .await?;
        Ok((key, existing))
    }

    /// Queues a transaction (persisted first, like [`enqueue`](Self::enqueue)), then
    /// tries to send it at once when the server is reachable: after the sales queued
    /// before it (the order of sale is kept), once the oldest is due, and only if at most
    /// [`SUBMIT_MAX_AHEAD`] of them are pending. With more pending ahead of it (a backlog
    /// after an outage), nothing is sent and it answers [`Submitted::Queued`] at once:
    /// the backlog, this sale included, is sent by [`sync`](Self::sync), which the app
    /// calls periodically. So a submit waits for at most `SUBMIT_MAX_AHEAD + 1` requests,
    /// each bounded by the client's timeout, and never sends sales queued after this one.
    /// Never fails because of the network: then it answers [`Submitted::Queued`]. It
    /// also answers `Queued` at once while a sync or another submit of this outbox is
    /// sending (two lanes sharing one outbox): that run stops where it was asked to, so
    /// the sale goes with the next [`sync`](Self::sync).
    ///
    /// An `Err` means the sale was **not** kept: refused before it was queued (core's
    /// `invalid_transaction`, `idempotency_key_reused` with another transaction, a
    /// storage error). Every `Ok` means it is kept: sent, queued, or
    /// [`Submitted::Refused`] when the server refused it for good (it stays in the queue
    /// as [`EntryState::Failed`]). Submitting a key the server already refused answers
    /// that refusal again (nothing is sent) until the app calls
    /// [`retry_failed`](Self::retry_failed) or [`discard`](Self::discard).
    /// Cancellation-safe like [`enqueue`](Self::enqueue).
    pub async fn submit(
        &self,
        client: &Client,
        transaction: Transaction,
        key: Option<IdempotencyKey>,
        now_ms: i64,
    ) -> Result<Submitted> {
        let (key, existing) = self.queue(transaction, key, now_ms).await?;
        if let Some(e) = existing
            && e.state == EntryState::Failed
        {
            let error = e.last_error.clone().unwrap_or_else(|| LastError {
                code: "refused".into(),
                message: "the transaction was refused for good".into(),
                at_ms: now_ms,
                http_status: None,
                fields: Vec::new(),
            });
            return Ok(Submitted::Refused { key, error });
        }
        let report = self.run(client, now_ms, false, Some(&key)).await;
        if let Some((_, stored)) = report.sent.into_iter().find(|(k, _)| *k == key) {
            return Ok(Submitted::Sent(stored));
        }
        if let Some((_, error)) = report.failed.into_iter().find(|(k, _)| *k == key) {
            return Ok(Submitted::Refused { key, error });
        }
        Ok(Submitted::Queued(key))
    }

    /// Pending transactions (the queue length the till shows).
    pub fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| e.state == EntryState::Pending)
            .count()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every queued record (pending and failed), in order of sale. With other outboxes on
    /// the same store (browser tabs), the sales they queued join at this outbox's next
    /// sync ([`sync`](Self::sync), [`submit`](Self::submit)).
    pub fn entries(&self) -> Vec<QueuedTransaction> {
        self.lock().entries.values().cloned().collect()
    }

    /// The records the server refused for good.
    pub fn failed(&self) -> Vec<QueuedTransaction> {
        self.lock()
            .entries
            .values()
            .filter(|e| e.state == EntryState::Failed)
            .cloned()
            .collect()
    }

    /// Unreadable records found when the queue was opened.
    pub fn corrupt_records(&self) -> Vec<CorruptRecord> {
        self.lock().corrupt.clone()
    }

    /// The last error the queue met (sending, storing, or a corrupt record at open);
    /// cleared once a sync leaves nothing pending without meeting an error.
    pub fn last_error(&self) -> Option<LastError> {
        self.lock().last_error.clone()
    }

    /// When the queue is next due (Unix ms): the oldest pending transaction's next
    /// attempt. For the app's timer; `None` when nothing is pending. A time further
    /// ahead than the backoff's maximum (the device's clock was set back since) counts
    /// as due at the next [`sync`](Self::sync).
    pub fn next_attempt_at(&self) -> Option<i64> {
        self.lock()
            .entries
            .values()
            .find(|e| e.state == EntryState::Pending)
            .map(|e| e.next_attempt_at_ms)
    }

    /// Sends the pending transactions in order of sale if the oldest one is due at
    /// `now_ms` (see [`next_attempt_at`](Self::next_attempt_at)). It first reads the store
    /// again: sales other outboxes on it (browser tabs) queued join, and the witness is
    /// taken as stored. A pending sale whose record is gone (another outbox sent it, or
    /// the storage was cleared) or whose id now holds another sale is never dropped: it
    /// is written back under a free id and sent again; the server answers a sale it
    /// already stored with that sale and its receipt, and only then does it leave the
    /// queue. A failed one leaves (another outbox may have discarded it), unless the
    /// whole store was wiped. If such a sale cannot be written back, it is still sent,
    /// and the storage error (`storage_error`) is the [`last_error`](Self::last_error).
    /// Cancellation-safe: a dropped run leaves every record stored as it was or updated,
    /// and at worst resends one the server already has (it answers with the stored
    /// transaction).
    pub async fn sync(&self, client: &Client, now_ms: i64) -> SyncReport {
        self.run(client, now_ms, false, None).await
    }

    /// Sends every pending transaction now, ignoring the backoff schedule (the till's
    /// "sync now" button, or when the app learns the network is back).
    pub async fn sync_now(&self, client: &Client, now_ms: i64) -> SyncReport {
        self.run(client, now_ms, true, None).await
    }

    /// Sends the pending transactions in order of sale (see [`sync`](Self::sync)). With
    /// `upto`, the key of a sale just submitted, it sends only as far as that sale, and
    /// nothing at all when more than [`SUBMIT_MAX_AHEAD`] pending sales are ahead of it
    /// ([`submit`](Self::submit)).
    async fn run(
        &self,
        client: &Client,
        now_ms: i64,
        force: bool,
        upto: Option<&IdempotencyKey>,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        if self.syncing.swap(true, Ordering::AcqRel) {
            report.already_running = true;
            report.remaining = self.len();
            return report;
        }
        let _guard = SyncGuard(&self.syncing);
        // A sale or witness the store lost that could not be written back: this error is
        // the queue's last error at the end of the run, whatever the sends met.
        let mut restore_error = None;
        // Other outboxes on the store (browser tabs) may have queued or sent sales, or
        // moved the witness, since this one last looked, or the store lost records. If
        // the store cannot be read now, the run goes on with what this outbox holds; if
        // a sale it lost cannot be written back, it is sent all the same and the storage
        // error kept.
        // The Outbox's own clone is one; another holder may be another outbox.
        if self.store.is_shared() || Arc::strong_count(&self.store) > 1 {
            let (state, witness) = (Arc::clone(&self.state), Arc::clone(&self.witness));
            let one_at_a_time = Arc::clone(&self.new_records);
            let client = client.clone();
            let taken = run_store(&self.store, move |s| {
                // Sales it writes back take new ids, like sales queued meanwhile.
                let _alone = lock_new_records(&one_at_a_time);
                let judge = witness::Judge::new(&client, Some(now_ms));
                take_in(s, &state, &witness, judge)
            })
            .await;
            if let Ok(Some(e)) = taken {
                restore_error = Some(LastError::of(&e, now_ms));
            }
        }
        // A submit behind a backlog sends nothing: the backlog is `sync`'s. So does one
        // whose sale is not pending (any more).
        let held_back = upto.is_some_and(|key| {
            let st = self.lock();
            let mut pending = (st.entries.values()).filter(|e| e.state == EntryState::Pending);
            pending
                .position(|e| e.idempotency_key == *key)
                .is_none_or(|ahead| ahead > SUBMIT_MAX_AHEAD)
        });
        // The id of the last transaction tried in this run. New records join in increasing
        // id order ([`lock_new_records`]), so going forward from it misses none.
        let mut tried: Option<u64> = None;
        let mut witness_failed = false;
        loop {
            if held_back {
                break;
            }
            let next = {
                let st = self.lock();
                let from = tried.map_or(Bound::Unbounded, Bound::Excluded);
                st.entries
                    .range((from, Bound::Unbounded))
                    .map(|(_, e)| e)
                    .find(|e| e.state == EntryState::Pending)
                    .cloned()
            };
            let Some(entry) = next else { break };
            // The oldest pending transaction sets the schedule for the queue, so the
            // order of sale is kept; once it went through, the rest follow at once.
            if !force && tried.is_none() && !self.is_due(entry.next_attempt_at_ms, now_ms) {
                break;
            }
            tried = Some(entry.id);
            // A submit's run ends with its own sale.
            let last = upto.is_some_and(|k| *k == entry.idempotency_key);
            let epoch = self.witness_epoch();
            match client
                .submit_transaction(&entry.transaction, &entry.idempotency_key)
                .await
            {
                Ok(stored) => {
                    // The receipt is kept before the record goes: after a crash in
                    // between, the resend gets the same receipt back.
                    let (problem, kept) = self
                        .witness_saw(client, &stored.receipt, now_ms, epoch)
                        .await;
                    if report.witness_problem.is_none() {
                        report.witness_problem = problem;
                    }
                    if let Err(e) = kept {
                        // The witness moved in memory and is written with the next
                        // change; the sales go on.
                        self.lock().last_error = Some(LastError::of(&e, now_ms));
                        witness_failed = true;
                    }
                    let (sent, state) = (entry.clone(), Arc::clone(&self.state));
                    let removed = run_store(&self.store, move |s| {
                        s.remove_entry(&sent)?;
                        let mut st = lock_state(&state);
                        st.entries.remove(&sent.id);
                        st.unstored.remove(&sent.id);
                        Ok(())
                    })
                    .await;
                    if let Err(e) = removed {
                        // The server has it; a later resend with the same key is harmless.
                        self.lock().last_error = Some(LastError::of(&e, now_ms));
                        report.stopped_by = Some(e);
                        break;
                    }
                    report.sent.push((entry.idempotency_key, stored));
                    if last {
                        break;
                    }
                }
                Err(err) => {
                    let permanent = refuses_for_good(&err);
                    let mut updated = entry.clone();
                    updated.attempts = updated.attempts.saturating_add(1);
                    updated.last_error = Some(LastError::of(&err, now_ms));
                    if permanent {
                        updated.state = EntryState::Failed;
                    } else {
                        let mut at =
                            self.backoff
                                .next_attempt_at(now_ms, updated.attempts, random_u32());
                        if let Some(d) = err.retry_after() {
                            // Followed up to the backoff's longest wait: a Retry-After of
                            // years must not park the queue.
                            let ra = i64::try_from(d.as_millis())
                                .unwrap_or(i64::MAX)
                                .min(self.backoff.max_ms());
                            at = at.max(now_ms.saturating_add(ra));
                        }
                        updated.next_attempt_at_ms = at;
                    }
                    let (to_save, state) = (updated.clone(), Arc::clone(&self.state));
                    let saved = run_store(&self.store, move |s| {
                        let saved = s.update(&to_save);
                        // Kept in memory even if the write failed: the schedule holds
                        // while the process runs.
                        let mut st = lock_state(&state);
                        if st.entries.contains_key(&to_save.id) {
                            st.entries.insert(to_save.id, to_save);
                        }
                        saved
                    })
                    .await;
                    self.lock().last_error = Some(LastError::of(&err, now_ms));
                    if let Err(e) = saved {
                        self.lock().last_error = Some(LastError::of(&e, now_ms));
                        report.stopped_by = Some(e);
                        break;
                    }
                    if permanent {
                        if let Some(le) = updated.last_error {
                            report.failed.push((updated.idempotency_key, le));
                        }
                        if last {
                            break;
                        }
                        continue;
                    }
                    // The server is unreachable or refuses this register: the rest would
                    // fail the same way, and stay behind this one in order of sale.
                    report.stopped_by = Some(err);
                    break;
                }
            }
        }
        let mut st = self.lock();
        report.remaining = st
            .entries
            .values()
            .filter(|e| e.state == EntryState::Pending)
            .count();
        // Only a queue drained without any error forgets the last error; a run that found
        // nothing due yet changes nothing.
        if report.remaining == 0
            && report.stopped_by.is_none()
            && report.failed.is_empty()
            && !witness_failed
            && restore_error.is_none()
            && st.corrupt.is_empty()
        {
            st.last_error = None;
        }
        if let Some(e) = restore_error {
            st.last_error = Some(e);
        }
        report
    }

    /// Puts a failed transaction back in the queue (e.g. after the app fixed the cause).
    pub async fn retry_failed(&self, key: &IdempotencyKey, now_ms: i64) -> Result<()> {
        let Some(mut entry) = self.find(key, EntryState::Failed) else {
            return Ok(());
        };
        entry.state = EntryState::Pending;
        entry.next_attempt_at_ms = now_ms;
        let state = Arc::clone(&self.state);
        run_store(&self.store, move |s| {
            s.update(&entry)?;
            lock_state(&state).entries.insert(entry.id, entry);
            Ok(())
        })
        .await
    }

    /// Removes a failed transaction for good (the app has dealt with it). Pending ones
    /// cannot be discarded: they may already be on the server.
    pub async fn discard(&self, key: &IdempotencyKey) -> Result<()> {
        let Some(entry) = self.find(key, EntryState::Failed) else {
            return Ok(());
        };
        let state = Arc::clone(&self.state);
        run_store(&self.store, move |s| {
            s.remove_entry(&entry)?;
            lock_state(&state).entries.remove(&entry.id);
            Ok(())
        })
        .await
    }

    /// Deletes an unreadable record from the store (a queue record or the witness, by
    /// its [`CorruptRecord::name`]), after the app has looked at it. The store deletes it
    /// only if it still does not decode: another outbox on the store (a browser tab) may
    /// have written it again since (a reset witness, a new sale). A record that can be
    /// read again is then taken in: a queued sale joins the queue, the witness is
    /// decided against at the next sale, check or sync. If the store cannot read it now
    /// (an I/O error), nothing is deleted and the error is answered.
    pub async fn remove_corrupt(&self, name: &str) -> Result<()> {
        let (n, state, witness) = (
            name.to_owned(),
            Arc::clone(&self.state),
            Arc::clone(&self.witness),
        );
        run_store(&self.store, move |s| {
            let mut w = witness::lock(&witness);
            let is_witness = w.unreadable_record().is_some_and(|c| c.name == n);
            s.remove_corrupt(&n)?;
            if is_witness {
                let gone = w.removed(&n, s.load_witness()?);
                drop(w);
                if gone {
                    forget_corrupt(&state, &n);
                }
                return Ok(());
            }
            drop(w);
            let id = lock_state(&state)
                .corrupt
                .iter()
                .find(|c| c.name == n)
                .and_then(|c| c.id);
            let contents = s.load()?;
            if contents.corrupt.iter().any(|c| c.name == n) {
                // Unreadable again (written meanwhile): still reported.
                return Ok(());
            }
            if let Some(e) = contents.entries.into_iter().find(|e| Some(e.id) == id) {
                lock_state(&state).entries.entry(e.id).or_insert(e);
            }
            forget_corrupt(&state, &n);
            Ok(())
        })
        .await
    }

    /// Drops a removed record from the corrupt list (and the error that reported it).
    fn forget_corrupt(&self, name: &str) {
        forget_corrupt(&self.state, name);
    }

    fn find(&self, key: &IdempotencyKey, state: EntryState) -> Option<QueuedTransaction> {
        self.lock()
            .entries
            .values()
            .find(|e| e.idempotency_key == *key && e.state == state)
            .cloned()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
