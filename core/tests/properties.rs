//! Property tests over the public API: parsers never panic and agree with their rules,
//! generators only make what the validators accept.

use proptest::prelude::*;
use tillgate_core::*;

proptest! {
    #[test]
    fn validate_api_key_agrees_with_the_classifier(key in "\\PC{0,300}") {
        let all_allowed = key.chars().all(|c| matches!(classify_api_key_char(c), CharClass::Allowed | CharClass::AllowedEscaped));
        let n = key.chars().count();
        prop_assert_eq!(validate_api_key(&key).is_ok(), all_allowed && (20..=256).contains(&n));
    }

    #[test]
    fn generated_keys_validate(len in 20usize..=256, url_safe in any::<bool>()) {
        let alphabet = if url_safe { ApiKeyAlphabet::UrlSafe } else { ApiKeyAlphabet::Full };
        let key = generate_api_key_with(len, alphabet).expect("valid length");
        prop_assert_eq!(key.expose().len(), len);
        prop_assert!(validate_api_key(key.expose()).is_ok());
        prop_assert!(key.expose().bytes().all(|b| alphabet.chars().contains(&b)));
    }

    #[test]
    fn generated_keys_work_as_url_tokens(len in 20usize..=256) {
        let key = generate_api_key(len).expect("valid length");
        let t = UrlToken {
            prefix: Prefix::OpenApi, version: None,
            rm_system: "1,2,3,4".parse().expect("valid"),
            rve: None, params: vec![],
            token: Some(AccessToken::new(key.expose()).expect("keys are valid tokens")),
            rest: "/Products".into(),
        };
        let path = encode_url_token(&t).expect("encodes");
        let parsed = parse_url_token(&path).expect("parses");
        let token = parsed.token.expect("has token");
        prop_assert_eq!(token.expose(), key.expose());
    }

    #[test]
    fn dynamic_key_parser_never_panics(s in "(DK1\\.)?[A-Za-z0-9_.=-]{0,120}") {
        let _ = parse_dynamic_api_key(&s);
    }

    #[test]
    fn jws_parsers_never_panic(s in "[A-Za-z0-9_.=-]{0,200}") {
        let keys = TrustedKeys::new();
        let _ = verify_descriptor(&s, &keys, 0, &VerifyOptions::default());
        let _ = verify_receipt_chain(&[s.as_str()], &keys);
        let _ = verify_server_time(&s, &keys, None);
    }

    #[test]
    fn rve_round_trips(secs in 0i64..253_402_300_799) {
        let rve = Rve::from_unix(secs).expect("in range");
        prop_assert_eq!(Rve::parse(&rve.to_string()).expect("parses"), rve);
        prop_assert_eq!(rve.unix_seconds(), secs);
    }

    #[test]
    fn periods_never_exceed_a_year(from_day in 0i64..40_000, days in 1i64..370) {
        let from = from_day * 86_400;
        let to = from + days * 86_400;
        if let Ok(p) = Period::from_unix(from, to) {
            prop_assert!(p.to_unix_seconds() - p.from_unix_seconds() <= 366 * 86_400);
        } else {
            prop_assert!(days >= 365);
        }
    }
}
