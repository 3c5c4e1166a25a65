//! The `tillgate-client` API for JS: every network call returns a `Promise`. Built with
//! the `client` feature (on by default); `--no-default-features` gives core alone.

use std::rc::Rc;
use std::sync::Arc;

use js_sys::{JsString, Promise};
use serde::{Deserialize, Serialize};
use tillgate_client as client;
use tillgate_core as core;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{
    JsProductInput, JsResult, OrThrow, TrustedKeys, from_js, js_error, objects_only, opt_text,
    secs, text, to_js,
};

#[wasm_bindgen(typescript_custom_section)]
const TS_CLIENT_TYPES: &str = r#"
/**
 * Any other member is refused (`invalid_argument`), so that a misspelt `deviceId`
 * never turns the device check off. `connectTimeoutMs` (native clients only) is not
 * one: `fetch` has no connect timeout; `timeoutMs` bounds the whole request.
 */
export interface ClientConfig {
  baseUrl: string; timeoutMs?: number | null; deviceId?: string | null;
  applicationPackage?: string | null; clockToleranceSecs?: number | null;
  maxResponseBytes?: number | null;
  /** Transactions per page when listing them, 1–1000 (default 100). */
  transactionPageSize?: number | null;
}
export interface Activation {
  activationId: string; productionNumber: string; apiKey: string; status: string;
  validFrom?: string | null; validTo?: string | null;
}
export interface Handshake {
  status: string; productionNumber?: string | null; validFrom?: string | null;
  validTo?: string | null; serverTime: number; serverTimeJws: string;
}
export interface ActivationCode { jws: string; descriptor: VerifiedDescriptor; }
/**
 * A transaction as the server stored it: the sale as sent, plus the server's id, its
 * gapless `sequence`, `createdAt` (RFC 3339), the register's `productionNumber`, `txh`
 * (the transaction's hash) and the signed `receipt`. `createdAt`, `productionNumber`
 * and `txh` are empty strings when the server left them out. Any other member the
 * server sent is passed through as it came.
 */
export interface StoredTransaction extends Transaction {
  id: string; sequence: number; createdAt: string; productionNumber: string; txh: string;
  receipt: string;
}
export interface VerifiedHistory { transactions: StoredTransaction[]; receipts: ReceiptClaims[]; }
export type Submitted =
  | { kind: "sent"; stored: StoredTransaction }
  | { kind: "queued"; idempotencyKey: string }
  | { kind: "refused"; idempotencyKey: string; error: QueueError };
export interface QueueError {
  code: string; message: string; atMs: number; httpStatus?: number | null; fields?: FieldError[];
}
export interface QueuedTransaction {
  id: number; idempotencyKey: string; transaction: Transaction; enqueuedAtMs: number;
  attempts: number; nextAttemptAtMs: number; lastError?: QueueError | null; state: "pending" | "failed";
}
/**
 * Any other member is refused (`invalid_argument`). `descriptor` is the wire member
 * that carries the signed activation code: accepted, but `renew` never sends it and
 * `renewWithDescriptor` sends its own `descriptorJws` argument instead.
 */
export interface RenewRequest {
  productionNumber: string; deviceId: string; validFrom: string; validTo: string;
  descriptor?: string | null;
}
export interface ProductDelta { products: Product[]; rve: string | null; more: boolean; }
/**
 * A receipt the server gave that did not fit the register's witness, kept as evidence.
 * Passed back to `resetWitnessSeen` as it was read: any other member, or one missing, is
 * refused (`invalid_argument`).
 */
export interface WitnessProblem { receipt: string; code: string; message: string; atMs: number; }
/** A stored record the queue could not read; kept until `removeCorrupt(name)`. */
export interface CorruptRecord { name: string; id?: number | null; reason: string; }
export interface SyncReport {
  sent: string[]; stored: StoredTransaction[]; failed: string[]; stoppedBy?: string | null;
  remaining: number; alreadyRunning: boolean; witnessProblem?: WitnessProblem | null;
}
"#;

