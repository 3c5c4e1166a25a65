#![no_main]
//! verify_receipt_chain on arbitrary newline-separated input never panics and never
//! accepts a chain not signed by the trusted key.
use libfuzzer_sys::fuzz_target;
use tillgate_core::{SigningKey, TrustedKeys, verify_receipt_chain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let receipts: Vec<&str> = text.split('\n').collect();
    // The seed corpus is signed with 0xA1: verifying against it exercises the chain
    // checks; against 0xD4, whose secret signed nothing, every chain must be refused.
    let mut corpus_key = TrustedKeys::new();
    corpus_key.add_jwk(&SigningKey::from_seed(&[0xA1; 32]).public_jwk()).expect("valid jwk");
    let _ = verify_receipt_chain(&receipts, &corpus_key);
    let mut unused_key = TrustedKeys::new();
    unused_key.add_jwk(&SigningKey::from_seed(&[0xD4; 32]).public_jwk()).expect("valid jwk");
    assert!(verify_receipt_chain(&receipts, &unused_key).is_err());
});
