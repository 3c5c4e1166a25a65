//! Fieldpine URL-path access tokens:
//! `/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::api_key::{CharClass, classify_api_key_char};
use crate::error::UrlTokenProblem as P;
use crate::{Error, Result};

/// Longest access token accepted in a path.
pub const URL_TOKEN_MAX_LEN: usize = 256;
/// Longest value of an unknown `$X` parameter.
pub const URL_PARAM_MAX_LEN: usize = 256;

fn err(position: usize, reason: P) -> Error {
    Error::InvalidUrlToken { position, reason }
}

/// The first word of the path, naming the API family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    /// `OpenApi`
    OpenApi,
    /// `Anywhere`
    Anywhere,
    /// `Gnap`
    Gnap,
}

impl Prefix {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::OpenApi => "OpenApi",
            Prefix::Anywhere => "Anywhere",
            Prefix::Gnap => "Gnap",
        }
    }
}

/// One or more comma-separated decimal system ids, e.g. `1,2,3,4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RmSystem(Vec<u32>);

impl RmSystem {
    /// Builds from ids; at least one is required.
    pub fn new(ids: Vec<u32>) -> Result<Self> {
        if ids.is_empty() {
            return Err(err(0, P::InvalidRmSystem));
        }
        Ok(RmSystem(ids))
    }
    /// The ids, in order.
    pub fn ids(&self) -> &[u32] {
        &self.0
    }
    fn parse_at(s: &str, offset: usize) -> Result<Self> {
        Ok(RmSystem(
            rm_system_ids(check_rm_system(s, offset)?).collect(),
        ))
    }
}

/// Checks `1,2,3,4` (each id 1 to 10 digits, fitting a u32) without allocating.
fn check_rm_system(s: &str, offset: usize) -> Result<&str> {
    let mut pos = offset;
    for part in s.split(',') {
        if part.is_empty()
            || part.len() > 10
            || !part.bytes().all(|b| b.is_ascii_digit())
            || part.parse::<u32>().is_err()
        {
            return Err(err(pos, P::InvalidRmSystem));
        }
        pos += part.len() + 1;
    }
    Ok(s)
}

/// The ids of a list that passed `check_rm_system`.
fn rm_system_ids(checked: &str) -> impl Iterator<Item = u32> + '_ {
    checked.split(',').filter_map(|p| p.parse().ok())
}

impl FromStr for RmSystem {
    type Err = Error;
    /// Parses `1,2,3,4`.
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_at(s, 0)
    }
}

impl fmt::Display for RmSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// An RVE: the UTC time (to the second) the caller's copy of the data last changed,
/// written `YYYYMMDDHHmmSS`. Used for delta sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rve(PrimitiveDateTime);

impl Rve {
    /// Parses `YYYYMMDDHHmmSS`; the value must be a real calendar time.
    ///
    /// ```
    /// use tillgate_core::Rve;
    /// assert_eq!(Rve::parse("20201201134216").unwrap().unix_seconds(), 1606830136);
    /// assert!(Rve::parse("20210229000000").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_at(s, 0)
    }

    fn parse_at(s: &str, offset: usize) -> Result<Self> {
        let b = s.as_bytes();
        if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
            return Err(err(offset, P::InvalidRve));
        }
        let n = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let bad = || err(offset, P::InvalidRve);
        let month = Month::try_from(n(4..6) as u8).map_err(|_| bad())?;
        let date =
            Date::from_calendar_date(n(0..4) as i32, month, n(6..8) as u8).map_err(|_| bad())?;
        let time =
            Time::from_hms(n(8..10) as u8, n(10..12) as u8, n(12..14) as u8).map_err(|_| bad())?;
        Ok(Rve(PrimitiveDateTime::new(date, time)))
    }

    /// From Unix seconds (UTC). Fails outside years 0000–9999.
    pub fn from_unix(secs: i64) -> Result<Self> {
        let t = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| err(0, P::InvalidRve))?;
        if !(0..=9999).contains(&t.year()) {
            return Err(err(0, P::InvalidRve));
        }
        Ok(Rve(PrimitiveDateTime::new(t.date(), t.time())))
    }

    /// Unix seconds.
    pub fn unix_seconds(self) -> i64 {
        self.0.assume_utc().unix_timestamp()
    }
}

