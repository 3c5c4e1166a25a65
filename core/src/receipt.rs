//! Signed receipts: the server's countersignature of each cash transaction, chained per
//! register by `prev` (SHA-256 of the previous receipt), verified in batches.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(feature = "sign")]
use crate::keys::SigningKey;
use crate::keys::TrustedKeys;
use crate::{Error, Result, jws};

/// The JWS `typ` of a receipt.
pub const RECEIPT_TYP: &str = "tillgate-receipt+jwt";

/// The claims of a signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptClaims {
    /// Issuer (the server).
    pub iss: String,
    /// The register's ProductionNumber.
    pub sub: String,
    /// When the server accepted the transaction, Unix seconds.
    pub iat: i64,
    /// Gapless per-register sequence number, starting at 1.
    pub seq: u64,
    /// The transaction's id on the server.
    pub txid: String,
    /// [`crate::transaction_hash`] of the transaction.
    pub txh: String,
    /// [`receipt_link`] of the previous receipt; empty for `seq` 1.
    pub prev: String,
    /// Transaction type (`sale`, `refund`, `copy`, `training`).
    pub tx_type: String,
    /// Total in minor units.
    pub total: i64,
    /// Currency.
    pub currency: String,
}

/// The member of a receipt's claims that does not name the stored transaction it is
/// checked against ([`ReceiptClaims::names`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptMisnames {
    /// `seq`: another sequence number.
    Sequence,
    /// `txid`: another transaction id.
    TransactionId,
    /// `txh`: another transaction hash.
    TransactionHash,
}

impl ReceiptClaims {
    /// Whether these claims name the stored transaction with id `txid`, sequence number
    /// `seq` and [`crate::transaction_hash`] `txh`: the first member that does not, in
    /// that order (sequence, id, hash). A signature over claims naming another
    /// transaction proves nothing about this one.
    ///
    /// ```
    /// # use tillgate_core::{ReceiptClaims, ReceiptMisnames};
    /// let c = ReceiptClaims { iss: "s".into(), sub: "TG-1".into(), iat: 0, seq: 7,
    ///     txid: "tx_7".into(), txh: "h".into(), prev: String::new(),
    ///     tx_type: "sale".into(), total: 100, currency: "SEK".into() };
    /// assert_eq!(c.names("tx_7", 7, "h"), Ok(()));
    /// assert_eq!(c.names("tx_7", 7, "other"), Err(ReceiptMisnames::TransactionHash));
    /// ```
    pub fn names(
        &self,
        txid: &str,
        seq: u64,
        txh: &str,
    ) -> core::result::Result<(), ReceiptMisnames> {
        if self.seq != seq {
            Err(ReceiptMisnames::Sequence)
        } else if self.txid != txid {
            Err(ReceiptMisnames::TransactionId)
        } else if self.txh != txh {
            Err(ReceiptMisnames::TransactionHash)
        } else {
            Ok(())
        }
    }
}

/// Signs a receipt as a compact JWS (`typ` `tillgate-receipt+jwt`).
#[cfg(feature = "sign")]
pub fn sign_receipt(claims: &ReceiptClaims, key: &SigningKey) -> Result<String> {
    jws::sign(key, RECEIPT_TYP, claims)
}

/// The `prev` value that links to `receipt_jws`: base64url (no padding) of SHA-256 over
/// the compact JWS string.
pub fn receipt_link(receipt_jws: &str) -> String {
    B64.encode(Sha256::digest(receipt_jws.as_bytes()))
}

/// Verifies a complete chain starting at `seq` 1 (with an empty `prev`).
/// See [`verify_receipt_chain_from`].
///
/// ```
/// use tillgate_core::*;
/// let key = SigningKey::from_seed(&[3; 32]);
/// let mut chain: Vec<String> = Vec::new();
/// for seq in 1..=3 {
///     let claims = ReceiptClaims {
///         iss: "https://pos.example".into(), sub: "TG-7Q2M-K4PX".into(),
///         iat: 1_751_328_000 + seq as i64, seq, txid: format!("tx_{seq}"),
///         txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
///         prev: chain.last().map(|r| receipt_link(r)).unwrap_or_default(),
///         tx_type: "sale".into(), total: 12500, currency: "SEK".into(),
///     };
///     chain.push(sign_receipt(&claims, &key).unwrap());
/// }
/// let mut trusted = TrustedKeys::new();
/// trusted.add_jwk(&key.public_jwk()).unwrap();
/// assert_eq!(verify_receipt_chain(&chain, &trusted).unwrap().len(), 3);
/// chain.remove(1);
/// assert_eq!(verify_receipt_chain(&chain, &trusted).unwrap_err().code(), "receipt_chain_broken");
/// ```
pub fn verify_receipt_chain<S: AsRef<str>>(
    receipts: &[S],
    trusted_keys: &TrustedKeys,
) -> Result<Vec<ReceiptClaims>> {
    verify_receipt_chain_from(None, receipts, trusted_keys)
}

