//! The one error type of `tillgate-client`.

use std::time::Duration;

use serde::Deserialize;
use tillgate_core::FieldError;

/// Everything a client call can fail with.
///
/// [`ClientError::code`] is a stable snake_case string: for errors the server reported
/// it is the server's problem+json `code` (`pending_approval`, `key_expired`, ...), for
/// local verification failures it is core's code (`bad_signature`, `expired`, ...), and
/// for the client's own failures it is one of the codes listed on each variant.
///
/// The variants an app reacts to differently have their own names:
///
/// | variant | what the app does |
/// |---|---|
/// | [`PendingApproval`](Self::PendingApproval) | keep selling offline, ask again later |
/// | [`KeyExpired`](Self::KeyExpired) | [`Client::renew`](crate::Client::renew) |
/// | [`KeyReplaced`](Self::KeyReplaced) | a renewal already replaced this key (its answer was lost): soon after it, repeat that same renewal with this key and the same new period, and the server answers it with a fresh key; once the server no longer answers the repeat, activate again (the descriptor stored before the renewal no longer renews: `descriptor_superseded`) |
/// | [`Rejected`](Self::Rejected), [`Revoked`](Self::Revoked) | stop; the register must be activated again |
/// | [`Unauthorized`](Self::Unauthorized) | the key is unknown (`invalid_credentials`): activate again; for a staff login's dynamic key, `dynamic_key_stale` (check the device clock) or `dynamic_key_replayed` (make a new key) |
/// | [`is_transient`](Self::is_transient) errors | retry later (after [`retry_after`](Self::retry_after) when the server named it); queued transactions stay queued |
/// | [`Api`](Self::Api) 403 `renewal_grace_expired` | the key is too old to renew: activate again |
/// | [`Api`](Self::Api) 409 `registration_changed` | the registration changed meanwhile: handshake, then retry |
/// | [`Api`](Self::Api) 409 `renewal_too_early` | the key is not close to its end yet: keep using it |
/// | [`Api`](Self::Api) 409 `activation_not_repeatable` | the registration an activation's key created was decided, or is over a day old: activate with a new key |
/// | [`UnexpectedRedirect`](Self::UnexpectedRedirect) | the base URL is out of date (e.g. `http://` where the server moved to `https://`): configure where the server is now; not a key problem, do not activate again |
/// | [`AnswerMismatch`](Self::AnswerMismatch) | the server answered a sale with another one (or an altered one): the sale is not taken as stored (the outbox keeps it pending); tell the operator |
///
/// Messages never contain API keys or tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    // ---- from the server, typed -------------------------------------------------------
    /// 403 `pending_approval`: the Tax Authority has not been notified yet.
    #[error("activation is pending approval: {detail}")]
    PendingApproval {
        /// The server's explanation.
        detail: String,
    },
    /// 403 `rejected`: the registration was rejected by an administrator.
    #[error("activation was rejected: {detail}")]
    Rejected {
        /// The server's explanation.
        detail: String,
    },
    /// 403 `revoked`: the registration was revoked.
    #[error("activation was revoked: {detail}")]
    Revoked {
        /// The server's explanation.
        detail: String,
    },
    /// 403 `key_expired`: the API key's period has ended; renew it.
    #[error("API key expired: {detail}")]
    KeyExpired {
        /// The server's explanation.
        detail: String,
    },
    /// 403 `key_not_yet_valid`: the API key's period has not started.
    #[error("API key is not valid yet: {detail}")]
    KeyNotYetValid {
        /// The server's explanation.
        detail: String,
    },
    /// 401 `key_replaced`: a renewal replaced this API key. Repeating that same renewal
    /// (the same new period) with the old key, soon after it (this project's server
    /// allows ten minutes), answers it again with a fresh key, so a till whose renewal
    /// answer was lost recovers. The signed descriptor stored before the renewal does not
    /// help: the server refuses it from then on (401 `descriptor_superseded`), so
    /// [`Client::renew_with_descriptor`](crate::Client::renew_with_descriptor) is no way
    /// out. When the repeat is no longer answered, only a new activation (a new
    /// registration, approved by the operator) recovers the register.
    #[error("API key was replaced by a renewal: {detail}")]
    KeyReplaced {
        /// The server's explanation.
        detail: String,
    },
    /// 401: missing or unknown credentials. `code` is the server's code
    /// (`invalid_credentials`, `dynamic_key_stale`, `dynamic_key_replayed`, ...;
    /// `unauthorized` when the answer named none).
    #[error("unauthorized ({code}): {detail}")]
    Unauthorized {
        /// The server's code.
        code: String,
        /// The server's explanation.
        detail: String,
    },
    /// 429: too many requests. Transient.
    #[error("rate limited by the server")]
    RateLimited {
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// 5xx: the server could not answer now (`storage_unavailable`, `handler_timeout`,
    /// `schema_newer` during an upgrade, ...). Transient. Code: the server's code, or
    /// `server_unavailable`.
    #[error("server unavailable (HTTP {status}, {code})")]
    ServerUnavailable {
        /// HTTP status.
        status: u16,
        /// The server's code, or `server_unavailable`.
        code: String,
        /// The server's explanation (may be empty).
        detail: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Any other problem the server reported (bad input, a mismatch, a conflict, not
    /// found...). `code` is the server's problem+json `code`; `fields` lists failing
    /// fields when the problem is about fields.
    #[error("server refused the request (HTTP {status}, {code}): {detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's stable code (`http_<status>` if the body was not problem+json).
        code: String,
        /// The server's explanation.
        detail: String,
        /// Failing fields, if any.
        fields: Vec<FieldError>,
    },

    // ---- transport -----------------------------------------------------------------------
    /// The request did not complete within the configured timeout. Transient.
    /// Code `timeout`.
    #[error("request timed out")]
    Timeout,
    /// The server could not be reached (DNS, refused connection, TLS, reset).
    /// Transient. Code `network`.
    #[error("network error: {0}")]
    Network(String),
    /// The server answered with a redirect (3xx): the base URL no longer points at the
    /// server (an `http://` address the server now moves to `https://`, a new host or
    /// path prefix). Redirects are never followed: following one would turn a
    /// `POST` into a `GET` and drop the API key, and the server would then refuse the
    /// register's credentials. Set [`ClientConfig::base_url`](crate::ClientConfig) to
    /// where the server is now. Neither transient nor a refusal of the register: the
    /// [`Outbox`](crate::Outbox) keeps its sales pending. Code `unexpected_redirect`.
    #[error("{}", redirect_message(*.status, .location.as_deref()))]
    UnexpectedRedirect {
        /// HTTP status (301, 302, 307, 308...); `None` where the platform hides it (a
        /// browser's `fetch` hides redirects from the page).
        status: Option<u16>,
        /// Where the server pointed (its `Location`), without the query or fragment and
        /// with URL-path tokens and passwords redacted ([`crate::redact_url`]); `None`
        /// when absent or hidden.
        location: Option<String>,
    },
    /// The server answered with something this client does not understand.
    /// Code `invalid_response`.
    #[error("invalid response from the server: {0}")]
    InvalidResponse(String),
    /// The server's answer to a sale is not that sale: the stored transaction it echoes,
    /// or its receipt's claims (transaction hash, id, sequence number), name another one
    /// ([`Client::submit_transaction`](crate::Client::submit_transaction)). The sale
    /// cannot be taken as stored: the [`Outbox`](crate::Outbox) keeps it pending and
    /// sends it again later, and its witness does not take that receipt. Neither
    /// transient nor a refusal: a server that answers this way must be looked into.
    /// Code `answer_mismatch`.
    #[error("the server's answer does not match the transaction sent: {0}")]
    AnswerMismatch(String),

    // ---- local ---------------------------------------------------------------------------
    /// A rule of `tillgate-core` refused something locally: an invalid transaction or
    /// activation request, or a descriptor, timestamp or receipt that does not verify.
    /// Code: core's code.
    #[error(transparent)]
    Core(#[from] tillgate_core::Error),
    /// No API key is set: activate first or call
    /// [`Client::set_api_key`](crate::Client::set_api_key). Code `not_activated`.
    #[error("no API key: the register is not activated")]
    NotActivated,
    /// An idempotency key is not 1–64 visible ASCII characters.
    /// Code `invalid_idempotency_key`.
    #[error("invalid idempotency key: {0}")]
    InvalidIdempotencyKey(String),
    /// The same idempotency key is already queued for a different transaction.
    /// Code `idempotency_key_reused`.
    #[error("idempotency key is already queued with a different transaction")]
    IdempotencyKeyReused,
    /// The queue's storage failed (disk full, permissions, quota). Code `storage_error`.
    #[error("queue storage error: {0}")]
    Storage(String),
    /// The queue's storage is already open in another outbox (another process, or another
    /// `FileStore` on the same directory): two outboxes on one store
    /// would give two sales the same record. Close the other one first (the store is
    /// released when it is dropped). Code `queue_in_use`.
    #[error("the queue at {0} is already open in another outbox")]
    QueueInUse(String),
    /// A stored queue record (or the witness record) could not be read. It is kept in
    /// place, listed by [`Outbox::corrupt_records`](crate::Outbox::corrupt_records) and
    /// never silently dropped. Code `queue_record_corrupt`.
    #[error("queue record {name} is corrupt: {reason}")]
    CorruptRecord {
        /// The record's name in the store (file name or storage key).
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// A configuration value is unusable (bad base URL, empty trusted keys).
    /// Code `invalid_config`.
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
}

impl ClientError {
    /// The stable, machine-readable code (snake_case). See the type's docs.
    ///
    /// ```
    /// use tillgate_client::ClientError;
    /// assert_eq!(ClientError::Timeout.code(), "timeout");
    /// let e = ClientError::KeyExpired { detail: "renew".into() };
    /// assert_eq!(e.code(), "key_expired");
    /// ```
    pub fn code(&self) -> &str {
        match self {
            Self::PendingApproval { .. } => "pending_approval",
            Self::Rejected { .. } => "rejected",
            Self::Revoked { .. } => "revoked",
            Self::KeyExpired { .. } => "key_expired",
            Self::KeyNotYetValid { .. } => "key_not_yet_valid",
            Self::KeyReplaced { .. } => "key_replaced",
            Self::Unauthorized { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::ServerUnavailable { code, .. } => code,
            Self::Api { code, .. } => code,
            Self::Timeout => "timeout",
            Self::Network(_) => "network",
            Self::UnexpectedRedirect { .. } => "unexpected_redirect",
            Self::InvalidResponse(_) => "invalid_response",
            Self::AnswerMismatch(_) => "answer_mismatch",
            Self::Core(e) => e.code(),
            Self::NotActivated => "not_activated",
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Storage(_) => "storage_error",
            Self::QueueInUse(_) => "queue_in_use",
            Self::CorruptRecord { .. } => "queue_record_corrupt",
            Self::InvalidConfig(_) => "invalid_config",
        }
    }

    /// Whether retrying the same request later may succeed without anything changing on
    /// the register's side: timeouts, network errors, 429, 5xx, and the statuses that
    /// say the request was not handled this time: 408 (Request Timeout), 421
    /// (Misdirected Request) and 425 (Too Early), which a reverse proxy answers during a
    /// deploy. (A 404 is transient for the [`Outbox`](crate::Outbox), whose route always
    /// exists, but not here: `GET /transactions/{id}` answers it for an unknown id.)
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Network(_)
                | Self::RateLimited { .. }
                | Self::ServerUnavailable { .. }
                | Self::Api {
                    status: 408 | 421 | 425,
                    ..
                }
        )
    }

    /// Whether the server refused the register's credentials or status (401 or 403):
    /// nothing it sends will be accepted until the app acts (approval, renewal,
    /// reactivation). Queued transactions are kept.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Self::PendingApproval { .. }
                | Self::Rejected { .. }
                | Self::Revoked { .. }
                | Self::KeyExpired { .. }
                | Self::KeyNotYetValid { .. }
                | Self::KeyReplaced { .. }
                | Self::Unauthorized { .. }
        ) || matches!(self, Self::Api { status: 403, .. })
    }

    /// How long the server asked to wait before trying again (its `Retry-After`, on a
    /// 429 or a 5xx), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::ServerUnavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The HTTP status, when the error is the server's answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::PendingApproval { .. }
            | Self::Rejected { .. }
            | Self::Revoked { .. }
            | Self::KeyExpired { .. }
            | Self::KeyNotYetValid { .. } => Some(403),
            Self::Unauthorized { .. } | Self::KeyReplaced { .. } => Some(401),
            Self::RateLimited { .. } => Some(429),
            Self::ServerUnavailable { status, .. } | Self::Api { status, .. } => Some(*status),
            Self::UnexpectedRedirect { status, .. } => *status,
            _ => None,
        }
    }

    /// Maps a transport error. Never includes the URL, which may carry a URL-path token.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return Self::Timeout;
        }
        if e.is_decode() {
            return Self::InvalidResponse(e.without_url().to_string());
        }
        Self::Network(e.without_url().to_string())
    }

    /// A redirect answer (`status`, when known, and its `Location`): the location is kept
    /// without its query or fragment (which may carry a token), and redacted.
    pub(crate) fn redirect(status: Option<u16>, location: Option<&str>) -> Self {
        let location = location.map(|l| {
            let l = l.trim();
            let end = l.find(['?', '#']).unwrap_or(l.len());
            crate::redact_url(&l[..end]).into_owned()
        });
        Self::UnexpectedRedirect { status, location }
    }

    /// Maps an HTTP error response (status and body) to the typed error.
    pub(crate) fn from_response(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Self {
        let problem: Option<ProblemBody> = serde_json::from_slice(body).ok();
        let (code, detail, fields) = match problem {
            Some(p) if p.code.as_deref().is_some_and(|c| !c.is_empty()) => (
                p.code.unwrap_or_default(),
                p.detail.or(p.title).unwrap_or_default(),
                p.fields,
            ),
            Some(p) => (
                default_code(status),
                p.detail.or(p.title).unwrap_or_default(),
                p.fields,
            ),
            None => (default_code(status), String::new(), Vec::new()),
        };
        match (status, code.as_str()) {
            (_, "pending_approval") => Self::PendingApproval { detail },
            (_, "rejected") => Self::Rejected { detail },
            (_, "revoked") => Self::Revoked { detail },
            (_, "key_expired") => Self::KeyExpired { detail },
            (_, "key_not_yet_valid") => Self::KeyNotYetValid { detail },
            (401, "key_replaced") => Self::KeyReplaced { detail },
            (401, _) => Self::Unauthorized { code, detail },
            (429, _) => Self::RateLimited { retry_after },
            (500..=599, _) => Self::ServerUnavailable {
                status,
                code,
                detail,
                retry_after,
            },
            _ => Self::Api {
                status,
                code,
                detail,
                fields,
            },
        }
    }
}

