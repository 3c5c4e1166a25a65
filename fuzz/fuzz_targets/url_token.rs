#![no_main]
//! parse_url_token never panics, and every path it accepts re-encodes to a path that
//! parses to the same value.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Ok(token) = tillgate_core::parse_url_token(path) {
        let encoded = tillgate_core::encode_url_token(&token).expect("a parsed token encodes");
        let again = tillgate_core::parse_url_token(&encoded).expect("an encoded token parses");
        assert_eq!(again, token);
    }
});
