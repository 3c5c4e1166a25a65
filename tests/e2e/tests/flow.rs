//! tillgate-client against the real tillgate-server.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tillgate_client::core::TrustedKeys;
use tillgate_client::core::{ActivationRequest, Transaction};
use tillgate_client::{
    Activation, Client, ClientConfig, ClientError, FileStore, IdempotencyKey, Outbox, Product,
    ProductCatalogue, QueueStore, RenewRequest, Submitted,
};
use tillgate_e2e::{DAY, Server, T2030};

/// The server's clock during the tests: 2030-01-01T10:00:00Z.
const NOW: i64 = T2030 + 10 * 3600;

fn request() -> ActivationRequest {
    ActivationRequest {
        cash_register_name: "Kassa 1".into(),
        device_id: "device-e2e-1".into(),
        valid_from: "2030-01-01T00:00:00Z".into(),
        valid_to: "2031-01-01T00:00:00Z".into(),
        corporate_id: "556036-0793".into(),
        application_package: "com.example.pos".into(),
        country: None,
        extras: Some(serde_json::json!({"shop": 7})),
    }
}

fn sale(total: i64, name: &str) -> Transaction {
    serde_json::from_value(serde_json::json!({"type": "sale", "currency": "SEK",
        "total": total, "vat": [{"rate": 2500, "amount": total / 5}],
        "items": [{"name": name, "quantity": 1, "amount": total}]}))
    .unwrap()
}

async fn client_for(server: &Server) -> Client {
    let mut config = ClientConfig::new(server.url(), server.trusted_keys().await);
    config.device_id = Some("device-e2e-1".into());
    config.application_package = Some("com.example.pos".into());
    config.timeout = Duration::from_secs(3);
    config.connect_timeout = Duration::from_secs(1);
    Client::new(config).unwrap()
}

/// Activates and approves a register.
async fn approved_client(server: &Server) -> (Client, Activation) {
    let client = client_for(server).await;
    let activation = client.activate(&request()).await.unwrap();
    server.admin(&activation.activation_id, "approve").await;
    client.handshake().await.unwrap();
    (client, activation)
}

fn open_store(dir: &std::path::Path) -> Arc<dyn QueueStore> {
    Arc::new(FileStore::open(dir).unwrap())
}

