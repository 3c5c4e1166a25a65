//! Dynamic API keys: proof that an app holds a staff login's password, without sending
//! it and without the server storing anything password-equivalent.
//!
//! The app derives an Ed25519 key pair from (system, login, password) with Argon2id; the
//! server keeps only the public key. A dynamic key is
//! `DK1.<base64url(login)>.<unix seconds>.<base64url(16-byte nonce)>.<base64url(signature)>`,
//! which stays inside the API-key charset, so it also works as a URL-path token.

#[cfg(feature = "sign")]
use std::fmt;

#[cfg(feature = "dynamic-key-derive")]
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
#[cfg(feature = "dynamic-key-derive")]
use sha2::{Digest, Sha256};

#[cfg(feature = "sign")]
use crate::api_key::ApiKey;
use crate::ed25519::{parse_public_key, parse_signature, verify_with};
#[cfg(feature = "sign")]
use crate::keys::SigningKey;
use crate::{Error, Result};

/// The version tag every dynamic key starts with.
pub const DYNAMIC_KEY_PREFIX: &str = "DK1";
/// Default freshness window: a dynamic key is accepted 5 minutes either side of `now`.
pub const DEFAULT_DYNAMIC_KEY_WINDOW_SECS: i64 = 300;
/// Timestamps are at most 12 decimal digits.
#[cfg(feature = "sign")]
const MAX_TIMESTAMP: i64 = 1_000_000_000_000;
/// Longest login name, in bytes.
pub const LOGIN_MAX_BYTES: usize = 64;

/// Most Argon2 memory [`derive_dynamic_key_pair`] accepts, in KiB: 1 GiB, 54 times the
/// default and more than a phone can spare.
pub const DYNAMIC_KEY_MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Most Argon2 passes [`derive_dynamic_key_pair`] accepts (the default is 2).
pub const DYNAMIC_KEY_MAX_ITERATIONS: u32 = 64;
/// Most Argon2 lanes [`derive_dynamic_key_pair`] accepts.
pub const DYNAMIC_KEY_MAX_PARALLELISM: u32 = 16;

/// Argon2id cost parameters. The server tells the app which to use (they are stored
/// with the staff member's public key), so they are bounded
/// ([`DynamicKeyParams::check`]): a server, or whoever answers in its place, must not
/// make the app allocate terabytes or run for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicKeyParams {
    /// Memory in KiB: at least 8 × parallelism, at most [`DYNAMIC_KEY_MAX_MEMORY_KIB`].
    pub memory_kib: u32,
    /// Passes: 1 to [`DYNAMIC_KEY_MAX_ITERATIONS`].
    pub iterations: u32,
    /// Lanes: 1 to [`DYNAMIC_KEY_MAX_PARALLELISM`].
    pub parallelism: u32,
}

impl DynamicKeyParams {
    /// Checks the bounds [`derive_dynamic_key_pair`] applies, before any work:
    /// parallelism 1–16, iterations 1–64, memory from 8 KiB per lane to 1 GiB.
    /// Fails with `invalid_login`.
    ///
    /// ```
    /// use tillgate_core::DynamicKeyParams;
    /// assert!(DynamicKeyParams::default().check().is_ok());
    /// let huge = DynamicKeyParams { memory_kib: u32::MAX, ..Default::default() };
    /// assert_eq!(huge.check().unwrap_err().code(), "invalid_login");
    /// ```
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidLogin { reason });
        if !(1..=DYNAMIC_KEY_MAX_PARALLELISM).contains(&self.parallelism) {
            return bad(format!(
                "Argon2 parallelism must be 1 to {DYNAMIC_KEY_MAX_PARALLELISM}, got {}",
                self.parallelism
            ));
        }
        if !(1..=DYNAMIC_KEY_MAX_ITERATIONS).contains(&self.iterations) {
            return bad(format!(
                "Argon2 iterations must be 1 to {DYNAMIC_KEY_MAX_ITERATIONS}, got {}",
                self.iterations
            ));
        }
        // parallelism <= 16, so 8 × parallelism cannot overflow.
        let min_memory = 8 * self.parallelism;
        if !(min_memory..=DYNAMIC_KEY_MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return bad(format!(
                "Argon2 memory must be {min_memory} to {DYNAMIC_KEY_MAX_MEMORY_KIB} KiB, got {}",
                self.memory_kib
            ));
        }
        Ok(())
    }
}

