//! `tillgate-bench`: measures Tillgate against its baselines in one run and writes
//! `BENCHMARKS.md`. Run it through `scripts/bench.sh` (which builds everything and
//! prepares the node and Kotlin parts); `scripts/bench.sh --quick` only checks that every
//! benchmark still runs.
//!
//! ```text
//! tillgate-bench run [--quick] [--out FILE] [--command TEXT] [--work DIR]
//!                    [--wasm-pkg DIR | --wasm-skip WHY] [--node-dir DIR]
//!                    [--kotlin-cmd CMD | --kotlin-skip WHY] [--pg-url URL]
//! tillgate-bench bare-axum ADDR      (the baseline server; started by `run`)
//! ```

mod db;
mod load;
mod micro;
mod procs;
mod report;
mod stack;
mod writer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use report::{Row, ns, rate, verdict};

/// Command-line options of `run`.
#[derive(Debug, Clone, Default)]
struct Opts {
    quick: bool,
    out: Option<PathBuf>,
    command: String,
    work: PathBuf,
    wasm_pkg: Option<PathBuf>,
    wasm_skip: Option<String>,
    node_dir: PathBuf,
    kotlin_cmd: Option<String>,
    kotlin_skip: Option<String>,
    pg_url: String,
    only: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        command: "scripts/bench.sh".into(),
        work: PathBuf::from("target/bench"),
        node_dir: PathBuf::from("bench/wasm"),
        pg_url: std::env::var("TILLGATE_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        ..Opts::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--out" => o.out = Some(PathBuf::from(val()?)),
            "--command" => o.command = val()?,
            "--work" => o.work = PathBuf::from(val()?),
            "--wasm-pkg" => o.wasm_pkg = Some(PathBuf::from(val()?)),
            "--wasm-skip" => o.wasm_skip = Some(val()?),
            "--node-dir" => o.node_dir = PathBuf::from(val()?),
            "--kotlin-cmd" => o.kotlin_cmd = Some(val()?),
            "--kotlin-skip" => o.kotlin_skip = Some(val()?),
            "--pg-url" => o.pg_url = val()?,
            "--only" => o.only = val()?.split(',').map(str::to_owned).collect(),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Durations and sizes of one mode.
#[derive(Debug, Clone, Copy)]
struct Plan {
    micro: micro::Effort,
    warmup: Duration,
    http_round: Duration,
    http_rounds: usize,
    db_round: Duration,
    db_rounds: usize,
    max_per_client: u64,
    rss_registers: usize,
    rss_tx_per_register: usize,
    rss_load: Duration,
    node_ms: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                micro: micro::Effort {
                    rounds: 1,
                    round_time: Duration::from_millis(30),
                    chain_len: 20,
                },
                warmup: Duration::from_millis(200),
                http_round: Duration::from_millis(700),
                http_rounds: 1,
                db_round: Duration::from_millis(700),
                db_rounds: 1,
                max_per_client: 2_000,
                rss_registers: 200,
                rss_tx_per_register: 50,
                rss_load: Duration::from_secs(1),
                node_ms: 30,
            }
        } else {
            Plan {
                micro: micro::Effort {
                    rounds: 9,
                    round_time: Duration::from_millis(300),
                    chain_len: 1000,
                },
                warmup: Duration::from_secs(1),
                http_round: Duration::from_secs(5),
                http_rounds: 3,
                db_round: Duration::from_secs(4),
                db_rounds: 2,
                max_per_client: 2_000_000,
                rss_registers: 10_000,
                rss_tx_per_register: 100,
                rss_load: Duration::from_secs(10),
                node_ms: 400,
            }
        }
    }
}

/// Collected results.
#[derive(Default)]
struct Results {
    rows: Vec<Row>,
    sweep: Vec<Row>,
    rss: Vec<Row>,
    writer: Vec<Row>,
    breakdown: Vec<Row>,
    notes: Vec<String>,
    /// Sections that failed to run (a broken benchmark, not a missed goal).
    broken: Vec<String>,
}

impl Results {
    fn fail(&mut self, what: &str, goal: &str, e: &str) {
        eprintln!("bench: {what}: {e}");
        self.broken.push(format!("{what}: {e}"));
        self.rows
            .push(Row::not_measured(what, goal, &format!("error: {e}")));
    }
}

fn section(name: &str) {
    eprintln!("bench: == {name}");
}

fn wants(o: &Opts, name: &str) -> bool {
    o.only.is_empty() || o.only.iter().any(|s| s == name)
}

// ---- micro ---------------------------------------------------------------------------

fn run_micro(plan: &Plan, fx: &micro::Fixture, r: &mut Results) {
    section("core micro benchmarks");
    let e = plan.micro;
    time_ratio_row(
        r,
        "descriptor verify, native: `verify_descriptor` vs bare `verify_strict`",
        micro::descriptor_verify(e, fx),
        Some((1.10, "≤ 1.10×")),
    );
    let what =
        "receipt chain verify, 1,000 receipts: `verify_receipt_chain` vs 1,000 × `verify_strict`";
    match micro::receipt_chain(e, fx) {
        Ok(p) => {
            let x = p.base_ns / p.ours_ns;
            r.rows.push(Row {
                what: what.into(),
                ours: ns(p.ours_ns),
                baseline: ns(p.base_ns),
                ratio: format!("{x:.2}× faster"),
                goal: "≥ 1.8× faster".into(),
                verdict: verdict(x >= 1.8),
            });
        }
        Err(err) => r.fail(what, "≥ 1.8× faster", &err),
    }
    for (owned, what, goal) in [
        (
            false,
            "URL token parse (seed path): `UrlTokenRef::parse` (the server's per-request parse) vs `str::split`",
            Some((3.0, "≤ 3×")),
        ),
        (
            true,
            "URL token parse, owned result: `parse_url_token` (copies token, ids and rest out) vs `str::split`",
            None,
        ),
    ] {
        time_ratio_row(r, what, micro::url_token(e, owned), goal);
    }
    r.notes.push(
        "Native rows: the same descriptor and receipts as `core/benches/core.rs`; ours and the \
         baseline alternate in rounds (9 × 300 ms each), each side reports its median ns/op."
            .into(),
    );
}

