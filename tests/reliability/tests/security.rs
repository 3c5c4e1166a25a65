//! Security tests against the real `tillgate-server` binary (a child process on
//! loopback). Each test names the threat it covers in docs/SECURITY.md.
//!
//! Run by `scripts/test-reliability.sh`; by hand:
//! `cargo build --release -p tillgate-server && cargo test -p tillgate-reliability --test security -- --ignored`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tillgate_core::{
    DynamicKeyPair, SigningKey, TrustedKeys, VerifyOptions, create_dynamic_api_key,
    create_dynamic_api_key_with_nonce, verify_descriptor, verify_receipt_chain, verify_server_time,
};
use tillgate_reliability::{
    ADMIN_KEY, Api, CORP_A, CORP_B, DAY, Reg, ServerProcess, Storage, period, sale, to_hex,
    unix_now,
};

const RM: &str = "1,2,3,4";

/// Asserts status and problem `code`; returns the body.
async fn problem(r: reqwest::Response, status: u16, code: &str, what: &str) -> Value {
    let got = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (got, body["code"].as_str().unwrap_or("")),
        (status, code),
        "{what}: {body}"
    );
    assert_eq!(ct, "application/problem+json", "{what}");
    body
}

/// How a register presents its key.
#[derive(Debug, Clone, Copy)]
enum Via {
    Bearer,
    XApiKey,
    UrlToken,
    UrlTokenWithRve,
}
const VIAS: [Via; 4] = [
    Via::Bearer,
    Via::XApiKey,
    Via::UrlToken,
    Via::UrlTokenWithRve,
];

fn request(
    api: &Api,
    method: reqwest::Method,
    resource: &str,
    key: &str,
    via: Via,
) -> reqwest::RequestBuilder {
    let url = match via {
        Via::Bearer | Via::XApiKey => api.url(resource),
        // Resource names are matched without regard to case behind the prefix.
        Via::UrlToken => api.url(&format!("/OpenApi_{RM}$${key}{}", capitalise(resource))),
        Via::UrlTokenWithRve => api.url(&format!("/OpenApi_{RM}$R20200101000000$${key}{resource}")),
    };
    let b = api.http.request(method, url);
    match via {
        Via::Bearer => b.bearer_auth(key),
        Via::XApiKey => b.header("X-Api-Key", key),
        Via::UrlToken | Via::UrlTokenWithRve => b,
    }
}

fn capitalise(resource: &str) -> String {
    let mut out = String::new();
    for (i, seg) in resource.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if i == 1 {
            let mut c = seg.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push_str(seg);
        }
    }
    out
}

async fn put_product(api: &Api, key: &str, id: &str, name: &str) -> reqwest::Response {
    api.http
        .put(api.url(&format!("/products/{id}")))
        .bearer_auth(key)
        .json(&json!({"name": name, "price": 1500, "currency": "SEK", "vatRate": 1200}))
        .send()
        .await
        .unwrap()
}

