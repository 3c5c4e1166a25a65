#![no_main]
//! verify_descriptor never panics on arbitrary input. Against the key the seed corpus is
//! signed with it may accept (that exercises the claim checks); against a key whose
//! secret never signed anything it must refuse everything.
use libfuzzer_sys::fuzz_target;
use tillgate_core::{SigningKey, TrustedKeys, VerifyOptions, verify_descriptor};

fuzz_target!(|data: &[u8]| {
    let Ok(jws) = std::str::from_utf8(data) else { return };
    let options = VerifyOptions { trusted_time_floor: Some(1_700_000_000), ..Default::default() };
    let mut corpus_key = TrustedKeys::new();
    corpus_key.add_jwk(&SigningKey::from_seed(&[0xA1; 32]).public_jwk()).expect("valid jwk");
    let _ = verify_descriptor(jws, &corpus_key, 1_751_328_000, &options);
    let mut unused_key = TrustedKeys::new();
    unused_key.add_jwk(&SigningKey::from_seed(&[0xD4; 32]).public_jwk()).expect("valid jwk");
    assert!(verify_descriptor(jws, &unused_key, 1_751_328_000, &options).is_err());
    let _ = tillgate_core::decode_descriptor_unverified(jws);
});