/// A row of ours against its baseline as "× the time", met when at most `goal` (the
/// ratio and how the goal reads; an info row without one).
fn time_ratio_row(
    r: &mut Results,
    what: &str,
    measured: Result<micro::Pair, String>,
    goal: Option<(f64, &str)>,
) {
    let goal_text = goal.map_or("— (info)", |g| g.1).to_string();
    match measured {
        Ok(p) => {
            let x = p.ours_ns / p.base_ns;
            r.rows.push(Row {
                what: what.into(),
                ours: ns(p.ours_ns),
                baseline: ns(p.base_ns),
                ratio: format!("{x:.2}× the time"),
                goal: goal_text,
                verdict: goal.map_or_else(|| "info".to_string(), |g| verdict(x <= g.0)),
            });
        }
        Err(err) => r.fail(what, &goal_text, &err),
    }
}

// ---- the request stack in-process ---------------------------------------------------------

async fn run_stack(plan: &Plan, work: &std::path::Path, r: &mut Results) {
    section("request stack in-process (no sockets)");
    let what = "in-process, no sockets";
    match stack::measure(work, plan.micro.rounds, plan.micro.round_time).await {
        Ok(c) => {
            for (route, ours) in [
                ("/auth/handshake", c.handshake_ns),
                ("/healthz", c.healthz_ns),
            ] {
                r.breakdown.push(Row {
                    what: format!(
                        "{what}: `app` called as a tower service, server {route} vs a bare axum `Router` (one constant route)"
                    ),
                    ours: ns(ours),
                    baseline: ns(c.bare_ns),
                    ratio: format!("+{} per request ({:.2}×)", ns(ours - c.bare_ns), ours / c.bare_ns),
                    goal: "—".into(),
                    verdict: "info".into(),
                });
            }
        }
        Err(e) => r.fail(what, "—", &e),
    }
}

// ---- wasm in node ----------------------------------------------------------------------

fn run_wasm(o: &Opts, plan: &Plan, fixture_path: &std::path::Path, r: &mut Results) {
    section("wasm in node");
    let goals = [
        (
            "descriptor verify, wasm in node vs @noble/ed25519",
            "≥ 10× faster",
        ),
        (
            "descriptor verify, wasm in node vs node `crypto.verify` (OpenSSL)",
            "≥ 0.9× its speed",
        ),
        (
            "descriptor verify, wasm in node vs WebCrypto `subtle.verify('Ed25519')`",
            "— (info)",
        ),
        ("descriptor verify, wasm in node vs tweetnacl", "— (info)"),
        (
            "wasm size, core alone: verify-only `tillgate-lite` package (.wasm + JS glue, gzip -9)",
            "≤ 45 KiB gzipped",
        ),
        (
            "wasm size, core + client: the full `tillgate` package (.wasm + JS glue, gzip -9)",
            "≤ 120 KiB gzipped",
        ),
    ];
    let skip_all = |r: &mut Results, why: &str| {
        for (w, g) in goals {
            r.rows.push(Row::not_measured(w, g, why));
        }
    };
    let pkg = match (&o.wasm_pkg, &o.wasm_skip) {
        (_, Some(why)) => return skip_all(r, why),
        (Some(p), None) => p.clone(),
        (None, None) => return skip_all(r, "no --wasm-pkg given"),
    };
    let script = o.node_dir.join("bench.mjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(fixture_path)
        .arg(&pkg)
        .arg(plan.node_ms.to_string())
        .arg(if plan.micro.rounds > 1 { "7" } else { "1" })
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let e = format!(
                "node {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            r.broken.push(e.clone());
            eprintln!("bench: {e}");
            return skip_all(r, &e);
        }
        Err(e) => return skip_all(r, &format!("cannot run node: {e}")),
    };
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => {
            r.broken.push(format!("wasm bench output: {e}"));
            return skip_all(r, &format!("unreadable output: {e}"));
        }
    };
    let f = |k: &str| v.pointer(k).and_then(serde_json::Value::as_f64);
    let wasm = f("/ns/wasm").unwrap_or(f64::NAN);
    for (i, (key, label)) in [
        ("noble", "@noble/ed25519"),
        ("nodecrypto", "node crypto.verify"),
        ("webcrypto", "WebCrypto"),
        ("tweetnacl", "tweetnacl"),
    ]
    .into_iter()
    .enumerate()
    {
        let (what, goal) = goals[i];
        match f(&format!("/ns/{key}")) {
            Some(base) => {
                let speed = base / wasm;
                let v = match key {
                    "noble" => verdict(speed >= 10.0),
                    "nodecrypto" => verdict(speed >= 0.9),
                    _ => "info".into(),
                };
                r.rows.push(Row {
                    what: what.into(),
                    ours: ns(wasm),
                    baseline: format!("{} ({label})", ns(base)),
                    ratio: format!(
                        "{speed:.2}× {}",
                        if speed >= 1.0 { "faster" } else { "the speed" }
                    ),
                    goal: goal.into(),
                    verdict: v,
                });
            }
            None => {
                let why = v
                    .pointer(&format!("/errors/{key}"))
                    .and_then(|e| e.as_str())
                    .unwrap_or("no figure")
                    .to_owned();
                r.rows.push(Row::not_measured(what, goal, &why));
            }
        }
    }
    for (i, (key, limit)) in [("core", 45.0), ("client", 120.0)].into_iter().enumerate() {
        let (what, goal) = goals[4 + i];
        let raw = f(&format!("/size/{key}/raw"));
        let gz = f(&format!("/size/{key}/gzip"));
        match (raw, gz) {
            (Some(raw), Some(gz)) => {
                let kib = gz / 1024.0;
                r.rows.push(Row {
                    what: what.into(),
                    ours: format!("{kib:.1} KiB gz ({:.1} KiB raw)", raw / 1024.0),
                    baseline: "—".into(),
                    ratio: "—".into(),
                    goal: goal.into(),
                    verdict: verdict(kib <= limit),
                });
            }
            _ => {
                let why = v
                    .pointer(&format!("/size/{key}/skip"))
                    .and_then(|e| e.as_str())
                    .unwrap_or("no figure")
                    .to_owned();
                r.rows.push(Row::not_measured(what, goal, &why));
            }
        }
    }
    if let Some(files) = v.pointer("/size/core/files").and_then(|f| f.as_str()) {
        r.notes.push(format!("wasm size (core) counts: {files}."));
    }
    r.notes.push(
        "wasm rows: `node bench/wasm/bench.mjs` loads the package's node build and verifies the \
         same descriptor JWS with `verifyDescriptor` (full check: base64, JSON, signature, \
         times); the baselines verify only the raw Ed25519 signature of the same bytes. \
         Libraries alternate in rounds, median ns/op; WebCrypto is awaited per call."
            .into(),
    );
}

