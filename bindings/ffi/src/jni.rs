//! JNI entry points for Kotlin (feature `jni`, on by default): the synchronous, pure
//! functions an app calls often, without uniffi's JNA call path.
//!
//! Why: a call through uniffi 0.32.2's generated Kotlin builds JNA `Structure`s and
//! `Memory`s (the call status, every `RustBuffer` by value) on every call, 8–50 µs on a
//! JVM (bindings/README.md, "Kotlin call cost"). A JNI call passes one byte array each
//! way and builds none of them.
//!
//! No logic and one behaviour: every entry point lifts its arguments with uniffi's own
//! [`Lift`] from the bytes the generated Kotlin converters wrote (`FfiConverter*.write`,
//! uniffi's serialised form), calls the very function its uniffi export calls
//! (`crate::verify_descriptor`, ...), and answers in the same form, written with uniffi's
//! [`Lower`], read back by the generated converters. The hand-written Kotlin side is
//! `bindings/ffi/kotlin/dev/tillgate/Jni.kt` (class `dev.tillgate.TillgateJni`).
//!
//! The answer is one tag byte and then:
//! - [`OK`]: the return value as `Lower::write` writes it (nothing for `()`);
//! - [`ERROR`]: the [`TillgateError`] as `Lower::write` writes it; Kotlin reads it with
//!   `FfiConverterTypeTillgateError`, so it throws the same `TillgateException.Failed`;
//! - [`UNEXPECTED`]: a UTF-8 message (a panic, or arguments that do not lift), as uniffi
//!   reports them in its call status; Kotlin throws `InternalException` as the JNA path does.
//!
//! No panic crosses JNI: every entry point runs inside `catch_unwind`. Nor does an
//! allocation failure abort the process on malformed argument bytes: uniffi's
//! `Vec::try_read` reserves room for the count it reads before it reads any item, so a
//! count of `7f ff ff ff` would ask for gigabytes (and the allocator's failure is an
//! abort, which `catch_unwind` cannot catch). [`Args::next`] therefore first walks each
//! argument ([`Shape`]) and refuses any list, top-level or inside a record, whose count
//! is more than the bytes left could hold, answering [`UNEXPECTED`].
//!
//! A [`TrustedKeys`] travels as its uniffi handle (`jlong`), next to the Kotlin object
//! itself (which keeps that object reachable while the call runs). The handle is one that
//! Kotlin owns (`TillgateJni.handle`: a reference taken once per object through uniffi's
//! own clone, released through uniffi's own free when the object is collected), so it
//! stays valid during the call; here it is cloned and the clone lifted with uniffi's
//! `Lift`, which consumes it, exactly as the scaffolding of an export does with the clone
//! the generated code passes.
//!
//! With the feature `bench-baseline` (never in a shipped library), the submodule
//! `baseline` adds two entry points for the benchmark only: the plain Rust calls behind
//! `verifyDescriptor` and `validateApiKey`, timed in Rust, from the benchmark's JVM.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use jni::EnvUnowned;
use jni::errors::ThrowRuntimeExAndDefault;
use jni::objects::{JByteArray, JClass, JObject};
use jni::strings::JNIString;
use jni::sys::{jint, jlong};
use uniffi::{Handle, Lift, Lower};

#[cfg(feature = "bench-baseline")]
mod baseline;

use crate::{
    ActivationRequest, CorporateIdRule, DynamicKeyClaims, Item, Product, ReceiptClaims,
    ServerTimeClaims, TillgateError, Transaction, TransactionType, TrustedKeys, UniFfiTag,
    UrlParam, UrlToken, UrlTokenPrefix, ValidActivationRequest, VatLine, VerifiedDescriptor,
    VerifyOptions,
};

/// Answer tag: the call returned; its value follows.
pub const OK: u8 = 0;
/// Answer tag: the call failed with a [`TillgateError`]; it follows.
pub const ERROR: u8 = 1;
/// Answer tag: a panic or an argument that does not lift; a UTF-8 message follows.
pub const UNEXPECTED: u8 = 2;

/// Why a call did not return a value.
#[derive(Debug)]
enum Fail {
    Error(TillgateError),
    Unexpected(String),
}

