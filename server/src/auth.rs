//! Authentication of cash registers (API key, URL-path token, dynamic staff key) and of
//! the admin, as axum extractors.
//!
//! Failed authentications are budgeted per client address (`ratelimit`), in three budgets
//! of the same size: the registers' server-drawn API keys (`auth_limiter`), dynamic staff
//! keys (`staff_limiter`) and the admin key (`admin_limiter`), so a till failing with a
//! wrong API key behind a shop's or the admin's address locks out neither its staff nor
//! the admin; each in one of two ways depending on whether the credential can be guessed:
//!
//! * A register API key (Bearer, `X-Api-Key`, URL-path token) is drawn by the server, 40
//!   random characters: it cannot be guessed, so it is checked first. A key that
//!   authenticates is always served, however many failures its address has had (tills
//!   behind one NAT keep selling while one of them keeps failing). A key that fails costs
//!   one token; with none left it is answered 429 `rate_limited` instead of 401. A key a
//!   renewal replaced is a key the server issued, not a guess: it costs nothing and is
//!   always answered `key_replaced` (so the renewal can be repeated).
//! * A dynamic staff key is derived from a password, and the admin key may be one the
//!   operator chose (`TILLGATE_ADMIN_KEY` only needs 20 characters of the key alphabet):
//!   both can be guessed. One token is taken *before* the credential is checked (429 when
//!   none is left) and kept spent only when the credential fails, so a burst of concurrent
//!   guesses gets no more checks than the budget allows. A request dropped while its
//!   credential is being checked (the handler timeout during slow storage, a client that
//!   hung up) gets its token back (`Reservation`): correct staff keys that time out do
//!   not use up their address's budget, and a dropped guess got no answer, so giving its
//!   token back tells a guesser nothing (asking again is another check, paid for again).
//!
//! The credential is the URL-path token, an `Authorization: Bearer` key or `X-Api-Key`.
//! An `Authorization` header of another scheme (`Basic …`, added by a proxy in front) is
//! not this server's: it is passed over when `X-Api-Key` is sent too, and refused (a
//! failure) only when nothing else is.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use tillgate_core::{ApiKeyHash, is_dynamic_api_key, parse_dynamic_api_key};

use crate::db::ActivationRow;
use crate::error::AppError;
use crate::prefix::UrlTokenContext;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;

/// How a register proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer <api key>`.
    Bearer,
    /// `X-Api-Key: <api key>`.
    Header,
    /// The `$$token` of a URL-path prefix.
    UrlToken,
}

/// An authenticated caller: the registration its credential belongs to. Status and
/// validity are NOT checked yet; see [`Register`] for that.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The registration.
    pub activation: Arc<ActivationRow>,
    /// SHA-256 of the API key used (`None` for dynamic keys).
    pub key_hash: Option<ApiKeyHash>,
    /// The staff login, when a dynamic key was used.
    pub staff_login: Option<String>,
    /// The stored public key (base64url) that login's dynamic key verified with.
    pub staff_public_key: Option<String>,
    /// Where the credential came from.
    pub via: Via,
}

/// An authenticated register whose registration is approved and whose key is valid now.
#[derive(Debug, Clone)]
pub struct Register(pub Authenticated);

/// [`Register`], its API key read from the database, never from the key cache: for what
/// signs a statement about the registration (the activation code), which must not be
/// issued after a revocation or renewal made through another process.
#[derive(Debug, Clone)]
pub struct RegisterUncached(pub Authenticated);

/// The admin, authenticated with the admin key.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// The client's address: the peer, or, when configured, the last `X-Forwarded-For`
/// entry: the one the trusted proxy appended (the address that connected to it). Earlier
/// entries are whatever the client wrote, so they are never trusted: a client could
/// otherwise pick a fresh address for every failed attempt, or spend another shop's
/// budget by naming its address. Some proxies write the entry with the client's port
/// (`203.0.113.7:51234`, `[2001:db8::1]:443`): the address is read from it. An entry that
/// is no address is logged once as a warning and the peer (the proxy) is used.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(entry) = parts
            .headers
            .get_all(&crate::header_names::X_FORWARDED_FOR)
            .iter()
            .next_back()
    {
        match entry
            .to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| forwarded_address(v.trim()))
        {
            Some(ip) => return ip,
            None => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "the last X-Forwarded-For entry is no address; rate limits count \
                         such requests by the proxy's address (logged once)"
                    );
                });
            }
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// An `X-Forwarded-For` entry's address: `IP`, `IPv4:port`, `[IPv6]` or `[IPv6]:port`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
}

