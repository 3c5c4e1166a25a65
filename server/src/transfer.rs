//! Moving a SQLite deployment to PostgreSQL (`admin copy-to-postgres`), for operators
//! who outgrow one machine: every row of every table is copied into an empty PostgreSQL
//! database in one PostgreSQL transaction, and the copy is read back and compared with
//! the source before that transaction commits. Nothing is changed in the SQLite database
//! (it stays the fallback; a marker beside it, [`moved_marker`], keeps servers off it),
//! and a copy that fails or differs leaves no row in PostgreSQL.
//!
//! Rows are copied as stored: API-key hashes, the chain heads and every receipt, and
//! the signing keys' seeds as they are (sealed with the KEK when one is configured, so
//! the PostgreSQL deployment needs the same `TILLGATE_KEY_ENCRYPTION_KEY`). Registers keep their keys,
//! and their receipt chains go on from the same heads.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::backup::{LockError, lock_admin, lock_database};
use crate::db::{Backend, Store, schema_version, sqlite_path};

/// How a column is stored (the schema uses only these two types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `TEXT`
    Text,
    /// `BIGINT`
    Int,
}

/// A table to copy: its primary key and every column, as in `migrations/`.
#[derive(Debug)]
struct Table {
    name: &'static str,
    key: &'static [&'static str],
    columns: &'static [(&'static str, Kind)],
}

use Kind::{Int, Text};

/// Every table but `tillgate_migrations` (which each side keeps for itself), parents
/// before the tables that refer to them. A unit test compares this list with the schema
/// the migrations create, so a new table or column cannot be left out.
const TABLES: &[Table] = &[
    Table {
        name: "settings",
        key: &["name"],
        columns: &[("name", Text), ("value", Text)],
    },
    Table {
        name: "signing_keys",
        key: &["kid"],
        columns: &[
            ("kid", Text),
            ("seed", Text),
            ("public_key", Text),
            ("created_at", Int),
            ("retired_at", Int),
            ("signs_from", Int),
        ],
    },
    Table {
        name: "activations",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("production_number", Text),
            ("cash_register_name", Text),
            ("device_id", Text),
            ("corporate_id", Text),
            ("country", Text),
            ("application_package", Text),
            ("extras", Text),
            ("features", Text),
            ("valid_from", Int),
            ("valid_to", Int),
            ("status", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("decided_by", Text),
            ("decided_at", Int),
            ("authority_notified_at", Int),
            ("decision_note", Text),
            ("chain_seq", Int),
            ("chain_head", Text),
            ("chain_rve", Int),
            ("request_key_hash", Text),
            ("request_hash", Text),
        ],
    },
    Table {
        name: "decisions",
        key: &["activation_id", "n"],
        columns: &[
            ("activation_id", Text),
            ("n", Int),
            ("status", Text),
            ("decided_by", Text),
            ("decided_at", Int),
            ("authority_notified_at", Int),
            ("note", Text),
        ],
    },
    Table {
        name: "api_keys",
        key: &["key_hash"],
        columns: &[
            ("key_hash", Text),
            ("activation_id", Text),
            ("created_at", Int),
            ("replaced_at", Int),
        ],
    },
    Table {
        name: "staff",
        key: &["login"],
        columns: &[
            ("login", Text),
            ("activation_id", Text),
            ("public_key", Text),
            ("memory_kib", Int),
            ("iterations", Int),
            ("parallelism", Int),
            ("created_at", Int),
            ("disabled_at", Int),
        ],
    },
    Table {
        name: "dynamic_key_nonces",
        key: &["login", "nonce"],
        columns: &[("login", Text), ("nonce", Text), ("expires_at", Int)],
    },
    Table {
        name: "transactions",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("activation_id", Text),
            ("idempotency_key", Text),
            ("seq", Int),
            ("created_at", Int),
            ("body", Text),
            ("txh", Text),
            ("receipt", Text),
            ("rve", Int),
        ],
    },
    Table {
        name: "products",
        key: &["corporate_id", "id"],
        columns: &[
            ("corporate_id", Text),
            ("id", Text),
            ("body", Text),
            ("updated_at", Int),
            ("updated_by", Text),
            ("rve", Int),
        ],
    },
];

