//! Storage: one implementation in portable SQL over sqlx's `Any` driver, running on
//! SQLite (embedded default: WAL, `synchronous=FULL`) and on PostgreSQL (several server
//! processes may share one database). Migrations are versioned, embedded, and applied
//! at start under a lock.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr as _;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection as _, Row as _};
use tillgate_core::{ReceiptClaims, SigningKey, receipt_link, sign_receipt};

use crate::seal::SeedCipher;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one process.
    Sqlite,
    /// PostgreSQL, any number of processes.
    Postgres,
}

/// The versioned migrations, in order. Never edit one that has shipped; add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "product_versions",
        include_str!("../migrations/0002_product_versions.sql"),
    ),
    (
        3,
        "signing_key_start",
        include_str!("../migrations/0003_signing_key_start.sql"),
    ),
    (
        4,
        "signing_keys_held_offline",
        include_str!("../migrations/0004_signing_keys_held_offline.sql"),
    ),
    (
        5,
        "transaction_versions",
        include_str!("../migrations/0005_transaction_versions.sql"),
    ),
    (
        6,
        "repeatable_activations",
        include_str!("../migrations/0006_repeatable_activations.sql"),
    ),
    (
        7,
        "decision_history",
        include_str!("../migrations/0007_decision_history.sql"),
    ),
];

/// The newest schema version this server knows (its last migration).
pub fn schema_version() -> i64 {
    MIGRATIONS.iter().map(|(v, _, _)| *v).max().unwrap_or(0)
}

/// Most rows (or registers, or key pairs) in one statement of the group commit: at most
/// 9 parameters a row, well under SQLite's limit of 32,766.
const ROWS_PER_STATEMENT: usize = 512;

/// The settings of every SQLite connection.
///
/// - WAL with `synchronous = FULL`: a commit is on disk (the WAL fsynced) when it returns.
/// - `temp_store = MEMORY`: statement journals (the undo log of one statement inside a
///   transaction, not needed for durability) stay in memory instead of a temporary file
///   written on every batch INSERT.
/// - `wal_autocheckpoint = 10000` pages (~40 MB of WAL, SQLite's default is 1,000):
///   a checkpoint copies the latest version of each page once, and the pages a batch
///   commit dirties (one leaf per register in each per-register index) are mostly the
///   same from one batch to the next, so checkpointing ten times less often copies about
///   ten times fewer pages per transaction (the write path alone: ~40 % fewer µs per
///   commit). `journal_size_limit` (64 MiB) truncates the WAL file back after a
///   checkpoint has let it restart, so the disk it keeps stays bounded.
pub const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
     PRAGMA wal_autocheckpoint = 10000; PRAGMA journal_size_limit = 67108864;";

/// The setting of every PostgreSQL connection of a [`Store::connect`]ed store: its
/// transactions run at READ COMMITTED, whatever the database's or the role's default
/// (`default_transaction_isolation`). The write paths rely on it: a statement that waited
/// for a row another process was changing (a decision, a renewal, a chain head) sees the
/// row as that process committed it and acts on it, where REPEATABLE READ or SERIALIZABLE
/// would fail it with a serialisation error (answered 503). Set per session, once, when
/// the pool opens the connection: behind a proxy that pools transactions (PgBouncer's
/// `transaction` mode) a session setting does not follow the transactions, so there set
/// the role's or the database's default to `read committed` (PostgreSQL's own default).
///
/// A session that leaves a transaction open and idle for a minute is ended by PostgreSQL
/// (`idle_in_transaction_session_timeout`): this server's transactions never wait on
/// anything but the database, so such a session is a replica that froze (a paused VM, a
/// network partition) while holding row locks, e.g. a register's chain head; without the
/// limit, every other replica's batches that include that register would wait, holding
/// their own locks, until TCP gave up on it (hours). Behind a transaction-pooling proxy,
/// set it as the role's default too (`ALTER ROLE … SET idle_in_transaction_session_timeout
/// = '60s'`).
pub const PG_SESSION_SETTINGS: &str = "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED; \
     SET idle_in_transaction_session_timeout = '60s'";

/// SQLite's writer connection.
#[derive(Debug)]
struct Writer {
    /// `None` once the store is closed.
    conn: Option<AnyConnection>,
    /// Set while a transaction begun by hand (not through sqlx's `Transaction`, which
    /// rolls back on drop) may be open on `conn`.
    open: bool,
    /// The database URL, to open a replacement connection (see [`Store::write_conn`]).
    url: String,
}

/// Opens SQLite's writer connection: the store's settings and the batch guard.
async fn open_writer(url: &str) -> Result<AnyConnection, sqlx::Error> {
    let mut conn = AnyConnection::connect(url).await?;
    sqlx::raw_sql(SQLITE_PRAGMAS).execute(&mut conn).await?;
    sqlx::raw_sql(SQLITE_BATCH_GUARD).execute(&mut conn).await?;
    Ok(conn)
}

/// A one-row table on SQLite's writer connection (temporary: in memory, on that
/// connection only) whose CHECK fails a statement that writes `ok = 0`. A batch sent in
/// one round trip writes `changes() = n` into it after each of its statements, so that a
/// statement that changed fewer rows than it named stops the batch before its COMMIT.
const SQLITE_BATCH_GUARD: &str = "CREATE TEMP TABLE IF NOT EXISTS batch_guard (\
     id INTEGER PRIMARY KEY CHECK (id = 1), ok INTEGER NOT NULL, \
     CONSTRAINT batch_guard_short CHECK (ok))";

/// Whether `e` is [`SQLITE_BATCH_GUARD`]'s CHECK failing.
fn is_batch_guard(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.message().contains("batch_guard_short"))
}

/// Rolls back the transaction open on `conn`, if any (SQLite refuses ROLLBACK
/// outside a transaction: that error is the "none was open" answer).
async fn rollback_if_open(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    match sqlx::raw_sql("ROLLBACK").execute(conn).await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.message().contains("no transaction is active")) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A connection for one write transaction, from [`Store::write_conn`].
enum WriteConn<'a> {
    /// SQLite's writer connection, locked.
    Held(tokio::sync::MutexGuard<'a, Writer>),
    /// A pooled PostgreSQL connection.
    Pooled(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl WriteConn<'_> {
    /// Begins the transaction. On SQLite with `BEGIN IMMEDIATE`: the write lock is taken
    /// up front, as a deferred transaction that reads and then writes can fail with
    /// SQLITE_BUSY instead of waiting.
    async fn begin(&mut self) -> Result<sqlx::Transaction<'_, sqlx::Any>, sqlx::Error> {
        match self {
            WriteConn::Held(w) => {
                w.conn
                    .as_mut()
                    .ok_or(sqlx::Error::PoolClosed)?
                    .begin_with("BEGIN IMMEDIATE")
                    .await
            }
            WriteConn::Pooled(conn) => conn.begin().await,
        }
    }
}

/// Advisory lock id taken by PostgreSQL processes while migrating.
const PG_MIGRATION_LOCK: i64 = 0x7469_6c6c_6761_7465;

/// The database handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where write transactions run on SQLite: one connection of their own, held here
    /// rather than in a pool. Its page cache stays warm from batch to batch, writers
    /// queue on this lock instead of on SQLite's (which retries by sleeping), and a pool's
    /// round trip to the connection's thread on every release (its "ping") is not paid
    /// per batch. `None` on PostgreSQL, where write transactions run on `pool`.
    writer: Option<std::sync::Arc<tokio::sync::Mutex<Writer>>>,
    backend: Backend,
    seeds: Option<SeedCipher>,
    /// When this process last deleted expired dynamic-key nonces (Unix seconds).
    nonces_swept_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Whether the schema holds the transactions' versions (schema version 5): false
    /// only for a [`Store::connect_read_only`] store on an older database, whose chain
    /// heads and transactions then read with version 0.
    versions: bool,
}

/// How often (seconds) a process deletes expired dynamic-key nonces, at most.
const NONCE_SWEEP_SECS: i64 = 60;

/// How long (seconds) a dynamic-key nonce is kept after the key stopped being acceptable
/// by the clock and window of the process that stored it ([`Store::use_nonce`]). Every
/// process sharing the database sweeps the nonces with its own clock, and another process
/// may accept the same key for longer: its clock is behind, or its freshness window
/// (`TILLGATE_DYNAMIC_KEY_WINDOW_SECS`) is wider. A nonce deleted while any process would
/// still accept its key lets that process accept a replay. So nonces are kept an hour
/// longer: replays stay refused while the processes' clocks differ, and their windows
/// differ, by less than an hour in all. The table holds the nonces of about
/// `window + 1 h` of dynamic keys (each a login, 22 characters and a number).
pub const NONCE_SWEEP_MARGIN_SECS: i64 = 3_600;

/// What [`Store::renew`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The new key and period are stored; the old key is replaced.
    Renewed,
    /// The old key had already been replaced (a concurrent renewal): nothing changed.
    KeyReplaced,
    /// The registration is no longer approved with the period the caller read (revoked,
    /// or renewed meanwhile): nothing changed.
    RegistrationChanged,
}

/// What an activation sent with an `Idempotency-Key` records: the SHA-256 (hex) of the
/// key, a secret of the app that is never stored, and of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// SHA-256 of the idempotency key.
    pub key_hash: String,
    /// SHA-256 of the request's canonical JSON.
    pub request_hash: String,
}

/// One administrator's decision about a registration, as kept in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    /// Its number in the registration's history, from 1.
    pub n: i64,
    /// The status it gave the registration.
    pub status: String,
    /// Who decided.
    pub decided_by: String,
    /// When (Unix seconds).
    pub decided_at: i64,
    /// When the Tax Authority was notified (approvals; see the migration for older rows).
    pub authority_notified_at: Option<i64>,
    /// The decision's note.
    pub note: Option<String>,
}

/// An activation (a cash register's registration) as stored.
#[derive(Debug, Clone)]
pub struct ActivationRow {
    /// `act_...`
    pub id: String,
    /// Readable unique number, e.g. `TG-7Q2M-K4PX`.
    pub production_number: String,
    /// Name chosen by the user.
    pub cash_register_name: String,
    /// Device the activation is bound to.
    pub device_id: String,
    /// Normalised company id.
    pub corporate_id: String,
    /// Country code.
    pub country: String,
    /// Application package id.
    pub application_package: String,
    /// The app's extras object, JSON text.
    pub extras: String,
    /// Features, JSON array text.
    pub features: String,
    /// Key validity start, Unix seconds.
    pub valid_from: i64,
    /// Key validity end, Unix seconds.
    pub valid_to: i64,
    /// `pending`, `approved`, `rejected` or `revoked`.
    pub status: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Who made the last admin decision.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// When the Tax Authority was notified (recorded at approval).
    pub authority_notified_at: Option<i64>,
    /// The admin's note.
    pub decision_note: Option<String>,
}

const ACTIVATION_COLS: &str = "id, production_number, cash_register_name, device_id, corporate_id, country, \
     application_package, extras, features, valid_from, valid_to, status, created_at, updated_at, \
     decided_by, decided_at, authority_notified_at, decision_note";

fn activation_from_row(r: &AnyRow) -> Result<ActivationRow, sqlx::Error> {
    Ok(ActivationRow {
        id: r.try_get("id")?,
        production_number: r.try_get("production_number")?,
        cash_register_name: r.try_get("cash_register_name")?,
        device_id: r.try_get("device_id")?,
        corporate_id: r.try_get("corporate_id")?,
        country: r.try_get("country")?,
        application_package: r.try_get("application_package")?,
        extras: r.try_get("extras")?,
        features: r.try_get("features")?,
        valid_from: r.try_get("valid_from")?,
        valid_to: r.try_get("valid_to")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        authority_notified_at: r.try_get("authority_notified_at")?,
        decision_note: r.try_get("decision_note")?,
    })
}

/// A register's receipt-chain head, as the last committed batch left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The register.
    pub activation_id: String,
    /// Its ProductionNumber (the receipts' `sub`).
    pub production_number: String,
    /// The last sequence number given (0: no transaction yet).
    pub seq: i64,
    /// `receipt_link` of the last receipt (empty: no transaction yet).
    pub head: String,
    /// The last transaction's version (0: no transaction yet).
    pub rve: i64,
}

const CHAIN_HEAD_COLS: &str = "id, production_number, chain_seq, chain_head, chain_rve";

/// [`CHAIN_HEAD_COLS`] of a database from before schema version 5 (no versions: 0).
const CHAIN_HEAD_COLS_BEFORE_VERSIONS: &str =
    "id, production_number, chain_seq, chain_head, CAST(0 AS BIGINT) AS chain_rve";

fn chain_head_from_row(r: &AnyRow) -> Result<ChainHead, sqlx::Error> {
    Ok(ChainHead {
        activation_id: r.try_get("id")?,
        production_number: r.try_get("production_number")?,
        seq: r.try_get("chain_seq")?,
        head: r.try_get("chain_head")?,
        rve: r.try_get("chain_rve")?,
    })
}

/// A signing key row.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// base64url seed (secret), opened: sealed in the database when the store has a
    /// [`SeedCipher`] (see [`Store::with_seed_cipher`]). `None`: the key is held
    /// offline; only its public key was given ([`Store::publish_offline_key`]), so it
    /// is published but cannot sign until its seed is imported
    /// ([`Store::import_signing_key`]).
    pub seed: Option<String>,
    /// base64url public key.
    pub public_key: String,
    /// Creation time (breaks ties between keys with the same signing start).
    pub created_at: i64,
    /// When it may start signing; `None`: published only, until activated. See
    /// [`SigningKeyRow::signs_at`] and [`signer_at`].
    pub signs_from: Option<i64>,
    /// When it was retired (no longer published), if it was.
    pub retired_at: Option<i64>,
}

impl SigningKeyRow {
    /// Whether the key may sign at `now`: see [`key_signs_at`]. A key held offline
    /// never does.
    pub fn signs_at(&self, now: i64) -> bool {
        self.seed.is_some() && key_signs_at(self.created_at, self.signs_from, self.retired_at, now)
    }
}

/// Whether a key with these times may sign at `now`: it is not retired, it was
/// activated, and its signing start has come. A key whose start is not after its
/// creation (`rotate-key` without options, the first key, every key from before
/// staged rotation) may sign as soon as it is read, whatever the reader's clock: a
/// server whose clock is behind the admin's does not keep signing with the old key.
pub fn key_signs_at(
    created_at: i64,
    signs_from: Option<i64>,
    retired_at: Option<i64>,
    now: i64,
) -> bool {
    retired_at.is_none() && signs_from.is_some_and(|t| t <= now || t <= created_at)
}

/// The key that signs at `now`: of the keys that may sign then
/// ([`SigningKeyRow::signs_at`]), the one whose signing started last (ties: the newest
/// created, then the greatest kid). So the last activation wins: activating a key makes
/// it the signer from its start on, and activating the previous key again switches back.
pub fn signer_at(rows: &[SigningKeyRow], now: i64) -> Option<&SigningKeyRow> {
    rows.iter().filter(|r| r.signs_at(now)).max_by(|a, b| {
        (a.signs_from, a.created_at, &a.kid).cmp(&(b.signs_from, b.created_at, &b.kid))
    })
}

/// The key a server signs with at `now`: [`signer_at`] or, when by this server's clock
/// no key's start has come, the activated key (not retired) with the earliest start. The
/// store only retires a key, or moves a start later, while another key can sign by the
/// clock of whoever does it ([`Store::retire_signing_key`]); a server whose clock is
/// behind that one's then signs with the key that took over rather than with none.
pub fn server_signer_at(rows: &[SigningKeyRow], now: i64) -> Option<&SigningKeyRow> {
    signer_at(rows, now).or_else(|| {
        rows.iter()
            .filter(|r| r.retired_at.is_none() && r.seed.is_some())
            .filter_map(|r| Some((r.signs_from?, r)))
            .min_by(|(a, ra), (b, rb)| {
                (a, ra.created_at, &ra.kid).cmp(&(b, rb.created_at, &rb.kid))
            })
            .map(|(_, r)| r)
    })
}

/// The next time after `now` at which a key's signing start comes (and the signer may
/// change), if any key is waiting for its start.
pub fn next_signing_start(rows: &[SigningKeyRow], now: i64) -> Option<i64> {
    rows.iter()
        .filter(|r| r.retired_at.is_none() && r.seed.is_some() && !r.signs_at(now))
        .filter_map(|r| r.signs_from)
        .min()
}

/// What [`Store::activate_signing_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// Done.
    Done,
    /// No such key, or it is retired: nothing changed.
    NoSuchKey,
    /// No key could sign now afterwards: nothing changed.
    LastSigningKey,
    /// The key is held offline (its seed was never imported): it cannot sign, so
    /// nothing changed. See [`Store::import_signing_key`].
    HeldOffline,
    /// The start asked for is still to come but not after the key's creation time (set
    /// by a host whose clock was ahead): it would read as "at once" (see
    /// [`key_signs_at`]), so nothing changed.
    StartNotAfterCreation,
}

/// What [`Store::import_signing_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyImport {
    /// The seed is stored now.
    Imported,
    /// The key's seed was stored already (nothing changed).
    AlreadyStored,
    /// No key with this public key that is not retired: nothing changed.
    NoSuchKey,
}

/// A staff login allowed to use dynamic API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRow {
    /// Login name.
    pub login: String,
    /// The register (activation) the login works at.
    pub activation_id: String,
    /// base64url Ed25519 public key derived from the password by the app.
    pub public_key: String,
    /// Argon2id memory, KiB.
    pub memory_kib: i64,
    /// Argon2id passes.
    pub iterations: i64,
    /// Argon2id lanes.
    pub parallelism: i64,
    /// When the login was disabled, if it was.
    pub disabled_at: Option<i64>,
}

/// What [`Store::put_staff`] did, or why it did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffPut {
    /// A new login.
    Created,
    /// The login was stored, enabled, exactly so: nothing changed.
    Unchanged,
    /// An enabled login's key, register or parameters changed (`replace` asked for it).
    Replaced,
    /// A disabled login is enabled again, with a new key.
    Reenabled,
    /// The login is enabled and stored otherwise, and `replace` was not asked: nothing
    /// changed. The stored login.
    InUse(StaffRow),
    /// The login would be re-enabled, or moved to another register, with the public key
    /// it has: nothing changed. The stored login.
    KeyReused(StaffRow),
}

/// The columns of a [`StaffRow`], as [`staff_from_row`] reads them.
const STAFF_COLS: &str =
    "login, activation_id, public_key, memory_kib, iterations, parallelism, disabled_at";

fn staff_from_row(r: &AnyRow) -> Result<StaffRow, sqlx::Error> {
    Ok(StaffRow {
        login: r.try_get("login")?,
        activation_id: r.try_get("activation_id")?,
        public_key: r.try_get("public_key")?,
        memory_kib: r.try_get("memory_kib")?,
        iterations: r.try_get("iterations")?,
        parallelism: r.try_get("parallelism")?,
        disabled_at: r.try_get("disabled_at")?,
    })
}

