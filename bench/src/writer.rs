//! The server's write path without HTTP: `Store::commit_batch` called in-process with
//! full batches, and the same work (read chain heads, sign a receipt per transaction,
//! insert, move heads) written directly with one statement per step, as `commit_batch`
//! now does too: shows where the durable-ingest ceiling is and what `Store` adds on top.
//! Informational rows; no goal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sqlx::{AnyPool, Row as _};
use tillgate_core::{ReceiptClaims, SigningKey, receipt_link, sign_receipt};
use tillgate_server::db::{NewTx, Store};

use crate::db::SampleRow;

/// The time every row written here is stamped with.
const STAMP: i64 = 1_780_000_000;

/// The API-key hash of each bench register (`act_bench_00000`...), as the server's
/// sales carry them (the commit checks that each is still current).
async fn key_hashes(pool: &AnyPool, registers: usize) -> Result<Vec<String>, String> {
    let mut hashes = Vec::with_capacity(registers);
    for i in 0..registers {
        let h: String = sqlx::query_scalar(
            "SELECT key_hash FROM api_keys WHERE activation_id = $1 AND replaced_at IS NULL",
        )
        .bind(format!("act_bench_{i:05}"))
        .fetch_one(pool)
        .await
        .map_err(|e| format!("bench register key: {e}"))?;
        hashes.push(h);
    }
    Ok(hashes)
}

fn items(
    registers: usize,
    batch: usize,
    run: &str,
    n: u64,
    row: &SampleRow,
    hashes: &[String],
) -> Vec<NewTx> {
    (0..batch)
        .map(|i| NewTx {
            activation_id: format!("act_bench_{:05}", i % registers),
            production_number: format!("TG-B{:06}", i % registers),
            idempotency_key: format!("{run}-{n}-{i}"),
            body: row.body.clone(),
            txh: row.txh.clone(),
            tx_type: "sale".into(),
            total: 12500,
            currency: "SEK".into(),
            key_hash: hashes.get(i % registers).cloned(),
            staff: None,
        })
        .collect()
}

