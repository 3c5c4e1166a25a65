//! The HTTP client for the Tillgate server API.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tillgate_core::wire::{
    ActivationCreated, MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN, ProductOut, Renewed,
};
use tillgate_core::{
    ActivationRequest, ApiKey, ReceiptClaims, ReceiptMisnames, TrustedKeys, VerifiedDescriptor,
    VerifyOptions, decode_receipt_unverified, transaction_hash, validate_activation_request,
    validate_transaction, verify_descriptor, verify_receipt_chain_from,
    verify_receipt_chain_from_witness, verify_receipt_chain_witnessed, verify_server_time,
};

use crate::api::{
    Activation, ActivationCode, Handshake, Product, ProductCatalogue, ProductPage, ProductSync,
    parse_handshake, parse_list,
};
use crate::http::{Http, Method, Request, Response, SendError, redact_url};
use crate::{ClientError, IdempotencyKey, RenewRequest, Result, StoredTransaction};

/// Default time a whole request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to establish a connection (native targets).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default cap on the size of one answer from the server: 8 MiB. The largest answers are
/// list pages. A page of products (at most 1,000) stays well under it; a page of
/// transactions need not: a transaction may be as large as the server accepts (256 KiB
/// by default, up to 1,000 lines) plus its receipt, so even a few dozen large ones pass
/// 8 MiB. A page of transactions refused for its size is asked for again in halves (see
/// [`ClientConfig::transaction_page_size`]).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Default transactions asked for per page of `GET /transactions`: 100, the server's own
/// default, a page of typical sales a slow link reads well within the default timeout.
pub const DEFAULT_TRANSACTION_PAGE_SIZE: u32 = 100;
/// The most transactions the server gives per page (its `limit` is 1–1000).
pub const MAX_TRANSACTION_PAGE_SIZE: u32 = 1000;

/// How a [`Client`] talks to the server and what it trusts. `Debug` redacts a URL-path
/// token (and a password) in the base URL.
#[derive(Clone)]
pub struct ClientConfig {
    /// The server's base URL, e.g. `https://pos.example` (a path prefix is allowed).
    pub base_url: String,
    /// The public keys built into the app: descriptors, server-signed times and receipts
    /// are verified against these and nothing else.
    pub trusted_keys: TrustedKeys,
    /// Time a whole request may take. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Time to establish a connection (native only). Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// If set, a descriptor must be bound to this device.
    pub device_id: Option<String>,
    /// If set, a descriptor must name this application package.
    pub application_package: Option<String>,
    /// Tolerance for clock checks (seconds); `None` uses core's defaults.
    pub clock_tolerance_secs: Option<i64>,
    /// `User-Agent` sent with every request (native only; browsers set their own).
    pub user_agent: String,
    /// An answer larger than this is refused with [`ClientError::InvalidResponse`]
    /// instead of being read into memory (a misconfigured proxy or a hostile server must
    /// not exhaust a till's memory). Default [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub max_response_bytes: usize,
    /// Transactions asked for per page when listing them
    /// ([`list_transactions`](Client::list_transactions) and the history checks),
    /// 1 to [`MAX_TRANSACTION_PAGE_SIZE`]; anything else fails [`Client::new`] with
    /// [`ClientError::InvalidConfig`]. Default [`DEFAULT_TRANSACTION_PAGE_SIZE`]. Larger
    /// pages take fewer requests but longer ones: on a slow link lower it (or raise
    /// `timeout`). A page whose answer is over `max_response_bytes` is asked for again
    /// with half as many transactions, down to one, and the listing goes on; only a
    /// single transaction over the cap fails it (`invalid_response`).
    pub transaction_page_size: u32,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("trusted_keys", &self.trusted_keys)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("device_id", &self.device_id)
            .field("application_package", &self.application_package)
            .field("clock_tolerance_secs", &self.clock_tolerance_secs)
            .field("user_agent", &self.user_agent)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("transaction_page_size", &self.transaction_page_size)
            .finish()
    }
}

impl ClientConfig {
    /// A configuration with the default timeouts and no device or package binding.
    pub fn new(base_url: impl Into<String>, trusted_keys: TrustedKeys) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            trusted_keys,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            device_id: None,
            application_package: None,
            clock_tolerance_secs: None,
            user_agent: concat!("tillgate-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            transaction_page_size: DEFAULT_TRANSACTION_PAGE_SIZE,
        }
    }
}

/// An async client for one register. Cheap to clone (clones share the key, the trusted
/// time floor and the connection pool). Every call is async and each request it sends is
/// bounded by the configured timeouts. Most calls send one request, so the till never
/// waits on the network for long; the calls that follow the server's pages
/// ([`list_transactions`](Self::list_transactions),
/// [`verify_history`](Self::verify_history),
/// [`verify_history_since`](Self::verify_history_since),
/// [`sync_products`](Self::sync_products)) send one request per page (of
/// [`ClientConfig::transaction_page_size`] transactions, or up to 1,000 products), so
/// they take as long as the history or the catalogue needs: keep them off the path of a
/// sale.
///
/// `Debug` never shows the API key, nor a URL-path token in the base URL.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    base: String,
    config: ClientConfig,
    api_key: RwLock<Option<ApiKey>>,
    time_floor: Mutex<Option<i64>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &redact_url(&self.inner.base))
            .field("api_key", &self.api_key())
            .field("trusted_time_floor", &self.trusted_time_floor())
            .field("trusted_keys", &self.inner.config.trusted_keys)
            .finish()
    }
}

