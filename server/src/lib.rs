#![doc = include_str!("../README.md")]

pub mod api_activation;
pub mod api_admin;
pub mod api_register;
pub mod audit;
pub mod auth;
pub mod backup;
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
pub mod transfer;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post, put};
use futures_util::FutureExt as _;
use tower::ServiceExt as _;
use tracing::Instrument as _;

pub use clock::{Clock, ManualClock, SystemClock};

/// Header names the server reads or writes, parsed once rather than on every lookup.
pub(crate) mod header_names {
    use axum::http::HeaderName;
    /// `X-Request-Id`.
    pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// `X-Api-Key`.
    pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    /// `X-Forwarded-For`.
    pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    /// `Idempotency-Key`.
    pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
}

pub use config::{Config, LogFormat};
pub use error::AppError;
pub use serve::serve;
pub use state::AppState;

/// Builds the HTTP application: [`App`], the front around the routes.
pub fn app(state: AppState) -> App {
    let router = Router::new()
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
        .route(
            "/admin/activations/{activationId}/audit",
            get(api_admin::audit),
        )
        .route(
            "/admin/activations/{activationId}/decisions",
            get(api_admin::decisions),
        )
        .route("/admin/staff", post(api_admin::add_staff))
        .route(
            "/admin/staff/{login}/disable",
            post(api_admin::disable_staff),
        )
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
        .route_layer(metrics::RouteLabelLayer)
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(state.clone());
    App { state, router }
}

/// The HTTP application, a tower `Service`: the front (request id, logs, metrics,
/// request timeout, body-size check, URL-path prefix) around the routes.
/// The front wraps the router because the URL-path prefix is rewritten before routing;
/// it is one hand-written service rather than a stack of layers, as each layer costs per
/// request. Serve it with [`serve`], or with axum:
///
/// ```no_run
/// # async fn run(state: tillgate_server::AppState) {
/// use axum::ServiceExt as _;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
/// let app = tillgate_server::app(state);
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
///     .await
///     .unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

impl tower::Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Box::pin(front(self.clone(), req))
    }
}

/// Request id (echoed in `X-Request-Id`), metrics, and one log line per request: at
/// INFO for client errors, WARN for server errors, DEBUG for successes (so
/// `RUST_LOG=info,tillgate_server=debug` gives a full access log). Logs the path with
/// any URL-path token redacted, never headers, query strings or bodies. Handlers run in
/// a DEBUG span carrying the same fields.
/// Then the request timeout ([`serve::request_timeout`]), the body-size check
/// ([`serve::refuse_oversized`]) and the URL-path prefix ([`prefix::rewrite`]). Every
/// answer without a `Cache-Control` of its own gets `no-store`.
async fn front(app: App, req: Request) -> Result<Response, Infallible> {
    let App { state, router } = app;
    let start = Instant::now();
    let method = req.method().clone();
    let request_id = match req
        .headers()
        .get(&header_names::X_REQUEST_ID)
        .filter(|v| is_request_id(v.as_bytes()))
    {
        Some(v) => v.clone(),
        None => ids::request_id(),
    };
    // For the log lines: redacted only when one is written (field values are evaluated
    // only for enabled events and spans).
    let uri = req.uri().clone();
    let span = tracing::debug_span!(
        "request",
        request_id = request_id.to_str().unwrap_or(""),
        method = %method,
        path = %prefix::redact_path(uri.path()),
    );
    let st = &state;
    let handle = move |req| async move {
        let req = match serve::refuse_oversized(st, req).await {
            Ok(req) => req,
            Err(resp) => return resp,
        };
        match prefix::rewrite(st, serve::limit_body(st, req)) {
            Ok(req) => {
                or_internal_error(async move {
                    let Ok(resp) = router.oneshot(req).await;
                    resp
                })
                .await
            }
            Err(e) => e.into_response(),
        }
    };
    let (mut resp, route) = metrics::with_route_label(serve::request_timeout(&state, req, handle))
        .instrument(span)
        .await;
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    let route = route
        .as_ref()
        .map_or("unmatched", axum::extract::MatchedPath::as_str);
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
                path = %prefix::redact_path(uri.path()),
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
    let headers = resp.headers_mut();
    headers.insert(header_names::X_REQUEST_ID.clone(), request_id);
    // Answers are per credential (a register's sales, its handshake) and a key may be
    // sent as `X-Api-Key`, which shared caches do not treat as private: nothing is
    // stored by a cache in front unless its handler says so (the JWKS, the demo's files).
    headers
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Runs a handler. One that panics (a defect: bad input has typed errors) answers 500
/// `internal_error` like any other server error, instead of the connection being dropped
/// without an answer. The panic's message goes to stderr through the panic hook, not to
/// the request log.
async fn or_internal_error(handler: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(resp) => resp,
        Err(_) => error::AppError::internal("the request handler panicked").into_response(),
    }
}

/// Whether a client-sent `X-Request-Id` is reused: 1–64 of `[A-Za-z0-9_-]`.
fn is_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_not_a_dropped_connection() {
        let resp = or_internal_error(async {
            if std::hint::black_box(true) {
                panic!("a defect");
            }
            axum::http::StatusCode::OK.into_response()
        })
        .await;
        assert_eq!(resp.status(), 500);
        assert_eq!(
            resp.extensions().get::<error::ProblemCode>().map(|c| c.0),
            Some("internal_error")
        );
        let fine = or_internal_error(async { axum::http::StatusCode::OK.into_response() }).await;
        assert_eq!(fine.status(), 200);
    }
}
