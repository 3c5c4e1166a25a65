//! `cargo run -p xtask -- vectors [--check]`: writes (or checks) the signed test
//! vectors in `tests/vectors/` (descriptor, receipt, dynamic_key). Ed25519 signatures
//! are deterministic, so regenerating gives byte-identical files; `--check` fails when
//! the files drift from what the code produces. The expected outcome of every case is
//! written here by hand, not computed.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use tillgate_core::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds a compact JWS with an arbitrary header, for malformed and hostile cases.
fn raw_jws(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let mut s = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = key.sign_raw(s.as_bytes());
    s.push('.');
    s.push_str(&B64.encode(sig));
    s
}

/// base64url with non-zero unused bits in its last character: the same bytes to a
/// lenient decoder (one that ignores those bits), refused by a strict one (PROTOCOL 1.3).
fn lenient_twin(part: &str) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let oops = || Error::MalformedJws {
        reason: format!("{part:?} has no unused bits"),
    };
    if part.len() % 4 < 2 {
        return Err(oops());
    }
    let last = *part.as_bytes().last().ok_or_else(oops)?;
    let value = ALPHABET.iter().position(|&c| c == last).ok_or_else(oops)?;
    // The lowest bit of the last character is unused whenever there are unused bits.
    let twin = format!(
        "{}{}",
        &part[..part.len() - 1],
        char::from(ALPHABET[value | 1])
    );
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let same = B64.decode(part).ok() == lenient.decode(&twin).ok() && B64.decode(&twin).is_err();
    if twin == part || !same {
        return Err(oops());
    }
    Ok(twin)
}

/// `jws` with the last character of its signature given non-zero unused bits.
fn with_lenient_signature(jws: &str) -> Result<String> {
    let (signed, sig) = jws.rsplit_once('.').ok_or(Error::BadSignature)?;
    Ok(format!("{signed}.{}", lenient_twin(sig)?))
}

/// `jws` with its 64-byte signature replaced by `f(signature)`.
fn with_signature(jws: &str, f: impl FnOnce(&mut [u8; 64])) -> Result<String> {
    let (signed, sig) = jws.rsplit_once('.').ok_or(Error::BadSignature)?;
    let mut sig: [u8; 64] = B64
        .decode(sig)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::BadSignature)?;
    f(&mut sig);
    Ok(format!("{signed}.{}", B64.encode(sig)))
}

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// S + L: the same scalar, unreduced (a lax verifier reduces S and accepts it).
fn add_l(sig: &mut [u8; 64]) {
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L) {
        let v = u16::from(*s) + u16::from(l) + carry;
        *s = v.to_le_bytes()[0];
        carry = v >> 8;
    }
}

/// A compact JWS "signed" by the holder of `key` with R = the identity (small order) and
/// S = k·a, which passes the cofactorless equation [S]B = R + [k]A: a verifier without
/// the strict check on R accepts it.
fn small_order_r_jws(key: &SigningKey, typ: &str, claims: &Value) -> String {
    use curve25519_dalek::Scalar;
    use sha2::{Digest, Sha512};
    let header = json!({"alg": "Ed25519", "kid": key.kid(), "typ": typ});
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let mut r = [0u8; 32];
    r[0] = 1; // the identity point
    let expanded = Sha512::digest(key.seed());
    let mut a = [0u8; 32];
    a.copy_from_slice(&expanded[..32]);
    let a = Scalar::from_bytes_mod_order(curve25519_dalek::scalar::clamp_integer(a));
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r)
            .chain_update(key.public_key_bytes())
            .chain_update(signing_input.as_bytes())
            .finalize()
            .into(),
    );
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    sig[32..].copy_from_slice((k * a).as_bytes());
    format!("{signing_input}.{}", B64.encode(sig))
}

const JAN_2025: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const JAN_2026: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const MID_2025: i64 = 1_751_328_000; // 2025-07-01T00:00:00Z

fn descriptor() -> ActivationDescriptor {
    ActivationDescriptor {
        iss: "https://tillgate.example".into(),
        sub: "TG-7Q2M-K4PX".into(),
        iat: JAN_2025 - 3600,
        nbf: JAN_2025,
        exp: JAN_2026,
        ver: DESCRIPTOR_VERSION,
        activation_id: "act_01HZX4".into(),
        cash_register_name: "Kassa 1".into(),
        device_id: "a1b2c3d4e5f60718".into(),
        corporate_id: "556036-0793".into(),
        country: "SE".into(),
        application_package: "com.example.pos".into(),
        features: vec!["sales".into(), "refunds".into()],
        status: "approved".into(),
        extras: json!({"shop": 7, "lane": "A", "note": "Smörgås"}),
    }
}

