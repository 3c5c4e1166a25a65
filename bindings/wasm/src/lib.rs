//! # tillgate-wasm
//!
//! The wasm-bindgen face of `tillgate-core` for browsers and node (npm package
//! `tillgate`). Every export is a thin wrapper with a camelCase `js_name`: it converts
//! its arguments, calls core, and maps the result. There is no logic here.
//!
//! Structured values cross as plain JS objects in the wire shape of `docs/PROTOCOL.md`
//! and `tests/vectors/*.json` (camelCase members), converted through JSON text with
//! the `serde_json` core already carries, so no extra serialisation crate is shipped.
//! Byte strings are `Uint8Array`; times are Unix seconds as `number`.
//!
//! Every failure is thrown as a JS `Error` with a `code` property (core's stable
//! `Error::code()`), plus `fields`, `position`, `character` or `index` where core has
//! them. The bindings add one code of their own: `invalid_argument` for an argument
//! that cannot be converted (wrong byte length, not an integer, wrong shape, an option
//! object with a member it does not know, a string enum value it does not know, a
//! string that is not well-formed UTF-16).

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
pub use client::{Client, Outbox, unix_time_ms};

use js_sys::{JSON, JsString, Object, Reflect};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tillgate_core as core;
use wasm_bindgen::prelude::*;

/// The code of an error raised by the bindings themselves for an argument that cannot
/// be converted.
pub const INVALID_ARGUMENT: &str = "invalid_argument";

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Thrown by every function: a JS Error with core's stable `code`. */
export interface TillgateError extends Error {
  /** Stable snake_case code, e.g. `bad_signature`, `invalid_activation_request`. */
  code: string;
  /** Every failing field, for `invalid_activation_request`, `invalid_transaction` and `invalid_product`. */
  fields?: FieldError[];
  /** 0-based character position (API keys) or byte offset (URL tokens). */
  position?: number;
  /** The offending character of an API-key character error. */
  character?: string;
  /** 0-based index of the failing receipt. */
  index?: number;
  /**
   * Client errors only: the HTTP status when the server answered (403 for
   * `pending_approval`, 429, 503, ...); absent when it never did (`network`, `timeout`).
   */
  httpStatus?: number;
  /** Client errors only: the server's `Retry-After` (a 429 or a 5xx), in milliseconds. */
  retryAfterMs?: number;
  /**
   * Client errors: `true` when trying again later may work as it is (`network`,
   * `timeout`, 429, 5xx such as `schema_newer` during an upgrade); queued sales stay
   * queued. Absent on core's errors (none is transient).
   */
  transient?: boolean;
  /**
   * Client errors: `true` when the server refused the register's credentials or status
   * (401, 403: `pending_approval`, `key_expired`, `key_replaced`, `revoked`, ...).
   * Absent on core's errors.
   */
  auth?: boolean;
}
export interface FieldError { field: string; code: string; message: string; }
export interface Jwk { kty: string; crv?: string; x?: string; kid?: string; alg?: string; use?: string; }
export interface Jwks { keys: Jwk[]; }
/**
 * Options of `verifyDescriptor`. Any other member (a misspelt `expectedDeviceID`,
 * `trustedTimefloor`, ...) is refused with `invalid_argument` naming it, so that a
 * typo never switches a check off; so is anything but an object (an array, ...).
 */
export interface VerifyOptions {
  trustedTimeFloor?: number | null;
  clockToleranceSecs?: number | null;
  leewaySecs?: number | null;
  expectedDeviceId?: string | null;
  expectedApplicationPackage?: string | null;
}
export interface ActivationDescriptor {
  iss: string; sub: string; iat: number; nbf: number; exp: number; ver: number;
  activationId: string; cashRegisterName: string; deviceId: string; corporateId: string;
  country: string; applicationPackage: string; features: string[]; status: string;
  extras: Record<string, unknown>;
}
export interface VerifiedDescriptor { kid: string; claims: ActivationDescriptor; }
/** As `parseUrlToken` gives it; `encodeUrlToken` refuses other members. */
export interface UrlParam { id: string; value: string; }
/** As `parseUrlToken` gives it; `encodeUrlToken` refuses other members. */
export interface UrlToken {
  prefix: "OpenApi" | "Anywhere" | "Gnap"; version: number | null; rmSystem: number[];
  rve: string | null; params: UrlParam[]; token: string | null; rest: string;
}
export interface ActivationRequest {
  cashRegisterName?: string; deviceId?: string; validFrom?: string; validTo?: string;
  corporateId?: string; applicationPackage?: string; country?: string; extras?: unknown;
}
export interface ValidActivationRequest {
  cashRegisterName: string; deviceId: string; validFrom: string; validTo: string;
  validFromUnix: number; validToUnix: number; corporateId: string;
  applicationPackage: string; country: string; extras: Record<string, unknown>;
}
/** Argon2id parameters; other members are refused (`invalid_argument`). */
export interface DynamicKeyParams { memoryKib: number; iterations: number; parallelism: number; }
export interface DynamicKeyClaims { login: string; issuedAt: number; nonce: Uint8Array; }
export interface VatLine { rate: number; amount: number; }
export interface Item { name: string; quantity: number; amount: number; }
export interface Transaction {
  type: "sale" | "refund" | "copy" | "training"; currency: string; total: number;
  items: Item[]; vat?: VatLine[]; reference?: string;
}
/**
 * A catalogue product as `putProduct` sends it, `validateProduct` checks it and
 * `syncProducts` gives it. Any other member is refused (`invalid_argument` naming it), so
 * that a misspelt `actve: false` never leaves a product on sale; `active` absent or
 * `null` is true; `updatedAt` is the server's and is ignored when read (a product from
 * `syncProducts` can be sent back as it is).
 */
