//! The one error type of `tillgate-core`.

use std::fmt;

/// Everything that can go wrong in `tillgate-core`.
///
/// Each variant has a stable snake_case [`code`](Error::code) that the bindings, the
/// HTTP API (`problem+json` `code`) and the shared test vectors use. Messages never
/// contain secrets: a rejected API key is described by the offending character and its
/// position, never by its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- Ed25519 -------------------------------------------------------------------
    /// A public key was not 32 bytes long.
    #[error("public key must be 32 bytes, got {len}")]
    InvalidPublicKeyLength {
        /// The length that was given.
        len: usize,
    },
    /// A signature was not 64 bytes long.
    #[error("signature must be 64 bytes, got {len}")]
    InvalidSignatureLength {
        /// The length that was given.
        len: usize,
    },
    /// A public key is not a canonical, valid Ed25519 point, or is of small order.
    #[error("public key is not a valid, canonical Ed25519 point of large order")]
    WeakPublicKey,
    /// The signature does not verify (including non-canonical S and small-order R).
    #[error("signature verification failed")]
    BadSignature,

    // ---- JWS / descriptor / receipt ------------------------------------------------
    /// The JWS is not three base64url parts of valid JSON with the expected fields.
    #[error("malformed JWS: {reason}")]
    MalformedJws {
        /// What was wrong.
        reason: String,
    },
    /// The JWS header names an algorithm other than `Ed25519` / `EdDSA` (including `none`).
    #[error("unsupported JWS algorithm {alg:?}: only Ed25519 (or EdDSA) is accepted")]
    UnsupportedAlgorithm {
        /// The `alg` found in the header.
        alg: String,
    },
    /// The JWS header `typ` is not the one expected for this kind of token.
    #[error("unexpected JWS typ {found:?}, expected {expected:?}")]
    WrongTokenType {
        /// The `typ` expected.
        expected: String,
        /// The `typ` found.
        found: String,
    },
    /// No trusted key has the `kid` named in the JWS header.
    #[error("no trusted key with kid {kid:?}")]
    UnknownKeyId {
        /// The `kid` found in the header.
        kid: String,
    },
    /// The descriptor's format version (`ver`) is not one this library understands.
    #[error("unsupported descriptor version {ver}")]
    UnsupportedVersion {
        /// The `ver` found.
        ver: u32,
    },
    /// The descriptor's `nbf` lies in the future.
    #[error("descriptor is not valid before {not_before} (now {now})")]
    DescriptorNotYetValid {
        /// `nbf`, Unix seconds.
        not_before: i64,
        /// The time used for the check, Unix seconds.
        now: i64,
    },
    /// The descriptor's `exp` has passed.
    #[error("descriptor expired at {expires_at} (now {now})")]
    DescriptorExpired {
        /// `exp`, Unix seconds.
        expires_at: i64,
        /// The time used for the check, Unix seconds.
        now: i64,
    },
    /// `now` is earlier than the latest trusted time seen, beyond the tolerance.
    #[error(
        "clock rolled back: now {now} is before the trusted time {trusted} (tolerance {tolerance_secs} s)"
    )]
    ClockRolledBack {
        /// The time used for the check, Unix seconds.
        now: i64,
        /// The latest trusted time the caller has seen, Unix seconds.
        trusted: i64,
        /// The tolerance that was allowed, seconds.
        tolerance_secs: i64,
    },
    /// The descriptor's `deviceId` is not the one of the running device.
    #[error("descriptor is for another device")]
    DeviceMismatch,
    /// The descriptor's `applicationPackage` is not the running application.
    #[error("descriptor is for application {found:?}, not {expected:?}")]
    ApplicationPackageMismatch {
        /// The package the app expected.
        expected: String,
        /// The package named in the descriptor.
        found: String,
    },
    /// A JWK or JWKS could not be used.
    #[error("invalid JWK: {reason}")]
    InvalidJwk {
        /// What was wrong.
        reason: String,
    },
    /// A signing key could not be generated or loaded.
    #[error("invalid signing key: {reason}")]
    InvalidSigningKey {
        /// What was wrong.
        reason: String,
    },

    // ---- API keys ------------------------------------------------------------------
    /// An API key is shorter than the minimum.
    #[error("API key is {len} characters, the minimum is {min}")]
    ApiKeyTooShort {
        /// Length in characters.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// An API key is longer than the maximum.
    #[error("API key is {len} characters, the maximum is {max}")]
    ApiKeyTooLong {
        /// Length in characters.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// An API key contains a character reserved by Fieldpine (`| { } [ ] \ /`).
    #[error("character {ch:?} at position {position} is reserved and cannot be used in an API key")]
    ApiKeyReservedChar {
        /// The reserved character.
        ch: char,
        /// Its 0-based character position.
        position: usize,
    },
    /// An API key contains a character outside the allowed set.
    #[error("character {} at position {position} is not allowed in an API key", CharDisplay(*.ch))]
    ApiKeyInvalidChar {
        /// The character.
        ch: char,
        /// Its 0-based character position.
        position: usize,
    },
    /// The entropy source failed.
    #[error("random number generator failed: {reason}")]
    Random {
        /// What the platform reported.
        reason: String,
    },

    // ---- URL tokens ----------------------------------------------------------------
    /// The path is not a Fieldpine URL-token path.
    #[error("invalid URL token path at byte {position}: {reason}")]
    InvalidUrlToken {
        /// 0-based byte offset in the path where the problem was found.
        position: usize,
        /// What was wrong.
        reason: UrlTokenProblem,
    },

    // ---- activation requests -------------------------------------------------------
    /// One or more fields of an activation request are invalid; all of them are listed.
    #[error("invalid activation request: {}", FieldList(.fields))]
    InvalidActivationRequest {
        /// Every failing field, in field order.
        fields: Vec<FieldError>,
    },

    // ---- dynamic keys --------------------------------------------------------------
    /// A dynamic API key is not in the `DK1.` format.
    #[error("malformed dynamic API key: {reason}")]
    MalformedDynamicKey {
        /// What was wrong.
        reason: String,
    },
    /// A dynamic API key's timestamp is outside the freshness window.
    #[error("dynamic API key is stale: issued at {issued_at}, now {now}, window {window_secs} s")]
    DynamicKeyStale {
        /// The key's timestamp, Unix seconds.
        issued_at: i64,
        /// The time used for the check, Unix seconds.
        now: i64,
        /// The allowed window, seconds either side of `now`.
        window_secs: i64,
    },
    /// A login name or password cannot be used to derive a dynamic key.
    #[error("invalid login: {reason}")]
    InvalidLogin {
        /// What was wrong.
        reason: String,
    },

    // ---- products ------------------------------------------------------------------
    /// A product or its id is invalid; every failing field is listed.
    #[error("invalid product: {}", FieldList(.fields))]
    InvalidProduct {
        /// Every failing field, in the order id, currency, name, price, vatRate, barcode.
        fields: Vec<FieldError>,
    },

    // ---- transactions and receipts -------------------------------------------------
    /// One or more fields of a cash transaction are invalid; all of them are listed.
    #[error("invalid transaction: {}", FieldList(.fields))]
    InvalidTransaction {
        /// Every failing field.
        fields: Vec<FieldError>,
    },
    /// A receipt chain is broken: a gap, a wrong `prev` link, or a mixed register.
    #[error("receipt chain broken at index {index}: {reason}")]
    ReceiptChainBroken {
        /// 0-based index of the first receipt that does not fit.
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// A server-signed timestamp does not echo the nonce the app sent.
    #[error("server timestamp does not echo the expected nonce")]
    NonceMismatch,
    /// The server's chain does not hold a receipt the register kept (its witness): the
    /// chain ends before the witness's sequence number, or has another receipt there.
    #[error("the chain does not hold the register's receipt {sequence}: {reason}")]
    WitnessMismatch {
        /// The witness's sequence number.
        sequence: u64,
        /// What was found instead.
        reason: String,
    },
    /// The receipt given as the register's witness does not verify itself (a damaged
    /// copy, or signed by a key the app does not trust), so it cannot be held against
    /// the server.
    #[error("the witness receipt is invalid: {source}")]
    InvalidWitness {
        /// Why it failed.
        source: Box<Error>,
    },
    /// A receipt in a chain failed verification.
    #[error("receipt at index {index} is invalid: {source}")]
    InvalidReceipt {
        /// 0-based index in the chain.
        index: usize,
        /// Why it failed.
        source: Box<Error>,
    },
}

impl Error {
    /// Every failing field of `invalid_activation_request`, `invalid_transaction` and
    /// `invalid_product`; empty for the other errors.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Error::InvalidActivationRequest { fields }
            | Error::InvalidTransaction { fields }
            | Error::InvalidProduct { fields } => fields,
            _ => &[],
        }
    }

    /// The stable, machine-readable code of this error (snake_case).
    ///
    /// ```
    /// let err = tillgate_core::validate_api_key("short").unwrap_err();
    /// assert_eq!(err.code(), "api_key_too_short");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPublicKeyLength { .. } => "invalid_public_key_length",
            Error::InvalidSignatureLength { .. } => "invalid_signature_length",
            Error::WeakPublicKey => "weak_public_key",
            Error::BadSignature => "bad_signature",
            Error::MalformedJws { .. } => "malformed_jws",
            Error::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Error::WrongTokenType { .. } => "wrong_token_type",
            Error::UnknownKeyId { .. } => "unknown_kid",
            Error::UnsupportedVersion { .. } => "unsupported_version",
            Error::DescriptorNotYetValid { .. } => "not_yet_valid",
            Error::DescriptorExpired { .. } => "expired",
            Error::ClockRolledBack { .. } => "clock_rolled_back",
            Error::DeviceMismatch => "device_mismatch",
            Error::ApplicationPackageMismatch { .. } => "application_package_mismatch",
            Error::InvalidJwk { .. } => "invalid_jwk",
            Error::InvalidSigningKey { .. } => "invalid_signing_key",
            Error::ApiKeyTooShort { .. } => "api_key_too_short",
            Error::ApiKeyTooLong { .. } => "api_key_too_long",
            Error::ApiKeyReservedChar { .. } => "api_key_reserved_char",
            Error::ApiKeyInvalidChar { .. } => "api_key_invalid_char",
            Error::Random { .. } => "random_failure",
            Error::InvalidUrlToken { reason, .. } => reason.code(),
            Error::InvalidActivationRequest { .. } => "invalid_activation_request",
            Error::MalformedDynamicKey { .. } => "malformed_dynamic_key",
            Error::DynamicKeyStale { .. } => "dynamic_key_stale",
            Error::InvalidLogin { .. } => "invalid_login",
            Error::InvalidProduct { .. } => "invalid_product",
            Error::InvalidTransaction { .. } => "invalid_transaction",
            Error::ReceiptChainBroken { .. } => "receipt_chain_broken",
            Error::InvalidReceipt { .. } => "invalid_receipt",
            Error::NonceMismatch => "nonce_mismatch",
            Error::WitnessMismatch { .. } => "witness_mismatch",
            Error::InvalidWitness { .. } => "invalid_witness",
        }
    }

    pub(crate) fn malformed_jws(reason: impl Into<String>) -> Self {
        Error::MalformedJws {
            reason: reason.into(),
        }
    }
}

