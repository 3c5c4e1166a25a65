//! Shared state: configuration, storage, clock, signing keys, the group-commit writer,
//! rate limiters and metrics.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use tillgate_core::{ApiKey, ApiKeyHash, Jwk, Jwks, SigningKey, TrustedKeys};
use tokio::sync::{mpsc, oneshot};

use crate::cache::{KeyCache, SignedTimeCache};
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{Backend, Committed, Heads, NewTx, Presigned, Store, presign};
use crate::error::AppError;
use crate::ids;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// How long the signing keys read from the database are reused before re-reading (so a
/// rotation made by the CLI or another process is picked up).
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most entries each cache holds (a few hundred bytes each).
const CACHE_MAX_ENTRIES: usize = 50_000;

/// The setting holding the generated admin key's hash.
const ADMIN_KEY_SETTING: &str = "admin_key_sha256";

/// The setting holding the RmSystem (canonical form) of the server that started last on
/// the database: `admin add-staff --password-stdin` derives keys with it, and refuses to
/// run with another.
pub const RM_SYSTEM_SETTING: &str = "rm_system";

/// The keys in use: of the keys that are not retired, every one is published, and the
/// one whose signing start came last signs (`db::server_signer_at`; a key published
/// only, or whose start has not come, signs nothing).
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// The key that signs descriptors, receipts and timestamps.
    pub signing: SigningKey,
    /// When a published key's signing start comes (server clock, Unix seconds): the
    /// keys are read again then, so a scheduled key starts signing on time.
    pub next_start: Option<i64>,
    /// The published public keys (`/.well-known/jwks.json`).
    pub jwks: Jwks,
    /// The same keys, for verifying what this server signed.
    pub trusted: TrustedKeys,
}