/// The credential presented, in order of precedence: URL-path token, `Authorization:
/// Bearer`, `X-Api-Key`. An `Authorization` header of another scheme is passed over for
/// `X-Api-Key`; without one, it is refused as before (see the module doc).
fn credential(parts: &Parts) -> Result<Option<(&str, Via)>, AppError> {
    if let Some(ctx) = parts.extensions.get::<UrlTokenContext>()
        && let Some(token) = &ctx.token
    {
        return Ok(Some((token.expose(), Via::UrlToken)));
    }
    let other_scheme = match authorization(&parts.headers) {
        Authorization::Absent => None,
        Authorization::Bearer(v) => return Ok(Some((v, Via::Bearer))),
        Authorization::Malformed(e) => return Err(e),
        Authorization::OtherScheme(e) => Some(e),
    };
    if let Some(v) = parts.headers.get(&crate::header_names::X_API_KEY) {
        let v = v
            .to_str()
            .map_err(|_| AppError::unauthorized("invalid_credentials", "X-Api-Key is not ASCII"))?;
        return Ok(Some((v.trim(), Via::Header)));
    }
    match other_scheme {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Whether the request carries a credential [`authenticate`] would check (or refuse as
/// malformed): a URL-path token, `X-Api-Key` or an `Authorization: Bearer` header. An
/// `Authorization` header of another scheme alone is not one.
pub fn presents_credential(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<UrlTokenContext>()
        .is_some_and(|c| c.token.is_some())
        || parts.headers.contains_key(&crate::header_names::X_API_KEY)
        || matches!(
            authorization(&parts.headers),
            Authorization::Bearer(_) | Authorization::Malformed(_)
        )
}

/// What the `Authorization` header holds.
enum Authorization<'a> {
    /// No such header.
    Absent,
    /// `Bearer <key>`: the key, trimmed.
    Bearer(&'a str),
    /// The Bearer scheme, but no key, or one that is not ASCII: the answer to it.
    Malformed(AppError),
    /// Another scheme (or an unreadable header that does not start with `Bearer `): not
    /// this server's credential; the answer to it when no other credential is sent.
    OtherScheme(AppError),
}

fn authorization(headers: &HeaderMap) -> Authorization<'_> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Authorization::Absent;
    };
    let bytes = v.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    let is_bearer = scheme.eq_ignore_ascii_case(b"bearer");
    let Ok(text) = v.to_str() else {
        let e = AppError::unauthorized("invalid_credentials", "Authorization header is not ASCII");
        return if is_bearer {
            Authorization::Malformed(e)
        } else {
            Authorization::OtherScheme(e)
        };
    };
    match (is_bearer, rest) {
        (true, Some(_)) => Authorization::Bearer(text[scheme.len() + 1..].trim()),
        (true, None) => Authorization::Malformed(AppError::unauthorized(
            "invalid_credentials",
            "Authorization must be `Bearer <key>`",
        )),
        (false, None) => Authorization::OtherScheme(AppError::unauthorized(
            "invalid_credentials",
            "Authorization must be `Bearer <key>`",
        )),
        (false, Some(_)) => Authorization::OtherScheme(AppError::unauthorized(
            "invalid_credentials",
            "Authorization must use the Bearer scheme",
        )),
    }
}

/// The `Authorization: Bearer` key, for the admin (who has no other way to send it).
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    match authorization(headers) {
        Authorization::Absent => Ok(None),
        Authorization::Bearer(v) => Ok(Some(v)),
        Authorization::Malformed(e) | Authorization::OtherScheme(e) => Err(e),
    }
}

/// Counts a failed authentication of a credential that was checked before any token was
/// taken (an API key, a malformed header) against the client's budget: `err`, or 429
/// when the budget has no token left for it.
fn failed(state: &AppState, limiter: &RateLimiter, ip: IpAddr, err: AppError) -> AppError {
    state.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
    match limiter.try_take(ip) {
        Ok(()) => err,
        Err(retry_after_secs) => rate_limited(state, retry_after_secs),
    }
}

fn rate_limited(state: &AppState, retry_after_secs: u64) -> AppError {
    state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
    AppError::RateLimited { retry_after_secs }
}