/// Verifies a run of receipts of one register: every signature (batch-verified), the
/// `prev` links, gapless `seq` and one `sub`. With `previous` (a receipt already
/// trusted), the run must continue it; without, it must start at `seq` 1.
///
/// Signatures are checked with Ed25519 batch verification after refusing small-order
/// `R` and non-canonical `S` one by one; if the batch fails, each signature is checked
/// alone to name the bad one.
pub fn verify_receipt_chain_from<S: AsRef<str>>(
    previous: Option<&str>,
    receipts: &[S],
    trusted_keys: &TrustedKeys,
) -> Result<Vec<ReceiptClaims>> {
    let wrap = |index: usize| {
        move |e: Error| Error::InvalidReceipt {
            index,
            source: Box::new(e),
        }
    };
    let mut parsed = Vec::with_capacity(receipts.len());
    for (i, r) in receipts.iter().enumerate() {
        let p = jws::parse::<ReceiptClaims>(r.as_ref(), RECEIPT_TYP).map_err(wrap(i))?;
        parsed.push(p);
    }
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(parsed.len());
    let mut sigs: Vec<Signature> = Vec::with_capacity(parsed.len());
    let mut msgs: Vec<&[u8]> = Vec::with_capacity(parsed.len());
    for (i, p) in parsed.iter().enumerate() {
        keys.push(trusted_keys.get(&p.kid).map_err(wrap(i))?.key);
        check_strict_parts(&p.signature).map_err(wrap(i))?;
        sigs.push(p.signature);
        msgs.push(p.signing_input);
    }
    if !parsed.is_empty() && ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_err() {
        for (i, p) in parsed.iter().enumerate() {
            p.verify(trusted_keys).map_err(wrap(i))?;
        }
        // The batch and every single check disagree only for signatures crafted with
        // torsion components; refuse them too.
        return Err(Error::InvalidReceipt {
            index: 0,
            source: Box::new(Error::BadSignature),
        });
    }

    // `None`: the receipt before has the largest sequence number, so none can follow it.
    let (mut expect_seq, mut expect_prev, mut sub): (Option<u64>, _, _) = match previous {
        Some(prev) => {
            let p = jws::parse::<ReceiptClaims>(prev, RECEIPT_TYP)?;
            (
                p.claims.seq.checked_add(1),
                receipt_link(prev),
                Some(p.claims.sub),
            )
        }
        None => (Some(1), String::new(), None),
    };
    let mut out = Vec::with_capacity(parsed.len());
    for (i, (p, raw)) in parsed.into_iter().zip(receipts).enumerate() {
        let c = p.claims;
        let broken = |reason: String| Error::ReceiptChainBroken { index: i, reason };
        match expect_seq {
            Some(seq) if seq == c.seq => {}
            Some(seq) => {
                return Err(broken(format!(
                    "sequence {} where {seq} was expected",
                    c.seq
                )));
            }
            None => {
                return Err(broken(format!(
                    "sequence {} after the largest sequence number",
                    c.seq
                )));
            }
        }
        if c.prev != expect_prev {
            return Err(broken("prev does not match the previous receipt".into()));
        }
        match &sub {
            Some(s) if *s != c.sub => {
                return Err(broken("receipt belongs to another register".into()));
            }
            _ => sub = Some(c.sub.clone()),
        }
        expect_seq = c.seq.checked_add(1);
        expect_prev = receipt_link(raw.as_ref());
        out.push(c);
    }
    Ok(out)
}

