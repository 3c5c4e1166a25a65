//! # tillgate-ffi
//!
//! The [uniffi](https://mozilla.github.io/uniffi-rs/) face of `tillgate-core` for Kotlin
//! (package `dev.tillgate`), Swift (module `Tillgate`) and Python. Every export is a thin
//! wrapper: it converts its arguments, calls core, and maps the result. There is no
//! logic here; the rules and their tests live in `tillgate-core`.
//!
//! Every failure is one [`TillgateError`] carrying core's stable `code()`, the message,
//! and — where core has them — the failing fields, the position in the input, or the
//! index of the failing receipt. The only codes this crate adds are
//! [`INVALID_ARGUMENT`] (a byte array of the wrong length, JSON text that does not parse)
//! and [`INTERNAL`] (a poisoned lock: a bug).
//!
//! ```
//! use tillgate_ffi::*;
//! let key = SigningKey::from_seed(vec![7; 32]).unwrap();
//! let sig = key.sign_raw(b"hello".to_vec());
//! assert!(verify_ed25519(key.public_key(), b"hello".to_vec(), sig.clone()).is_ok());
//! let err = verify_ed25519(key.public_key(), b"hellO".to_vec(), sig).unwrap_err();
//! assert_eq!(err.code(), "bad_signature");
//! ```

// TillgateError is one flat uniffi error whose every field the foreign languages read
// (a Box cannot cross uniffi); it is built only when a call fails.
#![allow(
    clippy::result_large_err,
    reason = "the uniffi error is flat by design and only built on failure"
)]

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tillgate_core as core;

mod client;
#[cfg(feature = "jni")]
pub mod jni;
mod records;

pub use client::*;
pub use records::*;

uniffi::setup_scaffolding!();

/// The code of a [`TillgateError`] raised by the bindings themselves for an argument
/// that cannot be converted (wrong byte length, unparsable JSON text).
pub const INVALID_ARGUMENT: &str = "invalid_argument";
/// The code of a [`TillgateError`] for a poisoned lock (a bug, never expected).
pub const INTERNAL: &str = "internal";

// ---- the one error ---------------------------------------------------------------

/// The one error of the bindings: Kotlin `TillgateException.Failed`, Swift
/// `TillgateError.Failed`, Python `TillgateError.Failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TillgateError {
    /// Something failed; `code` says what (the same string as core's `Error::code()`,
    /// the HTTP API's problem `code` and the shared vectors' `error`).
    #[error("{code}: {reason}")]
    Failed {
        /// Stable snake_case code, e.g. `bad_signature`, `invalid_activation_request`.
        code: String,
        /// A message for people; never contains secrets.
        reason: String,
        /// Every failing field, for `invalid_activation_request`, `invalid_transaction`
        /// and `invalid_product`; empty otherwise.
        fields: Vec<FieldError>,
        /// Where in the input: the 0-based character position for API-key character
        /// errors, the 0-based byte offset for URL-token errors; `None` otherwise.
        position: Option<u32>,
        /// The offending character of an API-key character error.
        character: Option<String>,
        /// The 0-based index of the failing receipt, for `invalid_receipt` and
        /// `receipt_chain_broken`.
        index: Option<u32>,
        /// The HTTP status, when the error is the server's answer (403 for
        /// `pending_approval`, 429, 503, ...); `None` for core's errors and for errors
        /// that never reached the server (`network`, `timeout`).
        http_status: Option<u16>,
        /// How long the server asked to wait before trying again (its `Retry-After` on a
        /// 429 or a 5xx), milliseconds, when it said.
        retry_after_ms: Option<u64>,
        /// Worth retrying later as it is: the server was unreachable or timed out
        /// (`network`, `timeout`), busy (429) or unavailable (5xx, e.g. `schema_newer`
        /// during an upgrade). Queued sales stay queued. `false` for core's errors.
        transient: bool,
        /// The server refused the register's credentials or status (401, 403:
        /// `pending_approval`, `key_expired`, `key_replaced`, `revoked`, ...): nothing is
        /// accepted until the app or an administrator acts. `false` for core's errors.
        auth: bool,
    },
}