fn descriptor_vectors() -> Result<Value> {
    let a = SigningKey::from_seed(&[0xA1; 32]);
    let b = SigningKey::from_seed(&[0xB2; 32]);
    let stranger = SigningKey::from_seed(&[0xC3; 32]);
    let jwks = Jwks {
        keys: vec![a.public_jwk(), b.public_jwk()],
    };
    let d = descriptor();
    let claims = serde_json::to_value(&d).map_err(|_| Error::BadSignature)?;
    let good = sign_descriptor(&d, &a)?;
    let by_b = sign_descriptor(&d, &b)?;
    let hdr = |alg: &str, kid: &str| json!({"alg": alg, "typ": DESCRIPTOR_TYP, "kid": kid});
    let mut tampered_claims = claims.clone();
    tampered_claims["exp"] = json!(JAN_2026 + 10 * 365 * 86400);
    let good_parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        good_parts[0],
        B64.encode(tampered_claims.to_string()),
        good_parts[2]
    );
    let mut flipped_sig = B64.decode(good_parts[2]).map_err(|_| Error::BadSignature)?;
    flipped_sig[10] ^= 0x01;
    let flipped = format!(
        "{}.{}.{}",
        good_parts[0],
        good_parts[1],
        B64.encode(&flipped_sig)
    );
    let receipt_as_descriptor = sign_receipt(&receipt_claims(1, "", "tx_1"), &a)?;

    let mut cases = Vec::new();
    let mut case = |name: &str, jws: &str, now: i64, options: Value, outcome: Result<(), &str>| {
        let mut c = json!({"name": name, "jws": jws, "now": now, "options": options});
        match outcome {
            Ok(()) => {
                c["valid"] = json!(true);
                c["expected"] = claims.clone();
            }
            Err(code) => {
                c["valid"] = json!(false);
                c["error"] = json!(code);
            }
        }
        cases.push(c);
    };
    let none = json!({});
    case("valid", &good, MID_2025, none.clone(), Ok(()));
    case(
        "valid, signed by the second (rotated) key",
        &by_b,
        MID_2025,
        none.clone(),
        Ok(()),
    );
    case(
        "first second of validity (nbf)",
        &good,
        JAN_2025,
        none.clone(),
        Ok(()),
    );
    case(
        "last second of validity",
        &good,
        JAN_2026 - 1,
        none.clone(),
        Ok(()),
    );
    case(
        "older alg name EdDSA is accepted",
        &raw_jws(&a, &hdr("EdDSA", a.kid()), &claims),
        MID_2025,
        none.clone(),
        Ok(()),
    );
    case(
        "one second before nbf",
        &good,
        JAN_2025 - 1,
        none.clone(),
        Err("not_yet_valid"),
    );
    case("at exp", &good, JAN_2026, none.clone(), Err("expired"));
    case(
        "a year after exp",
        &good,
        JAN_2026 + 365 * 86400,
        none.clone(),
        Err("expired"),
    );
    case(
        "expired but inside the given leeway",
        &good,
        JAN_2026 + 100,
        json!({"leewaySecs": 300}),
        Ok(()),
    );
    case(
        "roll-back tolerance is not expiry leeway",
        &good,
        JAN_2026 + 100,
        json!({"clockToleranceSecs": 300}),
        Err("expired"),
    );
    case(
        "clock behind the floor cannot outlive exp",
        &good,
        JAN_2026 - 100,
        json!({"trustedTimeFloor": JAN_2026 + 100}),
        Err("expired"),
    );
    let mut v2 = claims.clone();
    v2["ver"] = json!(2);
    case(
        "unknown format version",
        &raw_jws(&a, &hdr("Ed25519", a.kid()), &v2),
        MID_2025,
        none.clone(),
        Err("unsupported_version"),
    );
    case(
        "claims as a JSON array",
        &raw_jws(
            &a,
            &hdr("Ed25519", a.kid()),
            &json!(["https://tillgate.example", "TG-7Q2M-K4PX"]),
        ),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "larger than 16 KiB",
        &raw_jws(
            &a,
            &hdr("Ed25519", a.kid()),
            &json!({"pad": "x".repeat(17 * 1024)}),
        ),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "clock turned back beyond tolerance",
        &good,
        MID_2025,
        json!({"trustedTimeFloor": MID_2025 + 301}),
        Err("clock_rolled_back"),
    );
    case(
        "clock behind the floor within the default 300 s",
        &good,
        MID_2025,
        json!({"trustedTimeFloor": MID_2025 + 300}),
        Ok(()),
    );
    case(
        "rolled back to revive an expired licence",
        &good,
        MID_2025,
        json!({"trustedTimeFloor": JAN_2026 + 86400}),
        Err("clock_rolled_back"),
    );
    case(
        "custom tolerance 0",
        &good,
        MID_2025,
        json!({"trustedTimeFloor": MID_2025 + 1, "clockToleranceSecs": 0}),
        Err("clock_rolled_back"),
    );
    case(
        "expected device matches",
        &good,
        MID_2025,
        json!({"expectedDeviceId": "a1b2c3d4e5f60718", "expectedApplicationPackage": "com.example.pos"}),
        Ok(()),
    );
    case(
        "another device",
        &good,
        MID_2025,
        json!({"expectedDeviceId": "ffffffffffffffff"}),
        Err("device_mismatch"),
    );
    case(
        "another application",
        &good,
        MID_2025,
        json!({"expectedApplicationPackage": "com.evil.pos"}),
        Err("application_package_mismatch"),
    );
    case(
        "claims changed after signing",
        &tampered,
        MID_2025,
        none.clone(),
        Err("bad_signature"),
    );
    case(
        "signature bit flipped",
        &flipped,
        MID_2025,
        none.clone(),
        Err("bad_signature"),
    );
    case(
        "signed by an untrusted key",
        &sign_descriptor(&d, &stranger)?,
        MID_2025,
        none.clone(),
        Err("unknown_kid"),
    );
    case(
        "trusted kid, signed by another key",
        &raw_jws(&stranger, &hdr("Ed25519", a.kid()), &claims),
        MID_2025,
        none.clone(),
        Err("bad_signature"),
    );
    case(
        "alg none",
        &format!(
            "{}.{}.",
            B64.encode(hdr("none", a.kid()).to_string()),
            B64.encode(claims.to_string())
        ),
        MID_2025,
        none.clone(),
        Err("unsupported_algorithm"),
    );
    case(
        "alg HS256 (algorithm confusion)",
        &raw_jws(&a, &hdr("HS256", a.kid()), &claims),
        MID_2025,
        none.clone(),
        Err("unsupported_algorithm"),
    );
    case(
        "alg ES256",
        &raw_jws(&a, &hdr("ES256", a.kid()), &claims),
        MID_2025,
        none.clone(),
        Err("unsupported_algorithm"),
    );
    case(
        "receipt presented as a descriptor",
        &receipt_as_descriptor,
        MID_2025,
        none.clone(),
        Err("wrong_token_type"),
    );
    case(
        "no typ",
        &raw_jws(&a, &json!({"alg": "Ed25519", "kid": a.kid()}), &claims),
        MID_2025,
        none.clone(),
        Err("wrong_token_type"),
    );
    case(
        "no kid",
        &raw_jws(
            &a,
            &json!({"alg": "Ed25519", "typ": DESCRIPTOR_TYP}),
            &claims,
        ),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "crit header",
        &raw_jws(
            &a,
            &json!({"alg": "Ed25519", "typ": DESCRIPTOR_TYP, "kid": a.kid(), "crit": ["exp"]}),
            &claims,
        ),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "two parts",
        &good_parts[..2].join("."),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "four parts",
        &format!("{good}.x"),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "padding in base64url",
        &format!("{}=.{}.{}", good_parts[0], good_parts[1], good_parts[2]),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "header not JSON",
        &format!("{}.{}.{}", B64.encode("nope"), good_parts[1], good_parts[2]),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "claims missing sub",
        &raw_jws(
            &a,
            &hdr("Ed25519", a.kid()),
            &json!({"iss": "x", "iat": 1, "nbf": 1, "exp": 2}),
        ),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "signature 63 bytes",
        &format!(
            "{}.{}.{}",
            good_parts[0],
            good_parts[1],
            B64.encode(&flipped_sig[..63])
        ),
        MID_2025,
        none.clone(),
        Err("invalid_signature_length"),
    );
    case(
        "unused bits set in the signature's last character (a lenient decoder reads the same bytes)",
        &with_lenient_signature(&good)?,
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    // A validly signed descriptor with `from` swapped for `to` once. Base64url of ASCII
    // JSON seldom holds `-` or `_`, the signature often does: the first of `good` and
    // tokens signed with another `iat` that holds `from`.
    let standard = |from: char, to: char| -> Result<String> {
        for i in 0..64 {
            let token = if i == 0 {
                good.clone()
            } else {
                sign_descriptor(
                    &ActivationDescriptor {
                        iat: d.iat + i,
                        ..d.clone()
                    },
                    &a,
                )?
            };
            if token.contains(from) {
                return Ok(token.replacen(from, &to.to_string(), 1));
            }
        }
        Err(Error::MalformedJws {
            reason: format!("no {from:?} in the tokens tried"),
        })
    };
    case(
        "+ for - (the standard base64 alphabet)",
        &standard('-', '+')?,
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "/ for _ (the standard base64 alphabet)",
        &standard('_', '/')?,
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "a line break inside the claims part",
        &format!(
            "{}.{}\n{}.{}",
            good_parts[0],
            &good_parts[1][..64],
            &good_parts[1][64..],
            good_parts[2]
        ),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "a trailing line break",
        &format!("{good}\n"),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case(
        "a space before the signature",
        &format!("{}.{}. {}", good_parts[0], good_parts[1], good_parts[2]),
        MID_2025,
        none.clone(),
        Err("malformed_jws"),
    );
    case("empty string", "", MID_2025, none, Err("malformed_jws"));

    Ok(json!({
        "description": "verify_descriptor(jws, trustedKeys from `jwks`, now, options). Times are Unix seconds. options: trustedTimeFloor, clockToleranceSecs (how far now may lag behind the floor, default 300), leewaySecs (for nbf/exp, default 0), expectedDeviceId, expectedApplicationPackage. `signing` cases: sign_descriptor(claims, key from seed) must give exactly `jws`. `jwksCases`: loading trusted keys from a JWKS document.",
        "jwks": jwks,
        "jwksCases": jwks_cases(&a, &b)?,
        "cases": cases,
        "signing": [{
            "name": "deterministic signature",
            "seed": hex(&a.seed()),
            "kid": a.kid(),
            "claims": claims,
            "jws": good,
        }],
    }))
}

fn jwks_cases(a: &SigningKey, b: &SigningKey) -> Result<Value> {
    let good = a.public_jwk();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut j = serde_json::to_value(&good).unwrap_or_default();
        f(&mut j);
        json!({"keys": [j]})
    };
    let mut same_kid = b.public_jwk();
    same_kid.kid = good.kid.clone();
    let x_twin = lenient_twin(&B64.encode(a.public_key_bytes()))?;
    let mut weak = serde_json::to_value(&good).unwrap_or_default();
    weak["x"] = json!(B64.encode([0u8; 32]));
    let cases = [
        (
            "two keys",
            json!({"keys": [good.clone(), b.public_jwk()]}),
            None,
        ),
        ("alg EdDSA", with(&|j| j["alg"] = json!("EdDSA")), None),
        (
            "no alg or use",
            with(&|j| {
                j.as_object_mut().map(|o| {
                    o.remove("alg");
                    o.remove("use")
                });
            }),
            None,
        ),
        ("empty set", json!({"keys": []}), None),
        (
            "private part present",
            with(&|j| j["d"] = json!(B64.encode([7u8; 32]))),
            Some("invalid_jwk"),
        ),
        (
            "RSA key",
            json!({"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]}),
            Some("invalid_jwk"),
        ),
        (
            "X25519 curve",
            with(&|j| j["crv"] = json!("X25519")),
            Some("invalid_jwk"),
        ),
        (
            "no kid",
            with(&|j| {
                j.as_object_mut().map(|o| o.remove("kid"));
            }),
            Some("invalid_jwk"),
        ),
        (
            "x of 31 bytes",
            with(&|j| j["x"] = json!(B64.encode([9u8; 31]))),
            Some("invalid_jwk"),
        ),
        (
            "x with padding",
            with(&|j| j["x"] = json!(format!("{}=", B64.encode(a.public_key_bytes())))),
            Some("invalid_jwk"),
        ),
        (
            "small-order x",
            json!({"keys": [weak]}),
            Some("invalid_jwk"),
        ),
        (
            "non-canonical x (y = p + 3, a point on the curve)",
            with(&|j| {
                let mut y = [0xff; 32];
                y[0] = 0xf0;
                y[31] = 0x7f;
                j["x"] = json!(B64.encode(y));
            }),
            Some("invalid_jwk"),
        ),
        (
            "x with unused bits set in its last character",
            with(&|j| j["x"] = json!(x_twin)),
            Some("invalid_jwk"),
        ),
        (
            "alg RS256",
            with(&|j| j["alg"] = json!("RS256")),
            Some("invalid_jwk"),
        ),
        (
            "two keys, one kid",
            json!({"keys": [good.clone(), same_kid]}),
            Some("invalid_jwk"),
        ),
        ("not a JWKS", json!([good.clone()]), Some("invalid_jwk")),
    ];
    Ok(Value::from(
        cases
            .into_iter()
            .map(|(name, jwks, err)| match err {
                None => json!({"name": name, "jwks": jwks, "valid": true}),
                Some(code) => json!({"name": name, "jwks": jwks, "valid": false, "error": code}),
            })
            .collect::<Vec<_>>(),
    ))
}

fn server_time_vectors() -> Result<Value> {
    let a = SigningKey::from_seed(&[0xA1; 32]);
    let claims = ServerTimeClaims {
        iss: "https://tillgate.example".into(),
        sub: "TG-7Q2M-K4PX".into(),
        iat: MID_2025,
        nonce: Some("n-4f9c2a".into()),
    };
    let good = sign_server_time(&claims, &a)?;
    let no_nonce = sign_server_time(
        &ServerTimeClaims {
            nonce: None,
            ..claims.clone()
        },
        &a,
    )?;
    let descriptor_jws = sign_descriptor(&descriptor(), &a)?;
    let foreign = sign_server_time(&claims, &SigningKey::from_seed(&[0xC3; 32]))?;
    let case = |name: &str, jws: &str, nonce: Option<&str>, outcome: Result<i64, &str>| {
        let mut c = json!({"name": name, "jws": jws, "expectedNonce": nonce});
        match outcome {
            Ok(iat) => {
                c["valid"] = json!(true);
                c["iat"] = json!(iat);
            }
            Err(code) => {
                c["valid"] = json!(false);
                c["error"] = json!(code);
            }
        }
        c
    };
    Ok(json!({
        "description": "verify_server_time(jws, trustedKeys from `jwks`, expectedNonce): a valid timestamp gives its `iat`, the app's new trusted time floor.",
        "jwks": Jwks { keys: vec![a.public_jwk()] },
        "cases": [
            case("valid, nonce echoed", &good, Some("n-4f9c2a"), Ok(MID_2025)),
            case("valid, nonce not checked", &good, None, Ok(MID_2025)),
            case("valid, no nonce sent", &no_nonce, None, Ok(MID_2025)),
            case("another nonce", &good, Some("n-other"), Err("nonce_mismatch")),
            case("nonce expected but none echoed", &no_nonce, Some("n-4f9c2a"), Err("nonce_mismatch")),
            case("a descriptor is not a timestamp", &descriptor_jws, None, Err("wrong_token_type")),
            case("untrusted key", &foreign, None, Err("unknown_kid")),
        ],
    }))
}

fn receipt_claims(seq: u64, prev: &str, txid: &str) -> ReceiptClaims {
    ReceiptClaims {
        iss: "https://tillgate.example".into(),
        sub: "TG-7Q2M-K4PX".into(),
        iat: MID_2025 + seq as i64 * 60,
        seq,
        txid: txid.into(),
        txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
        prev: prev.into(),
        tx_type: "sale".into(),
        total: 12500,
        currency: "SEK".into(),
    }
}

fn chain(key: &SigningKey, n: u64) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for seq in 1..=n {
        let prev = out.last().map(|r| receipt_link(r)).unwrap_or_default();
        out.push(sign_receipt(
            &receipt_claims(seq, &prev, &format!("tx_{seq}")),
            key,
        )?);
    }
    Ok(out)
}

fn receipt_vectors() -> Result<Value> {
    let a = SigningKey::from_seed(&[0xA1; 32]);
    let stranger = SigningKey::from_seed(&[0xC3; 32]);
    let good = chain(&a, 5)?;
    let mut cases = Vec::new();
    let mut case = |name: &str,
                    previous: Option<&str>,
                    receipts: &[String],
                    outcome: Result<usize, (&str, usize)>| {
        let mut c = json!({"name": name, "previous": previous, "receipts": receipts});
        match outcome {
            Ok(n) => {
                c["valid"] = json!(true);
                c["count"] = json!(n);
            }
            Err((code, index)) => {
                c["valid"] = json!(false);
                c["error"] = json!(code);
                c["index"] = json!(index);
            }
        }
        cases.push(c);
    };
    case("five receipts from seq 1", None, &good, Ok(5));
    case("empty chain", None, &[], Ok(0));
    case(
        "continues a trusted receipt",
        Some(&good[1]),
        &good[2..],
        Ok(3),
    );
    case(
        "gap: seq 3 missing",
        None,
        &[good[0].clone(), good[1].clone(), good[3].clone()],
        Err(("receipt_chain_broken", 2)),
    );
    case(
        "reordered",
        None,
        &[good[0].clone(), good[2].clone(), good[1].clone()],
        Err(("receipt_chain_broken", 1)),
    );
    case(
        "starts at seq 2 without the previous receipt",
        None,
        &good[1..],
        Err(("receipt_chain_broken", 0)),
    );
    case(
        "does not continue the given previous receipt",
        Some(&good[0]),
        &good[2..],
        Err(("receipt_chain_broken", 0)),
    );
    let forked = sign_receipt(&receipt_claims(3, &receipt_link(&good[0]), "tx_3"), &a)?;
    case(
        "prev points at the wrong receipt",
        None,
        &[good[0].clone(), good[1].clone(), forked],
        Err(("receipt_chain_broken", 2)),
    );
    let mut other = receipt_claims(2, &receipt_link(&good[0]), "tx_2");
    other.sub = "TG-OTHER-0001".into();
    case(
        "receipt of another register",
        None,
        &[good[0].clone(), sign_receipt(&other, &a)?],
        Err(("receipt_chain_broken", 1)),
    );
    let parts: Vec<&str> = good[2].split('.').collect();
    let mut sig = B64.decode(parts[2]).map_err(|_| Error::BadSignature)?;
    sig[5] ^= 0x80;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig));
    case(
        "bad signature in the middle",
        None,
        &[good[0].clone(), good[1].clone(), bad_sig, good[3].clone()],
        Err(("invalid_receipt", 2)),
    );
    let mut amended = receipt_claims(2, &receipt_link(&good[0]), "tx_2");
    amended.total = 1;
    let amended_jws = format!(
        "{}.{}.{}",
        good[1].split('.').next().unwrap_or_default(),
        B64.encode(serde_json::to_string(&amended).unwrap_or_default()),
        good[1].split('.').nth(2).unwrap_or_default()
    );
    case(
        "total changed after signing",
        None,
        &[good[0].clone(), amended_jws],
        Err(("invalid_receipt", 1)),
    );
    let foreign = chain(&stranger, 2)?;
    case(
        "signed by an untrusted key",
        None,
        &foreign,
        Err(("invalid_receipt", 0)),
    );
    let descriptor_jws = sign_descriptor(&descriptor(), &a)?;
    case(
        "a descriptor in the chain",
        None,
        &[good[0].clone(), descriptor_jws],
        Err(("invalid_receipt", 1)),
    );
    case(
        "unused bits set in a signature's last character (a lenient decoder reads the same bytes)",
        None,
        &[
            good[0].clone(),
            with_lenient_signature(&good[1])?,
            good[2].clone(),
        ],
        Err(("invalid_receipt", 1)),
    );
    let s_plus_l = with_signature(&good[1], add_l)?;
    case(
        "S + L (unreduced S: the same signature to a lax verifier)",
        None,
        &[good[0].clone(), s_plus_l.clone(), good[2].clone()],
        Err(("invalid_receipt", 1)),
    );
    let claims3 = serde_json::to_value(receipt_claims(3, &receipt_link(&good[1]), "tx_3"))
        .map_err(|_| Error::BadSignature)?;
    case(
        "R the identity with S = k*a (passes the cofactorless equation)",
        None,
        &[
            good[0].clone(),
            good[1].clone(),
            small_order_r_jws(&a, RECEIPT_TYP, &claims3),
        ],
        Err(("invalid_receipt", 2)),
    );
    let foreign3 = sign_receipt(
        &receipt_claims(3, &receipt_link(&good[1]), "tx_3"),
        &stranger,
    )?;
    case(
        "S + L at index 1 before an unknown kid at index 2 (checked together, in order)",
        None,
        &[good[0].clone(), s_plus_l, foreign3.clone()],
        Err(("invalid_receipt", 1)),
    );
    case(
        "an unknown kid at index 2 before a bad signature at index 1 (keys are looked up first)",
        None,
        &[
            good[0].clone(),
            with_signature(&good[1], |s| s[5] ^= 0x80)?,
            foreign3,
        ],
        Err(("invalid_receipt", 2)),
    );
    let mut before_last = receipt_claims(u64::MAX - 1, &receipt_link(&good[4]), "tx_max_1");
    before_last.iat = MID_2025;
    let before_last = sign_receipt(&before_last, &a)?;
    let mut last = receipt_claims(u64::MAX, &receipt_link(&before_last), "tx_max");
    last.iat = MID_2025;
    let last = sign_receipt(&last, &a)?;
    let mut wrapped = receipt_claims(0, &receipt_link(&last), "tx_0");
    wrapped.iat = MID_2025;
    let wrapped = sign_receipt(&wrapped, &a)?;
    case(
        "the largest sequence number continues a trusted receipt",
        Some(&before_last),
        std::slice::from_ref(&last),
        Ok(1),
    );
    case(
        "sequence 0 after the largest sequence number (no wrap-around)",
        Some(&before_last),
        &[last, wrapped],
        Err(("receipt_chain_broken", 1)),
    );
    let witnessed = witnessed_receipt_vectors(&a, &good, &stranger)?;
    let advance = advance_witness_vectors(&a, &good, &stranger)?;
    Ok(json!({
        "description": "verify_receipt_chain_from(previous, receipts, trustedKeys from `jwks`). Valid chains give `count` receipts; invalid ones the error code and the 0-based `index` of the first bad receipt (for invalid_receipt and receipt_chain_broken). link(r) = base64url(SHA-256(r)) without padding. `witnessed`: verify_receipt_chain_witnessed(receipts, trustedKeys, witness), the whole chain from seq 1 against a receipt the register kept: `count` receipts, or the error code (witness_mismatch, invalid_witness, or the chain's own). `advance`: advances_witness(current, received, trustedKeys): `advances` (keep `received` as the new witness) or the error code.",
        "jwks": Jwks { keys: vec![a.public_jwk()] },
        "cases": cases,
        "witnessed": witnessed,
        "advance": advance,
        "links": [{"receipt": good[0], "link": receipt_link(&good[0])}],
    }))
}

