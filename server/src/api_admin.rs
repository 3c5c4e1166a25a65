//! Admin endpoints (Bearer admin key): approvals, staff logins, transaction export.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api_activation::rfc3339;
use crate::api_register::{TransactionOut, tx_out};
use crate::auth::Admin;
use crate::db::{ActivationRow, StaffPut, StaffRow};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// A registration as the admin sees it (never with its key).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminActivation {
    /// Id.
    pub activation_id: String,
    /// ProductionNumber.
    pub production_number: String,
    /// `pending`, `approved`, `rejected`, `revoked`.
    pub status: String,
    /// Register name.
    pub cash_register_name: String,
    /// Device id.
    pub device_id: String,
    /// Company id.
    pub corporate_id: String,
    /// Country.
    pub country: String,
    /// Application package.
    pub application_package: String,
    /// The app's extras.
    #[schema(value_type = Object)]
    pub extras: serde_json::Value,
    /// Key validity start.
    pub valid_from: String,
    /// Key validity end.
    pub valid_to: String,
    /// Requested at.
    pub created_at: String,
    /// Who made the last decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// When the Tax Authority was notified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_notified_at: Option<String>,
    /// The admin's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<ActivationRow> for AdminActivation {
    fn from(a: ActivationRow) -> Self {
        AdminActivation {
            activation_id: a.id,
            production_number: a.production_number,
            status: a.status,
            cash_register_name: a.cash_register_name,
            device_id: a.device_id,
            corporate_id: a.corporate_id,
            country: a.country,
            application_package: a.application_package,
            extras: serde_json::from_str(&a.extras).unwrap_or_default(),
            valid_from: rfc3339(a.valid_from),
            valid_to: rfc3339(a.valid_to),
            created_at: rfc3339(a.created_at),
            decided_by: a.decided_by,
            decided_at: a.decided_at.map(rfc3339),
            authority_notified_at: a.authority_notified_at.map(rfc3339),
            note: a.decision_note,
        }
    }
}

/// A list of registrations.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivationList {
    /// The registrations, oldest first.
    pub items: Vec<AdminActivation>,
    /// When the page is full: pass as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Filter of `GET /admin/activations`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending`, `approved`, `rejected` or `revoked`; all when absent.
    #[param(pattern = "^(pending|approved|rejected|revoked)$")]
    pub status: Option<String>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Only registrations after this one (the `next` of the previous page).
    pub after: Option<String>,
}

/// The statuses a registration can have, as `status` filters take them.
pub const STATUSES: [&str; 4] = ["pending", "approved", "rejected", "revoked"];

/// `GET /admin/activations?status=pending`.
#[utoipa::path(get, path = "/admin/activations", tag = "admin", params(ListQuery),
    security(("admin" = [])),
    responses((status = 200, body = ActivationList)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<ActivationList>> {
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(AppError::bad_request(
            "invalid_status",
            "status must be pending, approved, rejected or revoked",
        ));
    }
    let limit = limit(q.limit, 100, 1000)?;
    let after = match &q.after {
        Some(id) => {
            let a = state.store.activation(id).await?.ok_or_else(|| {
                AppError::bad_request("invalid_cursor", "after names no registration")
            })?;
            Some((a.created_at, a.id))
        }
        None => None,
    };
    let rows = state
        .store
        .list_activations_after(
            q.status.as_deref(),
            after.as_ref().map(|(t, id)| (*t, id.as_str())),
            limit,
        )
        .await?;
    let next = if rows.len() as i64 == limit {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Json(ActivationList {
        items: rows.into_iter().map(AdminActivation::from).collect(),
        next,
    }))
}

/// Checks a `limit` parameter.
pub fn limit(given: Option<i64>, default: i64, max: i64) -> AppResult<i64> {
    match given {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(AppError::bad_request(
            "invalid_limit",
            format!("limit must be 1 to {max}"),
        )),
    }
}