// ---- FFI -------------------------------------------------------------------------------

fn run_ffi(
    o: &Opts,
    plan: &Plan,
    fx: &micro::Fixture,
    fixture_dir: &std::path::Path,
    r: &mut Results,
) {
    section("FFI: Kotlin on the JVM vs Rust");
    let what = "FFI call: Kotlin-on-JVM `verifyDescriptor` vs the same call in Rust";
    let goal = "overhead < 5 µs";
    let cmd = match (&o.kotlin_cmd, &o.kotlin_skip) {
        (_, Some(why)) => return r.rows.push(Row::not_measured(what, goal, why)),
        (Some(c), None) => c.clone(),
        (None, None) => {
            return r
                .rows
                .push(Row::not_measured(what, goal, "no --kotlin-cmd given"));
        }
    };
    let rust = match micro::ffi_verify_in_rust(plan.micro, fx) {
        Ok(v) => v,
        Err(e) => return r.fail(what, goal, &e),
    };
    let rounds = if plan.micro.rounds > 1 { 9 } else { 1 };
    let ms = plan.micro.round_time.as_millis().max(30);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} {} {rounds} {ms}", fixture_dir.display()))
        .output();
    let (kotlin, trivial, empty, jna, in_jvm) = match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            (
                field("ns_per_call="),
                field("ns_per_call_trivial="),
                field("ns_per_call_empty="),
                [
                    field("ns_per_call_jna="),
                    field("ns_per_call_trivial_jna="),
                    field("ns_per_call_empty_jna="),
                ],
                // The same Rust calls timed inside that JVM, in rounds alternating with the
                // Kotlin rounds (a library built with tillgate-ffi's `bench-baseline`).
                [
                    field("ns_per_call_rust="),
                    field("ns_per_call_trivial_rust="),
                ],
            )
        }
        Ok(out) => {
            let e = format!(
                "Kotlin bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return r.fail(what, goal, &e);
        }
        Err(e) => return r.fail(what, goal, &e.to_string()),
    };
    // A baseline is (ns, measured in the JVM); labelled as it was measured.
    const SAME_JVM: &str = "Rust, same JVM process, interleaved";
    let label = |in_jvm: bool| if in_jvm { SAME_JVM } else { "Rust" };
    match kotlin {
        Some(k) => {
            // The baseline: the Rust call in the JVM that ran the Kotlin rounds, interleaved
            // with them; without it, this process's figure (measured before the JVM ran).
            let (base, base_in_jvm) = in_jvm[0].map_or((rust, false), |v| (v, true));
            let overhead = k - base;
            r.rows.push(Row {
                what: what.into(),
                ours: ns(k),
                baseline: format!("{} ({})", ns(base), label(base_in_jvm)),
                ratio: format!("+{} per call ({:.2}×)", ns(overhead.max(0.0)), k / base),
                goal: goal.into(),
                verdict: verdict(overhead < 5_000.0),
            });
            if let Some(v) = in_jvm[0] {
                r.rows.push(Row {
                    what: "FFI baseline: Rust `verify_descriptor` in the bench's own process vs in the JVM".into(),
                    ours: ns(rust),
                    baseline: format!("{} ({SAME_JVM})", ns(v)),
                    ratio: format!("{:.2}×", rust / v),
                    goal: "— (info: the same Rust call in another process, before the JVM ran)".into(),
                    verdict: "info".into(),
                });
            }
            let rt = match in_jvm[1] {
                Some(v) => Some((v, true)),
                None => (trivial.is_some() || jna[1].is_some())
                    .then(|| (micro::ffi_trivial_in_rust(plan.micro), false)),
            };
            if let (Some(kt), Some((rt, rt_in_jvm))) = (trivial, rt) {
                r.rows.push(Row {
                    what: "FFI call, trivial: Kotlin `validateApiKey` (40 chars) vs the same call in Rust".into(),
                    ours: ns(kt),
                    baseline: format!("{} ({})", ns(rt), label(rt_in_jvm)),
                    ratio: format!("+{} per call", ns((kt - rt).max(0.0))),
                    goal: "— (info: one JNI call, a byte array each way)".into(),
                    verdict: "info".into(),
                });
            }
            if let Some(ke) = empty {
                r.rows.push(Row {
                    what: "FFI call, empty: Kotlin `unixTimeMs` (one JNI call, no buffer)".into(),
                    ours: ns(ke),
                    baseline: "—".into(),
                    ratio: "—".into(),
                    goal: "— (info: the floor of a call through JNI)".into(),
                    verdict: "info".into(),
                });
            }
            // The same three calls through uniffi's generated JNA code (`...Jna`), which the
            // rest of the Kotlin API (objects, the client, the outbox) still goes through.
            // Their rounds are not interleaved with the Rust rounds, hence their label.
            let jna_rows = [
                (
                    "`verifyDescriptorJna`",
                    Some((base, base_in_jvm)),
                    "5 JNA calls",
                ),
                ("`validateApiKeyJna` (40 chars)", rt, "3 JNA calls"),
                ("`unixTimeMsJna`", None, "one JNA call, no buffer"),
            ];
            for ((name, rust_ns, calls), k) in jna_rows.into_iter().zip(jna) {
                let Some(k) = k else { continue };
                r.rows.push(Row {
                    what: format!("FFI call via uniffi/JNA: Kotlin {name} ({calls})"),
                    ours: ns(k),
                    baseline: rust_ns.map_or("—".into(), |(v, in_jvm)| {
                        let label = if in_jvm {
                            "Rust, same JVM process"
                        } else {
                            "Rust"
                        };
                        format!("{} ({label})", ns(v))
                    }),
                    ratio: rust_ns.map_or("—".into(), |(v, _)| {
                        format!("+{} per call", ns((k - v).max(0.0)))
                    }),
                    goal: "— (info: what the same call costs without the JNI path)".into(),
                    verdict: "info".into(),
                });
            }
        }
        None => r.fail(what, goal, "Kotlin bench printed no ns_per_call"),
    }
    r.notes.push(
        "FFI row: the Kotlin binding (generated by uniffi from the release `libtillgate_ffi.so`, \
         plus bindings/ffi/kotlin) calls `verifyDescriptor(jws, trustedKeys, now, VerifyOptions())` \
         in a loop on a warmed-up JVM (median of rounds). The baseline is the same Rust call, \
         `tillgate_ffi::verify_descriptor` with the same owned arguments (the argument bytes the \
         Kotlin function passes, lifted once, then a new `String`, a clone of the keys' `Arc` \
         and the options per call), timed in Rust inside the same JVM, in rounds alternating \
         with the Kotlin rounds (Kotlin, Rust, Kotlin, ...; the library is built with \
         tillgate-ffi's `bench-baseline` feature, which only the bench uses), so both medians \
         come from one process and one stretch of time; likewise `validateApiKey`. \
         Overhead = difference. The same Rust call timed in the bench's own process is an \
         info row; where the library has no baseline, that figure is the baseline (labelled \
         \"Rust\"). The public Kotlin functions for the pure calls (`verifyDescriptor`, \
         `validateApiKey`, `unixTimeMs`, ...) go through JNI (one call, arguments and result \
         in uniffi's serialised form); the rest of the API (objects, the client, the outbox) \
         goes through uniffi's generated JNA code, measured here as the `...Jna` rows (JNA \
         calls per Kotlin call: 5 for `verifyDescriptor`, 3 for `validateApiKey`, 1 for \
         `unixTimeMs`). Why and where the time goes: bindings/README.md, \"Kotlin call cost\"."
            .into(),
    );
}

