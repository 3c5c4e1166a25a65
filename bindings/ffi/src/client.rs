//! The `tillgate-client` API: async calls become Kotlin `suspend`, Swift `async` and
//! Python `async` functions (run on uniffi's tokio integration, which reqwest needs).

use std::sync::Arc;
use std::time::Duration;

use tillgate_client as client;
use tillgate_core as core;

use crate::records::{
    ActivationRequest, FieldError, ReceiptClaims, Transaction, VerifiedDescriptor,
};
use crate::{Result, TillgateError, TrustedKeys, read};

impl From<client::ClientError> for TillgateError {
    fn from(e: client::ClientError) -> Self {
        let (status, retry_after) = (e.http_status(), e.retry_after());
        let (is_transient, is_auth) = (e.is_transient(), e.is_auth());
        let server_fields = match &e {
            client::ClientError::Api { fields, .. } => {
                fields.iter().cloned().map(FieldError::from).collect()
            }
            _ => Vec::new(),
        };
        let mut err = match e {
            client::ClientError::Core(e) => return e.into(),
            e => TillgateError::plain(e.code(), e.to_string()),
        };
        let TillgateError::Failed {
            fields,
            http_status,
            retry_after_ms,
            transient,
            auth,
            ..
        } = &mut err;
        *fields = server_fields;
        *http_status = status;
        *retry_after_ms = retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        *transient = is_transient;
        *auth = is_auth;
        err
    }
}

/// How a [`Client`] talks to the server. `None` fields use the client's defaults
/// (5 s per request, 3 s to connect, answers of at most 8 MiB, transactions listed 100
/// per page). Printing it (Kotlin's `toString()`, Python's `str()`/`repr()`, Swift's
/// `description`) never shows a URL-path token or password in `base_url`.
#[derive(Clone, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct ClientConfig {
    /// The server's base URL, e.g. `https://pos.example`.
    pub base_url: String,
    /// Time a whole request may take, milliseconds.
    #[uniffi(default = None)]
    pub timeout_ms: Option<u64>,
    /// Time to establish a connection, milliseconds.
    #[uniffi(default = None)]
    pub connect_timeout_ms: Option<u64>,
    /// If set, a descriptor must be bound to this device.
    #[uniffi(default = None)]
    pub device_id: Option<String>,
    /// If set, a descriptor must name this application package.
    #[uniffi(default = None)]
    pub application_package: Option<String>,
    /// Tolerance for clock checks, seconds.
    #[uniffi(default = None)]
    pub clock_tolerance_secs: Option<i64>,
    /// Largest answer read from the server, bytes; a larger one fails with
    /// `invalid_response`.
    #[uniffi(default = None)]
    pub max_response_bytes: Option<u64>,
    /// Transactions asked for per page when listing them (`listTransactions`, the
    /// history checks), 1–1000 (else `invalid_config`). A page whose answer is over
    /// `max_response_bytes` is asked for again with half as many, down to one.
    #[uniffi(default = None)]
    pub transaction_page_size: Option<u32>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &client::redact_url(&self.base_url))
            .field("timeout_ms", &self.timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("device_id", &self.device_id)
            .field("application_package", &self.application_package)
            .field("clock_tolerance_secs", &self.clock_tolerance_secs)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("transaction_page_size", &self.transaction_page_size)
            .finish()
    }
}

/// The same text as `Debug`.
impl std::fmt::Display for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The result of an activation (`POST /activations-advanced`). Printing it never shows
/// the API key: `Debug` and `Display` write `<redacted>` in its place, and so do
/// Kotlin's `toString()`, Python's `str()` and `repr()` and Swift's `description` and
/// `debugDescription` (exported below, uniffi calls these Rust implementations).
#[derive(Clone, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct Activation {
    /// The activation's id.
    pub activation_id: String,
    /// The register's ProductionNumber.
    pub production_number: String,
    /// The API key, now set on the client. A secret: store it in the platform keystore.
    pub api_key: String,
    /// `pending` until an administrator approves it.
    pub status: String,
    /// Start of validity (RFC 3339), if the server named it.
    pub valid_from: Option<String>,
    /// End of validity (RFC 3339), if the server named it.
    pub valid_to: Option<String>,
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation")
            .field("activation_id", &self.activation_id)
            .field("production_number", &self.production_number)
            .field("api_key", &"<redacted>")
            .field("status", &self.status)
            .field("valid_from", &self.valid_from)
            .field("valid_to", &self.valid_to)
            .finish()
    }
}

/// The same text as `Debug`: what Kotlin's `toString()`, Python's `str()` and Swift's
/// `description` show.
impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl From<client::Activation> for Activation {
    fn from(a: client::Activation) -> Self {
        Activation {
            activation_id: a.activation_id,
            production_number: a.production_number,
            api_key: a.api_key.expose().to_owned(),
            status: a.status,
            valid_from: a.valid_from,
            valid_to: a.valid_to,
        }
    }
}