#[tokio::test]
async fn activation_handshake_code_and_offline_transactions() {
    let data = tempfile::tempdir().unwrap();
    let queue_dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), NOW).await;
    let client = client_for(&server).await;

    // Activate: pending until the admin approves.
    let activation = client.activate(&request()).await.unwrap();
    assert_eq!(activation.status, "pending");
    assert!(!format!("{activation:?}").contains(activation.api_key.expose()));
    let e = client.handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::PendingApproval { .. }), "{e:?}");
    assert_eq!(client.trusted_time_floor(), None);

    assert_eq!(
        server.pending().await,
        std::slice::from_ref(&activation.activation_id)
    );
    server.admin(&activation.activation_id, "approve").await;
    assert!(server.pending().await.is_empty());
    let hs = client.handshake().await.unwrap();
    assert_eq!(hs.status, "approved");
    assert_eq!(
        hs.production_number.as_deref(),
        Some(activation.production_number.as_str())
    );
    assert_eq!(hs.server_time.iat, NOW);
    assert_eq!(client.trusted_time_floor(), Some(NOW));

    // The signed activation code, verified locally against the built-in keys.
    let code = client.activation_code(NOW).await.unwrap();
    let claims = code.descriptor.claims();
    assert_eq!(claims.sub, activation.production_number);
    assert_eq!(claims.device_id, "device-e2e-1");
    assert_eq!(claims.status, "approved");
    assert_eq!(claims.extras["shop"], 7);

    // Online: sent at once.
    let outbox = Outbox::open(open_store(queue_dir.path())).await.unwrap();
    let mut sent = Vec::new();
    for i in 1..=2 {
        match outbox
            .submit(&client, sale(1000 * i, "Kaffe"), None, NOW * 1000)
            .await
            .unwrap()
        {
            Submitted::Sent(t) => sent.push(t),
            Submitted::Queued(k) => panic!("queued {k} while online"),
            Submitted::Refused { key, error } => panic!("{key} refused: {error:?}"),
        }
    }
    assert_eq!(sent.iter().map(|t| t.sequence).collect::<Vec<_>>(), [1, 2]);

    // The network goes down: the till keeps selling, everything is queued on disk.
    server.stop().await;
    let own_key = IdempotencyKey::new("kassa1-receipt-000003").unwrap();
    let r = outbox
        .submit(
            &client,
            sale(3000, "Bulle"),
            Some(own_key.clone()),
            NOW * 1000,
        )
        .await
        .unwrap();
    assert_eq!(r, Submitted::Queued(own_key.clone()));
    for i in 4..=5 {
        let r = outbox
            .submit(&client, sale(1000 * i, "Te"), None, NOW * 1000 + i)
            .await
            .unwrap();
        assert!(matches!(r, Submitted::Queued(_)));
    }
    assert_eq!(outbox.len(), 3);
    let err = outbox.last_error().unwrap();
    assert!(err.code == "network" || err.code == "timeout", "{err:?}");
    let queued_keys: Vec<IdempotencyKey> = outbox
        .entries()
        .into_iter()
        .map(|e| e.idempotency_key)
        .collect();
    assert_eq!(queued_keys[0], own_key);

    // The app is restarted without network: it starts from its stored descriptor and
    // trusted time floor, and finds its queue intact.
    let floor = client.trusted_time_floor().unwrap();
    let trusted = client.config().trusted_keys.clone();
    drop(outbox);
    drop(client);
    let client = client_for_offline(&server, trusted, &code.jws, floor, &activation);
    let outbox = Outbox::open(open_store(queue_dir.path())).await.unwrap();
    assert_eq!(outbox.len(), 3);
    // The register's witness, the last receipt it was given, was kept with the queue.
    assert_eq!(outbox.witness().as_ref(), Some(&sent[1].receipt));
    assert_eq!(
        outbox
            .entries()
            .into_iter()
            .map(|e| e.idempotency_key)
            .collect::<Vec<_>>(),
        queued_keys
    );
    // Still down: a sync changes nothing and loses nothing.
    let r = outbox.sync_now(&client, NOW * 1000 + 10).await;
    assert!(r.stopped_by.as_ref().unwrap().is_transient());
    assert_eq!(outbox.len(), 3);

    // The server comes back (same port, same database): the queue drains.
    server.restart().await;
    let r = outbox.sync_now(&client, NOW * 1000 + 20).await;
    assert!(r.stopped_by.is_none(), "{:?}", r.stopped_by);
    assert_eq!(r.sent.len(), 3);
    assert_eq!(r.sent[0].0, own_key);
    assert!(outbox.is_empty());
    assert!(outbox.last_error().is_none());
    assert_eq!(outbox.witness().as_ref(), Some(&r.sent[2].1.receipt));
    assert!(r.witness_problem.is_none());

    // A crash after the server stored a transaction but before the queue forgot it:
    // the resend with the same key gets the same transaction back.
    let key = IdempotencyKey::new("kassa1-receipt-000006").unwrap();
    let first = client
        .submit_transaction(&sale(6000, "Kaka"), &key)
        .await
        .unwrap();
    outbox
        .enqueue(sale(6000, "Kaka"), Some(key.clone()), NOW * 1000 + 30)
        .await
        .unwrap();
    let r = outbox.sync(&client, NOW * 1000 + 30).await;
    assert_eq!(r.sent.len(), 1);
    assert_eq!(r.sent[0].1.id, first.id);
    assert_eq!(r.sent[0].1.sequence, first.sequence);

    // The server holds each transaction once, and the receipt chain verifies.
    let all = client.list_transactions().await.unwrap();
    assert_eq!(all.len(), 6, "{all:#?}");
    assert_eq!(
        all.iter().map(|t| t.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    let totals: Vec<i64> = all.iter().map(|t| t.transaction.total).collect();
    assert_eq!(totals, [1000, 2000, 3000, 4000, 5000, 6000]);
    let ids: HashSet<&str> = all.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 6);
    let receipts = client.verify_receipts(None, &all).unwrap();
    assert_eq!(receipts.len(), 6);
    assert!(
        receipts
            .iter()
            .all(|r| r.sub == activation.production_number)
    );
    // A later run continues the chain from the last receipt the app kept.
    let tail = client
        .verify_receipts(Some(&all[3].receipt), &all[4..])
        .unwrap();
    assert_eq!(tail[0].seq, 5);
    let one = client.get_transaction(&all[2].id).await.unwrap();
    assert_eq!(one, all[2]);
    server.stop().await;
}