async fn add_staff(api: &Api, reg: &Reg, login: &str) -> DynamicKeyPair {
    let pair = DynamicKeyPair::from_seed(RM, login, &[login.len() as u8; 32]).unwrap();
    let r = api
        .http
        .post(api.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"login": login, "activationId": reg.id, "publicKey": B64.encode(pair.public_key())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    pair
}

fn dynamic_key(pair: &DynamicKeyPair) -> String {
    create_dynamic_api_key(pair, unix_now())
        .unwrap()
        .expose()
        .to_owned()
}

/// Sends raw bytes and returns the status line (or the I/O error text).
fn raw_http(base: &str, request: &[u8]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if let Err(e) = s.write_all(request) {
        return format!("write error: {e}");
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().next().unwrap_or("").to_owned()
}

/// Threat: a malicious register (reading or changing another register's or company's
/// data) and a stolen key used against others. Every cross-register and cross-company
/// access, through every way of presenting a key, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn tenancy_matrix() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let a1 = api.register(CORP_A, "dev-a1").await;
    let a2 = api.register(CORP_A, "dev-a2").await;
    let b1 = api.register(CORP_B, "dev-b1").await;
    let regs = [&a1, &a2, &b1];
    let mut txs = Vec::new();
    for (i, r) in regs.iter().enumerate() {
        let v: Value = api
            .post_tx(&r.key, "t1", &sale(500 + i as i64, "Kaffe"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        txs.push(v["id"].as_str().unwrap().to_owned());
        assert_eq!(
            put_product(&api, &r.key, &format!("p-{i}"), &format!("own-{i}"))
                .await
                .status(),
            201
        );
    }
    let mut checks = 0u32;
    for (ci, c) in regs.iter().enumerate() {
        for (oi, o) in regs.iter().enumerate() {
            if ci == oi {
                continue;
            }
            let same_company = c.corporate_id == o.corporate_id;
            for via in VIAS {
                let what = format!("caller {ci} -> owner {oi} via {via:?}");
                // Another register's transaction: "not found", by id and in lists.
                let r = request(
                    &api,
                    reqwest::Method::GET,
                    &format!("/transactions/{}", txs[oi]),
                    &c.key,
                    via,
                )
                .send()
                .await
                .unwrap();
                problem(r, 404, "transaction_not_found", &what).await;
                let r = request(&api, reqwest::Method::GET, "/transactions", &c.key, via)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{what}");
                let list: Value = r.json().await.unwrap();
                let ids: Vec<&str> = list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|t| t["id"].as_str())
                    .collect();
                assert_eq!(ids, vec![txs[ci].as_str()], "{what}: list");
                // Another company's products: invisible; the same company shares its
                // catalogue by design.
                let r = request(
                    &api,
                    reqwest::Method::GET,
                    &format!("/products/p-{oi}"),
                    &c.key,
                    via,
                )
                .send()
                .await
                .unwrap();
                if same_company {
                    assert_eq!(r.status(), 200, "{what}: same-company product");
                } else {
                    problem(r, 404, "product_not_found", &what).await;
                }
                let r = request(&api, reqwest::Method::GET, "/products", &c.key, via)
                    .send()
                    .await
                    .unwrap();
                let list: Value = r.json().await.unwrap();
                let names: Vec<&str> = list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| p["id"].as_str())
                    .collect();
                assert_eq!(
                    names.contains(&format!("p-{oi}").as_str()),
                    same_company,
                    "{what}: product list {names:?}"
                );
                checks += 4;
            }
            // Referencing another register's transaction in a refund or copy.
            let mut refund = sale(500 + oi as i64, "Kaffe");
            refund["type"] = json!("refund");
            refund["reference"] = json!(txs[oi]);
            let r = api
                .post_tx(&c.key, &format!("ref-{oi}"), &refund)
                .await
                .unwrap();
            problem(r, 400, "invalid_transaction", "refund of another's").await;
            // Claiming another registration's identity in the handshake or a renewal.
            let r = api
                .get(
                    &format!("/auth/handshake?productionNumber={}", o.production_number),
                    &c.key,
                )
                .await;
            problem(r, 403, "production_number_mismatch", "handshake").await;
            let r = api
                .get(&format!("/auth/handshake?deviceId={}", o.device_id), &c.key)
                .await;
            problem(r, 403, "device_mismatch", "handshake").await;
            let (from, to) = period();
            let r = api
                .http
                .post(api.url("/activations/renew"))
                .bearer_auth(&c.key)
                .json(&json!({"productionNumber": o.production_number, "deviceId": o.device_id, "validFrom": from, "validTo": to}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "renewal of another registration");
            // Admin actions on another registration with a register key.
            for action in ["approve", "reject", "revoke"] {
                let r = api
                    .http
                    .post(api.url(&format!("/admin/activations/{}/{action}", o.id)))
                    .bearer_auth(&c.key)
                    .send()
                    .await
                    .unwrap();
                problem(r, 401, "invalid_credentials", action).await;
            }
            checks += 8;
        }
        // The descriptor a register gets is its own.
        let d: Value = api
            .get("/activations/activation-code", &c.key)
            .await
            .json()
            .await
            .unwrap();
        let claims =
            tillgate_core::decode_descriptor_unverified(d["descriptor"].as_str().unwrap()).unwrap();
        assert_eq!(claims.sub, c.production_number);
        assert_eq!(claims.activation_id, c.id);
        // Admin endpoints refuse register keys however they are presented.
        for path in ["/admin/activations?status=pending", "/admin/transactions"] {
            problem(
                api.get(path, &c.key).await,
                401,
                "invalid_credentials",
                path,
            )
            .await;
            let r = api
                .http
                .get(api.url(path))
                .header("X-Api-Key", &c.key)
                .send()
                .await
                .unwrap();
            problem(r, 401, "missing_credentials", path).await;
        }
        let r = api
            .http
            .get(api.url(&format!("/OpenApi_{RM}$${}/admin/activations", c.key)))
            .send()
            .await
            .unwrap();
        problem(r, 404, "not_found", "admin behind the URL-path prefix").await;
        let r = api
            .http
            .post(api.url("/admin/staff"))
            .bearer_auth(&c.key)
            .json(
                &json!({"login": "evil", "activationId": c.id, "publicKey": B64.encode([9u8; 32])}),
            )
            .send()
            .await
            .unwrap();
        problem(r, 401, "invalid_credentials", "admin/staff").await;
        checks += 7;
    }
    // Writing another company's product id creates the caller's own product; the
    // owner's stays as it was.
    for (c, o, oi) in [(&b1, &a1, 0), (&a1, &b1, 2)] {
        let r = put_product(&api, &c.key, &format!("p-{oi}"), "overwrite").await;
        assert_eq!(r.status(), 201, "cross-company PUT must not replace");
        let own: Value = api
            .get(&format!("/products/p-{oi}"), &o.key)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(own["name"], json!(format!("own-{oi}")));
        checks += 1;
    }
    // The admin key is not a register key.
    for via in VIAS {
        let r = request(&api, reqwest::Method::GET, "/transactions", ADMIN_KEY, via)
            .send()
            .await
            .unwrap();
        problem(r, 401, "invalid_credentials", "admin key as register key").await;
        checks += 1;
    }
    // A URL-path token naming another RmSystem.
    let r = api
        .http
        .get(api.url(&format!("/OpenApi_9$${}/Products", a1.key)))
        .send()
        .await
        .unwrap();
    problem(r, 403, "rm_system_mismatch", "other RmSystem").await;
    // Dot segments after the prefix do not reach other routes (raw request, no client
    // normalisation).
    let status = raw_http(
        &server.base,
        format!(
            "GET /OpenApi_{RM}$${}/transactions/../../admin/activations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            a1.key
        )
        .as_bytes(),
    );
    assert!(status.contains(" 404 "), "dot segments: {status}");
    // A staff member of register A1 (dynamic key) is confined to A1 too.
    let pair = add_staff(&api, &a1, "anna").await;
    for (oi, tx) in txs.iter().enumerate().skip(1) {
        let r = api
            .get(&format!("/transactions/{tx}"), &dynamic_key(&pair))
            .await;
        problem(r, 404, "transaction_not_found", &format!("staff -> {oi}")).await;
    }
    let r = api.get("/admin/transactions", &dynamic_key(&pair)).await;
    problem(r, 401, "invalid_credentials", "staff key on admin").await;
    checks += 5;
    println!("tenancy: {checks} cross-tenant accesses refused");
}

/// Threats: a stolen device (revocation), a replaced key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn revoked_pending_and_replaced_keys_reach_nothing() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let stolen = api.register(CORP_A, "dev-stolen").await;
    let old_descriptor: Value = api
        .get("/activations/activation-code", &stolen.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api.decide(&stolen.id, "revoke").await.status(), 200);
    let pending = api.activate(CORP_A, "dev-pending").await;
    let pending_key = pending["apiKey"].as_str().unwrap().to_owned();
    for (key, code) in [(&stolen.key, "revoked"), (&pending_key, "pending_approval")] {
        for via in VIAS {
            for (method, path) in [
                (reqwest::Method::GET, "/auth/handshake"),
                (reqwest::Method::GET, "/transactions"),
                (reqwest::Method::GET, "/products"),
                (reqwest::Method::GET, "/activations/activation-code"),
            ] {
                let r = request(&api, method, path, key, via).send().await.unwrap();
                problem(r, 403, code, &format!("{path} via {via:?}")).await;
            }
        }
        let r = api.post_tx(key, "x", &sale(100, "Kaffe")).await.unwrap();
        problem(r, 403, code, "post tx").await;
    }
    // The revoked register cannot renew its way back in.
    let today = unix_now() / DAY * DAY;
    let r = api
        .http
        .post(api.url("/activations/renew"))
        .bearer_auth(&stolen.key)
        .json(
            &json!({"productionNumber": stolen.production_number, "deviceId": stolen.device_id,
            "validFrom": tillgate_core::format_rfc3339(today).unwrap(),
            "validTo": tillgate_core::format_rfc3339(today + 60 * DAY).unwrap()}),
        )
        .send()
        .await
        .unwrap();
    problem(r, 403, "revoked", "renew after revoke").await;
    // Nor with its old signed descriptor.
    let r = api
        .http
        .post(api.url("/activations/renew"))
        .json(
            &json!({"productionNumber": stolen.production_number, "deviceId": stolen.device_id,
            "validFrom": tillgate_core::format_rfc3339(today).unwrap(),
            "validTo": tillgate_core::format_rfc3339(today + 60 * DAY).unwrap(),
            "descriptor": old_descriptor["descriptor"]}),
        )
        .send()
        .await
        .unwrap();
    problem(r, 403, "revoked", "renew by descriptor after revoke").await;

    // A renewed key replaces the old one at once.
    let reg = api.register(CORP_B, "dev-renew").await;
    let r = api
        .http
        .post(api.url("/activations/renew"))
        .bearer_auth(&reg.key)
        .json(
            &json!({"productionNumber": reg.production_number, "deviceId": reg.device_id,
            "validFrom": tillgate_core::format_rfc3339(today).unwrap(),
            "validTo": tillgate_core::format_rfc3339(today + 60 * DAY).unwrap()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renewed: Value = r.json().await.unwrap();
    problem(
        api.get("/auth/handshake", &reg.key).await,
        401,
        "key_replaced",
        "old key after renewal",
    )
    .await;
    assert_eq!(
        api.get("/auth/handshake", renewed["apiKey"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

/// Threat: a leaked server database. API keys and the admin key are stored only as
/// SHA-256 hashes, staff logins only as public keys; the database file is private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn secrets_are_stored_hashed() {
    let storage = Storage::sqlite();
    let mut server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let reg = api.register(CORP_A, "dev-hash").await;
    let today = unix_now() / DAY * DAY;
    let renewed: Value = api
        .http
        .post(api.url("/activations/renew"))
        .bearer_auth(&reg.key)
        .json(
            &json!({"productionNumber": reg.production_number, "deviceId": reg.device_id,
            "validFrom": tillgate_core::format_rfc3339(today).unwrap(),
            "validTo": tillgate_core::format_rfc3339(today + 60 * DAY).unwrap()}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = renewed["apiKey"].as_str().unwrap().to_owned();
    let password = "Staff-Password-Never-Stored-42";
    let params = tillgate_core::DynamicKeyParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let pair = tillgate_core::derive_dynamic_key_pair(RM, "bertil", password, params).unwrap();
    let r = api
        .http
        .post(api.url("/admin/staff"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"login": "bertil", "activationId": reg.id, "publicKey": B64.encode(pair.public_key()),
            "memoryKib": 64, "iterations": 1, "parallelism": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let dk = dynamic_key(&pair);
    assert_eq!(api.get("/auth/handshake", &dk).await.status(), 200);
    assert_eq!(
        api.post_tx(&new_key, "h1", &sale(100, "Kaffe"))
            .await
            .unwrap()
            .status(),
        201
    );
    let dir = storage.sqlite_dir().unwrap().to_owned();
    let scan = |when: &str| {
        let mut all = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            all.extend(std::fs::read(&p).unwrap());
        }
        let hay = String::from_utf8_lossy(&all).into_owned();
        for (name, secret) in [
            ("old API key", reg.key.as_str()),
            ("renewed API key", new_key.as_str()),
            ("admin key", ADMIN_KEY),
            ("staff password", password),
            ("dynamic key", dk.as_str()),
        ] {
            assert!(
                !hay.contains(secret),
                "{when}: the {name} is in the database files"
            );
        }
        // What is stored instead: the SHA-256 (hex) of each key.
        for key in [&reg.key, &new_key] {
            let h = to_hex(&Sha256::digest(key.as_bytes()));
            assert!(hay.contains(&h), "{when}: key hash not found");
        }
    };
    scan("while running (WAL included)");
    assert!(server.terminate(), "graceful shutdown failed");
    scan("after shutdown");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("tillgate.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "tillgate.db is readable by others: {mode:o}"
        );
    }
}

/// Threat: a replayed request. A dynamic staff key is accepted once; replays within the
/// freshness window are refused whichever way they are presented, and of many
/// concurrent copies exactly one gets through. Stale and future keys are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn dynamic_key_replays_are_refused() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let reg = api.register(CORP_A, "dev-dk").await;
    let pair = add_staff(&api, &reg, "cecilia").await;
    let dk = dynamic_key(&pair);
    assert_eq!(api.get("/auth/handshake", &dk).await.status(), 200);
    for via in VIAS {
        let r = request(&api, reqwest::Method::GET, "/auth/handshake", &dk, via)
            .send()
            .await
            .unwrap();
        problem(
            r,
            401,
            "dynamic_key_replayed",
            &format!("replay via {via:?}"),
        )
        .await;
    }
    // 8 concurrent copies of one fresh key: exactly one is accepted.
    let dk = dynamic_key(&pair);
    let mut handles = Vec::new();
    for _ in 0..8 {
        let api = api.clone();
        let dk = dk.clone();
        handles.push(tokio::spawn(async move {
            api.get("/auth/handshake", &dk).await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 401, 401, 401, 401, 401, 401, 401]);
    // Outside the window (default 300 s), either side.
    for skew in [-400i64, 400] {
        let k =
            create_dynamic_api_key_with_nonce(&pair, unix_now() + skew, &[skew as u8; 16]).unwrap();
        problem(
            api.get("/auth/handshake", k.expose()).await,
            401,
            "dynamic_key_stale",
            "stale",
        )
        .await;
    }
    // Made for another RmSystem.
    let other = DynamicKeyPair::from_seed("9,9,9", "cecilia", &[7; 32]).unwrap();
    let k = create_dynamic_api_key(&other, unix_now()).unwrap();
    problem(
        api.get("/auth/handshake", k.expose()).await,
        401,
        "bad_signature",
        "other system",
    )
    .await;
}

/// Threat: brute force of keys and activation flooding. The failed-authentication and
/// activation budgets per client address, set by the operator's environment, answer 429
/// with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn rate_limits_kick_in() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(
        &storage,
        &[
            ("TILLGATE_AUTH_FAILURE_RATE", "5"),
            ("TILLGATE_ACTIVATION_RATE", "3"),
        ],
    )
    .await;
    let api = server.api();
    let a = api.activate(CORP_A, "rl-1").await;
    let id = a["activationId"].as_str().unwrap();
    assert_eq!(api.decide(id, "approve").await.status(), 200);
    let key = a["apiKey"].as_str().unwrap();
    api.activate(CORP_A, "rl-2").await;
    api.activate(CORP_A, "rl-3").await;
    let r = api
        .http
        .post(api.url("/activations-advanced"))
        .json(&tillgate_reliability::activation_body(CORP_A, "rl-4"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 429, "rate_limited", "4th activation").await;
    for i in 0..5 {
        let r = api
            .get("/auth/handshake", &format!("Wrong-Key-{i:020}"))
            .await;
        problem(r, 401, "invalid_credentials", "wrong key").await;
    }
    let r = api
        .get("/auth/handshake", "Wrong-Key-99999999999999999999")
        .await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 429, "rate_limited", "6th failure").await;
    // A good API key is still served from that address, and the admin key, whose
    // budget is its own.
    assert_eq!(
        api.get("/auth/handshake", key).await.status(),
        200,
        "good API key after the budget is spent"
    );
    assert_eq!(
        api.get("/admin/activations", ADMIN_KEY).await.status(),
        200,
        "admin key after the registers' budget is spent"
    );
    // Once wrong admin keys spent it, the admin key, which an operator may choose, is
    // refused before it is checked.
    for i in 0..5 {
        let r = api
            .get("/admin/activations", &format!("Wrong-Admin-{i:020}"))
            .await;
        problem(r, 401, "invalid_credentials", "wrong admin key").await;
    }
    problem(
        api.get("/admin/activations", ADMIN_KEY).await,
        429,
        "rate_limited",
        "admin after its budget is spent",
    )
    .await;
}

/// Threat: secrets leaking through logs. The whole flow, at the most verbose log level
/// of every crate (hyper and sqlx included), with every kind of secret presented in
/// every way; none appears in stdout or stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn no_secret_in_logs() {
    for (format, filter) in [("text", "trace"), ("json", "trace")] {
        let storage = Storage::sqlite();
        let mut server = ServerProcess::start(
            &storage,
            &[("RUST_LOG", filter), ("TILLGATE_LOG_FORMAT", format)],
        )
        .await;
        let api = server.api();
        let reg = api.register(CORP_A, "dev-log").await;
        let mut secrets = vec![reg.key.clone(), ADMIN_KEY.to_owned()];
        for via in VIAS {
            assert_eq!(
                request(&api, reqwest::Method::GET, "/products", &reg.key, via)
                    .send()
                    .await
                    .unwrap()
                    .status(),
                200
            );
        }
        assert_eq!(
            api.post_tx(&reg.key, "log-1", &sale(100, "Kaffe"))
                .await
                .unwrap()
                .status(),
            201
        );
        let wrong = format!("{}Zz", &reg.key[..30]);
        assert_eq!(api.get("/auth/handshake", &wrong).await.status(), 401);
        let r = api
            .http
            .get(api.url(&format!("/OpenApi_{RM}$${wrong}/Products")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        secrets.push(wrong);
        // The real key in the forms a client library may write (percent-encoded by
        // `encodeURIComponent` or Python's `quote`, after a base URL ending in `/`): the
        // server refuses or answers them, and logs none of them with the key.
        let encoded = format!("/OpenApi_1%2C2%2C3%2C4%24%24{}/Products", reg.key);
        for path in [
            encoded.as_str(),
            &format!("//OpenApi_{RM}$${}/Products", reg.key),
        ] {
            let r = api
                .http
                .get(format!("{}{path}", api.base))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error() || r.status().is_success(),
                "{path}: {}",
                r.status()
            );
        }
        let wrong_admin = "Not-The-Admin-Key-000111222333";
        assert_eq!(
            api.get("/admin/activations", wrong_admin).await.status(),
            401
        );
        secrets.push(wrong_admin.into());
        let password = "Correct-Horse-Battery-Staple-9";
        let pair = tillgate_core::derive_dynamic_key_pair(
            RM,
            "doris",
            password,
            tillgate_core::DynamicKeyParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
        )
        .unwrap();
        let r = api
            .http
            .post(api.url("/admin/staff"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"login": "doris", "activationId": reg.id, "publicKey": B64.encode(pair.public_key())}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let dk = dynamic_key(&pair);
        assert_eq!(api.get("/auth/handshake", &dk).await.status(), 200);
        assert_eq!(api.get("/auth/handshake", &dk).await.status(), 401);
        secrets.push(dk.clone());
        secrets.push(password.into());
        // Renewal shows a new key once.
        let today = unix_now() / DAY * DAY;
        let renewed: Value = api
            .http
            .post(api.url("/activations/renew"))
            .header("X-Api-Key", &reg.key)
            .json(
                &json!({"productionNumber": reg.production_number, "deviceId": reg.device_id,
                "validFrom": tillgate_core::format_rfc3339(today).unwrap(),
                "validTo": tillgate_core::format_rfc3339(today + 60 * DAY).unwrap()}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let new_key = renewed["apiKey"].as_str().unwrap().to_owned();
        assert_eq!(api.get("/auth/handshake", &new_key).await.status(), 200);
        secrets.push(new_key);
        assert!(server.terminate(), "graceful shutdown");
        let logs = server.logs();
        assert!(logs.contains("request done"), "no request logs at {filter}");
        for s in &secrets {
            // The whole secret and any 16-character piece of it.
            for piece in [s.as_str(), &s[..16], &s[s.len() - 16..]] {
                assert!(
                    !logs.contains(piece),
                    "{format} logs at {filter} contain a secret piece {piece:?}"
                );
            }
        }
        println!(
            "logs ({format}, RUST_LOG={filter}): {} bytes, {} secrets absent",
            logs.len(),
            secrets.len()
        );
    }
}

/// Threat: resource exhaustion by large requests. Bodies over the limit get 413, long
/// headers and paths a 4xx, never a 5xx or a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn request_size_limits() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let reg = api.register(CORP_A, "dev-size").await;
    let big_name = "K".repeat(300 * 1024);
    let r = api
        .post_tx(&reg.key, "big", &sale(100, &big_name))
        .await
        .unwrap();
    problem(r, 413, "payload_too_large", "300 KiB transaction").await;
    let mut body = tillgate_reliability::activation_body(CORP_A, "dev-big");
    body["extras"] = json!({"blob": "x".repeat(1024 * 1024)});
    let r = api
        .http
        .post(api.url("/activations-advanced"))
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(r, 413, "payload_too_large", "1 MiB activation").await;
    let r = api
        .http
        .put(api.url("/products/big"))
        .bearer_auth(&reg.key)
        .json(&json!({"name": big_name, "price": 1, "currency": "SEK", "vatRate": 0}))
        .send()
        .await
        .unwrap();
    problem(r, 413, "payload_too_large", "300 KiB product").await;
    // Chunked, without Content-Length: the limit still applies.
    let chunk = "a".repeat(64 * 1024);
    let mut raw = format!(
        "POST /transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nIdempotency-Key: c1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        reg.key
    );
    for _ in 0..6 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let status = raw_http(&server.base, raw.as_bytes());
    assert!(status.contains(" 413 "), "chunked 384 KiB: {status}");
    // A 1 MiB header (hyper's head limit is about 400 KiB) and a 64 KiB path: refused,
    // not a server error.
    let r = api
        .http
        .get(api.url("/auth/handshake"))
        .header("X-Padding", "p".repeat(1024 * 1024))
        .bearer_auth(&reg.key)
        .send()
        .await;
    if let Ok(r) = r {
        assert!(r.status().is_client_error(), "1 MiB header: {}", r.status());
    }
    let r = api
        .http
        .get(api.url(&format!(
            "/OpenApi_{RM}$${}/Products",
            "A".repeat(64 * 1024)
        )))
        .send()
        .await;
    if let Ok(r) = r {
        assert!(r.status().is_client_error(), "64 KiB token: {}", r.status());
    }
    // Still healthy.
    assert_eq!(api.get("/auth/handshake", &reg.key).await.status(), 200);
}

fn b64(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Threats: forged descriptors (`alg: none`, algorithm confusion, attacker keys, edited
/// claims), and descriptors used outside their validity. Checked on the server's own
/// descriptors, both by core (as an app does offline) and by the server (renewal by
/// descriptor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn forged_and_out_of_window_descriptors_are_refused() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let reg = api.register(CORP_A, "dev-jws").await;
    let trusted = api.trusted_keys().await;
    let jwks: Value = api
        .http
        .get(api.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"][0].clone();
    let kid = jwk["kid"].as_str().unwrap().to_owned();
    let x = jwk["x"].as_str().unwrap().to_owned();
    let public = B64.decode(&x).unwrap();
    let d: Value = api
        .get("/activations/activation-code", &reg.key)
        .await
        .json()
        .await
        .unwrap();
    let good = d["descriptor"].as_str().unwrap().to_owned();
    let now = unix_now();
    let opts = VerifyOptions::default();
    let claims = verify_descriptor(&good, &trusted, now, &opts)
        .unwrap()
        .into_claims();
    let parts: Vec<&str> = good.split('.').collect();
    let payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let typ = "tillgate-descriptor+jwt";

    let attacker = SigningKey::from_seed(&[0xEE; 32]);
    let sign_with = |key: &SigningKey, header: &Value, payload: &Value| {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = key.sign_raw(input.as_bytes());
        format!("{input}.{}", B64.encode(sig))
    };
    let hmac_with = |secret: &[u8], alg: &str| {
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": alg, "kid": kid, "typ": typ})),
            parts[1]
        );
        format!(
            "{input}.{}",
            B64.encode(hmac_sha256(secret, input.as_bytes()))
        )
    };
    let mut longer = payload.clone();
    longer["exp"] = json!(payload["exp"].as_i64().unwrap() + 365 * DAY);
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none, empty signature",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": kid, "typ": typ})),
                parts[1]
            ),
            "unsupported_algorithm",
        ),
        (
            "alg none, original signature",
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": "none", "kid": kid, "typ": typ})),
                parts[1],
                parts[2]
            ),
            "unsupported_algorithm",
        ),
        (
            "alg None",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "None", "kid": kid, "typ": typ})),
                parts[1]
            ),
            "unsupported_algorithm",
        ),
        (
            "HS256 keyed with the raw public key",
            hmac_with(&public, "HS256"),
            "unsupported_algorithm",
        ),
        (
            "HS256 keyed with the base64url public key",
            hmac_with(x.as_bytes(), "HS256"),
            "unsupported_algorithm",
        ),
        (
            "HS256 keyed with the JWK text",
            hmac_with(jwk.to_string().as_bytes(), "HS256"),
            "unsupported_algorithm",
        ),
        (
            "ES256 header on an Ed25519 signature",
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": "ES256", "kid": kid, "typ": typ})),
                parts[1],
                parts[2]
            ),
            "unsupported_algorithm",
        ),
        (
            "alg ed25519 (wrong case)",
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": "ed25519", "kid": kid, "typ": typ})),
                parts[1],
                parts[2]
            ),
            "unsupported_algorithm",
        ),
        (
            "attacker key embedded as jwk, attacker kid",
            sign_with(
                &attacker,
                &json!({"alg": "Ed25519", "kid": attacker.kid(), "typ": typ, "jwk": attacker.public_jwk()}),
                &payload,
            ),
            "unknown_kid",
        ),
        (
            "attacker key, server kid",
            sign_with(
                &attacker,
                &json!({"alg": "Ed25519", "kid": kid, "typ": typ}),
                &payload,
            ),
            "bad_signature",
        ),
        (
            "crit header",
            sign_with(
                &attacker,
                &json!({"alg": "Ed25519", "kid": kid, "typ": typ, "crit": ["exp"]}),
                &payload,
            ),
            "malformed_jws",
        ),
        (
            "exp extended, original signature",
            format!("{}.{}.{}", parts[0], b64(&longer), parts[2]),
            "bad_signature",
        ),
    ];
    // A receipt of the server is not a descriptor.
    let tx: Value = api
        .post_tx(&reg.key, "jws-1", &sale(100, "Kaffe"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    cases.push((
        "receipt presented as descriptor",
        tx["receipt"].as_str().unwrap().to_owned(),
        "wrong_token_type",
    ));
    let today = now / DAY * DAY;
    for (name, jws, code) in &cases {
        // The app's offline check.
        let err = verify_descriptor(jws, &trusted, now, &opts).unwrap_err();
        assert_eq!(err.code(), *code, "core: {name}");
        // The server's renewal by descriptor.
        let r = api
            .http
            .post(api.url("/activations/renew"))
            .json(
                &json!({"productionNumber": reg.production_number, "deviceId": reg.device_id,
                "validFrom": tillgate_core::format_rfc3339(today).unwrap(),
                "validTo": tillgate_core::format_rfc3339(today + 60 * DAY).unwrap(),
                "descriptor": jws}),
            )
            .send()
            .await
            .unwrap();
        problem(r, 401, code, &format!("server: {name}")).await;
    }

    // Outside its validity: not yet valid before nbf, expired from exp on.
    let err = verify_descriptor(&good, &trusted, claims.nbf - 1, &opts).unwrap_err();
    assert_eq!(err.code(), "not_yet_valid");
    let err = verify_descriptor(&good, &trusted, claims.exp + 1, &opts).unwrap_err();
    assert_eq!(err.code(), "expired");
    assert!(verify_descriptor(&good, &trusted, claims.nbf, &opts).is_ok());
    // Moved to another device.
    let moved = VerifyOptions {
        expected_device_id: Some("another-device".into()),
        ..Default::default()
    };
    assert_eq!(
        verify_descriptor(&good, &trusted, now, &moved)
            .unwrap_err()
            .code(),
        "device_mismatch"
    );
    // The server refuses a registration before its validFrom (key_not_yet_valid).
    let tomorrow = tillgate_core::format_rfc3339(today + DAY).unwrap();
    let later = tillgate_core::format_rfc3339(today + 20 * DAY).unwrap();
    let mut body = tillgate_reliability::activation_body(CORP_A, "dev-future");
    body["validFrom"] = json!(tomorrow);
    body["validTo"] = json!(later);
    let a: Value = api
        .http
        .post(api.url("/activations-advanced"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        api.decide(a["activationId"].as_str().unwrap(), "approve")
            .await
            .status(),
        200
    );
    let fk = a["apiKey"].as_str().unwrap();
    problem(
        api.get("/auth/handshake", fk).await,
        403,
        "key_not_yet_valid",
        "handshake",
    )
    .await;
    problem(
        api.get("/activations/activation-code", fk).await,
        403,
        "key_not_yet_valid",
        "activation-code",
    )
    .await;
    println!(
        "descriptors: {} forged variants refused by core and server",
        cases.len()
    );
}

/// Threat: a modified local database on the device (descriptor, receipts, clock). The
/// server's artefacts, tampered with, fail core's offline checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn tampered_local_data_is_detected() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let reg = api.register(CORP_A, "dev-local").await;
    let other = api.register(CORP_B, "dev-other").await;
    let trusted = api.trusted_keys().await;
    for i in 0..5 {
        let r = api
            .post_tx(&reg.key, &format!("l{i}"), &sale(100 + i, "Kaffe"))
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    assert_eq!(
        api.post_tx(&other.key, "o1", &sale(1, "Bulle"))
            .await
            .unwrap()
            .status(),
        201
    );
    let chain: Vec<String> = api
        .all_transactions(&reg.key)
        .await
        .iter()
        .map(|t| t["receipt"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(verify_receipt_chain(&chain, &trusted).unwrap().len(), 5);
    let code_at = |c: &[String]| match verify_receipt_chain(c, &trusted) {
        Ok(_) => ("ok".to_owned(), usize::MAX),
        Err(tillgate_core::Error::InvalidReceipt { index, .. }) => {
            ("invalid_receipt".into(), index)
        }
        Err(tillgate_core::Error::ReceiptChainBroken { index, .. }) => {
            ("receipt_chain_broken".into(), index)
        }
        Err(e) => (e.code().to_owned(), usize::MAX),
    };
    // A total changed in the third receipt.
    let mut edited = chain.clone();
    let p: Vec<&str> = chain[2].split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(p[1]).unwrap()).unwrap();
    claims["total"] = json!(1);
    edited[2] = format!("{}.{}.{}", p[0], b64(&claims), p[2]);
    assert_eq!(code_at(&edited), ("invalid_receipt".into(), 2));
    // A receipt deleted, two swapped, another register's receipt spliced in.
    let mut deleted = chain.clone();
    deleted.remove(1);
    assert_eq!(code_at(&deleted), ("receipt_chain_broken".into(), 1));
    let mut swapped = chain.clone();
    swapped.swap(3, 4);
    assert_eq!(code_at(&swapped), ("receipt_chain_broken".into(), 3));
    let foreign = api.all_transactions(&other.key).await[0]["receipt"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut spliced = chain[..1].to_vec();
    spliced.push(foreign);
    assert_eq!(code_at(&spliced), ("receipt_chain_broken".into(), 1));
    // A descriptor edited on disk.
    let d: Value = api
        .get("/activations/activation-code", &reg.key)
        .await
        .json()
        .await
        .unwrap();
    let jws = d["descriptor"].as_str().unwrap();
    let p: Vec<&str> = jws.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(p[1]).unwrap()).unwrap();
    claims["features"] = json!(["sales", "everything"]);
    let edited = format!("{}.{}.{}", p[0], b64(&claims), p[2]);
    assert_eq!(
        verify_descriptor(&edited, &trusted, unix_now(), &VerifyOptions::default())
            .unwrap_err()
            .code(),
        "bad_signature"
    );
    // The clock turned back below the server-signed time floor.
    let h: Value = api
        .get("/auth/handshake?nonce=n-12345", &reg.key)
        .await
        .json()
        .await
        .unwrap();
    let signed_time = h["signedTime"].as_str().unwrap();
    let floor = verify_server_time(signed_time, &trusted, Some("n-12345"))
        .unwrap()
        .iat;
    let opts = VerifyOptions {
        trusted_time_floor: Some(floor),
        ..Default::default()
    };
    assert_eq!(
        verify_descriptor(jws, &trusted, floor - 2 * DAY, &opts)
            .unwrap_err()
            .code(),
        "clock_rolled_back"
    );
    // An old signed timestamp replayed to an app that asked with a new nonce.
    assert_eq!(
        verify_server_time(signed_time, &trusted, Some("n-67890"))
            .unwrap_err()
            .code(),
        "nonce_mismatch"
    );
    // Keys from another server are not trusted.
    let foreign_keys = TrustedKeys::from_jwks(&tillgate_core::Jwks {
        keys: vec![SigningKey::from_seed(&[3; 32]).public_jwk()],
    })
    .unwrap();
    assert_eq!(
        verify_descriptor(jws, &foreign_keys, unix_now(), &VerifyOptions::default())
            .unwrap_err()
            .code(),
        "unknown_kid"
    );
}

/// Threat: a replayed request. A repeated transaction is answered with the stored one
/// and never stored twice; the same key with another body is refused. Old or future
/// RVEs in URL-path tokens are data versions, not credentials: they change what a delta
/// contains, never who is let in (see docs/SECURITY.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn replayed_requests_and_rve() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(&storage, &[]).await;
    let api = server.api();
    let reg = api.register(CORP_A, "dev-replay").await;
    let first: Value = api
        .post_tx(&reg.key, "same", &sale(700, "Kaffe"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for _ in 0..3 {
        let r = api
            .post_tx(&reg.key, "same", &sale(700, "Kaffe"))
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["idempotent-replayed"], "true");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["id"], first["id"]);
        assert_eq!(v["receipt"], first["receipt"]);
    }
    let r = api
        .post_tx(&reg.key, "same", &sale(9999, "Kaffe"))
        .await
        .unwrap();
    problem(r, 422, "idempotency_key_reused", "other body").await;
    assert_eq!(api.all_transactions(&reg.key).await.len(), 1);

    // RVE: stale, current, future and malformed, in the path and in the query.
    assert_eq!(
        put_product(&api, &reg.key, "bun", "Bulle").await.status(),
        201
    );
    let list = |path: String| {
        let api = api.clone();
        async move {
            let r = api.http.get(api.url(&path)).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, stale) = list(format!(
        "/OpenApi_{RM}$R20000101000000$${}/Products",
        reg.key
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        stale["items"].as_array().unwrap().len(),
        1,
        "stale RVE: full list"
    );
    let (s, future) = list(format!(
        "/OpenApi_{RM}$R20991231235959$${}/Products",
        reg.key
    ))
    .await;
    assert_eq!(s, 200, "a future RVE is not an authentication failure");
    // Not one the server handed out: the changes come from the start, so that none to
    // come is skipped.
    assert_eq!(future["items"].as_array().unwrap().len(), 1);
    assert_eq!(future["rve"], stale["rve"]);
    let (s, current) = list(format!(
        "/OpenApi_{RM}$R{}$${}/Products",
        stale["rve"].as_str().unwrap(),
        reg.key
    ))
    .await;
    assert_eq!(s, 200);
    assert!(current["items"].as_array().unwrap().len() <= 1);
    let (s, bad) = list(format!(
        "/OpenApi_{RM}$R20211301000000$${}/Products",
        reg.key
    ))
    .await;
    assert_eq!((s, bad["code"].as_str()), (400, Some("url_invalid_rve")));
    let r = api.get("/products?rve=2021", &reg.key).await;
    problem(r, 400, "url_invalid_rve", "query rve").await;
    // The RVE never stands in for a key, and a wrong key is refused whatever the RVE.
    let (s, _) = list(format!(
        "/OpenApi_{RM}$R20991231235959$$Not-A-Key-0000000000000/Products"
    ))
    .await;
    assert_eq!(s, 401);
    let (s, _) = list(format!("/OpenApi_{RM}$R20991231235959/Products")).await;
    assert_eq!(s, 401);
}

/// Threat: slow clients holding connections open (slowloris). A connection that sends
/// half a request head, a head announcing a body it never sends, or nothing at all is
/// closed (or answered 408) once the configured timeouts pass, here set short through the
/// environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn slow_clients_are_cut_off() {
    let storage = Storage::sqlite();
    let server = ServerProcess::start(
        &storage,
        &[
            ("TILLGATE_HEADER_READ_TIMEOUT_SECS", "2"),
            ("TILLGATE_REQUEST_TIMEOUT_SECS", "3"),
        ],
    )
    .await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let probes: [&[u8]; 3] = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"POST /activations-advanced HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        b"",
    ];
    let mut handles = Vec::new();
    for probe in probes {
        let addr = addr.clone();
        handles.push(std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(probe).unwrap();
            let mut buf = Vec::new();
            // Read until the server closes; a read timeout means it never did.
            match s.read_to_end(&mut buf) {
                Ok(_) => Ok(String::from_utf8_lossy(&buf)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }));
    }
    for (h, name) in handles
        .into_iter()
        .zip(["half a head", "missing body", "idle"])
    {
        let r = h.join().unwrap();
        match r {
            Ok(first_line) => assert!(
                first_line.is_empty() || first_line.contains(" 408 "),
                "{name}: answered {first_line:?}"
            ),
            Err(e) => panic!("{name}: the connection was still open after 20 s ({e})"),
        }
    }
    // The server still serves others.
    assert_eq!(
        server
            .api()
            .http
            .get(server.api().url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
