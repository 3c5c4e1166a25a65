//! Runs every shared vector in `tests/vectors/*.json` against tillgate-core.
//! The Kotlin, Swift, Python and JS tests read the same files.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap freely.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::Index;

use serde_json::{Value, json};
use tillgate_core::*;

/// Members of a vector file, or of its cases, written for people, which no test reads (a
/// case's `name` too, see [`Case`]). The Kotlin, Swift, Python and JS runners allow the
/// same names.
const FOR_PEOPLE: &[&str] = &["description", "comment"];

fn read_vector_file(name: &str) -> Value {
    let path = format!("{}/../tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(v.is_object(), "{path}: not a JSON object");
    v
}

/// A vector file, read by one test, that records which of its top-level members the test
/// read (`v["cases"]`, `cases(&v, "cases")`). When the test is done with it, every member
/// must have been read, or be one of [`FOR_PEOPLE`]: a new list of cases or any other new
/// member of a file fails here until a test checks it.
struct Vectors {
    name: String,
    value: Value,
    read: RefCell<BTreeSet<String>>,
}

fn load(name: &str) -> Vectors {
    Vectors {
        name: name.to_owned(),
        value: read_vector_file(name),
        read: RefCell::new(BTreeSet::new()),
    }
}

impl Index<&str> for Vectors {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        self.read.borrow_mut().insert(key.to_owned());
        &self.value[key]
    }
}

impl Vectors {
    /// The file's top-level members that neither the test read nor [`FOR_PEOPLE`] names.
    fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.value
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !read.contains(*k) && !FOR_PEOPLE.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

impl Drop for Vectors {
    fn drop(&mut self) {
        // A test that already failed reports its own failure.
        if std::thread::panicking() {
            return;
        }
        let unread = self.unread();
        assert!(
            unread.is_empty(),
            "tests/vectors/{}: top-level member(s) {unread:?} read by no test in core/tests/vectors.rs",
            self.name
        );
    }
}

/// Every file in `tests/vectors/` is read by a test in this file (each through `load`),
/// so that a new file cannot go unchecked here while its rules change; each test that
/// loads one reads all of its members ([`Vectors`]). The Kotlin, Swift, Python and JS
/// runners have the same guards.
#[test]
fn every_vector_file_is_read() {
    let source = include_str!("vectors.rs");
    let dir = format!("{}/../tests/vectors", env!("CARGO_MANIFEST_DIR"));
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            files += 1;
            assert!(
                source.contains(&format!("load(\"{name}\")")),
                "tests/vectors/{name} is read by no test in core/tests/vectors.rs"
            );
        }
    }
    assert!(files > 0, "no vector files in {dir}");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One case of a vector file, or an object in one that a test reads member by member
/// ([`Case::obj`]), that records which of its members the test read (`c["valid"]`,
/// `c.get("position")`). When the test is done with it (dropped at the end of its loop
/// iteration), every member must have been read, but those for people
/// ([`Case::for_people`]): a case that gains a member (an `error` where none was, a new
/// expected value) fails here until a test checks it. The Kotlin, Swift, Python and JS
/// runners have the same guard.
struct Case<'a> {
    /// File, list, index and name, for messages.
    at: String,
    value: &'a Value,
    /// Whether `name` is for people here: in a case, not in an object inside one.
    is_case: bool,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> Case<'a> {
    fn new(at: String, value: &'a Value, is_case: bool) -> Self {
        assert!(value.is_object(), "{at}: not a JSON object");
        Case {
            at,
            value,
            is_case,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.read.borrow_mut().insert(key.to_owned());
        self.value.get(key)
    }

    /// The object under `key`, whose members the test reads one by one: each must be read,
    /// as a case's are.
    fn obj(&self, key: &str) -> Case<'a> {
        let at = format!("{} {key:?}", self.at);
        let value = self.get(key).unwrap_or_else(|| panic!("{at}: missing"));
        Case::new(at, value, false)
    }

    /// Whether a member is written for people, which no test needs to read: one of
    /// [`FOR_PEOPLE`], or a case's `name` (which failure messages print).
    fn for_people(&self, member: &str) -> bool {
        FOR_PEOPLE.contains(&member) || (self.is_case && member == "name")
    }
}

