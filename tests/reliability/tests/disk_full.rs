//! Disk full: the server's SQLite data directory lives on a small tmpfs that fills up
//! under ingest. While it is full, `POST /transactions` answers 503
//! `storage_unavailable` (nothing is acknowledged that was not committed, no other 5xx,
//! no panic), and handshakes and reads keep working. Once the tmpfs is grown, the tills'
//! retries with the same idempotency keys are accepted; then every acknowledged
//! transaction is stored exactly once, each register's sequence is gapless from 1 and its
//! receipt chain verifies, after a restart too, and `admin backup` finds the database
//! intact (SQLite's integrity check).
//!
//! Mounting needs root (CAP_SYS_ADMIN, as on the CI machines); without it the test
//! reports a skip (a `SKIP` line, also listed in the skip log).
//! Run by `scripts/test-reliability.sh`; by hand:
//! `cargo build --release -p tillgate-server && cargo test -p tillgate-reliability --test disk_full -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tillgate_core::verify_receipt_chain;
use tillgate_reliability::{
    Api, CORP_A, CORP_B, Reg, ServerProcess, Storage, sale, server_bin, unique,
};

const REGISTERS: usize = 2;
const CLIENTS_PER_REGISTER: usize = 4;
/// The tmpfs at first: room for the database and a few hundred transactions.
const SMALL: &str = "2m";
/// The tmpfs once space is "freed".
const LARGE: &str = "64m";