/// Verifies a register's whole chain, from `seq` 1 ([`verify_receipt_chain`]), against
/// `witness`: a receipt the register kept when the server returned it (its latest, say).
/// The chain must reach the witness's sequence number and hold the witness there, byte
/// for byte.
///
/// Each receipt names the one before it, so the witness fixes every receipt up to it: a
/// history the server rewrote after the register saw it fails here even when signed
/// afresh with the server's own key, and so does a history cut short
/// (`witness_mismatch`, naming the witness's sequence). Receipts after the witness (sales
/// since) are verified as a chain only. The witness must verify with `trusted_keys`
/// itself; a damaged copy, or one signed by a key the app does not trust, is
/// `invalid_witness`, not the server's fault. Keep every key that ever signed the
/// register's receipts trusted (a rotated key too), as the whole chain is verified.
///
/// ```
/// use tillgate_core::*;
/// let key = SigningKey::from_seed(&[3; 32]);
/// let mut chain: Vec<String> = Vec::new();
/// for seq in 1..=3 {
///     let claims = ReceiptClaims {
///         iss: "https://pos.example".into(), sub: "TG-7Q2M-K4PX".into(),
///         iat: 1_751_328_000 + seq as i64, seq, txid: format!("tx_{seq}"),
///         txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
///         prev: chain.last().map(|r| receipt_link(r)).unwrap_or_default(),
///         tx_type: "sale".into(), total: 12500, currency: "SEK".into(),
///     };
///     chain.push(sign_receipt(&claims, &key).unwrap());
/// }
/// let mut trusted = TrustedKeys::new();
/// trusted.add_jwk(&key.public_jwk()).unwrap();
/// // The register kept receipt 2; the server still holds it.
/// let kept = chain[1].clone();
/// assert_eq!(verify_receipt_chain_witnessed(&chain, &trusted, &kept).unwrap().len(), 3);
/// // The server's chain was cut back to receipt 1.
/// let err = verify_receipt_chain_witnessed(&chain[..1], &trusted, &kept).unwrap_err();
/// assert_eq!(err.code(), "witness_mismatch");
/// ```
pub fn verify_receipt_chain_witnessed<S: AsRef<str>>(
    receipts: &[S],
    trusted_keys: &TrustedKeys,
    witness: &str,
) -> Result<Vec<ReceiptClaims>> {
    let w = verify_witness(witness, trusted_keys)?;
    let sequence = w.seq;
    let claims = verify_receipt_chain(receipts, trusted_keys)?;
    if claims.first().is_some_and(|c| c.sub != w.sub) {
        return Err(Error::WitnessMismatch {
            sequence,
            reason: "the chain is another register's".into(),
        });
    }
    // The chain starts at 1 and is gapless, so the witness's place is known.
    let held = usize::try_from(sequence)
        .ok()
        .and_then(|s| s.checked_sub(1))
        .and_then(|i| receipts.get(i));
    match held {
        Some(r) if r.as_ref() == witness => Ok(claims),
        Some(_) => Err(Error::WitnessMismatch {
            sequence,
            reason: "the chain holds another receipt at this sequence".into(),
        }),
        None if sequence == 0 => Err(Error::WitnessMismatch {
            sequence,
            reason: "a chain starts at sequence 1".into(),
        }),
        None => Err(Error::WitnessMismatch {
            sequence,
            reason: format!("the chain ends at sequence {}", claims.len()),
        }),
    }
}

