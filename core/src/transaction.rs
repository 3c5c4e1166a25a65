//! Cash transactions as POS apps send them, their validation and canonical bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FieldError;
use crate::{Error, Result};

/// Largest amount accepted, in minor units: 2^53 − 1, so every JSON runtime reads it exactly.
pub const MAX_AMOUNT: i64 = (1 << 53) - 1;
/// Most lines in one transaction.
pub const MAX_ITEMS: usize = 1000;
/// Most VAT lines in one transaction: one per rate, and a VAT system has a handful of
/// rates (Sweden four: 25, 12, 6 and 0 %), so 100 leaves room for any mix while bounding
/// the work and the error list a hostile sale can cause.
pub const MAX_VAT_LINES: usize = 100;

/// What kind of transaction this is (Swedish cash-register terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransactionType {
    /// A sale.
    Sale,
    /// Money given back.
    Refund,
    /// A copy of an earlier receipt.
    Copy,
    /// A training transaction (not real money).
    Training,
}

impl TransactionType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sale => "sale",
            Self::Refund => "refund",
            Self::Copy => "copy",
            Self::Training => "training",
        }
    }
}

/// One VAT line: rate in basis points (2500 = 25 %) and the VAT amount in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct VatLine {
    /// VAT amount, minor units. (Fields are declared in sorted order: see [`canonical_bytes`].)
    pub amount: i64,
    /// Rate in basis points, 0–10000.
    pub rate: u32,
}

/// One item line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Item {
    /// Line amount (all units together), minor units.
    pub amount: i64,
    /// Article name, 1–128 characters.
    pub name: String,
    /// Number of units, 1–1,000,000.
    pub quantity: i64,
}

/// A cash transaction. Amounts are integer minor units (öre, cents), never floats; the
/// `type` gives the sign, amounts themselves are not negative.
///
/// ```
/// let tx: tillgate_core::Transaction = serde_json::from_str(r#"{"type":"sale","currency":"SEK",
///   "total":12500,"vat":[{"rate":2500,"amount":2500}],
///   "items":[{"name":"Kaffe","quantity":1,"amount":12500}]}"#).unwrap();
/// tillgate_core::validate_transaction(&tx).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Transaction {
    /// ISO 4217 code, three upper-case letters.
    pub currency: String,
    /// Item lines, at least one.
    pub items: Vec<Item>,
    /// For `copy` and `refund`: the id of the original transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Sum of the item amounts.
    pub total: i64,
    /// What kind of transaction.
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// VAT lines, one per rate (omitted from the canonical form when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vat: Vec<VatLine>,
}

/// Checks a transaction; every problem is reported (`invalid_transaction`).
pub fn validate_transaction(tx: &Transaction) -> Result<()> {
    let mut e = Vec::new();
    let amount_ok = |a: i64| (0..=MAX_AMOUNT).contains(&a);
    if tx.currency.len() != 3 || !tx.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        e.push(FieldError::new(
            "currency",
            "invalid_format",
            "must be an ISO 4217 code like SEK",
        ));
    }
    if !amount_ok(tx.total) {
        e.push(FieldError::new(
            "total",
            "out_of_range",
            "must be 0 to 2^53-1 minor units",
        ));
    }
    // Over the limit, the items are not looked at one by one (nor summed): one error.
    let items = if tx.items.is_empty() || tx.items.len() > MAX_ITEMS {
        e.push(FieldError::new(
            "items",
            "invalid_length",
            format!("must have 1 to {MAX_ITEMS} lines"),
        ));
        &[][..]
    } else {
        &tx.items[..]
    };
    let mut sum: i64 = 0;
    for (i, item) in items.iter().enumerate() {
        let n = item.name.chars().count();
        if n == 0 || n > 128 || item.name.chars().any(char::is_control) {
            e.push(FieldError::new(
                &format!("items[{i}].name"),
                "invalid_length",
                "must be 1 to 128 characters without control characters",
            ));
        }
        if !(1..=1_000_000).contains(&item.quantity) {
            e.push(FieldError::new(
                &format!("items[{i}].quantity"),
                "out_of_range",
                "must be 1 to 1000000",
            ));
        }
        if !amount_ok(item.amount) {
            e.push(FieldError::new(
                &format!("items[{i}].amount"),
                "out_of_range",
                "must be 0 to 2^53-1 minor units",
            ));
        }
        sum = sum.saturating_add(item.amount);
    }
    if !items.is_empty() && amount_ok(tx.total) && sum != tx.total {
        e.push(FieldError::new(
            "total",
            "total_mismatch",
            format!("must equal the sum of item amounts ({sum})"),
        ));
    }
    let mut vat_sum: i64 = 0;
    // Over the limit, the lines are not looked at one by one (nor summed): one error.
    let vat_lines = if tx.vat.len() > MAX_VAT_LINES {
        e.push(FieldError::new(
            "vat",
            "invalid_length",
            format!("must have at most {MAX_VAT_LINES} lines"),
        ));
        &[][..]
    } else {
        &tx.vat[..]
    };
    let mut rates = std::collections::BTreeSet::new();
    for (i, v) in vat_lines.iter().enumerate() {
        if v.rate > 10_000 {
            e.push(FieldError::new(
                &format!("vat[{i}].rate"),
                "out_of_range",
                "must be 0 to 10000 basis points",
            ));
        }
        if !amount_ok(v.amount) {
            e.push(FieldError::new(
                &format!("vat[{i}].amount"),
                "out_of_range",
                "must be 0 to 2^53-1 minor units",
            ));
        }
        if !rates.insert(v.rate) {
            e.push(FieldError::new(
                &format!("vat[{i}].rate"),
                "duplicate_rate",
                "one line per VAT rate",
            ));
        }
        vat_sum = vat_sum.saturating_add(v.amount);
    }
    if amount_ok(tx.total) && tx.vat.len() <= MAX_VAT_LINES && vat_sum > tx.total {
        e.push(FieldError::new(
            "vat",
            "vat_exceeds_total",
            "VAT amounts must not exceed the total",
        ));
    }
    match &tx.reference {
        Some(r) if r.is_empty() || r.len() > 64 || !r.bytes().all(|b| b.is_ascii_graphic()) => {
            e.push(FieldError::new(
                "reference",
                "invalid_format",
                "must be 1 to 64 visible ASCII characters",
            ));
        }
        None if tx.kind == TransactionType::Copy => {
            e.push(FieldError::new(
                "reference",
                "missing",
                "a copy must name the original transaction",
            ));
        }
        _ => {}
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidTransaction { fields: e })
    }
}