/// Draws `n` random bytes as lower-case hex.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| {
        ClientError::Core(tillgate_core::Error::Random {
            reason: e.to_string(),
        })
    })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Client {
    /// Builds a client. Fails only on an unusable configuration
    /// ([`ClientError::InvalidConfig`]).
    pub fn new(config: ClientConfig) -> Result<Self> {
        if !(1..=MAX_TRANSACTION_PAGE_SIZE).contains(&config.transaction_page_size) {
            return Err(ClientError::InvalidConfig(format!(
                "transaction_page_size must be 1 to {MAX_TRANSACTION_PAGE_SIZE}, not {}",
                config.transaction_page_size
            )));
        }
        let base = config.base_url.trim_end_matches('/').to_owned();
        let http = Http::new(
            &base,
            config.timeout,
            config.connect_timeout,
            &config.user_agent,
            config.max_response_bytes,
        )?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                config,
                api_key: RwLock::new(None),
                time_floor: Mutex::new(None),
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Sets the API key (e.g. read back from secure storage at start).
    pub fn set_api_key(&self, key: ApiKey) {
        if let Ok(mut k) = self.inner.api_key.write() {
            *k = Some(key);
        }
    }

    /// The API key in use, if any.
    pub fn api_key(&self) -> Option<ApiKey> {
        self.inner.api_key.read().ok().and_then(|k| k.clone())
    }

    /// The latest trusted time seen (Unix seconds): the highest verified server-signed
    /// timestamp. Persist it and give it back with
    /// [`restore_trusted_time_floor`](Self::restore_trusted_time_floor) at the next start,
    /// so that turning the device clock back is noticed even offline.
    pub fn trusted_time_floor(&self) -> Option<i64> {
        self.inner.time_floor.lock().ok().and_then(|f| *f)
    }

    /// Raises the trusted time floor to `floor` (it never goes down).
    pub fn restore_trusted_time_floor(&self, floor: i64) {
        if let Ok(mut f) = self.inner.time_floor.lock() {
            *f = Some(f.map_or(floor, |cur| cur.max(floor)));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.inner.base, path)
    }

    fn request(&self, method: Method, path: &str) -> Request {
        Request::new(method, self.url(path))
    }

    fn authed(&self, method: Method, path: &str) -> Result<Request> {
        let key = self.api_key().ok_or(ClientError::NotActivated)?;
        Ok(self
            .request(method, path)
            .authorization(format!("Bearer {}", key.expose())))
    }

    /// Sends a request; returns a 2xx answer, or the typed error.
    async fn send(&self, req: Request) -> Result<Response> {
        Ok(self.send_sized(req).await?)
    }

    /// [`send`](Self::send), telling an answer over `max_response_bytes` apart
    /// ([`SendError::TooLarge`]) for a caller that can ask for less.
    async fn send_sized(&self, req: Request) -> Result<Response, SendError> {
        let resp = self.inner.http.send(req).await?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        // Never followed (see `Http::new`): the base URL is out of date.
        if (300..400).contains(&resp.status) {
            let location = resp.header("location");
            return Err(ClientError::redirect(Some(resp.status), location.as_deref()).into());
        }
        let retry_after = resp
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(SendError::Other(ClientError::from_response(
            resp.status,
            retry_after,
            &resp.body,
        )))
    }

    async fn send_json<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T> {
        let body = self.send(req).await?.body;
        serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse(e.to_string()))
    }

    /// `POST /activations-advanced`: registers this cash register. The request is checked
    /// by core first (every bad field listed, nothing sent). On success the returned API
    /// key is set on this client; the activation stays `pending` until approved.
    ///
    /// Not repeatable: every request the server receives creates a registration of its
    /// own. After an answer that did not arrive ([`ClientError::Timeout`],
    /// [`ClientError::Network`], a 5xx) the server may have registered the till under a
    /// key the app never saw. An app that must recover from that uses
    /// [`activate_with_key`](Self::activate_with_key) (docs/PROTOCOL.md 9.8).
    pub async fn activate(&self, request: &ActivationRequest) -> Result<Activation> {
        validate_activation_request(request)?;
        let body: ActivationCreated = self
            .send_json(
                self.request(Method::Post, "/activations-advanced")
                    .json(request)?,
            )
            .await?;
        self.registered(body)
    }

    /// [`activate`](Self::activate) with the app's own `Idempotency-Key`, stored by the
    /// app before the first send and reused, with the same request, until an answer
    /// arrives (also after a restart), once the earlier attempt has ended (it failed or
    /// timed out). The server answers a repeat with the one registration and a fresh API
    /// key, which works from then on in place of the keys answered before, while the
    /// registration is pending, never decided and at most a day old; afterwards a repeat
    /// gets [`ClientError::Api`] 409 `activation_not_repeatable` (activate with a new
    /// key), and the key with another request 422 `idempotency_key_reused`. Sent once:
    /// the app chooses when to try again (each try spends one of the address's
    /// activation requests a minute). A server before schema 6 ignores the key: there
    /// every request creates a registration, as with [`activate`](Self::activate).
    ///
    /// The key lets its holder have the registration's API key issued again, so it must
    /// be as hard to guess: at least 32 visible ASCII characters
    /// ([`IdempotencyKey::generate`], or a UUID); a shorter one is refused here with
    /// [`ClientError::InvalidIdempotencyKey`], nothing sent.
    pub async fn activate_with_key(
        &self,
        request: &ActivationRequest,
        key: &IdempotencyKey,
    ) -> Result<Activation> {
        validate_activation_request(request)?;
        if key.as_str().len() < MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN {
            return Err(ClientError::InvalidIdempotencyKey(format!(
                "an activation's key must be at least {MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN} \
                 characters, as hard to guess as an API key"
            )));
        }
        let body: ActivationCreated = self
            .send_json(
                self.request(Method::Post, "/activations-advanced")
                    .header("idempotency-key", key.as_str())
                    .json(request)?,
            )
            .await?;
        self.registered(body)
    }

    /// The activation an answer carries; its key is set on this client.
    fn registered(&self, body: ActivationCreated) -> Result<Activation> {
        let activation = Activation::try_from(body)?;
        self.set_api_key(activation.api_key.clone());
        Ok(activation)
    }

    /// `GET /auth/handshake`: checks the key and the registration's status. Sends a fresh
    /// nonce (and the configured device id and application package, which the server
    /// checks too); the server-signed time in the answer must echo the nonce and verify
    /// against the trusted keys, and then becomes the trusted time floor.
    ///
    /// The signed time's `sub` must also equal the answer's `productionNumber`, else
    /// [`ClientError::InvalidResponse`]. That is a consistency check of one answer, not
    /// proof that the time was issued to this register: the client does not know the
    /// register's ProductionNumber on its own (it keeps only the API key), and the
    /// `productionNumber` beside the signed time is not signed. An app that stored its
    /// ProductionNumber (from [`activate`](Self::activate), or the `sub` of its verified
    /// descriptor) compares it with [`Handshake::production_number`] (equal to
    /// `server_time.sub` here) to check the register too (docs/PROTOCOL.md 6.2).
    ///
    /// Errors the app acts on: [`ClientError::PendingApproval`],
    /// [`ClientError::KeyExpired`] (renew), [`ClientError::KeyNotYetValid`],
    /// [`ClientError::Rejected`], [`ClientError::Revoked`], [`ClientError::Unauthorized`].
    pub async fn handshake(&self) -> Result<Handshake> {
        let nonce = random_hex(16)?;
        let mut query = vec![("nonce", nonce.as_str())];
        if let Some(d) = &self.inner.config.device_id {
            query.push(("deviceId", d));
        }
        if let Some(p) = &self.inner.config.application_package {
            query.push(("applicationPackage", p));
        }
        let body = self
            .send(self.authed(Method::Get, "/auth/handshake")?.query(&query))
            .await?
            .body;
        let (body, extra) = parse_handshake(&body)?;
        let token = body.signed_time;
        let claims = verify_server_time(&token, &self.inner.config.trusted_keys, Some(&nonce))?;
        // A time signed for another register is no evidence for this one.
        if claims.sub != body.production_number {
            return Err(ClientError::InvalidResponse(format!(
                "the signed time was issued to {}, not to this register ({})",
                claims.sub, body.production_number
            )));
        }
        self.restore_trusted_time_floor(claims.iat);
        Ok(Handshake {
            status: body.status,
            production_number: Some(body.production_number),
            valid_from: Some(body.valid_from),
            valid_to: Some(body.valid_to),
            server_time: claims,
            server_time_jws: token,
            extra,
        })
    }

    /// `POST /activations/renew`: renews an expiring or expired key (within the server's
    /// grace period), authenticated by the current key, for a new period (checked by
    /// core first, and sent in its canonical form, `2026-06-01T00:00:00Z`, whatever RFC
    /// 3339 spelling the request used). On success the new key replaces the old one on
    /// this client; the old key stops working. Typical answer to
    /// [`ClientError::KeyExpired`].
    ///
    /// The new period must have begun on the server: its `validFrom` no later than the
    /// server's current time (the new key replaces the old one at once), and its
    /// `validTo` after the current period's end and in the future. Else the server
    /// answers 400 `invalid_renewal_request` ([`ClientError::Api`]) naming the field:
    /// `validFrom` `in_the_future`, `validTo` `period_inconsistent`. Start the new period
    /// today, not when the current one ends.
    ///
    /// When the answer is lost (a timeout after the server renewed), the old key gets
    /// [`ClientError::KeyReplaced`] from then on: call `renew` again, still with the old
    /// key, with the same request (the same new period). This project's server answers
    /// such a repeat with a fresh key for ten minutes after the renewal.
    pub async fn renew(&self, request: &RenewRequest) -> Result<Activation> {
        let mut body = canonical_renewal(request)?;
        body.descriptor = None;
        self.renew_with(self.authed(Method::Post, "/activations/renew")?, &body)
            .await
    }

    /// `POST /activations/renew` without the old key (lost with the device's storage),
    /// authenticated by the stored signed descriptor instead. The registration then waits
    /// for an administrator's approval again (status `pending`). The period is checked
    /// and sent as by [`renew`](Self::renew), and must likewise have begun on the server
    /// (`validFrom` no later than its current time, else 400 `invalid_renewal_request`
    /// with `validFrom` `in_the_future`).
    ///
    /// Only a descriptor of the registration's current period works: once any renewal
    /// succeeded, the descriptor stored before it is refused (401 `descriptor_superseded`).
    pub async fn renew_with_descriptor(
        &self,
        request: &RenewRequest,
        descriptor_jws: &str,
    ) -> Result<Activation> {
        let mut body = canonical_renewal(request)?;
        body.descriptor = Some(descriptor_jws.to_owned());
        self.renew_with(self.request(Method::Post, "/activations/renew"), &body)
            .await
    }

    async fn renew_with(&self, req: Request, body: &RenewRequest) -> Result<Activation> {
        let body: Renewed = self.send_json(req.json(body)?).await?;
        let activation = Activation::try_from(body)?;
        self.set_api_key(activation.api_key.clone());
        Ok(activation)
    }

    fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            trusted_time_floor: self.trusted_time_floor(),
            clock_tolerance_secs: self.inner.config.clock_tolerance_secs,
            expected_device_id: self.inner.config.device_id.clone(),
            expected_application_package: self.inner.config.application_package.clone(),
            ..VerifyOptions::default()
        }
    }

    /// `GET /activations/activation-code`: fetches the signed ActivationDescriptor and
    /// verifies it locally (core's `verify_descriptor`) against the app's built-in keys,
    /// the trusted time floor, and the configured device and package. `now` is the
    /// device's time, Unix seconds. Store [`ActivationCode::jws`] for offline starts.
    pub async fn activation_code(&self, now: i64) -> Result<ActivationCode> {
        let body = self
            .send(self.authed(Method::Get, "/activations/activation-code")?)
            .await?
            .body;
        let jws = extract_jws(&body)?;
        let descriptor = self.verify_stored_descriptor(&jws, now)?;
        Ok(ActivationCode { jws, descriptor })
    }

    /// Verifies a stored descriptor offline, the same way as
    /// [`activation_code`](Self::activation_code): what an app does at a start without
    /// network. Restore the trusted time floor first.
    pub fn verify_stored_descriptor(&self, jws: &str, now: i64) -> Result<VerifiedDescriptor> {
        Ok(verify_descriptor(
            jws,
            &self.inner.config.trusted_keys,
            now,
            &self.verify_options(),
        )?)
    }

    /// `POST /transactions` with the `Idempotency-Key` header. The transaction is
    /// validated by core first. Sending the same key again returns the same stored
    /// transaction and never creates a second one. Most apps go through the
    /// [`Outbox`](crate::Outbox) instead, which persists first and retries.
    ///
    /// The answer must be the sale sent: the stored transaction the server echoes must
    /// have the sent one's [`transaction_hash`], and its receipt's claims must name it (`txh` the same hash, `txid` and `seq` the stored
    /// id and sequence number). Anything else (a server that stored an altered sale, or
    /// answers with another one) fails with [`ClientError::AnswerMismatch`]
    /// (`answer_mismatch`): the sale cannot be taken as stored. The receipt's signature
    /// and its place in the register's chain are not checked here (the
    /// [`Outbox`](crate::Outbox)'s witness does that, and reports a receipt that cannot
    /// be read at all as `invalid_receipt`).
    pub async fn submit_transaction(
        &self,
        transaction: &tillgate_core::Transaction,
        key: &IdempotencyKey,
    ) -> Result<StoredTransaction> {
        validate_transaction(transaction)?;
        let stored: StoredTransaction = self
            .send_json(
                self.authed(Method::Post, "/transactions")?
                    .header("idempotency-key", key.as_str())
                    .json(transaction)?,
            )
            .await?;
        answers_the_sale(transaction, &stored)?;
        Ok(stored)
    }

    /// `GET /transactions`: all of the register's transactions, in sequence order
    /// (following the server's pages of [`ClientConfig::transaction_page_size`], one
    /// request each: a long history takes a while, see [`Client`]). A page whose answer
    /// is over `max_response_bytes` is asked for again with half as many transactions,
    /// down to one; only a single transaction over the cap fails the listing
    /// (`invalid_response`).
    pub async fn list_transactions(&self) -> Result<Vec<StoredTransaction>> {
        self.list_transactions_after(None).await
    }

    /// The register's transactions after sequence number `after` (all with `None`), in
    /// sequence order, following the server's pages: of the configured size, halved for
    /// a page whose answer is over the cap (see [`PageSize`]).
    async fn list_transactions_after(&self, after: Option<u64>) -> Result<Vec<StoredTransaction>> {
        let config = &self.inner.config;
        let mut size = PageSize::new(config.transaction_page_size, config.max_response_bytes);
        let mut all: Vec<StoredTransaction> = Vec::new();
        let mut after = after;
        loop {
            let mut req = self
                .authed(Method::Get, "/transactions")?
                .query(&[("limit", &size.limit().to_string())]);
            if let Some(a) = after {
                req = req.query(&[("afterSequence", &a.to_string())]);
            }
            let body = match self.send_sized(req).await {
                Ok(resp) => resp.body,
                Err(SendError::TooLarge(max)) => {
                    if size.halve() {
                        continue;
                    }
                    return Err(SendError::TooLarge(max).into());
                }
                Err(SendError::Other(e)) => return Err(e),
            };
            size.fitted(body.len());
            let (list, _, raw) =
                parse_list::<StoredTransaction>(&body, &["items", "transactions"])?;
            let next = next_page(raw.get("nextAfterSequence"), after, &list)?;
            all.extend(list);
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        all.sort_by_key(|t| t.sequence);
        all.dedup_by_key(|t| t.sequence);
        Ok(all)
    }

    /// `GET /transactions/{id}`.
    pub async fn get_transaction(&self, id: &str) -> Result<StoredTransaction> {
        let path = format!("/transactions/{}", encode_path_segment(id));
        self.send_json(self.authed(Method::Get, &path)?).await
    }

    /// Verifies a run of stored transactions offline: the receipt chain (signatures
    /// against the trusted keys, gapless sequence, `prev` links; continuing `previous`
    /// when given, else from sequence 1), and that each receipt names its transaction's
    /// id and hash and its sequence.
    pub fn verify_receipts(
        &self,
        previous_receipt: Option<&str>,
        transactions: &[StoredTransaction],
    ) -> Result<Vec<ReceiptClaims>> {
        let receipts: Vec<&str> = transactions.iter().map(|t| t.receipt.as_str()).collect();
        let claims = verify_receipt_chain_from(
            previous_receipt,
            &receipts,
            &self.inner.config.trusted_keys,
        )?;
        receipts_name_their_rows(&claims, transactions)?;
        Ok(claims)
    }

    /// Fetches every stored transaction of the register and verifies them offline, as
    /// [`verify_receipts`](Self::verify_receipts) does from sequence 1.
    ///
    /// With `witness`, a receipt the register kept when the server returned it (its
    /// latest, say; any receipt of a [`StoredTransaction`] the app was given), the
    /// server's chain must also hold that receipt, byte for byte, at its sequence
    /// ([`verify_receipt_chain_witnessed`]). The chain links fix everything before it,
    /// so a history the server changed or cut back after the register saw it fails with
    /// `witness_mismatch`, even if signed afresh with the server's key. The register is
    /// then a witness the server's operators cannot rewrite.
    ///
    /// It fetches the whole history, one request per page of
    /// [`ClientConfig::transaction_page_size`] transactions, so it takes
    /// longer the longer the history: run it away from a sale (or use
    /// [`verify_history_since`](Self::verify_history_since)).
    pub async fn verify_history(&self, witness: Option<&str>) -> Result<VerifiedHistory> {
        let transactions = self.list_transactions().await?;
        let receipts: Vec<&str> = transactions.iter().map(|t| t.receipt.as_str()).collect();
        let keys = &self.inner.config.trusted_keys;
        let claims = match witness {
            Some(w) => verify_receipt_chain_witnessed(&receipts, keys, w)?,
            None => verify_receipt_chain_from(None, &receipts, keys)?,
        };
        receipts_name_their_rows(&claims, &transactions)?;
        Ok(VerifiedHistory {
            transactions,
            receipts: claims,
        })
    }

    /// The quick form of [`verify_history`](Self::verify_history) for a register with a
    /// long history: fetches only the transactions from the witness's sequence number on.
    /// The first must carry the witness, byte for byte (else `witness_mismatch`: the
    /// history was cut back or changed there), and the rest must continue it as a chain,
    /// each receipt naming its transaction. What lies before the witness is not fetched,
    /// so a change there is seen only by the full check: run that now and then.
    pub async fn verify_history_since(&self, witness: &str) -> Result<VerifiedHistory> {
        // Where to start fetching; core verifies the witness with the rest.
        let sequence = decode_receipt_unverified(witness)
            .map_err(|e| tillgate_core::Error::InvalidWitness {
                source: Box::new(e),
            })?
            .seq;
        let transactions = self
            .list_transactions_after(Some(sequence.saturating_sub(1)))
            .await?;
        let receipts: Vec<&str> = transactions.iter().map(|t| t.receipt.as_str()).collect();
        let claims =
            verify_receipt_chain_from_witness(witness, &receipts, &self.inner.config.trusted_keys)?;
        receipts_name_their_rows(&claims, &transactions)?;
        Ok(VerifiedHistory {
            transactions,
            receipts: claims,
        })
    }

    /// `GET /products` with the catalogue's RVE: only products changed after it come
    /// back, and are merged into `catalogue` (a withdrawn product stays, with `active`
    /// false); the catalogue's RVE moves to the server's. The first sync (no RVE) fetches
    /// everything. While the server says `more` (a page holds at most 1,000 products),
    /// the next page is fetched ([`product_changes`](Self::product_changes)); each page is
    /// merged as it arrives, so a sync cut short keeps what it got and the next one goes
    /// on from there. A server that names an RVE it named before in the same sync while
    /// saying `more` (which would go round for ever) is refused with `invalid_response`.
    pub async fn sync_products(&self, catalogue: &mut ProductCatalogue) -> Result<ProductSync> {
        let mut changed = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = self.product_changes(catalogue.rve.as_deref()).await?;
            if page.more && !seen.insert(page.rve.clone()) {
                return Err(ClientError::InvalidResponse(
                    "more products follow, but the RVE went back to one already asked with".into(),
                ));
            }
            changed += catalogue.merge(page.products, page.rve);
            if !page.more {
                return Ok(ProductSync { changed });
            }
        }
    }

    /// One page of `GET /products`: the products changed after `rve` (all of them when
    /// `None`), the RVE to ask with next and whether more follow. For apps that keep the
    /// catalogue in their own store: merge each page, keep its `rve`, and ask again while
    /// `more`. A page saying `more` with no RVE, or with the RVE asked with, is refused
    /// with `invalid_response` (asking again would get the same page).
    pub async fn product_changes(&self, rve: Option<&str>) -> Result<ProductPage> {
        let mut req = self.authed(Method::Get, "/products")?;
        if let Some(rve) = rve {
            req = req.query(&[("rve", rve)]);
        }
        let resp = self.send(req).await?;
        let (delta, next, whole) = parse_list::<ProductOut>(&resp.body, &["items", "products"])?;
        let more = whole.get("more").and_then(serde_json::Value::as_bool) == Some(true);
        let next = next.or_else(|| resp.header("x-rve"));
        if more && (next.is_none() || next.as_deref() == rve) {
            return Err(ClientError::InvalidResponse(
                "more products follow, but the RVE did not move".into(),
            ));
        }
        Ok(ProductPage {
            products: delta.into_iter().map(Product::from).collect(),
            rve: next,
            more,
        })
    }

    /// `PUT /products/{id}`: creates or replaces a product of the register's company
    /// (`updated_at` is set by the server). Withdraw one with `active: false`.
    pub async fn put_product(&self, product: &Product) -> Result<Product> {
        let path = format!("/products/{}", encode_path_segment(&product.id));
        let out: ProductOut = self
            .send_json(
                self.authed(Method::Put, &path)?
                    .json(&tillgate_core::Product::from(product))?,
            )
            .await?;
        Ok(out.into())
    }
}