impl fmt::Display for Rve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        )
    }
}

/// An access token as carried after `$$`: 1 to 256 characters of the API-key charset.
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Validates a (decoded) token.
    pub fn new(token: &str) -> Result<Self> {
        let len = check_charset(token, 0)?;
        if len == 0 {
            return Err(err(0, P::EmptyToken));
        }
        if len > URL_TOKEN_MAX_LEN {
            return Err(err(0, P::TokenTooLong));
        }
        Ok(AccessToken(token.to_owned()))
    }
    /// The token. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// An optional `$X` parameter other than `$R` and `$$`, kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParam {
    id: char,
    value: String,
}

impl UrlParam {
    /// Builds a parameter; `id` is an ASCII letter other than R (stored upper-case),
    /// `value` up to 256 characters of the API-key charset without `$`.
    pub fn new(id: char, value: &str) -> Result<Self> {
        if !id.is_ascii_alphabetic() {
            return Err(err(0, P::InvalidParamIdentifier));
        }
        let id = id.to_ascii_uppercase();
        if id == 'R' {
            // `$R` is the RVE, carried in `UrlToken::rve`.
            return Err(err(0, P::InvalidParamIdentifier));
        }
        if value.contains('$') {
            return Err(err(0, P::InvalidCharacter));
        }
        if check_charset(value, 0)? > URL_PARAM_MAX_LEN {
            return Err(err(0, P::ParamTooLong));
        }
        Ok(UrlParam {
            id,
            value: value.to_owned(),
        })
    }
    /// The identifier, upper-case.
    pub fn id(&self) -> char {
        self.id
    }
    /// The decoded value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// A parsed URL-path token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlToken {
    /// API family.
    pub prefix: Prefix,
    /// Optional version written after the prefix (`OpenApi2_`).
    pub version: Option<u32>,
    /// The systems addressed.
    pub rm_system: RmSystem,
    /// The `$R` data version, if given.
    pub rve: Option<Rve>,
    /// Other `$X` parameters, in order.
    pub params: Vec<UrlParam>,
    /// The `$$` access token, if given.
    pub token: Option<AccessToken>,
    /// Everything after the first segment, untouched (`/Products?x=1`), or empty.
    pub rest: String,
}

/// Checks (already decoded) characters against the API-key charset; returns the count.
fn check_charset(s: &str, offset: usize) -> Result<usize> {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        if !is_value_char(c) {
            return Err(err(offset + i, P::InvalidCharacter));
        }
        n += 1;
    }
    Ok(n)
}

/// Whether `c` may appear in a decoded value (the API-key charset, escaped ones included).
fn is_value_char(c: char) -> bool {
    matches!(
        classify_api_key_char(c),
        CharClass::Allowed | CharClass::AllowedEscaped
    )
}

/// [`is_value_char`] of a raw byte (bytes from 0x80 up are never allowed).
fn is_value_byte(b: u8) -> bool {
    b.is_ascii() && is_value_char(char::from(b))
}

/// Percent-decodes a path-segment value; every character, raw or decoded, must be in
/// the API-key charset. `offset` is the byte offset of `s` in the whole path. Borrows
/// `s` when it holds no escape. The result is ASCII, so its `len()` counts characters.
fn decode_value(s: &str, offset: usize) -> Result<Cow<'_, str>> {
    let b = s.as_bytes();
    // Raw non-ASCII bytes are refused, so slicing stays on char boundaries.
    let Some(first_escape) = b.iter().position(|&c| c == b'%' || !is_value_byte(c)) else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first_escape]);
    let mut i = first_escape;
    while i < b.len() {
        let c = if b[i] == b'%' {
            let hex = |j: usize| b.get(j).and_then(|&h| (h as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(err(offset + i, P::InvalidPercentEncoding));
            };
            let c = (hi * 16 + lo) as u8;
            if !is_value_byte(c) {
                return Err(err(offset + i, P::InvalidCharacter));
            }
            i += 3;
            c
        } else {
            if !is_value_byte(b[i]) {
                return Err(err(offset + i, P::InvalidCharacter));
            }
            i += 1;
            b[i - 1]
        };
        out.push(char::from(c));
    }
    Ok(Cow::Owned(out))
}

