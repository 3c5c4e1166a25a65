//! Signing keys (server side) and trusted public keys (app side), as JWKs.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
#[cfg(feature = "sign")]
use ed25519_dalek::Signer as _;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ed25519::{TrustedKey, parse_public_key};
use crate::{Error, Result};

/// An Ed25519 signing key with its key id (`kid`).
///
/// The `kid` is the RFC 7638 JWK thumbprint of the public key, so it is stable and
/// anyone can recompute it. `Debug` shows the `kid` only, never the secret.
///
/// ```
/// use tillgate_core::generate_signing_key;
/// let key = generate_signing_key().unwrap();
/// assert_eq!(key.kid().len(), 43);
/// assert!(!format!("{key:?}").contains(&format!("{:?}", key.seed())));
/// ```
#[cfg(feature = "sign")]
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    kid: String,
}

/// Generates a new random signing key (32 bytes from the platform's secure RNG).
#[cfg(feature = "sign")]
pub fn generate_signing_key() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Random {
        reason: e.to_string(),
    })?;
    Ok(SigningKey::from_seed(&seed))
}

#[cfg(feature = "sign")]
impl SigningKey {
    /// Builds a signing key from its 32-byte seed (the RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let inner = ed25519_dalek::SigningKey::from_bytes(seed);
        let kid = jwk_thumbprint(inner.verifying_key().as_bytes());
        SigningKey { inner, kid }
    }

    /// Builds a signing key from a seed given as a byte slice (must be 32 bytes).
    pub fn from_seed_slice(seed: &[u8]) -> Result<Self> {
        let arr: &[u8; 32] = seed.try_into().map_err(|_| Error::InvalidSigningKey {
            reason: format!("seed must be 32 bytes, got {}", seed.len()),
        })?;
        Ok(Self::from_seed(arr))
    }

    /// The 32-byte seed. Keep it secret.
    pub fn seed(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    /// The key id: the RFC 7638 thumbprint of the public key, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32-byte public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.inner.verifying_key().to_bytes()
    }

    /// The public key as a JWK (`kty` OKP, `crv` Ed25519, with `kid`, `alg`, `use`).
    pub fn public_jwk(&self) -> Jwk {
        Jwk::from_public_key(&self.public_key_bytes(), Some(self.kid.clone()))
    }

    /// Signs raw bytes (a plain Ed25519 signature, 64 bytes).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }
}

#[cfg(feature = "sign")]
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: base64url(SHA-256(`{"crv":"Ed25519","kty":"OKP","x":"…"}`)).
pub fn jwk_thumbprint(public_key: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        B64.encode(public_key)
    );
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// One JSON Web Key (RFC 7517 / RFC 8037), as published in a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Jwk {
    /// Key type; `OKP` for Ed25519.
    pub kty: String,
    /// Curve; `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// The public key, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use (`sig`).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// A private part, refused when loading trusted keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
}

impl Jwk {
    /// The public JWK of a 32-byte Ed25519 key.
    pub fn from_public_key(public_key: &[u8; 32], kid: Option<String>) -> Self {
        Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(B64.encode(public_key)),
            kid,
            alg: Some("Ed25519".into()),
            use_: Some("sig".into()),
            d: None,
        }
    }
}

/// A JWK Set (`{"keys": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(remote = "Self")]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// The public keys an app trusts, by `kid`. Built into the app; used offline.
///
/// Keep one set for as long as the app runs: with the `fast` feature (on by default), a
/// key that has verified 16 signatures builds a 30 KB table of its multiples, after
/// which it verifies in about 0.7x the time (a clone keeps the table).
///
/// ```
/// use tillgate_core::{SigningKey, TrustedKeys, Jwks};
/// let key = SigningKey::from_seed(&[1; 32]);
/// let jwks = Jwks { keys: vec![key.public_jwk()] };
/// let trusted = TrustedKeys::from_jwks_json(&serde_json::to_string(&jwks).unwrap()).unwrap();
/// assert!(trusted.contains(key.kid()));
/// ```
#[derive(Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, TrustedKey>,
}

