//! Strict Ed25519 signature verification (RFC 8032 with the `verify_strict` rules).

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

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
    // Refuse encodings that are not canonical, which would let one key have several
    // byte forms: `y >= p` is a byte comparison; the other form, `x = 0` with the sign
    // bit set, exists only for `y = 1` and `y = p - 1`, both small-order points that
    // `is_weak` refuses below.
    if !is_canonical_y(arr) {
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

/// Accepts exactly what `VerifyingKey::verify_strict` accepts, without decompressing `R`.
///
/// `verify_strict` decompresses `R` only to refuse small-order and undecodable `R`; the
/// final check, that the recomputed `R` compresses to the signature's bytes, already
/// refuses every `R` that is not the canonical encoding of a point. So it is enough to
/// compare `R`'s `y` with those of the small-order points (bytes, no field arithmetic),
/// then run the cofactorless check (`S` reduced, `[S]B - [k]A` compressed equals `R`).
/// This is what libsodium does; it saves one square root, about a tenth of a verification.
/// `ed25519::tests` checks the equivalence against `verify_strict` on crafted signatures.
pub(crate) fn verify_with(key: &VerifyingKey, message: &[u8], sig: &Signature) -> Result<()> {
    check_r(sig)?;
    if key.is_weak() {
        return Err(Error::BadSignature);
    }
    key.verify(message, sig).map_err(|_| Error::BadSignature)
}

/// A trusted public key, and on `fast` builds a precomputed table of its multiples that
/// verification switches to once the key is in steady use.
///
/// Verification computes `[S]B - [k]A` and compares it with `R`. The plain way
/// ([`verify_with`]) is a double-base multiplication: one doubling per bit of `k` (about
/// 253) with additions from small tables built on the spot. With a fixed-base table of
/// `-A` (curve25519-dalek's `EdwardsBasepointTable`, 30 KB, the kind it ships for `B`),
/// `[k](-A)` and `[S]B` are each 64 additions of table entries and no long chain of
/// doublings: 0.6–0.8x the time per verification, measured natively and in wasm. The
/// table costs about 20 verifications to build, so it is built only once the key has
/// verified [`TABLE_AFTER_USES`] signatures: an app that checks one descriptor at start
/// never pays for it, one that verifies in a loop does once.
pub(crate) struct TrustedKey {
    pub(crate) key: VerifyingKey,
    #[cfg(feature = "fast")]
    uses: std::sync::atomic::AtomicU32,
    #[cfg(feature = "fast")]
    table: std::sync::OnceLock<Box<curve25519_dalek::edwards::EdwardsBasepointTable>>,
}

/// Verifications with one trusted key after which its table is built (see [`TrustedKey`]).
#[cfg(feature = "fast")]
pub(crate) const TABLE_AFTER_USES: u32 = 16;

impl TrustedKey {
    /// Wraps a key already checked by [`parse_public_key`].
    pub(crate) fn new(key: VerifyingKey) -> Self {
        Self {
            key,
            #[cfg(feature = "fast")]
            uses: std::sync::atomic::AtomicU32::new(0),
            #[cfg(feature = "fast")]
            table: std::sync::OnceLock::new(),
        }
    }

    /// Verifies like [`verify_with`], through the table once the key is in steady use.
    pub(crate) fn verify(&self, message: &[u8], sig: &Signature) -> Result<()> {
        #[cfg(feature = "fast")]
        if let Some(table) = self.table() {
            return verify_with_table(&self.key, table, message, sig);
        }
        verify_with(&self.key, message, sig)
    }

    /// Whether the table is built (verifications now go through it).
    pub(crate) fn has_table(&self) -> bool {
        #[cfg(feature = "fast")]
        let built = self.table.get().is_some();
        #[cfg(not(feature = "fast"))]
        let built = false;
        built
    }

    /// The table of `-A`, built at the [`TABLE_AFTER_USES`]-th call.
    #[cfg(feature = "fast")]
    fn table(&self) -> Option<&curve25519_dalek::edwards::EdwardsBasepointTable> {
        use curve25519_dalek::traits::BasepointTable as _;
        use std::sync::atomic::Ordering;
        if let Some(t) = self.table.get() {
            return Some(t);
        }
        if self.uses.fetch_add(1, Ordering::Relaxed) + 1 < TABLE_AFTER_USES {
            return None;
        }
        Some(self.table.get_or_init(|| {
            Box::new(curve25519_dalek::edwards::EdwardsBasepointTable::create(
                &-self.key.to_edwards(),
            ))
        }))
    }
}

impl Clone for TrustedKey {
    fn clone(&self) -> Self {
        Self {
            key: self.key,
            #[cfg(feature = "fast")]
            uses: std::sync::atomic::AtomicU32::new(
                self.uses.load(std::sync::atomic::Ordering::Relaxed),
            ),
            #[cfg(feature = "fast")]
            table: self.table.clone(),
        }
    }
}

/// [`verify_with`] with `[k](-A)` from a fixed-base table of `-A` instead of a
/// double-base multiplication: the same checks on `R` (bytes) and `S` (reduced), the same
/// equation, so the same answers (`ed25519::tests` checks it against `verify_strict`).
/// `key` was checked not weak when it was trusted.
#[cfg(feature = "fast")]
fn verify_with_table(
    key: &VerifyingKey,
    minus_a: &curve25519_dalek::edwards::EdwardsBasepointTable,
    message: &[u8],
    sig: &Signature,
) -> Result<()> {
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use sha2::{Digest as _, Sha512};
    check_r(sig)?;
    let s = canonical_s(sig)?;
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(sig.r_bytes())
            .chain_update(key.as_bytes())
            .chain_update(message)
            .finalize()
            .into(),
    );
    let r = EdwardsPoint::mul_base(&s) + minus_a * &k;
    if r.compress().as_bytes() == sig.r_bytes() {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

/// The checks on `R` that `verify_strict` makes beyond the cofactorless equation: `R`'s
/// `y` must be below p and must not be the `y` of any small-order point (whatever the sign
/// bit). Byte comparisons only.
pub(crate) fn check_r(sig: &Signature) -> Result<()> {
    let r = sig.r_bytes();
    let mut y = *r;
    y[31] &= 0x7f;
    if !is_canonical_y(r) || SMALL_ORDER_Y.contains(&y) {
        return Err(Error::BadSignature);
    }
    Ok(())
}

/// `S` as a scalar, refused unless reduced (below the group order `l`): an unreduced `S`
/// would give one signature several byte forms.
pub(crate) fn canonical_s(sig: &Signature) -> Result<curve25519_dalek::Scalar> {
    Option::from(curve25519_dalek::Scalar::from_canonical_bytes(
        *sig.s_bytes(),
    ))
    .ok_or(Error::BadSignature)
}

/// The distinct `y` coordinates (little-endian, sign bit cleared) of the eight points of
/// small order: 0 (order 4, two points), 1 (the identity), p - 1 (order 2), and the two
/// shared by the four points of order 8. Checked against curve25519-dalek's
/// `EIGHT_TORSION` in the tests.
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut y = [0; 32];
        y[0] = 1;
        y
    },
    {
        let mut y = [0xff; 32];
        y[0] = 0xec;
        y[31] = 0x7f;
        y
    },
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
];

