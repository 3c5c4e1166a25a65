//! Encryption at rest of the signing-key seeds.
//!
//! Seeds are stored as `xc1:` + base64url(nonce ‖ ciphertext): XChaCha20-Poly1305 under
//! the key-encryption key (KEK), a fresh random 24-byte nonce per seed, the key's `kid`
//! as associated data (a sealed seed copied onto another row does not open). The KEK is
//! 32 bytes, base64url, from `TILLGATE_KEY_ENCRYPTION_KEY` or else from the file
//! [`KEK_FILE`] in the data directory, created with mode 0600 at a server's first start
//! (admin commands only use a KEK that exists, [`existing_from_config`]). Rows
//! written before encryption (plain base64url seeds) are sealed by
//! [`Store::init`](crate::db::Store::init).

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The KEK file's name in the data directory.
pub const KEK_FILE: &str = "key-encryption.key";

/// Prefix of a sealed seed.
pub const SEALED_PREFIX: &str = "xc1:";

const NONCE_LEN: usize = 24;

/// Where the key-encryption key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// `TILLGATE_KEY_ENCRYPTION_KEY` / `--key-encryption-key`.
    Config,
    /// The file in the data directory, read.
    File(std::path::PathBuf),
    /// The file in the data directory, created now.
    CreatedFile(std::path::PathBuf),
}

/// Where the KEK is to be taken from: the configured text (`Ok`; blank counts as unset),
/// or else the key file's path in `data_dir` (`Err`), which may not exist yet.
pub fn kek_setting<'a>(
    configured: Option<&'a str>,
    data_dir: &Path,
) -> Result<&'a str, std::path::PathBuf> {
    configured
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| data_dir.join(KEK_FILE))
}

/// Seals and opens signing-key seeds with the KEK.
#[derive(Clone)]
pub struct SeedCipher {
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for SeedCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeedCipher(<redacted>)")
    }
}

impl SeedCipher {
    /// From the 32 key bytes.
    pub fn new(key: &[u8]) -> Result<Self, String> {
        if key.len() != 32 {
            return Err(format!(
                "the key-encryption key must be 32 bytes, got {}",
                key.len()
            ));
        }
        let aead = XChaCha20Poly1305::new_from_slice(key)
            .map_err(|_| "the key-encryption key must be 32 bytes".to_owned())?;
        Ok(SeedCipher { aead })
    }

    /// From base64url (padding and surrounding whitespace allowed).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_end_matches('=');
        let bytes = B64
            .decode(text)
            .map_err(|_| "the key-encryption key is not base64url".to_owned())?;
        Self::new(&bytes)
    }

    /// The configured KEK, or the one in `data_dir/key-encryption.key` if that file
    /// exists; `None` when there is neither. Never creates a key file: the admin
    /// commands load the server's KEK this way ([`existing_from_config`]).
    pub fn load_existing(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> Result<Option<(Self, KekSource)>, String> {
        match kek_setting(configured, data_dir) {
            Ok(text) => Ok(Some((
                Self::from_base64(text).map_err(|e| format!("TILLGATE_KEY_ENCRYPTION_KEY: {e}"))?,
                KekSource::Config,
            ))),
            Err(path) if path.exists() => Ok(Some((read_key_file(&path)?, KekSource::File(path)))),
            Err(_) => Ok(None),
        }
    }

    /// The configured KEK, or the one in `data_dir/key-encryption.key` (created 0600 with
    /// 32 random bytes if absent; several processes starting together agree on one).
    /// Only a server's start creates the file.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<(Self, KekSource), String> {
        if let Some(found) = Self::load_existing(configured, data_dir)? {
            return Ok(found);
        }
        let path = data_dir.join(KEK_FILE);
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
        let created = create_key_file(&path)?;
        let cipher = read_key_file(&path)?;
        let source = if created {
            KekSource::CreatedFile(path)
        } else {
            KekSource::File(path)
        };
        Ok((cipher, source))
    }

    /// Seals a seed for the key `kid`.
    pub fn seal(&self, kid: &str, seed: &[u8]) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let ct = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: seed,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| "sealing failed".to_owned())?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(blob)))
    }

    /// Opens a stored seed of the key `kid`: a sealed one, or a plain base64url one
    /// written before encryption at rest.
    pub fn open(&self, kid: &str, stored: &str) -> Result<Vec<u8>, String> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return B64
                .decode(stored)
                .map_err(|_| format!("stored seed of {kid} is not base64url"));
        };
        let blob = B64
            .decode(sealed)
            .map_err(|_| format!("sealed seed of {kid} is not base64url"))?;
        if blob.len() <= NONCE_LEN {
            return Err(format!("sealed seed of {kid} is too short"));
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| format!("sealed seed of {kid} is too short"))?;
        self.aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| {
                format!(
                    "the seed of signing key {kid} does not open with this key-encryption key \
                     (another TILLGATE_KEY_ENCRYPTION_KEY or {KEK_FILE} than the one it was sealed with?)"
                )
            })
    }
}

