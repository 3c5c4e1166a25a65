#![no_main]
//! Activation-request and transaction JSON: decoding and validation never panic, and a
//! rejected request always names at least one field.
use libfuzzer_sys::fuzz_target;
use tillgate_core::{ActivationRequest, Error, Transaction};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<ActivationRequest>(data) {
        match tillgate_core::validate_activation_request(&req) {
            Ok(_) => {}
            Err(Error::InvalidActivationRequest { fields }) => assert!(!fields.is_empty()),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    if let Ok(tx) = serde_json::from_slice::<Transaction>(data) {
        if tillgate_core::validate_transaction(&tx).is_ok() {
            let _ = tillgate_core::transaction_hash(&tx);
        }
    }
});
