#!/usr/bin/env bash
# Runs the main job: tillgate-server on SQLite (data in ./data) serving the web demo, in
# demo mode while it listens on a loopback address only (the default, 127.0.0.1:8080):
# demo mode hands the admin key to any browser that asks (GET /demo/admin-key.json) so
# the demo page's admin panel can approve registrations. It is for local trials only:
# on any other address this script leaves demo mode off, and refuses an explicit
# TILLGATE_DEMO_MODE=true. In production run target/release/tillgate-server without
# TILLGATE_DEMO_MODE. Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
export TILLGATE_DATA_DIR="${TILLGATE_DATA_DIR:-$PWD/data}"
export TILLGATE_BIND="${TILLGATE_BIND:-127.0.0.1:8080}"

# The address the server will listen on: --bind in the arguments wins over TILLGATE_BIND.
bind=$TILLGATE_BIND
demo_arg=0
prev=""
for a in "$@"; do
  case "$a" in
    --bind=*) bind=${a#--bind=} ;;
    --demo-mode | --demo-mode=*) demo_arg=1 ;;
  esac
  [ "$prev" = --bind ] && bind=$a
  prev=$a
done
# Whether the server reads a TILLGATE_DEMO_MODE value as on (clap: all but the falsey ones).
truthy() {
  case "$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" in
    "" | 0 | false | f | no | n | off) return 1 ;;
    *) return 0 ;;
  esac
}
# Loopback: 127.0.0.0/8 or [::1] (the server takes IP:port only, no host names).
is_loopback() {
  case "$1" in
    127.*:* | '[::1]':*) return 0 ;;
    *) return 1 ;;
  esac
}
if ! is_loopback "$bind" && { truthy "${TILLGATE_DEMO_MODE:-}" || [ "$demo_arg" = 1 ]; }; then
  echo "run.sh: refusing demo mode on $bind: it would hand the admin key to anyone who can reach it." >&2
  echo "run.sh: demo mode is for local trials on a loopback address (e.g. 127.0.0.1:8080)." >&2
  exit 2
fi

# A C compiler and libc headers: rustup brings none, and the build links with `cc` and
# compiles SQLite (bundled) and ring. Installed only when missing.
if ! command -v cc >/dev/null; then
  echo "run.sh: apt-get install gcc libc6-dev (the Rust build needs a C compiler)" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi
if [ -x scripts/build-web-demo.sh ]; then
  scripts/build-web-demo.sh
fi
cargo build --release -p tillgate-server
# Where cargo put it (CARGO_TARGET_DIR when set).
target_dir="${CARGO_TARGET_DIR:-target}"
echo "Tillgate server on http://$bind  (data: $TILLGATE_DATA_DIR)"
demo=${TILLGATE_DEMO_MODE:-}
if [ -d web-demo/dist ]; then
  export TILLGATE_DEMO_DIR="${TILLGATE_DEMO_DIR:-$PWD/web-demo/dist}"
  [ -n "$demo" ] || demo=true
  echo "Web demo:        http://$bind/demo/"
fi
if truthy "$demo" || [ "$demo_arg" = 1 ]; then
  if ! is_loopback "$bind"; then
    demo=false
    echo "Demo mode:       off ($bind is not a loopback address; the demo's admin panel asks for the admin key)"
  else
    echo "Demo mode:       ON. The server hands its admin key to any browser (GET /demo/admin-key.json):"
    echo "                 for local trials only, never with real registrations."
  fi
fi
[ -z "$demo" ] || export TILLGATE_DEMO_MODE="$demo"
echo "API docs:        http://$bind/docs"
exec "$target_dir/release/tillgate-server" "$@"