/// One token of a client's failed-authentication budget, taken before a guessable
/// credential (a dynamic key, the admin key) is checked. Dropped, it goes back to the
/// budget unless [`fail`](Self::fail) kept it spent: a good credential, a server error
/// (not the client's failure) and a request dropped before its answer (the handler
/// timeout, a client that hung up) all give it back. See the module doc.
#[must_use = "dropping the reservation gives its token back at once"]
struct Reservation<'a> {
    limiter: &'a RateLimiter,
    ip: IpAddr,
    spent: bool,
}

impl<'a> Reservation<'a> {
    /// Takes one token for `ip`; `Err(retry_after_secs)` when none is left.
    fn take(limiter: &'a RateLimiter, ip: IpAddr) -> Result<Self, u64> {
        limiter.try_take(ip)?;
        Ok(Reservation {
            limiter,
            ip,
            spent: false,
        })
    }

    /// The credential failed: its token stays spent.
    fn fail(mut self) {
        self.spent = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.spent {
            self.limiter.give_back(self.ip);
        }
    }
}

/// [`Reservation::take`] for the client's failed-authentication budget: 429 when none is
/// left.
fn reserve<'a>(
    state: &AppState,
    limiter: &'a RateLimiter,
    ip: IpAddr,
) -> Result<Reservation<'a>, AppError> {
    Reservation::take(limiter, ip).map_err(|retry_after_secs| rate_limited(state, retry_after_secs))
}

/// Settles a token [`reserve`]d for a credential by the credential's result: kept spent
/// when the credential failed, given back otherwise (a server error too).
fn settle<T>(
    state: &AppState,
    token: Reservation<'_>,
    result: Result<T, AppError>,
) -> Result<T, AppError> {
    if let Err(e) = &result
        && is_credential_failure(e)
    {
        state.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        token.fail();
    }
    result
}

/// Whether `e` refuses the credential itself (rather than being the server's failure).
fn is_credential_failure(e: &AppError) -> bool {
    matches!(e, AppError::Problem { .. } | AppError::Core(_))
}

/// Authenticates the caller of a register endpoint (identity only). An API key may be
/// answered from the key cache: a registration decided or renewed through another
/// process sharing the database is seen within `key_cache_secs`.
pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<Authenticated, AppError> {
    authenticate_with(state, parts, true).await
}

/// [`authenticate`], reading an API key from the database, never from the key cache: the
/// key's registration as stored now, and `key_replaced` for a key a renewal replaced,
/// through whichever process it was made. For the renewal, which must tell a repeat
/// (the old key, replaced) from a first renewal.
pub async fn authenticate_uncached(
    state: &AppState,
    parts: &Parts,
) -> Result<Authenticated, AppError> {
    authenticate_with(state, parts, false).await
}

async fn authenticate_with(
    state: &AppState,
    parts: &Parts,
    use_cache: bool,
) -> Result<Authenticated, AppError> {
    let ip = client_ip(parts, state.config.trust_forwarded_for);
    let (cred, via) = match credential(parts) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(AppError::unauthorized(
                "missing_credentials",
                "send the API key as `Authorization: Bearer <key>`, `X-Api-Key` or a URL-path token",
            ));
        }
        Err(e) => return Err(failed(state, &state.auth_limiter, ip, e)),
    };
    if is_dynamic_api_key(cred) {
        // Derived from a password: a token first (see the module doc). Held across the
        // check, so that a request dropped meanwhile gives it back.
        let token = reserve(state, &state.staff_limiter, ip)?;
        return settle(state, token, authenticate_dynamic(state, cred, via).await);
    }
    // A server-drawn key: checked first, paid for only when it fails.
    authenticate_key(state, cred, via, use_cache)
        .await
        .map_err(|e| match e {
            e if e.code() == "key_replaced" => e,
            e if is_credential_failure(&e) => failed(state, &state.auth_limiter, ip, e),
            other => other,
        })
}

