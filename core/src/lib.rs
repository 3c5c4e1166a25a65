//! # tillgate-core
//!
//! The rules Tillgate's POS clients and server share, in pure Rust: no I/O, no network,
//! no clock reads (callers pass `now` as Unix seconds), no global state. It builds for
//! `wasm32-unknown-unknown` and every native target the bindings use.
//!
//! | what | functions |
//! |---|---|
//! | Ed25519, strict | [`verify_ed25519`] |
//! | signed ActivationDescriptor (JWS) | [`sign_descriptor`], [`verify_descriptor`], [`generate_signing_key`], [`TrustedKeys`] |
//! | API keys (Fieldpine charset) | [`validate_api_key`], [`generate_api_key`], [`generate_api_key_with`] |
//! | URL-path access tokens | [`parse_url_token`], [`encode_url_token`] |
//! | activation requests (srv4pos) | [`validate_activation_request`] |
//! | dynamic API keys | [`derive_dynamic_key_pair`], [`create_dynamic_api_key`], [`verify_dynamic_api_key`] |
//! | cash transactions, signed receipts | [`validate_transaction`], [`sign_receipt`], [`verify_receipt_chain`] |
//! | server-signed timestamps (trusted time floor) | [`sign_server_time`], [`verify_server_time`] |
//!
//! Every failure is an [`Error`] with a stable [`Error::code`], the same string the
//! bindings and the HTTP API use. The formats are specified in `docs/PROTOCOL.md`.
//!
//! ```
//! use tillgate_core::*;
//!
//! // The server signs a descriptor ...
//! let server_key = SigningKey::from_seed(&[42; 32]);
//! let descriptor = ActivationDescriptor {
//!     iss: "https://pos.example".into(), sub: "TG-7Q2M-K4PX".into(),
//!     iat: 1_704_067_200, nbf: 1_704_067_200, exp: 1_735_689_600, ver: 1,
//!     activation_id: "act_1".into(), cash_register_name: "Kassa 1".into(),
//!     device_id: "device-1".into(), corporate_id: "556036-0793".into(),
//!     country: "SE".into(), application_package: "com.example.pos".into(),
//!     features: vec!["sales".into()], status: "approved".into(),
//!     extras: serde_json::json!({"shop": 7}),
//! };
//! let jws = sign_descriptor(&descriptor, &server_key).unwrap();
//!
//! // ... and the app verifies it offline with the key built into it.
//! let mut trusted = TrustedKeys::new();
//! trusted.add_jwk(&server_key.public_jwk()).unwrap();
//! let options = VerifyOptions {
//!     expected_device_id: Some("device-1".into()),
//!     trusted_time_floor: Some(1_710_000_000),
//!     ..Default::default()
//! };
//! let verified = verify_descriptor(&jws, &trusted, 1_710_000_100, &options).unwrap();
//! assert_eq!(verified.claims().cash_register_name, "Kassa 1");
//!
//! // Turning the clock back does not revive it.
//! let err = verify_descriptor(&jws, &trusted, 1_700_000_000, &options).unwrap_err();
//! assert_eq!(err.code(), "clock_rolled_back");
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod activation;
mod api_key;
mod descriptor;
mod dynamic_key;
mod ed25519;
mod error;
mod jws;
mod keys;
mod receipt;
mod server_time;
mod transaction;
mod url_token;

pub use activation::{
    ActivationRequest, ActivationRules, ApplicationPackage, CorporateId, CorporateIdRule,
    EXTRAS_MAX_BYTES, Period, ValidActivationRequest, format_rfc3339, validate_activation_request,
    validate_activation_request_with,
};
pub use api_key::{
    API_KEY_DEFAULT_LEN, API_KEY_MAX_LEN, API_KEY_MIN_LEN, API_KEY_PUNCTUATION, API_KEY_RESERVED,
    ApiKey, ApiKeyAlphabet, ApiKeyHash, CharClass, URL_ESCAPED_CHARS, classify_api_key_char,
    generate_api_key, generate_api_key_with, validate_api_key,
};
pub use descriptor::{
    ActivationDescriptor, DEFAULT_CLOCK_TOLERANCE_SECS, DESCRIPTOR_TYP, DESCRIPTOR_VERSION,
    VerifiedDescriptor, VerifyOptions, decode_descriptor_unverified, sign_descriptor,
    verify_descriptor,
};
pub use dynamic_key::{
    DEFAULT_DYNAMIC_KEY_WINDOW_SECS, DYNAMIC_KEY_PREFIX, DynamicKeyClaims, DynamicKeyPair,
    DynamicKeyParams, LOGIN_MAX_BYTES, UnverifiedDynamicKey, create_dynamic_api_key,
    create_dynamic_api_key_with_nonce, derive_dynamic_key_pair, is_dynamic_api_key,
    parse_dynamic_api_key, verify_dynamic_api_key,
};
pub use ed25519::verify_ed25519;
pub use error::{Error, FieldError, Result, UrlTokenProblem};
pub use jws::{ALG_ED25519, ALG_EDDSA, MAX_JWS_LEN};
pub use keys::{Jwk, Jwks, SigningKey, TrustedKeys, generate_signing_key, jwk_thumbprint};
pub use receipt::{
    RECEIPT_TYP, ReceiptClaims, decode_receipt_unverified, receipt_link, sign_receipt,
    verify_receipt_chain, verify_receipt_chain_from,
};
pub use server_time::{SERVER_TIME_TYP, ServerTimeClaims, sign_server_time, verify_server_time};
pub use transaction::{
    Item, MAX_AMOUNT, MAX_ITEMS, Transaction, TransactionType, VatLine, canonical_bytes,
    transaction_hash, validate_transaction,
};
pub use url_token::{
    AccessToken, Prefix, RmSystem, Rve, URL_PARAM_MAX_LEN, URL_TOKEN_MAX_LEN, UrlParam, UrlToken,
    encode_url_token, parse_url_token,
};
