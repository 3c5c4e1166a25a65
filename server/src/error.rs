//! The server's one error type, rendered as RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tillgate_core::FieldError;

/// Everything a handler can fail with. Client errors carry a stable snake_case `code`
/// (core's [`tillgate_core::Error::code`] where core found the problem); server errors
/// are logged with their details and answered with a generic message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A rule of `tillgate-core` refused the input (400, core's code, field list when any).
    #[error("{0}")]
    Core(#[from] tillgate_core::Error),
    /// A client error with its HTTP status, code, message and optional field errors.
    #[error("{message}")]
    Problem {
        /// HTTP status (4xx).
        status: StatusCode,
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable detail; never contains secrets.
        message: String,
        /// Failing fields, if the problem is about fields.
        fields: Vec<FieldError>,
    },
    /// Too many requests from this client (429 with `Retry-After`).
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// The database failed; details are logged, not returned (503).
    #[error("storage error: {0}")]
    Storage(#[source] sqlx::Error),
    /// Anything else that is the server's fault (500); details are logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for AppError {
    /// A database error is the server's (503), except a text value the database cannot
    /// store: PostgreSQL refuses NUL characters in text (SQLSTATE 22021, and 22P05 for
    /// characters its encoding lacks). Those come from the client's input (a `%00` in a
    /// path or query parameter, say) and are answered 400 `invalid_character`.
    fn from(e: sqlx::Error) -> Self {
        let code = e.as_database_error().and_then(|d| d.code());
        if matches!(code.as_deref(), Some("22021" | "22P05")) {
            return AppError::bad_request(
                "invalid_character",
                "a value holds a character that cannot be stored (such as NUL)",
            );
        }
        AppError::Storage(e)
    }
}

/// Shorthand for handler results.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A client error with no field list.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError::Problem {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }
    /// 400 with a field list.
    pub fn fields(code: &'static str, message: impl Into<String>, fields: Vec<FieldError>) -> Self {
        AppError::Problem {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            fields,
        }
    }
    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 413 `payload_too_large`: the body is over `--max-body-bytes`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is too large",
        )
    }
    /// 500, for invariants that should never break.
    pub fn internal(message: impl Into<String>) -> Self {
        AppError::Internal(message.into())
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Core(_) => StatusCode::BAD_REQUEST,
            AppError::Problem { status, .. } => *status,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Core(e) => e.code(),
            AppError::Problem { code, .. } => code,
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Storage(_) => "storage_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }
}

/// The problem+json body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:tillgate:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary (the HTTP reason phrase).
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Human-readable explanation.
    pub detail: String,
    /// Stable snake_case code, the same as core's error codes where core found the problem.
    pub code: String,
    /// Failing fields (validation problems only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<FieldError>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let (detail, fields) = match &self {
            AppError::Core(e) => (e.to_string(), e.fields().to_vec()),
            AppError::Problem {
                message, fields, ..
            } => (message.clone(), fields.clone()),
            AppError::RateLimited { retry_after_secs } => (
                format!("too many requests; retry after {retry_after_secs} s"),
                Vec::new(),
            ),
            AppError::Storage(e) => {
                tracing::error!(error = %e, "storage error");
                (
                    "the database is unavailable; retry later".to_owned(),
                    Vec::new(),
                )
            }
            AppError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                ("internal server error".to_owned(), Vec::new())
            }
        };
        let body = Problem {
            type_: format!("urn:tillgate:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            fields,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status, bytes).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let AppError::RateLimited { retry_after_secs } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tillgate\""),
            );
        }
        if status.is_server_error() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // Lets the metrics layer count problems by code without parsing the body.
        resp.extensions_mut().insert(ProblemCode(code));
        resp
    }
}

/// The `code` of a problem response, attached as a response extension.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);
