use std::sync::Arc;

use tillgate_core::{Transaction, TrustedKeys};

use super::*;
use crate::ClientConfig;

fn sale(total: i64) -> Transaction {
    serde_json::from_value(serde_json::json!({
        "type": "sale", "currency": "SEK", "total": total,
        "vat": [{"rate": 2500, "amount": total / 5}],
        "items": [{"name": "Kaffe", "quantity": 1, "amount": total}],
    }))
    .unwrap()
}

/// A client whose server is never reachable (nothing listens on port 9).
fn offline_client() -> Client {
    let c = Client::new(ClientConfig::new("http://127.0.0.1:9", TrustedKeys::new())).unwrap();
    c.set_api_key(tillgate_core::generate_api_key(40).unwrap());
    c
}

fn file_store(dir: &std::path::Path) -> Arc<dyn QueueStore> {
    Arc::new(FileStore::open(dir).unwrap())
}

/// The app stops (the outbox and its store's lock go) and starts again.
async fn restart(q: Outbox, dir: &std::path::Path) -> Outbox {
    drop(q);
    Outbox::open(file_store(dir)).await.unwrap()
}

/// The files in `dir` other than the store's lock file.
fn files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "queue.lock")
        .collect()
}

#[tokio::test]
async fn survives_a_restart_with_keys_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let mine = IdempotencyKey::new("till-1:000001").unwrap();
    let generated;
    {
        let q = Outbox::open(file_store(dir.path())).await.unwrap();
        assert_eq!(
            q.enqueue(sale(100), Some(mine.clone()), 1_000)
                .await
                .unwrap(),
            mine
        );
        generated = q.enqueue(sale(200), None, 1_001).await.unwrap();
        assert_eq!(generated.as_str().len(), 32);
        assert_eq!(q.len(), 2);
    } // the app stops
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    let e = q.entries();
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[0].idempotency_key.clone(), e[0].transaction.total),
        (mine, 100)
    );
    assert_eq!(
        (e[1].idempotency_key.clone(), e[1].transaction.total),
        (generated, 200)
    );
    assert!(q.last_error().is_none() && q.corrupt_records().is_empty());
    // New ids continue after the old ones.
    q.enqueue(sale(300), None, 1_002).await.unwrap();
    assert_eq!(q.entries()[2].id, 3);
}

#[tokio::test]
async fn a_half_written_temp_file_leaves_the_old_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(file_store(dir.path())).await.unwrap();
        q.enqueue(sale(100), None, 1).await.unwrap();
    }
    let record = dir.path().join(format!("tx-{:020}.json", 1));
    let before = std::fs::read(&record).unwrap();
    // A crash while rewriting record 1 (after a failed send), and while writing a new
    // record 2 that was never acknowledged: only torn temp files remain.
    std::fs::write(
        dir.path().join(format!("tx-{:020}.json.tmp", 1)),
        &before[..before.len() / 2],
    )
    .unwrap();
    std::fs::write(
        dir.path().join(format!("tx-{:020}.json.tmp", 2)),
        br#"{"v":1,"id":2,"idem"#,
    )
    .unwrap();
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.entries()[0].transaction.total, 100);
    assert!(q.corrupt_records().is_empty());
    assert_eq!(std::fs::read(&record).unwrap(), before);
    // The temp files are gone.
    assert_eq!(files(dir.path()), [format!("tx-{:020}.json", 1)]);
}

#[tokio::test]
async fn a_corrupt_record_is_reported_kept_and_its_id_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(file_store(dir.path())).await.unwrap();
        q.enqueue(sale(100), None, 1).await.unwrap();
        q.enqueue(sale(200), None, 2).await.unwrap();
    }
    let bad = dir.path().join(format!("tx-{:020}.json", 2));
    std::fs::write(&bad, b"{\"v\":1,\"id\":2,\"idempotencyKey\":\"x\",\"trans").unwrap();
    std::fs::write(dir.path().join("tx-junk.json"), b"{}").unwrap();

    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    assert_eq!(q.len(), 1);
    let corrupt = q.corrupt_records();
    assert_eq!(corrupt.len(), 2, "{corrupt:?}");
    assert_eq!(corrupt[0].id, Some(2));
    assert_eq!(corrupt[1].id, None);
    assert_eq!(q.last_error().unwrap().code, "queue_record_corrupt");
    assert!(
        bad.exists(),
        "a corrupt record must never be dropped silently"
    );
    // A new transaction does not take the corrupt record's id.
    q.enqueue(sale(300), None, 3).await.unwrap();
    assert_eq!(q.entries().last().unwrap().id, 3);
    // Reported again at the next start, until the app removes it.
    drop(q);
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    assert_eq!(q.corrupt_records().len(), 2);
    q.remove_corrupt(&corrupt[0].name).await.unwrap();
    q.remove_corrupt(&corrupt[1].name).await.unwrap();
    assert!(!bad.exists());
    assert!(q.last_error().is_none());
    assert!(q.remove_corrupt("../etc/passwd").await.is_err());
}

#[tokio::test]
async fn record_with_a_mismatched_id_or_version_is_corrupt() {
    let store = Arc::new(MemoryStore::new());
    {
        let q = Outbox::open(store.clone()).await.unwrap();
        q.enqueue(sale(100), None, 1).await.unwrap();
    }
    let raw = store.raw(1).unwrap();
    store.insert_raw(5, raw.clone());
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["v"] = 9.into();
    v["id"] = 6.into();
    store.insert_raw(6, serde_json::to_vec(&v).unwrap());
    let q = Outbox::open(store).await.unwrap();
    let reasons: Vec<String> = q.corrupt_records().into_iter().map(|c| c.reason).collect();
    assert!(reasons[0].contains("stored as 5"), "{reasons:?}");
    assert!(reasons[1].contains("version 9"), "{reasons:?}");
    assert_eq!(q.len(), 1);
}

#[tokio::test]
async fn enqueue_is_idempotent_per_key_and_validates() {
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let k = IdempotencyKey::new("k-1").unwrap();
    q.enqueue(sale(100), Some(k.clone()), 1).await.unwrap();
    q.enqueue(sale(100), Some(k.clone()), 2).await.unwrap();
    assert_eq!(q.len(), 1);
    let e = q.enqueue(sale(999), Some(k), 3).await.unwrap_err();
    assert_eq!(e.code(), "idempotency_key_reused");
    let mut bad = sale(100);
    bad.total = 5;
    let e = q.enqueue(bad, None, 4).await.unwrap_err();
    assert_eq!(e.code(), "invalid_transaction");
    assert_eq!(q.len(), 1);
}

/// Two calls with the same key at the same moment (a double tap, a retry racing the
/// first attempt) queue one record: the second answers like a repeat; with another
/// transaction it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_with_one_key_queue_one_record() {
    let dir = tempfile::tempdir().unwrap();
    for store in [
        Arc::new(MemoryStore::new()) as Arc<dyn QueueStore>,
        file_store(dir.path()),
    ] {
        let q = Outbox::open(store.clone()).await.unwrap();
        let k = IdempotencyKey::new("till-1:000001").unwrap();
        let (a, b) = tokio::join!(
            q.enqueue(sale(100), Some(k.clone()), 1),
            q.enqueue(sale(100), Some(k.clone()), 1),
        );
        assert_eq!((a.unwrap(), b.unwrap()), (k.clone(), k.clone()));
        assert_eq!(q.entries().len(), 1);
        assert_eq!(store.load().unwrap().entries.len(), 1);

        let k = IdempotencyKey::new("till-1:000002").unwrap();
        let (a, b) = tokio::join!(
            q.enqueue(sale(200), Some(k.clone()), 2),
            q.enqueue(sale(999), Some(k.clone()), 2),
        );
        let (ok, refused) = if a.is_ok() { (a, b) } else { (b, a) };
        assert_eq!(ok.unwrap(), k);
        assert_eq!(refused.unwrap_err().code(), "idempotency_key_reused");
        let e = q.entries();
        assert_eq!(e.len(), 2);
        assert!(e[1].transaction == sale(200) || e[1].transaction == sale(999));
        assert_eq!(store.load().unwrap().entries.len(), 2);
    }
}

/// A store whose first new record fails to be written.
struct FirstWriteFails {
    inner: MemoryStore,
    failed: std::sync::atomic::AtomicBool,
}

impl QueueStore for FirstWriteFails {
    fn load(&self) -> Result<StoreContents> {
        self.inner.load()
    }
    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(ClientError::Storage("no space left on device".into()));
        }
        self.inner.save(entry)
    }
    fn remove(&self, id: u64) -> Result<()> {
        self.inner.remove(id)
    }
    fn remove_corrupt(&self, name: &str) -> Result<()> {
        self.inner.remove_corrupt(name)
    }
    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        self.inner.save_witness(record)
    }
}

/// Of two calls with one key at the same moment, the first's write fails: the key is
/// free again, and the second stores the sale (one record, not a repeat of nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_leaves_the_key_to_a_concurrent_call() {
    let store = Arc::new(FirstWriteFails {
        inner: MemoryStore::new(),
        failed: false.into(),
    });
    let q = Outbox::open(store.clone()).await.unwrap();
    let k = IdempotencyKey::new("till-1:000001").unwrap();
    let (a, b) = tokio::join!(
        q.enqueue(sale(100), Some(k.clone()), 1),
        q.enqueue(sale(100), Some(k.clone()), 1),
    );
    let codes = [a.as_ref().err(), b.as_ref().err()].map(|e| e.map(ClientError::code));
    assert!(
        codes == [Some("storage_error"), None] || codes == [None, Some("storage_error")],
        "{codes:?}"
    );
    assert_eq!(q.entries().len(), 1);
    assert_eq!(store.inner.load().unwrap().entries.len(), 1);
    assert_eq!(q.entries()[0].idempotency_key, k);
}

#[tokio::test]
async fn offline_sync_keeps_everything_and_schedules_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client();
    let backoff = Backoff {
        initial: std::time::Duration::from_secs(2),
        max: std::time::Duration::from_secs(60),
    };
    let q = Outbox::open(file_store(dir.path()))
        .await
        .unwrap()
        .with_backoff(backoff);
    let r = q.submit(&client, sale(100), None, 10_000).await.unwrap();
    assert!(matches!(r, Submitted::Queued(_)));
    q.enqueue(sale(200), None, 10_001).await.unwrap();

    let head = &q.entries()[0];
    assert_eq!(head.attempts, 1);
    assert_eq!(head.last_error.as_ref().unwrap().code, "network");
    // Equal jitter: between 1 s and 2 s after the failure.
    let due = q.next_attempt_at().unwrap();
    assert!((11_000..12_000).contains(&due), "{due}");

    // Not due yet: nothing is tried, and the last error stays.
    let r = q.sync(&client, 10_500).await;
    assert!(r.stopped_by.is_none() && r.sent.is_empty());
    assert_eq!(r.remaining, 2);
    assert_eq!(q.entries()[0].attempts, 1);
    assert_eq!(q.last_error().unwrap().code, "network");

    // Due: tried again, the run stops at the first (order of sale kept), the second
    // was never tried.
    let r = q.sync(&client, due).await;
    assert_eq!(r.stopped_by.unwrap().code(), "network");
    let e = q.entries();
    assert_eq!((e[0].attempts, e[1].attempts), (2, 0));
    let due2 = q.next_attempt_at().unwrap();
    assert!((due + 2_000..due + 4_000).contains(&due2), "{due} {due2}");

    // Forced: tried at once regardless of the schedule.
    let r = q.sync_now(&client, due + 1).await;
    assert!(r.stopped_by.is_some());
    assert_eq!(q.entries()[0].attempts, 3);
    assert_eq!(q.last_error().unwrap().code, "network");

    // All of it is on disk.
    drop(q);
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.entries()[0].attempts, 3);
}