/// A vector case with its expected outcome: `valid` and the value under `key`, or `valid`
/// false and the `error` code.
fn with_outcome(mut c: Value, key: &str, outcome: std::result::Result<Value, &str>) -> Value {
    match outcome {
        Ok(v) => {
            c["valid"] = json!(true);
            c[key] = v;
        }
        Err(code) => {
            c["valid"] = json!(false);
            c["error"] = json!(code);
        }
    }
    c
}

/// Cases of `verify_receipt_chain_witnessed`: the chain `good` (signed by `a`) against
/// receipts a register may hold.
fn witnessed_receipt_vectors(
    a: &SigningKey,
    good: &[String],
    stranger: &SigningKey,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut case =
        |name: &str, receipts: &[String], witness: &str, outcome: Result<usize, &str>| {
            let c = json!({"name": name, "receipts": receipts, "witness": witness});
            out.push(with_outcome(c, "count", outcome.map(|n| json!(n))));
        };
    case("holds the first receipt", good, &good[0], Ok(5));
    case("holds a middle receipt", good, &good[2], Ok(5));
    case("holds the last receipt", good, &good[4], Ok(5));
    case(
        "cut back before the witness",
        &good[..3],
        &good[3],
        Err("witness_mismatch"),
    );
    case("empty chain", &[], &good[0], Err("witness_mismatch"));
    // The same history signed again by the same key with another total: every receipt
    // and the chain verify, but it is not what the register was given.
    let mut rewritten: Vec<String> = Vec::new();
    for seq in 1..=5 {
        let prev = rewritten
            .last()
            .map(|r| receipt_link(r))
            .unwrap_or_default();
        let mut claims = receipt_claims(seq, &prev, &format!("tx_{seq}"));
        claims.total = 1;
        rewritten.push(sign_receipt(&claims, a)?);
    }
    case(
        "rewritten and signed afresh",
        &rewritten,
        &good[2],
        Err("witness_mismatch"),
    );
    case(
        "the chain itself is broken",
        &[good[0].clone(), good[2].clone()],
        &good[0],
        Err("receipt_chain_broken"),
    );
    case(
        "a witness signed by an untrusted key",
        good,
        &chain(stranger, 1)?[0],
        Err("invalid_witness"),
    );
    case(
        "a witness that is not a receipt",
        good,
        "not.a.receipt",
        Err("invalid_witness"),
    );
    let mut theirs = receipt_claims(1, "", "tx_1");
    theirs.sub = "TG-OTHER-0001".into();
    case(
        "the chain is another register's",
        good,
        &sign_receipt(&theirs, a)?,
        Err("witness_mismatch"),
    );
    case(
        "a bad witness before a broken chain",
        &[good[0].clone(), good[2].clone()],
        "not.a.receipt",
        Err("invalid_witness"),
    );
    let forked = sign_receipt(&receipt_claims(3, &receipt_link(&good[1]), "tx_3b"), a)?;
    let mut fork = good[..2].to_vec();
    fork.push(forked.clone());
    fork.push(sign_receipt(
        &receipt_claims(4, &receipt_link(&forked), "tx_4"),
        a,
    )?);
    case(
        "forked at the witness, same prefix",
        &fork,
        &good[2],
        Err("witness_mismatch"),
    );
    Ok(out)
}