impl TillgateError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            TillgateError::Failed { code, .. } => code,
        }
    }

    fn plain(code: &str, reason: impl Into<String>) -> Self {
        TillgateError::Failed {
            code: code.to_owned(),
            reason: reason.into(),
            fields: Vec::new(),
            position: None,
            character: None,
            index: None,
            http_status: None,
            retry_after_ms: None,
            transient: false,
            auth: false,
        }
    }

    fn invalid_argument(reason: impl Into<String>) -> Self {
        Self::plain(INVALID_ARGUMENT, reason)
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<core::Error> for TillgateError {
    fn from(e: core::Error) -> Self {
        let code = e.code().to_owned();
        let reason = e.to_string();
        let (mut fields, mut position, mut character, mut index) = (Vec::new(), None, None, None);
        match &e {
            core::Error::InvalidActivationRequest { fields: f }
            | core::Error::InvalidTransaction { fields: f }
            | core::Error::InvalidProduct { fields: f } => {
                fields = f.iter().cloned().map(FieldError::from).collect();
            }
            core::Error::ApiKeyReservedChar { ch, position: p }
            | core::Error::ApiKeyInvalidChar { ch, position: p } => {
                position = Some(u32_of(*p));
                character = Some(ch.to_string());
            }
            core::Error::InvalidUrlToken { position: p, .. } => position = Some(u32_of(*p)),
            core::Error::InvalidReceipt { index: i, .. }
            | core::Error::ReceiptChainBroken { index: i, .. } => index = Some(u32_of(*i)),
            _ => {}
        }
        TillgateError::Failed {
            code,
            reason,
            fields,
            position,
            character,
            index,
            http_status: None,
            retry_after_ms: None,
            transient: false,
            auth: false,
        }
    }
}

type Result<T, E = TillgateError> = std::result::Result<T, E>;

fn bytes<const N: usize>(what: &str, v: &[u8]) -> Result<[u8; N]> {
    v.try_into().map_err(|_| {
        TillgateError::invalid_argument(format!("{what} must be {N} bytes, got {}", v.len()))
    })
}

fn json_value(what: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| TillgateError::invalid_argument(format!("{what} is not JSON: {e}")))
}

fn read<T>(l: &RwLock<T>) -> Result<RwLockReadGuard<'_, T>> {
    l.read()
        .map_err(|_| TillgateError::plain(INTERNAL, "lock poisoned"))
}

fn write<T>(l: &RwLock<T>) -> Result<RwLockWriteGuard<'_, T>> {
    l.write()
        .map_err(|_| TillgateError::plain(INTERNAL, "lock poisoned"))
}

// ---- Ed25519 ----------------------------------------------------------------------

/// Verifies an Ed25519 signature strictly (RFC 8032 with `verify_strict` rules).
/// Fails with `invalid_public_key_length`, `invalid_signature_length`,
/// `weak_public_key` or `bad_signature`.
#[uniffi::export]
pub fn verify_ed25519(public_key: Vec<u8>, message: Vec<u8>, signature: Vec<u8>) -> Result<()> {
    Ok(core::verify_ed25519(&public_key, &message, &signature)?)
}

// ---- keys -------------------------------------------------------------------------

/// An Ed25519 signing key with its `kid` (RFC 7638 thumbprint). Server side and tests.
#[derive(Debug, uniffi::Object)]
pub struct SigningKey(core::SigningKey);

#[uniffi::export]
impl SigningKey {
    /// Builds a key from its 32-byte seed (`invalid_signing_key` otherwise).
    #[uniffi::constructor]
    pub fn from_seed(seed: Vec<u8>) -> Result<Arc<Self>> {
        Ok(Arc::new(SigningKey(core::SigningKey::from_seed_slice(
            &seed,
        )?)))
    }

    /// The key id: base64url RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> String {
        self.0.kid().to_owned()
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public_key_bytes().to_vec()
    }

    /// The 32-byte seed. Keep it secret.
    pub fn seed(&self) -> Vec<u8> {
        self.0.seed().to_vec()
    }

    /// The public key as a JWK, JSON text.
    pub fn public_jwk_json(&self) -> String {
        serde_json::to_string(&self.0.public_jwk()).unwrap_or_default()
    }

    /// Signs raw bytes: a plain 64-byte Ed25519 signature.
    pub fn sign_raw(&self, message: Vec<u8>) -> Vec<u8> {
        self.0.sign_raw(&message).to_vec()
    }
}

/// Generates a new random signing key from the platform's secure RNG.
#[uniffi::export]
pub fn generate_signing_key() -> Result<Arc<SigningKey>> {
    Ok(Arc::new(SigningKey(core::generate_signing_key()?)))
}

