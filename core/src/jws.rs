//! Compact JWS (RFC 7515) with Ed25519, shared by descriptors and receipts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::Signature;
use serde::Deserialize;
#[cfg(feature = "sign")]
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ed25519::parse_signature;
#[cfg(feature = "sign")]
use crate::keys::SigningKey;
use crate::keys::TrustedKeys;
use crate::{Error, Result};

/// The algorithm name written by Tillgate (RFC 9864).
pub const ALG_ED25519: &str = "Ed25519";
/// The older, still accepted, name (RFC 8037).
pub const ALG_EDDSA: &str = "EdDSA";
/// Largest compact JWS accepted, in bytes; larger input is refused before decoding.
pub const MAX_JWS_LEN: usize = 16 * 1024;

/// The header as written: members in a fixed order, whatever serde_json features are on.
#[cfg(feature = "sign")]
#[derive(Serialize)]
struct OutHeader<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A compact JWS split and decoded, signature not yet checked.
pub(crate) struct ParsedJws<'a, C> {
    pub kid: String,
    pub signing_input: &'a [u8],
    pub signature: Signature,
    pub claims: C,
}

/// Signs `claims` as a compact JWS: header `{"alg":"Ed25519","typ":typ,"kid":kid}`.
#[cfg(feature = "sign")]
pub(crate) fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String> {
    let header = serde_json::to_vec(&OutHeader {
        alg: ALG_ED25519,
        kid: key.kid(),
        typ,
    })
    .map_err(|e| Error::malformed_jws(e.to_string()))?;
    let claims = serde_json::to_vec(claims).map_err(|e| Error::malformed_jws(e.to_string()))?;
    let mut out = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 100);
    B64.encode_string(&header, &mut out);
    out.push('.');
    B64.encode_string(&claims, &mut out);
    let sig = key.sign_raw(out.as_bytes());
    out.push('.');
    B64.encode_string(sig, &mut out);
    Ok(out)
}

/// Splits, decodes and checks the header of a compact JWS; does not verify the signature.
pub(crate) fn parse<'a, C: DeserializeOwned>(jws: &'a str, typ: &str) -> Result<ParsedJws<'a, C>> {
    if jws.len() > MAX_JWS_LEN {
        return Err(Error::malformed_jws("longer than 16 KiB"));
    }
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::malformed_jws("expected three dot-separated parts"));
    };
    let header_bytes = B64
        .decode(h)
        .map_err(|_| Error::malformed_jws("header is not base64url"))?;
    // serde would also read a struct from a JSON array; only objects are JWS headers.
    if !is_json_object(&header_bytes) {
        return Err(Error::malformed_jws("header is not a JSON object"));
    }
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| Error::malformed_jws("header is not a JSON object with alg"))?;
    if header.alg != ALG_ED25519 && header.alg != ALG_EDDSA {
        return Err(Error::UnsupportedAlgorithm { alg: header.alg });
    }
    if header.crit.is_some() {
        return Err(Error::malformed_jws(
            "crit header parameters are not supported",
        ));
    }
    let found_typ = header.typ.unwrap_or_default();
    if !found_typ.eq_ignore_ascii_case(typ) {
        return Err(Error::WrongTokenType {
            expected: typ.into(),
            found: found_typ,
        });
    }
    let kid = header
        .kid
        .ok_or_else(|| Error::malformed_jws("header has no kid"))?;
    let sig_bytes = B64
        .decode(s)
        .map_err(|_| Error::malformed_jws("signature is not base64url"))?;
    let signature = parse_signature(&sig_bytes)?;
    let payload = B64
        .decode(p)
        .map_err(|_| Error::malformed_jws("payload is not base64url"))?;
    if !is_json_object(&payload) {
        return Err(Error::malformed_jws("claims are not a JSON object"));
    }
    let claims: C = serde_json::from_slice(&payload)
        .map_err(|e| Error::malformed_jws(format!("claims: {e}")))?;
    let signing_input = &jws.as_bytes()[..h.len() + 1 + p.len()];
    Ok(ParsedJws {
        kid,
        signing_input,
        signature,
        claims,
    })
}

fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

impl<C> ParsedJws<'_, C> {
    /// Checks the signature with the trusted key named by `kid`.
    pub(crate) fn verify(&self, keys: &TrustedKeys) -> Result<()> {
        keys.get(&self.kid)?
            .verify(self.signing_input, &self.signature)
    }
}