/// Cases of `advances_witness`: receipts of `good` (and others) given to a register
/// whose witness is `current`.
fn advance_witness_vectors(
    a: &SigningKey,
    good: &[String],
    stranger: &SigningKey,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut case =
        |name: &str, current: Option<&str>, received: &str, outcome: Result<bool, &str>| {
            let c = json!({"name": name, "current": current, "received": received});
            out.push(with_outcome(c, "advances", outcome.map(|b| json!(b))));
        };
    let forked3 = sign_receipt(&receipt_claims(3, &receipt_link(&good[0]), "tx_3"), a)?;
    let mut other3 = receipt_claims(3, &receipt_link(&good[1]), "tx_3");
    other3.total = 1;
    let other3 = sign_receipt(&other3, a)?;
    let mut theirs = receipt_claims(3, &receipt_link(&good[1]), "tx_3");
    theirs.sub = "TG-OTHER-0001".into();
    case("the first witness", None, &good[0], Ok(true));
    case("the next receipt", Some(&good[1]), &good[2], Ok(true));
    case(
        "a later receipt past a gap",
        Some(&good[0]),
        &good[4],
        Ok(false),
    );
    case("the witness itself", Some(&good[2]), &good[2], Ok(false));
    case("an earlier receipt", Some(&good[3]), &good[1], Ok(false));
    case(
        "another receipt at the witness's sequence",
        Some(&good[2]),
        &other3,
        Err("witness_mismatch"),
    );
    case(
        "the next receipt does not link to the witness",
        Some(&good[1]),
        &forked3,
        Err("witness_mismatch"),
    );
    case(
        "the receipt the witness links to",
        Some(&good[2]),
        &good[1],
        Ok(false),
    );
    let mut other2 = receipt_claims(2, &receipt_link(&good[0]), "tx_2");
    other2.total = 1;
    case(
        "another receipt at the sequence before the witness's",
        Some(&good[2]),
        &sign_receipt(&other2, a)?,
        Err("witness_mismatch"),
    );
    case(
        "signed by an untrusted key",
        Some(&good[0]),
        &chain(stranger, 2)?[1],
        Err("invalid_receipt"),
    );
    case(
        "another register's receipt",
        Some(&good[1]),
        &sign_receipt(&theirs, a)?,
        Err("receipt_chain_broken"),
    );
    case(
        "the kept witness is not a receipt",
        Some("not.a.receipt"),
        &good[0],
        Err("invalid_witness"),
    );
    Ok(out)
}

