//! Test harness: a real server on an ephemeral port, on SQLite or on an isolated
//! PostgreSQL schema.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Client, Response};
use serde_json::{Value, json};
use tillgate_server::{AppState, Config, ManualClock, app};

pub const ADMIN_KEY: &str = "Admin-Key-For-Tests-0123456789";
/// 2030-01-01T00:00:00Z
pub const T2030: i64 = 1_893_456_000;
pub const DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        t % 1_000_000_000,
        n
    )
}

/// A database for one test: a fresh SQLite file, or a fresh schema on the test
/// PostgreSQL ([`pg_url`]; dropped on drop). `None` when PostgreSQL cannot be used and
/// `TILLGATE_REQUIRE_PG` is not `1`: the skip is reported by [`report_skip`].
pub struct TestDb {
    pub url: String,
    pub dir: Option<std::path::PathBuf>,
    schema: Option<(String, String)>,
}

/// The PostgreSQL the tests use: `$TILLGATE_TEST_PG_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test` (trust auth). Each test works in a schema of
/// its own there and drops it.
pub fn pg_url() -> String {
    std::env::var("TILLGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether a PostgreSQL that cannot be used fails the test instead of skipping it
/// (`TILLGATE_REQUIRE_PG=1`; scripts/test.sh sets it on CI).
pub fn pg_required() -> bool {
    std::env::var("TILLGATE_REQUIRE_PG").is_ok_and(|v| v.trim() == "1")
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Where skipped tests are listed: `$TILLGATE_SKIP_LOG` (scripts/test.sh sets it and
/// counts the lines in its summary), else `target/test-logs/skips.txt` of the workspace.
pub fn skip_log() -> std::path::PathBuf {
    match std::env::var_os("TILLGATE_SKIP_LOG") {
        Some(p) if !p.is_empty() => p.into(),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs/skips.txt"),
    }
}

/// Reports a test that did not run its checks: a `SKIP` line on stderr (written around
/// libtest's capture, so it shows for a passing test too) and appended to [`skip_log`].
pub fn report_skip(test: &str, reason: &str) {
    let line = format!("SKIP {}::{test}: {reason}", env!("CARGO_CRATE_NAME"));
    // Straight to stderr, not through eprintln!: libtest captures that for a passing test.
    {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    let path = skip_log();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        use std::io::Write as _;
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// PostgreSQL cannot be used for `test`: a failure under `TILLGATE_REQUIRE_PG=1`, else a
/// reported skip.
fn pg_unavailable(test: &str, reason: &str) {
    assert!(
        !pg_required(),
        "{test} [postgres]: PostgreSQL is required (TILLGATE_REQUIRE_PG=1) but cannot be \
         used: {reason}"
    );
    report_skip(&format!("{test} [postgres]"), reason);
}

/// Connects to [`pg_url`] (10 s at most); `Err` says why it cannot be used (nothing
/// listening, login refused, no such database, ...).
async fn pg_admin_url() -> Result<String, String> {
    sqlx::any::install_default_drivers();
    let url = pg_url();
    let shown = redact(&url);
    let connect = <sqlx::AnyConnection as sqlx::Connection>::connect(&url);
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            Ok(url)
        }
        Ok(Err(e)) => Err(format!(
            "cannot use PostgreSQL at {shown} (TILLGATE_TEST_PG_URL): {e}"
        )),
        Err(_) => Err(format!(
            "no answer from PostgreSQL at {shown} (TILLGATE_TEST_PG_URL) within 10 s"
        )),
    }
}

impl TestDb {
    pub async fn new(backend: Backend, test: &str) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(unique("tillgate_test"));
                std::fs::create_dir_all(&dir).unwrap();
                Some(TestDb {
                    url: format!("sqlite://{}?mode=rwc", dir.join("t.db").display()),
                    dir: Some(dir),
                    schema: None,
                })
            }
            Backend::Postgres => {
                let base = match pg_admin_url().await {
                    Ok(base) => base,
                    Err(reason) => {
                        pg_unavailable(test, &reason);
                        return None;
                    }
                };
                let schema = unique("tg").to_lowercase();
                let pool = sqlx::AnyPool::connect(&base).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                Some(TestDb {
                    url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    dir: None,
                    schema: Some((base, schema)),
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((base, schema)) = self.schema.take() {
            // Drop the schema on a separate runtime: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(pool) = sqlx::AnyPool::connect(&base).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA {schema} CASCADE"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn test_config(url: &str) -> Config {
    let mut c = Config::with_defaults(std::env::temp_dir());
    c.database_url = Some(url.to_owned());
    c.admin_key = Some(ADMIN_KEY.into());
    c.activation_rate_per_minute = 0;
    c.auth_failure_rate_per_minute = 0;
    c.db_pool_size = 4;
    c
}

/// A running server.
pub struct Srv {
    pub base: String,
    pub clock: ManualClock,
    pub state: AppState,
    pub http: Client,
    pub backend: Backend,
    _task: tokio::task::JoinHandle<()>,
}

impl Srv {
    pub async fn start_with(
        db: &TestDb,
        backend: Backend,
        clock: ManualClock,
        config: Config,
    ) -> Srv {
        let (state, _started) = AppState::start(config, Arc::new(clock.clone()))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>(router),
            )
            .await
            .unwrap();
        });
        let _ = db;
        Srv {
            base: format!("http://{addr}"),
            clock,
            state,
            http: Client::new(),
            backend,
            _task: task,
        }
    }

    pub async fn start(db: &TestDb, backend: Backend) -> Srv {
        Self::start_with(
            db,
            backend,
            ManualClock::new(T2030 + 3600),
            test_config(&db.url),
        )
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn activate(&self, body: Value) -> Response {
        self.http
            .post(self.url("/activations-advanced"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Activates with defaults (period 2030-01-01 .. 2030-07-01) and returns the answer.
    pub async fn activate_ok(&self, corporate_id: &str, device: &str) -> Value {
        let r = self
            .activate(activation_body(
                corporate_id,
                device,
                "2030-01-01T00:00:00Z",
                "2030-07-01T00:00:00Z",
            ))
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    pub async fn admin(&self, action: &str, id: &str) -> Response {
        self.http
            .post(self.url(&format!("/admin/activations/{id}/{action}")))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"decidedBy": "tester", "note": "ok"}))
            .send()
            .await
            .unwrap()
    }

    /// Activates and approves; returns (activation json, api key).
    pub async fn register(&self, corporate_id: &str, device: &str) -> (Value, String) {
        let a = self.activate_ok(corporate_id, device).await;
        let id = a["activationId"].as_str().unwrap().to_owned();
        assert_eq!(self.admin("approve", &id).await.status(), 200);
        let key = a["apiKey"].as_str().unwrap().to_owned();
        (a, key)
    }

    /// `GET path` without credentials (or with the URL-path token in it), as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET path` with the key as a bearer token, as JSON (the status must be 200).
    pub async fn get_json_as(&self, path: &str, key: &str) -> Value {
        let r = self.get(path, key).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_tx(&self, key: &str, idem: &str, body: &Value) -> Response {
        self.http
            .post(self.url("/transactions"))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

pub fn activation_body(corp: &str, device: &str, from: &str, to: &str) -> Value {
    json!({
        "cashRegisterName": "Kassa 1",
        "deviceId": device,
        "validFrom": from,
        "validTo": to,
        "corporateId": corp,
        "applicationPackage": "com.example.pos",
        "extras": {"shop": 7}
    })
}

pub fn sale(total: i64) -> Value {
    json!({"type": "sale", "currency": "SEK", "total": total,
           "vat": [{"rate": 2500, "amount": total / 5}],
           "items": [{"name": "Kaffe", "quantity": 1, "amount": total}]})
}

/// Asserts a problem+json answer with this status and code; returns the body.
pub async fn problem(r: Response, status: u16, code: &str) -> Value {
    let got = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (got, body["code"].as_str().unwrap_or("")),
        (status, code),
        "body: {body}"
    );
    assert_eq!(ct, "application/problem+json");
    body
}

/// Two Swedish organisation numbers with valid check digits.
pub const CORP_A: &str = "556036-0793";
pub const CORP_B: &str = "5560360785";

/// Defines each listed test twice: `sqlite::<name>` and `postgres::<name>` (skipped, and
/// reported, when PostgreSQL cannot be used and `TILLGATE_REQUIRE_PG` is not `1`), calling
/// `<name>(&TestDb, Backend)`.
#[allow(unused_macros)] // server_ops.rs shares this module without using the macro.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let db = super::TestDb::new(super::Backend::Sqlite, stringify!($name)).await.unwrap();
                super::$name(&db, super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = super::TestDb::new(super::Backend::Postgres, stringify!($name)).await else { return };
                super::$name(&db, super::Backend::Postgres).await;
            })*
        }
    };
}

/// Writes a stored transaction row back as it was (tests that tamper with the database
/// put rows back with it).
pub async fn insert_tx_row(pool: &sqlx::AnyPool, r: &tillgate_server::db::TxRow) {
    sqlx::query(
        "INSERT INTO transactions (id, activation_id, idempotency_key, seq, created_at, \
         body, txh, receipt, rve) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&r.id)
    .bind(&r.activation_id)
    .bind(&r.idempotency_key)
    .bind(r.seq)
    .bind(r.created_at)
    .bind(&r.body)
    .bind(&r.txh)
    .bind(&r.receipt)
    .bind(r.rve)
    .execute(pool)
    .await
    .unwrap();
}

/// Sets a register's chain head in the database to `seq` and the link of `receipt` (and
/// its newest version to that of the row stored at `seq`, 0 if none).
pub async fn set_chain_head(pool: &sqlx::AnyPool, activation_id: &str, seq: i64, receipt: &str) {
    sqlx::query(
        "UPDATE activations SET chain_seq = $1, chain_head = $2, chain_rve = COALESCE(\
         (SELECT rve FROM transactions WHERE activation_id = $3 AND seq = $1), 0) WHERE id = $3",
    )
    .bind(seq)
    .bind(tillgate_core::receipt_link(receipt))
    .bind(activation_id)
    .execute(pool)
    .await
    .unwrap();
}