/// Rows read and written per statement (at most 23 columns: 5,888 parameters, well
/// under PostgreSQL's 65,535).
const ROWS_PER_STATEMENT: usize = 256;

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

/// A table's row count and an order-independent digest of its rows: the XOR of each
/// row's SHA-256 (rows are unique by their primary key, so no two cancel out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Digest {
    rows: u64,
    xor: [u8; 32],
}

impl Digest {
    fn add(&mut self, row: &[Value]) {
        let mut h = Sha256::new();
        for v in row {
            match v {
                Value::Text(None) | Value::Int(None) => h.update([0]),
                Value::Text(Some(s)) => {
                    h.update([1]);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                Value::Int(Some(n)) => {
                    h.update([2]);
                    h.update(n.to_le_bytes());
                }
            }
        }
        for (acc, b) in self.xor.iter_mut().zip(h.finalize()) {
            *acc ^= b;
        }
        self.rows += 1;
    }
}

/// What a copy did, printed by the CLI as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopySummary {
    /// The SQLite database copied from (left as it was).
    pub from: std::path::PathBuf,
    /// The schema version of both databases.
    pub schema_version: i64,
    /// Rows copied, per table, in copy order.
    pub tables: Vec<TableCount>,
    /// Which key-encryption key the PostgreSQL servers need to open the signing keys.
    pub key_encryption_key: String,
    /// The marker written beside the SQLite database (see [`moved_marker`]).
    pub marker: std::path::PathBuf,
}

/// The file beside a SQLite database that says it was copied to PostgreSQL:
/// `<database>.moved-to-postgres`. While it exists, no server and no admin command that
/// writes uses that database, so that tills cannot be split between the two databases
/// (their receipt chains would fork). Remove it to serve the SQLite database again.
pub fn moved_marker(db: &std::path::Path) -> std::path::PathBuf {
    crate::backup::beside(db, ".moved-to-postgres")
}

/// Refuses a SQLite database that [`copy_to_postgres`] has moved (see [`moved_marker`]).
pub fn refuse_if_moved(url: &str) -> Result<(), String> {
    let Some(db) = sqlite_path(url) else {
        return Ok(());
    };
    let marker = moved_marker(&db);
    if marker.exists() {
        return Err(format!(
            "{} was copied to PostgreSQL ({} says so): serve the PostgreSQL database \
             (DATABASE_URL), or remove that file to use this one again",
            db.display(),
            marker.display()
        ));
    }
    Ok(())
}

/// Writes the marker and syncs it and its directory: it must survive a crash once the
/// copy has committed.
fn write_marker(marker: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(marker).map_err(|e| e.to_string())?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    crate::backup::sync_dir(&crate::backup::parent_dir(marker))
}

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Rows copied (and read back equal).
    pub rows: u64,
}

