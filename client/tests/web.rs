//! The client in a real browser (wasm32, headless Chromium): the `localStorage` queue
//! store, the outbox with an unreachable server, and typed errors. Run with
//! `client/test-wasm.sh`.
#![cfg(all(target_arch = "wasm32", feature = "web-storage"))]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tillgate_client::core::{
    ReceiptClaims, SigningKey, Transaction, TrustedKeys, generate_api_key, receipt_link,
    sign_receipt, transaction_hash,
};
use tillgate_client::{
    Client, ClientConfig, IdempotencyKey, LocalStorageStore, Outbox, QueueStore, Submitted,
    WitnessProblem, WitnessRecord, encode_witness, unix_time_ms,
};
use wasm_bindgen::{JsCast as _, JsValue};
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

/// The origin the tests below send their sales to: `fetch` answers it from a list.
const FAKE_SERVER: &str = "http://tillgate-fake-server.invalid";

/// Makes the page's `fetch` answer requests to [`FAKE_SERVER`] with `answers`, in order,
/// as `201 Created` JSON (the server storing each sale); anything else goes to the real
/// `fetch`, which is given back when the returned guard goes. The client calls the global
/// `fetch` at each request.
fn fake_server_answers(answers: Vec<serde_json::Value>) -> RealFetch {
    fake_server_answers_after(answers.into_iter().map(|a| (a, None)).collect())
}

/// [`fake_server_answers`], each answer given after writing its `(key, value)`, if any,
/// to `localStorage`: another tab's write while the sale was on its way.
fn fake_server_answers_after(
    answers: Vec<(serde_json::Value, Option<(String, String)>)>,
) -> RealFetch {
    let list = js_sys::Array::new();
    for (body, write) in answers {
        let answer = serde_json::json!({"body": body.to_string(), "write": write});
        list.push(&JsValue::from_str(&answer.to_string()));
    }
    let make = js_sys::Function::new_with_args(
        "real, base, answers",
        "return (url, init) => { \
           if (!String(url).startsWith(base)) return real(url, init); \
           const a = JSON.parse(answers.shift()); \
           if (a.write) localStorage.setItem(a.write[0], a.write[1]); \
           return Promise.resolve(new Response(a.body, \
             {status: 201, headers: {'content-type': 'application/json'}})); };",
    );
    let global = js_sys::global();
    let real = js_sys::Reflect::get(&global, &"fetch".into()).unwrap();
    let fake = make
        .call3(&JsValue::NULL, &real, &FAKE_SERVER.into(), &list)
        .unwrap();
    js_sys::Reflect::set(&global, &"fetch".into(), &fake).unwrap();
    RealFetch(real)
}

/// The page's real `fetch`, set back when dropped.
struct RealFetch(JsValue);

impl Drop for RealFetch {
    fn drop(&mut self) {
        let _ = js_sys::Reflect::set(&js_sys::global(), &"fetch".into(), &self.0);
    }
}

/// A register's chain of `n` receipts signed by `key`, each for a sale of `total`;
/// `total` tells chains apart.
fn receipts(key: &SigningKey, n: u64, total: i64) -> Vec<String> {
    let totals = vec![total; usize::try_from(n).unwrap()];
    chain_of_sales(key, &totals, total)
}

/// A register's chain of receipts signed by `key`, receipt `i` for a sale of
/// `totals[i]`; `tag` (the receipts' `total` claim) tells chains apart.
fn chain_of_sales(key: &SigningKey, totals: &[i64], tag: i64) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    for (seq, &total) in (1..).zip(totals) {
        let claims = ReceiptClaims {
            iss: "https://pos.example".into(),
            sub: "TG-7Q2M-K4PX".into(),
            iat: 1_751_328_000 + seq as i64,
            seq,
            txid: format!("tx_{seq}"),
            txh: transaction_hash(&sale(total)),
            prev: chain.last().map(|r| receipt_link(r)).unwrap_or_default(),
            tx_type: "sale".into(),
            total: tag,
            currency: "SEK".into(),
        };
        chain.push(sign_receipt(&claims, key).unwrap());
    }
    chain
}

