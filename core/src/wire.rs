//! The JSON bodies of the server API, defined once for the server (which writes them and
//! generates its OpenAPI document from them) and the client (which reads them).
//!
//! Members are camelCase. Request bodies defined elsewhere in core:
//! [`ActivationRequest`](crate::ActivationRequest) (`POST /activations-advanced`),
//! [`Transaction`] (`POST /transactions`) and
//! [`Product`] (`PUT /products/{id}`). With the cargo feature `openapi`
//! every type here also implements `utoipa::ToSchema`.
//!
//! The doc comments are the OpenAPI descriptions, so they stay short. Responses are read
//! leniently where it matters for older apps: members a type does not know are ignored
//! ([`TransactionOut`] and [`ProductOut`] keep them in `extra`), so a newer server that
//! adds members does not break an older app. Requests are read strictly:
//! [`RenewRequest`] reads missing members as empty (the server then reports them as
//! invalid fields) and refuses unknown ones, and so does [`Product`] as the body of
//! `PUT /products/{id}`.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Product, Transaction};

// ---- idempotency keys ---------------------------------------------------------------

/// Longest `Idempotency-Key` the server takes (`POST /transactions`,
/// `POST /activations-advanced`). A key is made of visible ASCII characters (`!` to `~`).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// Shortest `Idempotency-Key` of an activation. Repeating an activation with its key has
/// the registration's API key issued again, so the key must be as hard to guess as an
/// API key: a UUID (36 characters) or 128 random bits in hex (32) qualify.
pub const MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN: usize = 32;

/// Whether `key` is an `Idempotency-Key` the server takes: `min_len` (1 for a
/// transaction, [`MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN`] for an activation) to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII characters.
///
/// ```
/// use tillgate_core::wire::{is_idempotency_key, MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN};
/// assert!(is_idempotency_key("receipt-42", 1));
/// assert!(!is_idempotency_key("receipt-42", MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN));
/// assert!(!is_idempotency_key("has space", 1));
/// ```
pub fn is_idempotency_key(key: &str, min_len: usize) -> bool {
    (min_len.max(1)..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_graphic())
}

// ---- activation ---------------------------------------------------------------------

/// `201` answer to `POST /activations-advanced`. The API key is shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivationCreated {
    /// The activation's id.
    pub activation_id: String,
    /// The generated, unique ProductionNumber.
    pub production_number: String,
    /// The API key; stored by the server only as a hash, never shown again.
    pub api_key: String,
    /// `pending` until an admin approves.
    pub status: String,
    /// Key validity start (RFC 3339).
    pub valid_from: String,
    /// Key validity end (RFC 3339).
    pub valid_to: String,
    /// The normalised company id.
    pub corporate_id: String,
}

/// `200` answer to the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Handshake {
    /// `approved`.
    pub status: String,
    /// The activation's id.
    pub activation_id: String,
    /// The register's ProductionNumber.
    pub production_number: String,
    /// Key validity start (RFC 3339).
    pub valid_from: String,
    /// Key validity end (RFC 3339).
    pub valid_to: String,
    /// The server's time (RFC 3339).
    pub server_time: String,
    /// Compact JWS (`typ` `tillgate-time+jwt`) over `{iss, sub, iat, nonce?}`: keep `iat`
    /// as the trusted time floor after verifying it against the JWKS.
    pub signed_time: String,
    /// The staff login, when authenticated with a dynamic key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff_login: Option<String>,
}

/// The signed ActivationDescriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivationCode {
    /// Compact JWS (`typ` `tillgate-descriptor+jwt`), verifiable offline with core's
    /// `verify_descriptor` and the keys of `/.well-known/jwks.json`.
    pub descriptor: String,
    /// The signing key's id.
    pub kid: String,
}

/// Renewal request: little data, authenticated by the old key or the signed descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewRequest {
    /// The register's ProductionNumber.
    #[serde(default)]
    pub production_number: String,
    /// The register's device id.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[!-~]{1,128}$", min_length = 1, max_length = 128)
    )]
    pub device_id: String,
    /// New validity start, RFC 3339 midnight UTC, no later than the server's current time
    /// (today at the latest): the new key replaces the old one at once, so its period must
    /// have begun (else 400 `invalid_renewal_request`, `validFrom` `in_the_future`).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(format = DateTime, example = "2025-01-01T00:00:00Z")
    )]
    pub valid_from: String,
    /// New validity end, RFC 3339 midnight UTC, at most a year after `validFrom`.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(format = DateTime, example = "2026-01-01T00:00:00Z")
    )]
    pub valid_to: String,
    /// The signed descriptor, when renewing without the old key. The registration then
    /// waits for admin approval again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable, max_length = 16384))]
    pub descriptor: Option<String>,
}

