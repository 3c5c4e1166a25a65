#!/usr/bin/env bash
# Builds the npm package into bindings/wasm/pkg: web, bundler and nodejs variants of
# one optimised .wasm, with TypeScript types. Needs: the wasm32-unknown-unknown target,
# wasm-bindgen-cli at exactly the wasm-bindgen crate version, and `npm install` here
# (binaryen's wasm-opt). scripts/test-wasm.sh installs all of them.
#
# Two builds, chosen deliberately (measured, see bindings/README.md "Speed vs size"):
# - the fast one, `full` (npm `tillgate`, bindings/wasm/pkg; and `core`): the root
#   [profile.wasm-release] is opt-level "z", and the crates where verification spends
#   its time (curve25519-dalek field arithmetic, ed25519-dalek, sha2) are built at
#   opt-level 3 on top of it. All of the module at opt-level 3 is not measurably
#   faster; all at "z" is ~1.4x slower. With ed25519-dalek's precomputed tables
#   (tillgate-wasm feature `fast`): 36 KiB gzipped for 7-12 % faster verification
#   (and 2.7x faster signing); without them the >= 10x @noble/ed25519 goal is at its
#   edge on a loaded machine.
# - the small one, `lite` (npm `tillgate-lite`, bindings/wasm/pkg-lite): everything at
#   "z", 9.7 KiB gzipped smaller than with the hot crates at 3, for ~1.37x the
#   verification time (~8.7x @noble/ed25519 instead of ~11.9x; the speed goal is the
#   full package's). HOT_OPT_LEVEL=3 WASM_VARIANT=lite gives the faster lite.
# wasm-opt runs at -O3 (-Oz, -Os, --converge and -O4 are within 1 % in size and speed
# here). No `+simd128`: not measurably faster (field arithmetic is scalar 32x32->64
# products) and it would refuse to load on browsers without wasm SIMD.
# Env: WASM_OPT_LEVEL, CARGO_PROFILE (default wasm-release), HOT_OPT_LEVEL (default 3,
# "z" for lite; "z" gives the all-size build).
#
# WASM_VARIANT chooses what goes in (cargo features of tillgate-wasm):
#   full  (default) core + client, every export: the package in bindings/wasm/pkg
#   core  core alone (no client)
#   lite  verify-only core, for browsers, built small: no signing, no Argon2 (no
#         SigningKey, generateSigningKey, signDescriptor, DynamicKeyPair,
#         deriveDynamicKeyPair, createDynamicApiKey*); everything an app verifies or
#         validates stays, with the same results
#   lite-client  lite + the client API
# A variant other than full builds under its own cargo profile (<profile>-<variant>,
# inheriting <profile>), so it never overwrites the full build's .wasm in target/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${CARGO_PROFILE:-wasm-release}
opt=${WASM_OPT_LEVEL:--O3}
# WASM_FEATURES=core is the older spelling of WASM_VARIANT=core.
variant=${WASM_VARIANT:-${WASM_FEATURES:-full}}
features=()
case "$variant" in
  full) ;;
  core) features=(--no-default-features --features sign,dynamic-key-derive,fast) ;;
  lite) features=(--no-default-features) ;;
  lite-client) features=(--no-default-features --features client) ;;
  *) echo "unknown WASM_VARIANT $variant (full, core, lite, lite-client)" >&2; exit 2 ;;
esac
# The full package is bindings/wasm/pkg (what the demos use); others pkg-<variant>.
pkg=${PKG_DIR:-$here/pkg}
name=tillgate
config=()
if [ "$variant" != full ]; then
  pkg=${PKG_DIR:-$here/pkg-$variant}
  name=tillgate-$variant
  config=(--config "profile.$profile-$variant.inherits=\"$profile\"")
  profile=$profile-$variant
fi