/// The public keys an app trusts, by `kid`: built into the app, used offline.
///
/// Every verification reads this one set (under a read lock, so calls from several
/// threads run side by side; adding a key waits for them): core counts each key's
/// verifications in the set itself and, once a key has verified 16 signatures, switches
/// it to a precomputed table (about 0.7x the time). Keep one `TrustedKeys` for as long as
/// the app runs to get it.
#[derive(Debug, Default, uniffi::Object)]
pub struct TrustedKeys(RwLock<core::TrustedKeys>);

impl TrustedKeys {
    /// The shared set, for one verification (never a copy: a copy would count its
    /// verifications, and build its table, for nobody).
    fn shared(&self) -> Result<RwLockReadGuard<'_, core::TrustedKeys>> {
        read(&self.0)
    }
}

#[uniffi::export]
impl TrustedKeys {
    /// An empty set.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Loads a JWKS document (`{"keys":[...]}`); every key must be an Ed25519 public
    /// key with a `kid` (`invalid_jwk` otherwise).
    #[uniffi::constructor]
    pub fn from_jwks_json(json: String) -> Result<Arc<Self>> {
        Ok(Arc::new(TrustedKeys(RwLock::new(
            core::TrustedKeys::from_jwks_json(&json)?,
        ))))
    }

    /// Adds a raw 32-byte public key under `kid`.
    pub fn add_raw(&self, kid: String, public_key: Vec<u8>) -> Result<()> {
        Ok(write(&self.0)?.add_raw(&kid, &public_key)?)
    }

    /// Adds a raw 32-byte public key under its RFC 7638 thumbprint (the `kid` the
    /// Tillgate server uses) and returns that `kid`.
    pub fn add_raw_with_thumbprint(&self, public_key: Vec<u8>) -> Result<String> {
        Ok(write(&self.0)?.add_raw_with_thumbprint(&public_key)?)
    }

    /// Whether a key with this `kid` is trusted.
    pub fn contains(&self, kid: String) -> bool {
        read(&self.0).map(|k| k.contains(&kid)).unwrap_or(false)
    }