export interface Product {
  id: string; name: string; price: number; currency: string; vatRate: number;
  barcode?: string | null; active?: boolean; updatedAt?: string | null;
}
export interface ReceiptClaims {
  iss: string; sub: string; iat: number; seq: number; txid: string; txh: string;
  prev: string; txType: string; total: number; currency: string;
}
export interface ServerTimeClaims { iss: string; sub: string; iat: number; nonce?: string; }
"#;

/// String enums; wasm-bindgen generates undocumented helpers for them.
mod enums {
    #![allow(missing_docs)]
    use wasm_bindgen::prelude::*;

    /// Which characters a generated API key may use.
    #[wasm_bindgen]
    #[derive(Clone, Copy)]
    pub enum ApiKeyAlphabet {
        /// All 78 allowed characters.
        Full = "full",
        /// The 75 characters that never need escaping in a URL path (no `# % ^`).
        UrlSafe = "urlSafe",
    }

    /// How an activation request's `corporateId` is checked.
    #[wasm_bindgen]
    #[derive(Clone, Copy)]
    pub enum CorporateIdRule {
        /// Swedish organisation number with Luhn check digit, normalised to `NNNNNN-NNNN`.
        SwedishOrgNumber = "swedishOrgNumber",
        /// Any id of 1–64 characters from `A-Z a-z 0-9 - . /`.
        Generic = "generic",
    }
}

pub use enums::{ApiKeyAlphabet, CorporateIdRule};

// ---- conversions ------------------------------------------------------------------

fn set(target: &JsValue, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh Error or Object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), &value.into());
}

fn js_error(code: &str, message: &str) -> js_sys::Error {
    let err = js_sys::Error::new(message);
    set(&err, "code", code);
    err
}

fn invalid_argument(message: impl AsRef<str>) -> JsValue {
    js_error(INVALID_ARGUMENT, message.as_ref()).into()
}

/// Converts a core error once, into a JS `Error` with `code` (and details).
fn to_js_error(e: core::Error) -> JsValue {
    let err: JsValue = js_error(e.code(), &e.to_string()).into();
    match &e {
        core::Error::InvalidActivationRequest { fields }
        | core::Error::InvalidTransaction { fields }
        | core::Error::InvalidProduct { fields } => {
            if let Ok(v) = js_field_errors(fields) {
                set(&err, "fields", v);
            }
        }
        core::Error::ApiKeyReservedChar { ch, position }
        | core::Error::ApiKeyInvalidChar { ch, position } => {
            set(&err, "position", *position as f64);
            set(&err, "character", ch.to_string());
        }
        core::Error::InvalidUrlToken { position, .. } => set(&err, "position", *position as f64),
        core::Error::InvalidReceipt { index, .. }
        | core::Error::ReceiptChainBroken { index, .. } => set(&err, "index", *index as f64),
        _ => {}
    }
    err
}

type JsResult<T> = Result<T, JsValue>;

trait OrThrow<T> {
    fn or_throw(self) -> JsResult<T>;
}

impl<T> OrThrow<T> for core::Result<T> {
    fn or_throw(self) -> JsResult<T> {
        self.map_err(to_js_error)
    }
}

/// A JS value to a serde type, through JSON text.
fn from_js<T: DeserializeOwned>(what: &str, value: &JsValue) -> JsResult<T> {
    let text = JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| invalid_argument(format!("{what} is not JSON-serialisable")))?;
    from_json(&text).map_err(|e| invalid_argument(format!("{what}: {e}")))
}

/// JSON text to a serde type. Read as bytes, like core reads JWS claims, so that the
/// `.wasm` holds one copy of serde_json's parser (`from_str` would add a second one,
/// specialised for `&str`, with the same results for the same text).
fn from_json<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_slice(text.as_bytes())
}

/// A serde value to a JS value, through JSON text. Results with fixed members are
/// written member by member instead (see [`Json`]): each serde `Serialize` impl costs
/// code in the `.wasm`.
fn to_js<T: Serialize>(value: &T) -> JsResult<JsValue> {
    let text = serde_json::to_string(value).map_err(|e| invalid_argument(e.to_string()))?;
    JSON::parse(&text)
}

/// JSON text of a result written member by member, in the order serde would write the
/// struct, then handed to `JSON.parse` once: the very text, and so the very JS object,
/// the struct's serialiser gave, without that serialiser in the `.wasm`. (One
/// `JSON.parse` is also faster than setting each member from wasm.) Values are written
/// by serde_json (strings escaped as before, integers exactly, `None` as `null`).
struct Json {
    text: Vec<u8>,
    close: u8,
}

impl Json {
    fn obj() -> Self {
        Json {
            text: vec![b'{'],
            close: b'}',
        }
    }

    fn arr() -> Self {
        Json {
            text: vec![b'['],
            close: b']',
        }
    }

    fn sep(&mut self) {
        if !matches!(self.text.last(), Some(b'{' | b'[')) {
            self.text.push(b',');
        }
    }

    /// A member name: the fixed camelCase names below, which need no escaping.
    fn key(&mut self, key: &str) {
        self.sep();
        self.text.push(b'"');
        self.text.extend_from_slice(key.as_bytes());
        self.text.extend_from_slice(b"\":");
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) {
        // Writing to a Vec cannot fail, nor can these values (strings, integers,
        // options, JSON values with string keys).
        let _ = serde_json::to_writer(&mut self.text, value);
    }

