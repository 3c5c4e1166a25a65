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
//! No panic crosses JNI: every entry point runs inside `catch_unwind`.
//!
//! A [`TrustedKeys`] travels as its uniffi handle (`jlong`), next to the Kotlin object
//! itself (which keeps that object reachable while the call runs). The handle is one that
//! Kotlin owns (`TillgateJni.handle`: a reference taken once per object through uniffi's
//! own clone, released through uniffi's own free when the object is collected), so it
//! stays valid during the call; here it is cloned and the clone lifted with uniffi's
//! `Lift`, which consumes it, exactly as the scaffolding of an export does with the clone
//! the generated code passes.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use jni::EnvUnowned;
use jni::errors::ThrowRuntimeExAndDefault;
use jni::objects::{JByteArray, JClass, JObject};
use jni::strings::JNIString;
use jni::sys::{jint, jlong};
use uniffi::{Handle, Lift, Lower};

use crate::{
    ActivationRequest, CorporateIdRule, DynamicKeyClaims, ReceiptClaims, ServerTimeClaims,
    TillgateError, Transaction, TrustedKeys, UniFfiTag, UrlToken, ValidActivationRequest,
    VerifiedDescriptor, VerifyOptions,
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
    fn next<T: Lift<UniFfiTag>>(&mut self, name: &str) -> Result<T, Fail> {
        <T as Lift<UniFfiTag>>::try_read(&mut self.0)
            // The message uniffi's scaffolding gives an argument that does not lift.
            .map_err(|e| Fail::Unexpected(format!("Failed to convert arg '{name}':\n{e:?}")))
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
