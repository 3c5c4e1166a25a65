//! Records and enums crossing the FFI, with their conversions to and from core types.
//! Field names follow core; uniffi renders them camelCase in Kotlin and Swift.

use tillgate_core as core;

use crate::{Result, TillgateError, json_value};

/// One invalid field of a request, with a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FieldError {
    /// The field's JSON name (camelCase), e.g. `validFrom`.
    pub field: String,
    /// Stable snake_case code, e.g. `not_midnight_utc`.
    pub code: String,
    /// A message for people.
    pub message: String,
}

impl From<core::FieldError> for FieldError {
    fn from(f: core::FieldError) -> Self {
        FieldError {
            field: f.field,
            code: f.code,
            message: f.message,
        }
    }
}

/// Options for `verify_descriptor`. All `None` checks only signature and times.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct VerifyOptions {
    /// The latest trusted time seen (e.g. the last signed server time), Unix seconds.
    #[uniffi(default = None)]
    pub trusted_time_floor: Option<i64>,
    /// How far `now` may lag behind `trusted_time_floor`, seconds; `None` means 300 s.
    #[uniffi(default = None)]
    pub clock_tolerance_secs: Option<i64>,
    /// Leeway for `nbf` and `exp`, seconds; `None` means 0.
    #[uniffi(default = None)]
    pub leeway_secs: Option<i64>,
    /// If set, the descriptor's `deviceId` must equal it.
    #[uniffi(default = None)]
    pub expected_device_id: Option<String>,
    /// If set, the descriptor's `applicationPackage` must equal it.
    #[uniffi(default = None)]
    pub expected_application_package: Option<String>,
}

impl From<VerifyOptions> for core::VerifyOptions {
    fn from(o: VerifyOptions) -> Self {
        core::VerifyOptions {
            trusted_time_floor: o.trusted_time_floor,
            clock_tolerance_secs: o.clock_tolerance_secs,
            leeway_secs: o.leeway_secs,
            expected_device_id: o.expected_device_id,
            expected_application_package: o.expected_application_package,
        }
    }
}

/// The claims of an ActivationDescriptor. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ActivationDescriptor {
    /// Issuer: the server's public base URL or name.
    pub iss: String,
    /// Subject: the cash register's ProductionNumber.
    pub sub: String,
    /// Issued at.
    pub iat: i64,
    /// Valid from.
    pub nbf: i64,
    /// Valid to.
    pub exp: i64,
    /// Format version.
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
    /// The POS application's package id.
    pub application_package: String,
    /// What the activation enables.
    pub features: Vec<String>,
    /// Activation status when signed.
    pub status: String,
    /// The application's own JSON object, as JSON text.
    pub extras_json: String,
}

impl From<core::ActivationDescriptor> for ActivationDescriptor {
    fn from(d: core::ActivationDescriptor) -> Self {
        ActivationDescriptor {
            iss: d.iss,
            sub: d.sub,
            iat: d.iat,
            nbf: d.nbf,
            exp: d.exp,
            ver: d.ver,
            activation_id: d.activation_id,
            cash_register_name: d.cash_register_name,
            device_id: d.device_id,
            corporate_id: d.corporate_id,
            country: d.country,
            application_package: d.application_package,
            features: d.features,
            status: d.status,
            extras_json: d.extras.to_string(),
        }
    }
}

impl TryFrom<ActivationDescriptor> for core::ActivationDescriptor {
    type Error = TillgateError;
    fn try_from(d: ActivationDescriptor) -> Result<Self> {
        Ok(core::ActivationDescriptor {
            extras: json_value("extrasJson", &d.extras_json)?,
            iss: d.iss,
            sub: d.sub,
            iat: d.iat,
            nbf: d.nbf,
            exp: d.exp,
            ver: d.ver,
            activation_id: d.activation_id,
            cash_register_name: d.cash_register_name,
            device_id: d.device_id,
            corporate_id: d.corporate_id,
            country: d.country,
            application_package: d.application_package,
            features: d.features,
            status: d.status,
        })
    }
}

/// A descriptor whose signature and times have been checked.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct VerifiedDescriptor {
    /// The verified claims.
    pub claims: ActivationDescriptor,
    /// The `kid` of the key that signed it.
    pub kid: String,
}

impl TryFrom<core::VerifiedDescriptor> for VerifiedDescriptor {
    type Error = TillgateError;
    fn try_from(v: core::VerifiedDescriptor) -> Result<Self> {
        let kid = v.kid().to_owned();
        Ok(VerifiedDescriptor {
            claims: v.into_claims().into(),
            kid,
        })
    }
}

/// Which characters a generated API key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ApiKeyAlphabet {
    /// All 78 allowed characters.
    Full,
    /// The 75 characters that never need escaping in a URL path (no `# % ^`).
    UrlSafe,
}