/// How many transactions to ask for per page: the configured size, halved (down to one)
/// each time a page's answer is over the cap, and doubled back towards the configured
/// size after a page that used at most half the cap, so that a few large transactions
/// make only their own pages small, and a run of them does not cost a refused request
/// for every page.
#[derive(Debug)]
struct PageSize {
    configured: u32,
    current: u32,
    cap: usize,
}

impl PageSize {
    fn new(configured: u32, cap: usize) -> Self {
        let configured = configured.clamp(1, MAX_TRANSACTION_PAGE_SIZE);
        PageSize {
            configured,
            current: configured,
            cap,
        }
    }

    /// The page size to ask for now.
    fn limit(&self) -> u32 {
        self.current
    }

    /// The answer was over the cap: halves the page size. `false` when it was one
    /// transaction already (nothing smaller to ask for).
    fn halve(&mut self) -> bool {
        if self.current <= 1 {
            return false;
        }
        self.current /= 2;
        true
    }

    /// A page's answer of `bytes` fitted: grows the size back when it left room.
    fn fitted(&mut self, bytes: usize) {
        if bytes <= self.cap / 2 {
            self.current = self.current.saturating_mul(2).min(self.configured);
        }
    }
}

/// The cursor of the page after this one (`None`: this page is the last). The cursor
/// must move strictly forward and name the page's last transaction, as the server sets
/// it: a server that sends anything else (a cursor standing still or going back, a page
/// empty or ending elsewhere) could keep the client fetching forever, and is refused
/// with `invalid_response`.
fn next_page(
    cursor: Option<&serde_json::Value>,
    after: Option<u64>,
    page: &[StoredTransaction],
) -> Result<Option<u64>> {
    let next = match cursor {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(v) => v.as_u64().ok_or_else(|| {
            ClientError::InvalidResponse("nextAfterSequence is not a sequence number".into())
        })?,
    };
    let bad = |why: &str| ClientError::InvalidResponse(format!("nextAfterSequence {next} {why}"));
    if next <= after.unwrap_or(0) {
        return Err(bad("does not move past the page's start"));
    }
    if page.iter().map(|t| t.sequence).max() != Some(next) {
        return Err(bad("is not the page's last sequence"));
    }
    if page.iter().any(|t| Some(t.sequence) <= after) {
        return Err(bad("follows a page holding transactions before its start"));
    }
    Ok(Some(next))
}

