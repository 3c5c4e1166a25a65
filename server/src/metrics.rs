//! Prometheus metrics, kept with atomics and rendered as text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;

/// The metrics label of a method (methods outside the standard set count as `OTHER`).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Upper bounds of the request-duration histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Request counts of one route by (method, status).
type ByMethodStatus = BTreeMap<(&'static str, u16), u64>;

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Route -> (method, status) -> count; looked up without allocating.
    requests: Mutex<BTreeMap<String, ByMethodStatus>>,
    /// Requests by the first bucket they fall in (not cumulative; rendered cumulative).
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
    problems: Mutex<BTreeMap<&'static str, u64>>,
    /// Transactions committed (new, not replays).
    pub transactions_committed: AtomicU64,
    /// Idempotent replays answered from storage.
    pub transactions_replayed: AtomicU64,
    /// Transactions refused at commit: the registration or key changed after the request
    /// was authenticated (a decision or renewal through another server, seen late).
    pub transactions_refused: AtomicU64,
    /// Product changes refused at commit, for the same reasons.
    pub product_changes_refused: AtomicU64,
    /// Group-commit batches written.
    pub batches_committed: AtomicU64,
    /// Batches that failed to commit.
    pub batches_failed: AtomicU64,
    /// Activations created.
    pub activations_created: AtomicU64,
    /// Activations repeated with their `Idempotency-Key` (a key issued again).
    pub activations_repeated: AtomicU64,
    /// Failed authentications.
    pub auth_failures: AtomicU64,
    /// Requests refused by a rate limit.
    pub rate_limited: AtomicU64,
}

impl Metrics {
    /// Counts one request.
    pub fn observe_request(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            let key = (method_label(method), status);
            match m.get_mut(route) {
                Some(by) => *by.entry(key).or_default() += 1,
                None => {
                    m.entry(route.to_owned()).or_default().insert(key, 1);
                }
            }
        }
        // One counter per request (the first bucket that holds it); `render` sums them.
        if let Some(i) = BUCKETS.iter().position(|le| seconds <= *le) {
            self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Counts one problem response by code.
    pub fn observe_problem(&self, code: &'static str) {
        if let Ok(mut m) = self.problems.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP tillgate_http_requests_total HTTP requests by method, route and status."
        );
        let _ = writeln!(out, "# TYPE tillgate_http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for (route, by) in m.iter() {
                let route = route.replace('\\', "\\\\").replace('"', "\\\"");
                for ((method, status), n) in by {
                    let _ = writeln!(
                        out,
                        "tillgate_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP tillgate_http_request_duration_seconds HTTP request latency."
        );
        let _ = writeln!(
            out,
            "# TYPE tillgate_http_request_duration_seconds histogram"
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "tillgate_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.duration_buckets[..=i]
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .sum::<u64>()
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "tillgate_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "tillgate_http_request_duration_seconds_sum {}",
            self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "tillgate_http_request_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP tillgate_problems_total Problem responses by code."
        );
        let _ = writeln!(out, "# TYPE tillgate_problems_total counter");
        if let Ok(m) = self.problems.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "tillgate_problems_total{{code=\"{code}\"}} {n}");
            }
        }
        for (name, help, v) in [
            (
                "tillgate_transactions_committed_total",
                "Transactions committed.",
                &self.transactions_committed,
            ),
            (
                "tillgate_transactions_replayed_total",
                "Idempotent transaction replays.",
                &self.transactions_replayed,
            ),
            (
                "tillgate_transactions_refused_total",
                "Transactions refused at commit: registration no longer approved, key replaced, or staff \
                 login disabled, moved or given another key, since the request was authenticated.",
                &self.transactions_refused,
            ),
            (
                "tillgate_product_changes_refused_total",
                "Product changes refused at commit: registration no longer approved, key replaced, or \
                 staff login disabled, moved or given another key, since the request was authenticated.",
                &self.product_changes_refused,
            ),
            (
                "tillgate_batches_committed_total",
                "Group-commit batches committed.",
                &self.batches_committed,
            ),
            (
                "tillgate_batches_failed_total",
                "Group-commit batches that failed.",
                &self.batches_failed,
            ),
            (
                "tillgate_activations_created_total",
                "Activations created.",
                &self.activations_created,
            ),
            (
                "tillgate_activations_repeated_total",
                "Activations repeated with their Idempotency-Key: the pending registration's API key issued again.",
                &self.activations_repeated,
            ),
            (
                "tillgate_auth_failures_total",
                "Failed authentications.",
                &self.auth_failures,
            ),
            (
                "tillgate_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

tokio::task_local! {
    /// The matched route of the request being handled: set by [`RouteLabelService`],
    /// read back by [`with_route_label`].
    static ROUTE: Cell<Option<MatchedPath>>;
}

/// Runs `handling` (one request's) with a slot for its matched route, and returns its
/// output with the route as written in the router (`/transactions/{id}`), `None` when
/// no route matched. A task-local slot rather than a response extension, which would
/// allocate a map for every response; a hand-written future rather than an `async` block,
/// which would hold `handling` twice (it is large: the whole request's handling).
pub fn with_route_label<F: Future>(
    handling: F,
) -> impl Future<Output = (F::Output, Option<MatchedPath>)> {
    ROUTE.scope(Cell::new(None), WithRouteLabel { handling })
}

pin_project_lite::pin_project! {
    /// The future of [`with_route_label`], run inside the task-local scope.
    struct WithRouteLabel<F> {
        #[pin]
        handling: F,
    }
}

impl<F: Future> Future for WithRouteLabel<F> {
    type Output = (F::Output, Option<MatchedPath>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = ready!(self.project().handling.poll(cx));
        Poll::Ready((out, ROUTE.with(Cell::take)))
    }
}

/// A route layer that records the matched route for [`with_route_label`].
/// Hand-written rather than `from_fn`, which clones and boxes per request.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabelLayer;

impl<S> tower::Layer<S> for RouteLabelLayer {
    type Service = RouteLabelService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteLabelService(inner)
    }
}

/// The service of [`RouteLabelLayer`].
#[derive(Debug, Clone)]
pub struct RouteLabelService<S>(S);

impl<S, B> tower::Service<Request<B>> for RouteLabelService<S>
where
    S: tower::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Outside `with_route_label` (the router served on its own) there is no slot.
        let _ = ROUTE.try_with(|r| r.set(req.extensions().get::<MatchedPath>().cloned()));
        self.0.call(req)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_rendered_cumulative() {
        let m = Metrics::default();
        for s in [0.0005, 0.001, 0.003, 2.0, 9.0] {
            m.observe_request(&Method::GET, "/healthz", 200, s);
        }
        let out = m.render();
        let bucket = |le: &str| {
            let prefix = format!("tillgate_http_request_duration_seconds_bucket{{le=\"{le}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap()
                .to_owned()
        };
        assert_eq!(bucket("0.001"), "2");
        assert_eq!(bucket("0.0025"), "2");
        assert_eq!(bucket("0.005"), "3");
        assert_eq!(bucket("1"), "3");
        assert_eq!(bucket("5"), "4");
        assert_eq!(bucket("+Inf"), "5");
    }
}
