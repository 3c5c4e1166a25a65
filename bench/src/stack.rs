//! The server's request stack in-process, without sockets: `tillgate_server::app` called
//! as a tower service with a ready-made request, against a bare axum `Router` with one
//! constant route called the same way. What the handshake costs in user space, free of
//! the kernel's TCP work and of the load generator (which share the 2 cores in the
//! HTTP rows). Informational rows; no goal.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::micro::median;

/// Median ns per request (of `rounds` rounds of `round` each) for each route of the
/// server (`/auth/handshake`, `/healthz`) and for the bare router, interleaved.
pub struct StackCost {
    /// `GET /auth/handshake` through `tillgate_server::app`, authenticated by API key.
    pub handshake_ns: f64,
    /// `GET /healthz` through `tillgate_server::app`.
    pub healthz_ns: f64,
    /// A bare axum `Router` answering a constant body of the handshake's size.
    pub bare_ns: f64,
}

/// A service answering axum requests, as `tillgate_server::App` and a bare `Router` are.
trait AxumService:
    tower::Service<
        Request<Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
{
}

impl<S> AxumService for S where
    S: tower::Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone
{
}

async fn call<S: AxumService>(svc: &S, path: &str, key: Option<&str>) -> Result<usize, String> {
    let mut req = Request::get(path);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let mut req = req.body(Body::empty()).map_err(|e| e.to_string())?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let Ok(resp) = svc.clone().oneshot(req).await;
    if !resp.status().is_success() {
        return Err(format!("{path}: {}", resp.status()));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes().len())
}

async fn per_request<S: AxumService>(
    svc: &S,
    path: &str,
    key: Option<&str>,
    round: Duration,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < round {
        for _ in 0..64 {
            call(svc, path, key).await?;
        }
        n += 64;
    }
    Ok(start.elapsed().as_nanos() as f64 / n as f64)
}

/// Measures on a fresh SQLite data dir under `work` with one approved register.
pub async fn measure(work: &Path, rounds: usize, round: Duration) -> Result<StackCost, String> {
    let dir = work.join("stack");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("tillgate.db").display());
    crate::db::prepare_server_db(&url).await?;
    let pool = crate::db::open(&url, 1).await?;
    let keys = crate::db::seed_registers(&pool, 1).await?;
    pool.close().await;
    let key = keys.first().ok_or("no register seeded")?.clone();

    let mut config = tillgate_server::Config::with_defaults(dir.clone());
    config.admin_key = Some(crate::procs::ADMIN_KEY.into());
    let (state, _) =
        tillgate_server::AppState::start(config, Arc::new(tillgate_server::SystemClock)).await?;
    let app = tillgate_server::app(state);
    let bare = crate::procs::bare_router();

    // Warm-up, and a check that each answers 200.
    let warm = round / 4;
    per_request(&app, "/auth/handshake", Some(&key), warm).await?;
    // For instruction counts of the handshake alone (valgrind --tool=callgrind
    // --toggle-collect='<tillgate_server::App*'): BENCH_STACK_ONLY_HANDSHAKE=1.
    if std::env::var_os("BENCH_STACK_ONLY_HANDSHAKE").is_some() {
        let ns = per_request(&app, "/auth/handshake", Some(&key), round).await?;
        return Ok(StackCost {
            handshake_ns: ns,
            healthz_ns: f64::NAN,
            bare_ns: f64::NAN,
        });
    }
    per_request(&app, "/healthz", None, warm).await?;
    per_request(&bare, "/auth/handshake", None, warm).await?;
    let (mut h, mut z, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        h.push(per_request(&app, "/auth/handshake", Some(&key), round).await?);
        b.push(per_request(&bare, "/auth/handshake", None, round).await?);
        z.push(per_request(&app, "/healthz", None, round).await?);
    }
    Ok(StackCost {
        handshake_ns: median(h),
        healthz_ns: median(z),
        bare_ns: median(b),
    })
}
