//! Activation, handshake, activation code (signed descriptor), renewal and JWKS.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tillgate_core::{
    ActivationDescriptor, ActivationRequest, ApiKeyHash, DESCRIPTOR_VERSION, FieldError, Period,
    ServerTimeClaims, VerifyOptions, format_rfc3339, generate_api_key_with, sign_descriptor,
    sign_server_time, validate_activation_request, verify_descriptor,
};

/// The bodies of these endpoints, defined in core (see `tillgate_core::wire`).
pub use tillgate_core::wire::{
    ActivationCode, ActivationCreated, DynamicKeyParamsOut, Handshake, RenewRequest, Renewed,
};

use crate::auth::{self, Authenticated, client_ip, require_usable};
use crate::cache::SignedTime;
use crate::db::{ActivationRow, Renewal, RequestKey};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::ids;
use crate::state::AppState;

/// Length of generated API keys. Keys use the URL-safe alphabet, so they also work as
/// URL-path tokens without escaping.
const API_KEY_LEN: usize = 40;

/// How long (seconds) after a renewal the replaced key may repeat it, to recover an
/// answer lost on the way (see [`renew`]).
pub const RENEWAL_REPEAT_SECS: i64 = 600;

/// Formats Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    format_rfc3339(secs).unwrap_or_default()
}

/// Spends one unit of the client's activation budget (429 when exhausted).
pub struct ActivationBudget;

impl FromRequestParts<AppState> for ActivationBudget {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ip = client_ip(parts, state.config.trust_forwarded_for);
        state
            .activation_limiter
            .try_take(ip)
            .map_err(|retry_after_secs| {
                state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                AppError::RateLimited { retry_after_secs }
            })?;
        Ok(ActivationBudget)
    }
}

/// How long (seconds) after an activation the same request with the same
/// `Idempotency-Key` is answered again (with a fresh API key), while it is pending.
pub const ACTIVATION_REPEAT_SECS: i64 = 86_400;

/// The hashes an activation's `Idempotency-Key` header records, if it came with one.
fn activation_request_key(
    headers: &HeaderMap,
    req: &ActivationRequest,
) -> AppResult<Option<RequestKey>> {
    use tillgate_core::wire::{
        MAX_IDEMPOTENCY_KEY_LEN, MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN, is_idempotency_key,
    };
    let Some(v) = headers.get(&crate::header_names::IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or("");
    if !is_idempotency_key(key, MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN) {
        return Err(AppError::bad_request(
            "invalid_idempotency_key",
            format!(
                "an activation's Idempotency-Key must be {MIN_ACTIVATION_IDEMPOTENCY_KEY_LEN}–\
                 {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters, as hard to guess as a key \
                 (a UUID, or 128 random bits in hex)"
            ),
        ));
    }
    let body = serde_json::to_vec(req).map_err(|e| AppError::internal(e.to_string()))?;
    let hex = |bytes: &[u8]| ApiKeyHash(Sha256::digest(bytes).into()).to_hex();
    Ok(Some(RequestKey {
        key_hash: hex(key.as_bytes()),
        request_hash: hex(&body),
    }))
}

/// Answers a repeated activation (the same `Idempotency-Key`): the registration it
/// created, with a fresh API key in place of the one whose answer was lost, while the
/// registration is pending, never decided and at most [`ACTIVATION_REPEAT_SECS`] old.
/// The keys issued before this request arrived stop working; one a request under way at
/// the same time handed out is kept (the app may hold that answer).
async fn repeat_activation(
    state: &AppState,
    found: ActivationRow,
    stored_request_hash: &str,
    request: &RequestKey,
    now: i64,
) -> AppResult<Response> {
    if stored_request_hash != request.request_hash {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different activation request",
        ));
    }
    let not_repeatable = || {
        AppError::conflict(
            "activation_not_repeatable",
            format!(
                "the registration this Idempotency-Key created is no longer pending, or is \
                 more than {} hours old: its key cannot be issued again; activate with a new \
                 Idempotency-Key",
                ACTIVATION_REPEAT_SECS / 3600
            ),
        )
    };
    // Never decided: a registration approved and then renewed with its descriptor is
    // pending again, but its key is not issued again.
    if found.status != "pending"
        || found.decided_at.is_some()
        || found.created_at < now - ACTIVATION_REPEAT_SECS
    {
        return Err(not_repeatable());
    }
    let key = generate_api_key_with(API_KEY_LEN, tillgate_core::ApiKeyAlphabet::UrlSafe)
        .map_err(|e| AppError::internal(e.to_string()))?;
    let reissued = state
        .store
        .reissue_pending_key(
            &found.id,
            &key.hash().to_hex(),
            now - ACTIVATION_REPEAT_SECS,
            now,
            now,
        )
        .await?;
    if !reissued {
        return Err(not_repeatable());
    }
    state
        .metrics
        .activations_repeated
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(activation_id = %found.id, production_number = %found.production_number, "activation repeated: API key issued again");
    let mut resp = (StatusCode::CREATED, Json(created(found, &key))).into_response();
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(resp)
}