fn encode_value(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            '^' => out.push_str("%5E"),
            c => out.push(c),
        }
    }
}

/// Most digits of a version in a path (`OpenApi2_`), and so the largest version.
const MAX_VERSION_DIGITS: usize = 9;
const MAX_VERSION: u32 = 999_999_999;

fn parse_prefix(head: &str) -> Option<(Prefix, Option<u32>)> {
    for (name, prefix) in [
        ("openapi", Prefix::OpenApi),
        ("anywhere", Prefix::Anywhere),
        ("gnap", Prefix::Gnap),
    ] {
        if head.len() >= name.len()
            && head.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            let version = &head[name.len()..];
            if version.is_empty() {
                return Some((prefix, None));
            }
            if version.len() <= MAX_VERSION_DIGITS && version.bytes().all(|b| b.is_ascii_digit()) {
                return version.parse().ok().map(|v| (prefix, Some(v)));
            }
            return None;
        }
    }
    None
}

/// Parses a URL path whose first segment is a Fieldpine access-token segment.
///
/// The prefix is matched without regard to case; parameter identifiers are ASCII
/// letters, also case-insensitive, reported upper-case. Errors carry the byte offset.
/// [`UrlTokenRef::parse`] is the same parse without copying out of `path`.
///
/// ```
/// use tillgate_core::{parse_url_token, Prefix};
/// let t = parse_url_token("/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products").unwrap();
/// assert_eq!(t.prefix, Prefix::OpenApi);
/// assert_eq!(t.rm_system.ids(), &[1, 2, 3, 4]);
/// assert_eq!(t.rve.unwrap().to_string(), "20201201134216");
/// assert_eq!(t.token.unwrap().expose(), "Mysecrettoken");
/// assert_eq!(t.rest, "/Products");
/// ```
pub fn parse_url_token(path: &str) -> Result<UrlToken> {
    UrlTokenRef::parse(path).map(UrlTokenRef::into_owned)
}

/// A parsed URL-path token that borrows from the path: what a server reads on every
/// request. It allocates only for a percent-encoded token and for `$X` parameters other
/// than `$R`. Same rules and errors as [`parse_url_token`]; `Debug` redacts the token.
///
/// ```
/// use tillgate_core::{RmSystem, UrlTokenRef};
/// let t = UrlTokenRef::parse("/OpenApi_1,2,3,4$$Mysecrettoken/Products?x=1").unwrap();
/// assert!(t.rm_system_is(&"1,2,3,4".parse::<RmSystem>().unwrap()));
/// assert_eq!(t.token(), Some("Mysecrettoken"));
/// assert_eq!(t.rest(), "/Products?x=1");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UrlTokenRef<'a> {
    /// API family.
    pub prefix: Prefix,
    /// Optional version written after the prefix (`OpenApi2_`).
    pub version: Option<u32>,
    /// The `$R` data version, if given.
    pub rve: Option<Rve>,
    /// Other `$X` parameters, in order.
    pub params: Vec<UrlParam>,
    rm_system: &'a str,
    token: Option<Cow<'a, str>>,
    rest: &'a str,
}

