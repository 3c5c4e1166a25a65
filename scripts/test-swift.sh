#!/usr/bin/env bash
# Swift: Debian trixie's swiftlang in a debootstrap chroot (bookworm has no Swift). The
# chroot is cached outside the repo (TILLGATE_SWIFT_CHROOT) and reused when present.
# Builds the SwiftPM package in tests/swift over bindings generated from the .so under
# test and runs its XCTest suite: every shared vector, and an end-to-end activation
# against a running tillgate-server (async functions).
source "$(dirname "$0")/../bindings/test-common.sh"
CHROOT=${TILLGATE_SWIFT_CHROOT:-/var/cache/tillgate/swift-chroot}

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do $sudo_ umount "${mounted[$i]}" 2>/dev/null || true; done; }
EXIT_HOOKS+=(cleanup)
mount_in() { mountpoint -q "$CHROOT/$2" || { $sudo_ mount "${@:3}" "$1" "$CHROOT/$2"; mounted+=("$CHROOT/$2"); }; }

if ! { [ -d "$CHROOT/usr" ] && $sudo_ chroot "$CHROOT" test -x /usr/bin/swift; }; then
  apt_install debootstrap
  log "debootstrap trixie into $CHROOT (one time, ~2 min)"
  $sudo_ mkdir -p "$CHROOT"
  [ -x "$CHROOT/usr/bin/apt-get" ] ||
    $sudo_ debootstrap --variant=minbase trixie "$CHROOT" http://deb.debian.org/debian >/dev/null
  $sudo_ cp /etc/resolv.conf "$CHROOT/etc/"
  mount_in proc proc -t proc; mount_in /dev dev --bind; mount_in /dev/pts dev/pts --bind
  $sudo_ chroot "$CHROOT" apt-get update -qq
  $sudo_ chroot "$CHROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swiftlang >/dev/null
  $sudo_ chroot "$CHROOT" apt-get clean
fi
build_ffi
start_server
# A stub answering every request 503 schema_newer with Retry-After: 7, as a server
# beside a newer schema does during an upgrade (the Kotlin and Python suites start their
# own in-process; Swift on Linux has no small HTTP server at hand).
stub_port_file=$(mktemp)
python3 - "$stub_port_file" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = b'{"code":"schema_newer","detail":"upgrading","status":503}'
        self.send_response(503)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = answer
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
PY
STUB_PID=$!
stop_stub() { kill "$STUB_PID" 2>/dev/null || true; rm -f "$stub_port_file"; }
EXIT_HOOKS+=(stop_stub)
for _ in $(seq 100); do
  [ -s "$stub_port_file" ] && break
  kill -0 "$STUB_PID" 2>/dev/null || { echo "the 503 stub did not start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$stub_port_file" ] || { echo "the 503 stub did not start" >&2; exit 1; }
export TILLGATE_STUB_503_URL="http://127.0.0.1:$(cat "$stub_port_file")"

# A fresh copy of the package (never a stale .build), the generated sources and the library.
work="$CHROOT/work"
$sudo_ rm -rf "$work" && $sudo_ mkdir -p "$work/lib"
tar -C "$ROOT/tests" --exclude=.build -cf - swift | $sudo_ tar -C "$work" -xf -
generate swift "$OUT/swift"
$sudo_ cp "$OUT/swift/Tillgate.swift" "$work/swift/Sources/Tillgate/"
$sudo_ cp "$OUT/swift/TillgateFFI.h" "$work/swift/Sources/TillgateFFI/"
$sudo_ cp "$FFI_LIB" "$work/lib/"
$sudo_ cp -r "${TILLGATE_VECTORS:-$ROOT/tests/vectors}" "$work/vectors"

mount_in proc proc -t proc; mount_in /dev dev --bind; mount_in /dev/pts dev/pts --bind
# The server's clock offset file (see start_server), seen as /server-clock/offset inside.
if [ -n "${TILLGATE_SERVER_CLOCK:-}" ]; then
  $sudo_ mkdir -p "$CHROOT/server-clock"
  mount_in "$SERVER_CLOCK_DIR" server-clock --bind
  export TILLGATE_SERVER_CLOCK=/server-clock/offset
fi
log "swift build && swift test (in $CHROOT)"
$sudo_ ${sudo_:+-E} chroot "$CHROOT" /bin/bash -c 'set -eo pipefail; cd /work/swift
  swift build --build-tests -Xlinker -L/work/lib -Xlinker -rpath -Xlinker /work/lib 2>&1 | { grep -vE "^\[[0-9]+/[0-9]+\]" || true; }
  TILLGATE_VECTORS=/work/vectors swift test --skip-build --disable-swift-testing 2>&1'