impl Default for DynamicKeyParams {
    /// OWASP's Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        DynamicKeyParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// A staff member's derived key pair. `Debug` shows the login only. The app may keep
/// the seed instead of the password; both are secrets.
#[cfg(feature = "sign")]
#[derive(Clone)]
pub struct DynamicKeyPair {
    system: String,
    login: String,
    key: SigningKey,
}

#[cfg(feature = "sign")]
impl fmt::Debug for DynamicKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicKeyPair")
            .field("system", &self.system)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

fn check_login(login: &str) -> Result<()> {
    if login.is_empty() || login.len() > LOGIN_MAX_BYTES || login.chars().any(char::is_control) {
        return Err(Error::InvalidLogin {
            reason: format!(
                "login must be 1 to {LOGIN_MAX_BYTES} bytes without control characters"
            ),
        });
    }
    Ok(())
}

/// The Argon2id salt: SHA-256 of `"tillgate/dk1/salt" 0x00 system 0x00 login`.
#[cfg(feature = "dynamic-key-derive")]
fn salt(system: &str, login: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tillgate/dk1/salt\0");
    h.update(system.as_bytes());
    h.update(b"\0");
    h.update(login.as_bytes());
    h.finalize().into()
}

/// Derives the key pair for `login` on `system` (e.g. the RmSystem `1,2,3,4`) from the
/// password with Argon2id. Deterministic: the same inputs always give the same key.
///
/// ```
/// use tillgate_core::*;
/// let cheap = DynamicKeyParams { memory_kib: 64, iterations: 1, parallelism: 1 };
/// let pair = derive_dynamic_key_pair("1,2,3,4", "anna", "correct horse", cheap).unwrap();
/// let key = create_dynamic_api_key(&pair, 1_700_000_000).unwrap();
/// let ok = verify_dynamic_api_key(key.expose(), &pair.public_key(), "1,2,3,4", 1_700_000_030, 300).unwrap();
/// assert_eq!(ok.login, "anna");
/// ```
#[cfg(feature = "dynamic-key-derive")]
pub fn derive_dynamic_key_pair(
    system: &str,
    login: &str,
    password: &str,
    params: DynamicKeyParams,
) -> Result<DynamicKeyPair> {
    check_login(login)?;
    if password.is_empty() || password.len() > 1024 {
        return Err(Error::InvalidLogin {
            reason: "password must be 1 to 1024 bytes".into(),
        });
    }
    // The parameters come from the server: bounded before Argon2 allocates anything.
    params.check()?;
    let bad = |e: argon2::Error| Error::InvalidLogin {
        reason: format!("Argon2 parameters: {e}"),
    };
    let p = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(bad)?;
    let mut seed = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(password.as_bytes(), &salt(system, login), &mut seed)
        .map_err(bad)?;
    Ok(DynamicKeyPair {
        system: system.to_owned(),
        login: login.to_owned(),
        key: SigningKey::from_seed(&seed),
    })
}

#[cfg(feature = "sign")]
impl DynamicKeyPair {
    /// Rebuilds a pair from a stored seed (see [`DynamicKeyPair::seed`]).
    pub fn from_seed(system: &str, login: &str, seed: &[u8; 32]) -> Result<Self> {
        check_login(login)?;
        Ok(DynamicKeyPair {
            system: system.to_owned(),
            login: login.to_owned(),
            key: SigningKey::from_seed(seed),
        })
    }
    /// The public key the server stores for this login.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key_bytes()
    }
    /// The secret seed; store it like a password.
    pub fn seed(&self) -> [u8; 32] {
        self.key.seed()
    }
    /// The login name.
    pub fn login(&self) -> &str {
        &self.login
    }
}

fn signing_input(system: &str, unsigned: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + system.len() + unsigned.len());
    m.extend_from_slice(b"tillgate/dk1\0");
    m.extend_from_slice(system.as_bytes());
    m.push(0);
    m.extend_from_slice(unsigned.as_bytes());
    m
}

/// Creates a dynamic API key for `now` (Unix seconds) with a random nonce.
#[cfg(feature = "sign")]
pub fn create_dynamic_api_key(pair: &DynamicKeyPair, now: i64) -> Result<ApiKey> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| Error::Random {
        reason: e.to_string(),
    })?;
    create_dynamic_api_key_with_nonce(pair, now, &nonce)
}

