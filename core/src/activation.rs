//! Activation requests (srv4pos `POST /activations-advanced`) and their validation.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::error::FieldError;
use crate::{Error, Result};

/// Largest `extras` object accepted, in bytes of compact JSON.
pub const EXTRAS_MAX_BYTES: usize = 4096;

/// An activation request as sent by a POS app (JSON, camelCase). Every field is taken
/// as given so that [`validate_activation_request`] can report every problem at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase")]
pub struct ActivationRequest {
    /// Name of the cash register, chosen by the user (1–64 characters).
    #[serde(default)]
    pub cash_register_name: String,
    /// The device's id (1–128 visible ASCII characters).
    #[serde(default)]
    pub device_id: String,
    /// Start of the API key's validity, RFC 3339, midnight UTC.
    #[serde(default)]
    pub valid_from: String,
    /// End of validity, RFC 3339, midnight UTC, at most one year after `validFrom`.
    #[serde(default)]
    pub valid_to: String,
    /// The company's id (Swedish organisation number by default).
    #[serde(default)]
    pub corporate_id: String,
    /// The POS application's package id (reverse DNS, Android rules).
    #[serde(default)]
    pub application_package: String,
    /// ISO 3166-1 alpha-2 country; `SE` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The app's own JSON object (at most 4 KiB), carried into the descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extras: Option<serde_json::Value>,
}

/// How `corporateId` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorporateIdRule {
    /// Swedish organisation number: 10 digits, optional `-` after the sixth, Luhn check
    /// digit. Normalised to `NNNNNN-NNNN`.
    #[default]
    SwedishOrgNumber,
    /// Any id of 1–64 characters from `A-Z a-z 0-9 - . /`, kept as given.
    Generic,
}

/// Options for [`validate_activation_request_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivationRules {
    /// How to check `corporateId`.
    pub corporate_id: CorporateIdRule,
}

/// A validity period: both ends at midnight UTC, `to` after `from`, at most one
/// calendar year long. Only built through validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    from: OffsetDateTime,
    to: OffsetDateTime,
}

impl Period {
    /// Checks and builds a period from two instants (Unix seconds).
    ///
    /// ```
    /// use tillgate_core::Period;
    /// // 2024-02-29 .. 2025-02-28 is exactly one calendar year.
    /// assert!(Period::from_unix(1709164800, 1740700800).is_ok());
    /// // 2024-02-29 .. 2025-03-01 is one day too long.
    /// assert!(Period::from_unix(1709164800, 1740787200).is_err());
    /// ```
    pub fn from_unix(from: i64, to: i64) -> Result<Self> {
        let mut errors = Vec::new();
        let f = instant("validFrom", from, &mut errors)
            .and_then(|t| midnight("validFrom", t, &mut errors));
        let t =
            instant("validTo", to, &mut errors).and_then(|t| midnight("validTo", t, &mut errors));
        match (f, t) {
            (Some(f), Some(t)) => check_period(f, t, &mut errors),
            _ => None,
        }
        .ok_or(Error::InvalidActivationRequest { fields: errors })
    }
    /// Checks and builds a period from its two RFC 3339 ends (`validFrom`, `validTo`) by
    /// the rules [`validate_activation_request`] applies to them, every failing end listed
    /// (`invalid_activation_request`). For a renewal's new period; write it back with
    /// [`from_rfc3339`](Self::from_rfc3339) and [`to_rfc3339`](Self::to_rfc3339) for the
    /// canonical form.
    ///
    /// ```
    /// use tillgate_core::Period;
    /// let p = Period::parse("2026-06-01T00:00:00.000Z", "2027-06-01T01:00:00+01:00").unwrap();
    /// assert_eq!(p.from_rfc3339(), "2026-06-01T00:00:00Z");
    /// assert_eq!(p.to_rfc3339(), "2027-06-01T00:00:00Z");
    /// // Not midnight: a zero fraction is, half a second is not.
    /// let e = Period::parse("2026-06-01T00:00:00.5Z", "2027-06-01T00:00:00Z").unwrap_err();
    /// assert_eq!(e.code(), "invalid_activation_request");
    /// ```
    pub fn parse(valid_from: &str, valid_to: &str) -> Result<Self> {
        let mut errors = Vec::new();
        parse_period(valid_from, valid_to, &mut errors)
            .ok_or(Error::InvalidActivationRequest { fields: errors })
    }
    /// Start, Unix seconds.
    pub fn from_unix_seconds(&self) -> i64 {
        self.from.unix_timestamp()
    }
    /// End, Unix seconds.
    pub fn to_unix_seconds(&self) -> i64 {
        self.to.unix_timestamp()
    }
    /// Start as RFC 3339 (`2024-01-01T00:00:00Z`).
    pub fn from_rfc3339(&self) -> String {
        // Both ends were checked to lie in the years 0000–9999, so formatting succeeds.
        rfc3339(self.from).unwrap_or_default()
    }
    /// End as RFC 3339.
    pub fn to_rfc3339(&self) -> String {
        rfc3339(self.to).unwrap_or_default()
    }
    /// Whether `now` (Unix seconds) lies in `[from, to)`.
    pub fn contains(&self, now: i64) -> bool {
        self.from.unix_timestamp() <= now && now < self.to.unix_timestamp()
    }
}

