//! The web demo: static files of `web-demo/dist` under `/demo/`, and, only in demo mode,
//! the admin key for the demo's admin panel.
//!
//! Kept deliberately small: a fixed set of content types, no directory listings, no
//! paths outside the demo directory. The admin key is exposed only when the operator
//! starts the server with `--demo-mode` (`TILLGATE_DEMO_MODE=true`); never do that on a
//! server that holds real registrations.

use std::path::{Component, Path, PathBuf};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::AppError;
use crate::state::AppState;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file for a request path below `/demo/`, refusing anything that could leave the
/// demo directory.
fn resolve(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_owned()
    };
    let rel = Path::new(&rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(rel))
}

/// `GET /demo`: redirects to `/demo/`.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/demo/")
}

/// `GET /demo/{*path}`: a file of the built web demo.
pub async fn file(State(state): State<AppState>, uri: Uri) -> Response {
    let Some(dir) = &state.config.demo_dir else {
        return AppError::not_found("not_found", "the web demo is not served").into_response();
    };
    let rel = uri.path().strip_prefix("/demo/").unwrap_or("");
    let Some(path) = resolve(dir, rel) else {
        return AppError::not_found("not_found", "no such demo file").into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut resp = (StatusCode::OK, bytes).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            resp
        }
        Err(_) => AppError::not_found("not_found", "no such demo file").into_response(),
    }
}

/// `GET /demo/admin-key.json`: the admin key, only in demo mode (404 otherwise).
pub async fn admin_key(State(state): State<AppState>) -> Response {
    match (&state.config.demo_mode, &state.config.admin_key) {
        (true, Some(key)) => Json(serde_json::json!({
            "adminKey": key,
            "warning": "demo mode: this server hands its admin key to any browser; never use it for real registrations",
        }))
        .into_response(),
        _ => AppError::not_found(
            "not_found",
            "the admin key is only exposed in demo mode (--demo-mode)",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside_the_demo_dir() {
        let d = Path::new("/srv/demo");
        assert_eq!(resolve(d, ""), Some(d.join("index.html")));
        assert_eq!(resolve(d, "app.js"), Some(d.join("app.js")));
        assert_eq!(resolve(d, "vendor/x.wasm"), Some(d.join("vendor/x.wasm")));
        assert_eq!(resolve(d, "../secret"), None);
        assert_eq!(resolve(d, "a/../../b"), None);
        assert_eq!(resolve(d, "/etc/passwd"), None);
    }
}