    /// Number of keys.
    pub fn len(&self) -> u32 {
        read(&self.0).map(|k| u32_of(k.len())).unwrap_or(0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---- descriptors ------------------------------------------------------------------

/// Verifies a signed ActivationDescriptor offline; `now` is Unix seconds.
///
/// Fails with `malformed_jws`, `unsupported_algorithm`, `wrong_token_type`,
/// `unknown_kid`, `bad_signature`, `clock_rolled_back`, `not_yet_valid`, `expired`,
/// `device_mismatch` or `application_package_mismatch`.
#[uniffi::export]
pub fn verify_descriptor(
    jws: String,
    trusted_keys: Arc<TrustedKeys>,
    now: i64,
    options: VerifyOptions,
) -> Result<VerifiedDescriptor> {
    let keys = trusted_keys.shared()?;
    let verified = core::verify_descriptor(&jws, &keys, now, &options.into())?;
    VerifiedDescriptor::try_from(verified)
}

/// Signs a descriptor as a compact JWS (server side and tests).
#[uniffi::export]
pub fn sign_descriptor(descriptor: ActivationDescriptor, key: Arc<SigningKey>) -> Result<String> {
    let claims = core::ActivationDescriptor::try_from(descriptor)?;
    Ok(core::sign_descriptor(&claims, &key.0)?)
}

// ---- API keys ---------------------------------------------------------------------

/// Validates an API key (Fieldpine charset, 20–256 characters) and returns it.
/// Character errors carry `position` and `character`.
#[uniffi::export]
pub fn validate_api_key(key: String) -> Result<String> {
    Ok(core::validate_api_key(&key)?.expose().to_owned())
}

/// Generates a random API key of `length` characters (20–256) from `alphabet`.
#[uniffi::export]
pub fn generate_api_key(length: u32, alphabet: ApiKeyAlphabet) -> Result<String> {
    let key = core::generate_api_key_with(length as usize, alphabet.into())?;
    Ok(key.expose().to_owned())
}

// ---- URL tokens -------------------------------------------------------------------

/// Parses a URL path whose first segment is a Fieldpine access-token segment. Errors
/// carry the byte `position`.
#[uniffi::export]
pub fn parse_url_token(path: String) -> Result<UrlToken> {
    Ok(core::parse_url_token(&path)?.into())
}

/// Builds the path for a token; `#`, `%` and `^` are percent-encoded.
#[uniffi::export]
pub fn encode_url_token(token: UrlToken) -> Result<String> {
    Ok(core::encode_url_token(&token.try_into()?)?)
}

// ---- activation requests ----------------------------------------------------------

/// Validates an activation request; every failing field is listed in the error's
/// `fields` (`invalid_activation_request`).
#[uniffi::export]
pub fn validate_activation_request(
    request: ActivationRequest,
    corporate_id_rule: CorporateIdRule,
) -> Result<ValidActivationRequest> {
    let req = core::ActivationRequest::try_from(request)?;
    let rules = core::ActivationRules {
        corporate_id: corporate_id_rule.into(),
    };
    Ok(core::validate_activation_request_with(&req, &rules)?.into())
}

// ---- dynamic keys -----------------------------------------------------------------

/// A staff member's derived Ed25519 key pair for dynamic API keys.
#[derive(Debug, uniffi::Object)]
pub struct DynamicKeyPair(core::DynamicKeyPair);

#[uniffi::export]
impl DynamicKeyPair {
    /// Rebuilds a pair from a stored 32-byte seed.
    #[uniffi::constructor]
    pub fn from_seed(system: String, login: String, seed: Vec<u8>) -> Result<Arc<Self>> {
        let seed = bytes::<32>("seed", &seed)?;
        Ok(Arc::new(DynamicKeyPair(core::DynamicKeyPair::from_seed(
            &system, &login, &seed,
        )?)))
    }

    /// The 32-byte public key the server stores for this login.
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public_key().to_vec()
    }

    /// The 32-byte secret seed; store it like a password.
    pub fn seed(&self) -> Vec<u8> {
        self.0.seed().to_vec()
    }

    /// The login name.
    pub fn login(&self) -> String {
        self.0.login().to_owned()
    }
}

/// Derives the key pair for `login` on `system` from the password with Argon2id
/// (deterministic).
#[uniffi::export]
pub fn derive_dynamic_key_pair(
    system: String,
    login: String,
    password: String,
    params: DynamicKeyParams,
) -> Result<Arc<DynamicKeyPair>> {
    Ok(Arc::new(DynamicKeyPair(core::derive_dynamic_key_pair(
        &system,
        &login,
        &password,
        params.into(),
    )?)))
}

/// Creates a dynamic API key for `now` (Unix seconds) with a random nonce.
#[uniffi::export]
pub fn create_dynamic_api_key(pair: Arc<DynamicKeyPair>, now: i64) -> Result<String> {
    Ok(core::create_dynamic_api_key(&pair.0, now)?
        .expose()
        .to_owned())
}

/// Creates a dynamic API key with a given 16-byte nonce. For tests and vectors only: a
/// nonce must never be reused.
#[uniffi::export]
pub fn create_dynamic_api_key_with_nonce(
    pair: Arc<DynamicKeyPair>,
    now: i64,
    nonce: Vec<u8>,
) -> Result<String> {
    let nonce = bytes::<16>("nonce", &nonce)?;
    Ok(
        core::create_dynamic_api_key_with_nonce(&pair.0, now, &nonce)?
            .expose()
            .to_owned(),
    )
}

/// Parses and verifies a dynamic API key against the login's public key, accepting it
/// `window_secs` either side of `now`.
#[uniffi::export]
pub fn verify_dynamic_api_key(
    key: String,
    public_key: Vec<u8>,
    system: String,
    now: i64,
    window_secs: i64,
) -> Result<DynamicKeyClaims> {
    Ok(core::verify_dynamic_api_key(&key, &public_key, &system, now, window_secs)?.into())
}

// ---- products ---------------------------------------------------------------------

/// Checks a product and its `id` as `PUT /products/{id}` takes them; every failing field
/// is listed in the error's `fields` (`invalid_product`), in the order id, currency,
/// name, price, vatRate, barcode. `updated_at` is the server's and is not checked.
#[uniffi::export]
pub fn validate_product(product: Product) -> Result<()> {
    let (id, product) = product.into_core();
    Ok(core::validate_product(&id, &product)?)
}

/// Reads a product from the JSON body of `PUT /products/{id}` and the `id` of its path
/// (`invalid_argument` if the body does not fit: unknown members, a missing one, a
/// fraction or a string for a number). `active` is true when the body leaves it out.
#[uniffi::export]
pub fn product_from_json(id: String, json: String) -> Result<Product> {
    serde_json::from_str::<core::Product>(&json)
        .map(|p| Product::from_core(id, p))
        .map_err(|e| TillgateError::invalid_argument(format!("not a product: {e}")))
}

/// The JSON body of `PUT /products/{id}` for a product: `name`, `price`, `currency`,
/// `vatRate`, `barcode` (left out when absent), `active`, in that order. The `id`
/// travels in the path and `updated_at` is the server's, so neither is in it.
#[uniffi::export]
pub fn product_to_json(product: Product) -> String {
    serde_json::to_string(&product.into_core().1).unwrap_or_default()
}

// ---- transactions and receipts ----------------------------------------------------

/// Checks a transaction; every problem is listed in the error's `fields`
/// (`invalid_transaction`).
#[uniffi::export]
pub fn validate_transaction(transaction: Transaction) -> Result<()> {
    Ok(core::validate_transaction(&transaction.into())?)
}

/// The `txh` receipt claim: base64url SHA-256 of the canonical JSON.
#[uniffi::export]
pub fn transaction_hash(transaction: Transaction) -> String {
    core::transaction_hash(&transaction.into())
}

/// The canonical (RFC 8785 JCS) JSON text of a transaction.
#[uniffi::export]
pub fn transaction_canonical_json(transaction: Transaction) -> String {
    String::from_utf8(core::canonical_bytes(&transaction.into())).unwrap_or_default()
}

/// Reads a transaction from its wire JSON (`invalid_argument` if it does not fit:
/// unknown members, floats, unknown `type`).
#[uniffi::export]
pub fn transaction_from_json(json: String) -> Result<Transaction> {
    serde_json::from_str::<core::Transaction>(&json)
        .map(Transaction::from)
        .map_err(|e| TillgateError::invalid_argument(format!("not a transaction: {e}")))
}

/// Verifies a run of signed receipts of one register: signatures, `prev` links,
/// gapless `seq`, one register. Without `previous` the run must start at `seq` 1; with
/// it (a receipt already trusted) the run must continue it. Errors carry `index`.
#[uniffi::export(default(previous = None))]
pub fn verify_receipt_chain(
    receipts: Vec<String>,
    trusted_keys: Arc<TrustedKeys>,
    previous: Option<String>,
) -> Result<Vec<ReceiptClaims>> {
    let keys = trusted_keys.shared()?;
    let claims = match previous {
        Some(p) => core::verify_receipt_chain_from(Some(&p), &receipts, &keys)?,
        None => core::verify_receipt_chain(&receipts, &keys)?,
    };
    Ok(claims.into_iter().map(ReceiptClaims::from).collect())
}

/// Verifies a register's whole chain, from `seq` 1, against `witness`: a receipt the
/// register kept when the server returned it. The chain must reach the witness's `seq`
/// and hold the witness there byte for byte (`witness_mismatch` if not: the history was
/// changed or cut back after the register saw it); a witness that does not verify
/// itself is `invalid_witness`. Chain errors carry `index` as above.
#[uniffi::export]
pub fn verify_receipt_chain_witnessed(
    receipts: Vec<String>,
    trusted_keys: Arc<TrustedKeys>,
    witness: String,
) -> Result<Vec<ReceiptClaims>> {
    let keys = trusted_keys.shared()?;
    let claims = core::verify_receipt_chain_witnessed(&receipts, &keys, &witness)?;
    Ok(claims.into_iter().map(ReceiptClaims::from).collect())
}

/// Whether to keep `received`, a receipt the server has just given the register, as its
/// witness instead of `current`: `true` if it verifies and comes later (or there is no
/// witness yet), `false` if it is `current` or earlier. `witness_mismatch` if it has
/// `current`'s sequence but other bytes, or directly follows it without linking to it
/// (the server forked the chain); `invalid_receipt` if it does not verify,
/// `receipt_chain_broken` if it is another register's, `invalid_witness` if `current`
/// does not verify.
#[uniffi::export]
pub fn advances_witness(
    current: Option<String>,
    received: String,
    trusted_keys: Arc<TrustedKeys>,
) -> Result<bool> {
    let keys = trusted_keys.shared()?;
    Ok(core::advances_witness(
        current.as_deref(),
        &received,
        &keys,
    )?)
}

/// The `prev` value that links to a receipt: base64url SHA-256 of the compact JWS.
#[uniffi::export]
pub fn receipt_link(receipt: String) -> String {
    core::receipt_link(&receipt)
}

// ---- server time ------------------------------------------------------------------

/// Verifies a server-signed timestamp; with `expected_nonce`, it must echo it
/// (`nonce_mismatch`). Its `iat` is then a trusted time floor.
#[uniffi::export(default(expected_nonce = None))]
pub fn verify_server_time(
    jws: String,
    trusted_keys: Arc<TrustedKeys>,
    expected_nonce: Option<String>,
) -> Result<ServerTimeClaims> {
    let keys = trusted_keys.shared()?;
    Ok(core::verify_server_time(&jws, &keys, expected_nonce.as_deref())?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor() -> ActivationDescriptor {
        ActivationDescriptor {
            iss: "https://pos.example".into(),
            sub: "TG-7Q2M-K4PX".into(),
            iat: 1_704_067_200,
            nbf: 1_704_067_200,
            exp: 1_735_689_600,
            ver: 1,
            activation_id: "act_1".into(),
            cash_register_name: "Kassa 1".into(),
            device_id: "device-1".into(),
            corporate_id: "556036-0793".into(),
            country: "SE".into(),
            application_package: "com.example.pos".into(),
            features: vec![],
            status: "approved".into(),
            extras_json: "{}".into(),
        }
    }

    /// The exports verify with the app's one `TrustedKeys`, not a copy per call: core
    /// counts the verifications of every export in that set, and its key switches to
    /// the precomputed table at the 16th, with the same answers before and after.
    #[test]
    fn verifications_through_the_exports_build_the_shared_sets_table() {
        let key = SigningKey::from_seed(vec![11; 32]).unwrap();
        let keys = TrustedKeys::new();
        let kid = keys.add_raw_with_thumbprint(key.public_key()).unwrap();
        let uses_table = || keys.shared().unwrap().uses_table(&kid);

        let jws = sign_descriptor(descriptor(), key.clone()).unwrap();
        let mut forged = jws.clone();
        forged.replace_range(forged.len() - 2.., "AA");
        let time = core::sign_server_time(
            &core::ServerTimeClaims {
                iss: "https://pos.example".into(),
                sub: "TG-7Q2M-K4PX".into(),
                iat: 1_710_000_000,
                nonce: Some("n1".into()),
            },
            &key.0,
        )
        .unwrap();
        let receipt = core::sign_receipt(
            &core::ReceiptClaims {
                iss: "https://pos.example".into(),
                sub: "TG-7Q2M-K4PX".into(),
                iat: 1_710_000_000,
                seq: 1,
                txid: "tx_1".into(),
                txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
                prev: String::new(),
                tx_type: "sale".into(),
                total: 12500,
                currency: "SEK".into(),
            },
            &key.0,
        )
        .unwrap();
        let now = 1_710_000_100;
        let expected = VerifiedDescriptor {
            claims: descriptor(),
            kid: kid.clone(),
        };

        // Each round makes four single verifications with the key (the receipt chain is
        // batch-verified and does not count).
        let mut uses = 0;
        for round in 1..=8 {
            let opts = VerifyOptions::default;
            assert_eq!(
                verify_descriptor(jws.clone(), keys.clone(), now, opts()),
                Ok(expected.clone())
            );
            assert_eq!(
                verify_descriptor(forged.clone(), keys.clone(), now, opts())
                    .unwrap_err()
                    .code(),
                "bad_signature"
            );
            let t = verify_server_time(time.clone(), keys.clone(), Some("n1".into())).unwrap();
            assert_eq!((t.iat, t.nonce.as_deref()), (1_710_000_000, Some("n1")));
            assert_eq!(
                advances_witness(None, receipt.clone(), keys.clone()),
                Ok(true)
            );
            uses += 4;
            let chain = verify_receipt_chain(vec![receipt.clone()], keys.clone(), None).unwrap();
            assert_eq!(chain[0].seq, 1);
            assert_eq!(uses_table(), uses >= 16, "round {round}");
        }

        // The same from several threads at once, with a key added meanwhile.
        let other = SigningKey::from_seed(vec![12; 32]).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20 {
                        assert_eq!(
                            verify_descriptor(jws.clone(), keys.clone(), now, Default::default()),
                            Ok(expected.clone())
                        );
                    }
                });
            }
            s.spawn(|| keys.add_raw_with_thumbprint(other.public_key()).unwrap());
        });
        assert_eq!(keys.len(), 2);
        assert!(uses_table());
    }
}
