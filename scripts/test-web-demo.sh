#!/usr/bin/env bash
# End-to-end test of the web demo: builds web-demo/dist and the release server, starts
# the server (temp SQLite dir, free port, demo mode) serving the demo, and drives the
# whole flow in headless Chromium (Debian's chromium, driven by playwright-core from
# npm; no browser download). Screenshots of each step: target/artifacts/web-demo/.
# Prints `web-demo: N passed, N failed`; exits non-zero on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x /usr/bin/chromium ]; then
  log "apt-get install chromium"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

scripts/build-web-demo.sh
log "cargo build --release -p tillgate-server"
cargo build -q --release -p tillgate-server
# Where cargo put it (CARGO_TARGET_DIR when set).
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac

shots="$ROOT/target/artifacts/web-demo"
rm -rf "$shots"
mkdir -p "$shots"
tmp=$(mktemp -d)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

log "tillgate-server on 127.0.0.1:$port (demo mode, SQLite in $tmp)"
TILLGATE_BIND="127.0.0.1:$port" TILLGATE_DATA_DIR="$tmp" \
TILLGATE_DEMO_DIR="$ROOT/web-demo/dist" TILLGATE_DEMO_MODE=true \
  "$target_dir/release/tillgate-server" >"$shots/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "the server exited:"; cat "$shots/server.log"; echo "web-demo: 0 passed, 1 failed"; exit 1; }
  sleep 0.1
done

node web-demo/tests/e2e.mjs "http://127.0.0.1:$port/demo/" "$shots"