// ---- HTTP: handshake -------------------------------------------------------------------

async fn run_handshake(plan: &Plan, work: &std::path::Path, r: &mut Results) -> Result<(), String> {
    section("authenticated handshake vs bare axum");
    let server_bin = procs::server_bin()?;
    let dir = work.join("handshake");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("tillgate.db").display());
    db::prepare_server_db(&url).await?;
    let clients = 64;
    let pool = db::open(&url, 1).await?;
    let keys = Arc::new(db::seed_registers(&pool, clients).await?);
    pool.close().await;
    let server = procs::start_server(&server_bin, &dir, None, &work.join("handshake-server.log"))?;
    let bare = procs::start_bare_axum(false)?;
    let bare_loop = procs::start_bare_axum(true)?;
    let load = |addr, path: &str| load::Load {
        addr,
        clients,
        duration: plan.http_round,
        max_per_client: plan.max_per_client,
        kind: load::Kind::Get { path: path.into() },
        keys: keys.clone(),
    };
    // 0: the handshake, 1: bare axum, 2 and 3: the server's /healthz (middleware, logs,
    // metrics; no auth, no database, no signature) and /readyz (one database read), 4: the
    // bare router behind the server's connection loop instead of axum::serve.
    let targets = [
        ("server /auth/handshake", server.addr, "/auth/handshake"),
        ("bare axum", bare.addr, "/auth/handshake"),
        ("server /healthz", server.addr, "/healthz"),
        ("server /readyz", server.addr, "/readyz"),
        (
            "bare axum router behind the server's connection loop (`tillgate_server::serve`)",
            bare_loop.addr,
            "/auth/handshake",
        ),
    ];
    let mut results: Vec<Vec<load::Outcome>> = vec![Vec::new(); targets.len()];
    // (server CPU µs per request, load generator CPU µs per request) per round.
    let mut cpu: Vec<Vec<(f64, f64)>> = vec![Vec::new(); targets.len()];
    for round in 0..plan.http_rounds {
        // Rotate the order, so no target always follows the same one.
        for k in 0..targets.len() {
            let which = (k + round) % targets.len();
            let (label, addr, path) = targets[which];
            let target_cpu = |w: usize| match w {
                1 => bare.cpu_secs(),
                4 => bare_loop.cpu_secs(),
                _ => server.cpu_secs(),
            };
            let (c0, g0) = (target_cpu(which), procs::cpu_secs("self"));
            let out = load::run(load(addr, path), plan.warmup).await;
            let (c1, g1) = (target_cpu(which), procs::cpu_secs("self"));
            let n = out.all_ok.max(1) as f64;
            cpu[which].push(((c1 - c0) / n * 1e6, (g1 - g0) / n * 1e6));
            if out.errors > 0 {
                return Err(format!(
                    "{} errors against {label}: {}",
                    out.errors,
                    out.first_error.unwrap_or_default()
                ));
            }
            eprintln!(
                "bench:   round {round} {label}: {:.0} req/s, p99 {:.2} ms",
                out.rps(),
                out.pct_ms(0.99)
            );
            results[which].push(out);
        }
    }
    server.stop();
    bare.stop();
    bare_loop.stop();
    let med = |v: &[load::Outcome], f: &dyn Fn(&load::Outcome) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        x[x.len() / 2]
    };
    let rps = |i: usize| med(&results[i], &|o| o.rps());
    let p99 = |i: usize| med(&results[i], &|o| o.pct_ms(0.99));
    let (o_rps, b_rps) = (rps(0), rps(1));
    let (o_p99, b_p99) = (p99(0), p99(1));
    let cpu_med = |i: usize, pick: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = cpu[i].iter().map(pick).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    for i in [1, 4, 2, 3, 0] {
        r.breakdown.push(Row {
            what: format!(
                "{}: CPU per request {:.0} µs in the server process, {:.0} µs in the load generator",
                targets[i].0,
                cpu_med(i, |c| c.0),
                cpu_med(i, |c| c.1)
            ),
            ours: rate(rps(i), "req/s"),
            baseline: format!("{} (bare axum)", rate(b_rps, "req/s")),
            ratio: format!(
                "{:.1}%, p99 {:.2}× ({:.2} ms)",
                rps(i) / b_rps * 100.0,
                p99(i) / b_p99,
                p99(i)
            ),
            goal: "—".into(),
            verdict: "info".into(),
        });
    }
    let x = o_rps / b_rps;
    r.rows.push(Row {
        what:
            "authenticated handshake `GET /auth/handshake` (SQLite), 64 keep-alive clients: req/s"
                .into(),
        ours: rate(o_rps, "req/s"),
        baseline: format!("{} (bare axum)", rate(b_rps, "req/s")),
        ratio: format!("{:.1}%", x * 100.0),
        goal: "≥ 85%".into(),
        verdict: verdict(x >= 0.85),
    });
    let y = o_p99 / b_p99;
    r.rows.push(Row {
        what: "authenticated handshake, p99 latency".into(),
        ours: format!("{o_p99:.2} ms"),
        baseline: format!("{b_p99:.2} ms (bare axum)"),
        ratio: format!("{y:.2}×"),
        goal: "≤ 1.3×".into(),
        verdict: verdict(y <= 1.3),
    });
    r.notes.push(format!(
        "Handshake: the release `tillgate-server` binary (SQLite, default settings, its logs at \
         the default `info` level written to a file) and a bare axum 0.8 server returning a \
         constant JSON body of the same size (this crate's `bare-axum` subcommand), both \
         separate processes on loopback, driven by the same Rust load generator (hyper 1 \
         client, 64 keep-alive connections, closed loop, each connection using its own \
         register's API key as `Authorization: Bearer`). {} interleaved rounds of {:?} each \
         after {:?} of warm-up; medians. Load generator, servers and other builds share the 2 \
         cores.",
        plan.http_rounds, plan.http_round, plan.warmup
    ));
    Ok(())
}