/// The activation code body: a JSON object holding the JWS, a JSON string, or the JWS as
/// plain text.
fn extract_jws(body: &[u8]) -> Result<String> {
    let invalid = || ClientError::InvalidResponse("no activation code in the response".into());
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(serde_json::Value::Object(o)) => [
            "activationCode",
            "descriptor",
            "jws",
            "signedDescriptor",
            "token",
        ]
        .iter()
        .find_map(|k| o.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
        .ok_or_else(invalid),
        Ok(_) => Err(invalid()),
        Err(_) => {
            let s = std::str::from_utf8(body).map_err(|_| invalid())?.trim();
            if s.split('.').count() == 3 {
                Ok(s.to_owned())
            } else {
                Err(invalid())
            }
        }
    }
}

fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks a renewal's period by core's rules and returns the request with both ends in
/// their canonical form (`2026-06-01T00:00:00Z`). A server may recognise a repeated
/// renewal (after a lost answer) by comparing the period's text with its own rendering,
/// so the client never sends the app's own spelling (`.000Z`, an offset, a lower-case
/// `t` or `z`).
fn canonical_renewal(r: &RenewRequest) -> Result<RenewRequest> {
    let period = tillgate_core::Period::parse(&r.valid_from, &r.valid_to)?;
    Ok(RenewRequest {
        valid_from: period.from_rfc3339(),
        valid_to: period.to_rfc3339(),
        ..r.clone()
    })
}

