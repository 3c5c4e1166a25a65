#![doc = include_str!("../README.md")]

pub mod api_activation;
pub mod api_admin;
pub mod api_register;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod extract;
pub mod ids;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod prefix;
pub mod ratelimit;
pub mod seal;
pub mod serve;
pub mod state;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use tracing::Instrument as _;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, LogFormat};
pub use error::AppError;
pub use serve::serve;
pub use state::AppState;

/// Builds the HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/activations-advanced", post(api_activation::activate))
        .route("/auth/handshake", get(api_activation::handshake))
        .route(
            "/auth/dynamic-key-params",
            get(api_activation::dynamic_key_params),
        )
        .route(
            "/activations/activation-code",
            get(api_activation::activation_code),
        )
        .route("/activations/renew", post(api_activation::renew))
        .route("/.well-known/jwks.json", get(api_activation::jwks))
        .route("/admin/activations", get(api_admin::list))
        .route(
            "/admin/activations/{activationId}/approve",
            post(api_admin::approve),
        )
        .route(
            "/admin/activations/{activationId}/reject",
            post(api_admin::reject),
        )
        .route(
            "/admin/activations/{activationId}/revoke",
            post(api_admin::revoke),
        )
        .route("/admin/staff", post(api_admin::add_staff))
        .route("/admin/transactions", get(api_admin::export))
        .route(
            "/transactions",
            post(api_register::create_transaction).get(api_register::list_transactions),
        )
        .route("/transactions/{id}", get(api_register::get_transaction))
        .route("/products", get(api_register::list_products))
        .route(
            "/products/{id}",
            put(api_register::put_product).get(api_register::get_product),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/docs", get(ops::docs))
        .route("/demo", get(demo::redirect))
        .route("/demo/admin-key.json", get(demo::admin_key))
        .route("/demo/", get(demo::file))
        .route("/demo/{*path}", get(demo::file))
        .route_layer(middleware::from_fn(route_label))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state.clone());
    // The URL-path prefix is rewritten before routing, so the front middleware wraps
    // the router (one middleware for observation, timeout and prefix: each layer costs).
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(state, front))
}

/// The matched route, carried on the response for metrics.
#[derive(Debug, Clone)]
struct RouteLabel(MatchedPath);

async fn route_label(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(RouteLabel(r));
    }
    resp
}

/// Request id (echoed in `X-Request-Id`), metrics, and one log line per request: at
/// INFO for client errors, WARN for server errors, DEBUG for successes (so
/// `RUST_LOG=info,tillgate_server=debug` gives a full access log). Logs the path with
/// any URL-path token redacted, never headers, query strings or bodies. Handlers run in
/// a DEBUG span carrying the same fields.
/// Then the request timeout ([`serve::request_timeout`]), the body-size check
/// ([`serve::refuse_oversized`]) and the URL-path prefix ([`prefix::rewrite`]).
async fn front(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let request_id = match req
        .headers()
        .get("x-request-id")
        .filter(|v| is_request_id(v.as_bytes()))
    {
        Some(v) => v.clone(),
        None => ids::request_id(),
    };
    // Kept only when something will be logged.
    let path = tracing::enabled!(tracing::Level::INFO)
        .then(|| prefix::redact_path(req.uri().path()).into_owned());
    let span = tracing::debug_span!(
        "request",
        request_id = request_id.to_str().unwrap_or(""),
        method = %method,
        path = path.as_deref().unwrap_or(""),
    );
    let st = &state;
    let handle = move |req| async move {
        match serve::refuse_oversized(st, req).await {
            Ok(req) => prefix::rewrite(st, req, next).await,
            Err(resp) => resp,
        }
    };
    let mut resp = serve::request_timeout(&state, req, handle)
        .instrument(span)
        .await;
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |r| r.0.as_str());
    let code = resp.extensions().get::<error::ProblemCode>().map(|c| c.0);
    state
        .metrics
        .observe_request(&method, route, status, elapsed.as_secs_f64());
    if let Some(code) = code {
        state.metrics.observe_problem(code);
    }
    macro_rules! done {
        ($level:ident) => {
            tracing::$level!(
                request_id = request_id.to_str().unwrap_or(""),
                method = %method,
                path = path.as_deref().unwrap_or(""),
                status,
                route,
                code = code.unwrap_or(""),
                micros = elapsed.as_micros() as u64,
                "request done"
            )
        };
    }
    match status {
        500.. => done!(warn),
        400..500 => done!(info),
        _ => done!(debug),
    }
    resp.headers_mut().insert("x-request-id", request_id);
    resp
}

/// Whether a client-sent `X-Request-Id` is reused: 1–64 of `[A-Za-z0-9_-]`.
fn is_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}