/// Optional body of approve / reject / revoke.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    /// Who decides (recorded); `admin` when absent.
    pub decided_by: Option<String>,
    /// Approve only: when the Tax Authority was notified (RFC 3339); now when absent.
    pub authority_notified_at: Option<String>,
    /// A note for the record.
    pub note: Option<String>,
}

fn parse_decision(body: &Bytes) -> AppResult<Decision> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    let d: Decision = serde_json::from_slice(body).map_err(|e| {
        AppError::bad_request(
            "invalid_body",
            format!("the body is not a decision object: {e}"),
        )
    })?;
    check_decision_text(d.decided_by.as_deref(), d.note.as_deref())
        .map_err(|f| AppError::fields("invalid_decision", "invalid decision fields", vec![f]))?;
    Ok(d)
}

/// Checks who decides (`decidedBy`, 1–128 characters) and the note (1–1000), neither
/// with control characters; the first bad field otherwise. Shared by the HTTP endpoints
/// and the CLI's `--by` and `--note`, so that both record only what the other would.
pub fn check_decision_text(
    decided_by: Option<&str>,
    note: Option<&str>,
) -> Result<(), tillgate_core::FieldError> {
    for (field, v, max) in [("decidedBy", decided_by, 128), ("note", note, 1000)] {
        if let Some(v) = v
            && (v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control))
        {
            return Err(tillgate_core::FieldError {
                field: field.into(),
                code: "invalid_length".into(),
                message: format!("must be 1 to {max} characters without control characters"),
            });
        }
    }
    Ok(())
}

async fn decide(
    state: &AppState,
    id: &str,
    from: &[&str],
    to: &str,
    body: &Bytes,
) -> AppResult<Json<AdminActivation>> {
    state.refuse_if_schema_newer().await?;
    let d = parse_decision(body)?;
    let now = state.now();
    let notified = match (&d.authority_notified_at, to) {
        (Some(t), "approved") => Some(
            OffsetDateTime::parse(t, &Rfc3339)
                .map_err(|_| {
                    AppError::fields(
                        "invalid_decision",
                        "invalid decision fields",
                        vec![tillgate_core::FieldError {
                            field: "authorityNotifiedAt".into(),
                            code: "invalid_format".into(),
                            message: "must be an RFC 3339 time".into(),
                        }],
                    )
                })?
                .unix_timestamp(),
        ),
        (None, "approved") => Some(now),
        (Some(_), _) => {
            return Err(AppError::bad_request(
                "invalid_decision",
                "authorityNotifiedAt is recorded at approval only",
            ));
        }
        (None, _) => None,
    };
    let by = d.decided_by.as_deref().unwrap_or("admin");
    match state
        .store
        .decide(id, from, to, by, notified, d.note.as_deref(), now)
        .await?
    {
        None => Err(AppError::not_found(
            "activation_not_found",
            "no such activation",
        )),
        Some(Ok(row)) => {
            // A revoked key must stop working now, not when its cache entry expires.
            state.key_cache.clear();
            tracing::info!(activation_id = %row.id, status = %row.status, "admin decision");
            Ok(Json(row.into()))
        }
        // Repeating the same decision is harmless and answers the current state. It may
        // repeat one made through another process (or the CLI): this process's cached
        // keys go too, so the answer holds here at once.
        Some(Err(row)) if row.status == to => {
            state.key_cache.clear();
            Ok(Json(row.into()))
        }
        Some(Err(row)) => {
            // Decided otherwise since (through another process, or the CLI): what this
            // process cached of it is stale too.
            state.key_cache.clear();
            Err(AppError::conflict(
                "invalid_status_transition",
                format!("the activation is {}; it cannot become {to}", row.status),
            ))
        }
    }
}

/// `POST /admin/activations/{activationId}/approve`: the Tax Authority was notified.
#[utoipa::path(post, path = "/admin/activations/{activationId}/approve", tag = "admin",
    params(("activationId" = String, Path)), request_body(content = Decision, content_type = "application/json"),
    security(("admin" = [])),
    responses((status = 200, body = AdminActivation)))]