async fn authenticate_key(
    state: &AppState,
    cred: &str,
    via: Via,
    use_cache: bool,
) -> Result<Authenticated, AppError> {
    let hash = ApiKeyHash::of_key(cred)
        .map_err(|e| AppError::unauthorized(e.code(), "the credential is not a valid API key"))?;
    // Approved registrations are cached briefly by key hash (see `cache`): the lookup
    // is by the hash itself, as in the database. An entry does not know whether another
    // process replaced the key since (a renewal there): callers for whom that matters
    // read the database (`use_cache` false).
    if use_cache && let Some(activation) = state.key_cache.get(&hash.0) {
        return Ok(Authenticated {
            activation,
            key_hash: Some(hash),
            staff_login: None,
            staff_public_key: None,
            via,
        });
    }
    // Taken before the read: a decision that clears the cache while the read is under
    // way keeps this (possibly older) row out of it.
    let read_at = state.key_cache.generation();
    let Some((activation, _, replaced_at)) = stored_key(state, &hash).await? else {
        return Err(AppError::unauthorized(
            "invalid_credentials",
            "unknown API key",
        ));
    };
    if replaced_at.is_some() {
        return Err(key_replaced());
    }
    let activation = Arc::new(activation);
    if activation.status == "approved" {
        state
            .key_cache
            .insert_since(read_at, hash.0, activation.clone());
    }
    Ok(Authenticated {
        activation,
        key_hash: Some(hash),
        staff_login: None,
        staff_public_key: None,
        via,
    })
}

/// The stored key with this hash, its registration and when a renewal replaced it. The
/// lookup is by hash; the stored hash is compared again in constant time before it is
/// trusted.
async fn stored_key(
    state: &AppState,
    hash: &ApiKeyHash,
) -> Result<Option<(ActivationRow, String, Option<i64>)>, AppError> {
    let Some(found) = state.store.activation_by_key_hash(&hash.to_hex()).await? else {
        return Ok(None);
    };
    let stored = crate::state::parse_hex_hash(&found.1)
        .ok_or_else(|| AppError::internal("stored key hash is not hex"))?;
    Ok(stored.ct_eq(hash).then_some(found))
}

/// A register API key that a renewal replaced: its registration and when.
#[derive(Debug)]
pub struct ReplacedKey {
    /// The registration as stored now.
    pub activation: ActivationRow,
    /// The key's hash, lower-case hex.
    pub key_hash_hex: String,
    /// When the renewal replaced it (Unix seconds).
    pub replaced_at: i64,
}

/// The caller's credential if it is an API key that a renewal replaced (for repeating a
/// renewal whose answer was lost); `None` for any other credential or none.
pub async fn replaced_key(
    state: &AppState,
    parts: &Parts,
) -> Result<Option<ReplacedKey>, AppError> {
    let Ok(Some((cred, _))) = credential(parts) else {
        return Ok(None);
    };
    if is_dynamic_api_key(cred) {
        return Ok(None);
    }
    let Ok(hash) = ApiKeyHash::of_key(cred) else {
        return Ok(None);
    };
    let Some((activation, stored_hex, Some(replaced_at))) = stored_key(state, &hash).await? else {
        return Ok(None);
    };
    Ok(Some(ReplacedKey {
        activation,
        key_hash_hex: stored_hex,
        replaced_at,
    }))
}

async fn authenticate_dynamic(
    state: &AppState,
    cred: &str,
    via: Via,
) -> Result<Authenticated, AppError> {
    let unverified =
        parse_dynamic_api_key(cred).map_err(|e| AppError::unauthorized(e.code(), e.to_string()))?;
    let unknown = staff_login_unknown;
    // An unknown or disabled login is checked against a decoy key, so that it gets the
    // answer a known login with a wrong password gets (`bad_signature`, or the stale or
    // RmSystem answer before that): logins cannot be probed.
    let staff = state
        .store
        .staff(&unverified.login)
        .await?
        .filter(|s| s.disabled_at.is_none());
    let public_key = match &staff {
        Some(s) => B64
            .decode(&s.public_key)
            .map_err(|_| AppError::internal("stored staff public key is not base64url"))?,
        None => decoy_staff_key().to_vec(),
    };
    let now = state.now();
    let window = state.config.dynamic_key_window_secs;
    let claims = unverified
        .verify(
            cred,
            &public_key,
            &state.config.rm_system.to_string(),
            now,
            window,
        )
        .map_err(|e| AppError::unauthorized(e.code(), e.to_string()))?;
    let staff = staff.ok_or_else(unknown)?;
    // One use per key: remember the nonce for as long as the key could be accepted, here
    // (`issued_at + window`) and, by the sweep's margin, by every other process sharing
    // the database (`db::NONCE_SWEEP_MARGIN_SECS`).
    let fresh = state
        .store
        .use_nonce(
            &claims.login,
            &B64.encode(claims.nonce),
            claims.issued_at.saturating_add(window),
            now,
        )
        .await?;
    if !fresh {
        return Err(AppError::unauthorized(
            "dynamic_key_replayed",
            "this dynamic API key was already used; create a new one for every request",
        ));
    }
    let activation = state
        .store
        .activation(&staff.activation_id)
        .await?
        .ok_or_else(unknown)?;
    Ok(Authenticated {
        activation: Arc::new(activation),
        key_hash: None,
        staff_login: Some(claims.login),
        staff_public_key: Some(staff.public_key),
        via,
    })
}

