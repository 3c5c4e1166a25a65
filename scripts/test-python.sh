#!/usr/bin/env bash
# Python: pytest against the module generated from the .so under test (copied beside it):
# every shared vector, and an end-to-end activation against a running tillgate-server.
source "$(dirname "$0")/../bindings/test-common.sh"

command -v python3 >/dev/null || apt_install python3
python3 -m pytest --version >/dev/null 2>&1 ||
  python3 -m pip install -q pytest 2>/dev/null ||
  python3 -m pip install -q --break-system-packages pytest 2>/dev/null ||
  apt_install python3-pytest
build_ffi
start_server

gen="$OUT/python"
generate python "$gen"
cp "$FFI_LIB" "$gen/"
log "pytest"
TILLGATE_PY_DIR="$gen" TILLGATE_VECTORS="${TILLGATE_VECTORS:-$ROOT/tests/vectors}" \
  python3 -m pytest -q -p no:cacheprovider "$ROOT/tests/python" "$@"
