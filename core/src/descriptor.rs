//! Signed ActivationDescriptor: a JWT (compact JWS, Ed25519) the server signs and the
//! app verifies offline with public keys built into it.

use serde::{Deserialize, Serialize};

use crate::jws;
#[cfg(feature = "sign")]
use crate::keys::SigningKey;
use crate::keys::TrustedKeys;
use crate::{Error, Result};

/// The JWS `typ` of an ActivationDescriptor.
pub const DESCRIPTOR_TYP: &str = "tillgate-descriptor+jwt";
/// The descriptor format version written in `ver`.
pub const DESCRIPTOR_VERSION: u32 = 1;
/// Default tolerance for clock roll-back and for `nbf`/`exp` (seconds): five minutes.
pub const DEFAULT_CLOCK_TOLERANCE_SECS: i64 = 300;

/// The claims of an ActivationDescriptor.
///
/// Times are Unix seconds (JWT NumericDate). Other JSON members are refused on
/// verification only if they break a listed field; unknown members are ignored so the
/// format can grow (new members come with a new `ver`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationDescriptor {
    /// Issuer: the server's public base URL or name.
    pub iss: String,
    /// Subject: the cash register's ProductionNumber.
    pub sub: String,
    /// Issued at.
    pub iat: i64,
    /// Valid from (the activation period's `validFrom`).
    pub nbf: i64,
    /// Valid to (the activation period's `validTo`).
    pub exp: i64,
    /// Format version; currently 1.
    pub ver: u32,
    /// The activation's id.
    pub activation_id: String,
    /// The cash register name chosen by the user.
    pub cash_register_name: String,
    /// The device the activation is bound to.
    pub device_id: String,
    /// The company using the register.
    pub corporate_id: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// The POS application's package id (reverse DNS).
    pub application_package: String,
    /// What the activation enables (free-form feature names).
    #[serde(default)]
    pub features: Vec<String>,
    /// Activation status when signed (`approved`, `pending`, ...).
    pub status: String,
    /// The application's own JSON object, signed along.
    #[serde(default = "empty_object")]
    pub extras: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A descriptor whose signature and times have been checked. Only
/// [`verify_descriptor`] makes one, so holding it means it was verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedDescriptor {
    descriptor: ActivationDescriptor,
    kid: String,
}

impl VerifiedDescriptor {
    /// The verified claims.
    pub fn claims(&self) -> &ActivationDescriptor {
        &self.descriptor
    }
    /// The `kid` of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// Gives up the verified claims.
    pub fn into_claims(self) -> ActivationDescriptor {
        self.descriptor
    }
}

/// Options for [`verify_descriptor`]. `Default` checks only signature and times.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The latest trusted time seen (e.g. the signed server time from the last
    /// handshake), Unix seconds. A `now` earlier than this by more than
    /// `clock_tolerance_secs` is refused with `clock_rolled_back`.
    pub trusted_time_floor: Option<i64>,
    /// How far `now` may lag behind `trusted_time_floor`, seconds; `None` means
    /// [`DEFAULT_CLOCK_TOLERANCE_SECS`].
    pub clock_tolerance_secs: Option<i64>,
    /// Leeway for `nbf` and `exp`, seconds (default 0).
    pub leeway_secs: Option<i64>,
    /// If set, `deviceId` must equal it.
    pub expected_device_id: Option<String>,
    /// If set, `applicationPackage` must equal it.
    pub expected_application_package: Option<String>,
}