/// The public key unknown and disabled staff logins are checked against: drawn at the
/// first use, its private key dropped at once, so no dynamic key verifies with it.
fn decoy_staff_key() -> [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    *KEY.get_or_init(|| {
        let seed = tillgate_core::generate_signing_key()
            .map(|k| k.seed())
            // Without the OS's random numbers, a key whose seed is not published.
            .unwrap_or_else(|_| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let mut seed = [0x5a; 32];
                seed[..16].copy_from_slice(&nanos.to_le_bytes());
                seed
            });
        tillgate_core::SigningKey::from_seed(&seed).public_key_bytes()
    })
}

/// The answer to a dynamic key of a staff login that is unknown or disabled (or, at a
/// write's commit, was disabled or moved to another register since it authenticated).
pub fn staff_login_unknown() -> AppError {
    AppError::unauthorized("invalid_credentials", "unknown or disabled staff login")
}

/// The answer to an API key that a renewal replaced.
pub fn key_replaced() -> AppError {
    AppError::unauthorized(
        "key_replaced",
        "this API key was replaced by a renewal; use the new key",
    )
}

/// The answer to a register whose registration has `status`, which is not `approved`.
pub fn not_approved(status: &str) -> AppError {
    match status {
        "pending" => AppError::forbidden(
            "pending_approval",
            "the registration waits for an admin to confirm that the Tax Authority was notified",
        ),
        "rejected" => AppError::forbidden("rejected", "the registration was rejected"),
        "revoked" => AppError::forbidden("revoked", "the registration was revoked"),
        _ => AppError::internal("unknown activation status"),
    }
}

/// Refuses a registration that is not approved or whose key is not valid at `now`.
pub fn require_usable(a: &ActivationRow, now: i64) -> Result<(), AppError> {
    if a.status != "approved" {
        return Err(not_approved(&a.status));
    }
    if now < a.valid_from {
        return Err(AppError::forbidden(
            "key_not_yet_valid",
            "the API key is not valid yet (see validFrom)",
        ));
    }
    if now >= a.valid_to {
        return Err(AppError::forbidden(
            "key_expired",
            "the API key has expired; renew it at POST /activations/renew",
        ));
    }
    Ok(())
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        authenticate(state, parts).await
    }
}

impl FromRequestParts<AppState> for Register {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let auth = authenticate(state, parts).await?;
        require_usable(&auth.activation, state.now())?;
        Ok(Register(auth))
    }
}

impl FromRequestParts<AppState> for RegisterUncached {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let auth = authenticate_uncached(state, parts).await?;
        require_usable(&auth.activation, state.now())?;
        Ok(RegisterUncached(auth))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ip = client_ip(parts, state.config.trust_forwarded_for);
        let key = match bearer(&parts.headers) {
            Ok(Some(key)) => key,
            Ok(None) => {
                return Err(AppError::unauthorized(
                    "missing_credentials",
                    "send the admin key as `Authorization: Bearer <admin key>`",
                ));
            }
            Err(e) => return Err(failed(state, &state.admin_limiter, ip, e)),
        };
        // The operator may have chosen the admin key: a token first (see the module doc),
        // from the admin's own budget.
        let token = reserve(state, &state.admin_limiter, ip)?;
        let result = if state.is_admin_key(key) {
            Ok(Admin)
        } else {
            Err(AppError::unauthorized(
                "invalid_credentials",
                "not the admin key",
            ))
        };
        settle(state, token, result)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn a_reservation_dropped_unsettled_gives_its_token_back() {
        let l = RateLimiter::new(2);
        let first = Reservation::take(&l, IP).unwrap();
        let second = Reservation::take(&l, IP).unwrap();
        assert!(Reservation::take(&l, IP).is_err(), "both tokens are held");
        drop(first);
        let third = Reservation::take(&l, IP).unwrap();
        drop((second, third));
        assert!(l.try_take(IP).is_ok() && l.try_take(IP).is_ok());
        assert!(
            l.try_take(IP).is_err(),
            "the budget is whole again, no more"
        );
    }

