//! Server-signed timestamps: the time the server vouches for at a handshake, which an app
//! keeps as its trusted time floor (`VerifyOptions::trusted_time_floor`) for the
//! clock-rollback check.

use serde::{Deserialize, Serialize};

use crate::jws;
#[cfg(feature = "sign")]
use crate::keys::SigningKey;
use crate::keys::TrustedKeys;
use crate::{Error, Result};

/// The JWS `typ` of a server-signed timestamp.
pub const SERVER_TIME_TYP: &str = "tillgate-time+jwt";

/// The claims of a server-signed timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTimeClaims {
    /// Issuer (the server).
    pub iss: String,
    /// The register's ProductionNumber the timestamp was issued to.
    pub sub: String,
    /// The server's time, Unix seconds.
    pub iat: i64,
    /// The nonce the app sent with the handshake, echoed so that an old timestamp cannot
    /// be replayed to it; absent when the app sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Signs a timestamp as a compact JWS (`typ` `tillgate-time+jwt`). Used by the server.
///
/// ```
/// use tillgate_core::*;
/// let key = SigningKey::from_seed(&[5; 32]);
/// let claims = ServerTimeClaims {
///     iss: "https://pos.example".into(), sub: "TG-7Q2M-K4PX".into(),
///     iat: 1_710_000_000, nonce: Some("n-1".into()),
/// };
/// let jws = sign_server_time(&claims, &key).unwrap();
/// let mut trusted = TrustedKeys::new();
/// trusted.add_jwk(&key.public_jwk()).unwrap();
/// let ok = verify_server_time(&jws, &trusted, Some("n-1")).unwrap();
/// assert_eq!(ok.iat, 1_710_000_000);
/// assert_eq!(verify_server_time(&jws, &trusted, Some("other")).unwrap_err().code(), "nonce_mismatch");
/// ```
#[cfg(feature = "sign")]
pub fn sign_server_time(claims: &ServerTimeClaims, key: &SigningKey) -> Result<String> {
    jws::sign(key, SERVER_TIME_TYP, claims)
}

/// Verifies a server-signed timestamp: JWS form, `typ`, key id, signature and, when
/// `expected_nonce` is given, that the timestamp echoes it (`nonce_mismatch`).
/// Returns the claims; `iat` is then a trusted time floor.
pub fn verify_server_time(
    jws: &str,
    trusted_keys: &TrustedKeys,
    expected_nonce: Option<&str>,
) -> Result<ServerTimeClaims> {
    let parsed = jws::parse::<ServerTimeClaims>(jws, SERVER_TIME_TYP)?;
    parsed.verify(trusted_keys)?;
    let claims = parsed.claims;
    if let Some(expected) = expected_nonce
        && claims.nonce.as_deref() != Some(expected)
    {
        return Err(Error::NonceMismatch);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ServerTimeClaims {
        ServerTimeClaims {
            iss: "srv".into(),
            sub: "TG-0001-ABCD".into(),
            iat: 1_700_000_000,
            nonce: None,
        }
    }

    #[test]
    fn round_trip_without_nonce() {
        let key = SigningKey::from_seed(&[8; 32]);
        let jws = sign_server_time(&claims(), &key).unwrap();
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        assert_eq!(verify_server_time(&jws, &trusted, None).unwrap(), claims());
        assert_eq!(
            verify_server_time(&jws, &trusted, Some("x"))
                .unwrap_err()
                .code(),
            "nonce_mismatch"
        );
    }

    #[test]
    fn refuses_other_keys_and_token_types() {
        let key = SigningKey::from_seed(&[8; 32]);
        let other = SigningKey::from_seed(&[9; 32]);
        let jws = sign_server_time(&claims(), &key).unwrap();
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&other.public_jwk()).unwrap();
        assert_eq!(
            verify_server_time(&jws, &trusted, None).unwrap_err().code(),
            "unknown_kid"
        );
        // A receipt or descriptor is not a timestamp, even if signed by the same key.
        let mut trusted = TrustedKeys::new();
        trusted.add_jwk(&key.public_jwk()).unwrap();
        let receipt = jws::sign(&key, crate::RECEIPT_TYP, &claims()).unwrap();
        assert_eq!(
            verify_server_time(&receipt, &trusted, None)
                .unwrap_err()
                .code(),
            "wrong_token_type"
        );
        // A flipped signature bit fails.
        let mut bad = jws.into_bytes();
        let n = bad.len() - 2;
        bad[n] = if bad[n] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            verify_server_time(&bad, &trusted, None).unwrap_err().code(),
            "bad_signature"
        );
    }
}