/// The server's answer to a sale of `total`, stored with `receipt`.
fn stored(total: i64, receipt: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(sale(total)).unwrap();
    let seq = tillgate_client::core::decode_receipt_unverified(receipt)
        .unwrap()
        .seq;
    v["id"] = format!("tx_{seq}").into();
    v["sequence"] = seq.into();
    v["receipt"] = receipt.into();
    v
}

/// A client of the fake server, trusting `key`.
fn fake_server_client(key: &SigningKey) -> Client {
    let mut trusted = TrustedKeys::new();
    trusted.add_jwk(&key.public_jwk()).unwrap();
    let client = Client::new(ClientConfig::new(FAKE_SERVER, trusted)).unwrap();
    client.set_api_key(generate_api_key(40).unwrap());
    client
}

fn stored_witness(ns: &str) -> WitnessRecord {
    LocalStorageStore::new(ns)
        .load()
        .unwrap()
        .witness
        .unwrap()
        .unwrap()
}

/// Sends one sale through `q`, the server answering with `receipt`.
async fn send(q: &Outbox, client: &Client, total: i64, receipt: &str, key: &str) -> Submitted {
    let _real = fake_server_answers(vec![stored(total, receipt)]);
    let key = IdempotencyKey::new(key).unwrap();
    q.submit(client, sale(total), Some(key), unix_time_ms())
        .await
        .unwrap()
}

#[wasm_bindgen_test]
async fn two_tabs_never_erase_each_others_witness_problem() {
    // Tab B opened before tab A was given a receipt that forks the chain.
    let ns = namespace("witness-problem");
    let key = SigningKey::from_seed(&[31; 32]);
    let client = fake_server_client(&key);
    let chain = receipts(&key, 3, 100);
    let fork = receipts(&key, 3, 1);
    let a = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    send(&a, &client, 100, &chain[0], "a-1").await;
    assert!(matches!(
        send(&a, &client, 1, &fork[0], "a-2").await,
        Submitted::Sent(_)
    ));
    let p = a.witness_problem().unwrap();
    assert_eq!(p.code, "witness_mismatch");
    // B's next sale moves the witness on; the evidence stays, for a reload too.
    send(&b, &client, 100, &chain[1], "b-1").await;
    let w = stored_witness(&ns);
    assert_eq!(
        (w.receipt.as_ref(), w.problem.as_ref()),
        (Some(&chain[1]), Some(&p))
    );
    assert_eq!(b.witness_problem().as_ref(), Some(&p));
    let reloaded = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    assert_eq!(reloaded.witness_problem(), Some(p));
}

#[wasm_bindgen_test]
async fn a_stale_tab_never_moves_the_witness_back() {
    // Tab B's copy is at sequence 3 when tab A's sales move the stored witness to 9.
    let ns = namespace("witness-back");
    let key = SigningKey::from_seed(&[32; 32]);
    let client = fake_server_client(&key);
    let chain = receipts(&key, 9, 100);
    let rewritten = receipts(&key, 9, 1);
    let a = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    for (i, r) in chain[..3].iter().enumerate() {
        send(&a, &client, 100, r, &format!("a-{i}")).await;
    }
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    for (i, r) in chain.iter().enumerate().skip(3) {
        send(&a, &client, 100, r, &format!("a-{i}")).await;
    }
    // B sends a sale both hold again; the server answers its old receipt, sequence 4.
    send(&b, &client, 100, &chain[3], "a-3").await;
    assert_eq!(stored_witness(&ns).receipt.as_ref(), Some(&chain[8]));
    assert_eq!(b.witness().as_ref(), Some(&chain[8]));
    // So another receipt for sequence 9 is still found.
    send(&b, &client, 1, &rewritten[8], "b-1").await;
    assert_eq!(
        stored_witness(&ns).problem.map(|p| p.code).as_deref(),
        Some("witness_mismatch")
    );
}

