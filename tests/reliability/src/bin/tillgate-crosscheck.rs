//! `tillgate-crosscheck`: lets independent tools (PyNaCl/libsodium, PyJWT, node `jose`)
//! ask tillgate-core for its verdict. One input per stdin line, one verdict per stdout
//! line: `ok`, or core's error code.
//!
//! ```text
//! tillgate-crosscheck ed25519                  lines: {"pk": hex, "msg": hex, "sig": hex}
//! tillgate-crosscheck descriptor JWKS_FILE NOW lines: a compact JWS (verify_descriptor)
//! tillgate-crosscheck receipts JWKS_FILE       all lines: one chain (verify_receipt_chain)
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;

use tillgate_core::{TrustedKeys, VerifyOptions, verify_descriptor, verify_ed25519};
use tillgate_reliability::from_hex;

fn load_keys(path: &str) -> Result<TrustedKeys, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    TrustedKeys::from_jwks_json(&text).map_err(|e| format!("{path}: {e}"))
}

fn ed25519_line(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return "bad_input".into();
    };
    let field = |k: &str| v[k].as_str().and_then(from_hex);
    let (Some(pk), Some(msg), Some(sig)) = (field("pk"), field("msg"), field("sig")) else {
        return "bad_input".into();
    };
    match verify_ed25519(&pk, &msg, &sig) {
        Ok(()) => "ok".into(),
        Err(e) => e.code().into(),
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdin = std::io::stdin();
    let lines: Vec<String> = stdin
        .lock()
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let mut say = |s: &str| writeln!(out, "{s}").map_err(|e| e.to_string());
    match args.first().map(String::as_str) {
        Some("ed25519") => {
            for l in lines.iter().filter(|l| !l.trim().is_empty()) {
                say(&ed25519_line(l))?;
            }
        }
        Some("descriptor") if args.len() == 3 => {
            let keys = load_keys(&args[1])?;
            let now: i64 = args[2].parse().map_err(|e| format!("NOW: {e}"))?;
            for l in lines.iter().filter(|l| !l.trim().is_empty()) {
                match verify_descriptor(l.trim(), &keys, now, &VerifyOptions::default()) {
                    Ok(_) => say("ok")?,
                    Err(e) => say(e.code())?,
                }
            }
        }
        Some("receipts") if args.len() == 2 => {
            let keys = load_keys(&args[1])?;
            let chain: Vec<&str> = lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect();
            match tillgate_core::verify_receipt_chain(&chain, &keys) {
                Ok(c) => say(&format!("ok {}", c.len()))?,
                Err(e) => say(e.code())?,
            }
        }
        _ => {
            return Err(
                "usage: tillgate-crosscheck ed25519 | descriptor JWKS_FILE NOW | receipts JWKS_FILE"
                    .into(),
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tillgate-crosscheck: {e}");
            ExitCode::from(2)
        }
    }
}
