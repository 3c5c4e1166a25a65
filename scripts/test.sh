#!/usr/bin/env bash
# Runs every Tillgate check, the way CI does, on a fresh Debian machine or a warm one.
# Installs what it needs (rustup components and targets, nightly + cargo-fuzz, Debian and
# npm packages for the bindings and the browser tests). Prints a result line per suite
# and a final "N passed, N failed" summary; exits non-zero if anything failed.
#
#   scripts/test.sh            everything
#   TILLGATE_QUICK=1 ...       skip the slow optional suites (Swift, long fuzzing)
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

log_dir="${TILLGATE_TEST_LOG_DIR:-target/test-logs}"
mkdir -p "$log_dir"
passed=0; failed=0; results=()
tests_passed=0; tests_failed=0

# count LOG: adds the test counts a suite printed (cargo's "test result:" lines, pytest's
# and node's summaries, and the "N passed, N failed" lines of the other runners) to the
# totals. A suite's exit code decides pass/fail; the counts are for the summary.
count() {
  local p f
  read -r p f < <(awk '
    /^test result: / { for (i=1;i<=NF;i++) { if ($(i)=="passed;") p+=$(i-1); if ($(i)=="failed;") f+=$(i-1) } next }
    /^([A-Za-z0-9_-]+: )?[0-9]+ passed, [0-9]+ failed/ { sub(/^[A-Za-z0-9_-]+: /, ""); p+=$1; f+=$3; next }
    /^[0-9]+ passed in [0-9.]+s$/ { p+=$1; next }
    /^ℹ pass [0-9]+$/ { p+=$3; next }
    /^ℹ fail [0-9]+$/ { f+=$3; next }
    END { print p+0, f+0 }' "$1")
  tests_passed=$((tests_passed+p)); tests_failed=$((tests_failed+f))
}

# run NAME COMMAND...: runs one suite, keeps its output in $log_dir/NAME.log.
run() {
  local name="$1"; shift
  local start=$SECONDS
  echo "==> $name"
  local ok=0
  "$@" >"$log_dir/$name.log" 2>&1 || ok=$?
  count "$log_dir/$name.log"
  if [ "$ok" = 0 ]; then
    passed=$((passed+1)); results+=("PASS  $name ($((SECONDS-start)) s)")
    grep -E '^(test result:|[0-9]+ passed|.*: [0-9]+ passed, [0-9]+ failed)' "$log_dir/$name.log" | tail -n 20 | sed 's/^/    /'
  else
    failed=$((failed+1)); results+=("FAIL  $name ($((SECONDS-start)) s) -> $log_dir/$name.log")
    tail -n 60 "$log_dir/$name.log" | sed 's/^/    /'
  fi
}

setup_rust() {
  rustup component add rustfmt clippy
  rustup target add wasm32-unknown-unknown
}

setup_system() {
  # Debian packages several suites share: Chromium + chromedriver (browser tests),
  # JNA + JUnit 4 (Kotlin on the JVM), curl and openssl (deploy/check.sh). Installed only
  # when missing.
  local need=()
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
  [ -f /usr/share/java/jna.jar ] || need+=(libjna-java)
  [ -f /usr/share/java/junit4.jar ] || need+=(junit4)
  command -v curl >/dev/null || need+=(curl)
  command -v openssl >/dev/null || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
}

core_is_pure() {
  # The core knows nothing of async runtimes, HTTP, databases or FFI (host target).
  local bad
  bad=$(cargo tree -p tillgate-core -e normal --prefix none | grep -E '^(tokio|reqwest|axum|hyper|sqlx|uniffi|wasm-bindgen) ' || true)
  if [ -n "$bad" ]; then echo "forbidden dependencies in tillgate-core: $bad"; return 1; fi
  cargo build -p tillgate-core --target wasm32-unknown-unknown
}

run setup-rust setup_rust
run setup-system setup_system
run fmt cargo fmt --all -- --check
run clippy cargo clippy --workspace --all-targets -- -D warnings
run core-purity core_is_pure
run vectors-drift cargo run -q -p xtask -- vectors --check
run cargo-test cargo test --workspace
# The criterion benchmarks ([[bench]] targets), each run once as a test (criterion's test
# mode, dev profile): proves they build and run without a release build of the whole
# workspace. Their measurements: `cargo bench`, scripts/bench.sh.
run benches cargo test --workspace --bench '*'
run client-wasm-build cargo build -p tillgate-client --target wasm32-unknown-unknown --features web-storage
[ -x client/test-wasm.sh ] && run client-browser client/test-wasm.sh
for s in scripts/test-bindings.sh scripts/test-web-demo.sh scripts/test-android-sample.sh scripts/test-reliability.sh; do
  [ -x "$s" ] && run "$(basename "$s" .sh)" "$s"
done
[ -x deploy/check.sh ] && run deploy deploy/check.sh
run bench-quick scripts/bench.sh --quick
run fuzz scripts/fuzz.sh "${TILLGATE_FUZZ_SECS:-10}"

echo
echo "Summary"
printf '  %s\n' "${results[@]}"
echo "suites: $passed passed, $failed failed"
echo "tests: $tests_passed passed, $tests_failed failed"
[ "$failed" = 0 ] && [ "$tests_failed" = 0 ]
