//! Hardening: the OpenAPI document matches the answers and lists every problem, slow
//! clients are cut off, and signing-key seeds are sealed at rest.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use serde_json::{Value, json};
use sqlx::Row as _;
use tillgate_server::db::Store;
use tillgate_server::{AppState, ManualClock, app};

on_both!(signing_key_seeds_are_sealed_at_rest);

/// No answer may be kept by a shared cache in front (a key sent as `X-Api-Key` does not
/// make a request private to a cache): every answer says `no-store`, errors too, except
/// the public ones that say otherwise (the JWKS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_not_stored_by_caches_in_front() {
    let db = TestDb::new(Backend::Sqlite, "no_store").await.unwrap();
    let s = Srv::start(&db, Backend::Sqlite).await;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    let cache_control = |r: &reqwest::Response| {
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for path in ["/transactions", "/products", "/auth/handshake", "/healthz"] {
        let r = s
            .http
            .get(s.url(path))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(cache_control(&r).as_deref(), Some("no-store"), "{path}");
    }
    let r = s
        .http
        .get(s.url(&format!("/OpenApi_1,2,3,4$${key}/Products")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cache_control(&r).as_deref(), Some("no-store"));
    let r = s
        .get("/transactions", "Wrong-Key-00000000000000000000")
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(cache_control(&r).as_deref(), Some("no-store"));
    let r = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(cache_control(&r).as_deref(), Some("public, max-age=300"));
}

/// A product answer has only members its schema knows; the schema does not forbid them
/// (the input schema still refuses unknown members); every operation lists its problems.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_product_answers_and_lists_problems() {
    let db = TestDb::new(Backend::Sqlite, "openapi").await.unwrap();
    let s = Srv::start(&db, Backend::Sqlite).await;
    let doc: Value = s.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];

    // Products: the input refuses unknown members, the answer is not `additionalProperties: false`.
    assert_eq!(
        schemas["ProductInput"]["additionalProperties"],
        json!(false)
    );
    let out = serde_json::to_string(&schemas["ProductOut"]).unwrap();
    assert!(!out.contains("additionalProperties"), "{out}");
    assert!(!out.contains("schemas/ProductInput"), "{out}");
    let mut known: Vec<String> = schemas["ProductDoc"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    known.extend(["id".into(), "updatedAt".into()]);
    let (_, key) = s.register(CORP_A, "dev-1").await;
    let r = s
        .http
        .put(s.url("/products/kaffe-1"))
        .bearer_auth(&key)
        .json(&json!({"name": "Kaffe", "price": 2500, "currency": "SEK", "vatRate": 1200, "barcode": "7310865004703"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    for k in p.as_object().unwrap().keys() {
        assert!(known.contains(k), "{k} is not in the ProductOut schema");
    }

    // Constraints from core's rules.
    let tx = &schemas["TransactionDoc"];
    assert_eq!(
        schemas["TransactionTypeDoc"]["enum"],
        json!(["sale", "refund", "copy", "training"])
    );
    assert_eq!(tx["properties"]["currency"]["pattern"], "^[A-Z]{3}$");
    assert_eq!(tx["properties"]["items"]["minItems"], 1);
    assert_eq!(
        schemas["ItemDoc"]["properties"]["quantity"]["maximum"],
        1_000_000
    );
    // Periods: any RFC 3339 time that is midnight UTC is accepted (an offset too, see
    // tests/vectors/activation.json), so the schema names the format and no narrower pattern.
    for schema in ["ActivationRequestDoc", "RenewRequest"] {
        for field in ["validFrom", "validTo"] {
            let p = &schemas[schema]["properties"][field];
            assert_eq!(p["format"], "date-time", "{schema}.{field}: {p}");
            assert!(p.get("pattern").is_none(), "{schema}.{field}: {p}");
        }
    }

    // Every operation: its problems as problem+json; 401/429 where a key is checked,
    // 413/415 where a JSON body is read, 408/503 everywhere.
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            let what = format!("{method} {path}");
            assert!(has("408") && has("503"), "{what}");
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| !r.as_object().unwrap().is_empty()));
            if secured {
                assert!(has("401") && has("429"), "{what}");
            }
            if op.get("requestBody").is_some() {
                assert!(has("413") && has("400"), "{what}");
            }
            for (status, resp) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        resp["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{what} {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 20);
    let renew = &doc["paths"]["/activations/renew"]["post"]["responses"];
    assert!(
        renew["401"]["description"]
            .as_str()
            .unwrap()
            .contains("`descriptor_superseded`")
    );
    let add_staff = &doc["paths"]["/admin/staff"]["post"]["responses"];
    let conflicts = add_staff["409"]["description"].as_str().unwrap();
    assert!(
        conflicts.contains("`staff_login_in_use`") && conflicts.contains("`staff_key_reused`"),
        "{conflicts}"
    );
    assert!(add_staff["200"].is_object() && add_staff["201"].is_object());
    let disable = &doc["paths"]["/admin/staff/{login}/disable"]["post"]["responses"];
    assert!(
        disable["404"]["description"]
            .as_str()
            .unwrap()
            .contains("`staff_not_found`")
    );
    let handshake = &doc["paths"]["/auth/handshake"]["get"]["responses"];
    assert!(
        handshake["400"]["description"]
            .as_str()
            .unwrap()
            .contains("`invalid_nonce`")
    );
    assert!(
        handshake["400"]["description"]
            .as_str()
            .unwrap()
            .contains("`url_invalid_rve`")
    );
}

/// Sends `request` on a raw connection and reads until the server closes it or answers.
fn probe(addr: std::net::SocketAddr, request: &'static [u8]) -> (Duration, String) {
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (start.elapsed(), String::from_utf8_lossy(&buf).into_owned())
}

/// A connection that does not finish its request head is closed after the header read
/// timeout; a request whose body does not arrive is answered 408 after the request
/// timeout; normal requests and graceful shutdown still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let db = TestDb::new(Backend::Sqlite, "slow_clients").await.unwrap();
    let mut config = test_config(&db.url);
    config.request_timeout_secs = 1;
    let (state, started) = AppState::start(config, Arc::new(ManualClock::new(T2030)))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tillgate_server::serve(
        listener,
        app(state.clone()),
        Duration::from_secs(1),
        async {
            let _ = stopped.await;
        },
    ));

    let probes: [&'static [u8]; 3] = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"",
        b"POST /activations-advanced HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    ];
    let handles: Vec<_> = probes
        .into_iter()
        .map(|p| tokio::task::spawn_blocking(move || probe(addr, p)))
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    for (elapsed, _) in &results {
        assert!(*elapsed < Duration::from_secs(8), "{elapsed:?}");
    }
    let (_, body_timeout) = &results[2];
    assert!(body_timeout.starts_with("HTTP/1.1 408"), "{body_timeout}");
    assert!(
        body_timeout.contains("application/problem+json"),
        "{body_timeout}"
    );
    assert!(
        body_timeout.contains("\"code\":\"request_timeout\""),
        "{body_timeout}"
    );

    // Normal requests, then a graceful stop with an idle keep-alive connection open.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("graceful shutdown took too long")
        .unwrap()
        .unwrap();
    state.shutdown().await;
    let _ = started.writer.await;
}

/// Seeds are sealed with the key-encryption key; rows stored in plain text before are
/// sealed at start; the keys themselves do not change; a wrong key stops the start.
async fn signing_key_seeds_are_sealed_at_rest(db: &TestDb, backend: Backend) {
    // A database from before encryption at rest.
    let plain = Store::connect(&db.url, 2).await.unwrap();
    plain.init(T2030).await.unwrap();
    let old = plain.signing_keys().await.unwrap();
    assert_eq!(old.len(), 1);
    let raw_seeds = || async {
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let seeds: Vec<String> = sqlx::query("SELECT seed FROM signing_keys")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("seed").unwrap())
            .collect();
        pool.close().await;
        seeds
    };
    assert_eq!(raw_seeds().await, vec![old[0].seed.clone().unwrap()]);
    plain.close().await;

    let kek = B64.encode([5u8; 32]);
    let mut config = test_config(&db.url);
    config.key_encryption_key = Some(kek.clone());
    let s = Srv::start_with(db, backend, ManualClock::new(T2030 + 3600), config).await;
    let stored = raw_seeds().await;
    assert!(stored[0].starts_with("xc1:"), "{stored:?}");
    assert!(!stored[0].contains(old[0].seed.as_deref().unwrap()));
    let now = s.state.store.signing_keys().await.unwrap();
    assert_eq!((&now[0].kid, &now[0].seed), (&old[0].kid, &old[0].seed));
    let jwks: Value = s.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kid"], json!(old[0].kid));

    // A key rotated in now is stored sealed too.
    let key = tillgate_core::generate_signing_key().unwrap();
    s.state
        .store
        .add_signing_key(&key, T2030 + 7200)
        .await
        .unwrap();
    assert!(raw_seeds().await.iter().all(|r| r.starts_with("xc1:")));
    assert_eq!(s.state.store.signing_keys().await.unwrap().len(), 2);

    // Another key-encryption key cannot open them: the start fails, saying why.
    let mut wrong = test_config(&db.url);
    wrong.key_encryption_key = Some(B64.encode([6u8; 32]));
    let err = AppState::start(wrong, Arc::new(ManualClock::new(T2030)))
        .await
        .err()
        .unwrap();
    assert!(err.contains("does not open"), "{err}");
    // And a store without one refuses sealed rows instead of misreading them.
    let bare = Store::connect(&db.url, 2).await.unwrap();
    assert!(bare.signing_keys().await.is_err());
    bare.close().await;
}