    fn set<T: Serialize + ?Sized>(mut self, key: &str, value: &T) -> Self {
        self.key(key);
        self.value(value);
        self
    }

    /// A nested object or array.
    fn nest(mut self, key: &str, inner: Json) -> Self {
        self.key(key);
        self.text.extend_from_slice(&inner.done());
        self
    }

    fn item_nest(mut self, inner: Json) -> Self {
        self.sep();
        self.text.extend_from_slice(&inner.done());
        self
    }

    fn done(mut self) -> Vec<u8> {
        self.text.push(self.close);
        self.text
    }

    fn into_js(self) -> JsResult<JsValue> {
        let text = String::from_utf8(self.done()).map_err(|e| invalid_argument(e.to_string()))?;
        JSON::parse(&text)
    }
}

fn json_field_errors(fields: &[core::FieldError]) -> Json {
    fields.iter().fold(Json::arr(), |a, e| {
        a.item_nest(
            Json::obj()
                .set("field", &e.field)
                .set("code", &e.code)
                .set("message", &e.message),
        )
    })
}

/// The `fields` of an error, as the JS array of `FieldError`s.
pub(crate) fn js_field_errors(fields: &[core::FieldError]) -> JsResult<JsValue> {
    json_field_errors(fields).into_js()
}

/// A JS number that is a safe integer (`Number.isSafeInteger`), else `None`.
fn safe_int(n: f64) -> Option<i64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    (n.is_finite() && n.fract() == 0.0 && n.abs() <= MAX_SAFE).then_some(n as i64)
}

/// Unix seconds given as a JS number: must be a safe integer.
fn secs(what: &str, n: f64) -> JsResult<i64> {
    safe_int(n)
        .ok_or_else(|| invalid_argument(format!("{what} must be an integer number of seconds")))
}

#[cfg(feature = "sign")]
fn bytes<const N: usize>(what: &str, v: &[u8]) -> JsResult<[u8; N]> {
    v.try_into()
        .map_err(|_| invalid_argument(format!("{what} must be {N} bytes, got {}", v.len())))
}

fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

/// A JS string argument as Rust text. wasm-bindgen's own conversion (`TextEncoder`)
/// turns a lone surrogate into U+FFFD, so that two different JS strings would become
/// the same text (while inside an object `JSON.stringify` writes `\ud800`, which serde
/// refuses); such a string is refused here instead, as Kotlin and Python refuse it.
/// Only text that holds U+FFFD after the conversion can have had one, so only such text
/// is checked code unit by code unit (`is_valid_utf16`, one call into JS per unit):
/// other text costs one scan of its bytes (for U+FFFD's UTF-8 `EF BF BD`; a plain
/// byte loop: `str::contains` costs 0.6 KiB gzipped more, a slice comparison per byte
/// is slower).
pub(crate) fn text(what: &str, s: &JsString) -> JsResult<String> {
    let t = s
        .as_string()
        .ok_or_else(|| invalid_argument(format!("{what} must be a string")))?;
    let replacement = |w: &[u8]| w[0] == 0xEF && w[1] == 0xBF && w[2] == 0xBD;
    if t.as_bytes().windows(3).any(replacement) && !s.is_valid_utf16() {
        return Err(invalid_argument(format!(
            "{what} is not well-formed UTF-16 (it holds a lone surrogate)"
        )));
    }
    Ok(t)
}

/// An optional string argument (`undefined` or `null` is `None`), checked as [`text`].
pub(crate) fn opt_text(what: &str, s: Option<JsString>) -> JsResult<Option<String>> {
    s.map(|s| text(what, &s)).transpose()
}

/// An array of strings, each checked as [`text`].
fn texts(what: &str, v: Vec<JsString>) -> JsResult<Vec<String>> {
    v.iter().map(|s| text(what, s)).collect()
}

/// The binding's own option objects (`JsVerifyOptions`, `JsClientConfig`, ...) are read
/// from JSON objects only, like core's protocol objects (`core/src/object.rs`): each
/// derives `Deserialize` with `#[serde(remote = "Self", deny_unknown_fields)]`, and this
/// implements the trait on top, asking serde_json for a map. So an array, a string or a
/// number in their place is refused (`invalid type: ..., expected a JSON object`), and
/// so is a member they do not know (`unknown field ...`): a misspelt option must never
/// turn a check off silently.
macro_rules! objects_only {
    ($($t:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<$t, A::Error> {
                        <$t>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(V)
            }
        }
    )+};
}
#[cfg(feature = "client")]
pub(crate) use objects_only;

// ---- Ed25519 ----------------------------------------------------------------------

/// Verifies an Ed25519 signature strictly (RFC 8032 with `verify_strict` rules).
/// Throws `invalid_public_key_length`, `invalid_signature_length`, `weak_public_key`
/// or `bad_signature`.
#[wasm_bindgen(js_name = verifyEd25519)]
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> JsResult<()> {
    core::verify_ed25519(public_key, message, signature).or_throw()
}

// ---- keys -------------------------------------------------------------------------

/// An Ed25519 signing key with its `kid` (RFC 7638 thumbprint). Server side and tests.
#[cfg(feature = "sign")]
#[wasm_bindgen]
pub struct SigningKey(core::SigningKey);

#[cfg(feature = "sign")]
#[wasm_bindgen]
impl SigningKey {
    /// Builds a key from its 32-byte seed.
    #[wasm_bindgen(js_name = fromSeed)]
    pub fn from_seed(seed: &[u8]) -> JsResult<SigningKey> {
        core::SigningKey::from_seed_slice(seed)
            .map(SigningKey)
            .or_throw()
    }