pub async fn approve(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> AppResult<Json<AdminActivation>> {
    decide(&state, &id, &["pending"], "approved", &body).await
}

/// `POST /admin/activations/{activationId}/reject`.
#[utoipa::path(post, path = "/admin/activations/{activationId}/reject", tag = "admin",
    params(("activationId" = String, Path)), request_body(content = Decision, content_type = "application/json"),
    security(("admin" = [])),
    responses((status = 200, body = AdminActivation)))]
pub async fn reject(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> AppResult<Json<AdminActivation>> {
    decide(&state, &id, &["pending"], "rejected", &body).await
}

/// `POST /admin/activations/{activationId}/revoke`.
#[utoipa::path(post, path = "/admin/activations/{activationId}/revoke", tag = "admin",
    params(("activationId" = String, Path)), request_body(content = Decision, content_type = "application/json"),
    security(("admin" = [])),
    responses((status = 200, body = AdminActivation)))]
pub async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> AppResult<Json<AdminActivation>> {
    decide(&state, &id, &["pending", "approved"], "revoked", &body).await
}

/// A staff login to add (the app derived the public key from the password with core's
/// `derive_dynamic_key_pair`; the password never reaches the server).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewStaff {
    /// Login name.
    pub login: String,
    /// The register the login works at.
    pub activation_id: String,
    /// base64url Ed25519 public key (32 bytes).
    pub public_key: String,
    /// Argon2id memory, KiB (default 19456).
    pub memory_kib: Option<u32>,
    /// Argon2id passes (default 2).
    pub iterations: Option<u32>,
    /// Argon2id lanes (default 1).
    pub parallelism: Option<u32>,
    /// Change a login that is enabled with another key, register or parameters: a new
    /// password, or a move to another register (409 `staff_login_in_use` without it).
    #[serde(default)]
    pub replace: bool,
}

/// A stored staff login.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaffOut {
    /// Login.
    pub login: String,
    /// Register.
    pub activation_id: String,
    /// Public key.
    pub public_key: String,
    /// When the login was disabled (RFC 3339); absent while it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
}

impl From<StaffRow> for StaffOut {
    fn from(s: StaffRow) -> Self {
        StaffOut {
            login: s.login,
            activation_id: s.activation_id,
            public_key: s.public_key,
            disabled_at: s.disabled_at.map(rfc3339),
        }
    }
}

/// What adding a staff login did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StaffAdded {
    /// A new login (201).
    Created,
    /// The same login was stored already, enabled, exactly so (200).
    Unchanged,
    /// An enabled login got another key, register or parameters, as asked (200).
    Replaced,
    /// A disabled login was enabled again, with a new key (200).
    Reenabled,
}

impl StaffAdded {
    /// The HTTP status of the answer.
    pub fn status(self) -> axum::http::StatusCode {
        match self {
            StaffAdded::Created => axum::http::StatusCode::CREATED,
            _ => axum::http::StatusCode::OK,
        }
    }
}