/// A register's stored history as the server returned it, verified
/// ([`Client::verify_history`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifiedHistory {
    /// Every stored transaction, in sequence order.
    pub transactions: Vec<StoredTransaction>,
    /// The claims of their receipts, in the same order.
    pub receipts: Vec<ReceiptClaims>,
}

/// Whether `stored`, the server's answer to `POST /transactions`, is the sale `sent`:
/// the same transaction (by its hash, the receipt's `txh`), and a receipt whose claims
/// name it: the hash, the stored id and the sequence number. The answer's own `txh`
/// member is not looked at: unsigned, it adds nothing to the echoed transaction. A
/// receipt that cannot be decoded names nothing and is left to the witness, which
/// reports it (`invalid_receipt`); this check decodes without verifying the signature,
/// which the witness does too.
fn answers_the_sale(sent: &tillgate_core::Transaction, stored: &StoredTransaction) -> Result<()> {
    let txh = transaction_hash(sent);
    let mismatch = |what: &str| Err(ClientError::AnswerMismatch(what.to_owned()));
    if transaction_hash(&stored.transaction) != txh {
        return mismatch("the server answered with another transaction than the one sent");
    }
    let Ok(claims) = decode_receipt_unverified(&stored.receipt) else {
        return Ok(());
    };
    match claims.names(&stored.id, stored.sequence, &txh) {
        Ok(()) => Ok(()),
        Err(ReceiptMisnames::TransactionHash) => {
            mismatch("the receipt names another transaction than the one sent")
        }
        Err(ReceiptMisnames::TransactionId) => {
            mismatch("the receipt names another transaction id than the answer")
        }
        Err(ReceiptMisnames::Sequence) => {
            mismatch("the receipt names another sequence number than the answer")
        }
    }
}