    /// The key id (base64url thumbprint).
    #[wasm_bindgen(getter)]
    pub fn kid(&self) -> String {
        self.0.kid().to_owned()
    }

    /// The 32-byte public key.
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public_key_bytes().to_vec()
    }

    /// The 32-byte seed. Keep it secret.
    pub fn seed(&self) -> Vec<u8> {
        self.0.seed().to_vec()
    }

    /// The public key as a JWK object.
    #[wasm_bindgen(js_name = publicJwk, unchecked_return_type = "Jwk")]
    pub fn public_jwk(&self) -> JsResult<JsValue> {
        to_js(&self.0.public_jwk())
    }

    /// Signs raw bytes: a plain 64-byte Ed25519 signature.
    #[wasm_bindgen(js_name = signRaw)]
    pub fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign_raw(message).to_vec()
    }
}

/// Generates a new random signing key (`crypto.getRandomValues`).
#[cfg(feature = "sign")]
#[wasm_bindgen(js_name = generateSigningKey)]
pub fn generate_signing_key() -> JsResult<SigningKey> {
    core::generate_signing_key().map(SigningKey).or_throw()
}

/// The public keys an app trusts, by `kid`: built into the app, used offline.
#[wasm_bindgen]
#[derive(Default)]
pub struct TrustedKeys(core::TrustedKeys);

#[wasm_bindgen]
impl TrustedKeys {
    /// An empty set.
    #[wasm_bindgen(constructor)]
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Loads a JWKS object (`{keys: [...]}`); every key must be an Ed25519 public key
    /// with a `kid` (`invalid_jwk` otherwise).
    #[wasm_bindgen(js_name = fromJwks)]
    pub fn from_jwks(
        #[wasm_bindgen(unchecked_param_type = "Jwks")] jwks: JsValue,
    ) -> JsResult<TrustedKeys> {
        let text = JSON::stringify(&jwks)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| invalid_argument("jwks is not JSON-serialisable"))?;
        core::TrustedKeys::from_jwks_json(&text)
            .map(TrustedKeys)
            .or_throw()
    }

    /// Loads a JWKS document given as JSON text.
    #[wasm_bindgen(js_name = fromJwksJson)]
    pub fn from_jwks_json(json: &JsString) -> JsResult<TrustedKeys> {
        core::TrustedKeys::from_jwks_json(&text("json", json)?)
            .map(TrustedKeys)
            .or_throw()
    }

    /// Adds a raw 32-byte public key under `kid`.
    #[wasm_bindgen(js_name = addRaw)]
    pub fn add_raw(&mut self, kid: &JsString, public_key: &[u8]) -> JsResult<()> {
        self.0.add_raw(&text("kid", kid)?, public_key).or_throw()
    }

    /// Adds a raw 32-byte public key under its RFC 7638 thumbprint and returns that `kid`.
    #[wasm_bindgen(js_name = addRawWithThumbprint)]
    pub fn add_raw_with_thumbprint(&mut self, public_key: &[u8]) -> JsResult<String> {
        self.0.add_raw_with_thumbprint(public_key).or_throw()
    }

    /// Whether a key with this `kid` is trusted.
    pub fn contains(&self, kid: &JsString) -> JsResult<bool> {
        Ok(self.0.contains(&text("kid", kid)?))
    }

    /// Number of keys.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.0.len()
    }
}

// ---- descriptors ------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(
    remote = "Self",
    rename_all = "camelCase",
    default,
    deny_unknown_fields
)]
struct JsVerifyOptions {
    trusted_time_floor: Option<i64>,
    clock_tolerance_secs: Option<i64>,
    leeway_secs: Option<i64>,
    expected_device_id: Option<String>,
    expected_application_package: Option<String>,
}

objects_only!(JsVerifyOptions);

/// Verifies a signed ActivationDescriptor offline; `now` is Unix seconds. Throws
/// `malformed_jws`, `unsupported_algorithm`, `wrong_token_type`, `unknown_kid`,
/// `bad_signature`, `clock_rolled_back`, `not_yet_valid`, `expired`, `device_mismatch`
/// or `application_package_mismatch`; `invalid_argument` for `options` that are not an
/// object or have a member other than those of `VerifyOptions`.
#[wasm_bindgen(js_name = verifyDescriptor, unchecked_return_type = "VerifiedDescriptor")]
pub fn verify_descriptor(
    jws: &JsString,
    trusted_keys: &TrustedKeys,
    now: f64,
    #[wasm_bindgen(unchecked_param_type = "VerifyOptions | undefined")] options: JsValue,
) -> JsResult<JsValue> {
    let jws = text("jws", jws)?;
    let o: JsVerifyOptions = if absent(&options) {
        JsVerifyOptions::default()
    } else {
        from_js("options", &options)?
    };
    let options = core::VerifyOptions {
        trusted_time_floor: o.trusted_time_floor,
        clock_tolerance_secs: o.clock_tolerance_secs,
        leeway_secs: o.leeway_secs,
        expected_device_id: o.expected_device_id,
        expected_application_package: o.expected_application_package,
    };
    let v =
        core::verify_descriptor(&jws, &trusted_keys.0, secs("now", now)?, &options).or_throw()?;
    js_verified_descriptor(&v)
}