impl From<TillgateError> for Fail {
    fn from(e: TillgateError) -> Self {
        Fail::Error(e)
    }
}

/// The arguments, in uniffi's serialised form, read in order.
struct Args<'a>(&'a [u8]);

impl Args<'_> {
    fn next<T: Lift<UniFfiTag> + Shape>(&mut self, name: &str) -> Result<T, Fail> {
        // The message uniffi's scaffolding gives an argument that does not lift.
        let fail = |e: String| Fail::Unexpected(format!("Failed to convert arg '{name}':\n{e}"));
        // Every list count checked before uniffi reserves room for it (module doc).
        T::skip(&mut &self.0[..]).map_err(fail)?;
        <T as Lift<UniFfiTag>>::try_read(&mut self.0).map_err(|e| fail(format!("{e:?}")))
    }

    /// Ends the argument list: no bytes may be left over.
    fn end(&mut self) -> Result<(), Fail> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(Fail::Unexpected(format!(
                "junk data left in the argument buffer: {n} bytes"
            ))),
        }
    }
}

/// The layout of an argument in uniffi's serialised form, walked without allocating so
/// that no list count reaches uniffi's `Vec::with_capacity` unchecked. The walk checks
/// only what the layout needs (lengths, counts, option tags); everything else is left
/// to uniffi's `Lift`, which reads the argument right after.
trait Shape {
    /// The fewest bytes a value takes (at least 1 for every type here).
    const MIN: usize;
    /// Whether every value takes exactly [`MIN`](Self::MIN) bytes.
    const FIXED: bool = false;
    /// Steps over one value; `Err` if the bytes cannot hold it.
    fn skip(buf: &mut &[u8]) -> Result<(), String>;
}

/// Steps over `n` bytes.
fn take(buf: &mut &[u8], n: usize) -> Result<(), String> {
    match buf.get(n..) {
        Some(rest) => {
            *buf = rest;
            Ok(())
        }
        None => Err(format!(
            "not enough bytes remaining in buffer ({} < {n})",
            buf.len()
        )),
    }
}

/// Reads a length or count (big-endian `i32`); a negative one is refused.
fn count(buf: &mut &[u8]) -> Result<usize, String> {
    let bytes: [u8; 4] = buf
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("not enough bytes remaining in buffer ({} < 4)", buf.len()))?;
    *buf = &buf[4..];
    let n = i32::from_be_bytes(bytes);
    usize::try_from(n).map_err(|_| format!("negative length or count {n}"))
}

macro_rules! shape_of_fixed {
    ($($t:ty: $n:expr),* $(,)?) => {$(
        impl Shape for $t {
            const MIN: usize = $n;
            const FIXED: bool = true;
            fn skip(buf: &mut &[u8]) -> Result<(), String> {
                take(buf, $n)
            }
        }
    )*};
}

// Enums without fields travel as their `i32` index, booleans as one byte.
shape_of_fixed!(u8: 1, bool: 1, u32: 4, i64: 8, CorporateIdRule: 4, TransactionType: 4, UrlTokenPrefix: 4);

impl Shape for String {
    const MIN: usize = 4;
    fn skip(buf: &mut &[u8]) -> Result<(), String> {
        let len = count(buf)?;
        take(buf, len)
    }
}

impl<T: Shape> Shape for Option<T> {
    const MIN: usize = 1;
    fn skip(buf: &mut &[u8]) -> Result<(), String> {
        let tag = buf.first().copied();
        take(buf, 1)?;
        match tag {
            Some(0) => Ok(()),
            Some(1) => T::skip(buf),
            _ => Err("unexpected tag byte for Option".to_owned()),
        }
    }
}

impl<T: Shape> Shape for Vec<T> {
    const MIN: usize = 4;
    fn skip(buf: &mut &[u8]) -> Result<(), String> {
        let n = count(buf)?;
        // Each item takes at least `T::MIN` bytes (1 for `u8`, 4 for a string).
        if n > buf.len() / T::MIN {
            return Err(format!(
                "a list of {n} items of at least {} bytes each cannot fit in the {} bytes left",
                T::MIN,
                buf.len()
            ));
        }
        if T::FIXED {
            // Bytes and numbers: no need to step item by item.
            return take(buf, n * T::MIN);
        }
        (0..n).try_for_each(|_| T::skip(buf))
    }
}