/// `200` answer to a renewal; the new key is shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Renewed {
    /// The activation's id.
    pub activation_id: String,
    /// The ProductionNumber (unchanged).
    pub production_number: String,
    /// The new API key; the old one stops working now.
    pub api_key: String,
    /// `approved` (renewed by key) or `pending` (renewed by descriptor).
    pub status: String,
    /// New validity start.
    pub valid_from: String,
    /// New validity end.
    pub valid_to: String,
}

/// Argon2id parameters for deriving a staff login's dynamic key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DynamicKeyParamsOut {
    /// The system string to derive with (the server's RmSystem).
    pub system: String,
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

// ---- transactions -------------------------------------------------------------------

/// A stored transaction as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionOut {
    /// Server-assigned id.
    pub id: String,
    /// Gapless per-register sequence number, from 1.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub sequence: u64,
    /// When the server accepted it (RFC 3339).
    pub created_at: String,
    /// The register's ProductionNumber.
    pub production_number: String,
    /// The transaction as sent (canonical form).
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = TransactionDoc))]
    pub transaction: Transaction,
    /// `transaction_hash` of the transaction.
    pub txh: String,
    /// The signed receipt (compact JWS, `typ` `tillgate-receipt+jwt`), chained by `prev`.
    pub receipt: String,
    /// Every other member the server sent (the server itself never fills this). Reading
    /// is lenient: `id` may be a JSON number, and `createdAt`, `productionNumber` and
    /// `txh` read as empty when absent.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for TransactionOut {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        use serde_json::Value;
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let id = match map.remove("id") {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(D::Error::missing_field("id")),
        };
        let sequence = map
            .remove("sequence")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| D::Error::missing_field("sequence"))?;
        let receipt = match map.remove("receipt") {
            Some(Value::String(s)) => s,
            _ => return Err(D::Error::missing_field("receipt")),
        };
        let mut text = |name: &str| match map.remove(name) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => Ok(String::new()),
            Some(other) => Err(D::Error::custom(format!(
                "{name} must be a string, got {other}"
            ))),
        };
        let created_at = text("createdAt")?;
        let production_number = text("productionNumber")?;
        let txh = text("txh")?;
        // The transaction's own members; everything else is extra.
        let mut tx = serde_json::Map::new();
        for k in ["type", "currency", "total", "vat", "items", "reference"] {
            if let Some(v) = map.remove(k).filter(|v| !v.is_null()) {
                tx.insert(k.to_owned(), v);
            }
        }
        let transaction = serde_json::from_value(Value::Object(tx)).map_err(D::Error::custom)?;
        Ok(TransactionOut {
            id,
            sequence,
            created_at,
            production_number,
            transaction,
            txh,
            receipt,
            extra: map,
        })
    }
}

/// A page of transactions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransactionList {
    /// Pass back as `rve` to get only newer transactions.
    pub rve: String,
    /// Transactions in sequence order.
    pub items: Vec<TransactionOut>,
    /// Pass back as `afterSequence` for the next page; absent when this page is the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after_sequence: Option<i64>,
}

// ---- products -----------------------------------------------------------------------

/// A product as returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductOut {
    /// Product id within the company.
    pub id: String,
    /// The product.
    // Documented by its members (`ProductDoc`), not as `ProductInput`, whose
    // `additionalProperties: false` would refuse `id` and `updatedAt` next to them.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::product::ProductDoc))]
    pub product: Product,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Every other member the server sent (the server itself never fills this). Reading
    /// is lenient: a member [`Product`] does not know (one a newer server added) lands
    /// here instead of failing the product, which as a request body refuses it.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The members of [`Product`] as JSON names: what [`ProductOut`] hands to it when reading.
const PRODUCT_MEMBERS: [&str; 6] = ["name", "price", "currency", "vatRate", "barcode", "active"];