cd "$root"
# The small build (lite) leaves the hot crates at the profile's "z" too.
case "$variant" in lite) hot=${HOT_OPT_LEVEL:-z} ;; *) hot=${HOT_OPT_LEVEL:-3} ;; esac
hot_config=()
if [ "$hot" != z ]; then
  [ "$hot" = s ] && hot='"s"'
  for c in curve25519-dalek ed25519-dalek sha2; do
    hot_config+=(--config "profile.$profile.package.$c.opt-level=$hot")
  done
fi
# Every variant rebuilds the standard library for size, with nightly cargo's build-std
# (WASM_BUILD_STD=1, the default; needs the toolchain named by WASM_NIGHTLY, default the
# dated nightly below, pinned because build-std and the panic flag are unstable, with
# its rust-src component): std's formatting, allocator and collections
# at the profile's opt-level "z" with std's `optimize_for_size` feature
# (WASM_STD_FEATURES), instead of the prebuilt std compiled for speed, and panics as an
# immediate trap (`-Cpanic=immediate-abort`) instead of the panic machinery (location
# strings, message formatting, hook). On wasm32-unknown-unknown a panic already ended
# in the same trap (a JS `RuntimeError: unreachable`) with its message going nowhere,
# so nothing observable changes. lite -10 KiB gzipped, full -17 KiB, verification as
# fast (see bindings/README.md). WASM_BUILD_STD=0 builds with the stable toolchain.
wasm_nightly_default=nightly-2026-05-20
build_std=${WASM_BUILD_STD:-1}
toolchain=()
std_config=()
if [ "$build_std" = 1 ]; then
  nightly=${WASM_NIGHTLY:-$wasm_nightly_default}
  if command -v rustup >/dev/null; then
    rustup toolchain list | grep -q "^$nightly" || {
      echo "build.sh: rustup toolchain install $nightly (once)" >&2
      rustup toolchain install "$nightly" --profile minimal >&2
    }
    rustup component list --toolchain "$nightly" --installed | grep -q '^rust-src' ||
      rustup component add rust-src --toolchain "$nightly" >&2
  fi
  toolchain=("+$nightly")
  std_config=(-Zbuild-std=std,panic_abort "-Zbuild-std-features=${WASM_STD_FEATURES-optimize_for_size}")
  export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-Zunstable-options -Cpanic=immediate-abort"
fi
cargo ${toolchain[@]+"${toolchain[@]}"} build -p tillgate-wasm --target wasm32-unknown-unknown --profile "$profile" \
  ${features[@]+"${features[@]}"} ${std_config[@]+"${std_config[@]}"} \
  ${config[@]+"${config[@]}"} ${hot_config[@]+"${hot_config[@]}"}
wasm="${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/$profile/tillgate_wasm.wasm"

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
  "name": "$name",
  "version": "$version",
  "description": "Tillgate for browsers and node: verify descriptors, API keys, URL tokens, receipts (Rust core compiled to WebAssembly).",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "types": "./node/tillgate.d.ts",
  "main": "./node/tillgate.js",
  "module": "./bundler/tillgate.js",
  "exports": {
    ".": {
      "node": { "types": "./node/tillgate.d.ts", "default": "./node/tillgate.js" },
      "import": { "types": "./bundler/tillgate.d.ts", "default": "./bundler/tillgate.js" },
      "default": { "types": "./bundler/tillgate.d.ts", "default": "./bundler/tillgate.js" }
    },
    "./web": { "types": "./web/tillgate.d.ts", "default": "./web/tillgate.js" },
    "./node": { "types": "./node/tillgate.d.ts", "default": "./node/tillgate.js" }
  },
  "files": ["web", "bundler", "node", "README.md"],
  "sideEffects": ["./bundler/tillgate.js", "./bundler/tillgate_bg.js"]
}
JSON
# The package's own README: a quick start over the real exports (scripts/test-wasm.sh
# type-checks its code against the generated .d.ts files).
cp "$here/README.md" "$pkg/README.md"
echo "built $pkg ($variant, wasm-opt $opt)"