/// A verified descriptor as `{kid, claims}` (the `VerifiedDescriptor` type).
pub(crate) fn js_verified_descriptor(v: &core::VerifiedDescriptor) -> JsResult<JsValue> {
    let c = v.claims();
    let claims = Json::obj()
        .set("iss", &c.iss)
        .set("sub", &c.sub)
        .set("iat", &c.iat)
        .set("nbf", &c.nbf)
        .set("exp", &c.exp)
        .set("ver", &c.ver)
        .set("activationId", &c.activation_id)
        .set("cashRegisterName", &c.cash_register_name)
        .set("deviceId", &c.device_id)
        .set("corporateId", &c.corporate_id)
        .set("country", &c.country)
        .set("applicationPackage", &c.application_package)
        .set("features", &c.features)
        .set("status", &c.status)
        .set("extras", &c.extras);
    Json::obj()
        .set("kid", v.kid())
        .nest("claims", claims)
        .into_js()
}

/// Signs descriptor claims as a compact JWS (server side and tests).
#[cfg(feature = "sign")]
#[wasm_bindgen(js_name = signDescriptor)]
pub fn sign_descriptor(
    #[wasm_bindgen(unchecked_param_type = "ActivationDescriptor")] claims: JsValue,
    key: &SigningKey,
) -> JsResult<String> {
    let claims: core::ActivationDescriptor = from_js("claims", &claims)?;
    core::sign_descriptor(&claims, &key.0).or_throw()
}

// ---- API keys ---------------------------------------------------------------------

/// Validates an API key (Fieldpine charset, 20–256 characters) and returns it.
/// Character errors carry `position` and `character`.
#[wasm_bindgen(js_name = validateApiKey)]
pub fn validate_api_key(key: &JsString) -> JsResult<String> {
    core::validate_api_key(&text("key", key)?)
        .map(|k| k.expose().to_owned())
        .or_throw()
}

/// Generates a random API key of `length` characters (20–256; default 40) from
/// `alphabet` (default `"full"`). `invalid_argument` for a `length` that is not a whole
/// number from 0 to 2^32 − 1 (as the FFI's `u32`) and for an unknown `alphabet`.
#[wasm_bindgen(js_name = generateApiKey)]
pub fn generate_api_key(length: Option<f64>, alphabet: Option<ApiKeyAlphabet>) -> JsResult<String> {
    let alphabet = match alphabet {
        None | Some(ApiKeyAlphabet::Full) => core::ApiKeyAlphabet::Full,
        Some(ApiKeyAlphabet::UrlSafe) => core::ApiKeyAlphabet::UrlSafe,
        // wasm-bindgen's hidden variant for any other value.
        Some(_) => return Err(invalid_argument(r#"alphabet must be "full" or "urlSafe""#)),
    };
    let length = match length {
        None => core::API_KEY_DEFAULT_LEN,
        Some(n) => safe_int(n)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid_argument("length must be a whole number from 0 to 4294967295"))?
            as usize,
    };
    core::generate_api_key_with(length, alphabet)
        .map(|k| k.expose().to_owned())
        .or_throw()
}

// ---- URL tokens -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
struct JsUrlParam {
    id: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
struct JsUrlToken {
    prefix: String,
    #[serde(default)]
    version: Option<u32>,
    rm_system: Vec<u32>,
    #[serde(default)]
    rve: Option<String>,
    #[serde(default)]
    params: Vec<JsUrlParam>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    rest: String,
}

objects_only!(JsUrlParam, JsUrlToken);

/// Parses a URL path whose first segment is a Fieldpine access-token segment. Errors
/// carry the byte `position`.
#[wasm_bindgen(js_name = parseUrlToken, unchecked_return_type = "UrlToken")]
pub fn parse_url_token(path: &JsString) -> JsResult<JsValue> {
    let t = core::parse_url_token(&text("path", path)?).or_throw()?;
    let params = t.params.iter().fold(Json::arr(), |a, p| {
        a.item_nest(
            Json::obj()
                .set("id", &p.id().to_string())
                .set("value", p.value()),
        )
    });
    Json::obj()
        .set("prefix", t.prefix.as_str())
        .set("version", &t.version)
        .set("rmSystem", t.rm_system.ids())
        .set("rve", &t.rve.map(|r| r.to_string()))
        .nest("params", params)
        .set("token", &t.token.as_ref().map(|a| a.expose()))
        .set("rest", &t.rest)
        .into_js()
}

/// Builds the path for a token; `#`, `%` and `^` are percent-encoded.
#[wasm_bindgen(js_name = encodeUrlToken)]
pub fn encode_url_token(
    #[wasm_bindgen(unchecked_param_type = "UrlToken")] token: JsValue,
) -> JsResult<String> {
    let t: JsUrlToken = from_js("token", &token)?;
    let prefix = match t.prefix.as_str() {
        "OpenApi" => core::Prefix::OpenApi,
        "Anywhere" => core::Prefix::Anywhere,
        "Gnap" => core::Prefix::Gnap,
        _ => return Err(invalid_argument("prefix must be OpenApi, Anywhere or Gnap")),
    };
    let mut params = Vec::with_capacity(t.params.len());
    for p in &t.params {
        let mut chars = p.id.chars();
        let (Some(id), None) = (chars.next(), chars.next()) else {
            return Err(invalid_argument("a URL parameter id must be one letter"));
        };
        params.push(core::UrlParam::new(id, &p.value).or_throw()?);
    }
    let token = core::UrlToken {
        prefix,
        version: t.version,
        rm_system: core::RmSystem::new(t.rm_system).or_throw()?,
        rve: t
            .rve
            .as_deref()
            .map(core::Rve::parse)
            .transpose()
            .or_throw()?,
        params,
        token: t
            .token
            .as_deref()
            .map(core::AccessToken::new)
            .transpose()
            .or_throw()?,
        rest: t.rest,
    };
    core::encode_url_token(&token).or_throw()
}

// ---- activation requests ----------------------------------------------------------

/// Validates an activation request (default rule `"swedishOrgNumber"`); every failing
/// field is listed in the error's `fields` (`invalid_activation_request`). An unknown
/// `corporateIdRule` is `invalid_argument`.
#[wasm_bindgen(
    js_name = validateActivationRequest,
    unchecked_return_type = "ValidActivationRequest"
)]
pub fn validate_activation_request(
    #[wasm_bindgen(unchecked_param_type = "ActivationRequest")] request: JsValue,
    corporate_id_rule: Option<CorporateIdRule>,
) -> JsResult<JsValue> {
    let req: core::ActivationRequest = from_js("request", &request)?;
    let rules = core::ActivationRules {
        corporate_id: match corporate_id_rule {
            None | Some(CorporateIdRule::SwedishOrgNumber) => {
                core::CorporateIdRule::SwedishOrgNumber
            }
            Some(CorporateIdRule::Generic) => core::CorporateIdRule::Generic,
            // wasm-bindgen's hidden variant for any other value.
            Some(_) => {
                return Err(invalid_argument(
                    r#"corporateIdRule must be "swedishOrgNumber" or "generic""#,
                ));
            }
        },
    };
    let v = core::validate_activation_request_with(&req, &rules).or_throw()?;
    Json::obj()
        .set("cashRegisterName", &v.cash_register_name)
        .set("deviceId", &v.device_id)
        .set("validFrom", &v.period.from_rfc3339())
        .set("validTo", &v.period.to_rfc3339())
        .set("validFromUnix", &v.period.from_unix_seconds())
        .set("validToUnix", &v.period.to_unix_seconds())
        .set("corporateId", v.corporate_id.as_str())
        .set("applicationPackage", v.application_package.as_str())
        .set("country", &v.country)
        .set("extras", &v.extras)
        .into_js()
}

