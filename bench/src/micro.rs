//! In-process micro benchmarks: core against bare `verify_strict` / `str::split`, and the
//! FFI crate's `verify_descriptor` called from Rust (the reference for the Kotlin row).
//!
//! Each pair is measured in alternating rounds (ours, baseline, ours, ...) and each side
//! reports the median of its rounds, so drift on a shared machine hits both alike.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use tillgate_core::{
    ActivationDescriptor, ReceiptClaims, SigningKey, TrustedKeys, UrlTokenRef, VerifyOptions,
    parse_url_token, receipt_link, sign_descriptor, sign_receipt, verify_descriptor,
    verify_receipt_chain,
};

/// The moment every descriptor check is judged at (inside the descriptor's validity).
pub const NOW: i64 = 1_751_328_000;

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    /// Alternating rounds per side.
    pub rounds: usize,
    /// Minimum time of one round.
    pub round_time: Duration,
    /// Receipts in the chain (1,000 in a real run; fewer in quick mode, where debug
    /// builds would spend most of the run on it).
    pub chain_len: u64,
}

/// Median nanoseconds per operation of ours and of the baseline.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// Ours, ns/op.
    pub ours_ns: f64,
    /// Baseline, ns/op.
    pub base_ns: f64,
}

/// The descriptor every benchmark verifies (the same as `core/benches/core.rs`).
pub fn descriptor() -> ActivationDescriptor {
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

/// Signing input, signature and public key of a JWS.
pub type Bare = (Vec<u8>, [u8; 64], [u8; 32]);

/// A signed descriptor and everything needed to verify it, for every runtime.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The signing key.
    pub key: SigningKey,
    /// The compact JWS.
    pub jws: String,
    /// `{"keys":[<the public JWK>]}`.
    pub jwks_json: String,
}

impl Fixture {
    /// Builds the fixture from a fixed seed.
    pub fn new() -> Result<Fixture, String> {
        let key = SigningKey::from_seed(&[0xA1; 32]);
        let jws = sign_descriptor(&descriptor(), &key).map_err(|e| e.to_string())?;
        let jwks_json = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
        Ok(Fixture {
            key,
            jws,
            jwks_json,
        })
    }

    /// What a bare verifier needs: signing input, signature, public key.
    pub fn bare(&self) -> Result<Bare, String> {
        split(&self.jws).map(|(m, s)| (m, s, self.key.public_key_bytes()))
    }

    /// JSON handed to the node and Kotlin benchmarks.
    pub fn to_json(&self) -> Result<String, String> {
        let (msg, sig, pk) = self.bare()?;
        Ok(serde_json::json!({
            "jws": self.jws,
            "jwksJson": self.jwks_json,
            "now": NOW,
            "messageB64": B64.encode(msg),
            "signatureB64": B64.encode(sig),
            "publicKeyB64": B64.encode(pk),
        })
        .to_string())
    }
}

/// Splits a compact JWS into (signing input, signature) the way a bare verifier would.
fn split(jws: &str) -> Result<(Vec<u8>, [u8; 64]), String> {
    let dot = jws.rfind('.').ok_or("JWS without a dot")?;
    let sig: [u8; 64] = B64
        .decode(&jws[dot + 1..])
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "signature is not 64 bytes".to_owned())?;
    Ok((jws.as_bytes()[..dot].to_vec(), sig))
}

/// ns/op of `f`, run in batches until `min` has passed.
fn ns_per_op(f: &mut dyn FnMut() -> bool, min: Duration) -> f64 {
    let mut batch = 1u64;
    let mut ops = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..batch {
            black_box(f());
        }
        ops += batch;
        let el = start.elapsed();
        if el >= min || ops >= 50_000_000 {
            return el.as_nanos() as f64 / ops as f64;
        }
        batch = (batch * 2).min(1 << 20);
    }
}

/// The median (the upper one of an even count); NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Alternating rounds of `ours` and `base`; medians of each.
pub fn compare(
    effort: Effort,
    ours: &mut dyn FnMut() -> bool,
    base: &mut dyn FnMut() -> bool,
) -> Pair {
    // Warm both up (caches, branch predictors, lazy statics); not in quick mode.
    if effort.rounds > 1 {
        ns_per_op(ours, effort.round_time / 4);
        ns_per_op(base, effort.round_time / 4);
    }
    let (mut o, mut b) = (Vec::new(), Vec::new());
    for r in 0..effort.rounds {
        if r % 2 == 0 {
            o.push(ns_per_op(ours, effort.round_time));
            b.push(ns_per_op(base, effort.round_time));
        } else {
            b.push(ns_per_op(base, effort.round_time));
            o.push(ns_per_op(ours, effort.round_time));
        }
    }
    Pair {
        ours_ns: median(o),
        base_ns: median(b),
    }
}