/// A server embedded as a library (`AppState::start`) refuses a SQLite database that
/// `admin copy-to-postgres` marked as moved, as the binary does, and serves it again
/// once the marker is removed: no till can write to the old database by mistake.
#[tokio::test]
async fn start_refuses_a_sqlite_database_moved_to_postgres() {
    let db = TestDb::new(Backend::Sqlite, "moved_marker").await.unwrap();
    let (state, started) = AppState::start(test_config(&db.url), Arc::new(ManualClock::new(T2030)))
        .await
        .unwrap();
    state.shutdown().await;
    started.writer.await.unwrap();
    state.store.close().await;

    let path = tillgate_server::db::sqlite_path(&db.url).unwrap();
    let marker = tillgate_server::transfer::moved_marker(&path);
    std::fs::write(&marker, "moved\n").unwrap();
    let err = AppState::start(test_config(&db.url), Arc::new(ManualClock::new(T2030)))
        .await
        .err()
        .unwrap();
    assert!(err.contains("copied to PostgreSQL"), "{err}");

    std::fs::remove_file(&marker).unwrap();
    let (state, started) = AppState::start(test_config(&db.url), Arc::new(ManualClock::new(T2030)))
        .await
        .unwrap();
    state.shutdown().await;
    started.writer.await.unwrap();
}
