#![no_main]
//! validate_api_key never panics and agrees with the character classifier.
use libfuzzer_sys::fuzz_target;
use tillgate_core::{CharClass, classify_api_key_char, validate_api_key};

fuzz_target!(|data: &[u8]| {
    let Ok(key) = std::str::from_utf8(data) else { return };
    let all_allowed = key
        .chars()
        .all(|c| matches!(classify_api_key_char(c), CharClass::Allowed | CharClass::AllowedEscaped));
    let n = key.chars().count();
    assert_eq!(validate_api_key(key).is_ok(), all_allowed && (20..=256).contains(&n));
});
