//! Catalogue products as `PUT /products/{id}` takes them, and their validation.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::transaction::MAX_AMOUNT;
use crate::{Error, Result};

/// Longest product id, in bytes (ids are ASCII).
pub const PRODUCT_ID_MAX_LEN: usize = 64;

/// A product of the company's catalogue, as sent by `PUT /products/{id}` (the id travels
/// in the path; the server adds `id` and `updatedAt` when it answers, see
/// [`wire::ProductOut`](crate::wire::ProductOut)). Prices are integer minor units, VAT
/// rates basis points. Check it with [`validate_product`].
///
/// ```
/// let p: tillgate_core::Product = serde_json::from_str(
///     r#"{"name":"Kaffe","price":2500,"currency":"SEK","vatRate":1200}"#).unwrap();
/// assert!(p.active);
/// tillgate_core::validate_product("kaffe-1", &p).unwrap();
/// ```
///
/// With the `openapi` feature its schema is `ProductInput`: the members and constraints
/// of `ProductDoc` with `additionalProperties: false`, as unknown members are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct Product {
    /// Name, 1–128 characters.
    pub name: String,
    /// Price in minor units.
    pub price: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// VAT rate, basis points (2500 = 25 %).
    pub vat_rate: u32,
    /// Optional barcode (EAN etc.), 1–64 visible ASCII characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    /// Whether the product is sold (default true); products are deactivated, not deleted,
    /// so delta sync carries the change.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// The members of a product with the constraints of [`validate_product`], for the OpenAPI
/// document only (the server reads and writes [`Product`]). Without
/// `additionalProperties: false`, so that `ProductOut` can add `id` and `updatedAt` to it.
#[cfg(feature = "openapi")]
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ProductDoc {
    /// Name, 1–128 characters without control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$",
        example = "Kaffe"
    )]
    name: String,
    /// Price in minor units, 0 to 2^53−1.
    #[schema(minimum = 0, maximum = 9007199254740991_i64, example = 2500)]
    price: i64,
    /// ISO 4217 currency: three upper-case letters.
    #[schema(
        pattern = "^[A-Z]{3}$",
        min_length = 3,
        max_length = 3,
        example = "SEK"
    )]
    currency: String,
    /// VAT rate, basis points (2500 = 25 %), 0–10000.
    #[schema(minimum = 0, maximum = 10_000, example = 1200)]
    vat_rate: u32,
    /// Optional barcode (EAN etc.), 1–64 visible ASCII characters.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    barcode: Option<String>,
    /// Whether the product is sold (default true); products are deactivated, not deleted,
    /// so delta sync carries the change.
    #[serde(default)]
    #[schema(default = true)]
    active: bool,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Product {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        let mut schema = <ProductDoc as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            o.description = Some("A product as sent by `PUT /products/{id}`.".into());
        }
        schema
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Product {
    fn name() -> std::borrow::Cow<'static, str> {
        "ProductInput".into()
    }
}

/// Checks a product and its id; every failing field is listed (`invalid_product`).
///
/// The rules: the id is 1–64 characters of `A-Z a-z 0-9 - _ .`, and neither `.` nor `..`
/// (it is a URL path segment, and HTTP clients remove those from a path); a product must be sellable as one line of a sale, so `currency`, `name`,
/// `price` and `vatRate` follow the rules of [`validate_transaction`]
/// (ISO 4217 code of three upper-case letters; 1–128 characters without control
/// characters; 0 to 2^53−1 minor units; 0–10000 basis points); a `barcode`, when given,
/// is 1–64 visible ASCII characters. Fields are reported in the order id, currency,
/// name, price, vatRate, barcode.
///
/// [`validate_transaction`]: crate::validate_transaction
pub fn validate_product(id: &str, product: &Product) -> Result<()> {
    let mut e = Vec::new();
    if id.is_empty()
        || id == "."
        || id == ".."
        || id.len() > PRODUCT_ID_MAX_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        e.push(FieldError::new(
            "id",
            "invalid_format",
            "must be 1 to 64 characters of A-Z a-z 0-9 - _ ., and not . or ..",
        ));
    }
    let c = &product.currency;
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        e.push(FieldError::new(
            "currency",
            "invalid_format",
            "must be an ISO 4217 code like SEK",
        ));
    }
    let n = product.name.chars().count();
    if n == 0 || n > 128 || product.name.chars().any(char::is_control) {
        e.push(FieldError::new(
            "name",
            "invalid_length",
            "must be 1 to 128 characters without control characters",
        ));
    }
    if !(0..=MAX_AMOUNT).contains(&product.price) {
        e.push(FieldError::new(
            "price",
            "out_of_range",
            "must be 0 to 2^53-1 minor units",
        ));
    }
    if product.vat_rate > 10_000 {
        e.push(FieldError::new(
            "vatRate",
            "out_of_range",
            "must be 0 to 10000 basis points",
        ));
    }
    if let Some(b) = &product.barcode
        && (b.is_empty() || b.len() > 64 || !b.bytes().all(|c| c.is_ascii_graphic()))
    {
        e.push(FieldError::new(
            "barcode",
            "invalid_format",
            "must be 1 to 64 visible ASCII characters",
        ));
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidProduct { fields: e })
    }
}