/// The register as a witness of the server's history: the receipts it was given must
/// still be in the server's chain. A database restored from an older backup (sales the
/// register saw are gone, and new ones take their sequence numbers) is found, though
/// the chain the server holds is intact on its own and passes the server's own audit.
#[tokio::test]
async fn the_register_witnesses_the_servers_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), NOW).await;
    let (client, _) = approved_client(&server).await;
    let mut receipts = Vec::new();
    let mut sell = async |total: i64| {
        let key = IdempotencyKey::generate().unwrap();
        let stored = client.submit_transaction(&sale(total, "Kaffe"), &key).await;
        receipts.push(stored.unwrap().receipt);
    };
    for total in [1000, 2000, 3000] {
        sell(total).await;
    }
    let backup = dir.path().join("before-sales-4-and-5.db");
    tillgate_server::backup::backup(&server.database_url(), &backup)
        .await
        .unwrap();
    for total in [4000, 5000] {
        sell(total).await;
    }
    let witness = receipts[4].clone();
    let history = client.verify_history(Some(&witness)).await.unwrap();
    assert_eq!(history.transactions.len(), 5);
    assert_eq!(history.receipts[4].seq, 5);
    assert_eq!(history.transactions[4].receipt, witness);
    // The quick form fetches from the witness on.
    let since = client.verify_history_since(&witness).await.unwrap();
    assert_eq!(since.transactions, history.transactions[4..]);
    let since = client.verify_history_since(&receipts[2]).await.unwrap();
    assert_eq!(since.receipts, history.receipts[2..]);
    let e = client.verify_history_since("x.y.z").await.unwrap_err();
    assert_eq!(e.code(), "invalid_witness", "{e}");

    // The operator restores the backup taken before sales 4 and 5 (once the stopped
    // server has let go of the database: its lock is refused until then).
    restore(&mut server, &backup).await;
    // The server's chain alone is intact, three sales long ...
    assert_eq!(client.verify_history(None).await.unwrap().receipts.len(), 3);
    // ... but the register was given five.
    let e = client.verify_history(Some(&witness)).await.unwrap_err();
    assert_eq!(e.code(), "witness_mismatch", "{e}");
    assert!(e.to_string().contains("ends at sequence 3"), "{e}");
    let e = client.verify_history_since(&witness).await.unwrap_err();
    assert_eq!(e.code(), "witness_mismatch", "{e}");
    assert!(e.to_string().contains("holds no receipt"), "{e}");
    // New sales take sequence numbers 4 and 5 with other receipts: still found.
    let mut again = Vec::new();
    for total in [4000, 5000] {
        let key = IdempotencyKey::generate().unwrap();
        let stored = client.submit_transaction(&sale(total, "Kaffe"), &key).await;
        again.push(stored.unwrap().receipt);
    }
    let e = client.verify_history(Some(&witness)).await.unwrap_err();
    assert_eq!(e.code(), "witness_mismatch", "{e}");
    assert!(e.to_string().contains("another receipt"), "{e}");
    let e = client.verify_history_since(&witness).await.unwrap_err();
    assert!(e.to_string().contains("another receipt"), "{e}");
    // What the register saw before the backup, and what it saw since, still holds.
    for w in [&receipts[2], &again[1]] {
        assert_eq!(
            client.verify_history(Some(w)).await.unwrap().receipts.len(),
            5
        );
    }
    let since = client.verify_history_since(&receipts[2]).await.unwrap();
    let seqs: Vec<u64> = since.receipts.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
    server.stop().await;
}