/// Converts a client error once, into a JS `Error` with `code`, `fields` when the server
/// listed failing fields, and what an app decides on: `transient` and `auth` (always
/// set), `httpStatus` when the server answered, `retryAfterMs` when it sent a
/// `Retry-After`. A core error (`ClientError::Core`) is thrown as core's, without them.
fn client_error(e: client::ClientError) -> JsValue {
    match e {
        client::ClientError::Core(e) => crate::to_js_error(e),
        e => {
            let err: JsValue = js_error(e.code(), &e.to_string()).into();
            if let client::ClientError::Api { fields, .. } = &e
                && !fields.is_empty()
                && let Ok(v) = crate::js_field_errors(fields)
            {
                crate::set(&err, "fields", v);
            }
            if let Some(status) = e.http_status() {
                crate::set(&err, "httpStatus", f64::from(status));
            }
            if let Some(d) = e.retry_after() {
                // Milliseconds as a JS number: exact up to 2^53 ms (285,000 years).
                crate::set(&err, "retryAfterMs", d.as_millis() as f64);
            }
            crate::set(&err, "transient", e.is_transient());
            crate::set(&err, "auth", e.is_auth());
            err
        }
    }
}

trait OrThrowClient<T> {
    fn or_throw(self) -> JsResult<T>;
}

impl<T> OrThrowClient<T> for client::Result<T> {
    fn or_throw(self) -> JsResult<T> {
        self.map_err(client_error)
    }
}

/// The JS `ClientConfig`: the FFI's `ClientConfig` less `connectTimeoutMs` (`fetch` has
/// no connect timeout; `timeoutMs` bounds the whole request), which is refused like any
/// other unknown member.
#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
struct JsClientConfig {
    base_url: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    application_package: Option<String>,
    #[serde(default)]
    clock_tolerance_secs: Option<i64>,
    #[serde(default)]
    max_response_bytes: Option<u64>,
    #[serde(default)]
    transaction_page_size: Option<u32>,
}

objects_only!(JsClientConfig);

/// The JS `WitnessProblem` an app passes back to `resetWitnessSeen`, read strictly like
/// the option objects: a misspelt or missing member would never equal the stored problem,
/// and the reset would keep it without telling why.
#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
struct JsWitnessProblem {
    receipt: String,
    code: String,
    message: String,
    at_ms: i64,
}

objects_only!(JsWitnessProblem);

impl From<JsWitnessProblem> for client::WitnessProblem {
    fn from(p: JsWitnessProblem) -> Self {
        client::WitnessProblem {
            receipt: p.receipt,
            code: p.code,
            message: p.message,
            at_ms: p.at_ms,
        }
    }
}