/// Whether a register should keep `received`, a receipt the server has just given it (a
/// sale's answer, a synced sale), as its witness instead of `current`, the witness it
/// keeps ([`verify_receipt_chain_witnessed`]). A witness only moves forward:
///
/// - `Ok(true)`: `received` verifies and directly follows `current`, linking to it (or
///   there is no witness yet);
/// - `Ok(false)`: it is `current` itself, the receipt `current` links to, an earlier
///   receipt (answers can arrive out of order), or a later one past a gap, whose link to
///   `current` cannot be seen here: keep `current` (a checked chain that holds it bridges
///   the gap: [`verify_receipt_chain_witnessed`], then take its last receipt);
/// - `witness_mismatch`: it has `current`'s sequence number but is another receipt, it
///   has the sequence number just before `current` but is not the receipt `current`
///   links to, or it directly follows `current` without linking to it: the server has
///   forked the register's chain, found the moment it happens;
/// - `invalid_receipt` (index 0): `received` does not verify; `receipt_chain_broken`
///   (index 0): it is another register's; `invalid_witness`: `current` does not verify.
///
/// ```
/// use tillgate_core::*;
/// let key = SigningKey::from_seed(&[3; 32]);
/// let mut chain: Vec<String> = Vec::new();
/// for seq in 1..=2 {
///     let claims = ReceiptClaims {
///         iss: "https://pos.example".into(), sub: "TG-7Q2M-K4PX".into(),
///         iat: 1_751_328_000 + seq as i64, seq, txid: format!("tx_{seq}"),
///         txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
///         prev: chain.last().map(|r| receipt_link(r)).unwrap_or_default(),
///         tx_type: "sale".into(), total: 12500, currency: "SEK".into(),
///     };
///     chain.push(sign_receipt(&claims, &key).unwrap());
/// }
/// let mut trusted = TrustedKeys::new();
/// trusted.add_jwk(&key.public_jwk()).unwrap();
/// assert!(advances_witness(None, &chain[0], &trusted).unwrap());
/// assert!(advances_witness(Some(&chain[0]), &chain[1], &trusted).unwrap());
/// assert!(!advances_witness(Some(&chain[1]), &chain[0], &trusted).unwrap());
/// ```
pub fn advances_witness(
    current: Option<&str>,
    received: &str,
    trusted_keys: &TrustedKeys,
) -> Result<bool> {
    let current = match current {
        Some(c) => Some((c, verify_witness(c, trusted_keys)?)),
        None => None,
    };
    let wrap = |e: Error| Error::InvalidReceipt {
        index: 0,
        source: Box::new(e),
    };
    let r = verify_receipt(received, trusted_keys).map_err(wrap)?;
    let Some((current, w)) = current else {
        return Ok(true);
    };
    if r.sub != w.sub {
        return Err(Error::ReceiptChainBroken {
            index: 0,
            reason: "receipt belongs to another register".into(),
        });
    }
    let forked = |reason: &str| Error::WitnessMismatch {
        sequence: w.seq,
        reason: reason.into(),
    };
    if r.seq == w.seq && received != current {
        return Err(forked("the server gave another receipt for this sequence"));
    }
    // The witness names the receipt just before it by its link: another one there is a
    // second signed receipt for that sequence number, a fork as much as the case above.
    if w.seq >= 2 && r.seq == w.seq - 1 && w.prev != receipt_link(received) {
        return Err(forked(
            "the server gave another receipt for the sequence before it",
        ));
    }
    // The witness itself, an earlier receipt, or one past a gap: keep the witness.
    if Some(r.seq) != w.seq.checked_add(1) {
        return Ok(false);
    }
    if r.prev != receipt_link(current) {
        return Err(forked("the next receipt does not link to it"));
    }
    Ok(true)
}

/// The receipt a register keeps as its witness once a check of `checked` has passed
/// ([`verify_receipt_chain_witnessed`] or [`verify_receipt_chain_from_witness`]): the
/// chain's last receipt, when the witness it keeps now, `kept`, is `None` or one of
/// the chain's (the check bridged any gap from it to the end); `None` otherwise: the
/// kept witness moved past the checked chain while it was fetched (a sale answered
/// meanwhile), and stays. `kept` is read again after the check, not before it, so the
/// witness never moves back.
///
/// ```
/// use tillgate_core::witness_after_check;
/// let checked = ["r1".to_string(), "r2".into(), "r3".into()];
/// assert_eq!(witness_after_check(Some("r1"), &checked), Some("r3"));
/// assert_eq!(witness_after_check(None, &checked), Some("r3"));
/// assert_eq!(witness_after_check(Some("r4"), &checked), None);
/// ```
pub fn witness_after_check<'a, S: AsRef<str>>(
    kept: Option<&str>,
    checked: &'a [S],
) -> Option<&'a str> {
    let last = checked.last()?.as_ref();
    match kept {
        Some(k) if !checked.iter().any(|r| r.as_ref() == k) => None,
        _ => Some(last),
    }
}

