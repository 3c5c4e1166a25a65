#!/usr/bin/env bash
# Builds the npm package into bindings/wasm/pkg: web, bundler and nodejs variants of
# one optimised .wasm, with TypeScript types. Needs: the wasm32-unknown-unknown target,
# wasm-bindgen-cli at exactly the wasm-bindgen crate version, and `npm install` here
# (binaryen's wasm-opt). scripts/test-wasm.sh installs all of them.
#
# Speed vs size (measured, see bindings/README.md): the root [profile.wasm-release] is
# opt-level "z"; the crates on the verification hot path (curve25519-dalek,
# ed25519-dalek, sha2) are built at opt-level 3 on top of it. That keeps most of
# opt-level 3's speed for a fraction of its size. wasm-opt then runs at -O3 (-Oz saves
# under 1 % here). Env: WASM_OPT_LEVEL, CARGO_PROFILE (default wasm-release),
# HOT_OPT_LEVEL (default 3; "z" gives the all-size build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${CARGO_PROFILE:-wasm-release}
opt=${WASM_OPT_LEVEL:--O3}
pkg=${PKG_DIR:-$here/pkg}
# WASM_FEATURES=core builds core alone (no tillgate-client), e.g. to measure it.
features=()
[ "${WASM_FEATURES:-}" != core ] || features=(--no-default-features)

cd "$root"
hot=${HOT_OPT_LEVEL:-3}
[ "$hot" = z ] || [ "$hot" = s ] && hot="\"$hot\""
cargo build -p tillgate-wasm --target wasm32-unknown-unknown --profile "$profile" ${features[@]+"${features[@]}"} \
  --config "profile.$profile.package.curve25519-dalek.opt-level=$hot" \
  --config "profile.$profile.package.ed25519-dalek.opt-level=$hot" \
  --config "profile.$profile.package.sha2.opt-level=$hot"
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