impl TrustedKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a JWKS document (`{"keys":[...]}`). Every key must be an Ed25519 OKP
    /// public key with a `kid`; private keys (`d`) and other key types are refused, so a
    /// misconfigured set is noticed rather than silently ignored.
    pub fn from_jwks_json(json: &str) -> Result<Self> {
        // Read as bytes like every other JSON core reads (JWS headers and claims): the same
        // result for the same text, and one copy of serde_json's parser in a wasm build.
        let jwks: Jwks =
            serde_json::from_slice(json.as_bytes()).map_err(|e| Error::InvalidJwk {
                reason: format!("not a JWKS document: {e}"),
            })?;
        Self::from_jwks(&jwks)
    }

    /// Loads a parsed JWKS; see [`TrustedKeys::from_jwks_json`].
    pub fn from_jwks(jwks: &Jwks) -> Result<Self> {
        let mut set = Self::new();
        for jwk in &jwks.keys {
            set.add_jwk(jwk)?;
        }
        Ok(set)
    }

    /// Adds one JWK.
    pub fn add_jwk(&mut self, jwk: &Jwk) -> Result<()> {
        let bad = |reason: &str| Error::InvalidJwk {
            reason: reason.to_owned(),
        };
        if jwk.kty != "OKP" {
            return Err(bad("kty must be OKP"));
        }
        if jwk.crv.as_deref() != Some("Ed25519") {
            return Err(bad("crv must be Ed25519"));
        }
        if jwk.d.is_some() {
            return Err(bad("a trusted key must not contain a private part (d)"));
        }
        if let Some(alg) = &jwk.alg
            && alg != "Ed25519"
            && alg != "EdDSA"
        {
            return Err(bad("alg must be Ed25519 or EdDSA"));
        }
        let kid = jwk.kid.clone().ok_or_else(|| bad("kid is required"))?;
        let x = jwk.x.as_deref().ok_or_else(|| bad("x is required"))?;
        let bytes = B64.decode(x).map_err(|_| bad("x is not base64url"))?;
        let key = parse_public_key(&bytes).map_err(|e| Error::InvalidJwk {
            reason: format!("x: {e}"),
        })?;
        self.insert(kid, key)
    }

    /// Adds a raw 32-byte public key under `kid`. As with [`add_jwk`](Self::add_jwk), a
    /// different key under a `kid` already trusted is refused (`invalid_jwk`); adding the
    /// same key again changes nothing.
    pub fn add_raw(&mut self, kid: &str, public_key: &[u8]) -> Result<()> {
        let key = parse_public_key(public_key)?;
        self.insert(kid.to_owned(), key)
    }

    /// Adds a raw 32-byte public key under its RFC 7638 thumbprint, which is the `kid`
    /// the Tillgate server uses. Returns that `kid`.
    pub fn add_raw_with_thumbprint(&mut self, public_key: &[u8]) -> Result<String> {
        let key = parse_public_key(public_key)?;
        let kid = jwk_thumbprint(key.as_bytes());
        self.insert(kid.clone(), key)?;
        Ok(kid)
    }

    /// Trusts `key` under `kid`: one key per `kid`, so that which key verifies a token
    /// never depends on the order keys were added. The same key added again keeps its
    /// entry (and its use count and table).
    fn insert(&mut self, kid: String, key: VerifyingKey) -> Result<()> {
        match self.keys.get(&kid) {
            Some(k) if k.key == key => Ok(()),
            Some(_) => Err(Error::InvalidJwk {
                reason: format!("two different keys share kid {kid:?}"),
            }),
            None => {
                self.keys.insert(kid, TrustedKey::new(key));
                Ok(())
            }
        }
    }

    /// Whether a key with this `kid` is trusted.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the key `kid` verifies through its precomputed table yet (built after
    /// 16 verifications with this very set, on `fast` builds; never otherwise). For tests
    /// of code that keeps a set, such as the bindings; not part of the API.
    #[doc(hidden)]
    pub fn uses_table(&self, kid: &str) -> bool {
        self.keys.get(kid).is_some_and(TrustedKey::has_table)
    }

    pub(crate) fn get(&self, kid: &str) -> Result<&TrustedKey> {
        self.keys.get(kid).ok_or_else(|| Error::UnknownKeyId {
            kid: kid.to_owned(),
        })
    }
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

