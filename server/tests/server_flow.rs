//! End-to-end tests over HTTP against a real server on an ephemeral port, each run on
//! SQLite and on PostgreSQL (skipped, with a SKIP line, when PostgreSQL is unreachable).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use tillgate_core::{
    DynamicKeyParams, TrustedKeys, VerifyOptions, create_dynamic_api_key,
    create_dynamic_api_key_with_nonce, derive_dynamic_key_pair, transaction_hash,
    verify_descriptor, verify_receipt_chain, verify_server_time,
};

on_both!(
    activation_approval_handshake,
    url_path_tokens_and_dynamic_keys,
    expiry_and_renewal,
    idempotent_transactions_and_receipt_chain,
    tenancy_refusals,
    products_delta_sync,
    transactions_delta_sync,
    admin_lists_and_exports_page_to_the_end,
    bad_input_is_4xx,
    key_rotation,
    staged_key_rotation,
    offline_key_rotation,
    scheduled_key_rotation,
    only_a_key_that_can_sign_may_stop_signing,
    rate_limits,
    ops_endpoints,
    handshake_answers_within_a_second,
    receipt_audit_finds_each_tampering,
    staff_logins_are_disabled_moved_and_enabled_again,
    register_audit_answers_503_when_the_database_fails,
    activations_repeat_with_their_idempotency_key,
    every_decision_is_kept,
    a_register_that_may_not_sell_gets_back_what_it_stored,
    a_retry_is_answered_before_todays_checks,
);

/// Handshakes of one register in one second share one answer (and one signed time),
/// except with a nonce; a decision about the registration applies at once anyway.
async fn handshake_answers_within_a_second(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, key) = s.register(CORP_A, "dev-1").await;
    let (_, other_key) = s.register(CORP_A, "dev-2").await;
    let get = |k: &str, path: &str| {
        let (http, url, k) = (s.http.clone(), s.url(path), k.to_owned());
        async move {
            let r = http.get(url).bearer_auth(k).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/json");
            r.json::<Value>().await.unwrap()
        }
    };
    let first = get(&key, "/auth/handshake").await;
    assert_eq!(get(&key, "/auth/handshake").await, first);
    let keys = trusted(&s).await;
    let t = verify_server_time(first["signedTime"].as_str().unwrap(), &keys, None).unwrap();
    assert_eq!(t.sub, first["productionNumber"].as_str().unwrap());
    // Another register gets its own answer in the same second.
    let other = get(&other_key, "/auth/handshake").await;
    assert_ne!(other["productionNumber"], first["productionNumber"]);
    assert_ne!(other["signedTime"], first["signedTime"]);
    // A nonce gets a fresh signature carrying it; the plain answer is unchanged after.
    let with_nonce = get(&key, "/auth/handshake?nonce=n-1").await;
    verify_server_time(
        with_nonce["signedTime"].as_str().unwrap(),
        &keys,
        Some("n-1"),
    )
    .unwrap();
    assert_ne!(with_nonce["signedTime"], first["signedTime"]);
    assert_eq!(get(&key, "/auth/handshake").await, first);
    // The next second: a new answer.
    s.clock.advance(1);
    let next = get(&key, "/auth/handshake").await;
    assert_ne!(next["serverTime"], first["serverTime"]);
    // Revoked within the same second: refused at once, not answered from the cache.
    assert_eq!(
        s.admin("revoke", a["activationId"].as_str().unwrap())
            .await
            .status(),
        200
    );
    problem(s.get("/auth/handshake", &key).await, 403, "revoked").await;
}

async fn trusted(s: &Srv) -> TrustedKeys {
    let jwks = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    TrustedKeys::from_jwks_json(&jwks.text().await.unwrap()).unwrap()
}

async fn activation_approval_handshake(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    // Every bad field is listed.
    let r = s
        .activate(json!({"cashRegisterName": "", "deviceId": "has space", "validFrom": "2030-01-01T01:00:00Z",
                         "validTo": "x", "corporateId": "5560360794", "applicationPackage": "pos"}))
        .await;
    let p = problem(r, 400, "invalid_activation_request").await;
    let fields: Vec<&str> = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "cashRegisterName",
            "deviceId",
            "validFrom",
            "validTo",
            "corporateId",
            "applicationPackage"
        ]
    );
    // A period already over is refused.
    let r = s
        .activate(activation_body(
            CORP_A,
            "d1",
            "2029-01-01T00:00:00Z",
            "2029-06-01T00:00:00Z",
        ))
        .await;
    let p = problem(r, 400, "invalid_activation_request").await;
    assert_eq!(p["fields"][0]["code"], "in_the_past");

    let a = s.activate_ok(CORP_A, "dev-1").await;
    assert_eq!(a["status"], "pending");
    assert_eq!(a["corporateId"], "556036-0793");
    let pn = a["productionNumber"].as_str().unwrap();
    assert!(pn.starts_with("TG-") && pn.len() == 12);
    let key = a["apiKey"].as_str().unwrap();
    let id = a["activationId"].as_str().unwrap();

    problem(
        s.http.get(s.url("/auth/handshake")).send().await.unwrap(),
        401,
        "missing_credentials",
    )
    .await;
    problem(
        s.get("/auth/handshake", "Unknown-Key-0123456789abc").await,
        401,
        "invalid_credentials",
    )
    .await;
    problem(s.get("/auth/handshake", key).await, 403, "pending_approval").await;

    // Admin list: admin key required, register keys refused.
    problem(
        s.get("/admin/activations?status=pending", key).await,
        401,
        "invalid_credentials",
    )
    .await;
    let list: Value = s
        .get("/admin/activations?status=pending", ADMIN_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["activationId"] == id)
    );
    problem(
        s.http
            .post(s.url(&format!("/admin/activations/{id}/approve")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap(),
        401,
        "invalid_credentials",
    )
    .await;

    // Approve, recording who and when the authority was notified.
    let r = s
        .http
        .post(s.url(&format!("/admin/activations/{id}/approve")))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"decidedBy": "Eva", "authorityNotifiedAt": "2030-01-01T09:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let approved: Value = r.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decidedBy"], "Eva");
    assert_eq!(approved["authorityNotifiedAt"], "2030-01-01T09:00:00Z");
    // Approving again is harmless; rejecting now is a conflict.
    assert_eq!(s.admin("approve", id).await.status(), 200);
    problem(
        s.admin("reject", id).await,
        409,
        "invalid_status_transition",
    )
    .await;
    problem(
        s.admin("approve", "act_nope").await,
        404,
        "activation_not_found",
    )
    .await;

    // Handshake: signed time verified against the JWKS, with the nonce echoed.
    let r = s
        .get("/auth/handshake?nonce=n-42&deviceId=dev-1", key)
        .await;
    assert_eq!(r.status(), 200);
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["status"], "approved");
    assert_eq!(h["productionNumber"], pn);
    assert_eq!(h["serverTime"], "2030-01-01T01:00:00Z");
    let keys = trusted(&s).await;
    let t = verify_server_time(h["signedTime"].as_str().unwrap(), &keys, Some("n-42")).unwrap();
    assert_eq!(t.iat, T2030 + 3600);
    assert_eq!(t.sub, pn);
    problem(
        s.get("/auth/handshake?deviceId=other", key).await,
        403,
        "device_mismatch",
    )
    .await;
    problem(
        s.get("/auth/handshake?productionNumber=TG-XXXX-XXXX", key)
            .await,
        403,
        "production_number_mismatch",
    )
    .await;
    problem(
        s.get("/auth/handshake?applicationPackage=com.other.app", key)
            .await,
        403,
        "application_package_mismatch",
    )
    .await;
    // X-Api-Key works too.
    let r = s
        .http
        .get(s.url("/auth/handshake"))
        .header("X-Api-Key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Activation code: the signed descriptor verifies offline against the JWKS.
    let r = s.get("/activations/activation-code", key).await;
    assert_eq!(r.status(), 200);
    let code: Value = r.json().await.unwrap();
    let opts = VerifyOptions {
        expected_device_id: Some("dev-1".into()),
        trusted_time_floor: Some(t.iat),
        ..Default::default()
    };
    let d = verify_descriptor(
        code["descriptor"].as_str().unwrap(),
        &keys,
        T2030 + 7200,
        &opts,
    )
    .unwrap();
    assert_eq!(d.claims().sub, pn);
    assert_eq!(d.claims().activation_id, id);
    assert_eq!(d.claims().status, "approved");
    assert_eq!(d.claims().extras, json!({"shop": 7}));
    assert_eq!(d.kid(), code["kid"].as_str().unwrap());

    // Reject and revoke.
    let other = s.activate_ok(CORP_A, "dev-2").await;
    let oid = other["activationId"].as_str().unwrap();
    assert_eq!(s.admin("reject", oid).await.status(), 200);
    problem(
        s.get("/auth/handshake", other["apiKey"].as_str().unwrap())
            .await,
        403,
        "rejected",
    )
    .await;
    problem(
        s.admin("approve", oid).await,
        409,
        "invalid_status_transition",
    )
    .await;
    assert_eq!(s.admin("revoke", id).await.status(), 200);
    problem(s.get("/auth/handshake", key).await, 403, "revoked").await;
    problem(
        s.get("/activations/activation-code", key).await,
        403,
        "revoked",
    )
    .await;
}