/// Application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The parts of [`AppState`].
pub struct Inner {
    /// Configuration.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub metrics: Metrics,
    /// Limits activation requests per client address.
    pub activation_limiter: RateLimiter,
    /// Limits failed authentications of register credentials per client address.
    pub auth_limiter: RateLimiter,
    /// Limits failed authentications with the admin key per client address, apart from
    /// the registers' (a till failing behind the same address does not lock the admin out).
    pub admin_limiter: RateLimiter,
    /// Limits failed authentications with dynamic staff keys per client address, apart
    /// from the server-drawn keys' (a till failing with a wrong API key behind the same
    /// address does not lock its shop's staff out).
    pub staff_limiter: RateLimiter,
    /// Approved registrations by API-key hash, kept for `key_cache_secs`.
    pub key_cache: KeyCache,
    /// Signed server times by ProductionNumber, for the second they state.
    pub signed_times: SignedTimeCache,
    admin_key_hash: ApiKeyHash,
    keys: Mutex<Option<(Instant, Arc<KeyRing>)>>,
    /// The database's schema version when it is newer than this server's (another
    /// process migrated it since this one started), else 0; read with the signing keys.
    schema_newer: AtomicI64,
    /// The group-commit writers; a register's transactions go to `writers[hash % n]`.
    writers: Vec<mpsc::Sender<WriterMsg>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// What starting the state produced besides the state itself.
#[derive(Debug)]
pub struct Started {
    /// The admin key generated at first start, to print once; `None` when the key comes
    /// from the configuration or was generated earlier.
    pub generated_admin_key: Option<ApiKey>,
    /// Ends when every writer task has; await it after [`AppState::shutdown`].
    pub writer: tokio::task::JoinHandle<()>,
}

// Nearly every message is a job: boxing it would add an allocation per sale to spare the
// rare `Shutdown` its size.
#[allow(clippy::large_enum_variant)]
enum WriterMsg {
    Job(NewTx, oneshot::Sender<Result<Committed, ()>>),
    Shutdown(oneshot::Sender<()>),
}

impl AppState {
    /// Connects to the database, applies migrations, makes sure a signing key and an
    /// admin key exist, and starts the group-commit writer. Refuses a SQLite database
    /// marked as moved to PostgreSQL ([`crate::transfer::moved_marker`]) or as being
    /// restored ([`crate::backup::restoring_marker`]).
    pub async fn start(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<(AppState, Started), String> {
        if config.key_cache_secs > crate::config::KEY_CACHE_SECS_MAX {
            return Err(format!(
                "TILLGATE_KEY_CACHE_SECS (--key-cache-secs) is {}, more than {}: a revocation or \
                 a renewal made through another process would go unseen here for that long",
                config.key_cache_secs,
                crate::config::KEY_CACHE_SECS_MAX
            ));
        }
        if !(1..=crate::config::BATCH_MAX_MAX).contains(&config.batch_max) {
            return Err(format!(
                "TILLGATE_BATCH_MAX (--batch-max) is {}, not within 1..={}",
                config.batch_max,
                crate::config::BATCH_MAX_MAX
            ));
        }
        let url = config.effective_database_url();
        // Never a SQLite database whose deployment was moved to PostgreSQL, nor one that a
        // restore left half replaced.
        crate::transfer::refuse_if_moved(&url)?;
        crate::backup::refuse_if_restoring(&url)?;
        if config.database_url.is_none() {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                format!("cannot create data dir {}: {e}", config.data_dir.display())
            })?;
        }
        let cipher = crate::seal::from_config(&config)?;
        let store = Store::connect(&url, config.db_pool_size)
            .await
            .map_err(|e| format!("cannot open the database: {e}"))?
            .with_seed_cipher(cipher);
        if let Some(path) = crate::db::sqlite_path(&url) {
            restrict_permissions(&path);
        }
        let now = clock.now();
        let init = store
            .init(now)
            .await
            .map_err(|e| format!("cannot initialise the database: {e}"))?;
        // For the admin CLI, which derives staff keys with the server's RmSystem. Servers
        // sharing a database should answer to one RmSystem: the last one started wins.
        let rm_system = config.rm_system.to_string();
        let recorded = store
            .setting(RM_SYSTEM_SETTING)
            .await
            .map_err(|e| format!("cannot initialise the database: {e}"))?;
        if let Some(recorded) = recorded.filter(|r| *r != rm_system) {
            tracing::warn!(
                recorded,
                rm_system,
                "another server recorded another RmSystem in this database; staff keys derived                  for one fail on servers of the other"
            );
        }
        store
            .set_setting(RM_SYSTEM_SETTING, &rm_system)
            .await
            .map_err(|e| format!("cannot initialise the database: {e}"))?;
        if let Some(kid) = init.created_signing_key {
            tracing::info!(kid, "created the first signing key");
        }
        if init.sealed_signing_keys > 0 {
            tracing::info!(
                count = init.sealed_signing_keys,
                "sealed signing-key seeds stored in plain text"
            );
        }

        let mut generated_admin_key = None;
        let admin_key_hash = match &config.admin_key {
            Some(k) => ApiKey::parse(k)
                .map_err(|e| format!("TILLGATE_ADMIN_KEY is not a valid key: {e}"))?
                .hash(),
            None => {
                let stored = store
                    .setting(ADMIN_KEY_SETTING)
                    .await
                    .map_err(|e| e.to_string())?;
                match stored {
                    Some(hex) => parse_hex_hash(&hex).ok_or("stored admin key hash is corrupt")?,
                    None => {
                        let key = tillgate_core::generate_api_key_with(
                            40,
                            tillgate_core::ApiKeyAlphabet::UrlSafe,
                        )
                        .map_err(|e| e.to_string())?;
                        let written = store
                            .set_setting_once(ADMIN_KEY_SETTING, &key.hash().to_hex())
                            .await
                            .map_err(|e| e.to_string())?;
                        if written {
                            let h = key.hash();
                            generated_admin_key = Some(key);
                            h
                        } else {
                            // Another process generated one first.
                            let hex = store
                                .setting(ADMIN_KEY_SETTING)
                                .await
                                .map_err(|e| e.to_string())?
                                .ok_or("admin key hash vanished")?;
                            parse_hex_hash(&hex).ok_or("stored admin key hash is corrupt")?
                        }
                    }
                }
            }
        };