impl<'a> UrlTokenRef<'a> {
    /// Parses `path`; see [`parse_url_token`] for the rules.
    pub fn parse(path: &'a str) -> Result<Self> {
        if !path.starts_with('/') {
            return Err(err(0, P::MissingLeadingSlash));
        }
        let seg_end = path[1..].find(['/', '?']).map_or(path.len(), |i| i + 1);
        let segment = &path[1..seg_end];
        let rest = &path[seg_end..];

        let underscore = segment.find('_').ok_or(err(1, P::UnknownPrefix))?;
        let (prefix, version) =
            parse_prefix(&segment[..underscore]).ok_or(err(1, P::UnknownPrefix))?;

        let after = &segment[underscore + 1..];
        let after_off = 1 + underscore + 1;
        let rm_end = after.find('$').unwrap_or(after.len());
        let rm_system = check_rm_system(&after[..rm_end], after_off)?;

        let mut rve = None;
        let mut params: Vec<UrlParam> = Vec::new();
        let mut token = None;
        let mut seen = [false; 26];
        let mut pos = rm_end; // index into `after`, at a '$' or the end
        while pos < after.len() {
            let abs = after_off + pos;
            let id_byte = after.as_bytes().get(pos + 1).copied();
            match id_byte {
                Some(b'$') => {
                    let decoded = decode_value(&after[pos + 2..], abs + 2)?;
                    if decoded.is_empty() {
                        return Err(err(abs, P::EmptyToken));
                    }
                    if decoded.len() > URL_TOKEN_MAX_LEN {
                        return Err(err(abs + 2, P::TokenTooLong));
                    }
                    token = Some(decoded);
                    break;
                }
                Some(b) if b.is_ascii_alphabetic() => {
                    let id = b.to_ascii_uppercase();
                    let slot = &mut seen[(id - b'A') as usize];
                    if *slot {
                        return Err(err(abs, P::DuplicateParam));
                    }
                    *slot = true;
                    let value_start = pos + 2;
                    let value_end = after[value_start..]
                        .find('$')
                        .map_or(after.len(), |i| value_start + i);
                    let raw = &after[value_start..value_end];
                    if id == b'R' {
                        rve = Some(Rve::parse_at(raw, after_off + value_start)?);
                    } else {
                        let value = decode_value(raw, after_off + value_start)?;
                        if value.contains('$') {
                            return Err(err(after_off + value_start, P::InvalidCharacter));
                        }
                        if value.len() > URL_PARAM_MAX_LEN {
                            return Err(err(after_off + value_start, P::ParamTooLong));
                        }
                        params.push(UrlParam {
                            id: id as char,
                            value: value.into_owned(),
                        });
                    }
                    pos = value_end;
                }
                _ => return Err(err(abs, P::InvalidParamIdentifier)),
            }
        }

        Ok(UrlTokenRef {
            prefix,
            version,
            rve,
            params,
            rm_system,
            token,
            rest,
        })
    }

    /// The systems addressed, as written (`1,2,3,4`).
    pub fn rm_system_str(&self) -> &'a str {
        self.rm_system
    }

    /// The systems addressed, in order.
    pub fn rm_system_ids(&self) -> impl Iterator<Item = u32> + 'a {
        rm_system_ids(self.rm_system)
    }

    /// Whether the path names exactly `system` (same ids, same order).
    pub fn rm_system_is(&self, system: &RmSystem) -> bool {
        self.rm_system_ids().eq(system.ids().iter().copied())
    }

    /// The decoded `$$` access token, if given. Never log it.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Everything after the first segment, untouched (`/Products?x=1`), or empty.
    pub fn rest(&self) -> &'a str {
        self.rest
    }

    /// The `$$` access token as an owned [`AccessToken`], if given.
    pub fn access_token(&self) -> Option<AccessToken> {
        self.token.as_deref().map(|t| AccessToken(t.to_owned()))
    }

    /// The owned form.
    pub fn into_owned(self) -> UrlToken {
        UrlToken {
            prefix: self.prefix,
            version: self.version,
            rm_system: RmSystem(rm_system_ids(self.rm_system).collect()),
            rve: self.rve,
            params: self.params,
            token: self.token.map(|t| AccessToken(t.into_owned())),
            rest: self.rest.to_owned(),
        }
    }
}

impl fmt::Debug for UrlTokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlTokenRef")
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