// ---- HTTP: ingest ----------------------------------------------------------------------

fn tx_load(
    addr: std::net::SocketAddr,
    clients: usize,
    plan: &Plan,
    keys: Arc<Vec<String>>,
    run: &str,
    d: Duration,
) -> load::Load {
    load::Load {
        addr,
        clients,
        duration: d,
        max_per_client: plan.max_per_client,
        kind: load::Kind::PostTx {
            body: Bytes::from_static(db::TX_BODY.as_bytes()),
            run: run.to_owned(),
        },
        keys,
    }
}

/// Server ingest vs raw one-row commits on one backend; returns the server's rate at 64.
async fn ingest_pair(
    plan: &Plan,
    backend: &str,
    server: &procs::Proc,
    keys: Arc<Vec<String>>,
    raw_url: &str,
    row: &db::SampleRow,
) -> Result<Ingest, String> {
    let (mut ours, mut raw1, mut raw64) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = load::Outcome::default();
    let mut batch = f64::NAN;
    let mut cpu_us = f64::NAN;
    for round in 0..plan.db_rounds {
        let r1 = db::raw_ingest(
            raw_url,
            1,
            plan.db_round,
            plan.max_per_client,
            row,
            &format!("r1x{round}"),
        )
        .await?;
        let r64 = db::raw_ingest(
            raw_url,
            64,
            plan.db_round,
            plan.max_per_client,
            row,
            &format!("r64x{round}"),
        )
        .await?;
        let c0 = server.cpu_secs();
        let before = load::commit_counters(server.addr).await;
        let out = load::run(
            tx_load(
                server.addr,
                64,
                plan,
                keys.clone(),
                &format!("{backend}{round}"),
                plan.db_round,
            ),
            plan.warmup,
        )
        .await;
        let after = load::commit_counters(server.addr).await;
        cpu_us = (server.cpu_secs() - c0) / out.all_ok.max(1) as f64 * 1e6;
        if let (Some((t0, b0)), Some((t1, b1))) = (before, after)
            && b1 > b0
        {
            batch = (t1 - t0) / (b1 - b0);
        }
        if out.errors > 0 {
            return Err(format!(
                "{} errors from tillgate-server ({backend}): {}",
                out.errors,
                out.first_error.clone().unwrap_or_default()
            ));
        }
        eprintln!(
            "bench:   round {round} {backend}: server {:.0} tx/s (p99 {:.1} ms, {batch:.1} tx per commit), raw 1 client {r1:.0}/s, raw 64 clients {r64:.0}/s",
            out.rps(),
            out.pct_ms(0.99)
        );
        ours.push(out.rps());
        raw1.push(r1);
        raw64.push(r64);
        last = out;
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Ok(Ingest {
        ours: med(ours),
        raw1: med(raw1),
        raw64: med(raw64),
        last,
        batch,
        cpu_us,
    })
}

/// Figures of one ingest comparison.
struct Ingest {
    ours: f64,
    raw1: f64,
    raw64: f64,
    last: load::Outcome,
    /// Transactions per group commit in the last round.
    batch: f64,
    /// Server CPU per transaction in the last round, µs.
    cpu_us: f64,
}

/// The write path alone, in-process: the server's `Store::commit_batch` vs the same
/// work done set-based (see `writer.rs`), batches of 64 over 64 registers.
async fn run_writer(plan: &Plan, backend: &str, url: &str, row: &db::SampleRow, r: &mut Results) {
    let d = plan.db_round;
    let store = writer::store_commit_batch(url, 64, 64, d, row).await;
    let set = match db::open(url, 1).await {
        Ok(pool) => {
            let v = writer::set_based_commit(&pool, url, 64, 64, d, row).await;
            pool.close().await;
            v
        }
        Err(e) => Err(e),
    };
    match (store, set) {
        (Ok(a), Ok(b)) => {
            eprintln!(
                "bench:   write path alone ({backend}): commit_batch {a:.0} tx/s, set-based {b:.0} tx/s"
            );
            r.writer.push(Row {
                what: format!(
                    "{backend}: `Store::commit_batch`, 64 tx per commit, in-process (no HTTP)"
                ),
                ours: rate(a, "tx/s"),
                baseline: "—".into(),
                ratio: "—".into(),
                goal: "—".into(),
                verdict: "info".into(),
            });
            r.writer.push(Row {
                what: format!("{backend}: the same statements written in the bench, without `Store` (reference for `commit_batch`'s own overhead)"),
                ours: rate(b, "tx/s"),
                baseline: format!("{} (`commit_batch`)", rate(a, "tx/s")),
                ratio: format!("{:.2}×", b / a),
                goal: "—".into(),
                verdict: "info".into(),
            });
        }
        (a, b) => {
            let e = a.err().or(b.err()).unwrap_or_default();
            r.broken.push(format!("write path alone ({backend}): {e}"));
            eprintln!("bench: write path alone ({backend}): {e}");
        }
    }
}

async fn run_ingest_sqlite(
    plan: &Plan,
    work: &std::path::Path,
    row: &db::SampleRow,
    r: &mut Results,
) -> Result<(), String> {
    section("durable ingest, SQLite");
    let server_bin = procs::server_bin()?;
    let dir = work.join("ingest-sqlite");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("tillgate.db").display());
    let raw_url = format!("sqlite://{}?mode=rwc", dir.join("raw.db").display());
    db::prepare_server_db(&url).await?;
    let pool = db::open(&url, 1).await?;
    let keys = Arc::new(db::seed_registers(&pool, 256).await?);
    pool.close().await;
    let server = procs::start_server(
        &server_bin,
        &dir,
        None,
        &work.join("ingest-sqlite-server.log"),
    )?;
    let k64 = Arc::new(keys[..64].to_vec());
    let Ingest {
        ours,
        raw1,
        raw64,
        last,
        batch,
        cpu_us,
    } = ingest_pair(plan, "sqlite", &server, k64, &raw_url, row).await?;
    let base = raw1.max(raw64);
    let x = ours / base;
    r.rows.push(Row {
        what: "durable transaction ingest, SQLite, 64 clients: server (signed receipt per tx) vs raw one row per commit".into(),
        ours: rate(ours, "tx/s"),
        baseline: format!("{} (raw: 1 conn {}, 64 conns {})", rate(base, "commits/s"), rate(raw1, "/s"), rate(raw64, "/s")),
        ratio: format!(
            "{x:.2}× the better baseline ({:.2}× vs 1 conn, {:.2}× vs 64 conns)",
            ours / raw1,
            ours / raw64
        ),
        goal: "≥ 5×".into(),
        verdict: verdict(x >= 5.0),
    });
    r.rows.push(Row {
        what: "durable transaction ingest, SQLite, 64 clients: absolute".into(),
        ours: rate(ours, "tx/s"),
        baseline: "—".into(),
        ratio: format!(
            "p50 {:.1} ms, p99 {:.1} ms, {batch:.1} tx per group commit, server CPU {cpu_us:.0} µs/tx",
            last.pct_ms(0.5),
            last.pct_ms(0.99)
        ),
        goal: "≥ 20,000 tx/s".into(),
        verdict: verdict(ours >= 20_000.0),
    });
    // How cost grows with concurrency (same server, same database).
    for clients in [1usize, 8, 64, 256] {
        let out = if clients == 64 {
            None
        } else {
            let ks = Arc::new(keys[..clients].to_vec());
            let o = load::run(
                tx_load(
                    server.addr,
                    clients,
                    plan,
                    ks,
                    &format!("sweep{clients}"),
                    plan.db_round,
                ),
                plan.warmup,
            )
            .await;
            if o.errors > 0 {
                return Err(format!(
                    "{} errors at {clients} clients: {}",
                    o.errors,
                    o.first_error.unwrap_or_default()
                ));
            }
            Some(o)
        };
        let (rps, p50, p99) = match &out {
            Some(o) => (o.rps(), o.pct_ms(0.5), o.pct_ms(0.99)),
            None => (ours, last.pct_ms(0.5), last.pct_ms(0.99)),
        };
        eprintln!("bench:   {clients} clients: {rps:.0} tx/s");
        r.sweep.push(Row {
            what: format!(
                "SQLite, {clients} client{}",
                if clients == 1 { "" } else { "s" }
            ),
            ours: rate(rps, "tx/s"),
            baseline: rate(base, "commits/s"),
            ratio: format!("{:.2}×", rps / base),
            goal: format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
            verdict: "info".into(),
        });
    }
    server.stop();
    run_writer(plan, "SQLite", &url, row, r).await;
    let _ = std::fs::remove_dir_all(&dir);
    r.notes.push(format!(
        "Ingest: `POST /transactions` with a fresh `Idempotency-Key` per request, one register \
         (API key) per client; 201 means committed (the server acknowledges only after its \
         group commit). The raw baselines insert rows of the same shape and size (same \
         columns and unique indexes, a real receipt as text) one row per autocommitted \
         statement through sqlx 0.9 (the server's driver), WAL + `synchronous=FULL` on the \
         same disk, once with 1 connection and once with 64 concurrent connections; the \
         better of the two is the baseline. {} interleaved rounds of {:?}; medians.",
        plan.db_rounds, plan.db_round
    ));
    Ok(())
}