/// Formats Unix seconds as RFC 3339 UTC (`2024-01-01T00:00:00Z`); `None` outside the
/// years 0000–9999, which RFC 3339 cannot write.
///
/// ```
/// use tillgate_core::format_rfc3339;
/// assert_eq!(format_rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
/// assert_eq!(format_rfc3339(253_402_300_800), None); // 10000-01-01
/// assert_eq!(format_rfc3339(-62_167_219_201), None); // the last second of year -1
/// ```
pub fn format_rfc3339(secs: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(rfc3339)
}

/// `t` (UTC) as RFC 3339; `None` outside the years 0000–9999.
fn rfc3339(t: OffsetDateTime) -> Option<String> {
    if !in_rfc3339_years(t) {
        return None;
    }
    t.checked_to_offset(UtcOffset::UTC)?.format(&Rfc3339).ok()
}

/// Whether `t`'s year (in UTC) is one RFC 3339 can write: 0000–9999. `time` may accept
/// a wider range (its `large-dates` feature), so the rule is stated here, not borrowed.
fn in_rfc3339_years(t: OffsetDateTime) -> bool {
    (0..=9999).contains(&t.year())
}

fn out_of_range(field: &str, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    errors.push(FieldError::new(
        field,
        "out_of_range",
        "time out of range (years 0000 to 9999 UTC)",
    ));
    None
}

fn instant(field: &str, secs: i64, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) if in_rfc3339_years(t) => Some(t),
        _ => out_of_range(field, errors),
    }
}

/// Keeps `t` if it is exactly midnight UTC, otherwise records why not.
fn midnight(
    field: &str,
    t: OffsetDateTime,
    errors: &mut Vec<FieldError>,
) -> Option<OffsetDateTime> {
    if t.time() == Time::MIDNIGHT {
        return Some(t);
    }
    errors.push(FieldError::new(
        field,
        "not_midnight_utc",
        "must be exactly midnight UTC (00:00:00Z)",
    ));
    None
}

fn check_period(
    from: OffsetDateTime,
    to: OffsetDateTime,
    errors: &mut Vec<FieldError>,
) -> Option<Period> {
    if to <= from {
        errors.push(FieldError::new(
            "validTo",
            "not_after_valid_from",
            "must be after validFrom",
        ));
        return None;
    }
    if to > add_one_year(from.date()) {
        errors.push(FieldError::new(
            "validTo",
            "period_too_long",
            "must be at most one year after validFrom",
        ));
        return None;
    }
    Some(Period { from, to })
}

/// Midnight UTC one calendar year after `d`; 29 February plus a year is 28 February.
fn add_one_year(d: Date) -> OffsetDateTime {
    let year = d.year() + 1;
    let day = if d.month() == Month::February && d.day() == 29 && !time::util::is_leap_year(year) {
        28
    } else {
        d.day()
    };
    Date::from_calendar_date(year, d.month(), day)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(OffsetDateTime::new_utc(Date::MAX, Time::MIDNIGHT))
}

/// A company id that passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CorporateId(String);

