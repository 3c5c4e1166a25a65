#!/usr/bin/env bash
# Runs every Tillgate check, the way CI does, on a fresh Debian machine or a warm one.
# Installs what it needs (rustup components and targets, nightly + cargo-fuzz, Debian and
# npm packages for the bindings and the browser tests). Prints a result line per suite
# and a final "N passed, N failed" summary; exits non-zero if anything failed. A suite
# whose script is missing fails.
#
#   scripts/test.sh            everything
#   TILLGATE_QUICK=1 ...       leaves out the Swift bindings (a debootstrap chroot, the
#                              slowest suite) and fuzzes 2 s per target instead of 10
#                              (TILLGATE_FUZZ_SECS still wins); listed as skips
#
# PostgreSQL: the tests use TILLGATE_TEST_PG_URL (default
# postgres://postgres@127.0.0.1:5432/test). A test that cannot use it reports a skip,
# unless TILLGATE_REQUIRE_PG=1, when it fails. CI machines have PostgreSQL (the project's
# contract), so with CI=true this script sets TILLGATE_REQUIRE_PG=1 (unless it is set).
# Every skip a test reports lands in $TILLGATE_SKIP_LOG ($log_dir/skips.txt, emptied at
# start); the summary lists and counts them, with the skips the runners counted (pytest,
# node, XCTest, Kotlin).
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1
if [ "${CI:-}" = true ] && [ -z "${TILLGATE_REQUIRE_PG:-}" ]; then
  export TILLGATE_REQUIRE_PG=1
fi
quick="${TILLGATE_QUICK:-0}"

log_dir="${TILLGATE_TEST_LOG_DIR:-target/test-logs}"
mkdir -p "$log_dir"
export TILLGATE_SKIP_LOG="$(cd "$log_dir" && pwd)/skips.txt"
: >"$TILLGATE_SKIP_LOG"
passed=0; failed=0; results=()
tests_passed=0; tests_failed=0; tests_skipped=0