/// The canonical bytes of a transaction: its RFC 8785 (JCS) form, i.e. compact JSON with
/// members in sorted order. Any language can recompute them with a JCS library.
pub fn canonical_bytes(tx: &Transaction) -> Vec<u8> {
    // The structs declare their fields in sorted order, all numbers are integers and
    // serde_json escapes strings as JCS does, so plain serialisation is canonical.
    serde_json::to_vec(tx).unwrap_or_default()
}

/// base64url (no padding) of SHA-256 over [`canonical_bytes`]: the `txh` receipt claim.
pub fn transaction_hash(tx: &Transaction) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_bytes(tx)))
}

// Read from JSON objects only (see `crate::object`).
crate::object::objects_only!(VatLine, Item, Transaction);

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> Transaction {
        serde_json::from_str(
            r#"{"type":"sale","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],
                "items":[{"name":"Kaffe","quantity":1,"amount":12500}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn canonical_form_is_sorted_and_compact() {
        assert_eq!(
            String::from_utf8(canonical_bytes(&tx())).unwrap(),
            r#"{"currency":"SEK","items":[{"amount":12500,"name":"Kaffe","quantity":1}],"total":12500,"type":"sale","vat":[{"amount":2500,"rate":2500}]}"#
        );
    }

    #[test]
    fn unknown_fields_and_floats_are_refused() {
        assert!(
            serde_json::from_str::<Transaction>(
                r#"{"type":"sale","currency":"SEK","total":1.5,"items":[]}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<Transaction>(
                r#"{"type":"sale","currency":"SEK","total":1,"items":[],"x":1}"#
            )
            .is_err()
        );
    }

    /// The `field/code` pairs `validate_transaction` refuses `t` with.
    fn refused_fields(t: &Transaction) -> Vec<String> {
        let Err(Error::InvalidTransaction { fields }) = validate_transaction(t) else {
            panic!("not refused as invalid_transaction")
        };
        fields
            .iter()
            .map(|f| format!("{}/{}", f.field, f.code))
            .collect()
    }

    #[test]
    fn vat_lines_are_bounded() {
        let mut t = tx();
        t.vat = (0..MAX_VAT_LINES as u32)
            .map(|rate| VatLine { amount: 0, rate })
            .collect();
        assert_eq!(validate_transaction(&t), Ok(()));
        // One more, with every line wrong too: a single error, the lines not looked at.
        t.vat = (0..=MAX_VAT_LINES)
            .map(|_| VatLine {
                amount: -1,
                rate: 20_000,
            })
            .collect();
        assert_eq!(refused_fields(&t), ["vat/invalid_length"]);
        // A hostile sale with a great many lines costs one length check.
        t.vat = vec![VatLine { amount: 0, rate: 0 }; 200_000];
        assert!(validate_transaction(&t).is_err());
    }

    #[test]
    fn items_are_bounded() {
        let item = |amount: i64| Item {
            name: "Kaffe".into(),
            quantity: 1,
            amount,
        };
        let mut t = tx();
        t.vat = vec![];
        t.items = vec![item(1); MAX_ITEMS];
        t.total = MAX_ITEMS as i64;
        assert_eq!(validate_transaction(&t), Ok(()));
        // One more, with every item wrong too: a single error, the items not looked at
        // (nor summed: no total_mismatch).
        t.items = vec![
            Item {
                name: String::new(),
                quantity: 0,
                amount: -1,
            };
            MAX_ITEMS + 1
        ];
        assert_eq!(refused_fields(&t), ["items/invalid_length"]);
    }

    #[test]
    fn duplicate_rates_name_every_repeat() {
        let mut t = tx();
        t.vat = [2500, 1200, 2500, 600, 1200, 2500]
            .into_iter()
            .map(|rate| VatLine { amount: 0, rate })
            .collect();
        let Err(Error::InvalidTransaction { fields }) = validate_transaction(&t) else {
            panic!()
        };
        let got: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(got, ["vat[2].rate", "vat[4].rate", "vat[5].rate"]);
    }

    #[test]
    fn all_problems_listed() {
        let mut t = tx();
        t.currency = "sek".into();
        t.total = 1;
        t.vat.push(VatLine {
            amount: 5,
            rate: 2500,
        });
        let Err(Error::InvalidTransaction { fields }) = validate_transaction(&t) else {
            panic!()
        };
        let codes: Vec<_> = fields.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "invalid_format",
                "total_mismatch",
                "duplicate_rate",
                "vat_exceeds_total"
            ]
        );
    }
}