/// The answer to an activation.
fn created(row: ActivationRow, key: &tillgate_core::ApiKey) -> ActivationCreated {
    ActivationCreated {
        activation_id: row.id,
        production_number: row.production_number,
        api_key: key.expose().to_owned(),
        status: row.status,
        valid_from: rfc3339(row.valid_from),
        valid_to: rfc3339(row.valid_to),
        corporate_id: row.corporate_id,
    }
}

/// `POST /activations-advanced`: registers a cash register.
///
/// With an `Idempotency-Key` header, the same request sent again with the same key (an
/// answer lost on the way) is answered with the registration the first one created and
/// a fresh API key in place of its first, while the registration is pending and at most
/// a day old; header `Idempotent-Replayed: true`.
#[utoipa::path(post, path = "/activations-advanced", tag = "activation",
    request_body(content = crate::openapi::ActivationRequestDoc, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "client-chosen secret (32–64 visible ASCII characters: a UUID, or 128 random bits in hex), the same on every retry of this activation", min_length = 32, max_length = 64, pattern = "^[!-~]+$")),
    responses(
        (status = 201, body = ActivationCreated),
    ))]
pub async fn activate(
    State(state): State<AppState>,
    _budget: ActivationBudget,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ActivationRequest>,
) -> AppResult<Response> {
    state.refuse_if_schema_newer().await?;
    let request = activation_request_key(&headers, &req)?;
    let valid = validate_activation_request(&req)?;
    let now = state.now();
    if let Some(rk) = &request
        && let Some((found, stored)) = state.store.activation_by_request_key(&rk.key_hash).await?
    {
        return repeat_activation(&state, found, &stored, rk, now).await;
    }
    if valid.period.to_unix_seconds() <= now {
        return Err(AppError::fields(
            "invalid_activation_request",
            "validTo lies in the past",
            vec![FieldError {
                field: "validTo".into(),
                code: "in_the_past".into(),
                message: "must be after the server's current time".into(),
            }],
        ));
    }
    let key = generate_api_key_with(API_KEY_LEN, tillgate_core::ApiKeyAlphabet::UrlSafe)
        .map_err(|e| AppError::internal(e.to_string()))?;
    let mut row = ActivationRow {
        id: String::new(),
        production_number: String::new(),
        cash_register_name: valid.cash_register_name,
        device_id: valid.device_id,
        corporate_id: valid.corporate_id.as_str().to_owned(),
        country: valid.country,
        application_package: valid.application_package.as_str().to_owned(),
        extras: valid.extras.to_string(),
        features: "[]".into(),
        valid_from: valid.period.from_unix_seconds(),
        valid_to: valid.period.to_unix_seconds(),
        status: "pending".into(),
        created_at: now,
        updated_at: now,
        decided_by: None,
        decided_at: None,
        authority_notified_at: None,
        decision_note: None,
    };
    let hash = key.hash().to_hex();
    let mut stored = false;
    for _ in 0..8 {
        row.id = ids::activation_id();
        row.production_number = ids::production_number();
        if state
            .store
            .insert_activation(&row, &hash, request.as_ref())
            .await?
        {
            stored = true;
            break;
        }
        // The same key sent twice at once: the other request stored it first.
        if let Some(rk) = &request
            && let Some((found, stored)) =
                state.store.activation_by_request_key(&rk.key_hash).await?
        {
            return repeat_activation(&state, found, &stored, rk, now).await;
        }
    }
    if !stored {
        return Err(AppError::internal(
            "could not draw a unique production number",
        ));
    }
    state
        .metrics
        .activations_created
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(activation_id = %row.id, production_number = %row.production_number, "activation requested");
    Ok((StatusCode::CREATED, Json(created(row, &key))).into_response())
}