fn dynamic_key_vectors() -> Result<Value> {
    let cheap = DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let system = "1,2,3,4";
    let params_json = |p: DynamicKeyParams| json!({"memoryKib": p.memory_kib, "iterations": p.iterations, "parallelism": p.parallelism});
    let refused = vec![
        json!({"name": "empty login", "system": system, "login": "", "password": "pw", "params": params_json(cheap), "error": "invalid_login"}),
        json!({"name": "login of 65 bytes", "system": system, "login": "x".repeat(65), "password": "pw", "params": params_json(cheap), "error": "invalid_login"}),
        json!({"name": "control character in login", "system": system, "login": "an\nna", "password": "pw", "params": params_json(cheap), "error": "invalid_login"}),
        json!({"name": "empty password", "system": system, "login": "anna", "password": "", "params": params_json(cheap), "error": "invalid_login"}),
        json!({"name": "memory below 8 KiB per lane", "system": system, "login": "anna", "password": "pw", "params": {"memoryKib": 4, "iterations": 1, "parallelism": 1}, "error": "invalid_login"}),
        json!({"name": "zero iterations", "system": system, "login": "anna", "password": "pw", "params": {"memoryKib": 64, "iterations": 0, "parallelism": 1}, "error": "invalid_login"}),
        json!({"name": "memory above 1 GiB", "system": system, "login": "anna", "password": "pw", "params": {"memoryKib": DYNAMIC_KEY_MAX_MEMORY_KIB + 1, "iterations": 1, "parallelism": 1}, "error": "invalid_login"}),
        json!({"name": "memory 4 TiB (u32 max)", "system": system, "login": "anna", "password": "pw", "params": {"memoryKib": u32::MAX, "iterations": 1, "parallelism": 1}, "error": "invalid_login"}),
        json!({"name": "iterations above 64", "system": system, "login": "anna", "password": "pw", "params": {"memoryKib": 64, "iterations": DYNAMIC_KEY_MAX_ITERATIONS + 1, "parallelism": 1}, "error": "invalid_login"}),
        json!({"name": "17 lanes", "system": system, "login": "anna", "password": "pw", "params": {"memoryKib": 8 * 17, "iterations": 1, "parallelism": DYNAMIC_KEY_MAX_PARALLELISM + 1}, "error": "invalid_login"}),
    ];
    let mut derive = Vec::new();
    for (login, password, params) in [
        ("anna", "correct horse battery staple", cheap),
        ("bert.berg@example.com", "Lösenord 123", cheap),
        (
            "anna",
            "correct horse battery staple",
            DynamicKeyParams::default(),
        ),
    ] {
        let pair = derive_dynamic_key_pair(system, login, password, params)?;
        derive.push(json!({
            "system": system, "login": login, "password": password, "params": params_json(params),
            "seed": hex(&pair.seed()), "publicKey": hex(&pair.public_key()),
        }));
    }
    let anna = derive_dynamic_key_pair(system, "anna", "correct horse battery staple", cheap)?;
    let bert = derive_dynamic_key_pair(system, "bert.berg@example.com", "Lösenord 123", cheap)?;
    let now = 1_751_328_000;
    let nonce = [0x5A; 16];
    let key = create_dynamic_api_key_with_nonce(&anna, now, &nonce)?;
    let k = key.expose().to_string();
    let bert_key = create_dynamic_api_key_with_nonce(&bert, now, &[0x11; 16])?
        .expose()
        .to_string();
    let create = vec![
        json!({"system": system, "login": "anna", "seed": hex(&anna.seed()), "now": now, "nonce": hex(&nonce), "key": k}),
    ];

    let mut verify = Vec::new();
    let mut case = |name: &str,
                    key: &str,
                    pk: &[u8; 32],
                    sys: &str,
                    at: i64,
                    outcome: Result<&str, &str>| {
        let mut c = json!({"name": name, "key": key, "publicKey": hex(pk), "system": sys, "now": at, "windowSecs": 300});
        match outcome {
            Ok(login) => {
                c["valid"] = json!(true);
                c["expected"] = json!({"login": login, "issuedAt": now, "nonce": hex(&nonce)});
            }
            Err(code) => {
                c["valid"] = json!(false);
                c["error"] = json!(code);
            }
        }
        verify.push(c);
    };
    case("fresh", &k, &anna.public_key(), system, now, Ok("anna"));
    case(
        "300 s later, edge of the window",
        &k,
        &anna.public_key(),
        system,
        now + 300,
        Ok("anna"),
    );
    case(
        "300 s early, edge of the window",
        &k,
        &anna.public_key(),
        system,
        now - 300,
        Ok("anna"),
    );
    case(
        "301 s later",
        &k,
        &anna.public_key(),
        system,
        now + 301,
        Err("dynamic_key_stale"),
    );
    case(
        "other system",
        &k,
        &anna.public_key(),
        "9",
        now,
        Err("bad_signature"),
    );
    case(
        "another login's public key",
        &k,
        &bert.public_key(),
        system,
        now,
        Err("bad_signature"),
    );
    let swapped = k.replacen(&B64.encode("anna"), &B64.encode("bert"), 1);
    case(
        "login swapped",
        &swapped,
        &anna.public_key(),
        system,
        now,
        Err("bad_signature"),
    );
    let later = k.replacen(&format!(".{now}."), &format!(".{}.", now + 600), 1);
    case(
        "timestamp moved forward",
        &later,
        &anna.public_key(),
        system,
        now + 600,
        Err("bad_signature"),
    );
    case(
        "leading zero in time",
        &k.replacen(&format!(".{now}."), &format!(".0{now}."), 1),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    case(
        "wrong version tag",
        &k.replacen("DK1.", "DK2.", 1),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    case(
        "missing part",
        k.rsplit_once('.').map(|x| x.0).unwrap_or_default(),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    case(
        "short nonce",
        &k.replacen(&B64.encode(nonce), &B64.encode([0x5A; 15]), 1),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    let (unsigned, sig64) = k.rsplit_once('.').unwrap_or_default();
    let (head, nonce64) = unsigned.rsplit_once('.').unwrap_or_default();
    case(
        "unused bits set in the nonce's last character",
        &format!("{head}.{}.{sig64}", lenient_twin(nonce64)?),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    case(
        "unused bits set in the signature's last character",
        &format!("{unsigned}.{}", lenient_twin(sig64)?),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    if !sig64.contains('-') {
        return Err(Error::MalformedDynamicKey {
            reason: "the vector signature has no '-' to swap".into(),
        });
    }
    case(
        "+ for - in the signature (the standard base64 alphabet)",
        &format!("{unsigned}.{}", sig64.replacen('-', "+", 1)),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    case(
        "a trailing line break",
        &format!("{k}\n"),
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    case(
        "plain API key",
        "Abcdefghij0123456789",
        &anna.public_key(),
        system,
        now,
        Err("malformed_dynamic_key"),
    );
    let mut c = json!({"name": "bert, e-mail login", "key": bert_key, "publicKey": hex(&bert.public_key()), "system": system, "now": now, "windowSecs": 300, "valid": true});
    c["expected"] =
        json!({"login": "bert.berg@example.com", "issuedAt": now, "nonce": hex(&[0x11; 16])});
    verify.push(c);
    Ok(json!({
        "description": "Dynamic API keys. derive: derive_dynamic_key_pair(system, login, password, params) gives seed and publicKey (hex); deriveRefused: the error code it gives. create: create_dynamic_api_key_with_nonce(pair from seed, now, nonce) gives key. verify: verify_dynamic_api_key(key, publicKey, system, now, windowSecs).",
        "derive": derive,
        "deriveRefused": refused,
        "create": create,
        "verify": verify,
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("vectors") {
        eprintln!("usage: cargo run -p xtask -- vectors [--check]");
        return ExitCode::from(2);
    }
    let check = args.iter().any(|a| a == "--check");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    type Generator = fn() -> Result<Value>;
    let files: [(&str, Generator); 4] = [
        ("server_time.json", server_time_vectors),
        ("descriptor.json", descriptor_vectors),
        ("receipt.json", receipt_vectors),
        ("dynamic_key.json", dynamic_key_vectors),
    ];
    let mut drift = false;
    for (name, make) in files {
        let value = match make() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
        let path = dir.join(name);
        if check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != text {
                eprintln!(
                    "{name}: differs from what the code generates; run `cargo run -p xtask -- vectors`"
                );
                drift = true;
            } else {
                println!("{name}: up to date");
            }
        } else if let Err(e) = std::fs::write(&path, text) {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    if drift {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