/// Why a URL-token path was refused. Each has its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlTokenProblem {
    /// The path does not start with `/`.
    MissingLeadingSlash,
    /// The first segment does not start with `OpenApi`, `Anywhere` or `Gnap` and `_`.
    UnknownPrefix,
    /// The RmSystem is missing, has an empty id, a non-digit or an id too large.
    InvalidRmSystem,
    /// A `$` is not followed by an ASCII letter identifier.
    InvalidParamIdentifier,
    /// The same parameter identifier appears twice.
    DuplicateParam,
    /// The `$R` value is not a real `YYYYMMDDHHmmSS` UTC time.
    InvalidRve,
    /// An unknown `$X` parameter's value is longer than 256 characters.
    ParamTooLong,
    /// The `$$` access token is empty.
    EmptyToken,
    /// The access token is longer than 256 characters.
    TokenTooLong,
    /// A character (raw or percent-decoded) is outside the API-key charset, or reserved.
    InvalidCharacter,
    /// A `%` is not followed by two hex digits.
    InvalidPercentEncoding,
}

impl UrlTokenProblem {
    /// The stable error code for this problem.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingLeadingSlash => "url_missing_leading_slash",
            Self::UnknownPrefix => "url_unknown_prefix",
            Self::InvalidRmSystem => "url_invalid_rm_system",
            Self::InvalidParamIdentifier => "url_invalid_param",
            Self::DuplicateParam => "url_duplicate_param",
            Self::InvalidRve => "url_invalid_rve",
            Self::ParamTooLong => "url_param_too_long",
            Self::EmptyToken => "url_empty_token",
            Self::TokenTooLong => "url_token_too_long",
            Self::InvalidCharacter => "url_invalid_character",
            Self::InvalidPercentEncoding => "url_invalid_percent_encoding",
        }
    }
}

