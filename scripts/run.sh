#!/usr/bin/env bash
# Runs the main job: tillgate-server on SQLite (data in ./data) serving the web demo, in
# demo mode (the demo page's admin panel gets the admin key — never do this in
# production: there, run target/release/tillgate-server without TILLGATE_DEMO_MODE).
# Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
export TILLGATE_DATA_DIR="${TILLGATE_DATA_DIR:-$PWD/data}"
export TILLGATE_BIND="${TILLGATE_BIND:-127.0.0.1:8080}"
if [ -x scripts/build-web-demo.sh ]; then
  scripts/build-web-demo.sh
fi
cargo build --release -p tillgate-server
echo "Tillgate server on http://$TILLGATE_BIND  (data: $TILLGATE_DATA_DIR)"
if [ -d web-demo/dist ]; then
  export TILLGATE_DEMO_DIR="${TILLGATE_DEMO_DIR:-$PWD/web-demo/dist}"
  export TILLGATE_DEMO_MODE="${TILLGATE_DEMO_MODE:-true}"
  echo "Web demo:        http://$TILLGATE_BIND/demo/   (demo mode: $TILLGATE_DEMO_MODE)"
fi
echo "API docs:        http://$TILLGATE_BIND/docs"
exec target/release/tillgate-server "$@"