    #[test]
    fn a_failed_credential_keeps_its_token_spent() {
        let l = RateLimiter::new(2);
        Reservation::take(&l, IP).unwrap().fail();
        Reservation::take(&l, IP).unwrap().fail();
        assert!(Reservation::take(&l, IP).is_err());
        assert!(l.try_take(IP).is_err());
    }

    #[tokio::test]
    async fn a_check_dropped_before_its_answer_gives_its_token_back() {
        // As `authenticate_dynamic` waiting on storage when the handler timeout (or a
        // client that hung up) drops the request: the reservation is held across an await
        // that never completes.
        let l = RateLimiter::new(1);
        let check = async {
            let token = Reservation::take(&l, IP).unwrap();
            std::future::pending::<()>().await;
            token.fail();
        };
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(10), check).await;
        assert!(timed_out.is_err());
        assert!(
            l.try_take(IP).is_ok(),
            "the dropped check's token came back"
        );
    }

    fn parts(headers: &[(&str, &[u8])]) -> Parts {
        let mut req = axum::http::Request::builder();
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_forwarded_address_is_read_with_or_without_a_port() {
        let peer: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let ip_of = |xff: &[u8], trust: bool| {
            let mut p = parts(&[("x-forwarded-for", xff)]);
            p.extensions.insert(ConnectInfo(peer));
            client_ip(&p, trust)
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (entry, want) in [
            (&b"198.51.100.1"[..], "198.51.100.1"),
            (b"198.51.100.1:5555", "198.51.100.1"),
            (b"2001:db8::1", "2001:db8::1"),
            (b"[2001:db8::1]", "2001:db8::1"),
            (b"[2001:db8::1]:443", "2001:db8::1"),
            // Only the last entry, the proxy's, counts.
            (b"192.0.2.9, 198.51.100.1:80", "198.51.100.1"),
            // No address: the peer.
            (b"unknown", "10.0.0.1"),
            (b"198.51.100.1:port", "10.0.0.1"),
            (b"192.0.2.9, ", "10.0.0.1"),
        ] {
            assert_eq!(
                ip_of(entry, true),
                ip(want),
                "{}",
                String::from_utf8_lossy(entry)
            );
            assert_eq!(ip_of(entry, false), ip("10.0.0.1"), "not trusted");
        }
    }

    #[test]
    fn another_authorization_scheme_falls_through_to_x_api_key() {
        let p = parts(&[
            ("authorization", b"Basic dXNlcjpwdw=="),
            ("x-api-key", b" k1 "),
        ]);
        assert_eq!(credential(&p).unwrap(), Some(("k1", Via::Header)));
        assert!(presents_credential(&p));
        // A scheme alone, and a header that is not ASCII, are other schemes too.
        let p = parts(&[("authorization", b"Negotiate"), ("x-api-key", b"k1")]);
        assert_eq!(credential(&p).unwrap(), Some(("k1", Via::Header)));
        let p = parts(&[("authorization", b"Digest \xe4"), ("x-api-key", b"k1")]);
        assert_eq!(credential(&p).unwrap(), Some(("k1", Via::Header)));
        // Bearer still takes precedence over X-Api-Key.
        let p = parts(&[("authorization", b"bearer  k0 "), ("x-api-key", b"k1")]);
        assert_eq!(credential(&p).unwrap(), Some(("k0", Via::Bearer)));
    }

    #[test]
    fn another_authorization_scheme_alone_is_refused_as_before() {
        for (value, message) in [
            (&b"Basic dXNlcjpwdw=="[..], "must use the Bearer scheme"),
            (b"Basic", "must be `Bearer <key>`"),
            (b"Digest \xe4", "not ASCII"),
        ] {
            let p = parts(&[("authorization", value)]);
            let e = credential(&p).unwrap_err();
            assert_eq!(e.code(), "invalid_credentials");
            assert!(e.to_string().contains(message), "{e}");
            assert!(!presents_credential(&p));
            assert!(bearer(&p.headers).is_err(), "nor does it reach the admin");
        }
        // A Bearer header without a key is malformed, X-Api-Key or not.
        for value in [&b"Bearer"[..], b"Bearer \xe4"] {
            let p = parts(&[("authorization", value), ("x-api-key", b"k1")]);
            assert_eq!(credential(&p).unwrap_err().code(), "invalid_credentials");
            assert!(presents_credential(&p));
        }
        assert_eq!(credential(&parts(&[])).unwrap(), None);
        assert!(!presents_credential(&parts(&[])));
    }
}