// ---- dynamic keys -----------------------------------------------------------------

/// A staff member's derived Ed25519 key pair for dynamic API keys.
#[cfg(feature = "sign")]
#[wasm_bindgen]
pub struct DynamicKeyPair(core::DynamicKeyPair);

#[cfg(feature = "sign")]
#[wasm_bindgen]
impl DynamicKeyPair {
    /// Rebuilds a pair from a stored 32-byte seed.
    #[wasm_bindgen(js_name = fromSeed)]
    pub fn from_seed(system: &JsString, login: &JsString, seed: &[u8]) -> JsResult<DynamicKeyPair> {
        let (system, login) = (text("system", system)?, text("login", login)?);
        let seed = bytes::<32>("seed", seed)?;
        core::DynamicKeyPair::from_seed(&system, &login, &seed)
            .map(DynamicKeyPair)
            .or_throw()
    }

    /// The 32-byte public key the server stores for this login.
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public_key().to_vec()
    }

    /// The 32-byte secret seed; store it like a password.
    pub fn seed(&self) -> Vec<u8> {
        self.0.seed().to_vec()
    }

    /// The login name.
    #[wasm_bindgen(getter)]
    pub fn login(&self) -> String {
        self.0.login().to_owned()
    }
}

#[cfg(feature = "dynamic-key-derive")]
#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
struct JsDynamicKeyParams {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

#[cfg(feature = "dynamic-key-derive")]
objects_only!(JsDynamicKeyParams);

/// Derives the key pair for `login` on `system` from the password with Argon2id
/// (deterministic). `params` defaults to OWASP's (19 MiB, 2 passes, 1 lane).
#[cfg(feature = "dynamic-key-derive")]
#[wasm_bindgen(js_name = deriveDynamicKeyPair)]
pub fn derive_dynamic_key_pair(
    system: &JsString,
    login: &JsString,
    password: &JsString,
    #[wasm_bindgen(unchecked_param_type = "DynamicKeyParams | undefined")] params: JsValue,
) -> JsResult<DynamicKeyPair> {
    let (system, login) = (text("system", system)?, text("login", login)?);
    let password = text("password", password)?;
    let params = if absent(&params) {
        core::DynamicKeyParams::default()
    } else {
        let p: JsDynamicKeyParams = from_js("params", &params)?;
        core::DynamicKeyParams {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
        }
    };
    core::derive_dynamic_key_pair(&system, &login, &password, params)
        .map(DynamicKeyPair)
        .or_throw()
}

/// Creates a dynamic API key for `now` (Unix seconds) with a random nonce.
#[cfg(feature = "sign")]
#[wasm_bindgen(js_name = createDynamicApiKey)]
pub fn create_dynamic_api_key(pair: &DynamicKeyPair, now: f64) -> JsResult<String> {
    core::create_dynamic_api_key(&pair.0, secs("now", now)?)
        .map(|k| k.expose().to_owned())
        .or_throw()
}

/// Creates a dynamic API key with a given 16-byte nonce. For tests and vectors only: a
/// nonce must never be reused.
#[cfg(feature = "sign")]
#[wasm_bindgen(js_name = createDynamicApiKeyWithNonce)]
pub fn create_dynamic_api_key_with_nonce(
    pair: &DynamicKeyPair,
    now: f64,
    nonce: &[u8],
) -> JsResult<String> {
    let nonce = bytes::<16>("nonce", nonce)?;
    core::create_dynamic_api_key_with_nonce(&pair.0, secs("now", now)?, &nonce)
        .map(|k| k.expose().to_owned())
        .or_throw()
}

/// Parses and verifies a dynamic API key against the login's public key, accepting it
/// `windowSecs` (default 300) either side of `now`.
#[wasm_bindgen(js_name = verifyDynamicApiKey, unchecked_return_type = "DynamicKeyClaims")]
pub fn verify_dynamic_api_key(
    key: &JsString,
    public_key: &[u8],
    system: &JsString,
    now: f64,
    window_secs: Option<f64>,
) -> JsResult<JsValue> {
    let (key, system) = (text("key", key)?, text("system", system)?);
    let window = match window_secs {
        Some(w) => secs("windowSecs", w)?,
        None => core::DEFAULT_DYNAMIC_KEY_WINDOW_SECS,
    };
    let c = core::verify_dynamic_api_key(&key, public_key, &system, secs("now", now)?, window)
        .or_throw()?;
    let out: JsValue = Object::new().into();
    set(&out, "login", c.login);
    set(&out, "issuedAt", c.issued_at as f64);
    set(&out, "nonce", js_sys::Uint8Array::from(&c.nonce[..]));
    Ok(out)
}

// ---- products ---------------------------------------------------------------------

/// The JS `Product`: its members and no other (a misspelt `actve: false` must not leave
/// a product on sale). Read by `validateProduct`, `productToJson` and the client's
/// `putProduct`.
#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct JsProductInput {
    id: String,
    name: String,
    price: i64,
    currency: String,
    vat_rate: u32,
    #[serde(default)]
    barcode: Option<String>,
    /// Absent or `null`: on sale.
    #[serde(default)]
    active: Option<bool>,
    /// The server's; accepted so a synced product can be sent back, never sent.
    #[serde(default)]
    #[allow(dead_code)]
    updated_at: Option<String>,
}