/// Creates a dynamic API key with a given nonce (for tests and vectors; a nonce must
/// never be reused).
#[cfg(feature = "sign")]
pub fn create_dynamic_api_key_with_nonce(
    pair: &DynamicKeyPair,
    now: i64,
    nonce: &[u8; 16],
) -> Result<ApiKey> {
    if !(0..MAX_TIMESTAMP).contains(&now) {
        return Err(Error::MalformedDynamicKey {
            reason: "timestamp must be 0 to 999999999999".into(),
        });
    }
    let unsigned = format!(
        "{DYNAMIC_KEY_PREFIX}.{}.{now}.{}",
        B64.encode(pair.login.as_bytes()),
        B64.encode(nonce)
    );
    let sig = pair.key.sign_raw(&signing_input(&pair.system, &unsigned));
    ApiKey::parse(&format!("{unsigned}.{}", B64.encode(sig)))
}

/// A dynamic key split into its parts; the signature is not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedDynamicKey {
    /// The login it claims; use it to look up the public key.
    pub login: String,
    /// The timestamp it claims, Unix seconds.
    pub issued_at: i64,
    nonce: [u8; 16],
    unsigned_len: usize,
    signature: [u8; 64],
}

/// What a verified dynamic key proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicKeyClaims {
    /// The login name.
    pub login: String,
    /// When the key was made, Unix seconds.
    pub issued_at: i64,
    /// The nonce; a server remembers it for the window to refuse replays.
    pub nonce: [u8; 16],
}

/// Whether a string looks like a dynamic key (starts with `DK1.`), so a server can tell
/// it from a plain API key before parsing.
pub fn is_dynamic_api_key(s: &str) -> bool {
    s.starts_with("DK1.")
}

/// Splits a dynamic key. Fails with `malformed_dynamic_key` on any deviation from the
/// exact format (strict base64url, decimal timestamp without leading zeros).
pub fn parse_dynamic_api_key(key: &str) -> Result<UnverifiedDynamicKey> {
    let bad = |reason: &str| Error::MalformedDynamicKey {
        reason: reason.to_owned(),
    };
    if key.len() > crate::api_key::API_KEY_MAX_LEN {
        return Err(bad("too long"));
    }
    let parts: Vec<&str> = key.split('.').collect();
    let [tag, login, ts, nonce, sig] = parts[..] else {
        return Err(bad("expected DK1.<login>.<time>.<nonce>.<signature>"));
    };
    if tag != DYNAMIC_KEY_PREFIX {
        return Err(bad("must start with DK1."));
    }
    let login = B64
        .decode(login)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("login is not base64url UTF-8"))?;
    check_login(&login).map_err(|_| bad("login is empty, too long or has control characters"))?;
    if ts.is_empty()
        || ts.len() > 12
        || !ts.bytes().all(|b| b.is_ascii_digit())
        || (ts.len() > 1 && ts.starts_with('0'))
    {
        return Err(bad("time must be decimal Unix seconds"));
    }
    let issued_at: i64 = ts.parse().map_err(|_| bad("time out of range"))?;
    let nonce: [u8; 16] = B64
        .decode(nonce)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("nonce must be 16 bytes base64url"))?;
    let signature: [u8; 64] = B64
        .decode(sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("signature must be 64 bytes base64url"))?;
    Ok(UnverifiedDynamicKey {
        login,
        issued_at,
        nonce,
        unsigned_len: key.len() - sig.len() - 1,
        signature,
    })
}

impl UnverifiedDynamicKey {
    /// Checks the signature against the login's public key and the freshness window.
    /// `key` must be the same string this was parsed from.
    pub fn verify(
        self,
        key: &str,
        public_key: &[u8],
        system: &str,
        now: i64,
        window_secs: i64,
    ) -> Result<DynamicKeyClaims> {
        let vk = parse_public_key(public_key)?;
        let unsigned = key.get(..self.unsigned_len).ok_or(Error::BadSignature)?;
        let sig = parse_signature(&self.signature)?;
        verify_with(&vk, &signing_input(system, unsigned), &sig)?;
        let window = window_secs.max(0);
        if now.abs_diff(self.issued_at) > window.unsigned_abs() {
            return Err(Error::DynamicKeyStale {
                issued_at: self.issued_at,
                now,
                window_secs: window,
            });
        }
        Ok(DynamicKeyClaims {
            login: self.login,
            issued_at: self.issued_at,
            nonce: self.nonce,
        })
    }
}

/// Parses and verifies a dynamic key in one step.
pub fn verify_dynamic_api_key(
    key: &str,
    public_key: &[u8],
    system: &str,
    now: i64,
    window_secs: i64,
) -> Result<DynamicKeyClaims> {
    parse_dynamic_api_key(key)?.verify(key, public_key, system, now, window_secs)
}