impl CorporateId {
    /// Validates under `rule`.
    pub fn parse(s: &str, rule: CorporateIdRule) -> Result<Self> {
        corporate_id(s, rule).map_err(|e| Error::InvalidActivationRequest { fields: vec![e] })
    }
    /// The normalised id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorporateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn corporate_id(s: &str, rule: CorporateIdRule) -> Result<CorporateId, FieldError> {
    const F: &str = "corporateId";
    match rule {
        CorporateIdRule::Generic => {
            let n = s.chars().count();
            if n == 0 || n > 64 {
                return Err(FieldError::new(
                    F,
                    "invalid_length",
                    "must be 1 to 64 characters",
                ));
            }
            if !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '/'))
            {
                return Err(FieldError::new(
                    F,
                    "invalid_format",
                    "only A-Z a-z 0-9 - . / are allowed",
                ));
            }
            Ok(CorporateId(s.to_owned()))
        }
        CorporateIdRule::SwedishOrgNumber => {
            let digits: String = match s.len() {
                10 => s.to_owned(),
                11 if s.as_bytes()[6] == b'-' => format!("{}{}", &s[..6], &s[7..]),
                _ => String::new(),
            };
            if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FieldError::new(
                    F,
                    "invalid_format",
                    "must be a Swedish organisation number: 10 digits, optionally NNNNNN-NNNN",
                ));
            }
            if !luhn_ok(digits.as_bytes()) {
                return Err(FieldError::new(
                    F,
                    "bad_check_digit",
                    "check digit does not match (Luhn)",
                ));
            }
            Ok(CorporateId(format!("{}-{}", &digits[..6], &digits[6..])))
        }
    }
}

fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An application package id (reverse DNS under Android's rules): at least two
/// dot-separated parts, each starting with a letter, then letters, digits or `_`;
/// 1–64 characters in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ApplicationPackage(String);

impl ApplicationPackage {
    /// Validates.
    pub fn parse(s: &str) -> Result<Self> {
        application_package(s).map_err(|e| Error::InvalidActivationRequest { fields: vec![e] })
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn application_package(s: &str) -> Result<ApplicationPackage, FieldError> {
    const F: &str = "applicationPackage";
    if s.is_empty() || s.len() > 64 {
        return Err(FieldError::new(
            F,
            "invalid_length",
            "must be 1 to 64 characters",
        ));
    }
    let parts: Vec<&str> = s.split('.').collect();
    let part_ok = |p: &&str| {
        let mut b = p.bytes();
        matches!(b.next(), Some(c) if c.is_ascii_alphabetic())
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
    };
    if parts.len() < 2 || !parts.iter().all(part_ok) {
        return Err(FieldError::new(
            F,
            "invalid_format",
            "must be a reverse-DNS id like com.example.pos: two or more parts, each starting with a letter",
        ));
    }
    Ok(ApplicationPackage(s.to_owned()))
}

/// An activation request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidActivationRequest {
    /// Trimmed of nothing; as given.
    pub cash_register_name: String,
    /// As given.
    pub device_id: String,
    /// The API key's validity.
    pub period: Period,
    /// Normalised company id.
    pub corporate_id: CorporateId,
    /// Application package id.
    pub application_package: ApplicationPackage,
    /// Country code, upper-case (`SE` when not given).
    pub country: String,
    /// The extras object (`{}` when not given).
    pub extras: serde_json::Value,
}

/// Validates an activation request with the default rules (Swedish organisation number).
/// Every failing field is reported, in field order.
///
/// ```
/// use tillgate_core::{validate_activation_request, ActivationRequest};
/// let req = ActivationRequest {
///     cash_register_name: "Kassa 1".into(),
///     device_id: "a1b2c3".into(),
///     valid_from: "2024-01-01T00:00:00Z".into(),
///     valid_to: "2024-07-01T12:00:00Z".into(),
///     corporate_id: "556036-0793".into(),
///     application_package: "com.example.pos".into(),
///     ..Default::default()
/// };
/// let err = validate_activation_request(&req).unwrap_err();
/// assert_eq!(err.code(), "invalid_activation_request");
/// assert!(err.to_string().contains("validTo"));
/// ```
pub fn validate_activation_request(req: &ActivationRequest) -> Result<ValidActivationRequest> {
    validate_activation_request_with(req, &ActivationRules::default())
}

/// Validates an activation request under `rules`.
pub fn validate_activation_request_with(
    req: &ActivationRequest,
    rules: &ActivationRules,
) -> Result<ValidActivationRequest> {
    let mut errors = Vec::new();

    let name_len = req.cash_register_name.chars().count();
    if name_len == 0 || name_len > 64 || req.cash_register_name.trim().is_empty() {
        errors.push(FieldError::new(
            "cashRegisterName",
            "invalid_length",
            "must be 1 to 64 characters, not only spaces",
        ));
    } else if req.cash_register_name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "cashRegisterName",
            "control_character",
            "must not contain control characters",
        ));
    }

    let dev_len = req.device_id.len();
    if dev_len == 0 || dev_len > 128 {
        errors.push(FieldError::new(
            "deviceId",
            "invalid_length",
            "must be 1 to 128 characters",
        ));
    } else if !req.device_id.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(FieldError::new(
            "deviceId",
            "invalid_format",
            "only visible ASCII characters are allowed",
        ));
    }

    let period = parse_period(&req.valid_from, &req.valid_to, &mut errors);

    let corporate = corporate_id(&req.corporate_id, rules.corporate_id)
        .map_err(|e| errors.push(e))
        .ok();
    let package = application_package(&req.application_package)
        .map_err(|e| errors.push(e))
        .ok();

    let country = req.country.as_deref().unwrap_or("SE");
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        errors.push(FieldError::new(
            "country",
            "invalid_format",
            "must be an ISO 3166-1 alpha-2 code like SE",
        ));
    }

    let extras = match &req.extras {
        None | Some(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
        Some(v @ serde_json::Value::Object(_)) => {
            let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > EXTRAS_MAX_BYTES {
                errors.push(FieldError::new(
                    "extras",
                    "too_large",
                    format!("must be at most {EXTRAS_MAX_BYTES} bytes of JSON, got {size}"),
                ));
            }
            v.clone()
        }
        Some(_) => {
            errors.push(FieldError::new(
                "extras",
                "not_an_object",
                "must be a JSON object",
            ));
            serde_json::Value::Null
        }
    };

    match (period, corporate, package) {
        (Some(period), Some(corporate_id), Some(application_package)) if errors.is_empty() => {
            Ok(ValidActivationRequest {
                cash_register_name: req.cash_register_name.clone(),
                device_id: req.device_id.clone(),
                period,
                corporate_id,
                application_package,
                country: country.to_ascii_uppercase(),
                extras,
            })
        }
        _ => Err(Error::InvalidActivationRequest { fields: errors }),
    }
}