        let writer_count = match (config.writers, store.backend()) {
            (0, Backend::Sqlite) => 1,
            (0, Backend::Postgres) => 4,
            (n, _) => n,
        };
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..writer_count)
            .map(|_| mpsc::channel(config.batch_max.max(1) * 8))
            .unzip();
        let state = AppState {
            inner: Arc::new(Inner {
                activation_limiter: RateLimiter::new(config.activation_rate_per_minute),
                auth_limiter: RateLimiter::new(config.auth_failure_rate_per_minute),
                admin_limiter: RateLimiter::new(config.auth_failure_rate_per_minute),
                staff_limiter: RateLimiter::new(config.auth_failure_rate_per_minute),
                key_cache: KeyCache::new(
                    Duration::from_secs(config.key_cache_secs),
                    CACHE_MAX_ENTRIES,
                ),
                signed_times: SignedTimeCache::new(Duration::from_secs(2), CACHE_MAX_ENTRIES),
                config,
                store,
                clock,
                metrics: Metrics::default(),
                admin_key_hash,
                keys: Mutex::new(None),
                schema_newer: AtomicI64::new(0),
                writers: senders,
            }),
        };
        state.refresh_keys().await.map_err(|e| e.to_string())?;
        let tasks: Vec<_> = receivers
            .into_iter()
            .map(|rx| tokio::spawn(writer_loop(state.clone(), rx)))
            .collect();
        let writer = tokio::spawn(async move {
            for t in tasks {
                let _ = t.await;
            }
        });
        Ok((
            state,
            Started {
                generated_admin_key,
                writer,
            },
        ))
    }

    /// Now, Unix seconds, from the configured clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Whether `presented` is the admin key (constant-time comparison of hashes).
    pub fn is_admin_key(&self, presented: &str) -> bool {
        ApiKeyHash::of_key(presented).is_ok_and(|h| h.ct_eq(&self.admin_key_hash))
    }

    /// The signing keys, re-read from the database at most every few seconds, and when
    /// a key's signing start comes.
    pub async fn keys(&self) -> Result<Arc<KeyRing>, AppError> {
        let now = self.now();
        if let Ok(guard) = self.keys.lock()
            && let Some((at, ring)) = guard.as_ref()
            && at.elapsed() < KEY_CACHE_TTL
            && ring.next_start.is_none_or(|t| now < t)
        {
            return Ok(ring.clone());
        }
        self.refresh_keys().await
    }

    /// Re-reads the signing keys now, and the database's schema version (see
    /// [`schema_newer`](Self::schema_newer)).
    pub async fn refresh_keys(&self) -> Result<Arc<KeyRing>, AppError> {
        // First: the keys' table may be what a newer schema changed.
        self.check_schema().await?;
        let rows = self.store.signing_keys().await?;
        let now = self.now();
        let signer = crate::db::server_signer_at(&rows, now).map(|r| r.kid.clone());
        let mut signing = None;
        let mut jwks = Jwks::default();
        let mut trusted = TrustedKeys::new();
        for row in rows.iter().filter(|r| r.retired_at.is_none()) {
            let (jwk, key) = match &row.seed {
                Some(seed) => {
                    let seed = B64
                        .decode(seed)
                        .map_err(|_| AppError::internal("stored signing key is not base64url"))?;
                    let key = SigningKey::from_seed_slice(&seed)
                        .map_err(|e| AppError::internal(format!("stored signing key: {e}")))?;
                    (key.public_jwk(), Some(key))
                }
                // Held offline: published from its public key, never signing.
                None => {
                    let public: [u8; 32] = B64
                        .decode(&row.public_key)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| AppError::internal("stored public key is not 32 bytes"))?;
                    let kid = tillgate_core::jwk_thumbprint(&public);
                    (Jwk::from_public_key(&public, Some(kid)), None)
                }
            };
            if jwk.kid.as_deref() != Some(row.kid.as_str()) {
                return Err(AppError::internal(
                    "stored signing key does not match its kid",
                ));
            }
            trusted
                .add_jwk(&jwk)
                .map_err(|e| AppError::internal(format!("stored signing key: {e}")))?;
            jwks.keys.push(jwk);
            if signer.as_ref() == Some(&row.kid) {
                signing = key;
            }
        }
        let signing = signing.ok_or_else(|| AppError::internal("no signing key can sign now"))?;
        let ring = Arc::new(KeyRing {
            signing,
            next_start: crate::db::next_signing_start(&rows, now),
            jwks,
            trusted,
        });
        if let Ok(mut guard) = self.keys.lock() {
            *guard = Some((Instant::now(), ring.clone()));
        }
        Ok(ring)
    }

    /// Reads the database's schema version and records whether it is newer than this
    /// server's; logs an error when it becomes so (once, not at every re-read).
    async fn check_schema(&self) -> Result<(), AppError> {
        let stored = self.store.stored_schema_version().await?;
        let known = crate::db::schema_version();
        let newer = if stored > known { stored } else { 0 };
        let before = self.schema_newer.swap(newer, Ordering::Relaxed);
        if newer != 0 && before != newer {
            tracing::error!(
                database = stored,
                server = known,
                "the database was migrated to a newer schema by another process: this \
                 server now answers not ready and refuses writes (503 schema_newer); \
                 replace it with the newer version"
            );
        } else if newer == 0 && before != 0 {
            tracing::warn!(
                database = stored,
                server = known,
                "the database's schema is one this server knows again: writes accepted"
            );
        }
        Ok(())
    }

    /// The database's schema version if another process migrated it past the schema this
    /// server knows since it started (read with the signing keys, every few seconds). A
    /// server that goes on writing then could store rows the newer version does not
    /// expect: it answers `/readyz` not ready and refuses writes
    /// ([`refuse_if_schema_newer`](Self::refuse_if_schema_newer), called by every
    /// handler that writes and by [`commit`](Self::commit)).
    pub fn schema_newer(&self) -> Option<i64> {
        Some(self.schema_newer.load(Ordering::Relaxed)).filter(|v| *v != 0)
    }

    /// 503 `schema_newer` when the database's schema is newer than this server's,
    /// checked again if the last check is more than a few seconds old (with the signing
    /// keys; a failure to read them is left to the request, which needs the database too).
    pub async fn refuse_if_schema_newer(&self) -> Result<(), AppError> {
        let _ = self.keys().await;
        match self.schema_newer() {
            None => Ok(()),
            Some(_) => Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "schema_newer",
                "the database was migrated by a newer tillgate-server; this one no longer \
                 writes to it: retry, to reach an upgraded server",
            )),
        }
    }

    /// Hands a transaction to the group-commit writer and waits until it is committed
    /// (or found already committed under the same idempotency key).
    pub async fn commit(&self, item: NewTx) -> Result<Committed, AppError> {
        self.refuse_if_schema_newer().await?;
        let (tx, rx) = oneshot::channel();
        let unavailable = || {
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the transaction could not be stored; retry with the same Idempotency-Key",
            )
        };
        self.writer_of(&item.activation_id)
            .send(WriterMsg::Job(item, tx))
            .await
            .map_err(|_| unavailable())?;
        rx.await
            .map_err(|_| unavailable())?
            .map_err(|_| unavailable())
    }

    /// The writer of a register: always the same one, so its chain is built in order.
    fn writer_of(&self, activation_id: &str) -> &mpsc::Sender<WriterMsg> {
        // std's hasher with fixed keys: the same writer for an id for the process's life.
        let h = std::hash::BuildHasher::hash_one(
            &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
            activation_id,
        );
        &self.writers[(h % self.writers.len() as u64) as usize]
    }

    /// Whether every transaction writer is still running. A writer that ended (after
    /// [`shutdown`](Self::shutdown), or by a defect) answers every sale of its registers
    /// 503, so the process is then not ready (`/readyz`).
    pub fn writers_running(&self) -> bool {
        self.writers.iter().all(|w| !w.is_closed())
    }

    /// Stops the writers after each has committed everything queued so far.
    pub async fn shutdown(&self) {
        for writer in &self.writers {
            let (tx, rx) = oneshot::channel();
            if writer.send(WriterMsg::Shutdown(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
}

/// A job of the writer: the transaction and where its outcome goes.
type Job = (NewTx, oneshot::Sender<Result<Committed, ()>>);

/// At most this many registers' expected chain heads are kept by a writer (a hint for
/// presigning; forgetting them only means signing inside the commit).
const EXPECTED_HEADS_MAX: usize = 100_000;

/// A batch handed to its commit, which runs while the writer signs the next one.
struct InFlight {
    /// Ends with the registers' chain heads after the batch (`None` if it failed).
    commit: tokio::task::JoinHandle<Option<Heads>>,
    /// The heads presigning expected after the batch, for the registers it knew.
    predicted: Heads,
}

/// The group-commit writer. While a batch is being committed, the transactions that
/// arrive are signed one by one against the chain heads the writer expects
/// (`db::presign`); when the commit ends, everything gathered (up to `batch_max`) is
/// handed to the next commit at once. So signing overlaps the previous commit instead
/// of lengthening the next, and a batch holds whatever arrived during one commit. One
/// batch is in flight at a time, so commits stay in order; the commit checks every
/// presigned row against the heads it reads under the write lock and signs afresh what
/// does not fit (a replay, a failed batch, another process), so the hint never changes
/// a result.
async fn writer_loop(state: AppState, mut rx: mpsc::Receiver<WriterMsg>) {
    let max = state.config.batch_max.max(1);
    let mut expected = Heads::new();
    let mut inflight: Option<InFlight> = None;
    let mut jobs: Vec<Job> = Vec::with_capacity(max);
    let mut presigned: Vec<Option<Presigned>> = Vec::with_capacity(max);
    let mut stop = None;
    let mut closed = false;
    loop {
        if inflight.is_none() && !jobs.is_empty() {
            // Nothing being committed: commit what is gathered.
            let predicted: Heads = jobs
                .iter()
                .filter_map(|(item, _)| {
                    let id = &item.activation_id;
                    expected.get(id).map(|h| (id.clone(), h.clone()))
                })
                .collect();
            let batch = std::mem::replace(&mut jobs, Vec::with_capacity(max));
            let signed = std::mem::replace(&mut presigned, Vec::with_capacity(max));
            inflight = Some(InFlight {
                commit: tokio::spawn(write_batch(state.clone(), batch, signed)),
                predicted,
            });
            if expected.len() > EXPECTED_HEADS_MAX {
                expected.clear();
            }
        }
        if stop.is_some() || closed {
            break;
        }
        let room = jobs.len() < max;
        tokio::select! {
            biased;
            outcome = async {
                match inflight.as_mut() {
                    Some(f) => (&mut f.commit).await,
                    None => std::future::pending().await,
                }
            }, if inflight.is_some() =>
            {
                if let Some(done) = inflight.take() {
                    learn(&mut expected, &done.predicted, outcome.ok().flatten(), &jobs);
                }
            }
            msg = rx.recv(), if room || inflight.is_none() => match msg {
                None => closed = true,
                Some(WriterMsg::Shutdown(done)) => stop = Some(done),
                Some(WriterMsg::Job(item, reply)) => {
                    let signed = match state.keys().await {
                        Ok(ring) => presign(
                            std::iter::once(&item),
                            &mut expected,
                            state.now(),
                            &ring.signing,
                            &state.config.issuer,
                            ids::transaction_id,
                        )
                        .ok()
                        .and_then(|mut one| one.pop().flatten()),
                        Err(_) => None,
                    };
                    jobs.push((item, reply));
                    presigned.push(signed);
                }
            },
        }
    }
    // Stopping: closed at once to new jobs (a sale sent now is answered 503, retry with
    // the same key; `/readyz` says not ready from here on), then the commit in flight
    // ends, then whatever was already queued is committed.
    rx.close();
    if let Some(f) = inflight.take() {
        let _ = f.commit.await;
    }
    while let Ok(msg) = rx.try_recv() {
        if let WriterMsg::Job(item, reply) = msg {
            jobs.push((item, reply));
        }
    }
    if !jobs.is_empty() {
        write_batch(state.clone(), jobs, Vec::new()).await;
    }
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// Updates the expected heads once a batch's commit has ended: `outcome` holds its
/// registers' heads (`None`: it failed), `predicted` what presigning had assumed. A
/// register also in the batch just presigned (`next`) keeps that batch's expectation
/// if the assumption held, and is forgotten if not (that batch will be signed afresh
/// where it does not fit, and the register learnt again from its outcome).
fn learn(expected: &mut Heads, predicted: &Heads, outcome: Option<Heads>, next: &[Job]) {
    let in_next = |id: &str| next.iter().any(|(item, _)| item.activation_id == id);
    match outcome {
        Some(heads) => {
            for (id, head) in heads {
                if in_next(&id) {
                    if predicted.get(&id) != Some(&head) {
                        expected.remove(&id);
                    }
                } else {
                    expected.insert(id, head);
                }
            }
        }
        None => {
            for id in predicted.keys() {
                expected.remove(id);
            }
        }
    }
}

/// Commits a batch and answers each job; returns the batch's chain heads after it
/// (`None` if the batch as a whole failed).
async fn write_batch(
    state: AppState,
    jobs: Vec<Job>,
    presigned: Vec<Option<Presigned>>,
) -> Option<Heads> {
    let (items, replies): (Vec<NewTx>, Vec<_>) = jobs.into_iter().unzip();
    match commit_items(&state, &items, &presigned).await {
        Ok((results, heads)) => {
            state
                .metrics
                .batches_committed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (result, reply) in results.into_iter().zip(replies) {
                count(&state, &result);
                let _ = reply.send(Ok(result));
            }
            Some(heads)
        }
        Err(e) if items.len() > 1 => {
            // One bad item must not fail its neighbours: retry them one by one.
            tracing::warn!(error = %e, size = items.len(), "batch failed; retrying items one by one");
            state
                .metrics
                .batches_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (item, reply) in items.into_iter().zip(replies) {
                match commit_items(&state, std::slice::from_ref(&item), &[]).await {
                    Ok((mut r, _)) => match r.pop() {
                        Some(result) => {
                            count(&state, &result);
                            let _ = reply.send(Ok(result));
                        }
                        None => {
                            let _ = reply.send(Err(()));
                        }
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "transaction could not be committed");
                        let _ = reply.send(Err(()));
                    }
                }
            }
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "transaction could not be committed");
            state
                .metrics
                .batches_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for reply in replies {
                let _ = reply.send(Err(()));
            }
            None
        }
    }
}

fn count(state: &AppState, result: &Committed) {
    let counter = match result {
        Committed::New(_) => &state.metrics.transactions_committed,
        Committed::Existing(_) => &state.metrics.transactions_replayed,
        Committed::Refused(_) => &state.metrics.transactions_refused,
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

async fn commit_items(
    state: &AppState,
    items: &[NewTx],
    presigned: &[Option<Presigned>],
) -> Result<(Vec<Committed>, Heads), String> {
    let ring = state.keys().await.map_err(|e| e.to_string())?;
    state
        .store
        .commit_batch_presigned(
            items,
            presigned,
            state.now(),
            &ring.signing,
            &state.config.issuer,
            ids::transaction_id,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Parses a stored lower-case hex SHA-256 key hash.
pub(crate) fn parse_hex_hash(hex: &str) -> Option<ApiKeyHash> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(ApiKeyHash(out))
}

#[cfg(unix)]
fn restrict_permissions(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    // The database holds the signing keys: readable by the service user only.
    // `<file>-wal` and `<file>-shm`, whatever the file is named.
    for p in [
        path.to_path_buf(),
        crate::backup::beside(path, "-wal"),
        crate::backup::beside(path, "-shm"),
    ] {
        if p.exists() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &std::path::Path) {}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    /// The database and its `-wal` and `-shm` files become owner-only, for a file not
    /// named `*.db` too.
    #[test]
    fn the_database_files_are_made_private_whatever_their_name() {
        let dir = std::env::temp_dir().join(format!("tillgate-state-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["pos.sqlite", "tillgate"] {
            let db = dir.join(name);
            let files = [
                db.clone(),
                crate::backup::beside(&db, "-wal"),
                crate::backup::beside(&db, "-shm"),
            ];
            for f in &files {
                std::fs::write(f, b"").unwrap();
                std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            super::restrict_permissions(&db);
            for f in &files {
                let mode = std::fs::metadata(f).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", f.display());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
