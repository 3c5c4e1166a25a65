//! SQLite durability settings: a transaction is acknowledged only once its commit is on
//! disk, which needs WAL with `synchronous = FULL` (2). These tests pin both.
//!
//! `Store` keeps its connections (the writer and the pool) private, so the per-connection
//! `synchronous` setting of the store's own connections cannot be read from here. What is
//! checked: the settings every store connection runs (`db::SQLITE_PRAGMAS`) give
//! `synchronous = 2` and `journal_mode = wal` on a connection opened the way the store
//! opens one, and a database written through `Store::connect` is in WAL mode (a setting
//! kept in the file, so it was set by the store's own connections).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::{AnyConnection, Connection as _, Row as _};
use tillgate_server::db::{SQLITE_PRAGMAS, Store};

/// A fresh SQLite URL in a temp directory of its own (removed by the caller).
fn temp_db(name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tillgate_settings_{name}_{}_{t}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    (dir, file, url)
}

async fn synchronous(conn: &mut AnyConnection) -> i64 {
    let row = sqlx::query("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    row.try_get::<i64, _>(0).unwrap()
}

async fn journal_mode(conn: &mut AnyConnection) -> String {
    let row = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    row.try_get::<String, _>(0).unwrap().to_lowercase()
}

#[tokio::test]
async fn store_connection_settings_are_wal_with_full_sync() {
    sqlx::any::install_default_drivers();
    let (dir, _file, url) = temp_db("pragmas");
    let mut conn = AnyConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(SQLITE_PRAGMAS)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        synchronous(&mut conn).await,
        2,
        "SQLITE_PRAGMAS must set synchronous = FULL (2): a commit is on disk when it returns"
    );
    assert_eq!(journal_mode(&mut conn).await, "wal");
    conn.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_store_database_is_in_wal_mode() {
    sqlx::any::install_default_drivers();
    let (dir, file, url) = temp_db("store");
    let store = Store::connect(&url, 4).await.unwrap();
    // Migrations ran and init writes (the first signing key): the WAL file exists while
    // the store is open.
    store.init(1_893_456_000).await.unwrap();
    let wal = file.with_file_name("t.db-wal");
    assert!(
        wal.exists(),
        "{} missing: the store did not write through a WAL",
        wal.display()
    );
    // journal_mode = WAL is kept in the database file: a connection that sets nothing
    // itself sees it.
    let mut other = AnyConnection::connect(&url).await.unwrap();
    assert_eq!(journal_mode(&mut other).await, "wal");
    other.close().await.unwrap();
    store.close().await;
    let mut after = AnyConnection::connect(&url).await.unwrap();
    assert_eq!(
        journal_mode(&mut after).await,
        "wal",
        "after the store closed"
    );
    after.close().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