/// Validates and stores a staff login; shared by the HTTP endpoint and the CLI. A login
/// enabled with another key, register or parameters is changed only with `replace`
/// (409 `staff_login_in_use`); a disabled login is enabled again; re-enabling a login,
/// or moving it to another register, with the public key it has is refused (409
/// `staff_key_reused`: a device holding the old seed would be let in again).
pub async fn add_staff_checked(
    state_store: &crate::db::Store,
    s: &NewStaff,
    system: &str,
    now: i64,
) -> AppResult<StaffAdded> {
    // Core checks the login rules (same as the app's derivation).
    tillgate_core::DynamicKeyPair::from_seed(system, &s.login, &[0; 32]).map_err(|e| {
        AppError::fields(
            "invalid_staff",
            "invalid staff login",
            vec![tillgate_core::FieldError {
                field: "login".into(),
                code: e.code().into(),
                message: e.to_string(),
            }],
        )
    })?;
    let pk = B64.decode(&s.public_key).ok();
    let valid_key = pk.as_deref().is_some_and(|b| {
        tillgate_core::TrustedKeys::new()
            .add_raw("staff", b)
            .is_ok()
    });
    if !valid_key {
        return Err(AppError::fields(
            "invalid_staff",
            "invalid staff login",
            vec![tillgate_core::FieldError {
                field: "publicKey".into(),
                code: "invalid_public_key".into(),
                message: "must be a base64url Ed25519 public key of 32 bytes".into(),
            }],
        ));
    }
    let d = tillgate_core::DynamicKeyParams::default();
    let (m, i, p) = (
        s.memory_kib.unwrap_or(d.memory_kib),
        s.iterations.unwrap_or(d.iterations),
        s.parallelism.unwrap_or(d.parallelism),
    );
    // The bounds apps accept (core): a login stored outside them could not be derived.
    let params = tillgate_core::DynamicKeyParams {
        memory_kib: m,
        iterations: i,
        parallelism: p,
    };
    if let Err(e) = params.check() {
        return Err(AppError::bad_request("invalid_staff", e.to_string()));
    }
    if state_store.activation(&s.activation_id).await?.is_none() {
        return Err(AppError::not_found(
            "activation_not_found",
            "no such activation",
        ));
    }
    let row = StaffRow {
        login: s.login.clone(),
        activation_id: s.activation_id.clone(),
        public_key: s.public_key.clone(),
        memory_kib: i64::from(m),
        iterations: i64::from(i),
        parallelism: i64::from(p),
        disabled_at: None,
    };
    match state_store.put_staff(&row, s.replace, now).await? {
        StaffPut::Created => Ok(StaffAdded::Created),
        StaffPut::Unchanged => Ok(StaffAdded::Unchanged),
        StaffPut::Replaced => Ok(StaffAdded::Replaced),
        StaffPut::Reenabled => Ok(StaffAdded::Reenabled),
        StaffPut::InUse(current) if current.activation_id != s.activation_id => {
            Err(AppError::conflict(
                "staff_login_in_use",
                format!(
                    "the login {} register {}; ask to replace it to move it",
                    if current.disabled_at.is_some() {
                        "was disabled at"
                    } else {
                        "works at"
                    },
                    current.activation_id
                ),
            ))
        }
        StaffPut::InUse(_) => Err(AppError::conflict(
            "staff_login_in_use",
            "the login exists with another public key or other parameters; ask to replace it \
             to change it",
        )),
        StaffPut::KeyReused(current) => Err(AppError::conflict(
            "staff_key_reused",
            if current.disabled_at.is_some() {
                "the login was disabled with this public key: a device holding its old seed \
                 would work again; enable it with a new password"
            } else if current.activation_id != s.activation_id {
                "the login would move to another register with the public key it has: a \
                 device holding its seed would follow it; move it with a new password"
            } else {
                "the login has this public key with other Argon2id parameters, from which no \
                 app could derive it; change the parameters with a new password"
            },
        )),
    }
}

/// `POST /admin/staff`: adds a staff login for dynamic API keys (201). A login enabled
/// elsewhere, or with another key or parameters, is changed only with `replace: true`
/// (200); a disabled login is enabled again with a new key (200); an identical repeat
/// answers 200 and changes nothing.
#[utoipa::path(post, path = "/admin/staff", tag = "admin", request_body = NewStaff,
    security(("admin" = [])),
    responses(
        (status = 201, description = "created", body = StaffOut),
        (status = 200, description = "replaced, enabled again, or already stored so", body = StaffOut),
    ))]
pub async fn add_staff(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(s): ApiJson<NewStaff>,
) -> AppResult<(axum::http::StatusCode, Json<StaffOut>)> {
    state.refuse_if_schema_newer().await?;
    let added = add_staff_checked(
        &state.store,
        &s,
        &state.config.rm_system.to_string(),
        state.now(),
    )
    .await?;
    tracing::info!(login = %s.login, activation_id = %s.activation_id, result = ?added, "staff login added");
    Ok((
        added.status(),
        Json(StaffOut {
            login: s.login,
            activation_id: s.activation_id,
            public_key: s.public_key,
            disabled_at: None,
        }),
    ))
}