/// What `putProduct` takes: the JS `Product` (`crate::JsProductInput`, read strictly;
/// `client::Product` reads the server's answers and lets unknown members pass, so it is
/// not read from JS directly).
impl From<JsProductInput> for client::Product {
    fn from(p: JsProductInput) -> Self {
        let (id, p) = p.into_core();
        client::Product {
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsActivation {
    activation_id: String,
    production_number: String,
    api_key: String,
    status: String,
    valid_from: Option<String>,
    valid_to: Option<String>,
}

impl From<client::Activation> for JsActivation {
    fn from(a: client::Activation) -> Self {
        JsActivation {
            activation_id: a.activation_id,
            production_number: a.production_number,
            api_key: a.api_key.expose().to_owned(),
            status: a.status,
            valid_from: a.valid_from,
            valid_to: a.valid_to,
        }
    }
}

#[derive(Serialize)]
struct JsProductDelta {
    products: Vec<client::Product>,
    rve: Option<String>,
    more: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsHandshake {
    status: String,
    production_number: Option<String>,
    valid_from: Option<String>,
    valid_to: Option<String>,
    server_time: i64,
    server_time_jws: String,
}

#[derive(Serialize)]
struct JsVerified<'a> {
    kid: &'a str,
    claims: &'a core::ActivationDescriptor,
}

#[derive(Serialize)]
struct JsActivationCode<'a> {
    jws: &'a str,
    descriptor: JsVerified<'a>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum JsSubmitted<'a> {
    Sent {
        stored: &'a client::StoredTransaction,
    },
    #[serde(rename_all = "camelCase")]
    Queued { idempotency_key: &'a str },
    #[serde(rename_all = "camelCase")]
    Refused {
        idempotency_key: &'a str,
        error: JsQueueError<'a>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsQueueError<'a> {
    code: &'a str,
    message: &'a str,
    at_ms: i64,
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [core::FieldError],
}

impl<'a> From<&'a client::LastError> for JsQueueError<'a> {
    fn from(e: &'a client::LastError) -> Self {
        JsQueueError {
            code: &e.code,
            message: &e.message,
            at_ms: e.at_ms,
            http_status: e.http_status,
            fields: &e.fields,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsQueuedTransaction<'a> {
    id: u64,
    idempotency_key: &'a str,
    transaction: &'a core::Transaction,
    enqueued_at_ms: i64,
    attempts: u32,
    next_attempt_at_ms: i64,
    last_error: Option<JsQueueError<'a>>,
    state: &'static str,
}

impl<'a> From<&'a client::QueuedTransaction> for JsQueuedTransaction<'a> {
    fn from(e: &'a client::QueuedTransaction) -> Self {
        JsQueuedTransaction {
            id: e.id,
            idempotency_key: e.idempotency_key.as_str(),
            transaction: &e.transaction,
            enqueued_at_ms: e.enqueued_at_ms,
            attempts: e.attempts,
            next_attempt_at_ms: e.next_attempt_at_ms,
            last_error: e.last_error.as_ref().map(JsQueueError::from),
            state: match e.state {
                client::EntryState::Pending => "pending",
                client::EntryState::Failed => "failed",
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsSyncReport {
    sent: Vec<String>,
    stored: Vec<client::StoredTransaction>,
    failed: Vec<String>,
    stopped_by: Option<String>,
    remaining: usize,
    already_running: bool,
    witness_problem: Option<client::WitnessProblem>,
}

#[derive(Serialize)]
struct JsCorruptRecord<'a> {
    name: &'a str,
    id: Option<u64>,
    reason: &'a str,
}

fn key_of(idempotency_key: Option<String>) -> JsResult<Option<client::IdempotencyKey>> {
    idempotency_key
        .as_deref()
        .map(client::IdempotencyKey::new)
        .transpose()
        .or_throw()
}

/// An async client for one register; every network call returns a `Promise`.
#[wasm_bindgen]
pub struct Client(client::Client);

#[wasm_bindgen]
impl Client {
    /// A client for `config.baseUrl` trusting `trustedKeys` (the app's built-in keys).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "ClientConfig")] config: JsValue,
        trusted_keys: &TrustedKeys,
    ) -> JsResult<Client> {
        let c: JsClientConfig = from_js("config", &config)?;
        let mut cfg = client::ClientConfig::new(c.base_url, trusted_keys.0.clone());
        if let Some(ms) = c.timeout_ms {
            cfg.timeout = std::time::Duration::from_millis(ms);
        }
        cfg.device_id = c.device_id;
        cfg.application_package = c.application_package;
        cfg.clock_tolerance_secs = c.clock_tolerance_secs;
        if let Some(n) = c.max_response_bytes {
            cfg.max_response_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = c.transaction_page_size {
            cfg.transaction_page_size = n;
        }
        client::Client::new(cfg).map(Client).or_throw()
    }

    /// Sets the API key (validated) used to authenticate.
    #[wasm_bindgen(js_name = setApiKey)]
    pub fn set_api_key(&self, key: &JsString) -> JsResult<()> {
        let key = text("key", key)?;
        self.0.set_api_key(core::validate_api_key(&key).or_throw()?);
        Ok(())
    }

    /// The API key in use, if any. A secret.
    #[wasm_bindgen(js_name = apiKey)]
    pub fn api_key(&self) -> Option<String> {
        self.0.api_key().map(|k| k.expose().to_owned())
    }

    /// The latest verified server time, Unix seconds.
    #[wasm_bindgen(js_name = trustedTimeFloor)]
    pub fn trusted_time_floor(&self) -> Option<f64> {
        self.0.trusted_time_floor().map(|t| t as f64)
    }

    /// Restores a trusted time floor the app stored (it only ever moves forward).
    #[wasm_bindgen(js_name = restoreTrustedTimeFloor)]
    pub fn restore_trusted_time_floor(&self, floor: f64) -> JsResult<()> {
        self.0.restore_trusted_time_floor(secs("floor", floor)?);
        Ok(())
    }

    /// Activates the register (`POST /activations-advanced`); sets the returned API key.
    #[wasm_bindgen(unchecked_return_type = "Promise<Activation>")]
    pub fn activate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ActivationRequest")] request: JsValue,
    ) -> JsResult<Promise> {
        let req: core::ActivationRequest = from_js("request", &request)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            to_js(&JsActivation::from(c.activate(&req).await.or_throw()?))
        }))
    }

    /// Activates with the app's own idempotency key (at least 32 characters:
    /// `crypto.randomUUID()`), stored before the first send and reused with the same
    /// request until an answer arrives, also after a reload: the server answers a repeat
    /// with the one pending registration and a fresh API key instead of creating another.
    #[wasm_bindgen(js_name = activateWithKey, unchecked_return_type = "Promise<Activation>")]
    pub fn activate_with_key(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ActivationRequest")] request: JsValue,
        #[wasm_bindgen(js_name = idempotencyKey)] idempotency_key: String,
    ) -> JsResult<Promise> {
        let req: core::ActivationRequest = from_js("request", &request)?;
        let key = client::IdempotencyKey::new(&idempotency_key).or_throw()?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            to_js(&JsActivation::from(
                c.activate_with_key(&req, &key).await.or_throw()?,
            ))
        }))
    }

    /// Handshake (`GET /auth/handshake`). Refusals reject with `pending_approval`,
    /// `key_expired` (renew), `key_not_yet_valid`, `rejected`, `revoked`, `unauthorized`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Handshake>")]
    pub fn handshake(&self) -> Promise {
        let c = self.0.clone();
        future_to_promise(async move {
            let h = c.handshake().await.or_throw()?;
            to_js(&JsHandshake {
                status: h.status,
                production_number: h.production_number,
                valid_from: h.valid_from,
                valid_to: h.valid_to,
                server_time: h.server_time.iat,
                server_time_jws: h.server_time_jws,
            })
        })
    }

    /// Fetches the signed activation code and verifies it locally at `now` (Unix seconds).
    #[wasm_bindgen(
        js_name = activationCode,
        unchecked_return_type = "Promise<ActivationCode>"
    )]
    pub fn activation_code(&self, now: f64) -> JsResult<Promise> {
        let now = secs("now", now)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            let code = c.activation_code(now).await.or_throw()?;
            to_js(&JsActivationCode {
                jws: &code.jws,
                descriptor: JsVerified {
                    kid: code.descriptor.kid(),
                    claims: code.descriptor.claims(),
                },
            })
        }))
    }

    /// Verifies a stored activation code offline (no network), e.g. at start-up.
    #[wasm_bindgen(
        js_name = verifyStoredDescriptor,
        unchecked_return_type = "VerifiedDescriptor"
    )]
    pub fn verify_stored_descriptor(&self, jws: &JsString, now: f64) -> JsResult<JsValue> {
        let jws = text("jws", jws)?;
        let v = self
            .0
            .verify_stored_descriptor(&jws, secs("now", now)?)
            .or_throw()?;
        crate::js_verified_descriptor(&v)
    }

    /// Renews an expiring or expired key (`POST /activations/renew`, within the server's
    /// grace period), authenticated by the current key, for a new period. The new key
    /// replaces the old one on this client (store it); the old one stops working. The
    /// answer to `key_expired`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Activation>")]
    pub fn renew(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RenewRequest")] request: JsValue,
    ) -> JsResult<Promise> {
        let req: client::RenewRequest = from_js("request", &request)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            to_js(&JsActivation::from(c.renew(&req).await.or_throw()?))
        }))
    }

    /// Renews without the old key (lost with the device's storage), authenticated by
    /// the stored signed activation code. The registration then waits for an
    /// administrator's approval again (status `pending`).
    #[wasm_bindgen(
        js_name = renewWithDescriptor,
        unchecked_return_type = "Promise<Activation>"
    )]
    pub fn renew_with_descriptor(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RenewRequest")] request: JsValue,
        descriptor_jws: &JsString,
    ) -> JsResult<Promise> {
        let req: client::RenewRequest = from_js("request", &request)?;
        let descriptor_jws = text("descriptorJws", descriptor_jws)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            let a = c
                .renew_with_descriptor(&req, &descriptor_jws)
                .await
                .or_throw()?;
            to_js(&JsActivation::from(a))
        }))
    }

    /// Product delta sync (`GET /products`), a page at a time: the products changed
    /// after `rve` (all of them without one, the first sync), oldest change first,
    /// withdrawn ones included (`active: false`), the RVE to send next time, and `more`
    /// when another page follows (merge this one and its `rve`, then ask again).
    #[wasm_bindgen(js_name = syncProducts, unchecked_return_type = "Promise<ProductDelta>")]
    pub fn sync_products(&self, rve: Option<JsString>) -> JsResult<Promise> {
        let rve = opt_text("rve", rve)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            let page = c.product_changes(rve.as_deref()).await.or_throw()?;
            to_js(&JsProductDelta {
                products: page.products,
                rve: page.rve,
                more: page.more,
            })
        }))
    }

    /// Creates or replaces a product of the register's company (`PUT /products/{id}`);
    /// resolves to it as the server stored it (with `updatedAt`). Withdraw one with
    /// `active: false`. A member `Product` does not have is refused (`invalid_argument`).
    #[wasm_bindgen(js_name = putProduct, unchecked_return_type = "Promise<Product>")]
    pub fn put_product(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Product")] product: JsValue,
    ) -> JsResult<Promise> {
        let p = client::Product::from(from_js::<JsProductInput>("product", &product)?);
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            to_js(&c.put_product(&p).await.or_throw()?)
        }))
    }

    /// One of the register's transactions, by the server's id (`GET /transactions/{id}`).
    #[wasm_bindgen(
        js_name = getTransaction,
        unchecked_return_type = "Promise<StoredTransaction>"
    )]
    pub fn get_transaction(&self, id: &JsString) -> JsResult<Promise> {
        let id = text("id", id)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            to_js(&c.get_transaction(&id).await.or_throw()?)
        }))
    }

    /// All of the register's transactions, in sequence order.
    #[wasm_bindgen(
        js_name = listTransactions,
        unchecked_return_type = "Promise<StoredTransaction[]>"
    )]
    pub fn list_transactions(&self) -> Promise {
        let c = self.0.clone();
        future_to_promise(async move { to_js(&c.list_transactions().await.or_throw()?) })
    }

    /// Fetches every stored transaction of the register and verifies them: the receipt
    /// chain from `seq` 1 and that each receipt names its transaction (id, sequence,
    /// hash). With `witness`, a receipt the register kept when the server returned it
    /// (its latest, say), the chain must also hold it byte for byte: a history changed
    /// or cut back after the register saw it fails with `witness_mismatch`.
    #[wasm_bindgen(
        js_name = verifyHistory,
        unchecked_return_type = "Promise<VerifiedHistory>"
    )]
    pub fn verify_history(&self, witness: Option<JsString>) -> JsResult<Promise> {
        let witness = opt_text("witness", witness)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            to_js(&c.verify_history(witness.as_deref()).await.or_throw()?)
        }))
    }

    /// The quick form of `verifyHistory` for a long history: only the transactions from
    /// the witness's sequence number on are fetched; the first must carry the witness
    /// byte for byte and the rest continue it. What lies before the witness is seen only
    /// by the full check.
    #[wasm_bindgen(
        js_name = verifyHistorySince,
        unchecked_return_type = "Promise<VerifiedHistory>"
    )]
    pub fn verify_history_since(&self, witness: &JsString) -> JsResult<Promise> {
        let witness = text("witness", witness)?;
        let c = self.0.clone();
        Ok(future_to_promise(async move {
            to_js(&c.verify_history_since(&witness).await.or_throw()?)
        }))
    }
}

