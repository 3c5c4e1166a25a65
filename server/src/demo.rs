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
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
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

/// Whether the request names this machine by a loopback name (`localhost`, `127.x.x.x`,
/// `[::1]`, any port) in its `Host`. A page of another site that made its own name
/// resolve to 127.0.0.1 (DNS rebinding) sends its own name there.
fn loopback_host(headers: &HeaderMap, uri: &Uri) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `GET /demo/admin-key.json`: the admin key, only in demo mode (404 otherwise), and only
/// to a page loaded from this machine by a loopback name (403 `demo_host_refused`
/// otherwise: a site using DNS rebinding could read it from a browser on this machine).
pub async fn admin_key(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    match (&state.config.demo_mode, &state.config.admin_key) {
        (true, Some(_)) if !loopback_host(&headers, &uri) => AppError::new(
            StatusCode::FORBIDDEN,
            "demo_host_refused",
            "demo mode hands its admin key only to pages loaded from localhost, 127.0.0.1 or [::1]",
        )
        .into_response(),
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
    fn only_loopback_names_get_the_demo_admin_key() {
        let with_host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            loopback_host(&m, &Uri::from_static("/demo/admin-key.json"))
        };
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "127.5.6.7",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(with_host(ok), "{ok}");
        }
        for refused in [
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "0.0.0.0:8080",
            "[::]:8080",
            "[::ffff:127.0.0.1]:8080",
            "192.168.1.10:8080",
            "",
        ] {
            assert!(!with_host(refused), "{refused}");
        }
        assert!(!loopback_host(
            &HeaderMap::new(),
            &Uri::from_static("/demo/admin-key.json")
        ));
    }

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
