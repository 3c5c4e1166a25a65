//! # tillgate-reliability
//!
//! Reliability and security checks that drive the **real `tillgate-server` binary** (a
//! child process on a free loopback port) the way an operator runs it: crash safety under
//! SIGKILL, load, tenancy and other security properties, and cross-checks of the
//! server's signatures. The tests are `#[ignore]`d in a plain `cargo test --workspace`
//! because they need a release build of the server; `scripts/test-reliability.sh` builds
//! it and runs them with `--ignored`.
//!
//! The binary is `$TILLGATE_SERVER_BIN`, or `target/release/tillgate-server` of this
//! workspace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The admin key every test server is started with.
pub const ADMIN_KEY: &str = "Reliability-Admin-Key-0123456789";
/// A valid Swedish organisation number (company A).
pub const CORP_A: &str = "556036-0793";
/// Another valid one (company B).
pub const CORP_B: &str = "5560360785";
/// Seconds per day.
pub const DAY: i64 = 86_400;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A name unique to this process and call: `<prefix>_<pid>_<nanos>_<n>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{t}_{n}", std::process::id())
}

/// A small deterministic PRNG (splitmix64) for kill timings and test data; the seed is
/// printed so a run can be repeated.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From `$TILLGATE_RELIABILITY_SEED`, else from the OS RNG.
    pub fn from_env() -> Rng {
        let seed = std::env::var("TILLGATE_RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                let _ = getrandom::fill(&mut b);
                u64::from_le_bytes(b)
            });
        Rng(seed)
    }
    /// The current state (print it before drawing to make a run repeatable).
    pub fn seed(&self) -> u64 {
        self.0
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// The server binary under test.
pub fn server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TILLGATE_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/tillgate-server");
    assert!(
        p.exists(),
        "{} not found: run `cargo build --release -p tillgate-server` or set TILLGATE_SERVER_BIN",
        p.display()
    );
    p
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Where the server keeps its data.
#[derive(Debug)]
pub enum Storage {
    /// A fresh SQLite data directory (removed on drop).
    Sqlite(PathBuf),
    /// A fresh PostgreSQL database (dropped on drop).
    Postgres {
        /// The `postgres://` URL of the maintenance database (`test`).
        admin_url: String,
        /// The database created for this run.
        db: String,
    },
}

