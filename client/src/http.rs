//! The HTTP requests the client sends, and the two ways they travel: reqwest on native
//! targets, the JS `fetch` (browsers, node ≥ 18) on wasm32. A browser build thus
//! carries no HTTP stack of its own (no reqwest, `http`, `url` or IDNA tables): the
//! browser already has one, with its TLS.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::{ClientError, Result};

/// The methods the server API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    #[cfg(target_arch = "wasm32")]
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// One request: everything the server API needs, nothing more. `Debug` redacts the
/// `Authorization` value and a URL-path token, and shows only the body's size.
pub(crate) struct Request {
    method: Method,
    url: String,
    has_query: bool,
    headers: Vec<(&'static str, String)>,
    /// The `Authorization` value; kept apart so that native builds mark it sensitive.
    authorization: Option<String>,
    /// A JSON body (sent with `Content-Type: application/json`).
    body: Option<Vec<u8>>,
}

impl Request {
    pub(crate) fn new(method: Method, url: String) -> Self {
        let has_query = url.contains('?');
        Request {
            method,
            url,
            has_query,
            headers: Vec::new(),
            authorization: None,
            body: None,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn authorization(mut self, value: String) -> Self {
        self.authorization = Some(value);
        self
    }

    /// Appends `application/x-www-form-urlencoded` pairs to the URL's query, as
    /// reqwest's `RequestBuilder::query` does.
    pub(crate) fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        for (k, v) in pairs {
            self.url.push(if self.has_query { '&' } else { '?' });
            self.has_query = true;
            form_encode(k, &mut self.url);
            self.url.push('=');
            form_encode(v, &mut self.url);
        }
        self
    }

    /// Sets a JSON body.
    pub(crate) fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(|e| ClientError::Network(e.to_string()))?;
        self.body = Some(body);
        Ok(self)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, value)| match *name {
                        // An activation's key can have its API key issued again.
                        "idempotency-key" => (*name, "<redacted>"),
                        _ => (*name, value.as_str()),
                    })
                    .collect::<Vec<_>>(),
            )
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// A URL for `Debug` and logs: every URL-path token (whatever follows `$$`, written `$`
/// or `%24`, up to the next `/`, `?` or `#`) and the password of a `user:password@` are
/// replaced by `<redacted>`; the rest is kept, to tell servers and prefixes apart.
/// The tokens are core's [`tillgate_core::redact_url_tokens`], the rule of the server's
/// log redaction of paths.
///
/// ```
/// let shown = tillgate_client::redact_url("https://u:pw@pos.example/OpenApi_1,2,3,4$$Secret0123456789/");
/// assert_eq!(shown, "https://u:<redacted>@pos.example/OpenApi_1,2,3,4$$<redacted>/");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let bytes = url.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    // The authority's password: `scheme://user:password@host`.
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let end = bytes[start..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .map_or(bytes.len(), |p| start + p);
        if let Some(at) = url[start..end].rfind('@').map(|p| start + p)
            && let Some(colon) = url[start..at].find(':').map(|p| start + p)
        {
            out.push_str(&url[..=colon]);
            out.push_str("<redacted>");
            copied = at;
        }
    }
    match tillgate_core::redact_url_tokens(&url[copied..]) {
        Cow::Borrowed(_) if copied == 0 => Cow::Borrowed(url),
        rest => {
            out.push_str(&rest);
            Cow::Owned(out)
        }
    }
}

/// Form-urlencoding (WHATWG): alphanumerics and `*-._` stay, space is `+`, every other
/// byte is `%XX`.
fn form_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// A server's answer, whatever its status.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    headers: Headers,
}