/// Whether the `y` of a compressed point (the sign bit, bit 255, is ignored) is below
/// p = 2^255 - 19.
pub(crate) fn is_canonical_y(encoded: &[u8; 32]) -> bool {
    // y >= p only if every byte is at its maximum except the lowest, which is >= 0xed.
    !(encoded[31] & 0x7f == 0x7f && encoded[1..31].iter().all(|&b| b == 0xff) && encoded[0] >= 0xed)
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

    /// The pre-existing check: decompress, compress back, compare; then `is_weak`.
    fn parse_public_key_by_decompression(bytes: &[u8; 32]) -> bool {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        match CompressedEdwardsY(*bytes).decompress() {
            Some(p) if p.compress().as_bytes() == bytes => {
                VerifyingKey::from_bytes(bytes).is_ok_and(|k| !k.is_weak())
            }
            _ => false,
        }
    }

    /// Encodings near the edges: small `y`, `y` around p, every torsion point, both signs.
    fn edge_encodings() -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        for low in (0..=3u8).chain(0xe9..=0xff) {
            for top in [0x00, 0x7f] {
                let mut y = if top == 0 { [0; 32] } else { [0xff; 32] };
                y[0] = low;
                y[31] = top;
                out.push(y);
            }
        }
        for p in curve25519_dalek::constants::EIGHT_TORSION {
            out.push(p.compress().to_bytes());
        }
        let signed: Vec<[u8; 32]> = out
            .iter()
            .map(|y| {
                let mut f = *y;
                f[31] ^= 0x80;
                f
            })
            .collect();
        out.extend(signed);
        out
    }

    /// Deterministic pseudo-random bytes (SHA-512 in counter mode).
    fn bytes64(label: &str, i: u64) -> [u8; 64] {
        use sha2::{Digest, Sha512};
        Sha512::new()
            .chain_update(label.as_bytes())
            .chain_update(i.to_le_bytes())
            .finalize()
            .into()
    }

    #[test]
    fn small_order_table_is_the_eight_torsion_points() {
        let mut ys: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| {
                let mut y = p.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect();
        ys.sort();
        ys.dedup();
        let mut table = SMALL_ORDER_Y.to_vec();
        table.sort();
        assert_eq!(ys, table);
    }

    #[test]
    fn byte_canonical_check_agrees_with_decompression() {
        let mut inputs = edge_encodings();
        inputs
            .extend((0..2000).map(|i| -> [u8; 32] { bytes64("key", i)[..32].try_into().unwrap() }));
        inputs.extend((0..16u8).map(|i| crate::SigningKey::from_seed(&[i; 32]).public_key_bytes()));
        let mut accepted = 0;
        for bytes in &inputs {
            let new = parse_public_key(bytes).is_ok();
            assert_eq!(
                new,
                parse_public_key_by_decompression(bytes),
                "{bytes:02x?}"
            );
            accepted += usize::from(new);
        }
        assert!(
            accepted > 1000,
            "the inputs exercise the accepting side too"
        );
    }

    /// Every variant of a signature that strict verification must weigh: valid, `R`
    /// moved by each torsion point, `R` replaced by each small-order or non-canonical
    /// encoding, `S` unreduced, random bytes.
    fn variants(good: [u8; 64], i: u64) -> Vec<[u8; 64]> {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let mut out = vec![good, bytes64("sig", i)];
        let r = CompressedEdwardsY(good[..32].try_into().unwrap())
            .decompress()
            .expect("a signer's R decompresses");
        // The first torsion point is the identity, which leaves the signature as it is.
        for t in &curve25519_dalek::constants::EIGHT_TORSION[1..] {
            let mut s = good;
            s[..32].copy_from_slice(&(r + t).compress().to_bytes());
            out.push(s);
        }
        for enc in edge_encodings() {
            let mut s = good;
            s[..32].copy_from_slice(&enc);
            out.push(s);
        }
        // S + l: the same scalar, unreduced.
        let mut s = good;
        let mut l = (-curve25519_dalek::Scalar::ONE).to_bytes();
        l[0] += 1; // l - 1 ends in 0xec: no carry
        let mut carry = 0u16;
        for k in 0..32 {
            let v = u16::from(s[32 + k]) + u16::from(l[k]) + carry;
            s[32 + k] = v as u8;
            carry = v >> 8;
        }
        out.push(s);
        out
    }

    #[test]
    fn verify_with_accepts_exactly_what_verify_strict_accepts() {
        let mut accepted = 0;
        let mut total = 0;
        for i in 0..8u64 {
            let seed: [u8; 32] = bytes64("seed", i)[..32].try_into().unwrap();
            let key = crate::SigningKey::from_seed(&seed);
            let vk = parse_public_key(&key.public_key_bytes()).unwrap();
            let msg = bytes64("msg", i);
            let msg = &msg[..(i as usize * 3) % 64];
            #[cfg(feature = "fast")]
            let table = {
                use curve25519_dalek::traits::BasepointTable as _;
                curve25519_dalek::edwards::EdwardsBasepointTable::create(&-vk.to_edwards())
            };
            for sig in variants(key.sign_raw(msg), i) {
                let sig = Signature::from_bytes(&sig);
                let strict = vk.verify_strict(msg, &sig).is_ok();
                assert_eq!(verify_with(&vk, msg, &sig).is_ok(), strict, "{sig:?}");
                #[cfg(feature = "fast")]
                assert_eq!(
                    verify_with_table(&vk, &table, msg, &sig).is_ok(),
                    strict,
                    "table: {sig:?}"
                );
                accepted += usize::from(strict);
                total += 1;
            }
        }
        assert_eq!(
            accepted, 8,
            "only the untouched signatures verify ({total} tried)"
        );
    }

    /// The case the small-order table exists for: `R` = the identity and `S` = k·a satisfy
    /// the cofactorless equation `[S]B = R + [k]A`, so `verify` accepts, but `R` has small
    /// order, so `verify_strict` refuses, and so must we.
    #[test]
    fn identity_r_that_satisfies_the_equation_is_refused() {
        use curve25519_dalek::{EdwardsPoint, Scalar};
        use sha2::{Digest, Sha512};
        let a = Scalar::from_bytes_mod_order(bytes64("a", 0)[..32].try_into().unwrap());
        let public = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let vk = parse_public_key(&public).unwrap();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let msg = b"forged";
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(identity)
                .chain_update(public)
                .chain_update(msg)
                .finalize()
                .into(),
        );
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        sig[32..].copy_from_slice((k * a).as_bytes());
        let sig = Signature::from_bytes(&sig);
        assert!(
            vk.verify(msg, &sig).is_ok(),
            "the cofactorless equation holds"
        );
        assert!(vk.verify_strict(msg, &sig).is_err());
        assert_eq!(verify_with(&vk, msg, &sig), Err(Error::BadSignature));
        let trusted = TrustedKey::new(vk);
        for _ in 0..40 {
            assert_eq!(trusted.verify(msg, &sig), Err(Error::BadSignature));
        }
    }

    /// A trusted key switches to its table after `TABLE_AFTER_USES` verifications, answers
    /// the same before and after, and a copy keeps the table.
    #[cfg(feature = "fast")]
    #[test]
    fn trusted_key_builds_its_table_in_steady_use() {
        let key = crate::SigningKey::from_seed(&[9; 32]);
        let trusted = TrustedKey::new(parse_public_key(&key.public_key_bytes()).unwrap());
        let good = Signature::from_bytes(&key.sign_raw(b"descriptor"));
        let mut bad = key.sign_raw(b"descriptor");
        bad[40] ^= 1;
        let bad = Signature::from_bytes(&bad);
        for n in 1..=TABLE_AFTER_USES + 4 {
            assert_eq!(trusted.verify(b"descriptor", &good), Ok(()), "use {n}");
            assert_eq!(
                trusted.verify(b"descriptor", &bad),
                Err(Error::BadSignature)
            );
            assert_eq!(trusted.verify(b"other", &good), Err(Error::BadSignature));
            assert_eq!(
                trusted.table.get().is_some(),
                n * 3 >= TABLE_AFTER_USES,
                "use {n}"
            );
        }
        let copy = trusted.clone();
        assert!(copy.table.get().is_some());
        assert_eq!(copy.verify(b"descriptor", &good), Ok(()));
    }
}
