//! Harness for the end-to-end tests: a real `tillgate-server` in-process on an ephemeral
//! port with a temporary SQLite database and a manual clock, that can be stopped and
//! started again on the same port and data directory (to play "the network is down").
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tillgate_client::core::TrustedKeys;
use tillgate_server::{AppState, Config, ManualClock, app};

/// The admin key the test servers use.
pub const ADMIN_KEY: &str = "Admin-Key-For-E2E-Tests-0123456789";
/// 2030-01-01T00:00:00Z.
pub const T2030: i64 = 1_893_456_000;
/// One day in seconds.
pub const DAY: i64 = 86_400;

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server's clock (shared across restarts).
    pub clock: ManualClock,
    data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts a server on `127.0.0.1:0` with SQLite in `data_dir`, its clock at `now`.
    pub async fn start(data_dir: &Path, now: i64) -> Server {
        Self::start_on(data_dir, ManualClock::new(now), 0).await
    }

    async fn start_on(data_dir: &Path, clock: ManualClock, port: u16) -> Server {
        let mut config = Config::with_defaults(data_dir.to_path_buf());
        config.admin_key = Some(ADMIN_KEY.into());
        config.activation_rate_per_minute = 0;
        config.auth_failure_rate_per_minute = 0;
        config.db_pool_size = 4;
        let (state, started) = AppState::start(config, Arc::new(clock.clone()))
            .await
            .unwrap();
        // The same port again after a stop: retry while the old socket goes away.
        let mut listener = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let listener = listener.expect("could not bind");
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                axum::ServiceExt::into_make_service(app(state.clone())),
            )
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
            state.shutdown().await;
            let _ = started.writer.await;
        });
        Server {
            addr,
            clock,
            data_dir: data_dir.to_path_buf(),
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// The database URL the server uses (SQLite in its data directory).
    pub fn database_url(&self) -> String {
        Config::with_defaults(self.data_dir.clone()).effective_database_url()
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server (graceful: everything acknowledged is on disk).
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            // Idle keep-alive connections may hold the graceful shutdown; do not wait
            // for them forever.
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    /// Starts it again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let again = Self::start_on(&self.data_dir, self.clock.clone(), self.addr.port()).await;
        *self = again;
    }

    /// The server's published keys, as an app has them built in.
    pub async fn trusted_keys(&self) -> TrustedKeys {
        let jwks = reqwest::get(format!("{}/.well-known/jwks.json", self.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        TrustedKeys::from_jwks_json(&jwks).unwrap()
    }

    /// `GET /admin/activations?status=pending`: the ids waiting for approval.
    pub async fn pending(&self) -> Vec<String> {
        let list: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/admin/activations?status=pending", self.url()))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["activationId"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `POST /admin/activations/{id}/{decision}` (approve, reject, revoke).
    pub async fn admin(&self, activation_id: &str, decision: &str) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/admin/activations/{activation_id}/{decision}",
                self.url()
            ))
            .bearer_auth(ADMIN_KEY)
            .json(&serde_json::json!({"decidedBy": "e2e", "note": "Tax Authority notified"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{decision}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
