#![no_main]
//! verify_receipt_chain on arbitrary newline-separated input never panics and never
//! accepts a chain not signed by the trusted key; verify_receipt_chain_witnessed, with
//! the last line as the witness, never panics and accepts only a chain that verifies and
//! holds the witness at its sequence.
use libfuzzer_sys::fuzz_target;
use tillgate_core::{
    SigningKey, TrustedKeys, decode_receipt_unverified, verify_receipt_chain,
    verify_receipt_chain_witnessed,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let receipts: Vec<&str> = text.split('\n').collect();
    // The seed corpus is signed with 0xA1: verifying against it exercises the chain
    // checks; against 0xD4, whose secret signed nothing, every chain must be refused.
    let mut corpus_key = TrustedKeys::new();
    corpus_key.add_jwk(&SigningKey::from_seed(&[0xA1; 32]).public_jwk()).expect("valid jwk");
    let _ = verify_receipt_chain(&receipts, &corpus_key);
    if let Some((witness, chain)) = receipts.split_last() {
        if let Ok(claims) = verify_receipt_chain_witnessed(chain, &corpus_key, witness) {
            // Accepted: the chain alone verifies, and holds the witness at its place.
            assert!(verify_receipt_chain(chain, &corpus_key).is_ok());
            let seq = decode_receipt_unverified(witness).expect("a held witness decodes").seq;
            assert_eq!(chain.get(seq as usize - 1), Some(witness));
            assert_eq!(claims.len(), chain.len());
        }
    }
    let mut unused_key = TrustedKeys::new();
    unused_key.add_jwk(&SigningKey::from_seed(&[0xD4; 32]).public_jwk()).expect("valid jwk");
    assert!(verify_receipt_chain(&receipts, &unused_key).is_err());
});
