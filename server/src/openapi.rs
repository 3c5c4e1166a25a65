//! The OpenAPI document, generated from the handlers and types with utoipa.

use std::collections::BTreeMap;

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// Shape of core's `ActivationRequest`, for the documentation only (the server
/// deserialises core's own type).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ActivationRequestDoc {
    /// Name of the cash register, chosen by the user (1–64 characters, not only spaces,
    /// no control characters).
    #[schema(
        example = "Kassa 1",
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    cash_register_name: String,
    /// The device's id (1–128 visible ASCII characters).
    #[schema(
        example = "a1b2c3",
        min_length = 1,
        max_length = 128,
        pattern = "^[!-~]+$"
    )]
    device_id: String,
    /// RFC 3339 time that is midnight UTC (`2024-01-01T00:00:00Z`; another offset, or
    /// fractional zero seconds, naming the same instant is accepted).
    #[schema(example = "2024-01-01T00:00:00Z", format = DateTime)]
    valid_from: String,
    /// RFC 3339 time that is midnight UTC, after `validFrom`, at most one year after it,
    /// in the future.
    #[schema(example = "2025-01-01T00:00:00Z", format = DateTime)]
    valid_to: String,
    /// Company id: for `SE` a Swedish organisation number (`NNNNNN-NNNN` or 10 digits,
    /// Luhn checked), otherwise 1–64 characters of `A-Z a-z 0-9 - . /`.
    #[schema(
        example = "556036-0793",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9./-]+$"
    )]
    corporate_id: String,
    /// Reverse-DNS application id: two or more dot-separated parts, each starting with a
    /// letter, then letters, digits or `_`; 1–64 characters.
    #[schema(
        example = "com.example.pos",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)+$"
    )]
    application_package: String,
    /// ISO 3166-1 alpha-2, `SE` when absent.
    #[schema(example = "SE", pattern = "^[A-Za-z]{2}$")]
    country: Option<String>,
    /// The app's own JSON object (≤ 4 KiB), signed into the descriptor.
    #[schema(value_type = Option<Object>)]
    extras: Option<serde_json::Value>,
}

/// Documentation shapes of core's `Transaction`, `VatLine` and `Item`, kept beside the
/// wire types in core (the server deserialises core's own types).
pub use tillgate_core::wire::{ItemDoc, TransactionDoc, VatLineDoc};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds every problem+json answer an operation can give, with its status and codes, so
/// the handlers' annotations list only their successes. The codes come from the
/// extractors the handler uses (authentication, JSON body, query, path), the URL-path
/// prefix, the timeouts and the storage, plus the handler's own (see [`own_problems`]).
struct Problems;

/// 401 codes of register authentication (`auth::authenticate`): missing or unknown keys,
/// core's API-key format codes, dynamic-key codes.
const REGISTER_401: &[&str] = &[
    "missing_credentials",
    "invalid_credentials",
    "key_replaced",
    "api_key_too_short",
    "api_key_too_long",
    "api_key_reserved_char",
    "api_key_invalid_char",
    "malformed_dynamic_key",
    "dynamic_key_stale",
    "dynamic_key_replayed",
    "invalid_login",
    "bad_signature",
];
/// 403 codes of a registration that cannot be used.
const REGISTER_403: &[&str] = &[
    "pending_approval",
    "rejected",
    "revoked",
    "key_expired",
    "key_not_yet_valid",
];
/// 400 codes of the URL-path prefix (core's `parse_url_token`).
const URL_400: &[&str] = &[
    "url_missing_leading_slash",
    "url_unknown_prefix",
    "url_invalid_rm_system",
    "url_invalid_param",
    "url_duplicate_param",
    "url_invalid_rve",
    "url_param_too_long",
    "url_empty_token",
    "url_token_too_long",
    "url_invalid_character",
    "url_invalid_percent_encoding",
    "invalid_path",
];

/// The problems a handler raises itself, by operation id.
fn own_problems(operation_id: &str) -> &'static [(u16, &'static [&'static str])] {
    match operation_id {
        "activate" => &[
            (
                400,
                &["invalid_activation_request", "invalid_idempotency_key"],
            ),
            (409, &["activation_not_repeatable"]),
            (422, &["idempotency_key_reused"]),
            (429, &["rate_limited"]),
        ],
        "handshake" => &[
            (400, &["invalid_nonce"]),
            (
                403,
                &[
                    "device_mismatch",
                    "production_number_mismatch",
                    "application_package_mismatch",
                ],
            ),
        ],
        "renew" => &[
            (400, &["invalid_renewal_request"]),
            (
                401,
                &[
                    "descriptor_superseded",
                    "malformed_jws",
                    "unsupported_algorithm",
                    "wrong_token_type",
                    "unknown_kid",
                    "unsupported_version",
                    "not_yet_valid",
                    "invalid_signature_length",
                ],
            ),
            (
                403,
                &[
                    "renewal_requires_api_key",
                    "device_mismatch",
                    "production_number_mismatch",
                    "renewal_grace_expired",
                ],
            ),
            (409, &["renewal_too_early", "registration_changed"]),
        ],
        "list" => &[(400, &["invalid_status", "invalid_limit", "invalid_cursor"])],
        "approve" | "reject" | "revoke" => &[
            (400, &["invalid_body", "invalid_decision"]),
            (404, &["activation_not_found"]),
            (409, &["invalid_status_transition"]),
        ],
        "add_staff" => &[
            (400, &["invalid_staff"]),
            (404, &["activation_not_found"]),
            (409, &["staff_login_in_use", "staff_key_reused"]),
        ],
        "disable_staff" => &[(404, &["staff_not_found"])],
        "audit" | "decisions" => &[(404, &["activation_not_found"])],
        "export" => &[(400, &["invalid_limit"])],
        "create_transaction" => &[
            (
                400,
                &[
                    "missing_idempotency_key",
                    "invalid_idempotency_key",
                    "invalid_transaction",
                ],
            ),
            (422, &["idempotency_key_reused"]),
        ],
        "list_transactions" => &[(400, &["url_invalid_rve", "invalid_limit"])],
        "get_transaction" => &[(404, &["transaction_not_found"])],
        "list_products" => &[(400, &["url_invalid_rve"])],
        "get_product" => &[(404, &["product_not_found"])],
        "put_product" => &[(400, &["invalid_product"])],
        "readyz" => &[(503, &["not_ready"])],
        _ => &[],
    }
}

