#!/usr/bin/env bash
# Where the Kotlin call cost goes (bindings/README.md, "Kotlin call cost"): runs FfiBench,
# the same three calls scripts/bench.sh measures, through uniffi's generated JNA code
# (the `...Jna` functions) against
#   stock          the bindings as uniffi-bindgen generates them, JVM defaults
#   stock-xmn16m   the same with a 16 MB young generation (-Xmn16m)
#   status-reuse   bindings with one uniffi template change (status-reuse.py: the call
#                  status structure reused per thread), JVM defaults; NOT what users get
# and, on a line of their own (`+ jni`), the same calls through the public functions (JNI,
# bindings/ffi/kotlin) in the same JVM, each REPEAT times in turn, so that a shared
# machine's load falls on all alike, and prints every run's wall-clock medians and the
# calling thread's CPU per call.
#
#   bench/kotlin/experiment/run.sh [REPEAT=2] [ROUNDS=9] [MS_PER_ROUND=300]
#
# Needs the release libtillgate_ffi.so and uniffi-bindgen (cargo build --release -p
# tillgate-ffi -p uniffi-bindgen), kotlinc and JNA as scripts/bench.sh finds them, and the
# fixture that tillgate-bench writes (target/bench/fixture: run scripts/bench.sh --only ffi
# once, or set FIXTURE=<dir with jws.txt, now.txt, jwks.json>).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$(pwd)
repeat=${1:-2}
rounds=${2:-9}
ms=${3:-300}
fixture=${FIXTURE:-$root/target/bench/fixture}
so=$root/target/release/libtillgate_ffi.so
bindgen=$root/target/release/uniffi-bindgen
jna=/usr/share/java/jna.jar
kotlinc=""
for k in tests/kotlin/node_modules/kotlin-compiler bench/kotlin/node_modules/kotlin-compiler; do
  [ -x "$k/bin/kotlinc-jvm" ] && { kotlinc="$root/$k/bin/kotlinc-jvm"; kl="$root/$k/lib"; break; }
done
for f in "$so" "$bindgen" "$jna" "$fixture/jws.txt"; do
  [ -e "$f" ] || { echo "run.sh: $f is missing (see the header)" >&2; exit 2; }
done
[ -n "$kotlinc" ] || { echo "run.sh: no kotlinc (npm install in tests/kotlin)" >&2; exit 2; }

work=$root/target/bench/kotlin-experiment
rm -rf "$work" && mkdir -p "$work"
"$bindgen" generate --library "$so" --language kotlin --out-dir "$work/stock" --no-format >&2
cp -r "$work/stock" "$work/status-reuse"
python3 bench/kotlin/experiment/status-reuse.py "$work/status-reuse/dev/tillgate/tillgate_ffi.kt"
for v in stock status-reuse; do
  echo "run.sh: compiling FfiBench against the $v bindings" >&2
  "$kotlinc" -nowarn -cp "$jna:$kl/kotlinx-coroutines-core-jvm.jar" "$work/$v"/dev/tillgate/*.kt \
    bindings/ffi/kotlin/dev/tillgate/*.kt bench/kotlin/src/FfiBench.kt -d "$work/$v.jar" >&2
done

run() { # variant jar jvm-flags...
  local name=$1 jar=$2; shift 2
  java "$@" -Djna.library.path="$(dirname "$so")" \
    -cp "$jar:$kl/kotlin-stdlib.jar:$kl/kotlinx-coroutines-core-jvm.jar:$jna" \
    dev.tillgate.bench.FfiBenchKt "$fixture" "$rounds" "$ms" |
    awk -v n="$name" -F= '
      { v[$1] = $2 }
      function line(label, suffix,   k, i) {
        printf "%-19s", label
        split("ns_per_call ns_per_call_trivial ns_per_call_empty", k, " ")
        for (i = 1; i <= 3; i++)
          printf " | %9.1f µs (thread %7.1f, gc %4.1f%%)", v[k[i] suffix] / 1e3, v["thread_cpu_" k[i] suffix] / 1e3, v["gc_share_" k[i] suffix] * 100
        printf "\n"
      }
      END { line(n, "_jna"); line(n " + jni", "") }'
}
echo "variant             | verifyDescriptor: wall (thread CPU, GC share)    | validateApiKey (trivial)                     | unixTimeMs (empty)"
for i in $(seq "$repeat"); do
  run stock "$work/stock.jar"
  run stock-xmn16m "$work/stock.jar" -Xmn16m
  run status-reuse "$work/status-reuse.jar"
done