/// The offline queue: every transaction is persisted before it is sent, sent in order
/// of sale with its idempotency key, and retried with backoff. In browsers
/// `Outbox.openLocalStorage()` survives a reload; `openInMemory()` does not.
#[wasm_bindgen]
pub struct Outbox(Rc<client::Outbox>);

fn open_outbox(store: Arc<dyn client::QueueStore>) -> Promise {
    future_to_promise(async move {
        let outbox = client::Outbox::open(store).await.or_throw()?;
        Ok(Outbox(Rc::new(outbox)).into())
    })
}

#[wasm_bindgen]
impl Outbox {
    /// Opens an in-memory queue (node, tests; lost when the page or process ends).
    #[wasm_bindgen(js_name = openInMemory, unchecked_return_type = "Promise<Outbox>")]
    pub fn open_in_memory() -> Promise {
        open_outbox(Arc::new(client::MemoryStore::new()))
    }

    /// Opens the browser's `localStorage` queue under `prefix` (wasm32 only). Two tabs
    /// on one origin may share a prefix: a new record never replaces another tab's, and
    /// a pending sale whose record went (another tab sent it, or the storage was
    /// cleared) is written back and sent again at the next sync, never dropped.
    #[cfg(target_arch = "wasm32")]
    #[wasm_bindgen(js_name = openLocalStorage, unchecked_return_type = "Promise<Outbox>")]
    pub fn open_local_storage(prefix: &JsString) -> JsResult<Promise> {
        let prefix = text("prefix", prefix)?;
        Ok(open_outbox(Arc::new(client::LocalStorageStore::new(
            &prefix,
        ))))
    }