/// `verify_descriptor` vs bare `verify_strict` on the same bytes.
pub fn descriptor_verify(effort: Effort, fx: &Fixture) -> Result<Pair, String> {
    let mut trusted = TrustedKeys::new();
    trusted
        .add_jwk(&fx.key.public_jwk())
        .map_err(|e| e.to_string())?;
    let (msg, sig, pk) = fx.bare()?;
    let vk = VerifyingKey::from_bytes(&pk).map_err(|e| e.to_string())?;
    let sig = Signature::from_bytes(&sig);
    let opts = VerifyOptions::default();
    if verify_descriptor(&fx.jws, &trusted, NOW, &opts).is_err()
        || vk.verify_strict(&msg, &sig).is_err()
    {
        return Err("descriptor fixture does not verify".into());
    }
    Ok(compare(
        effort,
        &mut || verify_descriptor(black_box(&fx.jws), &trusted, NOW, &opts).is_ok(),
        &mut || vk.verify_strict(black_box(&msg), black_box(&sig)).is_ok(),
    ))
}

/// Core's chain verifier on 1,000 receipts vs 1,000 single `verify_strict` calls.
pub fn receipt_chain(effort: Effort, fx: &Fixture) -> Result<Pair, String> {
    let key = &fx.key;
    let mut trusted = TrustedKeys::new();
    trusted
        .add_jwk(&key.public_jwk())
        .map_err(|e| e.to_string())?;
    let n = effort.chain_len;
    let mut chain: Vec<String> = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        let prev = chain.last().map(|r| receipt_link(r)).unwrap_or_default();
        let claims = ReceiptClaims {
            iss: "https://tillgate.example".into(),
            sub: "TG-7Q2M-K4PX".into(),
            iat: NOW + seq as i64,
            seq,
            txid: format!("tx_{seq}"),
            txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
            prev,
            tx_type: "sale".into(),
            total: 12500,
            currency: "SEK".into(),
        };
        chain.push(sign_receipt(&claims, key).map_err(|e| e.to_string())?);
    }
    match verify_receipt_chain(&chain, &trusted) {
        Ok(v) if v.len() as u64 == n => {}
        _ => return Err("receipt chain fixture does not verify".into()),
    }
    let vk = VerifyingKey::from_bytes(&key.public_key_bytes()).map_err(|e| e.to_string())?;
    let split: Vec<(Vec<u8>, Signature)> = chain
        .iter()
        .map(|r| split(r).map(|(m, s)| (m, Signature::from_bytes(&s))))
        .collect::<Result<_, _>>()?;
    Ok(compare(
        effort,
        &mut || verify_receipt_chain(black_box(&chain), &trusted).is_ok(),
        &mut || split.iter().all(|(m, s)| vk.verify_strict(m, s).is_ok()),
    ))
}

/// Parsing the seed path vs a plain `str::split` of it: `UrlTokenRef::parse` (the
/// borrowing parse the server runs per request) or, with `owned`, `parse_url_token`
/// (which also copies the token, the RmSystem ids and the rest of the path out).
pub fn url_token(effort: Effort, owned: bool) -> Result<Pair, String> {
    let path = "/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products";
    if parse_url_token(path).is_err() {
        return Err("seed path does not parse".into());
    }
    let mut ours: Box<dyn FnMut() -> bool> = if owned {
        Box::new(|| parse_url_token(black_box(path)).is_ok())
    } else {
        Box::new(|| UrlTokenRef::parse(black_box(path)).is_ok())
    };
    Ok(compare(effort, &mut *ours, &mut || {
        let p = black_box(path);
        let seg = p[1..].split('/').next().unwrap_or("");
        seg.split('$').count() > 0
    }))
}

/// The FFI crate's `verify_descriptor`, called from Rust exactly as the Kotlin binding
/// calls it (owned `String`, `Arc<TrustedKeys>`, options record). Median ns/call.
pub fn ffi_verify_in_rust(effort: Effort, fx: &Fixture) -> Result<f64, String> {
    let keys = tillgate_ffi::TrustedKeys::from_jwks_json(fx.jwks_json.clone())
        .map_err(|e| e.to_string())?;
    let opts = tillgate_ffi::VerifyOptions::default();
    let call = |keys: &Arc<tillgate_ffi::TrustedKeys>| {
        tillgate_ffi::verify_descriptor(black_box(fx.jws.clone()), keys.clone(), NOW, opts.clone())
            .is_ok()
    };
    if !call(&keys) {
        return Err("the FFI crate does not verify the fixture".into());
    }
    let mut f = || call(&keys);
    ns_per_op(&mut f, effort.round_time / 4);
    let rounds = (0..effort.rounds)
        .map(|_| ns_per_op(&mut f, effort.round_time))
        .collect();
    Ok(median(rounds))
}

/// The FFI crate's `validate_api_key` called from Rust (a trivial call). Median ns/call.
pub fn ffi_trivial_in_rust(effort: Effort) -> f64 {
    let key = "K7x!Qp2@Lm9#Vb4$Nc6%Zt8^Wr1&Ys3*Hd5(Fg0)";
    let mut f = || tillgate_ffi::validate_api_key(black_box(key.to_owned())).is_ok();
    ns_per_op(&mut f, effort.round_time / 4);
    median(
        (0..effort.rounds)
            .map(|_| ns_per_op(&mut f, effort.round_time))
            .collect(),
    )
}