async fn run_ingest_pg(
    o: &Opts,
    plan: &Plan,
    work: &std::path::Path,
    row: &db::SampleRow,
    r: &mut Results,
) -> Result<(), String> {
    section("durable ingest, PostgreSQL");
    let what =
        "durable transaction ingest, PostgreSQL, 64 clients: server vs raw single-row commits";
    let pg = match db::PgDb::create(&o.pg_url).await {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("bench: SKIP PostgreSQL ingest: {e}");
            r.rows.push(Row::not_measured(
                what,
                "≥ 4×",
                &format!("SKIPPED, no PostgreSQL reachable ({e})"),
            ));
            return Ok(());
        }
    };
    let result = async {
        db::prepare_server_db(&pg.url).await?;
        let pool = db::open(&pg.url, 1).await?;
        let keys = Arc::new(db::seed_registers(&pool, 64).await?);
        pool.close().await;
        let dir = work.join("ingest-pg");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let server = procs::start_server(
            &procs::server_bin()?,
            &dir,
            Some(&pg.url),
            &work.join("ingest-pg-server.log"),
        )?;
        let res = ingest_pair(plan, "postgres", &server, keys, &pg.url, row).await;
        server.stop();
        if res.is_ok() {
            run_writer(plan, "PostgreSQL", &pg.url, row, r).await;
        }
        res
    }
    .await;
    if let Err(e) = pg.drop_db().await {
        eprintln!("bench: could not drop the benchmark database: {e}");
    }
    let Ingest {
        ours,
        raw1,
        raw64,
        last,
        batch,
        cpu_us,
    } = result?;
    let base = raw1.max(raw64);
    let x = ours / base;
    r.rows.push(Row {
        what: what.into(),
        ours: format!(
            "{} (p99 {:.1} ms, {batch:.1} tx per group commit, server CPU {cpu_us:.0} µs/tx)",
            rate(ours, "tx/s"),
            last.pct_ms(0.99)
        ),
        baseline: format!(
            "{} (raw: 1 conn {}, 64 conns {})",
            rate(base, "commits/s"),
            rate(raw1, "/s"),
            rate(raw64, "/s")
        ),
        ratio: format!(
            "{x:.2}× the better baseline ({:.2}× vs 1 conn, {:.2}× vs 64 conns)",
            ours / raw1,
            ours / raw64
        ),
        goal: "≥ 4×".into(),
        verdict: verdict(x >= 4.0),
    });
    r.notes.push(
        "PostgreSQL: a fresh database `tillgate_bench_<pid>_<time>` is created on the server \
         given by `TILLGATE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and \
         dropped afterwards; the server (pool of 8, its default) and the raw baseline use it \
         alike. PostgreSQL's own settings are the machine's (fsync on, synchronous_commit on)."
            .into(),
    );
    Ok(())
}