/// Records: their fields in declaration order, which is the order uniffi writes them
/// in. A field added to a record but not here is a compile error (the pattern below
/// names every field, with its type); `shapes_walk_exactly_what_uniffi_writes` checks
/// the order.
macro_rules! shape_of_record {
    ($($t:ident { $($f:ident: $ft:ty),* $(,)? })*) => {$(
        impl Shape for $t {
            const MIN: usize = 0 $(+ <$ft as Shape>::MIN)*;
            fn skip(buf: &mut &[u8]) -> Result<(), String> {
                #[allow(dead_code)]
                fn every_field(v: $t) {
                    let $t { $($f),* } = v;
                    $(let _: $ft = $f;)*
                }
                $(<$ft as Shape>::skip(buf)?;)*
                Ok(())
            }
        }
    )*};
}

shape_of_record! {
    VerifyOptions {
        trusted_time_floor: Option<i64>,
        clock_tolerance_secs: Option<i64>,
        leeway_secs: Option<i64>,
        expected_device_id: Option<String>,
        expected_application_package: Option<String>,
    }
    UrlParam { id: String, value: String }
    UrlToken {
        prefix: UrlTokenPrefix,
        version: Option<u32>,
        rm_system: Vec<u32>,
        rve: Option<String>,
        params: Vec<UrlParam>,
        token: Option<String>,
        rest: String,
    }
    ActivationRequest {
        cash_register_name: String,
        device_id: String,
        valid_from: String,
        valid_to: String,
        corporate_id: String,
        application_package: String,
        country: Option<String>,
        extras_json: Option<String>,
    }
    Item { name: String, quantity: i64, amount: i64 }
    VatLine { rate: u32, amount: i64 }
    Transaction {
        kind: TransactionType,
        currency: String,
        total: i64,
        items: Vec<Item>,
        vat: Vec<VatLine>,
        reference: Option<String>,
    }
    Product {
        id: String,
        name: String,
        price: i64,
        currency: String,
        vat_rate: u32,
        barcode: Option<String>,
        active: bool,
        updated_at: Option<String>,
    }
}

/// A return value written in uniffi's serialised form.
trait Reply {
    fn write(self, out: &mut Vec<u8>);
}

impl Reply for () {
    fn write(self, _: &mut Vec<u8>) {}
}

macro_rules! reply_by_lower {
    ($($t:ty),*) => {$(
        impl Reply for $t {
            fn write(self, out: &mut Vec<u8>) {
                <$t as Lower<UniFfiTag>>::write(self, out)
            }
        }
    )*};
}

reply_by_lower!(
    bool,
    String,
    VerifiedDescriptor,
    UrlToken,
    ValidActivationRequest,
    DynamicKeyClaims,
    Transaction,
    Product,
    Vec<ReceiptClaims>,
    ServerTimeClaims
);

/// The text of a panic, as uniffi's `rust_call` reports it.
fn panic_message(cause: Box<dyn Any + Send>) -> String {
    if let Some(s) = cause.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = cause.downcast_ref::<String>() {
        s.clone()
    } else {
        "Unknown panic!".to_owned()
    }
}

/// Runs `call` on the argument bytes and encodes its outcome as the tagged answer.
fn answer<T: Reply>(args: &[u8], call: impl FnOnce(&mut Args) -> Result<T, Fail>) -> Vec<u8> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut a = Args(args);
        call(&mut a)
    }));
    let mut out = Vec::with_capacity(64);
    let unexpected = match outcome {
        Ok(Ok(value)) => match catch_unwind(AssertUnwindSafe(|| {
            out.push(OK);
            value.write(&mut out);
        })) {
            Ok(()) => return out,
            Err(cause) => panic_message(cause),
        },
        Ok(Err(Fail::Error(e))) => match catch_unwind(AssertUnwindSafe(|| {
            out.push(ERROR);
            <TillgateError as Lower<UniFfiTag>>::write(e, &mut out);
        })) {
            Ok(()) => return out,
            Err(cause) => panic_message(cause),
        },
        Ok(Err(Fail::Unexpected(message))) => message,
        Err(cause) => panic_message(cause),
    };
    out.clear();
    out.push(UNEXPECTED);
    out.extend_from_slice(unexpected.as_bytes());
    out
}

