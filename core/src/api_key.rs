//! API keys under the Fieldpine charset rules.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{Error, Result};

/// Shortest API key accepted.
pub const API_KEY_MIN_LEN: usize = 20;
/// Longest API key accepted.
pub const API_KEY_MAX_LEN: usize = 256;
/// Length of generated keys unless another is asked for.
pub const API_KEY_DEFAULT_LEN: usize = 40;

/// The punctuation allowed besides `A-Z a-z 0-9`.
pub const API_KEY_PUNCTUATION: &str = "!@#$%^&*()-_+=.,";
/// Characters reserved by Fieldpine, never allowed.
pub const API_KEY_RESERVED: &str = "|{}[]\\/";
/// Allowed characters that must be percent-encoded in a URL path segment.
pub const URL_ESCAPED_CHARS: &str = "#%^";

/// What a character is under the API-key rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharClass {
    /// Allowed and never needs escaping in a URL path.
    Allowed,
    /// Allowed, but must be percent-encoded in a URL path (`#`, `%`, `^`).
    AllowedEscaped,
    /// Reserved by Fieldpine (`| { } [ ] \ /`).
    Reserved,
    /// Simply not allowed (space, `~`, `:`, quotes, non-ASCII, ...).
    Invalid,
}

/// Classifies one character under the API-key rules.
///
/// ```
/// use tillgate_core::{classify_api_key_char, CharClass};
/// assert_eq!(classify_api_key_char('a'), CharClass::Allowed);
/// assert_eq!(classify_api_key_char('#'), CharClass::AllowedEscaped);
/// assert_eq!(classify_api_key_char('{'), CharClass::Reserved);
/// assert_eq!(classify_api_key_char('~'), CharClass::Invalid);
/// ```
pub const fn classify_api_key_char(c: char) -> CharClass {
    match c {
        'A'..='Z' | 'a'..='z' | '0'..='9' => CharClass::Allowed,
        '!' | '@' | '$' | '&' | '*' | '(' | ')' | '-' | '_' | '+' | '=' | '.' | ',' => {
            CharClass::Allowed
        }
        '#' | '%' | '^' => CharClass::AllowedEscaped,
        '|' | '{' | '}' | '[' | ']' | '\\' | '/' => CharClass::Reserved,
        _ => CharClass::Invalid,
    }
}

/// [`classify_api_key_char`] of every ASCII character, for checking keys byte by byte.
const ASCII_CLASS: [CharClass; 128] = {
    let mut table = [CharClass::Invalid; 128];
    let mut i = 0;
    while i < 128 {
        table[i] = classify_api_key_char(i as u8 as char);
        i += 1;
    }
    table
};

/// Checks the characters of `s` (positions counted from `offset`), first problem wins;
/// returns how many there are.
pub(crate) fn check_chars(s: &str, offset: usize) -> Result<usize> {
    for (i, &b) in s.as_bytes().iter().enumerate() {
        // Every byte before `i` was an ASCII character, so `i` is a character position
        // and a character boundary.
        let class = if b.is_ascii() {
            ASCII_CLASS[b as usize]
        } else {
            CharClass::Invalid
        };
        match class {
            CharClass::Allowed | CharClass::AllowedEscaped => {}
            CharClass::Reserved => {
                return Err(Error::ApiKeyReservedChar {
                    ch: char::from(b),
                    position: offset + i,
                });
            }
            CharClass::Invalid => {
                let ch = s.get(i..).and_then(|r| r.chars().next());
                return Err(Error::ApiKeyInvalidChar {
                    ch: ch.unwrap_or(char::REPLACEMENT_CHARACTER),
                    position: offset + i,
                });
            }
        }
    }
    // All ASCII: as many characters as bytes.
    Ok(s.len())
}

