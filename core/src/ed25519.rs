//! Strict Ed25519 signature verification (RFC 8032 with the `verify_strict` rules).

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::{Error, Result};

/// Verifies an Ed25519 signature strictly.
///
/// Refuses public keys that are not 32 bytes, signatures that are not 64 bytes,
/// non-canonical or small-order public keys, small-order `R` and non-canonical `S`
/// (signature malleability). Agrees with the RFC 8032 test vectors.
///
/// ```
/// use tillgate_core::{verify_ed25519, SigningKey};
/// let key = SigningKey::from_seed(&[7u8; 32]);
/// let sig = key.sign_raw(b"hello");
/// assert!(verify_ed25519(&key.public_key_bytes(), b"hello", &sig).is_ok());
/// assert!(verify_ed25519(&key.public_key_bytes(), b"hellO", &sig).is_err());
/// ```
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    let key = parse_public_key(public_key)?;
    let sig = parse_signature(signature)?;
    verify_with(&key, message, &sig)
}

pub(crate) fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey> {
    let arr: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::InvalidPublicKeyLength { len: bytes.len() })?;
    // Refuse encodings that are not canonical (y >= p): they would let one key have
    // several byte forms.
    let point = CompressedEdwardsY(*arr)
        .decompress()
        .ok_or(Error::WeakPublicKey)?;
    if point.compress().as_bytes() != arr {
        return Err(Error::WeakPublicKey);
    }
    let key = VerifyingKey::from_bytes(arr).map_err(|_| Error::WeakPublicKey)?;
    if key.is_weak() {
        return Err(Error::WeakPublicKey);
    }
    Ok(key)
}

pub(crate) fn parse_signature(bytes: &[u8]) -> Result<Signature> {
    let arr: &[u8; 64] = bytes
        .try_into()
        .map_err(|_| Error::InvalidSignatureLength { len: bytes.len() })?;
    Ok(Signature::from_bytes(arr))
}

pub(crate) fn verify_with(key: &VerifyingKey, message: &[u8], sig: &Signature) -> Result<()> {
    key.verify_strict(message, sig)
        .map_err(|_| Error::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lengths_are_typed() {
        assert_eq!(
            verify_ed25519(&[0; 31], b"", &[0; 64]),
            Err(Error::InvalidPublicKeyLength { len: 31 })
        );
        let key = crate::SigningKey::from_seed(&[1; 32]);
        assert_eq!(
            verify_ed25519(&key.public_key_bytes(), b"", &[0; 63]),
            Err(Error::InvalidSignatureLength { len: 63 })
        );
    }

    #[test]
    fn identity_point_is_weak() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            verify_ed25519(&identity, b"", &[0; 64]),
            Err(Error::WeakPublicKey)
        );
    }
}