#[wasm_bindgen_test]
async fn a_tab_sends_what_another_tab_queued() {
    let ns = namespace("tabs-queue");
    let key = SigningKey::from_seed(&[33; 32]);
    let client = fake_server_client(&key);
    let chain = receipts(&key, 1, 100);
    let a = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let queued = a.enqueue(sale(100), None, 1).await.unwrap();
    let real = fake_server_answers(vec![stored(100, &chain[0])]);
    let r = b.sync_now(&client, unix_time_ms()).await;
    drop(real);
    assert_eq!(r.sent.len(), 1, "{r:?}");
    assert_eq!(r.sent[0].0, queued);
    assert!(
        LocalStorageStore::new(&ns)
            .load()
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(b.witness().as_ref(), Some(&chain[0]));
}

/// Removes every key of namespace `ns` from `localStorage`, as the app's logout code
/// calling `localStorage.clear()`, or the user clearing the site's data, does.
fn wipe(ns: &str) {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    let keys: Vec<String> = (0..storage.length().unwrap())
        .filter_map(|i| storage.key(i).unwrap())
        .filter(|k| k.starts_with(ns))
        .collect();
    for k in keys {
        storage.remove_item(&k).unwrap();
    }
}

#[wasm_bindgen_test]
async fn sales_survive_cleared_storage_and_are_resent_once_by_another_tab() {
    // Tab A's first sale went through (the witness is stored); two more are queued
    // offline, and tab B takes them in. Then the storage is cleared.
    let ns = namespace("wiped");
    let key = SigningKey::from_seed(&[38; 32]);
    let client = fake_server_client(&key);
    let chain = chain_of_sales(&key, &[100, 200, 300], 100);
    let a = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    assert!(matches!(
        send(&a, &client, 100, &chain[0], "a-1").await,
        Submitted::Sent(_)
    ));
    let queued = [
        a.enqueue(sale(200), Some(IdempotencyKey::new("a-2").unwrap()), 1)
            .await
            .unwrap(),
        a.enqueue(sale(300), Some(IdempotencyKey::new("a-3").unwrap()), 1)
            .await
            .unwrap(),
    ];
    let mut trusted = TrustedKeys::new();
    trusted.add_jwk(&key.public_jwk()).unwrap();
    let mut config = ClientConfig::new("http://127.0.0.1:9", trusted);
    config.timeout = Duration::from_secs(2);
    let offline = Client::new(config).unwrap();
    offline.set_api_key(generate_api_key(40).unwrap());
    let r = b.sync_now(&offline, unix_time_ms()).await;
    assert_eq!(r.remaining, 2, "{r:?}");
    wipe(&ns);
    assert!(
        LocalStorageStore::new(&ns)
            .load()
            .unwrap()
            .entries
            .is_empty()
    );

    // A keeps both, writes them back (and the witness), and sends them.
    let sent = [stored(200, &chain[1]), stored(300, &chain[2])];
    let real = fake_server_answers(sent.to_vec());
    let r = a.sync_now(&client, unix_time_ms()).await;
    drop(real);
    let keys: Vec<_> = r.sent.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, queued, "{r:?}");
    assert_eq!((r.remaining, r.witness_problem.as_ref()), (0, None));
    assert!(
        LocalStorageStore::new(&ns)
            .load()
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(stored_witness(&ns).receipt.as_ref(), Some(&chain[2]));

    // B still holds both: it resends each once, the server answers with the stored
    // sales and receipts, and B forgets them; the witness sees the same receipts, no fork.
    let real = fake_server_answers(sent.to_vec());
    let r = b.sync_now(&client, unix_time_ms()).await;
    drop(real);
    let keys: Vec<_> = r.sent.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, queued, "{r:?}");
    assert_eq!(r.sent[1].1.receipt, chain[2]);
    assert!(r.witness_problem.is_none() && b.witness_problem().is_none());
    assert!(b.is_empty() && b.last_error().is_none());
    assert!(
        LocalStorageStore::new(&ns)
            .load()
            .unwrap()
            .entries
            .is_empty()
    );
    let w = stored_witness(&ns);
    assert_eq!((w.receipt.as_ref(), w.problem), (Some(&chain[2]), None));
}