/// The period of `validFrom` and `validTo` (section 9.2), or why not in `errors`.
fn parse_period(from: &str, to: &str, errors: &mut Vec<FieldError>) -> Option<Period> {
    let from = parse_time("validFrom", from, errors).and_then(|t| midnight("validFrom", t, errors));
    let to = parse_time("validTo", to, errors).and_then(|t| midnight("validTo", t, errors));
    match (from, to) {
        (Some(f), Some(t)) => check_period(f, t, errors),
        _ => None,
    }
}

fn parse_time(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    if s.is_empty() {
        errors.push(FieldError::new(
            field,
            "missing",
            "is required (RFC 3339, e.g. 2024-01-01T00:00:00Z)",
        ));
        return None;
    }
    // The `time` parser is lenient about the date/time separator; RFC 3339 says T or t.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        errors.push(FieldError::new(
            field,
            "invalid_format",
            "must be an RFC 3339 time, e.g. 2024-01-01T00:00:00Z",
        ));
        return None;
    }
    match OffsetDateTime::parse(s, &Rfc3339) {
        // The offset can carry a time written in year 9999 (or 0000) past the years RFC
        // 3339 can write once it is converted to UTC; `to_offset` would panic there.
        Ok(t) => match t.checked_to_offset(UtcOffset::UTC) {
            Some(utc) if in_rfc3339_years(utc) => Some(utc),
            _ => out_of_range(field, errors),
        },
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "invalid_format",
                "must be an RFC 3339 time, e.g. 2024-01-01T00:00:00Z",
            ));
            None
        }
    }
}