/// A validated API key. `Debug` and `Display` redact it; use
/// [`ApiKey::expose`] where the value really is needed (e.g. an HTTP header).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Validates an API key: characters first (the first reserved or not-allowed character
/// is reported with its 0-based position), then length (20 to 256).
///
/// ```
/// use tillgate_core::validate_api_key;
/// assert!(validate_api_key("Abcdefghij0123456789!@$").is_ok());
/// let err = validate_api_key("Abcdefghij01234567/89").unwrap_err();
/// assert_eq!(err.code(), "api_key_reserved_char");
/// assert_eq!(err.to_string(), "character '/' at position 18 is reserved and cannot be used in an API key");
/// ```
pub fn validate_api_key(key: &str) -> Result<ApiKey> {
    ApiKey::parse(key)
}

impl ApiKey {
    /// Validates and wraps; same as [`validate_api_key`].
    pub fn parse(key: &str) -> Result<Self> {
        Self::check(key)?;
        Ok(ApiKey(key.to_owned()))
    }

    /// Validates `key` without keeping it: the rules and errors of [`ApiKey::parse`].
    fn check(key: &str) -> Result<()> {
        let len = check_chars(key, 0)?;
        if len < API_KEY_MIN_LEN {
            return Err(Error::ApiKeyTooShort {
                len,
                min: API_KEY_MIN_LEN,
            });
        }
        if len > API_KEY_MAX_LEN {
            return Err(Error::ApiKeyTooLong {
                len,
                max: API_KEY_MAX_LEN,
            });
        }
        Ok(())
    }

    /// The key itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the key, for storage. API keys are long random strings, so a fast
    /// hash is enough to make a leaked table useless; compare with [`ApiKeyHash::ct_eq`].
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(<redacted, {} chars>)", self.0.len())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted api key>")
    }
}

/// SHA-256 of an API key, the only form a server stores.
#[derive(Clone, Copy)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    /// Validates `key` as [`ApiKey::parse`] does and returns its hash, without copying
    /// the key: what a server needs to look up a presented credential.
    ///
    /// ```
    /// use tillgate_core::{ApiKey, ApiKeyHash};
    /// let key = "Abcdefghij0123456789!@$";
    /// assert!(ApiKeyHash::of_key(key).unwrap().ct_eq(&ApiKey::parse(key).unwrap().hash()));
    /// assert_eq!(ApiKeyHash::of_key("short").unwrap_err().code(), "api_key_too_short");
    /// ```
    pub fn of_key(key: &str) -> Result<Self> {
        ApiKey::check(key)?;
        Ok(ApiKeyHash(Sha256::digest(key.as_bytes()).into()))
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &ApiKeyHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({})", self.to_hex())
    }
}

/// Which characters a generated key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiKeyAlphabet {
    /// All 78 allowed characters.
    #[default]
    Full,
    /// The 75 allowed characters that never need escaping in a URL path (no `# % ^`).
    UrlSafe,
}

const FULL: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*()-_+=.,";
const URL_SAFE: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@$&*()-_+=.,";

impl ApiKeyAlphabet {
    /// The characters of this alphabet.
    pub fn chars(self) -> &'static [u8] {
        match self {
            ApiKeyAlphabet::Full => FULL,
            ApiKeyAlphabet::UrlSafe => URL_SAFE,
        }
    }
}

/// Generates a random API key of `length` characters (20..=256) from the full alphabet,
/// uniformly, with the platform's secure RNG and rejection sampling (no modulo bias).
///
/// ```
/// let key = tillgate_core::generate_api_key(40).unwrap();
/// assert_eq!(key.expose().len(), 40);
/// assert!(tillgate_core::validate_api_key(key.expose()).is_ok());
/// ```
pub fn generate_api_key(length: usize) -> Result<ApiKey> {
    generate_api_key_with(length, ApiKeyAlphabet::Full)
}

