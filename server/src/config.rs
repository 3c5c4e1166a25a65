//! Server configuration: flags and environment variables (clap), with defaults an
//! operator can run as is.

use std::net::SocketAddr;
use std::path::PathBuf;

use tillgate_core::RmSystem;

/// The longest key cache (`--key-cache-secs`): how long, at most, a revocation or a
/// renewal made through another process may go unseen by this one.
pub const KEY_CACHE_SECS_MAX: u64 = 60;

/// The largest `batch_max`: each writer queues eight times as many sales (a batch's
/// memory is allocated up front).
pub const BATCH_MAX_MAX: usize = 4096;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of a running server. Every field has a flag and an environment variable;
/// see `tillgate-server serve --help`. The flags are global: they may stand before or
/// after the subcommand (`tillgate-server serve --bind ...`, `tillgate-server admin keys
/// --data-dir ...`). `Debug` shows the secrets (the admin key, the database URL, the
/// key-encryption key) only as set or not.
#[derive(Clone, clap::Args)]
#[command(next_help_heading = "Settings")]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,

    /// Directory for the SQLite database (`tillgate.db`) when no DATABASE_URL is set.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_DATA_DIR",
        default_value = "./tillgate-data"
    )]
    pub data_dir: PathBuf,

    /// `postgres://...` to use PostgreSQL, or `sqlite://...`; when unset, SQLite in the
    /// data directory.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The admin key (20–256 characters of the API-key charset). When unset, a key is
    /// generated at first start, printed once, and only its hash is kept.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_ADMIN_KEY",
        hide_env_values = true
    )]
    pub admin_key: Option<String>,

    /// The RmSystem this server answers to; URL-path tokens naming another are refused.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_RM_SYSTEM",
        default_value = "1,2,3,4"
    )]
    pub rm_system: RmSystem,

    /// Log format.
    #[arg(long, global = true, env = "TILLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Issuer written into descriptors, receipts and timestamps (`iss`).
    #[arg(
        long,
        global = true,
        env = "TILLGATE_ISSUER",
        default_value = "tillgate"
    )]
    pub issuer: String,

    /// How long after `validTo` an expired key may still be renewed, in days.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_RENEWAL_GRACE_DAYS",
        default_value_t = 30
    )]
    pub renewal_grace_days: i64,

    /// How long before `validTo` a key may already be renewed, in days.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_RENEWAL_EARLY_DAYS",
        default_value_t = 30
    )]
    pub renewal_early_days: i64,

    /// Activation requests allowed per client address per minute.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_ACTIVATION_RATE",
        default_value_t = 10
    )]
    pub activation_rate_per_minute: u32,

    /// Failed authentications allowed per client address per minute before 429.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_AUTH_FAILURE_RATE",
        default_value_t = 30
    )]
    pub auth_failure_rate_per_minute: u32,

    /// Take the client address from the last `X-Forwarded-For` entry, the one your
    /// proxy appended (only behind a proxy you trust; the entries before it are the
    /// client's own words).
    #[arg(
        long,
        global = true,
        env = "TILLGATE_TRUST_FORWARDED_FOR",
        default_value_t = false
    )]
    pub trust_forwarded_for: bool,

    /// Largest request body, in bytes (at most 2 MiB, the body extractors' own cap).
    #[arg(
        long,
        global = true,
        env = "TILLGATE_MAX_BODY_BYTES",
        default_value_t = 256 * 1024,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=2 * 1024 * 1024)
    )]
    pub max_body_bytes: usize,

    /// Most transactions committed in one database transaction (group commit), 1–4096;
    /// each writer queues up to eight times as many.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_BATCH_MAX",
        default_value_t = 1024,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=BATCH_MAX_MAX as u64)
    )]
    pub batch_max: usize,

    /// Group-commit writers (0: one on SQLite, which has a single write lock; four on
    /// PostgreSQL, which commits several transactions at once). Each register's
    /// transactions always go to the same writer, so its chain stays in order.
    #[arg(long, global = true, env = "TILLGATE_WRITERS", default_value_t = 0)]
    pub writers: usize,

    /// Freshness window of dynamic API keys, seconds either side of the server's time.
    /// Keep it the same on every process sharing a database: a key's nonce is kept an
    /// hour past the window of the process that accepted it, so replays are refused
    /// everywhere while the processes' windows and clocks differ by less than that.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_DYNAMIC_KEY_WINDOW_SECS",
        default_value_t = 300
    )]
    pub dynamic_key_window_secs: i64,

    /// Seconds an approved registration found by its API key is reused without reading
    /// the database again (0 turns the cache off; at most 60). Decisions and renewals
    /// made through this process apply at once; made through another process sharing
    /// the database (or the admin CLI), they apply here within this time: a revoked
    /// key, a key a renewal replaced, and the key of a registration a renewal by
    /// descriptor sent back to pending keep working here until their entry expires.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_KEY_CACHE_SECS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(0..=KEY_CACHE_SECS_MAX)
    )]
    pub key_cache_secs: u64,

    /// Database connection pool size.
    #[arg(long, global = true, env = "TILLGATE_DB_POOL", default_value_t = 8)]
    pub db_pool_size: u32,

    /// Key-encryption key (32 bytes, base64url) sealing the signing-key seeds in the
    /// database. When unset, the file `key-encryption.key` in the data directory (created
    /// with mode 0600 at first start). Set it for PostgreSQL with several processes.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_KEY_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    pub key_encryption_key: Option<String>,

    /// Seconds a connection may take to send a complete request head (request line and
    /// headers); applies to new and to idle keep-alive connections, which are then closed.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub header_read_timeout_secs: u64,

    /// Seconds a request may take from its head to the response, body upload included:
    /// 408 `request_timeout` if the body had not arrived, else 503 `handler_timeout`.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_REQUEST_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub request_timeout_secs: u64,

    /// Directory of the built web demo (`web-demo/dist`), served under `/demo/`; not
    /// served when unset.
    #[arg(long, global = true, env = "TILLGATE_DEMO_DIR")]
    pub demo_dir: Option<PathBuf>,

    /// Demo mode, for the web demo only: `GET /demo/admin-key.json` hands the admin key
    /// to any browser (a random one for this run unless TILLGATE_ADMIN_KEY is set).
    /// Never enable it on a server holding real registrations.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_DEMO_MODE",
        default_value_t = false
    )]
    pub demo_mode: bool,
}