/// Copies the SQLite database at `source_url` into the empty PostgreSQL database at
/// `target_url`, with the server stopped (refused while a server holds the SQLite
/// database). Both are migrated to this server's schema first. Every table is read back
/// from PostgreSQL and compared with the source (row count and a digest of every value)
/// before the copy commits; on any error or difference PostgreSQL keeps none of the rows
/// (its schema, created by the migrations, stays). The SQLite database is marked as moved
/// ([`moved_marker`]) before the copy commits.
pub async fn copy_to_postgres(
    source_url: &str,
    target_url: &str,
    kek: KekHint,
    now: i64,
) -> Result<CopySummary, String> {
    let Some(path) = sqlite_path(source_url) else {
        return Err(
            "the database to copy from must be SQLite (the server's data directory or a \
                    sqlite: DATABASE_URL)"
                .into(),
        );
    };
    if !target_url.starts_with("postgres://") && !target_url.starts_with("postgresql://") {
        return Err("the database to copy to must be a postgres:// or postgresql:// URL".into());
    }
    if !path.is_file() {
        return Err(format!("no SQLite database at {}", path.display()));
    }
    let _lock = lock_database(source_url).map_err(LockError::stop_the_server)?;
    // No admin command may write to it while it is copied, nor after it is marked.
    let _admin = lock_admin(source_url, true)?;
    refuse_if_moved(source_url)?;
    crate::backup::refuse_if_restoring(source_url)?;
    let marker = moved_marker(&path);
    let source = Store::connect(source_url, 2)
        .await
        .map_err(|e| format!("cannot open the SQLite database: {e}"))?;
    // Opening the target migrates it; the error never shows its URL (it may hold a password).
    let target = match Store::connect(&with_application_name(target_url), 2).await {
        Ok(t) if t.backend() == Backend::Postgres => t,
        Ok(t) => {
            t.close().await;
            source.close().await;
            return Err("the database to copy to is not PostgreSQL".into());
        }
        Err(e) => {
            source.close().await;
            return Err(format!("cannot open the PostgreSQL database: {e}"));
        }
    };
    let result = copy_between(&source, &target, &marker, now).await;
    target.close().await;
    source.close().await;
    let (tables, sealed) = result?;
    Ok(CopySummary {
        from: path,
        schema_version: schema_version(),
        tables,
        key_encryption_key: kek.advice(sealed),
        marker,
    })
}

/// Where the SQLite deployment's key-encryption key comes from, for the advice printed
/// after a copy (the signing keys' seeds are copied sealed with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekHint {
    /// `TILLGATE_KEY_ENCRYPTION_KEY` is set.
    Configured,
    /// The key file in the data directory.
    File(std::path::PathBuf),
    /// Neither (the seeds are stored in plain text, or sealed with a key this
    /// configuration does not name).
    None,
}

impl KekHint {
    /// The hint for a configuration, without creating a key file.
    pub fn of(config: &crate::Config) -> KekHint {
        match crate::seal::kek_setting(config.key_encryption_key.as_deref(), &config.data_dir) {
            Ok(_) => KekHint::Configured,
            Err(file) if file.exists() => KekHint::File(file),
            Err(_) => KekHint::None,
        }
    }

    fn advice(&self, sealed: bool) -> String {
        if !sealed {
            return "the signing keys were stored unsealed; the first PostgreSQL server to \
                    start seals them with its key-encryption key: give every server the same \
                    TILLGATE_KEY_ENCRYPTION_KEY"
                .into();
        }
        match self {
            KekHint::Configured => "start the PostgreSQL servers with the same \
                                    TILLGATE_KEY_ENCRYPTION_KEY as this deployment"
                .into(),
            KekHint::File(path) => format!(
                "start the PostgreSQL servers with TILLGATE_KEY_ENCRYPTION_KEY set to the \
                 contents of {}, which sealed the signing keys",
                path.display()
            ),
            KekHint::None => "the signing keys are sealed with a key-encryption key that this \
                              command was not given (run it with the server's settings, such \
                              as its env file, to see which): start the PostgreSQL servers \
                              with that key as TILLGATE_KEY_ENCRYPTION_KEY"
                .into(),
        }
    }
}

/// The name the copy's PostgreSQL sessions show in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "tillgate-copy-to-postgres";

/// `url` with [`APPLICATION_NAME`] as its `application_name`, unless it names one.
fn with_application_name(url: &str) -> String {
    if url.contains("application_name=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={APPLICATION_NAME}")
}

