//! Crash safety: many concurrent clients ingest transactions while the real server is
//! killed with SIGKILL at random moments and restarted on the same data. Afterwards every
//! acknowledged transaction (HTTP 201 received) is stored exactly once under its
//! idempotency key, each register's sequence is gapless from 1, and each register's
//! receipt chain verifies with core's `verify_receipt_chain` against the server's JWKS.
//! Clients retry whatever was not acknowledged with the same idempotency key. The clients
//! keep sending until the last fault is over, so every fault lands under load: each kill
//! asserts that clients are still sending, and the run asserts that the faults cut
//! requests off (transport errors or 5xx answers were seen).
//!
//! On PostgreSQL the same load also runs against two server replicas sharing the
//! database, each client alternating between them request by request (so a retry after a
//! cut-off goes to the other replica), while one replica at a time is killed and
//! restarted.
//!
//! Run by `scripts/test-reliability.sh`; by hand:
//! `cargo build --release -p tillgate-server && cargo test -p tillgate-reliability --test crash -- --ignored --nocapture`
//! (`TILLGATE_RELIABILITY_SEED=<n>` repeats a run's kill timings).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tillgate_core::verify_receipt_chain;
use tillgate_reliability::{Api, CORP_A, CORP_B, Reg, Rng, ServerProcess, Storage, sale};
use tokio::task::JoinSet;

const REGISTERS: usize = 4;
const CLIENTS_PER_REGISTER: usize = 4;
/// Each client sends at least this many, and keeps sending until the last fault is over
/// (then stops: there is no other bound, so the load always outlasts the faults).
const MIN_TX_PER_CLIENT: usize = 25;
const KILLS: usize = 5;
const DEADLINE: Duration = Duration::from_secs(150);

#[derive(Debug, Clone)]
struct Ack {
    id: String,
    seq: i64,
    receipt: String,
    /// The 201 carried `Idempotent-Replayed: true`: the server had committed it before a
    /// crash cut the first answer off.
    replayed: bool,
    /// Acknowledged by another replica than the one an earlier attempt was sent to.
    other_replica: bool,
}

/// At most this many replicas serve the clients.
const MAX_REPLICAS: usize = 2;

#[derive(Default)]
struct Stats {
    attempts: AtomicU64,
    transport_errors: AtomicU64,
    server_errors: AtomicU64,
    /// Clients still in their sending loop.
    active_clients: AtomicUsize,
    /// Requests sent and not yet answered, per replica.
    in_flight: [AtomicUsize; MAX_REPLICAS],
    /// 201 answers, per replica.
    acked: [AtomicU64; MAX_REPLICAS],
}

/// Counts a client as active while it lives.
struct Active(Arc<Stats>);

