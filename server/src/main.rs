//! `tillgate-server`: serve the API (default), or run an admin command.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tillgate_server::cli::{Cli, CliError, Command};
use tillgate_server::{AppState, Config, LogFormat, SystemClock, app};

/// mimalloc: cheaper than glibc malloc for the many short-lived allocations of request
/// handling (≈ 20 % more handshakes/s under mixed load; BENCHMARKS.md, Peak RSS).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Bad arguments exit 1, like any other failure to run: exit 2 is `verify-receipts`'
    // "a receipt chain is broken", which monitoring must not confuse with a typo.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing(cli.config.log_format);
    let result = match cli.command {
        Some(Command::Admin(cmd)) => tillgate_server::cli::run(&cli.config, cmd).await,
        Some(Command::Keygen { out }) => tillgate_server::cli::keygen(&out),
        Some(Command::Serve) | None => serve(cli.config).await.map_err(CliError::Failed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "fatal");
            eprintln!("tillgate-server: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(mut config: Config) -> Result<(), String> {
    let bind = config.bind;
    if config.demo_mode {
        // The web demo's admin panel needs the admin key in clear, so demo mode uses a
        // key known to this process: TILLGATE_ADMIN_KEY, or a fresh one for this run.
        if config.admin_key.is_none() {
            let key =
                tillgate_core::generate_api_key_with(40, tillgate_core::ApiKeyAlphabet::UrlSafe)
                    .map_err(|e| e.to_string())?;
            config.admin_key = Some(key.expose().to_owned());
        }
        tracing::warn!(
            "DEMO MODE: GET /demo/admin-key.json hands the admin key to any browser; never use this server for real registrations"
        );
    }
    // One serving process per SQLite database; `admin restore` takes the same lock.
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    }
    let _lock = tillgate_server::backup::lock_database(&config.effective_database_url())
        .map_err(|e| e.to_string())?;
    let (state, started) = AppState::start(config, Arc::new(SystemClock)).await?;
    if let Some(key) = &started.generated_admin_key {
        // Shown once, on the terminal, never through the logger.
        eprintln!(
            "\n=== tillgate-server: generated admin key (shown only now; only its hash is stored) ===\n{}\n",
            key.expose()
        );
    }
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %local, backend = ?state.store.backend(), "listening");
    // After the signal, requests in flight get the request timeout and a few seconds to
    // answer; connections still open then (a slow reader of a large answer) are closed,
    // so that the process ends before the service manager's stop timeout kills it.
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let serving = tillgate_server::serve(
        listener,
        app(state.clone()),
        Duration::from_secs(state.config.header_read_timeout_secs.max(1)),
        async move {
            shutdown_signal().await;
            let _ = signalled.send(());
        },
    );
    let drain = Duration::from_secs(state.config.request_timeout_secs.max(1) + 5);
    tokio::select! {
        served = serving => served.map_err(|e| e.to_string())?,
        () = async move {
            if on_signal.await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(
                seconds = drain.as_secs(),
                "connections still open after the shutdown's time limit: closing them"
            );
        }
    }
    // In-flight requests have finished; commit what the writer still holds, then close.
    state.shutdown().await;
    let _ = started.writer.await;
    state.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