async fn url_path_tokens_and_dynamic_keys(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, key) = s.register(CORP_A, "dev-1").await;
    let id = a["activationId"].as_str().unwrap();
    let put = s
        .http
        .put(s.url("/products/coffee"))
        .bearer_auth(&key)
        .json(&json!({"name": "Kaffe", "price": 2500, "currency": "SEK", "vatRate": 1200}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    // The seed's exact path form, and case-insensitive resource names.
    for path in [
        format!("/OpenApi_1,2,3,4$R20201201134216$${key}/Products"),
        format!("/openapi_1,2,3,4$${key}/products"),
        format!("/OpenApi_1,2,3,4$${key}/PRODUCTS/coffee"),
        format!("/OpenApi_1,2,3,4$${key}/Auth/Handshake"),
    ] {
        let r = s.http.get(s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let list: Value = s
        .get_json(&format!("/OpenApi_1,2,3,4$R20201201134216$${key}/Products"))
        .await;
    assert_eq!(list["items"][0]["id"], "coffee");
    // POST a transaction through the prefix.
    let r = s
        .http
        .post(s.url(&format!("/OpenApi_1,2,3,4$${key}/Transactions")))
        .header("Idempotency-Key", "via-path-1")
        .json(&sale(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    problem(
        s.http
            .get(s.url(&format!("/OpenApi_9$${key}/Products")))
            .send()
            .await
            .unwrap(),
        403,
        "rm_system_mismatch",
    )
    .await;
    problem(
        s.http
            .get(s.url(&format!("/OpenApi_1,2,3,4$R2020$${key}/Products")))
            .send()
            .await
            .unwrap(),
        400,
        "url_invalid_rve",
    )
    .await;
    problem(
        s.http
            .get(s.url(&format!("/OpenApi_1,2,3,4$${key}/Admin")))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    problem(
        s.http
            .get(s.url("/OpenApi_1,2,3,4$$Wrong-Token-0123456789/Products"))
            .send()
            .await
            .unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    problem(
        s.http
            .get(s.url("/OpenApi_1,2,3,4/Products"))
            .send()
            .await
            .unwrap(),
        401,
        "missing_credentials",
    )
    .await;

    // Dynamic keys for a staff login: only the public key reaches the server.
    let cheap = DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let pair = derive_dynamic_key_pair("1,2,3,4", "anna", "correct horse", cheap).unwrap();
    let pk = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key());
    let r = s
        .http
        .post(s.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"login": "anna", "activationId": id, "publicKey": pk, "memoryKib": 64, "iterations": 1, "parallelism": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let params: Value = s.get_json("/auth/dynamic-key-params?login=anna").await;
    assert_eq!(params["memoryKib"], 64);
    assert_eq!(params["system"], "1,2,3,4");

    let now = s.clock.now_secs();
    let dk = create_dynamic_api_key(&pair, now).unwrap();
    let r = s.get("/auth/handshake", dk.expose()).await;
    assert_eq!(r.status(), 200);
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["staffLogin"], "anna");
    // A dynamic key is single-use.
    problem(
        s.get("/auth/handshake", dk.expose()).await,
        401,
        "dynamic_key_replayed",
    )
    .await;
    // Stale and wrong-password keys fail.
    let stale = create_dynamic_api_key_with_nonce(&pair, now - 1000, &[7; 16]).unwrap();
    problem(
        s.get("/auth/handshake", stale.expose()).await,
        401,
        "dynamic_key_stale",
    )
    .await;
    let wrong = derive_dynamic_key_pair("1,2,3,4", "anna", "wrong", cheap).unwrap();
    let wk = create_dynamic_api_key(&wrong, now).unwrap();
    problem(
        s.get("/auth/handshake", wk.expose()).await,
        401,
        "bad_signature",
    )
    .await;
    // A login that does not exist gets the same answer: logins cannot be probed.
    let nobody = derive_dynamic_key_pair("1,2,3,4", "nobody", "whatever", cheap).unwrap();
    let nk = create_dynamic_api_key(&nobody, now).unwrap();
    problem(
        s.get("/auth/handshake", nk.expose()).await,
        401,
        "bad_signature",
    )
    .await;
    // Dynamic keys also work as URL-path tokens.
    let dk2 = create_dynamic_api_key(&pair, now).unwrap();
    let r = s
        .http
        .get(s.url(&format!("/OpenApi_1,2,3,4$${}/Products", dk2.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bad staff input.
    let r = s
        .http
        .post(s.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"login": "bert", "activationId": id, "publicKey": "AAAA"}))
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_staff").await;
    // Argon2 parameters no app would derive (core's bounds: 1 GiB, 64 passes).
    for (memory, passes) in [(2 * 1024 * 1024, 2), (19_456, 65)] {
        let r = s
            .http
            .post(s.url("/admin/staff"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"login": "bert", "activationId": id,
                "publicKey": pk, "memoryKib": memory, "iterations": passes}))
            .send()
            .await
            .unwrap();
        let p = problem(r, 400, "invalid_staff").await;
        assert!(p["detail"].as_str().unwrap().contains("Argon2"), "{p}");
    }
}

async fn expiry_and_renewal(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let r = s
        .activate(activation_body(
            CORP_A,
            "dev-1",
            "2030-01-01T00:00:00Z",
            "2030-02-01T00:00:00Z",
        ))
        .await;
    let a: Value = r.json().await.unwrap();
    let id = a["activationId"].as_str().unwrap();
    let pn = a["productionNumber"].as_str().unwrap();
    let old = a["apiKey"].as_str().unwrap();
    assert_eq!(s.admin("approve", id).await.status(), 200);
    let code: Value = s
        .get("/activations/activation-code", old)
        .await
        .json()
        .await
        .unwrap();
    let renew_body = |from: &str, to: &str| json!({"productionNumber": pn, "deviceId": "dev-1", "validFrom": from, "validTo": to});

    // Too early to renew (more than 30 days before validTo).
    let r = s
        .http
        .post(s.url("/activations/renew"))
        .bearer_auth(old)
        .json(&renew_body("2030-02-01T00:00:00Z", "2031-02-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    problem(r, 409, "renewal_too_early").await;

    // Within the renewal window, a new period that has not begun yet is refused, with the
    // key and with the descriptor, before anything changes: the new key would replace the
    // old one at once and not work until then.
    s.clock.set(T2030 + 20 * DAY + 3600);
    let p = problem(
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&renew_body("2030-02-01T00:00:00Z", "2031-02-01T00:00:00Z"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_renewal_request",
    )
    .await;
    assert_eq!(p["fields"][0]["field"], "validFrom");
    assert_eq!(p["fields"][0]["code"], "in_the_future");
    assert_eq!(p["fields"].as_array().unwrap().len(), 1);
    let mut by_descriptor = renew_body("2030-01-22T00:00:00Z", "2031-01-21T00:00:00Z");
    by_descriptor["descriptor"] = code["descriptor"].clone();
    let p = problem(
        s.http
            .post(s.url("/activations/renew"))
            .json(&by_descriptor)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_renewal_request",
    )
    .await;
    assert_eq!(p["fields"][0]["field"], "validFrom");
    assert_eq!(p["fields"][0]["code"], "in_the_future");
    // Both problems of a period at once.
    let p = problem(
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&renew_body("2030-01-22T00:00:00Z", "2030-01-25T00:00:00Z"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_renewal_request",
    )
    .await;
    let fields: Vec<_> = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("validFrom", "in_the_future"),
            ("validTo", "period_inconsistent")
        ]
    );
    // Nothing changed: the old key still works, still approved, with its period.
    let h: Value = s.get_json_as("/auth/handshake", old).await;
    assert_eq!(h["status"], "approved");
    assert_eq!(h["validTo"], "2030-02-01T00:00:00Z");

    // The key expires at validTo.
    s.clock.set(T2030 + 31 * DAY);
    problem(s.get("/auth/handshake", old).await, 403, "key_expired").await;
    problem(s.post_tx(old, "k1", &sale(100)).await, 403, "key_expired").await;

    // Wrong device / production number / a period that is not later.
    let mut wrong = renew_body("2030-02-01T00:00:00Z", "2031-02-01T00:00:00Z");
    wrong["deviceId"] = json!("dev-2");
    problem(
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&wrong)
            .send()
            .await
            .unwrap(),
        403,
        "device_mismatch",
    )
    .await;
    let mut wrong = renew_body("2030-02-01T00:00:00Z", "2031-02-01T00:00:00Z");
    wrong["productionNumber"] = json!("TG-2222-2222");
    problem(
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&wrong)
            .send()
            .await
            .unwrap(),
        403,
        "production_number_mismatch",
    )
    .await;
    let p = problem(
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&renew_body("2030-01-01T00:00:00Z", "2030-01-15T00:00:00Z"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_renewal_request",
    )
    .await;
    assert_eq!(p["fields"][0]["code"], "period_inconsistent");
    let p = problem(
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&renew_body("2030-02-01T00:00:00Z", "2031-06-01T00:00:00Z"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_renewal_request",
    )
    .await;
    assert_eq!(p["fields"][0]["code"], "period_too_long");
    // Not midnight, though within its second: refused (and so is its repeat, below).
    let not_midnight = problem(
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&renew_body(
                "2030-02-01T00:00:00.9Z",
                "2031-02-01T00:00:00Z",
            ))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_renewal_request",
    )
    .await;
    assert_eq!(not_midnight["fields"][0]["field"], "validFrom");
    assert_eq!(not_midnight["fields"][0]["code"], "not_midnight_utc");

    // Renew with the old key: a new key, the old one stops working.
    let r = s
        .http
        .post(s.url("/activations/renew"))
        .bearer_auth(old)
        .json(&renew_body("2030-02-01T00:00:00Z", "2031-02-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let n: Value = r.json().await.unwrap();
    assert_eq!(n["status"], "approved");
    assert_eq!(n["validTo"], "2031-02-01T00:00:00Z");
    let lost = n["apiKey"].as_str().unwrap();
    assert_ne!(lost, old);
    problem(s.get("/auth/handshake", old).await, 401, "key_replaced").await;
    assert_eq!(s.get("/auth/handshake", lost).await.status(), 200);
    // Say that answer never reached the register: the same renewal, repeated with the old
    // key within ten minutes, gives a fresh key, and the lost one stops working.
    let repeat = |from: &str, to: &str| {
        s.http
            .post(s.url("/activations/renew"))
            .bearer_auth(old)
            .json(&renew_body(from, to))
            .send()
    };
    s.clock.set(T2030 + 31 * DAY + 600);
    // A period a first renewal refuses is refused in a repeat too, with the same answer,
    // though its whole seconds are the renewal's; nothing changes.
    let r = repeat("2030-02-01T00:00:00.9Z", "2031-02-01T00:00:00Z")
        .await
        .unwrap();
    let p = problem(r, 400, "invalid_renewal_request").await;
    assert_eq!(p["fields"], not_midnight["fields"]);
    assert_eq!(s.get("/auth/handshake", lost).await.status(), 200);
    // The same instants written another way (fractional seconds, an offset) are the
    // same request.
    let r = repeat("2030-02-01T00:00:00.000Z", "2031-02-01T01:00:00+01:00")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["validFrom"], "2030-02-01T00:00:00Z");
    assert_eq!(again["validTo"], "2031-02-01T00:00:00Z");
    let lost_again = again["apiKey"].as_str().unwrap().to_owned();
    problem(s.get("/auth/handshake", lost).await, 401, "key_replaced").await;
    let r = repeat("2030-02-01T00:00:00Z", "2031-02-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["status"], "approved");
    assert_eq!(again["validFrom"], "2030-02-01T00:00:00Z");
    assert_eq!(again["validTo"], "2031-02-01T00:00:00Z");
    let new = again["apiKey"].as_str().unwrap();
    assert!(new != lost && new != old && new != lost_again);
    problem(
        s.get("/auth/handshake", &lost_again).await,
        401,
        "key_replaced",
    )
    .await;
    assert_eq!(s.get("/auth/handshake", new).await.status(), 200);
    // Another period is not a repeat, nor is the same one ten minutes after the renewal.
    let r = repeat("2030-02-01T00:00:00Z", "2031-01-01T00:00:00Z")
        .await
        .unwrap();
    problem(r, 401, "key_replaced").await;
    s.clock.set(T2030 + 31 * DAY + 601);
    let r = repeat("2030-02-01T00:00:00Z", "2031-02-01T00:00:00Z")
        .await
        .unwrap();
    problem(r, 401, "key_replaced").await;
    assert_eq!(s.get("/auth/handshake", new).await.status(), 200);
    // The old descriptor no longer renews anything.
    let r = s.http.post(s.url("/activations/renew"))
        .json(&json!({"productionNumber": pn, "deviceId": "dev-1", "validFrom": "2031-02-01T00:00:00Z",
                      "validTo": "2032-02-01T00:00:00Z", "descriptor": code["descriptor"]})).send().await.unwrap();
    problem(r, 401, "descriptor_superseded").await;

    // Renewal by the signed descriptor, within the grace period: back to pending.
    let code: Value = s
        .get("/activations/activation-code", new)
        .await
        .json()
        .await
        .unwrap();
    s.clock.set(T2030 + 396 * DAY + 10 * DAY); // 2031-02-11
    // (An `Authorization` header of another scheme, added by a proxy, is passed over.)
    let r = s.http.post(s.url("/activations/renew"))
        .header("authorization", "Basic dXNlcjpwYXNzd29yZA==")
        .json(&json!({"productionNumber": pn, "deviceId": "dev-1", "validFrom": "2031-02-01T00:00:00Z",
                      "validTo": "2032-02-01T00:00:00Z", "descriptor": code["descriptor"]})).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let d: Value = s.get("/auth/handshake", new).await.json().await.unwrap();
    assert_eq!(d["code"], "key_replaced");
    let r = s.http.post(s.url("/activations/renew"))
        .json(&json!({"productionNumber": pn, "deviceId": "dev-1", "validFrom": "2031-02-01T00:00:00Z",
                      "validTo": "2032-02-01T00:00:00Z", "descriptor": "not.a.jws"})).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Beyond the grace period.
    let (b2, k2) = {
        s.clock.set(T2030 + 3600);
        let r = s
            .activate(activation_body(
                CORP_A,
                "dev-9",
                "2030-01-01T00:00:00Z",
                "2030-02-01T00:00:00Z",
            ))
            .await;
        let a: Value = r.json().await.unwrap();
        assert_eq!(
            s.admin("approve", a["activationId"].as_str().unwrap())
                .await
                .status(),
            200
        );
        let k = a["apiKey"].as_str().unwrap().to_owned();
        (a, k)
    };
    let code2: Value = s
        .get("/activations/activation-code", &k2)
        .await
        .json()
        .await
        .unwrap();
    // The descriptor of another device is refused as the key would be (403).
    let r = s
        .http
        .post(s.url("/activations/renew"))
        .json(
            &json!({"productionNumber": b2["productionNumber"], "deviceId": "dev-other",
                      "validFrom": "2030-02-01T00:00:00Z", "validTo": "2031-02-01T00:00:00Z",
                      "descriptor": code2["descriptor"]}),
        )
        .send()
        .await
        .unwrap();
    problem(r, 403, "device_mismatch").await;
    s.clock.set(T2030 + 31 * DAY + 31 * DAY);
    let r = s
        .http
        .post(s.url("/activations/renew"))
        .bearer_auth(&k2)
        .json(
            &json!({"productionNumber": b2["productionNumber"], "deviceId": "dev-9",
                      "validFrom": "2030-03-01T00:00:00Z", "validTo": "2031-03-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    problem(r, 403, "renewal_grace_expired").await;
    // The same with the signed descriptor: a genuine one, too old to renew.
    let r = s
        .http
        .post(s.url("/activations/renew"))
        .json(
            &json!({"productionNumber": b2["productionNumber"], "deviceId": "dev-9",
                      "validFrom": "2030-03-01T00:00:00Z", "validTo": "2031-03-01T00:00:00Z",
                      "descriptor": code2["descriptor"]}),
        )
        .send()
        .await
        .unwrap();
    problem(r, 403, "renewal_grace_expired").await;

    // Not yet valid.
    s.clock.set(T2030 + 3600);
    let r = s
        .activate(activation_body(
            CORP_A,
            "dev-3",
            "2030-03-01T00:00:00Z",
            "2030-06-01T00:00:00Z",
        ))
        .await;
    let a: Value = r.json().await.unwrap();
    assert_eq!(
        s.admin("approve", a["activationId"].as_str().unwrap())
            .await
            .status(),
        200
    );
    problem(
        s.get("/auth/handshake", a["apiKey"].as_str().unwrap())
            .await,
        403,
        "key_not_yet_valid",
    )
    .await;
}

async fn idempotent_transactions_and_receipt_chain(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, key) = s.register(CORP_A, "dev-1").await;
    let pn = a["productionNumber"].as_str().unwrap().to_owned();

    let r = s.post_tx(&key, "idem-1", &sale(12500)).await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["total"], 12500);
    assert_eq!(first["productionNumber"], pn.as_str());
    // A retry returns the same result and stores nothing new.
    let r = s.post_tx(&key, "idem-1", &sale(12500)).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get("idempotent-replayed").unwrap(), "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, first);
    // The same key with another body is refused.
    problem(
        s.post_tx(&key, "idem-1", &sale(999)).await,
        422,
        "idempotency_key_reused",
    )
    .await;

    // Concurrent retries of one key: one transaction.
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (http, url, key) = (s.http.clone(), s.url("/transactions"), key.clone());
        handles.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "idem-conc")
                .json(&sale(700))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        ids.insert(h.await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);

    // Many concurrent different transactions: gapless sequence.
    let mut handles = Vec::new();
    for i in 0..40 {
        let (http, url, key) = (s.http.clone(), s.url("/transactions"), key.clone());
        handles.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", format!("many-{i}"))
                .json(&sale(100 + i))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    // Refund referencing the first sale; copy without a reference is refused.
    let mut refund = sale(12500);
    refund["type"] = json!("refund");
    refund["reference"] = first["id"].clone();
    assert_eq!(s.post_tx(&key, "refund-1", &refund).await.status(), 201);
    let mut copy = sale(12500);
    copy["type"] = json!("copy");
    let p = problem(
        s.post_tx(&key, "copy-1", &copy).await,
        400,
        "invalid_transaction",
    )
    .await;
    assert_eq!(p["fields"][0]["field"], "reference");
    copy["reference"] = json!("tx_unknown");
    let p = problem(
        s.post_tx(&key, "copy-2", &copy).await,
        400,
        "invalid_transaction",
    )
    .await;
    assert_eq!(p["fields"][0]["code"], "unknown_reference");

    // List, paged by sequence; verify the whole chain offline.
    let mut receipts = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = s
            .get(
                &format!("/transactions?afterSequence={after}&limit=10"),
                &key,
            )
            .await
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            let tx: tillgate_core::Transaction = serde_json::from_value(
                json!({
                    "type": item["type"], "currency": item["currency"], "total": item["total"],
                    "vat": item["vat"], "items": item["items"], "reference": item["reference"]
                })
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            )
            .unwrap();
            assert_eq!(item["txh"].as_str().unwrap(), transaction_hash(&tx));
            receipts.push(item["receipt"].as_str().unwrap().to_owned());
        }
        match page["nextAfterSequence"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(receipts.len(), 1 + 1 + 40 + 1);
    let keys = trusted(&s).await;
    let claims = verify_receipt_chain(&receipts, &keys).unwrap();
    assert_eq!(claims.last().unwrap().seq, 43);
    assert!(claims.iter().all(|c| c.sub == pn));
    // Fetch one by id.
    let one: Value = s
        .get(
            &format!("/transactions/{}", first["id"].as_str().unwrap()),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one, first);
    // Admin export has them too.
    let export: Value = s
        .get(
            &format!(
                "/admin/transactions?activationId={}",
                a["activationId"].as_str().unwrap()
            ),
            ADMIN_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["items"].as_array().unwrap().len(), 43);
}

/// The admin's registration list and transaction export page through everything with
/// the cursors they return, each row once.
async fn admin_lists_and_exports_page_to_the_end(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let mut keys = Vec::new();
    for d in 0..3 {
        let (a, key) = s.register(CORP_A, &format!("dev-{d}")).await;
        keys.push((a["activationId"].as_str().unwrap().to_owned(), key));
    }
    for (_, key) in &keys {
        for t in 0..3 {
            assert_eq!(
                s.post_tx(key, &format!("t{t}"), &sale(100)).await.status(),
                201
            );
        }
    }
    // Registrations, two a page.
    let mut ids = Vec::new();
    let mut path = "/admin/activations?limit=2".to_owned();
    loop {
        let page = s.get_json_as(&path, ADMIN_KEY).await;
        for a in page["items"].as_array().unwrap() {
            ids.push(a["activationId"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/admin/activations?limit=2&after={next}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = keys.iter().map(|(a, _)| a.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "each registration once: {ids:?}");
    problem(
        s.get("/admin/activations?after=act_nope", ADMIN_KEY).await,
        400,
        "invalid_cursor",
    )
    .await;
    // Every register's transactions, four a page: 9 rows in three pages.
    let mut rows = Vec::new();
    let mut path = "/admin/transactions?limit=4".to_owned();
    let mut pages = 0;
    loop {
        let page = s.get_json_as(&path, ADMIN_KEY).await;
        pages += 1;
        for t in page["items"].as_array().unwrap() {
            rows.push(t["id"].as_str().unwrap().to_owned());
        }
        match (
            page["nextAfterActivationId"].as_str(),
            page["nextAfterSequence"].as_i64(),
        ) {
            (Some(a), Some(seq)) => {
                path = format!(
                    "/admin/transactions?limit=4&afterActivationId={a}&afterSequence={seq}"
                );
            }
            (None, None) => break,
            other => panic!("half a cursor: {other:?}"),
        }
    }
    assert_eq!(pages, 3);
    let mut unique = rows.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((rows.len(), unique.len()), (9, 9));
    // One register's, by sequence.
    let one = s
        .get_json_as(
            &format!(
                "/admin/transactions?activationId={}&afterSequence=1&limit=1",
                keys[0].0
            ),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(one["items"][0]["sequence"], 2);
    assert_eq!(one["nextAfterSequence"], 2);
    assert!(one.get("nextAfterActivationId").is_none());
    // After a register without a sequence: only the registers after it.
    let later = s
        .get_json_as(
            &format!(
                "/admin/transactions?afterActivationId={}",
                ids_sorted_first(&keys)
            ),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(later["items"].as_array().unwrap().len(), 6);
    // A sequence without a register is refused, not ignored.
    problem(
        s.get("/admin/transactions?afterSequence=1", ADMIN_KEY)
            .await,
        400,
        "invalid_query",
    )
    .await;
}

async fn tenancy_refusals(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (_, k1) = s.register(CORP_A, "dev-1").await;
    let (_, k2) = s.register(CORP_A, "dev-2").await;
    let (_, k3) = s.register(CORP_B, "dev-3").await;
    let pending = s.activate_ok(CORP_A, "dev-4").await;
    let kp = pending["apiKey"].as_str().unwrap();

    let tx: Value = s.post_tx(&k1, "t1", &sale(500)).await.json().await.unwrap();
    let tid = tx["id"].as_str().unwrap();
    // Another register (same company or not) cannot read it.
    problem(
        s.get(&format!("/transactions/{tid}"), &k2).await,
        404,
        "transaction_not_found",
    )
    .await;
    problem(
        s.get(&format!("/transactions/{tid}"), &k3).await,
        404,
        "transaction_not_found",
    )
    .await;
    let l2: Value = s.get("/transactions", &k2).await.json().await.unwrap();
    assert!(l2["items"].as_array().unwrap().is_empty());
    // Nor reference it.
    let mut refund = sale(500);
    refund["type"] = json!("refund");
    refund["reference"] = json!(tid);
    problem(
        s.post_tx(&k2, "r1", &refund).await,
        400,
        "invalid_transaction",
    )
    .await;
    // Idempotency keys are per register: the same key elsewhere is a new transaction.
    let other: Value = s.post_tx(&k2, "t1", &sale(500)).await.json().await.unwrap();
    assert_ne!(other["id"], tx["id"]);
    assert_eq!(other["sequence"], 1);

    // Products: shared within the company, invisible to other companies.
    let put = |key: String, id: &'static str| {
        let http = s.http.clone();
        let url = s.url(&format!("/products/{id}"));
        async move {
            http.put(url)
                .bearer_auth(key)
                .json(&json!({"name": "Bulle", "price": 1500, "currency": "SEK", "vatRate": 1200}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(put(k1.clone(), "bun").await.status(), 201);
    assert_eq!(s.get("/products/bun", &k2).await.status(), 200);
    problem(s.get("/products/bun", &k3).await, 404, "product_not_found").await;
    let l3: Value = s.get("/products", &k3).await.json().await.unwrap();
    assert!(l3["items"].as_array().unwrap().is_empty());
    // Company B's product of the same id is its own.
    assert_eq!(put(k3.clone(), "bun").await.status(), 201);
    assert_eq!(put(k1.clone(), "bun").await.status(), 200);

    // Pending registrations reach nothing; register keys are not admin keys and back.
    problem(s.get("/products", kp).await, 403, "pending_approval").await;
    problem(s.post_tx(kp, "p1", &sale(1)).await, 403, "pending_approval").await;
    problem(
        s.get("/admin/activations", &k1).await,
        401,
        "invalid_credentials",
    )
    .await;
    problem(
        s.get("/products", ADMIN_KEY).await,
        401,
        "invalid_credentials",
    )
    .await;
    problem(
        s.get("/admin/transactions", &k1).await,
        401,
        "invalid_credentials",
    )
    .await;
}

/// `GET /transactions` by RVE: each sale comes once, in order, also a sale stamped before
/// the RVE a listing handed out (a clock that went back: a replica whose clock is
/// behind), through the query parameter and the URL-path prefix's `$R` alike.
async fn transactions_delta_sync(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    let post = async |idem: &str| {
        let r = s.post_tx(&key, idem, &sale(100)).await;
        assert_eq!(r.status(), 201, "{idem}");
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let list = async |rve: &str| -> (Vec<String>, String) {
        let path = match rve {
            "" => "/transactions".to_owned(),
            rve => format!("/transactions?rve={rve}"),
        };
        let page: Value = s.get_json_as(&path, &key).await;
        let ids = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, page["rve"].as_str().unwrap().to_owned())
    };
    let (none, start) = list("").await;
    assert!(none.is_empty());
    assert_eq!(start, "19700101000000", "no sale yet: from the start");
    // Two sales in the same second, then listed.
    let (t1, t2) = (post("k1").await, post("k2").await);
    let (ids, rve) = list("").await;
    assert_eq!(ids, [t1.clone(), t2.clone()]);
    assert_eq!(list(&rve).await, (vec![], rve.clone()), "caught up");
    // A third sale in that same second is not lost to an RVE of that second.
    let t3 = post("k3").await;
    let (ids, rve) = list(&rve).await;
    assert_eq!(ids, std::slice::from_ref(&t3));
    // The clock goes back ten minutes: the next sale is stamped before the RVE handed
    // out, and still comes with the next delta.
    s.clock.advance(-600);
    let t4 = post("k4").await;
    let late: Value = s.get_json_as(&format!("/transactions/{t4}"), &key).await;
    // RFC 3339 in UTC without fractions: its digits are the RVE form of the time.
    let stamped: String = late["createdAt"]
        .as_str()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert!(stamped < rve, "stamped {stamped}, before the RVE {rve}");
    let (ids, rve) = list(&rve).await;
    assert_eq!(ids, std::slice::from_ref(&t4));
    // The same through the URL-path prefix's $R.
    s.clock.advance(1_200);
    let t5 = post("k5").await;
    let page: Value = s
        .get_json(&format!("/OpenApi_1,2,3,4$R{rve}$${key}/Transactions"))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], t5.as_str());
    let rve = page["rve"].as_str().unwrap().to_owned();
    // An RVE from the register's own clock, ahead of every sale, was not handed out by
    // the server: the sales come from the start.
    let future = tillgate_core::Rve::from_unix(s.state.now() + 86_400)
        .unwrap()
        .to_string();
    let (ids, newest) = list(&future).await;
    assert_eq!(ids, [t1.as_str(), &t2, &t3, &t4, &t5]);
    assert_eq!(newest, rve);
    let t6 = post("k6").await;
    assert_eq!(list(&rve).await.0, std::slice::from_ref(&t6));
    // Paging by the RVE alone: every sale once, in order.
    let (mut rve, mut all) = (String::new(), Vec::new());
    loop {
        let path = match rve.as_str() {
            "" => "/transactions?limit=2".to_owned(),
            rve => format!("/transactions?limit=2&rve={rve}"),
        };
        let page: Value = s.get_json_as(&path, &key).await;
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        all.extend(items.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        rve = page["rve"].as_str().unwrap().to_owned();
    }
    assert_eq!(all, [t1, t2, t3, t4, t5, t6]);
}

async fn products_delta_sync(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    let put = |id: &str, price: i64| {
        let req = s
            .http
            .put(s.url(&format!("/products/{id}")))
            .bearer_auth(&key)
            .json(&json!({"name": id, "price": price, "currency": "SEK", "vatRate": 2500}));
        async move { req.send().await.unwrap() }
    };
    assert_eq!(put("a", 100).await.status(), 201);
    assert_eq!(put("b", 200).await.status(), 201);
    s.clock.advance(10); // past the RVE safety lag
    let all: Value = s.get("/products", &key).await.json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let rve = all["rve"].as_str().unwrap().to_owned();
    assert_eq!(rve.len(), 14);
    // Time passes; only "b" changes.
    s.clock.advance(60);
    assert_eq!(put("b", 250).await.status(), 200);
    s.clock.advance(10);
    let delta: Value = s
        .get(&format!("/products?rve={rve}"), &key)
        .await
        .json()
        .await
        .unwrap();
    let items = delta["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], "b");
    assert_eq!(items[0]["price"], 250);
    // The same through the URL-path prefix's $R.
    let delta: Value = s
        .get_json(&format!("/OpenApi_1,2,3,4$R{rve}$${key}/Products"))
        .await;
    assert_eq!(delta["items"].as_array().unwrap().len(), 1);
    // Nothing changed since the newest RVE.
    let newest = delta["rve"].as_str().unwrap();
    s.clock.advance(60);
    let none: Value = s
        .get(&format!("/products?rve={newest}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert!(none["items"].as_array().unwrap().is_empty());
    assert_eq!(none["more"], false);
    let newest = none["rve"].as_str().unwrap().to_owned();

    // A change stamped before the RVE a listing handed out, but committed after it (a
    // slow commit, a replica whose clock is behind), still comes with the next delta:
    // the RVE is compared with versions, which follow the order of commits.
    let stamped_earlier = tillgate_server::db::ProductRow {
        corporate_id: CORP_A.into(),
        id: "late".into(),
        body: json!({"name": "late", "price": 5, "currency": "SEK", "vatRate": 2500}).to_string(),
        updated_at: s.state.now() - 600,
        rve: 0,
    };
    s.state
        .store
        .upsert_product(&stamped_earlier, "dev-1", None, None)
        .await
        .unwrap()
        .unwrap();
    let delta: Value = s
        .get_json_as(&format!("/products?rve={newest}"), &key)
        .await;
    let ids: Vec<&str> = delta["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["late"]);
    // The product keeps the time it was changed; only its version moved on.
    assert_eq!(
        delta["items"][0]["updatedAt"],
        tillgate_core::format_rfc3339(stamped_earlier.updated_at).unwrap()
    );
    let newest = delta["rve"].as_str().unwrap().to_owned();

    // An RVE from the future (a register's own clock) was not handed out by the server:
    // the changes come from the start, so none to come can be skipped.
    let future = tillgate_core::Rve::from_unix(s.state.now() + 3_600)
        .unwrap()
        .to_string();
    let ahead: Value = s
        .get_json_as(&format!("/products?rve={future}"), &key)
        .await;
    assert_eq!(ahead["items"].as_array().unwrap().len(), 3);
    assert_eq!(ahead["rve"].as_str().unwrap(), newest);
    // A company with no products yet: the same, and its first product comes.
    let (_, other) = s.register(CORP_B, "dev-9").await;
    let empty: Value = s
        .get_json_as(&format!("/products?rve={future}"), &other)
        .await;
    assert!(empty["items"].as_array().unwrap().is_empty());
    let put_b = s
        .http
        .put(s.url("/products/first"))
        .bearer_auth(&other)
        .json(&json!({"name": "first", "price": 1, "currency": "SEK", "vatRate": 2500}))
        .send()
        .await
        .unwrap();
    assert_eq!(put_b.status(), 201);
    let first: Value = s
        .get_json_as(
            &format!("/products?rve={}", empty["rve"].as_str().unwrap()),
            &other,
        )
        .await;
    assert_eq!(first["items"][0]["id"], "first");
    assert_eq!(put("c", 300).await.status(), 201);
    let after: Value = s
        .get_json_as(
            &format!("/products?rve={}", ahead["rve"].as_str().unwrap()),
            &key,
        )
        .await;
    assert_eq!(after["items"][0]["id"], "c");

    // Many changes in one second: each gets its own version, a page holds 1,000, and
    // following `rve` while `more` is set gives every change exactly once.
    let mut rve = after["rve"].as_str().unwrap().to_owned();
    for i in 0..1_001 {
        let row = tillgate_server::db::ProductRow {
            corporate_id: CORP_A.into(),
            id: format!("bulk-{i:04}"),
            body: json!({"name": "bulk", "price": i, "currency": "SEK", "vatRate": 2500})
                .to_string(),
            updated_at: s.state.now(),
            rve: 0,
        };
        s.state
            .store
            .upsert_product(&row, "dev-1", None, None)
            .await
            .unwrap()
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page: Value = s.get_json_as(&format!("/products?rve={rve}"), &key).await;
        pages += 1;
        for p in page["items"].as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_owned());
        }
        let next = page["rve"].as_str().unwrap().to_owned();
        assert!(next > rve, "the RVE moves forward");
        rve = next;
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(pages, 2);
    let expected: Vec<String> = (0..1_001).map(|i| format!("bulk-{i:04}")).collect();
    assert_eq!(seen, expected);

    // Writers at once (on PostgreSQL each on its own connection): every one is stored
    // with a version of its own, and the next delta has them all.
    let puts = (0..16).map(|i| {
        let id = format!("par-{i:02}");
        let req = s
            .http
            .put(s.url(&format!("/products/{id}")))
            .bearer_auth(&key)
            .json(&json!({"name": id, "price": 1, "currency": "SEK", "vatRate": 2500}));
        async move { req.send().await.unwrap().status().as_u16() }
    });
    for r in futures_join_all(puts).await {
        assert_eq!(r, 201);
    }
    let par: Value = s.get_json_as(&format!("/products?rve={rve}"), &key).await;
    let mut ids: Vec<&str> = par["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let expected: Vec<String> = (0..16).map(|i| format!("par-{i:02}")).collect();
    assert_eq!(ids, expected);

    // Product validation comes from core's rules, fields renamed.
    let r = s
        .http
        .put(s.url("/products/x"))
        .bearer_auth(&key)
        .json(&json!({"name": "", "price": -1, "currency": "sek", "vatRate": 20000}))
        .send()
        .await
        .unwrap();
    let p = problem(r, 400, "invalid_product").await;
    let fields: Vec<&str> = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in ["name", "price", "currency", "vatRate"] {
        assert!(fields.contains(&f), "{fields:?}");
    }
}

/// The smallest activation id of these registers.
fn ids_sorted_first(keys: &[(String, String)]) -> String {
    keys.iter().map(|(a, _)| a.clone()).min().unwrap()
}

/// Runs the futures at once on the test's runtime; their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn bad_input_is_4xx(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, key) = s.register(CORP_A, "dev-1").await;
    let id = a["activationId"].as_str().unwrap();
    let h = &s.http;
    let big = "x".repeat(300 * 1024);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (h.post(s.url("/activations-advanced")).header("content-type", "application/json").body("{not json"), 400, "invalid_json"),
        (h.post(s.url("/activations-advanced")).body("{}"), 415, "unsupported_media_type"),
        (h.post(s.url("/activations-advanced")).json(&json!({"deviceId": 5})), 400, "invalid_body"),
        // An array in place of the object is a body of the wrong shape, like a wrong type.
        (h.post(s.url("/activations-advanced")).json(&json!([])), 400, "invalid_body"),
        (h.post(s.url("/activations-advanced")).json(&json!(["Kassa 1", "dev-9"])), 400, "invalid_body"),
        (h.post(s.url("/activations-advanced")).header("content-type", "application/json").body(format!("{{\"x\":\"{big}\"}}")), 413, "payload_too_large"),
        (h.post(s.url("/activations-advanced")).json(&json!({})), 400, "invalid_activation_request"),
        (h.get(s.url("/activations-advanced")), 405, "method_not_allowed"),
        (h.get(s.url("/nope")), 404, "not_found"),
        (h.get(s.url("/auth/handshake?nonce=")).bearer_auth(&key), 400, "invalid_nonce"),
        (h.get(s.url("/auth/handshake?bogus=1")).bearer_auth(&key), 400, "invalid_query"),
        (h.get(s.url("/auth/handshake")).header("authorization", "Basic abc"), 401, "invalid_credentials"),
        (h.get(s.url("/auth/handshake")).bearer_auth("short"), 401, "api_key_too_short"),
        (h.get(s.url("/auth/handshake")).bearer_auth("DK1.garbage"), 401, "malformed_dynamic_key"),
        (h.get(s.url("/auth/handshake")).bearer_auth("has space in the key 0123456789"), 401, "api_key_invalid_char"),
        (h.post(s.url("/activations/renew")).json(&json!({})), 401, "missing_credentials"),
        (h.post(s.url("/activations/renew")).bearer_auth(&key).json(&json!({"unknown": 1})), 400, "invalid_body"),
        (h.get(s.url("/admin/activations?status=weird")).bearer_auth(ADMIN_KEY), 400, "invalid_status"),
        (h.get(s.url("/admin/activations?limit=0")).bearer_auth(ADMIN_KEY), 400, "invalid_limit"),
        (h.get(s.url("/admin/activations")), 401, "missing_credentials"),
        (h.post(s.url(&format!("/admin/activations/{id}/approve"))).bearer_auth(ADMIN_KEY).body("{bad"), 400, "invalid_body"),
        (h.post(s.url(&format!("/admin/activations/{id}/revoke"))).bearer_auth(ADMIN_KEY).json(&json!({"authorityNotifiedAt": "2030-01-01T00:00:00Z"})), 400, "invalid_decision"),
        (h.post(s.url("/admin/staff")).bearer_auth(ADMIN_KEY).json(&json!({"login": ""})), 400, "invalid_body"),
        (h.post(s.url("/transactions")).bearer_auth(&key).json(&sale(100)), 400, "missing_idempotency_key"),
        (h.post(s.url("/transactions")).bearer_auth(&key).header("Idempotency-Key", "x".repeat(65)).json(&sale(100)), 400, "invalid_idempotency_key"),
        (h.post(s.url("/transactions")).bearer_auth(&key).header("Idempotency-Key", "f").json(&json!({"type": "sale", "currency": "SEK", "total": 1.5, "items": []})), 400, "invalid_body"),
        (h.post(s.url("/transactions")).bearer_auth(&key).header("Idempotency-Key", "f").json(&json!({"type": "sale", "currency": "SEK", "total": 10, "items": [{"name": "a", "quantity": 1, "amount": 5}]})), 400, "invalid_transaction"),
        (h.post(s.url("/transactions")).bearer_auth(&key).header("Idempotency-Key", "f").json(&json!({"type": "gift", "currency": "SEK", "total": 1, "items": []})), 400, "invalid_body"),
        (h.post(s.url("/transactions")).bearer_auth(&key).header("Idempotency-Key", "f").json(&json!({"type": "sale", "currency": "SEK", "total": 1, "items": [[1, "a", 1]]})), 400, "invalid_body"),
        (h.get(s.url("/transactions?rve=2020")).bearer_auth(&key), 400, "url_invalid_rve"),
        (h.get(s.url("/transactions?limit=5000")).bearer_auth(&key), 400, "invalid_limit"),
        (h.get(s.url("/transactions?afterSequence=abc")).bearer_auth(&key), 400, "invalid_query"),
        (h.get(s.url("/transactions/tx_missing")).bearer_auth(&key), 404, "transaction_not_found"),
        (h.get(s.url("/products?rve=99999999999999")).bearer_auth(&key), 400, "url_invalid_rve"),
        (h.put(s.url("/products/bad%20id")).bearer_auth(&key).json(&json!({"name": "a", "price": 1, "currency": "SEK", "vatRate": 0})), 400, "invalid_product"),
        (h.put(s.url("/products/ok")).bearer_auth(&key).json(&json!({"name": "a"})), 400, "invalid_body"),
        // A member the product does not have is refused in a request (answers are read leniently).
        (h.put(s.url("/products/ok")).bearer_auth(&key).json(&json!({"name": "a", "price": 1, "currency": "SEK", "vatRate": 0, "unit": "cup"})), 400, "invalid_body"),
        (h.delete(s.url("/products/ok")).bearer_auth(&key), 405, "method_not_allowed"),
        (h.get(s.url("/OpenApi_1,2,3,4$$a|b/Products")), 400, "url_invalid_character"),
        (h.get(s.url("/Gnap_x$$abc/Products")), 400, "url_invalid_rm_system"),
        (h.get(s.url("/auth/dynamic-key-params")), 400, "invalid_query"),
    ];
    for (req, status, code) in cases {
        let r = req.send().await.unwrap();
        assert!(r.status().as_u16() < 500);
        problem(r, status, code).await;
    }
    // A NUL in a path or query value: PostgreSQL cannot hold it in text (400
    // `invalid_character`), SQLite finds nothing; never the server's fault.
    for (req, sqlite_status) in [
        (h.get(s.url("/transactions/tx%00x")).bearer_auth(&key), 404),
        (h.get(s.url("/products/a%00b")).bearer_auth(&key), 404),
        (h.get(s.url("/auth/dynamic-key-params?login=a%00b")), 200),
    ] {
        let r = req.send().await.unwrap();
        match b {
            Backend::Postgres => {
                problem(r, 400, "invalid_character").await;
            }
            Backend::Sqlite => assert_eq!(r.status().as_u16(), sqlite_status),
        }
    }
}

async fn key_rotation(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    assert_eq!(s.post_tx(&key, "r1", &sale(100)).await.status(), 201);
    let before = trusted(&s).await;
    assert_eq!(before.len(), 1);
    // Rotate (what `tillgate-server admin rotate-key` does) and pick it up.
    let new_key = tillgate_core::generate_signing_key().unwrap();
    s.state
        .store
        .add_signing_key(&new_key, s.clock.now_secs() + 1)
        .await
        .unwrap();
    s.state.refresh_keys().await.unwrap();
    assert_eq!(s.post_tx(&key, "r2", &sale(200)).await.status(), 201);
    let after = trusted(&s).await;
    assert_eq!(after.len(), 2);
    let list: Value = s.get("/transactions", &key).await.json().await.unwrap();
    let receipts: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["receipt"].as_str().unwrap().to_owned())
        .collect();
    // Old receipt signed by the old key, new one by the new key, one chain.
    verify_receipt_chain(&receipts, &after).unwrap();
    assert!(verify_receipt_chain(&receipts, &before).is_err());
    let code: Value = s
        .get("/activations/activation-code", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code["kid"], new_key.kid());
    // Retire the old key: no longer published.
    let old_kid = s
        .state
        .store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid != new_key.kid())
        .unwrap()
        .kid;
    assert!(
        s.state
            .store
            .retire_signing_key(&old_kid, s.clock.now_secs())
            .await
            .unwrap()
    );
    assert!(
        !s.state
            .store
            .retire_signing_key(new_key.kid(), s.clock.now_secs())
            .await
            .unwrap()
    );
    s.state.refresh_keys().await.unwrap();
    let last = trusted(&s).await;
    assert_eq!(last.len(), 1);
    assert!(last.contains(new_key.kid()));
}

/// What the server signs now for a register: a handshake's signed time (with `nonce`),
/// the activation code's descriptor, and the receipt of a new sale (Idempotency-Key
/// `nonce`).
struct SignedNow {
    nonce: String,
    time: String,
    descriptor: String,
    receipt: String,
}

impl SignedNow {
    async fn fetch(s: &Srv, key: &str, nonce: &str) -> SignedNow {
        let hs = s
            .get_json_as(&format!("/auth/handshake?nonce={nonce}"), key)
            .await;
        let code = s.get_json_as("/activations/activation-code", key).await;
        let r = s.post_tx(key, nonce, &sale(100)).await;
        assert_eq!(r.status(), 201);
        let tx: Value = r.json().await.unwrap();
        let signed = SignedNow {
            nonce: nonce.to_owned(),
            time: hs["signedTime"].as_str().unwrap().to_owned(),
            descriptor: code["descriptor"].as_str().unwrap().to_owned(),
            receipt: tx["receipt"].as_str().unwrap().to_owned(),
        };
        assert_eq!(code["kid"].as_str().unwrap(), jws_kid(&signed.descriptor));
        signed
    }

    /// The kid each of the three names (they are all signed by one key).
    fn kid(&self) -> String {
        let kid = jws_kid(&self.time);
        assert_eq!(jws_kid(&self.descriptor), kid);
        assert_eq!(jws_kid(&self.receipt), kid);
        kid
    }

    /// Verifies all three offline as an app trusting `keys` does; the codes of the
    /// failures (none: all verify).
    fn verify(&self, keys: &TrustedKeys, now: i64) -> Vec<&'static str> {
        let opts = VerifyOptions::default();
        [
            verify_server_time(&self.time, keys, Some(&self.nonce)).map(|_| ()),
            verify_descriptor(&self.descriptor, keys, now, &opts).map(|_| ()),
            tillgate_core::verify_receipt(&self.receipt, keys).map(|_| ()),
        ]
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.code()))
        .collect()
    }
}

/// The `kid` of a compact JWS's header.
fn jws_kid(jws: &str) -> String {
    let header = jws.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Every receipt of a register, in order.
async fn all_receipts(s: &Srv, key: &str) -> Vec<String> {
    let list: Value = s
        .get("/transactions?limit=1000", key)
        .await
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["receipt"].as_str().unwrap().to_owned())
        .collect()
}

/// A key published only is in the JWKS at once but signs nothing until it is activated,
/// so apps that trust only the old key go on verifying everything; once activated it
/// signs (and activating the old key again switches back).
async fn staged_key_rotation(db: &TestDb, b: Backend) {
    use tillgate_server::db::KeyChange;
    let s = Srv::start(db, b).await;
    let store = &s.state.store;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    // The app as shipped trusts the first key only.
    let app_v1 = trusted(&s).await;
    assert_eq!(app_v1.len(), 1);
    let first = SignedNow::fetch(&s, &key, "s1").await.kid();
    assert!(app_v1.contains(&first));

    // Publish a key only (what `admin rotate-key --publish-only` does).
    let next = tillgate_core::generate_signing_key().unwrap();
    store
        .add_staged_signing_key(&next, s.clock.now_secs(), None)
        .await
        .unwrap();
    s.state.refresh_keys().await.unwrap();
    // It is published at once: the app update ships with both keys.
    let app_v2 = trusted(&s).await;
    assert_eq!(app_v2.len(), 2);
    assert!(app_v2.contains(next.kid()));
    // It signs nothing: the app that trusts the first key only verifies everything,
    // now and later (a published key has no start of its own).
    for (nonce, advance) in [("s2", 0), ("s3", DAY)] {
        s.clock.advance(advance);
        s.state.refresh_keys().await.unwrap();
        let signed = SignedNow::fetch(&s, &key, nonce).await;
        assert_eq!(signed.kid(), first);
        assert_eq!(signed.verify(&app_v1, s.clock.now_secs()), [] as [&str; 0]);
    }
    // The first key is the only one that can sign: it cannot be retired.
    assert!(
        !store
            .retire_signing_key(&first, s.clock.now_secs())
            .await
            .unwrap()
    );

    // Activated (`admin activate-key`): it signs from now on.
    let now = s.clock.now_secs();
    assert_eq!(
        store
            .activate_signing_key(next.kid(), now, now)
            .await
            .unwrap(),
        KeyChange::Done
    );
    s.state.refresh_keys().await.unwrap();
    let signed = SignedNow::fetch(&s, &key, "s4").await;
    assert_eq!(signed.kid(), next.kid());
    assert_eq!(signed.verify(&app_v2, now), [] as [&str; 0]);
    // An app that was not updated refuses what the new key signs, and says why.
    assert_eq!(
        signed.verify(&app_v1, now),
        ["unknown_kid", "unknown_kid", "unknown_kid"]
    );
    // One receipt chain across the switch.
    let receipts = all_receipts(&s, &key).await;
    assert_eq!(receipts.len(), 4);
    verify_receipt_chain(&receipts, &app_v2).unwrap();
    assert_eq!(trusted(&s).await.len(), 2);

    // Activating the first key again (a second later) switches back.
    s.clock.advance(1);
    let now = s.clock.now_secs();
    assert_eq!(
        store.activate_signing_key(&first, now, now).await.unwrap(),
        KeyChange::Done
    );
    s.state.refresh_keys().await.unwrap();
    let signed = SignedNow::fetch(&s, &key, "s5").await;
    assert_eq!(signed.kid(), first);
    assert_eq!(signed.verify(&app_v1, now), [] as [&str; 0]);

    // Forward again, then the first key is retired: no longer published.
    s.clock.advance(1);
    let now = s.clock.now_secs();
    assert_eq!(
        store
            .activate_signing_key(next.kid(), now, now)
            .await
            .unwrap(),
        KeyChange::Done
    );
    assert!(store.retire_signing_key(&first, now).await.unwrap());
    s.state.refresh_keys().await.unwrap();
    assert_eq!(SignedNow::fetch(&s, &key, "s6").await.kid(), next.kid());
    let last = trusted(&s).await;
    assert_eq!(last.len(), 1);
    assert!(last.contains(next.kid()));
    // A retired key cannot be activated again.
    assert_eq!(
        store.activate_signing_key(&first, now, now).await.unwrap(),
        KeyChange::NoSuchKey
    );
}

/// A key held offline (its public key published, its seed kept off the server) is in
/// the JWKS and trusted by apps shipped with it, cannot sign or be activated until its
/// seed is imported, and after the import and activation signs like any other key.
async fn offline_key_rotation(db: &TestDb, b: Backend) {
    use tillgate_server::db::{KeyChange, KeyImport};
    let s = Srv::start(db, b).await;
    let store = &s.state.store;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    let first = SignedNow::fetch(&s, &key, "o1").await.kid();

    // Made on another machine; only its public key reaches the server.
    let reserve = tillgate_core::generate_signing_key().unwrap();
    let now = s.clock.now_secs();
    assert!(
        store
            .publish_offline_key(&reserve.public_key_bytes(), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .publish_offline_key(&reserve.public_key_bytes(), now)
            .await
            .unwrap(),
        "published twice"
    );
    let rows = store.signing_keys().await.unwrap();
    let row = rows.iter().find(|r| r.kid == reserve.kid()).unwrap();
    assert!(row.seed.is_none());
    s.state.refresh_keys().await.unwrap();
    let app = trusted(&s).await;
    assert!(app.contains(reserve.kid()) && app.contains(&first));
    let jwks: Value = s.get_json("/.well-known/jwks.json").await;
    let published = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == reserve.kid())
        .unwrap();
    assert_eq!(
        published,
        &serde_json::to_value(reserve.public_jwk()).unwrap()
    );
    assert_eq!(SignedNow::fetch(&s, &key, "o2").await.kid(), first);

    // Without its seed it cannot sign: activation is refused, the old key still signs.
    assert_eq!(
        store
            .activate_signing_key(reserve.kid(), now, now)
            .await
            .unwrap(),
        KeyChange::HeldOffline
    );
    assert!(!store.retire_signing_key(&first, now).await.unwrap());
    // Another key's seed is not taken for it.
    let stranger = tillgate_core::generate_signing_key().unwrap();
    assert_eq!(
        store.import_signing_key(&stranger).await.unwrap(),
        KeyImport::NoSuchKey
    );

    // Imported: still published only, until activated.
    assert_eq!(
        store.import_signing_key(&reserve).await.unwrap(),
        KeyImport::Imported
    );
    assert_eq!(
        store.import_signing_key(&reserve).await.unwrap(),
        KeyImport::AlreadyStored
    );
    s.state.refresh_keys().await.unwrap();
    assert_eq!(SignedNow::fetch(&s, &key, "o3").await.kid(), first);
    s.clock.advance(1);
    let now = s.clock.now_secs();
    assert_eq!(
        store
            .activate_signing_key(reserve.kid(), now, now)
            .await
            .unwrap(),
        KeyChange::Done
    );
    assert!(store.retire_signing_key(&first, now).await.unwrap());
    s.state.refresh_keys().await.unwrap();
    let signed = SignedNow::fetch(&s, &key, "o4").await;
    assert_eq!(signed.kid(), reserve.kid());
    // The app shipped before the switch verifies what the reserve key signs.
    assert_eq!(signed.verify(&app, now), [] as [&str; 0]);
    verify_receipt_chain(&all_receipts(&s, &key).await, &app).unwrap();
}

/// A key published with a later signing start signs nothing before it, and signs from
/// the moment the server's clock reaches it, without anyone re-reading the keys.
async fn scheduled_key_rotation(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let store = &s.state.store;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    let app_v1 = trusted(&s).await;
    let first = SignedNow::fetch(&s, &key, "t1").await.kid();

    // `admin rotate-key --signs-from <a day later>`.
    let next = tillgate_core::generate_signing_key().unwrap();
    let start = s.clock.now_secs() + DAY;
    store
        .add_staged_signing_key(&next, s.clock.now_secs(), Some(start))
        .await
        .unwrap();
    s.state.refresh_keys().await.unwrap();
    let app_v2 = trusted(&s).await;
    assert_eq!(app_v2.len(), 2);
    let signed = SignedNow::fetch(&s, &key, "t2").await;
    assert_eq!(signed.kid(), first);
    assert_eq!(signed.verify(&app_v1, s.clock.now_secs()), [] as [&str; 0]);

    // A second before its start: still the first key, which cannot be retired yet.
    s.clock.set(start - 1);
    let signed = SignedNow::fetch(&s, &key, "t3").await;
    assert_eq!(signed.kid(), first);
    assert_eq!(signed.verify(&app_v1, start - 1), [] as [&str; 0]);
    assert!(!store.retire_signing_key(&first, start - 1).await.unwrap());

    // Its start: it signs (the server reads the keys again when a start comes; no
    // refresh here).
    s.clock.set(start);
    let signed = SignedNow::fetch(&s, &key, "t4").await;
    assert_eq!(signed.kid(), next.kid());
    assert_eq!(signed.verify(&app_v2, start), [] as [&str; 0]);
    assert_eq!(
        signed.verify(&app_v1, start),
        ["unknown_kid", "unknown_kid", "unknown_kid"]
    );
    let receipts = all_receipts(&s, &key).await;
    assert_eq!(receipts.len(), 4);
    verify_receipt_chain(&receipts, &app_v2).unwrap();
    // Now the first key can go.
    assert!(store.retire_signing_key(&first, start).await.unwrap());
}

/// The store never leaves no key that can sign: the last such key cannot be retired
/// nor moved to a later start (a key published only, or whose start has not come, does
/// not count), also when two processes change keys at the same moment.
async fn only_a_key_that_can_sign_may_stop_signing(db: &TestDb, _b: Backend) {
    use tillgate_server::db::{KeyChange, Store, signer_at};
    let store = Store::connect(&db.url, 2).await.unwrap();
    store.init(T2030).await.unwrap();
    let a = store.signing_keys().await.unwrap()[0].kid.clone();
    let gen_key = || tillgate_core::generate_signing_key().unwrap();
    let staged = gen_key();
    let b = staged.kid();
    store
        .add_staged_signing_key(&staged, T2030, None)
        .await
        .unwrap();
    let now = T2030 + 10;
    let signer = |at: i64| {
        let store = store.clone();
        async move {
            let keys = store.signing_keys().await.unwrap();
            signer_at(&keys, at).map(|k| k.kid.clone())
        }
    };
    assert_eq!(signer(now).await.as_deref(), Some(a.as_str()));
    // Only `a` can sign: it stays, and stays signing now.
    assert!(!store.retire_signing_key(&a, now).await.unwrap());
    assert_eq!(
        store
            .activate_signing_key(&a, now + 100, now)
            .await
            .unwrap(),
        KeyChange::LastSigningKey
    );
    // Unknown keys.
    assert!(!store.retire_signing_key("nope", now).await.unwrap());
    assert_eq!(
        store.activate_signing_key("nope", now, now).await.unwrap(),
        KeyChange::NoSuchKey
    );
    // A key created by a host whose clock ran 2 h ahead: a start an hour from now is
    // not after its creation time and would read as "at once", so it is refused, and
    // `a` keeps signing.
    let ahead = gen_key();
    store
        .add_staged_signing_key(&ahead, now + 7_200, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .activate_signing_key(ahead.kid(), now + 3_600, now)
            .await
            .unwrap(),
        KeyChange::StartNotAfterCreation
    );
    assert_eq!(signer(now).await.as_deref(), Some(a.as_str()));
    assert!(store.retire_signing_key(ahead.kid(), now).await.unwrap());
    // `b` scheduled: `a` still cannot go before `b`'s start, and can from then on.
    assert_eq!(
        store.activate_signing_key(b, now + 100, now).await.unwrap(),
        KeyChange::Done
    );
    assert_eq!(signer(now + 99).await.as_deref(), Some(a.as_str()));
    assert_eq!(signer(now + 100).await.as_deref(), Some(b));
    assert!(!store.retire_signing_key(&a, now + 99).await.unwrap());
    assert!(store.retire_signing_key(&a, now + 100).await.unwrap());
    assert!(!store.retire_signing_key(&a, now + 100).await.unwrap());
    // Now `b` is the last one.
    assert!(!store.retire_signing_key(b, now + 100).await.unwrap());
    assert_eq!(
        store
            .activate_signing_key(b, now + 200, now + 100)
            .await
            .unwrap(),
        KeyChange::LastSigningKey
    );
    // A key published only does not count.
    let c = gen_key();
    store
        .add_staged_signing_key(&c, now + 100, None)
        .await
        .unwrap();
    assert!(!store.retire_signing_key(b, now + 100).await.unwrap());
    assert!(store.retire_signing_key(c.kid(), now + 100).await.unwrap());

    // Two processes (two replicas, or an operator's CLI and another's) at once: with two
    // keys that can sign, of "retire one" and "retire the other" (or "move the other to
    // a later start") exactly one is done, never both.
    let other = Store::connect(&db.url, 2).await.unwrap();
    for round in 0..8i64 {
        let now = T2030 + 1_000 + round * 10;
        let (x, y) = (gen_key(), gen_key());
        store.add_signing_key(&x, now).await.unwrap();
        store.add_signing_key(&y, now).await.unwrap();
        for k in store.signing_keys().await.unwrap() {
            if k.retired_at.is_none() && k.kid != x.kid() && k.kid != y.kid() {
                assert!(store.retire_signing_key(&k.kid, now).await.unwrap());
            }
        }
        let done = if round % 2 == 0 {
            let (r1, r2) = tokio::join!(
                store.retire_signing_key(x.kid(), now),
                other.retire_signing_key(y.kid(), now)
            );
            [r1.unwrap(), r2.unwrap()]
        } else {
            let (r1, r2) = tokio::join!(
                store.retire_signing_key(x.kid(), now),
                other.activate_signing_key(y.kid(), now + 5, now)
            );
            [r1.unwrap(), r2.unwrap() == KeyChange::Done]
        };
        assert_eq!(done.iter().filter(|d| **d).count(), 1, "round {round}");
        assert!(signer(now).await.is_some(), "round {round}");
    }
    other.close().await;
    store.close().await;
}

async fn rate_limits(db: &TestDb, b: Backend) {
    let mut config = test_config(&db.url);
    config.activation_rate_per_minute = 2;
    config.auth_failure_rate_per_minute = 3;
    // Each part below comes from an address of its own (`X-Forwarded-For`).
    config.trust_forwarded_for = true;
    let s = Srv::start_with(
        db,
        b,
        tillgate_server::ManualClock::new(T2030 + 3600),
        config,
    )
    .await;
    let r = s
        .activate(activation_body(
            CORP_A,
            "d1",
            "2030-01-01T00:00:00Z",
            "2030-06-01T00:00:00Z",
        ))
        .await;
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.unwrap();
    let id = a["activationId"].as_str().unwrap();
    let key = a["apiKey"].as_str().unwrap();
    assert_eq!(s.activate(json!({})).await.status(), 400);
    let r = s
        .activate(activation_body(
            CORP_A,
            "d3",
            "2030-01-01T00:00:00Z",
            "2030-06-01T00:00:00Z",
        ))
        .await;
    assert!(r.headers().get("retry-after").is_some());
    problem(r, 429, "rate_limited").await;

    // Good admin and dynamic keys cost nothing: more of them than the budget all pass.
    assert_eq!(s.admin("approve", id).await.status(), 200);
    for _ in 0..5 {
        assert_eq!(s.get("/admin/activations", ADMIN_KEY).await.status(), 200);
    }
    let cheap = DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let anna = derive_dynamic_key_pair("1,2,3,4", "anna", "correct horse", cheap).unwrap();
    let pk = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(anna.public_key());
    let r = s
        .http
        .post(s.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(
            &json!({"login": "anna", "activationId": id, "publicKey": pk,
                      "memoryKib": 64, "iterations": 1, "parallelism": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let now = s.clock.now_secs();
    let srv = &s;
    let from = |ip: &'static str| {
        move |path: &str, key: &str| {
            srv.http
                .get(srv.url(path))
                .bearer_auth(key)
                .header("x-forwarded-for", ip)
                .send()
        }
    };
    let dynamic = || create_dynamic_api_key(&anna, now).unwrap();
    for _ in 0..5 {
        let get = from("203.0.113.1");
        assert_eq!(
            get("/auth/handshake", dynamic().expose())
                .await
                .unwrap()
                .status(),
            200
        );
    }

    // Wrong API keys spend the budget, then answer 429 instead of 401.
    let get = from("203.0.113.2");
    for i in 0..3 {
        problem(
            get("/auth/handshake", &format!("Wrong-Key-{i:020}"))
                .await
                .unwrap(),
            401,
            "invalid_credentials",
        )
        .await;
    }
    let r = get("/auth/handshake", "Wrong-Key-99999999999999999999")
        .await
        .unwrap();
    assert!(r.headers().get("retry-after").is_some());
    problem(r, 429, "rate_limited").await;
    // A valid API key from that address is still served, however it is sent: tills
    // behind one NAT keep selling while one of them keeps failing.
    for _ in 0..5 {
        assert_eq!(get("/auth/handshake", key).await.unwrap().status(), 200);
    }
    let r = s
        .http
        .get(s.url("/products"))
        .header("x-api-key", key)
        .header("x-forwarded-for", "203.0.113.2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(s.url(&format!("/OpenApi_1,2,3,4$${key}/Products")))
        .header("x-forwarded-for", "203.0.113.2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // So is one sent as `X-Api-Key` beside an `Authorization` header of another scheme
    // (a proxy in front adding `Basic …`): that header is not this server's credential.
    let basic = |key: Option<&str>| {
        let r = s
            .http
            .get(s.url("/products"))
            .header("authorization", "Basic dXNlcjpwYXNzd29yZA==")
            .header("x-forwarded-for", "203.0.113.2");
        match key {
            Some(key) => r.header("x-api-key", key),
            None => r,
        }
        .send()
    };
    assert_eq!(basic(Some(key)).await.unwrap().status(), 200);
    // Alone it is still refused, and counted (here, past the budget: 429).
    problem(basic(None).await.unwrap(), 429, "rate_limited").await;
    // Staff keys have a budget of their own: a till failing with a wrong API key does
    // not lock its shop's staff out.
    assert_eq!(
        get("/auth/handshake", dynamic().expose())
            .await
            .unwrap()
            .status(),
        200
    );
    // The admin key has a budget of its own: the registers' failures do not spend it.
    assert_eq!(
        get("/admin/activations", ADMIN_KEY).await.unwrap().status(),
        200
    );
    for i in 0..3 {
        let r = get("/admin/activations", &format!("Wrong-Admin-Key-{i:020}"));
        problem(r.await.unwrap(), 401, "invalid_credentials").await;
    }
    // Spent, a good admin key is refused before its check as well; the registers' keys
    // from that address are served as before.
    problem(
        get("/admin/activations", ADMIN_KEY).await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(get("/auth/handshake", key).await.unwrap().status(), 200);
    // Another address has its own budget.
    assert_eq!(
        from("203.0.113.3")("/admin/activations", ADMIN_KEY)
            .await
            .unwrap()
            .status(),
        200
    );

    // A burst of wrong dynamic keys at once: no more of them are checked than the
    // budget allows (the rest are refused before their check), whatever the interleaving.
    // This is the part that proves it. Each check waits on the database (the staff
    // login's row), so the burst's checks overlap, and the failed-authentication counter
    // counts the checks made: a budget only looked at before the check and paid after a
    // failure would have checked most of the burst (answering the late ones 429 all the
    // same, so the statuses alone would not tell). On PostgreSQL the staff table is
    // held locked while the burst arrives, so all the checks under way wait together
    // whatever the timing; SQLite's readers cannot be held back by another connection,
    // there the checks overlap on their own.
    let failures = || {
        s.state
            .metrics
            .auth_failures
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let failures_before = failures();
    let wrong = derive_dynamic_key_pair("1,2,3,4", "anna", "wrong", cheap).unwrap();
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let http = s.http.clone();
            let url = s.url("/auth/handshake");
            let dk = create_dynamic_api_key(&wrong, now).unwrap();
            async move {
                http.get(url)
                    .bearer_auth(dk.expose())
                    .header("x-forwarded-for", "203.0.113.4")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .collect();
    let lock = match b {
        Backend::Postgres => {
            let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE staff IN ACCESS EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            Some((pool, tx))
        }
        Backend::Sqlite => None,
    };
    let burst = tokio::spawn(futures_join_all(burst.into_iter()));
    if let Some((pool, tx)) = lock {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        tx.rollback().await.unwrap();
        pool.close().await;
    }
    let statuses = burst.await.unwrap();
    let checked = statuses.iter().filter(|&&c| c == 401).count();
    let refused = statuses.iter().filter(|&&c| c == 429).count();
    assert!((1..=3).contains(&checked), "{statuses:?}");
    assert_eq!(checked + refused, 12, "{statuses:?}");
    assert_eq!(
        failures() - failures_before,
        checked as u64,
        "checks made: {statuses:?}"
    );
    // Guessable credentials are refused before they are checked, even good ones; the
    // registers' API keys from that address are served as before.
    let get = from("203.0.113.4");
    let r = get("/auth/handshake", dynamic().expose()).await.unwrap();
    assert!(r.headers().get("retry-after").is_some());
    problem(r, 429, "rate_limited").await;
    assert_eq!(get("/auth/handshake", key).await.unwrap().status(), 200);
    // The same burst of wrong admin keys gets the same answers. This documents the
    // behaviour but cannot prove the token is taken before the check: the admin key is
    // checked without waiting on anything, so even a budget paid after the check would
    // let exactly its size through.
    let burst: Vec<_> = (0..12)
        .map(|i| {
            let http = s.http.clone();
            let url = s.url("/admin/activations");
            async move {
                http.get(url)
                    .bearer_auth(format!("Wrong-Admin-Key-{i:020}"))
                    .header("x-forwarded-for", "203.0.113.5")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .collect();
    let statuses = futures_join_all(burst.into_iter()).await;
    let checked = statuses.iter().filter(|&&c| c == 401).count();
    let refused = statuses.iter().filter(|&&c| c == 429).count();
    assert!((1..=3).contains(&checked), "{statuses:?}");
    assert_eq!(checked + refused, 12, "{statuses:?}");
    // And the register's API key from the burst's address still works.
    assert_eq!(
        from("203.0.113.4")("/auth/handshake", key)
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Correct staff keys whose requests time out while storage is slow (503
/// `handler_timeout`) do not use up their address's failed-authentication budget: the
/// token each took before its check goes back when the request is dropped. PostgreSQL
/// only, where a test can hold the staff table locked (a SQLite reader is never blocked
/// by a writer); the guard itself is unit-tested in `auth`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_keys_timing_out_keep_the_budget_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres, "staff_keys_timing_out").await else {
        return;
    };
    let mut config = test_config(&db.url);
    config.auth_failure_rate_per_minute = 2;
    config.request_timeout_secs = 1;
    config.trust_forwarded_for = true;
    let s = Srv::start_with(
        &db,
        Backend::Postgres,
        tillgate_server::ManualClock::new(T2030 + 3600),
        config,
    )
    .await;
    let (a, _) = s.register(CORP_A, "dev-1").await;
    let cheap = DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let anna = derive_dynamic_key_pair("1,2,3,4", "anna", "correct horse", cheap).unwrap();
    let pk = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(anna.public_key());
    let r = s
        .http
        .post(s.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(
            &json!({"login": "anna", "activationId": a["activationId"], "publicKey": pk,
                      "memoryKib": 64, "iterations": 1, "parallelism": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let now = s.clock.now_secs();
    let handshake = || {
        s.http
            .get(s.url("/auth/handshake"))
            .bearer_auth(create_dynamic_api_key(&anna, now).unwrap().expose())
            .header("x-forwarded-for", "203.0.113.9")
            .send()
    };
    // Slow storage: the staff login's row cannot be read until the lock is released.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE staff IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    // More requests, one after the other, than the budget has tokens: each times out,
    // none is refused for the budget.
    for _ in 0..3 {
        problem(handshake().await.unwrap(), 503, "handler_timeout").await;
    }
    lock.rollback().await.unwrap();
    pool.close().await;
    // The whole budget is left: the correct key is served, and a wrong one after it is
    // still answered 401, not 429.
    assert_eq!(handshake().await.unwrap().status(), 200);
    let wrong = derive_dynamic_key_pair("1,2,3,4", "anna", "wrong", cheap).unwrap();
    let r = s
        .http
        .get(s.url("/auth/handshake"))
        .bearer_auth(create_dynamic_api_key(&wrong, now).unwrap().expose())
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn ops_endpoints(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (_, key) = s.register(CORP_A, "dev-1").await;
    assert_eq!(s.post_tx(&key, "m1", &sale(100)).await.status(), 201);
    let h = &s.http;
    assert_eq!(h.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(h.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    let r = h
        .get(s.url("/metrics"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "abc-123");
    let m = r.text().await.unwrap();
    assert!(m.contains("tillgate_transactions_committed_total 1"), "{m}");
    assert!(
        m.contains(
            "tillgate_http_requests_total{method=\"POST\",route=\"/transactions\",status=\"201\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains("tillgate_problems_total"));
    // Every metric is in server/README.md's table, and every metric there exists.
    let served: std::collections::BTreeSet<String> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let documented: std::collections::BTreeSet<String> = include_str!("../README.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `tillgate_"))
        .filter_map(|l| l.split(['`', '{']).next())
        .map(|name| format!("tillgate_{name}"))
        .collect();
    assert_eq!(served, documented, "/metrics and server/README.md's table");
    let doc: Value = h
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/activations-advanced",
        "/auth/handshake",
        "/transactions",
        "/products/{id}",
        "/admin/activations/{activationId}/approve",
        "/.well-known/jwks.json",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from openapi");
    }
    let docs = h
        .get(s.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(docs.contains("/openapi.json"));
    // Writers stopped (here by a shutdown; a defect would do the same): sales cannot be
    // stored, so the process says it is not ready.
    s.state.shutdown().await;
    problem(
        h.get(s.url("/readyz")).send().await.unwrap(),
        503,
        "not_ready",
    )
    .await;
    assert_eq!(s.post_tx(&key, "m2", &sale(100)).await.status(), 503);
}

trait NowSecs {
    fn now_secs(&self) -> i64;
}
impl NowSecs for tillgate_server::ManualClock {
    fn now_secs(&self) -> i64 {
        tillgate_server::Clock::now(self)
    }
}

/// `audit` (`admin verify-receipts`) finds stored chains intact, then each kind of
/// tampering with the stored transactions at the right sequence number with its code;
/// once the rows are put back, the chains are intact again.
async fn receipt_audit_finds_each_tampering(db: &TestDb, b: Backend) {
    use tillgate_server::audit::{AuditOptions, RegisterAudit, audit, audit_register};
    let s = Srv::start(db, b).await;
    let (a, key_a) = s.register(CORP_A, "dev-1").await;
    let (_, key_b) = s.register(CORP_A, "dev-2").await;
    let a_id = a["activationId"].as_str().unwrap().to_owned();
    for i in 1..=7 {
        assert_eq!(
            s.post_tx(&key_a, &format!("a-{i}"), &sale(100 * i))
                .await
                .status(),
            201
        );
    }
    for i in 1..=3 {
        assert_eq!(
            s.post_tx(&key_b, &format!("b-{i}"), &sale(100 * i))
                .await
                .status(),
            201
        );
    }
    let store = &s.state.store;
    let run = || async {
        let mut seen = Vec::new();
        let summary = audit(store, AuditOptions::default(), |r: &RegisterAudit| {
            seen.push(r.clone());
            Ok(())
        })
        .await
        .unwrap();
        (summary, seen)
    };
    let (summary, seen) = run().await;
    assert_eq!(
        (summary.registers, summary.transactions, summary.broken),
        (2, 10, 0)
    );
    assert!(
        seen.iter()
            .all(|r| r.status == "intact" && r.broken.is_none()),
        "{seen:?}"
    );
    let keys = {
        let mut k = TrustedKeys::new();
        let jwks: Value = s.get_json("/.well-known/jwks.json").await;
        for jwk in jwks["keys"].as_array().unwrap() {
            k.add_jwk(&serde_json::from_value(jwk.clone()).unwrap())
                .unwrap();
        }
        k
    };
    let head = store.register_chain_head(&a_id).await.unwrap().unwrap();
    assert_eq!(head.seq, 7);
    // Pages of three receipts: the chain is followed across pages.
    let paged = audit_register(store, &keys, &head, 3).await.unwrap();
    assert_eq!((paged.status, paged.transactions), ("intact", 7));
    // Rows committed after the head was read are left for the next audit.
    let rows = store.export_txs(Some(&a_id), 0, 100).await.unwrap();
    let mut earlier = head.clone();
    earlier.seq = 5;
    earlier.head = tillgate_core::receipt_link(&rows[4].receipt);
    earlier.rve = rows[4].rve;
    let early = audit_register(store, &keys, &earlier, 2).await.unwrap();
    assert_eq!((early.status, early.transactions), ("intact", 5));

    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let set = |column: &'static str, seq: i64, value: String| {
        let (pool, a_id) = (pool.clone(), a_id.clone());
        async move {
            let sql = format!(
                "UPDATE transactions SET {column} = $1 WHERE activation_id = $2 AND seq = $3"
            );
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(value)
                .bind(a_id)
                .bind(seq)
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(r.rows_affected(), 1);
        }
    };
    let delete = |seq: i64| {
        let (pool, a_id) = (pool.clone(), a_id.clone());
        async move {
            sqlx::query("DELETE FROM transactions WHERE activation_id = $1 AND seq = $2")
                .bind(a_id)
                .bind(seq)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    // The admin's audit of one register over HTTP.
    let audit_http = |id: String| {
        let (http, url) = (
            s.http.clone(),
            s.url(&format!("/admin/activations/{id}/audit")),
        );
        async move {
            let r = http.get(url).bearer_auth(ADMIN_KEY).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let b_id = seen
        .iter()
        .find(|r| r.activation_id != a_id)
        .unwrap()
        .activation_id
        .clone();
    let intact = audit_http(a_id.clone()).await;
    assert_eq!(
        (
            &intact["status"],
            &intact["transactions"],
            &intact["activationId"]
        ),
        (&json!("intact"), &json!(7), &json!(a_id))
    );
    assert!(intact.get("broken").is_none(), "{intact}");
    problem(
        s.http
            .get(s.url(&format!("/admin/activations/{a_id}/audit")))
            .send()
            .await
            .unwrap(),
        401,
        "missing_credentials",
    )
    .await;
    problem(
        s.http
            .get(s.url("/admin/activations/no-such-register/audit"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap(),
        404,
        "activation_not_found",
    )
    .await;
    // The finding for register A, and B still intact; the HTTP audit finds the same.
    let finding = || async {
        let (summary, seen) = run().await;
        assert_eq!((summary.registers, summary.broken), (2, 1), "{seen:?}");
        let a = seen.iter().find(|r| r.activation_id == a_id).unwrap();
        assert_eq!(a.status, "broken");
        let f = a.broken.clone().unwrap();
        let http = audit_http(a_id.clone()).await;
        assert_eq!(http["status"], "broken", "{http}");
        assert_eq!(
            (
                &http["broken"]["seq"],
                &http["broken"]["code"],
                &http["transactions"]
            ),
            (&json!(f.seq), &json!(f.code), &json!(a.transactions)),
            "{http}"
        );
        assert_eq!(audit_http(b_id.clone()).await["status"], "intact");
        (f.seq, f.code, a.transactions)
    };
    let row = |seq: i64| rows[seq as usize - 1].clone();

    // A stored transaction changed: an amount, or only an item's name.
    set("body", 4, row(4).body.replace("400", "40")).await;
    assert_eq!(finding().await, (4, "transaction_mismatch", 0));
    set("body", 4, row(4).body.replace("Kaffe", "Te")).await;
    assert_eq!(finding().await, (4, "transaction_mismatch", 0));
    set("body", 4, row(4).body).await;
    // A receipt signed with the server's own key whose total is not its transaction's
    // (what a server fault could store).
    let server_key = {
        let k = store.signing_keys().await.unwrap().remove(0);
        let seed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k.seed.unwrap())
            .unwrap();
        tillgate_core::SigningKey::from_seed_slice(&seed).unwrap()
    };
    let mut claims = tillgate_core::decode_receipt_unverified(&row(7).receipt).unwrap();
    claims.total += 1;
    set(
        "receipt",
        7,
        tillgate_core::sign_receipt(&claims, &server_key).unwrap(),
    )
    .await;
    assert_eq!(finding().await, (7, "transaction_mismatch", 0));
    set("receipt", 7, row(7).receipt).await;
    // A receipt taken from another register.
    let b_rows = store
        .export_txs(
            Some(
                &seen[1 - seen.iter().position(|r| r.activation_id == a_id).unwrap()].activation_id,
            ),
            0,
            10,
        )
        .await
        .unwrap();
    set("receipt", 5, b_rows[1].receipt.clone()).await;
    assert_eq!(finding().await.0, 5);
    set("receipt", 5, row(5).receipt).await;
    // A receipt's signature altered.
    let r2 = row(2).receipt;
    let (head_payload, sig) = r2.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    set(
        "receipt",
        2,
        format!("{head_payload}.{flipped}{}", &sig[1..]),
    )
    .await;
    assert_eq!(finding().await.1, "bad_signature");
    set("receipt", 2, row(2).receipt).await;
    // A transaction removed from the middle, then from the end.
    delete(3).await;
    assert_eq!(finding().await, (4, "receipt_chain_broken", 0));
    insert_tx_row(&pool, &row(3)).await;
    delete(7).await;
    assert_eq!(finding().await, (7, "chain_head_mismatch", 6));
    insert_tx_row(&pool, &row(7)).await;
    // The chain head set back two transactions: they would be hidden from audits.
    set_chain_head(&pool, &a_id, 5, &row(5).receipt).await;
    assert_eq!(finding().await, (6, "chain_head_mismatch", 5));
    set_chain_head(&pool, &a_id, 7, &row(7).receipt).await;
    // Versions (not signed) that delta sync could miss a sale by: one not above the one
    // before it, and a register's newest that is not its last transaction's.
    let set_rve = |sql: &'static str, v: i64, seq: i64| {
        let (pool, a_id) = (pool.clone(), a_id.clone());
        async move {
            let r = sqlx::query(sql)
                .bind(v)
                .bind(a_id)
                .bind(seq)
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(r.rows_affected(), 1);
        }
    };
    let tx_rve = "UPDATE transactions SET rve = $1 WHERE activation_id = $2 AND seq = $3";
    let head_rve = "UPDATE activations SET chain_rve = $1 WHERE id = $2 AND chain_seq = $3";
    set_rve(tx_rve, row(3).rve, 4).await;
    assert_eq!(finding().await, (4, "version_mismatch", 0));
    set_rve(tx_rve, row(4).rve, 4).await;
    set_rve(head_rve, row(7).rve + 5, 7).await;
    assert_eq!(finding().await, (7, "version_mismatch", 7));
    set_rve(head_rve, row(7).rve, 7).await;
    assert_eq!(run().await.0.broken, 0);
    // A changed transaction with a receipt signed again, by a key this server never had.
    let mut claims = tillgate_core::decode_receipt_unverified(&row(6).receipt).unwrap();
    let mut tx: tillgate_core::Transaction = serde_json::from_str(&row(6).body).unwrap();
    tx.total = 1;
    tx.items[0].amount = 1;
    claims.txh = tillgate_core::transaction_hash(&tx);
    claims.total = 1;
    let forger = tillgate_core::SigningKey::from_seed(&[66; 32]);
    set("body", 6, serde_json::to_string(&tx).unwrap()).await;
    set("txh", 6, claims.txh.clone()).await;
    set(
        "receipt",
        6,
        tillgate_core::sign_receipt(&claims, &forger).unwrap(),
    )
    .await;
    assert_eq!(finding().await, (6, "unknown_kid", 0));
    // The same forger who also adds their key to the database and signs the rest of
    // the chain again: the database's keys cannot tell, the published ones can.
    let mut seven = tillgate_core::decode_receipt_unverified(&row(7).receipt).unwrap();
    seven.prev =
        tillgate_core::receipt_link(&tillgate_core::sign_receipt(&claims, &forger).unwrap());
    let seven = tillgate_core::sign_receipt(&seven, &forger).unwrap();
    set("receipt", 7, seven.clone()).await;
    set_chain_head(&pool, &a_id, 7, &seven).await;
    sqlx::query(
        "INSERT INTO signing_keys (kid, seed, public_key, created_at) VALUES ($1, 'x', $2, 0)",
    )
    .bind(forger.kid())
    .bind(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forger.public_key_bytes()))
    .execute(&pool)
    .await
    .unwrap();
    let (summary, _) = run().await;
    assert_eq!(
        summary.broken, 0,
        "the database's keys include the forger's"
    );
    assert_eq!(summary.trusted_keys, "database");
    let mut seen = Vec::new();
    let given_keys = AuditOptions {
        trusted: Some(keys.clone()),
        ..AuditOptions::default()
    };
    let given = audit(store, given_keys, |r: &RegisterAudit| {
        seen.push(r.clone());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!((given.broken, given.trusted_keys), (1, "given"));
    let a = seen.iter().find(|r| r.activation_id == a_id).unwrap();
    assert_eq!(
        a.broken.as_ref().map(|f| (f.seq, f.code)),
        Some((6, "unknown_kid"))
    );
    sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
        .bind(forger.kid())
        .execute(&pool)
        .await
        .unwrap();
    set("body", 6, row(6).body).await;
    set("txh", 6, row(6).txh).await;
    set("receipt", 6, row(6).receipt).await;
    set("receipt", 7, row(7).receipt).await;
    set_chain_head(&pool, &a_id, 7, &row(7).receipt).await;

    // A transaction of the register outside its chain (sequence 0), then one of a
    // register that is not stored (foreign keys off for the one connection).
    let mut extra = row(3);
    extra.id = "tx_extra_0".into();
    extra.idempotency_key = "extra-0".into();
    extra.seq = 0;
    insert_tx_row(&pool, &extra).await;
    assert_eq!(finding().await, (0, "unchained_transaction", 7));
    sqlx::query("DELETE FROM transactions WHERE id = 'tx_extra_0'")
        .execute(&pool)
        .await
        .unwrap();
    {
        let mut conn = pool.acquire().await.unwrap();
        let fk_off = match b {
            Backend::Sqlite => "PRAGMA foreign_keys = OFF",
            Backend::Postgres => "SET session_replication_role = replica",
        };
        sqlx::raw_sql(fk_off).execute(&mut *conn).await.unwrap();
        sqlx::query(
            "INSERT INTO transactions (id, activation_id, idempotency_key, seq, created_at, \
             body, txh, receipt) VALUES ('tx_ghost', 'act_ghost', 'g', 1, 0, '{}', 'x', 'x')",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let (summary, seen) = run().await;
    assert_eq!((summary.registers, summary.broken), (3, 1));
    let ghost = seen
        .iter()
        .find(|r| r.activation_id == "act_ghost")
        .unwrap();
    assert_eq!(
        ghost.broken.as_ref().map(|f| (f.seq, f.code)),
        Some((1, "unknown_register"))
    );
    sqlx::query("DELETE FROM transactions WHERE id = 'tx_ghost'")
        .execute(&pool)
        .await
        .unwrap();

    let (summary, _) = run().await;
    assert_eq!(
        (summary.registers, summary.transactions, summary.broken),
        (2, 10, 0)
    );
    pool.close().await;

    // The CLI's read-only store: the same audit, and a write through it is refused.
    let ro = tillgate_server::db::Store::connect_read_only(&db.url)
        .await
        .unwrap();
    let summary = audit(&ro, AuditOptions::default(), |_: &RegisterAudit| Ok(()))
        .await
        .unwrap();
    assert_eq!(
        (summary.registers, summary.transactions, summary.broken),
        (2, 10, 0)
    );
    let key = tillgate_core::SigningKey::from_seed(&[9; 32]);
    assert!(ro.add_signing_key(&key, T2030).await.is_err());
    ro.close().await;
    assert_eq!(store.public_signing_keys().await.unwrap().len(), 1);
}

/// Staff logins through the admin API: adding one answers 201 and an identical repeat
/// 200; a login enabled at another register, or with another key, is changed only with
/// `replace` (409 `staff_login_in_use`), and never moved with the key it has (409
/// `staff_key_reused`); a disabled login's dynamic keys fail as an unknown login's do
/// (`bad_signature`, default parameters), disabling again changes nothing, an unknown
/// login is 404 `staff_not_found`; a disabled login comes back with a new key only.
async fn staff_logins_are_disabled_moved_and_enabled_again(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, _) = s.register(CORP_A, "dev-1").await;
    let (other, _) = s.register(CORP_A, "dev-2").await;
    let (a, other) = (
        a["activationId"].as_str().unwrap().to_owned(),
        other["activationId"].as_str().unwrap().to_owned(),
    );
    let cheap = DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let pair = |login: &str, password: &str| {
        derive_dynamic_key_pair("1,2,3,4", login, password, cheap).unwrap()
    };
    let b64 = |p: &tillgate_core::DynamicKeyPair| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p.public_key())
    };
    let add = |login: &str, activation: &str, pk: String, replace: Option<bool>| {
        let mut body = json!({"login": login, "activationId": activation, "publicKey": pk,
            "memoryKib": 64, "iterations": 1, "parallelism": 1});
        if let Some(r) = replace {
            body["replace"] = json!(r);
        }
        s.http
            .post(s.url("/admin/staff"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
    };
    let disable = |login: &str| {
        s.http
            .post(s.url(&format!("/admin/staff/{login}/disable")))
            .bearer_auth(ADMIN_KEY)
            .send()
    };
    // The register a dynamic key gets in, or the problem's code.
    let handshake = |p: &tillgate_core::DynamicKeyPair| {
        let dk = create_dynamic_api_key(p, s.clock.now_secs()).unwrap();
        let s = &s;
        async move {
            let r = s.get("/auth/handshake", dk.expose()).await;
            let ok = r.status() == 200;
            let body: Value = r.json().await.unwrap();
            if ok {
                body["activationId"].as_str().unwrap().to_owned()
            } else {
                body["code"].as_str().unwrap().to_owned()
            }
        }
    };

    let first = pair("anna", "first password");
    let r = add("anna", &a, b64(&first), None).await.unwrap();
    assert_eq!(r.status(), 201);
    let out: Value = r.json().await.unwrap();
    assert_eq!(
        (&out["login"], &out["activationId"], out.get("disabledAt")),
        (&json!("anna"), &json!(a), None)
    );
    assert_eq!(handshake(&first).await, a);
    // The same again: nothing changes.
    let r = add("anna", &a, b64(&first), None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(handshake(&first).await, a);

    // Enabled at `a`: not moved, nor given another key, unless asked.
    let second = pair("anna", "second password");
    let p = problem(
        add("anna", &other, b64(&second), None).await.unwrap(),
        409,
        "staff_login_in_use",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains(&a), "{p}");
    problem(
        add("anna", &a, b64(&second), Some(false)).await.unwrap(),
        409,
        "staff_login_in_use",
    )
    .await;
    // Other parameters for the same key are a change too.
    let r = s
        .http
        .post(s.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"login": "anna", "activationId": a, "publicKey": b64(&first)}))
        .send()
        .await
        .unwrap();
    problem(r, 409, "staff_login_in_use").await;
    // Even when asked: no app derives that key with the other parameters.
    let r = s
        .http
        .post(s.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(
            &json!({"login": "anna", "activationId": a, "publicKey": b64(&first),
            "replace": true}),
        )
        .send()
        .await
        .unwrap();
    problem(r, 409, "staff_key_reused").await;
    // Moved with the key it has: whoever holds the seed would follow it.
    problem(
        add("anna", &other, b64(&first), Some(true)).await.unwrap(),
        409,
        "staff_key_reused",
    )
    .await;
    assert_eq!(handshake(&first).await, a, "nothing changed");
    // Moved with a new password, as asked.
    let r = add("anna", &other, b64(&second), Some(true)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(handshake(&first).await, "bad_signature");
    assert_eq!(handshake(&second).await, other);

    // Disabled: refused as an unknown login is, and its parameters are the defaults.
    let r = disable("anna").await.unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["activationId"], json!(other));
    let disabled_at = out["disabledAt"].as_str().unwrap().to_owned();
    assert_eq!(handshake(&second).await, "bad_signature");
    let params: Value = s.get_json("/auth/dynamic-key-params?login=anna").await;
    assert_eq!(params["memoryKib"], DynamicKeyParams::default().memory_kib);
    // Again: the same answer, the first time kept.
    s.clock.advance(60);
    let again: Value = disable("anna").await.unwrap().json().await.unwrap();
    assert_eq!(again["disabledAt"], json!(disabled_at));
    problem(disable("nobody").await.unwrap(), 404, "staff_not_found").await;
    problem(
        s.http
            .post(s.url("/admin/staff/anna/disable"))
            .send()
            .await
            .unwrap(),
        401,
        "missing_credentials",
    )
    .await;

    // Enabled again only with a new key, wherever it goes.
    for (at, replace) in [(&other, None), (&other, Some(true)), (&a, Some(true))] {
        problem(
            add("anna", at, b64(&second), replace).await.unwrap(),
            409,
            "staff_key_reused",
        )
        .await;
    }
    assert_eq!(handshake(&second).await, "bad_signature");
    // Disabled at `other`: moved elsewhere only when asked, as an enabled login is.
    let third = pair("anna", "third password");
    let p = problem(
        add("anna", &a, b64(&third), None).await.unwrap(),
        409,
        "staff_login_in_use",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains(&other), "{p}");
    let r = add("anna", &a, b64(&third), Some(true)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap().get("disabledAt").is_none());
    assert_eq!(handshake(&third).await, a);
    assert_eq!(handshake(&second).await, "bad_signature");

    // A login with a `/` or a space, percent-encoded in the path.
    let odd = pair("kassa/1 b", "password");
    assert_eq!(
        add("kassa/1 b", &a, b64(&odd), None)
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(handshake(&odd).await, a);
    let r = disable("kassa%2F1%20b").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(handshake(&odd).await, "bad_signature");
    assert_eq!(handshake(&third).await, a, "another login is untouched");

    // The same new login added four times at once: created once, the others find it so.
    let carl = b64(&pair("carl", "password"));
    let tries = (0..4).map(|_| add("carl", &a, carl.clone(), None));
    let mut statuses: Vec<u16> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 201]);
}

/// A database failure during a register's audit answers 503 `storage_unavailable`, as
/// everywhere else, not 500.
async fn register_audit_answers_503_when_the_database_fails(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, key) = s.register(CORP_A, "dev-1").await;
    let id = a["activationId"].as_str().unwrap();
    assert_eq!(s.post_tx(&key, "t-1", &sale(100)).await.status(), 201);
    let path = format!("/admin/activations/{id}/audit");
    assert_eq!(s.get_json_as(&path, ADMIN_KEY).await["status"], "intact");
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let rename = |from: &str, to: &str| {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {from} RENAME TO {to}"
        )))
        .execute(&pool)
    };
    rename("transactions", "transactions_away").await.unwrap();
    let r = s.get(&path, ADMIN_KEY).await;
    let result = problem(r, 503, "storage_unavailable").await;
    rename("transactions_away", "transactions").await.unwrap();
    pool.close().await;
    let _ = result;
    assert_eq!(s.get_json_as(&path, ADMIN_KEY).await["status"], "intact");
}

/// An activation sent again with its `Idempotency-Key` (its answer was lost) is answered
/// with the registration the first one created and a fresh key, which alone works; never
/// a second registration, also when the repeats arrive at once. A key names one request,
/// must be hard to guess, and stops being repeatable once the registration is decided or
/// a day old.
async fn activations_repeat_with_their_idempotency_key(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let body = |device: &str| {
        activation_body(
            CORP_A,
            device,
            "2030-01-01T00:00:00Z",
            "2030-07-01T00:00:00Z",
        )
    };
    let send = |body: Value, key: &str| {
        s.http
            .post(s.url("/activations-advanced"))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let srv = &s;
    let pending = |device: &str| {
        let device = device.to_owned();
        async move {
            let list = srv
                .get_json_as("/admin/activations?status=pending&limit=500", ADMIN_KEY)
                .await;
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["deviceId"] == device.as_str())
                .count()
        }
    };
    let k1 = "0123456789abcdef0123456789abcdef";
    let first = send(body("rep-1"), k1).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    // The answer was lost; the app sends again a moment later.
    s.clock.advance(2);
    let again = send(body("rep-1"), k1).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    for member in [
        "activationId",
        "productionNumber",
        "status",
        "validFrom",
        "validTo",
        "corporateId",
    ] {
        assert_eq!(again[member], first[member], "{member}");
    }
    assert_ne!(again["apiKey"], first["apiKey"]);
    // Only the newest key works; one registration.
    let first_key = first["apiKey"].as_str().unwrap();
    let new_key = again["apiKey"].as_str().unwrap();
    problem(
        s.get("/auth/handshake", first_key).await,
        401,
        "invalid_credentials",
    )
    .await;
    problem(
        s.get("/auth/handshake", new_key).await,
        403,
        "pending_approval",
    )
    .await;
    assert_eq!(pending("rep-1").await, 1);

    // The key names one request: another body with it is refused, nothing changes.
    let p = problem(
        send(body("rep-other"), k1).await.unwrap(),
        422,
        "idempotency_key_reused",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("different"));
    problem(
        s.get("/auth/handshake", new_key).await,
        403,
        "pending_approval",
    )
    .await;
    assert_eq!(pending("rep-other").await, 0);

    // Guessable or malformed keys are refused before anything is stored.
    for bad in [
        "short-key",
        &"k".repeat(65),
        "0123456789abcdef 0123456789abcdef",
    ] {
        problem(
            send(body("rep-bad"), bad).await.unwrap(),
            400,
            "invalid_idempotency_key",
        )
        .await;
    }
    assert_eq!(pending("rep-bad").await, 0);

    // Repeats arriving at once (the same second): one registration, and every key handed
    // out works, since the app may hold any of those answers; a repeat arriving later
    // leaves only its own.
    let k2 = "fedcba9876543210fedcba9876543210";
    let answers = futures_join_all((0..6).map(|_| {
        let (http, url, body) = (
            s.http.clone(),
            s.url("/activations-advanced"),
            body("rep-2"),
        );
        async move {
            let r = http
                .post(url)
                .header("idempotency-key", k2)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        }
    }))
    .await;
    let id = answers[0]["activationId"].clone();
    assert!(answers.iter().all(|a| a["activationId"] == id));
    assert_eq!(pending("rep-2").await, 1);
    let handshakes = |answers: Vec<Value>| async move {
        let mut codes = Vec::new();
        for a in &answers {
            let r = srv
                .get("/auth/handshake", a["apiKey"].as_str().unwrap())
                .await;
            codes.push(r.status().as_u16());
        }
        codes
    };
    assert_eq!(handshakes(answers.clone()).await, [403; 6]);
    s.clock.advance(1);
    let last: Value = send(body("rep-2"), k2).await.unwrap().json().await.unwrap();
    assert_eq!(last["activationId"], id);
    assert_eq!(handshakes(answers).await, [401; 6]);
    assert_eq!(handshakes(vec![last]).await, [403]);

    // Once decided, the key is not issued again; the approved key keeps working.
    let id = first["activationId"].as_str().unwrap();
    assert_eq!(s.admin("approve", id).await.status(), 200);
    let p = problem(
        send(body("rep-1"), k1).await.unwrap(),
        409,
        "activation_not_repeatable",
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("new Idempotency-Key")
    );
    assert_eq!(s.get("/auth/handshake", new_key).await.status(), 200);

    // Nor a day after the activation.
    let k3 = "00000000-1111-2222-3333-444444444444";
    let third: Value = send(body("rep-3"), k3).await.unwrap().json().await.unwrap();
    s.clock.advance(86_400);
    assert_eq!(send(body("rep-3"), k3).await.unwrap().status(), 201);
    s.clock.advance(1);
    problem(
        send(body("rep-3"), k3).await.unwrap(),
        409,
        "activation_not_repeatable",
    )
    .await;
    assert_eq!(pending("rep-3").await, 1);
    assert_eq!(third["status"], "pending");

    // Without the header, every request is a registration of its own, as before.
    s.activate_ok(CORP_A, "rep-4").await;
    s.activate_ok(CORP_A, "rep-4").await;
    assert_eq!(pending("rep-4").await, 2);
}

/// Every decision about a registration stays readable, oldest first: a revocation does
/// not hide who approved the register, when the Tax Authority was notified, or the note.
async fn every_decision_is_kept(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let a = s.activate_ok(CORP_A, "dec-1").await;
    let id = a["activationId"].as_str().unwrap();
    let key = a["apiKey"].as_str().unwrap();
    let decide = |action: &str, body: Value| {
        s.http
            .post(s.url(&format!("/admin/activations/{id}/{action}")))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
    };
    let path = format!("/admin/activations/{id}/decisions");
    let history = || s.get_json_as(&path, ADMIN_KEY);
    assert_eq!(history().await, json!({"items": []}));
    let approved = decide(
        "approve",
        json!({"decidedBy": "alice", "note": "SKV ref 77",
               "authorityNotifiedAt": "2029-12-30T10:00:00Z"}),
    )
    .await
    .unwrap();
    assert_eq!(approved.status(), 200);
    // The same decision again changes nothing, and adds nothing.
    let again = decide("approve", json!({"decidedBy": "mallory", "note": "again"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    s.clock.advance(60);
    let revoked = decide("revoke", json!({"decidedBy": "bob", "note": "till stolen"}))
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let items = history().await["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 2, "{items}");
    assert_eq!(items[0]["n"], 1);
    assert_eq!(items[0]["status"], "approved");
    assert_eq!(items[0]["decidedBy"], "alice");
    assert_eq!(items[0]["note"], "SKV ref 77");
    assert_eq!(items[0]["authorityNotifiedAt"], "2029-12-30T10:00:00Z");
    assert_eq!(items[1]["n"], 2);
    assert_eq!(items[1]["status"], "revoked");
    assert_eq!(items[1]["decidedBy"], "bob");
    assert_eq!(items[1]["note"], "till stolen");
    assert!(items[1].get("authorityNotifiedAt").is_none());
    let t0 = time::OffsetDateTime::parse(
        items[0]["decidedAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let t1 = time::OffsetDateTime::parse(
        items[1]["decidedAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((t1 - t0).whole_seconds(), 60);
    // The registration itself shows the latest decision.
    let list = s
        .get_json_as("/admin/activations?status=revoked&limit=1000", ADMIN_KEY)
        .await;
    let row = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["activationId"] == id)
        .unwrap()
        .clone();
    assert_eq!(row["decidedBy"], "bob");

    // A rejection is kept too; unknown registrations and register keys are refused.
    let other = s.activate_ok(CORP_A, "dec-2").await;
    let other_id = other["activationId"].as_str().unwrap();
    assert_eq!(s.admin("reject", other_id).await.status(), 200);
    let items = s
        .get_json_as(
            &format!("/admin/activations/{other_id}/decisions"),
            ADMIN_KEY,
        )
        .await["items"]
        .clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["status"], "rejected");
    problem(
        s.get("/admin/activations/act_unknown/decisions", ADMIN_KEY)
            .await,
        404,
        "activation_not_found",
    )
    .await;
    problem(
        s.get(&format!("/admin/activations/{id}/decisions"), key)
            .await,
        401,
        "invalid_credentials",
    )
    .await;
}

/// A sale whose answer was lost, sent again after the registration was revoked (or its
/// key expired), is answered as stored: the till's outbox learns what the server holds.
/// Anything else from that register is refused as before, also a stored key with another
/// sale (nothing is told about it) and a request without a key.
async fn a_register_that_may_not_sell_gets_back_what_it_stored(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, key) = s.register(CORP_A, "rev-1").await;
    let id = a["activationId"].as_str().unwrap();
    let first = s.post_tx(&key, "sale-1", &sale(1200)).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(s.admin("revoke", id).await.status(), 200);

    let again = s.post_tx(&key, "sale-1", &sale(1200)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    // Through the URL-path token too.
    let r = s
        .http
        .post(s.url(&format!("/OpenApi_1,2,3,4$${key}/Transactions")))
        .header("Idempotency-Key", "sale-1")
        .json(&sale(1200))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    problem(s.post_tx(&key, "sale-2", &sale(1200)).await, 403, "revoked").await;
    problem(s.post_tx(&key, "sale-1", &sale(999)).await, 403, "revoked").await;
    let no_key = s
        .http
        .post(s.url("/transactions"))
        .bearer_auth(&key)
        .json(&sale(1200))
        .send()
        .await
        .unwrap();
    problem(no_key, 403, "revoked").await;
    problem(s.get("/auth/handshake", &key).await, 403, "revoked").await;
    // Nothing was stored after the revocation.
    let export = s
        .get_json_as(&format!("/admin/transactions?activationId={id}"), ADMIN_KEY)
        .await;
    assert_eq!(export["items"].as_array().unwrap().len(), 1);

    // The same for a key whose period has ended.
    let (_, key) = s.register(CORP_A, "rev-2").await;
    assert_eq!(s.post_tx(&key, "sale-9", &sale(500)).await.status(), 201);
    s.clock.advance(400 * 86_400);
    problem(s.get("/auth/handshake", &key).await, 403, "key_expired").await;
    let again = s.post_tx(&key, "sale-9", &sale(500)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    problem(
        s.post_tx(&key, "sale-10", &sale(500)).await,
        403,
        "key_expired",
    )
    .await;
}

/// A retry of a sale the server stored is answered with it even when today's checks
/// refuse that sale (rules made stricter by an upgrade between the first send and the
/// retry): the till's outbox learns the sale is stored, instead of taking a 400 as a
/// refusal for good. Another sale under that key, and the refused sale under a new key,
/// still get the 400.
async fn a_retry_is_answered_before_todays_checks(db: &TestDb, b: Backend) {
    let s = Srv::start(db, b).await;
    let (a, key) = s.register(CORP_A, "dev-1").await;
    // Items that do not add up to the total: refused today.
    let body = json!({"type": "sale", "currency": "SEK", "total": 1200,
                      "vat": [{"rate": 2500, "amount": 240}],
                      "items": [{"name": "Kaffe", "quantity": 1, "amount": 1000}]});
    let tx: tillgate_core::Transaction = serde_json::from_value(body.clone()).unwrap();
    assert!(tillgate_core::validate_transaction(&tx).is_err());
    // Stored as an earlier server version would have (the writer does not check rules).
    let committed = s
        .state
        .commit(tillgate_server::db::NewTx {
            activation_id: a["activationId"].as_str().unwrap().to_owned(),
            production_number: a["productionNumber"].as_str().unwrap().to_owned(),
            idempotency_key: "old-sale-1".into(),
            body: String::from_utf8(tillgate_core::canonical_bytes(&tx)).unwrap(),
            txh: transaction_hash(&tx),
            tx_type: "sale".into(),
            total: 1200,
            currency: "SEK".into(),
            key_hash: None,
            staff: None,
        })
        .await
        .unwrap();
    assert!(matches!(committed, tillgate_server::db::Committed::New(_)));

    let r = s.post_tx(&key, "old-sale-1", &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let stored: Value = r.json().await.unwrap();
    assert_eq!(stored["sequence"], 1);
    assert_eq!(stored["total"], 1200);
    problem(
        s.post_tx(&key, "old-sale-2", &body).await,
        400,
        "invalid_transaction",
    )
    .await;
    let mut other = body.clone();
    other["items"][0]["amount"] = json!(999);
    problem(
        s.post_tx(&key, "old-sale-1", &other).await,
        400,
        "invalid_transaction",
    )
    .await;
}