/// Every problem an operation can answer: status → codes.
fn problems(id: &str, op: &Operation) -> BTreeMap<u16, Vec<&'static str>> {
    let mut out: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    let mut add = |status: u16, codes: &[&'static str]| {
        let list = out.entry(status).or_default();
        for c in codes {
            if !list.contains(c) {
                list.push(c);
            }
        }
    };
    let register = matches!(
        id,
        "handshake"
            | "activation_code"
            | "create_transaction"
            | "list_transactions"
            | "get_transaction"
            | "list_products"
            | "get_product"
            | "put_product"
    );
    let admin = op.tags.iter().flatten().any(|t| t == "admin");
    let params = op.parameters.iter().flatten();
    let (mut query, mut path) = (false, false);
    for p in params {
        if let RefOr::T(p) = p {
            query |= p.parameter_in == ParameterIn::Query;
            path |= p.parameter_in == ParameterIn::Path;
        }
    }
    let json_body = op.request_body.is_some() && !matches!(id, "approve" | "reject" | "revoke");
    // Reached through the URL-path prefix as well.
    if register || id == "renew" {
        add(400, URL_400);
        add(403, &["rm_system_mismatch"]);
    }
    if register {
        add(401, REGISTER_401);
        add(403, REGISTER_403);
        add(429, &["rate_limited"]);
    }
    if id == "renew" {
        // The old key is optional, but when sent it is checked like any register key.
        add(401, REGISTER_401);
        add(403, REGISTER_403);
        add(429, &["rate_limited"]);
    }
    if admin {
        add(401, &["missing_credentials", "invalid_credentials"]);
        add(429, &["rate_limited"]);
    }
    if json_body {
        add(400, &["invalid_json", "invalid_body"]);
        add(415, &["unsupported_media_type"]);
    }
    if op.request_body.is_some() {
        add(413, &["payload_too_large"]);
    }
    if query {
        add(400, &["invalid_query"]);
    }
    if path {
        add(400, &["invalid_path"]);
    }
    for (status, codes) in own_problems(id) {
        add(*status, codes);
    }
    add(408, &["request_timeout"]);
    if !matches!(id, "healthz" | "metrics") {
        add(500, &["internal_error"]);
        if id != "readyz" {
            add(503, &["storage_unavailable"]);
            // Every operation that may write, beside a database a newer server migrated.
            if matches!(
                id,
                "activate"
                    | "renew"
                    | "approve"
                    | "reject"
                    | "revoke"
                    | "add_staff"
                    | "disable_staff"
                    | "create_transaction"
                    | "put_product"
            ) {
                add(503, &["schema_newer"]);
            }
            // Client input PostgreSQL cannot hold in text (a NUL).
            add(400, &["invalid_character"]);
        }
    }
    add(503, &["handler_timeout"]);
    out
}

fn problem_response(status: u16, codes: &[&str]) -> utoipa::openapi::Response {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let codes = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    ResponseBuilder::new()
        .description(format!("{reason}: problem+json with `code` one of {codes}"))
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let id = op.operation_id.clone().unwrap_or_default();
                for (status, codes) in problems(&id, op) {
                    op.responses.responses.insert(
                        status.to_string(),
                        RefOr::T(problem_response(status, &codes)),
                    );
                }
            }
        }
    }
}

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tillgate server", description = "Activation, authentication and cash-transaction service for POS apps. Every register resource is also reachable behind the URL-path token prefix `/OpenApi_{RmSystem}$R{rve}$${token}/{Resource}`."),
    paths(
        crate::api_activation::activate,
        crate::api_activation::handshake,
        crate::api_activation::activation_code,
        crate::api_activation::renew,
        crate::api_activation::jwks,
        crate::api_activation::dynamic_key_params,
        crate::api_admin::list,
        crate::api_admin::approve,
        crate::api_admin::reject,
        crate::api_admin::revoke,
        crate::api_admin::audit,
        crate::api_admin::decisions,
        crate::api_admin::add_staff,
        crate::api_admin::disable_staff,
        crate::api_admin::export,
        crate::api_register::create_transaction,
        crate::api_register::list_transactions,
        crate::api_register::get_transaction,
        crate::api_register::list_products,
        crate::api_register::get_product,
        crate::api_register::put_product,
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&Security, &Problems),
    tags(
        (name = "activation", description = "registration, handshake, descriptor, renewal, keys"),
        (name = "admin", description = "admin key required"),
        (name = "register", description = "a register's own resources"),
        (name = "ops", description = "health and metrics"),
    )
)]
pub struct ApiDoc;