/// A successful handshake; the server-signed time is verified and is now the client's
/// trusted time floor.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Handshake {
    /// The activation's status (`approved`).
    pub status: String,
    /// The register's ProductionNumber, if the server named it.
    pub production_number: Option<String>,
    /// Start of the key's validity (RFC 3339).
    pub valid_from: Option<String>,
    /// End of the key's validity (RFC 3339).
    pub valid_to: Option<String>,
    /// The server's verified time, Unix seconds.
    pub server_time: i64,
    /// The signed timestamp (compact JWS), for the app to store.
    pub server_time_jws: String,
}

/// A signed activation code, verified locally against the app's built-in keys.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ActivationCode {
    /// The compact JWS, to store for offline starts.
    pub jws: String,
    /// The verified descriptor.
    pub descriptor: VerifiedDescriptor,
}

/// A transaction as the server stored it, with its signed receipt.
#[derive(Debug, Clone, uniffi::Record)]
pub struct StoredTransaction {
    /// The server's id.
    pub id: String,
    /// Gapless per-register sequence number, from 1.
    pub sequence: u64,
    /// The signed receipt (compact JWS).
    pub receipt: String,
    /// The transaction as sent.
    pub transaction: Transaction,
}

impl From<client::StoredTransaction> for StoredTransaction {
    fn from(s: client::StoredTransaction) -> Self {
        StoredTransaction {
            id: s.id,
            sequence: s.sequence,
            receipt: s.receipt,
            transaction: s.transaction.into(),
        }
    }
}

/// A register's stored history, verified ([`Client::verify_history`]).
#[derive(Debug, Clone, uniffi::Record)]
pub struct VerifiedHistory {
    /// Every stored transaction, in sequence order.
    pub transactions: Vec<StoredTransaction>,
    /// The claims of their receipts, in the same order.
    pub receipts: Vec<ReceiptClaims>,
}

impl From<client::VerifiedHistory> for VerifiedHistory {
    fn from(h: client::VerifiedHistory) -> Self {
        VerifiedHistory {
            transactions: h.transactions.into_iter().map(Into::into).collect(),
            receipts: h.receipts.into_iter().map(Into::into).collect(),
        }
    }
}

/// The body of a renewal (`POST /activations/renew`): the register's identity and the
/// new period (RFC 3339 midnight UTC, at most a year, ending after the current one).
#[derive(Debug, Clone, uniffi::Record)]
pub struct RenewRequest {
    /// The register's ProductionNumber.
    pub production_number: String,
    /// The register's device id.
    pub device_id: String,
    /// New validity start, e.g. `2025-01-01T00:00:00Z`.
    pub valid_from: String,
    /// New validity end.
    pub valid_to: String,
}

impl From<RenewRequest> for client::RenewRequest {
    fn from(r: RenewRequest) -> Self {
        client::RenewRequest {
            production_number: r.production_number,
            device_id: r.device_id,
            valid_from: r.valid_from,
            valid_to: r.valid_to,
            descriptor: None,
        }
    }
}

/// A catalogue product of the register's company. Prices are integer minor units, VAT
/// rates basis points (2500 = 25 %).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Product {
    /// The product's id (1–64 characters of `A-Z a-z 0-9 - _ .`).
    pub id: String,
    /// Name on the till and the receipt.
    pub name: String,
    /// Unit price, minor units.
    pub price: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// VAT rate, basis points.
    pub vat_rate: u32,
    /// Barcode, if any.
    #[uniffi(default = None)]
    pub barcode: Option<String>,
    /// `false` when the product is withdrawn (a delta still reports it).
    #[uniffi(default = true)]
    pub active: bool,
    /// When the server last changed it (RFC 3339); set by the server, ignored on a put.
    #[uniffi(default = None)]
    pub updated_at: Option<String>,
}

impl From<client::Product> for Product {
    fn from(p: client::Product) -> Self {
        Product {
            id: p.id,
            name: p.name,
            price: p.price,
            currency: p.currency,
            vat_rate: p.vat_rate,
            barcode: p.barcode,
            active: p.active,
            updated_at: p.updated_at,
        }
    }
}

impl From<Product> for client::Product {
    fn from(p: Product) -> Self {
        client::Product {
            id: p.id,
            name: p.name,
            price: p.price,
            currency: p.currency,
            vat_rate: p.vat_rate,
            barcode: p.barcode,
            active: p.active,
            updated_at: p.updated_at,
        }
    }
}

impl Product {
    /// The product as core checks and sends it: its id (the path of `PUT /products/{id}`)
    /// and its body; `updated_at` is the server's and not part of either.
    pub(crate) fn into_core(self) -> (String, core::Product) {
        let product = core::Product {
            name: self.name,
            price: self.price,
            currency: self.currency,
            vat_rate: self.vat_rate,
            barcode: self.barcode,
            active: self.active,
        };
        (self.id, product)
    }

    /// A product from its id and body, as the app builds it (no `updated_at`).
    pub(crate) fn from_core(id: String, p: core::Product) -> Self {
        Product {
            id,
            name: p.name,
            price: p.price,
            currency: p.currency,
            vat_rate: p.vat_rate,
            barcode: p.barcode,
            active: p.active,
            updated_at: None,
        }
    }
}