/// The quick form of [`verify_receipt_chain_witnessed`] for a long history: `receipts`
/// are the register's from the witness's sequence number on. The first must be the
/// witness, byte for byte (`witness_mismatch` otherwise: the history was cut back or
/// changed there), and the rest must continue it ([`verify_receipt_chain_from`]; error
/// indexes count from the witness's receipt). What lies before the witness is not
/// looked at: a change there is seen only by the whole-chain check.
pub fn verify_receipt_chain_from_witness<S: AsRef<str>>(
    witness: &str,
    receipts: &[S],
    trusted_keys: &TrustedKeys,
) -> Result<Vec<ReceiptClaims>> {
    let w = verify_witness(witness, trusted_keys)?;
    let Some((first, rest)) = receipts
        .split_first()
        .filter(|(f, _)| f.as_ref() == witness)
    else {
        let another = receipts
            .first()
            .and_then(|f| decode_receipt_unverified(f.as_ref()).ok())
            .is_some_and(|f| f.seq == w.seq);
        return Err(Error::WitnessMismatch {
            sequence: w.seq,
            reason: if another {
                "the chain holds another receipt at this sequence"
            } else {
                // No receipts from here on (cut back), or none at this sequence.
                "the chain holds no receipt at this sequence"
            }
            .into(),
        });
    };
    let after_witness = |e: Error| match e {
        Error::InvalidReceipt { index, source } => Error::InvalidReceipt {
            index: index + 1,
            source,
        },
        Error::ReceiptChainBroken { index, reason } => Error::ReceiptChainBroken {
            index: index + 1,
            reason,
        },
        e => e,
    };
    let mut claims = Vec::with_capacity(receipts.len());
    claims.push(w);
    claims.extend(
        verify_receipt_chain_from(Some(first.as_ref()), rest, trusted_keys)
            .map_err(after_witness)?,
    );
    Ok(claims)
}

/// [`verify_receipt`] for a receipt the register kept: a failure is `invalid_witness`.
fn verify_witness(witness: &str, trusted_keys: &TrustedKeys) -> Result<ReceiptClaims> {
    verify_receipt(witness, trusted_keys).map_err(|e| Error::InvalidWitness {
        source: Box::new(e),
    })
}

/// The per-signature checks `verify_strict` makes and batch verification does not:
/// `R` must be canonically encoded and not of small order (byte comparisons, see
/// `ed25519::check_r`), `S` must be reduced.
fn check_strict_parts(sig: &Signature) -> Result<()> {
    crate::ed25519::check_r(sig)?;
    crate::ed25519::canonical_s(sig).map(|_| ())
}

/// Verifies one receipt on its own (JWS, key, strict signature) and returns its claims;
/// where it sits in a chain is not checked.
pub fn verify_receipt(receipt_jws: &str, trusted_keys: &TrustedKeys) -> Result<ReceiptClaims> {
    let p = jws::parse::<ReceiptClaims>(receipt_jws, RECEIPT_TYP)?;
    p.verify(trusted_keys)?;
    Ok(p.claims)
}

