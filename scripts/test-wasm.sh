#!/usr/bin/env bash
# wasm: builds the npm package (bindings/wasm/build.sh: web, bundler, nodejs; binaryen
# wasm-opt), reports its sizes, then runs every shared vector in node (node:test) and in
# headless Debian Chromium (playwright-core driving /usr/bin/chromium), plus an
# end-to-end activation in node against a running tillgate-server.
# TILLGATE_WASM_CORE_SIZE=1 also builds and measures core alone (no client).
source "$(dirname "$0")/../bindings/test-common.sh"

apt_install chromium
need_node
command -v rustup >/dev/null && { rustup target list --installed | grep -qx wasm32-unknown-unknown ||
  rustup target add wasm32-unknown-unknown; }
# The CLI must equal the wasm-bindgen crate version exactly (never --locked: its lockfile
# asks for a webpki-roots release this registry does not serve).
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' "$ROOT/Cargo.toml")
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  log "cargo install wasm-bindgen-cli $want (~7 min, once)"
  cargo install -q wasm-bindgen-cli --version "$want"
fi
npm_install "$ROOT/bindings/wasm"
npm_install "$ROOT/tests/js"

sizes() {
  for f in "$1"/web/tillgate_bg.wasm "$1"/*/tillgate*.js; do
    printf '%-14s %-28s %8d %8d\n' "$2" "${f#$1/}" "$(stat -c%s "$f")" "$(gzip -9c "$f" | wc -c)"
  done
}
if [ "${TILLGATE_WASM_CORE_SIZE:-0}" = 1 ]; then
  log "build core alone (no client), for its size"
  WASM_FEATURES=core PKG_DIR="$OUT/wasm-core-pkg" "$ROOT/bindings/wasm/build.sh"
fi
log "build the npm package (core + client)"
"$ROOT/bindings/wasm/build.sh"
log "sizes: raw / gzip -9 bytes"
[ ! -d "$OUT/wasm-core-pkg" ] || [ "${TILLGATE_WASM_CORE_SIZE:-0}" != 1 ] || sizes "$OUT/wasm-core-pkg" "core alone"
sizes "$ROOT/bindings/wasm/pkg" "core + client"
start_server

status=0
log "node:test"
node --test --test-reporter=spec "$ROOT/tests/js/node.test.mjs" "$ROOT/tests/js/e2e.test.mjs" || status=1
log "headless Chromium"
node "$ROOT/tests/js/browser.mjs" || status=1
exit $status