#[cfg(all(test, feature = "dynamic-key-derive"))]
mod tests {
    use super::*;

    const CHEAP: DynamicKeyParams = DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn fits_the_api_key_rules_with_the_longest_login() {
        let login = "x".repeat(LOGIN_MAX_BYTES);
        let pair = derive_dynamic_key_pair("1,2,3,4", &login, "pw", CHEAP).unwrap();
        let key = create_dynamic_api_key(&pair, 99_999_999_999).unwrap();
        assert!(key.expose().len() <= 256);
        assert!(!key.expose().contains(['#', '%', '^']));
    }

    #[test]
    fn refuses_other_system_password_and_stale() {
        let pair = derive_dynamic_key_pair("1,2,3,4", "anna", "pw", CHEAP).unwrap();
        let other = derive_dynamic_key_pair("1,2,3,4", "anna", "pw2", CHEAP).unwrap();
        let key = create_dynamic_api_key(&pair, 1000).unwrap();
        let k = key.expose();
        assert_eq!(
            verify_dynamic_api_key(k, &pair.public_key(), "9", 1000, 300)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        assert_eq!(
            verify_dynamic_api_key(k, &other.public_key(), "1,2,3,4", 1000, 300)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        assert_eq!(
            verify_dynamic_api_key(k, &pair.public_key(), "1,2,3,4", 1301, 300)
                .unwrap_err()
                .code(),
            "dynamic_key_stale"
        );
        assert!(verify_dynamic_api_key(k, &pair.public_key(), "1,2,3,4", 700, 300).is_ok());
    }

    #[test]
    fn server_params_are_bounded_before_any_work() {
        // Out of bounds; the largest would allocate 4 TiB or run for hours in Argon2.
        let d = DynamicKeyParams::default();
        for params in [
            DynamicKeyParams {
                memory_kib: u32::MAX,
                ..d
            },
            DynamicKeyParams {
                memory_kib: DYNAMIC_KEY_MAX_MEMORY_KIB + 1,
                ..d
            },
            DynamicKeyParams {
                iterations: u32::MAX,
                ..CHEAP
            },
            DynamicKeyParams {
                iterations: DYNAMIC_KEY_MAX_ITERATIONS + 1,
                ..CHEAP
            },
            DynamicKeyParams {
                parallelism: u32::MAX,
                ..d
            },
            DynamicKeyParams {
                parallelism: 17,
                memory_kib: 17 * 8,
                ..CHEAP
            },
            DynamicKeyParams {
                parallelism: 0,
                ..CHEAP
            },
            DynamicKeyParams {
                iterations: 0,
                ..CHEAP
            },
            DynamicKeyParams {
                memory_kib: 15,
                parallelism: 2,
                ..CHEAP
            },
        ] {
            let err = derive_dynamic_key_pair("s", "anna", "pw", params).unwrap_err();
            assert_eq!(err.code(), "invalid_login", "{params:?}");
            assert!(params.check().is_err(), "{params:?}");
        }
        // The edges themselves are accepted (checked without running Argon2 on 1 GiB).
        for params in [
            d,
            CHEAP,
            DynamicKeyParams {
                memory_kib: DYNAMIC_KEY_MAX_MEMORY_KIB,
                iterations: DYNAMIC_KEY_MAX_ITERATIONS,
                parallelism: DYNAMIC_KEY_MAX_PARALLELISM,
            },
            DynamicKeyParams {
                memory_kib: 8,
                iterations: 1,
                parallelism: 1,
            },
        ] {
            assert_eq!(params.check(), Ok(()), "{params:?}");
        }
        let edge = DynamicKeyParams {
            memory_kib: 8 * 16,
            iterations: DYNAMIC_KEY_MAX_ITERATIONS,
            parallelism: 16,
        };
        assert!(derive_dynamic_key_pair("s", "anna", "pw", edge).is_ok());
    }

    #[test]
    fn tampered_login_fails() {
        let pair = derive_dynamic_key_pair("s", "anna", "pw", CHEAP).unwrap();
        let key = create_dynamic_api_key_with_nonce(&pair, 5, &[1; 16]).unwrap();
        let forged = key
            .expose()
            .replacen(&B64.encode("anna"), &B64.encode("bert"), 1);
        assert_eq!(
            verify_dynamic_api_key(&forged, &pair.public_key(), "s", 5, 300)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
    }
}