// Read from JSON objects only (see `crate::object`).
crate::object::objects_only!(Jwk, Jwks);

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sign")]
    #[test]
    fn one_key_per_kid_however_keys_are_added() {
        let a = SigningKey::from_seed(&[1; 32]).public_key_bytes();
        let b = SigningKey::from_seed(&[2; 32]).public_key_bytes();
        let mut keys = TrustedKeys::new();
        keys.add_raw("k", &a).unwrap();
        // The same key again: nothing changes.
        keys.add_raw("k", &a).unwrap();
        // Another key under that kid is refused, raw or as a JWK; the first one stays.
        assert_eq!(keys.add_raw("k", &b).unwrap_err().code(), "invalid_jwk");
        let mut jwk = SigningKey::from_seed(&[2; 32]).public_jwk();
        jwk.kid = Some("k".into());
        assert_eq!(keys.add_jwk(&jwk).unwrap_err().code(), "invalid_jwk");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.get("k").unwrap().key.as_bytes(), &a);
        // Under its thumbprint a key is added once whatever the number of calls.
        let kid = keys.add_raw_with_thumbprint(&b).unwrap();
        assert_eq!(keys.add_raw_with_thumbprint(&b).unwrap(), kid);
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        // RFC 8037, appendix A.3: thumbprint of the example Ed25519 key.
        let x = B64
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let x: [u8; 32] = x.try_into().unwrap();
        assert_eq!(
            jwk_thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn jwks_refuses_private_and_foreign_keys() {
        let key = SigningKey::from_seed(&[3; 32]);
        let mut jwk = key.public_jwk();
        jwk.d = Some("AAAA".into());
        assert_eq!(
            TrustedKeys::from_jwks(&Jwks { keys: vec![jwk] })
                .unwrap_err()
                .code(),
            "invalid_jwk"
        );
        let rsa = r#"{"keys":[{"kty":"RSA","kid":"a","n":"x","e":"AQAB"}]}"#;
        assert_eq!(
            TrustedKeys::from_jwks_json(rsa).unwrap_err().code(),
            "invalid_jwk"
        );
    }

    /// The set itself counts its verifications: a key's table is built at its 16th, a
    /// clone made after that keeps it, and the answers do not change.
    #[test]
    fn a_set_builds_its_table_at_the_sixteenth_verification() {
        let key = SigningKey::from_seed(&[5; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        let claims = crate::ServerTimeClaims {
            iss: "https://pos.example".into(),
            sub: "TG-7Q2M-K4PX".into(),
            iat: 1_751_328_000,
            nonce: None,
        };
        let jws = crate::sign_server_time(&claims, &key).unwrap();
        let mut forged = jws.clone();
        forged.replace_range(forged.len() - 2.., "AA");
        assert!(!trusted.uses_table("nope"));
        for n in 1..=20u32 {
            assert_eq!(
                crate::verify_server_time(&jws, &trusted, None).unwrap(),
                claims
            );
            assert!(crate::verify_server_time(&forged, &trusted, None).is_err());
            assert_eq!(
                trusted.uses_table(key.kid()),
                cfg!(feature = "fast") && n * 2 >= 16,
                "after {n}"
            );
        }
        assert_eq!(
            trusted.clone().uses_table(key.kid()),
            cfg!(feature = "fast")
        );
    }

    #[test]
    fn debug_never_shows_the_seed() {
        let key = SigningKey::from_seed(&[9; 32]);
        let dbg = format!("{key:?}");
        assert!(dbg.contains(key.kid()));
        assert!(!dbg.contains("9, 9"));
    }
}
