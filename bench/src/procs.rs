//! Child processes under test: the real `tillgate-server` binary and the bare axum
//! baseline (this binary's `bare-axum` subcommand). Killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running child listening on `addr`.
pub struct Proc {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    name: String,
}

impl Proc {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the child has used so far.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.pid().to_string())
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        s.lines()
            .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Asks the child to stop (SIGTERM), then kills it after a few seconds.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("bench: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// CPU seconds (user + system) of `/proc/<pid>` (`self` for this process), assuming
/// the usual 100 clock ticks per second.
pub fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which may contain spaces) start at field 3.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

/// A free loopback port (bound then released).
pub fn free_addr() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

fn wait_listening(p: &mut Proc, timeout: Duration) -> Result<(), String> {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Err(format!("{} exited at start: {status}", p.name));
        }
        if TcpStream::connect_timeout(&p.addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} did not listen on {} within {timeout:?}",
        p.name, p.addr
    ))
}

/// Starts the bare axum baseline (this executable, `bare-axum <addr>`); with
/// `server_loop`, the same router behind `tillgate_server::serve` instead of `axum::serve`.
pub fn start_bare_axum(server_loop: bool) -> Result<Proc, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let addr = free_addr()?;
    let mut cmd = Command::new(exe);
    cmd.arg("bare-axum").arg(addr.to_string());
    if server_loop {
        cmd.arg("--server-loop");
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start bare-axum: {e}"))?;
    let mut p = Proc {
        child,
        addr,
        name: "bare-axum".into(),
    };
    wait_listening(&mut p, Duration::from_secs(20))?;
    Ok(p)
}

/// The admin key every benchmark server is started with (never printed by the server).
pub const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdefghijklmnop";

/// Starts `tillgate-server` on a data dir or a `DATABASE_URL`, logs to `log`.
pub fn start_server(
    bin: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    log: &Path,
) -> Result<Proc, String> {
    let addr = free_addr()?;
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TILLGATE_BIND", addr.to_string())
        .env("TILLGATE_DATA_DIR", data_dir)
        .env("TILLGATE_ADMIN_KEY", ADMIN_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    // Tuning settings given to the bench are passed on, for comparisons in one session.
    for var in [
        "TILLGATE_WRITERS",
        "TILLGATE_BATCH_MAX",
        "TILLGATE_DB_POOL",
        "TILLGATE_KEY_CACHE_SECS",
    ] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut p = Proc {
        child,
        addr,
        name: "tillgate-server".into(),
    };
    wait_listening(&mut p, Duration::from_secs(60))
        .map_err(|e| format!("{e} (log: {})", log.display()))?;
    eprintln!("bench:   tillgate-server pid {} on {}", p.pid(), p.addr);
    Ok(p)
}

/// `target/release/tillgate-server` next to this executable, or `$TILLGATE_SERVER_BIN`.
pub fn server_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TILLGATE_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe
        .parent()
        .map(|d| d.join("tillgate-server"))
        .ok_or("no executable directory")?;
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p tillgate-server`",
            p.display()
        ))
    }
}

/// The bare axum baseline's router: one route answering a constant body of the size of
/// a real handshake answer.
pub fn bare_router() -> axum::Router {
    use axum::routing::get;
    const BODY: &str = r#"{"status":"approved","activationId":"act_0000000000000000000000","productionNumber":"TG-0000-0000","validFrom":"2026-01-01T00:00:00Z","validTo":"2026-12-31T00:00:00Z","serverTime":"2026-06-01T00:00:00Z","signedTime":"eyJhbGciOiJFZERTQSIsImtpZCI6IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMCIsInR5cCI6InRpbGxnYXRlLXRpbWUrand0In0.eyJpc3MiOiJ0aWxsZ2F0ZSIsInN1YiI6IlRHLTAwMDAtMDAwMCIsImlhdCI6MTc4MDAwMDAwMH0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
    axum::Router::new().route(
        "/auth/handshake",
        get(|| async { ([("content-type", "application/json")], BODY) }),
    )
}

/// The bare axum baseline: [`bare_router`] served by `axum::serve`, or with
/// `server_loop` by the server's own connection loop (`tillgate_server::serve`: header
/// read timeout, client address, graceful shutdown). Serves until killed.
pub async fn serve_bare_axum(addr: &str, server_loop: bool) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    let served = if server_loop {
        tillgate_server::serve(
            listener,
            bare_router(),
            Duration::from_secs(10),
            std::future::pending(),
        )
        .await
    } else {
        axum::serve(listener, bare_router()).await
    };
    served.map_err(|e| e.to_string())
}