objects_only!(JsProductInput);

impl JsProductInput {
    /// Its id (the path of `PUT /products/{id}`) and the body core checks and sends.
    pub(crate) fn into_core(self) -> (String, core::Product) {
        let product = core::Product {
            name: self.name,
            price: self.price,
            currency: self.currency,
            vat_rate: self.vat_rate,
            barcode: self.barcode,
            active: self.active.unwrap_or(true),
        };
        (self.id, product)
    }
}

/// Checks a product and its `id` as `PUT /products/{id}` takes them; every failing field
/// is listed in the error's `fields` (`invalid_product`), in the order id, currency,
/// name, price, vatRate, barcode. A value that does not fit the shape throws
/// `invalid_argument`; `updatedAt` is the server's and is not checked.
#[wasm_bindgen(js_name = validateProduct)]
pub fn validate_product(
    #[wasm_bindgen(unchecked_param_type = "Product")] product: JsValue,
) -> JsResult<()> {
    let (id, p) = from_js::<JsProductInput>("product", &product)?.into_core();
    core::validate_product(&id, &p).or_throw()
}

/// Reads a product from the JSON body of `PUT /products/{id}` and the `id` of its path
/// (`invalid_argument` if the body does not fit: unknown members, a missing one, a
/// fraction or a string for a number). `active` is true when the body leaves it out;
/// `barcode` is left out when absent.
#[wasm_bindgen(js_name = productFromJson, unchecked_return_type = "Product")]
pub fn product_from_json(id: &JsString, json: &JsString) -> JsResult<JsValue> {
    let id = text("id", id)?;
    let p: core::Product = from_json(&text("json", json)?)
        .map_err(|e| invalid_argument(format!("not a product: {e}")))?;
    let mut out = Json::obj()
        .set("id", &id)
        .set("name", &p.name)
        .set("price", &p.price)
        .set("currency", &p.currency)
        .set("vatRate", &p.vat_rate);
    if let Some(barcode) = &p.barcode {
        out = out.set("barcode", barcode);
    }
    out.set("active", &p.active).into_js()
}

/// The JSON body of `PUT /products/{id}` for a product: `name`, `price`, `currency`,
/// `vatRate`, `barcode` (left out when absent), `active`, in that order. The `id` travels
/// in the path and `updatedAt` is the server's, so neither is in it.
#[wasm_bindgen(js_name = productToJson)]
pub fn product_to_json(
    #[wasm_bindgen(unchecked_param_type = "Product")] product: JsValue,
) -> JsResult<String> {
    let (_, p) = from_js::<JsProductInput>("product", &product)?.into_core();
    serde_json::to_string(&p).map_err(|e| invalid_argument(e.to_string()))
}

// ---- transactions and receipts ----------------------------------------------------

/// Checks a transaction (wire shape); every problem is listed in the error's `fields`
/// (`invalid_transaction`). A value that does not fit the shape throws
/// `invalid_argument`.
#[wasm_bindgen(js_name = validateTransaction)]
pub fn validate_transaction(
    #[wasm_bindgen(unchecked_param_type = "Transaction")] transaction: JsValue,
) -> JsResult<()> {
    let tx: core::Transaction = from_js("transaction", &transaction)?;
    core::validate_transaction(&tx).or_throw()
}

/// The `txh` receipt claim: base64url SHA-256 of the canonical JSON.
#[wasm_bindgen(js_name = transactionHash)]
pub fn transaction_hash(
    #[wasm_bindgen(unchecked_param_type = "Transaction")] transaction: JsValue,
) -> JsResult<String> {
    let tx: core::Transaction = from_js("transaction", &transaction)?;
    Ok(core::transaction_hash(&tx))
}