/// Optional checks and nonce for the handshake.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HandshakeQuery {
    /// Echoed in the signed timestamp (1–128 visible ASCII characters).
    #[param(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub nonce: Option<String>,
    /// If given, must be the registration's device id (`device_mismatch`).
    pub device_id: Option<String>,
    /// If given, must be the registration's ProductionNumber (`production_number_mismatch`).
    pub production_number: Option<String>,
    /// If given, must be the registration's application package (`application_package_mismatch`).
    pub application_package: Option<String>,
}

/// `GET /auth/handshake`: checks the credential and the registration.
#[utoipa::path(get, path = "/auth/handshake", tag = "activation", params(HandshakeQuery),
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Handshake),
    ))]
pub async fn handshake(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiQuery(q): ApiQuery<HandshakeQuery>,
) -> AppResult<Response> {
    let now = state.now();
    let a = &auth.activation;
    require_usable(a, now)?;
    if let Some(n) = &q.nonce
        && (n.is_empty() || n.len() > 128 || !n.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(AppError::bad_request(
            "invalid_nonce",
            "nonce must be 1 to 128 visible ASCII characters",
        ));
    }
    check_identity(a, q.device_id.as_deref(), q.production_number.as_deref())?;
    if let Some(p) = &q.application_package
        && p != &a.application_package
    {
        let e = tillgate_core::Error::ApplicationPackageMismatch {
            expected: p.clone(),
            found: a.application_package.clone(),
        };
        return Err(AppError::forbidden(e.code(), e.to_string()));
    }
    let ring = state.keys().await?;
    let kid = ring.signing.kid();
    // The answer and its signed time are the same for every handshake of this register
    // in this second (without a nonce): reuse them (see `SignedTime`).
    let cacheable = q.nonce.is_none();
    let cached = state
        .signed_times
        .get(a.production_number.as_str())
        .filter(|c| cacheable && c.iat == now && &*c.kid == kid);
    let reusable = auth.staff_login.is_none();
    if reusable
        && let Some((row, body)) = cached.as_ref().and_then(|c| c.answer.as_ref())
        && Arc::ptr_eq(row, &auth.activation)
    {
        return Ok(json_answer(body.clone()));
    }
    let signed_time = match &cached {
        Some(c) => c.jws.to_string(),
        None => sign_server_time(
            &ServerTimeClaims {
                iss: state.config.issuer.clone(),
                sub: a.production_number.clone(),
                iat: now,
                nonce: q.nonce,
            },
            &ring.signing,
        )?,
    };
    let body = axum::body::Bytes::from(
        serde_json::to_vec(&Handshake {
            status: a.status.clone(),
            activation_id: a.id.clone(),
            production_number: a.production_number.clone(),
            valid_from: rfc3339(a.valid_from),
            valid_to: rfc3339(a.valid_to),
            server_time: rfc3339(now),
            signed_time: signed_time.clone(),
            staff_login: auth.staff_login,
        })
        .map_err(|e| AppError::internal(e.to_string()))?,
    );
    // (A staff login's answer is not kept: it would displace the register's own.)
    if cacheable && (reusable || cached.is_none()) {
        state.signed_times.insert(
            a.production_number.clone(),
            SignedTime {
                iat: now,
                kid: Arc::from(kid),
                jws: Arc::from(signed_time.as_str()),
                answer: reusable.then(|| (auth.activation.clone(), body.clone())),
            },
        );
    }
    Ok(json_answer(body))
}

