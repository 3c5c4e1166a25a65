#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod api;
mod backoff;
mod client;
mod error;
mod http;
mod queue;

pub use api::{
    Activation, ActivationCode, Handshake, Product, ProductCatalogue, ProductPage, ProductSync,
};
pub use backoff::Backoff;
pub use client::{
    Client, ClientConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT,
    DEFAULT_TRANSACTION_PAGE_SIZE, MAX_TRANSACTION_PAGE_SIZE, VerifiedHistory,
};
pub use error::{ClientError, Result};
pub use http::redact_url;
#[cfg(not(target_arch = "wasm32"))]
pub use queue::FileStore;
#[cfg(all(target_arch = "wasm32", feature = "web-storage"))]
pub use queue::LocalStorageStore;
pub use queue::{
    CorruptRecord, EntryState, IdempotencyKey, LastError, MaybeSendSync, MemoryStore, Outbox,
    QueueStore, QueuedTransaction, SUBMIT_MAX_AHEAD, StoreContents, Submitted, SyncReport,
    WitnessProblem, WitnessRecord, decode_record, decode_witness, encode_record, encode_witness,
};
/// The core crate, re-exported so apps use the same types the client takes.
pub use tillgate_core as core;
/// The renewal body, core's [`tillgate_core::wire::RenewRequest`].
pub use tillgate_core::wire::RenewRequest;
/// A transaction as the server stored it (id, gapless sequence number, signed receipt):
/// core's [`tillgate_core::wire::TransactionOut`].
pub use tillgate_core::wire::TransactionOut as StoredTransaction;

/// The device's clock as Unix milliseconds, for the `now_ms` arguments. The client's
/// logic never reads a clock itself; this is the one place that does.
pub fn unix_time_ms() -> i64 {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}