/// The [`TrustedKeys`] behind a handle Kotlin owns for the duration of the call: cloned,
/// and the clone lifted (consumed) as uniffi's scaffolding lifts an object argument.
fn trusted_keys(handle: jlong) -> Result<Arc<TrustedKeys>, Fail> {
    if handle == 0 {
        return Err(Fail::Unexpected(
            "Failed to convert arg 'trusted_keys': null handle".to_owned(),
        ));
    }
    // SAFETY: `handle` is the raw value of a uniffi handle to a `TrustedKeys` (made by
    // `Handle::from_arc`) whose reference Kotlin holds until the Kotlin object passed
    // along with it is collected, and that object is a live argument of this call.
    let owned =
        unsafe { Handle::from_raw_unchecked(handle as u64).clone_arc_handle::<TrustedKeys>() };
    <Arc<TrustedKeys> as Lift<UniFfiTag>>::try_lift(owned)
        .map_err(|e| Fail::Unexpected(format!("Failed to convert arg 'trusted_keys':\n{e:?}")))
}

/// The JNI side of a call: copies `len` bytes of `args`, answers, and returns the answer
/// as a new byte array. A JNI failure (out of memory) leaves its Java exception pending.
fn call_with_bytes<'l, T: Reply>(
    mut env: EnvUnowned<'l>,
    args: &JByteArray<'l>,
    len: jint,
    call: impl FnOnce(&mut Args) -> Result<T, Fail>,
) -> JByteArray<'l> {
    env.with_env(|env| -> jni::errors::Result<JByteArray<'l>> {
        let mut raw = vec![0i8; usize::try_from(len).unwrap_or(0)];
        args.get_region(env, 0, &mut raw)?;
        let bytes: Vec<u8> = raw.iter().map(|&b| b as u8).collect();
        let out = answer(&bytes, call);
        env.byte_array_from_slice(&out)
    })
    .resolve::<ThrowRuntimeExAndDefault>()
}

/// Declares `Java_dev_tillgate_TillgateJni_<name>(args: ByteArray, len: Int): ByteArray`,
/// or with `keys` also `(…, keys: TrustedKeys, handle: Long)`.
macro_rules! entry {
    ($(#[$doc:meta])* $name:ident, |$a:ident| $body:expr) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub extern "system" fn $name<'l>(
            env: EnvUnowned<'l>,
            _class: JClass<'l>,
            args: JByteArray<'l>,
            len: jint,
        ) -> JByteArray<'l> {
            call_with_bytes(env, &args, len, |$a: &mut Args| $body)
        }
    };
    ($(#[$doc:meta])* $name:ident, |$a:ident, $keys:ident| $body:expr) => {
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub extern "system" fn $name<'l>(
            env: EnvUnowned<'l>,
            _class: JClass<'l>,
            args: JByteArray<'l>,
            len: jint,
            _keys_object: JObject<'l>,
            handle: jlong,
        ) -> JByteArray<'l> {
            call_with_bytes(env, &args, len, |$a: &mut Args| {
                let $keys = handle;
                $body
            })
        }
    };
}

entry!(
    /// `verifyEd25519(publicKey, message, signature)`: [`crate::verify_ed25519`].
    Java_dev_tillgate_TillgateJni_verifyEd25519,
    |a| {
        let (public_key, message, signature) =
            (a.next("public_key")?, a.next("message")?, a.next("signature")?);
        a.end()?;
        Ok(crate::verify_ed25519(public_key, message, signature)?)
    }
);

entry!(
    /// `verifyDescriptor(jws, trustedKeys, now, options)`: [`crate::verify_descriptor`].
    Java_dev_tillgate_TillgateJni_verifyDescriptor,
    |a, keys| {
        let jws = a.next("jws")?;
        let keys = trusted_keys(keys)?;
        let now = a.next("now")?;
        let options: VerifyOptions = a.next("options")?;
        a.end()?;
        Ok(crate::verify_descriptor(jws, keys, now, options)?)
    }
);

