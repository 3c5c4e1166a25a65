//! The client in a real browser (wasm32, headless Chromium): the `localStorage` queue
//! store, the outbox with an unreachable server, and typed errors. Run with
//! `client/test-wasm.sh`.
#![cfg(all(target_arch = "wasm32", feature = "web-storage"))]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tillgate_client::core::{Transaction, TrustedKeys, generate_api_key};
use tillgate_client::{
    Client, ClientConfig, IdempotencyKey, LocalStorageStore, Outbox, QueueStore, Submitted,
    unix_time_ms,
};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn sale(total: i64) -> Transaction {
    serde_json::from_value(serde_json::json!({"type": "sale", "currency": "SEK",
        "total": total, "items": [{"name": "Kaffe", "quantity": 1, "amount": total}]}))
    .unwrap()
}

fn namespace(test: &str) -> String {
    format!("tillgate.test.{test}.{}.", unix_time_ms())
}

#[wasm_bindgen_test]
async fn local_storage_queue_survives_a_reopen() {
    let ns = namespace("reopen");
    let mine = IdempotencyKey::new("web-receipt-1").unwrap();
    {
        let q = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
            .await
            .unwrap();
        q.enqueue(sale(100), Some(mine.clone()), 1).await.unwrap();
        q.enqueue(sale(200), None, 2).await.unwrap();
    }
    let q = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let e = q.entries();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].idempotency_key, mine);
    assert_eq!(e[1].transaction.total, 200);
    // Another namespace sees nothing.
    let other = Outbox::open(Arc::new(LocalStorageStore::new(namespace("other"))))
        .await
        .unwrap();
    assert!(other.is_empty());
}

#[wasm_bindgen_test]
async fn a_corrupt_value_is_reported_and_kept() {
    let ns = namespace("corrupt");
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    let key = format!("{ns}tx-{:020}", 4);
    storage.set_item(&key, "{not json").unwrap();
    let q = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let c = q.corrupt_records();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].id, Some(4));
    assert_eq!(q.last_error().unwrap().code, "queue_record_corrupt");
    assert_eq!(
        storage.get_item(&key).unwrap().as_deref(),
        Some("{not json")
    );
    q.enqueue(sale(100), None, 0).await.unwrap();
    assert_eq!(q.entries()[0].id, 5);
    q.remove_corrupt(&key).await.unwrap();
    assert!(storage.get_item(&key).unwrap().is_none());
    assert!(
        LocalStorageStore::new(&ns)
            .load()
            .unwrap()
            .corrupt
            .is_empty()
    );
}

#[wasm_bindgen_test]
async fn offline_sale_is_queued_with_a_typed_error() {
    let mut config = ClientConfig::new("http://127.0.0.1:9", TrustedKeys::new());
    config.timeout = Duration::from_secs(2);
    let client = Client::new(config).unwrap();
    client.set_api_key(generate_api_key(40).unwrap());
    let q = Outbox::open(Arc::new(LocalStorageStore::new(namespace("offline"))))
        .await
        .unwrap();
    let r = q
        .submit(&client, sale(100), None, unix_time_ms())
        .await
        .unwrap();
    assert!(matches!(r, Submitted::Queued(_)));
    let err = q.last_error().unwrap();
    assert!(err.code == "network" || err.code == "timeout", "{err:?}");
    assert_eq!(q.len(), 1);
    assert!(q.next_attempt_at().unwrap() > unix_time_ms());
}

#[wasm_bindgen_test]
async fn two_tabs_never_write_over_each_others_sales() {
    // Two tabs of one origin: two outboxes on the same namespace, both opened empty, so
    // both would take id 1 for their next sale.
    let ns = namespace("tabs");
    let a = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let ka = a.enqueue(sale(100), None, 1).await.unwrap();
    let kb = b.enqueue(sale(200), None, 2).await.unwrap();
    let ka2 = a.enqueue(sale(300), None, 3).await.unwrap();
    assert_eq!(b.entries()[0].id, 2);
    assert_eq!(a.entries()[1].id, 3);
    // A reload finds every sale, each under its own id.
    let stored = LocalStorageStore::new(&ns).load().unwrap();
    let found: Vec<_> = stored
        .entries
        .iter()
        .map(|e| (e.id, e.idempotency_key.clone(), e.transaction.total))
        .collect();
    assert_eq!(found, [(1, ka, 100), (2, kb, 200), (3, ka2, 300)]);
}

#[wasm_bindgen_test]
async fn a_stale_tab_never_touches_a_reused_record() {
    // Tab B still holds sale X after tab A sent and removed it; tab C reused its id.
    let ns = namespace("stale");
    let store = Arc::new(LocalStorageStore::new(&ns));
    let a = Outbox::open(store.clone()).await.unwrap();
    a.enqueue(sale(100), None, 1).await.unwrap();
    let x = a.entries()[0].clone();
    store.remove_entry(&x).unwrap();
    let c = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let ks = c.enqueue(sale(700), None, 2).await.unwrap();
    assert_eq!(c.entries()[0].id, x.id);
    let mut stale = x.clone();
    stale.attempts = 9;
    store.update(&stale).unwrap();
    store.remove_entry(&stale).unwrap();
    let stored = LocalStorageStore::new(&ns).load().unwrap();
    assert_eq!(stored.entries.len(), 1);
    assert_eq!(stored.entries[0].idempotency_key, ks);
    assert_eq!(stored.entries[0].attempts, 0);
}
