#!/usr/bin/env bash
# Runs tillgate-client's browser tests (tests/web.rs) in headless Chromium through
# wasm-bindgen-test-runner. Needs: rustup target wasm32-unknown-unknown, the
# wasm-bindgen CLI at the wasm-bindgen crate's exact version (0.2.130), chromium and
# chromedriver (Debian: apt-get install chromium chromium-driver).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
want=$(grep -m1 -A1 'name = "wasm-bindgen"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')
have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  cargo install wasm-bindgen-cli --version "$want"
fi
profile=$(mktemp -d /tmp/chromium-XXXXXX)
driver_json=$(mktemp /tmp/webdriver-XXXXXX.json)
trap 'rm -rf "$profile" "$driver_json"' EXIT
cat >"$driver_json" <<JSON
{"goog:chromeOptions":{"binary":"${CHROMIUM:-/usr/bin/chromium}","args":["--headless","--no-sandbox","--disable-gpu","--disable-quic","--no-first-run","--disable-background-networking","--disable-component-update","--disable-sync","--user-data-dir=$profile"]}}
JSON
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
WASM_BINDGEN_USE_BROWSER=1 \
CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}" \
WASM_BINDGEN_TEST_WEBDRIVER_JSON="$driver_json" \
  cargo test -p tillgate-client --target wasm32-unknown-unknown --features web-storage --test web
