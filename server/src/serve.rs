//! The HTTP server loop and request timeouts: what keeps a slow client from holding a
//! connection or a request forever.
//!
//! * [`serve`] accepts connections itself (instead of `axum::serve`) so that hyper's
//!   header read timeout can be set: a connection that has not sent a complete request
//!   head within it — a new connection, or an idle keep-alive one — is closed.
//! * [`request_timeout`] bounds a whole request (reading the body and handling it): 408
//!   `request_timeout` when the client had not finished sending the body, else 503
//!   `handler_timeout` (the server was too slow; a retry may succeed — for
//!   `POST /transactions` with the same `Idempotency-Key`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as _, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::error::AppError;
use crate::state::AppState;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (idle connections are closed at once) and returns.
///
/// Each connection gets `ConnectInfo<SocketAddr>` (the client address for rate limits) and
/// hyper's header read timeout `header_read_timeout`. `app` is normally [`crate::app`];
/// any service answering axum requests works (the benchmarks serve a bare router with it).
pub async fn serve<S, F>(
    listener: TcpListener,
    app: S,
    header_read_timeout: Duration,
    shutdown: F,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors and the like: back off, as axum::serve does.
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = app.clone();
        let service = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(req.map(Body::new))
        });
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Most bytes of an oversized body read and thrown away before the 413 answer, and for
/// how long: a client still sending its body then reads the answer instead of a reset
/// connection (closing a socket with unread data resets it). Larger bodies are refused
/// at once.
const DRAIN_MAX_BYTES: u64 = 4 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(2);

/// Refuses a request whose `Content-Length` is over `--max-body-bytes` with 413
/// `payload_too_large` (and `Connection: close`), after draining a body of up to
/// [`DRAIN_MAX_BYTES`]; passes every other request on.
pub async fn refuse_oversized(state: &AppState, req: Request) -> Result<Request, Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(len) = declared.filter(|len| *len > state.config.max_body_bytes as u64) else {
        return Ok(req);
    };
    if len <= DRAIN_MAX_BYTES {
        let mut body = req.into_body();
        let drain = async {
            while let Some(Ok(_)) =
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {}
        };
        let _ = tokio::time::timeout(DRAIN_MAX_TIME, drain).await;
    }
    let mut resp = AppError::payload_too_large().into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Err(resp)
}

/// Caps a body still to come at `--max-body-bytes` (a chunked body has no
/// `Content-Length` for [`refuse_oversized`] to check): reading past the cap fails, which
/// the body extractors answer with 413 `payload_too_large`. A bodiless request passes
/// untouched, so the router needs no body-limit layer costing every request.
pub fn limit_body(state: &AppState, req: Request) -> Request {
    if req.body().is_end_stream() {
        return req;
    }
    let max = state.config.max_body_bytes;
    req.map(|body| Body::new(http_body_util::Limited::new(body, max)))
}

/// Runs `handle` on `req` within `--request-timeout-secs`: answers 408
/// `request_timeout` or 503 `handler_timeout` (problem+json) when it takes longer.
pub async fn request_timeout<F, Fut>(state: &AppState, req: Request, handle: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let limit = Duration::from_secs(state.config.request_timeout_secs.max(1));
    // A request without a body (GET, Content-Length: 0) has been received in full; only
    // a body still to come needs watching.
    let receiving = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
    let req = match &receiving {
        None => req,
        Some(done) => req.map(|body| {
            Body::new(TrackedBody {
                inner: body,
                done: done.clone(),
            })
        }),
    };
    match tokio::time::timeout(limit, handle(req)).await {
        Ok(resp) => resp,
        Err(_) if receiving.is_some_and(|done| !done.load(Ordering::Acquire)) => {
            let mut resp = AppError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request was not received within {} s", limit.as_secs()),
            )
            .into_response();
            // The rest of the body may never come: do not keep the connection.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Err(_) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "handler_timeout",
            format!(
                "the request was not handled within {} s; retry later",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// A request body that records when it has been read to the end (or had none).
struct TrackedBody {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.done.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