/// The PostgreSQL the tests use (its maintenance database; each run creates and drops a
/// database of its own there): `$TILLGATE_TEST_PG_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test` (trust auth).
pub fn pg_url() -> String {
    std::env::var("TILLGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether a PostgreSQL that cannot be used fails a test instead of skipping it
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
pub fn skip_log() -> PathBuf {
    match std::env::var_os("TILLGATE_SKIP_LOG") {
        Some(p) if !p.is_empty() => p.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-logs/skips.txt"),
    }
}

/// Reports a test that did not run its checks: a `SKIP <test>: <reason>` line on stderr
/// (written around libtest's capture; scripts/test-reliability.sh counts those lines) and
/// appended to [`skip_log`].
pub fn report_skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}");
    // Straight to stderr, not through eprintln!: libtest captures that for a passing test.
    {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    let path = skip_log();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = File::options().create(true).append(true).open(&path) {
        use std::io::Write as _;
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl Storage {
    /// A fresh SQLite data directory.
    pub fn sqlite() -> Storage {
        let dir = std::env::temp_dir().join(unique("tillgate_rel"));
        std::fs::create_dir_all(&dir).expect("create temp data dir");
        Storage::Sqlite(dir)
    }

    /// A fresh database on the test PostgreSQL ([`pg_url`]), or `Err(reason)` when it
    /// cannot be used (nothing listening, login refused, no such database, ...).
    pub fn postgres() -> Result<Storage, String> {
        let admin = pg_url();
        let shown = redact(&admin);
        psql(&admin, "SELECT 1")
            .map_err(|e| format!("cannot use PostgreSQL at {shown} (TILLGATE_TEST_PG_URL): {e}"))?;
        let db = unique("tg_rel").to_lowercase();
        psql(&admin, &format!("CREATE DATABASE {db}"))
            .map_err(|e| format!("cannot create a database on {shown}: {e}"))?;
        Ok(Storage::Postgres {
            admin_url: admin,
            db,
        })
    }

    /// [`Storage::postgres`] for `test`; when PostgreSQL cannot be used: a panic under
    /// `TILLGATE_REQUIRE_PG=1`, else `None` with the skip reported ([`report_skip`]).
    pub fn postgres_or_skip(test: &str) -> Option<Storage> {
        match Storage::postgres() {
            Ok(s) => Some(s),
            Err(reason) => {
                assert!(
                    !pg_required(),
                    "{test}: PostgreSQL is required (TILLGATE_REQUIRE_PG=1) but cannot be used: {reason}"
                );
                report_skip(test, &reason);
                None
            }
        }
    }

    /// The environment that points the server at this storage.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Storage::Sqlite(dir) => vec![
                ("TILLGATE_DATA_DIR".into(), dir.display().to_string()),
                ("DATABASE_URL".into(), String::new()),
            ],
            Storage::Postgres { admin_url, db } => {
                let (path, query) = admin_url
                    .split_once('?')
                    .map_or((admin_url.as_str(), ""), |(p, q)| (p, q));
                let base = path.rsplit_once('/').map_or("", |(b, _)| b);
                let query = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                };
                // Every process on this database gets the same key-encryption key, as an
                // operator configures replicas (each opens the signing keys the others
                // sealed); its own to this database, never a file shared by test runs.
                let kek = {
                    use base64::Engine as _;
                    use sha2::Digest as _;
                    let digest = sha2::Sha256::digest(format!("tillgate-reliability-kek:{db}"));
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
                };
                vec![
                    ("DATABASE_URL".into(), format!("{base}/{db}{query}")),
                    (
                        "TILLGATE_DATA_DIR".into(),
                        std::env::temp_dir().display().to_string(),
                    ),
                    ("TILLGATE_KEY_ENCRYPTION_KEY".into(), kek),
                ]
            }
        }
    }

    /// The SQLite data directory, if SQLite.
    pub fn sqlite_dir(&self) -> Option<&Path> {
        match self {
            Storage::Sqlite(d) => Some(d),
            Storage::Postgres { .. } => None,
        }
    }

    /// PostgreSQL: ends every connection to this run's database (`pg_terminate_backend`,
    /// as a failover or an operator would); returns how many there were. SQLite: `Err`.
    pub fn drop_connections(&self) -> Result<usize, String> {
        match self {
            Storage::Postgres { admin_url, db } => psql(
                admin_url,
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{db}' AND pid <> pg_backend_pid()"
                ),
            )?
            .trim()
            .parse()
            .map_err(|e| format!("pg_terminate_backend: {e}")),
            Storage::Sqlite(_) => Err("SQLite has no connections to drop".into()),
        }
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres { .. } => "postgres",
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Storage::Postgres { admin_url, db } => {
                let _ = psql(
                    admin_url,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                );
            }
        }
    }
}

/// A running `tillgate-server` child process. Its stdout and stderr go to one log file
/// (kept across restarts) so tests can scan what it logged. Killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    env: Vec<(String, String)>,
    child: Option<Child>,
    log_path: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// How many times the process was started.
    pub starts: u32,
}