/// Reads a receipt's claims WITHOUT verifying it.
pub fn decode_receipt_unverified(receipt_jws: &str) -> Result<ReceiptClaims> {
    Ok(jws::parse::<ReceiptClaims>(receipt_jws, RECEIPT_TYP)?.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(key: &SigningKey, n: u64, total: i64) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for seq in 1..=n {
            let claims = ReceiptClaims {
                iss: "https://pos.example".into(),
                sub: "TG-7Q2M-K4PX".into(),
                iat: 1_751_328_000 + seq as i64,
                seq,
                txid: format!("tx_{seq}"),
                txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
                prev: out.last().map(|r| receipt_link(r)).unwrap_or_default(),
                tx_type: "sale".into(),
                total,
                currency: "SEK".into(),
            };
            out.push(sign_receipt(&claims, key).unwrap());
        }
        out
    }

    #[test]
    fn a_witness_must_be_held_by_the_chain() {
        let key = SigningKey::from_seed(&[5; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        let good = chain(&key, 4, 100);
        let code = |r: Result<Vec<ReceiptClaims>>| r.map(|c| c.len()).map_err(|e| e.code());
        // Held: the first, a middle one, the last.
        for w in &good {
            assert_eq!(
                code(verify_receipt_chain_witnessed(&good, &trusted, w)),
                Ok(4)
            );
        }
        // Cut back to before the witness, down to nothing.
        for n in 0..3 {
            let err = verify_receipt_chain_witnessed(&good[..n], &trusted, &good[2]).unwrap_err();
            assert!(
                matches!(&err, Error::WitnessMismatch { sequence: 3, reason } if reason.ends_with(&format!("sequence {n}"))),
                "{err:?}"
            );
        }
        // Rewritten and signed afresh with the same key: each receipt verifies, the
        // chain verifies, but it is not the history the register saw.
        let rewritten = chain(&key, 4, 1);
        assert_eq!(code(verify_receipt_chain(&rewritten, &trusted)), Ok(4));
        for (i, w) in good.iter().enumerate() {
            let err = verify_receipt_chain_witnessed(&rewritten, &trusted, w).unwrap_err();
            assert!(
                matches!(err, Error::WitnessMismatch { sequence, .. } if sequence == i as u64 + 1),
                "{err:?}"
            );
        }
        // A broken chain is reported as such, witness or not.
        let gap = [good[0].clone(), good[2].clone()];
        assert_eq!(
            code(verify_receipt_chain_witnessed(&gap, &trusted, &good[0])),
            Err("receipt_chain_broken")
        );
        // A witness that does not verify is the register's problem, named as such.
        let stranger = chain(&SigningKey::from_seed(&[6; 32]), 1, 100);
        let mut flipped = good[1].clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for (w, cause) in [
            (stranger[0].as_str(), "unknown_kid"),
            (flipped.as_str(), "bad_signature"),
            ("not a receipt", "malformed_jws"),
        ] {
            match verify_receipt_chain_witnessed(&good, &trusted, w) {
                Err(Error::InvalidWitness { source }) => assert_eq!(source.code(), cause),
                other => panic!("{cause}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_quick_form_starts_at_the_witness() {
        let key = SigningKey::from_seed(&[5; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        let good = chain(&key, 4, 100);
        let other = chain(&key, 4, 1);
        let quick = |w: &String, rs: &[String]| {
            verify_receipt_chain_from_witness(w, rs, &trusted)
                .map(|c| c.iter().map(|c| c.seq).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        assert_eq!(quick(&good[1], &good[1..]), Ok(vec![2, 3, 4]));
        assert_eq!(quick(&good[3], &good[3..]), Ok(vec![4]));
        let err = quick(&good[1], &other[1..]).unwrap_err();
        assert!(err.contains("another receipt"), "{err}");
        for rs in [&good[2..], &[]] {
            let err = quick(&good[1], rs).unwrap_err();
            assert!(err.contains("holds no receipt"), "{err}");
        }
        // A break after the witness is named at its index from the witness.
        let gap = [good[1].clone(), good[3].clone()];
        match verify_receipt_chain_from_witness(&good[1], &gap, &trusted) {
            Err(Error::ReceiptChainBroken { index: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            verify_receipt_chain_from_witness("x", &good, &trusted)
                .unwrap_err()
                .code(),
            "invalid_witness"
        );
    }

    #[test]
    fn a_witness_only_moves_forward_along_the_chain() {
        let key = SigningKey::from_seed(&[5; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        let good = chain(&key, 4, 100);
        let other = chain(&key, 4, 1);
        let code = |r: Result<bool>| r.map_err(|e| e.code());
        let adv = |c: Option<&String>, r: &String| {
            code(advances_witness(c.map(String::as_str), r, &trusted))
        };
        assert_eq!(adv(None, &good[0]), Ok(true));
        assert_eq!(adv(Some(&good[0]), &good[1]), Ok(true));
        // Past a gap the link cannot be seen here: the witness stays.
        assert_eq!(adv(Some(&good[0]), &good[3]), Ok(false));
        assert_eq!(adv(Some(&good[2]), &good[2]), Ok(false));
        assert_eq!(adv(Some(&good[2]), &good[0]), Ok(false));
        // A fork: another receipt at the witness's sequence, or a next one not linked.
        assert_eq!(adv(Some(&good[2]), &other[2]), Err("witness_mismatch"));
        assert_eq!(adv(Some(&good[1]), &other[2]), Err("witness_mismatch"));
        assert_eq!(adv(Some(&good[0]), &other[3]), Ok(false));
        // The receipt just before the witness is the one it links to, or a fork.
        assert_eq!(adv(Some(&good[2]), &good[1]), Ok(false));
        assert_eq!(adv(Some(&good[2]), &other[1]), Err("witness_mismatch"));
        assert_eq!(adv(Some(&good[1]), &other[0]), Err("witness_mismatch"));
        // Further back the link cannot be seen from the two alone.
        assert_eq!(adv(Some(&good[2]), &other[0]), Ok(false));
        let stranger = chain(&SigningKey::from_seed(&[6; 32]), 1, 100);
        assert_eq!(adv(Some(&good[0]), &stranger[0]), Err("invalid_receipt"));
        assert_eq!(adv(Some(&stranger[0]), &good[0]), Err("invalid_witness"));
        assert_eq!(
            code(advances_witness(Some("x"), &good[0], &trusted)),
            Err("invalid_witness")
        );
    }

    #[test]
    fn a_check_that_passed_moves_the_witness_to_its_end() {
        let key = SigningKey::from_seed(&[7; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        let all = chain(&key, 5, 100);
        let checked = &all[..4];
        // Held by the checked chain (the gap to its end is bridged), or none yet.
        for kept in [None, Some(&all[0]), Some(&all[3])] {
            let next = witness_after_check(kept.map(String::as_str), checked);
            assert_eq!(next, Some(all[3].as_str()));
            // What the register keeps then is held by the chain: the next check passes.
            assert!(verify_receipt_chain_witnessed(checked, &trusted, next.unwrap()).is_ok());
        }
        // Moved on meanwhile, or not the chain's: it stays.
        assert_eq!(witness_after_check(Some(&all[4]), checked), None);
        let other = chain(&key, 2, 1);
        assert_eq!(witness_after_check(Some(&other[1]), checked), None);
        assert_eq!(witness_after_check(None, &all[..0]), None);
    }

    fn receipt(key: &SigningKey, seq: u64, prev: &str) -> String {
        let claims = ReceiptClaims {
            iss: "https://pos.example".into(),
            sub: "TG-7Q2M-K4PX".into(),
            iat: 1_751_328_000,
            seq,
            txid: format!("tx_{seq}"),
            txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
            prev: prev.into(),
            tx_type: "sale".into(),
            total: 100,
            currency: "SEK".into(),
        };
        sign_receipt(&claims, key).unwrap()
    }

    #[test]
    fn nothing_follows_the_largest_sequence_number() {
        let key = SigningKey::from_seed(&[8; 32]);
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        let before = receipt(&key, u64::MAX - 1, "x");
        let last = receipt(&key, u64::MAX, &receipt_link(&before));
        let wrapped = receipt(&key, 0, &receipt_link(&last));
        let seqs = |prev: &str, rs: &[String]| {
            verify_receipt_chain_from(Some(prev), rs, &trusted)
                .map(|c| c.iter().map(|c| c.seq).collect::<Vec<_>>())
        };
        assert_eq!(
            seqs(&before, std::slice::from_ref(&last)),
            Ok(vec![u64::MAX])
        );
        // Sequence 0 after u64::MAX once passed as the "next" number (it wrapped).
        match seqs(&before, &[last.clone(), wrapped.clone()]) {
            Err(Error::ReceiptChainBroken { index: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        match seqs(&last, std::slice::from_ref(&wrapped)) {
            Err(Error::ReceiptChainBroken { index: 0, .. }) => {}
            other => panic!("{other:?}"),
        }
        // Continuing the last receipt with nothing is an empty, valid continuation.
        assert_eq!(seqs(&last, &[]), Ok(vec![]));
        assert_eq!(
            verify_receipt_chain_from_witness(&last, std::slice::from_ref(&last), &trusted)
                .map(|c| c.len()),
            Ok(1)
        );
    }

    #[test]
    fn the_pre_check_refuses_small_order_r_and_unreduced_s() {
        let key = SigningKey::from_seed(&[4; 32]);
        let good = key.sign_raw(b"x");
        assert!(check_strict_parts(&Signature::from_bytes(&good)).is_ok());
        let mut small_r = good;
        small_r[..32].copy_from_slice(
            &curve25519_dalek::constants::EIGHT_TORSION[1]
                .compress()
                .to_bytes(),
        );
        assert!(check_strict_parts(&Signature::from_bytes(&small_r)).is_err());
        let mut big_s = good;
        big_s[63] |= 0xf0;
        assert!(check_strict_parts(&Signature::from_bytes(&big_s)).is_err());
    }
}
