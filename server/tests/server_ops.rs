//! Several processes on one PostgreSQL, and the real binary: secrets never logged,
//! graceful shutdown, admin CLI.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tillgate_core::{TrustedKeys, verify_receipt_chain};
use tillgate_server::ManualClock;

/// Two app instances with their own pools on one PostgreSQL: an approval made through
/// one is seen by the other, and both append to one gapless receipt chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres, "two_instances_share_one_postgres").await else {
        return;
    };
    let a = Srv::start(&db, Backend::Postgres).await;
    let b = Srv::start(&db, Backend::Postgres).await;
    let act = a.activate_ok(CORP_A, "dev-1").await;
    let key = act["apiKey"].as_str().unwrap().to_owned();
    problem(
        b.get("/auth/handshake", &key).await,
        403,
        "pending_approval",
    )
    .await;
    assert_eq!(
        b.admin("approve", act["activationId"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(a.get("/auth/handshake", &key).await.status(), 200);

    // A sale, then its retry with the same Idempotency-Key through the other instance:
    // the stored result comes back (same id, sequence and receipt), nothing new is stored.
    let first = a.post_tx(&key, "across", &sale(250)).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let retry = b.post_tx(&key, "across", &sale(250)).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);
    assert_eq!(first["sequence"], 1, "{first}");
    // The same key with another sale is refused through either instance.
    for srv in [&a, &b] {
        problem(
            srv.post_tx(&key, "across", &sale(251)).await,
            422,
            "idempotency_key_reused",
        )
        .await;
    }

    // Interleaved writes through both instances (two writers, one chain), each key sent
    // once through each instance (`i` and `i + 15` differ in parity), so retries cross
    // instances, concurrently: every answer for a key is the same stored transaction.
    let mut handles = Vec::new();
    for i in 0..30 {
        let srv = if i % 2 == 0 { &a } else { &b };
        let (http, url, key) = (srv.http.clone(), srv.url("/transactions"), key.clone());
        handles.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", format!("k{}", i % 15))
                .json(&sale(100 + (i % 15)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            (i % 15, r.json::<Value>().await.unwrap())
        }));
    }
    let mut answers: std::collections::BTreeMap<i64, Vec<Value>> = Default::default();
    for h in handles {
        let (k, body) = h.await.unwrap();
        answers.entry(k).or_default().push(body);
    }
    assert_eq!(answers.len(), 15);
    for (k, bodies) in &answers {
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], bodies[1], "key k{k}");
    }
    let list: Value = a
        .get("/transactions?limit=1000", &key)
        .await
        .json()
        .await
        .unwrap();
    let receipts: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["receipt"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(receipts.len(), 16, "one sale per idempotency key");
    let mut seqs: Vec<i64> = answers
        .values()
        .map(|b| b[0]["sequence"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=16).collect::<Vec<_>>());
    let jwks = b
        .http
        .get(b.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    verify_receipt_chain(&receipts, &TrustedKeys::from_jwks_json(&jwks).unwrap()).unwrap();

    // A revocation applies at once through the instance that made it, and through the
    // other once its key cache entry (`key_cache_secs`) has expired.
    assert_eq!(b.get("/auth/handshake", &key).await.status(), 200);
    let ttl = b.state.config.key_cache_secs;
    assert!(ttl > 0, "the test needs the key cache on");
    assert_eq!(
        a.admin("revoke", act["activationId"].as_str().unwrap())
            .await
            .status(),
        200
    );
    problem(a.get("/auth/handshake", &key).await, 403, "revoked").await;
    tokio::time::sleep(Duration::from_millis(ttl * 1000 + 200)).await;
    problem(b.get("/auth/handshake", &key).await, 403, "revoked").await;
}

/// With the key cache off, another instance sees a revocation at the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_cache_off_sees_revocations_at_once() {
    let Some(db) = TestDb::new(Backend::Postgres, "key_cache_off_sees_revocations").await else {
        return;
    };
    let a = Srv::start(&db, Backend::Postgres).await;
    let mut config = test_config(&db.url);
    config.key_cache_secs = 0;
    let b = Srv::start_with(&db, Backend::Postgres, a.clock.clone(), config).await;
    let (act, key) = a.register(CORP_A, "dev-1").await;
    assert_eq!(b.get("/auth/handshake", &key).await.status(), 200);
    assert_eq!(
        a.admin("revoke", act["activationId"].as_str().unwrap())
            .await
            .status(),
        200
    );
    problem(b.get("/auth/handshake", &key).await, 403, "revoked").await;
}

/// Two instances on one database and one manual clock (an hour into 2030), with a key
/// cache long enough (60 s) that what one caches is still cached when the other changes
/// it.
async fn two_caching_instances(db: &TestDb, backend: Backend) -> (Srv, Srv, ManualClock) {
    let clock = ManualClock::new(T2030 + 3600);
    let mut config = test_config(&db.url);
    config.key_cache_secs = 60;
    let a = Srv::start_with(db, backend, clock.clone(), config.clone()).await;
    let b = Srv::start_with(db, backend, clock.clone(), config).await;
    (a, b, clock)
}

/// A register approved through `srv` whose key is valid for January 2030: its
/// registration (as `POST /activations-advanced` answered) and its API key.
async fn approved_for_january(srv: &Srv, device: &str) -> (Value, String) {
    let r = srv
        .activate(activation_body(
            CORP_A,
            device,
            "2030-01-01T00:00:00Z",
            "2030-02-01T00:00:00Z",
        ))
        .await;
    let act: Value = r.json().await.unwrap();
    let id = act["activationId"].as_str().unwrap();
    assert_eq!(srv.admin("approve", id).await.status(), 200);
    let key = act["apiKey"].as_str().unwrap().to_owned();
    (act, key)
}