impl From<ApiKeyAlphabet> for core::ApiKeyAlphabet {
    fn from(a: ApiKeyAlphabet) -> Self {
        match a {
            ApiKeyAlphabet::Full => core::ApiKeyAlphabet::Full,
            ApiKeyAlphabet::UrlSafe => core::ApiKeyAlphabet::UrlSafe,
        }
    }
}

/// The API family of a URL token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum UrlTokenPrefix {
    /// `OpenApi_`
    OpenApi,
    /// `Anywhere_`
    Anywhere,
    /// `Gnap_`
    Gnap,
}

/// An optional `$X` parameter of a URL token (other than `$R` and `$$`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UrlParam {
    /// The identifier: one upper-case ASCII letter.
    pub id: String,
    /// The decoded value.
    pub value: String,
}

/// A parsed URL-path token. Printing it never shows the access token: `Debug` and
/// `Display` write `<redacted>` in its place, and so do Kotlin's `toString()`, Python's
/// `str()` and `repr()` and Swift's `description` and `debugDescription` (exported
/// below, uniffi calls these Rust implementations).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct UrlToken {
    /// API family.
    pub prefix: UrlTokenPrefix,
    /// Optional version written after the prefix (`OpenApi2_`).
    pub version: Option<u32>,
    /// The RmSystem ids addressed.
    pub rm_system: Vec<u32>,
    /// The `$R` data version as `YYYYMMDDHHmmSS` (UTC), if given.
    pub rve: Option<String>,
    /// Other `$X` parameters, in order.
    pub params: Vec<UrlParam>,
    /// The `$$` access token, decoded, if given. A secret: never log it.
    pub token: Option<String>,
    /// Everything after the first segment, untouched, or empty.
    pub rest: String,
}

impl std::fmt::Debug for UrlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlToken")
            .field("prefix", &self.prefix)
            .field("version", &self.version)
            .field("rm_system", &self.rm_system)
            .field("rve", &self.rve)
            .field("params", &self.params)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("rest", &self.rest)
            .finish()
    }
}

/// The same text as `Debug`: what Kotlin's `toString()`, Python's `str()` and Swift's
/// `description` show.
impl std::fmt::Display for UrlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl From<core::UrlToken> for UrlToken {
    fn from(t: core::UrlToken) -> Self {
        UrlToken {
            prefix: match t.prefix {
                core::Prefix::OpenApi => UrlTokenPrefix::OpenApi,
                core::Prefix::Anywhere => UrlTokenPrefix::Anywhere,
                core::Prefix::Gnap => UrlTokenPrefix::Gnap,
            },
            version: t.version,
            rm_system: t.rm_system.ids().to_vec(),
            rve: t.rve.map(|r| r.to_string()),
            params: t
                .params
                .iter()
                .map(|p| UrlParam {
                    id: p.id().to_string(),
                    value: p.value().to_owned(),
                })
                .collect(),
            token: t.token.map(|a| a.expose().to_owned()),
            rest: t.rest,
        }
    }
}