    /// Queues a transaction and tries to send it now (`nowMs`: Unix ms), after the sales
    /// queued before it, if at most 3 of them are pending: behind a longer backlog it
    /// sends nothing and resolves `{kind: "queued"}` at once (the app's periodic `sync`
    /// sends the backlog). Never rejects because of the network: then it resolves
    /// `{kind: "queued"}`. Resolves `{kind: "refused", error}` when the server refused it
    /// for good (kept in the queue as failed); rejects only when the sale was not kept
    /// (refused before queuing).
    #[wasm_bindgen(unchecked_return_type = "Promise<Submitted>")]
    pub fn submit(
        &self,
        client: &Client,
        #[wasm_bindgen(unchecked_param_type = "Transaction")] transaction: JsValue,
        idempotency_key: Option<JsString>,
        now_ms: f64,
    ) -> JsResult<Promise> {
        let tx: core::Transaction = from_js("transaction", &transaction)?;
        let key = key_of(opt_text("idempotencyKey", idempotency_key)?)?;
        let now_ms = secs("nowMs", now_ms)?;
        let (outbox, c) = (self.0.clone(), client.0.clone());
        Ok(future_to_promise(async move {
            match outbox.submit(&c, tx, key, now_ms).await.or_throw()? {
                client::Submitted::Sent(s) => to_js(&JsSubmitted::Sent { stored: &s }),
                client::Submitted::Queued(k) => to_js(&JsSubmitted::Queued {
                    idempotency_key: k.as_str(),
                }),
                client::Submitted::Refused { key, error } => to_js(&JsSubmitted::Refused {
                    idempotency_key: key.as_str(),
                    error: JsQueueError::from(&error),
                }),
            }
        }))
    }