/// A stored cash transaction.
#[derive(Debug, Clone)]
pub struct TxRow {
    /// `tx_...`
    pub id: String,
    /// The register.
    pub activation_id: String,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Per-register sequence, gapless from 1.
    pub seq: i64,
    /// Acceptance time.
    pub created_at: i64,
    /// The transaction, canonical JSON.
    pub body: String,
    /// `transaction_hash` of it.
    pub txh: String,
    /// The signed receipt (compact JWS).
    pub receipt: String,
    /// Version: what delta sync compares RVEs with. Increasing with `seq` within the
    /// register (in commit order), never below `created_at`: the previous row's version
    /// plus one when that is later than `created_at`.
    pub rve: i64,
}

const TX_COLS: &str =
    "id, activation_id, idempotency_key, seq, created_at, body, txh, receipt, rve";

/// [`TX_COLS`] of a database from before schema version 5 (no versions: 0).
const TX_COLS_BEFORE_VERSIONS: &str = "id, activation_id, idempotency_key, seq, created_at, \
     body, txh, receipt, CAST(0 AS BIGINT) AS rve";

/// The schema version that gave transactions and chain heads their versions (`rve`).
pub const VERSIONS_SCHEMA: i64 = 5;

fn tx_from_row(r: &AnyRow) -> Result<TxRow, sqlx::Error> {
    Ok(TxRow {
        id: r.try_get("id")?,
        activation_id: r.try_get("activation_id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        seq: r.try_get("seq")?,
        created_at: r.try_get("created_at")?,
        body: r.try_get("body")?,
        txh: r.try_get("txh")?,
        receipt: r.try_get("receipt")?,
        rve: r.try_get("rve")?,
    })
}

/// A product row.
#[derive(Debug, Clone)]
pub struct ProductRow {
    /// The company owning the catalogue.
    pub corporate_id: String,
    /// Product id within the company.
    pub id: String,
    /// Product JSON.
    pub body: String,
    /// Last change, Unix seconds.
    pub updated_at: i64,
    /// Version: what delta sync compares RVEs with. Unique within the company, increasing
    /// in commit order, never below `updated_at`; set by [`Store::upsert_product`].
    pub rve: i64,
}

/// Reads a product row (columns `corporate_id, id, body, updated_at, rve`).
fn product_from_row(r: &sqlx::any::AnyRow) -> Result<ProductRow, sqlx::Error> {
    Ok(ProductRow {
        corporate_id: r.try_get("corporate_id")?,
        id: r.try_get("id")?,
        body: r.try_get("body")?,
        updated_at: r.try_get("updated_at")?,
        rve: r.try_get("rve")?,
    })
}

/// A page of a company's product changes, from [`Store::product_changes`].
#[derive(Debug, Clone)]
pub struct ProductChanges {
    /// Changed products, in version order.
    pub rows: Vec<ProductRow>,
    /// More changes follow the last row (the page is full).
    pub more: bool,
    /// The RVE to pass back for the changes after these: the last row's version, or,
    /// with no rows, the RVE asked with, lowered to the company's newest version.
    pub rve: i64,
}

/// A page of a register's transactions, from [`Store::list_txs`].
#[derive(Debug, Clone)]
pub struct TxPage {
    /// The transactions, in sequence order.
    pub rows: Vec<TxRow>,
    /// The RVE to pass back for the transactions after these: the last row's version,
    /// or, with no rows, the register's newest version.
    pub rve: i64,
}

/// A transaction waiting to be committed by the writer.
#[derive(Debug, Clone)]
pub struct NewTx {
    /// The register.
    pub activation_id: String,
    /// The register's ProductionNumber (receipt `sub`).
    pub production_number: String,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Canonical JSON of the transaction.
    pub body: String,
    /// `transaction_hash`.
    pub txh: String,
    /// `sale`, `refund`, ...
    pub tx_type: String,
    /// Total, minor units.
    pub total: i64,
    /// Currency.
    pub currency: String,
    /// Lower-case hex SHA-256 of the API key the sale came with (`None`: a dynamic key).
    /// A key replaced by a renewal committed before the sale refuses it.
    pub key_hash: Option<String>,
    /// The staff login whose dynamic key the sale came with (`None`: an API key). A
    /// login disabled, moved to another register or given another key before the sale's
    /// commit refuses it.
    pub staff: Option<StaffKey>,
}

/// A staff login as a write came with it: the login and the stored public key its
/// dynamic key verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffKey {
    /// The login.
    pub login: String,
    /// The public key (base64url) as stored when the request authenticated.
    pub public_key: String,
}

/// What the writer did with one transaction of a batch.
#[derive(Debug, Clone)]
pub enum Committed {
    /// Stored now.
    New(TxRow),
    /// The idempotency key was already used; this is the stored transaction.
    Existing(TxRow),
    /// Not stored: the registration or the key changed before the commit (through
    /// whichever server), though the caller's (possibly cached) view let it through.
    Refused(Refusal),
}

/// Why the commit refused a transaction: read under the register's chain-head lock, so
/// a revocation or renewal committed before the sale refuses it on every server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The registration's status is no longer `approved` (`revoked`, ...).
    NotApproved(String),
    /// A renewal replaced the API key the sale came with.
    KeyReplaced,
    /// The staff login whose dynamic key the sale came with was disabled, moved to
    /// another register or given another key.
    StaffLoginGone,
}

/// One-time results of initialising a fresh database.
#[derive(Debug, Default)]
pub struct InitOutcome {
    /// The kid of a signing key created because none existed.
    pub created_signing_key: Option<String>,
    /// How many signing-key seeds stored in plain text were sealed now.
    pub sealed_signing_keys: usize,
}

/// The backend a database URL names.
fn backend_of(url: &str) -> Result<Backend, sqlx::Error> {
    sqlx::any::install_default_drivers();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        // Each connection would open a database of its own, empty: nothing written
        // through one would be read through another.
        let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
        if path.starts_with(":memory:") || url.contains("mode=memory") {
            return Err(sqlx::Error::Configuration(
                "an in-memory SQLite database cannot be shared by the server's connections: \
                 give DATABASE_URL a file (sqlite:///path/tillgate.db) or use the data directory"
                    .into(),
            ));
        }
        Ok(Backend::Sqlite)
    } else {
        Err(sqlx::Error::Configuration(
            "DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into(),
        ))
    }
}

