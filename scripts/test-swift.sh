#!/usr/bin/env bash
# Swift: Debian trixie's swiftlang in a debootstrap chroot (bookworm has no Swift). The
# chroot is cached outside the repo (TILLGATE_SWIFT_CHROOT) and reused when present.
# Builds the SwiftPM package in tests/swift over bindings generated from the .so under
# test and runs its XCTest suite: every shared vector, and an end-to-end activation
# against a running tillgate-server (async functions).
source "$(dirname "$0")/../bindings/test-common.sh"
CHROOT=${TILLGATE_SWIFT_CHROOT:-/var/cache/tillgate/swift-chroot}

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount "${mounted[$i]}" 2>/dev/null || true; done; }
EXIT_HOOKS+=(cleanup)
mount_in() { mountpoint -q "$CHROOT/$2" || { mount "${@:3}" "$1" "$CHROOT/$2"; mounted+=("$CHROOT/$2"); }; }

if ! { [ -d "$CHROOT/usr" ] && chroot "$CHROOT" test -x /usr/bin/swift; }; then
  apt_install debootstrap
  log "debootstrap trixie into $CHROOT (one time, ~2 min)"
  mkdir -p "$CHROOT"
  [ -x "$CHROOT/usr/bin/apt-get" ] ||
    debootstrap --variant=minbase trixie "$CHROOT" http://deb.debian.org/debian >/dev/null
  cp /etc/resolv.conf "$CHROOT/etc/"
  mount_in proc proc -t proc; mount_in /dev dev --bind; mount_in /dev/pts dev/pts --bind
  chroot "$CHROOT" apt-get update -qq
  chroot "$CHROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swiftlang >/dev/null
  chroot "$CHROOT" apt-get clean
fi
build_ffi
start_server

# A fresh copy of the package (never a stale .build), the generated sources and the library.
work="$CHROOT/work"
rm -rf "$work" && mkdir -p "$work/lib"
tar -C "$ROOT/tests" --exclude=.build -cf - swift | tar -C "$work" -xf -
generate swift "$OUT/swift"
cp "$OUT/swift/Tillgate.swift" "$work/swift/Sources/Tillgate/"
cp "$OUT/swift/TillgateFFI.h" "$work/swift/Sources/TillgateFFI/"
cp "$FFI_LIB" "$work/lib/"
cp -r "${TILLGATE_VECTORS:-$ROOT/tests/vectors}" "$work/vectors"

mount_in proc proc -t proc; mount_in /dev dev --bind; mount_in /dev/pts dev/pts --bind
# The server's clock offset file (see start_server), seen as /server-clock/offset inside.
if [ -n "${TILLGATE_SERVER_CLOCK:-}" ]; then
  mkdir -p "$CHROOT/server-clock"
  mount_in "$SERVER_CLOCK_DIR" server-clock --bind
  export TILLGATE_SERVER_CLOCK=/server-clock/offset
fi
log "swift build && swift test (in $CHROOT)"
chroot "$CHROOT" /bin/bash -c 'set -eo pipefail; cd /work/swift
  swift build --build-tests -Xlinker -L/work/lib -Xlinker -rpath -Xlinker /work/lib 2>&1 | { grep -vE "^\[[0-9]+/[0-9]+\]" || true; }
  TILLGATE_VECTORS=/work/vectors swift test --skip-build --disable-swift-testing 2>&1'