entry!(
    /// `validateApiKey(key)`: [`crate::validate_api_key`].
    Java_dev_tillgate_TillgateJni_validateApiKey,
    |a| {
        let key = a.next("key")?;
        a.end()?;
        Ok(crate::validate_api_key(key)?)
    }
);

entry!(
    /// `parseUrlToken(path)`: [`crate::parse_url_token`].
    Java_dev_tillgate_TillgateJni_parseUrlToken,
    |a| {
        let path = a.next("path")?;
        a.end()?;
        Ok(crate::parse_url_token(path)?)
    }
);

entry!(
    /// `encodeUrlToken(token)`: [`crate::encode_url_token`].
    Java_dev_tillgate_TillgateJni_encodeUrlToken,
    |a| {
        let token: UrlToken = a.next("token")?;
        a.end()?;
        Ok(crate::encode_url_token(token)?)
    }
);

entry!(
    /// `validateActivationRequest(request, corporateIdRule)`:
    /// [`crate::validate_activation_request`].
    Java_dev_tillgate_TillgateJni_validateActivationRequest,
    |a| {
        let request: ActivationRequest = a.next("request")?;
        let rule: CorporateIdRule = a.next("corporate_id_rule")?;
        a.end()?;
        Ok(crate::validate_activation_request(request, rule)?)
    }
);

entry!(
    /// `verifyDynamicApiKey(key, publicKey, system, now, windowSecs)`:
    /// [`crate::verify_dynamic_api_key`].
    Java_dev_tillgate_TillgateJni_verifyDynamicApiKey,
    |a| {
        let (key, public_key, system) = (a.next("key")?, a.next("public_key")?, a.next("system")?);
        let (now, window_secs) = (a.next("now")?, a.next("window_secs")?);
        a.end()?;
        Ok(crate::verify_dynamic_api_key(key, public_key, system, now, window_secs)?)
    }
);

entry!(
    /// `validateTransaction(transaction)`: [`crate::validate_transaction`].
    Java_dev_tillgate_TillgateJni_validateTransaction,
    |a| {
        let transaction: Transaction = a.next("transaction")?;
        a.end()?;
        Ok(crate::validate_transaction(transaction)?)
    }
);

entry!(
    /// `transactionHash(transaction)`: [`crate::transaction_hash`].
    Java_dev_tillgate_TillgateJni_transactionHash,
    |a| {
        let transaction: Transaction = a.next("transaction")?;
        a.end()?;
        Ok(crate::transaction_hash(transaction))
    }
);

entry!(
    /// `transactionCanonicalJson(transaction)`: [`crate::transaction_canonical_json`].
    Java_dev_tillgate_TillgateJni_transactionCanonicalJson,
    |a| {
        let transaction: Transaction = a.next("transaction")?;
        a.end()?;
        Ok(crate::transaction_canonical_json(transaction))
    }
);

entry!(
    /// `transactionFromJson(json)`: [`crate::transaction_from_json`].
    Java_dev_tillgate_TillgateJni_transactionFromJson,
    |a| {
        let json = a.next("json")?;
        a.end()?;
        Ok(crate::transaction_from_json(json)?)
    }
);

entry!(
    /// `validateProduct(product)`: [`crate::validate_product`].
    Java_dev_tillgate_TillgateJni_validateProduct,
    |a| {
        let product: Product = a.next("product")?;
        a.end()?;
        Ok(crate::validate_product(product)?)
    }
);

entry!(
    /// `productFromJson(id, json)`: [`crate::product_from_json`].
    Java_dev_tillgate_TillgateJni_productFromJson,
    |a| {
        let (id, json) = (a.next("id")?, a.next("json")?);
        a.end()?;
        Ok(crate::product_from_json(id, json)?)
    }
);

entry!(
    /// `productToJson(product)`: [`crate::product_to_json`].
    Java_dev_tillgate_TillgateJni_productToJson,
    |a| {
        let product: Product = a.next("product")?;
        a.end()?;
        Ok(crate::product_to_json(product))
    }
);