impl Store {
    /// Connects (creating a SQLite file if needed) and applies pending migrations.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Store, sqlx::Error> {
        let backend = backend_of(url)?;
        let options = |size: u32| {
            let options = AnyPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(std::time::Duration::from_secs(10));
            if backend != Backend::Sqlite {
                // Every connection: migrations, the transaction writers, the admin CLI.
                return options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        sqlx::raw_sql(PG_SESSION_SETTINGS).execute(conn).await?;
                        Ok(())
                    })
                });
            }
            // A connection to a local file does not go stale: no ping before each use
            // (a round trip to the connection's thread, as long as a short statement).
            options
                .test_before_acquire(false)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                        Ok(())
                    })
                })
        };
        let pool = options(pool_size.max(2)).connect(url).await?;
        let writer = match backend {
            Backend::Sqlite => Some(std::sync::Arc::new(tokio::sync::Mutex::new(Writer {
                conn: Some(open_writer(url).await?),
                open: false,
                url: url.to_owned(),
            }))),
            Backend::Postgres => None,
        };
        let store = Store {
            pool,
            writer,
            backend,
            seeds: None,
            nonces_swept_at: Default::default(),
            versions: true,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database for reading only, as audits do: no migration, no SQLite writer
    /// connection, SQLite files opened with `mode=ro` ([`sqlite_read_only_url`]), and
    /// every connection refuses writes (SQLite's `query_only`, PostgreSQL's read-only
    /// transactions; behind a transaction-pooling proxy, use a read-only role too).
    ///
    /// A database of an older schema is read as it is (a backup taken before an
    /// upgrade): the reads an audit makes work on every schema version, those of a
    /// schema from before transaction versions ([`VERSIONS_SCHEMA`]) with every version
    /// read as 0 ([`Store::has_versions`] says so).
    pub async fn connect_read_only(url: &str) -> Result<Store, sqlx::Error> {
        let backend = backend_of(url)?;
        let url = &sqlite_read_only_url(url);
        let refuse_writes = match backend {
            Backend::Sqlite => "PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;",
            Backend::Postgres => "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        };
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    sqlx::raw_sql(refuse_writes).execute(conn).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let mut store = Store {
            pool,
            writer: None,
            backend,
            seeds: None,
            nonces_swept_at: Default::default(),
            versions: true,
        };
        match store.stored_schema_version().await {
            Ok(version) => store.versions = version >= VERSIONS_SCHEMA,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        }
        Ok(store)
    }

    /// Whether the database's transactions and chain heads carry versions (`rve`,
    /// schema version 5): always, but for a read-only store on an older database, whose
    /// versions all read as 0.
    pub fn has_versions(&self) -> bool {
        self.versions
    }

    /// The columns of a chain head in this database's schema.
    fn chain_head_cols(&self) -> &'static str {
        if self.versions {
            CHAIN_HEAD_COLS
        } else {
            CHAIN_HEAD_COLS_BEFORE_VERSIONS
        }
    }

    /// The columns of a transaction in this database's schema.
    fn tx_cols(&self) -> &'static str {
        if self.versions {
            TX_COLS
        } else {
            TX_COLS_BEFORE_VERSIONS
        }
    }

    /// Seals signing-key seeds with this key-encryption key from now on: new keys are
    /// stored sealed, [`Store::init`] seals rows stored in plain text, and
    /// [`Store::signing_keys`] opens them. Without one, seeds are stored in plain text and
    /// sealed rows cannot be read.
    pub fn with_seed_cipher(mut self, cipher: SeedCipher) -> Store {
        self.seeds = Some(cipher);
        self
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for whole-database work such as [`crate::transfer`].
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        if let Some(writer) = &self.writer
            && let Some(conn) = writer.lock().await.conn.take()
        {
            let _ = conn.close().await;
        }
        self.pool.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT id FROM activations WHERE id = $1")
            .bind("ping")
            .fetch_optional(&self.pool)
            .await
            .is_ok()
    }

    /// The connection for a write transaction: SQLite's writer connection (waiting for
    /// it), or one from the pool on PostgreSQL. Begin with [`WriteConn::begin`].
    async fn write_conn(&self) -> Result<WriteConn<'_>, sqlx::Error> {
        match &self.writer {
            Some(writer) => {
                let mut w = writer.lock().await;
                if w.open {
                    // A transaction begun by hand was left open (its future was dropped
                    // before it ended): end it, or every later BEGIN would fail.
                    let conn = w.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                    rollback_if_open(conn).await?;
                    w.open = false;
                }
                let conn = w.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                if conn.is_in_transaction() {
                    // sqlx counts the transactions it began on this connection; nothing
                    // of ours is open now. A dropped `Transaction` queues its ROLLBACK:
                    // one round trip lets it run. If the count is still above zero,
                    // SQLite had already ended that transaction itself (it rolls back
                    // when a COMMIT fails for a full disk or an I/O error), sqlx's
                    // ROLLBACK failed and its count stays up for good: every later BEGIN
                    // would be refused. Such a connection is replaced.
                    conn.ping().await?;
                    if conn.is_in_transaction() {
                        tracing::warn!(
                            "replacing the SQLite writer connection after a failed transaction"
                        );
                        let fresh = open_writer(&w.url).await?;
                        if let Some(old) = w.conn.replace(fresh) {
                            let _ = old.close().await;
                        }
                    }
                }
                Ok(WriteConn::Held(w))
            }
            None => Ok(WriteConn::Pooled(self.pool.acquire().await?)),
        }
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let result = async {
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS tillgate_migrations (\
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *conn)
            .await?;
            let applied: Vec<i64> = sqlx::query("SELECT version FROM tillgate_migrations")
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>("version"))
                .collect::<Result<_, _>>()?;
            let known = schema_version();
            if let Some(newer) = applied.iter().copied().filter(|v| *v > known).max() {
                // A newer server migrated this database (a rolled-back deployment):
                // running against a schema it does not know could lose data.
                return Err(sqlx::Error::Configuration(
                    format!(
                        "the database has schema version {newer}, newer than this \
                         tillgate-server knows ({known}): run the newer server"
                    )
                    .into(),
                ));
            }
            for (version, name, sql) in MIGRATIONS {
                if applied.contains(version) {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO tillgate_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                )
                .bind(*version)
                .bind(*name)
                .bind(unix_now())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::info!(version, name, "applied migration");
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    /// The newest schema version applied to the database (0 before any migration). A
    /// running server compares it with [`schema_version`] every few seconds: another
    /// process (a newer server in a rolling deployment) may migrate the database under it.
    pub async fn stored_schema_version(&self) -> Result<i64, sqlx::Error> {
        let newest: Option<i64> =
            sqlx::query("SELECT MAX(version) AS newest FROM tillgate_migrations")
                .fetch_one(&self.pool)
                .await?
                .try_get("newest")?;
        Ok(newest.unwrap_or(0))
    }

    /// Creates a signing key if none is active, and with a [`SeedCipher`] seals the seeds
    /// still stored in plain text (and checks that every sealed seed opens). Safe to call
    /// from several processes at once (PostgreSQL: under the migration lock).
    pub async fn init(&self, now: i64) -> Result<InitOutcome, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let result = async {
            let n = sqlx::query("SELECT kid FROM signing_keys WHERE retired_at IS NULL")
                .fetch_all(&mut *conn)
                .await?
                .len();
            let mut out = InitOutcome::default();
            if n == 0 {
                let key = tillgate_core::generate_signing_key()
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                insert_signing_key(&mut conn, self.seeds.as_ref(), &key, now, Some(now)).await?;
                out.created_signing_key = Some(key.kid().to_owned());
            }
            if let Some(cipher) = &self.seeds {
                out.sealed_signing_keys = seal_plain_seeds(&mut conn, cipher).await?;
            }
            Ok::<_, sqlx::Error>(out)
        }
        .await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(PG_MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    // ---- settings ---------------------------------------------------------------

    /// Reads a setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("value"))
            .transpose()
    }

    /// Writes a setting only if it is not set yet; returns whether it was written.
    pub async fn set_setting_once(&self, name: &str, value: &str) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Writes a setting, replacing any value it had.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- signing keys -----------------------------------------------------------

    /// All signing keys, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, sqlx::Error> {
        sqlx::query(
            "SELECT kid, seed, public_key, created_at, signs_from, retired_at FROM signing_keys \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let kid: String = r.try_get("kid")?;
            let stored: String = r.try_get("seed")?;
            Ok(SigningKeyRow {
                seed: if stored.is_empty() {
                    None
                } else {
                    Some(self.open_seed(&kid, &stored)?)
                },
                kid,
                public_key: r.try_get("public_key")?,
                created_at: r.try_get("created_at")?,
                signs_from: r.try_get("signs_from")?,
                retired_at: r.try_get("retired_at")?,
            })
        })
        .collect()
    }

    /// All signing keys, newest first, as [`Store::signing_keys`] reads them but without
    /// opening their seeds, so with no key-encryption key: `seed` is `Some` (empty) for
    /// a key whose private part is stored, `None` for one held offline. For listing keys
    /// and choosing among them, never for signing.
    pub async fn signing_keys_unopened(&self) -> Result<Vec<SigningKeyRow>, sqlx::Error> {
        sqlx::query(
            "SELECT kid, seed, public_key, created_at, signs_from, retired_at FROM signing_keys \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let stored: String = r.try_get("seed")?;
            Ok(SigningKeyRow {
                kid: r.try_get("kid")?,
                seed: (!stored.is_empty()).then(String::new),
                public_key: r.try_get("public_key")?,
                created_at: r.try_get("created_at")?,
                signs_from: r.try_get("signs_from")?,
                retired_at: r.try_get("retired_at")?,
            })
        })
        .collect()
    }

    /// The base64url seed of a stored one (sealed or, from before, plain).
    fn open_seed(&self, kid: &str, stored: &str) -> Result<String, sqlx::Error> {
        use base64::Engine as _;
        match &self.seeds {
            Some(cipher) => cipher
                .open(kid, stored)
                .map(|seed| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seed))
                .map_err(sqlx::Error::Protocol),
            None if crate::seal::is_sealed(stored) => Err(sqlx::Error::Protocol(format!(
                "the seed of signing key {kid} is sealed and no key-encryption key is configured"
            ))),
            None => Ok(stored.to_owned()),
        }
    }

    /// Adds a signing key that signs from now on (being the newest, it is the one that
    /// signs; see [`signer_at`]): `now` is its creation time and its signing start.
    pub async fn add_signing_key(&self, key: &SigningKey, now: i64) -> Result<(), sqlx::Error> {
        self.add_staged_signing_key(key, now, Some(now)).await
    }

    /// Adds a signing key, published at once, that signs from `signs_from` on (a time
    /// not after `now`, its creation time, means at once) or, with `None`, only once
    /// activated ([`Store::activate_signing_key`]).
    pub async fn add_staged_signing_key(
        &self,
        key: &SigningKey,
        now: i64,
        signs_from: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let signs_from = signs_from.map(|t| t.max(now));
        insert_signing_key(&mut conn, self.seeds.as_ref(), key, now, signs_from).await
    }

    /// Publishes a key held offline: only its public key is stored (created at `now`,
    /// published only), so that apps can be shipped trusting it while its private key
    /// stays off the server, out of reach of whoever reads the database and its KEK.
    /// It signs only after [`Store::import_signing_key`] and an activation. Returns
    /// false (nothing changed) if a key with this kid is stored already.
    pub async fn publish_offline_key(
        &self,
        public_key: &[u8; 32],
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        use base64::Engine as _;
        let kid = tillgate_core::jwk_thumbprint(public_key);
        let r = sqlx::query(
            "INSERT INTO signing_keys (kid, seed, public_key, created_at, signs_from) \
             VALUES ($1, '', $2, $3, NULL) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&kid)
        .bind(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public_key))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Stores the seed of a key held offline ([`Store::publish_offline_key`]), sealed
    /// with the KEK when there is one; it stays published only until activated.
    pub async fn import_signing_key(&self, key: &SigningKey) -> Result<KeyImport, sqlx::Error> {
        use base64::Engine as _;
        let seed = seed_to_store(self.seeds.as_ref(), key)?;
        let public_key =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.public_key_bytes());
        let r = sqlx::query(
            "UPDATE signing_keys SET seed = $1 \
             WHERE kid = $2 AND public_key = $3 AND seed = '' AND retired_at IS NULL",
        )
        .bind(seed)
        .bind(key.kid())
        .bind(&public_key)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(KeyImport::Imported);
        }
        let stored: Option<(String, String)> = sqlx::query(
            "SELECT public_key, seed FROM signing_keys WHERE kid = $1 AND retired_at IS NULL",
        )
        .bind(key.kid())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Ok::<_, sqlx::Error>((r.try_get("public_key")?, r.try_get("seed")?)))
        .transpose()?;
        Ok(match stored {
            None => KeyImport::NoSuchKey,
            Some((stored_public, _)) if stored_public != public_key => KeyImport::NoSuchKey,
            Some(_) => KeyImport::AlreadyStored,
        })
    }

    /// Makes a key sign from `signs_from` on (a time before `now` means now): the key
    /// whose start is the latest of those that have come signs ([`signer_at`]), so a
    /// key activated now signs at once (within the servers' key cache, 5 s). Refused
    /// for a retired or unknown key, and when no key could sign at `now` afterwards
    /// (moving the only key that can sign now to a later start).
    pub async fn activate_signing_key(
        &self,
        kid: &str,
        signs_from: i64,
        now: i64,
    ) -> Result<KeyChange, sqlx::Error> {
        let signs_from = signs_from.max(now);
        let mut early = false;
        let changed = self
            .change_signing_key(kid, now, |row| {
                early = signs_from > now && signs_from <= row.created_at;
                if !early {
                    row.signs_from = Some(signs_from);
                }
            })
            .await?;
        Ok(if early {
            KeyChange::StartNotAfterCreation
        } else {
            changed
        })
    }

    /// Retires a key: no longer published nor used. Refuses to retire a key when no
    /// other key could sign at `now` (the last key that can sign; a key published only,
    /// or whose start has not come, does not count). Returns false if it refused, or if
    /// no such key exists that is not retired.
    pub async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool, sqlx::Error> {
        Ok(self
            .change_signing_key(kid, now, |row| row.retired_at = Some(now))
            .await?
            == KeyChange::Done)
    }

    /// Changes one key that is not retired (its `signs_from` and `retired_at` as
    /// `change` leaves them), unless no key could sign at `now` afterwards.
    async fn change_signing_key(
        &self,
        kid: &str,
        now: i64,
        change: impl FnOnce(&mut SigningKeyRow),
    ) -> Result<KeyChange, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        // Locked on PostgreSQL: changes at once (two operators, an activation and a
        // retirement, two replicas) run one after the other, each seeing the other's
        // outcome (the locked rows are read as last committed: READ COMMITTED,
        // [`PG_SESSION_SETTINGS`]), so together they cannot leave no key that can sign.
        // On SQLite the write transaction (BEGIN IMMEDIATE) does the same. Only a
        // constant suffix is added to the statement.
        let mut rows: Vec<SigningKeyRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT kid, seed, created_at, signs_from, retired_at FROM signing_keys \
             WHERE retired_at IS NULL{}",
            self.for_update()
        )))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            // Whether a seed is stored is all that matters here: it is not opened.
            let stored: String = r.try_get("seed")?;
            Ok(SigningKeyRow {
                kid: r.try_get("kid")?,
                seed: (!stored.is_empty()).then(String::new),
                public_key: String::new(),
                created_at: r.try_get("created_at")?,
                signs_from: r.try_get("signs_from")?,
                retired_at: r.try_get("retired_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let Some(row) = rows.iter_mut().find(|r| r.kid == kid) else {
            return Ok(KeyChange::NoSuchKey);
        };
        let held_offline = row.seed.is_none();
        change(row);
        if held_offline && row.signs_from.is_some() {
            return Ok(KeyChange::HeldOffline);
        }
        let (signs_from, retired_at) = (row.signs_from, row.retired_at);
        if signer_at(&rows, now).is_none() {
            return Ok(KeyChange::LastSigningKey);
        }
        sqlx::query(
            "UPDATE signing_keys SET signs_from = $1, retired_at = $2 \
             WHERE kid = $3 AND retired_at IS NULL",
        )
        .bind(signs_from)
        .bind(retired_at)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(KeyChange::Done)
    }

    // ---- activations ------------------------------------------------------------

    /// Stores a new pending activation and its API key hash in one transaction. `false`
    /// when nothing was stored because the production number (or id) is taken, or the
    /// request's idempotency key is already recorded (see
    /// [`Store::activation_by_request_key`]).
    pub async fn insert_activation(
        &self,
        a: &ActivationRow,
        key_hash_hex: &str,
        request: Option<&RequestKey>,
    ) -> Result<bool, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        let r = sqlx::query(
            "INSERT INTO activations (id, production_number, cash_register_name, device_id, \
             corporate_id, country, application_package, extras, features, valid_from, valid_to, \
             status, created_at, updated_at, request_key_hash, request_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&a.id)
        .bind(&a.production_number)
        .bind(&a.cash_register_name)
        .bind(&a.device_id)
        .bind(&a.corporate_id)
        .bind(&a.country)
        .bind(&a.application_package)
        .bind(&a.extras)
        .bind(&a.features)
        .bind(a.valid_from)
        .bind(a.valid_to)
        .bind(&a.status)
        .bind(a.created_at)
        .bind(a.updated_at)
        .bind(request.map(|r| r.key_hash.as_str()))
        .bind(request.map(|r| r.request_hash.as_str()))
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO api_keys (key_hash, activation_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(key_hash_hex)
        .bind(&a.id)
        .bind(a.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The activation recorded with this idempotency key hash, with the hash of the
    /// request it came with.
    pub async fn activation_by_request_key(
        &self,
        key_hash_hex: &str,
    ) -> Result<Option<(ActivationRow, String)>, sqlx::Error> {
        let sql = format!(
            "SELECT {ACTIVATION_COLS}, request_hash FROM activations WHERE request_key_hash = $1"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key_hash_hex)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let request_hash: Option<String> = row.try_get("request_hash")?;
        Ok(Some((
            activation_from_row(&row)?,
            request_hash.unwrap_or_default(),
        )))
    }

    /// Gives a pending activation a new API key in place of the ones it had (a repeated
    /// activation whose first answer was lost). `false`, with nothing changed, when the
    /// registration is no longer pending, was ever decided (approved, then renewed with
    /// its descriptor: pending again) or was created before `created_at_min`.
    ///
    /// Only keys issued before `arrived_at` (when the repeat reached the server) stop
    /// working: a key another request with the same idempotency key handed out while this
    /// one was under way may be the one the app received, so it is kept. The
    /// registration's row is updated first, so a concurrent repeat (or a decision) waits
    /// for this one on PostgreSQL.
    pub async fn reissue_pending_key(
        &self,
        id: &str,
        new_key_hash: &str,
        created_at_min: i64,
        arrived_at: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        let r = sqlx::query(
            "UPDATE activations SET updated_at = $1 WHERE id = $2 AND status = 'pending' \
             AND decided_at IS NULL AND created_at >= $3",
        )
        .bind(now)
        .bind(id)
        .bind(created_at_min)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM api_keys WHERE activation_id = $1 AND created_at < $2")
            .bind(id)
            .bind(arrived_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_keys (key_hash, activation_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(new_key_hash)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// An activation by id.
    pub async fn activation(&self, id: &str) -> Result<Option<ActivationRow>, sqlx::Error> {
        let sql = format!("SELECT {ACTIVATION_COLS} FROM activations WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(activation_from_row)
            .transpose()
    }

    /// The activation an API key hash belongs to, with the key's `replaced_at`.
    pub async fn activation_by_key_hash(
        &self,
        key_hash_hex: &str,
    ) -> Result<Option<(ActivationRow, String, Option<i64>)>, sqlx::Error> {
        let sql = format!(
            "SELECT k.key_hash AS key_hash, k.replaced_at AS replaced_at, {} \
             FROM api_keys k JOIN activations a ON a.id = k.activation_id WHERE k.key_hash = $1",
            ACTIVATION_COLS
                .split(", ")
                .map(|c| format!("a.{c} AS {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key_hash_hex)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((
            activation_from_row(&row)?,
            row.try_get("key_hash")?,
            row.try_get("replaced_at")?,
        )))
    }

    /// Activations, optionally only those with `status`, oldest first.
    pub async fn list_activations(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ActivationRow>, sqlx::Error> {
        self.list_activations_after(status, None, limit).await
    }

    /// [`list_activations`](Self::list_activations) from just after `after` (the
    /// `created_at` and id of the last registration of the previous page).
    pub async fn list_activations_after(
        &self,
        status: Option<&str>,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<ActivationRow>, sqlx::Error> {
        let (after_time, after_id) = after.unwrap_or((i64::MIN, ""));
        let filter = if status.is_some() {
            "status = $4 AND"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {ACTIVATION_COLS} FROM activations WHERE {filter} \
             (created_at > $1 OR (created_at = $1 AND id > $2)) ORDER BY created_at, id LIMIT $3"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_time)
            .bind(after_id)
            .bind(limit);
        if let Some(s) = status {
            q = q.bind(s);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(activation_from_row)
            .collect()
    }

    /// Records an admin decision if the activation is in one of `from` statuses.
    /// Returns the updated row, or `Err(current)` when the transition is not allowed.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        by: &str,
        authority_notified_at: Option<i64>,
        note: Option<&str>,
        now: i64,
    ) -> Result<Option<Result<ActivationRow, ActivationRow>>, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        let sql = format!(
            "SELECT {ACTIVATION_COLS} FROM activations WHERE id = $1{}",
            self.for_update()
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let current = activation_from_row(&row)?;
        if !from.contains(&current.status.as_str()) {
            return Ok(Some(Err(current)));
        }
        sqlx::query(
            "UPDATE activations SET status = $1, decided_by = $2, decided_at = $3, \
             authority_notified_at = COALESCE($4, authority_notified_at), decision_note = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(to)
        .bind(by)
        .bind(now)
        .bind(authority_notified_at)
        .bind(note)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // Numbered after the registration's last decision: the row is locked (PostgreSQL)
        // or the database is (SQLite), so no other decision takes the same number.
        sqlx::query(
            "INSERT INTO decisions (activation_id, n, status, decided_by, decided_at, \
             authority_notified_at, note) \
             SELECT $1, COALESCE(MAX(n), 0) + 1, $2, $3, $4, $5, $6 FROM decisions \
             WHERE activation_id = $1",
        )
        .bind(id)
        .bind(to)
        .bind(by)
        .bind(now)
        .bind(authority_notified_at)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(self.activation(id).await?.map(Ok))
    }

    /// Every decision about a registration, oldest first; `None` when there is no such
    /// registration.
    pub async fn decisions(&self, id: &str) -> Result<Option<Vec<DecisionRow>>, sqlx::Error> {
        if self.activation(id).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT n, status, decided_by, decided_at, authority_notified_at, note \
             FROM decisions WHERE activation_id = $1 ORDER BY n",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DecisionRow {
                    n: r.try_get("n")?,
                    status: r.try_get("status")?,
                    decided_by: r.try_get("decided_by")?,
                    decided_at: r.try_get("decided_at")?,
                    authority_notified_at: r.try_get("authority_notified_at")?,
                    note: r.try_get("note")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map(Some)
    }

    /// Replaces an activation's API key and period (renewal). The old key stops working
    /// (it is kept, marked replaced, so it can be told apart from an unknown key), and so
    /// does any other key the registration still had.
    ///
    /// Nothing happens unless, in the same database transaction, `old_key_hash` is still
    /// the current key ([`Renewal::KeyReplaced`] otherwise) and the registration is still
    /// approved with the period that ends at `current_valid_to`
    /// ([`Renewal::RegistrationChanged`] otherwise): a revocation or another renewal
    /// committed since the caller read the registration is never undone.
    #[allow(clippy::too_many_arguments)]
    pub async fn renew(
        &self,
        id: &str,
        old_key_hash: Option<&str>,
        current_valid_to: i64,
        new_key_hash: &str,
        valid_from: i64,
        valid_to: i64,
        status: &str,
        now: i64,
    ) -> Result<Renewal, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        let r = match old_key_hash {
            Some(old) => {
                sqlx::query(
                    "UPDATE api_keys SET replaced_at = $1 WHERE key_hash = $2 \
                     AND activation_id = $3 AND replaced_at IS NULL",
                )
                .bind(now)
                .bind(old)
                .bind(id)
                .execute(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE api_keys SET replaced_at = $1 WHERE activation_id = $2 \
                     AND replaced_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
            }
        };
        if let Some(old) = old_key_hash {
            if r.rows_affected() != 1 {
                // Dropping the transaction rolls it back.
                return Ok(Renewal::KeyReplaced);
            }
            // Any other key still current goes too (concurrent repeats of the activation
            // each handed one out): after a renewal the new key is the only one.
            sqlx::query(
                "UPDATE api_keys SET replaced_at = $1 WHERE activation_id = $2 \
                 AND replaced_at IS NULL AND key_hash <> $3",
            )
            .bind(now)
            .bind(id)
            .bind(old)
            .execute(&mut *tx)
            .await?;
        }
        // Only from the state the caller checked: on PostgreSQL the row is re-read after
        // any concurrent update commits, so a revocation in between leaves 0 rows here.
        let changed = sqlx::query(
            "UPDATE activations SET valid_from = $1, valid_to = $2, status = $3, updated_at = $4 \
             WHERE id = $5 AND status = 'approved' AND valid_to = $6",
        )
        .bind(valid_from)
        .bind(valid_to)
        .bind(status)
        .bind(now)
        .bind(id)
        .bind(current_valid_to)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() != 1 {
            return Ok(Renewal::RegistrationChanged);
        }
        sqlx::query(
            "INSERT INTO api_keys (key_hash, activation_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(new_key_hash)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Renewal::Renewed)
    }

    /// Repeats a renewal whose answer was lost: the key that replaced `old_key_hash` (at
    /// `replaced_at`), and any key a repeat gave since, is replaced by `new_key_hash`;
    /// the registration keeps its period and status. Nothing happens (false) unless, in
    /// the same database transaction, the old key is still the one replaced at
    /// `replaced_at`, exactly one current key was created since then, and the
    /// registration is still approved with the period ending at `current_valid_to`.
    pub async fn repeat_renewal(
        &self,
        id: &str,
        old_key_hash: &str,
        replaced_at: i64,
        current_valid_to: i64,
        new_key_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        // Only a constant suffix is added to the statement.
        let old = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT key_hash FROM api_keys WHERE key_hash = $1 AND activation_id = $2 \
             AND replaced_at = $3{}",
            self.for_update()
        )))
        .bind(old_key_hash)
        .bind(id)
        .bind(replaced_at)
        .fetch_optional(&mut *tx)
        .await?;
        if old.is_none() {
            return Ok(false);
        }
        let current = sqlx::query(
            "UPDATE api_keys SET replaced_at = $1 WHERE activation_id = $2 \
             AND replaced_at IS NULL AND created_at >= $3",
        )
        .bind(now)
        .bind(id)
        .bind(replaced_at)
        .execute(&mut *tx)
        .await?;
        let registration = sqlx::query(
            "UPDATE activations SET updated_at = $1 WHERE id = $2 AND status = 'approved' \
             AND valid_to = $3",
        )
        .bind(now)
        .bind(id)
        .bind(current_valid_to)
        .execute(&mut *tx)
        .await?;
        if current.rows_affected() != 1 || registration.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO api_keys (key_hash, activation_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(new_key_hash)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The `i`th (from 1) bind parameter of a statement whose parameters are bound in
    /// order: `$i` on PostgreSQL, an anonymous `?` on SQLite (SQLite looks numbered
    /// names up one by one, which costs O(n²) in statements with hundreds of them).
    fn placeholder(&self, i: usize) -> String {
        match self.backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${i}"),
        }
    }

    /// `n` placeholders from the `first`, comma-separated (see [`Store::placeholder`]).
    fn placeholders(&self, first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| self.placeholder(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    // ---- staff and dynamic keys -------------------------------------------------

    /// Adds, changes or re-enables a staff login, by the rules of [`StaffPut`]: a new
    /// login is created; an enabled login is changed (another key, register or Argon2id
    /// parameters) only with `replace`, and an identical one is left as it is; a disabled
    /// login is enabled again. Re-enabling a login, or moving it to another register,
    /// with the public key it has is refused: whoever holds the old seed (a stolen till)
    /// would be let in again. All in one database transaction, the row locked.
    pub async fn put_staff(
        &self,
        s: &StaffRow,
        replace: bool,
        now: i64,
    ) -> Result<StaffPut, sqlx::Error> {
        // A login created by another request between the read and the insert: read again.
        for _ in 0..2 {
            let mut conn = self.write_conn().await?;
            let mut tx = conn.begin().await?;
            let sql = format!(
                "SELECT {STAFF_COLS} FROM staff WHERE login = $1{}",
                self.for_update()
            );
            let current = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&s.login)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| staff_from_row(&r))
                .transpose()?;
            let outcome = match current {
                None => {
                    let r = sqlx::query(
                        "INSERT INTO staff (login, activation_id, public_key, memory_kib, \
                         iterations, parallelism, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (login) DO NOTHING",
                    )
                    .bind(&s.login)
                    .bind(&s.activation_id)
                    .bind(&s.public_key)
                    .bind(s.memory_kib)
                    .bind(s.iterations)
                    .bind(s.parallelism)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    if r.rows_affected() == 0 {
                        continue;
                    }
                    StaffPut::Created
                }
                Some(c) => {
                    let same_key = c.public_key == s.public_key;
                    let moves = c.activation_id != s.activation_id;
                    let identical = same_key
                        && !moves
                        && (c.memory_kib, c.iterations, c.parallelism)
                            == (s.memory_kib, s.iterations, s.parallelism);
                    // The same key with anything else changed is refused whatever is
                    // asked: moved or re-enabled, whoever holds its seed follows it;
                    // with other Argon2id parameters, no app could derive it.
                    match c.disabled_at {
                        None if identical => return Ok(StaffPut::Unchanged),
                        None if !replace => return Ok(StaffPut::InUse(c)),
                        // A disabled login moves to another register only when asked.
                        Some(_) if moves && !replace => return Ok(StaffPut::InUse(c)),
                        _ if same_key => return Ok(StaffPut::KeyReused(c)),
                        None => StaffPut::Replaced,
                        Some(_) => StaffPut::Reenabled,
                    }
                }
            };
            if outcome != StaffPut::Created {
                // The staff row is locked (FOR UPDATE above): now its register's, as
                // `disable_staff` does.
                self.lock_staff_register(&mut tx, &s.login, Some(&s.activation_id))
                    .await?;
                sqlx::query(
                    "UPDATE staff SET activation_id = $1, public_key = $2, memory_kib = $3, \
                     iterations = $4, parallelism = $5, created_at = $6, disabled_at = NULL \
                     WHERE login = $7",
                )
                .bind(&s.activation_id)
                .bind(&s.public_key)
                .bind(s.memory_kib)
                .bind(s.iterations)
                .bind(s.parallelism)
                .bind(now)
                .bind(&s.login)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            return Ok(outcome);
        }
        // Created and then deleted in between, twice: no route deletes staff rows.
        Err(sqlx::Error::RowNotFound)
    }

    /// Disables a staff login (the row is kept, for the record): its dynamic keys fail
    /// from the moment this commits. The login as stored after, with the time it was
    /// first disabled (disabling again changes nothing); `None` for an unknown login.
    pub async fn disable_staff(
        &self,
        login: &str,
        now: i64,
    ) -> Result<Option<StaffRow>, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        self.lock_staff_register(&mut tx, login, None).await?;
        sqlx::query("UPDATE staff SET disabled_at = $1 WHERE login = $2 AND disabled_at IS NULL")
            .bind(now)
            .bind(login)
            .execute(&mut *tx)
            .await?;
        let sql = format!("SELECT {STAFF_COLS} FROM staff WHERE login = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(login)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| staff_from_row(&r))
            .transpose()?;
        tx.commit().await?;
        Ok(row)
    }

    /// On PostgreSQL, locks staff login `login`'s row and then its register's, as a
    /// batch of sales locks the registers it writes: a change to the login waits for a
    /// batch under way with that register's sales (which read the login as it was), and
    /// a batch after it reads the change. The staff row first, then the register: the
    /// order every staff change takes; a batch never locks staff rows.
    ///
    /// A login moving to register `to` locks that register too, in the same statement and
    /// in id order as batches do: the UPDATE's foreign-key check takes a share lock on
    /// `to`'s row, which, taken after the old register's alone, could wait on a batch
    /// that holds `to` and waits for the old one.
    async fn lock_staff_register(
        &self,
        conn: &mut AnyConnection,
        login: &str,
        to: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            let register: Option<String> =
                sqlx::query_scalar("SELECT activation_id FROM staff WHERE login = $1 FOR UPDATE")
                    .bind(login)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some(register) = register {
                let to = to.unwrap_or(&register).to_owned();
                sqlx::query(
                    "SELECT id FROM activations WHERE id IN ($1, $2) ORDER BY id FOR UPDATE",
                )
                .bind(register)
                .bind(to)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    /// A staff login.
    pub async fn staff(&self, login: &str) -> Result<Option<StaffRow>, sqlx::Error> {
        let sql = format!("SELECT {STAFF_COLS} FROM staff WHERE login = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(login)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| staff_from_row(&r))
            .transpose()
    }

    /// Records a dynamic-key nonce whose key is acceptable until `expires_at` (this
    /// process's clock and window); false if it was already used (a replay).
    /// Nonces are deleted at most once a minute per process, and only
    /// [`NONCE_SWEEP_MARGIN_SECS`] after their `expires_at` by this process's clock (`now`),
    /// so the table holds the nonces of keys that could still be accepted by any process
    /// sharing the database, plus an hour and a minute's worth.
    pub async fn use_nonce(
        &self,
        login: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        use std::sync::atomic::Ordering;
        let last = self.nonces_swept_at.load(Ordering::Relaxed);
        let due = now >= last.saturating_add(NONCE_SWEEP_SECS) || now < last;
        if due
            && self
                .nonces_swept_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            sqlx::query("DELETE FROM dynamic_key_nonces WHERE expires_at < $1")
                .bind(now.saturating_sub(NONCE_SWEEP_MARGIN_SECS))
                .execute(&self.pool)
                .await?;
        }
        let r = sqlx::query(
            "INSERT INTO dynamic_key_nonces (login, nonce, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (login, nonce) DO NOTHING",
        )
        .bind(login)
        .bind(nonce)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Every signing key's id and public key (base64url), retired ones included: what
    /// verifies every receipt ever signed here. Reads no seed, so it needs no
    /// key-encryption key.
    pub async fn public_signing_keys(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query("SELECT kid, public_key FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("kid")?, r.try_get("public_key")?)))
            .collect()
    }

    /// The chain heads of the registers whose id sorts after `after`, by id.
    pub async fn register_chain_heads(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ChainHead>, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM activations WHERE id > $1 ORDER BY id LIMIT $2",
            self.chain_head_cols()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(chain_head_from_row)
            .collect()
    }

    /// The largest sequence number stored for a register (0: none).
    pub async fn max_tx_seq(&self, activation_id: &str) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS m FROM transactions WHERE activation_id = $1")
            .bind(activation_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("m")
    }

    /// How many transactions a register has with `seq <= up_to` (below 1 included), and
    /// the smallest sequence number among them (0 when none).
    pub async fn count_txs_up_to(
        &self,
        activation_id: &str,
        up_to: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(MIN(seq), 0) AS first FROM transactions \
             WHERE activation_id = $1 AND seq <= $2",
        )
        .bind(activation_id)
        .bind(up_to)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get("n")?, r.try_get("first")?))
    }

    /// Registers named by stored transactions but missing from `activations`, with how
    /// many transactions each has and their smallest sequence number.
    pub async fn orphan_tx_registers(&self) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
        sqlx::query(
            "SELECT activation_id, COUNT(*) AS n, MIN(seq) AS first FROM transactions \
             WHERE activation_id NOT IN (SELECT id FROM activations) \
             GROUP BY activation_id ORDER BY activation_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("activation_id")?,
                r.try_get("n")?,
                r.try_get("first")?,
            ))
        })
        .collect()
    }

    /// One register's chain head.
    pub async fn register_chain_head(
        &self,
        activation_id: &str,
    ) -> Result<Option<ChainHead>, sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM activations WHERE id = $1",
            self.chain_head_cols()
        )))
        .bind(activation_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(chain_head_from_row)
        .transpose()
    }

    // ---- transactions -----------------------------------------------------------

    /// A transaction by id.
    pub async fn tx(&self, id: &str) -> Result<Option<TxRow>, sqlx::Error> {
        let sql = format!("SELECT {} FROM transactions WHERE id = $1", self.tx_cols());
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tx_from_row)
            .transpose()
    }

    /// The transaction a register stored under an idempotency key.
    pub async fn tx_by_idempotency_key(
        &self,
        activation_id: &str,
        idempotency_key: &str,
    ) -> Result<Option<TxRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {TX_COLS} FROM transactions WHERE activation_id = $1 AND idempotency_key = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(activation_id)
            .bind(idempotency_key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tx_from_row)
            .transpose()
    }

    /// A register's transactions with `seq > after_seq` and a version above `since`, in
    /// sequence (and so version) order, at most `limit` of them. `since` is `i64::MIN`
    /// when no RVE was asked with.
    ///
    /// An RVE above the register's newest version was not handed out by this database
    /// (a register's own clock, a database restored to an earlier state, where later
    /// sales got versions below it): the transactions are sent from the start, as
    /// products are.
    pub async fn list_txs(
        &self,
        activation_id: &str,
        after_seq: i64,
        since: i64,
        limit: i64,
    ) -> Result<TxPage, sqlx::Error> {
        // The newest version first: a transaction committed between the two reads is
        // above it, so it is either in this page or after the RVE this page answers.
        let newest: i64 = sqlx::query("SELECT chain_rve FROM activations WHERE id = $1")
            .bind(activation_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("chain_rve"))
            .transpose()?
            .unwrap_or(0);
        let since = if since <= newest { since } else { i64::MIN };
        // Ordered by what bounds the range, so that the index that serves it is used:
        // by version for an RVE (`transactions_by_version`), by sequence otherwise.
        let order = if since == i64::MIN { "seq" } else { "rve" };
        let sql = format!(
            "SELECT {TX_COLS} FROM transactions WHERE activation_id = $1 AND seq > $2 \
             AND rve > $3 ORDER BY {order} LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(activation_id)
            .bind(after_seq)
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tx_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // With nothing to send, the caller holds every transaction up to the newest
        // version (all of them committed before the rows were read).
        let rve = rows.last().map_or(newest, |r| r.rve);
        Ok(TxPage { rows, rve })
    }

    /// Commits a batch of transactions in one database transaction (group commit).
    ///
    /// For each register the chain head is read (and locked on PostgreSQL, in a fixed
    /// order so that concurrent writers cannot deadlock); each transaction gets the next
    /// sequence number and a receipt chained to the previous one. A transaction whose
    /// idempotency key is already used is not stored again: the stored one is returned
    /// (also for a key used twice in one batch).
    ///
    /// A constant number of statements whatever the batch size: one SELECT of the chain
    /// heads, one of the keys already used, one multi-row INSERT, one UPDATE of the heads.
    /// If the INSERT still meets a used key (another process stored it in between), the
    /// database transaction is rolled back and the batch is committed row by row, so
    /// sequence numbers stay gapless either way.
    pub async fn commit_batch(
        &self,
        items: &[NewTx],
        now: i64,
        key: &SigningKey,
        issuer: &str,
        new_id: impl FnMut() -> String,
    ) -> Result<Vec<Committed>, sqlx::Error> {
        self.commit_batch_presigned(items, &[], now, key, issuer, new_id)
            .await
            .map(|(out, _)| out)
    }

    /// [`Store::commit_batch`] with rows signed ahead ([`presign`]; `presigned[i]` is
    /// for `items[i]`, missing or `None` entries are signed here). A presigned row is
    /// used only if, inside the database transaction (the write lock held), its
    /// register's chain head is still the one it was signed against and `key` signed
    /// it; otherwise the transaction is signed afresh, so the result is the same as
    /// without it. Also returns the chain heads of the batch's registers after it.
    pub async fn commit_batch_presigned(
        &self,
        items: &[NewTx],
        presigned: &[Option<Presigned>],
        now: i64,
        key: &SigningKey,
        issuer: &str,
        mut new_id: impl FnMut() -> String,
    ) -> Result<(Vec<Committed>, Heads), sqlx::Error> {
        if let Some(out) = self.commit_presigned_sqlite(items, presigned, key).await? {
            return Ok(out);
        }
        // First as if no key of the batch were used yet (the usual case: one statement
        // fewer); a used key makes the INSERT fall short, and the batch is committed
        // again looking the keys up first, then row by row if keys still race.
        for look_up_keys in [false, true] {
            if let Some(out) = self
                .commit_batch_set_based(
                    items,
                    presigned,
                    look_up_keys,
                    now,
                    key,
                    issuer,
                    &mut new_id,
                )
                .await?
            {
                return Ok(out);
            }
        }
        self.commit_batch_row_by_row(items, now, key, issuer, new_id)
            .await
    }

    /// On SQLite, a batch whose every row is presigned by `key` is committed in one round
    /// trip to the connection's thread (each costs a turn on the runtime): `BEGIN`, an
    /// UPDATE that moves each register's head from the one the rows were signed against
    /// (a compare-and-set), the INSERT of the rows, `COMMIT`, sent at once. Both
    /// statements must change every row they name, or a guard ([`SQLITE_BATCH_GUARD`])
    /// stops the batch before its COMMIT and nothing is kept: `Ok(None)`, and the batch
    /// goes the usual way (a moved head, a used key).
    async fn commit_presigned_sqlite(
        &self,
        items: &[NewTx],
        presigned: &[Option<Presigned>],
        key: &SigningKey,
    ) -> Result<Option<(Vec<Committed>, Heads)>, sqlx::Error> {
        // Every item must have its row (`presigned` may be shorter than `items`).
        // A staff login's sale is checked against the staff table (`chain_heads`), which
        // this path's guards do not read.
        if self.backend != Backend::Sqlite
            || items.is_empty()
            || presigned.len() != items.len()
            || items.len() > ROWS_PER_STATEMENT
            || items.iter().any(|i| i.staff.is_some())
        {
            return Ok(None);
        }
        let mut rows = Vec::with_capacity(presigned.len());
        // Per register: the head before the batch and after it (sequence number, link,
        // version).
        type Link<'a> = (i64, &'a str, i64);
        let mut moves: BTreeMap<&str, (Link, Link)> = BTreeMap::new();
        for p in presigned {
            let Some(p) = p.as_ref().filter(|p| p.kid == key.kid()) else {
                return Ok(None);
            };
            let before = (p.after.seq, p.after.link.as_str(), p.after.rve);
            let after = (p.row.seq, p.link.as_str(), p.row.rve);
            match moves.entry(p.row.activation_id.as_str()) {
                Entry::Vacant(e) => {
                    e.insert((before, after));
                }
                // A later row of the register must continue the one before it.
                Entry::Occupied(mut e) if e.get().1 == before => {
                    e.get_mut().1 = after;
                }
                Entry::Occupied(_) => return Ok(None),
            }
            rows.push(&p.row);
        }
        // One round trip: BEGIN, the compare-and-set UPDATE, the INSERT and COMMIT, with
        // a guard after each statement that stops the batch (before COMMIT) if the
        // statement changed fewer rows than it named.
        let guard = |n: usize| {
            format!(
                "INSERT OR REPLACE INTO temp.batch_guard (id, ok) VALUES (1, changes() = {n}); "
            )
        };
        let mut sql = format!(
            "BEGIN IMMEDIATE; WITH v (id, old_seq, old_head, old_rve, seq, head, rve) AS \
             (VALUES {}) UPDATE activations SET chain_seq = v.seq, chain_head = v.head, \
             chain_rve = v.rve FROM v WHERE activations.id = v.id \
             AND activations.chain_seq = v.old_seq AND activations.chain_head = v.old_head \
             AND activations.chain_rve = v.old_rve AND activations.status = 'approved'; {}",
            vec![
                "(?, CAST(? AS BIGINT), ?, CAST(? AS BIGINT), CAST(? AS BIGINT), ?, \
                 CAST(? AS BIGINT))";
                moves.len()
            ]
            .join(", "),
            guard(moves.len()),
        );
        // Every API key the sales came with is still current (a renewal replaced none).
        let keys = key_hashes(items);
        if !keys.is_empty() {
            sql.push_str(&format!(
                "INSERT OR REPLACE INTO temp.batch_guard (id, ok) VALUES (1, \
                 (SELECT count(*) FROM api_keys WHERE key_hash IN ({}) \
                 AND replaced_at IS NULL) = {}); ",
                vec!["?"; keys.len()].join(", "),
                keys.len()
            ));
        }
        sql.push_str(&insert_sql(self, rows.len(), true));
        sql.push_str("; ");
        sql.push_str(&guard(rows.len()));
        sql.push_str("COMMIT");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, ((old_seq, old_head, old_rve), (seq, head, rve))) in &moves {
            q = q
                .bind(*id)
                .bind(*old_seq)
                .bind(*old_head)
                .bind(*old_rve)
                .bind(*seq)
                .bind(*head)
                .bind(*rve);
        }
        for k in &keys {
            q = q.bind(*k);
        }
        for r in &rows {
            q = bind_row(q, r);
        }
        let mut conn = self.write_conn().await?;
        let WriteConn::Held(w) = &mut conn else {
            return Ok(None);
        };
        w.open = true;
        let c = w.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        let done = q.execute(&mut *c).await;
        if let Err(e) = done {
            // Whatever stopped it (a guard, or the database), nothing is kept.
            rollback_if_open(c).await?;
            w.open = false;
            return if is_batch_guard(&e) { Ok(None) } else { Err(e) };
        }
        w.open = false;
        let heads = moves
            .iter()
            .map(|(id, (_, (seq, link, rve)))| {
                let head = Head {
                    seq: *seq,
                    link: (*link).to_owned(),
                    rve: *rve,
                };
                ((*id).to_owned(), head)
            })
            .collect();
        let out = rows
            .into_iter()
            .map(|r| Committed::New(r.clone()))
            .collect();
        Ok(Some((out, heads)))
    }

    /// The fast path of [`Store::commit_batch`]; `Ok(None)` (nothing written) when the
    /// INSERT met a used idempotency key: one stored before the batch and not looked up
    /// (`look_up_keys` false), or one stored after the batch had looked.
    #[allow(clippy::too_many_arguments)]
    async fn commit_batch_set_based(
        &self,
        items: &[NewTx],
        presigned: &[Option<Presigned>],
        look_up_keys: bool,
        now: i64,
        key: &SigningKey,
        issuer: &str,
        new_id: &mut impl FnMut() -> String,
    ) -> Result<Option<(Vec<Committed>, Heads)>, sqlx::Error> {
        if items.is_empty() {
            return Ok(Some((Vec::new(), Heads::new())));
        }
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        let (mut heads, refusals) = self.chain_heads(&mut tx, items).await?;
        // The keys of the batch that are already used.
        let mut known: HashMap<(&str, &str), TxRow> = HashMap::new();
        if look_up_keys {
            for chunk in items.chunks(ROWS_PER_STATEMENT) {
                // OR of pairs, not `(a, b) IN (VALUES ...)`: SQLite scans the whole table
                // for the latter, and uses the unique index for each pair of the former.
                let sql = format!(
                    "SELECT {TX_COLS} FROM transactions WHERE {}",
                    (0..chunk.len())
                        .map(|i| format!(
                            "(activation_id = {} AND idempotency_key = {})",
                            self.placeholder(i * 2 + 1),
                            self.placeholder(i * 2 + 2)
                        ))
                        .collect::<Vec<_>>()
                        .join(" OR ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for item in chunk {
                    q = q.bind(&item.activation_id).bind(&item.idempotency_key);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    let row = tx_from_row(&row)?;
                    if let Some(item) = chunk.iter().find(|i| {
                        i.activation_id == row.activation_id
                            && i.idempotency_key == row.idempotency_key
                    }) {
                        known.insert(
                            (item.activation_id.as_str(), item.idempotency_key.as_str()),
                            row,
                        );
                    }
                }
            }
        }
        // Sequence numbers and receipts, in batch order.
        let mut out = Vec::with_capacity(items.len());
        let mut rows: Vec<TxRow> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(refusal) = &refusals[i] {
                out.push(Committed::Refused(refusal.clone()));
                continue;
            }
            let k = (item.activation_id.as_str(), item.idempotency_key.as_str());
            if let Some(row) = known.get(&k) {
                out.push(Committed::Existing(row.clone()));
                continue;
            }
            let head = head_of(&mut heads, item)?;
            let row = match presigned.get(i).and_then(Option::as_ref) {
                Some(p) if p.continues(&head.0, key) => {
                    *head = (p.head_after(), true);
                    p.row.clone()
                }
                _ => chain_next(head, item, new_id(), now, key, issuer)?,
            };
            // The same key again later in this batch gets this row back.
            known.insert(k, row.clone());
            out.push(Committed::New(row.clone()));
            rows.push(row);
        }
        // A key used meanwhile inserts nothing: start again slowly.
        if self.insert_rows(&mut tx, &rows).await? != rows.len() {
            tx.rollback().await?;
            return Ok(None);
        }
        self.move_heads(&mut tx, &heads).await?;
        tx.commit().await?;
        Ok(Some((out, heads_after(&heads))))
    }

    /// [`Store::commit_batch`] one INSERT per row: the fallback when keys race.
    async fn commit_batch_row_by_row(
        &self,
        items: &[NewTx],
        now: i64,
        key: &SigningKey,
        issuer: &str,
        mut new_id: impl FnMut() -> String,
    ) -> Result<(Vec<Committed>, Heads), sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        let (mut heads, refusals) = self.chain_heads(&mut tx, items).await?;
        let mut out = Vec::with_capacity(items.len());
        for (item, refusal) in items.iter().zip(refusals) {
            if let Some(refusal) = refusal {
                out.push(Committed::Refused(refusal));
                continue;
            }
            let head = head_of(&mut heads, item)?;
            // Signed against a copy of the head: moved only if the row is inserted.
            let mut next_head = head.clone();
            let row = chain_next(&mut next_head, item, new_id(), now, key, issuer)?;
            if self
                .insert_rows(&mut tx, std::slice::from_ref(&row))
                .await?
                == 1
            {
                *head = next_head;
                out.push(Committed::New(row));
            } else {
                let sql = format!(
                    "SELECT {TX_COLS} FROM transactions WHERE activation_id = $1 \
                     AND idempotency_key = $2"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&item.activation_id)
                    .bind(&item.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await?;
                out.push(Committed::Existing(tx_from_row(&row)?));
            }
        }
        self.move_heads(&mut tx, &heads).await?;
        tx.commit().await?;
        Ok((out, heads_after(&heads)))
    }

    /// The chain head (and changed = false) of every register of `items`, read in id
    /// order (and locked, on PostgreSQL: a fixed lock order cannot deadlock), and why
    /// each item cannot be stored, if it cannot ([`Refusal`]; read after the locks, so
    /// a decision or renewal committed before is seen).
    async fn chain_heads<'a>(
        &self,
        conn: &mut AnyConnection,
        items: &'a [NewTx],
    ) -> Result<(BTreeMap<&'a str, (Head, bool)>, Vec<Option<Refusal>>), sqlx::Error> {
        let mut regs: Vec<&str> = items.iter().map(|i| i.activation_id.as_str()).collect();
        regs.sort_unstable();
        regs.dedup();
        let mut heads = BTreeMap::new();
        let mut not_approved: BTreeMap<&str, String> = BTreeMap::new();
        for chunk in regs.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, chain_seq, chain_head, chain_rve, status FROM activations \
                 WHERE id IN ({}) ORDER BY id{}",
                self.placeholders(1, chunk.len()),
                self.for_update()
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut *conn).await? {
                let id: String = row.try_get("id")?;
                if let Some(r) = chunk.iter().find(|r| **r == id) {
                    let head = Head {
                        seq: row.try_get("chain_seq")?,
                        link: row.try_get("chain_head")?,
                        rve: row.try_get("chain_rve")?,
                    };
                    heads.insert(*r, (head, false));
                    let status: String = row.try_get("status")?;
                    if status != "approved" {
                        not_approved.insert(*r, status);
                    }
                }
            }
        }
        let replaced = self.replaced_keys(conn, &key_hashes(items)).await?;
        let staff = self.staff_registers(conn, items).await?;
        let refusals = items
            .iter()
            .map(|i| {
                // In authentication's order: a replaced key or a staff login gone first,
                // then the status.
                if i.key_hash.as_deref().is_some_and(|k| replaced.contains(k)) {
                    Some(Refusal::KeyReplaced)
                } else if i.staff.as_ref().is_some_and(|k| {
                    staff.get(&k.login) != Some(&(i.activation_id.clone(), k.public_key.clone()))
                }) {
                    Some(Refusal::StaffLoginGone)
                } else {
                    not_approved
                        .get(i.activation_id.as_str())
                        .map(|status| Refusal::NotApproved(status.clone()))
                }
            })
            .collect();
        Ok((heads, refusals))
    }

    /// The register and public key of each enabled staff login that sold in `items`.
    async fn staff_registers(
        &self,
        conn: &mut AnyConnection,
        items: &[NewTx],
    ) -> Result<HashMap<String, (String, String)>, sqlx::Error> {
        let mut logins: Vec<&str> = items
            .iter()
            .filter_map(|i| i.staff.as_ref().map(|k| k.login.as_str()))
            .collect();
        logins.sort_unstable();
        logins.dedup();
        let mut registers = HashMap::new();
        for chunk in logins.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT login, activation_id, public_key FROM staff WHERE login IN ({}) \
                 AND disabled_at IS NULL",
                self.placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for l in chunk {
                q = q.bind(*l);
            }
            for row in q.fetch_all(&mut *conn).await? {
                registers.insert(
                    row.try_get("login")?,
                    (row.try_get("activation_id")?, row.try_get("public_key")?),
                );
            }
        }
        Ok(registers)
    }

    /// Of the API-key hashes `keys`, those a renewal replaced (or that are unknown).
    async fn replaced_keys(
        &self,
        conn: &mut AnyConnection,
        keys: &[&str],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let mut current = HashSet::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT key_hash FROM api_keys WHERE key_hash IN ({}) AND replaced_at IS NULL",
                self.placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(*k);
            }
            for row in q.fetch_all(&mut *conn).await? {
                current.insert(row.try_get::<String, _>("key_hash")?);
            }
        }
        Ok(keys
            .iter()
            .filter(|k| !current.contains(**k))
            .map(|k| (*k).to_owned())
            .collect())
    }

    /// Inserts `rows` with multi-row INSERTs, skipping those whose idempotency key is
    /// used; returns how many were inserted.
    async fn insert_rows(
        &self,
        conn: &mut AnyConnection,
        rows: &[TxRow],
    ) -> Result<usize, sqlx::Error> {
        let mut inserted = 0;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(self, chunk.len(), false)));
            for r in chunk {
                q = bind_row(q, r);
            }
            inserted += q.execute(&mut *conn).await?.rows_affected() as usize;
        }
        Ok(inserted)
    }

    /// Stores every chain head marked changed, in one statement per chunk.
    async fn move_heads(
        &self,
        conn: &mut AnyConnection,
        heads: &BTreeMap<&str, (Head, bool)>,
    ) -> Result<(), sqlx::Error> {
        let moved: Vec<(&str, &Head)> = heads
            .iter()
            .filter(|(_, (_, changed))| *changed)
            .map(|(id, (head, _))| (*id, head))
            .collect();
        for chunk in moved.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH v (id, seq, head, rve) AS (VALUES {}) UPDATE activations \
                 SET chain_seq = v.seq, chain_head = v.head, chain_rve = v.rve FROM v \
                 WHERE activations.id = v.id",
                (0..chunk.len())
                    .map(|i| {
                        let p = |k| self.placeholder(i * 4 + k);
                        format!(
                            "({}, CAST({} AS BIGINT), {}, CAST({} AS BIGINT))",
                            p(1),
                            p(2),
                            p(3),
                            p(4)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, head) in chunk {
                q = q.bind(*id).bind(head.seq).bind(&head.link).bind(head.rve);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Every transaction (admin export), by register and sequence.
    pub async fn export_txs(
        &self,
        activation_id: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<TxRow>, sqlx::Error> {
        let rows = match activation_id {
            Some(a) => {
                let sql = format!(
                    "SELECT {} FROM transactions WHERE activation_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                    self.tx_cols()
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(a)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => return self.export_all_txs(None, limit).await,
        };
        rows.iter().map(tx_from_row).collect()
    }

    /// Every register's transactions by register and sequence, from just after `after`
    /// (a register and a sequence number: the last row of the previous page).
    pub async fn export_all_txs(
        &self,
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<TxRow>, sqlx::Error> {
        let rows = match after {
            Some((activation_id, seq)) => {
                let sql = format!(
                    "SELECT {} FROM transactions WHERE (activation_id, seq) > ($1, $2) \
                     ORDER BY activation_id, seq LIMIT $3",
                    self.tx_cols()
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(activation_id)
                    .bind(seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {} FROM transactions ORDER BY activation_id, seq LIMIT $1",
                    self.tx_cols()
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(tx_from_row).collect()
    }

    // ---- products ---------------------------------------------------------------

    /// Inserts or updates a product; returns whether it was created, and its version.
    ///
    /// One write transaction. The version is `max(updated_at, newest + 1)`, `newest`
    /// being the company's newest version read in the same transaction, and a company's
    /// product writes take turns (SQLite's write lock; on PostgreSQL an advisory lock per
    /// company, held until commit). So versions are unique within a company and increase
    /// in the order changes commit: a listing that has seen version `v` is followed only
    /// by commits above `v`, whatever the clocks of the replicas or the time a commit took.
    ///
    /// Like a sale, the change is refused ([`Refusal`], nothing written) when, read in
    /// the same transaction, the writing register (`updated_by`, when it names a
    /// registration) is no longer approved, `key_hash` (the API key it came with;
    /// `None` for a dynamic key) was replaced, or `staff` (the staff login whose dynamic
    /// key it came with) was disabled, moved to another register or given another key.
    pub async fn upsert_product(
        &self,
        p: &ProductRow,
        updated_by: &str,
        key_hash: Option<&str>,
        staff: Option<&StaffKey>,
    ) -> Result<Result<(bool, i64), Refusal>, sqlx::Error> {
        let mut conn = self.write_conn().await?;
        let mut tx = conn.begin().await?;
        if self.backend == Backend::Postgres {
            // Each statement sees what committed before it (READ COMMITTED,
            // [`PG_SESSION_SETTINGS`]): the newest version is read after the lock is granted.
            // Taken first: no row lock is held while waiting for it.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("tillgate-products:{}", p.corporate_id))
                .execute(&mut *tx)
                .await?;
        }
        // The registration's status, its row share-locked on PostgreSQL first: a
        // revocation or renewal committing meanwhile is waited for, and the key read
        // after it sees the renewal.
        let sql = format!(
            "SELECT status FROM activations WHERE id = $1{}",
            if self.backend == Backend::Postgres {
                " FOR SHARE"
            } else {
                ""
            }
        );
        let status: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(updated_by)
            .fetch_optional(&mut *tx)
            .await?;
        // Answered in authentication's order: a replaced key first, then the status.
        if let Some(k) = key_hash
            && !self.replaced_keys(&mut tx, &[k]).await?.is_empty()
        {
            return Ok(Err(Refusal::KeyReplaced));
        }
        if let Some(k) = staff {
            let current: Option<(String, String)> = sqlx::query_as(
                "SELECT activation_id, public_key FROM staff \
                 WHERE login = $1 AND disabled_at IS NULL",
            )
            .bind(&k.login)
            .fetch_optional(&mut *tx)
            .await?;
            if current != Some((updated_by.to_owned(), k.public_key.clone())) {
                return Ok(Err(Refusal::StaffLoginGone));
            }
        }
        match status {
            Some(s) if s == "approved" => {}
            Some(s) => return Ok(Err(Refusal::NotApproved(s))),
            // Not a registration's change (an import, a test).
            None => {}
        }
        let newest: Option<i64> =
            sqlx::query("SELECT MAX(rve) AS newest FROM products WHERE corporate_id = $1")
                .bind(&p.corporate_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("newest")?;
        let existed = sqlx::query("SELECT id FROM products WHERE corporate_id = $1 AND id = $2")
            .bind(&p.corporate_id)
            .bind(&p.id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let rve = newest.map_or(p.updated_at, |n| p.updated_at.max(n.saturating_add(1)));
        sqlx::query(
            "INSERT INTO products (corporate_id, id, body, updated_at, updated_by, rve) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (corporate_id, id) DO UPDATE SET \
             body = excluded.body, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by, rve = excluded.rve",
        )
        .bind(&p.corporate_id)
        .bind(&p.id)
        .bind(&p.body)
        .bind(p.updated_at)
        .bind(updated_by)
        .bind(rve)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok((!existed, rve)))
    }

    /// A company's products whose version is above `since`, in version order, at most
    /// `limit` of them.
    ///
    /// An RVE above the company's newest version was not handed out by this database (a
    /// register's own clock, or a database restored to an earlier state): the changes
    /// are sent from the start, as the next change may get a version below that RVE.
    pub async fn product_changes(
        &self,
        corporate_id: &str,
        since: i64,
        limit: i64,
    ) -> Result<ProductChanges, sqlx::Error> {
        let newest: Option<i64> =
            sqlx::query("SELECT MAX(rve) AS newest FROM products WHERE corporate_id = $1")
                .bind(corporate_id)
                .fetch_one(&self.pool)
                .await?
                .try_get("newest")?;
        let since = match newest {
            Some(n) if since <= n => since,
            _ => i64::MIN,
        };
        let mut rows = sqlx::query(
            "SELECT corporate_id, id, body, updated_at, rve FROM products \
             WHERE corporate_id = $1 AND rve > $2 ORDER BY rve LIMIT $3",
        )
        .bind(corporate_id)
        .bind(since)
        .bind(limit.saturating_add(1))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(product_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let rve = rows.last().map_or(since, |r| r.rve.max(since));
        Ok(ProductChanges { rows, more, rve })
    }

    /// One product of a company.
    pub async fn product(
        &self,
        corporate_id: &str,
        id: &str,
    ) -> Result<Option<ProductRow>, sqlx::Error> {
        sqlx::query(
            "SELECT corporate_id, id, body, updated_at, rve FROM products \
             WHERE corporate_id = $1 AND id = $2",
        )
        .bind(corporate_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(product_from_row)
        .transpose()
    }
}

async fn insert_signing_key(
    conn: &mut sqlx::AnyConnection,
    seeds: Option<&SeedCipher>,
    key: &SigningKey,
    now: i64,
    signs_from: Option<i64>,
) -> Result<(), sqlx::Error> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let seed = seed_to_store(seeds, key)?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, seed, public_key, created_at, signs_from) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.kid())
    .bind(seed)
    .bind(b64.encode(key.public_key_bytes()))
    .bind(now)
    .bind(signs_from)
    .execute(conn)
    .await?;
    Ok(())
}

/// A key's seed as stored: sealed with the KEK when there is one, else base64url.
fn seed_to_store(seeds: Option<&SeedCipher>, key: &SigningKey) -> Result<String, sqlx::Error> {
    use base64::Engine as _;
    match seeds {
        Some(cipher) => cipher
            .seal(key.kid(), &key.seed())
            .map_err(sqlx::Error::Protocol),
        None => Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.seed())),
    }
}

/// Seals every seed still stored in plain text and checks that every sealed one opens
/// with this key (a wrong KEK stops the start instead of failing later). Returns how
/// many were sealed.
async fn seal_plain_seeds(
    conn: &mut sqlx::AnyConnection,
    cipher: &SeedCipher,
) -> Result<usize, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query("SELECT kid, seed FROM signing_keys")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("kid")?, r.try_get("seed")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let mut sealed = 0;
    for (kid, stored) in rows {
        if stored.is_empty() {
            // Held offline: nothing to seal.
            continue;
        }
        let seed = cipher.open(&kid, &stored).map_err(sqlx::Error::Protocol)?;
        if crate::seal::is_sealed(&stored) {
            continue;
        }
        let new = cipher.seal(&kid, &seed).map_err(sqlx::Error::Protocol)?;
        // Only if still the same plain value (another process may have sealed it).
        sqlx::query("UPDATE signing_keys SET seed = $1 WHERE kid = $2 AND seed = $3")
            .bind(new)
            .bind(&kid)
            .bind(&stored)
            .execute(&mut *conn)
            .await?;
        sealed += 1;
    }
    Ok(sealed)
}

/// An INSERT of `n` transaction rows (bound with [`bind_row`]) that skips rows whose
/// idempotency key is used (`any_conflict`: also rows whose sequence number or id is).
fn insert_sql(store: &Store, n: usize, any_conflict: bool) -> String {
    format!(
        "INSERT INTO transactions (id, activation_id, idempotency_key, seq, created_at, \
         body, txh, receipt, rve) VALUES {} ON CONFLICT {}DO NOTHING",
        (0..n)
            .map(|i| format!("({})", store.placeholders(i * 9 + 1, 9)))
            .collect::<Vec<_>>()
            .join(", "),
        if any_conflict {
            ""
        } else {
            "(activation_id, idempotency_key) "
        }
    )
}

/// Binds a row's values in the column order of [`insert_sql`].
fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    r: &'q TxRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&r.id)
        .bind(&r.activation_id)
        .bind(&r.idempotency_key)
        .bind(r.seq)
        .bind(r.created_at)
        .bind(&r.body)
        .bind(&r.txh)
        .bind(&r.receipt)
        .bind(r.rve)
}

/// A register's place in its receipt chain: what its next transaction continues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The last sequence number given (0 before the first transaction).
    pub seq: i64,
    /// `receipt_link` of the last receipt (empty before the first transaction).
    pub link: String,
    /// The last transaction's version (0 before the first transaction).
    pub rve: i64,
}

impl Head {
    /// The version of the next transaction, stamped `now`: `now`, or one above this
    /// head's when that is later (versions increase even within a second, or when a
    /// clock went back).
    fn next_rve(&self, now: i64) -> i64 {
        now.max(self.rve.saturating_add(1))
    }
}

/// Chain heads by register (activation id).
pub type Heads = HashMap<String, Head>;

fn heads_after(heads: &BTreeMap<&str, (Head, bool)>) -> Heads {
    heads
        .iter()
        .map(|(id, (head, _))| ((*id).to_owned(), head.clone()))
        .collect()
}

/// A transaction's row signed before its batch is committed, against the chain head
/// its writer expects (see [`presign`] and [`Store::commit_batch_presigned`]).
#[derive(Debug, Clone)]
pub struct Presigned {
    /// The head it was signed to continue.
    after: Head,
    /// The id of the key that signed it.
    kid: String,
    row: TxRow,
    /// `receipt_link` of its receipt: the head after it.
    link: String,
}

impl Presigned {
    /// Whether it continues `head` (as read under the write lock) and `key` signed it.
    fn continues(&self, head: &Head, key: &SigningKey) -> bool {
        self.after == *head && self.kid == key.kid()
    }

    /// The register's head once this row is stored.
    fn head_after(&self) -> Head {
        Head {
            seq: self.row.seq,
            link: self.link.clone(),
            rve: self.row.rve,
        }
    }
}

/// Signs `items` ahead of their commit (CPU only, no database), continuing the chain
/// heads in `expected`, which move on past them. Items of a register with no expected
/// head get `None` and are signed by the commit; so does anything the commit finds
/// changed meanwhile (an idempotent replay, another writer). A writer that keeps
/// `expected` from batch to batch can sign the next batch while the previous one is
/// being committed.
pub fn presign<'a>(
    items: impl IntoIterator<Item = &'a NewTx>,
    expected: &mut Heads,
    now: i64,
    key: &SigningKey,
    issuer: &str,
    mut new_id: impl FnMut() -> String,
) -> Result<Vec<Option<Presigned>>, sqlx::Error> {
    let mut out = Vec::new();
    for item in items {
        let Some(expected) = expected.get_mut(&item.activation_id) else {
            out.push(None);
            continue;
        };
        let mut head = (expected.clone(), false);
        let row = chain_next(&mut head, item, new_id(), now, key, issuer)?;
        let after = std::mem::replace(expected, head.0);
        out.push(Some(Presigned {
            after,
            kid: key.kid().to_owned(),
            row,
            link: expected.link.clone(),
        }));
    }
    Ok(out)
}

/// The chain head of `item`'s register, as read by `Store::chain_heads`.
/// The distinct API-key hashes `items` came with (a dynamic key has none), sorted.
fn key_hashes(items: &[NewTx]) -> Vec<&str> {
    let mut keys: Vec<&str> = items.iter().filter_map(|i| i.key_hash.as_deref()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn head_of<'h>(
    heads: &'h mut BTreeMap<&str, (Head, bool)>,
    item: &NewTx,
) -> Result<&'h mut (Head, bool), sqlx::Error> {
    heads
        .get_mut(item.activation_id.as_str())
        .ok_or_else(|| sqlx::Error::Protocol("chain head missing".into()))
}

/// The next row of a register's chain: the next sequence number and version, a receipt
/// signed over the transaction and the previous receipt's link; moves `head` on and
/// marks it changed.
fn chain_next(
    head: &mut (Head, bool),
    item: &NewTx,
    id: String,
    now: i64,
    key: &SigningKey,
    issuer: &str,
) -> Result<TxRow, sqlx::Error> {
    let seq = head.0.seq + 1;
    let rve = head.0.next_rve(now);
    let receipt = sign_receipt(
        &ReceiptClaims {
            iss: issuer.to_owned(),
            sub: item.production_number.clone(),
            iat: now,
            seq: seq as u64,
            txid: id.clone(),
            txh: item.txh.clone(),
            prev: std::mem::take(&mut head.0.link),
            tx_type: item.tx_type.clone(),
            total: item.total,
            currency: item.currency.clone(),
        },
        key,
    )
    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    *head = (
        Head {
            seq,
            link: receipt_link(&receipt),
            rve,
        },
        true,
    );
    Ok(TxRow {
        id,
        activation_id: item.activation_id.clone(),
        idempotency_key: item.idempotency_key.clone(),
        seq,
        created_at: now,
        body: item.body.clone(),
        txh: item.txh.clone(),
        receipt,
        rve,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses a `sqlite:` URL's file path, to restrict the file's permissions.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::PathBuf::from_str(path).ok()
}

/// The same SQLite URL opened read-only (`mode=ro`, whatever mode it named): SQLite then
/// writes nothing to the database file, not even a checkpoint of a WAL left by a stopped
/// server. Other URLs are returned unchanged.
pub fn sqlite_read_only_url(url: &str) -> String {
    if !url.starts_with("sqlite:") {
        return url.to_owned();
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("mode="))
        .collect();
    params.push("mode=ro");
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tillgate_core::{TrustedKeys, verify_receipt_chain};

    use super::*;

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:file:x?mode=memory",
        ] {
            let err = Store::connect(url, 2).await.err().unwrap().to_string();
            assert!(err.contains("in-memory SQLite database"), "{url}: {err}");
        }
    }

    #[test]
    fn read_only_urls() {
        assert_eq!(
            sqlite_read_only_url("sqlite:///d/tillgate.db?mode=rwc"),
            "sqlite:///d/tillgate.db?mode=ro"
        );
        assert_eq!(sqlite_read_only_url("sqlite:b.db"), "sqlite:b.db?mode=ro");
        assert_eq!(
            sqlite_read_only_url("sqlite://b.db?cache=shared&mode=rw"),
            "sqlite://b.db?cache=shared&mode=ro"
        );
        let pg = "postgres://u@h/db?sslmode=require";
        assert_eq!(sqlite_read_only_url(pg), pg);
    }

    fn registration(id: &str) -> ActivationRow {
        ActivationRow {
            id: id.into(),
            production_number: format!("TG-{id}"),
            cash_register_name: "Kassa 1".into(),
            device_id: format!("dev-{id}"),
            corporate_id: "5560360793".into(),
            country: "SE".into(),
            application_package: "se.example.pos".into(),
            extras: "{}".into(),
            features: "[]".into(),
            valid_from: 0,
            valid_to: 4_000_000_000,
            status: "approved".into(),
            created_at: 0,
            updated_at: 0,
            decided_by: None,
            decided_at: None,
            authority_notified_at: None,
            decision_note: None,
        }
    }

    fn item(activation_id: &str, key: &str) -> NewTx {
        NewTx {
            activation_id: activation_id.into(),
            production_number: format!("TG-{activation_id}"),
            idempotency_key: key.into(),
            body: format!(r#"{{"k":"{key}"}}"#),
            txh: format!("h-{key}"),
            tx_type: "sale".into(),
            total: 100,
            currency: "SEK".into(),
            key_hash: None,
            staff: None,
        }
    }

    /// The signing key of these tests and the set that trusts it.
    fn signer() -> (SigningKey, TrustedKeys) {
        let key = SigningKey::from_seed(&[7; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        (key, trusted)
    }

    /// Transaction ids `tx_0001`, `tx_0002`, ...
    fn tx_ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("tx_{n:04}")
        }
    }

    /// A fresh SQLite store (in a temporary directory named after `name`) holding the
    /// registers "a" and "b".
    async fn store_with_registers_a_b(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tillgate-db-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        for (id, h) in [("a", "00"), ("b", "11")] {
            assert!(
                store
                    .insert_activation(&registration(id), &h.repeat(32), None)
                    .await
                    .unwrap()
            );
        }
        (store, dir)
    }

    /// Stores registration `id`, pending since 100, with the key hash `key_hash`.
    async fn insert_pending(store: &Store, id: &str, key_hash: &str) -> ActivationRow {
        let mut r = registration(id);
        r.status = "pending".into();
        r.created_at = 100;
        assert!(store.insert_activation(&r, key_hash, None).await.unwrap());
        r
    }

    /// The hashes of a registration's current keys, sorted.
    async fn current_keys(store: &Store, id: &str) -> Vec<String> {
        sqlx::query(
            "SELECT key_hash FROM api_keys WHERE activation_id = $1 AND replaced_at IS NULL \
             ORDER BY key_hash",
        )
        .bind(id)
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("key_hash").unwrap())
        .collect()
    }

    /// A renewal leaves the registration one key: the new one, also when concurrent
    /// repeats of its activation had handed out several.
    #[tokio::test]
    async fn a_renewal_leaves_one_key() {
        let (store, dir) = store_with_registers_a_b("renew-one").await;
        let r = insert_pending(&store, "r", &"a1".repeat(32)).await;
        assert!(
            store
                .reissue_pending_key("r", &"b2".repeat(32), 0, 100, 100)
                .await
                .unwrap()
        );
        assert!(matches!(
            store
                .decide("r", &["pending"], "approved", "alice", Some(101), None, 101)
                .await
                .unwrap(),
            Some(Ok(_))
        ));
        let renewed = store
            .renew(
                "r",
                Some(&"b2".repeat(32)),
                r.valid_to,
                &"c3".repeat(32),
                200,
                r.valid_to + 100,
                "approved",
                200,
            )
            .await
            .unwrap();
        assert!(matches!(renewed, Renewal::Renewed), "{renewed:?}");
        assert_eq!(current_keys(&store, "r").await, ["c3".repeat(32)]);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A sale or a product change made with a staff login's dynamic key is refused at its
    /// commit once the login was disabled, moved to another register or given another
    /// key (a new password) after the request authenticated; an unchanged login of the
    /// register writes as before.
    #[tokio::test]
    async fn a_staff_login_gone_before_the_commit_refuses_its_writes() {
        let (store, dir) = store_with_registers_a_b("staff-gone").await;
        let (key, _) = signer();
        let mut ids = tx_ids();
        let staff = |login: &str, register: &str, pk: &str| StaffRow {
            login: login.into(),
            activation_id: register.into(),
            public_key: pk.into(),
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            disabled_at: None,
        };
        for login in ["anna", "bo", "cy", "eve"] {
            let put = store.put_staff(&staff(login, "a", login), false, 100).await;
            assert_eq!(put.unwrap(), StaffPut::Created);
        }
        assert!(store.disable_staff("bo", 101).await.unwrap().is_some());
        let moved = store.put_staff(&staff("cy", "b", "cy-2"), true, 102).await;
        assert_eq!(moved.unwrap(), StaffPut::Replaced);
        let new_password = store
            .put_staff(&staff("eve", "a", "eve-2"), true, 103)
            .await;
        assert_eq!(new_password.unwrap(), StaffPut::Replaced);
        // Each came with the key it had when its request authenticated.
        let came_with = |login: &str| StaffKey {
            login: login.into(),
            public_key: login.into(),
        };
        let sale = |login: &str, k: &str| NewTx {
            staff: Some(came_with(login)),
            ..item("a", k)
        };
        let out = store
            .commit_batch(
                &[
                    sale("anna", "k1"),
                    sale("bo", "k2"),
                    sale("cy", "k3"),
                    sale("eve", "k4"),
                    sale("dan", "k5"),
                ],
                1_000,
                &key,
                "tillgate",
                &mut ids,
            )
            .await
            .unwrap();
        assert!(matches!(out[0], Committed::New(_)), "{out:?}");
        for refused in &out[1..] {
            assert!(
                matches!(refused, Committed::Refused(Refusal::StaffLoginGone)),
                "{out:?}"
            );
        }
        let row = ProductRow {
            corporate_id: "5560360793".into(),
            id: "p1".into(),
            body: "{}".into(),
            updated_at: 1_000,
            rve: 0,
        };
        for login in ["bo", "cy", "eve", "dan"] {
            let r = store
                .upsert_product(&row, "a", None, Some(&came_with(login)))
                .await;
            assert_eq!(r.unwrap(), Err(Refusal::StaffLoginGone), "{login}");
        }
        let anna = store
            .upsert_product(&row, "a", None, Some(&came_with("anna")))
            .await;
        assert!(anna.unwrap().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A repeated activation's key replaces only keys issued before the repeat arrived,
    /// and never for a registration that was decided (approved, then renewed with its
    /// descriptor: pending again).
    #[tokio::test]
    async fn a_key_is_issued_again_only_for_a_registration_never_decided() {
        let (store, dir) = store_with_registers_a_b("reissue").await;
        insert_pending(&store, "p", &"a1".repeat(32)).await;
        let keys = |id: &'static str| current_keys(&store, id);
        // A repeat that arrived at 100, with the first key issued at 100: both kept.
        assert!(
            store
                .reissue_pending_key("p", &"b2".repeat(32), 0, 100, 101)
                .await
                .unwrap()
        );
        assert_eq!(keys("p").await, ["a1".repeat(32), "b2".repeat(32)]);
        // One arriving later: only its own.
        assert!(
            store
                .reissue_pending_key("p", &"c3".repeat(32), 0, 102, 102)
                .await
                .unwrap()
        );
        assert_eq!(keys("p").await, ["c3".repeat(32)]);
        // Too old for a repeat: nothing changes.
        assert!(
            !store
                .reissue_pending_key("p", &"d4".repeat(32), 101, 103, 103)
                .await
                .unwrap()
        );
        // Approved, then pending again as a renewal by descriptor leaves it: refused.
        assert!(matches!(
            store
                .decide("p", &["pending"], "approved", "alice", Some(104), None, 104)
                .await
                .unwrap(),
            Some(Ok(_))
        ));
        sqlx::query("UPDATE activations SET status = 'pending' WHERE id = 'p'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(
            !store
                .reissue_pending_key("p", &"e5".repeat(32), 0, 105, 105)
                .await
                .unwrap()
        );
        assert_eq!(keys("p").await, ["c3".repeat(32)]);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The registers' heads as stored: last sequence and the link of its receipt.
    async fn stored_heads(store: &Store, registers: &[&str]) -> Heads {
        let mut heads = Heads::new();
        for reg in registers {
            let rows = store.list_txs(reg, 0, i64::MIN, 100).await.unwrap().rows;
            let last = rows.last().unwrap();
            let head = Head {
                seq: last.seq,
                link: tillgate_core::receipt_link(&last.receipt),
                rve: last.rve,
            };
            heads.insert((*reg).into(), head);
        }
        heads
    }

    /// Registers "a" and "b" hold gapless chains from 1 that verify.
    async fn assert_chains_verify(store: &Store, trusted: &TrustedKeys) {
        for reg in ["a", "b"] {
            let rows = store.list_txs(reg, 0, i64::MIN, 100).await.unwrap().rows;
            let receipts: Vec<&str> = rows.iter().map(|r| r.receipt.as_str()).collect();
            let claims = verify_receipt_chain(&receipts, trusted).unwrap();
            let seqs: Vec<u64> = claims.iter().map(|c| c.seq).collect();
            assert_eq!(seqs, (1..=rows.len() as u64).collect::<Vec<_>>());
            // Versions: never below the stamp, increasing, the last one kept as the
            // register's newest.
            let mut before = 0;
            for r in &rows {
                assert!(r.rve >= r.created_at && r.rve > before, "{reg}: {r:?}");
                before = r.rve;
            }
            let newest: i64 = sqlx::query("SELECT chain_rve FROM activations WHERE id = $1")
                .bind(reg)
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .get("chain_rve");
            assert_eq!(newest, before, "{reg}");
        }
    }

    /// (id, seq, new?) of each result.
    fn shape(out: &[Committed]) -> Vec<(String, i64, bool)> {
        out.iter()
            .map(|c| match c {
                Committed::New(r) => (r.id.clone(), r.seq, true),
                Committed::Existing(r) => (r.id.clone(), r.seq, false),
                Committed::Refused(r) => (format!("{r:?}"), 0, false),
            })
            .collect()
    }

    /// The paths of `commit_batch` store the same thing: gapless sequences per
    /// register, a key used twice stored once, a key used in an earlier batch answered
    /// with the stored row, receipt chains that verify. The first attempt, which does
    /// not look keys up, writes nothing when it meets a used key.
    #[tokio::test]
    async fn every_commit_path_agrees() {
        let (key, trusted) = signer();
        let mut results = Vec::new();
        for path in ["commit_batch", "keys looked up", "row by row"] {
            let (store, dir) = store_with_registers_a_b(&format!("paths-{}", results.len())).await;
            let mut ids = tx_ids();
            let mut commit = async |items: Vec<NewTx>| match path {
                "commit_batch" => {
                    let stored = async || {
                        let a = store.list_txs("a", 0, i64::MIN, 100).await.unwrap().rows;
                        let b = store.list_txs("b", 0, i64::MIN, 100).await.unwrap().rows;
                        a.len() + b.len()
                    };
                    let before = stored().await;
                    let unlooked = store
                        .commit_batch_set_based(
                            &items,
                            &[],
                            false,
                            1_000,
                            &key,
                            "tillgate",
                            &mut ids,
                        )
                        .await
                        .unwrap();
                    let Some((out, _)) = unlooked else {
                        // A used key: nothing written, then the whole of commit_batch.
                        assert_eq!(stored().await, before);
                        return store
                            .commit_batch(&items, 1_000, &key, "tillgate", &mut ids)
                            .await
                            .unwrap();
                    };
                    out
                }
                "keys looked up" => {
                    store
                        .commit_batch_set_based(
                            &items,
                            &[],
                            true,
                            1_000,
                            &key,
                            "tillgate",
                            &mut ids,
                        )
                        .await
                        .unwrap()
                        .unwrap()
                        .0
                }
                _ => {
                    store
                        .commit_batch_row_by_row(&items, 1_000, &key, "tillgate", &mut ids)
                        .await
                        .unwrap()
                        .0
                }
            };
            // k1 twice in one batch of a fresh key: no lookup needed to store it once.
            let first = commit(vec![
                item("a", "k1"),
                item("b", "k1"),
                item("a", "k2"),
                item("b", "k1"),
            ])
            .await;
            let second = commit(vec![
                item("a", "k2"),
                item("a", "k3"),
                item("a", "k3"),
                item("b", "k2"),
            ])
            .await;
            let (first, second) = (shape(&first), shape(&second));
            assert_eq!(
                first.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
                [(1, true), (1, true), (2, true), (1, false)]
            );
            assert_eq!(first[3], (first[1].0.clone(), 1, false), "k1 twice");
            assert_eq!(second[0], (first[2].0.clone(), 2, false), "k2 again");
            assert_eq!((second[1].1, second[1].2), (3, true));
            assert_eq!(second[2], (second[1].0.clone(), 3, false), "k3 twice");
            assert_eq!((second[3].1, second[3].2), (2, true));
            assert_chains_verify(&store, &trusted).await;
            // Ids differ (the fallback draws one for a row it then finds stored).
            let seqs = |v: &[(String, i64, bool)]| v.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>();
            results.push((seqs(&first), seqs(&second)));
            store.close().await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[1], results[2]);
    }

    /// A revoked registration or a replaced key, as stored when the batch is committed,
    /// refuses the sale on every path (presigned in one round trip, set-based, row by
    /// row): nothing stored, the register's chain untouched; the other sales of the batch
    /// go on, and a dynamic key (no key hash) is not affected by a replaced API key.
    #[tokio::test]
    async fn sales_of_a_revoked_register_or_a_replaced_key_are_refused() {
        let (key, trusted) = signer();
        let (store, dir) = store_with_registers_a_b("refused").await;
        let mut ids = tx_ids();
        let with_key = |reg: &str, k: &str, hash: &str| NewTx {
            key_hash: Some(hash.repeat(32)),
            ..item(reg, k)
        };
        let first = [with_key("a", "k1", "00"), with_key("b", "k0", "11")];
        store
            .commit_batch(&first, 1_000, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        // While both keys are current, the one-round-trip path stores a presigned batch.
        let mut heads = stored_heads(&store, &["a", "b"]).await;
        let b1 = [with_key("b", "k1", "11"), item("b", "k1b")];
        let pre = presign(&b1, &mut heads, 1_000, &key, "tillgate", &mut ids).unwrap();
        let done = store
            .commit_presigned_sqlite(&b1, &pre, &key)
            .await
            .unwrap();
        assert!(done.is_some(), "current keys pass the guard");
        sqlx::raw_sql(
            "UPDATE activations SET status = 'revoked' WHERE id = 'a'; \
             UPDATE api_keys SET replaced_at = 1001 WHERE activation_id = 'b'",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let count = async || store.export_txs(None, 0, 1_000).await.unwrap().len();

        // Presigned against the current heads: the one-round-trip path writes nothing.
        let a2 = [with_key("a", "k2", "00")];
        let pre = presign(&a2, &mut heads.clone(), 1_002, &key, "tillgate", &mut ids).unwrap();
        assert!(
            store
                .commit_presigned_sqlite(&a2, &pre, &key)
                .await
                .unwrap()
                .is_none()
        );
        let b_dyn = [item("b", "k2")];
        let b2 = [with_key("b", "k2", "11")];
        let pre = presign(&b2, &mut heads.clone(), 1_002, &key, "tillgate", &mut ids).unwrap();
        assert!(
            store
                .commit_presigned_sqlite(&b2, &pre, &key)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(count().await, 4);

        // The set-based and the row-by-row paths refuse them and store the rest.
        let batch = [
            with_key("a", "k2", "00"),
            item("a", "k3"),
            with_key("b", "k2", "11"),
            with_key("b", "k1", "11"),
            b_dyn[0].clone(),
        ];
        let pre = presign(&batch, &mut heads, 1_002, &key, "tillgate", &mut ids).unwrap();
        let (out, _) = store
            .commit_batch_presigned(&batch, &pre, 1_002, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        let revoked = Refusal::NotApproved("revoked".into());
        let refusals = |out: &[Committed]| -> Vec<Option<Refusal>> {
            out.iter()
                .map(|c| match c {
                    Committed::Refused(r) => Some(r.clone()),
                    _ => None,
                })
                .collect()
        };
        let expected = vec![
            Some(revoked.clone()),
            Some(revoked.clone()),
            Some(Refusal::KeyReplaced),
            Some(Refusal::KeyReplaced),
            None,
        ];
        assert_eq!(refusals(&out), expected);
        assert!(matches!(&out[4], Committed::New(r) if r.seq == 4));
        let batch = [
            with_key("a", "k4", "00"),
            with_key("b", "k4", "11"),
            item("b", "k5"),
        ];
        let out = store
            .commit_batch_row_by_row(&batch, 1_003, &key, "tillgate", &mut ids)
            .await
            .unwrap()
            .0;
        assert_eq!(
            refusals(&out),
            vec![Some(revoked), Some(Refusal::KeyReplaced), None]
        );
        assert!(matches!(&out[2], Committed::New(r) if r.seq == 5));
        assert_eq!(count().await, 6, "a: k1; b: k0, k1, k1b, k2 (dynamic), k5");
        // Both changed: answered as authentication answers, the replaced key first.
        sqlx::raw_sql("UPDATE api_keys SET replaced_at = 1004 WHERE activation_id = 'a'")
            .execute(&store.pool)
            .await
            .unwrap();
        let a6 = [with_key("a", "k6", "00")];
        let out = store
            .commit_batch(&a6, 1_004, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        assert_eq!(refusals(&out), vec![Some(Refusal::KeyReplaced)]);
        assert_chains_verify(&store, &trusted).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A product change of a revoked register, or with a replaced key, is refused and
    /// writes nothing; a writer that is not a registration is not checked.
    #[tokio::test]
    async fn product_changes_of_a_revoked_register_or_a_replaced_key_are_refused() {
        let (store, dir) = store_with_registers_a_b("refused-products").await;
        sqlx::raw_sql(
            "UPDATE activations SET status = 'revoked' WHERE id = 'a'; \
             UPDATE api_keys SET replaced_at = 1001 WHERE activation_id = 'b'",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let row = ProductRow {
            corporate_id: "5560360793".into(),
            id: "p1".into(),
            body: "{}".into(),
            updated_at: 1_000,
            rve: 0,
        };
        let a = "00".repeat(32);
        let b = "11".repeat(32);
        let upsert = async |by: &str, key: Option<&str>| {
            store.upsert_product(&row, by, key, None).await.unwrap()
        };
        let revoked = Err(Refusal::NotApproved("revoked".into()));
        assert_eq!(upsert("a", Some(&a)).await, revoked);
        assert_eq!(upsert("a", None).await, revoked);
        assert_eq!(upsert("b", Some(&b)).await, Err(Refusal::KeyReplaced));
        sqlx::raw_sql("UPDATE activations SET status = 'pending' WHERE id = 'b'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            upsert("b", Some(&b)).await,
            Err(Refusal::KeyReplaced),
            "key first"
        );
        assert_eq!(
            upsert("b", None).await,
            Err(Refusal::NotApproved("pending".into()))
        );
        sqlx::raw_sql("UPDATE activations SET status = 'approved' WHERE id = 'b'")
            .execute(&store.pool)
            .await
            .unwrap();
        let none = store
            .product_changes("5560360793", i64::MIN, 10)
            .await
            .unwrap();
        assert!(none.rows.is_empty());
        assert_eq!(upsert("b", None).await, Ok((true, 1_000)), "a dynamic key");
        assert_eq!(upsert("import", None).await, Ok((false, 1_001)));
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// On SQLite a batch presigned against the current heads is committed by the
    /// two-statement path; a stale head, a used key, a break in a register's rows
    /// inside the batch or an item without its row makes it write nothing.
    #[tokio::test]
    async fn presigned_sqlite_path_commits_only_what_fits() {
        let (key, trusted) = signer();
        let (store, dir) = store_with_registers_a_b("presigned-sqlite").await;
        let mut ids = tx_ids();
        let first = vec![item("a", "k1"), item("b", "k1")];
        store
            .commit_batch(&first, 1_000, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        let heads = stored_heads(&store, &["a", "b"]).await;

        let count = async || store.export_txs(None, 0, 1_000).await.unwrap().len();
        let mut sign = |items: &[NewTx], heads: &mut Heads| {
            presign(items, heads, 1_001, &key, "tillgate", &mut ids).unwrap()
        };
        let refused = async |items: &[NewTx], pre: &[Option<Presigned>]| {
            store
                .commit_presigned_sqlite(items, pre, &key)
                .await
                .unwrap()
                .is_none()
        };
        // Stale: signed against the heads before `first`.
        let a2 = [item("a", "k2")];
        let mut stale = Heads::from([("a".into(), Head::default())]);
        assert!(refused(&a2, &sign(&a2, &mut stale)).await);
        // A used key (k1 of "a") at the current head.
        let a1 = [item("a", "k1")];
        assert!(refused(&a1, &sign(&a1, &mut heads.clone())).await);
        // Two rows of "a" that do not follow each other.
        let a2_a3 = [item("a", "k2"), item("a", "k3")];
        let mut pre = sign(&a2_a3[..1], &mut heads.clone());
        pre.extend(sign(&a2_a3[1..], &mut heads.clone()));
        assert!(refused(&a2_a3, &pre).await);
        // Fewer presigned rows than items.
        let a2_b2 = [item("a", "k2"), item("b", "k2")];
        assert!(refused(&a2_b2, &sign(&a2_b2[..1], &mut heads.clone())).await);
        assert_eq!(count().await, 2, "nothing written by the refused batches");
        assert_eq!(stored_heads(&store, &["a", "b"]).await, heads);

        // Fits: committed as signed, heads moved to the last row of each register.
        let mut expected = heads.clone();
        let batch = vec![item("a", "k2"), item("b", "k2"), item("a", "k3")];
        let pre = sign(&batch, &mut expected);
        let (out, after) = store
            .commit_presigned_sqlite(&batch, &pre, &key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, expected);
        assert_eq!(stored_heads(&store, &["a", "b"]).await, expected);
        assert!(out.iter().zip(&pre).all(|(c, p)| matches!(c,
            Committed::New(r) if Some(&r.id) == p.as_ref().map(|p| &p.row.id))));
        assert_eq!(count().await, 5);
        assert_chains_verify(&store, &trusted).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A database migrated by a newer server (a rolled-back deployment) is refused with
    /// a clear message instead of being served with a schema this server does not know;
    /// nothing in it changes.
    #[tokio::test]
    async fn a_renewal_never_undoes_a_decision_or_another_renewal() {
        let (store, dir) = store_with_registers_a_b("renew-race").await;
        let read_valid_to = 4_000_000_000;
        let key_count = |id: &'static str| {
            let store = store.clone();
            async move {
                sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE activation_id = $1")
                    .bind(id)
                    .fetch_one(&store.pool)
                    .await
                    .unwrap()
                    .try_get::<i64, _>("n")
                    .unwrap()
            }
        };
        // `a` is revoked after the renewal read it as approved.
        sqlx::query("UPDATE activations SET status = 'revoked' WHERE id = 'a'")
            .execute(&store.pool)
            .await
            .unwrap();
        let r = store
            .renew(
                "a",
                Some(&"00".repeat(32)),
                read_valid_to,
                &"22".repeat(32),
                1,
                5_000_000_000,
                "approved",
                9,
            )
            .await
            .unwrap();
        assert_eq!(r, Renewal::RegistrationChanged);
        let a = store.activation("a").await.unwrap().unwrap();
        assert_eq!((a.status.as_str(), a.valid_to), ("revoked", read_valid_to));
        assert_eq!(
            key_count("a").await,
            1,
            "no key added, the old one not replaced"
        );
        assert!(
            store
                .activation_by_key_hash(&"00".repeat(32))
                .await
                .unwrap()
                .unwrap()
                .2
                .is_none(),
            "the old key is not marked replaced"
        );
        // `b` was renewed by someone else meanwhile: its period moved.
        let first = store
            .renew(
                "b",
                None,
                read_valid_to,
                &"33".repeat(32),
                1,
                5_000_000_000,
                "pending",
                9,
            )
            .await
            .unwrap();
        assert_eq!(first, Renewal::Renewed);
        let second = store
            .renew(
                "b",
                None,
                read_valid_to,
                &"44".repeat(32),
                1,
                6_000_000_000,
                "pending",
                10,
            )
            .await
            .unwrap();
        assert_eq!(second, Renewal::RegistrationChanged);
        let b = store.activation("b").await.unwrap().unwrap();
        assert_eq!(b.valid_to, 5_000_000_000);
        assert_eq!(key_count("b").await, 2, "the first renewal's key only");
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn expired_nonces_are_swept_and_replays_refused() {
        let (store, dir) = store_with_registers_a_b("nonces").await;
        let count = || async {
            sqlx::query("SELECT COUNT(*) AS n FROM dynamic_key_nonces")
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .try_get::<i64, _>("n")
                .unwrap()
        };
        let margin = NONCE_SWEEP_MARGIN_SECS;
        assert!(margin >= 3_600, "covers clocks and windows an hour apart");
        assert!(store.use_nonce("kim", "AAAA", 1_010, 1_000).await.unwrap());
        assert!(store.use_nonce("kim", "BBBB", 1_100, 1_020).await.unwrap());
        assert!(
            !store.use_nonce("kim", "BBBB", 1_100, 1_030).await.unwrap(),
            "a replay"
        );
        assert_eq!(count().await, 2, "no sweep within the minute");
        // A minute on, and up to the margin past their expiry: swept, nothing goes. Another
        // process whose clock is behind this one's (or whose window is wider) may still
        // accept these keys, so a replay of AAAA, expired here 3,600 s ago, is refused.
        assert!(store.use_nonce("kim", "CCCC", 9_999, 1_061).await.unwrap());
        assert_eq!(count().await, 3);
        assert!(
            store
                .use_nonce("kim", "DDDD", 9_999, 1_010 + margin)
                .await
                .unwrap()
        );
        assert_eq!(
            count().await,
            4,
            "swept, but nothing is past the margin yet"
        );
        assert!(
            !store
                .use_nonce("kim", "AAAA", 1_010, 1_010 + margin)
                .await
                .unwrap(),
            "a replay within the margin"
        );
        // Past the margin: the nonces that expired at 1,010 and 1,100 go, the live ones stay.
        let later = 1_100 + margin + 1;
        assert!(store.use_nonce("kim", "EEEE", 9_999, later).await.unwrap());
        assert_eq!(count().await, 3, "CCCC, DDDD, EEEE");
        assert!(!store.use_nonce("kim", "CCCC", 9_999, later).await.unwrap());
        assert!(
            store.use_nonce("kim", "AAAA", 1_200, later).await.unwrap(),
            "expired and swept"
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let (store, dir) = store_with_registers_a_b("newer-schema").await;
        sqlx::query(
            "INSERT INTO tillgate_migrations (version, name, applied_at) VALUES (99, 'later', 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        store.close().await;
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let err = Store::connect(&url, 2).await.err().unwrap().to_string();
        assert!(
            err.contains(&format!(
                "schema version 99, newer than this tillgate-server knows ({})",
                schema_version()
            )),
            "{err}"
        );
        let again = Store::connect(&url, 2).await.err().unwrap().to_string();
        assert_eq!(again, err);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn key_row(kid: &str, created_at: i64, signs_from: Option<i64>) -> SigningKeyRow {
        SigningKeyRow {
            kid: kid.into(),
            seed: Some(String::new()),
            public_key: String::new(),
            created_at,
            signs_from,
            retired_at: None,
        }
    }

    /// Of the keys whose start has come, the one with the latest start signs; a key
    /// published only never does; a key whose start is not after its creation signs at
    /// once whatever the reader's clock.
    #[test]
    fn the_key_whose_start_came_last_signs() {
        let signer = |rows: &[SigningKeyRow], now| signer_at(rows, now).map(|r| r.kid.clone());
        let mut rows = vec![
            key_row("a", 100, Some(100)),
            key_row("b", 200, None),
            key_row("c", 300, Some(1_000)),
        ];
        assert_eq!(signer(&rows, 150).as_deref(), Some("a"));
        assert_eq!(signer(&rows, 999).as_deref(), Some("a"));
        assert_eq!(next_signing_start(&rows, 999), Some(1_000));
        assert_eq!(signer(&rows, 1_000).as_deref(), Some("c"));
        assert_eq!(next_signing_start(&rows, 1_000), None);
        // `b` activated later than `c`'s start: it signs from its own start on.
        rows[1].signs_from = Some(2_000);
        assert_eq!(signer(&rows, 1_999).as_deref(), Some("c"));
        assert_eq!(signer(&rows, 2_000).as_deref(), Some("b"));
        // Retired keys never sign.
        rows[1].retired_at = Some(2_500);
        assert_eq!(signer(&rows, 3_000).as_deref(), Some("c"));
        // Created "in the future" (a clock ahead of this one) to sign at once: it does.
        rows.push(key_row("d", 5_000, Some(5_000)));
        assert_eq!(signer(&rows, 4_000).as_deref(), Some("d"));
        // The same start: the newest created, then the greatest kid.
        let same = [key_row("x", 10, Some(10)), key_row("y", 11, Some(10))];
        assert_eq!(signer(&same, 20).as_deref(), Some("y"));
        let same = [key_row("y", 10, Some(10)), key_row("x", 10, Some(10))];
        assert_eq!(signer(&same, 20).as_deref(), Some("y"));
        assert_eq!(signer(&[key_row("p", 10, None)], 20), None);
        // A key held offline never signs, even given a start (a database edited by hand).
        let mut offline = key_row("o", 30, Some(30));
        offline.seed = None;
        let rows = [key_row("a", 10, Some(10)), offline];
        assert_eq!(signer(&rows, 40).as_deref(), Some("a"));
        assert_eq!(
            server_signer_at(&rows[1..], 40).map(|r| r.kid.as_str()),
            None
        );
        assert_eq!(next_signing_start(&rows, 20), None);
        // A server whose clock is behind the admin's, who activated `b` and then
        // retired `a`: `b` signs there too, rather than no key.
        let mut rows = vec![key_row("a", 10, Some(10)), key_row("b", 20, Some(50))];
        rows[0].retired_at = Some(51);
        rows.push(key_row("c", 30, Some(60)));
        rows.push(key_row("p", 40, None));
        assert_eq!(signer(&rows, 45), None);
        let server = server_signer_at(&rows, 45).map(|r| r.kid.as_str());
        assert_eq!(server, Some("b"));
        assert_eq!(
            server_signer_at(&rows, 55).map(|r| r.kid.as_str()),
            Some("b")
        );
        assert_eq!(
            server_signer_at(&rows, 60).map(|r| r.kid.as_str()),
            Some("c")
        );
        assert_eq!(
            server_signer_at(&rows[3..], 60).map(|r| r.kid.as_str()),
            None
        );
    }

    /// Signing keys stored by a version-2 server sign as before once the database is
    /// migrated: each from its creation, the newest one that is not retired signing.
    #[tokio::test]
    async fn signing_keys_of_a_version_2_database_keep_signing() {
        let dir = std::env::temp_dir().join(format!("tillgate-db-v2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        sqlx::any::install_default_drivers();
        let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        for (_, _, sql) in &MIGRATIONS[..2] {
            sqlx::raw_sql(*sql).execute(&mut c).await.unwrap();
        }
        let keys: Vec<SigningKey> = (1..=3u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let b64 = |b: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        sqlx::raw_sql(
            "CREATE TABLE tillgate_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at BIGINT NOT NULL); \
             INSERT INTO tillgate_migrations VALUES (1, 'init', 0), (2, 'product_versions', 0);",
        )
        .execute(&mut c)
        .await
        .unwrap();
        for (i, (key, retired)) in keys.iter().zip([None, None, Some(400i64)]).enumerate() {
            sqlx::query(
                "INSERT INTO signing_keys (kid, seed, public_key, created_at, retired_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(key.kid())
            .bind(b64(&key.seed()))
            .bind(b64(&key.public_key_bytes()))
            .bind(100 * (i as i64 + 1))
            .bind(retired)
            .execute(&mut c)
            .await
            .unwrap();
        }
        sqlx::Connection::close(c).await.unwrap();
        let store = Store::connect(&url, 2).await.unwrap();
        let rows = store.signing_keys().await.unwrap();
        assert!(rows.iter().all(|r| r.signs_from == Some(r.created_at)));
        assert_eq!(
            signer_at(&rows, 1_000).map(|r| r.kid.as_str()),
            Some(keys[1].kid())
        );
        // And the new rules apply: the last key that can sign stays.
        assert!(
            store
                .retire_signing_key(keys[0].kid(), 1_000)
                .await
                .unwrap()
        );
        assert!(
            !store
                .retire_signing_key(keys[1].kid(), 1_000)
                .await
                .unwrap()
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Registrations decided by a version-6 server get their latest decision as the
    /// first of their history; later decisions are numbered after it.
    #[tokio::test]
    async fn decisions_of_a_version_6_database_start_with_the_latest() {
        let dir = std::env::temp_dir().join(format!("tillgate-db-v6-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        sqlx::any::install_default_drivers();
        let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let mut applied = Vec::new();
        for (version, name, sql) in &MIGRATIONS[..6] {
            sqlx::raw_sql(*sql).execute(&mut c).await.unwrap();
            applied.push(format!("({version}, '{name}', 0)"));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE tillgate_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at BIGINT NOT NULL); INSERT INTO tillgate_migrations VALUES {};",
            applied.join(", ")
        )))
        .execute(&mut c)
        .await
        .unwrap();
        // Approved by alice, then revoked by bob: only bob's decision was kept.
        for (id, status, by, notified, note) in [
            (
                "a_revoked",
                "revoked",
                Some("bob"),
                Some(150i64),
                Some("stolen"),
            ),
            ("a_pending", "pending", None, None, None),
            // Approved by alice, then renewed with its descriptor: pending again.
            ("a_renewed", "pending", Some("alice"), Some(120), None),
        ] {
            sqlx::query(
                "INSERT INTO activations (id, production_number, cash_register_name, device_id, \
                 corporate_id, country, application_package, extras, features, valid_from, \
                 valid_to, status, created_at, updated_at, decided_by, decided_at, \
                 authority_notified_at, decision_note) VALUES ($1, $1, 'K', 'd', 'c', 'SE', 'p', \
                 '{}', '[]', 0, 1, $2, 100, 200, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(status)
            .bind(by)
            .bind(by.map(|_| 200i64))
            .bind(notified)
            .bind(note)
            .execute(&mut c)
            .await
            .unwrap();
        }
        sqlx::Connection::close(c).await.unwrap();
        let store = Store::connect(&url, 2).await.unwrap();
        assert_eq!(
            store.decisions("a_revoked").await.unwrap(),
            Some(vec![DecisionRow {
                n: 1,
                status: "revoked".into(),
                decided_by: "bob".into(),
                decided_at: 200,
                authority_notified_at: Some(150),
                note: Some("stolen".into()),
            }])
        );
        assert_eq!(store.decisions("a_pending").await.unwrap(), Some(vec![]));
        let renewed = store.decisions("a_renewed").await.unwrap().unwrap();
        assert_eq!(
            (
                renewed.len(),
                renewed[0].status.as_str(),
                renewed[0].decided_by.as_str()
            ),
            (1, "approved", "alice")
        );
        assert_eq!(store.decisions("a_unknown").await.unwrap(), None);
        // The next decision is number 2, and the first stays as it was.
        let reinstated = store
            .decide(
                "a_pending",
                &["pending"],
                "approved",
                "carol",
                Some(300),
                None,
                300,
            )
            .await
            .unwrap();
        assert!(matches!(reinstated, Some(Ok(_))));
        assert_eq!(store.decisions("a_pending").await.unwrap().unwrap()[0].n, 1);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Products stored by a version-1 server get versions when the database is migrated:
    /// unique within their company, in the order of their change times, never below them.
    #[tokio::test]
    async fn products_of_a_version_1_database_get_versions() {
        let dir = std::env::temp_dir().join(format!("tillgate-db-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        sqlx::any::install_default_drivers();
        let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(MIGRATIONS[0].2)
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE tillgate_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at BIGINT NOT NULL); \
             INSERT INTO tillgate_migrations VALUES (1, 'init', 0); \
             INSERT INTO products (corporate_id, id, body, updated_at, updated_by) VALUES \
             ('X', 'p3', '{}', 100, 'a'), ('X', 'p1', '{}', 100, 'a'), ('X', 'p2', '{}', 100, 'a'), \
             ('X', 'p4', '{}', 101, 'a'), ('X', 'p5', '{}', 200, 'a'), ('Y', 'q1', '{}', 100, 'a');",
        )
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::Connection::close(c).await.unwrap();
        let store = Store::connect(&url, 2).await.unwrap();
        let x = store.product_changes("X", i64::MIN, 100).await.unwrap();
        let got: Vec<(&str, i64, i64)> = x
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.updated_at, r.rve))
            .collect();
        assert_eq!(
            got,
            [
                ("p1", 100, 100),
                ("p2", 100, 101),
                ("p3", 100, 102),
                ("p4", 101, 103),
                ("p5", 200, 200)
            ]
        );
        assert_eq!((x.more, x.rve), (false, 200));
        let y = store.product_changes("Y", i64::MIN, 100).await.unwrap();
        assert_eq!(y.rows[0].rve, 100);
        // The next change of X is above every version, though stamped earlier.
        let row = ProductRow {
            corporate_id: "X".into(),
            id: "p1".into(),
            body: "{}".into(),
            updated_at: 150,
            rve: 0,
        };
        assert_eq!(
            store.upsert_product(&row, "a", None, None).await.unwrap(),
            Ok((false, 201))
        );
        let after = store.product_changes("X", 200, 100).await.unwrap();
        assert_eq!(after.rows.len(), 1);
        assert_eq!(
            (after.rows[0].id.as_str(), after.rows[0].updated_at),
            ("p1", 150)
        );
        // An RVE above every version (a database restored to an earlier state, a
        // register's own clock): everything, from the start.
        let restored = store.product_changes("X", 250, 100).await.unwrap();
        assert_eq!(restored.rows.len(), 5);
        assert_eq!(restored.rve, 201);
        let none = store.product_changes("Z", 250, 100).await.unwrap();
        assert!(none.rows.is_empty());
        assert!(none.rve < 0, "{}", none.rve);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// When SQLite ends a transaction by itself (it rolls back when a COMMIT fails for a
    /// full disk or an I/O error), sqlx's own ROLLBACK fails and it keeps counting the
    /// transaction as open, so it refuses every later BEGIN on that connection. The next
    /// write replaces the writer connection and goes on. (The same through the server,
    /// on a disk that really fills: tests/reliability, `disk_full`.)
    #[tokio::test]
    async fn writer_goes_on_after_sqlite_ended_a_transaction_itself() {
        let (key, trusted) = signer();
        let (store, dir) = store_with_registers_a_b("writer-depth").await;
        let mut ids = tx_ids();
        store
            .commit_batch(&[item("a", "k1")], 1_000, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        {
            let mut conn = store.write_conn().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            // What SQLite does on its own when a COMMIT fails.
            sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
            // sqlx's ROLLBACK on drop now fails: its count stays at one.
        }
        for (n, k) in ["k2", "k3"].into_iter().enumerate() {
            let out = store
                .commit_batch(
                    &[item("a", k), item("b", k)],
                    1_001,
                    &key,
                    "tillgate",
                    &mut ids,
                )
                .await
                .unwrap();
            assert_eq!(out.len(), 2, "batch {n}");
        }
        assert_eq!(store.export_txs(None, 0, 1_000).await.unwrap().len(), 5);
        assert_chains_verify(&store, &trusted).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A batch sent in one round trip whose future is dropped part-way (a cancelled
    /// writer) may leave its transaction open on the writer connection; the next write
    /// ends it first, so nothing half-done is kept and writing goes on.
    #[tokio::test]
    async fn a_batch_dropped_part_way_leaves_nothing_open() {
        let (key, trusted) = signer();
        let (store, dir) = store_with_registers_a_b("dropped").await;
        let mut ids = tx_ids();
        store
            .commit_batch(&[item("a", "k1")], 1_000, &key, "tillgate", &mut ids)
            .await
            .unwrap();

        // By hand: a transaction begun and left open, as a dropped batch leaves it.
        {
            let mut conn = store.write_conn().await.unwrap();
            let WriteConn::Held(w) = &mut conn else {
                panic!("SQLite writes on the held connection")
            };
            w.open = true;
            let c = w.conn.as_mut().unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE; UPDATE activations SET chain_seq = 99 WHERE id = 'a'")
                .execute(c)
                .await
                .unwrap();
        }
        store
            .commit_batch(&[item("a", "k2")], 1_001, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        assert_eq!(
            stored_heads(&store, &["a"]).await["a"].seq,
            2,
            "the 99 was rolled back"
        );

        // A real batch dropped after its first poll: whatever part of it ran, the store
        // stays consistent and the next batch commits.
        let mut expected = stored_heads(&store, &["a"]).await;
        let batch = [item("a", "k3")];
        let pre = presign(&batch, &mut expected, 1_002, &key, "tillgate", &mut ids).unwrap();
        let dropped = tokio::time::timeout(
            std::time::Duration::ZERO,
            store.commit_presigned_sqlite(&batch, &pre, &key),
        )
        .await;
        // Usually dropped while waiting for the database; on a fast answer it finished.
        if let Ok(done) = dropped {
            done.unwrap();
        }
        store
            .commit_batch(
                &[item("a", "k3"), item("a", "k4")],
                1_003,
                &key,
                "tillgate",
                &mut ids,
            )
            .await
            .unwrap();
        let rows = store.list_txs("a", 0, i64::MIN, 100).await.unwrap().rows;
        assert_eq!(rows.len(), 4, "k1..k4, each once");
        assert_chains_verify(&store, &trusted).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Rows signed ahead are used when they continue the heads read under the write
    /// lock, and signed afresh otherwise (stale heads, a replay in the batch, another
    /// key): the chains stay gapless and verify either way.
    #[tokio::test]
    async fn presigned_rows_are_used_only_when_they_fit() {
        let (key, trusted) = signer();
        let other = SigningKey::from_seed(&[8; 32]);
        let (store, dir) = store_with_registers_a_b("presign").await;
        let mut ids = tx_ids();
        let ids_of = |p: &[Option<Presigned>]| -> Vec<Option<String>> {
            p.iter()
                .map(|p| p.as_ref().map(|p| p.row.id.clone()))
                .collect()
        };
        let new_ids = |out: &[Committed]| -> Vec<Option<String>> {
            out.iter()
                .map(|c| match c {
                    Committed::New(r) => Some(r.id.clone()),
                    Committed::Existing(_) | Committed::Refused(_) => None,
                })
                .collect()
        };

        // No expected heads: nothing is presigned; the commit reports the heads.
        let mut expected = Heads::new();
        let batch = vec![item("a", "k1"), item("b", "k1")];
        let pre = presign(&batch, &mut expected, 1_000, &key, "tillgate", &mut ids).unwrap();
        assert_eq!(ids_of(&pre), [None, None]);
        let (_, heads) = store
            .commit_batch_presigned(&batch, &pre, 1_000, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        assert_eq!(heads.len(), 2);
        assert_eq!(heads["a"].seq, 1);

        // Presigned against the current heads: used as they are.
        let mut expected = heads.clone();
        let batch = vec![item("a", "k2"), item("a", "k3"), item("b", "k2")];
        let pre = presign(&batch, &mut expected, 1_001, &key, "tillgate", &mut ids).unwrap();
        assert!(pre.iter().all(Option::is_some));
        let (out, after) = store
            .commit_batch_presigned(&batch, &pre, 1_001, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        assert_eq!(new_ids(&out), ids_of(&pre));
        assert_eq!(after, expected, "the heads the presigning expected");

        // Stale heads (from before the last batch): signed afresh.
        let mut stale = heads.clone();
        let batch = vec![item("a", "k4"), item("b", "k3")];
        let pre = presign(&batch, &mut stale, 1_002, &key, "tillgate", &mut ids).unwrap();
        let (out, _) = store
            .commit_batch_presigned(&batch, &pre, 1_002, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        let used = new_ids(&out);
        assert!(
            used.iter()
                .zip(ids_of(&pre))
                .all(|(u, p)| u.is_some() && *u != p)
        );

        // A replay inside a presigned batch: the stored row comes back, and the rows
        // after it in that register (signed on top of the replay) are signed afresh.
        let (_, now_heads) = store
            .commit_batch_presigned(&[], &[], 1_003, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        assert!(now_heads.is_empty());
        let mut expected = stored_heads(&store, &["a", "b"]).await;
        let batch = vec![item("a", "k4"), item("a", "k5"), item("b", "k4")];
        let pre = presign(&batch, &mut expected, 1_003, &key, "tillgate", &mut ids).unwrap();
        let (out, _) = store
            .commit_batch_presigned(&batch, &pre, 1_003, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        assert!(matches!(out[0], Committed::Existing(_)), "k4 replayed");
        assert_ne!(
            new_ids(&out)[1],
            ids_of(&pre)[1],
            "k5 re-signed after the replay"
        );
        assert_eq!(new_ids(&out)[2], ids_of(&pre)[2], "b's row still fits");

        // Signed by another key than the commit's: signed afresh.
        let mut expected = stored_heads(&store, &["a"]).await;
        let batch = vec![item("a", "k6")];
        let pre = presign(&batch, &mut expected, 1_004, &other, "tillgate", &mut ids).unwrap();
        let (out, _) = store
            .commit_batch_presigned(&batch, &pre, 1_004, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        assert_ne!(new_ids(&out), ids_of(&pre));

        assert_chains_verify(&store, &trusted).await;
        assert_eq!(
            store
                .list_txs("a", 0, i64::MIN, 100)
                .await
                .unwrap()
                .rows
                .len(),
            6
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    /// The versions of a page's rows and the RVE it answers.
    fn versions(page: &TxPage) -> (Vec<(String, i64, i64)>, i64) {
        let rows = page
            .rows
            .iter()
            .map(|r| (r.idempotency_key.clone(), r.created_at, r.rve))
            .collect();
        (rows, page.rve)
    }

    fn v(key: &str, created_at: i64, rve: i64) -> (String, i64, i64) {
        (key.into(), created_at, rve)
    }

    /// Delta sync by RVE never skips a transaction: versions increase in commit order,
    /// also for a sale stamped before an RVE already handed out (a commit that waited
    /// for the register's row, a replica whose clock is behind), and an RVE above the
    /// register's newest version is lowered to it.
    #[tokio::test]
    async fn transaction_versions_follow_commit_order() {
        let (key, trusted) = signer();
        let (store, dir) = store_with_registers_a_b("tx-versions").await;
        let mut ids = tx_ids();
        let mut commit = async |reg: &str, k: &str, now: i64| {
            store
                .commit_batch(&[item(reg, k)], now, &key, "tillgate", &mut ids)
                .await
                .unwrap()
        };
        commit("a", "k1", 1_000).await;
        commit("a", "k2", 1_000).await;
        let all = store.list_txs("a", 0, i64::MIN, 100).await.unwrap();
        assert_eq!(
            versions(&all),
            (vec![v("k1", 1_000, 1_000), v("k2", 1_000, 1_001)], 1_001)
        );
        // Stamped at 900, committed after the RVE 1001 was handed out: still after it.
        commit("a", "k3", 900).await;
        let next = store.list_txs("a", 0, all.rve, 100).await.unwrap();
        assert_eq!(versions(&next), (vec![v("k3", 900, 1_002)], 1_002));
        let none = store.list_txs("a", 0, next.rve, 100).await.unwrap();
        assert_eq!(versions(&none), (vec![], 1_002));
        // An RVE from the register's own clock, above every version, was not handed out
        // here: everything, from the start.
        let ahead = store.list_txs("a", 0, 5_000, 100).await.unwrap();
        assert_eq!(ahead.rows.len(), 3);
        assert_eq!(ahead.rve, 1_002);
        commit("a", "k4", 1_500).await;
        let later = store.list_txs("a", 0, ahead.rve, 100).await.unwrap();
        assert_eq!(versions(&later), (vec![v("k4", 1_500, 1_500)], 1_500));
        // Versions are per register.
        commit("b", "k1", 700).await;
        commit("b", "k2", 700).await;
        commit("b", "k3", 700).await;
        let b = store.list_txs("b", 0, i64::MIN, 100).await.unwrap();
        assert_eq!(b.rve, 702);
        // The database goes back to an earlier state (a restored backup: b's chain ends
        // at k1), and b sells again: the sale gets version 701, below the RVE a client
        // already holds, which is then above b's newest and lists from the start.
        sqlx::raw_sql(
            "DELETE FROM transactions WHERE activation_id = 'b' AND seq > 1; \
             UPDATE activations SET chain_seq = 1, chain_rve = 700 WHERE id = 'b'",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query("UPDATE activations SET chain_head = $1 WHERE id = 'b'")
            .bind(tillgate_core::receipt_link(&b.rows[0].receipt))
            .execute(&store.pool)
            .await
            .unwrap();
        commit("b", "k4", 700).await;
        let after_restore = store.list_txs("b", 0, b.rve, 100).await.unwrap();
        assert_eq!(
            versions(&after_restore),
            (vec![v("k1", 700, 700), v("k4", 700, 701)], 701)
        );
        // A register with no transaction answers the start.
        let fresh = store.list_txs("nobody", 0, 5_000, 100).await.unwrap();
        assert_eq!(versions(&fresh), (vec![], 0));
        // Nothing after a sequence number: the newest version, which the caller holds.
        let caught_up = store.list_txs("a", 4, i64::MIN, 100).await.unwrap();
        assert_eq!(versions(&caught_up), (vec![], 1_500));
        // Paging by the RVE alone gives each transaction once, in order.
        let (mut rve, mut got) = (i64::MIN, Vec::new());
        loop {
            let page = store.list_txs("a", 0, rve, 1).await.unwrap();
            if page.rows.is_empty() {
                break;
            }
            got.extend(page.rows.iter().map(|r| r.idempotency_key.clone()));
            rve = page.rve;
        }
        assert_eq!(got, ["k1", "k2", "k3", "k4"]);
        assert_chains_verify(&store, &trusted).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A version-4 database gets its transactions' versions from their stamps, in
    /// sequence order per register, and the registers' newest versions.
    #[tokio::test]
    async fn transactions_of_a_version_4_database_get_versions() {
        let (key, trusted) = signer();
        let (store, dir) = store_with_registers_a_b("tx-v4").await;
        let mut ids = tx_ids();
        for (reg, k) in [
            ("a", "k1"),
            ("a", "k2"),
            ("a", "k3"),
            ("a", "k4"),
            ("b", "k1"),
        ] {
            store
                .commit_batch(&[item(reg, k)], 1, &key, "tillgate", &mut ids)
                .await
                .unwrap();
        }
        // Back to schema 4, with stamps that went back once and repeated.
        sqlx::raw_sql(
            "DROP INDEX transactions_by_version; \
             ALTER TABLE transactions DROP COLUMN rve; \
             ALTER TABLE activations DROP COLUMN chain_rve; \
             CREATE INDEX transactions_by_time ON transactions (activation_id, created_at); \
             DELETE FROM tillgate_migrations WHERE version = 5; \
             UPDATE transactions SET created_at = CASE seq WHEN 1 THEN 100 WHEN 2 THEN 100 \
             WHEN 3 THEN 99 ELSE 200 END WHERE activation_id = 'a'; \
             UPDATE transactions SET created_at = 50 WHERE activation_id = 'b';",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        store.close().await;
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        let a = store.list_txs("a", 0, i64::MIN, 100).await.unwrap();
        assert_eq!(
            versions(&a),
            (
                vec![
                    v("k1", 100, 100),
                    v("k2", 100, 101),
                    v("k3", 99, 102),
                    v("k4", 200, 200)
                ],
                200
            )
        );
        let b = store.list_txs("b", 0, i64::MIN, 100).await.unwrap();
        assert_eq!(versions(&b), (vec![v("k1", 50, 50)], 50));
        // The next sale continues from the newest version.
        store
            .commit_batch(&[item("a", "k5")], 150, &key, "tillgate", &mut ids)
            .await
            .unwrap();
        let next = store.list_txs("a", 0, 200, 100).await.unwrap();
        assert_eq!(versions(&next), (vec![v("k5", 150, 201)], 201));
        assert_chains_verify(&store, &trusted).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