// Read from JSON objects only (see `crate::object`).
crate::object::objects_only!(Product);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Item, Transaction, TransactionType, VatLine, validate_transaction};

    fn kaffe() -> Product {
        Product {
            name: "Kaffe".into(),
            price: 2500,
            currency: "SEK".into(),
            vat_rate: 1200,
            barcode: Some("7310865004703".into()),
            active: true,
        }
    }

    fn fields(id: &str, p: &Product) -> Vec<(String, String)> {
        match validate_product(id, p) {
            Ok(()) => Vec::new(),
            Err(Error::InvalidProduct { fields }) => {
                fields.into_iter().map(|f| (f.field, f.code)).collect()
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_good_product_passes() {
        validate_product("kaffe-1_a.B", &kaffe()).unwrap();
        let mut p = kaffe();
        p.barcode = None;
        p.price = 0;
        p.vat_rate = 10_000;
        validate_product(&"x".repeat(64), &p).unwrap();
    }

    #[test]
    fn every_failing_field_is_listed_in_order() {
        let p = Product {
            name: String::new(),
            price: -1,
            currency: "sek".into(),
            vat_rate: 10_001,
            barcode: Some("a b".into()),
            active: false,
        };
        let err = validate_product("bad id", &p).unwrap_err();
        assert_eq!(err.code(), "invalid_product");
        let got = fields("bad id", &p);
        let want = [
            ("id", "invalid_format"),
            ("currency", "invalid_format"),
            ("name", "invalid_length"),
            ("price", "out_of_range"),
            ("vatRate", "out_of_range"),
            ("barcode", "invalid_format"),
        ];
        assert_eq!(
            got,
            want.map(|(f, c)| (f.to_owned(), c.to_owned())).to_vec()
        );
    }

    #[test]
    fn ids_and_barcodes_have_bounds() {
        assert_eq!(fields("", &kaffe())[0].0, "id");
        assert_eq!(fields(&"x".repeat(65), &kaffe())[0].0, "id");
        assert_eq!(fields("å", &kaffe())[0].0, "id");
        let mut p = kaffe();
        p.barcode = Some(String::new());
        assert_eq!(fields("a", &p)[0].0, "barcode");
        p.barcode = Some("1".repeat(65));
        assert_eq!(fields("a", &p)[0].0, "barcode");
        p.name = "x".repeat(129);
        p.barcode = None;
        assert_eq!(fields("a", &p)[0].0, "name");
        p.name = "Kaf\nfe".into();
        assert_eq!(fields("a", &p)[0].0, "name");
        p.name = "ö".repeat(128);
        assert!(fields("a", &p).is_empty());
    }

    /// The rules are those of one line of a sale (what the server used to check by
    /// mapping the product onto a transaction): both agree on every field.
    #[test]
    fn agrees_with_a_one_line_sale() {
        let cases = [
            ("Kaffe", 2500, "SEK", 1200),
            ("", 1, "SEK", 0),
            ("x", -5, "SEK", 0),
            ("x", MAX_AMOUNT + 1, "SE", 0),
            ("x", 1, "SEK", 20_000),
            ("a\u{7}", 1, "sek", 2500),
        ];
        for (name, price, currency, vat_rate) in cases {
            let p = Product {
                name: name.into(),
                price,
                currency: currency.into(),
                vat_rate,
                barcode: None,
                active: true,
            };
            let sale = Transaction {
                currency: currency.into(),
                items: vec![Item {
                    amount: price,
                    name: name.into(),
                    quantity: 1,
                }],
                reference: None,
                total: price,
                kind: TransactionType::Sale,
                vat: vec![VatLine {
                    amount: 0,
                    rate: vat_rate,
                }],
            };
            let via_sale: Vec<(String, String)> = match validate_transaction(&sale) {
                Ok(()) => Vec::new(),
                Err(Error::InvalidTransaction { fields }) => fields
                    .into_iter()
                    .filter_map(|f| {
                        let name = match f.field.as_str() {
                            "currency" => "currency",
                            "items[0].name" => "name",
                            "items[0].amount" => "price",
                            "vat[0].rate" => "vatRate",
                            _ => return None,
                        };
                        Some((name.to_owned(), f.code))
                    })
                    .collect(),
                Err(other) => panic!("{other:?}"),
            };
            assert_eq!(fields("id", &p), via_sale, "{name:?} {price} {currency}");
        }
    }

    #[test]
    fn json_shape() {
        let p: Product =
            serde_json::from_str(r#"{"name":"Te","price":1,"currency":"SEK","vatRate":0}"#)
                .unwrap();
        assert!(p.active);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"name":"Te","price":1,"currency":"SEK","vatRate":0,"active":true}"#
        );
        assert!(
            serde_json::from_str::<Product>(
                r#"{"name":"Te","price":1,"currency":"SEK","vatRate":0,"id":"x"}"#
            )
            .is_err()
        );
    }
}