/// Stops the server, restores `backup` over its database (once the stopped server has
/// let go of it: its lock is refused until then) and starts it again.
async fn restore(server: &mut Server, backup: &std::path::Path) {
    server.stop().await;
    let mut tries = 0;
    while let Err(e) = tillgate_server::backup::restore(
        &server.database_url(),
        backup,
        tillgate_server::db::schema_version(),
        NOW,
    )
    .await
    {
        tries += 1;
        assert!(tries < 50, "restore: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.restart().await;
}

#[tokio::test]
async fn the_outbox_keeps_the_registers_witness() {
    let dir = tempfile::tempdir().unwrap();
    let queue_dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), NOW).await;
    let (client, _) = approved_client(&server).await;
    let outbox = Outbox::open(open_store(queue_dir.path())).await.unwrap();
    let sell = async |outbox: &Outbox, total: i64| match outbox
        .submit(&client, sale(total, "Kaffe"), None, NOW * 1000)
        .await
        .unwrap()
    {
        Submitted::Sent(stored) => stored.receipt,
        Submitted::Queued(k) => panic!("queued {k}"),
        Submitted::Refused { key, error } => panic!("{key} refused: {error:?}"),
    };
    let mut receipts = Vec::new();
    for total in [1000, 2000, 3000] {
        receipts.push(sell(&outbox, total).await);
        // Every stored sale's receipt moves the witness.
        assert_eq!(outbox.witness().as_ref(), receipts.last());
    }
    let backup = dir.path().join("before-sales-4-and-5.db");
    tillgate_server::backup::backup(&server.database_url(), &backup)
        .await
        .unwrap();
    for total in [4000, 5000] {
        receipts.push(sell(&outbox, total).await);
    }
    let history = outbox.verify_history(&client).await.unwrap();
    assert_eq!(history.receipts.len(), 5);
    assert_eq!(
        outbox
            .verify_history_since(&client)
            .await
            .unwrap()
            .receipts
            .len(),
        1
    );
    assert_eq!(outbox.witness().as_ref(), Some(&receipts[4]));
    assert_eq!(outbox.witness_problem(), None);

    restore(&mut server, &backup).await;
    // The app restarts too: the witness was kept with its queue.
    drop(outbox);
    let outbox = Outbox::open(open_store(queue_dir.path())).await.unwrap();
    assert_eq!(outbox.witness().as_ref(), Some(&receipts[4]));
    for e in [
        outbox.verify_history(&client).await.unwrap_err(),
        outbox.verify_history_since(&client).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), "witness_mismatch", "{e}");
    }
    // A sale after the restore gets sequence 4 again, and its receipt is not the one
    // the witness (receipt 5) links back to: two signed receipts for sequence 4, a fork,
    // seen the moment the server answers, while the sale itself is stored.
    let fourth = sell(&outbox, 4000).await;
    assert_ne!(fourth, receipts[3]);
    let problem = outbox.witness_problem().unwrap();
    assert_eq!(
        (problem.code.as_str(), &problem.receipt),
        ("witness_mismatch", &fourth)
    );
    // The next one is another receipt for sequence 5; the first problem stays as the
    // evidence.
    let fifth = sell(&outbox, 5000).await;
    assert_eq!(outbox.witness_problem().unwrap().receipt, fourth);
    assert_eq!(outbox.witness().as_ref(), Some(&receipts[4]));
    assert_eq!(outbox.len(), 0);
    // The operator has dealt with it: the register starts witnessing afresh, and the
    // next check takes the server's chain as it now is.
    outbox.reset_witness().await.unwrap();
    assert_eq!(
        outbox.verify_history(&client).await.unwrap().receipts.len(),
        5
    );
    assert_eq!(outbox.witness().as_ref(), Some(&fifth));
    assert_eq!(outbox.witness_problem(), None);
    server.stop().await;
}

/// A file store whose witness writes fail while `full` is set (a full disk).
struct FullForWitness {
    files: FileStore,
    full: std::sync::atomic::AtomicBool,
}

impl QueueStore for FullForWitness {
    fn load(&self) -> tillgate_client::Result<tillgate_client::StoreContents> {
        self.files.load()
    }
    fn save(&self, entry: &tillgate_client::QueuedTransaction) -> tillgate_client::Result<()> {
        self.files.save(entry)
    }
    fn remove(&self, id: u64) -> tillgate_client::Result<()> {
        self.files.remove(id)
    }
    fn remove_corrupt(&self, name: &str) -> tillgate_client::Result<()> {
        self.files.remove_corrupt(name)
    }
    fn save_witness(&self, record: &tillgate_client::WitnessRecord) -> tillgate_client::Result<()> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ClientError::Storage("no space left on device".into()));
        }
        self.files.save_witness(record)
    }
}

