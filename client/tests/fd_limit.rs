//! `FileStore` while the process is at its limit of open files (EMFILE): reading a
//! record fails for a moment, and must never get a valid sale or the witness deleted,
//! nor reported as damaged. Exhausting the descriptors would disturb every other test
//! of the process, so each test here runs alone in a child process of this test binary
//! with a low limit (`ulimit -n`), and the parent checks it passed.
#![cfg(all(unix, not(target_arch = "wasm32")))]
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tillgate_client::core::Transaction;
use tillgate_client::{
    ClientError, CorruptRecord, FileStore, IdempotencyKey, Outbox, QueueStore, QueuedTransaction,
    StoreContents, WitnessProblem, WitnessRecord,
};

/// Set in the child process, which runs the test's body.
const CHILD: &str = "TILLGATE_FD_LIMIT_CHILD";

/// Runs `body` in a child process: this test binary, running only the test `name`, with
/// at most 64 open files. In the child itself, runs `body`.
fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"ulimit -S -n 64 2>/dev/null; exec "$0" "$@""#)
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child process failed:\n{stdout}\n{stderr}"
    );
}

/// Opens files until the process has no descriptor left; they close when dropped.
fn exhaust_descriptors() -> Vec<File> {
    let mut open = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        open.push(f);
    }
    open
}

/// Polls a future whose store calls complete inline (no tokio runtime: the outbox then
/// calls the store directly, opening no thread or socket).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn sale() -> Transaction {
    serde_json::from_value(serde_json::json!({
        "type": "sale", "currency": "SEK", "total": 100,
        "vat": [{"rate": 2500, "amount": 20}],
        "items": [{"name": "Kaffe", "quantity": 1, "amount": 100}],
    }))
    .unwrap()
}

/// Queues one sale in `dir` and closes the queue: the sale's record name and key.
fn queue_a_sale(dir: &Path) -> (String, IdempotencyKey) {
    let q = block_on(Outbox::open(Arc::new(FileStore::open(dir).unwrap()))).unwrap();
    let key = block_on(q.enqueue(sale(), None, 1)).unwrap();
    let id = q.entries()[0].id;
    (format!("tx-{id:020}.json"), key)
}

/// The sale's record reads fine, but not while no file can be opened: the app removing
/// it then (as if it were the damaged record it is not) must not delete it.
#[test]
fn removing_a_record_that_cannot_be_read_for_a_moment_keeps_the_sale() {
    in_child(
        "removing_a_record_that_cannot_be_read_for_a_moment_keeps_the_sale",
        || {
            let dir = tempfile::tempdir().unwrap();
            let (name, key) = queue_a_sale(dir.path());
            let store = FileStore::open(dir.path()).unwrap();
            let open = exhaust_descriptors();
            let removed = store.remove_corrupt(&name);
            drop(open);
            let e = removed.unwrap_err();
            assert_eq!(e.code(), "storage_error", "{e}");
            assert!(
                dir.path().join(&name).exists(),
                "the sale's record was deleted"
            );
            let q = block_on(Outbox::open(Arc::new(store))).unwrap();
            assert_eq!(q.entries()[0].idempotency_key, key);
        },
    );
}

/// The same for the witness, with the evidence of a fork it keeps.
#[test]
fn removing_a_witness_that_cannot_be_read_for_a_moment_keeps_it() {
    in_child(
        "removing_a_witness_that_cannot_be_read_for_a_moment_keeps_it",
        || {
            let dir = tempfile::tempdir().unwrap();
            let store = FileStore::open(dir.path()).unwrap();
            let record = WitnessRecord {
                v: 1,
                receipt: Some("a.b.c".into()),
                problem: Some(WitnessProblem {
                    receipt: "x.y.z".into(),
                    code: "witness_mismatch".into(),
                    message: "the server gave another receipt for this sequence".into(),
                    at_ms: 1,
                }),
                resets: 0,
            };
            store.save_witness(&record).unwrap();
            let open = exhaust_descriptors();
            let removed = store.remove_corrupt("witness.json");
            drop(open);
            assert_eq!(removed.unwrap_err().code(), "storage_error");
            assert_eq!(store.load_witness().unwrap(), Some(Ok(record)));
        },
    );
}

/// A record that cannot be read when the queue opens (no file descriptor left) never
/// stops the queue from opening: it is listed as unreadable for now, removing it is
/// refused while it cannot be read (it holds a sale), and the next open reads it.
#[test]
fn a_record_that_cannot_be_read_at_open_is_listed_and_never_removed() {
    in_child(
        "a_record_that_cannot_be_read_at_open_is_listed_and_never_removed",
        || {
            let dir = tempfile::tempdir().unwrap();
            let (name, key) = queue_a_sale(dir.path());
            let store: Arc<dyn QueueStore> = Arc::new(FileStore::open(dir.path()).unwrap());
            let mut open = exhaust_descriptors();
            // One descriptor free: the directory can be listed, its records not read.
            open.pop();
            let opened = block_on(Outbox::open(Arc::clone(&store)));
            // The last descriptor taken too: the record cannot be read at all now.
            open.extend(std::fs::File::open("/dev/null").ok());
            let removed = match &opened {
                Ok(q) => Some(block_on(q.remove_corrupt(&name)).map_err(|e| e.code().to_owned())),
                Err(_) => None,
            };
            drop(open);
            let q = opened.unwrap();
            let listed = q.corrupt_records();
            assert_eq!(listed.len(), 1, "{listed:?}");
            assert_eq!(listed[0].name, name);
            assert!(
                listed[0].reason.starts_with("cannot be read for now"),
                "{listed:?}"
            );
            assert!(q.entries().is_empty());
            assert_eq!(removed.unwrap(), Err("storage_error".to_owned()));
            drop(q);
            let q = block_on(Outbox::open(store)).unwrap();
            assert!(q.corrupt_records().is_empty());
            assert_eq!(q.entries()[0].idempotency_key, key);
        },
    );
}