impl<'de> Deserialize<'de> for ProductOut {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        use serde_json::Value;
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let mut text = |name: &'static str| match map.remove(name) {
            Some(Value::String(s)) => Ok(s),
            None => Err(D::Error::missing_field(name)),
            Some(other) => Err(D::Error::custom(format!(
                "{name} must be a string, got {other}"
            ))),
        };
        let id = text("id")?;
        let updated_at = text("updatedAt")?;
        // The product's own members, read by its strict rules; everything else is extra.
        let mut product = serde_json::Map::new();
        for k in PRODUCT_MEMBERS {
            if let Some(v) = map.remove(k) {
                product.insert(k.to_owned(), v);
            }
        }
        let product = serde_json::from_value(Value::Object(product)).map_err(D::Error::custom)?;
        Ok(ProductOut {
            id,
            product,
            updated_at,
            extra: map,
        })
    }
}

/// A delta of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductList {
    /// Pass back as `rve` (or `$R` in the URL-path prefix) to get only later changes.
    /// It is a version in the form of a UTC time: exact only as the server returned it.
    pub rve: String,
    /// Changed products, oldest change first.
    pub items: Vec<ProductOut>,
    /// More changes follow: ask again with `rve` (a page holds at most 1,000).
    #[serde(default)]
    pub more: bool,
}

// ---- documentation-only shapes ------------------------------------------------------

/// A cash transaction (documentation of core's `Transaction`, with the constraints of
/// `validate_transaction`; `total` must also equal the sum of the item amounts).
#[cfg(feature = "openapi")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TransactionDoc {
    /// Kind of transaction.
    #[serde(rename = "type")]
    kind: TransactionTypeDoc,
    /// ISO 4217: three upper-case letters.
    #[schema(
        pattern = "^[A-Z]{3}$",
        min_length = 3,
        max_length = 3,
        example = "SEK"
    )]
    currency: String,
    /// Sum of the item amounts, minor units (0 to 2^53−1).
    #[schema(minimum = 0, maximum = 9007199254740991_i64, example = 12500)]
    total: i64,
    /// VAT lines, one per rate (no rate twice).
    #[serde(default)]
    vat: Vec<VatLineDoc>,
    /// Item lines, 1–1000.
    #[schema(min_items = 1, max_items = 1000)]
    items: Vec<ItemDoc>,
    /// For `copy` / `refund`: id of an earlier transaction of the same register.
    #[schema(min_length = 1)]
    reference: Option<String>,
}

/// Kind of a cash transaction (documentation of core's `TransactionType`).
#[cfg(feature = "openapi")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TransactionTypeDoc {
    /// A sale.
    Sale,
    /// A refund.
    Refund,
    /// A copy of an earlier receipt.
    Copy,
    /// A training transaction.
    Training,
}

/// One VAT line (documentation of core's `VatLine`).
#[cfg(feature = "openapi")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VatLineDoc {
    /// Rate in basis points (2500 = 25 %), 0–10000.
    #[schema(minimum = 0, maximum = 10_000, example = 2500)]
    rate: u32,
    /// VAT amount, minor units (0 to 2^53−1).
    #[schema(minimum = 0, maximum = 9007199254740991_i64)]
    amount: i64,
}