impl Active {
    fn new(stats: &Arc<Stats>) -> Active {
        stats.active_clients.fetch_add(1, Ordering::SeqCst);
        Active(stats.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One till: sends its sales one after the other, each attempt to the next of `apis` in
/// turn (starting at `first`), like a round-robin load balancer: with two replicas a retry
/// always goes to the other one.
async fn client(
    apis: Vec<Api>,
    first: usize,
    key: String,
    tag: String,
    killer_done: Arc<AtomicBool>,
    stats: Arc<Stats>,
    deadline: Instant,
) -> Result<Vec<(String, Ack)>, String> {
    let _active = Active::new(&stats);
    let mut acks = Vec::new();
    let mut attempt = first;
    for i in 0.. {
        if i >= MIN_TX_PER_CLIENT && killer_done.load(Ordering::SeqCst) {
            break;
        }
        let idem = format!("{tag}-{i}");
        let body = sale(100 + i as i64, &idem);
        let mut sent_to = HashSet::new();
        loop {
            if Instant::now() > deadline {
                return Err(format!("{idem}: not acknowledged before the deadline"));
            }
            let replica = attempt % apis.len();
            attempt += 1;
            stats.attempts.fetch_add(1, Ordering::Relaxed);
            stats.in_flight[replica].fetch_add(1, Ordering::SeqCst);
            let sent = apis[replica].post_tx(&key, &idem, &body).await;
            stats.in_flight[replica].fetch_sub(1, Ordering::SeqCst);
            let other_replica = sent_to.iter().any(|&r| r != replica);
            sent_to.insert(replica);
            match sent {
                Ok(r) if r.status() == 201 => {
                    let replayed = r
                        .headers()
                        .get("idempotent-replayed")
                        .is_some_and(|v| v == "true");
                    // The body can still be cut off by a kill: then retry.
                    let Ok(v) = r.json::<Value>().await else {
                        stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    stats.acked[replica].fetch_add(1, Ordering::Relaxed);
                    acks.push((
                        idem.clone(),
                        Ack {
                            id: v["id"].as_str().unwrap_or_default().to_owned(),
                            seq: v["sequence"].as_i64().unwrap_or(-1),
                            receipt: v["receipt"].as_str().unwrap_or_default().to_owned(),
                            replayed,
                            other_replica,
                        },
                    ));
                    break;
                }
                Ok(r) if r.status().is_server_error() => {
                    stats.server_errors.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => {
                    let status = r.status();
                    return Err(format!(
                        "{idem}: unexpected {status}: {}",
                        r.text().await.unwrap_or_default()
                    ));
                }
                Err(_) => {
                    stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(acks)
}

/// What goes wrong, five times, under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The server is killed with SIGKILL and started again on the same data.
    KillServer,
    /// PostgreSQL ends every connection of the server (`pg_terminate_backend`); the
    /// same server process goes on.
    DropDbConnections,
    /// Two replicas share the (PostgreSQL) database and both serve the clients; one of
    /// them, chosen at random, is killed with SIGKILL and started again while the other
    /// goes on serving.
    KillOneReplica,
}

async fn crash_safety(storage: Storage, fault: Fault) {
    let mut rng = Rng::from_env();
    println!(
        "crash safety [{}{}]: seed {} (TILLGATE_RELIABILITY_SEED repeats it)",
        storage.name(),
        match fault {
            Fault::KillServer => "",
            Fault::DropDbConnections => ", connections dropped",
            Fault::KillOneReplica => ", two replicas, one killed",
        },
        rng.seed()
    );
    let replicas = if fault == Fault::KillOneReplica {
        MAX_REPLICAS
    } else {
        1
    };
    // Same database; each replica on a port of its own.
    let mut servers = Vec::new();
    for _ in 0..replicas {
        servers.push(ServerProcess::start(&storage, &[]).await);
    }
    let api = servers[0].api();
    let mut regs: Vec<Reg> = Vec::new();
    for r in 0..REGISTERS {
        let corp = if r % 2 == 0 { CORP_A } else { CORP_B };
        regs.push(api.register(corp, &format!("crash-dev-{r}")).await);
    }
    let trusted = api.trusted_keys().await;

    let killer_done = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let deadline = Instant::now() + DEADLINE;
    let mut tasks = Vec::new();
    for (r, reg) in regs.iter().enumerate() {
        for c in 0..CLIENTS_PER_REGISTER {
            // One connection pool per client and replica, like separate tills.
            tasks.push((
                r,
                tokio::spawn(client(
                    servers.iter().map(|s| Api::new(&s.base)).collect(),
                    c,
                    reg.key.clone(),
                    format!("r{r}c{c}"),
                    killer_done.clone(),
                    stats.clone(),
                    deadline,
                )),
            ));
        }
    }

    // The killer: SIGKILL at random moments under load, restart on the same data.
    let mut down_total = Duration::ZERO;
    let mut in_flight_at_faults = 0usize;
    let mut killed = [0usize; MAX_REPLICAS];
    for k in 0..KILLS {
        let wait = rng.range(150, 700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        // The fault must land under load: clients are still sending.
        let active = stats.active_clients.load(Ordering::SeqCst);
        assert!(
            active > 0,
            "fault {}/{KILLS}: no client is sending any more (they stopped before the faults were over)",
            k + 1
        );
        let in_flight: usize = stats
            .in_flight
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .sum();
        match fault {
            Fault::KillServer => {
                in_flight_at_faults += in_flight;
                let server = &mut servers[0];
                server.kill();
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(rng.range(0, 200))).await;
                server.restart().await;
                down_total += t.elapsed();
                println!(
                    "  kill {}/{KILLS} after {wait} ms of load ({active} clients sending, \
                     {in_flight} requests in flight); back up in {} ms",
                    k + 1,
                    t.elapsed().as_millis()
                );
            }
            Fault::KillOneReplica => {
                // At random, but each replica at least once.
                let mut victim = rng.range(0, MAX_REPLICAS as u64) as usize;
                if k == KILLS - 1 && killed.contains(&0) {
                    victim = killed.iter().position(|&n| n == 0).unwrap();
                }
                killed[victim] += 1;
                let survivor = 1 - victim;
                let in_flight = stats.in_flight[victim].load(Ordering::SeqCst);
                in_flight_at_faults += in_flight;
                let acked_before = stats.acked[survivor].load(Ordering::SeqCst);
                servers[victim].kill();
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(rng.range(0, 200))).await;
                // The other replica keeps serving while this one is down: it acknowledges
                // a sale before the restart (waited for, up to 10 s, so that a slow
                // machine's stall is not taken for a replica that stopped serving).
                let waited = Instant::now();
                while stats.acked[survivor].load(Ordering::SeqCst) == acked_before
                    && waited.elapsed() < Duration::from_secs(10)
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let served = stats.acked[survivor].load(Ordering::SeqCst) - acked_before;
                servers[victim].restart().await;
                let down = t.elapsed();
                down_total += down;
                println!(
                    "  kill {}/{KILLS} of replica {victim} after {wait} ms of load ({active} \
                     clients sending, {in_flight} requests in flight to it); back up in {} ms, \
                     replica {survivor} acknowledged {served} meanwhile",
                    k + 1,
                    down.as_millis()
                );
                // The other replica kept serving while this one was down.
                assert!(
                    served > 0,
                    "kill {}/{KILLS}: replica {survivor} acknowledged nothing while replica \
                     {victim} was down for {} ms",
                    k + 1,
                    down.as_millis()
                );
            }
            Fault::DropDbConnections => {
                in_flight_at_faults += in_flight;
                let n = storage.drop_connections().expect("drop connections");
                println!(
                    "  {}/{KILLS}: {n} database connections ended after {wait} ms of load \
                     ({active} clients sending, {in_flight} requests in flight)",
                    k + 1
                );
                assert!(
                    n > 0,
                    "fault {}/{KILLS}: the server had no database connection to end",
                    k + 1
                );
            }
        }
    }
    // Some load on the last incarnation too, then let the clients finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    killer_done.store(true, Ordering::SeqCst);

    let mut acks: Vec<HashMap<String, Ack>> = vec![HashMap::new(); REGISTERS];
    let mut failures = Vec::new();
    for (r, t) in tasks {
        match t.await.expect("client task") {
            Ok(list) => {
                for (idem, ack) in list {
                    assert!(
                        acks[r].insert(idem.clone(), ack).is_none(),
                        "{idem} acknowledged twice by one client"
                    );
                }
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "clients failed: {failures:?}");
    let cut_off = stats.transport_errors.load(Ordering::Relaxed)
        + stats.server_errors.load(Ordering::Relaxed);
    println!(
        "  faults over: {cut_off} requests cut off or answered 5xx; {in_flight_at_faults} \
         requests were in flight at the {KILLS} faults"
    );
    if fault != Fault::DropDbConnections {
        // A kill under load cuts requests off (or answers them 503 while starting):
        // none at all means the kills did not land while the clients were sending.
        assert!(
            cut_off > 0,
            "{KILLS} kills and not one request failed: the kills did not land under load"
        );
    }

    if fault == Fault::DropDbConnections {
        // The same process served throughout.
        assert_eq!(servers[0].starts, 1);
    }
    // Verify on a fresh client, after one more restart for good measure.
    for server in &mut servers {
        server.restart().await;
    }
    let apis: Vec<Api> = servers.iter().map(ServerProcess::api).collect();
    let api = apis[0].clone();
    let mut total = 0usize;
    let mut replayed_acks = 0usize;
    let mut other_replica_acks = 0usize;
    let mut other_replica_replays = 0usize;
    for (r, reg) in regs.iter().enumerate() {
        let items = api.all_transactions(&reg.key).await;
        // Every replica lists the same.
        for other in &apis[1..] {
            assert_eq!(
                other.all_transactions(&reg.key).await,
                items,
                "register {r}: the replicas list different transactions"
            );
        }
        let acked = &acks[r];
        // Exactly once: one stored transaction per idempotency key (the item name carries
        // the key), none missing, none extra.
        let names: Vec<&str> = items
            .iter()
            .map(|t| t["items"][0]["name"].as_str().unwrap_or(""))
            .collect();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "register {r}: an idempotency key is stored more than once"
        );
        assert_eq!(
            items.len(),
            acked.len(),
            "register {r}: {} stored, {} acknowledged",
            items.len(),
            acked.len()
        );
        for (t, name) in items.iter().zip(&names) {
            let ack = acked
                .get(*name)
                .unwrap_or_else(|| panic!("register {r}: stored {name} was never acknowledged"));
            assert_eq!(
                t["id"].as_str(),
                Some(ack.id.as_str()),
                "{name}: id changed"
            );
            assert_eq!(
                t["sequence"].as_i64(),
                Some(ack.seq),
                "{name}: sequence changed"
            );
            assert_eq!(
                t["receipt"].as_str(),
                Some(ack.receipt.as_str()),
                "{name}: receipt changed"
            );
        }
        // Gapless from 1.
        for (i, t) in items.iter().enumerate() {
            assert_eq!(
                t["sequence"].as_i64(),
                Some(i as i64 + 1),
                "register {r}: gap at {i}"
            );
        }
        // The chain verifies, and each receipt is the stored transaction's.
        let receipts: Vec<&str> = items
            .iter()
            .map(|t| t["receipt"].as_str().unwrap_or(""))
            .collect();
        let claims = verify_receipt_chain(&receipts, &trusted)
            .unwrap_or_else(|e| panic!("register {r}: receipt chain does not verify: {e}"));
        for (c, t) in claims.iter().zip(&items) {
            assert_eq!(Some(c.txid.as_str()), t["id"].as_str());
            assert_eq!(Some(c.txh.as_str()), t["txh"].as_str());
            assert_eq!(c.sub, reg.production_number);
        }
        replayed_acks += acked.values().filter(|a| a.replayed).count();
        other_replica_acks += acked.values().filter(|a| a.other_replica).count();
        other_replica_replays += acked
            .values()
            .filter(|a| a.other_replica && a.replayed)
            .count();
        total += items.len();
    }

    // Every key once more: all are replays of the stored transaction, nothing new (the
    // registers side by side: the clients ran until the faults were over, so there may
    // be thousands; with replicas, the keys go to each in turn).
    let mut replays = JoinSet::new();
    for (reg, acked) in regs.iter().cloned().zip(acks.iter().cloned()) {
        let apis = apis.clone();
        replays.spawn(async move {
            let mut keys: Vec<&String> = acked.keys().collect();
            keys.sort();
            for (i, idem) in keys.into_iter().enumerate() {
                let api = &apis[i % apis.len()];
                let ack = &acked[idem];
                let n: i64 = idem.rsplit('-').next().unwrap().parse().unwrap();
                let resp = api
                    .post_tx(&reg.key, idem, &sale(100 + n, idem))
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201, "{idem}");
                assert_eq!(
                    resp.headers()
                        .get("idempotent-replayed")
                        .map(|v| v.to_str().unwrap()),
                    Some("true"),
                    "{idem}"
                );
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["id"].as_str(), Some(ack.id.as_str()), "{idem}");
                assert_eq!(v["sequence"].as_i64(), Some(ack.seq), "{idem}");
                assert_eq!(v["receipt"].as_str(), Some(ack.receipt.as_str()), "{idem}");
            }
            for api in &apis {
                assert_eq!(api.all_transactions(&reg.key).await.len(), acked.len());
            }
        });
    }
    while let Some(done) = replays.join_next().await {
        done.expect("replay check");
    }
    if replicas > 1 {
        println!(
            "  {other_replica_acks} acknowledged by another replica than an earlier attempt \
             went to, {other_replica_replays} of them replays of a sale that an earlier, cut-off \
             attempt had committed; acknowledged per replica: {:?}; kills per replica: {killed:?}",
            stats
                .acked
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        );
    }
    println!(
        "  {total} transactions acknowledged and stored exactly once over {} server starts; \
         {replayed_acks} were committed before a kill cut the answer off (acknowledged on retry); \
         {} attempts, {} transport errors, {} 5xx; receipt chains verify; down {} ms in all",
        servers.iter().map(|s| s.starts).sum::<u32>(),
        stats.attempts.load(Ordering::Relaxed),
        stats.transport_errors.load(Ordering::Relaxed),
        stats.server_errors.load(Ordering::Relaxed),
        down_total.as_millis()
    );
    assert!(total >= REGISTERS * CLIENTS_PER_REGISTER * MIN_TX_PER_CLIENT);
    for (i, server) in servers.iter_mut().enumerate() {
        let logs = server.logs();
        assert!(!logs.contains("panicked"), "server {i} panicked:\n{logs}");
        server.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server; run by scripts/test-reliability.sh"]
async fn crash_safety_sqlite() {
    crash_safety(Storage::sqlite(), Fault::KillServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server and PostgreSQL; run by scripts/test-reliability.sh"]
async fn crash_safety_postgres() {
    if let Some(storage) = Storage::postgres_or_skip("crash_safety_postgres") {
        crash_safety(storage, Fault::KillServer).await;
    }
}

/// PostgreSQL ends the server's connections under load (a failover, a restart of the
/// database, an operator's `pg_terminate_backend`): requests in flight may fail with 503
/// and are retried; nothing acknowledged is lost or doubled, and the server recovers on
/// its own, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server and PostgreSQL; run by scripts/test-reliability.sh"]
async fn postgres_connections_dropped() {
    if let Some(storage) = Storage::postgres_or_skip("postgres_connections_dropped") {
        crash_safety(storage, Fault::DropDbConnections).await;
    }
}

/// Two server replicas on one PostgreSQL database behind a (round-robin) load balancer:
/// each client alternates between them, so a sale cut off at one is retried through the
/// other and must get the same id, sequence and receipt. One replica at a time is killed
/// with SIGKILL under load and restarted while the other keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a release build of tillgate-server and PostgreSQL; run by scripts/test-reliability.sh"]
async fn two_replicas_one_killed_postgres() {
    if let Some(storage) = Storage::postgres_or_skip("two_replicas_one_killed_postgres") {
        crash_safety(storage, Fault::KillOneReplica).await;
    }
}