#[wasm_bindgen_test]
async fn a_sale_answered_after_another_tab_wrote_the_witness_decides_against_it() {
    // Tab B's sale is on its way when another tab stores a problem, and later when it
    // moves the witness far ahead: B's answer is decided against what is stored then.
    let ns = namespace("witness-in-flight");
    let key = SigningKey::from_seed(&[34; 32]);
    let client = fake_server_client(&key);
    let chain = receipts(&key, 9, 100);
    let fork = receipts(&key, 1, 1);
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    send(&b, &client, 100, &chain[0], "b-1").await;
    let problem = WitnessProblem {
        receipt: fork[0].clone(),
        code: "witness_mismatch".into(),
        message: "another receipt for sequence 1".into(),
        at_ms: 5,
    };
    // What the other tab writes while B's sale is on its way.
    let other_tab = |receipt: &str| {
        let record = WitnessRecord {
            v: 1,
            receipt: Some(receipt.to_owned()),
            problem: Some(problem.clone()),
            resets: 0,
        };
        let text = String::from_utf8(encode_witness(&record).unwrap()).unwrap();
        Some((format!("{ns}witness"), text))
    };
    let submit = async |receipt: &str, write, key: &str| {
        let _real = fake_server_answers_after(vec![(stored(100, receipt), write)]);
        let key = IdempotencyKey::new(key).unwrap();
        b.submit(&client, sale(100), Some(key), unix_time_ms())
            .await
            .unwrap()
    };
    submit(&chain[1], other_tab(&chain[0]), "b-2").await;
    let w = stored_witness(&ns);
    assert_eq!(
        (w.receipt.as_ref(), w.problem.as_ref()),
        (Some(&chain[1]), Some(&problem))
    );
    assert_eq!(b.witness_problem().as_ref(), Some(&problem));
    // The other tab stores sequence 9 while B's answer, sequence 3, is on its way.
    submit(&chain[2], other_tab(&chain[8]), "b-3").await;
    assert_eq!(stored_witness(&ns).receipt.as_ref(), Some(&chain[8]));
    assert_eq!(b.witness().as_ref(), Some(&chain[8]));
}

#[wasm_bindgen_test]
async fn removing_a_corrupt_value_never_deletes_one_another_tab_wrote_since() {
    // Tab B found the witness and a sale's record unreadable; tab A then reset the
    // witness and stored a problem, and the sale's record was written again. B's app
    // removes what B's list names: both values stay, and B takes them in.
    let ns = namespace("remove-stale");
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    let witness_key = format!("{ns}witness");
    let record_key = format!("{ns}tx-{:020}", 1);
    storage.set_item(&witness_key, "{").unwrap();
    storage.set_item(&record_key, "{").unwrap();
    let key = SigningKey::from_seed(&[35; 32]);
    let client = fake_server_client(&key);
    let chain = receipts(&key, 1, 100);
    let fork = receipts(&key, 1, 1);
    let a = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    assert_eq!(b.corrupt_records().len(), 2);
    a.reset_witness().await.unwrap();
    send(&a, &client, 100, &chain[0], "a-1").await;
    send(&a, &client, 1, &fork[0], "a-2").await;
    let p = a.witness_problem().unwrap();
    // The sale's record, written again (here by hand: A's own sales took other ids).
    let sale_there = {
        let scratch = Outbox::open(Arc::new(LocalStorageStore::new(namespace("scratch"))))
            .await
            .unwrap();
        scratch.enqueue(sale(300), None, 1).await.unwrap();
        scratch.entries()[0].clone()
    };
    let text = String::from_utf8(tillgate_client::encode_record(&sale_there).unwrap()).unwrap();
    storage.set_item(&record_key, &text).unwrap();
    b.remove_corrupt(&witness_key).await.unwrap();
    b.remove_corrupt(&record_key).await.unwrap();
    let w = stored_witness(&ns);
    assert_eq!(
        (w.receipt.as_ref(), w.problem.as_ref()),
        (Some(&chain[0]), Some(&p))
    );
    assert_eq!(storage.get_item(&record_key).unwrap(), Some(text));
    assert!(b.corrupt_records().is_empty());
    assert!(
        b.entries()
            .iter()
            .any(|e| e.idempotency_key == sale_there.idempotency_key)
    );
}

