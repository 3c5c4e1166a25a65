//! Core benchmarks, each beside the baseline it is judged against:
//! - descriptor verification vs a bare `verify_strict` of the same bytes (goal ≤ 1.10×);
//! - a 1,000-receipt chain vs 1,000 single `verify_strict` calls (goal ≥ 1.8× faster);
//! - URL-token parse of the seed path vs a plain `str::split` (goal ≤ 3×, < 300 ns);
//! - API-key validation of 40 characters (goal < 100 ns).

#![allow(missing_docs)] // criterion_group! generates undocumented public functions.

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signature, VerifyingKey};
use tillgate_core::*;

fn descriptor() -> ActivationDescriptor {
    ActivationDescriptor {
        iss: "https://tillgate.example".into(),
        sub: "TG-7Q2M-K4PX".into(),
        iat: 1_735_686_000,
        nbf: 1_735_689_600,
        exp: 1_767_225_600,
        ver: 1,
        activation_id: "act_01HZX4".into(),
        cash_register_name: "Kassa 1".into(),
        device_id: "a1b2c3d4e5f60718".into(),
        corporate_id: "556036-0793".into(),
        country: "SE".into(),
        application_package: "com.example.pos".into(),
        features: vec!["sales".into(), "refunds".into()],
        status: "approved".into(),
        extras: serde_json::json!({"shop": 7, "lane": "A"}),
    }
}

/// Splits a compact JWS into (signing input, signature) the way a bare verifier would.
fn split(jws: &str) -> (Vec<u8>, Signature) {
    let dot = jws.rfind('.').unwrap_or(0);
    let sig: [u8; 64] = B64
        .decode(&jws[dot + 1..])
        .ok()
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; 64]);
    (jws.as_bytes()[..dot].to_vec(), Signature::from_bytes(&sig))
}

fn bench_descriptor(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[0xA1; 32]);
    let jws = sign_descriptor(&descriptor(), &key).unwrap_or_default();
    let mut trusted = TrustedKeys::new();
    trusted.add_jwk(&key.public_jwk()).unwrap_or_default();
    let vk = VerifyingKey::from_bytes(&key.public_key_bytes()).unwrap_or_else(|_| unreachable!());
    let (msg, sig) = split(&jws);
    let opts = VerifyOptions::default();
    let mut g = c.benchmark_group("descriptor_verify");
    g.bench_function("baseline_verify_strict", |b| {
        b.iter(|| vk.verify_strict(black_box(&msg), black_box(&sig)).is_ok())
    });
    g.bench_function("verify_descriptor", |b| {
        b.iter(|| verify_descriptor(black_box(&jws), &trusted, 1_751_328_000, &opts).is_ok())
    });
    g.finish();
}

fn bench_receipts(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[0xA1; 32]);
    let mut trusted = TrustedKeys::new();
    trusted.add_jwk(&key.public_jwk()).unwrap_or_default();
    let mut chain: Vec<String> = Vec::new();
    for seq in 1..=1000u64 {
        let prev = chain.last().map(|r| receipt_link(r)).unwrap_or_default();
        let claims = ReceiptClaims {
            iss: "https://tillgate.example".into(),
            sub: "TG-7Q2M-K4PX".into(),
            iat: 1_751_328_000 + seq as i64,
            seq,
            txid: format!("tx_{seq}"),
            txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
            prev,
            tx_type: "sale".into(),
            total: 12500,
            currency: "SEK".into(),
        };
        chain.push(sign_receipt(&claims, &key).unwrap_or_default());
    }
    assert_eq!(
        verify_receipt_chain(&chain, &trusted)
            .map(|c| c.len())
            .unwrap_or(0),
        1000
    );
    let vk = VerifyingKey::from_bytes(&key.public_key_bytes()).unwrap_or_else(|_| unreachable!());
    let split: Vec<(Vec<u8>, Signature)> = chain.iter().map(|r| split(r)).collect();
    let mut g = c.benchmark_group("receipt_chain_1000");
    g.sample_size(10);
    g.bench_function("baseline_verify_strict_each", |b| {
        b.iter(|| split.iter().all(|(m, s)| vk.verify_strict(m, s).is_ok()))
    });
    g.bench_function("verify_receipt_chain", |b| {
        b.iter(|| verify_receipt_chain(black_box(&chain), &trusted).is_ok())
    });
    g.finish();
}

fn bench_url_token(c: &mut Criterion) {
    let path = "/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products";
    let mut g = c.benchmark_group("url_token_parse");
    g.bench_function("baseline_str_split", |b| {
        b.iter(|| {
            let p = black_box(path);
            let seg = p[1..].split('/').next().unwrap_or("");
            seg.split('$').count()
        })
    });
    g.bench_function("parse_url_token", |b| {
        b.iter(|| parse_url_token(black_box(path)).is_ok())
    });
    g.finish();
}

fn bench_api_key(c: &mut Criterion) {
    let key = "K7x!Qp2@Lm9#Vb4$Nc6%Zt8^Wr1&Ys3*Hd5(Fg0)";
    c.bench_function("validate_api_key_40", |b| {
        b.iter(|| validate_api_key(black_box(key)).is_ok())
    });
}

criterion_group!(
    benches,
    bench_descriptor,
    bench_receipts,
    bench_url_token,
    bench_api_key
);
criterion_main!(benches);