/// A renewal whose answer was lost, repeated through another instance that still holds
/// the old key in its key cache: the repeat is recognised (a fresh key), not answered
/// from the cached registration (`renewal_too_early` from the new period it would read
/// next). A key replaced by a renewal through the signed descriptor answers
/// `key_replaced` there, not `pending_approval`. Two instances on one database, one
/// clock; the cache time is long enough that the old key is still cached.
async fn renewal_repeated_through_another_instance(backend: Backend) {
    let Some(db) = TestDb::new(backend, "renewal_repeated_through_another_instance").await else {
        return;
    };
    let (a, b, clock) = two_caching_instances(&db, backend).await;
    let (act1, old1) = approved_for_january(&a, "dev-1").await;
    let (act2, old2) = approved_for_january(&a, "dev-2").await;
    let code = a.get_json_as("/activations/activation-code", &old2).await;
    let descriptor2 = code["descriptor"].as_str().unwrap().to_owned();
    let body = |act: &Value, device: &str| {
        json!({"productionNumber": act["productionNumber"], "deviceId": device,
               "validFrom": "2030-02-01T00:00:00Z", "validTo": "2031-02-01T00:00:00Z"})
    };
    let renew = |srv: &Srv, key: Option<&str>, body: Value| {
        let mut req = srv.http.post(srv.url("/activations/renew")).json(&body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send()
    };

    // The keys expire; instance A authenticates both (and caches the registrations).
    clock.set(T2030 + 31 * DAY);
    for key in [&old1, &old2] {
        problem(a.get("/auth/handshake", key).await, 403, "key_expired").await;
    }

    // Renewed through B; say the answer was lost on the way back to the register.
    let r = renew(&b, Some(&old1), body(&act1, "dev-1")).await.unwrap();
    assert_eq!(r.status(), 200);
    let lost: Value = r.json().await.unwrap();
    let lost = lost["apiKey"].as_str().unwrap().to_owned();
    // The register repeats the same renewal, and it reaches A.
    let r = renew(&a, Some(&old1), body(&act1, "dev-1")).await.unwrap();
    let status = r.status();
    let again: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["validTo"], "2031-02-01T00:00:00Z");
    let fresh = again["apiKey"].as_str().unwrap().to_owned();
    assert!(fresh != lost && fresh != old1);
    for srv in [&a, &b] {
        assert_eq!(srv.get("/auth/handshake", &fresh).await.status(), 200);
        problem(srv.get("/auth/handshake", &lost).await, 401, "key_replaced").await;
    }

    // Renewed through B with the signed descriptor (back to pending): the old key, still
    // cached by A, is answered as replaced when it tries to renew there.
    let mut by_descriptor = body(&act2, "dev-2");
    by_descriptor["descriptor"] = json!(descriptor2);
    let r = renew(&b, None, by_descriptor).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = renew(&a, Some(&old2), body(&act2, "dev-2")).await.unwrap();
    problem(r, 401, "key_replaced").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_repeated_through_another_instance_sqlite() {
    renewal_repeated_through_another_instance(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_repeated_through_another_instance_postgres() {
    renewal_repeated_through_another_instance(Backend::Postgres).await;
}

/// An operator repeating through one instance a revocation made through another (to be
/// sure it took) is answered 200 `revoked`, and the answer holds there at once: that
/// instance's cached key goes too, rather than serving reads until its entry expires. So
/// it does when a decision there is refused (409) because of one made elsewhere.
async fn a_repeated_decision_applies_at_once_where_it_is_repeated(backend: Backend) {
    let Some(db) = TestDb::new(backend, "repeated_decision_applies_at_once").await else {
        return;
    };
    let (a, b, _clock) = two_caching_instances(&db, backend).await;
    let (act, key) = approved_for_january(&a, "dev-1").await;
    let id = act["activationId"].as_str().unwrap();
    assert_eq!(b.get("/auth/handshake", &key).await.status(), 200);
    assert_eq!(a.admin("revoke", id).await.status(), 200);
    // b still holds the approved registration (its cache entry lives 60 s).
    assert_eq!(b.get("/products", &key).await.status(), 200);
    let r = b.admin("revoke", id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "revoked");
    problem(b.get("/auth/handshake", &key).await, 403, "revoked").await;
    problem(b.get("/products", &key).await, 403, "revoked").await;
    // A decision refused there because of one made elsewhere (approving what was revoked
    // meanwhile) tells that instance its cache is stale too.
    let (act, key) = approved_for_january(&a, "dev-2").await;
    let id = act["activationId"].as_str().unwrap();
    assert_eq!(b.get("/products", &key).await.status(), 200);
    assert_eq!(a.admin("revoke", id).await.status(), 200);
    assert_eq!(b.get("/products", &key).await.status(), 200);
    problem(
        b.admin("approve", id).await,
        409,
        "invalid_status_transition",
    )
    .await;
    problem(b.get("/products", &key).await, 403, "revoked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_decision_applies_at_once_where_it_is_repeated_sqlite() {
    a_repeated_decision_applies_at_once_where_it_is_repeated(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_decision_applies_at_once_where_it_is_repeated_postgres() {
    a_repeated_decision_applies_at_once_where_it_is_repeated(Backend::Postgres).await;
}

/// A sale that reaches an instance whose key cache still holds the registration as
/// approved, or its key as current, after a revocation or a renewal committed through
/// another instance: the commit reads both under the register's chain-head lock and
/// refuses it (403 `revoked`, 401 `key_replaced`), so nothing is stored for a revoked
/// register or a replaced key, however long the cache keeps them. The refusal drops the
/// cached view: the next request is refused at authentication.
async fn sales_refused_at_commit_after_a_change_elsewhere(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sales_refused_at_commit").await else {
        return;
    };
    let (a, b, clock) = two_caching_instances(&db, backend).await;
    let (act1, key1) = approved_for_january(&a, "dev-1").await;
    let (act2, key2) = approved_for_january(&a, "dev-2").await;
    let (act3, key3) = approved_for_january(&a, "dev-3").await;
    // A authenticates them (and caches the registrations).
    for key in [&key1, &key2, &key3] {
        assert_eq!(a.post_tx(key, "first", &sale(100)).await.status(), 201);
    }
    let put_product = |key: &str, id: &str| {
        a.http
            .put(a.url(&format!("/products/{id}")))
            .bearer_auth(key)
            .json(&json!({"name": "Kaffe", "price": 2500, "currency": "SEK", "vatRate": 1200}))
            .send()
    };

    // Revoked through B: A's cache still says approved, the commit does not. The
    // refusal drops only that registration from A's cache.
    for act in [&act1, &act3] {
        let id = act["activationId"].as_str().unwrap();
        assert_eq!(b.admin("revoke", id).await.status(), 200);
    }
    // No descriptor is signed for it either (read from the database, not the cache).
    let r = a.get("/activations/activation-code", &key1).await;
    problem(r, 403, "revoked").await;
    let r = a.post_tx(&key1, "after-revoke", &sale(100)).await;
    problem(r, 403, "revoked").await;
    problem(a.get("/auth/handshake", &key1).await, 403, "revoked").await;
    problem(put_product(&key3, "p1").await.unwrap(), 403, "revoked").await;
    problem(a.get("/auth/handshake", &key3).await, 403, "revoked").await;
    let products = a.get_json_as("/products", &key2).await;
    assert_eq!(products["items"], json!([]), "{products}");

    // Renewed through B within the renewal window, while the old key is still valid.
    clock.set(T2030 + 30 * DAY);
    let r = b
        .http
        .post(b.url("/activations/renew"))
        .bearer_auth(&key2)
        .json(
            &json!({"productionNumber": act2["productionNumber"], "deviceId": "dev-2",
                      "validFrom": "2030-01-31T00:00:00Z", "validTo": "2031-01-31T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renewed: Value = r.json().await.unwrap();
    let new2 = renewed["apiKey"].as_str().unwrap().to_owned();
    problem(
        a.post_tx(&key2, "old-key", &sale(100)).await,
        401,
        "key_replaced",
    )
    .await;
    problem(a.get("/auth/handshake", &key2).await, 401, "key_replaced").await;
    // The new key (its period has begun) goes on at once where the chain left off:
    // nothing was stored for the refusals.
    let r = a.post_tx(&new2, "new-key", &sale(100)).await;
    assert_eq!(r.status(), 201);
    let stored: Value = r.json().await.unwrap();
    assert_eq!(stored["sequence"], 2, "{stored}");
    let metrics = a.http.get(a.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("tillgate_transactions_refused_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tillgate_product_changes_refused_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_refused_at_commit_after_a_change_elsewhere_sqlite() {
    sales_refused_at_commit_after_a_change_elsewhere(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_refused_at_commit_after_a_change_elsewhere_postgres() {
    sales_refused_at_commit_after_a_change_elsewhere(Backend::Postgres).await;
}

/// Sends `req` while another session holds, uncommitted, the change `sql` makes (as
/// another server's transaction would); once the request waits for that session's row
/// lock (seen in `pg_stat_activity` under the server's `application_name`), commits the
/// change and returns the answer.
async fn behind_a_lock(
    db: &TestDb,
    application_name: &str,
    sql: String,
    req: reqwest::RequestBuilder,
) -> reqwest::Response {
    use sqlx::Connection as _;
    let mut holder = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let mut watcher = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    let changed = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(changed.rows_affected() >= 1, "the change changed nothing");
    let sent = tokio::spawn(req.send());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::Row::get(
            &sqlx::query(
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = $1 \
                 AND wait_event_type = 'Lock'",
            )
            .bind(application_name)
            .fetch_one(&mut watcher)
            .await
            .unwrap(),
            "n",
        );
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && !sent.is_finished(),
            "the request never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.commit().await.unwrap();
    sent.await.unwrap().unwrap()
}

/// A database whose sessions default to REPEATABLE READ (here through the connection
/// URL's `options`; a database or role setting does the same): the server still runs
/// its transactions at READ COMMITTED, so a decision or a renewal that waited for
/// another server's change to the same row sees that change and answers for it (409
/// `invalid_status_transition`, 401 `key_replaced`, or 200 when the change does not
/// matter), instead of failing with a serialisation error (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeatable_read_default_changes_no_answer() {
    use sqlx::Connection as _;
    let Some(db) = TestDb::new(
        Backend::Postgres,
        "a_repeatable_read_default_changes_no_answer",
    )
    .await
    else {
        return;
    };
    let application_name = format!("tillgate_rr_{}", std::process::id());
    let url = format!(
        "{}&options=-c%20default_transaction_isolation%3Drepeatable%5C%20read\
         &application_name={application_name}",
        db.url
    );
    // The option is in force for a session opened with this URL.
    let mut plain = sqlx::AnyConnection::connect(&url).await.unwrap();
    let shown: String = sqlx::Row::get(
        &sqlx::query("SELECT current_setting('transaction_isolation') AS level")
            .fetch_one(&mut plain)
            .await
            .unwrap(),
        "level",
    );
    assert_eq!(shown, "repeatable read");
    plain.close().await.unwrap();

    let clock = ManualClock::new(T2030 + 3600);
    let mut config = test_config(&url);
    config.key_cache_secs = 0;
    let s = Srv::start_with(&db, Backend::Postgres, clock.clone(), config).await;
    let expiring = |device: &str| {
        activation_body(
            CORP_A,
            device,
            "2030-01-01T00:00:00Z",
            "2030-02-01T00:00:00Z",
        )
    };

    // An approval waits for a revocation committed by another server: it sees it.
    let pending = s.activate_ok(CORP_A, "dev-1").await;
    let id = pending["activationId"].as_str().unwrap();
    let r = behind_a_lock(
        &db,
        &application_name,
        format!("UPDATE activations SET status = 'revoked' WHERE id = '{id}'"),
        s.http
            .post(s.url(&format!("/admin/activations/{id}/approve")))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({})),
    )
    .await;
    problem(r, 409, "invalid_status_transition").await;

    // Renewals of expired keys.
    let mut renewals = Vec::new();
    for device in ["dev-2", "dev-3"] {
        let r = s.activate(expiring(device)).await;
        let act: Value = r.json().await.unwrap();
        let id = act["activationId"].as_str().unwrap().to_owned();
        assert_eq!(s.admin("approve", &id).await.status(), 200);
        renewals.push((act, device));
    }
    clock.set(T2030 + 31 * DAY);
    let renew = |act: &Value, device: &str| {
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(act["apiKey"].as_str().unwrap())
            .json(
                &json!({"productionNumber": act["productionNumber"], "deviceId": device,
                          "validFrom": "2030-02-01T00:00:00Z", "validTo": "2031-02-01T00:00:00Z"}),
            )
    };
    // One waits for another server's renewal that replaced its key: key_replaced.
    let (act, device) = &renewals[0];
    let hash = tillgate_core::ApiKeyHash::of_key(act["apiKey"].as_str().unwrap())
        .unwrap()
        .to_hex();
    let r = behind_a_lock(
        &db,
        &application_name,
        format!("UPDATE api_keys SET replaced_at = 1 WHERE key_hash = '{hash}'"),
        renew(act, device),
    )
    .await;
    problem(r, 401, "key_replaced").await;
    // One waits for a change to its registration that leaves what it checked as it was:
    // it renews.
    let (act, device) = &renewals[1];
    let id = act["activationId"].as_str().unwrap();
    let r = behind_a_lock(
        &db,
        &application_name,
        format!("UPDATE activations SET updated_at = updated_at + 1 WHERE id = '{id}'"),
        renew(act, device),
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// A sale or product change whose commit waits for another server's revocation or
/// renewal of its register (the row locked, not yet committed) sees it once it commits:
/// refused, though the key cache still says approved. What makes this exact on
/// PostgreSQL is the order: the registration's row is locked before the key is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_for_a_revocation_or_renewal_sees_it() {
    let Some(db) = TestDb::new(Backend::Postgres, "a_write_waiting_for_a_revocation").await else {
        return;
    };
    let application_name = format!("tillgate_wait_{}", std::process::id());
    let url = format!("{}&application_name={application_name}", db.url);
    let mut config = test_config(&url);
    config.key_cache_secs = 60;
    let s = Srv::start_with(
        &db,
        Backend::Postgres,
        ManualClock::new(T2030 + 3600),
        config,
    )
    .await;
    let mut registers = Vec::new();
    for device in ["dev-1", "dev-2", "dev-3"] {
        let (act, key) = s.register(CORP_A, device).await;
        // Authenticated (and cached) as approved.
        assert_eq!(s.post_tx(&key, "first", &sale(100)).await.status(), 201);
        let id = act["activationId"].as_str().unwrap().to_owned();
        registers.push((id, key));
    }
    let sale_req = |key: &str| {
        s.http
            .post(s.url("/transactions"))
            .bearer_auth(key)
            .header("Idempotency-Key", "waiting")
            .json(&sale(100))
    };
    let (id, key) = &registers[0];
    let r = behind_a_lock(
        &db,
        &application_name,
        format!("UPDATE activations SET status = 'revoked' WHERE id = '{id}'"),
        sale_req(key),
    )
    .await;
    problem(r, 403, "revoked").await;
    // A renewal's shape: the key replaced, then the registration's row changed.
    let (id, key) = &registers[1];
    let hash = tillgate_core::ApiKeyHash::of_key(key).unwrap().to_hex();
    let r = behind_a_lock(
        &db,
        &application_name,
        format!(
            "UPDATE api_keys SET replaced_at = 1 WHERE key_hash = '{hash}'; \
             UPDATE activations SET updated_at = updated_at + 1 WHERE id = '{id}'"
        ),
        sale_req(key),
    )
    .await;
    problem(r, 401, "key_replaced").await;
    let (id, key) = &registers[2];
    let r = behind_a_lock(
        &db,
        &application_name,
        format!("UPDATE activations SET status = 'revoked' WHERE id = '{id}'"),
        s.http
            .put(s.url("/products/p1"))
            .bearer_auth(key)
            .json(&json!({"name": "Kaffe", "price": 2500, "currency": "SEK", "vatRate": 1200})),
    )
    .await;
    problem(r, 403, "revoked").await;
}

/// A server left running while another process migrates the database to a newer schema
/// (a rolling deployment): within the signing keys' re-read (5 s), `/readyz` answers not
/// ready and every write 503 `schema_newer`, reads still answer; once the schema is one it
/// knows again, it writes again.
async fn an_older_server_stops_writing_beside_a_newer_schema(backend: Backend) {
    use sqlx::Connection as _;
    let Some(db) = TestDb::new(backend, "an_older_server_stops_writing").await else {
        return;
    };
    let s = Srv::start(&db, backend).await;
    let (act, key) = s.register(CORP_A, "dev-1").await;
    let id = act["activationId"].as_str().unwrap();
    assert_eq!(s.post_tx(&key, "before", &sale(100)).await.status(), 201);
    let readyz = || s.http.get(s.url("/readyz")).send();
    assert_eq!(readyz().await.unwrap().status(), 200);

    let newer = tillgate_server::db::schema_version() + 1;
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO tillgate_migrations (version, name, applied_at) VALUES ($1, 'later', 0)",
    )
    .bind(newer)
    .execute(&mut conn)
    .await
    .unwrap();
    // Nothing but time: the next re-read of the signing keys reads the schema version too.
    tokio::time::sleep(Duration::from_millis(5_300)).await;
    problem(readyz().await.unwrap(), 503, "not_ready").await;
    let refused = [
        s.post_tx(&key, "after", &sale(200)).await,
        s.post_tx(&key, "before", &sale(100)).await,
        s.http
            .put(s.url("/products/coffee"))
            .bearer_auth(&key)
            .json(&json!({"name": "Kaffe", "price": 2500, "currency": "SEK", "vatRate": 1200}))
            .send()
            .await
            .unwrap(),
        s.activate(activation_body(
            CORP_A,
            "dev-2",
            "2030-01-01T00:00:00Z",
            "2030-07-01T00:00:00Z",
        ))
        .await,
        s.admin("revoke", id).await,
    ];
    for r in refused {
        problem(r, 503, "schema_newer").await;
    }
    // Reads are answered; nothing was written.
    assert_eq!(s.get("/auth/handshake", &key).await.status(), 200);
    let list = s.get_json_as("/transactions?limit=10", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let handshake = s.get_json_as("/auth/handshake", &key).await;
    assert_eq!(handshake["status"], "approved");

    // The newer version rolled back with its database: writes again.
    sqlx::query("DELETE FROM tillgate_migrations WHERE version = $1")
        .bind(newer)
        .execute(&mut conn)
        .await
        .unwrap();
    s.state.refresh_keys().await.unwrap();
    assert_eq!(readyz().await.unwrap().status(), 200);
    assert_eq!(s.post_tx(&key, "after", &sale(200)).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_server_stops_writing_beside_a_newer_schema_sqlite() {
    an_older_server_stops_writing_beside_a_newer_schema(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_server_stops_writing_beside_a_newer_schema_postgres() {
    an_older_server_stops_writing_beside_a_newer_schema(Backend::Postgres).await;
}

/// Several group-commit writers (`--writers`): concurrent sales of several registers
/// still give each register a gapless chain that verifies, and retries are recognised.
async fn several_writers_keep_every_chain_gapless(backend: Backend) {
    let Some(db) = TestDb::new(backend, "several_writers").await else {
        return;
    };
    let mut config = test_config(&db.url);
    config.writers = 3;
    let s = Srv::start_with(&db, backend, ManualClock::new(T2030), config).await;
    let mut registers = Vec::new();
    for i in 0..5 {
        registers.push(s.register(CORP_A, &format!("dev-{i}")).await);
    }
    let mut handles = Vec::new();
    for (_, key) in &registers {
        for i in 0..12 {
            let (http, url, key) = (s.http.clone(), s.url("/transactions"), key.clone());
            handles.push(tokio::spawn(async move {
                let send = || {
                    http.post(&url)
                        .bearer_auth(&key)
                        .header("Idempotency-Key", format!("w-{i}"))
                        .json(&sale(100 + i))
                        .send()
                };
                let first: Value = send().await.unwrap().json().await.unwrap();
                let again: Value = send().await.unwrap().json().await.unwrap();
                assert_eq!(first, again);
            }));
        }
    }
    for h in handles {
        h.await.unwrap();
    }
    let keys = TrustedKeys::from_jwks_json(&s.get_json("/.well-known/jwks.json").await.to_string())
        .unwrap();
    for (act, key) in &registers {
        let page: Value = s
            .get("/transactions?limit=100", key)
            .await
            .json()
            .await
            .unwrap();
        let receipts: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["receipt"].as_str().unwrap().to_owned())
            .collect();
        let claims = verify_receipt_chain(&receipts, &keys).unwrap();
        let seqs: Vec<u64> = claims.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
        assert!(claims.iter().all(|c| c.sub == act["productionNumber"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_writers_sqlite() {
    several_writers_keep_every_chain_gapless(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_writers_postgres() {
    several_writers_keep_every_chain_gapless(Backend::Postgres).await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary with JSON logs: the whole flow, then SIGTERM. No API key, admin key,
/// URL-path token or dynamic key appears in the output; shutdown is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_never_logs_secrets_and_shuts_down_gracefully() {
    let dir = std::env::temp_dir().join(format!("tillgate_bin_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let admin = "Binary-Admin-Key-0123456789-xyz";
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillgate-server"))
        .env("TILLGATE_BIND", format!("127.0.0.1:{port}"))
        .env("TILLGATE_DATA_DIR", &dir)
        .env("TILLGATE_ADMIN_KEY", admin)
        .env("TILLGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "trace,hyper=info,h2=info")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server did not start");

    let (from, to) = period_from_today();
    let a = register_over_http(&http, &base, admin, "dev-1").await;
    let key = a["apiKey"].as_str().unwrap().to_owned();
    let id = a["activationId"].as_str().unwrap();
    assert_eq!(
        http.get(format!("{base}/auth/handshake"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/OpenApi_1,2,3,4$$Products"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = http
        .get(format!(
            "{base}/OpenApi_1,2,3,4$R20201201134216$${key}/Products"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/transactions"))
        .header("X-Api-Key", &key)
        .header("Idempotency-Key", "log-1")
        .json(&sale(100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Failures log too, and still without the secret.
    let wrong = format!("{}X", &key[..30]);
    assert_eq!(
        http.get(format!("{base}/auth/handshake"))
            .bearer_auth(&wrong)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = http.post(format!("{base}/activations/renew")).bearer_auth(&key)
        .json(&json!({"productionNumber": a["productionNumber"], "deviceId": "dev-1", "validFrom": from, "validTo": to}))
        .send().await.unwrap();
    assert!(r.status().is_client_error());

    // SIGTERM: graceful shutdown, exit 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("server did not stop after SIGTERM");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(status.success(), "exit {status:?}; logs:\n{logs}");
    assert!(logs.contains("request done"), "no request logs:\n{logs}");
    assert!(
        logs.contains("$$<redacted>"),
        "URL-path token not shown redacted:\n{logs}"
    );
    for secret in [key.as_str(), admin, wrong.as_str(), &key[..20]] {
        assert!(
            !logs.contains(secret),
            "a secret appears in the logs:\n{logs}"
        );
    }
    // Every line is JSON with a request id on request lines.
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["message"] == "request done" {
            assert!(v["request_id"].is_string(), "{line}");
        }
    }

    // The admin CLI works on the same data directory.
    let out = admin_cli_dir(&dir, &["rotate-key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin_cli_dir(&dir, &["keys"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = admin_cli_dir(&dir, &["revoke", id, "--note", "till stolen"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"revoked\""));
    // Its history: the revocation is the newest decision, numbered after the others.
    let (ok, lines, err) = admin_json(&dir, &["decisions", id]);
    assert!(ok, "{err}");
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "revoked");
    assert_eq!(last["decidedBy"], "admin-cli");
    assert_eq!(last["note"], "till stolen");
    assert_eq!(last["n"], lines.len());
    let (ok, lines, err) = admin_json(&dir, &["decisions", "act_unknown"]);
    assert!(
        !ok && lines.is_empty() && err.contains("no activation act_unknown"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every stored transaction of a register, in sequence order, through `GET /transactions`.
async fn all_transactions(s: &Srv, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = s
            .get(
                &format!("/transactions?afterSequence={after}&limit=1000"),
                key,
            )
            .await
            .json()
            .await
            .unwrap();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextAfterSequence"].as_i64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

/// Cuts register `activation_id`'s chain back to its first two transactions, with its
/// head set back to match (the chain alone then looks whole); returns the transactions
/// it had.
async fn cut_chain_to_two(
    s: &Srv,
    pool: &sqlx::AnyPool,
    activation_id: &str,
) -> Vec<tillgate_server::db::TxRow> {
    let kept = s
        .state
        .store
        .export_txs(Some(activation_id), 0, 10)
        .await
        .unwrap();
    sqlx::query("DELETE FROM transactions WHERE activation_id = $1 AND seq > 2")
        .bind(activation_id)
        .execute(pool)
        .await
        .unwrap();
    set_chain_head(pool, activation_id, 2, &kept[1].receipt).await;
    kept
}

/// The real binary's `admin` subcommand, on the database `DATABASE_URL=url`.
fn admin_cli(url: &str, args: &[&str]) -> std::process::Output {
    admin_cli_with("DATABASE_URL", url, args)
}

/// The real binary's `admin` subcommand, on the SQLite database of a data directory.
fn admin_cli_dir(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    admin_cli_with("TILLGATE_DATA_DIR", dir, args)
}

/// Runs an admin command on the SQLite database in `dir`: whether it succeeded, its JSON
/// output lines, and its standard error.
fn admin_json(dir: &std::path::Path, args: &[&str]) -> (bool, Vec<Value>, String) {
    json_result(admin_cli_dir(dir, args))
}

/// An admin command's result: whether it succeeded, its JSON output lines, its standard
/// error.
fn json_result(out: std::process::Output) -> (bool, Vec<Value>, String) {
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn admin_cli_with(
    var: &str,
    value: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tillgate-server"))
        .env_remove("DATABASE_URL")
        .env(var, value)
        .arg("admin")
        .args(args)
        .output()
        .unwrap()
}

/// The receipts of a register's first 1,000 transactions, through `GET /transactions` on
/// a server at `base`.
async fn receipts_over_http(http: &reqwest::Client, base: &str, key: &str) -> Vec<String> {
    let page: Value = http
        .get(format!("{base}/transactions?limit=1000"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["receipt"].as_str().unwrap().to_owned())
        .collect()
}

/// Real dates: a period from today's midnight for 30 days (RFC 3339).
fn period_from_today() -> (String, String) {
    let today = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64)
        / DAY
        * DAY;
    (
        tillgate_core::format_rfc3339(today).unwrap(),
        tillgate_core::format_rfc3339(today + 30 * DAY).unwrap(),
    )
}

/// Activates a register on a server at `base` (for [`period_from_today`]) and approves
/// it with `admin`; returns the activation answer.
async fn register_over_http(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    device: &str,
) -> Value {
    let (from, to) = period_from_today();
    let r = http
        .post(format!("{base}/activations-advanced"))
        .json(&activation_body(CORP_A, device, &from, &to))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.unwrap();
    let id = a["activationId"].as_str().unwrap();
    let r = http
        .post(format!("{base}/admin/activations/{id}/approve"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    a
}

/// `admin backup` while the server takes transactions: the copy holds every transaction
/// acknowledged before it began, each register's chain in it is gapless and verifies, a
/// server started on it serves the same keys and goes on with the chains; the live server
/// is not disturbed; an existing file is never overwritten; PostgreSQL and a missing
/// database are refused with a clear message; no partial file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving() {
    let db = TestDb::new(Backend::Sqlite, "backup_while_serving")
        .await
        .unwrap();
    let s = Srv::start(&db, Backend::Sqlite).await;
    let (_, key_a) = s.register(CORP_A, "dev-a").await;
    let (_, key_b) = s.register(CORP_B, "dev-b").await;
    for i in 0..40 {
        assert_eq!(
            s.post_tx(&key_a, &format!("before-{i}"), &sale(100 + i))
                .await
                .status(),
            201
        );
    }

    // Two tills keep selling while the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tills = Vec::new();
    for key in [key_a.clone(), key_b.clone()] {
        let (http, url, stop) = (s.http.clone(), s.url("/transactions"), stop.clone());
        tills.push(tokio::spawn(async move {
            let mut acked = 0_u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("Idempotency-Key", format!("during-{acked}"))
                    .json(&sale(500))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                acked += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let dir = db.dir.as_ref().unwrap();
    let backup = dir.join("backups").join("tillgate-backup.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let url = db.url.clone();
    let target = backup.clone();
    let out =
        tokio::task::spawn_blocking(move || admin_cli(&url, &["backup", target.to_str().unwrap()]))
            .await
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut during = 0;
    for t in tills {
        during += t.await.unwrap();
    }
    assert!(during > 0);
    // The live server goes on.
    assert_eq!(s.post_tx(&key_a, "after", &sale(7)).await.status(), 201);
    let live_a = all_transactions(&s, &key_a).await.len();
    let live_b = all_transactions(&s, &key_b).await.len();
    assert_eq!(live_a + live_b, 40 + during as usize + 1);

    assert_eq!(summary["path"], backup.to_str().unwrap());
    assert_eq!(summary["activations"], 2);
    assert_eq!(summary["signingKeys"], 1);
    assert!(summary["schemaVersion"].as_i64().unwrap() >= 1);
    let in_backup = summary["transactions"].as_i64().unwrap() as usize;
    assert!(
        (40..live_a + live_b).contains(&in_backup),
        "{in_backup} of {}",
        live_a + live_b
    );
    let meta = std::fs::metadata(&backup).unwrap();
    assert_eq!(summary["bytes"], meta.len());
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    // Never overwrites; refuses what it cannot back up; leaves nothing half-written.
    let before = std::fs::read(&backup).unwrap();
    let out = admin_cli(&db.url, &["backup", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    assert_eq!(std::fs::read(&backup).unwrap(), before);
    let other = dir.join("backups").join("second.db");
    let out = admin_cli(
        "postgres://postgres@127.0.0.1:5432/test",
        &["backup", other.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    let missing = format!("sqlite://{}?mode=rwc", dir.join("none.db").display());
    let out = admin_cli(&missing, &["backup", other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!dir.join("none.db").exists());
    let nowhere = dir.join("no-such-dir").join("x.db");
    let out = admin_cli(&db.url, &["backup", nowhere.to_str().unwrap()]);
    assert!(!out.status.success());
    let names: Vec<String> = std::fs::read_dir(dir.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["tillgate-backup.db"], "{names:?}");

    // A server on the copy: the same keys work, each chain is gapless from 1 and
    // verifies against its JWKS, and it goes on from the copied head.
    let restored_url = format!("sqlite://{}?mode=rw", backup.display());
    let r = Srv::start_with(
        &db,
        Backend::Sqlite,
        ManualClock::new(T2030 + 3600),
        test_config(&restored_url),
    )
    .await;
    let jwks = r
        .http
        .get(r.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let trusted = TrustedKeys::from_jwks_json(&jwks).unwrap();
    let mut total = 0;
    for (key, live) in [(&key_a, live_a), (&key_b, live_b)] {
        let items = all_transactions(&r, key).await;
        assert!(items.len() <= live);
        let seqs: Vec<i64> = items
            .iter()
            .map(|i| i["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=items.len() as i64).collect::<Vec<_>>());
        let receipts: Vec<String> = items
            .iter()
            .map(|i| i["receipt"].as_str().unwrap().to_owned())
            .collect();
        if !receipts.is_empty() {
            verify_receipt_chain(&receipts, &trusted).unwrap();
        }
        let next = r.post_tx(key, "on-the-copy", &sale(9)).await;
        assert_eq!(next.status(), 201);
        let next: Value = next.json().await.unwrap();
        assert_eq!(next["sequence"], items.len() as i64 + 1);
        total += items.len();
    }
    assert_eq!(total, in_backup);
    assert!(total >= 40);
}

/// The real binary on a data directory, with the admin key and logs off; waits for
/// `/healthz` (or for the process to end, returned as `Err` with its stderr).
async fn spawn_binary(
    dir: &std::path::Path,
    port: u16,
    admin: &str,
) -> Result<std::process::Child, String> {
    spawn_binary_with(&[("TILLGATE_DATA_DIR", dir.as_os_str())], port, admin).await
}

/// [`spawn_binary`] with these settings (the database: `TILLGATE_DATA_DIR` or
/// `DATABASE_URL`).
async fn spawn_binary_with(
    vars: &[(&str, &std::ffi::OsStr)],
    port: u16,
    admin: &str,
) -> Result<std::process::Child, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillgate-server"))
        .env("TILLGATE_BIND", format!("127.0.0.1:{port}"))
        .env_remove("DATABASE_URL")
        .envs(vars.iter().copied())
        .env("TILLGATE_ADMIN_KEY", admin)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Err(format!("{status}: {err}"));
        }
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    Err("did not start".into())
}

fn stop_binary(mut child: std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}

/// `admin restore`: refused while a server uses the database (and a second server on
/// the same database is refused too); a file that is not a sound database is refused
/// with nothing moved; with the server stopped it puts the backup in place, moves the
/// replaced files aside with their `-wal` (they still hold the later transactions, which
/// a crash left in it), and the server started again serves the backup's state with its
/// chains going on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_only_with_the_server_stopped() {
    let dir = std::env::temp_dir().join(format!("tillgate_restore_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let admin = "Restore-Admin-Key-0123456789-xyz";
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let server = spawn_binary(&dir, port, admin).await.unwrap();

    let a = register_over_http(&http, &base, admin, "dev-r").await;
    let key = a["apiKey"].as_str().unwrap().to_owned();
    let sell = async |keys: std::ops::Range<usize>| {
        for i in keys {
            let r = http
                .post(format!("{base}/transactions"))
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("r-{i:08}-restore"))
                .json(&sale(100))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    sell(0..3).await;
    let backup = dir.join("b1.db");
    let out = admin_cli_dir(&dir, &["backup", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sell(3..5).await;
    let count = async |base: &str| {
        let page: Value = http
            .get(format!("{base}/transactions?limit=100"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"].as_array().unwrap().len()
    };
    assert_eq!(count(&base).await, 5);

    // While it serves: no restore, no second server.
    let out = admin_cli_dir(&dir, &["restore", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another tillgate-server process uses"),
        "{err}"
    );
    assert!(err.contains("stop the server first"), "{err}");
    let second = spawn_binary(&dir, free_port(), admin).await;
    assert!(
        second
            .as_ref()
            .is_err_and(|e| e.contains("another tillgate-server process uses")),
        "{:?}",
        second.map(|_| ())
    );
    assert_eq!(count(&base).await, 5);
    // Killed, as a crash would: the later transactions are still only in `-wal`.
    let mut server = server;
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(dir.join("tillgate.db-wal").exists());

    // Not a database: refused, nothing moved.
    let junk = dir.join("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let out = admin_cli_dir(&dir, &["restore", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    let before: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("before-restore-"))
        .collect();
    assert!(before.is_empty(), "{before:?}");

    // Stopped: restored, the replaced database moved aside.
    let out = admin_cli_dir(&dir, &["restore", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["transactions"], 3);
    assert_eq!(summary["activations"], 1);
    let aside = std::path::PathBuf::from(summary["previous"].as_str().unwrap());
    assert!(aside.starts_with(&dir));
    assert!(aside.join("tillgate.db-wal").exists());
    assert!(!dir.join("tillgate.db-wal").exists());
    assert!(!dir.join("tillgate.db.restoring").exists());
    let old = aside.join("tillgate.db");
    let out = admin_cli(
        &format!("sqlite://{}?mode=rw", old.display()),
        &["backup", dir.join("old-check.db").to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        old_summary["transactions"], 5,
        "the replaced database is kept whole"
    );

    let server = spawn_binary(&dir, port, admin).await.unwrap();
    assert_eq!(count(&base).await, 3);
    let r = http
        .post(format!("{base}/transactions"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "after-restore")
        .json(&sale(100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["sequence"], 4);
    let receipts = receipts_over_http(&http, &base, &key).await;
    let jwks = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    verify_receipt_chain(&receipts, &TrustedKeys::from_jwks_json(&jwks).unwrap()).unwrap();
    stop_binary(server);

    // Undone: the database moved aside comes back whole, its `-wal` included.
    let out = admin_cli_dir(&dir, &["restore", old.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["transactions"], 5);
    let server = spawn_binary(&dir, port, admin).await.unwrap();
    assert_eq!(count(&base).await, 5);
    stop_binary(server);
    let asides = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("before-restore-")
        })
        .count();
    assert_eq!(asides, 2, "each restore keeps what it replaced");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A restore cut off by a crash after it moved the database aside, before its `-wal`
/// (`tillgate.db.restoring` left beside the database): the server refuses to start and
/// the admin commands to run, saying to run the restore again, instead of creating an
/// empty database with a new signing key; `restore` run again finishes (the `-wal` joins
/// its database), removes the marker, and the server starts on the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_is_refused_until_run_again() {
    let (dir, _) = initialised_data_dir("interrupted_restore").await;
    let backup = dir.join("b.db");
    let (ok, _, err) = admin_json(&dir, &["backup", backup.to_str().unwrap()]);
    assert!(ok, "{err}");
    // The state a crash leaves (the marker's first line names where the files go).
    let aside = dir.join("before-restore-20260101T000000Z");
    std::fs::create_dir(&aside).unwrap();
    let marker = dir.join("tillgate.db.restoring");
    std::fs::write(
        &marker,
        "before-restore: before-restore-20260101T000000Z\nan admin restore began\n",
    )
    .unwrap();
    std::fs::rename(dir.join("tillgate.db"), aside.join("tillgate.db")).unwrap();
    std::fs::write(
        dir.join("tillgate.db-wal"),
        b"the replaced database's commits",
    )
    .unwrap();

    let admin = "Interrupted-Restore-Admin-Key-0123456789";
    let refused = spawn_binary(&dir, free_port(), admin).await.unwrap_err();
    for e in [&refused, &admin_json(&dir, &["list"]).2] {
        assert!(
            e.contains("a restore of it was interrupted")
                && e.contains("run it again")
                && e.contains("before-restore-20260101T000000Z"),
            "{e}"
        );
    }
    assert!(
        !dir.join("tillgate.db").exists(),
        "nothing created in its place"
    );
    let (ok, _, err) = admin_json(&dir, &["backup", dir.join("x.db").to_str().unwrap()]);
    assert!(!ok && err.contains("interrupted"), "{err}");

    let (ok, out, err) = admin_json(&dir, &["restore", backup.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["interrupted"], aside.to_str().unwrap());
    assert!(aside.join("tillgate.db-wal").is_file());
    assert!(!marker.exists() && !dir.join("tillgate.db-wal").exists());
    let port = free_port();
    let server = spawn_binary(&dir, port, admin).await.unwrap();
    stop_binary(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `admin copy-to-postgres`: a SQLite deployment moves to PostgreSQL. Refused while the
/// server runs (PostgreSQL stays empty); with it stopped every table is copied; a second
/// copy into the now non-empty database is refused; a server started on PostgreSQL
/// publishes the same keys, accepts the registers' API keys and the admin's decisions,
/// serves their transactions and products, and goes on with each receipt chain, which
/// verifies whole. The SQLite database is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_postgres_moves_a_deployment() {
    let Some(pg) = TestDb::new(Backend::Postgres, "copy_to_postgres_moves_a_deployment").await
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tillgate_copy_pg_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let admin = "Copy-Admin-Key-0123456789-abcdef";
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let server = spawn_binary(&dir, port, admin).await.unwrap();

    let a = register_over_http(&http, &base, admin, "dev-c1").await;
    let b = register_over_http(&http, &base, admin, "dev-c2").await;
    let (key_a, key_b) = (
        a["apiKey"].as_str().unwrap().to_owned(),
        b["apiKey"].as_str().unwrap().to_owned(),
    );
    let sell = async |base: &str, key: &str, idem: String| {
        let r = http
            .post(format!("{base}/transactions"))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(&sale(250))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()
    };
    // More rows than one page of the copy (256), in a table keyed by one column and in
    // one keyed by two.
    for i in 0..300 {
        sell(&base, &key_a, format!("copy-a-{i:04}-key")).await;
    }
    for i in 0..2 {
        sell(&base, &key_b, format!("copy-b-{i:04}-key")).await;
    }
    for i in 0..260 {
        let put = http
            .put(format!("{base}/products/p{i:03}"))
            .bearer_auth(&key_a)
            .json(&json!({"name": format!("Vara {i}"), "price": 2500, "currency": "SEK", "vatRate": 1200}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
    }
    let jwks_before = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let copy = || copy_to_postgres_cmd(&dir, &pg.url).output().unwrap();

    // While the server runs: refused, nothing written.
    let out = copy();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stop the server first"), "{err}");
    stop_binary(server);

    let out = copy();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = |table: &str| {
        summary["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("activations"), 2);
    assert_eq!(rows("api_keys"), 2);
    assert_eq!(rows("transactions"), 302);
    assert_eq!(rows("products"), 260);
    assert_eq!(rows("signing_keys"), 1);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("postgres://"));
    // The SQLite database is marked as moved: no server and no writing admin command
    // uses it (the tills would be split between two databases).
    let marker = dir.join("tillgate.db.moved-to-postgres");
    assert_eq!(summary["marker"].as_str(), marker.to_str());
    let refused = spawn_binary(&dir, free_port(), admin).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("was copied to PostgreSQL")),
        "{:?}",
        refused.map(|_| ())
    );
    let out_list = admin_cli_dir(&dir, &["list"]);
    assert!(!out_list.status.success());
    assert!(String::from_utf8_lossy(&out_list.stderr).contains("was copied to PostgreSQL"));
    // Copied once: not again, unless the marker is removed; and never into a database
    // that is no longer empty.
    let out = copy();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was copied to PostgreSQL"));
    let aside = dir.join("marker-aside");
    std::fs::rename(&marker, &aside).unwrap();
    let out = copy();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty"), "{err}");
    assert!(!err.contains(&pg.url), "the URL is never printed: {err}");
    assert!(!marker.exists(), "a refused copy marks nothing");
    std::fs::rename(&aside, &marker).unwrap();

    // The same key-encryption key (here the SQLite deployment's key file) opens the
    // signing keys' seeds; the data directory is only for this process's own files.
    assert!(
        summary["keyEncryptionKey"]
            .as_str()
            .unwrap()
            .contains("key-encryption.key"),
        "{summary}"
    );
    let kek = std::fs::read_to_string(dir.join("key-encryption.key")).unwrap();
    let elsewhere = dir.join("pg-node");
    let server = spawn_binary_with(
        &[
            ("DATABASE_URL", pg.url.as_ref()),
            ("TILLGATE_KEY_ENCRYPTION_KEY", kek.trim().as_ref()),
            ("TILLGATE_DATA_DIR", elsewhere.as_os_str()),
        ],
        port,
        admin,
    )
    .await
    .unwrap();
    let jwks = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(jwks, jwks_before, "the same signing keys");
    let r = http
        .get(format!("{base}/auth/handshake"))
        .bearer_auth(&key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/products/p259"))
        .bearer_auth(&key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/admin/activations?status=approved"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let next = sell(&base, &key_a, "copy-a-after-move".into()).await;
    assert_eq!(next["sequence"], 301);
    // A retry of a transaction sent before the move answers the stored one.
    let again = sell(&base, &key_b, "copy-b-0001-key".into()).await;
    assert_eq!(again["sequence"], 2);
    let trusted = TrustedKeys::from_jwks_json(&jwks).unwrap();
    for (key, n) in [(&key_a, 301), (&key_b, 2)] {
        let receipts = receipts_over_http(&http, &base, key).await;
        assert_eq!(receipts.len(), n);
        verify_receipt_chain(&receipts, &trusted).unwrap();
    }
    stop_binary(server);

    // The SQLite database is as it was, and serves again once the marker is removed.
    let out = admin_cli_dir(&dir, &["backup", dir.join("check.db").to_str().unwrap()]);
    assert!(out.status.success());
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["transactions"], 302);
    std::fs::remove_file(&marker).unwrap();
    let server = spawn_binary(&dir, port, admin).await.unwrap();
    stop_binary(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `admin copy-to-postgres` of the SQLite database in the data directory `dir` into `url`.
fn copy_to_postgres_cmd(dir: &std::path::Path, url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tillgate-server"));
    c.env_remove("DATABASE_URL")
        .env("TILLGATE_DATA_DIR", dir)
        .env("TILLGATE_COPY_TO_DATABASE_URL", url)
        .args(["admin", "copy-to-postgres"]);
    c
}

/// A new data directory, named after `name`, holding an initialised SQLite database
/// (schema and signing key) and its key-encryption key file, as a server's first start
/// leaves them; returns it and the database URL.
async fn initialised_data_dir(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("tillgate_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("tillgate.db").display());
    let (cipher, _) = tillgate_server::seal::SeedCipher::load(None, &dir).unwrap();
    let store = tillgate_server::db::Store::connect(&sqlite, 2)
        .await
        .unwrap()
        .with_seed_cipher(cipher);
    store.init(1_780_000_000).await.unwrap();
    store.close().await;
    (dir, sqlite)
}

/// The admin commands use the server's key-encryption key and never make one: run with
/// a `DATABASE_URL` and a data directory that does not exist (a plain shell on a
/// PostgreSQL host), on a database whose seeds are still in plain text (just copied to
/// PostgreSQL), `keys` works and creates no directory, no key file, and seals nothing;
/// `rotate-key` and `activate-key --key-file` are refused, saying what they need; given
/// the KEK, `rotate-key` stores its key sealed and leaves the plain seeds to the server;
/// given another KEK than the one that sealed a stored seed, it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_never_create_a_key_encryption_key() {
    let dir = std::env::temp_dir().join(format!("tillgate_admin_kek_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("tillgate.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let store = tillgate_server::db::Store::connect(&url, 2).await.unwrap();
    store.init(1_780_000_000).await.unwrap();
    store.close().await;
    let elsewhere = dir.join("not-the-data-dir");
    let admin = |args: &[&str], kek: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tillgate-server"));
        c.env("DATABASE_URL", &url)
            .env("TILLGATE_DATA_DIR", &elsewhere)
            .env_remove("TILLGATE_KEY_ENCRYPTION_KEY");
        if let Some(kek) = kek {
            c.env("TILLGATE_KEY_ENCRYPTION_KEY", kek);
        }
        json_result(c.arg("admin").args(args).output().unwrap())
    };
    let seeds = async || -> Vec<String> {
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let seeds = sqlx::query_scalar("SELECT seed FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        seeds
    };
    let plain = seeds().await;
    assert!(!plain[0].starts_with("xc1:"));

    let (ok, keys, err) = admin(&["keys"], None);
    assert!(ok, "{err}");
    assert_eq!(keys.len(), 1);
    for args in [
        &["rotate-key"][..],
        &[
            "activate-key",
            "some-kid",
            "--key-file",
            "/nonexistent/k.jwk",
        ],
    ] {
        let (ok, _, err) = admin(args, None);
        assert!(!ok);
        assert!(
            err.contains("key-encryption key, and none was found")
                && err.contains("TILLGATE_KEY_ENCRYPTION_KEY"),
            "{err}"
        );
    }
    assert!(!elsewhere.exists(), "no data directory, no key file made");
    assert_eq!(seeds().await, plain, "nothing sealed");

    let kek = format!("{}A", "B".repeat(42));
    let (ok, out, err) = admin(&["rotate-key"], Some(&kek));
    assert!(ok, "{err}");
    assert_eq!(out[0]["signing"], true);
    let after = seeds().await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], plain[0], "the plain seed is left to the server");
    assert!(after[1].starts_with("xc1:"), "{}", after[1]);
    let (ok, _, err) = admin(&["rotate-key"], Some(&format!("{}A", "C".repeat(42))));
    assert!(!ok && err.contains("does not open"), "{err}");
    // Listing needs no KEK, whatever the seeds.
    let (ok, keys, err) = admin(&["keys"], None);
    assert!(ok && keys.len() == 2, "{err}");
    assert!(!elsewhere.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `DATABASE_URL` naming a SQLite file that does not exist (`mode=rwc` or not): the
/// admin commands refuse it instead of creating a database and a signing key of their own
/// and reporting success.
#[test]
fn admin_commands_refuse_a_database_url_naming_no_file() {
    let dir = std::env::temp_dir().join(format!("tillgate_admin_no_db_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("typo.db");
    let jwk = dir.join("reserve.pub.jwk");
    std::fs::write(&jwk, "{}").unwrap();
    for url in [
        format!("sqlite://{}?mode=rwc", missing.display()),
        format!("sqlite://{}", missing.display()),
    ] {
        for args in [
            &["rotate-key"][..],
            &["publish-key", jwk.to_str().unwrap()],
            &["list"],
        ] {
            let (ok, out, err) = json_result(admin_cli(&url, args));
            assert!(!ok && out.is_empty(), "{args:?}: {out:?}");
            assert!(
                err.contains("no database at") && err.contains("typo.db"),
                "{err}"
            );
        }
    }
    assert!(!missing.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Staged rotation with the real binary: `rotate-key --publish-only` publishes a key
/// that does not sign, `activate-key` (at once or `--signs-from`) makes it sign, and the
/// last key that can sign cannot be retired; `rotate-key` alone still signs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_stages_a_key_rotation() {
    let (dir, _) = initialised_data_dir("stage_keys").await;
    let run = |args: &[&str]| admin_json(&dir, args);
    let signer = || {
        let (ok, keys, err) = run(&["keys"]);
        assert!(ok, "{err}");
        let signing: Vec<&Value> = keys.iter().filter(|k| k["signing"] == true).collect();
        assert_eq!(signing.len(), 1, "{keys:?}");
        (signing[0]["kid"].as_str().unwrap().to_owned(), keys.len())
    };
    let (first, n) = signer();
    assert_eq!(n, 1);

    let (ok, out, err) = run(&["rotate-key", "--publish-only"]);
    assert!(ok, "{err}");
    assert_eq!(
        (&out[0]["signing"], &out[0]["signsFrom"]),
        (&json!(false), &Value::Null)
    );
    let next = out[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(signer(), (first.clone(), 2));
    let (ok, _, err) = run(&["retire-key", &first]);
    assert!(!ok);
    assert!(err.contains("last key that can sign"), "{err}");

    // Scheduled far ahead: still not signing, the first key still needed.
    let (ok, out, err) = run(&[
        "activate-key",
        &next,
        "--signs-from",
        "2999-01-01T00:00:00Z",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["signing"], false);
    assert!(
        out[0]["signsFrom"]
            .as_str()
            .unwrap()
            .starts_with("2999-01-01T00:00:00")
    );
    assert!(!run(&["retire-key", &first]).0);
    let (ok, _, err) = run(&["activate-key", &next, "--signs-from", "tomorrow"]);
    assert!(!ok);
    assert!(err.contains("RFC 3339"), "{err}");

    // Activated now: it signs; the first key can go and cannot come back.
    let (ok, out, err) = run(&["activate-key", &next]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["signing"], true);
    assert_eq!(signer(), (next.clone(), 2));
    assert!(run(&["retire-key", &first]).0);
    let (ok, _, err) = run(&["activate-key", &first]);
    assert!(!ok);
    assert!(err.contains("no signing key"), "{err}");
    let (ok, _, err) = run(&["retire-key", &next]);
    assert!(!ok);
    assert!(err.contains("last key that can sign"), "{err}");

    // rotate-key with a start, and alone (at once, as before).
    let (ok, out, err) = run(&["rotate-key", "--signs-from", "2999-01-01T00:00:00Z"]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["signing"], false);
    assert_eq!(signer(), (next.clone(), 3), "the retired key is listed too");
    let (ok, out, err) = run(&["rotate-key"]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["signing"], true);
    assert_eq!(signer(), (out[0]["kid"].as_str().unwrap().to_owned(), 4));
    assert!(
        !run(&[
            "rotate-key",
            "--publish-only",
            "--signs-from",
            "2999-01-01T00:00:00Z"
        ])
        .0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reserve key held offline, with the real binary: `keygen` writes the private JWK
/// (owner-only, never over a file) and prints the public one; `admin publish-key`
/// refuses the private file and publishes the public key; `activate-key` needs the key
/// file, refuses another key's, and then the key signs, its seed stored sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_publishes_and_activates_a_key_held_offline() {
    let (dir, sqlite) = initialised_data_dir("offline_key").await;
    let run = |args: &[&str]| admin_json(&dir, args);
    let keygen = |out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_tillgate-server"))
            .env_remove("DATABASE_URL")
            .env("TILLGATE_DATA_DIR", "/nonexistent/never-created")
            .args(["keygen", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let offline = std::env::temp_dir().join(format!("tillgate_offline_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&offline);
    std::fs::create_dir_all(&offline).unwrap();
    let private = offline.join("reserve.jwk");
    let out = keygen(&private);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public_text = String::from_utf8(out.stdout).unwrap();
    let public: Value = serde_json::from_str(public_text.trim()).unwrap();
    assert!(public.get("d").is_none(), "{public}");
    let kid = public["kid"].as_str().unwrap().to_owned();
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&private).unwrap()).unwrap();
    let seed = stored["d"].as_str().unwrap().to_owned();
    assert_eq!(
        (&stored["kid"], &stored["x"]),
        (&public["kid"], &public["x"])
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never over an existing file.
    let before = std::fs::read(&private).unwrap();
    assert!(!keygen(&private).status.success());
    assert_eq!(std::fs::read(&private).unwrap(), before);

    // The private file is refused; the public JWK is published, held offline.
    let (ok, _, err) = run(&["publish-key", private.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("private key"), "{err}");
    let public_file = offline.join("reserve.pub.jwk");
    std::fs::write(&public_file, &public_text).unwrap();
    let (ok, out, err) = run(&["publish-key", public_file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(
        (&out[0]["kid"], &out[0]["heldOffline"], &out[0]["signing"]),
        (&json!(kid), &json!(true), &json!(false))
    );
    assert!(!run(&["publish-key", public_file.to_str().unwrap()]).0);
    let (ok, _, err) = run(&["activate-key", &kid]);
    assert!(!ok);
    assert!(err.contains("held offline"), "{err}");
    // Another key's file is refused, and changes nothing.
    let other = offline.join("other.jwk");
    assert!(keygen(&other).status.success());
    let (ok, _, err) = run(&["activate-key", &kid, "--key-file", other.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("not"), "{err}");
    let (ok, out, err) = run(&[
        "activate-key",
        &kid,
        "--key-file",
        private.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        (&out[0]["heldOffline"], &out[0]["signing"]),
        (&json!(false), &json!(true))
    );
    // Stored sealed with the data directory's key-encryption key, never in plain text.
    let pool = sqlx::AnyPool::connect(&sqlite).await.unwrap();
    let raw: String = sqlx::query_scalar("SELECT seed FROM signing_keys WHERE kid = $1")
        .bind(&kid)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(raw.starts_with("xc1:") && !raw.contains(&seed), "{raw}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&offline);
}

/// Bad arguments and bad settings exit 1, like every failure to run (2 is
/// `verify-receipts`' "a chain is broken", which monitoring must not confuse with a typo);
/// `--help` exits 0.
#[test]
fn bad_arguments_exit_1_and_help_0() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_tillgate-server"))
            .env_remove("DATABASE_URL")
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap()
    };
    let typo = run(&["admin", "verify-receipts", "--brokn-only"], &[]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("--brokn-only"));
    let bad_env = run(&["admin", "keys"], &[("TILLGATE_BIND", "not an address")]);
    assert_eq!(bad_env.status.code(), Some(1));
    // The key cache is bounded: a longer one is refused at start, saying what is allowed.
    for (args, env) in [
        (&["--key-cache-secs", "61", "admin", "keys"][..], &[][..]),
        // The settings are global: after the subcommand as well.
        (&["admin", "keys", "--key-cache-secs", "61"][..], &[][..]),
        (
            &["admin", "keys"][..],
            &[("TILLGATE_KEY_CACHE_SECS", "3600")][..],
        ),
    ] {
        let out = run(args, env);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--key-cache-secs") && err.contains("0..=60"),
            "{err}"
        );
    }
    // So is the group commit's batch size.
    for value in ["0", "4097", "18446744073709551615"] {
        let out = run(&["admin", "keys"], &[("TILLGATE_BATCH_MAX", value)]);
        assert_eq!(out.status.code(), Some(1), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--batch-max") && err.contains("1..=4096"),
            "{err}"
        );
    }
    let help = run(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("keygen"));
    // `serve --help` lists the settings it takes.
    let help = run(&["serve", "--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--bind") && text.contains("TILLGATE_BIND"),
        "{text}"
    );
}

/// An embedder's configuration gets the same bound on the batch size as the flags (an
/// unbounded one allocated tens of gigabytes per batch, or overflowed at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_size_out_of_range_is_refused_at_start() {
    for batch_max in [0, 4097, usize::MAX] {
        let mut config = tillgate_server::Config::with_defaults(std::env::temp_dir());
        config.batch_max = batch_max;
        let clock = std::sync::Arc::new(ManualClock::new(T2030));
        let err = tillgate_server::AppState::start(config, clock)
            .await
            .err()
            .expect("refused");
        assert!(err.contains("TILLGATE_BATCH_MAX"), "{err}");
    }
}

/// An embedder's configuration gets the same bound on the key cache as the flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cache_over_a_minute_is_refused_at_start() {
    let mut config = tillgate_server::Config::with_defaults(std::env::temp_dir());
    config.key_cache_secs = 61;
    let clock = std::sync::Arc::new(ManualClock::new(T2030));
    let Err(err) = tillgate_server::AppState::start(config, clock).await else {
        panic!("a 61 s key cache was accepted");
    };
    assert!(
        err.contains("TILLGATE_KEY_CACHE_SECS") && err.contains("more than 60"),
        "{err}"
    );
}

/// Asserts that the copy's main tables hold no row in the PostgreSQL database of `pool`.
async fn assert_no_rows(pool: &sqlx::AnyPool, why: &str) {
    for table in ["signing_keys", "activations", "transactions"] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table}: {why}");
    }
}

/// `admin copy-to-postgres` killed (SIGKILL) while it writes the transactions: PostgreSQL
/// keeps none of what it had written, and the copy run again moves everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_postgres_killed_midway_keeps_nothing() {
    let Some(pg) = TestDb::new(
        Backend::Postgres,
        "copy_to_postgres_killed_midway_keeps_nothing",
    )
    .await
    else {
        return;
    };
    let (dir, sqlite) = initialised_data_dir("copy_kill").await;
    // 10 registers with 3,000 transactions each, written straight into the schema.
    let pool = sqlx::AnyPool::connect(&sqlite).await.unwrap();
    sqlx::raw_sql(
        "WITH RECURSIVE r(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM r WHERE x < 9) \
         INSERT INTO activations (id, production_number, cash_register_name, device_id, \
         corporate_id, country, application_package, extras, features, valid_from, valid_to, \
         status, created_at, updated_at, chain_seq, chain_head, chain_rve) \
         SELECT printf('act_seed_%d', x), printf('TG-SEED-%04d', x), 'Kassa', printf('dev-%d', x), \
         '556036-0793', 'SE', 'com.example.pos', '{}', '[]', 1780000000, 1790000000, 'approved', \
         1780000000, 1780000000, 3000, 'head', 1780002999 FROM r; \
         WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 29999) \
         INSERT INTO transactions (id, activation_id, idempotency_key, seq, created_at, body, txh, receipt, rve) \
         SELECT printf('tx_seed_%08d', x), printf('act_seed_%d', x % 10), printf('idem-%08d', x), \
         x / 10 + 1, 1780000000, printf('{\"total\":%d}', x), 'txh', hex(randomblob(300)), \
         1780000000 + x / 10 FROM c;",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // A session name of this test's own: other tests copy at the same time.
    let name = format!("tg-copy-kill-{}", std::process::id());
    let target = format!("{}&application_name={name}", pg.url);
    let copy = || copy_to_postgres_cmd(&dir, &target);
    let mut child = copy()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let watch = sqlx::AnyPool::connect(&pg.url).await.unwrap();
    let mut writing = false;
    for _ in 0..3000 {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND query LIKE 'INSERT INTO transactions%'",
        )
        .bind(&name)
        .fetch_one(&watch)
        .await
        .unwrap();
        if n > 0 {
            writing = true;
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it was caught"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(writing, "the copy never started writing transactions");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_rows(&watch, "nothing of the killed copy is kept").await;

    let out = copy().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transactions")
        .fetch_one(&watch)
        .await
        .unwrap();
    assert_eq!(n, 30_000);
    watch.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy whose read-back differs from the source (here a PostgreSQL trigger changes a
/// value as it is written) is refused: PostgreSQL keeps none of the rows and the SQLite
/// database is not marked. A password in the target URL never shows in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_postgres_refuses_a_copy_that_reads_back_different() {
    let Some(pg) = TestDb::new(
        Backend::Postgres,
        "copy_to_postgres_refuses_a_copy_that_reads_back_different",
    )
    .await
    else {
        return;
    };
    let (dir, _) = initialised_data_dir("copy_diff").await;
    // The schema first, then a trigger that alters every signing key written.
    let target = tillgate_server::db::Store::connect(&pg.url, 2)
        .await
        .unwrap();
    target.close().await;
    let watch = sqlx::AnyPool::connect(&pg.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION tamper() RETURNS trigger AS $$ BEGIN \
         NEW.public_key := NEW.public_key || 'x'; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER tamper BEFORE INSERT ON signing_keys FOR EACH ROW EXECUTE FUNCTION tamper();",
    )
    .execute(&watch)
    .await
    .unwrap();
    // Trust authentication ignores the password; the output must not show it.
    let password = "Sekrit-Passw0rd-9";
    let with_password = pg.url.replacen("@", &format!(":{password}@"), 1);
    assert!(with_password.contains(password));
    let out = copy_to_postgres_cmd(&dir, &with_password).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("signing_keys: the 1 rows PostgreSQL holds differ from those copied"),
        "{err}"
    );
    assert!(!err.contains(password) && !String::from_utf8_lossy(&out.stdout).contains(password));
    assert_no_rows(&watch, "nothing of the refused copy is kept").await;
    watch.close().await;
    assert!(!dir.join("tillgate.db.moved-to-postgres").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `admin verify-receipts` on the real binary, while the server serves: a line per
/// register and the counts, exit 0 when every chain is intact; with the published keys
/// (`--jwks`); against a backup (`--previous`), which finds a tail cut off with its head
/// set back; exit 2 naming the broken register's first bad sequence number after a
/// stored amount is changed, or a register deleted; a backup file audited as it is; a
/// missing database, JWKS or register is an error (exit 1), and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_receipts_cli() {
    let db = TestDb::new(Backend::Sqlite, "verify_receipts_cli")
        .await
        .unwrap();
    let s = Srv::start(&db, Backend::Sqlite).await;
    let (a, key_a) = s.register(CORP_A, "dev-1").await;
    let (b, key_b) = s.register(CORP_A, "dev-2").await;
    let a_id = a["activationId"].as_str().unwrap().to_owned();
    let b_id = b["activationId"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        assert_eq!(
            s.post_tx(&key_a, &format!("a-{i}"), &sale(100 * i))
                .await
                .status(),
            201
        );
        assert_eq!(
            s.post_tx(&key_b, &format!("b-{i}"), &sale(200 * i))
                .await
                .status(),
            201
        );
    }
    let lines = |out: &std::process::Output| -> Vec<Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let verify = |args: &[&str]| {
        let (url, args) = (
            db.url.clone(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        async move {
            tokio::task::spawn_blocking(move || {
                let mut all = vec!["verify-receipts".to_owned()];
                all.extend(args);
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                admin_cli(&url, &all)
            })
            .await
            .unwrap()
        }
    };

    let out = verify(&[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[..2]
            .iter()
            .all(|r| r["status"] == "intact" && r["transactions"] == 3)
    );
    assert_eq!(
        got[2]["summary"],
        json!({"registers": 2, "transactions": 6, "broken": 0, "trustedKeys": "database", "previous": false})
    );
    let out = verify(&["--activation-id", &a_id]).await;
    assert!(out.status.success());
    assert_eq!(lines(&out)[0]["activationId"], a_id.as_str());
    assert_eq!(lines(&out)[1]["summary"]["registers"], 1);

    // With the published keys (a JWKS file kept apart from the database) instead.
    let jwks: Value = s.get_json("/.well-known/jwks.json").await;
    let jwks_file = db.dir.as_ref().unwrap().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let out = verify(&["--jwks", jwks_file.to_str().unwrap(), "--broken-only"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out)[0]["summary"]["trustedKeys"], "given");
    let out = verify(&["--jwks", "/nonexistent/jwks.json"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    // A backup taken now verifies too.
    let backup = db.dir.as_ref().unwrap().join("backup.db");
    assert!(
        admin_cli(&db.url, &["backup", backup.to_str().unwrap()])
            .status
            .success()
    );

    // Against that backup: chains that went on since continue it.
    for i in 4..=5 {
        assert_eq!(
            s.post_tx(&key_a, &format!("a-{i}"), &sale(100 * i))
                .await
                .status(),
            201
        );
    }
    let backup_path = backup.to_str().unwrap();
    let out = verify(&["--previous", backup_path, "--broken-only"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out)[0]["summary"]["transactions"], 8);
    // A's last three transactions cut off and its head set back: the chain alone looks
    // whole; against the backup (which reached sequence 3) it is not.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let kept = cut_chain_to_two(&s, &pool, &a_id).await;
    assert!(verify(&[]).await.status.success());
    let out = verify(&["--previous", &format!("sqlite://{backup_path}?mode=ro")]).await;
    assert_eq!(out.status.code(), Some(2));
    let got = lines(&out);
    let a = got
        .iter()
        .find(|r| r["activationId"] == a_id.as_str())
        .unwrap();
    assert_eq!(a["broken"]["code"], "previous_mismatch");
    assert_eq!(a["broken"]["seq"], 3);
    // Put back, the chain continues the backup again.
    for r in &kept[2..] {
        insert_tx_row(&pool, r).await;
    }
    set_chain_head(&pool, &a_id, 5, &kept[4].receipt).await;
    assert!(verify(&["--previous", backup_path]).await.status.success());
    let out = verify(&["--previous", "/nonexistent/old.db"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));

    sqlx::query(
        "UPDATE transactions SET body = REPLACE(body, '200', '20') WHERE activation_id = $1 AND seq = 2",
    )
    .bind(&a_id)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let out = verify(&[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("1 of 2 registers' receipt chains are broken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    let broken = got
        .iter()
        .find(|r| r["activationId"] == a_id.as_str())
        .unwrap();
    assert_eq!(broken["status"], "broken");
    assert_eq!(broken["broken"]["seq"], 2);
    assert_eq!(broken["broken"]["code"], "transaction_mismatch");
    assert_eq!(got[2]["summary"]["broken"], 1);
    let out = verify(&["--broken-only"]).await;
    assert_eq!(out.status.code(), Some(2));
    let got = lines(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["activationId"], a_id.as_str());
    assert_eq!(got[1]["summary"]["registers"], 2);

    let backup_url = format!("sqlite://{}?mode=ro", backup.display());
    let out = admin_cli(&backup_url, &["verify-receipts", "--broken-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&out),
        [
            json!({"summary": {"registers": 2, "transactions": 6, "broken": 0, "trustedKeys": "database", "previous": false}})
        ]
    );

    let missing = db.dir.as_ref().unwrap().join("none.db");
    let out = admin_cli(
        &format!("sqlite://{}?mode=rwc", missing.display()),
        &["verify-receipts"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!missing.exists());
    let out = verify(&["--activation-id", "act_none"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no activation act_none"));

    // Register B deleted (foreign keys off for the one connection): its transactions
    // name a register not stored, and the backup's register is gone.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM activations WHERE id = $1")
        .bind(&b_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    pool.close().await;
    let out = verify(&["--previous", backup.to_str().unwrap(), "--broken-only"]).await;
    assert_eq!(out.status.code(), Some(2));
    let codes: Vec<(String, String)> = lines(&out)
        .iter()
        .filter(|r| r["activationId"] == b_id.as_str())
        .map(|r| {
            (
                r["broken"]["code"].to_string(),
                r["broken"]["seq"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("\"unknown_register\"".to_owned(), "1".to_owned()),
            ("\"previous_mismatch\"".to_owned(), "1".to_owned())
        ]
    );
}

/// `verify-receipts` reads a database of an older schema as it is: a backup taken before
/// the upgrade to schema version 5 (no transaction versions), as deploy/README.md says
/// to take one, is audited on its own (versions unchecked, and said so) and as the
/// `--previous` copy of today's database, which is what the daily backup unit runs after
/// an upgrade; a chain cut short since that backup is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_receipts_reads_a_backup_of_schema_4() {
    let db = TestDb::new(Backend::Sqlite, "verify_receipts_v4")
        .await
        .unwrap();
    let s = Srv::start(&db, Backend::Sqlite).await;
    let (a, key) = s.register(CORP_A, "dev-1").await;
    let a_id = a["activationId"].as_str().unwrap().to_owned();
    let sell = async |range: std::ops::RangeInclusive<i64>| {
        for i in range {
            let r = s.post_tx(&key, &format!("a-{i}"), &sale(100 * i)).await;
            assert_eq!(r.status(), 201);
        }
    };
    sell(1..=3).await;
    let old = db.dir.as_ref().unwrap().join("before-upgrade.db");
    let out = admin_cli(&db.url, &["backup", old.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Back to schema 4, as a backup taken before the upgrade holds it.
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rw", old.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TABLE decisions; \
         DROP INDEX activations_by_request_key; \
         ALTER TABLE activations DROP COLUMN request_key_hash; \
         ALTER TABLE activations DROP COLUMN request_hash; \
         DROP INDEX transactions_by_version; \
         ALTER TABLE transactions DROP COLUMN rve; \
         ALTER TABLE activations DROP COLUMN chain_rve; \
         CREATE INDEX transactions_by_time ON transactions (activation_id, created_at); \
         DELETE FROM tillgate_migrations WHERE version >= 5;",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    sell(4..=5).await;
    let summary = |out: &std::process::Output| -> Value {
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str::<Value>(text.lines().last().unwrap()).unwrap()["summary"].clone()
    };

    // Today's database against the schema-4 backup, as the backup unit compares them.
    let out = admin_cli(
        &db.url,
        &[
            "verify-receipts",
            "--broken-only",
            "--previous",
            old.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        summary(&out),
        json!({"registers": 1, "transactions": 5, "broken": 0, "trustedKeys": "database", "previous": true})
    );
    // The schema-4 backup on its own: its chains verify, its versions are not checked.
    let old_url = format!("sqlite://{}?mode=ro", old.display());
    let out = admin_cli(&old_url, &["verify-receipts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        summary(&out),
        json!({"registers": 1, "transactions": 3, "broken": 0, "trustedKeys": "database",
               "previous": false, "versionsUnchecked": true})
    );
    // A's tail cut off since, its head set back: found against the schema-4 backup.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    cut_chain_to_two(&s, &pool, &a_id).await;
    pool.close().await;
    let out = admin_cli(&db.url, &["verify-receipts", "--previous", &old_url]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["broken"]["code"], "previous_mismatch");
    assert_eq!(first["broken"]["seq"], 3);
}

/// The real binary's `admin` subcommand on the database of `db` (the in-process test
/// server's key-encryption key, in the temporary directory), with `env` and `stdin`;
/// whether it succeeded, its JSON output lines, its standard error.
fn admin_on(
    db: &TestDb,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> (bool, Vec<Value>, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillgate-server"))
        .env("DATABASE_URL", &db.url)
        .env("TILLGATE_DATA_DIR", std::env::temp_dir())
        .env_remove("TILLGATE_RM_SYSTEM")
        .envs(env.iter().copied())
        .arg("admin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    json_result(child.wait_with_output().unwrap())
}

/// Staff logins through the admin CLI, beside a running server: `add-staff
/// --password-stdin` derives the key the app derives (with the RmSystem the server
/// recorded at its start, and refuses another), refuses to move or change an enabled
/// login without `--replace` and to bring a login back with its old key;
/// `disable-staff` stops its dynamic keys at once. `--by` and `--note` are checked as
/// the HTTP API checks them, and `list` reads every registration, past any page size.
async fn admin_cli_manages_staff_logins(backend: Backend) {
    let Some(db) = TestDb::new(backend, "admin_cli_manages_staff_logins").await else {
        return;
    };
    let s = Srv::start(&db, backend).await;
    let (a, _) = s.register(CORP_A, "dev-1").await;
    let (other, _) = s.register(CORP_A, "dev-2").await;
    let (a, other) = (
        a["activationId"].as_str().unwrap().to_owned(),
        other["activationId"].as_str().unwrap().to_owned(),
    );
    let cheap = tillgate_core::DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let handshake = |password: &str| {
        let pair =
            tillgate_core::derive_dynamic_key_pair("1,2,3,4", "bea", password, cheap).unwrap();
        let dk =
            tillgate_core::create_dynamic_api_key(&pair, tillgate_server::Clock::now(&s.clock))
                .unwrap();
        let s = &s;
        async move {
            let r = s.get("/auth/handshake", dk.expose()).await;
            let ok = r.status() == 200;
            let body: Value = r.json().await.unwrap();
            let field = if ok { "activationId" } else { "code" };
            body[field].as_str().unwrap().to_owned()
        }
    };
    let add = |activation: &str, password: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "add-staff",
            "--login",
            "bea",
            "--activation-id",
            activation,
            "--password-stdin",
            "--memory-kib",
            "64",
            "--iterations",
            "1",
            "--parallelism",
            "1",
        ];
        args.extend_from_slice(extra);
        admin_on(&db, &args, env, &format!("{password}\n"))
    };

    let (ok, out, err) = add(&a, "first", &[], &[]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["result"], "created");
    assert_eq!(handshake("first").await, a);
    let (ok, out, err) = add(&a, "first", &[], &[]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["result"], "unchanged");
    // Another RmSystem than the server's would derive a key no app derives.
    let (ok, _, err) = add(&a, "first", &[], &[("TILLGATE_RM_SYSTEM", "9,9,9,9")]);
    assert!(!ok);
    assert!(
        err.contains("RmSystem 1,2,3,4") && err.contains("TILLGATE_RM_SYSTEM"),
        "{err}"
    );

    let (ok, _, err) = add(&other, "second", &[], &[]);
    assert!(!ok);
    assert!(err.contains("staff_login_in_use"), "{err}");
    let (ok, _, err) = add(&other, "first", &["--replace"], &[]);
    assert!(!ok);
    assert!(err.contains("staff_key_reused"), "{err}");
    let (ok, out, err) = add(&other, "second", &["--replace"], &[]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["result"], "replaced");
    assert_eq!(handshake("second").await, other);

    let (ok, out, err) = admin_on(&db, &["disable-staff", "--login", "bea"], &[], "");
    assert!(ok, "{err}");
    assert!(out[0]["disabledAt"].is_string(), "{out:?}");
    assert_eq!(handshake("second").await, "bad_signature");
    let (ok, _, err) = admin_on(&db, &["disable-staff", "--login", "nobody"], &[], "");
    assert!(!ok);
    assert!(err.contains("staff_not_found"), "{err}");
    let (ok, _, err) = add(&other, "second", &[], &[]);
    assert!(!ok);
    assert!(err.contains("staff_key_reused"), "{err}");
    let (ok, out, err) = add(&other, "third", &[], &[]);
    assert!(ok, "{err}");
    assert_eq!(out[0]["result"], "reenabled");
    assert_eq!(handshake("third").await, other);

    // Decisions: --by and --note as the HTTP API takes decidedBy and note.
    let pending = s.activate_ok(CORP_A, "dev-3").await;
    let pending = pending["activationId"].as_str().unwrap();
    for (args, flag) in [
        (vec!["reject", pending, "--by", ""], "--by"),
        (vec!["reject", pending, "--note", "a\u{7}bell"], "--note"),
        (
            vec!["approve", pending, "--note", &"n".repeat(1001)],
            "--note",
        ),
    ] {
        let (ok, _, err) = admin_on(&db, &args, &[], "");
        assert!(!ok, "{args:?}");
        assert!(err.contains(flag), "{err}");
    }
    let (ok, out, err) = admin_on(&db, &["reject", pending, "--note", "duplicate"], &[], "");
    assert!(ok, "{err}");
    assert_eq!(out[0]["status"], "rejected");

    // More registrations than a page (1,000 a query), the page ending inside a group of
    // rows created in the same second: every one is listed, once, oldest first.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1205) \
         INSERT INTO activations (id, production_number, cash_register_name, device_id, \
         corporate_id, country, application_package, extras, features, valid_from, valid_to, \
         status, created_at, updated_at) \
         SELECT 'act_bulk_' || i, 'TG-BULK-' || i, 'Kassa', 'dev-bulk', '5560360793', 'SE', \
         'com.example.pos', '{}', '[]', 0, 1, 'pending', i / 10, i / 10 FROM n",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (ok, out, err) = admin_on(&db, &["list"], &[], "");
    assert!(ok, "{err}");
    assert_eq!(out.len(), 1205 + 3);
    let ids: std::collections::HashSet<&str> = out
        .iter()
        .map(|a| a["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), out.len(), "each registration once");
    let newest: std::collections::HashSet<&str> = out[1205..]
        .iter()
        .map(|a| a["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(
        newest,
        [a.as_str(), other.as_str(), pending].into(),
        "oldest first"
    );
    let (ok, out, err) = admin_on(&db, &["list", "--status", "pending"], &[], "");
    assert!(ok, "{err}");
    assert_eq!(out.len(), 1205);
    let (ok, _, err) = admin_on(&db, &["list", "--status", "bogus"], &[], "");
    assert!(!ok);
    assert!(err.contains("--status"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_manages_staff_logins_sqlite() {
    admin_cli_manages_staff_logins(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_manages_staff_logins_postgres() {
    admin_cli_manages_staff_logins(Backend::Postgres).await;
}

/// PostgreSQL over TLS: a `DATABASE_URL` with `sslmode=require` connects, and every
/// connection the server holds is encrypted (the server was once built without TLS in its
/// driver and refused such a URL at start). Skipped where the PostgreSQL in use has TLS off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    let Some(db) = TestDb::new(Backend::Postgres, "postgres_over_tls").await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&pool)
        .await
        .unwrap();
    if ssl != "on" {
        report_skip("postgres_over_tls", "this PostgreSQL has ssl = off");
        return;
    }
    let app_name = format!("tillgate_tls_{}", std::process::id());
    let url = format!("{}&sslmode=require&application_name={app_name}", db.url);
    let s = Srv::start_with(
        &db,
        Backend::Postgres,
        ManualClock::new(T2030 + 3600),
        test_config(&url),
    )
    .await;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    assert_eq!(s.get("/auth/handshake", &key).await.status(), 200);
    let (all, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
    )
    .bind(&app_name)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(all > 0, "no connection of the server found");
    assert_eq!(
        encrypted, all,
        "a connection of the server is not encrypted"
    );
}

/// An admin command run as another user than the SQLite database's owner (a plain `sudo`
/// runs it as root) refuses to start: the lock files, a migration or a restore it wrote
/// would be that user's, and the server could no longer open them. Needs root (to give
/// the database another owner); skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_refuse_another_users_database() {
    let db = TestDb::new(Backend::Sqlite, "another_owner").await.unwrap();
    tillgate_server::db::Store::connect(&db.url, 1)
        .await
        .unwrap()
        .close()
        .await;
    let path = db.url.trim_start_matches("sqlite://");
    let path = std::path::Path::new(path.split('?').next().unwrap());
    let (ok, _, _) = json_result(admin_cli(&db.url, &["list"]));
    assert!(ok, "the owner's own database");
    let dir = path.parent().unwrap();
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let before = files();
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(path).unwrap());
    if std::os::unix::fs::chown(path, Some(65534), None).is_err() {
        report_skip(
            "admin_commands_refuse_another_users_database",
            "needs root to give the database another owner",
        );
        return;
    }
    let backup = dir.join("copy.db");
    let backup = backup.to_str().unwrap();
    for args in [&["list"][..], &["keys"], &["backup", backup]] {
        let (ok, _, err) = json_result(admin_cli(&db.url, args));
        assert!(!ok, "{args:?} ran on another user's database");
        assert!(err.contains("belongs to uid 65534"), "{args:?}: {err}");
    }
    let (ok, _, err) = json_result(admin_cli(&db.url, &["restore", "/nonexistent.db"]));
    assert!(!ok && err.contains("belongs to uid 65534"), "{err}");
    // Nothing was created or replaced beside it.
    assert_eq!(files(), before);
    std::os::unix::fs::chown(path, Some(owner), None).unwrap();
    let (ok, _, err) = json_result(admin_cli(&db.url, &["list"]));
    assert!(ok, "{err}");
}

/// Every PostgreSQL session of the server ends a transaction left idle for a minute
/// (`PG_SESSION_SETTINGS`, applied to each connection the pool opens): a frozen replica
/// cannot hold a register's row locks, and stall every other replica's batches, for
/// longer than that. Its transactions still run at READ COMMITTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_end_transactions_left_idle() {
    use sqlx::Connection as _;
    let Some(db) = TestDb::new(Backend::Postgres, "sessions_end_idle_transactions").await else {
        return;
    };
    let url = format!(
        "{}&options=-c%20default_transaction_isolation%3Drepeatable%5C%20read",
        db.url
    );
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(tillgate_server::db::PG_SESSION_SETTINGS)
        .execute(&mut conn)
        .await
        .unwrap();
    let (idle, isolation): (String, String) = sqlx::query_as(
        "SELECT current_setting('idle_in_transaction_session_timeout'), \
         current_setting('default_transaction_isolation')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        (idle.as_str(), isolation.as_str()),
        ("1min", "read committed")
    );
}