// ---- RSS -------------------------------------------------------------------------------

async fn run_rss(
    plan: &Plan,
    work: &std::path::Path,
    row: &db::SampleRow,
    r: &mut Results,
) -> Result<(), String> {
    section("peak RSS at scale");
    let (regs, per) = (plan.rss_registers, plan.rss_tx_per_register);
    let dir = work.join("rss");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("tillgate.db").display());
    let t = Instant::now();
    db::prepare_server_db(&url).await?;
    let pool = db::open(&url, 1).await?;
    let keys = Arc::new(db::seed_registers(&pool, regs).await?);
    db::seed_transactions_sqlite(&pool, regs, per, row).await?;
    pool.close().await;
    let seed_secs = t.elapsed().as_secs_f64();
    let db_mib = std::fs::metadata(dir.join("tillgate.db"))
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(f64::NAN);
    eprintln!(
        "bench:   seeded {regs} registers and {} transactions in {seed_secs:.0} s ({db_mib:.0} MiB)",
        regs * per
    );
    let server = procs::start_server(
        &procs::server_bin()?,
        &dir,
        None,
        &work.join("rss-server.log"),
    )?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.status_kib("VmHWM").unwrap_or(0);
    // Mixed load over every register: handshakes and transactions at once.
    let hs = load::Load {
        addr: server.addr,
        clients: 32,
        duration: plan.rss_load,
        max_per_client: plan.max_per_client,
        kind: load::Kind::Get {
            path: "/auth/handshake".into(),
        },
        keys: keys.clone(),
    };
    let tx = tx_load(server.addr, 32, plan, keys.clone(), "rss", plan.rss_load);
    let (a, b) = tokio::join!(load::run(hs, plan.warmup), load::run(tx, plan.warmup));
    let peak = server.status_kib("VmHWM").unwrap_or(0);
    let now_rss = server.status_kib("VmRSS").unwrap_or(0);
    server.stop();
    if a.errors + b.errors > 0 {
        return Err(format!(
            "errors under the RSS load: {}",
            a.first_error.or(b.first_error).unwrap_or_default()
        ));
    }
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    r.rss.push(Row {
        what: format!("server after start, {} registers, {} stored transactions ({db_mib:.0} MiB SQLite file)", report::thousands(regs as u64), report::thousands((regs * per) as u64)),
        ours: format!("VmHWM {}", mib(idle)),
        baseline: "—".into(),
        ratio: "—".into(),
        goal: "—".into(),
        verdict: "info".into(),
    });
    r.rss.push(Row {
        what: format!(
            "same, after {:?} of 32 handshake + 32 transaction clients over all registers",
            plan.rss_load
        ),
        ours: format!("VmHWM {} (VmRSS {})", mib(peak), mib(now_rss)),
        baseline: "—".into(),
        ratio: format!(
            "{} handshakes/s, {} tx/s",
            report::thousands(a.rps() as u64),
            report::thousands(b.rps() as u64)
        ),
        goal: "—".into(),
        verdict: "info".into(),
    });
    r.notes.push(format!(
        "Peak RSS: registrations, API keys and {} transactions (real row sizes) are written \
         straight into the server's SQLite schema in bulk (after the server's own storage \
         layer created it), then the server binary is started and loaded; VmHWM is read from \
         /proc/<pid>/status. Seeding took {seed_secs:.0} s.",
        report::thousands((regs * per) as u64)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ---- main ------------------------------------------------------------------------------

async fn run(o: Opts) -> Result<bool, String> {
    let started = Instant::now();
    let plan = Plan::new(o.quick);
    let machine = report::Machine::probe();
    std::fs::create_dir_all(&o.work).map_err(|e| format!("{}: {e}", o.work.display()))?;
    let work = std::fs::canonicalize(&o.work).map_err(|e| e.to_string())?;
    let fx = micro::Fixture::new()?;
    let fixture_dir = work.join("fixture");
    std::fs::create_dir_all(&fixture_dir).map_err(|e| e.to_string())?;
    let fixture_json = fixture_dir.join("fixture.json");
    std::fs::write(&fixture_json, fx.to_json()?).map_err(|e| e.to_string())?;
    std::fs::write(fixture_dir.join("jws.txt"), &fx.jws).map_err(|e| e.to_string())?;
    std::fs::write(fixture_dir.join("jwks.json"), &fx.jwks_json).map_err(|e| e.to_string())?;
    std::fs::write(fixture_dir.join("now.txt"), micro::NOW.to_string())
        .map_err(|e| e.to_string())?;
    let row = db::SampleRow::new()?;

    let mut r = Results::default();
    if wants(&o, "micro") {
        run_micro(&plan, &fx, &mut r);
    }
    if wants(&o, "wasm") {
        run_wasm(&o, &plan, &fixture_json, &mut r);
    }
    if wants(&o, "ffi") {
        run_ffi(&o, &plan, &fx, &fixture_dir, &mut r);
    }
    if wants(&o, "handshake")
        && let Err(e) = run_handshake(&plan, &work, &mut r).await
    {
        r.fail(
            "authenticated handshake vs bare axum",
            "≥ 85%, p99 ≤ 1.3×",
            &e,
        );
    }
    if wants(&o, "stack") {
        run_stack(&plan, &work, &mut r).await;
    }
    // The SQLite write path alone also runs inside `sqlite`; `--only writer` runs just it.
    if !o.only.is_empty() && wants(&o, "writer") && !wants(&o, "sqlite") {
        let dir = work.join("writer-sqlite");
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}?mode=rwc", dir.join("tillgate.db").display());
        let ready = std::fs::create_dir_all(&dir).map_err(|e| e.to_string());
        let ready = match ready {
            Ok(()) => match db::prepare_server_db(&url).await {
                Ok(()) => match db::open(&url, 1).await {
                    Ok(pool) => {
                        let seeded = db::seed_registers(&pool, 64).await.map(|_| ());
                        pool.close().await;
                        seeded
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match ready {
            Ok(()) => run_writer(&plan, "SQLite", &url, &row, &mut r).await,
            Err(e) => r.fail("the write path alone, SQLite", "—", &e),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    if wants(&o, "sqlite")
        && let Err(e) = run_ingest_sqlite(&plan, &work, &row, &mut r).await
    {
        r.fail(
            "durable transaction ingest, SQLite",
            "≥ 5×, ≥ 20,000 tx/s",
            &e,
        );
    }
    if wants(&o, "postgres")
        && let Err(e) = run_ingest_pg(&o, &plan, &work, &row, &mut r).await
    {
        r.fail("durable transaction ingest, PostgreSQL", "≥ 4×", &e);
    }
    if wants(&o, "rss")
        && let Err(e) = run_rss(&plan, &work, &row, &mut r).await
    {
        r.fail("peak RSS at 10k registers / 1M transactions", "—", &e);
    }

    let elapsed = started.elapsed().as_secs_f64();
    println!("\n{}", report::table(&r.rows));
    if !r.sweep.is_empty() {
        println!(
            "Ingest throughput by concurrency (ratio vs the raw one-row-per-commit baseline):\n\n{}",
            report::table(&r.sweep)
        );
    }
    if !r.writer.is_empty() {
        println!("Write path alone:\n\n{}", report::table(&r.writer));
    }
    if !r.rss.is_empty() {
        println!("Memory:\n\n{}", report::table(&r.rss));
    }
    let analysis = std::fs::read_to_string("bench/ANALYSIS.md").ok();
    let md = report::markdown(
        &r.rows,
        &[
            ("Ingest throughput by concurrency (server vs the raw one-row-per-commit baseline of the same run; goal column shows latency)".into(), r.sweep.clone()),
            ("Handshake cost breakdown (same run, same load; each route as % of bare axum req/s)".into(), r.breakdown.clone()),
            ("Memory (peak RSS of the server process)".into(), r.rss.clone()),
            ("The write path alone (in-process, no HTTP): where the ingest ceiling is".into(), r.writer.clone()),
        ],
        &r.notes,
        &machine,
        &o.command,
        o.quick,
        elapsed,
        if o.quick { None } else { analysis.as_deref() },
    );
    let out = o.out.clone().unwrap_or_else(|| {
        if o.quick {
            work.join("BENCHMARKS.quick.md")
        } else {
            PathBuf::from("BENCHMARKS.md")
        }
    });
    std::fs::write(&out, md).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("wrote {} ({elapsed:.0} s)", out.display());
    if !r.broken.is_empty() {
        println!("broken benchmarks:");
        for b in &r.broken {
            println!("  {b}");
        }
    }
    let measured = r
        .rows
        .iter()
        .filter(|x| !x.verdict.starts_with("not measured"))
        .count();
    println!("bench: {measured} passed, {} failed", r.broken.len());
    Ok(r.broken.is_empty())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tillgate-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("bare-axum") => match args.get(1) {
            Some(addr) => rt
                .block_on(procs::serve_bare_axum(
                    addr,
                    args.get(2).is_some_and(|a| a == "--server-loop"),
                ))
                .map(|()| true),
            None => Err("bare-axum needs an address".into()),
        },
        Some("run") => match parse(&args[1..]) {
            Ok(o) => rt.block_on(run(o)),
            Err(e) => Err(e),
        },
        _ => {
            Err("usage: tillgate-bench run [--quick] [...] | tillgate-bench bare-axum ADDR".into())
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tillgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
