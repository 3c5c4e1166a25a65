#!/usr/bin/env bash
# Kotlin on the JVM: kotlinc (npm kotlin-compiler) + JNA + JUnit 4 + Gson (Debian), no
# Gradle. Runs every shared vector against bindings generated from the .so under test
# plus the hand-written JNI part (bindings/ffi/kotlin: the pure functions, each vector
# also checked against the same call's generated JNA version), and an end-to-end
# activation against a running tillgate-server (suspend functions).
source "$(dirname "$0")/../bindings/test-common.sh"

command -v java >/dev/null || apt_install default-jdk-headless
apt_install libjna-java junit4 libgoogle-gson-java
need_node
npm_install "$ROOT/tests/kotlin"
build_ffi
start_server

gen="$OUT/kotlin/generated"
generate kotlin "$gen"
KL="$ROOT/tests/kotlin/node_modules/kotlin-compiler/lib"
CP="/usr/share/java/jna.jar:/usr/share/java/gson.jar:/usr/share/java/junit4.jar:$KL/kotlinx-coroutines-core-jvm.jar"
log "kotlinc (generated bindings + JNI part + tests)"
"$ROOT/tests/kotlin/node_modules/kotlin-compiler/bin/kotlinc-jvm" -nowarn -cp "$CP" \
  "$gen"/dev/tillgate/*.kt "$ROOT"/bindings/ffi/kotlin/dev/tillgate/*.kt "$ROOT"/tests/kotlin/src/*.kt \
  -d "$OUT/kotlin/tests.jar"
log "JUnit"
java -Djna.library.path="$(dirname "$FFI_LIB")" -Dtillgate.vectors="${TILLGATE_VECTORS:-$ROOT/tests/vectors}" \
  -cp "$OUT/kotlin/tests.jar:$KL/kotlin-stdlib.jar:$CP" dev.tillgate.tests.RunnerKt "$@"
