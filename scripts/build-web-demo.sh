#!/usr/bin/env bash
# Builds the web demo into web-demo/dist (served by tillgate-server under /demo/ when
# TILLGATE_DEMO_DIR points at it; scripts/run.sh does that). Idempotent: safe to run again.
#
#  1. the npm package in bindings/wasm/pkg, through the bindings' own build script, when
#     it is missing or older than anything it is built from (the wasm crate, its build
#     script and README, core, client, the workspace's Cargo.toml and Cargo.lock);
#     installs the wasm32 target, the wasm-bindgen CLI at the crate's exact version and
#     binaryen from npm if needed;
#  2. web-demo's npm packages (TypeScript, playwright-core, the package itself as a
#     file: dependency) into the git-ignored web-demo/node_modules;
#  3. tsc, then static files and the package's browser build copied into dist/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { printf '==> %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "apt-get install nodejs npm"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

# 1. The wasm npm package.
pkg="$ROOT/bindings/wasm/pkg"
wasm="$pkg/web/tillgate_bg.wasm"
stale=0
if [ ! -f "$wasm" ] || [ ! -f "$pkg/package.json" ]; then
  stale=1
elif [ -n "$(find bindings/wasm/src bindings/wasm/Cargo.toml bindings/wasm/build.sh bindings/wasm/README.md \
    core/src core/Cargo.toml client/src client/Cargo.toml Cargo.toml Cargo.lock \
    -newer "$wasm" -print -quit 2>/dev/null)" ]; then
  stale=1
fi
if [ "$stale" = 1 ]; then
  log "building the tillgate npm package (bindings/wasm/build.sh)"
  rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ -n "$want" ] && [ "$have" != "$want" ]; then
    # No --locked: see shared TOOLCHAIN notes (its lockfile asks for an unavailable crate).
    log "cargo install wasm-bindgen-cli $want (several minutes, once)"
    cargo install -q wasm-bindgen-cli --version "$want"
  fi
  if [ ! -x bindings/wasm/node_modules/.bin/wasm-opt ]; then
    (cd bindings/wasm && npm ci --no-audit --no-fund --loglevel=error)
  fi
  bindings/wasm/build.sh
else
  log "tillgate npm package is up to date ($pkg)"
fi

# 2. The demo's npm packages.
cd "$ROOT/web-demo"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -e node_modules/tillgate/web/tillgate.js ]; then
  log "npm ci in web-demo"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 3. dist/
log "tsc -> web-demo/dist"
rm -rf dist
node_modules/.bin/tsc -p .
cp static/* dist/
mkdir -p dist/vendor/tillgate
cp node_modules/tillgate/web/tillgate.js node_modules/tillgate/web/tillgate_bg.wasm dist/vendor/tillgate/
log "built web-demo/dist ($(du -sh dist | cut -f1)); the server serves it at /demo/"
