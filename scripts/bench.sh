#!/usr/bin/env bash
# Tillgate benchmarks against their baselines, measured in the same run (issue 8).
#
#   scripts/bench.sh           full run (release build; ≤ 10 minutes on 2 cores once built),
#                              prints the table and writes BENCHMARKS.md
#   scripts/bench.sh --quick   CI mode: debug build, every benchmark runs for about a
#                              second to prove it still works; writes
#                              target/bench/BENCHMARKS.quick.md, never BENCHMARKS.md
#
# Extra arguments go to `tillgate-bench run` (e.g. `--only micro,handshake`).
# Env: TILLGATE_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test; the run
# creates and drops its own database there, and skips the row when it is unreachable),
# BENCH_WASM_PKG (default bindings/wasm/pkg), BENCH_WASM_CORE_PKG (default bindings/wasm/pkg-lite),
# BENCH_WASM_CLIENT_PKG (default: BENCH_WASM_PKG, which holds the client),
# BENCH_KOTLIN_JAVA_OPTS (JVM options for the Kotlin FFI row; default none: the JVM's own
# defaults, as an app gets them; bench/kotlin/experiment/run.sh compares settings).
# Only loopback traffic; every load loop is bounded in time and count.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
for a in "$@"; do [ "$a" = "--quick" ] && quick=1; done
if [ "$quick" = 1 ]; then profile=dev; dir=debug; else profile=release; dir=release; fi
work="$root/target/bench"
mkdir -p "$work"
log() { echo "bench.sh: $*" >&2; }

# tillgate-ffi with its `bench-baseline` feature: two more JNI entry points (never in a
# shipped library) that time the plain Rust calls inside the Kotlin benchmark's JVM, for
# the FFI rows' baselines; the uniffi exports, and so the generated bindings and their
# checksums, are the same with or without it.
log "building ($profile): tillgate-bench, tillgate-server, tillgate-ffi (bench-baseline), uniffi-bindgen"
cargo build --profile "$profile" -p tillgate-bench -p tillgate-server -p tillgate-ffi -p uniffi-bindgen \
  --features tillgate-ffi/bench-baseline
bin="$root/target/$dir"

args=(run --work "$work" --command "scripts/bench.sh${*:+ $*}" --node-dir "$root/bench/wasm")

# ---- wasm in node: needs the npm package built by bindings/wasm/build.sh -------------
pkg="${BENCH_WASM_PKG:-$root/bindings/wasm/pkg}"
# Sizes: core alone is the verify-only package (bindings/wasm/pkg-lite, built by
# scripts/test-wasm.sh or `WASM_VARIANT=lite bindings/wasm/build.sh`); core + client is
# the full package, which also runs the speed rows.
if [ -z "${BENCH_WASM_CORE_PKG:-}" ] && [ -f "$root/bindings/wasm/pkg-lite/web/tillgate_bg.wasm" ]; then
  export BENCH_WASM_CORE_PKG="$root/bindings/wasm/pkg-lite"
fi
export BENCH_WASM_CLIENT_PKG="${BENCH_WASM_CLIENT_PKG:-$pkg}"
if ! command -v node >/dev/null; then
  args+=(--wasm-skip "node is not installed")
elif [ ! -f "$pkg/node/tillgate.js" ] && [ ! -f "$pkg/tillgate.js" ]; then
  args+=(--wasm-skip "the npm package is not built ($pkg; run bindings/wasm/build.sh)")
else
  if [ ! -d bench/wasm/node_modules/@noble/ed25519 ] || [ ! -d bench/wasm/node_modules/tweetnacl ]; then
    log "npm install (bench/wasm: @noble/ed25519, @noble/hashes, tweetnacl)"
    (cd bench/wasm && npm install --no-audit --no-fund >&2) || true
  fi
  if [ -d bench/wasm/node_modules/@noble/ed25519 ]; then
    args+=(--wasm-pkg "$pkg")
  else
    args+=(--wasm-skip "npm install of the JS baselines failed")
  fi