/// What a product sync brought: the products changed after the RVE sent (withdrawn
/// ones included, `active == false`), and the RVE to send next time. The app merges
/// the products into its own store by `id` and keeps `rve` with them.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ProductDelta {
    /// Changed products, oldest change first.
    pub products: Vec<Product>,
    /// The RVE to send next time (`None` only if the server named none).
    pub rve: Option<String>,
    /// More changes follow (a page holds at most 1,000 products): merge these, keep
    /// `rve`, and call again with it.
    pub more: bool,
}

/// An async client for one register.
#[derive(Debug, uniffi::Object)]
pub struct Client(client::Client);

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    /// A client for `config.base_url` trusting `trusted_keys` (the app's built-in keys).
    #[uniffi::constructor]
    pub fn new(config: ClientConfig, trusted_keys: Arc<TrustedKeys>) -> Result<Arc<Self>> {
        // The client keeps its own copy (core's `ClientConfig` owns its set): keys added
        // to `trusted_keys` later are not seen by this client.
        let mut c = client::ClientConfig::new(config.base_url, read(&trusted_keys.0)?.clone());
        if let Some(ms) = config.timeout_ms {
            c.timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = config.connect_timeout_ms {
            c.connect_timeout = Duration::from_millis(ms);
        }
        c.device_id = config.device_id;
        c.application_package = config.application_package;
        c.clock_tolerance_secs = config.clock_tolerance_secs;
        if let Some(n) = config.max_response_bytes {
            c.max_response_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = config.transaction_page_size {
            c.transaction_page_size = n;
        }
        Ok(Arc::new(Client(client::Client::new(c)?)))
    }

    /// Sets the API key (validated) used to authenticate.
    pub fn set_api_key(&self, key: String) -> Result<()> {
        self.0.set_api_key(core::validate_api_key(&key)?);
        Ok(())
    }

    /// The API key in use, if any. A secret.
    pub fn api_key(&self) -> Option<String> {
        self.0.api_key().map(|k| k.expose().to_owned())
    }

    /// The latest verified server time, Unix seconds.
    pub fn trusted_time_floor(&self) -> Option<i64> {
        self.0.trusted_time_floor()
    }

    /// Restores a trusted time floor the app stored (it only ever moves forward).
    pub fn restore_trusted_time_floor(&self, floor: i64) {
        self.0.restore_trusted_time_floor(floor)
    }

    /// Activates the register (`POST /activations-advanced`); the request is checked by
    /// core first, and the returned API key is set on the client.
    pub async fn activate(&self, request: ActivationRequest) -> Result<Activation> {
        let req = core::ActivationRequest::try_from(request)?;
        Ok(self.0.activate(&req).await?.into())
    }

    /// Activates with the app's own idempotency key (at least 32 characters: a UUID),
    /// stored before the first send and reused with the same request until an answer
    /// arrives, also after a restart: the server answers a repeat with the one pending
    /// registration and a fresh API key instead of creating another.
    pub async fn activate_with_key(
        &self,
        request: ActivationRequest,
        idempotency_key: String,
    ) -> Result<Activation> {
        let req = core::ActivationRequest::try_from(request)?;
        let key = client::IdempotencyKey::new(&idempotency_key)?;
        Ok(self.0.activate_with_key(&req, &key).await?.into())
    }

    /// Handshake (`GET /auth/handshake`). Refusals have codes the app can act on:
    /// `pending_approval`, `key_expired` (renew), `key_not_yet_valid`, `rejected`,
    /// `revoked`, `unauthorized`.
    pub async fn handshake(&self) -> Result<Handshake> {
        let h = self.0.handshake().await?;
        Ok(Handshake {
            status: h.status,
            production_number: h.production_number,
            valid_from: h.valid_from,
            valid_to: h.valid_to,
            server_time: h.server_time.iat,
            server_time_jws: h.server_time_jws,
        })
    }

    /// Fetches the signed activation code and verifies it locally at `now` (Unix seconds).
    pub async fn activation_code(&self, now: i64) -> Result<ActivationCode> {
        let code = self.0.activation_code(now).await?;
        Ok(ActivationCode {
            jws: code.jws,
            descriptor: VerifiedDescriptor::try_from(code.descriptor)?,
        })
    }

    /// Verifies a stored activation code offline (no network), e.g. at start-up.
    pub fn verify_stored_descriptor(&self, jws: String, now: i64) -> Result<VerifiedDescriptor> {
        VerifiedDescriptor::try_from(self.0.verify_stored_descriptor(&jws, now)?)
    }

    /// Sends one transaction with an idempotency key (`POST /transactions`). Most apps
    /// use [`Outbox`] instead, which persists first and retries.
    pub async fn submit_transaction(
        &self,
        transaction: Transaction,
        idempotency_key: String,
    ) -> Result<StoredTransaction> {
        let key = client::IdempotencyKey::new(&idempotency_key)?;
        Ok(self
            .0
            .submit_transaction(&transaction.into(), &key)
            .await?
            .into())
    }

    /// Renews an expiring or expired key (`POST /activations/renew`, within the server's
    /// grace period), authenticated by the current key, for a new period. The new key
    /// replaces the old one on this client (store it); the old one stops working. The
    /// answer to `key_expired`.
    pub async fn renew(&self, request: RenewRequest) -> Result<Activation> {
        Ok(self.0.renew(&request.into()).await?.into())
    }

    /// Renews without the old key (lost with the device's storage), authenticated by
    /// the stored signed activation code `descriptor_jws`. The registration then waits
    /// for an administrator's approval again (status `pending`).
    pub async fn renew_with_descriptor(
        &self,
        request: RenewRequest,
        descriptor_jws: String,
    ) -> Result<Activation> {
        Ok(self
            .0
            .renew_with_descriptor(&request.into(), &descriptor_jws)
            .await?
            .into())
    }

    /// Product delta sync (`GET /products`), a page at a time: the products changed after
    /// `rve` (all of them when `None`, the first sync), the RVE to send next time, and
    /// whether more follow. Merge each page into the app's store with its `rve` before
    /// asking for the next, so that a sync cut short keeps what it got.
    pub async fn sync_products(&self, rve: Option<String>) -> Result<ProductDelta> {
        let page = self.0.product_changes(rve.as_deref()).await?;
        Ok(ProductDelta {
            products: page.products.into_iter().map(Product::from).collect(),
            rve: page.rve,
            more: page.more,
        })
    }

    /// Creates or replaces a product of the register's company (`PUT /products/{id}`);
    /// returns it as the server stored it (with `updated_at`). Withdraw one with
    /// `active = false`.
    pub async fn put_product(&self, product: Product) -> Result<Product> {
        Ok(self.0.put_product(&product.into()).await?.into())
    }

    /// One of the register's transactions, by the server's id (`GET /transactions/{id}`).
    pub async fn get_transaction(&self, id: String) -> Result<StoredTransaction> {
        Ok(self.0.get_transaction(&id).await?.into())
    }

    /// All of the register's transactions, in sequence order.
    pub async fn list_transactions(&self) -> Result<Vec<StoredTransaction>> {
        Ok(self
            .0
            .list_transactions()
            .await?
            .into_iter()
            .map(StoredTransaction::from)
            .collect())
    }

    /// Fetches every stored transaction of the register and verifies them: the receipt
    /// chain from `seq` 1 and that each receipt names its transaction (id, sequence,
    /// hash). With `witness`, a receipt the register kept when the server returned it
    /// (its latest, say), the chain must also hold it byte for byte: a history changed
    /// or cut back after the register saw it fails with `witness_mismatch`.
    #[uniffi::method(default(witness = None))]
    pub async fn verify_history(&self, witness: Option<String>) -> Result<VerifiedHistory> {
        Ok(self.0.verify_history(witness.as_deref()).await?.into())
    }

    /// The quick form of `verify_history` for a long history: only the transactions
    /// from the witness's sequence number on are fetched; the first must carry the
    /// witness byte for byte and the rest continue it. What lies before the witness is
    /// seen only by the full check.
    pub async fn verify_history_since(&self, witness: String) -> Result<VerifiedHistory> {
        Ok(self.0.verify_history_since(&witness).await?.into())
    }
}

/// An error as remembered by the queue.
#[derive(Debug, Clone, uniffi::Record)]
pub struct QueueError {
    /// The error's code.
    pub code: String,
    /// The error's message.
    pub message: String,
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
    /// The HTTP status, when the server answered.
    pub http_status: Option<u16>,
    /// The failing fields the server listed (a 400 `invalid_transaction`); empty
    /// otherwise.
    pub fields: Vec<FieldError>,
}

impl From<client::LastError> for QueueError {
    fn from(e: client::LastError) -> Self {
        QueueError {
            code: e.code,
            message: e.message,
            at_ms: e.at_ms,
            http_status: e.http_status,
            fields: e.fields.into_iter().map(FieldError::from).collect(),
        }
    }
}

/// One queued transaction, as the queue keeps it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct QueuedTransaction {
    /// Local, increasing id: the order of sale.
    pub id: u64,
    /// The key the server deduplicates by.
    pub idempotency_key: String,
    /// The transaction.
    pub transaction: Transaction,
    /// When it was queued, Unix milliseconds.
    pub enqueued_at_ms: i64,
    /// Failed send attempts so far.
    pub attempts: u32,
    /// Not sent before this time (Unix milliseconds) unless a sync is forced.
    pub next_attempt_at_ms: i64,
    /// The last error sending it.
    pub last_error: Option<QueueError>,
    /// Refused for good by the server (kept, not retried); otherwise pending.
    pub failed: bool,
}

