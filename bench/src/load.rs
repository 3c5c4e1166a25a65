//! A small HTTP/1.1 load generator: N clients, one keep-alive connection each, each
//! sending its next request as soon as the previous answer is read (closed loop, like
//! `wrk`). Bounded in time and in requests per client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What each request is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `GET <path>` with `Authorization: Bearer <key>`.
    Get {
        /// Path to request.
        path: String,
    },
    /// `POST /transactions` with a fresh `Idempotency-Key` and `body`.
    PostTx {
        /// The JSON body.
        body: Bytes,
        /// Makes idempotency keys unique across runs on one database.
        run: String,
    },
}

/// A load to apply.
#[derive(Debug, Clone)]
pub struct Load {
    /// Server address.
    pub addr: SocketAddr,
    /// Concurrent clients (connections).
    pub clients: usize,
    /// Measured duration.
    pub duration: Duration,
    /// Most requests per client.
    pub max_per_client: u64,
    /// Request kind.
    pub kind: Kind,
    /// API keys; client `i` uses key `(i + n * clients) % len` for its `n`th request.
    pub keys: Arc<Vec<String>>,
}

/// What a load produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// 2xx answers.
    pub ok: u64,
    /// 2xx answers including the warm-up.
    pub all_ok: u64,
    /// Other answers and I/O errors.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Wall time of the measured phase, seconds.
    pub secs: f64,
    /// Latency of every 2xx answer, microseconds.
    pub lat_us: Vec<u32>,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Latency percentile in milliseconds (`q` in 0..=1).
    pub fn pct_ms(&self, q: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let mut v = self.lat_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        f64::from(v[i.min(v.len() - 1)]) / 1000.0
    }

    /// Adds another outcome measured over the same wall time (clients of one load).
    fn absorb(&mut self, o: Outcome) {
        self.ok += o.ok;
        self.all_ok += o.all_ok;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.lat_us.extend(o.lat_us);
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(load: &Load, client: usize, n: u64) -> Result<Request<Full<Bytes>>, String> {
    let key = &load.keys[(client + n as usize * load.clients) % load.keys.len()];
    let auth = format!("Bearer {key}");
    let host = load.addr.to_string();
    let r = match &load.kind {
        Kind::Get { path } => Request::get(path.as_str())
            .header("host", host)
            .header("authorization", auth)
            .body(Full::new(Bytes::new())),
        Kind::PostTx { body, run } => Request::post("/transactions")
            .header("host", host)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("{run}-{client}-{n}"))
            .body(Full::new(body.clone())),
    };
    r.map_err(|e| e.to_string())
}

async fn client(load: Arc<Load>, i: usize, start: Instant, deadline: Instant) -> Outcome {
    let mut out = Outcome::default();
    let mut sender = match connect(load.addr).await {
        Ok(s) => s,
        Err(e) => {
            out.errors += 1;
            out.first_error = Some(e);
            return out;
        }
    };
    let mut n = 0u64;
    while n < load.max_per_client && Instant::now() < deadline {
        let req = match request(&load, i, n) {
            Ok(r) => r,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
                break;
            }
        };
        n += 1;
        let t = Instant::now();
        let result = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        }
        .await;
        match result {
            Ok((status, _)) if status.is_success() => {
                out.all_ok += 1;
                if t >= start {
                    out.ok += 1;
                    out.lat_us
                        .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
            }
            Ok((status, body)) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| {
                    format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
                match connect(load.addr).await {
                    Ok(s) => sender = s,
                    Err(_) => break,
                }
            }
        }
    }
    out
}

/// Applies `load` after `warmup` (not counted) and returns what the measured part did.
pub async fn run(load: Load, warmup: Duration) -> Outcome {
    let load = Arc::new(load);
    let start = Instant::now() + warmup;
    let deadline = start + load.duration;
    let tasks: Vec<_> = (0..load.clients)
        .map(|i| tokio::spawn(client(load.clone(), i, start, deadline)))
        .collect();
    let mut total = Outcome::default();
    // Every client stops at the deadline; allow generous slack for the last answers.
    let hard = deadline + Duration::from_secs(30);
    for t in tasks {
        match tokio::time::timeout_at(hard.into(), t).await {
            Ok(Ok(o)) => total.absorb(o),
            Ok(Err(e)) => {
                total.errors += 1;
                total.first_error.get_or_insert(e.to_string());
            }
            Err(_) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert("client did not stop in time".into());
            }
        }
    }
    total.secs = Instant::now()
        .min(deadline)
        .saturating_duration_since(start)
        .as_secs_f64();
    // Requests that finish after the deadline still count; measure the wall time to
    // the last answer instead when it is later.
    total.secs = total.secs.max(load.duration.as_secs_f64());
    total
}

/// `GET path` once (no credentials); the body as text.
pub async fn get_text(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut sender = connect(addr).await?;
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| format!("GET {path} timed out"))?
        .map_err(|e| e.to_string())?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// (transactions committed, batches committed) from the server's `/metrics`.
pub async fn commit_counters(addr: SocketAddr) -> Option<(f64, f64)> {
    let text = get_text(addr, "/metrics").await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((
        value("tillgate_transactions_committed_total")?,
        value("tillgate_batches_committed_total")?,
    ))
}
