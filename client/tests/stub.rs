//! The client against a tiny local HTTP stub: error mapping, timeouts, verification of
//! what the server signs, and the outbox's retry behaviour. The real server is driven
//! by the `tillgate-e2e` crate.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tillgate_client::core::{
    ActivationDescriptor, ReceiptClaims, ServerTimeClaims, SigningKey, Transaction, TrustedKeys,
    decode_receipt_unverified, receipt_link, sign_descriptor, sign_receipt, sign_server_time,
    transaction_hash, validate_api_key,
};
use tillgate_client::{
    Client, ClientConfig, ClientError, CorruptRecord, EntryState, IdempotencyKey, MemoryStore,
    Outbox, QueueStore, QueuedTransaction, SUBMIT_MAX_AHEAD, StoreContents, Submitted,
    WitnessRecord,
};

const NOW: i64 = 1_710_000_000;

fn server_key() -> SigningKey {
    SigningKey::from_seed(&[3; 32])
}

fn trusted() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add_jwk(&server_key().public_jwk()).unwrap();
    t
}

#[derive(Default)]
struct Stub {
    /// Answers to give POST /transactions before accepting (status, code).
    tx_failures: Mutex<Vec<(u16, &'static str)>>,
    /// Stored transactions by idempotency key.
    stored: Mutex<HashMap<String, serde_json::Value>>,
    posts: AtomicUsize,
    /// A queue store to look into when a transaction arrives.
    watch: Mutex<Option<Arc<MemoryStore>>>,
    /// For each POST: was its idempotency key already persisted in `watch`?
    persisted_before_send: Mutex<Vec<bool>>,
    /// `Retry-After` (seconds) sent with a 429.
    retry_after_secs: Mutex<Option<u64>>,
    /// Receipts to give the next transactions stored, in order ("r.r.r" once none are
    /// left).
    receipts: Mutex<Vec<String>>,
    /// The query of each `GET /transactions`.
    list_queries: Mutex<Vec<HashMap<String, String>>>,
    /// The stored transactions `GET /transactions` lists, sequence `i + 1` at `i`.
    history: Mutex<Vec<serde_json::Value>>,
    /// The body of each `POST /activations/renew`.
    renewals: Mutex<Vec<serde_json::Value>>,
    /// Answers to give `POST /activations-advanced` before registering: a status, or 0
    /// for no answer within the client's timeout.
    activation_failures: Mutex<Vec<u16>>,
    /// The `Idempotency-Key` of each `POST /activations-advanced` ("" without one).
    activation_keys: Mutex<Vec<String>>,
    /// Set: the next transaction is stored (and answered) with this total instead of
    /// its own, as a server that alters what it was sent.
    tamper_total: Mutex<Option<i64>>,
    /// Set: `POST /transactions` answers `301` to this `Location`.
    redirect_to: Mutex<Option<String>>,
    /// Requests that reached `/moved/...`, where the stub's redirects point.
    moved_hits: AtomicUsize,
}

/// A `301 Moved Permanently` to `location`.
fn moved_permanently(location: &str) -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    r.headers_mut()
        .insert("location", location.parse().unwrap());
    r
}

/// `/moved/...`: where the stub's redirects point. Counts the requests that got there
/// and refuses them, as a server answers a request whose `Authorization` was dropped.
async fn moved(State(stub): State<Arc<Stub>>) -> Response {
    stub.moved_hits.fetch_add(1, Ordering::SeqCst);
    problem(401, "invalid_credentials")
}