// Read from JSON objects only (see `crate::object`).
crate::object::objects_only!(ActivationRequest);

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_req() -> ActivationRequest {
        ActivationRequest {
            cash_register_name: "Kassa 1".into(),
            device_id: "a1b2c3".into(),
            valid_from: "2024-02-29T00:00:00Z".into(),
            valid_to: "2025-02-28T00:00:00Z".into(),
            corporate_id: "5560360793".into(),
            application_package: "com.example.pos".into(),
            country: None,
            extras: None,
        }
    }

    #[test]
    fn accepts_and_normalises() {
        let v = validate_activation_request(&ok_req()).unwrap();
        assert_eq!(v.corporate_id.as_str(), "556036-0793");
        assert_eq!(v.country, "SE");
        assert_eq!(v.period.to_rfc3339(), "2025-02-28T00:00:00Z");
    }

    #[test]
    fn reports_every_field() {
        let req = ActivationRequest {
            cash_register_name: "".into(),
            device_id: "has space".into(),
            valid_from: "2024-01-01T01:00:00Z".into(),
            valid_to: "nope".into(),
            corporate_id: "5560360794".into(),
            application_package: "pos".into(),
            country: Some("Sweden".into()),
            extras: Some(serde_json::json!([1])),
        };
        let Err(Error::InvalidActivationRequest { fields }) = validate_activation_request(&req)
        else {
            panic!("expected field errors");
        };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "cashRegisterName",
                "deviceId",
                "validFrom",
                "validTo",
                "corporateId",
                "applicationPackage",
                "country",
                "extras"
            ]
        );
    }

    #[test]
    fn offset_times_are_converted_to_utc_first() {
        let mut r = ok_req();
        r.valid_from = "2024-03-01T01:00:00+01:00".into();
        r.valid_to = "2024-06-01T00:00:00Z".into();
        assert!(validate_activation_request(&r).is_ok());
    }

    fn field_codes(r: &ActivationRequest) -> Vec<(String, String)> {
        match validate_activation_request(r) {
            Err(Error::InvalidActivationRequest { fields }) => {
                fields.into_iter().map(|f| (f.field, f.code)).collect()
            }
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn an_offset_past_the_last_year_is_out_of_range_not_a_panic() {
        // 9999-12-31T23:00:00-01:00 is 10000-01-01T00:00:00Z: `to_offset` panicked on it,
        // before authentication on the server.
        for past in [
            "9999-12-31T23:00:00-01:00",
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T00:01:00-23:59",
            "0000-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00+23:59",
        ] {
            let mut r = ok_req();
            r.valid_from = past.into();
            assert_eq!(
                field_codes(&r),
                [("validFrom".to_string(), "out_of_range".to_string())],
                "{past}"
            );
            let mut r = ok_req();
            r.valid_to = past.into();
            assert_eq!(
                field_codes(&r),
                [("validTo".to_string(), "out_of_range".to_string())],
                "{past}"
            );
        }
        // The last and first writable midnights are still fine.
        let mut r = ok_req();
        r.valid_from = "9999-01-01T00:00:00Z".into();
        r.valid_to = "9999-12-31T01:00:00+01:00".into();
        let v = validate_activation_request(&r).unwrap();
        assert_eq!(v.period.to_rfc3339(), "9999-12-31T00:00:00Z");
        r.valid_from = "0000-01-01T01:00:00+01:00".into();
        r.valid_to = "0000-06-01T00:00:00Z".into();
        let v = validate_activation_request(&r).unwrap();
        assert_eq!(v.period.from_rfc3339(), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn times_rfc_3339_cannot_write_are_refused_or_none() {
        const YEAR_0: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
        const YEAR_10000: i64 = 253_402_300_800; // 10000-01-01T00:00:00Z
        assert_eq!(
            format_rfc3339(YEAR_0).as_deref(),
            Some("0000-01-01T00:00:00Z")
        );
        assert_eq!(
            format_rfc3339(YEAR_10000 - 1).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        for secs in [YEAR_0 - 1, YEAR_0 - 86_400, YEAR_10000, i64::MIN, i64::MAX] {
            assert_eq!(format_rfc3339(secs), None, "{secs}");
        }
        // A period is only built inside those years, so it always formats.
        let err = |from, to| match Period::from_unix(from, to) {
            Err(Error::InvalidActivationRequest { fields }) => fields
                .into_iter()
                .map(|f| (f.field, f.code))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(YEAR_0 - 86_400, YEAR_0 + 86_400),
            [("validFrom".to_string(), "out_of_range".to_string())]
        );
        assert_eq!(
            err(YEAR_10000 - 86_400, YEAR_10000),
            [("validTo".to_string(), "out_of_range".to_string())]
        );
        let p = Period::from_unix(YEAR_0, YEAR_0 + 86_400).unwrap();
        assert_eq!(p.from_rfc3339(), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn generic_corporate_ids() {
        let mut r = ok_req();
        r.corporate_id = "DE-123.456/7".into();
        let rules = ActivationRules {
            corporate_id: CorporateIdRule::Generic,
        };
        assert!(validate_activation_request_with(&r, &rules).is_ok());
        assert!(validate_activation_request(&r).is_err());
    }
}