/// A witness holding evidence of a fork, and a count of resets, stored in `dir`.
fn store_a_witness(dir: &Path) -> WitnessRecord {
    let record = WitnessRecord {
        v: 1,
        receipt: Some("a.b.c".into()),
        problem: Some(WitnessProblem {
            receipt: "x.y.z".into(),
            code: "witness_mismatch".into(),
            message: "the server gave another receipt for this sequence".into(),
            at_ms: 1,
        }),
        resets: 1,
    };
    FileStore::open(dir).unwrap().save_witness(&record).unwrap();
    record
}

/// Opens an outbox over `store` with one file descriptor free: the directory can be
/// listed, its records not read.
fn open_with_no_descriptor_to_read(store: &Arc<dyn QueueStore>) -> tillgate_client::Result<Outbox> {
    let mut open = exhaust_descriptors();
    open.pop();
    let opened = block_on(Outbox::open(Arc::clone(store)));
    drop(open);
    opened
}

/// The witness is the register's evidence: one that cannot be read when the queue
/// opens (no file descriptor left) stops the open with a storage error naming it,
/// rather than be taken as unreadable (the outbox would then start from an empty copy,
/// take the stored count of resets for another outbox's reset and leave the next
/// receipt unjudged). Once it reads, the queue opens with the witness, its evidence and
/// the sale.
#[test]
fn a_witness_that_cannot_be_read_at_open_stops_the_open_until_it_reads() {
    in_child(
        "a_witness_that_cannot_be_read_at_open_stops_the_open_until_it_reads",
        || {
            let dir = tempfile::tempdir().unwrap();
            let (_, key) = queue_a_sale(dir.path());
            let record = store_a_witness(dir.path());
            let store: Arc<dyn QueueStore> = Arc::new(FileStore::open(dir.path()).unwrap());
            let e = open_with_no_descriptor_to_read(&store)
                .expect_err("the queue opened without its witness");
            assert_eq!(e.code(), "storage_error", "{e}");
            assert!(e.to_string().contains("witness.json"), "{e}");
            let q = block_on(Outbox::open(store)).unwrap();
            assert!(q.corrupt_records().is_empty());
            assert_eq!(q.witness(), record.receipt);
            assert_eq!(q.witness_problem(), record.problem);
            assert_eq!(q.entries()[0].idempotency_key, key);
        },
    );
}

/// A `FileStore` whose next read of the witness in `update_witness` fails (a bad
/// block: reading fails, writing a new file works).
struct FailsToReadOnce {
    inner: FileStore,
    fail: AtomicBool,
}

impl QueueStore for FailsToReadOnce {
    fn load(&self) -> tillgate_client::Result<StoreContents> {
        self.inner.load()
    }
    fn save(&self, e: &QueuedTransaction) -> tillgate_client::Result<()> {
        self.inner.save(e)
    }
    fn remove(&self, id: u64) -> tillgate_client::Result<()> {
        self.inner.remove(id)
    }
    fn remove_corrupt(&self, name: &str) -> tillgate_client::Result<()> {
        self.inner.remove_corrupt(name)
    }
    fn is_shared(&self) -> bool {
        false
    }
    fn save_witness(&self, r: &WitnessRecord) -> tillgate_client::Result<()> {
        self.inner.save_witness(r)
    }
    fn load_witness(
        &self,
    ) -> tillgate_client::Result<Option<Result<WitnessRecord, CorruptRecord>>> {
        self.inner.load_witness()
    }
    fn update_witness(
        &self,
        change: &mut dyn FnMut(
            Option<Result<WitnessRecord, CorruptRecord>>,
        ) -> Option<WitnessRecord>,
    ) -> tillgate_client::Result<()> {
        if self.fail.swap(false, Ordering::SeqCst) {
            return Err(ClientError::Storage(
                "reading witness.json: Input/output error".into(),
            ));
        }
        self.inner.update_witness(change)
    }
}

/// A witness that only failed to read at open is never written over by a reset whose
/// read fails too: the open stops while it cannot be read, and once the queue opens, the
/// reset answers the read error and the evidence of the fork stays.
#[test]
fn a_reset_never_writes_over_a_witness_that_could_not_be_read_at_open() {
    in_child(
        "a_reset_never_writes_over_a_witness_that_could_not_be_read_at_open",
        || {
            let dir = tempfile::tempdir().unwrap();
            let record = store_a_witness(dir.path());
            let inner = Arc::new(FailsToReadOnce {
                inner: FileStore::open(dir.path()).unwrap(),
                fail: AtomicBool::new(false),
            });
            let store: Arc<dyn QueueStore> = inner.clone();
            let e = open_with_no_descriptor_to_read(&store)
                .expect_err("the queue opened without its witness");
            assert_eq!(e.code(), "storage_error", "{e}");
            let q = block_on(Outbox::open(store)).unwrap();
            inner.fail.store(true, Ordering::SeqCst);
            let reset = block_on(q.reset_witness_seen(None));
            assert_eq!(reset.unwrap_err().code(), "storage_error");
            let stored = inner.inner.load_witness().unwrap().unwrap().unwrap();
            assert_eq!(stored.problem, record.problem);
        },
    );
}