fn problem(status: u16, code: &str) -> Response {
    let mut body = serde_json::json!({"type": format!("urn:tillgate:problem:{code}"),
        "title": "x", "status": status, "detail": format!("stub says {code}"), "code": code});
    if code == "invalid_transaction" {
        body["fields"] = serde_json::json!([
            {"field": "total", "code": "total_mismatch", "message": "stub says total"}
        ]);
    }
    let mut r = (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", "application/problem+json".parse().unwrap());
    r
}

fn bearer(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned()
}

async fn handshake(h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    // The key names the refusal to give: "<code>-000000000000000000".
    let key = bearer(&h);
    let code = key.split('-').next().unwrap_or("");
    match code {
        "" => return problem(401, "missing_credentials"),
        "ok" | "badnonce" | "unsigned" | "otherkey" | "othersub" => {}
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        "html" => return (StatusCode::BAD_GATEWAY, "<html>proxy</html>").into_response(),
        "moved" => return moved_permanently("/moved/OpenApi_1$$Secr3tT0ken/auth/handshake?k=v"),
        // 2 MiB of JSON, with its length declared.
        "huge" => {
            let body = format!("[{}0]", "0,".repeat(1 << 20));
            return (StatusCode::OK, body).into_response();
        }
        c if c.starts_with("s") => return problem(c[1..].parse().unwrap(), "whatever"),
        c => {
            let status = if c == "invalid_credentials" { 401 } else { 403 };
            return problem(status, c);
        }
    }
    let nonce = if code == "badnonce" {
        Some("replayed".to_owned())
    } else {
        q.get("nonce").cloned()
    };
    let signer = if code == "otherkey" {
        SigningKey::from_seed(&[9; 32])
    } else {
        server_key()
    };
    let signed = sign_server_time(
        &ServerTimeClaims {
            iss: "stub".into(),
            // A time signed for another register.
            sub: if code == "othersub" { "TG-2" } else { "TG-1" }.into(),
            iat: NOW,
            nonce,
        },
        &signer,
    )
    .unwrap();
    let mut body = serde_json::json!({"status": "approved", "activationId": "a1",
        "productionNumber": "TG-1", "validFrom": "2024-01-01T00:00:00Z",
        "validTo": "2025-01-01T00:00:00Z", "serverTime": "2024-03-09T16:00:00Z",
        "signedTime": signed, "deviceIdSeen": q.get("deviceId")});
    if code == "unsigned" {
        body.as_object_mut().unwrap().remove("signedTime");
    }
    Json(body).into_response()
}

fn descriptor(device: &str, exp: i64) -> ActivationDescriptor {
    ActivationDescriptor {
        iss: "stub".into(),
        sub: "TG-1".into(),
        iat: NOW - 100,
        nbf: NOW - 1000,
        exp,
        ver: 1,
        activation_id: "a1".into(),
        cash_register_name: "Kassa 1".into(),
        device_id: device.into(),
        corporate_id: "556036-0793".into(),
        country: "SE".into(),
        application_package: "com.example.pos".into(),
        features: vec![],
        status: "approved".into(),
        extras: serde_json::json!({}),
    }
}

async fn activation_code() -> Response {
    let jws = sign_descriptor(&descriptor("dev-1", NOW + 86_400), &server_key()).unwrap();
    Json(serde_json::json!({"descriptor": jws, "kid": server_key().kid()})).into_response()
}

async fn post_tx(
    State(stub): State<Arc<Stub>>,
    h: HeaderMap,
    Json(tx): Json<Transaction>,
) -> Response {
    stub.posts.fetch_add(1, Ordering::SeqCst);
    if let Some(location) = stub.redirect_to.lock().unwrap().clone() {
        return moved_permanently(&location);
    }
    if let Some(store) = stub.watch.lock().unwrap().clone() {
        let key = h.get("idempotency-key").unwrap().to_str().unwrap();
        let persisted = store
            .load()
            .unwrap()
            .entries
            .iter()
            .any(|e| e.idempotency_key.as_str() == key);
        stub.persisted_before_send.lock().unwrap().push(persisted);
    }
    if let Some((status, code)) = {
        let mut f = stub.tx_failures.lock().unwrap();
        if f.is_empty() {
            None
        } else {
            Some(f.remove(0))
        }
    } {
        let mut r = problem(status, code);
        if let (429 | 500..=599, Some(secs)) = (status, *stub.retry_after_secs.lock().unwrap()) {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return r;
    }
    let key = h
        .get("idempotency-key")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut stored = stub.stored.lock().unwrap();
    let n = stored.len() as u64 + 1;
    let v = stored.entry(key).or_insert_with(|| {
        let mut receipts = stub.receipts.lock().unwrap();
        let receipt = if receipts.is_empty() {
            "r.r.r".to_owned()
        } else {
            receipts.remove(0)
        };
        let mut tx = tx;
        if let Some(total) = stub.tamper_total.lock().unwrap().take() {
            tx.total = total;
            tx.items[0].amount = total;
        }
        let mut v = serde_json::to_value(&tx).unwrap();
        // A signed receipt names the id and sequence number the answer gives.
        let (id, seq) = match decode_receipt_unverified(&receipt) {
            Ok(c) => (c.txid, c.seq),
            Err(_) => (format!("tx{n}"), n),
        };
        v["id"] = id.into();
        v["sequence"] = seq.into();
        v["receipt"] = receipt.into();
        v
    });
    (StatusCode::CREATED, Json(v.clone())).into_response()
}

/// `GET /products`: pages of one product each, `more` until the RVE reaches 3; a stuck
/// cursor (the same `rve` with `more`) when asked with `rve=stuck`, and two cursors
/// naming each other from `ping` and `pong`. Each product carries members a newer
/// server might add (`unit`, `allergens`).
async fn products(Query(q): Query<HashMap<String, String>>) -> Response {
    let at: u32 = match q.get("rve").map(String::as_str) {
        None => 0,
        Some("stuck") => {
            return Json(serde_json::json!({"rve": "stuck", "items": [], "more": true}))
                .into_response();
        }
        // Two RVEs naming each other, each with `more`: round for ever.
        Some(r @ ("ping" | "pong")) => {
            let next = if r == "ping" { "pong" } else { "ping" };
            return Json(serde_json::json!({"rve": next, "items": [], "more": true}))
                .into_response();
        }
        Some(r) => r.parse().unwrap(),
    };
    let next = at + 1;
    Json(serde_json::json!({
        "rve": next.to_string(),
        "items": [{"id": format!("p{next}"), "name": "P", "price": 100, "currency": "SEK",
                   "vatRate": 2500, "updatedAt": "2024-01-01T00:00:00Z",
                   "unit": "cup", "allergens": ["milk"]}],
        "more": next < 3,
    }))
    .into_response()
}

/// `PUT /products/{id}`: the product as a newer server answers it, with a member this
/// client does not know. The body must be a product as core reads one (strictly).
async fn put_product(
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(p): Json<tillgate_client::core::Product>,
) -> Response {
    let mut v = serde_json::to_value(&p).unwrap();
    v["id"] = id.into();
    v["updatedAt"] = "2024-02-01T00:00:00Z".into();
    v["unit"] = "cup".into();
    (StatusCode::CREATED, Json(v)).into_response()
}

/// `GET /transactions`: records the query and answers a page of `history` as the server
/// does: at most `limit` (1–1000, default 100) after `afterSequence`, and the cursor
/// when the page is full.
async fn list_transactions(
    State(stub): State<Arc<Stub>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let after: usize = q.get("afterSequence").map_or(0, |a| a.parse().unwrap());
    let limit: usize = q.get("limit").map_or(100, |l| l.parse().unwrap());
    stub.list_queries.lock().unwrap().push(q);
    if !(1..=1000).contains(&limit) {
        return problem(400, "invalid_limit");
    }
    let history = stub.history.lock().unwrap();
    let items: Vec<_> = history.iter().skip(after).take(limit).cloned().collect();
    let next = (items.len() == limit).then(|| after + limit);
    Json(serde_json::json!({"rve": "20240101000000", "items": items,
        "nextAfterSequence": next}))
    .into_response()
}

/// `POST /activations/renew`: records the body and answers a new key for its period.
async fn renew(State(stub): State<Arc<Stub>>, Json(body): Json<serde_json::Value>) -> Response {
    stub.renewals.lock().unwrap().push(body.clone());
    Json(
        serde_json::json!({"activationId": "a1", "productionNumber": "TG-1",
        "apiKey": "renewed-000000000000000000", "status": "approved",
        "validFrom": body["validFrom"], "validTo": body["validTo"]}),
    )
    .into_response()
}

/// `POST /activations-advanced`: records the key, then fails as told or registers.
async fn activate(State(stub): State<Arc<Stub>>, h: HeaderMap) -> Response {
    let key = h
        .get("idempotency-key")
        .map_or("", |v| v.to_str().unwrap())
        .to_owned();
    let n = {
        let mut keys = stub.activation_keys.lock().unwrap();
        keys.push(key);
        keys.len()
    };
    let failure = {
        let mut f = stub.activation_failures.lock().unwrap();
        (!f.is_empty()).then(|| f.remove(0))
    };
    match failure {
        Some(0) => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            problem(503, "too_late")
        }
        Some(status) => problem(status, "stub_failure"),
        None => (
            StatusCode::CREATED,
            Json(
                serde_json::json!({"activationId": "a1", "productionNumber": "TG-1",
                "apiKey": format!("activated-{n:020}"), "status": "pending",
                "validFrom": "2030-01-01T00:00:00Z", "validTo": "2030-07-01T00:00:00Z",
                "corporateId": "556036-0793"}),
            ),
        )
            .into_response(),
    }
}

async fn spawn(stub: Arc<Stub>) -> String {
    let app = axum::Router::new()
        .route("/activations-advanced", post(activate))
        .route("/products", get(products))
        .route("/products/{id}", put(put_product))
        .route("/activations/renew", post(renew))
        .route("/auth/handshake", get(handshake))
        .route("/activations/activation-code", get(activation_code))
        .route("/transactions", post(post_tx).get(list_transactions))
        .route("/moved/{*rest}", axum::routing::any(moved))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn client(base: &str, key_prefix: &str) -> Client {
    let mut config = ClientConfig::new(base, trusted());
    config.timeout = Duration::from_millis(500);
    config.device_id = Some("dev-1".into());
    let c = Client::new(config).unwrap();
    c.set_api_key(validate_api_key(&format!("{key_prefix}-000000000000000000000")).unwrap());
    c
}

fn sale(total: i64) -> Transaction {
    serde_json::from_value(serde_json::json!({"type": "sale", "currency": "SEK",
        "total": total, "items": [{"name": "Kaffe", "quantity": 1, "amount": total}]}))
    .unwrap()
}

fn activation_request() -> tillgate_client::core::ActivationRequest {
    serde_json::from_value(serde_json::json!({"cashRegisterName": "Kassa 1",
        "deviceId": "dev-1", "validFrom": "2030-01-01T00:00:00Z",
        "validTo": "2030-07-01T00:00:00Z", "corporateId": "5560360793",
        "applicationPackage": "com.example.pos"}))
    .unwrap()
}

/// `activate` sends no key; `activate_with_key` sends the app's key as it is, once,
/// whatever the answer (the app chooses when to try again), and refuses a guessable key
/// unsent.
#[tokio::test]
async fn an_activation_key_is_sent_as_given_and_once() {
    let stub = Arc::new(Stub::default());
    let base = spawn(stub.clone()).await;
    let c = client(&base, "unused");
    let req = activation_request();
    let sent = |from: usize| stub.activation_keys.lock().unwrap()[from..].to_vec();

    let a = c.activate(&req).await.unwrap();
    assert_eq!(a.production_number, "TG-1");
    assert_eq!(sent(0), [""]);
    assert_eq!(c.api_key().unwrap().expose(), a.api_key.expose());

    let key = IdempotencyKey::new("00000000-1111-2222-3333-444444444444").unwrap();
    let from = sent(0).len();
    let a = c.activate_with_key(&req, &key).await.unwrap();
    assert_eq!(sent(from), [key.as_str()]);
    assert_eq!(c.api_key().unwrap().expose(), a.api_key.expose());

    for failure in [503, 502, 0, 409, 422, 429] {
        *stub.activation_failures.lock().unwrap() = vec![failure];
        let from = sent(0).len();
        let e = c.activate_with_key(&req, &key).await.unwrap_err();
        if failure == 0 {
            assert!(matches!(e, ClientError::Timeout), "{e:?}");
        } else {
            assert_eq!(e.http_status(), Some(failure));
        }
        assert_eq!(sent(from).len(), 1, "after {failure}: sent once");
    }

    let short = IdempotencyKey::new("receipt-000042").unwrap();
    let from = sent(0).len();
    let e = c.activate_with_key(&req, &short).await.unwrap_err();
    assert_eq!(e.code(), "invalid_idempotency_key");
    assert_eq!(sent(0).len(), from);
}

#[tokio::test]
async fn handshake_refusals_become_typed_errors() {
    let base = spawn(Arc::default()).await;
    type Check = fn(&ClientError) -> bool;
    let cases: [(&str, Check); 6] = [
        ("pending_approval", |e| {
            matches!(e, ClientError::PendingApproval { .. })
        }),
        ("rejected", |e| matches!(e, ClientError::Rejected { .. })),
        ("revoked", |e| matches!(e, ClientError::Revoked { .. })),
        ("key_expired", |e| {
            matches!(e, ClientError::KeyExpired { .. })
        }),
        ("key_not_yet_valid", |e| {
            matches!(e, ClientError::KeyNotYetValid { .. })
        }),
        ("invalid_credentials", |e| {
            matches!(e, ClientError::Unauthorized { .. })
        }),
    ];
    for (code, is) in cases {
        let e = client(&base, code).handshake().await.unwrap_err();
        assert!(is(&e), "{code}: {e:?}");
        assert_eq!(e.code(), code);
        assert!(e.is_auth() && !e.is_transient(), "{code}");
        assert!(e.to_string().contains("stub says"), "{e}");
    }
    let e = client(&base, "device_mismatch")
        .handshake()
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 403, .. }));
    assert_eq!(e.code(), "device_mismatch");

    let e = client(&base, "s503").handshake().await.unwrap_err();
    assert_eq!((e.code(), e.is_transient()), ("whatever", true));
    let e = client(&base, "s429").handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::RateLimited { .. }));
    let e = client(&base, "html").handshake().await.unwrap_err();
    assert_eq!(e.code(), "server_unavailable");

    // No key at all: nothing is sent.
    let c = Client::new(ClientConfig::new(base.as_str(), trusted())).unwrap();
    assert_eq!(c.handshake().await.unwrap_err().code(), "not_activated");
}

