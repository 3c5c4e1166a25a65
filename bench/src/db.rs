//! Databases: seeding the server's database in bulk (SQL, not HTTP), the raw
//! one-row-per-commit baselines through the server's own driver (sqlx), and a throwaway
//! PostgreSQL database per run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tillgate_core::{
    ApiKeyAlphabet, ReceiptClaims, SigningKey, Transaction, canonical_bytes, generate_api_key_with,
    receipt_link, sign_receipt, transaction_hash,
};

/// The transaction every client posts (the example of the server issue).
pub const TX_BODY: &str = r#"{"type":"sale","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],"items":[{"name":"Kaffe","quantity":1,"amount":12500}]}"#;

/// A row of the same shape and size as the server stores for [`TX_BODY`].
#[derive(Debug, Clone)]
pub struct SampleRow {
    /// Canonical transaction JSON.
    pub body: String,
    /// Its hash.
    pub txh: String,
    /// A real signed receipt of it.
    pub receipt: String,
}

impl SampleRow {
    /// Builds the row from [`TX_BODY`].
    pub fn new() -> Result<SampleRow, String> {
        let tx: Transaction = serde_json::from_str(TX_BODY).map_err(|e| e.to_string())?;
        let body = String::from_utf8(canonical_bytes(&tx)).map_err(|e| e.to_string())?;
        let txh = transaction_hash(&tx);
        let key = SigningKey::from_seed(&[7; 32]);
        let receipt = sign_receipt(
            &ReceiptClaims {
                iss: "tillgate".into(),
                sub: "TG-B000000".into(),
                iat: 1_780_000_000,
                seq: 1,
                txid: "tx_01JBENCH0000000000000000".into(),
                txh: txh.clone(),
                prev: String::new(),
                tx_type: "sale".into(),
                total: 12500,
                currency: "SEK".into(),
            },
            &key,
        )
        .map_err(|e| e.to_string())?;
        Ok(SampleRow { body, txh, receipt })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// A pool on `url`; SQLite connections get the server's settings
/// ([`tillgate_server::db::SQLITE_PRAGMAS`]: WAL, FULL sync, statement journals in memory,
/// checkpoint interval).
pub async fn open(url: &str, max: u32) -> Result<AnyPool, String> {
    sqlx::any::install_default_drivers();
    let mut o = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30));
    if is_sqlite(url) {
        o = o.after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql(tillgate_server::db::SQLITE_PRAGMAS)
                    .execute(conn)
                    .await?;
                Ok(())
            })
        });
    }
    o.connect(url)
        .await
        .map_err(|e| format!("open {}: {e}", redact(url)))
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// Creates the server's schema and signing key through its own storage layer.
pub async fn prepare_server_db(url: &str) -> Result<(), String> {
    let store = tillgate_server::db::Store::connect(url, 2)
        .await
        .map_err(|e| format!("server storage on {}: {e}", redact(url)))?;
    store.init(now()).await.map_err(|e| e.to_string())?;
    store.close().await;
    Ok(())
}

/// Inserts `n` approved registrations (ids `act_bench_00000`...) with one API key each,
/// in one database transaction. Returns the keys, in order.
pub async fn seed_registers(pool: &AnyPool, n: usize) -> Result<Vec<String>, String> {
    let t = now();
    let mut keys = Vec::with_capacity(n);
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for i in 0..n {
        let key = generate_api_key_with(40, ApiKeyAlphabet::UrlSafe).map_err(|e| e.to_string())?;
        let id = format!("act_bench_{i:05}");
        sqlx::query(
            "INSERT INTO activations (id, production_number, cash_register_name, device_id, \
             corporate_id, country, application_package, extras, features, valid_from, valid_to, \
             status, created_at, updated_at, decided_by, decided_at, authority_notified_at) \
             VALUES ($1, $2, $3, $4, '556036-0793', 'SE', 'com.example.pos', '{}', '[]', $5, $6, \
             'approved', $7, $7, 'bench', $7, $7)",
        )
        .bind(&id)
        .bind(format!("TG-B{i:06}"))
        .bind(format!("Kassa {i}"))
        .bind(format!("device-{i:05}"))
        .bind(t - 86_400)
        .bind(t + 200 * 86_400)
        .bind(t)
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("seed activation: {e}"))?;
        sqlx::query(
            "INSERT INTO api_keys (key_hash, activation_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(key.hash().to_hex())
        .bind(&id)
        .bind(t)
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("seed api key: {e}"))?;
        keys.push(key.expose().to_owned());
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(keys)
}