/// Each verified receipt must name its own row: id, sequence and transaction hash.
fn receipts_name_their_rows(
    claims: &[ReceiptClaims],
    transactions: &[StoredTransaction],
) -> Result<()> {
    for (i, (c, t)) in claims.iter().zip(transactions).enumerate() {
        let broken = |reason: &str| {
            ClientError::Core(tillgate_core::Error::ReceiptChainBroken {
                index: i,
                reason: reason.to_owned(),
            })
        };
        match c.names(&t.id, t.sequence, &transaction_hash(&t.transaction)) {
            Ok(()) => {}
            Err(ReceiptMisnames::TransactionId) => {
                return Err(broken("receipt names another transaction id"));
            }
            Err(ReceiptMisnames::Sequence) => {
                return Err(broken("receipt sequence differs from the transaction's"));
            }
            Err(ReceiptMisnames::TransactionHash) => {
                return Err(broken("receipt hash does not match the transaction"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_code_bodies() {
        assert_eq!(extract_jws(br#""a.b.c""#).unwrap(), "a.b.c");
        assert_eq!(
            extract_jws(br#"{"activationCode":"a.b.c","x":1}"#).unwrap(),
            "a.b.c"
        );
        assert_eq!(extract_jws(b"a.b.c\n").unwrap(), "a.b.c");
        assert!(extract_jws(b"{}").is_err());
        assert!(extract_jws(b"hello").is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
    }

    fn rows(sequences: &[u64]) -> Vec<StoredTransaction> {
        sequences
            .iter()
            .map(|&n| {
                serde_json::from_value(serde_json::json!({
                    "id": format!("tx_{n}"), "sequence": n, "receipt": "r.r.r",
                    "type": "sale", "currency": "SEK", "total": 100,
                    "vat": [{"rate": 2500, "amount": 20}],
                    "items": [{"name": "Kaffe", "quantity": 1, "amount": 100}],
                }))
                .unwrap()
            })
            .collect()
    }

    fn sale(total: i64) -> tillgate_core::Transaction {
        serde_json::from_value(serde_json::json!({
            "type": "sale", "currency": "SEK", "total": total,
            "items": [{"name": "Kaffe", "quantity": 1, "amount": total}],
        }))
        .unwrap()
    }

    /// The server's answer storing `tx` as `id` / `seq`, its receipt's claims changed
    /// by `edit`.
    fn answer(
        tx: &tillgate_core::Transaction,
        id: &str,
        seq: u64,
        edit: impl FnOnce(&mut ReceiptClaims),
    ) -> StoredTransaction {
        let mut claims = ReceiptClaims {
            iss: "https://pos.example".into(),
            sub: "TG-1".into(),
            iat: 1_751_328_000,
            seq,
            txid: id.into(),
            txh: transaction_hash(tx),
            prev: String::new(),
            tx_type: "sale".into(),
            total: tx.total,
            currency: "SEK".into(),
        };
        edit(&mut claims);
        let key = tillgate_core::SigningKey::from_seed(&[5; 32]);
        let mut v = serde_json::to_value(tx).unwrap();
        v["id"] = id.into();
        v["sequence"] = seq.into();
        v["txh"] = transaction_hash(tx).into();
        v["receipt"] = tillgate_core::sign_receipt(&claims, &key).unwrap().into();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn an_answer_must_be_the_sale_sent() {
        let sent = sale(12_500);
        assert!(answers_the_sale(&sent, &answer(&sent, "tx_1", 1, |_| ())).is_ok());
        // A receipt that cannot be read is left to the witness.
        let mut unreadable = answer(&sent, "tx_1", 1, |_| ());
        unreadable.receipt = "r.r.r".into();
        assert!(answers_the_sale(&sent, &unreadable).is_ok());
        let altered = sale(100);
        let refused = [
            // Another (or an altered) sale, consistently signed.
            answer(&altered, "tx_1", 1, |_| ()),
            // The sale, but a receipt naming another one, another id, another sequence.
            answer(&sent, "tx_1", 1, |c| c.txh = transaction_hash(&altered)),
            answer(&sent, "tx_1", 1, |c| c.txid = "tx_2".into()),
            answer(&sent, "tx_1", 1, |c| c.seq = 2),
        ];
        for (i, stored) in refused.iter().enumerate() {
            let e = answers_the_sale(&sent, stored).unwrap_err();
            assert!(matches!(e, ClientError::AnswerMismatch(_)), "{i}: {e:?}");
            assert_eq!(e.code(), "answer_mismatch", "{i}");
            assert!(!e.is_transient() && !e.is_auth() && e.http_status().is_none());
        }
    }

    #[test]
    fn the_page_cursor_must_move_forward_with_the_page() {
        use serde_json::json;
        // The last page: no cursor, or null.
        assert_eq!(next_page(None, Some(3), &rows(&[4])).unwrap(), None);
        assert_eq!(next_page(Some(&json!(null)), None, &[]).unwrap(), None);
        // A full page: the cursor is its last sequence.
        assert_eq!(
            next_page(Some(&json!(3)), None, &rows(&[1, 2, 3])).unwrap(),
            Some(3)
        );
        assert_eq!(
            next_page(Some(&json!(6)), Some(3), &rows(&[4, 5, 6])).unwrap(),
            Some(6)
        );
        let refused = [
            // Standing still, or going back: the old check let a cursor that alternates
            // between two values loop for ever.
            (json!(3), Some(3), rows(&[4])),
            (json!(2), Some(3), rows(&[1, 2])),
            (json!(0), None, rows(&[])),
            // Ahead of, or behind, the page it follows.
            (json!(9), Some(3), rows(&[4, 5])),
            (json!(4), Some(3), rows(&[4, 5])),
            (json!(5), None, rows(&[])),
            // A page holding transactions before its start.
            (json!(5), Some(3), rows(&[2, 5])),
            // Not a sequence number at all.
            (json!(-1), None, rows(&[1])),
            (json!("5"), None, rows(&[5])),
        ];
        for (cursor, after, page) in refused {
            let e = next_page(Some(&cursor), after, &page).unwrap_err();
            assert_eq!(
                e.code(),
                "invalid_response",
                "{cursor} after {after:?}: {e}"
            );
        }
    }

    #[test]
    fn renewals_send_the_canonical_period() {
        let r = RenewRequest {
            production_number: "TG-1".into(),
            device_id: "dev-1".into(),
            valid_from: "2026-06-01T00:00:00.000Z".into(),
            valid_to: "2027-06-01T02:00:00+02:00".into(),
            descriptor: Some("a.b.c".into()),
        };
        let c = canonical_renewal(&r).unwrap();
        assert_eq!(
            (c.valid_from.as_str(), c.valid_to.as_str()),
            ("2026-06-01T00:00:00Z", "2027-06-01T00:00:00Z")
        );
        assert_eq!(
            (c.production_number, c.device_id, c.descriptor),
            (
                r.production_number.clone(),
                r.device_id.clone(),
                r.descriptor.clone()
            )
        );
        let lower = RenewRequest {
            valid_from: "2026-06-01t00:00:00z".into(),
            valid_to: "2027-06-01T00:00:00Z".into(),
            ..r.clone()
        };
        assert_eq!(
            canonical_renewal(&lower).unwrap().valid_from,
            "2026-06-01T00:00:00Z"
        );
        // Core's rules still apply: not midnight (half a second is not rounded away), too
        // long, not RFC 3339, missing.
        for (from, to) in [
            ("2026-06-01T00:00:00.5Z", "2027-06-01T00:00:00Z"),
            ("2026-06-01T00:00:00Z", "2027-06-02T00:00:00Z"),
            ("2026-06-01", "2027-06-01T00:00:00Z"),
            ("2026-06-01T00:00:00Z", ""),
        ] {
            let bad = RenewRequest {
                valid_from: from.into(),
                valid_to: to.into(),
                ..r.clone()
            };
            let e = canonical_renewal(&bad).unwrap_err();
            assert_eq!(e.code(), "invalid_activation_request", "{from} {to}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = Client::new(ClientConfig::new("http://127.0.0.1:1", TrustedKeys::new())).unwrap();
        let key = tillgate_core::generate_api_key(40).unwrap();
        c.set_api_key(key.clone());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(key.expose()), "{dbg}");
        assert!(dbg.contains("redacted"));
        assert!(Client::new(ClientConfig::new("ftp://x", TrustedKeys::new())).is_err());
        assert!(Client::new(ClientConfig::new("not a url", TrustedKeys::new())).is_err());
    }

    #[test]
    fn debug_never_shows_a_url_path_token() {
        let base = "https://till:s3cret-pw@pos.example/OpenApi_1,2$R20240101000000$$Tok3nSecret/";
        let config = ClientConfig::new(base, TrustedKeys::new());
        let c = Client::new(config.clone()).unwrap();
        for dbg in [format!("{config:?}"), format!("{c:?}"), format!("{c:#?}")] {
            assert!(!dbg.contains("Tok3nSecret"), "{dbg}");
            assert!(!dbg.contains("s3cret-pw"), "{dbg}");
            assert!(
                dbg.contains("pos.example/OpenApi_1,2$R20240101000000$$<redacted>"),
                "{dbg}"
            );
        }
        // The rest of the configuration is shown.
        assert!(format!("{config:?}").contains("max_response_bytes: 8388608"));
        assert!(format!("{config:?}").contains("transaction_page_size: 100"));
    }

    #[test]
    fn the_transaction_page_size_is_checked() {
        for size in [0, MAX_TRANSACTION_PAGE_SIZE + 1, u32::MAX] {
            let mut config = ClientConfig::new("https://pos.example", TrustedKeys::new());
            config.transaction_page_size = size;
            let e = Client::new(config).unwrap_err();
            assert_eq!(e.code(), "invalid_config", "{size}");
            assert!(e.to_string().contains("transaction_page_size"), "{e}");
        }
        for size in [1, DEFAULT_TRANSACTION_PAGE_SIZE, MAX_TRANSACTION_PAGE_SIZE] {
            let mut config = ClientConfig::new("https://pos.example", TrustedKeys::new());
            config.transaction_page_size = size;
            assert!(Client::new(config).is_ok(), "{size}");
        }
    }

    #[test]
    fn a_page_over_the_cap_is_halved_down_to_one_and_grows_back() {
        let mut size = PageSize::new(100, 1000);
        assert_eq!(size.limit(), 100);
        let mut asked = vec![];
        while size.halve() {
            asked.push(size.limit());
        }
        assert_eq!(asked, [50, 25, 12, 6, 3, 1]);
        assert_eq!(size.limit(), 1);
        // A page that fitted with room to spare doubles it, up to the configured size.
        size.fitted(500);
        assert_eq!(size.limit(), 2);
        // One that nearly filled the cap keeps it.
        size.fitted(501);
        assert_eq!(size.limit(), 2);
        for _ in 0..10 {
            size.fitted(0);
        }
        assert_eq!(size.limit(), 100);
    }
}