    /// Sends everything pending now, ignoring the backoff schedule.
    #[wasm_bindgen(js_name = syncNow, unchecked_return_type = "Promise<SyncReport>")]
    pub fn sync_now(&self, client: &Client, now_ms: f64) -> JsResult<Promise> {
        let now_ms = secs("nowMs", now_ms)?;
        let (outbox, c) = (self.0.clone(), client.0.clone());
        Ok(future_to_promise(async move {
            sync_report(outbox.sync_now(&c, now_ms).await)
        }))
    }

    /// Sends the pending transactions if the oldest one is due at `nowMs` (the backoff
    /// schedule is kept): what an app's timer calls.
    #[wasm_bindgen(unchecked_return_type = "Promise<SyncReport>")]
    pub fn sync(&self, client: &Client, now_ms: f64) -> JsResult<Promise> {
        let now_ms = secs("nowMs", now_ms)?;
        let (outbox, c) = (self.0.clone(), client.0.clone());
        Ok(future_to_promise(async move {
            sync_report(outbox.sync(&c, now_ms).await)
        }))
    }

    /// Every queued record (pending and failed), in order of sale.
    #[wasm_bindgen(unchecked_return_type = "QueuedTransaction[]")]
    pub fn entries(&self) -> JsResult<JsValue> {
        let entries = self.0.entries();
        to_js(
            &entries
                .iter()
                .map(JsQueuedTransaction::from)
                .collect::<Vec<_>>(),
        )
    }

