//! Benchmark baselines (feature `bench-baseline`, off by default, so never in a shipped
//! library): the Rust calls behind two JNI entry points, timed in Rust, from the JVM
//! that times the same calls through Kotlin. `scripts/bench.sh` builds the library with
//! this feature so that `bench/kotlin/src/FfiBench.kt` (object
//! `dev.tillgate.bench.RustBaseline`) can alternate rounds of the Kotlin call and rounds
//! of the plain Rust call in one process: the difference is then the cost of the Kotlin
//! path alone, not that plus the difference between two processes.
//!
//! Each entry point lifts its arguments once, from the bytes the public Kotlin function
//! would pass (uniffi's serialised form, read with [`Args`] as the JNI entry point reads
//! them; the [`TrustedKeys`] as its handle), then calls the very function the JNI entry
//! point calls `calls` times with owned copies of them, as that entry point gets them
//! (a new `String`, a clone of the `Arc<TrustedKeys>`, the options record), and returns
//! the nanoseconds the calls took. A failing call, arguments that do not lift, or a panic
//! throw `dev.tillgate.InternalException` (no panic crosses JNI); the return value is
//! then -1.

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use jni::EnvUnowned;
use jni::errors::ThrowRuntimeExAndDefault;
use jni::objects::{JByteArray, JClass, JObject};
use jni::strings::JNIString;
use jni::sys::{jint, jlong};

use super::{Args, Fail, panic_message, trusted_keys};
use crate::VerifyOptions;

/// Lifts the arguments with `prepare`, then times `calls` calls of the call it returns.
fn timed<'l, F: FnMut() -> Result<(), Fail>>(
    mut env: EnvUnowned<'l>,
    args: &JByteArray<'l>,
    len: jint,
    calls: jint,
    prepare: impl FnOnce(&mut Args) -> Result<F, Fail>,
) -> jlong {
    env.with_env(|env| -> jni::errors::Result<jlong> {
        let mut raw = vec![0i8; usize::try_from(len).unwrap_or(0)];
        args.get_region(env, 0, &mut raw)?;
        let bytes: Vec<u8> = raw.iter().map(|&b| b as u8).collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<u128, Fail> {
            let mut a = Args(&bytes);
            let mut call = prepare(&mut a)?;
            let start = Instant::now();
            for _ in 0..calls {
                call()?;
            }
            Ok(start.elapsed().as_nanos())
        }));
        let message = match outcome {
            Ok(Ok(ns)) => return Ok(jlong::try_from(ns).unwrap_or(jlong::MAX)),
            Ok(Err(Fail::Error(e))) => format!("the baseline call failed: {e}"),
            Ok(Err(Fail::Unexpected(m))) => m,
            Err(cause) => panic_message(cause),
        };
        env.throw_new(
            jni::jni_str!("dev/tillgate/InternalException"),
            JNIString::from(message),
        )?;
        Ok(-1)
    })
    .resolve::<ThrowRuntimeExAndDefault>()
}

/// `RustBaseline.verifyDescriptor(args, len, keys, handle, calls)`: `calls` calls of
/// [`crate::verify_descriptor`] with the arguments of `TillgateJni.verifyDescriptor`
/// (`args`: the JWS, `now`, the options; `handle`: the keys'); nanoseconds.
#[unsafe(no_mangle)]
pub extern "system" fn Java_dev_tillgate_bench_RustBaseline_verifyDescriptor<'l>(
    env: EnvUnowned<'l>,
    _class: JClass<'l>,
    args: JByteArray<'l>,
    len: jint,
    _keys_object: JObject<'l>,
    handle: jlong,
    calls: jint,
) -> jlong {
    timed(env, &args, len, calls, |a| {
        let jws: String = a.next("jws")?;
        let keys = trusted_keys(handle)?;
        let now: i64 = a.next("now")?;
        let options: VerifyOptions = a.next("options")?;
        a.end()?;
        Ok(move || {
            let verified = crate::verify_descriptor(
                black_box(jws.clone()),
                keys.clone(),
                now,
                options.clone(),
            )?;
            black_box(verified);
            Ok(())
        })
    })
}

/// `RustBaseline.validateApiKey(args, len, calls)`: `calls` calls of
/// [`crate::validate_api_key`] with the argument of `TillgateJni.validateApiKey`
/// (`args`: the key); nanoseconds.
#[unsafe(no_mangle)]
pub extern "system" fn Java_dev_tillgate_bench_RustBaseline_validateApiKey<'l>(
    env: EnvUnowned<'l>,
    _class: JClass<'l>,
    args: JByteArray<'l>,
    len: jint,
    calls: jint,
) -> jlong {
    timed(env, &args, len, calls, |a| {
        let key: String = a.next("key")?;
        a.end()?;
        Ok(move || {
            black_box(crate::validate_api_key(black_box(key.clone()))?);
            Ok(())
        })
    })
}