impl<'a> Index<&str> for Case<'a> {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        self.read.borrow_mut().insert(key.to_owned());
        &self.value[key]
    }
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        // A test that already failed reports its own failure.
        if std::thread::panicking() {
            return;
        }
        let read = self.read.borrow();
        let unread: Vec<&String> = self
            .value
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !read.contains(*k) && !self.for_people(k))
            .collect();
        assert!(
            unread.is_empty(),
            "{}: member(s) {unread:?} read by no test in core/tests/vectors.rs",
            self.at
        );
    }
}

/// The cases under `key` of a vector file, each recording what the test reads ([`Case`]).
fn cases<'a>(v: &'a Vectors, key: &str) -> Vec<Case<'a>> {
    nonempty(&v[key], key)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut at = format!("tests/vectors/{} {key}[{i}]", v.name);
            if let Some(name) = c.get("name").and_then(Value::as_str) {
                at += &format!(" {name:?}");
            }
            Case::new(at, c, true)
        })
        .collect()
}

fn nonempty<'a>(list: &'a Value, key: &str) -> &'a Vec<Value> {
    let list = list
        .as_array()
        .unwrap_or_else(|| panic!("{key}: not a list"));
    assert!(!list.is_empty(), "no cases under {key}");
    list
}

/// Compares the `{field, code}` pairs of a field-error list with a vector's `fields`.
fn assert_fields(name: &str, fields: &[FieldError], expected: &Value) {
    let got: Vec<Value> = fields
        .iter()
        .map(|f| json!({"field": f.field, "code": f.code}))
        .collect();
    assert_eq!(Value::from(got), *expected, "{name}");
}

/// `unparsable` JSON must be refused when decoded: by serde, as well-formed JSON that does
/// not fit the type (a case that is not JSON at all would test nothing). The bindings turn
/// exactly this refusal into `invalid_argument`, the code the Kotlin, Swift, Python and JS
/// runners require; core itself has no error code for decoding.
fn expect_unparsable<T: std::fmt::Debug>(name: &str, got: serde_json::Result<T>) {
    match got {
        Ok(v) => panic!("{name}: expected a refusal, got Ok({v:?})"),
        Err(e) => assert_eq!(
            e.classify(),
            serde_json::error::Category::Data,
            "{name}: {e}"
        ),
    }
}

fn expect_err<T: std::fmt::Debug>(name: &str, got: Result<T>, code: &str) -> Error {
    match got {
        Ok(v) => panic!("{name}: expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "{name}: {e}");
            e
        }
    }
}

#[test]
fn ed25519() {
    let v = load("ed25519.json");
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let pk = unhex(c["publicKey"].as_str().unwrap());
        let msg = unhex(c["message"].as_str().unwrap());
        let sig = unhex(c["signature"].as_str().unwrap());
        let got = verify_ed25519(&pk, &msg, &sig);
        if c["valid"].as_bool().unwrap() {
            got.unwrap_or_else(|e| panic!("{name}: {e}"));
            // RFC 8032 signatures are deterministic: signing must reproduce them.
            let sk = unhex(c["secretKey"].as_str().unwrap());
            let key = SigningKey::from_seed_slice(&sk).unwrap();
            assert_eq!(key.public_key_bytes().to_vec(), pk, "{name}");
            assert_eq!(key.sign_raw(&msg).to_vec(), sig, "{name}");
        } else {
            expect_err(name, got, c["error"].as_str().unwrap());
        }
    }
}