# count LOG: adds the test counts a suite printed to the totals: cargo's "test result:"
# lines; pytest's summary ("3 failed, 40 passed, 2 skipped, 1 error in 1.2s", errors
# count as failed); node's "ℹ pass N" / "ℹ fail N" / "ℹ skipped N"; XCTest's total
# ("Executed N tests, with S tests skipped and F failures (U unexpected)" after
# "Test Suite 'All tests'"; the per-suite lines before it are not counted again); and
# the "N passed, N failed[, N skipped]" lines of the other runners (Kotlin, Chromium,
# reliability parts). A suite's exit code decides pass/fail; the counts are for the
# summary.
count() {
  local p f s
  read -r p f s < <(awk '
    /^test result: / { for (i=1;i<=NF;i++) { if ($(i)=="passed;") p+=$(i-1); if ($(i)=="failed;") f+=$(i-1) } next }
    /^([A-Za-z0-9_-]+: )?[0-9]+ passed, [0-9]+ failed/ {
      sub(/^[A-Za-z0-9_-]+: /, ""); p+=$1; f+=$3
      if (match($0, /, [0-9]+ skipped/)) { x=substr($0, RSTART+2, RLENGTH-2); split(x, a, " "); s+=a[1] }
      next }
    /^=* *[0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)(, [0-9]+ [a-z]+)* in [0-9.]+s/ {
      line=$0; sub(/^=* */, "", line); sub(/ in [0-9.]+s.*$/, "", line)
      n=split(line, parts, ", ")
      for (i=1;i<=n;i++) { split(parts[i], a, " ")
        if (a[2]=="passed" || a[2]=="xpassed") p+=a[1]
        else if (a[2]=="failed" || a[2]=="error" || a[2]=="errors") f+=a[1]
        else if (a[2]=="skipped" || a[2]=="xfailed") s+=a[1] }
      next }
    /^ℹ pass [0-9]+$/ { p+=$3; next }
    /^ℹ fail [0-9]+$/ { f+=$3; next }
    /^ℹ skipped [0-9]+$/ { s+=$3; next }
    /Test Suite .All tests. (passed|failed)/ { all=1; next }
    /Executed [0-9]+ tests?, with / {
      if (all) {
        match($0, /Executed [0-9]+/); n=substr($0, RSTART+9, RLENGTH-9)+0
        k=0; if (match($0, /[0-9]+ tests? skipped/)) { split(substr($0, RSTART, RLENGTH), a, " "); k=a[1]+0 }
        match($0, /[0-9]+ failures?/); split(substr($0, RSTART, RLENGTH), a, " "); e=a[1]+0
        p+=n-k-e; f+=e; s+=k; all=0
      }
      next }
    END { print p+0, f+0, s+0 }' "$1")
  tests_passed=$((tests_passed+p)); tests_failed=$((tests_failed+f)); tests_skipped=$((tests_skipped+s))
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
  # Debian packages several suites share: a C compiler and libc headers (rustup brings
  # none: linking, bundled SQLite, ring), Chromium + chromedriver (browser tests),
  # JNA + JUnit 4 (Kotlin on the JVM), curl and openssl (deploy/check.sh). Installed only
  # when missing.
  local need=()
  command -v cc >/dev/null || need+=(gcc libc6-dev)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
  [ -f /usr/share/java/jna.jar ] || need+=(libjna-java)
  [ -f /usr/share/java/junit4.jar ] || need+=(junit4)
  command -v curl >/dev/null || need+=(curl)
  command -v openssl >/dev/null || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    local sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
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
# The workspace, and tillgate-ffi's benchmark-only JNI baselines (feature
# `bench-baseline`, built by scripts/bench.sh alone).
lint() {
  cargo clippy --workspace --all-targets -- -D warnings &&
    cargo clippy -p tillgate-ffi --all-targets --features bench-baseline -- -D warnings
}
run clippy lint
run core-purity core_is_pure
run vectors-drift cargo run -q -p xtask -- vectors --check
run cargo-test cargo test --workspace
# The criterion benchmarks ([[bench]] targets), each run once as a test (criterion's test
# mode, dev profile): proves they build and run without a release build of the whole
# workspace. Their measurements: `cargo bench`, scripts/bench.sh.
run benches cargo test --workspace --bench '*'
run client-wasm-build cargo build -p tillgate-client --target wasm32-unknown-unknown --features web-storage
# Every suite runs unconditionally: a missing or non-executable script is a FAIL.
run client-browser client/test-wasm.sh
if [ "$quick" = 1 ]; then
  # The bindings without Swift (scripts/test-bindings.sh runs all four).
  for lang in kotlin python wasm; do run "test-$lang" "scripts/test-$lang.sh"; done
  echo "SKIP scripts/test-swift.sh: TILLGATE_QUICK=1" >>"$TILLGATE_SKIP_LOG"
else
  run test-bindings scripts/test-bindings.sh
fi
for s in scripts/test-web-demo.sh scripts/test-android-sample.sh scripts/test-reliability.sh; do
  run "$(basename "$s" .sh)" "$s"
done
run deploy deploy/check.sh
run bench-quick scripts/bench.sh --quick
fuzz_secs="${TILLGATE_FUZZ_SECS:-10}"
if [ "$quick" = 1 ] && [ -z "${TILLGATE_FUZZ_SECS:-}" ]; then
  fuzz_secs=2
  echo "SKIP long fuzzing: TILLGATE_QUICK=1 (2 s per target instead of 10)" >>"$TILLGATE_SKIP_LOG"
fi
run fuzz scripts/fuzz.sh "$fuzz_secs"

echo
echo "Summary"
printf '  %s\n' "${results[@]}"
echo "suites: $passed passed, $failed failed"
# Skips tests reported themselves (cargo counts such a test as passed), then the ones the
# runners counted.
reported=$(grep -c . "$TILLGATE_SKIP_LOG" 2>/dev/null)
echo "skipped: $reported reported (${TILLGATE_SKIP_LOG#"$PWD/"}), $tests_skipped counted by runners"
[ "$reported" -gt 0 ] && sed 's/^/  /' "$TILLGATE_SKIP_LOG"
echo "tests: $tests_passed passed, $tests_failed failed"
[ "$failed" = 0 ] && [ "$tests_failed" = 0 ]