/// The canonical (RFC 8785 JCS) JSON text of a transaction.
#[wasm_bindgen(js_name = transactionCanonicalJson)]
pub fn transaction_canonical_json(
    #[wasm_bindgen(unchecked_param_type = "Transaction")] transaction: JsValue,
) -> JsResult<String> {
    let tx: core::Transaction = from_js("transaction", &transaction)?;
    String::from_utf8(core::canonical_bytes(&tx)).map_err(|e| invalid_argument(e.to_string()))
}

/// Reads a transaction from its wire JSON text (`invalid_argument` if it does not fit:
/// unknown members, floats, unknown `type`).
#[wasm_bindgen(js_name = transactionFromJson, unchecked_return_type = "Transaction")]
pub fn transaction_from_json(json: &JsString) -> JsResult<JsValue> {
    let tx: core::Transaction = from_json(&text("json", json)?)
        .map_err(|e| invalid_argument(format!("not a transaction: {e}")))?;
    to_js(&tx)
}

/// Verifies a run of signed receipts of one register: signatures, `prev` links,
/// gapless `seq`, one register. Without `previous` the run must start at `seq` 1; with
/// it (a receipt already trusted) the run must continue it. Errors carry `index`.
#[wasm_bindgen(js_name = verifyReceiptChain, unchecked_return_type = "ReceiptClaims[]")]
pub fn verify_receipt_chain(
    receipts: Vec<JsString>,
    trusted_keys: &TrustedKeys,
    previous: Option<JsString>,
) -> JsResult<JsValue> {
    let receipts = texts("receipts", receipts)?;
    let claims = match opt_text("previous", previous)? {
        Some(p) => core::verify_receipt_chain_from(Some(&p), &receipts, &trusted_keys.0),
        None => core::verify_receipt_chain(&receipts, &trusted_keys.0),
    }
    .or_throw()?;
    claims_js(&claims)
}

/// Verifies a register's whole chain, from `seq` 1, against `witness`: a receipt the
/// register kept when the server returned it. The chain must reach the witness's `seq`
/// and hold the witness there byte for byte (`witness_mismatch` if not: the history was
/// changed or cut back after the register saw it); a witness that does not verify
/// itself is `invalid_witness`. Chain errors carry `index` as above.
#[wasm_bindgen(
    js_name = verifyReceiptChainWitnessed,
    unchecked_return_type = "ReceiptClaims[]"
)]
pub fn verify_receipt_chain_witnessed(
    receipts: Vec<JsString>,
    trusted_keys: &TrustedKeys,
    witness: &JsString,
) -> JsResult<JsValue> {
    let receipts = texts("receipts", receipts)?;
    let witness = text("witness", witness)?;
    let claims =
        core::verify_receipt_chain_witnessed(&receipts, &trusted_keys.0, &witness).or_throw()?;
    claims_js(&claims)
}

/// Whether to keep `received`, a receipt the server has just given the register, as its
/// witness instead of `current`: `true` if it verifies and comes later (or there is no
/// witness yet), `false` if it is `current` or earlier. `witness_mismatch` if it has
/// `current`'s sequence but other bytes, or directly follows it without linking to it
/// (the server forked the chain); `invalid_receipt` if it does not verify,
/// `receipt_chain_broken` if it is another register's, `invalid_witness` if `current`
/// does not verify.
#[wasm_bindgen(js_name = advancesWitness)]
pub fn advances_witness(
    current: Option<JsString>,
    received: &JsString,
    trusted_keys: &TrustedKeys,
) -> JsResult<bool> {
    let current = opt_text("current", current)?;
    let received = text("received", received)?;
    core::advances_witness(current.as_deref(), &received, &trusted_keys.0).or_throw()
}

/// Receipt claims as a JS array, written member by member (see `Json`).
fn claims_js(claims: &[core::ReceiptClaims]) -> JsResult<JsValue> {
    claims
        .iter()
        .fold(Json::arr(), |a, c| {
            a.item_nest(
                Json::obj()
                    .set("iss", &c.iss)
                    .set("sub", &c.sub)
                    .set("iat", &c.iat)
                    .set("seq", &c.seq)
                    .set("txid", &c.txid)
                    .set("txh", &c.txh)
                    .set("prev", &c.prev)
                    .set("txType", &c.tx_type)
                    .set("total", &c.total)
                    .set("currency", &c.currency),
            )
        })
        .into_js()
}

/// The `prev` value that links to a receipt: base64url SHA-256 of the compact JWS.
#[wasm_bindgen(js_name = receiptLink)]
pub fn receipt_link(receipt: &JsString) -> JsResult<String> {
    Ok(core::receipt_link(&text("receipt", receipt)?))
}

// ---- server time ------------------------------------------------------------------

/// Verifies a server-signed timestamp; with `expectedNonce`, it must echo it
/// (`nonce_mismatch`). Its `iat` is then a trusted time floor.
#[wasm_bindgen(js_name = verifyServerTime, unchecked_return_type = "ServerTimeClaims")]
pub fn verify_server_time(
    jws: &JsString,
    trusted_keys: &TrustedKeys,
    expected_nonce: Option<JsString>,
) -> JsResult<JsValue> {
    let jws = text("jws", jws)?;
    let expected_nonce = opt_text("expectedNonce", expected_nonce)?;
    let c =
        core::verify_server_time(&jws, &trusted_keys.0, expected_nonce.as_deref()).or_throw()?;
    let out = Json::obj()
        .set("iss", &c.iss)
        .set("sub", &c.sub)
        .set("iat", &c.iat);
    // Absent, not null, when the server sent none (serde skips it).
    match &c.nonce {
        Some(n) => out.set("nonce", n),
        None => out,
    }
    .into_js()
}