#[test]
fn api_keys() {
    let v = load("api_key.json");
    let alphabet = v["alphabet"].as_str().unwrap();
    assert_eq!(ApiKeyAlphabet::Full.chars(), alphabet.as_bytes());
    assert_eq!(
        ApiKeyAlphabet::UrlSafe.chars(),
        v["urlSafeAlphabet"].as_str().unwrap().as_bytes()
    );
    let reserved = v["reserved"].as_str().unwrap();
    assert!(!reserved.is_empty(), "no reserved characters");
    for ch in reserved.chars() {
        assert_eq!(classify_api_key_char(ch), CharClass::Reserved);
        // Every reserved character is refused by validate_api_key, not only those with
        // a case of their own.
        match validate_api_key(&format!("Abcdefghij{ch}0123456789")) {
            Err(Error::ApiKeyReservedChar { ch: got, position }) => {
                assert_eq!((got, position), (ch, 10), "reserved {ch:?}");
            }
            other => panic!(
                "reserved {ch:?}: {:?}",
                other.map(|k| k.expose().to_owned())
            ),
        }
    }
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let got = validate_api_key(c["key"].as_str().unwrap());
        if c["valid"].as_bool().unwrap() {
            assert_eq!(got.unwrap().expose(), c["key"].as_str().unwrap(), "{name}");
            continue;
        }
        let err = expect_err(name, got, c["error"].as_str().unwrap());
        if let Some(pos) = c.get("position") {
            let (ch, position) = match err {
                Error::ApiKeyReservedChar { ch, position }
                | Error::ApiKeyInvalidChar { ch, position } => (ch, position),
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(position as u64, pos.as_u64().unwrap(), "{name}");
            assert_eq!(ch.to_string(), c["char"].as_str().unwrap(), "{name}");
        }
    }
}

fn token_json(t: &UrlToken) -> Value {
    json!({
        "prefix": t.prefix.as_str(),
        "version": t.version,
        "rmSystem": t.rm_system.ids(),
        "rve": t.rve.map(|r| r.to_string()),
        "params": t.params.iter().map(|p| json!({"id": p.id().to_string(), "value": p.value()})).collect::<Vec<_>>(),
        "token": t.token.as_ref().map(|t| t.expose()),
        "rest": t.rest,
    })
}