/// Copies in one transaction on each side: the source's holds SQLite's write lock (one
/// snapshot, and nothing else writes meanwhile), the target's commits only after the
/// read-back matched and the SQLite database was marked as moved. Returns the counts and
/// whether any signing-key seed is sealed.
async fn copy_between(
    source: &Store,
    target: &Store,
    marker: &std::path::Path,
    now: i64,
) -> Result<(Vec<TableCount>, bool), String> {
    let db = |what: &'static str| move |e: sqlx::Error| format!("{what}: {e}");
    let mut src = source.pool().acquire().await.map_err(db("SQLite"))?;
    let mut dst = target.pool().acquire().await.map_err(db("PostgreSQL"))?;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *src)
        .await
        .map_err(db("SQLite"))?;
    let result = async {
        let seeds: Vec<String> = sqlx::query_scalar("SELECT seed FROM signing_keys")
            .fetch_all(&mut *src)
            .await
            .map_err(db("SQLite"))?;
        let sealed = seeds.iter().any(|s| crate::seal::is_sealed(s));
        sqlx::raw_sql("BEGIN")
            .execute(&mut *dst)
            .await
            .map_err(db("PostgreSQL"))?;
        let copied = match copy_in_transactions(&mut src, &mut dst).await {
            Ok(counts) => counts,
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *dst).await;
                return Err(e);
            }
        };
        let transactions = copied
            .iter()
            .find(|t| t.table == "transactions")
            .map_or(0, |t| t.rows);
        let text = format!(
            "copied to PostgreSQL by `tillgate-server admin copy-to-postgres` at Unix time \
             {now}: {transactions} transactions. Remove this file to use this SQLite database \
             again.\n"
        );
        if let Err(e) = write_marker(marker, &text) {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *dst).await;
            let _ = std::fs::remove_file(marker);
            return Err(format!(
                "cannot write {}: {e}; nothing was copied",
                marker.display()
            ));
        }
        if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *dst).await {
            // The connection may have been lost after PostgreSQL committed: the marker stays.
            return Err(format!(
                "PostgreSQL: the COMMIT failed ({e}) and its outcome is unknown: if the \
                 PostgreSQL database holds the rows, serve it; if it holds none, remove {} \
                 and copy again",
                marker.display()
            ));
        }
        Ok((copied, sealed))
    }
    .await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *src).await;
    result
}

async fn copy_in_transactions(
    src: &mut AnyConnection,
    dst: &mut AnyConnection,
) -> Result<Vec<TableCount>, String> {
    let pg = |e: sqlx::Error| format!("PostgreSQL: {e}");
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    // No server may write while the copy runs, nor between the check below and the commit.
    // Table names from TABLES only; every value below is bound.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        names.join(", ")
    )))
    .execute(&mut *dst)
    .await
    .map_err(pg)?;
    for t in TABLES {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            t.name
        )))
        .fetch_one(&mut *dst)
        .await
        .map_err(pg)?;
        if n != 0 {
            return Err(format!(
                "the PostgreSQL database is not empty ({} has {n} rows): copy into a new database",
                t.name
            ));
        }
    }
    let mut counts = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        let copied = copy_table(t, src, dst).await?;
        let read_back = digest_postgres(t, dst).await?;
        if copied.rows != read_back.rows {
            return Err(format!(
                "{}: PostgreSQL holds {} rows after {} were copied; nothing was kept",
                t.name, read_back.rows, copied.rows
            ));
        }
        if copied != read_back {
            return Err(format!(
                "{}: the {} rows PostgreSQL holds differ from those copied; nothing was kept",
                t.name, copied.rows
            ));
        }
        counts.push(TableCount {
            table: t.name.to_owned(),
            rows: copied.rows,
        });
    }
    Ok(counts)
}