/// Builds the path for a token; `#`, `%` and `^` are percent-encoded (upper-case hex).
/// `parse_url_token(&encode_url_token(&t)?)? == t` for every valid `t`.
///
/// Fails if two parameters share an identifier or `rest` does not start with `/` or `?`
/// (`url_duplicate_param`, `url_invalid_character`), or if the version has more than
/// the 9 digits a path may carry (`url_unknown_prefix`, what the parse answers for such
/// a segment).
///
/// ```
/// use tillgate_core::*;
/// let t = UrlToken {
///     prefix: Prefix::OpenApi, version: None,
///     rm_system: "1,2,3,4".parse().unwrap(),
///     rve: Some(Rve::parse("20201201134216").unwrap()),
///     params: vec![], token: Some(AccessToken::new("a#b^c%d0123456789").unwrap()),
///     rest: "/Products".into(),
/// };
/// assert_eq!(encode_url_token(&t).unwrap(),
///     "/OpenApi_1,2,3,4$R20201201134216$$a%23b%5Ec%25d0123456789/Products");
/// ```
pub fn encode_url_token(token: &UrlToken) -> Result<String> {
    if token.version.is_some_and(|v| v > MAX_VERSION) {
        return Err(err(0, P::UnknownPrefix));
    }
    let mut seen = [false; 26];
    if token.rve.is_some() {
        seen[(b'R' - b'A') as usize] = true;
    }
    for p in &token.params {
        let slot = &mut seen[(p.id as u8 - b'A') as usize];
        if *slot {
            return Err(err(0, P::DuplicateParam));
        }
        *slot = true;
    }
    if !(token.rest.is_empty() || token.rest.starts_with(['/', '?'])) {
        return Err(err(0, P::InvalidCharacter));
    }
    let mut out = String::with_capacity(64 + token.rest.len());
    out.push('/');
    out.push_str(token.prefix.as_str());
    if let Some(v) = token.version {
        out.push_str(&v.to_string());
    }
    out.push('_');
    out.push_str(&token.rm_system.to_string());
    if let Some(rve) = token.rve {
        out.push_str("$R");
        out.push_str(&rve.to_string());
    }
    for p in &token.params {
        out.push('$');
        out.push(p.id);
        encode_value(&p.value, &mut out);
    }
    if let Some(t) = &token.token {
        out.push_str("$$");
        encode_value(&t.0, &mut out);
    }
    out.push_str(&token.rest);
    Ok(out)
}

