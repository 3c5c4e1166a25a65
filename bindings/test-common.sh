# Sourced by scripts/test-{kotlin,python,swift,wasm}.sh: idempotent installs and the
# one build of tillgate-ffi whose exact .so every uniffi binding is generated from.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT="$ROOT/target/bindings-test"
mkdir -p "$OUT"

log() { printf '\n==> %s\n' "$*" >&2; }

# apt_install PKG...: installs the Debian packages that are missing.
apt_updated=""
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

need_node() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
}

# npm_install DIR: installs DIR's locked devDependencies into DIR/node_modules (git-ignored).
npm_install() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in ${dir#$ROOT/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# build_ffi: builds tillgate-ffi and the pinned uniffi-bindgen (debug profile, shared by
# Kotlin, Python and Swift) and sets FFI_LIB to the exact library under test.
build_ffi() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
  log "cargo build -p tillgate-ffi -p uniffi-bindgen"
  cargo build -q -p tillgate-ffi -p uniffi-bindgen
  FFI_LIB="$ROOT/target/debug/libtillgate_ffi.so"
  BINDGEN="$ROOT/target/debug/uniffi-bindgen"
}

# generate LANGUAGE OUTDIR: bindings generated from $FFI_LIB itself.
generate() {
  rm -rf "$2"
  "$BINDGEN" generate --library "$FFI_LIB" --language "$1" --out-dir "$2" --no-format >/dev/null
}