fn column_list(t: &Table) -> String {
    t.columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

fn values(t: &Table, row: &AnyRow) -> Result<Vec<Value>, sqlx::Error> {
    t.columns
        .iter()
        .map(|&(c, kind)| {
            Ok(match kind {
                Text => Value::Text(row.try_get(c)?),
                Int => Value::Int(row.try_get(c)?),
            })
        })
        .collect()
}

/// Copies one table page by page (SQLite's rowid order); returns the digest of what it
/// read.
async fn copy_table(
    t: &Table,
    src: &mut AnyConnection,
    dst: &mut AnyConnection,
) -> Result<Digest, String> {
    let cols = column_list(t);
    let read = format!(
        "SELECT rowid AS tillgate_rowid, {cols} FROM {} WHERE rowid > $1 ORDER BY rowid LIMIT {ROWS_PER_STATEMENT}",
        t.name
    );
    let mut digest = Digest::default();
    let mut last = i64::MIN;
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(read.as_str()))
            .bind(last)
            .fetch_all(&mut *src)
            .await
            .map_err(|e| format!("SQLite, reading {}: {e}", t.name))?;
        let Some(end) = rows.last() else { break };
        last = end
            .try_get("tillgate_rowid")
            .map_err(|e| format!("SQLite, reading {}: {e}", t.name))?;
        let mut page = Vec::with_capacity(rows.len());
        for r in &rows {
            let v = values(t, r).map_err(|e| format!("SQLite, reading {}: {e}", t.name))?;
            digest.add(&v);
            page.push(v);
        }
        insert_page(t, &cols, &page, dst).await?;
    }
    Ok(digest)
}