/// Disables a staff login (the row is kept, with the time); shared by the HTTP endpoint
/// and the CLI. 404 `staff_not_found` for an unknown login.
pub async fn disable_staff_checked(
    store: &crate::db::Store,
    login: &str,
    now: i64,
) -> AppResult<StaffRow> {
    store
        .disable_staff(login, now)
        .await?
        .ok_or_else(|| AppError::not_found("staff_not_found", "no such staff login"))
}

/// `POST /admin/staff/{login}/disable`: the login's dynamic keys fail from now on, as an
/// unknown login's do. The login is kept, with `disabledAt`; disabling it again answers
/// the same. Adding it again enables it, with a new password only.
#[utoipa::path(post, path = "/admin/staff/{login}/disable", tag = "admin",
    params(("login" = String, Path, description = "the login, percent-encoded")),
    security(("admin" = [])),
    responses((status = 200, body = StaffOut)))]
pub async fn disable_staff(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(login): ApiPath<String>,
) -> AppResult<Json<StaffOut>> {
    state.refuse_if_schema_newer().await?;
    let row = disable_staff_checked(&state.store, &login, state.now()).await?;
    tracing::info!(login = %row.login, "staff login disabled");
    Ok(Json(row.into()))
}

/// Filter of the transaction export.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this register.
    pub activation_id: Option<String>,
    /// Without `activationId`: only registers after this one, or, with `afterSequence`,
    /// this one's transactions above that sequence and the later registers' (the
    /// `nextAfterActivationId` of the previous page).
    pub after_activation_id: Option<String>,
    /// With `activationId` or `afterActivationId`: only sequence numbers above this.
    #[param(minimum = 0)]
    pub after_sequence: Option<i64>,
    /// At most this many (1–10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// `GET /admin/activations/{activationId}/audit`: the register's stored receipt chain
/// checked now, as `tillgate-server admin verify-receipts --activation-id` checks it (with
/// the server's signing keys, retired ones included): every receipt verifies and chains
/// from sequence 1, names its row, signs the stored transaction, and ends at the chain
/// head. For support ("is this register's history intact?") and monitoring; a whole
/// database, or a register with a very long history (the audit runs within the request
/// timeout), is audited with the command, which can also use a JWKS kept apart and an
/// older backup. Found problems are the answer (`status: broken`), not an error.
#[utoipa::path(get, path = "/admin/activations/{activationId}/audit", tag = "admin",
    params(("activationId" = String, Path)),
    security(("admin" = [])),
    responses((status = 200, body = crate::audit::RegisterAudit)))]
pub async fn audit(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<crate::audit::RegisterAudit>> {
    if state.store.register_chain_head(&id).await?.is_none() {
        return Err(AppError::not_found(
            "activation_not_found",
            "no such activation",
        ));
    }
    let options = crate::audit::AuditOptions {
        only: Some(&id),
        ..crate::audit::AuditOptions::default()
    };
    let mut found = None;
    crate::audit::audit(&state.store, options, |r| {
        found = Some(r.clone());
        Ok(())
    })
    .await?;
    let found = found.ok_or_else(|| AppError::internal("the audit reported no register"))?;
    if found.broken.is_some() {
        tracing::warn!(activation_id = %found.activation_id, "receipt chain audit found it broken");
    }
    Ok(Json(found))
}

/// One administrator's decision about a registration.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionOut {
    /// Its number in the registration's history, from 1.
    pub n: i64,
    /// The status it gave: `approved`, `rejected` or `revoked`.
    pub status: String,
    /// Who decided.
    pub decided_by: String,
    /// When (RFC 3339).
    pub decided_at: String,
    /// When the Tax Authority was notified (approvals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_notified_at: Option<String>,
    /// The decision's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<crate::db::DecisionRow> for DecisionOut {
    fn from(d: crate::db::DecisionRow) -> Self {
        DecisionOut {
            n: d.n,
            status: d.status,
            decided_by: d.decided_by,
            decided_at: rfc3339(d.decided_at),
            authority_notified_at: d.authority_notified_at.map(rfc3339),
            note: d.note,
        }
    }
}