#[test]
fn url_tokens() {
    let v = load("url_token.json");
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let got = parse_url_token(c["path"].as_str().unwrap());
        if c["valid"].as_bool().unwrap() {
            let t = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(token_json(&t), c["expected"], "{name}");
            let encoded = encode_url_token(&t).unwrap();
            assert_eq!(encoded, c["encoded"].as_str().unwrap(), "{name}");
            assert_eq!(parse_url_token(&encoded).unwrap(), t, "{name}: round trip");
        } else {
            match expect_err(name, got, c["error"].as_str().unwrap()) {
                Error::InvalidUrlToken { position, .. } => {
                    assert_eq!(position as u64, c["position"].as_u64().unwrap(), "{name}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}

#[test]
fn activation_requests() {
    let v = load("activation.json");
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let req: ActivationRequest = serde_json::from_value(c["request"].clone()).unwrap();
        let rules = ActivationRules {
            corporate_id: match c["corporateIdRule"].as_str().unwrap() {
                "generic" => CorporateIdRule::Generic,
                "swedishOrgNumber" => CorporateIdRule::SwedishOrgNumber,
                other => panic!("{name}: unknown corporateIdRule {other:?}"),
            },
        };
        let got = validate_activation_request_with(&req, &rules);
        if c["valid"].as_bool().unwrap() {
            let ok = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            let e = c.obj("expected");
            assert_eq!(ok.corporate_id.as_str(), e["corporateId"], "{name}");
            assert_eq!(ok.country, e["country"], "{name}");
            assert_eq!(ok.period.from_rfc3339(), e["validFrom"], "{name}");
            assert_eq!(ok.period.to_rfc3339(), e["validTo"], "{name}");
        } else {
            let Error::InvalidActivationRequest { fields } =
                expect_err(name, got, c["error"].as_str().unwrap())
            else {
                unreachable!()
            };
            assert_fields(name, &fields, &c["fields"]);
        }
    }
}

#[test]
fn transactions() {
    let v = load("transaction.json");
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let tx: Transaction = serde_json::from_value(c["transaction"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = validate_transaction(&tx);
        if c["valid"].as_bool().unwrap() {
            got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                String::from_utf8(canonical_bytes(&tx)).unwrap(),
                c["canonical"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(transaction_hash(&tx), c["hash"].as_str().unwrap(), "{name}");
        } else {
            let Error::InvalidTransaction { fields } =
                expect_err(name, got, c["error"].as_str().unwrap())
            else {
                unreachable!()
            };
            assert_fields(name, &fields, &c["fields"]);
        }
    }
    for c in cases(&v, "unparsable") {
        let name = c["name"].as_str().unwrap();
        expect_unparsable(
            name,
            serde_json::from_str::<Transaction>(c["json"].as_str().unwrap()),
        );
    }
}

#[test]
fn products() {
    let v = load("product.json");
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let product: Product =
            serde_json::from_value(c["product"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = validate_product(c["id"].as_str().unwrap(), &product);
        if c["valid"].as_bool().unwrap() {
            got.unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(canonical) = c.get("canonical") {
                assert_eq!(
                    serde_json::to_string(&product).unwrap(),
                    canonical.as_str().unwrap(),
                    "{name}"
                );
            }
        } else {
            let Error::InvalidProduct { fields } =
                expect_err(name, got, c["error"].as_str().unwrap())
            else {
                unreachable!()
            };
            assert_fields(name, &fields, &c["fields"]);
        }
    }
    for c in cases(&v, "unparsable") {
        let name = c["name"].as_str().unwrap();
        expect_unparsable(
            name,
            serde_json::from_str::<Product>(c["json"].as_str().unwrap()),
        );
    }
}

fn options(o: &Case) -> VerifyOptions {
    VerifyOptions {
        trusted_time_floor: o["trustedTimeFloor"].as_i64(),
        clock_tolerance_secs: o["clockToleranceSecs"].as_i64(),
        leeway_secs: o["leewaySecs"].as_i64(),
        expected_device_id: o["expectedDeviceId"].as_str().map(Into::into),
        expected_application_package: o["expectedApplicationPackage"].as_str().map(Into::into),
    }
}

#[test]
fn descriptors() {
    let v = load("descriptor.json");
    let keys = TrustedKeys::from_jwks_json(&v["jwks"].to_string()).unwrap();
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let got = verify_descriptor(
            c["jws"].as_str().unwrap(),
            &keys,
            c["now"].as_i64().unwrap(),
            &options(&c.obj("options")),
        );
        if c["valid"].as_bool().unwrap() {
            let d = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                serde_json::to_value(d.claims()).unwrap(),
                c["expected"],
                "{name}"
            );
        } else {
            expect_err(name, got, c["error"].as_str().unwrap());
        }
    }
    for c in cases(&v, "jwksCases") {
        let name = c["name"].as_str().unwrap();
        let got = TrustedKeys::from_jwks_json(&c["jwks"].to_string());
        if c["valid"].as_bool().unwrap() {
            got.unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            expect_err(name, got, c["error"].as_str().unwrap());
        }
    }
    for c in cases(&v, "signing") {
        let key = SigningKey::from_seed_slice(&unhex(c["seed"].as_str().unwrap())).unwrap();
        assert_eq!(key.kid(), c["kid"].as_str().unwrap());
        let claims: ActivationDescriptor = serde_json::from_value(c["claims"].clone()).unwrap();
        assert_eq!(
            sign_descriptor(&claims, &key).unwrap(),
            c["jws"].as_str().unwrap()
        );
    }
}

#[test]
fn receipts() {
    let v = load("receipt.json");
    let keys = TrustedKeys::from_jwks_json(&v["jwks"].to_string()).unwrap();
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let receipts: Vec<String> = serde_json::from_value(c["receipts"].clone()).unwrap();
        let got = verify_receipt_chain_from(c["previous"].as_str(), &receipts, &keys);
        if c["valid"].as_bool().unwrap() {
            let claims = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(claims.len() as u64, c["count"].as_u64().unwrap(), "{name}");
        } else {
            let index = match expect_err(name, got, c["error"].as_str().unwrap()) {
                Error::InvalidReceipt { index, .. } | Error::ReceiptChainBroken { index, .. } => {
                    index
                }
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(index as u64, c["index"].as_u64().unwrap(), "{name}");
        }
    }
    for c in cases(&v, "witnessed") {
        let name = c["name"].as_str().unwrap();
        let receipts: Vec<String> = serde_json::from_value(c["receipts"].clone()).unwrap();
        let got = verify_receipt_chain_witnessed(&receipts, &keys, c["witness"].as_str().unwrap());
        if c["valid"].as_bool().unwrap() {
            let claims = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(claims.len() as u64, c["count"].as_u64().unwrap(), "{name}");
        } else {
            expect_err(name, got, c["error"].as_str().unwrap());
        }
    }
    for c in cases(&v, "advance") {
        let name = c["name"].as_str().unwrap();
        let got = advances_witness(
            c["current"].as_str(),
            c["received"].as_str().unwrap(),
            &keys,
        );
        if c["valid"].as_bool().unwrap() {
            let advances = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(advances, c["advances"].as_bool().unwrap(), "{name}");
        } else {
            expect_err(name, got, c["error"].as_str().unwrap());
        }
    }
    for l in cases(&v, "links") {
        assert_eq!(
            receipt_link(l["receipt"].as_str().unwrap()),
            l["link"].as_str().unwrap()
        );
    }
}

#[test]
fn dynamic_keys() {
    let v = load("dynamic_key.json");
    for c in cases(&v, "derive") {
        let p = c.obj("params");
        let params = DynamicKeyParams {
            memory_kib: p["memoryKib"].as_u64().unwrap() as u32,
            iterations: p["iterations"].as_u64().unwrap() as u32,
            parallelism: p["parallelism"].as_u64().unwrap() as u32,
        };
        let pair = derive_dynamic_key_pair(
            c["system"].as_str().unwrap(),
            c["login"].as_str().unwrap(),
            c["password"].as_str().unwrap(),
            params,
        )
        .unwrap();
        assert_eq!(pair.seed().to_vec(), unhex(c["seed"].as_str().unwrap()));
        assert_eq!(
            pair.public_key().to_vec(),
            unhex(c["publicKey"].as_str().unwrap())
        );
    }
    for c in cases(&v, "deriveRefused") {
        let p = c.obj("params");
        let params = DynamicKeyParams {
            memory_kib: p["memoryKib"].as_u64().unwrap() as u32,
            iterations: p["iterations"].as_u64().unwrap() as u32,
            parallelism: p["parallelism"].as_u64().unwrap() as u32,
        };
        let got = derive_dynamic_key_pair(
            c["system"].as_str().unwrap(),
            c["login"].as_str().unwrap(),
            c["password"].as_str().unwrap(),
            params,
        );
        expect_err(
            c["name"].as_str().unwrap(),
            got,
            c["error"].as_str().unwrap(),
        );
    }
    for c in cases(&v, "create") {
        let seed: [u8; 32] = unhex(c["seed"].as_str().unwrap()).try_into().unwrap();
        let pair = DynamicKeyPair::from_seed(
            c["system"].as_str().unwrap(),
            c["login"].as_str().unwrap(),
            &seed,
        )
        .unwrap();
        let nonce: [u8; 16] = unhex(c["nonce"].as_str().unwrap()).try_into().unwrap();
        let key =
            create_dynamic_api_key_with_nonce(&pair, c["now"].as_i64().unwrap(), &nonce).unwrap();
        assert_eq!(key.expose(), c["key"].as_str().unwrap());
    }
    for c in cases(&v, "verify") {
        let name = c["name"].as_str().unwrap();
        let got = verify_dynamic_api_key(
            c["key"].as_str().unwrap(),
            &unhex(c["publicKey"].as_str().unwrap()),
            c["system"].as_str().unwrap(),
            c["now"].as_i64().unwrap(),
            c["windowSecs"].as_i64().unwrap(),
        );
        if c["valid"].as_bool().unwrap() {
            let claims = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            let e = c.obj("expected");
            assert_eq!(claims.login, e["login"].as_str().unwrap(), "{name}");
            assert_eq!(claims.issued_at, e["issuedAt"].as_i64().unwrap(), "{name}");
            assert_eq!(
                claims.nonce.to_vec(),
                unhex(e["nonce"].as_str().unwrap()),
                "{name}"
            );
        } else {
            expect_err(name, got, c["error"].as_str().unwrap());
        }
    }
}

#[test]
fn server_time() {
    let v = load("server_time.json");
    let keys = TrustedKeys::from_jwks_json(&v["jwks"].to_string()).unwrap();
    for c in cases(&v, "cases") {
        let name = c["name"].as_str().unwrap();
        let got = verify_server_time(
            c["jws"].as_str().unwrap(),
            &keys,
            c["expectedNonce"].as_str(),
        );
        if c["valid"].as_bool().unwrap() {
            let claims = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(claims.iat, c["iat"].as_i64().unwrap(), "{name}");
        } else {
            expect_err(name, got, c["error"].as_str().unwrap());
        }
    }
}

/// The strictness cases of `ed25519.json` are worth having only if a lax verifier gets
/// them wrong: ed25519-dalek's plain `verify` (cofactorless, no check on `R`) accepts the
/// small-order `R` signature that `verify_strict` and core refuse, and its key decoding
/// accepts the non-canonical `y = p + 3` that core refuses.
#[test]
fn ed25519_strictness_cases_catch_a_lax_verifier() {
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    // Only some cases of ed25519.json: the test `ed25519` reads all of it.
    let v = read_vector_file("ed25519.json");
    let case = |prefix: &str| {
        let c = nonempty(&v["cases"], "cases")
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no case {prefix:?}"));
        let bytes = |k: &str| unhex(c[k].as_str().unwrap());
        (
            bytes("publicKey"),
            bytes("message"),
            bytes("signature"),
            c["error"].as_str().unwrap().to_owned(),
        )
    };

    let (pk, msg, sig, error) = case("small-order R (the identity) with S = k*a");
    let key = VerifyingKey::from_bytes(&pk.clone().try_into().unwrap()).unwrap();
    let sig64 = Signature::from_slice(&sig).unwrap();
    assert!(
        key.verify(&msg, &sig64).is_ok(),
        "a lax verifier accepts it"
    );
    assert!(key.verify_strict(&msg, &sig64).is_err());
    assert_eq!(verify_ed25519(&pk, &msg, &sig).unwrap_err().code(), error);
    assert_eq!(error, "bad_signature");

    let (pk, msg, sig, error) = case("non-canonical public key (y = p + 3");
    let lax = VerifyingKey::from_bytes(&pk.clone().try_into().unwrap())
        .expect("a lax decoder reduces y mod p and accepts the key");
    assert!(!lax.is_weak());
    let canonical = lax.to_edwards().compress().to_bytes();
    assert_ne!(canonical.to_vec(), pk, "the point's own encoding differs");
    assert_eq!(canonical[0], 3, "y = 3");
    assert_eq!(verify_ed25519(&pk, &msg, &sig).unwrap_err().code(), error);
    assert_eq!(error, "weak_public_key");
}