/// A tmpfs mounted for this test; unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount() -> Result<SmallDisk, String> {
        let dir = std::env::temp_dir().join(unique("tillgate_full"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={SMALL},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!(
                "cannot mount a small tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk(dir))
    }

    fn grow(&self) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={LARGE}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot grow the tmpfs");
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[derive(Default)]
struct Stats {
    unavailable: AtomicU64,
    acknowledged: AtomicU64,
}

/// One till: sends sales with fresh idempotency keys. A 503 `storage_unavailable` is
/// retried with the same key and body until it is acknowledged. It stops after five
/// acknowledgements made once the disk was grown. Any other answer fails the test.
async fn till(
    api: Api,
    key: String,
    tag: String,
    full_seen: Arc<AtomicBool>,
    disk_grown: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<Vec<(String, Value)>, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut acks = Vec::new();
    let mut after_growth = 0;
    for i in 0.. {
        if after_growth >= 5 {
            break;
        }
        let idem = format!("{tag}-{i}");
        let body = sale(100 + i as i64, &idem);
        loop {
            if Instant::now() > deadline {
                return Err(format!("{idem}: not acknowledged before the deadline"));
            }
            let grown = disk_grown.load(Ordering::SeqCst);
            let r = api
                .post_tx(&key, &idem, &body)
                .await
                .map_err(|e| format!("{idem}: transport error {e}"))?;
            let status = r.status().as_u16();
            let v: Value = r.json().await.map_err(|e| format!("{idem}: {e}"))?;
            match status {
                201 => {
                    stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                    acks.push((idem.clone(), v));
                    if grown {
                        after_growth += 1;
                    }
                    break;
                }
                503 if v["code"] == "storage_unavailable" => {
                    full_seen.store(true, Ordering::SeqCst);
                    stats.unavailable.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return Err(format!("{idem}: unexpected {status}: {v}")),
            }
        }
    }
    Ok(acks)
}

async fn check_stored(api: &Api, regs: &[Reg], acks: &[HashMap<String, Value>]) -> usize {
    let trusted = api.trusted_keys().await;
    let mut total = 0;
    for (r, reg) in regs.iter().enumerate() {
        let items = api.all_transactions(&reg.key).await;
        assert_eq!(
            items.len(),
            acks[r].len(),
            "register {r}: {} stored, {} acknowledged",
            items.len(),
            acks[r].len()
        );
        for (i, t) in items.iter().enumerate() {
            let name = t["items"][0]["name"].as_str().unwrap();
            let ack = acks[r]
                .get(name)
                .unwrap_or_else(|| panic!("register {r}: stored {name} was never acknowledged"));
            assert_eq!(t["id"], ack["id"], "{name}: id changed");
            assert_eq!(t["receipt"], ack["receipt"], "{name}: receipt changed");
            assert_eq!(
                t["sequence"].as_i64(),
                Some(i as i64 + 1),
                "register {r}: gap"
            );
        }
        let receipts: Vec<&str> = items
            .iter()
            .map(|t| t["receipt"].as_str().unwrap())
            .collect();
        verify_receipt_chain(&receipts, &trusted)
            .unwrap_or_else(|e| panic!("register {r}: receipt chain does not verify: {e}"));
        total += items.len();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server and root (mount); run by scripts/test-reliability.sh"]
async fn disk_full_sqlite() {
    let disk = match SmallDisk::mount() {
        Ok(d) => d,
        Err(reason) => {
            tillgate_reliability::report_skip("disk_full_sqlite", &reason);
            return;
        }
    };
    let storage = Storage::Sqlite(disk.path().join("data"));
    std::fs::create_dir_all(disk.path().join("data")).unwrap();
    let mut server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let regs = vec![
        api.register(CORP_A, "full-dev-0").await,
        api.register(CORP_B, "full-dev-1").await,
    ];

    let full_seen = Arc::new(AtomicBool::new(false));
    let disk_grown = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let mut tasks = Vec::new();
    for (r, reg) in regs.iter().enumerate() {
        for c in 0..CLIENTS_PER_REGISTER {
            tasks.push((
                r,
                tokio::spawn(till(
                    Api::new(&server.base),
                    reg.key.clone(),
                    format!("r{r}c{c}"),
                    full_seen.clone(),
                    disk_grown.clone(),
                    stats.clone(),
                )),
            ));
        }
    }

    // Wait for the disk to fill.
    let t = Instant::now();
    while !full_seen.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the disk never filled:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Full: reads and handshakes still answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for reg in &regs {
        assert_eq!(api.get("/auth/handshake", &reg.key).await.status(), 200);
        assert_eq!(
            api.get("/transactions?limit=5", &reg.key).await.status(),
            200
        );
    }
    println!(
        "  disk full after {} ms and {} transactions; {} answers 503 so far",
        t.elapsed().as_millis(),
        stats.acknowledged.load(Ordering::Relaxed),
        stats.unavailable.load(Ordering::Relaxed)
    );

    // Space comes back: every till's pending sale goes through with its own key.
    disk.grow();
    disk_grown.store(true, Ordering::SeqCst);
    let mut acks: Vec<HashMap<String, Value>> = vec![HashMap::new(); REGISTERS];
    let mut failures = Vec::new();
    for (r, t) in tasks {
        match t.await.expect("till task") {
            Ok(list) => {
                for (idem, v) in list {
                    assert!(acks[r].insert(idem.clone(), v).is_none(), "{idem} twice");
                }
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "tills failed: {failures:?}\n{}",
        server.logs()
    );

    let total = check_stored(&api, &regs, &acks).await;
    // And after a clean restart.
    assert!(server.terminate(), "no clean shutdown:\n{}", server.logs());
    server.restart().await;
    assert_eq!(check_stored(&server.api(), &regs, &acks).await, total);
    server.terminate();

    // The database is intact.
    let backup = disk.path().join("check.db");
    let out = Command::new(server_bin())
        .env("TILLGATE_DATA_DIR", disk.path().join("data"))
        .env_remove("DATABASE_URL")
        .args(["admin", "backup"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["transactions"], total as u64);

    let logs = server.logs();
    assert!(!logs.contains("panicked"), "the server panicked:\n{logs}");
    println!(
        "  {total} transactions acknowledged and stored exactly once; {} answers 503 \
         storage_unavailable while the disk was full, no other error; reads and handshakes \
         answered; chains verify after a restart; integrity check ok",
        stats.unavailable.load(Ordering::Relaxed)
    );
    drop(storage);
}