entry!(
    /// `verifyReceiptChain(receipts, trustedKeys, previous)`: [`crate::verify_receipt_chain`].
    Java_dev_tillgate_TillgateJni_verifyReceiptChain,
    |a, keys| {
        let receipts = a.next("receipts")?;
        let keys = trusted_keys(keys)?;
        let previous = a.next("previous")?;
        a.end()?;
        Ok(crate::verify_receipt_chain(receipts, keys, previous)?)
    }
);

entry!(
    /// `verifyReceiptChainWitnessed(receipts, trustedKeys, witness)`:
    /// [`crate::verify_receipt_chain_witnessed`].
    Java_dev_tillgate_TillgateJni_verifyReceiptChainWitnessed,
    |a, keys| {
        let receipts = a.next("receipts")?;
        let keys = trusted_keys(keys)?;
        let witness = a.next("witness")?;
        a.end()?;
        Ok(crate::verify_receipt_chain_witnessed(receipts, keys, witness)?)
    }
);

entry!(
    /// `advancesWitness(current, received, trustedKeys)`: [`crate::advances_witness`].
    Java_dev_tillgate_TillgateJni_advancesWitness,
    |a, keys| {
        let current = a.next("current")?;
        let received = a.next("received")?;
        let keys = trusted_keys(keys)?;
        a.end()?;
        Ok(crate::advances_witness(current, received, keys)?)
    }
);

entry!(
    /// `receiptLink(receipt)`: [`crate::receipt_link`].
    Java_dev_tillgate_TillgateJni_receiptLink,
    |a| {
        let receipt = a.next("receipt")?;
        a.end()?;
        Ok(crate::receipt_link(receipt))
    }
);

entry!(
    /// `verifyServerTime(jws, trustedKeys, expectedNonce)`: [`crate::verify_server_time`].
    Java_dev_tillgate_TillgateJni_verifyServerTime,
    |a, keys| {
        let jws = a.next("jws")?;
        let keys = trusted_keys(keys)?;
        let expected_nonce = a.next("expected_nonce")?;
        a.end()?;
        Ok(crate::verify_server_time(jws, keys, expected_nonce)?)
    }
);

