#!/usr/bin/env bash
# JVM tests of android-sample's app logic (the plain Kotlin module, no Android SDK):
# compiled with kotlinc (npm kotlin-compiler, shared with the bindings' Kotlin tests)
# together with uniffi Kotlin bindings generated from the exact tillgate-ffi .so under
# test and their hand-written JNI part (bindings/ffi/kotlin), run with JNA + JUnit 4 + Gson from Debian. Starts a real tillgate-server
# (release build, temp SQLite, free port) for the end-to-end test over HTTP.
# Prints `android-sample: N passed, N failed, N skipped`.
#
# The Android UI module (android-sample/app) is NOT built here: no Android SDK.
source "$(dirname "$0")/../bindings/test-common.sh"   # ROOT, OUT, log, apt_install, npm_install, build_ffi, generate

command -v java >/dev/null || apt_install default-jdk-headless
apt_install libjna-java junit4 libgoogle-gson-java
need_node
npm_install "$ROOT/tests/kotlin"
build_ffi

out="$OUT/android-sample"
mkdir -p "$out"
generate kotlin "$out/generated"
KL="$ROOT/tests/kotlin/node_modules/kotlin-compiler/lib"
CP="/usr/share/java/jna.jar:/usr/share/java/gson.jar:/usr/share/java/junit4.jar:$KL/kotlinx-coroutines-core-jvm.jar"
logic="$ROOT/android-sample/app-logic/src"
log "kotlinc (generated bindings + their JNI part + app-logic + its tests)"
"$ROOT/tests/kotlin/node_modules/kotlin-compiler/bin/kotlinc-jvm" -nowarn -cp "$CP" \
  "$out"/generated/dev/tillgate/*.kt "$ROOT"/bindings/ffi/kotlin/dev/tillgate/*.kt \
  "$logic"/main/kotlin/dev/tillgate/sample/*.kt \
  "$logic"/test/kotlin/dev/tillgate/sample/*.kt -d "$out/tests.jar"

log "cargo build --release -p tillgate-server"
cargo build -q --release -p tillgate-server
tmp=$(mktemp -d)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
admin_key="android-sample-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
TILLGATE_BIND="127.0.0.1:$port" TILLGATE_DATA_DIR="$tmp" TILLGATE_ADMIN_KEY="$admin_key" \
  "${CARGO_TARGET_DIR:-$ROOT/target}/release/tillgate-server" >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

log "JUnit (server on 127.0.0.1:$port)"
TILLGATE_TEST_URL="http://127.0.0.1:$port" TILLGATE_TEST_ADMIN_KEY="$admin_key" \
java -Djna.library.path="$(dirname "$FFI_LIB")" \
  -cp "$out/tests.jar:$KL/kotlin-stdlib.jar:$CP" dev.tillgate.sample.RunnerKt
