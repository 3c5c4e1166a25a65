//! `tillgate-load`: a bounded load run against a running tillgate-server on loopback.
//!
//! Registers (and approves, with the admin key) a few cash registers, then for a fixed
//! time keeps N connections busy with authenticated `GET /auth/handshake`, and then with
//! `POST /transactions` (a unique `Idempotency-Key` per request). Every answer must be
//! 200 / 201: any other status or transport error counts as an error. Prints requests/s,
//! p50 and p99 latency per phase, then checks that each register stores exactly the
//! transactions acknowledged to it, once each, and that its receipt chain verifies with
//! core.
//!
//! ```text
//! tillgate-load --base http://127.0.0.1:8080 [--conns 64] [--secs 5] [--registers 8]
//! ```
//! Exits 1 on any error.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tillgate_reliability::{Api, CORP_A, CORP_B, Reg, percentile, sale};

struct Args {
    base: String,
    conns: usize,
    secs: u64,
    registers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        base: String::new(),
        conns: 64,
        secs: 5,
        registers: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => a.base = val()?,
            "--conns" => a.conns = val()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--secs" => a.secs = val()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--registers" => {
                a.registers = val()?.parse().map_err(|e| format!("--registers: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.base.is_empty() || a.conns == 0 || a.registers == 0 || a.secs == 0 {
        return Err("usage: tillgate-load --base URL [--conns 64] [--secs 5] [--registers 8] (the server must run with the admin key of tillgate_reliability::ADMIN_KEY)".into());
    }
    Ok(a)
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    /// (register index, transaction id) of acknowledged transactions.
    acked: Vec<(usize, String)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Handshake,
    Transactions,
}

async fn worker(
    base: String,
    reg: Reg,
    reg_index: usize,
    worker: usize,
    phase: Phase,
    until: Instant,
) -> Outcome {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut out = Outcome::default();
    let mut i = 0u64;
    while Instant::now() < until && i < 10_000_000 {
        let start = Instant::now();
        let result = match phase {
            Phase::Handshake => {
                http.get(format!("{base}/auth/handshake"))
                    .bearer_auth(&reg.key)
                    .send()
                    .await
            }
            Phase::Transactions => {
                http.post(format!("{base}/transactions"))
                    .bearer_auth(&reg.key)
                    .header("Idempotency-Key", format!("load-{worker}-{i}"))
                    .json(&sale(1000 + (i % 500) as i64, "Kaffe"))
                    .send()
                    .await
            }
        };
        let want = if phase == Phase::Handshake { 200 } else { 201 };
        match result {
            Ok(r) if r.status().as_u16() == want => {
                let ok = if phase == Phase::Transactions {
                    match r.json::<serde_json::Value>().await {
                        Ok(v) => {
                            out.acked
                                .push((reg_index, v["id"].as_str().unwrap_or("").to_owned()));
                            true
                        }
                        Err(_) => false,
                    }
                } else {
                    r.bytes().await.is_ok()
                };
                if ok {
                    out.latencies.push(start.elapsed().as_micros() as u64);
                } else {
                    out.errors += 1;
                    out.first_error.get_or_insert("body cut off".into());
                }
            }
            Ok(r) => {
                out.errors += 1;
                let s = r.status();
                let body = r.text().await.unwrap_or_default();
                out.first_error.get_or_insert(format!("{s}: {body}"));
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e.to_string());
            }
        }
        i += 1;
    }
    out
}

async fn run_phase(args: &Args, regs: &[Reg], phase: Phase, name: &str) -> Outcome {
    let until = Instant::now() + Duration::from_secs(args.secs);
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..args.conns {
        let r = w % regs.len();
        handles.push(tokio::spawn(worker(
            args.base.clone(),
            regs[r].clone(),
            r,
            w,
            phase,
            until,
        )));
    }
    let mut all = Outcome::default();
    for h in handles {
        match h.await {
            Ok(o) => {
                all.latencies.extend(o.latencies);
                all.errors += o.errors;
                all.acked.extend(o.acked);
                if all.first_error.is_none() {
                    all.first_error = o.first_error;
                }
            }
            Err(e) => {
                all.errors += 1;
                all.first_error.get_or_insert(e.to_string());
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies.sort_unstable();
    let n = all.latencies.len();
    println!(
        "load {name}: {} connections, {} s: {n} ok, {} errors, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.conns,
        args.secs,
        all.errors,
        n as f64 / elapsed,
        percentile(&all.latencies, 0.50) as f64 / 1000.0,
        percentile(&all.latencies, 0.99) as f64 / 1000.0,
        all.latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    if let Some(e) = &all.first_error {
        println!("  first error: {e}");
    }
    all
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let api = Api::new(&args.base);
    let mut regs = Vec::new();
    for r in 0..args.registers {
        let corp = if r % 2 == 0 { CORP_A } else { CORP_B };
        regs.push(api.register(corp, &format!("load-dev-{r}")).await);
    }
    let mut passed = 0;
    let mut failed = 0;
    let hs = run_phase(&args, &regs, Phase::Handshake, "handshake").await;
    if hs.errors == 0 && !hs.latencies.is_empty() {
        passed += 1;
    } else {
        failed += 1;
    }
    let tx = run_phase(&args, &regs, Phase::Transactions, "transactions").await;
    if tx.errors == 0 && !tx.latencies.is_empty() {
        passed += 1;
    } else {
        failed += 1;
    }

    // Everything acknowledged under load is stored once, and nothing else is: the phase
    // allows no errors, so each register holds exactly the transactions acknowledged to
    // it (a request that failed may have been committed unacknowledged: with errors, only
    // "acknowledged is stored" can hold). Every chain verifies.
    let trusted = api.trusted_keys().await;
    let mut durable_ok = true;
    for (r, reg) in regs.iter().enumerate() {
        let items = api.all_transactions(&reg.key).await;
        let acked_ids: Vec<&str> = tx
            .acked
            .iter()
            .filter(|(i, _)| *i == r)
            .map(|(_, id)| id.as_str())
            .collect();
        let acked: std::collections::HashSet<&str> = acked_ids.iter().copied().collect();
        let stored: std::collections::HashSet<&str> =
            items.iter().filter_map(|t| t["id"].as_str()).collect();
        let receipts: Vec<&str> = items.iter().filter_map(|t| t["receipt"].as_str()).collect();
        let chain = tillgate_core::verify_receipt_chain(&receipts, &trusted);
        let mut problems = Vec::new();
        if acked.contains("") {
            problems.push("an acknowledgement without an id".to_owned());
        }
        if acked.len() != acked_ids.len() {
            problems.push(format!(
                "{} ids acknowledged more than once",
                acked_ids.len() - acked.len()
            ));
        }
        if stored.len() != items.len() {
            problems.push(format!(
                "{} ids stored more than once",
                items.len() - stored.len()
            ));
        }
        if !acked.is_subset(&stored) {
            problems.push(format!(
                "{} acknowledged ids not stored",
                acked.difference(&stored).count()
            ));
        }
        if tx.errors == 0 && items.len() != acked_ids.len() {
            problems.push(format!(
                "{} stored but {} acknowledged",
                items.len(),
                acked_ids.len()
            ));
        }
        if let Err(e) = &chain {
            problems.push(format!("receipt chain does not verify: {e}"));
        }
        if !problems.is_empty() {
            durable_ok = false;
            println!(
                "  register {r}: {} acknowledged, {} stored: {}",
                acked_ids.len(),
                items.len(),
                problems.join("; ")
            );
        }
    }
    println!(
        "load durability: {} acknowledged transactions, each register stores exactly those, \
         once{}; receipt chains verify: {}",
        tx.acked.len(),
        if tx.errors == 0 {
            ""
        } else {
            " (not checked for equality: the phase had errors)"
        },
        if durable_ok { "yes" } else { "NO" }
    );
    if durable_ok {
        passed += 1;
    } else {
        failed += 1;
    }
    println!("load: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
