//! The table of results, the machine description and `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::process::Command;

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub what: String,
    /// Our figure.
    pub ours: String,
    /// The baseline's figure, measured in the same run.
    pub baseline: String,
    /// The ratio the goal is stated in.
    pub ratio: String,
    /// The goal.
    pub goal: String,
    /// `met`, `MISSED`, `info` or `not measured: <why>`.
    pub verdict: String,
}

impl Row {
    /// A row that could not be measured.
    pub fn not_measured(what: &str, goal: &str, why: &str) -> Row {
        Row {
            what: what.into(),
            ours: "—".into(),
            baseline: "—".into(),
            ratio: "—".into(),
            goal: goal.into(),
            verdict: format!("not measured: {why}"),
        }
    }
}

/// `met` / `MISSED`.
pub fn verdict(ok: bool) -> String {
    if ok { "met".into() } else { "MISSED".into() }
}

/// A duration in ns, printed with a sensible unit.
pub fn ns(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

/// A rate with thousands separators.
pub fn rate(v: f64, unit: &str) -> String {
    format!("{} {unit}", thousands(v.round() as u64))
}

/// `1234567` -> `1,234,567`.
pub fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The machine the run happened on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `nproc`.
    pub nproc: usize,
    /// CPU model.
    pub cpu: String,
    /// Total memory.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `node --version`.
    pub node: String,
    /// `java -version` first line.
    pub java: String,
    /// UTC date and time of the run.
    pub date: String,
    /// Load average at the start of the run.
    pub loadavg: String,
    /// The commit measured, and whether the working tree differed from it.
    pub commit: String,
}

fn cmd(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Machine {
    /// Reads /proc and asks the tools for their versions.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<f64>().ok())
            .map(|k| format!("{:.1} GiB", k / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            rustc: cmd("rustc", &["--version"]),
            node: cmd("node", &["--version"]),
            java: cmd("java", &["-version"]),
            date: cmd("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
            commit: {
                let head = cmd("git", &["rev-parse", "--short", "HEAD"]);
                let dirty = Command::new("git")
                    .args([
                        "status",
                        "--porcelain",
                        "--",
                        "core",
                        "server",
                        "bindings",
                        "client",
                    ])
                    .output()
                    .map(|o| !o.stdout.is_empty())
                    .unwrap_or(false);
                if dirty {
                    format!(
                        "{head} plus uncommitted changes in core/server/bindings/client (work in progress of other engineers)"
                    )
                } else {
                    head
                }
            },
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
        }
    }
}

/// The results table as Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| what | ours | baseline (same run) | ratio | goal | verdict |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.what, r.ours, r.baseline, r.ratio, r.goal, r.verdict
        );
    }
    s
}

/// The whole `BENCHMARKS.md`.
#[allow(clippy::too_many_arguments)]
pub fn markdown(
    rows: &[Row],
    extra: &[(String, Vec<Row>)],
    notes: &[String],
    machine: &Machine,
    command: &str,
    quick: bool,
    elapsed_secs: f64,
    analysis: Option<&str>,
) -> String {
    let mut s = String::new();
    s.push_str("# Tillgate benchmarks\n\n");
    s.push_str(
        "Generated by `scripts/bench.sh` (crate `bench/`, `tillgate-bench`). Every figure is \
         measured against its baseline **in the same run, on the same machine**; goals are \
         judged on the ratios. Timings are never asserted in tests.\n\n",
    );
    if quick {
        s.push_str(
            "**Quick mode**: these figures only show that every benchmark still runs; the \
             durations are far too short for the numbers to mean anything.\n\n",
        );
    }
    let _ = writeln!(s, "Command: `{command}`  ");
    let _ = writeln!(s, "Date: {}  ", machine.date);
    let _ = writeln!(
        s,
        "Duration of the measuring run: {elapsed_secs:.0} s (builds excluded)\n"
    );
    s.push_str("## Machine\n\n");
    let _ = writeln!(s, "- nproc: {}", machine.nproc);
    let _ = writeln!(s, "- CPU: {}", machine.cpu);
    let _ = writeln!(s, "- memory: {}", machine.memory);
    let _ = writeln!(s, "- kernel: {}", machine.kernel);
    let _ = writeln!(s, "- {}", machine.rustc);
    let _ = writeln!(s, "- node {}, {}", machine.node, machine.java);
    let _ = writeln!(s, "- load average at start: {}", machine.loadavg);
    let _ = writeln!(s, "- code measured: {}", machine.commit);
    s.push_str(
        "- the machine was **shared with other builds** during the run (noisy): absolute \
         figures vary from run to run; the ratios against baselines measured in the same \
         run (interleaved where it matters) are what to read.\n\n",
    );
    s.push_str("## Results against goals\n\n");
    s.push_str(&table(rows));
    for (title, rows) in extra {
        let _ = write!(s, "\n## {title}\n\n");
        s.push_str(&table(rows));
    }
    if !notes.is_empty() {
        s.push_str("\n## How each figure is measured\n\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    if let Some(a) = analysis {
        s.push('\n');
        s.push_str(a.trim_end());
        s.push('\n');
    }
    s
}
