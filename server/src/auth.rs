//! Authentication of cash registers (API key, URL-path token, dynamic staff key) and of
//! the admin, as axum extractors.
//!
//! Failed authentications are budgeted per client address (`auth_limiter`, see
//! `ratelimit`), in one of two ways depending on whether the credential can be guessed:
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
//!   none is left) and given back when it succeeds, so a burst of concurrent guesses gets
//!   no more checks than the budget allows. A request dropped while its credential is
//!   being checked keeps its token spent.

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
/// budget by naming its address.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = parts
            .headers
            .get_all(&crate::header_names::X_FORWARDED_FOR)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The credential presented, in order of precedence: URL-path token, `Authorization:
/// Bearer`, `X-Api-Key`.
fn credential(parts: &Parts) -> Result<Option<(&str, Via)>, AppError> {
    if let Some(ctx) = parts.extensions.get::<UrlTokenContext>()
        && let Some(token) = &ctx.token
    {
        return Ok(Some((token.expose(), Via::UrlToken)));
    }
    if let Some(v) = bearer(&parts.headers)? {
        return Ok(Some((v, Via::Bearer)));
    }
    if let Some(v) = parts.headers.get(&crate::header_names::X_API_KEY) {
        let v = v
            .to_str()
            .map_err(|_| AppError::unauthorized("invalid_credentials", "X-Api-Key is not ASCII"))?;
        return Ok(Some((v.trim(), Via::Header)));
    }
    Ok(None)
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| {
        AppError::unauthorized("invalid_credentials", "Authorization header is not ASCII")
    })?;
    let Some((scheme, value)) = v.split_once(' ') else {
        return Err(AppError::unauthorized(
            "invalid_credentials",
            "Authorization must be `Bearer <key>`",
        ));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AppError::unauthorized(
            "invalid_credentials",
            "Authorization must use the Bearer scheme",
        ));
    }
    Ok(Some(value.trim()))
}

/// Counts a failed authentication of a credential that was checked before any token was
/// taken (an API key, a malformed header) against the client's budget: `err`, or 429
/// when the budget has no token left for it.
fn failed(state: &AppState, ip: IpAddr, err: AppError) -> AppError {
    state.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
    match state.auth_limiter.try_take(ip) {
        Ok(()) => err,
        Err(retry_after_secs) => rate_limited(state, retry_after_secs),
    }
}

fn rate_limited(state: &AppState, retry_after_secs: u64) -> AppError {
    state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
    AppError::RateLimited { retry_after_secs }
}

/// Takes one token of the client's budget before a guessable credential (a dynamic key,
/// the admin key) is checked; 429 when none is left. The caller gives it back
/// ([`settle`]) when the credential turns out good.
fn reserve(state: &AppState, ip: IpAddr) -> Result<(), AppError> {
    state
        .auth_limiter
        .try_take(ip)
        .map_err(|retry_after_secs| rate_limited(state, retry_after_secs))
}

/// Settles a token [`reserve`]d for a credential: given back unless the credential
/// failed (a server error is not the client's failure, so it is given back as well).
fn settle<T>(state: &AppState, ip: IpAddr, result: Result<T, AppError>) -> Result<T, AppError> {
    match result {
        Err(e) if is_credential_failure(&e) => {
            state.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
        other => {
            state.auth_limiter.give_back(ip);
            other
        }
    }
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
        Err(e) => return Err(failed(state, ip, e)),
    };
    if is_dynamic_api_key(cred) {
        // Derived from a password: a token first (see the module doc).
        reserve(state, ip)?;
        return settle(state, ip, authenticate_dynamic(state, cred, via).await);
    }
    // A server-drawn key: checked first, paid for only when it fails.
    authenticate_key(state, cred, via, use_cache)
        .await
        .map_err(|e| match e {
            e if e.code() == "key_replaced" => e,
            e if is_credential_failure(&e) => failed(state, ip, e),
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
    let unknown =
        || AppError::unauthorized("invalid_credentials", "unknown or disabled staff login");
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
            Err(e) => return Err(failed(state, ip, e)),
        };
        // The operator may have chosen the admin key: a token first (see the module doc).
        reserve(state, ip)?;
        let result = if state.is_admin_key(key) {
            Ok(Admin)
        } else {
            Err(AppError::unauthorized(
                "invalid_credentials",
                "not the admin key",
            ))
        };
        settle(state, ip, result)
    }
}