#[tokio::test]
async fn handshake_verifies_the_signed_time_and_keeps_the_floor() {
    let base = spawn(Arc::default()).await;
    let c = client(&base, "ok");
    assert_eq!(c.trusted_time_floor(), None);
    let h = c.handshake().await.unwrap();
    assert_eq!(h.server_time.iat, NOW);
    assert_eq!(h.status, "approved");
    assert_eq!(h.extra["deviceIdSeen"], "dev-1");
    assert_eq!(c.trusted_time_floor(), Some(NOW));
    // The floor never goes down.
    c.restore_trusted_time_floor(NOW - 10);
    assert_eq!(c.trusted_time_floor(), Some(NOW));

    for (prefix, code) in [
        ("badnonce", "nonce_mismatch"),
        ("otherkey", "unknown_kid"),
        ("unsigned", "invalid_response"),
        // Signed, but for another register (`sub` is not the answer's ProductionNumber).
        ("othersub", "invalid_response"),
    ] {
        let c = client(&base, prefix);
        let e = c.handshake().await.unwrap_err();
        assert_eq!(e.code(), code, "{prefix}");
        assert_eq!(c.trusted_time_floor(), None, "{prefix}");
    }
}

#[tokio::test]
async fn activation_code_is_verified_locally_and_offline() {
    let base = spawn(Arc::default()).await;
    let c = client(&base, "ok");
    let code = c.activation_code(NOW).await.unwrap();
    assert_eq!(code.descriptor.claims().cash_register_name, "Kassa 1");
    // The stored JWS verifies offline, with the clock-rollback check against the floor.
    c.handshake().await.unwrap();
    assert!(c.verify_stored_descriptor(&code.jws, NOW + 5).is_ok());
    let e = c
        .verify_stored_descriptor(&code.jws, NOW - 3600)
        .unwrap_err();
    assert_eq!(e.code(), "clock_rolled_back");
    let e = c
        .verify_stored_descriptor(&code.jws, NOW + 2 * 86_400)
        .unwrap_err();
    assert_eq!(e.code(), "expired");

    // Another device's descriptor, or keys the app does not trust, are refused.
    let mut config = ClientConfig::new(base.as_str(), trusted());
    config.device_id = Some("dev-2".into());
    let other = Client::new(config).unwrap();
    other.set_api_key(validate_api_key("ok-000000000000000000000").unwrap());
    assert_eq!(
        other.activation_code(NOW).await.unwrap_err().code(),
        "device_mismatch"
    );
    let untrusting = Client::new(ClientConfig::new(base.as_str(), TrustedKeys::new())).unwrap();
    untrusting.set_api_key(validate_api_key("ok-000000000000000000000").unwrap());
    assert_eq!(
        untrusting.activation_code(NOW).await.unwrap_err().code(),
        "unknown_kid"
    );
}

#[tokio::test]
async fn a_slow_server_times_out_quickly() {
    let base = spawn(Arc::default()).await;
    let c = client(&base, "slow");
    let start = Instant::now();
    let e = c.handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout), "{e:?}");
    assert!(e.is_transient());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn unreachable_server_is_a_network_error() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("http://127.0.0.1:{port}"), "ok");
    let e = c.handshake().await.unwrap_err();
    assert_eq!(e.code(), "network");
    assert!(e.is_transient());
    // The message never carries the key.
    assert!(!e.to_string().contains("ok-0000"));
}