impl fmt::Display for UrlTokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingLeadingSlash => "the path must start with '/'",
            Self::UnknownPrefix => "the first segment must start with OpenApi_, Anywhere_ or Gnap_",
            Self::InvalidRmSystem => "RmSystem must be comma-separated decimal ids",
            Self::InvalidParamIdentifier => "'$' must be followed by one ASCII letter",
            Self::DuplicateParam => "a parameter identifier appears twice",
            Self::InvalidRve => "$R must be a real UTC time as YYYYMMDDHHmmSS",
            Self::ParamTooLong => "a parameter value is longer than 256 characters",
            Self::EmptyToken => "the $$ access token is empty",
            Self::TokenTooLong => "the access token is longer than 256 characters",
            Self::InvalidCharacter => "character outside the API-key charset",
            Self::InvalidPercentEncoding => "'%' must be followed by two hex digits",
        })
    }
}

/// One invalid field of a request, with a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field's JSON name (camelCase), e.g. `validFrom`.
    pub field: String,
    /// Stable snake_case code, e.g. `not_midnight_utc`.
    pub code: String,
    /// A message for people.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

struct FieldList<'a>(&'a [FieldError]);

impl fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// Shows a character so that invisible ones (space, controls) are still readable.
struct CharDisplay(char);

impl fmt::Display for CharDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (U+{:04X})", self.0, self.0 as u32)
    }
}

/// Result type of `tillgate-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