/// Signs a descriptor as a compact JWS (`alg` Ed25519, `typ` `tillgate-descriptor+jwt`,
/// `kid` the key's thumbprint). Used by the server.
///
/// ```
/// use tillgate_core::*;
/// let key = SigningKey::from_seed(&[1; 32]);
/// let d = ActivationDescriptor {
///     iss: "https://pos.example".into(), sub: "TG-0001-ABCD".into(),
///     iat: 1_700_000_000, nbf: 1_700_000_000, exp: 1_731_536_000, ver: 1,
///     activation_id: "a1".into(), cash_register_name: "Kassa 1".into(),
///     device_id: "dev-1".into(), corporate_id: "556036-0793".into(), country: "SE".into(),
///     application_package: "com.example.pos".into(), features: vec![],
///     status: "approved".into(), extras: serde_json::json!({}),
/// };
/// let jws = sign_descriptor(&d, &key).unwrap();
/// let mut keys = TrustedKeys::new();
/// keys.add_jwk(&key.public_jwk()).unwrap();
/// let ok = verify_descriptor(&jws, &keys, 1_710_000_000, &VerifyOptions::default()).unwrap();
/// assert_eq!(ok.claims().sub, "TG-0001-ABCD");
/// ```
#[cfg(feature = "sign")]
pub fn sign_descriptor(descriptor: &ActivationDescriptor, key: &SigningKey) -> Result<String> {
    jws::sign(key, DESCRIPTOR_TYP, descriptor)
}

/// Verifies a signed descriptor offline.
///
/// Checks, in order: JWS form and header (`malformed_jws`, `unsupported_algorithm`,
/// `wrong_token_type`), key id (`unknown_kid`), signature (`bad_signature`), format
/// version (`unsupported_version`), clock roll-back against
/// `options.trusted_time_floor` (`clock_rolled_back`), `nbf` (`not_yet_valid`), `exp`
/// judged at the later of `now` and the trusted floor (`expired`), then the optional
/// device and package checks.
/// `now` is Unix seconds, supplied by the caller.
pub fn verify_descriptor(
    jws: &str,
    trusted_keys: &TrustedKeys,
    now: i64,
    options: &VerifyOptions,
) -> Result<VerifiedDescriptor> {
    let parsed = jws::parse::<ActivationDescriptor>(jws, DESCRIPTOR_TYP)?;
    parsed.verify(trusted_keys)?;
    let d = parsed.claims;
    if d.ver != DESCRIPTOR_VERSION {
        return Err(Error::UnsupportedVersion { ver: d.ver });
    }
    let leeway = options.leeway_secs.unwrap_or(0).max(0);
    if let Some(trusted) = options.trusted_time_floor {
        let tolerance = options
            .clock_tolerance_secs
            .unwrap_or(DEFAULT_CLOCK_TOLERANCE_SECS)
            .max(0);
        if now.saturating_add(tolerance) < trusted {
            return Err(Error::ClockRolledBack {
                now,
                trusted,
                tolerance_secs: tolerance,
            });
        }
    }
    if now.saturating_add(leeway) < d.nbf {
        return Err(Error::DescriptorNotYetValid {
            not_before: d.nbf,
            now,
        });
    }
    // A clock running behind the trusted floor (within tolerance) must not buy time:
    // expiry is judged at the later of the two.
    let effective_now = now.max(options.trusted_time_floor.unwrap_or(i64::MIN));
    if effective_now >= d.exp.saturating_add(leeway) {
        return Err(Error::DescriptorExpired {
            expires_at: d.exp,
            now: effective_now,
        });
    }
    if let Some(device) = &options.expected_device_id
        && !constant_time_str_eq(device, &d.device_id)
    {
        return Err(Error::DeviceMismatch);
    }
    if let Some(pkg) = &options.expected_application_package
        && pkg != &d.application_package
    {
        return Err(Error::ApplicationPackageMismatch {
            expected: pkg.clone(),
            found: d.application_package,
        });
    }
    Ok(VerifiedDescriptor {
        descriptor: d,
        kid: parsed.kid,
    })
}

fn constant_time_str_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Reads a descriptor's claims WITHOUT verifying it, e.g. to show what a rejected
/// descriptor claimed. Never use the result for a decision.
pub fn decode_descriptor_unverified(jws: &str) -> Result<ActivationDescriptor> {
    Ok(jws::parse::<ActivationDescriptor>(jws, DESCRIPTOR_TYP)?.claims)
}