fi

# ---- FFI: the Kotlin binding on the JVM (JNI for the pure functions, uniffi/JNA) ------
kotlin_skip=""
kotlinc=""
for k in tests/kotlin/node_modules/kotlin-compiler bench/kotlin/node_modules/kotlin-compiler; do
  [ -x "$k/bin/kotlinc-jvm" ] && { kotlinc="$root/$k/bin/kotlinc-jvm"; kl="$root/$k/lib"; break; }
done
if [ -z "$kotlinc" ] && command -v npm >/dev/null; then
  log "npm install (bench/kotlin: kotlin-compiler)"
  (cd bench/kotlin && npm install --no-audit --no-fund >&2) || true
  k=bench/kotlin/node_modules/kotlin-compiler
  [ -x "$k/bin/kotlinc-jvm" ] && { kotlinc="$root/$k/bin/kotlinc-jvm"; kl="$root/$k/lib"; }
fi
jna=/usr/share/java/jna.jar
so="$bin/libtillgate_ffi.so"
if ! command -v java >/dev/null; then kotlin_skip="java is not installed"
elif [ -z "$kotlinc" ]; then kotlin_skip="no kotlinc (npm kotlin-compiler)"
elif [ ! -f "$jna" ]; then kotlin_skip="JNA is not installed (apt-get install libjna-java)"
elif [ ! -f "$so" ]; then kotlin_skip="$so was not built"
else
  kdir="$work/kotlin-$dir"
  jar="$kdir/ffibench.jar"
  mkdir -p "$kdir"
  # Bindings must come from the exact library under test (uniffi checksums), with the
  # hand-written JNI part (bindings/ffi/kotlin) that the public pure functions go through.
  jni_kt=bindings/ffi/kotlin/dev/tillgate/Jni.kt
  if [ ! -f "$jar" ] || [ "$so" -nt "$jar" ] || [ bench/kotlin/src/FfiBench.kt -nt "$jar" ] ||
     [ "$jni_kt" -nt "$jar" ] || [ bindings/ffi/uniffi.toml -nt "$jar" ]; then
    log "generating Kotlin bindings from $so and compiling the FFI benchmark"
    rm -rf "$kdir/gen"
    if "$bin/uniffi-bindgen" generate --library "$so" --language kotlin --out-dir "$kdir/gen" --no-format >&2 &&
       "$kotlinc" -cp "$jna:$kl/kotlinx-coroutines-core-jvm.jar" $(find "$kdir/gen" -name '*.kt') \
         bindings/ffi/kotlin/dev/tillgate/*.kt bench/kotlin/src/FfiBench.kt -d "$jar" >&2; then
      :
    else
      rm -f "$jar"
      kotlin_skip="generating or compiling the Kotlin bindings failed (see the output above)"
    fi
  fi
  if [ -z "$kotlin_skip" ]; then
    # FfiBench prints ns_per_call* (read by tillgate-bench; the public functions, through
    # JNI, the same calls through uniffi's JNA code, *_jna, and the Rust baselines timed in
    # the same JVM, *_rust) and, per call, the JVM's and the calling thread's CPU and the GC
    # share (cpu_*, thread_cpu_*, gc_share_*; see the file).
    args+=(--kotlin-cmd "java ${BENCH_KOTLIN_JAVA_OPTS:-}${BENCH_KOTLIN_JAVA_OPTS:+ }-Djna.library.path=$bin -cp $jar:$kl/kotlin-stdlib.jar:$kl/kotlinx-coroutines-core-jvm.jar:$jna dev.tillgate.bench.FfiBenchKt")
  fi
fi
[ -n "$kotlin_skip" ] && args+=(--kotlin-skip "$kotlin_skip")

# Pass the remaining arguments (including --quick) through.
exec "$bin/tillgate-bench" "${args[@]}" "$@"