#[tokio::test]
async fn a_witness_that_cannot_be_written_never_holds_back_a_sale() {
    let dir = tempfile::tempdir().unwrap();
    let queue_dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), NOW).await;
    let (client, _) = approved_client(&server).await;
    let store = Arc::new(FullForWitness {
        files: FileStore::open(queue_dir.path()).unwrap(),
        full: false.into(),
    });
    let outbox = Outbox::open(store.clone()).await.unwrap();
    outbox
        .submit(&client, sale(1000, "Kaffe"), None, NOW * 1000)
        .await
        .unwrap();
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    for total in [2000, 3000] {
        outbox
            .enqueue(sale(total, "Bulle"), None, NOW * 1000)
            .await
            .unwrap();
    }
    let r = outbox.sync_now(&client, NOW * 1000 + 1).await;
    // Both sent; the failed witness writes are reported, and stop nothing.
    assert_eq!(r.sent.len(), 2);
    assert!(r.stopped_by.is_none(), "{:?}", r.stopped_by);
    assert_eq!(outbox.len(), 0);
    assert_eq!(outbox.last_error().unwrap().code, "storage_error");
    assert_eq!(outbox.witness().as_ref(), Some(&r.sent[1].1.receipt));
    // The disk has room again: the next sale writes the witness, which a restart finds.
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    let last = match outbox
        .submit(&client, sale(4000, "Te"), None, NOW * 1000 + 2)
        .await
        .unwrap()
    {
        Submitted::Sent(stored) => stored.receipt,
        Submitted::Queued(k) => panic!("queued {k}"),
        Submitted::Refused { key, error } => panic!("{key} refused: {error:?}"),
    };
    assert!(outbox.last_error().is_none());
    // The app restarts: the store's lock goes with the outbox.
    drop((outbox, store));
    let reopened = Outbox::open(open_store(queue_dir.path())).await.unwrap();
    assert_eq!(reopened.witness(), Some(last));
    server.stop().await;
}

/// A client as an app builds it at a start without network: key and floor from its
/// storage, the stored descriptor verified offline.
fn client_for_offline(
    server: &Server,
    trusted: TrustedKeys,
    descriptor_jws: &str,
    floor: i64,
    activation: &Activation,
) -> Client {
    // (The trusted keys are built into a real app; here they were read before the stop.)
    let mut config = ClientConfig::new(server.url(), trusted);
    config.device_id = Some("device-e2e-1".into());
    config.application_package = Some("com.example.pos".into());
    config.timeout = Duration::from_secs(3);
    config.connect_timeout = Duration::from_secs(1);
    let client = Client::new(config).unwrap();
    client.set_api_key(activation.api_key.clone());
    client.restore_trusted_time_floor(floor);
    let verified = client
        .verify_stored_descriptor(descriptor_jws, NOW + 60)
        .unwrap();
    assert_eq!(verified.claims().sub, activation.production_number);
    // A device clock turned back a day is noticed offline.
    let e = client
        .verify_stored_descriptor(descriptor_jws, NOW - DAY)
        .unwrap_err();
    assert_eq!(e.code(), "clock_rolled_back");
    client
}

#[tokio::test]
async fn expired_key_is_renewed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), NOW).await;
    let (client, activation) = approved_client(&server).await;
    let old_key = client.api_key().unwrap();

    // A day after validTo the key is expired; the app renews it.
    server.clock.set(T2030 + 366 * DAY);
    let e = client.handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::KeyExpired { .. }), "{e:?}");
    // The activation code needs a usable key too.
    let e = client.activation_code(NOW).await.unwrap_err();
    assert_eq!(e.code(), "key_expired");

    // A bad period is refused locally, nothing is sent.
    let mut renewal = RenewRequest {
        production_number: activation.production_number.clone(),
        device_id: "device-e2e-1".into(),
        valid_from: "2031-01-01T00:00:00Z".into(),
        valid_to: "2032-06-01T00:00:00Z".into(),
        descriptor: None,
    };
    assert_eq!(
        client.renew(&renewal).await.unwrap_err().code(),
        "invalid_activation_request"
    );
    renewal.valid_to = "2032-01-01T00:00:00Z".into();
    let renewed = client.renew(&renewal).await.unwrap();
    assert_eq!(renewed.status, "approved");
    assert_ne!(renewed.api_key, old_key);
    let hs = client.handshake().await.unwrap();
    assert_eq!(hs.valid_to.as_deref(), Some("2032-01-01T00:00:00Z"));
    // The old key stops working, with its own error: repeat the renewal, do not
    // activate again.
    client.set_api_key(old_key);
    let e = client.handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::KeyReplaced { .. }), "{e:?}");
    assert!(e.is_auth() && e.http_status() == Some(401));
}

