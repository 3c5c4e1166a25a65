//! The OpenAPI document, generated from the handlers and types with utoipa.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Shape of core's `ActivationRequest`, for the documentation only (the server
/// deserialises core's own type).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ActivationRequestDoc {
    /// Name of the cash register, chosen by the user (1–64 characters).
    #[schema(example = "Kassa 1")]
    cash_register_name: String,
    /// The device's id (1–128 visible ASCII characters).
    #[schema(example = "a1b2c3")]
    device_id: String,
    /// RFC 3339, midnight UTC.
    #[schema(example = "2024-01-01T00:00:00Z")]
    valid_from: String,
    /// RFC 3339, midnight UTC, at most one year after `validFrom`.
    #[schema(example = "2025-01-01T00:00:00Z")]
    valid_to: String,
    /// Swedish organisation number (`NNNNNN-NNNN`, Luhn checked).
    #[schema(example = "556036-0793")]
    corporate_id: String,
    /// Reverse-DNS application id.
    #[schema(example = "com.example.pos")]
    application_package: String,
    /// ISO 3166-1 alpha-2, `SE` when absent.
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
        crate::api_admin::add_staff,
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
    modifiers(&Security),
    tags(
        (name = "activation", description = "registration, handshake, descriptor, renewal, keys"),
        (name = "admin", description = "admin key required"),
        (name = "register", description = "a register's own resources"),
        (name = "ops", description = "health and metrics"),
    )
)]
pub struct ApiDoc;