impl From<client::QueuedTransaction> for QueuedTransaction {
    fn from(e: client::QueuedTransaction) -> Self {
        QueuedTransaction {
            id: e.id,
            idempotency_key: e.idempotency_key.as_str().to_owned(),
            transaction: e.transaction.into(),
            enqueued_at_ms: e.enqueued_at_ms,
            attempts: e.attempts,
            next_attempt_at_ms: e.next_attempt_at_ms,
            last_error: e.last_error.map(QueueError::from),
            failed: e.state == client::EntryState::Failed,
        }
    }
}

/// A stored record the queue could not read (bad JSON, an I/O error, a record of
/// another format), or an unreadable witness record. It stays in the store until
/// [`Outbox::remove_corrupt`].
#[derive(Debug, Clone, uniffi::Record)]
pub struct CorruptRecord {
    /// The record's name in the store (file name); pass it to `remove_corrupt`.
    pub name: String,
    /// The local id, if the name still tells it.
    pub id: Option<u64>,
    /// What was wrong.
    pub reason: String,
}

impl From<client::CorruptRecord> for CorruptRecord {
    fn from(c: client::CorruptRecord) -> Self {
        CorruptRecord {
            name: c.name,
            id: c.id,
            reason: c.reason,
        }
    }
}

/// The result of [`Outbox::submit`]: sent now, safely queued, or refused by the server
/// and kept. Every result means the sale is kept; an error means it is not.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum Submitted {
    /// The server stored it.
    Sent {
        /// The stored transaction with its receipt.
        stored: StoredTransaction,
    },
    /// Persisted; a later sync sends it.
    Queued {
        /// Its idempotency key.
        idempotency_key: String,
    },
    /// The server refused it for good (e.g. `invalid_transaction`); kept in the queue as
    /// failed, for `retryFailed` or `discard`.
    Refused {
        /// Its idempotency key.
        idempotency_key: String,
        /// Why, with the fields the server listed.
        error: QueueError,
    },
}