#[tokio::test]
async fn outbox_retries_transient_failures_without_duplicates() {
    let stub = Arc::new(Stub::default());
    *stub.tx_failures.lock().unwrap() = vec![(503, "storage_unavailable"), (429, "rate_limited")];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let mine = IdempotencyKey::new("receipt-1").unwrap();

    let r = q
        .submit(&c, sale(100), Some(mine.clone()), 1_000)
        .await
        .unwrap();
    assert!(matches!(r, Submitted::Queued(ref k) if *k == mine));
    q.enqueue(sale(200), None, 1_001).await.unwrap();
    assert_eq!(q.last_error().unwrap().code, "storage_unavailable");
    let r = q.sync_now(&c, 1_002).await;
    assert_eq!(r.stopped_by.unwrap().code(), "rate_limited");
    let r = q.sync_now(&c, 1_003).await;
    assert!(r.stopped_by.is_none(), "{:?}", r.stopped_by);
    assert_eq!(r.sent.len(), 2);
    assert_eq!(r.sent[0].0, mine);
    assert_eq!(r.sent[0].1.sequence, 1);
    assert_eq!(r.remaining, 0);
    assert!(q.is_empty() && q.last_error().is_none());
    assert_eq!(stub.posts.load(Ordering::SeqCst), 4);

    // The app crashed after the server stored it but before the queue forgot it: the
    // resend with the same key gets the stored transaction back, not a new one.
    let q2 = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    q2.enqueue(sale(100), Some(mine.clone()), 2_000)
        .await
        .unwrap();
    let r = q2.sync(&c, 2_000).await;
    assert_eq!(r.sent[0].1.sequence, 1);
    assert_eq!(stub.stored.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn outbox_keeps_refused_and_unauthorised_transactions() {
    let stub = Arc::new(Stub::default());
    *stub.tx_failures.lock().unwrap() = vec![(422, "idempotency_key_reused"), (403, "key_expired")];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let a = q.enqueue(sale(100), None, 0).await.unwrap();
    let b = q.enqueue(sale(200), None, 0).await.unwrap();
    let r = q.sync(&c, 0).await;
    // The first is refused for good and kept aside; the second meets an expired key,
    // which stops the run and keeps it pending.
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, a);
    assert_eq!(r.stopped_by.as_ref().unwrap().code(), "key_expired");
    assert_eq!(q.len(), 1);
    assert_eq!(q.failed()[0].state, EntryState::Failed);
    assert_eq!(q.entries()[1].idempotency_key, b);
    assert_eq!(q.last_error().unwrap().code, "key_expired");
    // After a renewal the app syncs again; then it retries or discards the refused one.
    let r = q.sync_now(&c, 1).await;
    assert_eq!(r.sent.len(), 1);
    q.retry_failed(&a, 2).await.unwrap();
    let r = q.sync(&c, 2).await;
    assert_eq!(r.sent.len(), 1);
    assert!(q.entries().is_empty());
}

#[tokio::test]
async fn outbox_retries_what_a_proxy_answers_during_a_deploy() {
    let stub = Arc::new(Stub::default());
    let statuses = [
        (404, "not_found"),
        (408, "http_408"),
        (421, "http_421"),
        (425, "http_425"),
    ];
    *stub.tx_failures.lock().unwrap() = statuses.to_vec();
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let first = q.submit(&c, sale(100), None, 0).await.unwrap();
    assert!(matches!(first, Submitted::Queued(_)), "{first:?}");
    q.enqueue(sale(200), None, 0).await.unwrap();
    assert_eq!(q.last_error().unwrap().http_status, Some(404));
    for (attempt, (status, code)) in statuses.iter().enumerate().skip(1) {
        // Each stops the run, keeps the sale pending and schedules a retry.
        let r = q.sync_now(&c, 1).await;
        assert_eq!(r.stopped_by.unwrap().code(), *code, "{status}");
        assert!(r.failed.is_empty(), "{status}");
        assert_eq!(q.entries()[0].attempts as usize, attempt + 1);
        assert!(q.next_attempt_at().unwrap() > 1);
        assert!(q.failed().is_empty());
    }
    // The proxy is gone: both are sent, the first once.
    let r = q.sync_now(&c, 2).await;
    assert_eq!(r.sent.len(), 2);
    assert_eq!(stub.posts.load(Ordering::SeqCst), 6);
    assert!(q.entries().is_empty());
}

#[tokio::test]
async fn a_retry_after_of_years_waits_no_longer_than_the_backoff() {
    let stub = Arc::new(Stub::default());
    *stub.tx_failures.lock().unwrap() = vec![(429, "rate_limited")];
    *stub.retry_after_secs.lock().unwrap() = Some(10 * 365 * 86_400);
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let backoff = tillgate_client::Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    let q = Outbox::open(Arc::new(MemoryStore::new()))
        .await
        .unwrap()
        .with_backoff(backoff);
    let r = q.submit(&c, sale(100), None, 1_000).await.unwrap();
    assert!(matches!(r, Submitted::Queued(_)));
    // The server's wait, capped at the backoff's longest.
    assert_eq!(q.next_attempt_at(), Some(61_000));
    assert!(q.sync(&c, 60_999).await.sent.is_empty());
    assert_eq!(q.sync(&c, 61_000).await.sent.len(), 1);
}

#[tokio::test]
async fn submitting_a_refused_sale_again_answers_its_refusal() {
    let stub = Arc::new(Stub::default());
    *stub.tx_failures.lock().unwrap() = vec![(400, "invalid_transaction")];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let key = IdempotencyKey::new("receipt-7").unwrap();
    for _ in 0..2 {
        let r = q.submit(&c, sale(100), Some(key.clone()), 0).await.unwrap();
        // Kept, and refused: an Ok, so the app never takes it for a sale not stored.
        let Submitted::Refused { key: k, error } = r else {
            panic!("{r:?}")
        };
        assert_eq!(k, key);
        assert_eq!(error.code, "invalid_transaction", "{error:?}");
        assert_eq!(error.http_status, Some(400));
        assert_eq!(error.fields.len(), 1, "the server's field list is kept");
        assert_eq!(error.fields[0].code, "total_mismatch");
    }
    assert_eq!(q.failed()[0].last_error.as_ref().unwrap().fields.len(), 1);
    // Refused once by the server; the second answer came from the queue.
    assert_eq!(stub.posts.load(Ordering::SeqCst), 1);
    assert_eq!(q.failed().len(), 1);
    // Once the app retries it, it goes through.
    q.retry_failed(&key, 1).await.unwrap();
    let r = q.submit(&c, sale(100), Some(key), 1).await.unwrap();
    assert!(matches!(r, Submitted::Sent(_)), "{r:?}");
    assert!(q.entries().is_empty());
}

/// A 5xx's Retry-After (a server being upgraded, a full disk) schedules the next
/// attempt no sooner, as a 429's does; a sale refused before it is queued is an `Err`
/// and is not kept.
#[tokio::test]
async fn a_5xx_retry_after_is_followed_and_a_local_refusal_keeps_nothing() {
    let stub = Arc::new(Stub::default());
    *stub.tx_failures.lock().unwrap() = vec![(503, "schema_newer")];
    *stub.retry_after_secs.lock().unwrap() = Some(60);
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let r = q.submit(&c, sale(100), None, 1_000).await.unwrap();
    assert!(matches!(r, Submitted::Queued(_)), "{r:?}");
    let last = q.last_error().unwrap();
    assert_eq!(
        (last.code.as_str(), last.http_status),
        ("schema_newer", Some(503))
    );
    assert!(
        q.next_attempt_at().unwrap() >= 61_000,
        "{:?}",
        q.next_attempt_at()
    );
    assert!(q.sync(&c, 60_999).await.sent.is_empty());
    assert_eq!(q.sync(&c, 61_000).await.sent.len(), 1);

    let mut bad = sale(100);
    bad.total += 1;
    let e = q.submit(&c, bad, None, 62_000).await.unwrap_err();
    assert_eq!(e.code(), "invalid_transaction");
    assert!(
        q.entries().is_empty() && q.failed().is_empty(),
        "nothing kept"
    );
}

#[tokio::test]
async fn concurrent_syncs_do_not_double_send() {
    let stub = Arc::new(Stub::default());
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Arc::new(Outbox::open(Arc::new(MemoryStore::new())).await.unwrap());
    for i in 0..20 {
        q.enqueue(sale(100 + i), None, 0).await.unwrap();
    }
    let (r1, r2) = tokio::join!(q.sync_now(&c, 0), q.sync_now(&c, 0));
    assert_eq!(r1.sent.len() + r2.sent.len(), 20);
    assert!(r1.already_running || r2.already_running);
    assert_eq!(stub.posts.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn every_transaction_is_persisted_before_it_is_sent() {
    let stub = Arc::new(Stub::default());
    let store = Arc::new(MemoryStore::new());
    *stub.watch.lock().unwrap() = Some(store.clone());
    *stub.tx_failures.lock().unwrap() = vec![(503, "storage_unavailable")];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(store.clone()).await.unwrap();
    let r = q.submit(&c, sale(100), None, 0).await.unwrap();
    assert!(matches!(r, Submitted::Queued(_)));
    for i in 0..3 {
        q.submit(&c, sale(200 + i), None, 0).await.unwrap();
    }
    let r = q.sync_now(&c, 1).await;
    assert!(r.stopped_by.is_none());
    assert_eq!(q.len(), 0);
    // Once acknowledged, the record is gone from the store.
    assert!(store.load().unwrap().entries.is_empty());
    let seen = stub.persisted_before_send.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.iter().all(|p| *p), "{seen:?}");
}

/// A server that answers every connection with an endless chunked body; returns its base
/// URL and the number of body bytes it managed to send in all.
async fn spawn_endless() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let total = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n1\r\n[\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("4000\r\n{}\r\n", "0,".repeat(0x2000));
                while sock.write_all(chunk.as_bytes()).await.is_ok() {
                    sent.fetch_add(0x4000, Ordering::Relaxed);
                }
            });
        }
    });
    (format!("http://{addr}"), total)
}