/// A registration's decisions.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decisions {
    /// Oldest first. A registration decided before the server kept every decision
    /// (schema 7) starts with its latest decision of that time.
    pub items: Vec<DecisionOut>,
}

/// `GET /admin/activations/{activationId}/decisions`: every decision about the
/// registration (approval, rejection, revocation), oldest first, with who made it, when,
/// the Tax Authority notification time and the note; a later decision never hides an
/// earlier one.
#[utoipa::path(get, path = "/admin/activations/{activationId}/decisions", tag = "admin",
    params(("activationId" = String, Path)),
    security(("admin" = [])),
    responses((status = 200, body = Decisions)))]
pub async fn decisions(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<Decisions>> {
    let Some(rows) = state.store.decisions(&id).await? else {
        return Err(AppError::not_found(
            "activation_not_found",
            "no such activation",
        ));
    };
    Ok(Json(Decisions {
        items: rows.into_iter().map(DecisionOut::from).collect(),
    }))
}

/// Exported transactions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    /// Transactions by register and sequence.
    pub items: Vec<TransactionOut>,
    /// When the page is full, with no `activationId` asked: pass as `afterActivationId`
    /// (with `afterSequence`) for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_activation_id: Option<String>,
    /// When the page is full: pass as `afterSequence` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after_sequence: Option<i64>,
}

/// `GET /admin/transactions`: export for the admin (by register and sequence).
#[utoipa::path(get, path = "/admin/transactions", tag = "admin", params(ExportQuery),
    security(("admin" = [])),
    responses((status = 200, body = Export)))]
pub async fn export(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> AppResult<Json<Export>> {
    let limit = limit(q.limit, 1000, 10_000)?;
    let after_seq = q.after_sequence.unwrap_or(0);
    if after_seq < 0 {
        return Err(AppError::bad_request(
            "invalid_query",
            "afterSequence must be 0 or more",
        ));
    }
    let rows = match (&q.activation_id, &q.after_activation_id) {
        (Some(_), Some(_)) => {
            return Err(AppError::bad_request(
                "invalid_query",
                "activationId and afterActivationId do not go together",
            ));
        }
        (Some(a), None) => state.store.export_txs(Some(a), after_seq, limit).await?,
        (None, Some(a)) => {
            // Without a sequence: only the registers after this one.
            let after_seq = q.after_sequence.unwrap_or(i64::MAX);
            state
                .store
                .export_all_txs(Some((a, after_seq)), limit)
                .await?
        }
        (None, None) if q.after_sequence.is_some() => {
            // Once ignored here, and every page was the first.
            return Err(AppError::bad_request(
                "invalid_query",
                "afterSequence needs activationId or afterActivationId",
            ));
        }
        (None, None) => state.store.export_all_txs(None, limit).await?,
    };
    let last = if rows.len() as i64 == limit {
        rows.last().map(|r| (r.activation_id.clone(), r.seq))
    } else {
        None
    };
    let mut production_numbers = std::collections::HashMap::new();
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        if !production_numbers.contains_key(&r.activation_id) {
            let pn = state
                .store
                .activation(&r.activation_id)
                .await?
                .map(|a| a.production_number)
                .unwrap_or_default();
            production_numbers.insert(r.activation_id.clone(), pn);
        }
        let pn = production_numbers
            .get(&r.activation_id)
            .cloned()
            .unwrap_or_default();
        items.push(tx_out(r, &pn)?);
    }
    let (next_after_activation_id, next_after_sequence) = match last {
        Some((a, seq)) => (q.activation_id.is_none().then_some(a), Some(seq)),
        None => (None, None),
    };
    Ok(Json(Export {
        items,
        next_after_activation_id,
        next_after_sequence,
    }))
}
