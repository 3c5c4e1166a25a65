#!/usr/bin/env bash
# wasm: builds the npm packages (bindings/wasm/build.sh: web, bundler, nodejs; binaryen
# wasm-opt) -- the full package (core + client, bindings/wasm/pkg) and the verify-only
# "lite" package (bindings/wasm/pkg-lite) -- reports their sizes against the issue's
# goals, then runs every shared vector against each in node (node:test) and in headless
# Debian Chromium (playwright-core driving /usr/bin/chromium), plus an end-to-end
# activation in node against a running tillgate-server (full package), and a type check
# of the full package's .d.ts files (tsc, skipLibCheck false). The lite runs
# skip, and count, the vectors of the functions lite leaves out (signing, Argon2), and
# the case members only those read (tests/js/vectors.mjs).
# TILLGATE_WASM_CORE_SIZE=1 also builds and measures core alone (no client) and
# lite + client, which are not shipped.
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

# sizes DIR LABEL GOAL_KIB: raw and gzip -9 bytes of each shipped file, then the web
# variant's .wasm + JS glue (what a browser downloads) against the issue's goal.
sizes() {
  local f raw gz total=0
  for f in "$1"/web/tillgate_bg.wasm "$1"/*/tillgate*.js; do
    raw=$(stat -c%s "$f"); gz=$(gzip -9c "$f" | wc -c)
    printf '%-14s %-28s %8d %8d\n' "$2" "${f#$1/}" "$raw" "$gz"
  done
  for f in "$1"/web/tillgate_bg.wasm "$1"/web/tillgate.js; do
    total=$((total + $(gzip -9c "$f" | wc -c)))
  done
  printf '%-14s web .wasm + glue, gzipped: %d B = %.1f KiB; goal <= %d KiB: %s\n' "$2" \
    "$total" "$(awk "BEGIN{print $total/1024}")" "$3" \
    "$([ "$total" -le $(($3 * 1024)) ] && echo met || echo NOT met)"
}
if [ "${TILLGATE_WASM_CORE_SIZE:-0}" = 1 ]; then
  log "build core alone and lite + client (not shipped), for their sizes"
  WASM_VARIANT=core PKG_DIR="$OUT/wasm-core-pkg" "$ROOT/bindings/wasm/build.sh"
  WASM_VARIANT=lite-client PKG_DIR="$OUT/wasm-lite-client-pkg" "$ROOT/bindings/wasm/build.sh"
fi
log "build the npm package (core + client)"
"$ROOT/bindings/wasm/build.sh"
log "build the lite npm package (verify-only core, bindings/wasm/pkg-lite)"
WASM_VARIANT=lite "$ROOT/bindings/wasm/build.sh"
log "sizes: raw / gzip -9 bytes"
if [ "${TILLGATE_WASM_CORE_SIZE:-0}" = 1 ]; then
  sizes "$OUT/wasm-core-pkg" "core alone" 45
  sizes "$OUT/wasm-lite-client-pkg" "lite + client" 120
fi
sizes "$ROOT/bindings/wasm/pkg-lite" "lite" 45
sizes "$ROOT/bindings/wasm/pkg" "core + client" 120

status=0
# The generated TypeScript types as an app compiles them: tests/js/types/app.ts and the
# package README's quick start against the package (resolved through its package.json
# exports) with skipLibCheck false.
log "tsc --noEmit: the package's .d.ts files, an app using its main types, the README's quick start"
ln -sfn ../../../bindings/wasm/pkg "$ROOT/tests/js/node_modules/tillgate"
awk '/^```ts$/ { f = 1; next } /^```$/ { f = 0 } f' "$ROOT/bindings/wasm/pkg/README.md" \
  > "$ROOT/tests/js/types/readme.gen.ts"
"$ROOT/tests/js/node_modules/.bin/tsc" -p "$ROOT/tests/js/types" && echo "types: ok" || status=1
# A node app (module node16, CommonJS and ESM) gets the node build's typings.
"$ROOT/tests/js/node_modules/.bin/tsc" -p "$ROOT/tests/js/types-node" && echo "types, node16: ok" || status=1

start_server
log "node:test"
node --test --test-reporter=spec "$ROOT/tests/js/node.test.mjs" "$ROOT/tests/js/e2e.test.mjs" || status=1
log "headless Chromium"
node "$ROOT/tests/js/browser.mjs" || status=1
log "node:test, lite package"
TILLGATE_PKG="$ROOT/bindings/wasm/pkg-lite" node --test --test-reporter=spec "$ROOT/tests/js/node.test.mjs" || status=1
log "headless Chromium, lite package"
TILLGATE_PKG="$ROOT/bindings/wasm/pkg-lite" node "$ROOT/tests/js/browser.mjs" || status=1
exit $status