/// An answer over `max_response_bytes` is refused with `invalid_response`: at once when
/// its length is declared, and as soon as the cap is passed when it is not (an endless
/// chunked answer, which would otherwise be read until the timeout and fill memory).
/// An answer under the cap is read as usual.
#[tokio::test]
async fn an_oversized_answer_is_refused_not_read_into_memory() {
    let cap = 1 << 20;
    let base = spawn(Arc::default()).await;
    let mut config = ClientConfig::new(&base, trusted());
    config.max_response_bytes = cap;
    let c = Client::new(config).unwrap();
    c.set_api_key(validate_api_key("huge-000000000000000000000").unwrap());
    let e = c.handshake().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidResponse(m) if m.contains("larger than 1048576 bytes")),
        "{e:?}"
    );
    assert_eq!(e.code(), "invalid_response");
    c.set_api_key(validate_api_key("ok-000000000000000000000").unwrap());
    c.handshake().await.unwrap();

    let (endless, sent) = spawn_endless().await;
    let mut config = ClientConfig::new(&endless, trusted());
    config.max_response_bytes = cap;
    config.timeout = Duration::from_secs(60);
    let c = Client::new(config).unwrap();
    c.set_api_key(validate_api_key("ok-000000000000000000000").unwrap());
    let e = c.handshake().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::InvalidResponse(m) if m.contains("larger than")),
        "{e:?}"
    );
    // It stopped reading near the cap: what the server got out is the cap plus what the
    // socket buffers held when the client hung up, not an unbounded stream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = sent.load(Ordering::Relaxed);
    assert!(n >= cap && n < 32 * cap, "{n} bytes sent");
}

#[tokio::test]
async fn product_sync_follows_more_and_refuses_a_stuck_cursor() {
    let base = spawn(Arc::default()).await;
    let c = client(&base, "products");
    let mut catalogue = tillgate_client::ProductCatalogue::default();
    let s = c.sync_products(&mut catalogue).await.unwrap();
    assert_eq!(s.changed, 3);
    assert_eq!(catalogue.rve.as_deref(), Some("3"));
    let mut ids: Vec<&str> = catalogue.products.keys().map(String::as_str).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["p1", "p2", "p3"]);

    let mut stuck = tillgate_client::ProductCatalogue {
        rve: Some("stuck".into()),
        ..Default::default()
    };
    let e = c.sync_products(&mut stuck).await.unwrap_err();
    assert_eq!(e.code(), "invalid_response", "{e:?}");
    let mut cycle = tillgate_client::ProductCatalogue {
        rve: Some("ping".into()),
        ..Default::default()
    };
    let e = c.sync_products(&mut cycle).await.unwrap_err();
    assert_eq!(e.code(), "invalid_response", "{e:?}");
    // One page at a time, for apps that keep the catalogue themselves.
    let page = c.product_changes(Some("1")).await.unwrap();
    assert_eq!(
        (page.products.len(), page.rve.as_deref(), page.more),
        (1, Some("2"), true)
    );
}

/// Members a newer server adds to a product (the stub's `unit` and `allergens`) break
/// neither a sync nor a `put_product` answer: the product is read, the members ignored.
#[tokio::test]
async fn products_with_members_this_client_does_not_know_are_read() {
    let base = spawn(Arc::default()).await;
    let c = client(&base, "products");
    let mut catalogue = tillgate_client::ProductCatalogue::default();
    assert_eq!(c.sync_products(&mut catalogue).await.unwrap().changed, 3);
    assert_eq!(catalogue.products["p1"].price, 100);
    let mut p = catalogue.products["p1"].clone();
    p.id = "p 9".into();
    p.price = 250;
    let stored = c.put_product(&p).await.unwrap();
    assert_eq!((stored.id.as_str(), stored.price), ("p 9", 250));
    assert_eq!(stored.updated_at.as_deref(), Some("2024-02-01T00:00:00Z"));
}

/// A stored transaction of sequence `seq` with `lines` lines, each named with 100
/// characters: about `lines` × 150 bytes of JSON.
fn stored_sale(seq: usize, lines: usize) -> serde_json::Value {
    let items: Vec<_> = (0..lines)
        .map(|_| serde_json::json!({"name": "x".repeat(100), "quantity": 1, "amount": 1}))
        .collect();
    serde_json::json!({"id": format!("tx{seq}"), "sequence": seq,
        "createdAt": "2024-03-09T16:00:00Z", "productionNumber": "TG-1",
        "type": "sale", "currency": "SEK", "total": lines, "items": items,
        "txh": "h", "receipt": "r.r.r"})
}

/// The (afterSequence, limit) of each `GET /transactions` the stub received.
fn list_requests(stub: &Stub) -> Vec<(Option<String>, String)> {
    let queries = stub.list_queries.lock().unwrap();
    queries
        .iter()
        .map(|q| (q.get("afterSequence").cloned(), q["limit"].clone()))
        .collect()
}

/// The client asks for pages of `transaction_page_size` (100 unless configured).
#[tokio::test]
async fn transactions_are_listed_in_pages_of_the_configured_size() {
    let stub = Arc::new(Stub::default());
    *stub.history.lock().unwrap() = (1..=250).map(|seq| stored_sale(seq, 1)).collect();
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let all = c.list_transactions().await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.sequence).collect::<Vec<_>>(),
        (1..=250).collect::<Vec<_>>()
    );
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        list_requests(&stub),
        [
            (None, "100".to_owned()),
            (some("100"), "100".to_owned()),
            (some("200"), "100".to_owned()),
        ]
    );

    stub.list_queries.lock().unwrap().clear();
    let mut config = ClientConfig::new(base.as_str(), trusted());
    config.transaction_page_size = 1000;
    let c = Client::new(config).unwrap();
    c.set_api_key(validate_api_key("ok-000000000000000000000").unwrap());
    assert_eq!(c.list_transactions().await.unwrap().len(), 250);
    assert_eq!(list_requests(&stub), [(None, "1000".to_owned())]);
}