/// For logs and `Debug`: `s` (a path or a URL) with every URL-path token replaced by
/// `<redacted>`.
///
/// Whatever follows `$$` up to the next `/` or `?` is a token (a raw `#` too: API keys
/// may hold one, and the parse reads it as part of the token), wherever it stands
/// and however the dollars are written (`$` or percent-encoded `%24`, as
/// `encodeURIComponent` and Python's `quote` write them): a path a server refuses (a bad
/// prefix, a doubled slash) is logged too, and must not carry a key into the logs either.
///
/// ```
/// use tillgate_core::redact_url_tokens;
/// assert_eq!(
///     redact_url_tokens("/OpenApi_1,2,3,4$R20201201134216$$secret/Products"),
///     "/OpenApi_1,2,3,4$R20201201134216$$<redacted>/Products"
/// );
/// assert_eq!(redact_url_tokens("/a%24%24secret?x=1"), "/a%24%24<redacted>?x=1");
/// assert_eq!(redact_url_tokens("/OpenApi_1$$Abc#Secret0123/P"), "/OpenApi_1$$<redacted>/P");
/// ```
pub fn redact_url_tokens(s: &str) -> Cow<'_, str> {
    /// The length of a `$` written at the start of `b`: 1 for `$`, 3 for `%24`.
    fn dollar(b: &[u8]) -> Option<usize> {
        match b {
            [b'$', ..] => Some(1),
            [b'%', b'2', b'4', ..] => Some(3),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = String::new();
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        let Some(first) = dollar(&bytes[i..]) else {
            i += 1;
            continue;
        };
        let Some(second) = dollar(&bytes[i + first..]) else {
            i += first;
            continue;
        };
        let start = i + first + second;
        // A raw `#` is part of a token (the parse reads it so), so it does not end one.
        let end = bytes[start..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?'))
            .map_or(bytes.len(), |p| start + p);
        // `start` and `end` follow ASCII bytes, so they are character boundaries.
        out.push_str(&s[copied..start]);
        out.push_str("<redacted>");
        copied = end;
        i = end;
    }
    if copied == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(path: &str) -> &'static str {
        parse_url_token(path).unwrap_err().code()
    }

    #[test]
    fn seed_example() {
        let t =
            parse_url_token("/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products").unwrap();
        assert_eq!(t.version, None);
        assert!(t.params.is_empty());
        assert_eq!(
            encode_url_token(&t).unwrap(),
            "/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products"
        );
    }

    #[test]
    fn case_insensitive_prefix_and_version() {
        let t = parse_url_token("/openAPI2_7$r20200101000000?x=1").unwrap();
        assert_eq!(t.version, Some(2));
        assert_eq!(t.prefix, Prefix::OpenApi);
        assert_eq!(t.rest, "?x=1");
        assert!(t.token.is_none());
        assert_eq!(parse_url_token("/GNAP_1").unwrap().prefix, Prefix::Gnap);
    }

    #[test]
    fn errors() {
        assert_eq!(code("OpenApi_1"), "url_missing_leading_slash");
        assert_eq!(code("/Closed_1"), "url_unknown_prefix");
        assert_eq!(code("/OpenApix_1"), "url_unknown_prefix");
        assert_eq!(code("/OpenApi_1,,2"), "url_invalid_rm_system");
        assert_eq!(code("/OpenApi_"), "url_invalid_rm_system");
        assert_eq!(code("/OpenApi_1$R20210229000000"), "url_invalid_rve");
        assert_eq!(code("/OpenApi_1$R2021"), "url_invalid_rve");
        assert_eq!(code("/OpenApi_1$Xa$xb"), "url_duplicate_param");
        assert_eq!(code("/OpenApi_1$1"), "url_invalid_param");
        assert_eq!(code("/OpenApi_1$$"), "url_empty_token");
        assert_eq!(code("/OpenApi_1$$abc%2Fdef"), "url_invalid_character");
        assert_eq!(code("/OpenApi_1$$abc%2"), "url_invalid_percent_encoding");
        assert_eq!(code("/OpenApi_1$$ab~c"), "url_invalid_character");
        assert_eq!(code("/OpenApi_1$$abcé"), "url_invalid_character");
    }

    #[test]
    fn positions_point_at_the_problem() {
        match parse_url_token("/OpenApi_1$$abc%2Fdef") {
            Err(Error::InvalidUrlToken { position, .. }) => assert_eq!(position, 15),
            other => panic!("{other:?}"),
        }
    }

    fn token_chars() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[A-Za-z0-9!@#$%^&*()\\-_+=.,]{1,256}").unwrap()
    }
    fn param_chars() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[A-Za-z0-9!@#%^&*()\\-_+=.,]{0,40}").unwrap()
    }

    fn any_token() -> impl Strategy<Value = UrlToken> {
        (
            prop_oneof![
                Just(Prefix::OpenApi),
                Just(Prefix::Anywhere),
                Just(Prefix::Gnap)
            ],
            proptest::option::of(prop_oneof![0u32..1000, 0u32..=MAX_VERSION]),
            proptest::collection::vec(any::<u32>(), 1..5),
            proptest::option::of(0i64..253_402_300_799),
            proptest::collection::btree_map(
                proptest::char::range('A', 'Z').prop_filter("not R", |c| *c != 'R'),
                param_chars(),
                0..4,
            ),
            proptest::option::of(token_chars()),
            proptest::string::string_regex("(/[A-Za-z0-9/._-]{0,20})?(\\?[a-z=&0-9]{0,10})?")
                .unwrap(),
        )
            .prop_map(
                |(prefix, version, ids, rve, params, token, rest)| UrlToken {
                    prefix,
                    version,
                    rm_system: RmSystem::new(ids).unwrap(),
                    rve: rve.map(|s| Rve::from_unix(s).unwrap()),
                    params: params
                        .into_iter()
                        .map(|(k, v)| UrlParam::new(k, &v).unwrap())
                        .collect(),
                    token: token.map(|t| AccessToken::new(&t).unwrap()),
                    rest,
                },
            )
    }

    #[test]
    fn borrowing_parse() {
        let path = "/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products?x=1";
        let t = UrlTokenRef::parse(path).unwrap();
        assert!(matches!(t.token, Some(Cow::Borrowed("Mysecrettoken"))));
        assert_eq!(t.rest(), "/Products?x=1");
        assert_eq!(t.rm_system_str(), "1,2,3,4");
        assert!(t.rm_system_is(&"1,2,3,4".parse().unwrap()));
        assert!(!t.rm_system_is(&"1,2,3".parse().unwrap()));
        assert!(!t.rm_system_is(&"4,3,2,1".parse().unwrap()));
        let debug = format!("{t:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("Mysecret"),
            "{debug}"
        );
        assert_eq!(t.access_token().unwrap().expose(), "Mysecrettoken");
        assert_eq!(t.into_owned(), parse_url_token(path).unwrap());

        // Escapes are decoded into an owned copy; the first escape may come anywhere.
        let t = UrlTokenRef::parse("/gnap_7$$ab%23c%5e/x").unwrap();
        assert!(matches!(t.token, Some(Cow::Owned(_))));
        assert_eq!(t.token(), Some("ab#c^"));
        assert_eq!(
            UrlTokenRef::parse("/gnap_7$$ab%2").unwrap_err().code(),
            "url_invalid_percent_encoding"
        );
        assert_eq!(
            UrlTokenRef::parse("/gnap_7$$ab%2Fc").unwrap_err().code(),
            "url_invalid_character"
        );
        // Ids that do not fit a u32 are refused, as before.
        assert_eq!(code("/OpenApi_4294967296$$tok"), "url_invalid_rm_system");
        assert_eq!(
            UrlTokenRef::parse("/OpenApi_4294967295$$tok")
                .unwrap()
                .rm_system_ids()
                .collect::<Vec<_>>(),
            [u32::MAX]
        );
    }

    proptest! {
        #[test]
        fn round_trip(t in any_token()) {
            let path = encode_url_token(&t).unwrap();
            prop_assert_eq!(parse_url_token(&path).unwrap(), t);
        }

        /// No part of a token survives redaction, however it is written: encoded as
        /// `encode_url_token` writes it, or with its `#` and `^` raw, which the parse reads
        /// as the same token.
        #[test]
        fn redaction_hides_every_token_the_parse_reads(t in any_token()) {
            let path = encode_url_token(&t).unwrap();
            let raw = path.replace("%23", "#").replace("%5E", "^");
            for p in [&path, &raw] {
                let parsed = parse_url_token(p).unwrap();
                prop_assert_eq!(&parsed, &t);
                if let Some(at) = p.find("$$").filter(|_| t.token.is_some()) {
                    // Parameter values hold no `$`: the first `$$` starts the token.
                    let expected = format!("{}<redacted>{}", &p[..at + 2], t.rest);
                    prop_assert_eq!(redact_url_tokens(p), expected);
                }
            }
        }

        #[test]
        fn versions_past_nine_digits_are_refused(v in (MAX_VERSION + 1)..=u32::MAX) {
            let mut t = parse_url_token("/OpenApi_1/Products").unwrap();
            t.version = Some(v);
            prop_assert_eq!(encode_url_token(&t).unwrap_err().code(), "url_unknown_prefix");
            prop_assert_eq!(
                parse_url_token(&format!("/OpenApi{v}_1/Products")).unwrap_err().code(),
                "url_unknown_prefix"
            );
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse_url_token(&s);
        }

        #[test]
        fn never_panics_near_valid(s in "/(OpenApi|gnap)_[0-9,]{0,6}[$A-Za-z0-9%#^/]{0,30}") {
            let _ = parse_url_token(&s);
        }
    }
}