/// A JSON answer from bytes already serialised.
fn json_answer(body: axum::body::Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn check_identity(
    a: &ActivationRow,
    device_id: Option<&str>,
    production_number: Option<&str>,
) -> AppResult<()> {
    if let Some(d) = device_id
        && d != a.device_id
    {
        return Err(AppError::forbidden(
            tillgate_core::Error::DeviceMismatch.code(),
            "the registration is bound to another device",
        ));
    }
    if let Some(p) = production_number
        && p != a.production_number
    {
        return Err(AppError::forbidden(
            "production_number_mismatch",
            "the key belongs to another ProductionNumber",
        ));
    }
    Ok(())
}

fn descriptor_for(state: &AppState, a: &ActivationRow, now: i64) -> ActivationDescriptor {
    ActivationDescriptor {
        iss: state.config.issuer.clone(),
        sub: a.production_number.clone(),
        iat: now,
        nbf: a.valid_from,
        exp: a.valid_to,
        ver: DESCRIPTOR_VERSION,
        activation_id: a.id.clone(),
        cash_register_name: a.cash_register_name.clone(),
        device_id: a.device_id.clone(),
        corporate_id: a.corporate_id.clone(),
        country: a.country.clone(),
        application_package: a.application_package.clone(),
        features: serde_json::from_str(&a.features).unwrap_or_default(),
        status: a.status.clone(),
        extras: serde_json::from_str(&a.extras)
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
    }
}

/// `GET /activations/activation-code`: the signed descriptor of the caller's registration,
/// read from the database (never from the key cache: a revoked registration or a
/// replaced key gets no descriptor from any server).
#[utoipa::path(get, path = "/activations/activation-code", tag = "activation",
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ActivationCode),
    ))]
pub async fn activation_code(
    State(state): State<AppState>,
    auth::RegisterUncached(auth): auth::RegisterUncached,
) -> AppResult<Json<ActivationCode>> {
    let ring = state.keys().await?;
    let d = descriptor_for(&state, &auth.activation, state.now());
    let descriptor = sign_descriptor(&d, &ring.signing)?;
    Ok(Json(ActivationCode {
        descriptor,
        kid: ring.signing.kid().to_owned(),
    }))
}

/// A renewal's new period by core's rule for a period (`Period::parse`, the one an
/// activation's period is checked by): 400 `invalid_renewal_request` with the failing
/// fields otherwise. A first renewal and its repeat are checked alike.
fn renewal_period(body: &RenewRequest) -> AppResult<Period> {
    Period::parse(&body.valid_from, &body.valid_to).map_err(|e| match e {
        tillgate_core::Error::InvalidActivationRequest { fields } => AppError::fields(
            "invalid_renewal_request",
            "the new period is invalid",
            fields,
        ),
        e => e.into(),
    })
}

/// Repeats, with the key it replaced, a renewal made less than [`RENEWAL_REPEAT_SECS`]
/// ago whose answer never reached the register (a connection dropped after the commit):
/// the same request (the same new period) gets a fresh key, and the key the lost answer
/// carried stops working. `None` when the request is not such a repeat: the caller then
/// answers `key_replaced`. Whoever holds the old key could renew in its place before the
/// register did anyway, so the repeat gives a thief nothing the renewal window did not.
async fn repeat_renewal(
    state: &AppState,
    parts: &Parts,
    body: &RenewRequest,
    now: i64,
) -> AppResult<Option<Json<Renewed>>> {
    let Some(old) = auth::replaced_key(state, parts).await? else {
        return Ok(None);
    };
    let a = &old.activation;
    if now.saturating_sub(old.replaced_at) > RENEWAL_REPEAT_SECS
        || a.status != "approved"
        || body.device_id != a.device_id
        || body.production_number != a.production_number
    {
        return Ok(None);
    }
    // A period a first renewal would refuse is refused here too, with the same 400 (a
    // fraction of a second past midnight is not midnight, though it is the same whole
    // second). A valid one is the same request if it has the same instants, however they
    // are written (`…T00:00:00.000Z`, `+01:00`).
    let period = renewal_period(body)?;
    if period.from_unix_seconds() != a.valid_from || period.to_unix_seconds() != a.valid_to {
        return Ok(None);
    }
    let key = generate_api_key_with(API_KEY_LEN, tillgate_core::ApiKeyAlphabet::UrlSafe)
        .map_err(|e| AppError::internal(e.to_string()))?;
    let repeated = state
        .store
        .repeat_renewal(
            &a.id,
            &old.key_hash_hex,
            old.replaced_at,
            a.valid_to,
            &key.hash().to_hex(),
            now,
        )
        .await?;
    if !repeated {
        return Ok(None);
    }
    state.key_cache.clear();
    tracing::info!(activation_id = %a.id, "key renewal repeated");
    Ok(Some(Json(Renewed {
        activation_id: a.id.clone(),
        production_number: a.production_number.clone(),
        api_key: key.expose().to_owned(),
        status: a.status.clone(),
        valid_from: rfc3339(a.valid_from),
        valid_to: rfc3339(a.valid_to),
    })))
}