impl TryFrom<UrlToken> for core::UrlToken {
    type Error = TillgateError;
    fn try_from(t: UrlToken) -> Result<Self> {
        let params = t
            .params
            .iter()
            .map(|p| {
                let mut chars = p.id.chars();
                match (chars.next(), chars.next()) {
                    (Some(id), None) => Ok(core::UrlParam::new(id, &p.value)?),
                    _ => Err(TillgateError::invalid_argument(
                        "a URL parameter id must be one letter",
                    )),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(core::UrlToken {
            prefix: match t.prefix {
                UrlTokenPrefix::OpenApi => core::Prefix::OpenApi,
                UrlTokenPrefix::Anywhere => core::Prefix::Anywhere,
                UrlTokenPrefix::Gnap => core::Prefix::Gnap,
            },
            version: t.version,
            rm_system: core::RmSystem::new(t.rm_system)?,
            rve: t.rve.as_deref().map(core::Rve::parse).transpose()?,
            params,
            token: t.token.as_deref().map(core::AccessToken::new).transpose()?,
            rest: t.rest,
        })
    }
}

/// How an activation request's `corporateId` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CorporateIdRule {
    /// Swedish organisation number with Luhn check digit, normalised to `NNNNNN-NNNN`.
    SwedishOrgNumber,
    /// Any id of 1–64 characters from `A-Z a-z 0-9 - . /`.
    Generic,
}

impl From<CorporateIdRule> for core::CorporateIdRule {
    fn from(r: CorporateIdRule) -> Self {
        match r {
            CorporateIdRule::SwedishOrgNumber => core::CorporateIdRule::SwedishOrgNumber,
            CorporateIdRule::Generic => core::CorporateIdRule::Generic,
        }
    }
}

/// An activation request as a POS app sends it; every field is taken as given so that
/// validation can report every problem at once.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct ActivationRequest {
    /// Name of the cash register (1–64 characters).
    pub cash_register_name: String,
    /// The device's id (1–128 visible ASCII characters).
    pub device_id: String,
    /// Start of validity, RFC 3339, midnight UTC.
    pub valid_from: String,
    /// End of validity, RFC 3339, midnight UTC, at most one year after `valid_from`.
    pub valid_to: String,
    /// The company's id.
    pub corporate_id: String,
    /// The POS application's package id (reverse DNS).
    pub application_package: String,
    /// ISO 3166-1 alpha-2 country; `SE` when `None`.
    #[uniffi(default = None)]
    pub country: Option<String>,
    /// The app's own JSON object (at most 4 KiB), as JSON text.
    #[uniffi(default = None)]
    pub extras_json: Option<String>,
}

impl TryFrom<ActivationRequest> for core::ActivationRequest {
    type Error = TillgateError;
    fn try_from(r: ActivationRequest) -> Result<Self> {
        Ok(core::ActivationRequest {
            extras: r
                .extras_json
                .as_deref()
                .map(|t| json_value("extrasJson", t))
                .transpose()?,
            cash_register_name: r.cash_register_name,
            device_id: r.device_id,
            valid_from: r.valid_from,
            valid_to: r.valid_to,
            corporate_id: r.corporate_id,
            application_package: r.application_package,
            country: r.country,
        })
    }
}

/// An activation request that passed every check, normalised.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ValidActivationRequest {
    /// As given.
    pub cash_register_name: String,
    /// As given.
    pub device_id: String,
    /// Start of validity, RFC 3339 (`2025-01-01T00:00:00Z`).
    pub valid_from: String,
    /// End of validity, RFC 3339.
    pub valid_to: String,
    /// Start of validity, Unix seconds.
    pub valid_from_unix: i64,
    /// End of validity, Unix seconds.
    pub valid_to_unix: i64,
    /// Normalised company id.
    pub corporate_id: String,
    /// Application package id.
    pub application_package: String,
    /// Country code, upper-case (`SE` when not given).
    pub country: String,
    /// The extras object as JSON text (`{}` when not given).
    pub extras_json: String,
}

impl From<core::ValidActivationRequest> for ValidActivationRequest {
    fn from(v: core::ValidActivationRequest) -> Self {
        ValidActivationRequest {
            valid_from: v.period.from_rfc3339(),
            valid_to: v.period.to_rfc3339(),
            valid_from_unix: v.period.from_unix_seconds(),
            valid_to_unix: v.period.to_unix_seconds(),
            corporate_id: v.corporate_id.as_str().to_owned(),
            application_package: v.application_package.as_str().to_owned(),
            extras_json: v.extras.to_string(),
            cash_register_name: v.cash_register_name,
            device_id: v.device_id,
            country: v.country,
        }
    }
}

/// Argon2id cost parameters for dynamic keys; the defaults are OWASP's (19 MiB, 2
/// passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct DynamicKeyParams {
    /// Memory in KiB.
    #[uniffi(default = 19456)]
    pub memory_kib: u32,
    /// Passes.
    #[uniffi(default = 2)]
    pub iterations: u32,
    /// Lanes (1–16).
    #[uniffi(default = 1)]
    pub parallelism: u32,
}

impl From<DynamicKeyParams> for core::DynamicKeyParams {
    fn from(p: DynamicKeyParams) -> Self {
        core::DynamicKeyParams {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
        }
    }
}

/// What a verified dynamic API key proves.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DynamicKeyClaims {
    /// The login name.
    pub login: String,
    /// When the key was made, Unix seconds.
    pub issued_at: i64,
    /// The 16-byte nonce (a server remembers it for the window to refuse replays).
    pub nonce: Vec<u8>,
}

impl From<core::DynamicKeyClaims> for DynamicKeyClaims {
    fn from(c: core::DynamicKeyClaims) -> Self {
        DynamicKeyClaims {
            login: c.login,
            issued_at: c.issued_at,
            nonce: c.nonce.to_vec(),
        }
    }
}

/// What kind of transaction this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TransactionType {
    /// A sale.
    Sale,
    /// Money given back.
    Refund,
    /// A copy of an earlier receipt.
    Copy,
    /// A training transaction (not real money).
    Training,
}

/// One VAT line.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VatLine {
    /// Rate in basis points (2500 = 25 %).
    pub rate: u32,
    /// VAT amount, minor units.
    pub amount: i64,
}

/// One item line.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Item {
    /// Article name, 1–128 characters.
    pub name: String,
    /// Number of units.
    pub quantity: i64,
    /// Line amount (all units together), minor units.
    pub amount: i64,
}