impl Response {
    /// A response header by its (case-insensitive) name.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.headers.get(name).ok().flatten()
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
type Headers = reqwest::header::HeaderMap;
#[cfg(target_arch = "wasm32")]
type Headers = web_sys::Headers;

/// Checks a base URL: it must parse and be `http` or `https`.
fn check_base_url(base: &str) -> Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    let scheme = reqwest::Url::parse(base)
        .map_err(|e| ClientError::InvalidConfig(format!("base_url: {e}")))?
        .scheme()
        .to_owned();
    // The same WHATWG URL parser, the platform's own.
    #[cfg(target_arch = "wasm32")]
    let scheme = web_sys::Url::new(base)
        .map_err(|e| ClientError::InvalidConfig(format!("base_url: {}", wasm::message(&e))))?
        .protocol()
        .trim_end_matches(':')
        .to_owned();
    if !matches!(scheme.as_str(), "http" | "https") {
        return Err(ClientError::InvalidConfig(
            "base_url must be http or https".into(),
        ));
    }
    Ok(())
}

/// Why [`Http::send`] has no answer to give: the answer was over the cap, which a caller
/// can avoid by asking for less (a shorter page), or any other failure.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The answer was larger than `max_response_bytes` (the cap, in bytes).
    TooLarge(usize),
    /// Anything else.
    Other(ClientError),
}

impl From<ClientError> for SendError {
    fn from(e: ClientError) -> Self {
        SendError::Other(e)
    }
}

impl From<SendError> for ClientError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::TooLarge(max) => ClientError::InvalidResponse(format!(
                "the answer is larger than {max} bytes (ClientConfig::max_response_bytes)"
            )),
            SendError::Other(e) => e,
        }
    }
}

/// Sends requests with the configured timeouts.
pub(crate) struct Http {
    #[cfg(not(target_arch = "wasm32"))]
    client: reqwest::Client,
    timeout: Duration,
    max_response_bytes: usize,
}

impl Http {
    /// `base_url` is checked here; `connect_timeout` and `user_agent` apply on native
    /// targets only (browsers connect and name themselves).
    pub(crate) fn new(
        base_url: &str,
        timeout: Duration,
        connect_timeout: Duration,
        user_agent: &str,
        max_response_bytes: usize,
    ) -> Result<Self> {
        check_base_url(base_url)?;
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Redirects are not followed: a 301 or 302 would turn a `POST` into a `GET`,
            // and one to another origin (`http://` to `https://`) drops `Authorization`;
            // the server would then refuse the register's key. The 3xx is answered to
            // the caller (`ClientError::UnexpectedRedirect`).
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect_timeout)
                .timeout(timeout)
                .user_agent(user_agent)
                .build()
                .map_err(|e| ClientError::InvalidConfig(e.without_url().to_string()))?;
            Ok(Http {
                client,
                timeout,
                max_response_bytes,
            })
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (connect_timeout, user_agent);
            Ok(Http {
                timeout,
                max_response_bytes,
            })
        }
    }

    /// Sends `req` and reads the whole answer, within the timeout.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) async fn send(&self, req: Request) -> Result<Response, SendError> {
        use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        };
        let mut b = self
            .client
            .request(method, &req.url)
            .timeout(self.timeout)
            .header(ACCEPT, ACCEPT_VALUE);
        for (name, value) in &req.headers {
            b = b.header(*name, value);
        }
        if let Some(auth) = &req.authorization {
            let mut value = HeaderValue::from_str(auth)
                .map_err(|_| ClientError::InvalidConfig("API key is not a valid header".into()))?;
            value.set_sensitive(true);
            b = b.header(AUTHORIZATION, value);
        }
        if let Some(body) = req.body {
            b = b.header(CONTENT_TYPE, "application/json").body(body);
        }
        let mut resp = b.send().await.map_err(ClientError::from_reqwest)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let max = self.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(SendError::TooLarge(max));
        }
        // Read chunk by chunk, so that an answer without a length (chunked) cannot grow
        // past the cap either.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(ClientError::from_reqwest)? {
            if body.len() + chunk.len() > max {
                return Err(SendError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            body,
            headers,
        })
    }

    /// Sends `req` with the global `fetch` and reads the whole answer, within the timeout
    /// (an abort signal, which bounds reading the body too: see [`wasm::Deadline`]).
    #[cfg(target_arch = "wasm32")]
    pub(crate) async fn send(&self, req: Request) -> Result<Response, SendError> {
        use wasm_bindgen::JsCast;
        use wasm_bindgen_futures::JsFuture;

        let init = web_sys::RequestInit::new();
        init.set_method(req.method.as_str());
        let headers = web_sys::Headers::new().map_err(wasm::network)?;
        let invalid_header = |_| ClientError::InvalidConfig("invalid request header".into());
        headers
            .set("accept", ACCEPT_VALUE)
            .map_err(invalid_header)?;
        for (name, value) in &req.headers {
            headers.set(name, value).map_err(invalid_header)?;
        }
        if let Some(auth) = &req.authorization {
            headers
                .set("authorization", auth)
                .map_err(|_| ClientError::InvalidConfig("API key is not a valid header".into()))?;
        }
        if let Some(body) = &req.body {
            headers
                .set("content-type", "application/json")
                .map_err(invalid_header)?;
            init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
        }
        init.set_headers(&headers);
        // Redirects are not followed (see the native `Http::new`). Browsers then hide
        // the redirect from the page (an opaque answer, status 0: refused below);
        // node's `fetch` gives the 3xx itself, which the client refuses like reqwest's.
        init.set_redirect(web_sys::RequestRedirect::Manual);
        // Held until the body is read: dropping it (here or with this future) clears its
        // timer and aborts the request, if it has a timer (see `wasm::Deadline`).
        let deadline = wasm::Deadline::new(self.timeout)?;
        init.set_signal(Some(deadline.signal()));

        let resp: web_sys::Response = JsFuture::from(wasm::fetch(&req.url, &init))
            .await
            .map_err(wasm::network)?
            .unchecked_into();
        if resp.type_() == web_sys::ResponseType::Opaqueredirect {
            return Err(ClientError::redirect(None, None).into());
        }
        let max = self.max_response_bytes;
        let declared = resp
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|n| n.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(SendError::TooLarge(max));
        }
        // Read chunk by chunk from the body's stream, so that an answer without a length
        // (chunked) cannot grow past the cap either: reading stops, and the stream is
        // cancelled (the connection closed), at the first chunk that would pass it.
        let body = match resp.body() {
            Some(stream) => wasm::read_capped(stream, max).await?,
            None => Vec::new(),
        };
        drop(deadline);
        Ok(Response {
            status: resp.status(),
            body,
            headers: resp.headers(),
        })
    }
}