/// The KEK of a configuration, with a log line saying where it came from (and a warning
/// when a key file was just created, or when PostgreSQL processes might not share it).
pub fn from_config(config: &crate::Config) -> Result<SeedCipher, String> {
    let (cipher, source) =
        SeedCipher::load(config.key_encryption_key.as_deref(), &config.data_dir)?;
    let postgres = config
        .database_url
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres"));
    match &source {
        KekSource::Config => tracing::debug!("key-encryption key from the configuration"),
        KekSource::File(path) => tracing::info!(path = %path.display(), "key-encryption key file"),
        KekSource::CreatedFile(path) => tracing::warn!(
            path = %path.display(),
            "created a key-encryption key file: back it up apart from the database; without it the signing keys cannot be read"
        ),
    }
    if postgres && source != KekSource::Config {
        tracing::warn!(
            "PostgreSQL with a key-encryption key file: every process sharing the database needs the same key; prefer TILLGATE_KEY_ENCRYPTION_KEY"
        );
    }
    Ok(cipher)
}

/// The KEK of a configuration for the admin commands: the configured one, or the key
/// file in the data directory if there is one; `None` when neither is there. It never
/// creates a key file: a key made here would not be the server's (an admin command run
/// from another directory, or on a PostgreSQL host whose KEK is in the env file), and
/// whatever it sealed would stop every server.
pub fn existing_from_config(config: &crate::Config) -> Result<Option<SeedCipher>, String> {
    let found = SeedCipher::load_existing(config.key_encryption_key.as_deref(), &config.data_dir)?;
    Ok(found.map(|(cipher, source)| {
        match &source {
            KekSource::File(path) => {
                tracing::debug!(path = %path.display(), "key-encryption key file");
            }
            _ => tracing::debug!("key-encryption key from the configuration"),
        }
        cipher
    }))
}

/// Reads the KEK from its file (and warns if others may read it).
fn read_key_file(path: &Path) -> Result<SeedCipher, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    check_permissions(path);
    SeedCipher::from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a stored seed is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// Writes a fresh key to a private temporary file, then links it into place, so that a
/// process starting at the same time never reads a half-written key. Returns false if
/// another process won.
fn create_key_file(path: &Path) -> Result<bool, String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| format!("no randomness: {e}"))?;
    let tmp = path.with_extension(format!("tmp-{}", B64.encode(suffix)));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(B64.encode(key).as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    let result = write().and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let _ = std::fs::remove_file(&tmp);
    let created = result.map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // The link made durable before any seed is sealed with the key: a crash must not
    // leave sealed seeds and no key file.
    crate::backup::sync_dir(&crate::backup::parent_dir(path))?;
    Ok(created)
}

#[cfg(unix)]
fn check_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the key-encryption key file is readable by group or others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_the_kid() {
        let c = SeedCipher::new(&[7; 32]).unwrap();
        let seed = [42u8; 32];
        let sealed = c.seal("kid-a", &seed).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(&B64.encode(seed)));
        assert_eq!(c.open("kid-a", &sealed).unwrap(), seed);
        assert!(c.open("kid-b", &sealed).is_err());
        let other = SeedCipher::new(&[8; 32]).unwrap();
        assert!(other.open("kid-a", &sealed).is_err());
        // Two seals of one seed differ (fresh nonce).
        assert_ne!(sealed, c.seal("kid-a", &seed).unwrap());
        // Plain rows from before encryption still open.
        assert_eq!(c.open("kid-a", &B64.encode(seed)).unwrap(), seed);
        assert!(SeedCipher::new(&[0; 31]).is_err());
        assert!(SeedCipher::from_base64("not base64!").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_private() {
        let dir = std::env::temp_dir().join(format!("tillgate_kek_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Loading only what exists (the admin commands) creates nothing.
        assert!(SeedCipher::load_existing(None, &dir).unwrap().is_none());
        assert!(!dir.exists());
        let (a, src) = SeedCipher::load(None, &dir).unwrap();
        assert!(matches!(src, KekSource::CreatedFile(_)));
        let (b, src) = SeedCipher::load(None, &dir).unwrap();
        assert!(matches!(src, KekSource::File(_)));
        let (_, src) = SeedCipher::load_existing(None, &dir).unwrap().unwrap();
        assert!(matches!(src, KekSource::File(_)));
        let sealed = a.seal("k", &[1; 32]).unwrap();
        assert_eq!(b.open("k", &sealed).unwrap(), [1; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(KEK_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = B64.encode([9u8; 32]);
        let (_, src) = SeedCipher::load(Some(&configured), &dir).unwrap();
        assert_eq!(src, KekSource::Config);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