/// A cash transaction. Amounts are integer minor units; `kind` gives the sign.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Transaction {
    /// What kind of transaction (wire name `type`).
    pub kind: TransactionType,
    /// ISO 4217 code, e.g. `SEK`.
    pub currency: String,
    /// Sum of the item amounts.
    pub total: i64,
    /// Item lines, at least one.
    pub items: Vec<Item>,
    /// VAT lines, one per rate.
    #[uniffi(default = [])]
    pub vat: Vec<VatLine>,
    /// For `copy` and `refund`: the id of the original transaction.
    #[uniffi(default = None)]
    pub reference: Option<String>,
}

impl From<Transaction> for core::Transaction {
    fn from(t: Transaction) -> Self {
        core::Transaction {
            currency: t.currency,
            items: t
                .items
                .into_iter()
                .map(|i| core::Item {
                    amount: i.amount,
                    name: i.name,
                    quantity: i.quantity,
                })
                .collect(),
            reference: t.reference,
            total: t.total,
            kind: match t.kind {
                TransactionType::Sale => core::TransactionType::Sale,
                TransactionType::Refund => core::TransactionType::Refund,
                TransactionType::Copy => core::TransactionType::Copy,
                TransactionType::Training => core::TransactionType::Training,
            },
            vat: t
                .vat
                .into_iter()
                .map(|v| core::VatLine {
                    amount: v.amount,
                    rate: v.rate,
                })
                .collect(),
        }
    }
}

impl From<core::Transaction> for Transaction {
    fn from(t: core::Transaction) -> Self {
        Transaction {
            kind: match t.kind {
                core::TransactionType::Sale => TransactionType::Sale,
                core::TransactionType::Refund => TransactionType::Refund,
                core::TransactionType::Copy => TransactionType::Copy,
                core::TransactionType::Training => TransactionType::Training,
            },
            currency: t.currency,
            total: t.total,
            items: t
                .items
                .into_iter()
                .map(|i| Item {
                    name: i.name,
                    quantity: i.quantity,
                    amount: i.amount,
                })
                .collect(),
            vat: t
                .vat
                .into_iter()
                .map(|v| VatLine {
                    rate: v.rate,
                    amount: v.amount,
                })
                .collect(),
            reference: t.reference,
        }
    }
}

/// The claims of a signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReceiptClaims {
    /// Issuer (the server).
    pub iss: String,
    /// The register's ProductionNumber.
    pub sub: String,
    /// When the server accepted the transaction, Unix seconds.
    pub iat: i64,
    /// Gapless per-register sequence number, starting at 1.
    pub seq: u64,
    /// The transaction's id on the server.
    pub txid: String,
    /// `transaction_hash` of the transaction.
    pub txh: String,
    /// `receipt_link` of the previous receipt; empty for `seq` 1.
    pub prev: String,
    /// Transaction type (`sale`, `refund`, `copy`, `training`).
    pub tx_type: String,
    /// Total in minor units.
    pub total: i64,
    /// Currency.
    pub currency: String,
}

impl From<core::ReceiptClaims> for ReceiptClaims {
    fn from(c: core::ReceiptClaims) -> Self {
        ReceiptClaims {
            iss: c.iss,
            sub: c.sub,
            iat: c.iat,
            seq: c.seq,
            txid: c.txid,
            txh: c.txh,
            prev: c.prev,
            tx_type: c.tx_type,
            total: c.total,
            currency: c.currency,
        }
    }
}

/// The claims of a server-signed timestamp.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServerTimeClaims {
    /// Issuer (the server).
    pub iss: String,
    /// The register's ProductionNumber the timestamp was issued to.
    pub sub: String,
    /// The server's time, Unix seconds.
    pub iat: i64,
    /// The nonce the app sent, echoed; `None` when it sent none.
    pub nonce: Option<String>,
}

impl From<core::ServerTimeClaims> for ServerTimeClaims {
    fn from(c: core::ServerTimeClaims) -> Self {
        ServerTimeClaims {
            iss: c.iss,
            sub: c.sub,
            iat: c.iat,
            nonce: c.nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_never_shows_the_access_token() {
        let path = "/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products".to_owned();
        let t = crate::parse_url_token(path).unwrap();
        assert_eq!(t.token.as_deref(), Some("Mysecrettoken"));
        // Debug and Display (what the foreign languages print, through the exported
        // traits), plain and alternate.
        for shown in [
            format!("{t:?}"),
            format!("{t:#?}"),
            format!("{t}"),
            format!("{t:#}"),
            t.uniffi_trait_debug(),
            t.uniffi_trait_display(),
        ] {
            assert!(!shown.contains("Mysecrettoken"), "{shown}");
            assert!(
                shown.contains("<redacted>")
                    && shown.contains("/Products")
                    && shown.contains("20201201134216"),
                "{shown}"
            );
        }
    }
}