/// `unixTimeMs()`: [`crate::unix_time_ms`]. A plain `long` back, no buffer; a panic is
/// thrown as `dev.tillgate.InternalException`, as the JNA path reports it.
#[unsafe(no_mangle)]
pub extern "system" fn Java_dev_tillgate_TillgateJni_unixTimeMs<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> jlong {
    env.with_env(|env| -> jni::errors::Result<jlong> {
        match catch_unwind(crate::unix_time_ms) {
            Ok(ms) => Ok(ms),
            Err(cause) => {
                let message = JNIString::from(panic_message(cause));
                env.throw_new(jni::jni_str!("dev/tillgate/InternalException"), message)?;
                Ok(0)
            }
        }
    })
    .resolve::<ThrowRuntimeExAndDefault>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write<T: Lower<UniFfiTag>>(v: T, out: &mut Vec<u8>) {
        <T as Lower<UniFfiTag>>::write(v, out)
    }

    #[test]
    fn ok_error_and_unexpected_answers() {
        let mut args = Vec::new();
        write(
            "K7x!Qp2@Lm9#Vb4$Nc6%Zt8^Wr1&Ys3*Hd5(Fg0)".to_owned(),
            &mut args,
        );
        let ok = answer(&args, |a| {
            let key = a.next("key")?;
            a.end()?;
            Ok(crate::validate_api_key(key)?)
        });
        assert_eq!(ok[0], OK);
        let mut rest = &ok[1..];
        let key = <String as Lift<UniFfiTag>>::try_read(&mut rest).expect("a string");
        assert_eq!(key, "K7x!Qp2@Lm9#Vb4$Nc6%Zt8^Wr1&Ys3*Hd5(Fg0)");
        assert!(rest.is_empty());

        let mut args = Vec::new();
        write("short".to_owned(), &mut args);
        let err = answer(&args, |a| {
            let key = a.next("key")?;
            a.end()?;
            Ok(crate::validate_api_key(key)?)
        });
        assert_eq!(err[0], ERROR);
        let mut rest = &err[1..];
        let e = <TillgateError as Lift<UniFfiTag>>::try_read(&mut rest).expect("an error");
        assert_eq!(e.code(), "api_key_too_short");
        assert!(rest.is_empty());

        // Arguments that do not lift, left-over bytes and panics are unexpected errors.
        let short = answer(&[0, 0, 0, 9, b'a'], |a| {
            let key: String = a.next("key")?;
            Ok(key)
        });
        assert_eq!(short[0], UNEXPECTED);
        assert!(String::from_utf8_lossy(&short[1..]).starts_with("Failed to convert arg 'key'"));
        let mut args = Vec::new();
        write("a".to_owned(), &mut args);
        args.push(0);
        let junk = answer(&args, |a| {
            let key: String = a.next("key")?;
            a.end()?;
            Ok(key)
        });
        assert_eq!(junk[0], UNEXPECTED);
        let panicked = answer::<()>(&[], |_| panic!("boom"));
        assert_eq!(panicked, [&[UNEXPECTED][..], b"boom"].concat());
    }

    impl Reply for Vec<String> {
        fn write(self, out: &mut Vec<u8>) {
            <Self as Lower<UniFfiTag>>::write(self, out)
        }
    }

    fn message(answer: &[u8]) -> String {
        assert_eq!(answer[0], UNEXPECTED, "{answer:?}");
        String::from_utf8(answer[1..].to_vec()).expect("UTF-8")
    }

    /// A list count the bytes cannot hold is refused before uniffi reserves room for it
    /// (7f ff ff ff strings would be ~48 GiB: an abort, not a panic), at the top level
    /// and inside records.
    #[test]
    fn a_list_longer_than_the_bytes_left_is_unexpected_not_an_abort() {
        let m = message(&answer(&[0x7f, 0xff, 0xff, 0xff], |a| {
            a.next::<Vec<String>>("receipts")
        }));
        assert!(m.starts_with("Failed to convert arg 'receipts':\n"), "{m}");
        assert!(m.contains("2147483647 items"), "{m}");

        // Bytes: each item takes one, so 5 need 5; strings take at least 4 each.
        let bytes = |b: &[u8]| answer(b, |a| a.next::<Vec<u8>>("message").map(|_| ()));
        assert_eq!(bytes(&[0, 0, 0, 4, 1, 2, 3, 4]), [OK]);
        message(&bytes(&[0, 0, 0, 5, 1, 2, 3, 4]));
        message(&bytes(&[0xff, 0xff, 0xff, 0xff]));
        let strings = |b: &[u8]| answer(b, |a| a.next::<Vec<String>>("receipts"));
        assert_eq!(
            strings(&[0, 0, 0, 1, 0, 0, 0, 0]),
            [OK, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        message(&strings(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]));

        // Inside a record: a transaction's items, a URL token's RmSystem ids.
        let mut tx = Vec::new();
        write(TransactionType::Sale, &mut tx);
        write("SEK".to_owned(), &mut tx);
        write(100i64, &mut tx);
        tx.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        let m = message(&answer(&tx, |a| {
            a.next::<Transaction>("transaction").map(|_| ())
        }));
        assert!(
            m.starts_with("Failed to convert arg 'transaction':\n"),
            "{m}"
        );
        let mut token = Vec::new();
        write(UrlTokenPrefix::OpenApi, &mut token);
        write(None::<u32>, &mut token);
        token.extend_from_slice(&[0x40, 0, 0, 0]);
        message(&answer(&token, |a| a.next::<UrlToken>("token").map(|_| ())));
    }

    fn samples() -> (
        Transaction,
        UrlToken,
        ActivationRequest,
        VerifyOptions,
        Product,
    ) {
        let tx = Transaction {
            kind: TransactionType::Refund,
            currency: "SEK".into(),
            total: -125,
            items: vec![
                Item {
                    name: "Kaffe".into(),
                    quantity: 1,
                    amount: -100,
                },
                Item {
                    name: "Bulle".into(),
                    quantity: 1,
                    amount: -25,
                },
            ],
            vat: vec![VatLine {
                rate: 1200,
                amount: -13,
            }],
            reference: Some("tx_1".into()),
        };
        let token = crate::parse_url_token(
            "/OpenApi2_1,2,3,4$R20201201134216$Xvalue$$secret/Products".into(),
        )
        .expect("a token");
        let request = ActivationRequest {
            cash_register_name: "Kassa 1".into(),
            country: Some("SE".into()),
            ..Default::default()
        };
        let options = VerifyOptions {
            trusted_time_floor: Some(1),
            expected_device_id: Some("device-1".into()),
            ..Default::default()
        };
        let product = Product {
            id: "kaffe-1".into(),
            name: "Kaffe".into(),
            price: 2500,
            currency: "SEK".into(),
            vat_rate: 1200,
            barcode: Some("7310865004703".into()),
            active: false,
            updated_at: None,
        };
        (tx, token, request, options, product)
    }

    /// The walk follows uniffi's layout: on the written samples it steps over exactly
    /// the bytes uniffi's `Lift` reads; every cut of them both refuse; and on every change
    /// of one byte (to 00, 01, 7f, 80 or ff) that the walk lets through, uniffi reads
    /// exactly as far when it reads the value at all. (Where the walk refuses a changed
    /// value, uniffi is not asked: a shifted read can take any four bytes for a count
    /// and abort, which is the point.)
    #[test]
    fn shapes_walk_exactly_what_uniffi_writes() {
        /// Returns how many changed values the walk refused.
        fn agrees<T: Lift<UniFfiTag> + Lower<UniFfiTag> + Shape>(value: T) -> usize {
            let mut bytes = Vec::new();
            write(value, &mut bytes);
            let mut all = &bytes[..];
            T::skip(&mut all).expect("the value as written");
            assert!(all.is_empty());
            let mut read = &bytes[..];
            <T as Lift<UniFfiTag>>::try_read(&mut read).expect("the value as written");
            assert!(read.is_empty());
            for i in 0..bytes.len() {
                // A cut keeps every count and length as written: safe to give uniffi.
                assert!(T::skip(&mut &bytes[..i]).is_err(), "cut at {i}");
                assert!(<T as Lift<UniFfiTag>>::try_read(&mut &bytes[..i]).is_err());
            }
            let (mut lifted, mut refused) = (0, 0);
            for i in 0..bytes.len() {
                for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[i] = v;
                    let (mut walked, mut read) = (&b[..], &b[..]);
                    if T::skip(&mut walked).is_err() {
                        refused += 1;
                    } else if <T as Lift<UniFfiTag>>::try_read(&mut read).is_ok() {
                        assert_eq!(walked.len(), read.len(), "{b:?}");
                        lifted += 1;
                    }
                }
            }
            assert!(lifted > 1, "{lifted}");
            refused
        }
        let (tx, token, request, options, product) = samples();
        assert!(agrees(tx) > 0);
        assert!(agrees(product) > 0);
        assert!(agrees(token) > 0);
        assert!(agrees(request) > 0);
        assert!(agrees(options) > 0);
        agrees(CorporateIdRule::Generic);
        agrees(vec!["a".to_owned(), String::new()]);
        agrees(vec![1u8, 2, 3]);
        agrees(Some("x".to_owned()));
        agrees(7i64);
    }

    #[test]
    fn trusted_keys_handle_is_borrowed() {
        let keys = TrustedKeys::new();
        // What Kotlin holds: one reference of its own, as uniffi's lowering makes one.
        let handle = <Arc<TrustedKeys> as Lower<UniFfiTag>>::lower(keys.clone());
        assert_eq!(Arc::strong_count(&keys), 2);
        let lifted = trusted_keys(handle.as_raw() as jlong).expect("a valid handle");
        assert_eq!(Arc::strong_count(&keys), 3);
        drop(lifted);
        // The call took and released its own reference; Kotlin's is untouched.
        assert_eq!(Arc::strong_count(&keys), 2);
        drop(<Arc<TrustedKeys> as Lift<UniFfiTag>>::try_lift(handle).expect("consumed"));
        assert_eq!(Arc::strong_count(&keys), 1);
        assert!(trusted_keys(0).is_err());
    }
}