/// A page whose answer is over `max_response_bytes` (a run of large transactions) is
/// asked for again with half as many transactions, and the listing completes; the pages
/// grow back once the transactions are small again. Only a single transaction over the
/// cap fails the listing.
#[tokio::test]
async fn a_page_over_the_answer_cap_is_asked_for_again_in_halves() {
    let stub = Arc::new(Stub::default());
    // Sequences 1–30, of which 11–15 are about 30 KB each: more than two of them pass
    // the 64 KiB cap.
    let large = 11..=15;
    *stub.history.lock().unwrap() = (1..=30)
        .map(|seq| stored_sale(seq, if large.contains(&seq) { 200 } else { 1 }))
        .collect();
    let base = spawn(stub.clone()).await;
    let mut config = ClientConfig::new(base.as_str(), trusted());
    config.max_response_bytes = 64 << 10;
    config.transaction_page_size = 10;
    let c = Client::new(config).unwrap();
    c.set_api_key(validate_api_key("ok-000000000000000000000").unwrap());

    let all = c.list_transactions().await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.sequence).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert_eq!(all[10].transaction.items.len(), 200);
    let req = |after: Option<&str>, limit: &str| (after.map(str::to_owned), limit.to_owned());
    assert_eq!(
        list_requests(&stub),
        [
            req(None, "10"),
            // 11–20 and 11–15 are over the cap, 11–12 fits (more than half the cap).
            req(Some("10"), "10"),
            req(Some("10"), "5"),
            req(Some("10"), "2"),
            req(Some("12"), "2"),
            req(Some("14"), "2"),
            // 15–16 fitted with room to spare: the pages grow back.
            req(Some("16"), "4"),
            req(Some("20"), "8"),
            req(Some("28"), "10"),
        ]
    );

    // One transaction alone over the cap: asked for down to a page of one, then refused.
    stub.list_queries.lock().unwrap().clear();
    stub.history.lock().unwrap()[11] = stored_sale(12, 600);
    let e = c.list_transactions().await.unwrap_err();
    assert_eq!(e.code(), "invalid_response", "{e:?}");
    assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    // 11 alone fits (and the page grows back to 2), 12 alone does not.
    let limits: Vec<String> = list_requests(&stub).into_iter().map(|(_, l)| l).collect();
    assert_eq!(limits, ["10", "10", "5", "2", "1", "2", "1"]);
}

/// A renewal is sent with its period written canonically, whatever RFC 3339 spelling the
/// app used, so that a server comparing the text recognises a repeated renewal.
#[tokio::test]
async fn a_renewal_sends_the_canonical_period() {
    let stub = Arc::new(Stub::default());
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let request = tillgate_client::RenewRequest {
        production_number: "TG-1".into(),
        device_id: "dev-1".into(),
        valid_from: "2026-06-01T00:00:00.000Z".into(),
        valid_to: "2027-06-01T01:00:00+01:00".into(),
        descriptor: None,
    };
    let a = c.renew(&request).await.unwrap();
    assert_eq!(a.valid_from.as_deref(), Some("2026-06-01T00:00:00Z"));
    c.renew_with_descriptor(&request, "a.b.c").await.unwrap();
    let sent = stub.renewals.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    for body in &sent {
        assert_eq!(body["validFrom"], "2026-06-01T00:00:00Z", "{body}");
        assert_eq!(body["validTo"], "2027-06-01T00:00:00Z", "{body}");
    }
    assert_eq!(sent[0].get("descriptor"), None);
    assert_eq!(sent[1]["descriptor"], "a.b.c");
}

/// Receipt `seq` of the register's chain for `tx`, linking `prev` (`None` for the
/// first); `total` tells two chains apart.
fn receipt(prev: Option<&str>, seq: u64, total: i64, tx: &Transaction) -> String {
    let claims = ReceiptClaims {
        iss: "stub".into(),
        sub: "TG-1".into(),
        iat: NOW + seq as i64,
        seq,
        txid: format!("tx_{total}_{seq}"),
        txh: transaction_hash(tx),
        prev: prev.map(receipt_link).unwrap_or_default(),
        tx_type: "sale".into(),
        total,
        currency: "SEK".into(),
    };
    sign_receipt(&claims, &server_key()).unwrap()
}

/// One store two outboxes share (two browser tabs), whose witness writes fail while
/// `full` is set. While `racy` is set, the next new record is written even over one
/// already stored (another tab's write landing between this tab's check of the id and
/// its own write: `localStorage` has no compare-and-set).
#[derive(Default)]
struct SharedStore {
    inner: MemoryStore,
    full: std::sync::atomic::AtomicBool,
    racy: std::sync::atomic::AtomicBool,
}

impl QueueStore for SharedStore {
    fn load(&self) -> tillgate_client::Result<StoreContents> {
        self.inner.load()
    }
    fn save(&self, entry: &QueuedTransaction) -> tillgate_client::Result<()> {
        self.inner.save(entry)
    }
    fn save_new(&self, entry: &QueuedTransaction) -> tillgate_client::Result<bool> {
        if self.racy.swap(false, Ordering::SeqCst) {
            return self.inner.save(entry).map(|()| true);
        }
        self.inner.save_new(entry)
    }
    fn remove(&self, id: u64) -> tillgate_client::Result<()> {
        self.inner.remove(id)
    }
    fn update(&self, entry: &QueuedTransaction) -> tillgate_client::Result<()> {
        self.inner.update(entry)
    }
    fn remove_entry(&self, entry: &QueuedTransaction) -> tillgate_client::Result<()> {
        self.inner.remove_entry(entry)
    }
    fn remove_corrupt(&self, name: &str) -> tillgate_client::Result<()> {
        self.inner.remove_corrupt(name)
    }
    fn save_witness(&self, record: &WitnessRecord) -> tillgate_client::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(ClientError::Storage("no space left on device".into()));
        }
        self.inner.save_witness(record)
    }
    fn load_witness(
        &self,
    ) -> tillgate_client::Result<Option<Result<WitnessRecord, CorruptRecord>>> {
        self.inner.load_witness()
    }
}

/// Tab A could not store its receipt 2; tab B then stored another receipt 2 (the server
/// forked the chain). A's next sale: its sync reads the store first, then sends the sale,
/// whose receipt continues B's. The fork must be reported, with A's receipt as the
/// evidence, not hidden by B's receipt and the one after it.
#[tokio::test]
async fn a_sync_reports_a_fork_of_a_receipt_the_tab_could_not_store() {
    let stub = Arc::new(Stub::default());
    let r1 = receipt(None, 1, 100, &sale(100));
    let r2 = receipt(Some(&r1), 2, 100, &sale(101));
    let other2 = receipt(Some(&r1), 2, 7, &sale(102));
    let other3 = receipt(Some(&other2), 3, 7, &sale(103));
    *stub.receipts.lock().unwrap() = vec![r1.clone(), r2.clone(), other2.clone(), other3.clone()];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let store = Arc::new(SharedStore::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    assert!(matches!(
        a.submit(&c, sale(100), None, 1).await.unwrap(),
        Submitted::Sent(_)
    ));
    let b = Outbox::open(store.clone()).await.unwrap();
    store.full.store(true, Ordering::SeqCst);
    a.submit(&c, sale(101), None, 2).await.unwrap();
    assert_eq!(a.witness().as_ref(), Some(&r2));
    assert_eq!(a.last_error().unwrap().code, "storage_error");
    store.full.store(false, Ordering::SeqCst);
    b.submit(&c, sale(102), None, 3).await.unwrap();
    assert_eq!(b.witness().as_ref(), Some(&other2));

    let key = IdempotencyKey::new("a-4").unwrap();
    a.enqueue(sale(103), Some(key.clone()), 4).await.unwrap();
    let r = a.sync(&c, 4).await;
    assert_eq!(r.sent.len(), 1);
    assert_eq!(r.sent[0].1.receipt, other3);
    let p = a.witness_problem().expect("the fork was reported");
    assert_eq!((p.code.as_str(), &p.receipt), ("witness_mismatch", &r2));
    let stored = store.inner.load().unwrap().witness.unwrap().unwrap();
    assert_eq!(
        (stored.receipt.as_ref(), stored.problem.as_ref()),
        (Some(&other3), Some(&p))
    );
    // B reports it from its next sync.
    b.sync(&c, 5).await;
    assert_eq!(b.witness_problem(), Some(p));
}

/// The till is offline with 20 sales queued when its store is wiped (the app's logout
/// code calling `localStorage.clear()`, the user clearing site data). The next sync keeps
/// every sale and writes it back (still offline: all 20 remain, with the error); once the
/// server answers, each is stored again before it is sent, and all 20 reach the server.
#[tokio::test]
async fn a_wiped_store_loses_no_sale() {
    let stub = Arc::new(Stub::default());
    let store = Arc::new(MemoryStore::new());
    *stub.watch.lock().unwrap() = Some(store.clone());
    *stub.tx_failures.lock().unwrap() = vec![(503, "storage_unavailable")];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(store.clone()).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(q.enqueue(sale(100 + i), None, 0).await.unwrap());
    }
    store.clear();
    let r = q.sync_now(&c, 1).await;
    assert_eq!(r.stopped_by.unwrap().code(), "storage_unavailable");
    assert_eq!(r.remaining, 20);
    assert_eq!(q.last_error().unwrap().code, "storage_unavailable");
    let stored: Vec<IdempotencyKey> = (store.load().unwrap().entries.into_iter())
        .map(|e| e.idempotency_key)
        .collect();
    assert_eq!(stored, keys, "written back in order of sale");
    store.clear();
    let r = q.sync_now(&c, 2).await;
    assert!(r.stopped_by.is_none(), "{:?}", r.stopped_by);
    let sent: Vec<IdempotencyKey> = r.sent.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(sent, keys);
    assert_eq!(r.remaining, 0);
    assert!(q.is_empty() && q.last_error().is_none());
    assert_eq!(stub.stored.lock().unwrap().len(), 20);
    let seen = stub.persisted_before_send.lock().unwrap().clone();
    assert_eq!(seen.len(), 21, "{seen:?}");
    assert!(
        seen.iter().all(|p| *p),
        "each stored before it was sent: {seen:?}"
    );
    assert!(store.load().unwrap().entries.is_empty());
}

