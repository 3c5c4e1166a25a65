#!/usr/bin/env bash
# wasm: builds the npm package (bindings/wasm/build.sh: web, bundler, nodejs; binaryen
# wasm-opt), reports its sizes, then runs every shared vector in node (node:test) and in
# headless Debian Chromium (playwright-core driving /usr/bin/chromium).
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

log "build the npm package"
"$ROOT/bindings/wasm/build.sh"
log "sizes (raw / gzip -9)"
for f in "$ROOT"/bindings/wasm/pkg/web/tillgate_bg.wasm "$ROOT"/bindings/wasm/pkg/*/tillgate*.js; do
  printf '%-40s %8d %8d\n' "${f#$ROOT/bindings/wasm/}" "$(stat -c%s "$f")" "$(gzip -9c "$f" | wc -c)"
done

status=0
log "node:test"
node --test --test-reporter=spec "$ROOT/tests/js/node.test.mjs" || status=1
log "headless Chromium"
node "$ROOT/tests/js/browser.mjs" || status=1
exit $status
