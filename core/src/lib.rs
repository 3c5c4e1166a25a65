#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod activation;
mod api_key;
mod descriptor;
mod dynamic_key;
mod ed25519;
mod error;
mod jws;
mod keys;
mod object;
mod product;
mod receipt;
mod server_time;
mod transaction;
mod url_token;
pub mod wire;

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
#[cfg(feature = "sign")]
pub use descriptor::sign_descriptor;
pub use descriptor::{
    ActivationDescriptor, DEFAULT_CLOCK_TOLERANCE_SECS, DESCRIPTOR_TYP, DESCRIPTOR_VERSION,
    VerifiedDescriptor, VerifyOptions, decode_descriptor_unverified, verify_descriptor,
};
#[cfg(feature = "dynamic-key-derive")]
pub use dynamic_key::derive_dynamic_key_pair;
pub use dynamic_key::{
    DEFAULT_DYNAMIC_KEY_WINDOW_SECS, DYNAMIC_KEY_MAX_ITERATIONS, DYNAMIC_KEY_MAX_MEMORY_KIB,
    DYNAMIC_KEY_MAX_PARALLELISM, DYNAMIC_KEY_PREFIX, DynamicKeyClaims, DynamicKeyParams,
    LOGIN_MAX_BYTES, UnverifiedDynamicKey, is_dynamic_api_key, parse_dynamic_api_key,
    verify_dynamic_api_key,
};
#[cfg(feature = "sign")]
pub use dynamic_key::{DynamicKeyPair, create_dynamic_api_key, create_dynamic_api_key_with_nonce};
pub use ed25519::verify_ed25519;
pub use error::{Error, FieldError, Result, UrlTokenProblem};
pub use jws::{ALG_ED25519, ALG_EDDSA, MAX_JWS_LEN};
pub use keys::{Jwk, Jwks, TrustedKeys, jwk_thumbprint};
#[cfg(feature = "sign")]
pub use keys::{SigningKey, generate_signing_key};
pub use product::{PRODUCT_ID_MAX_LEN, Product, validate_product};
#[cfg(feature = "sign")]
pub use receipt::sign_receipt;
pub use receipt::{
    RECEIPT_TYP, ReceiptClaims, ReceiptMisnames, advances_witness, decode_receipt_unverified,
    receipt_link, verify_receipt, verify_receipt_chain, verify_receipt_chain_from,
    verify_receipt_chain_from_witness, verify_receipt_chain_witnessed, witness_after_check,
};
#[cfg(feature = "sign")]
pub use server_time::sign_server_time;
pub use server_time::{SERVER_TIME_TYP, ServerTimeClaims, verify_server_time};
pub use transaction::{
    Item, MAX_AMOUNT, MAX_ITEMS, MAX_VAT_LINES, Transaction, TransactionType, VatLine,
    canonical_bytes, transaction_hash, validate_transaction,
};
pub use url_token::{
    AccessToken, Prefix, RmSystem, Rve, URL_PARAM_MAX_LEN, URL_TOKEN_MAX_LEN, UrlParam, UrlToken,
    UrlTokenRef, encode_url_token, parse_url_token, redact_url_tokens,
};

/// The examples in the project README, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