/// `POST /activations/renew`: a new key and period for an expiring or expired key.
#[utoipa::path(post, path = "/activations/renew", tag = "activation",
    request_body = RenewRequest,
    security(("apiKey" = []), ("bearer" = []), ()),
    responses(
        (status = 200, body = Renewed),
    ))]
pub async fn renew(
    State(state): State<AppState>,
    parts: RequestParts,
    ApiJson(body): ApiJson<RenewRequest>,
) -> AppResult<Json<Renewed>> {
    state.refuse_if_schema_newer().await?;
    let now = state.now();
    let grace = state.config.renewal_grace_days.saturating_mul(86_400);
    // An `Authorization` header of another scheme (a proxy's `Basic …`) is passed over
    // for the descriptor, as it is for `X-Api-Key`; alone, it is refused as a credential.
    let has_credential = auth::presents_credential(&parts.0)
        || (body.descriptor.is_none() && parts.0.headers.contains_key(header::AUTHORIZATION));
    let (a, old_hash, by_descriptor) = if has_credential {
        // From the database, not from the key cache: a renewal or a decision made through
        // another process within the cache's lifetime must be seen here. A key replaced
        // by a renewal whose answer was lost (made through any process) then reaches the
        // repeat below, instead of renewing the new period again (`renewal_too_early`),
        // and a revocation answers with its own code (the renewal is conditional anyway).
        let auth = match auth::authenticate_uncached(&state, &parts.0).await {
            Ok(auth) => auth,
            Err(e) if e.code() == "key_replaced" => {
                return repeat_renewal(&state, &parts.0, &body, now).await?.ok_or(e);
            }
            Err(e) => return Err(e),
        };
        let Some(hash) = auth.key_hash else {
            return Err(AppError::forbidden(
                "renewal_requires_api_key",
                "a dynamic staff key cannot renew the register's API key",
            ));
        };
        let a = Arc::unwrap_or_clone(auth.activation);
        (a, Some(hash.to_hex()), false)
    } else if let Some(jws) = &body.descriptor {
        let ring = state.keys().await?;
        let options = VerifyOptions {
            leeway_secs: Some(grace),
            expected_device_id: Some(body.device_id.clone()),
            ..Default::default()
        };
        let verified = verify_descriptor(jws, &ring.trusted, now, &options).map_err(|e| {
            let message = format!("the descriptor cannot be used: {e}");
            match e.code() {
                // A genuine descriptor of this server, refused for its state, as the same
                // problems are answered with the key (403).
                "expired" => AppError::forbidden("renewal_grace_expired", message),
                "device_mismatch" => AppError::forbidden("device_mismatch", message),
                code => AppError::unauthorized(code, message),
            }
        })?;
        let d = verified.into_claims();
        let a = state
            .store
            .activation(&d.activation_id)
            .await?
            .filter(|a| a.production_number == d.sub)
            .ok_or_else(|| AppError::unauthorized("invalid_credentials", "unknown registration"))?;
        if d.exp != a.valid_to {
            return Err(AppError::unauthorized(
                "descriptor_superseded",
                "the descriptor is older than the registration's current period",
            ));
        }
        (a, None, true)
    } else {
        return Err(AppError::unauthorized(
            "missing_credentials",
            "authenticate with the old API key or send the signed descriptor",
        ));
    };

    check_identity(&a, Some(&body.device_id), Some(&body.production_number))?;
    match a.status.as_str() {
        "approved" => {}
        "pending" => {
            return Err(AppError::forbidden(
                "pending_approval",
                "the registration waits for admin approval",
            ));
        }
        "rejected" => {
            return Err(AppError::forbidden(
                "rejected",
                "the registration was rejected",
            ));
        }
        _ => {
            return Err(AppError::forbidden(
                "revoked",
                "the registration was revoked",
            ));
        }
    }
    let early = state.config.renewal_early_days.saturating_mul(86_400);
    if now < a.valid_to.saturating_sub(early) {
        return Err(AppError::conflict(
            "renewal_too_early",
            format!(
                "the key can be renewed from {} on",
                rfc3339(a.valid_to.saturating_sub(early))
            ),
        ));
    }
    if now >= a.valid_to.saturating_add(grace) {
        return Err(AppError::forbidden(
            "renewal_grace_expired",
            "the key expired too long ago; register again with POST /activations-advanced",
        ));
    }
    // The new period is checked by core, as for a new activation.
    let period = renewal_period(&body)?;
    // The new key replaces the old one at once, so the new period must have begun: a key
    // valid only from a later day would leave the register with no usable key until then.
    let mut fields = Vec::new();
    if period.from_unix_seconds() > now {
        fields.push(FieldError {
            field: "validFrom".into(),
            code: "in_the_future".into(),
            message: "must not be after the server's current time (the new key replaces the \
                      old one at once)"
                .into(),
        });
    }
    if period.to_unix_seconds() <= a.valid_to || period.to_unix_seconds() <= now {
        fields.push(FieldError {
            field: "validTo".into(),
            code: "period_inconsistent".into(),
            message: "must be after the current validTo and after now".into(),
        });
    }
    if !fields.is_empty() {
        return Err(AppError::fields(
            "invalid_renewal_request",
            "the new period must have begun, and end after the current one and in the future",
            fields,
        ));
    }
    let key = generate_api_key_with(API_KEY_LEN, tillgate_core::ApiKeyAlphabet::UrlSafe)
        .map_err(|e| AppError::internal(e.to_string()))?;
    let status = if by_descriptor { "pending" } else { "approved" };
    match state
        .store
        .renew(
            &a.id,
            old_hash.as_deref(),
            a.valid_to,
            &key.hash().to_hex(),
            period.from_unix_seconds(),
            period.to_unix_seconds(),
            status,
            now,
        )
        .await?
    {
        Renewal::Renewed => {}
        Renewal::KeyReplaced => {
            return Err(AppError::unauthorized(
                "key_replaced",
                "this API key was replaced by a concurrent renewal",
            ));
        }
        Renewal::RegistrationChanged => {
            return Err(AppError::conflict(
                "registration_changed",
                "the registration changed while it was being renewed (a decision or \
                 another renewal); nothing was renewed",
            ));
        }
    }
    // The old key must stop working now, not when its cache entry expires.
    state.key_cache.clear();
    tracing::info!(activation_id = %a.id, by_descriptor, "key renewed");
    Ok(Json(Renewed {
        activation_id: a.id,
        production_number: a.production_number,
        api_key: key.expose().to_owned(),
        status: status.into(),
        valid_from: period.from_rfc3339(),
        valid_to: period.to_rfc3339(),
    }))
}