const ACCEPT_VALUE: &str = "application/json, application/problem+json";

#[cfg(target_arch = "wasm32")]
mod wasm {
    use js_sys::{Promise, Reflect};
    use wasm_bindgen::JsCast as _;
    use wasm_bindgen::prelude::*;

    use super::SendError;
    use crate::{ClientError, Result};

    #[wasm_bindgen]
    extern "C" {
        /// The global `fetch` (window, worker or node ≥ 18).
        #[wasm_bindgen(js_name = fetch)]
        pub(super) fn fetch(url: &str, init: &web_sys::RequestInit) -> Promise;
        /// The global `setTimeout` (window, worker or node): its handle is a number in
        /// browsers and an object in node, so it stays a `JsValue`.
        #[wasm_bindgen(js_name = setTimeout, catch)]
        fn set_timeout(handler: &js_sys::Function, ms: i32) -> Result<JsValue, JsValue>;
        /// The global `clearTimeout`.
        #[wasm_bindgen(js_name = clearTimeout)]
        fn clear_timeout(handle: &JsValue);
    }

    /// The signal that ends a request after the timeout: `AbortSignal.timeout` where the
    /// platform has it, else (Safari before 16, Chrome before 103) an `AbortController`
    /// aborted by a `setTimeout` timer. Either way the `fetch`, or the reading of its
    /// body, rejects (`TimeoutError` or `AbortError`, both [`ClientError::Timeout`]), so
    /// the call always settles.
    ///
    /// Dropping the fallback clears its timer and aborts the request (the request
    /// finished first, or its future was dropped): a dropped request then stops at once
    /// instead of running on with nothing to end it, and aborting one whose body was
    /// read changes nothing. `AbortSignal.timeout` needs neither: its request ends at the
    /// timeout at the latest.
    pub(super) struct Deadline {
        signal: web_sys::AbortSignal,
        /// The fallback: its controller, timer handle and the callback the timer calls
        /// (kept alive while the timer may fire).
        fallback: Option<Fallback>,
    }

