//! The workspace's `uniffi-bindgen`, pinned to the same uniffi version as `tillgate-ffi`:
//! `cargo run -p uniffi-bindgen -- generate --library target/debug/libtillgate_ffi.so --language kotlin --out-dir out`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
