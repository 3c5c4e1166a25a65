//! JSON objects only: the structures of the protocol (transaction, item, VAT line,
//! activation request, product, JWK, JWKS) are read from JSON objects and nothing else.
//!
//! serde's derived `Deserialize` of a struct also reads a JSON array that lists the
//! members' values in declaration order. The types here derive with
//! `#[serde(remote = "Self")]`, which turns the derived code into inherent functions,
//! and [`objects_only!`] implements the traits on top: reading asks the format for a map
//! (serde_json refuses an array or any other value with `invalid type: ..., expected a
//! JSON object`) and hands that map to the derived code; writing is the derived code.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};

/// A type read from a map through its derived (remote) deserializer.
pub(crate) trait FromObject<'de>: Sized {
    /// Reads the type from the members of an object.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Accepts maps only and passes them to [`FromObject::from_map`].
pub(crate) struct ObjectVisitor<T>(pub(crate) PhantomData<T>);

impl<'de, T: FromObject<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// Implements `Serialize` and `Deserialize` (objects only) for types that derive both
/// with `#[serde(remote = "Self")]`.
macro_rules! objects_only {
    ($($t:ty),+ $(,)?) => {$(
        impl<'de> $crate::object::FromObject<'de> for $t {
            fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
                <$t>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_map($crate::object::ObjectVisitor(std::marker::PhantomData))
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }
    )+};
}
pub(crate) use objects_only;

#[cfg(test)]
mod tests {
    use crate::{ActivationRequest, Jwks, Product, Transaction};

    fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        serde_json::from_str::<T>(json).unwrap_err().to_string()
    }

    #[test]
    fn arrays_in_place_of_objects_are_refused_at_every_level() {
        // The same values as objects are read (see the next test); as arrays, refused.
        let e = err::<Transaction>(r#"["SEK", [], null, 0, "sale", []]"#);
        assert!(
            e.starts_with("invalid type: sequence, expected a JSON object"),
            "{e}"
        );
        let e = err::<Transaction>(
            r#"{"type":"sale","currency":"SEK","total":1,"items":[[1,"Kaffe",1]]}"#,
        );
        assert!(e.contains("expected a JSON object"), "{e}");
        let e = err::<Transaction>(
            r#"{"type":"sale","currency":"SEK","total":1,"items":[{"amount":1,"name":"K","quantity":1}],"vat":[[0,0]]}"#,
        );
        assert!(e.contains("expected a JSON object"), "{e}");
        assert!(err::<ActivationRequest>(r#"["Kassa 1"]"#).contains("expected a JSON object"));
        assert!(
            err::<Product>(r#"["Kaffe", 100, "SEK", 2500]"#).contains("expected a JSON object")
        );
        assert!(err::<Jwks>(r#"[[]]"#).contains("expected a JSON object"));
        assert!(err::<Jwks>(r#"{"keys":[["OKP"]]}"#).contains("expected a JSON object"));
        // Other non-objects too, with the position serde_json gives.
        assert_eq!(
            err::<Transaction>(r#""sale""#),
            "invalid type: string \"sale\", expected a JSON object at line 1 column 6"
        );
    }

    #[test]
    fn objects_read_and_write_as_before() {
        let json = r#"{"currency":"SEK","items":[{"amount":12500,"name":"Kaffe","quantity":1}],"total":12500,"type":"sale","vat":[{"amount":2500,"rate":2500}]}"#;
        let tx: Transaction = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&tx).unwrap(), json);
        // The derived rules still apply inside the object, positions included.
        let e = err::<Transaction>(r#"{"currency":"SEK","extra":1}"#);
        assert!(e.starts_with("unknown field `extra`"), "{e}");
        assert!(e.ends_with("at line 1 column 25"), "{e}");
        let e = err::<Transaction>(r#"{"currency":"SEK","currency":"SEK"}"#);
        assert!(e.starts_with("duplicate field `currency`"), "{e}");
        let e = err::<Transaction>(r#"{"currency":"SEK"}"#);
        assert!(e.starts_with("missing field `items`"), "{e}");
        let p: Product =
            serde_json::from_str(r#"{"name":"Kaffe","price":100,"currency":"SEK","vatRate":2500}"#)
                .unwrap();
        assert!(p.active);
        let req: ActivationRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(req, ActivationRequest::default());
        // serde_json::Value as the input format (the wire types read transactions so).
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::from_value::<Transaction>(v).unwrap(), tx);
        assert!(serde_json::from_value::<Transaction>(serde_json::json!([1])).is_err());
    }
}
