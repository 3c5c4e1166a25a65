# Sourced by scripts/test-{kotlin,python,swift,wasm}.sh: idempotent installs and the
# one build of tillgate-ffi whose exact .so every uniffi binding is generated from.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT="$ROOT/target/bindings-test"
mkdir -p "$OUT"
# Where cargo puts what it builds (CARGO_TARGET_DIR when set).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac

# Cleanups run at exit, last added first.
EXIT_HOOKS=()
run_exit_hooks() { for ((i=${#EXIT_HOOKS[@]}-1; i>=0; i--)); do ${EXIT_HOOKS[$i]} || true; done; }
trap run_exit_hooks EXIT

log() { printf '\n==> %s\n' "$*" >&2; }

# Root's commands (apt-get; the Swift suite's chroot) run through sudo for other users.
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"

# apt_install PKG...: installs the Debian packages that are missing.
apt_updated=""
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  [ -n "$apt_updated" ] || { $sudo_ apt-get update -qq; apt_updated=1; }
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
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
  FFI_LIB="$TARGET_DIR/debug/libtillgate_ffi.so"
  BINDGEN="$TARGET_DIR/debug/uniffi-bindgen"
}

# generate LANGUAGE OUTDIR: bindings generated from $FFI_LIB itself.
generate() {
  rm -rf "$2"
  "$BINDGEN" generate --library "$FFI_LIB" --language "$1" --out-dir "$2" --no-format >/dev/null
}

# start_server: builds and starts tillgate-server on a free loopback port with a fresh
# data directory, waits until it is ready, and exports TILLGATE_URL,
# TILLGATE_ADMIN_KEY and TILLGATE_JWKS (the server's public keys, which a real app has
# built in) for the end-to-end tests. The server is stopped when the script exits.
# Set TILLGATE_E2E=0 to skip.
#
# The server runs under libfaketime (Debian `faketime`) reading its clock offset from
# the file TILLGATE_SERVER_CLOCK (alone in its directory, SERVER_CLOCK_DIR, so a chroot
# can bind it), "+0" at start: a test that needs a key to expire
# writes e.g. "+2d" there (the server's wall clock moves two days on, read at every
# call; its monotonic clock, and so its timeouts, are untouched) and writes "+0" back
# when done. libfaketime is required: it is installed here, and the suite fails when it
# cannot be (the key-expiry tests of every language would otherwise skip unnoticed).
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  [ -z "${SERVER_DATA:-}" ] || rm -rf "$SERVER_DATA"
  [ -z "${SERVER_CLOCK_DIR:-}" ] || rm -rf "$SERVER_CLOCK_DIR"
}
start_server() {
  [ "${TILLGATE_E2E:-1}" = 1 ] || return 0
  apt_install faketime || { echo "cannot install faketime (libfaketime): the key-expiry tests need it" >&2; exit 1; }
  local faketime_lib
  faketime_lib=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n1 || true)
  [ -n "$faketime_lib" ] || { echo "libfaketimeMT.so.1 not found under /usr/lib/*/faketime although faketime is installed" >&2; exit 1; }
  log "cargo build -p tillgate-server"
  cargo build -q -p tillgate-server
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  SERVER_DATA=$(mktemp -d /tmp/tillgate-e2e.XXXXXX)
  export TILLGATE_URL="http://127.0.0.1:$port"
  export TILLGATE_ADMIN_KEY="Admin-Key-For-Bindings-0123456789"
  SERVER_CLOCK_DIR=$(mktemp -d /tmp/tillgate-clock.XXXXXX)
  export TILLGATE_SERVER_CLOCK="$SERVER_CLOCK_DIR/offset"
  echo "+0" >"$TILLGATE_SERVER_CLOCK"
  local clock_env=(LD_PRELOAD="$faketime_lib" FAKETIME_TIMESTAMP_FILE="$TILLGATE_SERVER_CLOCK"
    FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1)
  # Each suite registers more tills within a minute, from one address, than the default
  # budget of 10 activations per address and minute (repeated activations count too);
  # the limit itself is tested by the server's and the reliability suite's tests.
  env "${clock_env[@]}" TILLGATE_BIND="127.0.0.1:$port" TILLGATE_DATA_DIR="$SERVER_DATA" RUST_LOG=warn \
    TILLGATE_ACTIVATION_RATE=100 "$TARGET_DIR/debug/tillgate-server" >"$SERVER_DATA.log" 2>&1 &
  SERVER_PID=$!
  EXIT_HOOKS+=(stop_server)
  for _ in $(seq 100); do
    TILLGATE_JWKS=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + "/.well-known/jwks.json", timeout=1).read().decode())' "$TILLGATE_URL" 2>/dev/null) && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_DATA.log" >&2; echo "tillgate-server did not start" >&2; exit 1; }
    sleep 0.2
  done
  [ -n "${TILLGATE_JWKS:-}" ] || { echo "tillgate-server not ready" >&2; exit 1; }
  export TILLGATE_JWKS
  log "tillgate-server on $TILLGATE_URL (pid $SERVER_PID)"
}