/// The request head, for handlers that decide themselves how to authenticate.
pub struct RequestParts(pub Parts);

impl<S: Send + Sync> FromRequestParts<S> for RequestParts {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestParts(parts.clone()))
    }
}

/// `GET /.well-known/jwks.json`: the public keys that verify descriptors, receipts and
/// timestamps.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "activation",
    responses((status = 200, description = "JWK Set", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> AppResult<impl IntoResponse> {
    let ring = state.keys().await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok((headers, Json(ring.jwks.clone())))
}

/// Query of `GET /auth/dynamic-key-params`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DynamicKeyParamsQuery {
    /// The staff login.
    pub login: String,
}

/// `GET /auth/dynamic-key-params?login=`: the parameters an app derives a staff key
/// pair with. Unknown logins get the defaults, so logins cannot be probed.
#[utoipa::path(get, path = "/auth/dynamic-key-params", tag = "activation",
    params(DynamicKeyParamsQuery),
    responses((status = 200, body = DynamicKeyParamsOut)))]
pub async fn dynamic_key_params(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DynamicKeyParamsQuery>,
) -> AppResult<Json<DynamicKeyParamsOut>> {
    let d = tillgate_core::DynamicKeyParams::default();
    let params = match state.store.staff(&q.login).await? {
        Some(s) if s.disabled_at.is_none() => DynamicKeyParamsOut {
            system: state.config.rm_system.to_string(),
            memory_kib: u32::try_from(s.memory_kib).unwrap_or(d.memory_kib),
            iterations: u32::try_from(s.iterations).unwrap_or(d.iterations),
            parallelism: u32::try_from(s.parallelism).unwrap_or(d.parallelism),
        },
        _ => DynamicKeyParamsOut {
            system: state.config.rm_system.to_string(),
            memory_kib: d.memory_kib,
            iterations: d.iterations,
            parallelism: d.parallelism,
        },
    };
    Ok(Json(params))
}