async fn insert_page(
    t: &Table,
    cols: &str,
    page: &[Vec<Value>],
    dst: &mut AnyConnection,
) -> Result<(), String> {
    let width = t.columns.len();
    let tuples: Vec<String> = (0..page.len())
        .map(|r| {
            let ps: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO {} ({cols}) VALUES {}",
        t.name,
        tuples.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for v in page.iter().flatten() {
        q = match v {
            Value::Text(s) => q.bind(s.clone()),
            Value::Int(n) => q.bind(*n),
        };
    }
    q.execute(&mut *dst)
        .await
        .map_err(|e| format!("PostgreSQL, writing {}: {e}", t.name))?;
    Ok(())
}

/// Reads a table back from PostgreSQL page by page (primary-key order) and digests it.
async fn digest_postgres(t: &Table, dst: &mut AnyConnection) -> Result<Digest, String> {
    let cols = column_list(t);
    let key = t.key.join(", ");
    let mut digest = Digest::default();
    let mut last: Option<Vec<Value>> = None;
    loop {
        let sql = match &last {
            None => format!(
                "SELECT {cols} FROM {} ORDER BY {key} LIMIT {ROWS_PER_STATEMENT}",
                t.name
            ),
            Some(_) => {
                let ps: Vec<String> = (1..=t.key.len()).map(|i| format!("${i}")).collect();
                format!(
                    "SELECT {cols} FROM {} WHERE ({key}) > ({}) ORDER BY {key} LIMIT {ROWS_PER_STATEMENT}",
                    t.name,
                    ps.join(", ")
                )
            }
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for k in last.iter().flatten() {
            q = match k {
                Value::Text(v) => q.bind(v.clone()),
                Value::Int(v) => q.bind(*v),
            };
        }
        let rows = q
            .fetch_all(&mut *dst)
            .await
            .map_err(|e| format!("PostgreSQL, reading {} back: {e}", t.name))?;
        let Some(end) = rows.last() else { break };
        let mut key_values = Vec::with_capacity(t.key.len());
        for k in t.key {
            let kind = t.columns.iter().find(|(c, _)| c == k).map(|(_, kind)| kind);
            let v = match kind {
                Some(Int) => end.try_get(*k).map(Value::Int),
                _ => end.try_get(*k).map(Value::Text),
            }
            .map_err(|e| format!("PostgreSQL, reading {} back: {e}", t.name))?;
            key_values.push(v);
        }
        for r in &rows {
            let v =
                values(t, r).map_err(|e| format!("PostgreSQL, reading {} back: {e}", t.name))?;
            digest.add(&v);
        }
        last = Some(key_values);
    }
    Ok(digest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An empty scratch directory named after the test.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tillgate-transfer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The list above is the schema: every table the migrations create (but the
    /// migrations' own), with every column, its type, and the primary key.
    #[tokio::test]
    async fn every_table_and_column_of_the_schema_is_copied() {
        let dir = scratch("schema");
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let mut tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT IN ('tillgate_migrations') AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
        tables.sort();
        listed.sort();
        assert_eq!(tables, listed);
        for t in TABLES {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT name, type, pk FROM pragma_table_info('{}') ORDER BY cid",
                t.name
            )))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            let schema: Vec<(String, Kind)> = rows
                .iter()
                .map(|r| {
                    let ty: String = r.try_get("type").unwrap();
                    let kind = match ty.as_str() {
                        "TEXT" => Text,
                        "BIGINT" => Int,
                        other => panic!("{}: a column of type {other}", t.name),
                    };
                    (r.try_get::<String, _>("name").unwrap(), kind)
                })
                .collect();
            let ours: Vec<(String, Kind)> =
                t.columns.iter().map(|&(c, k)| (c.to_owned(), k)).collect();
            assert_eq!(schema, ours, "columns of {}", t.name);
            let mut key: Vec<(i64, String)> = rows
                .iter()
                .filter_map(|r| {
                    let pk: i64 = r.try_get("pk").unwrap();
                    (pk > 0).then(|| (pk, r.try_get::<String, _>("name").unwrap()))
                })
                .collect();
            key.sort();
            let key: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
            assert_eq!(key, t.key, "primary key of {}", t.name);
        }
        drop(conn);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_copy_names_its_sessions() {
        assert_eq!(
            with_application_name("postgres://h/db"),
            "postgres://h/db?application_name=tillgate-copy-to-postgres"
        );
        assert_eq!(
            with_application_name("postgres://h/db?sslmode=require"),
            "postgres://h/db?sslmode=require&application_name=tillgate-copy-to-postgres"
        );
        assert_eq!(
            with_application_name("postgres://h/db?application_name=ops"),
            "postgres://h/db?application_name=ops"
        );
    }

    #[test]
    fn the_digest_sees_every_value_and_no_order() {
        let row = |s: &str, n: i64| vec![Value::Text(Some(s.into())), Value::Int(Some(n))];
        let digest = |rows: &[Vec<Value>]| {
            let mut d = Digest::default();
            rows.iter().for_each(|r| d.add(r));
            d
        };
        let a = digest(&[row("a", 1), row("b", 2)]);
        assert_eq!(a, digest(&[row("b", 2), row("a", 1)]));
        assert_ne!(a, digest(&[row("a", 1), row("b", 3)]));
        assert_ne!(a, digest(&[row("a", 1)]));
        // NULL, the empty string and 0 are three different values.
        let one = |v: Value| digest(&[vec![v]]);
        let (null, empty, zero) = (
            one(Value::Text(None)),
            one(Value::Text(Some(String::new()))),
            one(Value::Int(Some(0))),
        );
        assert!(null != empty && empty != zero && null != zero);
        // Values do not run into each other.
        assert_ne!(
            digest(&[vec![
                Value::Text(Some("ab".into())),
                Value::Text(Some("c".into()))
            ]]),
            digest(&[vec![
                Value::Text(Some("a".into())),
                Value::Text(Some("bc".into()))
            ]])
        );
    }

    #[tokio::test]
    async fn only_from_sqlite_to_postgres() {
        let e = copy_to_postgres(
            "postgres://x@127.0.0.1/db",
            "postgres://y@127.0.0.1/db",
            KekHint::None,
            0,
        )
        .await
        .unwrap_err();
        assert!(e.contains("must be SQLite"), "{e}");
        let dir = scratch("only");
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let e = copy_to_postgres(&url, "sqlite://other.db", KekHint::None, 0)
            .await
            .unwrap_err();
        assert!(e.contains("postgres://"), "{e}");
        // A missing database is not created.
        let e = copy_to_postgres(&url, "postgres://y@127.0.0.1/db", KekHint::None, 0)
            .await
            .unwrap_err();
        assert!(e.contains("no SQLite database"), "{e}");
        assert!(!dir.join("t.db").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