#[tokio::test]
async fn rejected_and_revoked_registrations() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), NOW).await;
    let client = client_for(&server).await;
    let a = client.activate(&request()).await.unwrap();
    server.admin(&a.activation_id, "reject").await;
    let e = client.handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::Rejected { .. }), "{e:?}");

    let (client, a) = approved_client(&server).await;
    server.admin(&a.activation_id, "revoke").await;
    let e = client.handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::Revoked { .. }), "{e:?}");
    // Queued sales are kept when the register is refused.
    let queue = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(open_store(queue.path())).await.unwrap();
    let r = outbox
        .submit(&client, sale(100, "Kaffe"), None, 0)
        .await
        .unwrap();
    assert!(matches!(r, Submitted::Queued(_)));
    assert_eq!(outbox.last_error().unwrap().code, "revoked");

    // Unknown key: 401.
    client.set_api_key(tillgate_client::core::generate_api_key(40).unwrap());
    let e = client.handshake().await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
}

#[tokio::test]
async fn products_delta_sync() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), NOW).await;
    let (client, _) = approved_client(&server).await;
    let product = |id: &str, name: &str, price: i64| Product {
        id: id.into(),
        name: name.into(),
        price,
        currency: "SEK".into(),
        vat_rate: 1200,
        barcode: None,
        active: true,
        updated_at: None,
    };
    client
        .put_product(&product("kaffe", "Kaffe", 2500))
        .await
        .unwrap();
    client
        .put_product(&product("bulle", "Bulle", 3000))
        .await
        .unwrap();

    let mut catalogue = ProductCatalogue::default();
    server.clock.advance(60);
    let s = client.sync_products(&mut catalogue).await.unwrap();
    assert_eq!(s.changed, 2);
    assert_eq!(catalogue.products.len(), 2);
    let rve = catalogue.rve.clone().unwrap();

    // Nothing changed: nothing travels.
    server.clock.advance(60);
    assert_eq!(
        client.sync_products(&mut catalogue).await.unwrap().changed,
        0
    );

    // One new, one withdrawn: only those two come back.
    server.clock.advance(60);
    client
        .put_product(&product("te", "Te", 2000))
        .await
        .unwrap();
    let mut gone = product("bulle", "Bulle", 3000);
    gone.active = false;
    client.put_product(&gone).await.unwrap();
    server.clock.advance(60);
    let s = client.sync_products(&mut catalogue).await.unwrap();
    assert_eq!(s.changed, 2);
    assert_ne!(catalogue.rve.as_deref(), Some(rve.as_str()));
    let mut on_sale: Vec<&str> = catalogue.active().map(|p| p.name.as_str()).collect();
    on_sale.sort_unstable();
    assert_eq!(on_sale, ["Kaffe", "Te"]);
    assert_eq!(catalogue.products["kaffe"].price, 2500);

    // A catalogue import larger than a page, all in one second: one sync gets it all,
    // page after page.
    for i in 0..1_010 {
        client
            .put_product(&product(&format!("item-{i:04}"), "Item", 100 + i))
            .await
            .unwrap();
    }
    let s = client.sync_products(&mut catalogue).await.unwrap();
    assert_eq!(s.changed, 1_010);
    assert_eq!(catalogue.products.len(), 1_013);
    assert_eq!(catalogue.products["item-1009"].price, 1_109);
    assert_eq!(
        client.sync_products(&mut catalogue).await.unwrap().changed,
        0
    );
}