/// The message of [`ClientError::UnexpectedRedirect`].
fn redirect_message(status: Option<u16>, location: Option<&str>) -> String {
    let status = status.map_or_else(String::new, |s| format!(" (HTTP {s})"));
    let to = location.map_or_else(String::new, |l| format!(" to {l}"));
    format!(
        "the server redirected the request{status}{to}: redirects are not followed, \
         set the client's base URL to where the server is now"
    )
}

fn default_code(status: u16) -> String {
    match status {
        401 => "unauthorized".into(),
        403 => "forbidden".into(),
        404 => "not_found".into(),
        429 => "rate_limited".into(),
        500..=599 => "server_unavailable".into(),
        s => format!("http_{s}"),
    }
}

/// An RFC 9457 problem+json body, as far as the client reads it.
#[derive(Deserialize)]
struct ProblemBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    fields: Vec<FieldError>,
}

/// Result type of `tillgate-client`.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, code: &str) -> ClientError {
        let body = serde_json::json!({
            "type": format!("urn:tillgate:problem:{code}"), "title": "t", "status": status,
            "detail": "d", "code": code,
        });
        ClientError::from_response(status, None, body.to_string().as_bytes())
    }

    #[test]
    fn every_auth_code_has_its_variant() {
        assert!(matches!(
            problem(403, "pending_approval"),
            ClientError::PendingApproval { .. }
        ));
        assert!(matches!(
            problem(403, "rejected"),
            ClientError::Rejected { .. }
        ));
        assert!(matches!(
            problem(403, "revoked"),
            ClientError::Revoked { .. }
        ));
        assert!(matches!(
            problem(403, "key_expired"),
            ClientError::KeyExpired { .. }
        ));
        assert!(matches!(
            problem(403, "key_not_yet_valid"),
            ClientError::KeyNotYetValid { .. }
        ));
        for code in [
            "pending_approval",
            "rejected",
            "revoked",
            "key_expired",
            "key_not_yet_valid",
        ] {
            let e = problem(403, code);
            assert_eq!(e.code(), code);
            assert!(e.is_auth() && !e.is_transient());
            assert_eq!(e.http_status(), Some(403));
        }
    }

    #[test]
    fn unauthorized_keeps_the_server_code() {
        let e = problem(401, "unauthorized");
        assert!(matches!(e, ClientError::Unauthorized { .. }));
        assert_eq!(e.code(), "unauthorized");
        let e = problem(401, "invalid_credentials");
        assert_eq!(e.code(), "invalid_credentials");
        assert!(e.is_auth());
        // A key a renewal replaced has its own variant: repeat the renewal.
        let e = problem(401, "key_replaced");
        assert!(matches!(e, ClientError::KeyReplaced { .. }), "{e:?}");
        assert_eq!(e.code(), "key_replaced");
        assert!(e.is_auth() && !e.is_transient());
        assert_eq!(e.http_status(), Some(401));
        // Not problem+json at all.
        let e = ClientError::from_response(401, None, b"nope");
        assert_eq!(e.code(), "unauthorized");
    }

    #[test]
    fn other_codes_and_statuses() {
        let e = problem(403, "device_mismatch");
        assert_eq!(e.code(), "device_mismatch");
        assert!(e.is_auth());
        let body = serde_json::json!({"code": "invalid_transaction", "detail": "x",
            "fields": [{"field": "total", "code": "total_mismatch", "message": "m"}]});
        let e = ClientError::from_response(400, None, body.to_string().as_bytes());
        let ClientError::Api { fields, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(fields[0].code, "total_mismatch");
        assert_eq!(e.code(), "invalid_transaction");
        assert!(!e.is_transient() && !e.is_auth());

        let e = ClientError::from_response(429, Some(Duration::from_secs(3)), b"");
        assert!(matches!(e, ClientError::RateLimited { retry_after: Some(d) } if d.as_secs() == 3));
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        // A 5xx keeps its Retry-After and detail (an upgrade under way, a full disk).
        let body = serde_json::json!({"code": "schema_newer", "detail": "upgrading"});
        let e = ClientError::from_response(
            503,
            Some(Duration::from_secs(7)),
            body.to_string().as_bytes(),
        );
        assert!(e.is_transient() && !e.is_auth());
        assert_eq!((e.code(), e.http_status()), ("schema_newer", Some(503)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(
            matches!(&e, ClientError::ServerUnavailable { detail, .. } if detail == "upgrading")
        );
        assert_eq!(problem(400, "invalid_transaction").retry_after(), None);
        let e = problem(503, "storage_unavailable");
        assert_eq!(e.code(), "storage_unavailable");
        assert!(e.is_transient());
        let e = ClientError::from_response(502, None, b"<html>bad gateway</html>");
        assert_eq!(e.code(), "server_unavailable");
        assert_eq!(
            ClientError::from_response(418, None, b"").code(),
            "http_418"
        );
    }

    #[test]
    fn a_redirect_names_where_without_tokens() {
        let e = ClientError::redirect(
            Some(301),
            Some("https://till:pw@pos.example/OpenApi_1,2$$Secr3tT0ken/transactions?token=abc#x"),
        );
        assert_eq!(e.code(), "unexpected_redirect");
        assert!(!e.is_transient() && !e.is_auth());
        assert_eq!(e.http_status(), Some(301));
        let shown = e.to_string();
        for secret in ["Secr3tT0ken", "token=abc", ":pw@", "#x"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("(HTTP 301) to https://till:<redacted>@pos.example/OpenApi_1,2$$<redacted>/transactions:"),
            "{shown}"
        );
        // Hidden by the platform (a browser's fetch): said without them.
        let e = ClientError::redirect(None, None);
        assert_eq!((e.code(), e.http_status()), ("unexpected_redirect", None));
        assert!(
            e.to_string()
                .starts_with("the server redirected the request: "),
            "{e}"
        );
    }

    #[test]
    fn a_proxy_that_did_not_handle_the_request_is_transient() {
        for status in [408u16, 421, 425] {
            let e = ClientError::from_response(status, None, b"<html>try again</html>");
            assert!(e.is_transient(), "{status}");
            assert!(!e.is_auth(), "{status}");
            assert_eq!(e.http_status(), Some(status));
            assert_eq!(e.code(), format!("http_{status}"));
        }
        // A 404 stays a refusal here (an unknown transaction id); the outbox decides.
        let e = ClientError::from_response(404, None, b"");
        assert!(!e.is_transient());
        assert_eq!(e.code(), "not_found");
        for status in [400u16, 409, 410, 422] {
            assert!(!problem(status, "x").is_transient(), "{status}");
        }
        let e = ClientError::QueueInUse("/data/queue".into());
        assert_eq!(e.code(), "queue_in_use");
        assert!(!e.is_transient() && e.http_status().is_none());
    }
}