/// Tabs A and B write a new sale under the same id in the same instant: B's record
/// replaces A's. A keeps its sale and writes it back under a free id; both reach the
/// server. B, still holding its sale that A sent, resends it once and forgets it after
/// the server's answer (the stored sale and receipt: no duplicate, no fork).
#[tokio::test]
async fn a_sale_written_over_by_another_tab_is_still_sent() {
    let stub = Arc::new(Stub::default());
    // B's sale is sent first.
    let r1 = receipt(None, 1, 100, &sale(200));
    let r2 = receipt(Some(&r1), 2, 100, &sale(100));
    *stub.receipts.lock().unwrap() = vec![r1.clone(), r2.clone()];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let store = Arc::new(SharedStore::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    let b = Outbox::open(store.clone()).await.unwrap();
    let ka = a.enqueue(sale(100), None, 1).await.unwrap();
    store.racy.store(true, Ordering::SeqCst);
    let kb = b.enqueue(sale(200), None, 2).await.unwrap();
    let stored = store.inner.load().unwrap().entries;
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].id, &stored[0].idempotency_key), (1, &kb));

    let r = a.sync_now(&c, 3).await;
    assert!(r.stopped_by.is_none(), "{:?}", r.stopped_by);
    let sent: Vec<IdempotencyKey> = r.sent.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(sent, [kb.clone(), ka]);
    assert!(r.witness_problem.is_none());
    assert!(a.is_empty());
    assert_eq!(stub.stored.lock().unwrap().len(), 2);

    let r = b.sync_now(&c, 4).await;
    assert_eq!(r.sent.len(), 1);
    assert_eq!((&r.sent[0].0, &r.sent[0].1.receipt), (&kb, &r1));
    assert!(r.witness_problem.is_none() && b.witness_problem().is_none());
    assert_eq!(b.witness().as_ref(), Some(&r2));
    assert!(b.is_empty() && b.last_error().is_none());
    assert!(store.inner.load().unwrap().entries.is_empty());
    assert_eq!(stub.stored.lock().unwrap().len(), 2);
    assert_eq!(stub.posts.load(Ordering::SeqCst), 3);
}

/// Tab B took in a sale tab A queued, and could not send it (the server was down); A
/// then sent it and removed its record. B cannot tell that from a lost record: it resends
/// the sale once, the server answers with the sale it stored and its receipt (the
/// witness takes the same receipt, no fork), and B forgets it. Nothing is sent again.
#[tokio::test]
async fn a_sale_another_tab_sent_is_resent_once_then_forgotten() {
    let stub = Arc::new(Stub::default());
    let r1 = receipt(None, 1, 100, &sale(100));
    *stub.receipts.lock().unwrap() = vec![r1.clone()];
    *stub.tx_failures.lock().unwrap() = vec![(503, "storage_unavailable")];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let store = Arc::new(SharedStore::default());
    let a = Outbox::open(store.clone()).await.unwrap();
    let b = Outbox::open(store.clone()).await.unwrap();
    let key = a.enqueue(sale(100), None, 1).await.unwrap();
    let r = b.sync_now(&c, 2).await;
    assert_eq!(r.stopped_by.unwrap().code(), "storage_unavailable");
    assert_eq!(b.entries()[0].idempotency_key, key);

    let r = a.sync_now(&c, 3).await;
    assert_eq!(r.sent.len(), 1);
    let first = r.sent[0].1.clone();
    assert_eq!(first.receipt, r1);
    assert!(store.inner.load().unwrap().entries.is_empty());

    let r = b.sync_now(&c, 4).await;
    assert!(r.stopped_by.is_none(), "{:?}", r.stopped_by);
    assert_eq!(r.sent.len(), 1);
    assert_eq!(r.sent[0].0, key);
    assert_eq!(r.sent[0].1, first, "the server's stored sale, replayed");
    assert!(r.witness_problem.is_none() && b.witness_problem().is_none());
    assert_eq!(b.witness().as_ref(), Some(&r1));
    assert!(b.is_empty() && b.last_error().is_none());
    assert!(store.inner.load().unwrap().entries.is_empty());
    assert_eq!(stub.stored.lock().unwrap().len(), 1, "no duplicate");
    assert_eq!(stub.posts.load(Ordering::SeqCst), 3);

    // Forgotten: neither tab sends it again.
    assert!(b.sync_now(&c, 5).await.sent.is_empty());
    assert!(a.sync_now(&c, 6).await.sent.is_empty());
    assert_eq!(stub.posts.load(Ordering::SeqCst), 3);
    assert!(a.witness_problem().is_none());
}