/// One item line (documentation of core's `Item`).
#[cfg(feature = "openapi")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ItemDoc {
    /// Article name, 1–128 characters without control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$",
        example = "Kaffe"
    )]
    name: String,
    /// Units, 1–1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000, example = 1)]
    quantity: i64,
    /// Line amount, minor units (0 to 2^53−1).
    #[schema(minimum = 0, maximum = 9007199254740991_i64, example = 12500)]
    amount: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_out_round_trips_in_server_order() {
        let json = r#"{"id":"tx_1","sequence":3,"createdAt":"2024-01-01T00:00:00Z","productionNumber":"TG-1","currency":"SEK","items":[{"amount":100,"name":"x","quantity":1}],"total":100,"type":"sale","txh":"h","receipt":"a.b.c"}"#;
        let t: TransactionOut = serde_json::from_str(json).unwrap();
        assert!(t.extra.is_empty());
        assert_eq!(serde_json::to_string(&t).unwrap(), json);
    }

    #[test]
    fn transaction_out_is_read_leniently() {
        let s: TransactionOut = serde_json::from_str(
            r#"{"id":7,"sequence":3,"receipt":"a.b.c","type":"sale","currency":"SEK",
                "total":100,"items":[{"name":"x","quantity":1,"amount":100}],
                "idempotencyKey":"k","reference":null}"#,
        )
        .unwrap();
        assert_eq!((s.id.as_str(), s.sequence), ("7", 3));
        assert_eq!(s.transaction.total, 100);
        assert_eq!((s.created_at.as_str(), s.txh.as_str()), ("", ""));
        assert!(s.extra.contains_key("idempotencyKey"));
        assert!(serde_json::from_str::<TransactionOut>(r#"{"id":"1"}"#).is_err());
        assert!(
            serde_json::from_str::<TransactionOut>(
                r#"{"id":"1","sequence":1,"receipt":"r","createdAt":5}"#
            )
            .is_err()
        );
    }

    #[test]
    fn renew_request_omits_an_absent_descriptor_and_defaults_members() {
        let r = RenewRequest {
            production_number: "TG-1".into(),
            device_id: "d".into(),
            valid_from: "a".into(),
            valid_to: "b".into(),
            descriptor: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"productionNumber":"TG-1","deviceId":"d","validFrom":"a","validTo":"b"}"#
        );
        let empty: RenewRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, RenewRequest::default());
        assert!(serde_json::from_str::<RenewRequest>(r#"{"x":1}"#).is_err());
    }

    #[test]
    fn product_out_is_flat_and_optional_members_are_omitted() {
        let p = ProductOut {
            id: "k1".into(),
            product: Product {
                name: "Kaffe".into(),
                price: 2500,
                currency: "SEK".into(),
                vat_rate: 1200,
                barcode: None,
                active: true,
            },
            updated_at: "2024-01-01T00:00:00Z".into(),
            extra: serde_json::Map::new(),
        };
        let json = r#"{"id":"k1","name":"Kaffe","price":2500,"currency":"SEK","vatRate":1200,"active":true,"updatedAt":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(serde_json::to_string(&p).unwrap(), json);
        assert_eq!(serde_json::from_str::<ProductOut>(json).unwrap(), p);
        let h = Handshake {
            status: "approved".into(),
            activation_id: "a".into(),
            production_number: "P".into(),
            valid_from: "f".into(),
            valid_to: "t".into(),
            server_time: "s".into(),
            signed_time: "j".into(),
            staff_login: None,
        };
        assert!(!serde_json::to_string(&h).unwrap().contains("staffLogin"));
    }

    #[test]
    fn product_out_keeps_members_a_newer_server_adds() {
        let json = r#"{"id":"k1","name":"Kaffe","price":2500,"currency":"SEK","vatRate":1200,
            "barcode":"731","active":false,"updatedAt":"2024-01-01T00:00:00Z",
            "unit":"cup","allergens":["milk"]}"#;
        let p: ProductOut = serde_json::from_str(json).unwrap();
        assert_eq!((p.id.as_str(), p.product.price), ("k1", 2500));
        assert_eq!(p.product.barcode.as_deref(), Some("731"));
        assert!(!p.product.active);
        let mut extra: Vec<&str> = p.extra.keys().map(String::as_str).collect();
        extra.sort_unstable();
        assert_eq!(extra, ["allergens", "unit"]);
        // The product's own rules still apply to its members, and `id` and `updatedAt`
        // are required strings.
        let bad = [
            r#"{"id":"k1","name":"Kaffe","currency":"SEK","vatRate":1,"updatedAt":"t"}"#,
            r#"{"id":"k1","name":"Kaffe","price":"1","currency":"SEK","vatRate":1,"updatedAt":"t"}"#,
            r#"{"name":"Kaffe","price":1,"currency":"SEK","vatRate":1,"updatedAt":"t"}"#,
            r#"{"id":1,"name":"Kaffe","price":1,"currency":"SEK","vatRate":1,"updatedAt":"t"}"#,
            r#"{"id":"k1","name":"Kaffe","price":1,"currency":"SEK","vatRate":1}"#,
            r#"["k1","Kaffe",1,"SEK",1,"t"]"#,
        ];
        for json in bad {
            assert!(serde_json::from_str::<ProductOut>(json).is_err(), "{json}");
        }
        // As a request body, the same extra member is refused.
        assert!(
            serde_json::from_str::<Product>(
                r#"{"name":"Kaffe","price":1,"currency":"SEK","vatRate":1,"unit":"cup"}"#
            )
            .is_err()
        );
    }

    /// `PRODUCT_MEMBERS` names every member a product writes, so none of them ends up in
    /// `extra` (and a new one is not forgotten).
    #[test]
    fn product_members_are_the_products_own() {
        let p = Product {
            name: "Kaffe".into(),
            price: 1,
            currency: "SEK".into(),
            vat_rate: 1,
            barcode: Some("1".into()),
            active: true,
        };
        let v = serde_json::to_value(&p).unwrap();
        let mut written: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut known = PRODUCT_MEMBERS.to_vec();
        written.sort_unstable();
        known.sort_unstable();
        assert_eq!(written, known);
    }
}