/// Inserts `per_register` transactions for each of `registers` seeded registrations
/// (SQLite only: a recursive CTE, 50,000 rows per commit), and moves each register's
/// chain head past them so new transactions continue the sequence. Rows have the
/// real size (canonical body, real receipt text); the seeded receipts are not a valid
/// chain, which the server never checks on write.
pub async fn seed_transactions_sqlite(
    pool: &AnyPool,
    registers: usize,
    per_register: usize,
    row: &SampleRow,
) -> Result<(), String> {
    let total = registers * per_register;
    let t = now() - 86_400;
    let chunk = 50_000usize;
    let mut lo = 0usize;
    while lo < total {
        let hi = (lo + chunk).min(total);
        // x in [lo, hi): register x / per_register, sequence x % per_register + 1.
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM c WHERE x + 1 < $2) \
             INSERT INTO transactions (id, activation_id, idempotency_key, seq, created_at, body, txh, receipt, rve) \
             SELECT printf('tx_seed_%08d', x), printf('act_bench_%05d', x / $3), printf('seed-%08d', x), \
             x % $3 + 1, $4, $5, $6, $7, $4 + x % $3 + 1 FROM c",
        )
        .bind(lo as i64)
        .bind(hi as i64)
        .bind(per_register as i64)
        .bind(t)
        .bind(&row.body)
        .bind(&row.txh)
        .bind(&row.receipt)
        .execute(pool)
        .await
        .map_err(|e| format!("seed transactions: {e}"))?;
        lo = hi;
    }
    sqlx::query(
        "UPDATE activations SET chain_seq = $1, chain_head = $2, chain_rve = $3 \
         WHERE id LIKE 'act_bench_%'",
    )
    .bind(per_register as i64)
    .bind(receipt_link(&row.receipt))
    .bind(t + per_register as i64)
    .execute(pool)
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

const RAW_TABLE: &str = "CREATE TABLE IF NOT EXISTS raw_tx (\
    id TEXT PRIMARY KEY, activation_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, \
    seq BIGINT NOT NULL, created_at BIGINT NOT NULL, body TEXT NOT NULL, txh TEXT NOT NULL, \
    receipt TEXT NOT NULL, UNIQUE (activation_id, idempotency_key), UNIQUE (activation_id, seq))";

/// The raw baseline: `clients` tasks, each inserting one row per autocommitted
/// statement (one row per commit) into a table shaped like the server's, for
/// `duration` (and at most `max_per_client` rows each). Returns commits/s.
pub async fn raw_ingest(
    url: &str,
    clients: usize,
    duration: Duration,
    max_per_client: u64,
    row: &SampleRow,
    run: &str,
) -> Result<f64, String> {
    let pool = open(url, clients as u32).await?;
    sqlx::raw_sql(RAW_TABLE)
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let pool = pool.clone();
            let row = row.clone();
            let done = done.clone();
            let errors = errors.clone();
            let run = run.to_owned();
            tokio::spawn(async move {
                let mut n = 0u64;
                while n < max_per_client && Instant::now() < deadline {
                    n += 1;
                    let r = sqlx::query(
                        "INSERT INTO raw_tx (id, activation_id, idempotency_key, seq, created_at, body, txh, receipt) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(format!("tx_{run}_{c}_{n}"))
                    .bind(format!("act_{run}_{c}"))
                    .bind(format!("{run}-{c}-{n}"))
                    .bind(n as i64)
                    .bind(1_780_000_000i64)
                    .bind(&row.body)
                    .bind(&row.txh)
                    .bind(&row.receipt)
                    .execute(&pool)
                    .await;
                    match r {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = tokio::time::timeout_at((deadline + Duration::from_secs(30)).into(), t).await;
    }
    let secs = start.elapsed().as_secs_f64().max(duration.as_secs_f64());
    pool.close().await;
    let e = errors.load(Ordering::Relaxed);
    if e > 0 {
        eprintln!(
            "bench: raw baseline on {} had {e} failed inserts",
            redact(url)
        );
    }
    Ok(done.load(Ordering::Relaxed) as f64 / secs)
}

/// A throwaway PostgreSQL database, dropped by [`PgDb::drop_db`].
#[derive(Debug)]
pub struct PgDb {
    admin_url: String,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl PgDb {
    /// Creates `tillgate_bench_<pid>_<time>` through `admin_url`.
    pub async fn create(admin_url: &str) -> Result<PgDb, String> {
        let name = format!("tillgate_bench_{}_{}", std::process::id(), now());
        let pool = tokio::time::timeout(Duration::from_secs(5), open(admin_url, 1))
            .await
            .map_err(|_| format!("{} did not answer within 5 s", redact(admin_url)))??;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .map_err(|e| format!("CREATE DATABASE: {e}"))?;
        pool.close().await;
        let base = admin_url.split('?').next().unwrap_or(admin_url);
        let slash = base
            .rfind('/')
            .filter(|&i| i > base.find("://").map_or(0, |s| s + 2));
        let url = match slash {
            Some(i) => format!("{}/{name}", &base[..i]),
            None => format!("{base}/{name}"),
        };
        Ok(PgDb {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// Drops the database (after every connection to it is closed or killed).
    pub async fn drop_db(self) -> Result<(), String> {
        let pool = open(&self.admin_url, 1).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&pool)
        .await
        .map_err(|e| format!("DROP DATABASE: {e}"))?;
        pool.close().await;
        Ok(())
    }
}