/// A receipt the server gave that did not fit the register's witness (a forked chain,
/// a receipt that does not verify), kept as evidence; its sale was stored all the same.
#[derive(Debug, Clone, uniffi::Record)]
pub struct WitnessProblem {
    /// The receipt as the server gave it.
    pub receipt: String,
    /// The error code (`witness_mismatch`, `invalid_receipt`, `receipt_chain_broken`;
    /// `invalid_witness`: the kept witness itself no longer verifies, reset it).
    pub code: String,
    /// The error's message.
    pub message: String,
    /// When it was seen, Unix milliseconds.
    pub at_ms: i64,
}

impl From<client::WitnessProblem> for WitnessProblem {
    fn from(p: client::WitnessProblem) -> Self {
        WitnessProblem {
            receipt: p.receipt,
            code: p.code,
            message: p.message,
            at_ms: p.at_ms,
        }
    }
}

impl From<WitnessProblem> for client::WitnessProblem {
    fn from(p: WitnessProblem) -> Self {
        client::WitnessProblem {
            receipt: p.receipt,
            code: p.code,
            message: p.message,
            at_ms: p.at_ms,
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncReport {
    /// Idempotency keys of the transactions the server stored in this run, in order.
    pub sent: Vec<String>,
    /// Those transactions as the server stored them, with their receipts (to print, and
    /// to keep the newest as the register's witness), in the order of `sent`.
    pub stored: Vec<StoredTransaction>,
    /// Idempotency keys of the transactions refused for good in this run.
    pub failed: Vec<String>,
    /// The code of the error that stopped the run (network down, key expired...).
    pub stopped_by: Option<String>,
    /// Pending transactions left.
    pub remaining: u64,
    /// Another sync was already running; this one did nothing.
    pub already_running: bool,
    /// A receipt of this run that did not fit the register's witness (the first one).
    pub witness_problem: Option<WitnessProblem>,
}

impl From<client::SyncReport> for SyncReport {
    fn from(r: client::SyncReport) -> Self {
        SyncReport {
            sent: r.sent.iter().map(|(k, _)| k.as_str().to_owned()).collect(),
            stored: r.sent.into_iter().map(|(_, s)| s.into()).collect(),
            failed: r
                .failed
                .iter()
                .map(|(k, _)| k.as_str().to_owned())
                .collect(),
            stopped_by: r.stopped_by.map(|e| e.code().to_owned()),
            remaining: r.remaining as u64,
            already_running: r.already_running,
            witness_problem: r.witness_problem.map(WitnessProblem::from),
        }
    }
}

/// The durable offline queue: every transaction is persisted before it is sent, sent
/// in order of sale with its idempotency key, and retried with backoff.
#[derive(Debug, uniffi::Object)]
pub struct Outbox(client::Outbox);

#[uniffi::export(async_runtime = "tokio")]
impl Outbox {
    /// Opens (or creates) a file-backed queue in `directory` (one the app owns). The
    /// directory is locked while the outbox lives: a second open of it fails with
    /// `queue_in_use` until the first outbox is closed (destroyed). The file work
    /// (creating the directory, `fsync`, the lock, clearing unfinished writes) runs on
    /// tokio's blocking pool, never on the caller's thread; an open cancelled meanwhile
    /// still finishes there and holds the lock for that moment (a retry right after may
    /// get `queue_in_use`).
    #[uniffi::constructor]
    pub async fn open_directory(directory: String) -> Result<Arc<Self>> {
        let store = tokio::task::spawn_blocking(move || client::FileStore::open(directory))
            .await
            .map_err(|e| {
                client::ClientError::Storage(format!("opening the queue failed: {e}"))
            })??;
        Ok(Arc::new(Outbox(
            client::Outbox::open(Arc::new(store)).await?,
        )))
    }

    /// Opens an in-memory queue (tests; lost when the app stops).
    #[uniffi::constructor]
    pub async fn open_in_memory() -> Result<Arc<Self>> {
        let store = client::MemoryStore::new();
        Ok(Arc::new(Outbox(
            client::Outbox::open(Arc::new(store)).await?,
        )))
    }

    /// Queues a transaction and tries to send it now (`now_ms`: Unix ms), after the sales
    /// queued before it, if at most 3 of them are pending: behind a longer backlog it
    /// sends nothing and answers `Queued` at once (the app's periodic `sync` sends the
    /// backlog). Never fails because of the network: then it answers `Queued`. Answers
    /// `Refused` when the server refused it for good (kept in the queue as failed); fails
    /// only when the sale was not kept (refused before queuing).
    pub async fn submit(
        &self,
        client: Arc<Client>,
        transaction: Transaction,
        idempotency_key: Option<String>,
        now_ms: i64,
    ) -> Result<Submitted> {
        let key = idempotency_key
            .as_deref()
            .map(client::IdempotencyKey::new)
            .transpose()?;
        Ok(
            match self
                .0
                .submit(&client.0, transaction.into(), key, now_ms)
                .await?
            {
                client::Submitted::Sent(s) => Submitted::Sent { stored: s.into() },
                client::Submitted::Queued(k) => Submitted::Queued {
                    idempotency_key: k.as_str().to_owned(),
                },
                client::Submitted::Refused { key, error } => Submitted::Refused {
                    idempotency_key: key.as_str().to_owned(),
                    error: error.into(),
                },
            },
        )
    }

    /// Queues a transaction without sending; returns its idempotency key.
    pub async fn enqueue(
        &self,
        transaction: Transaction,
        idempotency_key: Option<String>,
        now_ms: i64,
    ) -> Result<String> {
        let key = idempotency_key
            .as_deref()
            .map(client::IdempotencyKey::new)
            .transpose()?;
        Ok(self
            .0
            .enqueue(transaction.into(), key, now_ms)
            .await?
            .as_str()
            .to_owned())
    }

    /// Sends everything pending now, ignoring the backoff schedule.
    pub async fn sync_now(&self, client: Arc<Client>, now_ms: i64) -> SyncReport {
        self.0.sync_now(&client.0, now_ms).await.into()
    }

    /// Sends the pending transactions if the oldest one is due at `now_ms` (the backoff
    /// schedule is kept): what an app's timer calls.
    pub async fn sync(&self, client: Arc<Client>, now_ms: i64) -> SyncReport {
        self.0.sync(&client.0, now_ms).await.into()
    }

    /// Every queued record (pending and failed), in order of sale.
    pub fn entries(&self) -> Vec<QueuedTransaction> {
        self.0
            .entries()
            .into_iter()
            .map(QueuedTransaction::from)
            .collect()
    }

    /// When the queue is next due (Unix ms), for the app's timer; `None` when nothing
    /// is pending.
    pub fn next_attempt_at(&self) -> Option<i64> {
        self.0.next_attempt_at()
    }

    /// Pending transactions (the queue length a till shows; refused ones stay in
    /// [`entries`](Self::entries) with `failed`).
    pub fn len(&self) -> u64 {
        self.0.len() as u64
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The last error a send met, if the queue is not healthy.
    pub fn last_error(&self) -> Option<QueueError> {
        self.0.last_error().map(QueueError::from)
    }

    /// Puts a transaction the server refused for good (`failed`) back in the queue,
    /// due at `now_ms` (after the app fixed the cause). Nothing happens for a key that
    /// is not failed.
    pub async fn retry_failed(&self, idempotency_key: String, now_ms: i64) -> Result<()> {
        let key = client::IdempotencyKey::new(&idempotency_key)?;
        Ok(self.0.retry_failed(&key, now_ms).await?)
    }

    /// Removes a transaction the server refused for good (`failed`) from the queue, for
    /// good. Pending ones are never discarded: they may already be on the server.
    pub async fn discard(&self, idempotency_key: String) -> Result<()> {
        let key = client::IdempotencyKey::new(&idempotency_key)?;
        Ok(self.0.discard(&key).await?)
    }

    /// The stored records the queue could not read (and an unreadable witness record),
    /// kept until [`remove_corrupt`](Self::remove_corrupt).
    pub fn corrupt_records(&self) -> Vec<CorruptRecord> {
        self.0
            .corrupt_records()
            .into_iter()
            .map(CorruptRecord::from)
            .collect()
    }

    /// Deletes an unreadable record by its `name`, after the app has looked at it.
    pub async fn remove_corrupt(&self, name: String) -> Result<()> {
        Ok(self.0.remove_corrupt(&name).await?)
    }

    /// The register's witness: the newest receipt of its chain it was given and
    /// accepted (moved by every sale the queue sends), kept with the queue.
    pub fn witness(&self) -> Option<String> {
        self.0.witness()
    }

    /// The first receipt that did not fit the witness, kept until
    /// [`reset_witness`](Self::reset_witness) or
    /// [`reset_witness_seen`](Self::reset_witness_seen).
    pub fn witness_problem(&self) -> Option<WitnessProblem> {
        self.0.witness_problem().map(WitnessProblem::from)
    }

    /// Takes `receipt` (verified alone against the client's trusted keys, and a receipt
    /// of `production_number`, the register's own) as the witness when none is kept
    /// yet, for an app that kept its own before; `false` if the outbox already keeps
    /// one, which is never replaced. Drop the app's copy only after an answer.
    pub async fn adopt_witness(
        &self,
        client: Arc<Client>,
        receipt: String,
        production_number: String,
    ) -> Result<bool> {
        Ok(self
            .0
            .adopt_witness(&client.0, &receipt, &production_number)
            .await?)
    }

    /// Forgets the witness and the problem [`witness_problem`](Self::witness_problem)
    /// reports now (a register activated afresh, or once the operator has dealt with
    /// it): a problem found after the app last looked (by a sync running meanwhile) is
    /// erased with it. An app that shows the problem to the operator calls
    /// [`reset_witness_seen`](Self::reset_witness_seen) with the one it showed instead.
    pub async fn reset_witness(&self) -> Result<()> {
        Ok(self.0.reset_witness().await?)
    }

    /// Forgets the witness, erasing only `seen`, the problem the operator was shown
    /// (`None`: none was). A different problem found meanwhile (by a sync running at the
    /// same time) is kept and answered (also reported by
    /// [`witness_problem`](Self::witness_problem) from then on), for the app to show;
    /// `None` when none was kept.
    #[uniffi::method(default(seen = None))]
    pub async fn reset_witness_seen(
        &self,
        seen: Option<WitnessProblem>,
    ) -> Result<Option<WitnessProblem>> {
        let seen = seen.map(client::WitnessProblem::from);
        let kept = self.0.reset_witness_seen(seen.as_ref()).await?;
        Ok(kept.map(WitnessProblem::from))
    }

    /// Fetches and verifies the register's whole history with its witness
    /// (`witness_mismatch` if the server no longer holds it); the witness then moves
    /// to the checked chain's end.
    pub async fn verify_history(&self, client: Arc<Client>) -> Result<VerifiedHistory> {
        Ok(self.0.verify_history(&client.0).await?.into())
    }

    /// The quick form of [`verify_history`](Self::verify_history): only the
    /// transactions from the witness on (the whole history when there is none yet).
    pub async fn verify_history_since(&self, client: Arc<Client>) -> Result<VerifiedHistory> {
        Ok(self.0.verify_history_since(&client.0).await?.into())
    }
}

/// The device's clock as Unix milliseconds (for the `now_ms` arguments).
#[uniffi::export]
pub fn unix_time_ms() -> i64 {
    client::unix_time_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(e: TillgateError) -> (String, String, Option<u16>, Option<u64>, bool, bool) {
        let shown = e.to_string();
        let TillgateError::Failed {
            code,
            http_status,
            retry_after_ms,
            transient,
            auth,
            ..
        } = e;
        (code, shown, http_status, retry_after_ms, transient, auth)
    }

    #[test]
    fn a_printed_config_hides_the_url_token() {
        let config = ClientConfig {
            base_url: "https://pos.example/OpenApi_1,2,3,4$$Secret0123456789abcdef/".into(),
            timeout_ms: Some(2_000),
            connect_timeout_ms: None,
            device_id: Some("till-7".into()),
            application_package: None,
            clock_tolerance_secs: None,
            max_response_bytes: None,
            transaction_page_size: None,
        };
        for shown in [format!("{config:?}"), config.to_string()] {
            assert!(!shown.contains("Secret0123456789abcdef"), "{shown}");
            assert!(
                shown.contains("pos.example") && shown.contains("till-7"),
                "{shown}"
            );
        }
    }

    /// Opening a queue directory works off the caller's thread and answers what
    /// `FileStore::open` answers: the lock of a directory already open, a path that is
    /// no directory.
    #[test]
    fn a_queue_directory_opens_on_the_blocking_pool() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("tillgate-ffi-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("queue").to_string_lossy().into_owned();
        let first = rt.block_on(Outbox::open_directory(path.clone())).unwrap();
        let (code, ..) = parts(
            rt.block_on(Outbox::open_directory(path.clone()))
                .unwrap_err(),
        );
        assert_eq!(code, "queue_in_use");
        drop(first);
        assert!(rt.block_on(Outbox::open_directory(path)).is_ok());
        let file = dir.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let (code, ..) = parts(
            rt.block_on(Outbox::open_directory(file.to_string_lossy().into_owned()))
                .unwrap_err(),
        );
        assert_eq!(code, "storage_error");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn client_errors_say_whether_to_retry_and_when() {
        use client::ClientError as E;
        // A server being upgraded: try again after its Retry-After.
        let e = E::ServerUnavailable {
            status: 503,
            code: "schema_newer".into(),
            detail: "upgrading".into(),
            retry_after: Some(Duration::from_millis(7_500)),
        };
        let (code, shown, status, retry, transient, auth) = parts(e.into());
        assert_eq!(code, "schema_newer");
        assert_eq!(
            shown,
            "schema_newer: server unavailable (HTTP 503, schema_newer)"
        );
        assert_eq!(
            (status, retry, transient, auth),
            (Some(503), Some(7_500), true, false)
        );
        let e = E::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        let (code, _, status, retry, transient, auth) = parts(e.into());
        assert_eq!(code, "rate_limited");
        assert_eq!(
            (status, retry, transient, auth),
            (Some(429), Some(3_000), true, false)
        );
        // Never reached the server: transient, no status.
        let (code, _, status, retry, transient, auth) = parts(E::Timeout.into());
        assert_eq!(code, "timeout");
        assert_eq!((status, retry, transient, auth), (None, None, true, false));
        // The server answered a sale with another one: its own code, and nothing to
        // act on but telling the operator (the outbox keeps the sale).
        let e = E::AnswerMismatch("the receipt names another transaction".into());
        let (code, shown, status, retry, transient, auth) = parts(e.into());
        assert_eq!(code, "answer_mismatch");
        assert!(
            shown.contains("does not match the transaction sent"),
            "{shown}"
        );
        assert_eq!((status, retry, transient, auth), (None, None, false, false));
        // A redirect: the base URL is out of date, the key is fine (not auth).
        let e = E::UnexpectedRedirect {
            status: Some(301),
            location: Some("https://pos.example/transactions".into()),
        };
        let (code, shown, status, retry, transient, auth) = parts(e.into());
        assert_eq!(code, "unexpected_redirect");
        assert!(
            shown.contains("https://pos.example/transactions"),
            "{shown}"
        );
        assert_eq!(
            (status, retry, transient, auth),
            (Some(301), None, false, false)
        );
        // The registration's status: the app waits for an administrator.
        let e = E::PendingApproval {
            detail: "wait".into(),
        };
        let (code, shown, status, retry, transient, auth) = parts(e.into());
        assert_eq!(code, "pending_approval");
        assert_eq!(
            shown,
            "pending_approval: activation is pending approval: wait"
        );
        assert_eq!(
            (status, retry, transient, auth),
            (Some(403), None, false, true)
        );
        // A refusal for good keeps the server's fields.
        let e = E::Api {
            status: 400,
            code: "invalid_transaction".into(),
            detail: "the referenced transaction is unknown".into(),
            fields: vec![core::FieldError {
                field: "reference".into(),
                code: "unknown_reference".into(),
                message: "m".into(),
            }],
        };
        let err = TillgateError::from(e);
        let TillgateError::Failed { fields, .. } = &err;
        assert_eq!(fields.len(), 1);
        assert_eq!(
            (fields[0].field.as_str(), fields[0].code.as_str()),
            ("reference", "unknown_reference")
        );
        let (_, _, status, retry, transient, auth) = parts(err);
        assert_eq!(
            (status, retry, transient, auth),
            (Some(400), None, false, false)
        );
        // Core's errors, through the client or not: none of it.
        let core_err = core::Error::InvalidTransaction {
            fields: vec![core::FieldError {
                field: "total".into(),
                code: "out_of_range".into(),
                message: "m".into(),
            }],
        };
        let err = TillgateError::from(E::Core(core_err));
        let TillgateError::Failed { fields, .. } = &err;
        assert_eq!(fields.len(), 1);
        let (code, _, status, retry, transient, auth) = parts(err);
        assert_eq!(code, "invalid_transaction");
        assert_eq!((status, retry, transient, auth), (None, None, false, false));
    }

    #[test]
    fn debug_never_shows_the_api_key() {
        let secret = "Abcdefghij0123456789!@$";
        let a = Activation {
            activation_id: "act_1".into(),
            production_number: "TG-7Q2M-K4PX".into(),
            api_key: secret.into(),
            status: "pending".into(),
            valid_from: None,
            valid_to: None,
        };
        // Debug and Display (what the foreign languages print, through the exported
        // traits), plain and alternate.
        for shown in [
            format!("{a:?}"),
            format!("{a:#?}"),
            format!("{a}"),
            format!("{a:#}"),
            a.uniffi_trait_debug(),
            a.uniffi_trait_display(),
        ] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(
                shown.contains("<redacted>")
                    && shown.contains("act_1")
                    && shown.contains("TG-7Q2M-K4PX")
                    && shown.contains("pending"),
                "{shown}"
            );
        }
    }
}
