#!/usr/bin/env bash
# Builds libtillgate_ffi.so for the four Android ABIs into app/src/main/jniLibs/<abi>/.
# Needs: the Android NDK (ANDROID_NDK_HOME), `cargo install cargo-ndk`, and
#   rustup target add armv7-linux-androideabi aarch64-linux-android i686-linux-android x86_64-linux-android
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
cargo ndk -t armeabi-v7a -t arm64-v8a -t x86 -t x86_64 -P 24 \
  -o "$here/app/src/main/jniLibs" build --release -p tillgate-ffi
ls -l "$here"/app/src/main/jniLibs/*/libtillgate_ffi.so