#[wasm_bindgen_test]
async fn a_reset_in_one_tab_keeps_a_problem_it_never_reported() {
    // Tab B stores a problem tab A has not reported yet: A's reset forgets the witness
    // and keeps B's problem, which A reports from then on.
    let ns = namespace("reset-unseen");
    let key = SigningKey::from_seed(&[36; 32]);
    let client = fake_server_client(&key);
    let chain = receipts(&key, 1, 100);
    let fork = receipts(&key, 1, 1);
    let a = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    let b = Outbox::open(Arc::new(LocalStorageStore::new(&ns)))
        .await
        .unwrap();
    send(&b, &client, 100, &chain[0], "b-1").await;
    send(&b, &client, 1, &fork[0], "b-2").await;
    let p = b.witness_problem().unwrap();
    assert_eq!(a.witness_problem(), None);
    a.reset_witness().await.unwrap();
    assert_eq!(a.witness_problem().as_ref(), Some(&p));
    let w = stored_witness(&ns);
    assert_eq!(
        (w.receipt, w.problem.as_ref(), w.resets),
        (None, Some(&p), 1)
    );
    a.reset_witness().await.unwrap();
    assert_eq!(stored_witness(&ns).problem, None);
}

/// Makes the page's `fetch` answer requests to [`FAKE_SERVER`] never: each rejects with
/// an `AbortError` only when its signal aborts (as a server that does not answer).
/// Counts the requests in `window.tillgateHung` and the aborted ones in
/// `window.tillgateAborted`.
fn fake_server_hangs() -> RealFetch {
    let make = js_sys::Function::new_with_args(
        "real, base",
        "globalThis.tillgateHung = 0; globalThis.tillgateAborted = 0; \
         return (url, init) => { \
           if (!String(url).startsWith(base)) return real(url, init); \
           globalThis.tillgateHung += 1; \
           return new Promise((_, reject) => init.signal.addEventListener('abort', \
             () => { globalThis.tillgateAborted += 1; \
                     reject(new DOMException('aborted', 'AbortError')); })); };",
    );
    let global = js_sys::global();
    let real = js_sys::Reflect::get(&global, &"fetch".into()).unwrap();
    let fake = make
        .call2(&JsValue::NULL, &real, &FAKE_SERVER.into())
        .unwrap();
    js_sys::Reflect::set(&global, &"fetch".into(), &fake).unwrap();
    RealFetch(real)
}

/// `AbortSignal.timeout`, taken away from the page (as on Safari before 16) until
/// dropped.
struct NoSignalTimeout(JsValue);

impl NoSignalTimeout {
    fn take() -> Self {
        let class = js_sys::Reflect::get(&js_sys::global(), &"AbortSignal".into()).unwrap();
        let timeout = js_sys::Reflect::get(&class, &"timeout".into()).unwrap();
        assert!(timeout.is_function());
        js_sys::Reflect::delete_property(
            class.unchecked_ref::<js_sys::Object>(),
            &"timeout".into(),
        )
        .unwrap();
        assert!(
            js_sys::Reflect::get(&class, &"timeout".into())
                .unwrap()
                .is_undefined()
        );
        NoSignalTimeout(timeout)
    }
}

impl Drop for NoSignalTimeout {
    fn drop(&mut self) {
        let class = js_sys::Reflect::get(&js_sys::global(), &"AbortSignal".into()).unwrap();
        let _ = js_sys::Reflect::set(&class, &"timeout".into(), &self.0);
    }
}

/// Without `AbortSignal.timeout` a request to a server that never answers still ends at
/// the timeout, with `timeout` (an `AbortController` aborted by a timer), and so does the
/// next one: each request has its own timer.
#[wasm_bindgen_test]
async fn a_request_times_out_where_abort_signal_timeout_is_missing() {
    let _fetch = fake_server_hangs();
    let _missing = NoSignalTimeout::take();
    let mut config = ClientConfig::new(FAKE_SERVER, TrustedKeys::new());
    config.timeout = Duration::from_millis(300);
    let client = Client::new(config).unwrap();
    client.set_api_key(generate_api_key(40).unwrap());
    for n in 1..=2 {
        let start = unix_time_ms();
        let e = client.handshake().await.unwrap_err();
        let took = unix_time_ms() - start;
        assert_eq!(e.code(), "timeout", "{e:?}");
        assert!((250..5_000).contains(&took), "{took} ms");
        let hung = js_sys::Reflect::get(&js_sys::global(), &"tillgateHung".into()).unwrap();
        assert_eq!(hung.as_f64(), Some(f64::from(n)));
    }
}