#[tokio::test]
async fn without_a_key_nothing_is_sent_or_lost() {
    let client = Client::new(ClientConfig::new("http://127.0.0.1:9", TrustedKeys::new())).unwrap();
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let r = q.submit(&client, sale(100), None, 0).await.unwrap();
    assert!(matches!(r, Submitted::Queued(_)));
    assert_eq!(q.len(), 1);
    assert_eq!(q.last_error().unwrap().code, "not_activated");
}

#[test]
fn works_without_a_tokio_runtime() {
    // Store calls run inline when no runtime is around (e.g. a plain executor).
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Open inside the runtime, enqueue through a bare poll loop outside of it.
    let q = rt.block_on(Outbox::open(file_store(dir.path()))).unwrap();
    let fut = q.enqueue(sale(100), None, 0);
    let key = futures_lite_block_on(fut).unwrap();
    assert_eq!(q.entries()[0].idempotency_key, key);
}

/// Polls a future that never needs waking (store calls complete inline).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn idempotency_keys() {
    assert!(IdempotencyKey::new("").is_err());
    assert!(IdempotencyKey::new(&"a".repeat(65)).is_err());
    assert!(IdempotencyKey::new(&"a".repeat(64)).is_ok());
    assert!(IdempotencyKey::new("é").is_err());
    let a = IdempotencyKey::generate().unwrap();
    let b = IdempotencyKey::generate().unwrap();
    assert_ne!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<IdempotencyKey>(&json).unwrap(), a);
    assert!(serde_json::from_str::<IdempotencyKey>("\"a b\"").is_err());
}

