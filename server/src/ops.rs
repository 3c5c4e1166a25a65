//! Health, readiness, metrics and API documentation.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::OpenApi as _;

use crate::error::AppError;
use crate::state::AppState;

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers, the transaction writers run, and the database's
/// schema is not newer than this server's (another process migrated it meanwhile).
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.refuse_if_schema_newer().await.is_err() {
        return AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database was migrated by a newer tillgate-server",
        )
        .into_response();
    }
    if !state.writers_running() {
        return AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the transaction writer stopped",
        )
        .into_response();
    }
    if state.store.ping().await {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database does not answer",
        )
        .into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    match crate::openapi::ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => AppError::internal(format!("openapi: {e}")).into_response(),
    }
}

/// `GET /docs`: a self-contained page listing the API from `/openapi.json` (no CDN).
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// Unknown paths.
pub async fn not_found() -> AppError {
    AppError::not_found("not_found", "no such endpoint; see /docs")
}

/// Known paths with the wrong method.
pub async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method; see /docs",
    )
}