impl ServerProcess {
    /// Starts the server on `storage` with the test admin key, rate limits off, and any
    /// `extra` environment; waits until `/healthz` answers.
    pub async fn start(storage: &Storage, extra: &[(&str, &str)]) -> ServerProcess {
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("TILLGATE_BIND".into(), format!("127.0.0.1:{port}")),
            ("TILLGATE_ADMIN_KEY".into(), ADMIN_KEY.into()),
            ("TILLGATE_ACTIVATION_RATE".into(), "0".into()),
            ("TILLGATE_AUTH_FAILURE_RATE".into(), "0".into()),
            ("RUST_LOG".into(), "info,sqlx=warn".into()),
        ];
        env.extend(storage.env());
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let log_path = std::env::temp_dir().join(format!("{}.log", unique("tillgate_rel_srv")));
        let mut s = ServerProcess {
            env,
            child: None,
            log_path,
            base: format!("http://127.0.0.1:{port}"),
            starts: 0,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        let mut cmd = Command::new(server_bin());
        cmd.env_remove("DATABASE_URL")
            .env_remove("TILLGATE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        for (k, v) in &self.env {
            if !v.is_empty() {
                cmd.env(k, v);
            }
        }
        self.child = Some(cmd.spawn().expect("spawn tillgate-server"));
        self.starts += 1;
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("tillgate-server exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "tillgate-server not ready after 30 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (no chance to clean up) and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (graceful shutdown) and wait up to 20 s; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts the process again on the same storage, port and settings.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Everything the process wrote to stdout and stderr so far (all starts).
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// An API client for this server.
    pub fn api(&self) -> Api {
        Api::new(&self.base)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// A registered, approved cash register.
#[derive(Debug, Clone)]
pub struct Reg {
    /// Activation id.
    pub id: String,
    /// API key.
    pub key: String,
    /// ProductionNumber.
    pub production_number: String,
    /// Company.
    pub corporate_id: String,
    /// Device id.
    pub device_id: String,
}

/// A thin HTTP client of the Tillgate API.
#[derive(Debug, Clone)]
pub struct Api {
    /// The reqwest client (shared connection pool).
    pub http: reqwest::Client,
    /// Base URL.
    pub base: String,
}

/// The validity period used by the tests: today's midnight UTC for 30 days (RFC 3339).
pub fn period() -> (String, String) {
    let today = unix_now() / DAY * DAY;
    (
        tillgate_core::format_rfc3339(today).expect("format date"),
        tillgate_core::format_rfc3339(today + 30 * DAY).expect("format date"),
    )
}

/// A valid activation request body.
pub fn activation_body(corp: &str, device: &str) -> Value {
    let (from, to) = period();
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

/// A sale of one item named `name` for `total` minor units with 25 % VAT.
pub fn sale(total: i64, name: &str) -> Value {
    json!({"type": "sale", "currency": "SEK", "total": total,
           "vat": [{"rate": 2500, "amount": total / 5}],
           "items": [{"name": name, "quantity": 1, "amount": total}]})
}

impl Api {
    /// A client for `base`.
    pub fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("reqwest client"),
            base: base.to_owned(),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /activations-advanced`; returns the 201 body.
    pub async fn activate(&self, corp: &str, device: &str) -> Value {
        let r = self
            .http
            .post(self.url("/activations-advanced"))
            .json(&activation_body(corp, device))
            .send()
            .await
            .expect("activate");
        assert_eq!(r.status(), 201, "activation refused: {:?}", r.text().await);
        r.json().await.expect("activation body")
    }

    /// An admin decision (`approve`, `reject`, `revoke`) on `id`.
    pub async fn decide(&self, id: &str, decision: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/admin/activations/{id}/{decision}")))
            .bearer_auth(ADMIN_KEY)
            .json(&if decision == "approve" {
                json!({"authorityNotifiedAt": tillgate_core::format_rfc3339(unix_now()), "note": "reliability test"})
            } else {
                json!({"note": "reliability test"})
            })
            .send()
            .await
            .expect("admin decision")
    }

    /// Activates and approves a register.
    pub async fn register(&self, corp: &str, device: &str) -> Reg {
        let a = self.activate(corp, device).await;
        let id = a["activationId"].as_str().expect("activationId").to_owned();
        let r = self.decide(&id, "approve").await;
        assert_eq!(r.status(), 200, "approve: {:?}", r.text().await);
        Reg {
            id,
            key: a["apiKey"].as_str().expect("apiKey").to_owned(),
            production_number: a["productionNumber"]
                .as_str()
                .expect("productionNumber")
                .to_owned(),
            corporate_id: a["corporateId"].as_str().unwrap_or(corp).to_owned(),
            device_id: device.to_owned(),
        }
    }

    /// `GET path` with `Authorization: Bearer key`.
    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET")
    }

    /// `POST /transactions` with `Idempotency-Key`.
    pub async fn post_tx(
        &self,
        key: &str,
        idem: &str,
        body: &Value,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .post(self.url("/transactions"))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(body)
            .send()
            .await
    }

    /// All of a register's transactions, following `nextAfterSequence`.
    pub async fn all_transactions(&self, key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0i64;
        for _ in 0..10_000 {
            let r = self
                .get(
                    &format!("/transactions?limit=1000&afterSequence={after}"),
                    key,
                )
                .await;
            assert_eq!(r.status(), 200);
            let page: Value = r.json().await.expect("transaction list");
            let items = page["items"].as_array().cloned().unwrap_or_default();
            out.extend(items);
            match page["nextAfterSequence"].as_i64() {
                Some(n) => after = n,
                None => break,
            }
        }
        out
    }

    /// The server's JWKS as trusted keys.
    pub async fn trusted_keys(&self) -> tillgate_core::TrustedKeys {
        let text = self
            .http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .text()
            .await
            .expect("jwks body");
        tillgate_core::TrustedKeys::from_jwks_json(&text).expect("server JWKS loads in core")
    }
}

/// Latency percentiles of a sorted slice of microseconds.
pub fn percentile(sorted_micros: &[u64], p: f64) -> u64 {
    if sorted_micros.is_empty() {
        return 0;
    }
    let idx = ((sorted_micros.len() as f64 - 1.0) * p).round() as usize;
    sorted_micros[idx.min(sorted_micros.len() - 1)]
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes lower- or upper-case hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