fn global_count(name: &str) -> Option<f64> {
    js_sys::Reflect::get(&js_sys::global(), &name.into())
        .unwrap()
        .as_f64()
}

/// Without `AbortSignal.timeout`, a request whose future is dropped (the app gave up on
/// it) is aborted at once, not left running with no timer to end it; and a request that
/// was answered is unharmed by the abort that follows it.
#[wasm_bindgen_test]
async fn a_dropped_request_is_aborted_where_abort_signal_timeout_is_missing() {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};

    let _missing = NoSignalTimeout::take();
    {
        let _fetch = fake_server_hangs();
        let mut config = ClientConfig::new(FAKE_SERVER, TrustedKeys::new());
        config.timeout = Duration::from_secs(60);
        let client = Client::new(config).unwrap();
        client.set_api_key(generate_api_key(40).unwrap());
        let mut request = Box::pin(client.handshake());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(request.as_mut().poll(&mut cx), Poll::Pending));
        assert_eq!(global_count("tillgateHung"), Some(1.0));
        assert_eq!(global_count("tillgateAborted"), Some(0.0));
        drop(request);
        assert_eq!(global_count("tillgateAborted"), Some(1.0));
    }

    let key = SigningKey::from_seed(&[37; 32]);
    let client = fake_server_client(&key);
    let chain = receipts(&key, 1, 100);
    let _fetch = fake_server_answers(vec![stored(100, &chain[0])]);
    let sent = client
        .submit_transaction(&sale(100), &IdempotencyKey::new("dropped-1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (sent.sequence, sent.receipt.as_str()),
        (1, chain[0].as_str())
    );
}

/// A server that moved answers `301`: the client asks `fetch` not to follow redirects
/// (a followed one drops the API key: the answer would be 401, as here) and fails with
/// `unexpected_redirect`, naming where without the token or query; the outbox keeps the
/// sale pending. (Browsers hide the redirect itself from the page: the client then says
/// so without status or location.)
#[wasm_bindgen_test]
async fn a_redirect_is_not_followed() {
    let make = js_sys::Function::new_with_args(
        "real, base",
        "return (url, init) => { \
           if (!String(url).startsWith(base)) return real(url, init); \
           if (init.redirect !== 'manual') return Promise.resolve(new Response( \
             '{\"code\":\"invalid_credentials\"}', {status: 401})); \
           return Promise.resolve(Response.redirect( \
             base + '/moved/OpenApi_1$$Secr3tT0ken/transactions?token=abc', 301)); };",
    );
    let global = js_sys::global();
    let real = js_sys::Reflect::get(&global, &"fetch".into()).unwrap();
    let fake = make
        .call2(&JsValue::NULL, &real, &FAKE_SERVER.into())
        .unwrap();
    js_sys::Reflect::set(&global, &"fetch".into(), &fake).unwrap();
    let _real = RealFetch(real);

    let client = fake_server_client(&SigningKey::from_seed(&[39; 32]));
    let key = IdempotencyKey::new("moved-1").unwrap();
    let e = client
        .submit_transaction(&sale(100), &key)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unexpected_redirect", "{e:?}");
    assert!(!e.is_auth() && !e.is_transient());
    assert_eq!(e.http_status(), Some(301));
    let shown = e.to_string();
    assert!(
        shown.contains("/moved/OpenApi_1$$<redacted>/transactions:"),
        "{shown}"
    );
    assert!(
        !shown.contains("Secr3tT0ken") && !shown.contains("token=abc"),
        "{shown}"
    );

    let q = Outbox::open(Arc::new(LocalStorageStore::new(namespace("moved"))))
        .await
        .unwrap();
    let r = q
        .submit(&client, sale(100), Some(key), unix_time_ms())
        .await
        .unwrap();
    assert!(matches!(r, Submitted::Queued(_)), "{r:?}");
    assert_eq!(q.len(), 1);
    assert_eq!(q.last_error().unwrap().code, "unexpected_redirect");
}
