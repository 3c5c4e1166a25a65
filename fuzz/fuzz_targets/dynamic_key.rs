#![no_main]
//! parse/verify of dynamic keys never panics and never accepts an unsigned key.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = std::str::from_utf8(data) else { return };
    let _ = tillgate_core::parse_dynamic_api_key(key);
    let public = tillgate_core::SigningKey::from_seed(&[0x5A; 32]).public_key_bytes();
    assert!(tillgate_core::verify_dynamic_api_key(key, &public, "1,2,3,4", 1_751_328_000, 300).is_err());
});