/// Like [`generate_api_key`], choosing the alphabet.
pub fn generate_api_key_with(length: usize, alphabet: ApiKeyAlphabet) -> Result<ApiKey> {
    if length < API_KEY_MIN_LEN {
        return Err(Error::ApiKeyTooShort {
            len: length,
            min: API_KEY_MIN_LEN,
        });
    }
    if length > API_KEY_MAX_LEN {
        return Err(Error::ApiKeyTooLong {
            len: length,
            max: API_KEY_MAX_LEN,
        });
    }
    let chars = alphabet.chars();
    let mut out = String::with_capacity(length);
    fill_uniform(chars, length, &mut out, |buf| {
        getrandom::fill(buf).map_err(|e| Error::Random {
            reason: e.to_string(),
        })
    })?;
    Ok(ApiKey(out))
}

/// Appends `count` characters drawn uniformly from `alphabet` using random bytes from
/// `rng`. Bytes at or above the largest multiple of the alphabet size are rejected.
pub(crate) fn fill_uniform(
    alphabet: &[u8],
    count: usize,
    out: &mut String,
    mut rng: impl FnMut(&mut [u8]) -> Result<()>,
) -> Result<()> {
    let n = alphabet.len();
    let limit = 256 - (256 % n);
    let mut buf = [0u8; 64];
    let mut produced = 0;
    while produced < count {
        rng(&mut buf)?;
        for &b in &buf {
            if (b as usize) < limit {
                out.push(alphabet[b as usize % n] as char);
                produced += 1;
                if produced == count {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabets_agree_with_the_classifier() {
        assert_eq!(FULL.len(), 78);
        assert_eq!(URL_SAFE.len(), 75);
        for &c in FULL {
            assert_ne!(classify_api_key_char(c as char), CharClass::Invalid);
            assert_ne!(classify_api_key_char(c as char), CharClass::Reserved);
        }
        for &c in URL_SAFE {
            assert_eq!(classify_api_key_char(c as char), CharClass::Allowed);
        }
        let allowed = (0u8..128)
            .filter(|&c| {
                matches!(
                    classify_api_key_char(c as char),
                    CharClass::Allowed | CharClass::AllowedEscaped
                )
            })
            .count();
        assert_eq!(allowed, 78);
    }

    #[test]
    fn rejection_sampling_is_unbiased_on_a_counting_rng() {
        // Feed every byte value exactly once per round: accepted bytes must map to each
        // character the same number of times.
        let mut next = 0u8;
        let mut out = String::new();
        let per_round = 256 - 256 % FULL.len();
        fill_uniform(FULL, per_round * 4, &mut out, |buf| {
            for b in buf.iter_mut() {
                *b = next;
                next = next.wrapping_add(1);
            }
            Ok(())
        })
        .unwrap();
        for &c in FULL {
            let count = out.bytes().filter(|&b| b == c).count();
            assert_eq!(count, 4 * per_round / FULL.len(), "char {}", c as char);
        }
    }

    #[test]
    fn generated_url_safe_keys_need_no_escaping() {
        for _ in 0..50 {
            let k = generate_api_key_with(256, ApiKeyAlphabet::UrlSafe).unwrap();
            assert!(!k.expose().contains(['#', '%', '^']));
            validate_api_key(k.expose()).unwrap();
        }
    }

    #[test]
    fn generated_lengths_are_checked() {
        assert_eq!(
            generate_api_key(19).unwrap_err().code(),
            "api_key_too_short"
        );
        assert_eq!(
            generate_api_key(257).unwrap_err().code(),
            "api_key_too_long"
        );
        assert_eq!(
            generate_api_key(API_KEY_DEFAULT_LEN)
                .unwrap()
                .expose()
                .len(),
            40
        );
    }

    #[test]
    fn debug_redacts() {
        let k = validate_api_key("Abcdefghij0123456789").unwrap();
        assert!(!format!("{k:?}{k}").contains("Abcdefghij"));
    }

    #[test]
    fn hash_compare() {
        let a = validate_api_key("Abcdefghij0123456789").unwrap().hash();
        let b = validate_api_key("Abcdefghij0123456780").unwrap().hash();
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&b));
    }
}