/// Shows a secret setting only as set or not.
struct Redacted<'a>(&'a Option<String>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so that a new one cannot be left out (or shown) unnoticed.
        let Config {
            bind,
            data_dir,
            database_url,
            admin_key,
            rm_system,
            log_format,
            issuer,
            renewal_grace_days,
            renewal_early_days,
            activation_rate_per_minute,
            auth_failure_rate_per_minute,
            trust_forwarded_for,
            max_body_bytes,
            batch_max,
            writers,
            dynamic_key_window_secs,
            key_cache_secs,
            db_pool_size,
            key_encryption_key,
            header_read_timeout_secs,
            request_timeout_secs,
            demo_dir,
            demo_mode,
        } = self;
        f.debug_struct("Config")
            .field("bind", bind)
            .field("data_dir", data_dir)
            // A PostgreSQL URL may hold a password.
            .field("database_url", &Redacted(database_url))
            .field("admin_key", &Redacted(admin_key))
            .field("rm_system", rm_system)
            .field("log_format", log_format)
            .field("issuer", issuer)
            .field("renewal_grace_days", renewal_grace_days)
            .field("renewal_early_days", renewal_early_days)
            .field("activation_rate_per_minute", activation_rate_per_minute)
            .field("auth_failure_rate_per_minute", auth_failure_rate_per_minute)
            .field("trust_forwarded_for", trust_forwarded_for)
            .field("max_body_bytes", max_body_bytes)
            .field("batch_max", batch_max)
            .field("writers", writers)
            .field("dynamic_key_window_secs", dynamic_key_window_secs)
            .field("key_cache_secs", key_cache_secs)
            .field("db_pool_size", db_pool_size)
            .field("key_encryption_key", &Redacted(key_encryption_key))
            .field("header_read_timeout_secs", header_read_timeout_secs)
            .field("request_timeout_secs", request_timeout_secs)
            .field("demo_dir", demo_dir)
            .field("demo_mode", demo_mode)
            .finish()
    }
}

impl Config {
    /// A configuration with every default, for tests and embedding.
    pub fn with_defaults(data_dir: PathBuf) -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            database_url: None,
            admin_key: None,
            rm_system: RmSystem::new(vec![1, 2, 3, 4]).unwrap_or_else(|_| unreachable!()),
            log_format: LogFormat::Text,
            issuer: "tillgate".into(),
            renewal_grace_days: 30,
            renewal_early_days: 30,
            activation_rate_per_minute: 10,
            auth_failure_rate_per_minute: 30,
            trust_forwarded_for: false,
            max_body_bytes: 256 * 1024,
            batch_max: 1024,
            writers: 0,
            dynamic_key_window_secs: 300,
            key_cache_secs: 2,
            db_pool_size: 8,
            key_encryption_key: None,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            demo_dir: None,
            demo_mode: false,
        }
    }

    /// The database URL in effect: `DATABASE_URL`, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("tillgate.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    /// `{:?}` shows the admin key, the database URL (which may hold a password) and the
    /// key-encryption key only as set; the other settings as they are.
    #[test]
    fn debug_redacts_the_secrets() {
        let mut c = Config::with_defaults("/srv/tillgate".into());
        c.admin_key = Some("Admin-Key-Secret-0123456789".into());
        c.database_url = Some("postgres://tillgate:db-pass-w0rd@db.example/tillgate".into());
        c.key_encryption_key = Some("a2V5LWVuY3J5cHRpb24ta2V5LXNlY3JldC0wMTIzNDU2".into());
        for shown in [format!("{c:?}"), format!("{c:#?}")] {
            for secret in [
                "Admin-Key-Secret",
                "db-pass-w0rd",
                "db.example",
                "a2V5LWVuY3J5cHRpb24ta2V5",
            ] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("admin_key: Some(<redacted>)"), "{shown}");
            assert!(
                shown.contains("/srv/tillgate") && shown.contains("127.0.0.1:8080"),
                "{shown}"
            );
        }
        let unset = format!("{:?}", Config::with_defaults("/x".into()));
        assert!(unset.contains("database_url: None"), "{unset}");
    }
}