/// A tmpfs of `size` mounted for one test (needs root); unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> std::result::Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallDisk(dir))
    }

    fn grow(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot grow the tmpfs");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// A till whose disk fills up: queuing a sale fails with `storage_error` (the app must
/// not take that sale as kept), every sale queued before is still there after a
/// restart, in order, no half-written file is left, and queuing works again once
/// there is space.
#[tokio::test]
async fn a_full_disk_refuses_new_sales_and_keeps_the_queued_ones() {
    let disk = match SmallDisk::mount("48k") {
        Ok(d) => d,
        Err(reason) => {
            report_skip(
                "a_full_disk_refuses_new_sales_and_keeps_the_queued_ones",
                &format!("cannot mount a small tmpfs (needs root): {reason}"),
            );
            return;
        }
    };
    let dir = disk.0.path();
    let mut keys = Vec::new();
    let refused = {
        let q = Outbox::open(file_store(dir)).await.unwrap();
        let mut refused = None;
        for i in 0..10_000 {
            match q.enqueue(sale(100 + i), None, 1_000 + i).await {
                Ok(k) => keys.push(k),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let refused = refused.expect("the disk never filled");
        assert_eq!(q.len(), keys.len(), "a refused sale is not in the queue");
        // Still full: refused again, nothing changes.
        assert_eq!(
            q.enqueue(sale(1), None, 5_000).await.unwrap_err().code(),
            "storage_error"
        );
        assert_eq!(q.len(), keys.len());
        refused
    }; // the app stops
    assert_eq!(refused.code(), "storage_error");
    assert!(keys.len() >= 3, "only {} sales fitted", keys.len());
    let names = files(dir);
    assert!(
        names.iter().all(|n| n.ends_with(".json")),
        "half-written files left: {names:?}"
    );
    assert_eq!(names.len(), keys.len());

    let q = Outbox::open(file_store(dir)).await.unwrap();
    let stored: Vec<IdempotencyKey> = q.entries().into_iter().map(|e| e.idempotency_key).collect();
    assert_eq!(stored, keys);
    assert!(q.corrupt_records().is_empty());

    disk.grow("1m");
    let more = q.enqueue(sale(7), None, 9_000).await.unwrap();
    assert_eq!(q.len(), keys.len() + 1);
    assert_eq!(q.entries().last().unwrap().idempotency_key, more);
}

/// A register's chain of `n` receipts signed by `key`; `total` tells chains apart.
fn receipts(key: &tillgate_core::SigningKey, n: u64, total: i64) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    for seq in 1..=n {
        let claims = tillgate_core::ReceiptClaims {
            iss: "https://pos.example".into(),
            sub: "TG-7Q2M-K4PX".into(),
            iat: 1_751_328_000 + seq as i64,
            seq,
            txid: format!("tx_{seq}"),
            txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
            prev: chain
                .last()
                .map(|r| tillgate_core::receipt_link(r))
                .unwrap_or_default(),
            tx_type: "sale".into(),
            total,
            currency: "SEK".into(),
        };
        chain.push(tillgate_core::sign_receipt(&claims, key).unwrap());
    }
    chain
}

/// A client trusting `key` (its server is never reached).
fn trusting(key: &tillgate_core::SigningKey) -> Client {
    let mut trusted = TrustedKeys::new();
    trusted.add_jwk(&key.public_jwk()).unwrap();
    Client::new(ClientConfig::new("http://127.0.0.1:9", trusted)).unwrap()
}

/// `witness_saw` as a sale sent now; the witness must be written.
async fn saw(q: &Outbox, client: &Client, receipt: &str, now_ms: i64) -> Option<WitnessProblem> {
    let (problem, kept) = q
        .witness_saw(client, receipt, now_ms, q.witness_epoch())
        .await;
    kept.unwrap();
    problem
}

/// `witness_checked` for a check begun now.
async fn checked(q: &Outbox, client: &Client, receipts: Vec<String>) {
    q.witness_checked(client, receipts, q.witness_epoch())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_witness_follows_the_chain_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = tillgate_core::SigningKey::from_seed(&[11; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 4, 100);
    {
        let q = Outbox::open(file_store(dir.path())).await.unwrap();
        assert_eq!(q.witness(), None);
        for (r, kept) in [(0, 0), (1, 1), (0, 1), (3, 1)] {
            // Forward one linked receipt at a time; an earlier one, or one past a
            // gap, leaves it.
            assert_eq!(saw(&q, &client, &chain[r], 5).await, None);
            assert_eq!(q.witness().as_ref(), Some(&chain[kept]));
        }
        // A crash while writing the next witness leaves a torn temp file.
        std::fs::write(dir.path().join("witness.json.tmp"), b"{\"v\":1,\"rec").unwrap();
    }
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    assert_eq!(q.witness().as_ref(), Some(&chain[1]));
    assert!(q.corrupt_records().is_empty() && q.last_error().is_none());
    assert!(!dir.path().join("witness.json.tmp").exists());
    // A check that passed bridges the gap: the witness moves to the checked chain's end.
    checked(&q, &client, chain.clone()).await;
    assert_eq!(q.witness().as_ref(), Some(&chain[3]));
    // A check of a shorter chain (fetched before a later sale answered) leaves it.
    checked(&q, &client, chain[..3].to_vec()).await;
    assert_eq!(q.witness().as_ref(), Some(&chain[3]));
    let q = restart(q, dir.path()).await;
    assert_eq!(q.witness().as_ref(), Some(&chain[3]));
    assert_eq!(q.witness_problem(), None);
}

#[tokio::test]
async fn a_receipt_that_does_not_fit_is_kept_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let key = tillgate_core::SigningKey::from_seed(&[12; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 3, 100);
    let fork = receipts(&key, 3, 1);
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    saw(&q, &client, &chain[0], 1).await;
    saw(&q, &client, &chain[1], 2).await;
    // Another receipt for sequence 2: the server forked this register's chain.
    let p = saw(&q, &client, &fork[1], 3).await.unwrap();
    assert_eq!(
        (p.code.as_str(), &p.receipt, p.at_ms),
        ("witness_mismatch", &fork[1], 3)
    );
    assert!(p.message.contains("receipt 2"), "{}", p.message);
    // The next receipt of the fork does not link to the witness: found too, but the
    // first problem stays as the evidence, and the witness does not move.
    let second = saw(&q, &client, &fork[2], 4).await.unwrap();
    assert_eq!(second.receipt, fork[2]);
    assert_eq!(q.witness_problem().as_ref(), Some(&p));
    assert_eq!(q.witness().as_ref(), Some(&chain[1]));
    // A receipt signed by an unknown key.
    let stranger = receipts(&tillgate_core::SigningKey::from_seed(&[13; 32]), 3, 100);
    let bad = saw(&q, &client, &stranger[2], 5).await.unwrap();
    assert_eq!(bad.code, "invalid_receipt");
    // Evidence survives a restart, until the app resets the witness.
    let q = restart(q, dir.path()).await;
    assert_eq!(q.witness_problem().as_ref(), Some(&p));
    assert_eq!(q.witness().as_ref(), Some(&chain[1]));
    q.reset_witness().await.unwrap();
    assert_eq!((q.witness(), q.witness_problem()), (None, None));
    let q = restart(q, dir.path()).await;
    assert_eq!((q.witness(), q.witness_problem()), (None, None));
    // A register activated afresh starts its new chain's witness.
    saw(&q, &client, &fork[0], 6).await;
    assert_eq!(q.witness().as_ref(), Some(&fork[0]));
}

#[tokio::test]
async fn an_unreadable_witness_is_reported_and_never_written_over() {
    let key = tillgate_core::SigningKey::from_seed(&[14; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let dir = tempfile::tempdir().unwrap();
    let torn = b"{\"v\":1,\"receipt\":".to_vec();
    std::fs::write(dir.path().join("witness.json"), &torn).unwrap();
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    let corrupt = q.corrupt_records();
    assert_eq!(corrupt.len(), 1);
    assert_eq!(
        (corrupt[0].name.as_str(), corrupt[0].id),
        ("witness.json", None)
    );
    assert_eq!(q.last_error().unwrap().code, "queue_record_corrupt");
    // Sales go on; the witness stays still and the record as it was.
    assert_eq!(saw(&q, &client, &chain[0], 1).await, None);
    checked(&q, &client, chain.clone()).await;
    assert_eq!(q.witness(), None);
    assert_eq!(
        std::fs::read(dir.path().join("witness.json")).unwrap(),
        torn
    );
    // A check without the witness would pass a history cut back: it is refused, before
    // anything is fetched (this client's server is never reachable).
    for e in [
        q.verify_history(&client).await.unwrap_err(),
        q.verify_history_since(&client).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), "queue_record_corrupt", "{e}");
        assert!(e.to_string().contains("witness.json"), "{e}");
    }
    // Once the app has looked at it and removed it, the witness starts again.
    q.remove_corrupt("witness.json").await.unwrap();
    assert!(q.corrupt_records().is_empty() && q.last_error().is_none());
    assert!(!dir.path().join("witness.json").exists());
    saw(&q, &client, &chain[0], 2).await;
    assert_eq!(q.witness().as_ref(), Some(&chain[0]));
    // The check itself runs now (and needs an activated client).
    let e = q.verify_history(&client).await.unwrap_err();
    assert_eq!(e.code(), "not_activated", "{e}");
    // A record of a later format is not read as this one.
    let store = Arc::new(MemoryStore::new());
    store.insert_raw_witness(br#"{"v":2,"receipt":null,"problem":null}"#.to_vec());
    let q = Outbox::open(store.clone()).await.unwrap();
    assert!(q.corrupt_records()[0].reason.contains("version 2"));
    // Resetting is the app's explicit choice to write over it.
    q.reset_witness().await.unwrap();
    assert!(q.corrupt_records().is_empty());
    assert_eq!(
        decode_witness(&store.raw_witness().unwrap()).unwrap(),
        WitnessRecord {
            v: 1,
            receipt: None,
            problem: None,
            resets: 1
        }
    );
}

#[tokio::test]
async fn a_reset_is_not_undone_by_what_began_before_it() {
    let key = tillgate_core::SigningKey::from_seed(&[15; 32]);
    let client = trusting(&key);
    let old = receipts(&key, 3, 100);
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    saw(&q, &client, &old[0], 1).await;
    // A check and a sale of the old registration are under way ...
    let epoch = q.witness_epoch();
    // ... when the register is activated afresh.
    q.reset_witness().await.unwrap();
    q.witness_checked(&client, old.clone(), epoch)
        .await
        .unwrap();
    let (problem, kept) = q.witness_saw(&client, &old[1], 2, epoch).await;
    kept.unwrap();
    assert_eq!((q.witness(), problem), (None, None));
    // What begins after the reset moves it.
    checked(&q, &client, old.clone()).await;
    assert_eq!(q.witness().as_ref(), Some(&old[2]));
}

/// A store whose witness writes fail while `fail` is set (a full disk).
struct FailingWitness {
    inner: MemoryStore,
    fail: std::sync::atomic::AtomicBool,
}

impl QueueStore for FailingWitness {
    fn load(&self) -> Result<StoreContents> {
        self.inner.load()
    }
    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        self.inner.save(entry)
    }
    fn remove(&self, id: u64) -> Result<()> {
        self.inner.remove(id)
    }
    fn remove_corrupt(&self, name: &str) -> Result<()> {
        self.inner.remove_corrupt(name)
    }
    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(ClientError::Storage("no space left on device".into()));
        }
        self.inner.save_witness(record)
    }
}

#[tokio::test]
async fn a_witness_that_cannot_be_written_moves_in_memory_and_is_written_later() {
    let key = tillgate_core::SigningKey::from_seed(&[16; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 4, 100);
    let store = Arc::new(FailingWitness {
        inner: MemoryStore::new(),
        fail: false.into(),
    });
    let stored = |s: &FailingWitness| decode_witness(&s.inner.raw_witness().unwrap()).unwrap();
    let q = Outbox::open(store.clone()).await.unwrap();
    saw(&q, &client, &chain[0], 1).await;
    store.fail.store(true, Ordering::SeqCst);
    let (problem, kept) = q
        .witness_saw(&client, &chain[1], 2, q.witness_epoch())
        .await;
    assert_eq!(problem, None);
    assert_eq!(kept.unwrap_err().code(), "storage_error");
    // It moved all the same; the stored one lags behind, still one of the chain's.
    assert_eq!(q.witness().as_ref(), Some(&chain[1]));
    assert_eq!(stored(&store).receipt.as_ref(), Some(&chain[0]));
    store.fail.store(false, Ordering::SeqCst);
    // The same receipt again (a resend) does not move it, but writes it now.
    assert_eq!(saw(&q, &client, &chain[1], 3).await, None);
    assert_eq!(stored(&store).receipt.as_ref(), Some(&chain[1]));
    // And a check that passes writes a lagging witness too.
    store.fail.store(true, Ordering::SeqCst);
    let (_, kept) = q
        .witness_saw(&client, &chain[2], 4, q.witness_epoch())
        .await;
    assert!(kept.is_err());
    store.fail.store(false, Ordering::SeqCst);
    checked(&q, &client, chain[..3].to_vec()).await;
    assert_eq!(stored(&store).receipt.as_ref(), Some(&chain[2]));
}

#[tokio::test]
async fn a_witness_kept_by_the_app_is_adopted_once() {
    let key = tillgate_core::SigningKey::from_seed(&[17; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 3, 100);
    let me = "TG-7Q2M-K4PX";
    let dir = tempfile::tempdir().unwrap();
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    // Not a receipt, signed by a key the app does not trust, or another register's.
    let stranger = receipts(&tillgate_core::SigningKey::from_seed(&[18; 32]), 1, 100);
    for (bad, who) in [
        ("x.y.z", me),
        (stranger[0].as_str(), me),
        (&chain[1], "TG-OTHR-0001"),
    ] {
        let e = q.adopt_witness(&client, bad, who).await.unwrap_err();
        assert_eq!(e.code(), "invalid_witness", "{e}");
    }
    assert_eq!(q.witness(), None);
    assert!(q.adopt_witness(&client, &chain[1], me).await.unwrap());
    // Kept across a restart, and moved on by the next sale like any witness.
    let q = restart(q, dir.path()).await;
    assert_eq!(q.witness().as_ref(), Some(&chain[1]));
    // Once the outbox keeps one, it is never replaced.
    assert!(!q.adopt_witness(&client, &chain[0], me).await.unwrap());
    saw(&q, &client, &chain[2], 1).await;
    assert_eq!(q.witness().as_ref(), Some(&chain[2]));
    assert!(!q.adopt_witness(&client, &chain[1], me).await.unwrap());
    assert_eq!(q.witness().as_ref(), Some(&chain[2]));
}

#[tokio::test]
async fn an_adoption_that_cannot_be_stored_changes_nothing() {
    let key = tillgate_core::SigningKey::from_seed(&[19; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let me = "TG-7Q2M-K4PX";
    // A full disk: an error, and nothing adopted (the app keeps its copy and tries again).
    let store = Arc::new(FailingWitness {
        inner: MemoryStore::new(),
        fail: true.into(),
    });
    let q = Outbox::open(store.clone()).await.unwrap();
    let e = q.adopt_witness(&client, &chain[1], me).await.unwrap_err();
    assert_eq!(e.code(), "storage_error");
    assert_eq!((q.witness(), store.inner.raw_witness()), (None, None));
    store.fail.store(false, Ordering::SeqCst);
    assert!(q.adopt_witness(&client, &chain[1], me).await.unwrap());
    assert_eq!(
        decode_witness(&store.inner.raw_witness().unwrap())
            .unwrap()
            .receipt
            .as_ref(),
        Some(&chain[1])
    );
    // An unreadable witness record: refused, and the record left as it was.
    let store = Arc::new(MemoryStore::new());
    store.insert_raw_witness(b"{".to_vec());
    let q = Outbox::open(store.clone()).await.unwrap();
    let e = q.adopt_witness(&client, &chain[1], me).await.unwrap_err();
    assert_eq!(e.code(), "queue_record_corrupt");
    assert_eq!(
        (q.witness(), store.raw_witness()),
        (None, Some(b"{".to_vec()))
    );
}

#[tokio::test]
async fn a_second_store_on_the_same_directory_is_refused_until_the_first_is_dropped() {
    let root = tempfile::tempdir().unwrap();
    // Missing parents are created too.
    let dir = root.path().join("app").join("queue");
    let first = FileStore::open(&dir).unwrap();
    assert!(dir.join("queue.lock").exists());
    for _ in 0..2 {
        let e = FileStore::open(&dir).unwrap_err();
        assert_eq!(e.code(), "queue_in_use", "{e}");
        assert!(matches!(e, ClientError::QueueInUse(_)), "{e:?}");
    }
    // The same directory by another path is the same lock.
    let e = FileStore::open(root.path().join("app/../app/queue")).unwrap_err();
    assert_eq!(e.code(), "queue_in_use");
    // An outbox holds its store's lock for as long as it lives.
    let q = Outbox::open(Arc::new(first)).await.unwrap();
    q.enqueue(sale(100), None, 1).await.unwrap();
    assert_eq!(FileStore::open(&dir).unwrap_err().code(), "queue_in_use");
    drop(q);
    let q = Outbox::open(file_store(&dir)).await.unwrap();
    assert_eq!(q.len(), 1);
    // The lock file is no record.
    assert!(q.corrupt_records().is_empty());
    assert!(q.remove_corrupt("queue.lock").await.is_err());
    assert!(dir.join("queue.lock").exists());
}

#[tokio::test]
async fn load_never_removes_a_temp_file_only_open_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    // A write of this store under way (its temp file is there, not yet renamed).
    let tmp = dir.path().join(format!("tx-{:020}.json.tmp", 7));
    std::fs::write(&tmp, b"{\"v\":1,").unwrap();
    let witness_tmp = dir.path().join("witness.json.tmp");
    std::fs::write(&witness_tmp, b"{").unwrap();
    let contents = store.load().unwrap();
    assert!(contents.entries.is_empty() && contents.corrupt.is_empty());
    assert!(tmp.exists() && witness_tmp.exists());
    // Left by a store that is gone: removed when the next one takes the lock.
    drop(store);
    let _store = FileStore::open(dir.path()).unwrap();
    assert!(!tmp.exists() && !witness_tmp.exists());
}

/// Two outboxes given one store (two browser tabs on one `localStorage`, or an app that
/// opened its outbox twice): each took id 1 at open.
async fn two_outboxes_never_write_over_each_other(store: Arc<dyn QueueStore>) {
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    let ka = a.enqueue(sale(100), None, 1).await.unwrap();
    let kb = b.enqueue(sale(200), None, 2).await.unwrap();
    let kb2 = b.enqueue(sale(300), None, 3).await.unwrap();
    let ka2 = a.enqueue(sale(400), None, 4).await.unwrap();
    assert_eq!(a.entries()[0].id, 1);
    assert_eq!(b.entries().iter().map(|e| e.id).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(a.entries()[1].id, 4);
    // Every sale is stored, each under its own id.
    let stored = store.load().unwrap();
    let keys: Vec<_> = stored
        .entries
        .iter()
        .map(|e| (e.id, e.idempotency_key.clone(), e.transaction.total))
        .collect();
    assert_eq!(
        keys,
        [(1, ka, 100), (2, kb, 200), (3, kb2, 300), (4, ka2, 400)]
    );
}

/// Tab B still holds sale X (id 1) after tab A sent and removed it, and tab C reused id 1
/// for a new sale S: whatever B does with X, S stays.
async fn a_stale_outbox_never_touches_a_reused_record(store: Arc<dyn QueueStore>) {
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    a.enqueue(sale(100), None, 1).await.unwrap();
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    let x = b.entries()[0].clone();
    // A sent X: its record goes.
    store.remove_entry(&x).unwrap();
    let c = Outbox::open(Arc::clone(&store)).await.unwrap();
    let ks = c.enqueue(sale(700), None, 2).await.unwrap();
    assert_eq!(c.entries()[0].id, x.id, "the id is free again and reused");
    let holds_s = |what: &str| {
        let stored = store.load().unwrap();
        assert_eq!(stored.entries.len(), 1, "{what}");
        assert_eq!(stored.entries[0].idempotency_key, ks, "{what}");
        assert_eq!(stored.entries[0].transaction.total, 700, "{what}");
    };
    // B's attempt at X, begun before C reused the id, fails (offline): the record it
    // writes back is another sale now.
    let mut tried = x.clone();
    tried.attempts = 1;
    store.update(&tried).unwrap();
    holds_s("after B's failed attempt");
    // Nor does B's removal (after the server answered X) touch it.
    store.remove_entry(&x).unwrap();
    holds_s("after B's removal");
    // B's next sync takes the store in: S is there to send. X's id holds another sale
    // now, which B cannot tell from a sale written over or lost: B keeps X and writes it
    // back under a free id, never over S (a resend of a sale the server has is answered
    // with the stored one).
    let r = b.sync_now(&offline_client(), 3).await;
    assert!(r.stopped_by.is_some());
    let ids = |entries: &[QueuedTransaction]| -> Vec<(u64, IdempotencyKey)> {
        (entries.iter())
            .map(|e| (e.id, e.idempotency_key.clone()))
            .collect()
    };
    let both = [(x.id, ks.clone()), (2, x.idempotency_key.clone())];
    assert_eq!(ids(&b.entries()), both);
    let stored = store.load().unwrap();
    assert_eq!(ids(&stored.entries), both);
    assert_eq!(stored.entries[0].transaction.total, 700);
    // The store itself still changes and removes a record that holds the sale.
    let mut s_entry = c.entries()[0].clone();
    s_entry.attempts = 5;
    store.update(&s_entry).unwrap();
    assert_eq!(store.load().unwrap().entries[0].attempts, 5);
    store.remove_entry(&s_entry).unwrap();
    assert_eq!(ids(&store.load().unwrap().entries), both[1..]);
}

#[tokio::test]
async fn a_stale_outbox_never_touches_a_reused_memory_record() {
    a_stale_outbox_never_touches_a_reused_record(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_stale_outbox_never_touches_a_reused_file_record() {
    let dir = tempfile::tempdir().unwrap();
    a_stale_outbox_never_touches_a_reused_record(file_store(dir.path())).await;
}

#[tokio::test]
async fn two_outboxes_on_one_memory_store_never_write_over_each_other() {
    two_outboxes_never_write_over_each_other(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn two_outboxes_on_one_file_store_never_write_over_each_other() {
    let dir = tempfile::tempdir().unwrap();
    two_outboxes_never_write_over_each_other(file_store(dir.path())).await;
}

#[tokio::test]
async fn a_store_without_save_new_keeps_working() {
    // `FailingWitness` implements only the required methods: `save_new` is the
    // default, which saves.
    let store = Arc::new(FailingWitness {
        inner: MemoryStore::new(),
        fail: false.into(),
    });
    let q = Outbox::open(store.clone()).await.unwrap();
    let k = q.enqueue(sale(100), None, 1).await.unwrap();
    assert!(store.save_new(&q.entries()[0]).unwrap());
    assert_eq!(store.inner.load().unwrap().entries[0].idempotency_key, k);
}

#[tokio::test]
async fn an_unreadable_file_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(file_store(dir.path())).await.unwrap();
        q.enqueue(sale(100), None, 1).await.unwrap();
    }
    // Directories by a record's and the witness's names: reading them fails.
    let record = dir.path().join(format!("tx-{:020}.json", 3));
    std::fs::create_dir(&record).unwrap();
    std::fs::create_dir(dir.path().join("witness.json")).unwrap();
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    assert_eq!(q.len(), 1);
    let corrupt = q.corrupt_records();
    assert_eq!(corrupt.len(), 2, "{corrupt:?}");
    assert_eq!(corrupt[0].id, Some(3));
    assert!(corrupt[0].reason.contains("cannot be read"), "{corrupt:?}");
    assert_eq!(corrupt[1].name, "witness.json");
    assert_eq!(q.last_error().unwrap().code, "queue_record_corrupt");
    // The witness is in its unreadable state: checks refuse to run without it.
    let e = q.verify_history(&offline_client()).await.unwrap_err();
    assert_eq!(e.code(), "queue_record_corrupt");
    // The unreadable record's id is not reused.
    q.enqueue(sale(200), None, 2).await.unwrap();
    assert_eq!(q.entries()[1].id, 4);
    // Removed once the app has looked at them (empty directories).
    q.remove_corrupt(&corrupt[0].name).await.unwrap();
    q.remove_corrupt("witness.json").await.unwrap();
    assert!(!record.exists() && !dir.path().join("witness.json").exists());
    assert!(q.corrupt_records().is_empty() && q.last_error().is_none());
}

#[tokio::test]
async fn a_record_that_fails_the_local_check_is_failed_and_the_rest_goes_on() {
    let store = Arc::new(MemoryStore::new());
    {
        let q = Outbox::open(store.clone()).await.unwrap();
        q.enqueue(sale(100), None, 1).await.unwrap();
        q.enqueue(sale(200), None, 1).await.unwrap();
    }
    // A digit flipped on disk (or a record an older app version wrote): it still
    // parses, but core's check refuses it before anything is sent.
    let mut v: serde_json::Value = serde_json::from_slice(&store.raw(1).unwrap()).unwrap();
    v["transaction"]["total"] = 900.into();
    store.insert_raw(1, serde_json::to_vec(&v).unwrap());
    let q = Outbox::open(store.clone()).await.unwrap();
    let r = q.sync(&offline_client(), 10).await;
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(r.failed[0].1.code, "invalid_transaction");
    assert_eq!(r.failed[0].1.http_status, None);
    // The sale behind it was tried (and met the network).
    assert_eq!(r.stopped_by.unwrap().code(), "network");
    let e = q.entries();
    assert_eq!(
        (e[0].state, e[1].state),
        (EntryState::Failed, EntryState::Pending)
    );
    assert_eq!(e[1].attempts, 1);
    assert_eq!(q.len(), 1);
    // Failed on disk too, and the app can discard it.
    let q = Outbox::open(store.clone()).await.unwrap();
    assert_eq!(q.failed().len(), 1);
    q.discard(&q.failed()[0].idempotency_key).await.unwrap();
    assert!(store.raw(1).is_none());
    assert_eq!(q.entries().len(), 1);
}

#[test]
fn what_refuses_a_sale_for_good() {
    let api = |status: u16| ClientError::Api {
        status,
        code: format!("http_{status}"),
        detail: String::new(),
        fields: Vec::new(),
    };
    for status in [400u16, 409, 410, 413, 422] {
        assert!(refuses_for_good(&api(status)), "{status}");
    }
    // What a reverse proxy answers during a deploy is retried.
    for status in [404u16, 408, 421, 425] {
        assert!(!refuses_for_good(&api(status)), "{status}");
    }
    assert!(!refuses_for_good(&api(403)));
    assert!(!refuses_for_good(&ClientError::Timeout));
    assert!(!refuses_for_good(&ClientError::NotActivated));
    assert!(!refuses_for_good(&ClientError::InvalidResponse("x".into())));
    // The server answered with another sale: this one is kept pending.
    let mismatch = ClientError::AnswerMismatch("another sale".into());
    assert!(!refuses_for_good(&mismatch));
    assert!(!mismatch.is_transient() && !mismatch.is_auth());
    assert_eq!(mismatch.code(), "answer_mismatch");
    let local = tillgate_core::validate_transaction(&{
        let mut t = sale(100);
        t.total = 5;
        t
    })
    .unwrap_err();
    assert!(refuses_for_good(&ClientError::Core(local)));
}

#[tokio::test]
async fn a_time_far_ahead_counts_as_due_after_the_clock_went_back() {
    let backoff = Backoff {
        initial: std::time::Duration::from_secs(2),
        max: std::time::Duration::from_secs(60),
    };
    let q = Outbox::open(Arc::new(MemoryStore::new()))
        .await
        .unwrap()
        .with_backoff(backoff);
    let client = offline_client();
    // Queued and tried with the clock a year ahead; then the clock is corrected.
    let year = 365 * 24 * 3_600_000;
    let later = 1_700_000_000_000 + year;
    q.submit(&client, sale(100), None, later).await.unwrap();
    assert_eq!(q.entries()[0].attempts, 1);
    let now = 1_700_000_000_000;
    assert!(q.next_attempt_at().unwrap() > now + 60_000);
    let r = q.sync(&client, now).await;
    assert_eq!(r.stopped_by.unwrap().code(), "network");
    assert_eq!(q.entries()[0].attempts, 2);
    // Scheduled from the corrected clock now: within the backoff, not due yet.
    let due = q.next_attempt_at().unwrap();
    assert!((now + 1_000..=now + 60_000).contains(&due), "{due}");
    let r = q.sync(&client, due - 1).await;
    assert!(r.stopped_by.is_none());
    assert_eq!(q.entries()[0].attempts, 2);
}

/// A store whose `save` waits while the test holds `gate`.
struct GatedStore {
    inner: MemoryStore,
    gate: std::sync::Mutex<()>,
}

impl QueueStore for GatedStore {
    fn load(&self) -> Result<StoreContents> {
        self.inner.load()
    }
    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        let _open = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.save(entry)
    }
    fn remove(&self, id: u64) -> Result<()> {
        self.inner.remove(id)
    }
    fn remove_corrupt(&self, name: &str) -> Result<()> {
        self.inner.remove_corrupt(name)
    }
    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        self.inner.save_witness(record)
    }
}

// The gate is held across the timeout on purpose: it keeps the store's write waiting
// on the blocking pool while the enqueue is dropped.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_enqueue_never_leaves_a_record_the_queue_does_not_know() {
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        gate: std::sync::Mutex::new(()),
    });
    let q = Outbox::open(store.clone()).await.unwrap();
    let key = IdempotencyKey::new("till-1:000001").unwrap();
    let held = store.gate.lock().unwrap();
    // The app gives up waiting (a Kotlin withTimeout) while the write is under way.
    let r = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        q.enqueue(sale(100), Some(key.clone()), 1),
    )
    .await;
    assert!(
        r.is_err(),
        "the write was held, the call cannot have finished"
    );
    assert!(q.entries().is_empty() && store.inner.raw(1).is_none());
    drop(held);
    // The write completes on its own, and the queue knows its record.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while q.entries().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(store.inner.raw(1).is_some());
    assert_eq!(q.entries().len(), 1, "stored but unknown to the queue");
    // The app's retry with its key finds it: one record, not two.
    assert_eq!(
        q.enqueue(sale(100), Some(key), 2).await.unwrap(),
        q.entries()[0].idempotency_key
    );
    assert_eq!(store.inner.load().unwrap().entries.len(), 1);
}

/// The witness record a store holds.
fn stored_witness(store: &dyn QueueStore) -> WitnessRecord {
    store.load().unwrap().witness.unwrap().unwrap()
}

/// Two outboxes on one store (two browser tabs on one `localStorage` namespace): B opened
/// before A was given a receipt that forks the chain. B's next sale must not erase A's
/// evidence: B decides against the stored witness, not the copy it loaded at open.
async fn a_problem_one_outbox_found_is_never_erased_by_another(store: Arc<dyn QueueStore>) {
    let key = tillgate_core::SigningKey::from_seed(&[21; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 3, 100);
    let fork = receipts(&key, 3, 1);
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    saw(&a, &client, &chain[0], 1).await;
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    // A is given another receipt for sequence 1: kept as the evidence.
    let p = saw(&a, &client, &fork[0], 2).await.unwrap();
    assert_eq!(p.code, "witness_mismatch");
    // B's next sale moves the witness on, and the evidence stays, in B's copy too.
    assert_eq!(saw(&b, &client, &chain[1], 3).await, None);
    let stored = stored_witness(store.as_ref());
    assert_eq!(stored.problem.as_ref(), Some(&p));
    assert_eq!(stored.receipt.as_ref(), Some(&chain[1]));
    assert_eq!(b.witness_problem().as_ref(), Some(&p));
    assert_eq!(b.witness().as_ref(), Some(&chain[1]));
    // A check by A (whose copy is older now) keeps it too.
    checked(&a, &client, chain.clone()).await;
    let stored = stored_witness(store.as_ref());
    assert_eq!(stored.problem.as_ref(), Some(&p));
    assert_eq!(stored.receipt.as_ref(), Some(&chain[2]));
    // A reload (a third tab) finds it.
    let c = Outbox::open(Arc::clone(&store)).await.unwrap();
    assert_eq!(c.witness_problem(), Some(p));
    // Only a reset forgets it, and the other outboxes follow at their next change.
    c.reset_witness().await.unwrap();
    assert_eq!(saw(&b, &client, &chain[2], 4).await, None);
    assert_eq!((b.witness(), b.witness_problem()), (None, None));
    assert_eq!(
        stored_witness(store.as_ref()),
        WitnessRecord {
            v: 1,
            receipt: None,
            problem: None,
            resets: 1
        }
    );
}

#[tokio::test]
async fn a_problem_one_outbox_found_is_never_erased_by_another_on_a_memory_store() {
    a_problem_one_outbox_found_is_never_erased_by_another(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_problem_one_outbox_found_is_never_erased_by_another_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    a_problem_one_outbox_found_is_never_erased_by_another(file_store(dir.path())).await;
}

/// B's copy of the witness is at sequence 3 when A's sales move the stored one to 9. B
/// resends a sale both hold, and the server answers its old receipt, sequence 4, which
/// continues B's copy: the stored witness must stay at 9, or a later rewrite of sequences
/// 6 to 9 would go unseen.
async fn the_witness_never_moves_back_for_a_stale_outbox(store: Arc<dyn QueueStore>) {
    let key = tillgate_core::SigningKey::from_seed(&[22; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 9, 100);
    let rewritten = receipts(&key, 9, 1);
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    for r in &chain[..3] {
        saw(&a, &client, r, 1).await;
    }
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    assert_eq!(b.witness().as_ref(), Some(&chain[2]));
    for r in &chain[3..] {
        saw(&a, &client, r, 2).await;
    }
    assert_eq!(saw(&b, &client, &chain[3], 3).await, None);
    assert_eq!(
        stored_witness(store.as_ref()).receipt.as_ref(),
        Some(&chain[8])
    );
    assert_eq!(b.witness().as_ref(), Some(&chain[8]));
    // Nor does a check B fetched before A's sales move it back to the check's end.
    checked(&b, &client, chain[..5].to_vec()).await;
    assert_eq!(
        stored_witness(store.as_ref()).receipt.as_ref(),
        Some(&chain[8])
    );
    assert_eq!(b.witness().as_ref(), Some(&chain[8]));
    // So the server giving another receipt for sequence 9 is found, by either outbox.
    let p = saw(&b, &client, &rewritten[8], 4).await.unwrap();
    assert_eq!(p.code, "witness_mismatch");
    assert_eq!(stored_witness(store.as_ref()).problem, Some(p.clone()));
    assert_eq!(
        a.witness_problem(),
        None,
        "A has not looked at the store since"
    );
    saw(&a, &client, &chain[8], 5).await;
    assert_eq!(a.witness_problem(), Some(p));
}

#[tokio::test]
async fn the_witness_never_moves_back_for_a_stale_outbox_on_a_memory_store() {
    the_witness_never_moves_back_for_a_stale_outbox(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn the_witness_never_moves_back_for_a_stale_outbox_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    the_witness_never_moves_back_for_a_stale_outbox(file_store(dir.path())).await;
}

/// B opened before A queued a sale: B's next sync finds it (and tries it). Once A sent
/// it and its record went, B cannot tell that from a record the store lost: it keeps the
/// sale, writes it back and sends it again (the server answers with the stored sale,
/// after which B forgets it: see the stub tests).
async fn an_outbox_picks_up_what_another_queued(store: Arc<dyn QueueStore>) {
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    let ka = a.enqueue(sale(100), None, 1).await.unwrap();
    assert!(b.is_empty());
    let r = b.sync_now(&offline_client(), 2).await;
    assert_eq!(r.stopped_by.unwrap().code(), "network");
    assert_eq!(r.remaining, 1);
    let e = b.entries();
    assert_eq!((e.len(), &e[0].idempotency_key, e[0].attempts), (1, &ka, 1));
    // B's own next sale takes the next free id.
    let kb = b.enqueue(sale(200), None, 3).await.unwrap();
    assert_eq!(b.entries()[1].id, 2);
    // A sent its sale: the record goes. B keeps it, written back after its own sale.
    store.remove_entry(&a.entries()[0]).unwrap();
    let r = b.sync(&offline_client(), 4).await;
    assert_eq!(r.remaining, 2);
    let ids = |entries: Vec<QueuedTransaction>| -> Vec<(u64, IdempotencyKey)> {
        (entries.into_iter())
            .map(|e| (e.id, e.idempotency_key))
            .collect()
    };
    assert_eq!(ids(b.entries()), [(2, kb), (3, ka)]);
    assert_eq!(ids(store.load().unwrap().entries), ids(b.entries()));
}

#[tokio::test]
async fn an_outbox_picks_up_what_another_queued_on_a_memory_store() {
    an_outbox_picks_up_what_another_queued(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn an_outbox_picks_up_what_another_queued_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    an_outbox_picks_up_what_another_queued(file_store(dir.path())).await;
}

/// A client trusting `key` whose server is never reachable, with an API key: its syncs
/// try every sale and meet the network.
fn offline_client_trusting(key: &tillgate_core::SigningKey) -> Client {
    let c = trusting(key);
    c.set_api_key(tillgate_core::generate_api_key(40).unwrap());
    c
}

/// Each queued sale's id, key and state.
fn held(entries: Vec<QueuedTransaction>) -> Vec<(u64, IdempotencyKey, EntryState)> {
    (entries.into_iter())
        .map(|e| (e.id, e.idempotency_key, e.state))
        .collect()
}

/// The store is wiped while sales are queued (an app's logout code calling
/// `localStorage.clear()`, the user clearing site data: every record and the witness
/// go). The outbox keeps every sale, pending and failed, and writes them back in their
/// order of sale, and writes back the witness with the evidence of a fork it holds: a
/// wiped store is no reset.
async fn a_wiped_store_loses_no_sale(store: Arc<dyn QueueStore>, wipe: impl Fn()) {
    use EntryState::{Failed, Pending};
    let key = tillgate_core::SigningKey::from_seed(&[61; 32]);
    let client = offline_client_trusting(&key);
    let chain = receipts(&key, 1, 100);
    let fork = receipts(&key, 1, 1);
    let mut keys = Vec::new();
    {
        let q = Outbox::open(Arc::clone(&store)).await.unwrap();
        for total in [100, 200, 300] {
            keys.push(q.enqueue(sale(total), None, 1).await.unwrap());
        }
    }
    // The server refused the second for good.
    let mut refused = store.load().unwrap().entries[1].clone();
    refused.state = Failed;
    store.update(&refused).unwrap();
    let q = Outbox::open(Arc::clone(&store)).await.unwrap();
    saw(&q, &client, &chain[0], 2).await;
    let p = saw(&q, &client, &fork[0], 3).await.unwrap();
    wipe();
    assert!(store.load().unwrap().entries.is_empty());
    let r = q.sync_now(&client, 4).await;
    assert_eq!(r.stopped_by.unwrap().code(), "network");
    assert_eq!(r.remaining, 2);
    assert_eq!(q.last_error().unwrap().code, "network");
    let expected = vec![
        (4, keys[0].clone(), Pending),
        (5, keys[1].clone(), Failed),
        (6, keys[2].clone(), Pending),
    ];
    assert_eq!(held(q.entries()), expected);
    assert_eq!(held(store.load().unwrap().entries), expected);
    assert_eq!(q.entries()[0].attempts, 1, "the oldest was tried");
    assert_eq!(
        (q.witness(), q.witness_problem()),
        (Some(chain[0].clone()), Some(p.clone()))
    );
    let w = stored_witness(store.as_ref());
    assert_eq!(
        (w.receipt, w.problem),
        (Some(chain[0].clone()), Some(p.clone()))
    );
    // Stored again: a reload finds it all.
    drop(q);
    let q = Outbox::open(store).await.unwrap();
    assert_eq!(held(q.entries()), expected);
    assert_eq!(q.witness_problem(), Some(p));
}

#[tokio::test]
async fn a_wiped_memory_store_loses_no_sale() {
    let store = Arc::new(MemoryStore::new());
    let wiped = Arc::clone(&store);
    a_wiped_store_loses_no_sale(store, move || wiped.clear()).await;
}

#[tokio::test]
async fn a_wiped_file_store_loses_no_sale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    a_wiped_store_loses_no_sale(file_store(dir.path()), move || {
        for name in files(&path) {
            std::fs::remove_file(path.join(name)).unwrap();
        }
    })
    .await;
}

/// Another outbox discarded a failed sale: it stays discarded here, even when that left
/// the store empty (no witness was ever stored, so nothing tells it from a wiped store:
/// the discard wins for a failed sale). A pending sale whose record is gone is kept all
/// the same: pending sales cannot be discarded.
#[tokio::test]
async fn a_failed_sale_another_outbox_discarded_stays_discarded() {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryStore::new());
    let failed = {
        let q = Outbox::open(Arc::clone(&store)).await.unwrap();
        q.enqueue(sale(100), None, 1).await.unwrap();
        let mut e = q.entries()[0].clone();
        e.state = EntryState::Failed;
        store.update(&e).unwrap();
        e.idempotency_key
    };
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    let kp = a.enqueue(sale(200), None, 2).await.unwrap();
    b.discard(&failed).await.unwrap();
    // The pending sale's record goes too (another outbox sent it, or it was lost).
    store.remove_entry(&a.entries()[1]).unwrap();
    assert!(store.load().unwrap().entries.is_empty());
    let r = a.sync_now(&offline_client(), 3).await;
    assert_eq!(r.remaining, 1);
    let expected = vec![(3, kp, EntryState::Pending)];
    assert_eq!(held(a.entries()), expected);
    assert_eq!(held(store.load().unwrap().entries), expected);
    assert!(a.failed().is_empty());
}

/// A wiped store that cannot be written (a full quota, storage blocked): the sales stay
/// in memory (and are sent all the same), the witness and its evidence too, and the
/// storage error is the queue's last error. The next sync writes the sales back, the
/// failed one too (its record is missing because this outbox could not write it, not
/// because another outbox discarded it), and the witness goes with its next change.
#[tokio::test]
async fn sales_a_wiped_store_cannot_take_back_are_kept_and_reported() {
    let key = tillgate_core::SigningKey::from_seed(&[62; 32]);
    let client = offline_client_trusting(&key);
    let chain = receipts(&key, 2, 100);
    let fork = receipts(&key, 1, 1);
    let store = Arc::new(Flaky::default());
    let mut keys = Vec::new();
    {
        let q = Outbox::open(store.clone()).await.unwrap();
        for total in [100, 200] {
            keys.push(q.enqueue(sale(total), None, 1).await.unwrap());
        }
    }
    let mut refused = store.inner.load().unwrap().entries[0].clone();
    refused.state = EntryState::Failed;
    store.inner.update(&refused).unwrap();
    let q = Outbox::open(store.clone()).await.unwrap();
    saw(&q, &client, &chain[0], 2).await;
    let p = saw(&q, &client, &fork[0], 3).await.unwrap();
    store.inner.clear();
    store.fail.store(true, Ordering::SeqCst);
    store.fail_records.store(true, Ordering::SeqCst);
    let r = q.sync_now(&client, 4).await;
    assert_eq!(r.remaining, 1);
    assert_eq!(r.stopped_by.unwrap().code(), "network", "sent all the same");
    assert_eq!(q.last_error().unwrap().code, "storage_error");
    let expected = vec![
        (3, keys[0].clone(), EntryState::Failed),
        (4, keys[1].clone(), EntryState::Pending),
    ];
    assert_eq!(held(q.entries()), expected);
    assert!(store.inner.load().unwrap().entries.is_empty());
    assert_eq!(
        (q.witness(), q.witness_problem()),
        (Some(chain[0].clone()), Some(p.clone()))
    );
    // Writable again.
    store.fail.store(false, Ordering::SeqCst);
    store.fail_records.store(false, Ordering::SeqCst);
    let r = q.sync_now(&client, 5).await;
    assert_eq!(r.remaining, 1);
    assert_eq!(q.last_error().unwrap().code, "network");
    assert_eq!(held(q.entries()), expected);
    assert_eq!(held(store.inner.load().unwrap().entries), expected);
    assert_eq!(q.witness_problem().as_ref(), Some(&p));
    saw(&q, &client, &chain[1], 6).await;
    let w = stored_witness(store.as_ref());
    assert_eq!((w.receipt, w.problem), (Some(chain[1].clone()), Some(p)));
}

/// Reports a test that did not run its checks, as the server's tests do: a `SKIP` line on
/// stderr (written around libtest's capture, so it shows for a passing test too) and
/// appended to `$TILLGATE_SKIP_LOG` (scripts/test.sh counts it), else
/// `target/test-logs/skips.txt` of the workspace.
fn report_skip(test: &str, reason: &str) {
    use std::io::Write as _;
    let line = format!("SKIP tillgate_client::{test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    let path = match std::env::var_os("TILLGATE_SKIP_LOG") {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs/skips.txt"),
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Receipt `seq` of another chain of the same register: it links `prev`, as the
/// receipt at `seq` of `receipts(key, _, _)` does, but is another receipt (a fork).
fn forked_after(key: &tillgate_core::SigningKey, prev: &str, seq: u64, total: i64) -> String {
    let claims = tillgate_core::ReceiptClaims {
        iss: "https://pos.example".into(),
        sub: "TG-7Q2M-K4PX".into(),
        iat: 1_751_328_000 + seq as i64,
        seq,
        txid: format!("tx_fork_{seq}"),
        txh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into(),
        prev: tillgate_core::receipt_link(prev),
        tx_type: "sale".into(),
        total,
        currency: "SEK".into(),
    };
    tillgate_core::sign_receipt(&claims, key).unwrap()
}

/// A shared store (like `localStorage`) that misbehaves on demand: witness writes fail
/// while `fail` is set (a full disk); `inject` is written as the witness right after the
/// next read of it (another tab writing between two store calls of this one); the
/// record `unreadable_once` names is reported unreadable by the next `load` (a read that
/// failed for a moment); `gate`, while held, keeps `load` waiting once it has read; new
/// records cannot be written while `fail_records` is set.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    fail: std::sync::atomic::AtomicBool,
    fail_records: std::sync::atomic::AtomicBool,
    inject: std::sync::Mutex<Option<WitnessRecord>>,
    unreadable_once: std::sync::Mutex<Option<u64>>,
    gate: std::sync::Mutex<()>,
    loading: std::sync::atomic::AtomicBool,
}

impl QueueStore for Flaky {
    fn load(&self) -> Result<StoreContents> {
        let mut c = self.inner.load()?;
        self.loading.store(true, Ordering::SeqCst);
        drop(self.gate.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(id) = self.unreadable_once.lock().unwrap().take() {
            c.entries.retain(|e| e.id != id);
            c.corrupt.push(CorruptRecord {
                name: id.to_string(),
                id: Some(id),
                reason: "cannot be read: Input/output error".into(),
            });
        }
        Ok(c)
    }
    fn save(&self, entry: &QueuedTransaction) -> Result<()> {
        self.inner.save(entry)
    }
    fn save_new(&self, entry: &QueuedTransaction) -> Result<bool> {
        if self.fail_records.load(Ordering::SeqCst) {
            return Err(ClientError::Storage("the quota is exceeded".into()));
        }
        self.inner.save_new(entry)
    }
    fn remove(&self, id: u64) -> Result<()> {
        self.inner.remove(id)
    }
    fn update(&self, entry: &QueuedTransaction) -> Result<()> {
        self.inner.update(entry)
    }
    fn remove_entry(&self, entry: &QueuedTransaction) -> Result<()> {
        self.inner.remove_entry(entry)
    }
    fn remove_corrupt(&self, name: &str) -> Result<()> {
        self.inner.remove_corrupt(name)
    }
    fn save_witness(&self, record: &WitnessRecord) -> Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(ClientError::Storage("no space left on device".into()));
        }
        self.inner.save_witness(record)
    }
    fn load_witness(&self) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        let read = self.inner.load_witness();
        if let Some(w) = self.inject.lock().unwrap().take() {
            self.inner.save_witness(&w).unwrap();
        }
        read
    }
}

/// A's write of its receipt 2 failed (A holds it, the store still has receipt 1); tab B
/// then stored another receipt 2 linking receipt 1: the server forked the chain. A's next
/// sync reads the store before sending anything: B's receipt must not silently replace
/// A's, which is the evidence of the fork. A receipt continuing B's, accepted next,
/// would hide it for good.
#[tokio::test]
async fn a_sync_never_drops_a_receipt_this_outbox_could_not_store() {
    let key = tillgate_core::SigningKey::from_seed(&[41; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let other = forked_after(&key, &chain[0], 2, 7);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    saw(&a, &client, &chain[0], 1).await;
    let b = Outbox::open(store.clone()).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let (_, kept) = a
        .witness_saw(&client, &chain[1], 2, a.witness_epoch())
        .await;
    assert_eq!(kept.unwrap_err().code(), "storage_error");
    store.fail.store(false, Ordering::SeqCst);
    assert_eq!(saw(&b, &client, &other, 3).await, None);
    // Nothing queued: the sync only reads the store.
    a.sync_now(&client, 4).await;
    let p = a.witness_problem().expect("the fork was noticed");
    assert_eq!(
        (p.code.as_str(), &p.receipt, p.at_ms),
        ("witness_mismatch", &chain[1], 4)
    );
    assert_eq!(a.witness().as_ref(), Some(&other));
    // A receipt continuing B's moves the witness; the evidence stays, and is stored.
    let next = forked_after(&key, &other, 3, 7);
    assert_eq!(saw(&a, &client, &next, 5).await, None);
    let stored = stored_witness(store.as_ref());
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem.as_ref()),
        (Some(&next), Some(&p))
    );
}

/// The same for a check: it reads the stored witness first, and checks against it.
#[tokio::test]
async fn a_check_never_drops_a_receipt_this_outbox_could_not_store() {
    let key = tillgate_core::SigningKey::from_seed(&[42; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let other = forked_after(&key, &chain[0], 2, 7);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    saw(&a, &client, &chain[0], 1).await;
    let b = Outbox::open(store.clone()).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let (_, kept) = a
        .witness_saw(&client, &chain[1], 2, a.witness_epoch())
        .await;
    assert!(kept.is_err());
    store.fail.store(false, Ordering::SeqCst);
    assert_eq!(saw(&b, &client, &other, 3).await, None);
    // The check itself needs an activated client; reading the witness comes first.
    let e = a.verify_history(&client).await.unwrap_err();
    assert_eq!(e.code(), "not_activated", "{e}");
    let p = a.witness_problem().expect("the fork was noticed");
    // A check reads no clock: the receipt is dated by its own signing time.
    assert_eq!(
        (p.code.as_str(), &p.receipt, p.at_ms),
        ("witness_mismatch", &chain[1], (1_751_328_000 + 2) * 1000)
    );
    // Written with A's next change, whichever: here a check that passed.
    checked(&a, &client, vec![chain[0].clone(), other.clone()]).await;
    assert_eq!(stored_witness(store.as_ref()).problem, Some(p));
}

/// Another tab stores a problem between the adoption's read of the witness and its
/// write, and the write fails: nothing here changed, and the next sale keeps the problem.
#[tokio::test]
async fn a_failed_adoption_never_erases_a_problem_stored_meanwhile() {
    let key = tillgate_core::SigningKey::from_seed(&[43; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    let p = WitnessProblem {
        receipt: forked_after(&key, &chain[0], 1, 7),
        code: "witness_mismatch".into(),
        message: "another receipt for sequence 1".into(),
        at_ms: 1,
    };
    *store.inject.lock().unwrap() = Some(WitnessRecord {
        v: 1,
        problem: Some(p.clone()),
        ..WitnessRecord::default()
    });
    store.fail.store(true, Ordering::SeqCst);
    let e = a
        .adopt_witness(&client, &chain[1], "TG-7Q2M-K4PX")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "storage_error");
    assert_eq!((a.witness(), a.witness_problem()), (None, None));
    store.fail.store(false, Ordering::SeqCst);
    saw(&a, &client, &chain[0], 2).await;
    let stored = stored_witness(store.as_ref());
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem.as_ref()),
        (Some(&chain[0]), Some(&p))
    );
    assert_eq!(a.witness_problem(), Some(p));
}

/// B found the witness unreadable; A then reset it and stored a problem. B's app removes
/// "the unreadable record" from B's list: the record written since stays.
async fn removing_a_corrupt_witness_never_deletes_one_written_since(
    store: Arc<dyn QueueStore>,
    raw: impl Fn() -> Option<Vec<u8>>,
) {
    let key = tillgate_core::SigningKey::from_seed(&[44; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 1, 100);
    let fork = receipts(&key, 1, 1);
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    let name = b.corrupt_records()[0].name.clone();
    a.reset_witness().await.unwrap();
    saw(&a, &client, &chain[0], 1).await;
    let p = saw(&a, &client, &fork[0], 2).await.unwrap();
    b.remove_corrupt(&name).await.unwrap();
    let stored = decode_witness(&raw().expect("the witness was deleted")).unwrap();
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem.as_ref()),
        (Some(&chain[0]), Some(&p))
    );
    // B no longer reports it, and takes it in with its next change.
    assert!(b.corrupt_records().is_empty() && b.last_error().is_none());
    saw(&b, &client, &chain[0], 3).await;
    assert_eq!(b.witness_problem(), Some(p));
    assert_eq!(b.witness().as_ref(), Some(&chain[0]));
}

#[tokio::test]
async fn removing_a_corrupt_witness_never_deletes_one_written_since_on_a_memory_store() {
    let store = Arc::new(MemoryStore::new());
    store.insert_raw_witness(b"{".to_vec());
    let raw = {
        let store = store.clone();
        move || store.raw_witness()
    };
    removing_a_corrupt_witness_never_deletes_one_written_since(store, raw).await;
}

#[tokio::test]
async fn removing_a_corrupt_witness_never_deletes_one_written_since_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.json");
    std::fs::write(&path, b"{").unwrap();
    let raw = move || std::fs::read(&path).ok();
    // One store object given to two outboxes (two outboxes of one app).
    removing_a_corrupt_witness_never_deletes_one_written_since(file_store(dir.path()), raw).await;
}

/// The same for a queue record: written again since B found it unreadable, it stays,
/// and B takes its sale in.
#[tokio::test]
async fn removing_a_corrupt_record_never_deletes_one_written_since() {
    let store = Arc::new(MemoryStore::new());
    store.insert_raw(1, b"{\"v\":1,\"id\":1,\"idem".to_vec());
    let b = Outbox::open(store.clone()).await.unwrap();
    assert_eq!(b.corrupt_records()[0].id, Some(1));
    // Another tab wrote a sale there since (the torn write completed, say).
    let a = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let k = a.enqueue(sale(100), None, 1).await.unwrap();
    store.insert_raw(1, encode_record(&a.entries()[0]).unwrap());
    b.remove_corrupt("1").await.unwrap();
    assert!(store.raw(1).is_some(), "a readable sale was deleted");
    assert!(b.corrupt_records().is_empty() && b.last_error().is_none());
    assert_eq!(b.entries()[0].idempotency_key, k);
    // One still unreadable is removed.
    store.insert_raw(2, b"{".to_vec());
    let b = Outbox::open(store.clone()).await.unwrap();
    b.remove_corrupt("2").await.unwrap();
    assert!(store.raw(2).is_none() && b.corrupt_records().is_empty());
}

/// One failed read of `witness.json` (an I/O error, not a damaged record) mid-session:
/// the witness goes on as this outbox holds it, nothing is reported unreadable, and a
/// receipt forking the chain after that is still found.
#[tokio::test]
async fn a_witness_read_that_fails_for_a_moment_never_freezes_the_witness() {
    let key = tillgate_core::SigningKey::from_seed(&[45; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let dir = tempfile::tempdir().unwrap();
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    saw(&q, &client, &chain[0], 1).await;
    let path = dir.path().join("witness.json");
    let aside = dir.path().join("aside");
    // Reading a directory fails (EISDIR): it stands in for EIO, or too many open files.
    std::fs::rename(&path, &aside).unwrap();
    std::fs::create_dir(&path).unwrap();
    let (p, kept) = q
        .witness_saw(&client, &chain[1], 2, q.witness_epoch())
        .await;
    assert_eq!((p, kept.unwrap_err().code()), (None, "storage_error"));
    assert_eq!(q.witness().as_ref(), Some(&chain[1]));
    assert!(q.corrupt_records().is_empty(), "{:?}", q.corrupt_records());
    std::fs::remove_dir(&path).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    q.sync_now(&offline_client(), 3).await;
    let fork = forked_after(&key, &chain[0], 2, 7);
    let p = saw(&q, &client, &fork, 4)
        .await
        .expect("the fork was found");
    assert_eq!((p.code.as_str(), &p.receipt), ("witness_mismatch", &fork));
    let stored = stored_witness(q.store.as_ref());
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem),
        (Some(&chain[1]), Some(p))
    );
}

/// A witness that could not be read when the outbox opened is reported; once it reads
/// again, the next sale takes it in (nothing had to be removed).
#[tokio::test]
async fn a_witness_unreadable_at_open_is_taken_in_once_it_reads_again() {
    let key = tillgate_core::SigningKey::from_seed(&[46; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let dir = tempfile::tempdir().unwrap();
    let q = Outbox::open(file_store(dir.path())).await.unwrap();
    saw(&q, &client, &chain[0], 1).await;
    let q = {
        drop(q);
        let path = dir.path().join("witness.json");
        std::fs::rename(&path, dir.path().join("aside")).unwrap();
        std::fs::create_dir(&path).unwrap();
        let q = Outbox::open(file_store(dir.path())).await.unwrap();
        assert_eq!(q.corrupt_records()[0].name, "witness.json");
        std::fs::remove_dir(&path).unwrap();
        std::fs::rename(dir.path().join("aside"), &path).unwrap();
        q
    };
    assert_eq!(saw(&q, &client, &chain[1], 2).await, None);
    assert_eq!(q.witness().as_ref(), Some(&chain[1]));
    assert!(q.corrupt_records().is_empty() && q.last_error().is_none());
}

/// A sale this outbox holds whose record the store could not read for a moment is not
/// taken as sent by another tab: it stays queued.
#[tokio::test]
async fn a_sale_whose_record_cannot_be_read_for_a_moment_stays_queued() {
    let store = Arc::new(Flaky::default());
    let q = Outbox::open(store.clone()).await.unwrap();
    let k = q.enqueue(sale(100), None, 1).await.unwrap();
    *store.unreadable_once.lock().unwrap() = Some(q.entries()[0].id);
    let r = q.sync_now(&offline_client(), 2).await;
    assert_eq!(r.remaining, 1);
    assert_eq!(q.entries()[0].idempotency_key, k);
    assert_eq!(q.corrupt_records().len(), 1);
    // Readable again at the next sync: no longer reported.
    q.sync_now(&offline_client(), 3).await;
    assert_eq!(q.entries().len(), 1);
    assert!(q.corrupt_records().is_empty());
}

/// A discard while a sync reads the store: the sale read before the discard does not
/// come back.
// The gate is held across the discard on purpose: it keeps the sync's read waiting on
// the blocking pool.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_discarded_during_a_sync_does_not_come_back() {
    let store = Arc::new(Flaky::default());
    let mut failed = {
        let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
        q.enqueue(sale(100), None, 1).await.unwrap();
        q.entries()[0].clone()
    };
    failed.state = EntryState::Failed;
    store.inner.save(&failed).unwrap();
    let q = Arc::new(Outbox::open(store.clone()).await.unwrap());
    assert_eq!(q.failed().len(), 1);
    let held = store.gate.lock().unwrap();
    store.loading.store(false, Ordering::SeqCst);
    let syncing = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.sync_now(&offline_client(), 2).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store.loading.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(store.loading.load(Ordering::SeqCst), "the sync never read");
    q.discard(&failed.idempotency_key).await.unwrap();
    drop(held);
    syncing.await.unwrap();
    assert!(store.inner.raw(failed.id).is_none());
    assert!(q.entries().is_empty(), "{:?}", q.entries());
}

/// A's write of its first receipt failed, so A knows of no stored witness at all; B then
/// resets the witness (the register activated afresh). A must still see the reset: its
/// old receipt, and a receipt of a sale answered across the reset, never become the new
/// chain's witness.
#[tokio::test]
async fn a_reset_reaches_an_outbox_that_knew_no_stored_witness() {
    let key = tillgate_core::SigningKey::from_seed(&[47; 32]);
    let client = trusting(&key);
    let old = receipts(&key, 2, 100);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    let b = Outbox::open(store.clone()).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let (_, kept) = a.witness_saw(&client, &old[0], 1, a.witness_epoch()).await;
    assert!(kept.is_err());
    store.fail.store(false, Ordering::SeqCst);
    b.reset_witness().await.unwrap();
    assert_eq!(saw(&a, &client, &old[1], 2).await, None);
    assert_eq!((a.witness(), a.witness_problem()), (None, None));
    assert_eq!(stored_witness(store.as_ref()).receipt, None);
    // And a sale of A's begun before another reset, answered after it.
    let c = Outbox::open(store.clone()).await.unwrap();
    let epoch = c.witness_epoch();
    b.reset_witness().await.unwrap();
    let (p, kept) = c.witness_saw(&client, &old[0], 3, epoch).await;
    kept.unwrap();
    assert_eq!((p, c.witness()), (None, None));
    assert_eq!(stored_witness(store.as_ref()).receipt, None);
}

/// B stores a problem A has not reported (A last looked before it): A's reset forgets
/// the witness but keeps that problem, which A reports from then on.
#[tokio::test]
async fn a_reset_never_erases_a_problem_it_did_not_report() {
    let key = tillgate_core::SigningKey::from_seed(&[48; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 1, 100);
    let fork = receipts(&key, 1, 1);
    let store: Arc<dyn QueueStore> = Arc::new(MemoryStore::new());
    let a = Outbox::open(Arc::clone(&store)).await.unwrap();
    let b = Outbox::open(Arc::clone(&store)).await.unwrap();
    saw(&b, &client, &chain[0], 1).await;
    let p = saw(&b, &client, &fork[0], 2).await.unwrap();
    assert_eq!(a.witness_problem(), None);
    a.reset_witness().await.unwrap();
    assert_eq!((a.witness(), a.witness_problem()), (None, Some(p.clone())));
    let stored = stored_witness(store.as_ref());
    assert_eq!((stored.receipt, stored.problem.as_ref()), (None, Some(&p)));
    // Once it was reported (shown), the next reset forgets it.
    a.reset_witness().await.unwrap();
    assert_eq!(stored_witness(store.as_ref()).problem, None);
    // An app passes the problem it showed: one stored since is kept, and answered.
    b.sync_now(&offline_client(), 3).await;
    saw(&b, &client, &chain[0], 3).await;
    let q = saw(&b, &client, &fork[0], 4).await.unwrap();
    assert_eq!(a.reset_witness_seen(None).await.unwrap(), Some(q.clone()));
    assert_eq!(a.reset_witness_seen(Some(&q)).await.unwrap(), None);
    assert_eq!(stored_witness(store.as_ref()).problem, None);
}

/// The count of resets is new: a record written before it reads as never reset, and a
/// record never reset is stored as before.
#[test]
fn a_witness_record_without_a_count_of_resets_still_reads() {
    let old = br#"{"v":1,"receipt":"a.b.c","problem":null}"#;
    let record = decode_witness(old).unwrap();
    assert_eq!(
        (record.receipt.as_deref(), record.resets),
        (Some("a.b.c"), 0)
    );
    assert_eq!(encode_witness(&record).unwrap(), old.to_vec());
    let reset = WitnessRecord {
        resets: 2,
        ..record
    };
    let text = String::from_utf8(encode_witness(&reset).unwrap()).unwrap();
    assert!(text.contains(r#""resets":2"#), "{text}");
}

/// A problem this outbox could not store yet survives the stored witness being
/// unreadable for a while (another tab's write torn, then written again): when it reads
/// again, this outbox's copy is judged against it, not thrown away.
#[tokio::test]
async fn an_unsaved_problem_survives_the_witness_being_unreadable_for_a_while() {
    let key = tillgate_core::SigningKey::from_seed(&[49; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let fork = receipts(&key, 2, 1);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    saw(&a, &client, &chain[0], 1).await;
    store.fail.store(true, Ordering::SeqCst);
    let (p, kept) = a.witness_saw(&client, &fork[0], 2, a.witness_epoch()).await;
    assert!(kept.is_err());
    let p = p.unwrap();
    store.fail.store(false, Ordering::SeqCst);
    let good = store.inner.raw_witness().unwrap();
    store.inner.insert_raw_witness(b"{".to_vec());
    a.sync_now(&offline_client(), 3).await;
    assert_eq!(a.corrupt_records().len(), 1);
    store.inner.insert_raw_witness(good);
    a.sync_now(&offline_client(), 4).await;
    assert!(a.corrupt_records().is_empty());
    assert_eq!(a.witness_problem().as_ref(), Some(&p));
    saw(&a, &client, &chain[1], 5).await;
    let stored = stored_witness(store.as_ref());
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem),
        (Some(&chain[1]), Some(p))
    );
}

/// The witness record as a version of the outbox that keeps no count of resets writes
/// it (a browser tab still on the old code): the count is dropped.
fn written_by_an_older_version(receipt: &str) -> Vec<u8> {
    format!(r#"{{"v":1,"receipt":"{receipt}","problem":null}}"#).into_bytes()
}

/// A tab still on an older version (which drops the count of resets) moves the stored
/// witness while A's sale is in flight. The lower count is no reset: A's answer, a fork
/// of the old tab's receipt, is judged and kept as the problem, and the count comes back
/// with the write.
#[tokio::test]
async fn a_record_an_older_version_wrote_is_no_reset_and_a_fork_of_it_is_judged() {
    let key = tillgate_core::SigningKey::from_seed(&[71; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 2, 100);
    let store = Arc::new(MemoryStore::new());
    let a = Outbox::open(store.clone()).await.unwrap();
    a.reset_witness().await.unwrap();
    saw(&a, &client, &chain[0], 1).await;
    assert_eq!(stored_witness(store.as_ref()).resets, 1);
    let epoch = a.witness_epoch();
    store.insert_raw_witness(written_by_an_older_version(&chain[1]));
    let fork = forked_after(&key, &chain[0], 2, 7);
    let (p, kept) = a.witness_saw(&client, &fork, 2, epoch).await;
    kept.unwrap();
    let p = p.expect("the fork was judged");
    assert_eq!((p.code.as_str(), &p.receipt), ("witness_mismatch", &fork));
    let stored = stored_witness(store.as_ref());
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem, stored.resets),
        (Some(&chain[1]), Some(p), 1)
    );
}

/// C knows one reset and has a sale of the old chain in flight; a tab on an older
/// version writes the witness without the count, A takes that in, then resets (a
/// register activated afresh). The count A writes is higher than any C saw: C takes the
/// reset in, and its old sale never moves the new witness.
#[tokio::test]
async fn a_record_an_older_version_wrote_never_lowers_the_count_of_resets() {
    let key = tillgate_core::SigningKey::from_seed(&[72; 32]);
    let client = trusting(&key);
    let old = receipts(&key, 2, 100);
    let store = Arc::new(MemoryStore::new());
    let a = Outbox::open(store.clone()).await.unwrap();
    let c = Outbox::open(store.clone()).await.unwrap();
    a.reset_witness().await.unwrap();
    c.sync_now(&offline_client(), 1).await;
    let epoch = c.witness_epoch();
    store.insert_raw_witness(written_by_an_older_version(&old[0]));
    a.sync_now(&offline_client(), 2).await;
    assert_eq!(a.witness().as_ref(), Some(&old[0]));
    a.reset_witness().await.unwrap();
    assert_eq!(stored_witness(store.as_ref()).resets, 2);
    let (p, kept) = c.witness_saw(&client, &old[1], 3, epoch).await;
    kept.unwrap();
    assert_eq!((p, c.witness()), (None, None));
    assert_eq!(stored_witness(store.as_ref()).receipt, None);
}

/// A reset by a tab on an older version writes an empty record without a count: the
/// first outbox that finds it counts it, so an outbox that never saw the empty record
/// (the witness moved on since) still takes the reset in.
#[tokio::test]
async fn a_reset_by_an_older_version_is_counted_for_the_outboxes_that_missed_it() {
    let key = tillgate_core::SigningKey::from_seed(&[75; 32]);
    let client = trusting(&key);
    let old = receipts(&key, 2, 100);
    let new = receipts(&key, 1, 5);
    let store = Arc::new(MemoryStore::new());
    let a = Outbox::open(store.clone()).await.unwrap();
    let c = Outbox::open(store.clone()).await.unwrap();
    saw(&a, &client, &old[0], 1).await;
    c.sync_now(&offline_client(), 1).await;
    let epoch = c.witness_epoch();
    store.insert_raw_witness(br#"{"v":1,"receipt":null,"problem":null}"#.to_vec());
    a.sync_now(&offline_client(), 2).await;
    assert_eq!(a.witness(), None);
    assert_eq!(saw(&a, &client, &new[0], 2).await, None);
    assert_eq!(a.witness().as_ref(), Some(&new[0]));
    assert_eq!(stored_witness(store.as_ref()).resets, 1);
    let (p, kept) = c.witness_saw(&client, &old[1], 3, epoch).await;
    kept.unwrap();
    assert_eq!((p, c.witness().as_ref()), (None, Some(&new[0])));
}

/// A stored receipt 1; its writes of receipts 2, 3 and 4 failed (A holds them in
/// memory). Tab B then stored another receipt 2: the server forked the chain. A's next
/// sync judges each receipt it could not store against B's, not only its newest (which
/// lies past a gap from B's and cannot be judged against it): the fork is kept.
#[tokio::test]
async fn every_receipt_this_outbox_could_not_store_is_judged_against_another_tabs() {
    let key = tillgate_core::SigningKey::from_seed(&[73; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 4, 100);
    let other = forked_after(&key, &chain[0], 2, 7);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    saw(&a, &client, &chain[0], 1).await;
    let b = Outbox::open(store.clone()).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    for (i, r) in chain[1..].iter().enumerate() {
        let (p, kept) = a
            .witness_saw(&client, r, 2 + i as i64, a.witness_epoch())
            .await;
        assert!(p.is_none() && kept.is_err());
    }
    assert_eq!(a.witness().as_ref(), Some(&chain[3]));
    store.fail.store(false, Ordering::SeqCst);
    assert_eq!(saw(&b, &client, &other, 9).await, None);
    a.sync_now(&client, 10).await;
    let p = a.witness_problem().expect("the fork was noticed");
    assert_eq!(
        (p.code.as_str(), &p.receipt, p.at_ms),
        ("witness_mismatch", &chain[1], 10)
    );
    assert_eq!(a.witness().as_ref(), Some(&other));
    assert_eq!(stored_witness(store.as_ref()).problem, None);
    // Written with A's next change.
    checked(&a, &client, vec![chain[0].clone(), other.clone()]).await;
    assert_eq!(stored_witness(store.as_ref()).problem, Some(p));
}

/// A could not store its receipt 2; B then stored receipts 2 to 4 of another chain. A's
/// receipt lies too far behind B's witness to be judged against it: it is kept until a
/// check, which must find it in the server's chain. The forked chain does not hold it:
/// the problem. A chain that holds it confirms it.
#[tokio::test]
async fn a_receipt_too_far_behind_another_tabs_witness_is_checked_against_the_chain() {
    let key = tillgate_core::SigningKey::from_seed(&[76; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 4, 100);
    let mut fork = vec![chain[0].clone(), forked_after(&key, &chain[0], 2, 7)];
    for seq in 3..=4 {
        let next = forked_after(&key, fork.last().unwrap(), seq, 7);
        fork.push(next);
    }
    for (server, forked) in [(&fork, true), (&chain, false)] {
        let store = Arc::new(Flaky::default());
        let a = Outbox::open(store.clone()).await.unwrap();
        let b = Outbox::open(store.clone()).await.unwrap();
        saw(&a, &client, &chain[0], 1).await;
        store.fail.store(true, Ordering::SeqCst);
        let (_, kept) = a
            .witness_saw(&client, &chain[1], 2, a.witness_epoch())
            .await;
        assert!(kept.is_err());
        store.fail.store(false, Ordering::SeqCst);
        b.sync_now(&offline_client(), 3).await;
        for r in &server[1..] {
            assert_eq!(saw(&b, &client, r, 4).await, None);
        }
        a.sync_now(&client, 5).await;
        assert_eq!(a.witness().as_ref(), server.last());
        assert_eq!(a.witness_problem(), None);
        assert_eq!(witness::lock(&a.witness).unconfirmed(), [chain[1].clone()]);
        // A check from the witness on does not reach it: it waits.
        checked(&a, &client, server[3..].to_vec()).await;
        assert_eq!(witness::lock(&a.witness).unconfirmed().len(), 1);
        checked(&a, &client, server.clone()).await;
        assert!(witness::lock(&a.witness).unconfirmed().is_empty());
        let p = stored_witness(store.as_ref()).problem;
        if forked {
            let p = p.expect("the fork was noticed");
            assert_eq!(
                (p.code.as_str(), &p.receipt),
                ("witness_mismatch", &chain[1])
            );
            assert_eq!(a.witness_problem(), Some(p));
        } else {
            assert_eq!((p, a.witness_problem()), (None, None));
        }
    }
}

/// A store whose next read of the witness fails (an I/O error), then reads fine.
#[derive(Default)]
struct ReadFailsOnce {
    inner: MemoryStore,
    fail: std::sync::atomic::AtomicBool,
}

impl QueueStore for ReadFailsOnce {
    fn load(&self) -> Result<StoreContents> {
        self.inner.load()
    }
    fn save(&self, e: &QueuedTransaction) -> Result<()> {
        self.inner.save(e)
    }
    fn remove(&self, id: u64) -> Result<()> {
        self.inner.remove(id)
    }
    fn remove_corrupt(&self, n: &str) -> Result<()> {
        self.inner.remove_corrupt(n)
    }
    fn save_witness(&self, r: &WitnessRecord) -> Result<()> {
        self.inner.save_witness(r)
    }
    fn load_witness(&self) -> Result<Option<std::result::Result<WitnessRecord, CorruptRecord>>> {
        if self.fail.swap(false, Ordering::SeqCst) {
            return Err(ClientError::Storage("Input/output error".into()));
        }
        self.inner.load_witness()
    }
}

/// B stored a problem A never showed; A's reset cannot read the stored record (an I/O
/// error): nothing is written over, and the read error is the answer. Once the store
/// reads again, the reset keeps B's problem.
#[tokio::test]
async fn a_reset_that_cannot_read_the_witness_never_writes_over_it() {
    let key = tillgate_core::SigningKey::from_seed(&[74; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 1, 100);
    let fork = receipts(&key, 1, 1);
    let store = Arc::new(ReadFailsOnce::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    let b = Outbox::open(store.clone()).await.unwrap();
    saw(&b, &client, &chain[0], 1).await;
    let p = saw(&b, &client, &fork[0], 2).await.unwrap();
    assert_eq!(a.witness_problem(), None);
    store.fail.store(true, Ordering::SeqCst);
    let e = a.reset_witness_seen(None).await.unwrap_err();
    assert_eq!(e.code(), "storage_error");
    let stored = stored_witness(&store.inner);
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem.as_ref()),
        (Some(&chain[0]), Some(&p))
    );
    assert_eq!(a.reset_witness_seen(None).await.unwrap(), Some(p.clone()));
    assert_eq!(stored_witness(&store.inner).problem, Some(p));
}

/// A record that does not decode is still written over by a reset whose read fails:
/// the app asked to reset the witness it was told is unreadable.
#[tokio::test]
async fn a_reset_writes_over_a_record_known_not_to_decode_even_when_the_read_fails() {
    let store = Arc::new(ReadFailsOnce::default());
    store.inner.insert_raw_witness(b"{".to_vec());
    let a = Outbox::open(store.clone()).await.unwrap();
    assert_eq!(a.corrupt_records().len(), 1);
    store.fail.store(true, Ordering::SeqCst);
    assert_eq!(a.reset_witness_seen(None).await.unwrap(), None);
    assert!(a.corrupt_records().is_empty());
    let stored = stored_witness(&store.inner);
    assert_eq!((stored.receipt, stored.problem), (None, None));
}

/// A sync judges the receipts this outbox could not store with the keys of the client
/// it is given, like a sale does: a client that does not trust the key of the stored
/// witness keeps `invalid_witness` as the problem; the register's own client finds
/// nothing wrong.
#[tokio::test]
async fn a_sync_judges_unsaved_receipts_with_the_keys_of_the_client_it_is_given() {
    let key = tillgate_core::SigningKey::from_seed(&[77; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 3, 100);
    for (syncing, problem) in [
        (client.clone(), None),
        (offline_client(), Some("invalid_witness")),
    ] {
        let store = Arc::new(Flaky::default());
        let a = Outbox::open(store.clone()).await.unwrap();
        let b = Outbox::open(store.clone()).await.unwrap();
        saw(&a, &client, &chain[0], 1).await;
        store.fail.store(true, Ordering::SeqCst);
        let (_, kept) = a
            .witness_saw(&client, &chain[1], 2, a.witness_epoch())
            .await;
        assert!(kept.is_err());
        store.fail.store(false, Ordering::SeqCst);
        b.sync_now(&offline_client(), 3).await;
        saw(&b, &client, &chain[1], 4).await;
        saw(&b, &client, &chain[2], 5).await;
        a.sync_now(&syncing, 6).await;
        assert_eq!(a.witness().as_ref(), Some(&chain[2]));
        let found = a.witness_problem().map(|p| (p.code, p.receipt));
        assert_eq!(found, problem.map(|c| (c.to_owned(), chain[1].clone())));
    }
}

/// Tab A's check fetched the chain up to receipt 10; while it was under way A's sale got
/// receipt 11, whose witness could not be written, and tab B stored the witness at 13.
/// When A's check lands, 11 cannot be judged against B's witness, and the chain A
/// fetched ends before it: it is newer than that chain, not evidence of a fork. It
/// waits for a later check, which confirms it.
#[tokio::test]
async fn a_receipt_newer_than_the_chain_a_check_fetched_waits_for_a_later_check() {
    let key = tillgate_core::SigningKey::from_seed(&[91; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 13, 100);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    for (i, r) in chain[..10].iter().enumerate() {
        saw(&a, &client, r, i as i64).await;
    }
    let b = Outbox::open(store.clone()).await.unwrap();
    // A's check begins: what the server returned at that moment.
    let begun = a.witness_epoch();
    let fetched = chain[..10].to_vec();
    // A's sale, answered meanwhile, cannot be stored.
    store.fail.store(true, Ordering::SeqCst);
    let (p, kept) = a
        .witness_saw(&client, &chain[10], 20, a.witness_epoch())
        .await;
    assert!(p.is_none() && kept.is_err());
    store.fail.store(false, Ordering::SeqCst);
    // Tab B checks the chain up to 13.
    checked(&b, &client, chain.clone()).await;
    assert_eq!(
        stored_witness(store.as_ref()).receipt.as_ref(),
        Some(&chain[12])
    );
    // A's check lands.
    a.witness_checked(&client, fetched, begun).await.unwrap();
    assert_eq!(stored_witness(store.as_ref()).problem, None);
    assert_eq!(a.witness_problem(), None);
    assert_eq!(witness::lock(&a.witness).unconfirmed(), [chain[10].clone()]);
    // A later check finds it.
    checked(&a, &client, chain.clone()).await;
    assert!(witness::lock(&a.witness).unconfirmed().is_empty());
    assert_eq!(stored_witness(store.as_ref()).problem, None);
}

/// A receipt that waited for a check before it began, and is past the end of the chain
/// the check fetched, was cut from the server's history: that stays evidence.
#[tokio::test]
async fn a_receipt_waiting_before_a_check_and_past_its_chain_is_a_history_cut_back() {
    let key = tillgate_core::SigningKey::from_seed(&[94; 32]);
    let client = trusting(&key);
    let chain = receipts(&key, 13, 100);
    let store = Arc::new(Flaky::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    for (i, r) in chain[..10].iter().enumerate() {
        saw(&a, &client, r, i as i64).await;
    }
    let b = Outbox::open(store.clone()).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let (_, kept) = a
        .witness_saw(&client, &chain[10], 20, a.witness_epoch())
        .await;
    assert!(kept.is_err());
    store.fail.store(false, Ordering::SeqCst);
    checked(&b, &client, chain.clone()).await;
    // A's next sale takes B's witness in: 11 cannot be judged against it and waits.
    assert_eq!(saw(&a, &client, &chain[12], 21).await, None);
    assert_eq!(witness::lock(&a.witness).unconfirmed(), [chain[10].clone()]);
    // A check begun now gets a chain that ends before it.
    let begun = a.witness_epoch();
    a.witness_checked(&client, chain[..10].to_vec(), begun)
        .await
        .unwrap();
    let p = stored_witness(store.as_ref())
        .problem
        .expect("the cut was noticed");
    assert_eq!(
        (p.code.as_str(), &p.receipt),
        ("witness_mismatch", &chain[10])
    );
}