/// The server stores and signs an altered sale (a total of 100 for one of 12,500), with
/// a receipt correctly signed and chained to the register's witness. That answer is not
/// the sale sent: `submit_transaction` refuses it (`answer_mismatch`), and the outbox
/// keeps the sale pending with that error, and its witness does not take the receipt.
/// Once the server answers with the sale itself, it is sent and the witness moves on.
#[tokio::test]
async fn the_outbox_keeps_a_sale_the_server_answered_with_another() {
    let stub = Arc::new(Stub::default());
    let (first, sold, altered) = (sale(200), sale(12_500), sale(100));
    let r1 = receipt(None, 1, 1, &first);
    let forged = receipt(Some(&r1), 2, 1, &altered);
    *stub.receipts.lock().unwrap() = vec![r1.clone(), forged.clone()];
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let r = q.submit(&c, first, None, 1).await.unwrap();
    assert!(matches!(r, Submitted::Sent(_)), "{r:?}");
    assert_eq!(q.witness().as_ref(), Some(&r1));

    *stub.tamper_total.lock().unwrap() = Some(100);
    let key = IdempotencyKey::new("receipt-2").unwrap();
    let e = c.submit_transaction(&sold, &key).await.unwrap_err();
    assert!(matches!(e, ClientError::AnswerMismatch(_)), "{e:?}");
    assert_eq!(e.code(), "answer_mismatch");
    assert!(!e.is_transient() && !e.is_auth());

    // The outbox sends it under the same key; the server answers the altered sale again.
    let r = q
        .submit(&c, sold.clone(), Some(key.clone()), 2)
        .await
        .unwrap();
    assert!(matches!(r, Submitted::Queued(ref k) if *k == key), "{r:?}");
    let held = q.entries();
    assert_eq!(held.len(), 1, "the sale is kept");
    assert_eq!(
        (&held[0].idempotency_key, held[0].state, held[0].attempts),
        (&key, EntryState::Pending, 1)
    );
    assert_eq!(held[0].transaction, sold);
    assert_eq!(held[0].last_error.as_ref().unwrap().code, "answer_mismatch");
    assert_eq!(q.last_error().unwrap().code, "answer_mismatch");
    assert_eq!(q.witness().as_ref(), Some(&r1), "the receipt was not taken");
    assert!(q.witness_problem().is_none());
    let r = q.sync_now(&c, 3).await;
    assert_eq!(r.stopped_by.unwrap().code(), "answer_mismatch");
    assert!(r.sent.is_empty() && r.witness_problem.is_none());
    assert_eq!((q.len(), q.entries()[0].attempts), (1, 2));
    assert_eq!(q.witness().as_ref(), Some(&r1));

    // The server's record is put right: the resend is answered with the sale itself.
    let r2 = receipt(Some(&r1), 2, 1, &sold);
    stub.stored.lock().unwrap().remove(key.as_str());
    *stub.receipts.lock().unwrap() = vec![r2.clone()];
    let r = q.sync_now(&c, 4).await;
    assert!(r.stopped_by.is_none(), "{:?}", r.stopped_by);
    assert_eq!(r.sent.len(), 1);
    assert_eq!((&r.sent[0].0, &r.sent[0].1.transaction), (&key, &sold));
    assert_eq!(q.witness().as_ref(), Some(&r2));
    assert!(q.is_empty() && q.last_error().is_none());
}

/// After an outage, a submit behind more than `SUBMIT_MAX_AHEAD` pending sales sends
/// nothing (the checkout never waits for the backlog) and answers `Queued`; the next
/// sync sends them all in order of sale. Behind at most `SUBMIT_MAX_AHEAD`, a submit
/// sends them first, then its own sale, and answers `Sent`.
#[tokio::test]
async fn a_submit_behind_a_backlog_leaves_it_to_sync() {
    let stub = Arc::new(Stub::default());
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let posts = || stub.posts.load(Ordering::SeqCst);
    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..=SUBMIT_MAX_AHEAD as i64 {
        keys.push(q.enqueue(sale(100 + i), None, 0).await.unwrap());
    }
    let r = q.submit(&c, sale(999), None, 1).await.unwrap();
    let Submitted::Queued(key) = r else {
        panic!("{r:?}")
    };
    assert_eq!(posts(), 0, "no request reached the server");
    assert_eq!(q.len(), SUBMIT_MAX_AHEAD + 2);
    assert!(q.last_error().is_none());
    keys.push(key);
    let r = q.sync(&c, 2).await;
    let sent: Vec<IdempotencyKey> = r.sent.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(sent, keys, "in order of sale");
    assert_eq!((r.remaining, posts()), (0, SUBMIT_MAX_AHEAD + 2));

    // A longer backlog: the same.
    for i in 0..20 {
        q.enqueue(sale(200 + i), None, 3).await.unwrap();
    }
    let r = q.submit(&c, sale(999), None, 3).await.unwrap();
    assert!(matches!(r, Submitted::Queued(_)), "{r:?}");
    assert_eq!(posts(), SUBMIT_MAX_AHEAD + 2);
    assert_eq!(q.sync(&c, 4).await.sent.len(), 21);
    assert!(q.is_empty());

    // At most SUBMIT_MAX_AHEAD ahead: they go first, then the new sale.
    let before = posts();
    let mut ahead = Vec::new();
    for i in 0..SUBMIT_MAX_AHEAD as i64 {
        ahead.push(q.enqueue(sale(300 + i), None, 5).await.unwrap());
    }
    let r = q.submit(&c, sale(999), None, 5).await.unwrap();
    let Submitted::Sent(stored) = r else {
        panic!("{r:?}")
    };
    assert_eq!(posts() - before, SUBMIT_MAX_AHEAD + 1);
    // The stub numbers its sales in the order they arrive: the new one came last.
    let stored_seq =
        |k: &IdempotencyKey| stub.stored.lock().unwrap()[k.as_str()]["sequence"].clone();
    for (i, k) in ahead.iter().enumerate() {
        assert_eq!(stored_seq(k), serde_json::json!(before + i + 1));
    }
    assert_eq!(stored.sequence as usize, before + SUBMIT_MAX_AHEAD + 1);
    assert!(q.is_empty() && q.last_error().is_none());
}

/// The server moved (an `http://` address answering `301` to `https://`). The redirect
/// is not followed (a `POST` would become a `GET` without the API key, which the server
/// refuses as an unknown key, and the app would activate again): the call fails with
/// `unexpected_redirect`, naming where without the token or query, neither an auth
/// error nor a refusal, and the outbox keeps the sale pending.
#[tokio::test]
async fn a_redirect_is_not_followed_and_keeps_the_sale() {
    let stub = Arc::new(Stub::default());
    *stub.redirect_to.lock().unwrap() =
        Some("/moved/OpenApi_1$$Secr3tT0ken/transactions?token=abc".into());
    let base = spawn(stub.clone()).await;
    let c = client(&base, "ok");
    let key = IdempotencyKey::new("receipt-1").unwrap();
    let e = c.submit_transaction(&sale(100), &key).await.unwrap_err();
    assert!(matches!(e, ClientError::UnexpectedRedirect { .. }), "{e:?}");
    assert_eq!(e.code(), "unexpected_redirect");
    assert!(!e.is_transient() && !e.is_auth());
    assert_eq!(e.http_status(), Some(301));
    let shown = e.to_string();
    assert!(
        shown.contains("(HTTP 301) to /moved/OpenApi_1$$<redacted>/transactions:"),
        "{shown}"
    );
    assert!(
        !shown.contains("Secr3tT0ken") && !shown.contains("token=abc"),
        "{shown}"
    );
    let e = client(&base, "moved").handshake().await.unwrap_err();
    assert_eq!(e.code(), "unexpected_redirect", "{e:?}");
    assert!(!e.is_auth());

    let q = Outbox::open(Arc::new(MemoryStore::new())).await.unwrap();
    let r = q.submit(&c, sale(100), Some(key.clone()), 1).await.unwrap();
    assert!(matches!(r, Submitted::Queued(ref k) if *k == key), "{r:?}");
    let e = &q.entries()[0];
    assert_eq!(e.state, EntryState::Pending, "kept, not refused for good");
    let last = e.last_error.as_ref().unwrap();
    assert_eq!(
        (last.code.as_str(), last.http_status),
        ("unexpected_redirect", Some(301))
    );
    assert!(!last.message.contains("Secr3tT0ken"), "{last:?}");
    assert!(
        q.next_attempt_at().unwrap() > 1,
        "retried after the backoff"
    );
    assert_eq!(stub.moved_hits.load(Ordering::SeqCst), 0, "never followed");
    assert_eq!(stub.posts.load(Ordering::SeqCst), 2);

    // The server answers where it is again: the sale goes through.
    *stub.redirect_to.lock().unwrap() = None;
    assert_eq!(q.sync_now(&c, 2).await.sent.len(), 1);
    assert!(q.is_empty());
}
