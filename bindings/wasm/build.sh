#!/usr/bin/env bash
# Builds the npm package into bindings/wasm/pkg: web, bundler and nodejs variants of
# one optimised .wasm, with TypeScript types. Needs: the wasm32-unknown-unknown target,
# wasm-bindgen-cli at exactly the wasm-bindgen crate version, and `npm install` here
# (binaryen's wasm-opt). scripts/test-wasm.sh installs all of them.
#
# Env: WASM_OPT_LEVEL (default -O3, see bindings/README.md for why), CARGO_PROFILE
# (default wasm-release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${CARGO_PROFILE:-wasm-release}
opt=${WASM_OPT_LEVEL:--O3}
pkg="$here/pkg"

cd "$root"
cargo build -p tillgate-wasm --target wasm32-unknown-unknown --profile "$profile"
wasm="$root/target/wasm32-unknown-unknown/$profile/tillgate_wasm.wasm"

rm -rf "$pkg"
for t in web bundler nodejs; do
  out="$pkg/${t/nodejs/node}"
  wasm-bindgen --target "$t" --out-dir "$out" --out-name tillgate --remove-name-section \
    --remove-producers-section "$wasm"
  "$here/node_modules/.bin/wasm-opt" "$opt" "$out/tillgate_bg.wasm" -o "$out/tillgate_bg.wasm"
done
# The nodejs variant is CommonJS; the package root is ESM.
echo '{"type":"commonjs"}' > "$pkg/node/package.json"

version=$(cargo metadata --no-deps --format-version 1 |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s).packages.find(p=>p.name==="tillgate-wasm");console.log(p.version)})')
cat > "$pkg/package.json" <<JSON
{
  "name": "tillgate",
  "version": "$version",
  "description": "Tillgate for browsers and node: verify descriptors, API keys, URL tokens, receipts (Rust core compiled to WebAssembly).",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "types": "./web/tillgate.d.ts",
  "main": "./node/tillgate.js",
  "module": "./bundler/tillgate.js",
  "exports": {
    ".": {
      "types": "./bundler/tillgate.d.ts",
      "node": "./node/tillgate.js",
      "import": "./bundler/tillgate.js",
      "default": "./bundler/tillgate.js"
    },
    "./web": { "types": "./web/tillgate.d.ts", "default": "./web/tillgate.js" },
    "./node": { "types": "./node/tillgate.d.ts", "default": "./node/tillgate.js" }
  },
  "files": ["web", "bundler", "node"],
  "sideEffects": ["./bundler/tillgate.js", "./bundler/tillgate_bg.js"]
}
JSON
echo "built $pkg (wasm-opt $opt)"
