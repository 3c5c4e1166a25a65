//! The Fieldpine URL-path token form: `/OpenApi_1,2,3,4$R20201201134216$$<token>/Products`.
//! A middleware parses the first segment with core's `UrlTokenRef::parse`, keeps the token
//! and RVE for the handlers, and rewrites the path to the plain route
//! (`/products`), matching resource names without regard to case.

use std::borrow::Cow;

use axum::extract::Request;
use axum::http::{StatusCode, Uri};

use tillgate_core::{AccessToken, Rve, UrlTokenRef};

use crate::error::AppError;
use crate::state::AppState;

/// What the URL-path prefix carried.
#[derive(Debug, Clone)]
pub struct UrlTokenContext {
    /// The `$$` access token, if any.
    pub token: Option<AccessToken>,
    /// The `$R` data version, if any.
    pub rve: Option<Rve>,
}

/// Whether a path's first segment looks like a URL-token prefix (`OpenApi…_`,
/// `Anywhere…_`, `Gnap…_`, any case).
pub fn is_prefixed(path: &str) -> bool {
    let seg = path.trim_start_matches('/').as_bytes();
    let head_len = seg
        .iter()
        .position(|&b| b == b'/' || b == b'_')
        .unwrap_or(seg.len());
    let head = &seg[..head_len];
    let word_len = head.len() - head.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let word = &head[..word_len];
    [&b"openapi"[..], b"anywhere", b"gnap"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
        && seg.contains(&b'_')
}

/// For logs: the path with every URL-path token replaced by `<redacted>` (core's
/// [`tillgate_core::redact_url_tokens`]: whatever follows `$$` or `%24%24` up to the next
/// `/` or `?`, wherever it stands, so a path the server refuses carries no key into the
/// logs).
pub fn redact_path(path: &str) -> Cow<'_, str> {
    tillgate_core::redact_url_tokens(path)
}

/// Maps the resource part after the prefix to a plain route, case-insensitively.
fn map_resource(rest: &str) -> Option<String> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let lower = |s: &str| s.to_ascii_lowercase();
    match segs.as_slice() {
        [r] if lower(r) == "products" || lower(r) == "transactions" => {
            Some(format!("/{}", lower(r)))
        }
        [r, id] if (lower(r) == "products" || lower(r) == "transactions") && !id.is_empty() => {
            Some(format!("/{}/{id}", lower(r)))
        }
        [a, b] if lower(a) == "auth" && lower(b) == "handshake" => Some("/auth/handshake".into()),
        [a, b]
            if lower(a) == "activations"
                && (lower(b) == "activation-code" || lower(b) == "renew") =>
        {
            Some(format!("/activations/{}", lower(b)))
        }
        _ => None,
    }
}

/// Rewrites a prefixed path to its plain route (see the module doc); other requests pass
/// unchanged. A bad prefix is answered at once (400, 403 or 404).
pub fn rewrite(state: &AppState, mut req: Request) -> Result<Request, AppError> {
    if !is_prefixed(req.uri().path()) {
        return Ok(req);
    }
    let parsed = match UrlTokenRef::parse(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return Err(AppError::Core(e)),
    };
    if !parsed.rm_system_is(&state.config.rm_system) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "rm_system_mismatch",
            format!(
                "this server answers to RmSystem {}, not {}",
                state.config.rm_system,
                parsed.rm_system_str()
            ),
        ));
    }
    let Some(target) = map_resource(parsed.rest()) else {
        return Err(AppError::not_found(
            "not_found",
            "no such resource behind the URL-path prefix (Products, Transactions, auth/handshake, activations/activation-code, activations/renew)",
        ));
    };
    let context = UrlTokenContext {
        token: parsed.access_token(),
        rve: parsed.rve,
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{target}?{q}"),
        None => target,
    };
    let Ok(uri) = pq.parse::<Uri>() else {
        return Err(AppError::bad_request(
            "invalid_path",
            "the path cannot be rewritten",
        ));
    };
    req.extensions_mut().insert(context);
    *req.uri_mut() = uri;
    Ok(req)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefix_detection_and_redaction() {
        assert!(is_prefixed("/OpenApi_1,2,3,4$$tok/Products"));
        assert!(is_prefixed("/openapi2_1$$tok/products"));
        assert!(!is_prefixed("/products"));
        assert!(!is_prefixed("/openapi.json"));
        assert_eq!(
            redact_path("/OpenApi_1,2,3,4$R20201201134216$$secret/Products"),
            "/OpenApi_1,2,3,4$R20201201134216$$<redacted>/Products"
        );
        assert_eq!(redact_path("/products/kaffe"), "/products/kaffe");
        assert_eq!(redact_path("/products/a$b%2"), "/products/a$b%2");
        // Paths the server refuses are logged too: no form may carry the token through.
        for (path, logged) in [
            (
                "/OpenApi_1%2C2%2C3%2C4%24%24secret/Products",
                "/OpenApi_1%2C2%2C3%2C4%24%24<redacted>/Products",
            ),
            (
                "/OpenApi_1%2c2%24%24secret",
                "/OpenApi_1%2c2%24%24<redacted>",
            ),
            ("/OpenApi_1$%24secret/x", "/OpenApi_1$%24<redacted>/x"),
            ("/OpenApi_1%24$secret/x", "/OpenApi_1%24$<redacted>/x"),
            (
                "//OpenApi_1,2,3,4$$secret/Products",
                "//OpenApi_1,2,3,4$$<redacted>/Products",
            ),
            (
                "/x/OpenApi_1$$secret/y$$other",
                "/x/OpenApi_1$$<redacted>/y$$<redacted>",
            ),
            ("/OpenApi_1$$secret", "/OpenApi_1$$<redacted>"),
            ("/OpenApi_1$$", "/OpenApi_1$$<redacted>"),
            ("/é$$sécret/ö", "/é$$<redacted>/ö"),
        ] {
            let r = redact_path(path);
            assert_eq!(r, logged, "{path}");
            assert!(!r.contains("secret") && !r.contains("other"), "{path}");
        }
    }

    #[test]
    fn resources_are_case_insensitive() {
        assert_eq!(map_resource("/Products").as_deref(), Some("/products"));
        assert_eq!(
            map_resource("/TRANSACTIONS/tx_1").as_deref(),
            Some("/transactions/tx_1")
        );
        assert_eq!(
            map_resource("/Auth/Handshake").as_deref(),
            Some("/auth/handshake")
        );
        assert_eq!(map_resource("/admin/activations"), None);
        assert_eq!(map_resource("/../admin"), None);
    }
}