    /// When the queue is next due (Unix ms), for the app's timer; `undefined` when
    /// nothing is pending.
    #[wasm_bindgen(js_name = nextAttemptAt)]
    pub fn next_attempt_at(&self) -> Option<f64> {
        self.0.next_attempt_at().map(|t| t as f64)
    }

    /// Pending transactions (the queue length a till shows; refused ones stay in
    /// `entries()` as `failed`).
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.0.len()
    }

    /// The last error a send met, if the queue is not healthy.
    #[wasm_bindgen(js_name = lastError, unchecked_return_type = "QueueError | undefined")]
    pub fn last_error(&self) -> JsResult<JsValue> {
        match self.0.last_error() {
            Some(e) => to_js(&JsQueueError::from(&e)),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Puts a transaction the server refused for good (`state: "failed"`) back in the
    /// queue, due at `nowMs` (after the app fixed the cause). Nothing happens for a key
    /// that is not failed.
    #[wasm_bindgen(js_name = retryFailed, unchecked_return_type = "Promise<void>")]
    pub fn retry_failed(&self, idempotency_key: &JsString, now_ms: f64) -> JsResult<Promise> {
        let key =
            client::IdempotencyKey::new(&text("idempotencyKey", idempotency_key)?).or_throw()?;
        let now_ms = secs("nowMs", now_ms)?;
        let outbox = self.0.clone();
        Ok(future_to_promise(async move {
            outbox.retry_failed(&key, now_ms).await.or_throw()?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Removes a transaction the server refused for good (`state: "failed"`) from the
    /// queue, for good. Pending ones are never discarded: they may already be on the
    /// server.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn discard(&self, idempotency_key: &JsString) -> JsResult<Promise> {
        let key =
            client::IdempotencyKey::new(&text("idempotencyKey", idempotency_key)?).or_throw()?;
        let outbox = self.0.clone();
        Ok(future_to_promise(async move {
            outbox.discard(&key).await.or_throw()?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// The stored records the queue could not read (and an unreadable witness record),
    /// kept until `removeCorrupt(name)`.
    #[wasm_bindgen(js_name = corruptRecords, unchecked_return_type = "CorruptRecord[]")]
    pub fn corrupt_records(&self) -> JsResult<JsValue> {
        let records = self.0.corrupt_records();
        to_js(
            &records
                .iter()
                .map(|c| JsCorruptRecord {
                    name: &c.name,
                    id: c.id,
                    reason: &c.reason,
                })
                .collect::<Vec<_>>(),
        )
    }

    /// Deletes an unreadable record by its `name`, after the app has looked at it.
    #[wasm_bindgen(js_name = removeCorrupt, unchecked_return_type = "Promise<void>")]
    pub fn remove_corrupt(&self, name: &JsString) -> JsResult<Promise> {
        let name = text("name", name)?;
        let outbox = self.0.clone();
        Ok(future_to_promise(async move {
            outbox.remove_corrupt(&name).await.or_throw()?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// The register's witness: the newest receipt of its chain it was given and
    /// accepted (moved by every sale the queue sends), kept with the queue.
    pub fn witness(&self) -> Option<String> {
        self.0.witness()
    }

    /// The first receipt that did not fit the witness (a forked chain, a receipt that
    /// does not verify), kept as evidence until `resetWitness()` or `resetWitnessSeen()`.
    #[wasm_bindgen(
        js_name = witnessProblem,
        unchecked_return_type = "WitnessProblem | undefined"
    )]
    pub fn witness_problem(&self) -> JsResult<JsValue> {
        match self.0.witness_problem() {
            Some(p) => to_js(&p),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Takes `receipt` (verified alone against the client's trusted keys, and a receipt
    /// of `productionNumber`, the register's own) as the witness when none is kept yet,
    /// for an app that kept its own before; `false` if the outbox already keeps one,
    /// which is never replaced. Drop the app's copy only after it resolves.
    #[wasm_bindgen(js_name = adoptWitness, unchecked_return_type = "Promise<boolean>")]
    pub fn adopt_witness(
        &self,
        client: &Client,
        receipt: &JsString,
        production_number: &JsString,
    ) -> JsResult<Promise> {
        let receipt = text("receipt", receipt)?;
        let production_number = text("productionNumber", production_number)?;
        let (outbox, c) = (self.0.clone(), client.0.clone());
        Ok(future_to_promise(async move {
            let adopted = outbox.adopt_witness(&c, &receipt, &production_number).await;
            Ok(adopted.or_throw()?.into())
        }))
    }

    /// Forgets the witness and the problem `witnessProblem()` reports now (a register
    /// activated afresh, or once the operator has dealt with it). A different problem
    /// another tab on the same `localStorage` prefix stored meanwhile is kept, and
    /// reported from then on: an app that shows the problem to the operator calls
    /// `resetWitnessSeen` with the one it showed instead.
    #[wasm_bindgen(js_name = resetWitness, unchecked_return_type = "Promise<void>")]
    pub fn reset_witness(&self) -> Promise {
        let outbox = self.0.clone();
        future_to_promise(async move {
            outbox.reset_witness().await.or_throw()?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Forgets the witness, erasing only `seen`, the problem the operator was shown
    /// (`null` or `undefined`: none was). A different problem another tab stored
    /// meanwhile is kept: it resolves to that problem (also `witnessProblem()` from now
    /// on), for the app to show; `undefined` when none was kept. `seen` is read strictly,
    /// as `witnessProblem()` gave it (`invalid_argument` otherwise, thrown at the call).
    #[wasm_bindgen(
        js_name = resetWitnessSeen,
        unchecked_return_type = "Promise<WitnessProblem | undefined>"
    )]
    pub fn reset_witness_seen(
        &self,
        #[wasm_bindgen(unchecked_param_type = "WitnessProblem | null | undefined")] seen: JsValue,
    ) -> JsResult<Promise> {
        let seen: Option<client::WitnessProblem> = if seen.is_null() || seen.is_undefined() {
            None
        } else {
            Some(from_js::<JsWitnessProblem>("seen", &seen)?.into())
        };
        let outbox = self.0.clone();
        Ok(future_to_promise(async move {
            match outbox.reset_witness_seen(seen.as_ref()).await.or_throw()? {
                Some(p) => to_js(&p),
                None => Ok(JsValue::UNDEFINED),
            }
        }))
    }

    /// Fetches and verifies the register's whole history with its witness
    /// (`witness_mismatch` if the server no longer holds it); the witness then moves to
    /// the checked chain's end.
    #[wasm_bindgen(
        js_name = verifyHistory,
        unchecked_return_type = "Promise<VerifiedHistory>"
    )]
    pub fn verify_history(&self, client: &Client) -> Promise {
        let (outbox, c) = (self.0.clone(), client.0.clone());
        future_to_promise(async move { to_js(&outbox.verify_history(&c).await.or_throw()?) })
    }

    /// The quick form of `verifyHistory`: only the transactions from the witness on
    /// (the whole history when there is none yet).
    #[wasm_bindgen(
        js_name = verifyHistorySince,
        unchecked_return_type = "Promise<VerifiedHistory>"
    )]
    pub fn verify_history_since(&self, client: &Client) -> Promise {
        let (outbox, c) = (self.0.clone(), client.0.clone());
        future_to_promise(async move { to_js(&outbox.verify_history_since(&c).await.or_throw()?) })
    }
}

fn sync_report(r: client::SyncReport) -> JsResult<JsValue> {
    to_js(&JsSyncReport {
        sent: r.sent.iter().map(|(k, _)| k.as_str().to_owned()).collect(),
        stored: r.sent.into_iter().map(|(_, s)| s).collect(),
        failed: r
            .failed
            .iter()
            .map(|(k, _)| k.as_str().to_owned())
            .collect(),
        stopped_by: r.stopped_by.map(|e| e.code().to_owned()),
        remaining: r.remaining,
        already_running: r.already_running,
        witness_problem: r.witness_problem,
    })
}

/// The device's clock as Unix milliseconds (for the `nowMs` arguments).
#[wasm_bindgen(js_name = unixTimeMs)]
pub fn unix_time_ms() -> f64 {
    client::unix_time_ms() as f64
}