    struct Fallback {
        controller: web_sys::AbortController,
        timer: JsValue,
        _abort: Closure<dyn FnMut()>,
    }

    impl Deadline {
        pub(super) fn new(timeout: std::time::Duration) -> Result<Self> {
            // Timers of more than 2^31 − 1 ms fire at once in browsers: cap them there
            // (24.8 days, which no request timeout comes near).
            let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            if has_abort_signal_timeout() {
                return Ok(Deadline {
                    signal: web_sys::AbortSignal::timeout_with_u32(ms.unsigned_abs()),
                    fallback: None,
                });
            }
            let controller = web_sys::AbortController::new().map_err(network)?;
            let signal = controller.signal();
            let on_timer = controller.clone();
            let abort = Closure::<dyn FnMut()>::new(move || on_timer.abort());
            let timer = set_timeout(abort.as_ref().unchecked_ref(), ms).map_err(network)?;
            Ok(Deadline {
                signal,
                fallback: Some(Fallback {
                    controller,
                    timer,
                    _abort: abort,
                }),
            })
        }

        pub(super) fn signal(&self) -> &web_sys::AbortSignal {
            &self.signal
        }
    }

    impl Drop for Deadline {
        fn drop(&mut self) {
            if let Some(f) = &self.fallback {
                // Cleared before its callback is freed, so the timer never calls a freed
                // one; then the request is ended, if it still runs (a no-op once the
                // body was read, or after the timer fired).
                clear_timeout(&f.timer);
                f.controller.abort();
            }
        }
    }

    /// Whether the platform has `AbortSignal.timeout` (a function on the global
    /// `AbortSignal`).
    fn has_abort_signal_timeout() -> bool {
        Reflect::get(&js_sys::global(), &JsValue::from_str("AbortSignal"))
            .ok()
            .filter(|c| c.is_object() || c.is_function())
            .and_then(|c| Reflect::get(&c, &JsValue::from_str("timeout")).ok())
            .is_some_and(|f| f.is_function())
    }

    fn prop(v: &JsValue, name: &str) -> Option<String> {
        Reflect::get(v, &JsValue::from_str(name))
            .ok()
            .and_then(|s| s.as_string())
    }

    /// `name: message` of a thrown JS value (an `Error` or `DOMException`), or its text.
    pub(super) fn message(e: &JsValue) -> String {
        match (prop(e, "name"), prop(e, "message"), e.as_string()) {
            (Some(n), Some(m), _) => format!("{n}: {m}"),
            (_, Some(m), _) | (_, _, Some(m)) => m,
            _ => "unknown error".to_owned(),
        }
    }

    /// Maps a rejected `fetch` or body read: the timeout signal's `TimeoutError` (or an
    /// `AbortError`) is [`ClientError::Timeout`]; anything else is a network error. The
    /// URL, which may carry a URL-path token, is never part of the message.
    pub(super) fn network(e: JsValue) -> ClientError {
        match prop(&e, "name").as_deref() {
            Some("TimeoutError" | "AbortError") => ClientError::Timeout,
            _ => {
                // node's fetch says only "fetch failed"; its cause names the reason.
                let cause = Reflect::get(&e, &JsValue::from_str("cause"))
                    .ok()
                    .filter(|c| !c.is_undefined() && !c.is_null());
                match cause {
                    Some(c) => ClientError::Network(format!("{} ({})", message(&e), message(&c))),
                    None => ClientError::Network(message(&e)),
                }
            }
        }
    }