/// Transactions/s of `Store::commit_batch` with batches of `batch` over `registers`.
pub async fn store_commit_batch(
    url: &str,
    registers: usize,
    batch: usize,
    duration: Duration,
    row: &SampleRow,
) -> Result<f64, String> {
    let store = Store::connect(url, 2).await.map_err(|e| e.to_string())?;
    let hashes = {
        let pool = AnyPool::connect(url).await.map_err(|e| e.to_string())?;
        let h = key_hashes(&pool, registers).await;
        pool.close().await;
        h?
    };
    let key = SigningKey::from_seed(&[9; 32]);
    let mut ids = 0u64;
    let (start, mut done, mut n) = (Instant::now(), 0usize, 0u64);
    while start.elapsed() < duration && n < 100_000 {
        let it = items(registers, batch, "store", n, row, &hashes);
        n += 1;
        let out = store
            .commit_batch(&it, STAMP, &key, "tillgate", || {
                ids += 1;
                format!("tx_store_{ids:012}")
            })
            .await
            .map_err(|e| format!("commit_batch: {e}"))?;
        done += out.len();
    }
    store.close().await;
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The same work as `commit_batch` with set-based statements: one SELECT of every head
/// of the batch, one multi-row INSERT, one UPDATE of every head, one COMMIT.
pub async fn set_based_commit(
    pool: &AnyPool,
    url: &str,
    registers: usize,
    batch: usize,
    duration: Duration,
    row: &SampleRow,
) -> Result<f64, String> {
    let key = SigningKey::from_seed(&[9; 32]);
    let (start, mut done, mut n) = (Instant::now(), 0usize, 0u64);
    let mut ids = 0u64;
    while start.elapsed() < duration && n < 100_000 {
        let it = items(registers, batch, "set", n, row, &[]);
        n += 1;
        let mut tx = if is_sqlite(url) {
            pool.begin_with("BEGIN IMMEDIATE").await
        } else {
            pool.begin().await
        }
        .map_err(|e| e.to_string())?;
        // 1. Every head of the batch, in one statement (locked on PostgreSQL).
        let mut regs: Vec<&str> = it.iter().map(|i| i.activation_id.as_str()).collect();
        regs.sort_unstable();
        regs.dedup();
        let mut sql = String::from(
            "SELECT id, chain_seq, chain_head, chain_rve FROM activations WHERE id IN (",
        );
        for i in 0..regs.len() {
            let _ = write!(sql, "{}${}", if i > 0 { ", " } else { "" }, i + 1);
        }
        sql.push_str(") ORDER BY id");
        if !is_sqlite(url) {
            sql.push_str(" FOR UPDATE");
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in &regs {
            q = q.bind(*r);
        }
        let mut heads: HashMap<String, (i64, String, i64)> = HashMap::new();
        for r in q.fetch_all(&mut *tx).await.map_err(|e| e.to_string())? {
            let id: String = r.try_get("id").map_err(|e| e.to_string())?;
            let seq: i64 = r.try_get("chain_seq").map_err(|e| e.to_string())?;
            let head: String = r.try_get("chain_head").map_err(|e| e.to_string())?;
            let rve: i64 = r.try_get("chain_rve").map_err(|e| e.to_string())?;
            heads.insert(id, (seq, head, rve));
        }
        // 2. Sign in chain order (the same work as the server).
        let mut rows = Vec::with_capacity(it.len());
        for item in &it {
            let (seq, prev, rve) = heads
                .get_mut(&item.activation_id)
                .ok_or("chain head missing")?;
            ids += 1;
            let id = format!("tx_set_{ids:012}");
            let next = *seq + 1;
            let receipt = sign_receipt(
                &ReceiptClaims {
                    iss: "tillgate".into(),
                    sub: item.production_number.clone(),
                    iat: STAMP,
                    seq: next as u64,
                    txid: id.clone(),
                    txh: item.txh.clone(),
                    prev: prev.clone(),
                    tx_type: item.tx_type.clone(),
                    total: item.total,
                    currency: item.currency.clone(),
                },
                &key,
            )
            .map_err(|e| e.to_string())?;
            *seq = next;
            *prev = receipt_link(&receipt);
            // The server's version rule: the stamp, or one above the previous version.
            *rve = STAMP.max(*rve + 1);
            rows.push((id, item, next, receipt, *rve));
        }
        // 3. One INSERT for the whole batch.
        let mut sql = String::from(
            "INSERT INTO transactions (id, activation_id, idempotency_key, seq, created_at, body, txh, receipt, rve) VALUES ",
        );
        for i in 0..rows.len() {
            let b = i * 9;
            let _ = write!(
                sql,
                "{}(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                if i > 0 { ", " } else { "" },
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9
            );
        }
        sql.push_str(
            " ON CONFLICT (activation_id, idempotency_key) DO NOTHING RETURNING idempotency_key",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, item, seq, receipt, rve) in &rows {
            q = q
                .bind(id.as_str())
                .bind(item.activation_id.as_str())
                .bind(item.idempotency_key.as_str())
                .bind(*seq)
                .bind(STAMP)
                .bind(item.body.as_str())
                .bind(item.txh.as_str())
                .bind(receipt.as_str())
                .bind(*rve);
        }
        let inserted = q
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| e.to_string())?
            .len();
        if inserted != rows.len() {
            // A replay would need the per-row path; the benchmark never replays.
            return Err(format!("{} of {} rows inserted", inserted, rows.len()));
        }
        // 4. One UPDATE for every head.
        let mut sql = String::from("WITH v(id, seq, head, rve) AS (VALUES ");
        let mut binds: Vec<(&str, i64, &str, i64)> = Vec::new();
        for (i, (id, (seq, head, rve))) in heads.iter().enumerate() {
            let b = i * 4;
            let _ = write!(
                sql,
                "{}(${}, CAST(${} AS BIGINT), ${}, CAST(${} AS BIGINT))",
                if i > 0 { ", " } else { "" },
                b + 1,
                b + 2,
                b + 3,
                b + 4
            );
            binds.push((id.as_str(), *seq, head.as_str(), *rve));
        }
        sql.push_str(
            ") UPDATE activations SET chain_seq = v.seq, chain_head = v.head, chain_rve = v.rve FROM v WHERE activations.id = v.id",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, seq, head, rve) in binds {
            q = q.bind(id).bind(seq).bind(head).bind(rve);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| format!("update heads: {e}"))?;
        tx.commit().await.map_err(|e| e.to_string())?;
        done += rows.len();
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}