    /// Reads a response body's stream to the end, or until it would pass `max` bytes: then
    /// the stream is cancelled and the answer refused ([`SendError::TooLarge`]).
    pub(super) async fn read_capped(
        stream: web_sys::ReadableStream,
        max: usize,
    ) -> Result<Vec<u8>, SendError> {
        use wasm_bindgen_futures::JsFuture;

        let reader = web_sys::ReadableStreamDefaultReader::new(&stream).map_err(network)?;
        let mut body = Vec::new();
        loop {
            let step = JsFuture::from(reader.read()).await.map_err(network)?;
            let done = Reflect::get(&step, &JsValue::from_str("done")).map_err(network)?;
            if done.is_truthy() {
                return Ok(body);
            }
            let chunk: js_sys::Uint8Array = Reflect::get(&step, &JsValue::from_str("value"))
                .map_err(network)?
                .unchecked_into();
            let n = chunk.length() as usize;
            if body.len() + n > max {
                // Closes the connection. Nothing waits for it, but its promise is awaited
                // in the background so that a rejection is handled.
                let cancelled = JsFuture::from(reader.cancel());
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = cancelled.await;
                });
                return Err(SendError::TooLarge(max));
            }
            let start = body.len();
            body.resize(start + n, 0);
            chunk.copy_to(&mut body[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_form_encoded_like_reqwest() {
        let r = Request::new(Method::Get, "http://x/a".into())
            .query(&[("nonce", "ab 1"), ("deviceId", "å/&=+~")]);
        assert_eq!(
            r.url,
            "http://x/a?nonce=ab+1&deviceId=%C3%A5%2F%26%3D%2B%7E"
        );
        let r = Request::new(Method::Get, "http://x/a?b=1".into()).query(&[("rve", "R1")]);
        assert_eq!(r.url, "http://x/a?b=1&rve=R1");
    }

    /// The same encoding as reqwest's (the url crate's form serializer).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn query_matches_the_url_crate() {
        let r = Request::new(Method::Get, "http://x/a".into())
            .query(&[("nonce", "ab 1"), ("deviceId", "å/&=+~")]);
        let mut u = reqwest::Url::parse("http://x/a").unwrap();
        u.query_pairs_mut()
            .append_pair("nonce", "ab 1")
            .append_pair("deviceId", "å/&=+~");
        assert_eq!(u.as_str(), r.url);
    }

    #[test]
    fn urls_are_redacted_for_debug() {
        let cases = [
            ("https://pos.example/api", "https://pos.example/api"),
            (
                "https://pos.example/OpenApi_1,2$R20240101000000$$Secr3t/Products?rve=1",
                "https://pos.example/OpenApi_1,2$R20240101000000$$<redacted>/Products?rve=1",
            ),
            (
                "https://pos.example/OpenApi_1%24%24Secr3t",
                "https://pos.example/OpenApi_1%24%24<redacted>",
            ),
            (
                "https://pos.example/OpenApi_1$%24Secr3t?x=1",
                "https://pos.example/OpenApi_1$%24<redacted>?x=1",
            ),
            (
                "http://till:Secr3t@pos.example:8080/OpenApi_1$$Secr3t",
                "http://till:<redacted>@pos.example:8080/OpenApi_1$$<redacted>",
            ),
            (
                "http://till@pos.example/a@b:c",
                "http://till@pos.example/a@b:c",
            ),
            ("https://pos.example/$", "https://pos.example/$"),
            (
                "https://pos.example/a$$",
                "https://pos.example/a$$<redacted>",
            ),
            ("not a url $$Secr3t", "not a url $$<redacted>"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn request_debug_hides_the_credentials() {
        let r = Request::new(
            Method::Post,
            "https://pos.example/OpenApi_1$$UrlT0ken/activations/renew".into(),
        )
        .authorization("Bearer Abcdefghij0123456789key".into())
        .header("idempotency-key", "receipt-1")
        .json(&serde_json::json!({"descriptor": "a.b.c"}))
        .unwrap();
        for dbg in [format!("{r:?}"), format!("{r:#?}")] {
            assert!(!dbg.contains("Abcdefghij0123456789key"), "{dbg}");
            assert!(!dbg.contains("UrlT0ken"), "{dbg}");
            assert!(dbg.contains("<redacted>"), "{dbg}");
            assert!(!dbg.contains("receipt-1"), "{dbg}");
            assert!(dbg.contains("idempotency-key"), "{dbg}");
            assert!(dbg.contains("Post"), "{dbg}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn base_urls() {
        assert!(check_base_url("https://pos.example/prefix").is_ok());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("not a url").is_err());
    }
}
