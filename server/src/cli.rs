//! The command line: `tillgate-server [serve | admin ... | keygen]`, and the admin
//! commands: the same decisions as the admin HTTP endpoints, plus signing key rotation,
//! run directly against the database.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api_activation::rfc3339;
use crate::api_admin::{
    AdminActivation, NewStaff, STATUSES, StaffOut, add_staff_checked, check_decision_text,
    disable_staff_checked,
};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::{KeyChange, KeyImport, SigningKeyRow, Store};
use crate::error::AppError;

/// Tillgate: activation, authentication and cash-transaction service for POS apps.
///
/// The settings (flags and environment variables) go before or after the subcommand.
#[derive(Debug, clap::Parser)]
#[command(name = "tillgate-server", version)]
pub struct Cli {
    /// The server's settings, shared by every subcommand.
    #[command(flatten)]
    pub config: Config,
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands of `tillgate-server`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Admin commands against the database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Make a signing key to hold offline (run it on another machine): writes its
    /// private JWK to --out and prints its public JWK, for `admin publish-key` and the
    /// apps' built-in keys. Uses no database.
    Keygen {
        /// The private key file to create (must not exist; readable by its owner only).
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

/// Admin subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// List registrations (JSON lines), oldest first, every one (read a page at a time).
    List {
        /// Only this status (pending, approved, rejected, revoked).
        #[arg(long)]
        status: Option<String>,
    },
    /// Approve a pending registration: the Tax Authority was notified.
    Approve {
        /// Activation id.
        activation_id: String,
        /// Who approves.
        #[arg(long, default_value = "admin-cli")]
        by: String,
        /// When the Tax Authority was notified (RFC 3339); now when absent.
        #[arg(long)]
        notified_at: Option<String>,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject a pending registration.
    Reject {
        /// Activation id.
        activation_id: String,
        /// Who rejects.
        #[arg(long, default_value = "admin-cli")]
        by: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Revoke a registration.
    Revoke {
        /// Activation id.
        activation_id: String,
        /// Who revokes.
        #[arg(long, default_value = "admin-cli")]
        by: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Every decision about a registration (JSON lines), oldest first: who approved,
    /// rejected or revoked it, when, the Tax Authority notification time and the note.
    Decisions {
        /// Activation id.
        activation_id: String,
    },
    /// List signing keys.
    Keys,
    /// Create a new signing key, published at once (older keys stay published). Without
    /// options it signs from now on; apps that do not trust it yet refuse what it signs,
    /// so to rotate without that, publish it first (--publish-only), ship its public key
    /// in the apps, then `activate-key`.
    RotateKey {
        /// Publish the key only: it signs nothing until `activate-key`.
        #[arg(long, conflicts_with = "signs_from")]
        publish_only: bool,
        /// Publish the key now and let it sign from this time on (RFC 3339, each
        /// server's clock); `activate-key` can still move it.
        #[arg(long)]
        signs_from: Option<String>,
    },
    /// Publish a key held offline, from the public JWK `tillgate-server keygen` printed
    /// (on another machine): published only, with no private part on the server, until
    /// `activate-key --key-file`. A reserve key the apps trust in advance, out of reach
    /// of whoever reads the database and its key-encryption key.
    PublishKey {
        /// The public JWK file (`-`: standard input). A file with a private part is
        /// refused: the private key stays offline.
        jwk: std::path::PathBuf,
    },
    /// Make a published signing key sign: from now on, or from --signs-from. Of the keys
    /// whose start has come, the one with the latest start signs.
    ActivateKey {
        /// The key id (base64url: it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Sign from this time on (RFC 3339; a past time means now) instead of now.
        #[arg(long)]
        signs_from: Option<String>,
        /// For a key held offline (`publish-key`): its private key file, written by
        /// `tillgate-server keygen`; its seed is stored (sealed with the KEK when there is
        /// one) and the key activated. `-` reads it from standard input.
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
    },
    /// Stop publishing and using an old signing key (refused for the last key that can
    /// sign now).
    RetireKey {
        /// The key id (base64url: it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Add a staff login for dynamic API keys, or enable a disabled one again (with a new
    /// password only).
    AddStaff {
        /// Login name.
        #[arg(long)]
        login: String,
        /// The register the login works at.
        #[arg(long)]
        activation_id: String,
        /// The public key (base64url: it may begin with `-`) the app derived; or use
        /// --password-stdin.
        #[arg(long, conflicts_with = "password_stdin", allow_hyphen_values = true)]
        public_key: Option<String>,
        /// Read the password from standard input and derive the public key here (the
        /// password itself is not stored).
        #[arg(long)]
        password_stdin: bool,
        /// Argon2id memory, KiB.
        #[arg(long)]
        memory_kib: Option<u32>,
        /// Argon2id passes.
        #[arg(long)]
        iterations: Option<u32>,
        /// Argon2id lanes.
        #[arg(long)]
        parallelism: Option<u32>,
        /// Change a login that is enabled with another key, register or parameters: a
        /// new password, or a move to another register (with a new password only).
        #[arg(long)]
        replace: bool,
    },
    /// Disable a staff login: its dynamic keys fail from now on, as an unknown login's
    /// do. The login is kept, with the time; `add-staff` enables it again, with a new
    /// password only.
    DisableStaff {
        /// Login name.
        #[arg(long)]
        login: String,
    },
    /// Check every register's receipt chain against the stored transactions (read only;
    /// the server may keep running): one JSON line per register, then the counts. Exits
    /// non-zero if any chain is broken.
    VerifyReceipts {
        /// Only this register.
        #[arg(long)]
        activation_id: Option<String>,
        /// Print only the broken registers' lines (and the counts).
        #[arg(long)]
        broken_only: bool,
        /// Verify with the public keys of this JWKS file (every key ever published, kept
        /// apart from the database) instead of the keys stored in the database, which
        /// someone able to write to it could add to. `-` reads it from standard input.
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
        /// An older backup (a SQLite file, or a database URL): every chain in it must be
        /// a prefix of today's, and each of its registers still stored. Finds chains
        /// cut short and rewritten since.
        #[arg(long)]
        previous: Option<SecretUrl>,
    },
    /// Write a consistent, checked copy of the SQLite database to a new file, while the
    /// server keeps running (PostgreSQL: use pg_dump).
    Backup {
        /// The backup file to create; it must not exist yet.
        to: std::path::PathBuf,
    },
    /// Replace the SQLite database with a backup, the server stopped (refused while it
    /// runs). The replaced files are moved to `before-restore-<time>` beside them.
    Restore {
        /// The backup file to restore.
        from: std::path::PathBuf,
    },
    /// Copy the SQLite database into a new, empty PostgreSQL database, the server
    /// stopped: every table, read back and compared before it commits. Then start the
    /// server with that DATABASE_URL (and the same TILLGATE_KEY_ENCRYPTION_KEY).
    CopyToPostgres {
        /// The PostgreSQL URL (`postgres://...`) to copy into; best read from the
        /// environment, so that a password does not show in the process list.
        #[arg(env = "TILLGATE_COPY_TO_DATABASE_URL", hide_env_values = true)]
        to: SecretUrl,
    },
}

/// A database URL that may hold a password: its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretUrl(pub String);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretUrl(..)")
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretUrl(s.to_owned()))
    }
}

/// Runs one admin command, printing its result to standard output.
pub async fn run(config: &Config, cmd: AdminCommand) -> Result<(), CliError> {
    // A database that a restore is replacing, or left half replaced: only the restore
    // run again may use it (it may be missing, or lie beside an older `-wal`).
    if !matches!(cmd, AdminCommand::Restore { .. }) {
        crate::backup::refuse_if_restoring(&config.effective_database_url())?;
    }
    match cmd {
        // Reads only: needs no key-encryption key, and checks a backup file or a
        // database moved to PostgreSQL as well as the one in service.
        AdminCommand::VerifyReceipts {
            activation_id,
            broken_only,
            jwks,
            previous,
        } => {
            verify_receipts(
                &config.effective_database_url(),
                activation_id.as_deref(),
                broken_only,
                jwks.as_deref(),
                previous.as_ref().map(|p| p.0.as_str()),
            )
            .await
        }
        cmd => run_other(config, cmd).await.map_err(CliError::Failed),
    }
}

async fn run_other(config: &Config, cmd: AdminCommand) -> Result<(), String> {
    refuse_another_owner(&config.effective_database_url())?;
    match &cmd {
        // Reads the database only: no migration, no key sealing, no KEK needed.
        AdminCommand::Backup { to } => {
            return print_json(&crate::backup::backup(&config.effective_database_url(), to).await?);
        }
        // Replaces the database file: nothing may have it open.
        AdminCommand::Restore { from } => {
            let summary = crate::backup::restore(
                &config.effective_database_url(),
                from,
                crate::db::schema_version(),
                SystemClock.now(),
            )
            .await?;
            return print_json(&summary);
        }
        AdminCommand::CopyToPostgres { to } => {
            let summary = crate::transfer::copy_to_postgres(
                &config.effective_database_url(),
                &to.0,
                crate::transfer::KekHint::of(config),
                SystemClock.now(),
            )
            .await?;
            return print_json(&summary);
        }
        _ => {}
    }
    // The store's commands write (migrations, decisions, keys): never to a database
    // that is being or was moved to PostgreSQL (the shared admin lock is held until the
    // command ends, so a copy cannot begin meanwhile).
    refuse_missing_database(config)?;
    let _admin = crate::backup::lock_admin(&config.effective_database_url(), false)?;
    crate::transfer::refuse_if_moved(&config.effective_database_url())?;
    // The server's KEK if this command was given it; never a new one (see
    // `seal::existing_from_config`).
    let cipher = crate::seal::existing_from_config(config)?;
    let seals = stores_a_seed(&cmd);
    if seals && cipher.is_none() {
        return Err(format!(
            "this command stores a signing key's private part, sealed with the server's \
             key-encryption key, and none was found: run it with the server's settings \
             (TILLGATE_KEY_ENCRYPTION_KEY from its env file, or the data directory holding \
             {})",
            config.data_dir.join(crate::seal::KEK_FILE).display()
        ));
    }
    let store = Store::connect(&config.effective_database_url(), 2)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    // No `Store::init`: an admin command neither creates a first signing key nor seals
    // the seeds stored in plain text; the server's start does, with its KEK.
    let store = match cipher {
        Some(cipher) => store.with_seed_cipher(cipher),
        None => store,
    };
    let result = async {
        if seals {
            // A seed sealed with another KEK than the stored ones' would stop every server.
            store
                .signing_keys()
                .await
                .map_err(|e| format!("the stored signing keys: {e}"))?;
        }
        run_with(&store, config, cmd, SystemClock.now()).await
    }
    .await;
    store.close().await;
    result
}

/// Whether an admin command stores a signing key's private part (sealed with the KEK).
fn stores_a_seed(cmd: &AdminCommand) -> bool {
    matches!(
        cmd,
        AdminCommand::RotateKey { .. }
            | AdminCommand::ActivateKey {
                key_file: Some(_),
                ..
            }
    )
}

/// Refuses to work on a SQLite database that belongs to another user than this process:
/// what a command writes beside it (its lock files, a migrated or restored database)
/// would be this user's, and the server, running as the owner, could then no longer open
/// it (a plain `sudo tillgate-server admin …` runs as root). Before a restore creates the
/// database, root is refused a directory that belongs to another user likewise; another
/// user restoring into a shared directory (`/tmp`, a group-writable volume) creates a
/// file of its own, which is fine. This process's user is the owner of `/proc/self`
/// (Linux; elsewhere the check is not made).
fn refuse_another_owner(url: &str) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt as _;
        let Some(db) = crate::db::sqlite_path(url) else {
            return Ok(());
        };
        let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return Ok(());
        };
        let existing = if db.exists() {
            Some(db.as_path())
        } else if me == 0 {
            db.parent().filter(|p| p.exists())
        } else {
            None
        };
        if let Some(path) = existing
            && let Ok(owner) = std::fs::metadata(path).map(|m| m.uid())
            && owner != me
        {
            return Err(format!(
                "{} belongs to uid {owner} and this command runs as uid {me}: what it \
                 writes there (lock files, a migrated or restored database) would not be the \
                 server's, which could then no longer open it. Run it as the owner (`sudo -u \
                 <user> tillgate-server admin …`, or deploy/tillgate-admin)",
                path.display()
            ));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = url;
    Ok(())
}

/// Admin commands work on the server's database: a SQLite file that does not exist (the
/// data directory's, or one a `sqlite:` `DATABASE_URL` names, even with `mode=rwc`) means
/// the command was not given the server's settings (another data directory, another
/// user's working directory, a mistyped path). It would create an empty database of its
/// own, with a signing key, and a key or decision made there would never reach the
/// server: refused instead. PostgreSQL is left to the connection.
fn refuse_missing_database(config: &Config) -> Result<(), String> {
    let url = config.effective_database_url();
    let Some(db) = crate::db::sqlite_path(&url) else {
        return Ok(());
    };
    if db.is_file() {
        return Ok(());
    }
    let named = if config
        .database_url
        .as_deref()
        .is_some_and(|u| !u.is_empty())
    {
        "DATABASE_URL names it"
    } else {
        "the data directory's"
    };
    Err(format!(
        "no database at {} ({named}): give admin commands the server's settings \
         (TILLGATE_DATA_DIR or --data-dir, or DATABASE_URL); the server creates its database \
         when it first starts",
        db.display()
    ))
}

async fn run_with(
    store: &Store,
    config: &Config,
    cmd: AdminCommand,
    now: i64,
) -> Result<(), String> {
    let decide = |id: String,
                  from: &'static [&'static str],
                  to: &'static str,
                  by: String,
                  at: Option<i64>,
                  note: Option<String>| async move {
        check_decision_text(Some(&by), note.as_deref()).map_err(|f| {
            let flag = if f.field == "note" { "--note" } else { "--by" };
            format!("{flag} {}", f.message)
        })?;
        match store
            .decide(&id, from, to, &by, at, note.as_deref(), now)
            .await
            .map_err(|e| e.to_string())?
        {
            None => Err(format!("no activation {id}")),
            Some(Ok(row)) => print_json(&AdminActivation::from(row)),
            Some(Err(row)) if row.status == to => print_json(&AdminActivation::from(row)),
            Some(Err(row)) => Err(format!(
                "activation is {}; it cannot become {to}",
                row.status
            )),
        }
    };
    match cmd {
        AdminCommand::Backup { .. }
        | AdminCommand::Restore { .. }
        | AdminCommand::CopyToPostgres { .. }
        | AdminCommand::VerifyReceipts { .. } => Err(
            "backup, restore, copy-to-postgres and verify-receipts run without the store's \
             start-up (no key sealing, no admin lock)"
                .into(),
        ),
        AdminCommand::List { status } => {
            if let Some(s) = &status
                && !STATUSES.contains(&s.as_str())
            {
                return Err("--status must be pending, approved, rejected or revoked".into());
            }
            // Every registration, a page at a time: none is left out, however many.
            let mut after: Option<(i64, String)> = None;
            loop {
                let rows = store
                    .list_activations_after(
                        status.as_deref(),
                        after.as_ref().map(|(t, id)| (*t, id.as_str())),
                        LIST_PAGE,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let full = rows.len() as i64 == LIST_PAGE;
                after = rows.last().map(|r| (r.created_at, r.id.clone()));
                for row in rows {
                    print_json(&AdminActivation::from(row))?;
                }
                if !full {
                    return Ok(());
                }
            }
        }
        AdminCommand::Approve {
            activation_id,
            by,
            notified_at,
            note,
        } => {
            let at = match notified_at {
                Some(t) => parse_time("--notified-at", &t)?,
                None => now,
            };
            decide(activation_id, &["pending"], "approved", by, Some(at), note).await
        }
        AdminCommand::Reject {
            activation_id,
            by,
            note,
        } => decide(activation_id, &["pending"], "rejected", by, None, note).await,
        AdminCommand::Revoke {
            activation_id,
            by,
            note,
        } => {
            decide(
                activation_id,
                &["pending", "approved"],
                "revoked",
                by,
                None,
                note,
            )
            .await
        }
        AdminCommand::Decisions { activation_id } => {
            let rows = store
                .decisions(&activation_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no activation {activation_id}"))?;
            for row in rows {
                print_json(&crate::api_admin::DecisionOut::from(row))?;
            }
            Ok(())
        }
        AdminCommand::Keys => {
            let keys = store
                .signing_keys_unopened()
                .await
                .map_err(|e| e.to_string())?;
            let signing = crate::db::signer_at(&keys, now).map(|k| k.kid.clone());
            for k in &keys {
                print_json(&key_line(k, signing.as_deref()))?;
            }
            Ok(())
        }
        AdminCommand::RotateKey {
            publish_only,
            signs_from,
        } => {
            let key = tillgate_core::generate_signing_key().map_err(|e| e.to_string())?;
            let newest = newest_created_at(store, now).await?;
            let signs_from = match (publish_only, signs_from) {
                (true, _) => None,
                (false, Some(t)) => {
                    let t = parse_time("--signs-from", &t)?;
                    if t > now && t <= newest {
                        // Not after the creation time it would get: read as "at once".
                        return Err(format!(
                            "--signs-from must be after {}, the newest key's creation \
                             time (a host whose clock was ahead created it)",
                            rfc3339(newest)
                        ));
                    }
                    Some(t)
                }
                (false, None) => Some(newest),
            };
            store
                .add_staged_signing_key(&key, newest, signs_from)
                .await
                .map_err(|e| e.to_string())?;
            print_key(store, key.kid(), now).await
        }
        AdminCommand::PublishKey { jwk } => {
            let text = read_file_arg(&jwk)?;
            let public = public_key_of_jwk(&text)?;
            let newest = newest_created_at(store, now).await?;
            if !store
                .publish_offline_key(&public, newest)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!(
                    "a signing key {} is stored already",
                    tillgate_core::jwk_thumbprint(&public)
                ));
            }
            print_key(store, &tillgate_core::jwk_thumbprint(&public), now).await
        }
        AdminCommand::ActivateKey {
            kid,
            signs_from,
            key_file,
        } => {
            let at = match signs_from {
                Some(t) => parse_time("--signs-from", &t)?,
                None => now,
            };
            if let Some(path) = key_file {
                let key = read_key_file(&path)?;
                if key.kid() != kid {
                    return Err(format!(
                        "{} holds the key {}, not {kid}",
                        path.display(),
                        key.kid()
                    ));
                }
                match store
                    .import_signing_key(&key)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    KeyImport::Imported | KeyImport::AlreadyStored => {}
                    KeyImport::NoSuchKey => {
                        return Err(format!("no signing key {kid} that is not retired"));
                    }
                }
            }
            match store
                .activate_signing_key(&kid, at, now)
                .await
                .map_err(|e| e.to_string())?
            {
                KeyChange::Done => print_key(store, &kid, now).await,
                KeyChange::NoSuchKey => Err(format!("no signing key {kid} that is not retired")),
                KeyChange::StartNotAfterCreation => Err(format!(
                    "--signs-from must be after {kid}'s creation time (a host whose clock \
                     was ahead created it): a start not after it would mean at once"
                )),
                KeyChange::LastSigningKey => Err(format!(
                    "{kid} is the only key that can sign now: activate another key first"
                )),
                KeyChange::HeldOffline => Err(format!(
                    "{kid} is held offline: give its private key file with --key-file"
                )),
            }
        }
        AdminCommand::RetireKey { kid } => {
            if store
                .retire_signing_key(&kid, now)
                .await
                .map_err(|e| e.to_string())?
            {
                print_json(&serde_json::json!({"kid": kid, "retired": true}))
            } else if store
                .signing_keys_unopened()
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .any(|k| k.kid == kid && k.retired_at.is_none())
            {
                Err(format!(
                    "{kid} is the last key that can sign now: activate another key first \
                     (a key published only, or whose start has not come, does not count)"
                ))
            } else {
                Err(format!("no signing key {kid} that is not retired"))
            }
        }
        AdminCommand::AddStaff {
            login,
            activation_id,
            public_key,
            password_stdin,
            memory_kib,
            iterations,
            parallelism,
            replace,
        } => {
            let system = config.rm_system.to_string();
            if password_stdin {
                check_rm_system(store, &system).await?;
            }
            let d = tillgate_core::DynamicKeyParams::default();
            let params = tillgate_core::DynamicKeyParams {
                memory_kib: memory_kib.unwrap_or(d.memory_kib),
                iterations: iterations.unwrap_or(d.iterations),
                parallelism: parallelism.unwrap_or(d.parallelism),
            };
            let public_key = match (public_key, password_stdin) {
                (Some(pk), _) => pk,
                (None, true) => {
                    let mut password = String::new();
                    std::io::stdin()
                        .read_line(&mut password)
                        .map_err(|e| e.to_string())?;
                    let password = password.trim_end_matches(['\r', '\n']);
                    let pair =
                        tillgate_core::derive_dynamic_key_pair(&system, &login, password, params)
                            .map_err(|e| e.to_string())?;
                    B64.encode(pair.public_key())
                }
                (None, false) => return Err("give --public-key or --password-stdin".into()),
            };
            let staff = NewStaff {
                login,
                activation_id,
                public_key,
                memory_kib: Some(params.memory_kib),
                iterations: Some(params.iterations),
                parallelism: Some(params.parallelism),
                replace,
            };
            let added = add_staff_checked(store, &staff, &system, now)
                .await
                .map_err(app_error)?;
            print_json(&serde_json::json!({
                "login": staff.login,
                "activationId": staff.activation_id,
                "result": added,
            }))
        }
        AdminCommand::DisableStaff { login } => {
            let row = disable_staff_checked(store, &login, now)
                .await
                .map_err(app_error)?;
            print_json(&StaffOut::from(row))
        }
    }
}

/// Registrations `admin list` reads per database round trip.
const LIST_PAGE: i64 = 1000;

/// A staff key derived here must be the one the app derives, with the RmSystem the
/// server answers to (`GET /auth/dynamic-key-params` tells the apps): refused when the
/// server recorded another one at its last start.
async fn check_rm_system(store: &Store, system: &str) -> Result<(), String> {
    let stored = store
        .setting(crate::state::RM_SYSTEM_SETTING)
        .await
        .map_err(|e| e.to_string())?;
    match stored {
        Some(server) if server != system => Err(format!(
            "the server answers to RmSystem {server} (recorded at its last start), this \
             command to {system}: a key derived here would not be the one the app derives; \
             give the command the server's settings (TILLGATE_RM_SYSTEM={server})"
        )),
        Some(_) => Ok(()),
        None => {
            eprintln!(
                "tillgate-server: no server has recorded its RmSystem in this database yet \
                 (it does when it starts); deriving with this command's, {system}"
            );
            Ok(())
        }
    }
}

/// An error of the checks shared with the HTTP API, for the terminal: its message, its
/// code, and the fields it names.
fn app_error(e: AppError) -> String {
    let mut out = format!("{e} ({})", e.code());
    if let AppError::Problem { fields, .. } = &e {
        for f in fields {
            out.push_str(&format!("; {}: {}", f.field, f.message));
        }
    }
    out
}

/// The creation time for a new key: strictly newer than every stored key, so that of
/// keys with the same signing start it is the one that signs.
async fn newest_created_at(store: &Store, now: i64) -> Result<i64, String> {
    Ok(store
        .signing_keys_unopened()
        .await
        .map_err(|e| e.to_string())?
        .first()
        .map_or(now, |k| (k.created_at + 1).max(now)))
}

/// `tillgate-server keygen`: makes a signing key on this machine, writes its private
/// JWK to `out` (a new file, readable by its owner only) and prints its public JWK, for
/// `admin publish-key` and for the apps' built-in keys. Touches no database.
pub fn keygen(out: &std::path::Path) -> Result<(), CliError> {
    let key = tillgate_core::generate_signing_key().map_err(|e| e.to_string())?;
    let mut private = key.public_jwk();
    private.d = Some(B64.encode(key.seed()));
    let text = serde_json::to_string(&private).map_err(|e| e.to_string())?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(out)
        .and_then(|mut f| {
            use std::io::Write as _;
            writeln!(f, "{text}")?;
            f.sync_all()
        })
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    print_json(&key.public_jwk())?;
    Ok(())
}

/// The Ed25519 public key of a public JWK (one with a private part is refused), checked
/// as apps check their trusted keys; a `kid`, if any, must be the key's thumbprint (the
/// server's key ids).
fn public_key_of_jwk(text: &str) -> Result<[u8; 32], String> {
    let jwk: tillgate_core::Jwk =
        serde_json::from_str(text).map_err(|e| format!("not a JWK: {e}"))?;
    if jwk.d.is_some() {
        return Err(
            "this JWK holds a private key (d): give the public JWK; the private \
                    key stays offline until activate-key --key-file"
                .into(),
        );
    }
    let x = jwk.x.as_deref().unwrap_or_default();
    let public: [u8; 32] = B64
        .decode(x)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the JWK's x must be a 32-byte base64url public key")?;
    let kid = tillgate_core::jwk_thumbprint(&public);
    let mut checked = tillgate_core::Jwk {
        kid: Some(kid.clone()),
        ..jwk.clone()
    };
    checked.d = None;
    tillgate_core::TrustedKeys::new()
        .add_jwk(&checked)
        .map_err(|e| format!("not an Ed25519 public JWK: {e}"))?;
    if jwk.kid.as_ref().is_some_and(|k| *k != kid) {
        return Err(format!(
            "the JWK's kid is not its key's thumbprint ({kid}), the id the server uses"
        ));
    }
    Ok(public)
}

/// The text of a file named on the command line, or of standard input for `-`: admin
/// commands run as the server's user (deploy/tillgate-admin), who may not read the
/// operator's files, so `--key-file - < reserve.jwk` lets the operator's shell read it.
fn read_file_arg(path: &std::path::Path) -> Result<String, String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read standard input: {e}"))
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// The signing key in a private JWK file written by [`keygen`]; its `x` and `kid`, if
/// given, must match the private part.
fn read_key_file(path: &std::path::Path) -> Result<tillgate_core::SigningKey, String> {
    let text = read_file_arg(path)?;
    let jwk: tillgate_core::Jwk =
        serde_json::from_str(&text).map_err(|_| format!("{} is not a JWK", path.display()))?;
    let seed = jwk
        .d
        .as_deref()
        .and_then(|d| B64.decode(d).ok())
        .ok_or_else(|| format!("{} holds no private key (d)", path.display()))?;
    let key = tillgate_core::SigningKey::from_seed_slice(&seed)
        .map_err(|_| format!("{}: the private key (d) must be 32 bytes", path.display()))?;
    let x_matches = jwk
        .x
        .as_deref()
        .is_none_or(|x| x == B64.encode(key.public_key_bytes()));
    let kid_matches = jwk.kid.as_deref().is_none_or(|k| k == key.kid());
    if !x_matches || !kid_matches {
        return Err(format!(
            "{}: its public part does not match its private key",
            path.display()
        ));
    }
    Ok(key)
}

/// Unix seconds of an RFC 3339 time given as `flag`.
fn parse_time(flag: &str, t: &str) -> Result<i64, String> {
    OffsetDateTime::parse(t, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("{flag} must be RFC 3339"))
}

/// A line of `admin keys`: `signsFrom` is null for a key published only, `signing` says
/// whether it is the key that signs now (by this host's clock).
fn key_line(k: &SigningKeyRow, signing: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "kid": k.kid,
        "createdAt": rfc3339(k.created_at),
        "signsFrom": k.signs_from.map(rfc3339),
        "retiredAt": k.retired_at.map(rfc3339),
        "signing": Some(k.kid.as_str()) == signing,
        "heldOffline": k.seed.is_none(),
    })
}

/// Prints the `admin keys` line of one key, as stored now.
async fn print_key(store: &Store, kid: &str, now: i64) -> Result<(), String> {
    let keys = store
        .signing_keys_unopened()
        .await
        .map_err(|e| e.to_string())?;
    let signing = crate::db::signer_at(&keys, now).map(|k| k.kid.clone());
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| format!("signing key {kid} vanished"))?;
    print_json(&key_line(key, signing.as_deref()))
}

/// `admin verify-receipts`: one JSON line per register (per broken one with
/// `broken_only`), then `{"summary": ...}`; [`CliError::ChainsBroken`] when a chain is
/// broken.
async fn verify_receipts(
    url: &str,
    only: Option<&str>,
    broken_only: bool,
    jwks: Option<&std::path::Path>,
    previous: Option<&str>,
) -> Result<(), CliError> {
    let trusted = match jwks {
        Some(path) => {
            let text = read_file_arg(path)?;
            Some(
                tillgate_core::TrustedKeys::from_jwks_json(&text)
                    .map_err(|e| format!("{} is not a usable JWKS: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let open = |url: String| async move {
        if let Some(db) = crate::db::sqlite_path(&url)
            && !db.is_file()
        {
            return Err(format!("no database at {}", db.display()));
        }
        Store::connect_read_only(&url)
            .await
            .map_err(|e| format!("cannot open the database: {e}"))
    };
    // An older copy: a database URL, or a SQLite backup file's path.
    let previous = match previous {
        Some(p) if p.starts_with("sqlite:") || p.contains("://") => Some(open(p.to_owned()).await?),
        Some(p) => Some(open(format!("sqlite://{p}")).await?),
        None => None,
    };
    let store = open(url.to_owned()).await?;
    let options = crate::audit::AuditOptions {
        only,
        trusted,
        previous: previous.as_ref(),
    };
    let result = crate::audit::audit(&store, options, |r: &crate::audit::RegisterAudit| {
        match r.broken {
            None if broken_only => Ok(()),
            _ => print_json(r),
        }
    })
    .await;
    store.close().await;
    if let Some(p) = &previous {
        p.close().await;
    }
    let summary = result.map_err(|e| e.to_string())?;
    #[derive(serde::Serialize)]
    struct Last<'a> {
        summary: &'a crate::audit::AuditSummary,
    }
    print_json(&Last { summary: &summary })?;
    match summary.broken {
        0 => Ok(()),
        n => Err(CliError::ChainsBroken(format!(
            "{n} of {} registers' receipt chains are broken",
            summary.registers
        ))),
    }
}

/// Why an admin command failed; each has its exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The command could not do its work (bad arguments, database unreachable, ...):
    /// exit code 1.
    #[error("{0}")]
    Failed(String),
    /// `verify-receipts` found broken receipt chains: exit code 2, so that monitoring
    /// tells tampering from an outage.
    #[error("{0}")]
    ChainsBroken(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::ChainsBroken(_) => 2,
        }
    }
}

impl From<String> for CliError {
    fn from(e: String) -> Self {
        CliError::Failed(e)
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    let s = serde_json::to_string(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::AdminCommand;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Admin {
        #[command(subcommand)]
        command: AdminCommand,
    }

    fn parse(args: &[&str]) -> Result<AdminCommand, clap::Error> {
        Admin::try_parse_from(std::iter::once("admin").chain(args.iter().copied()))
            .map(|a| a.command)
    }

    /// Key ids and public keys are base64url, so one in 64 begins with `-`: read as a
    /// value, not as an unknown option, wherever it stands.
    #[test]
    fn key_ids_and_public_keys_may_begin_with_a_hyphen() {
        for args in [
            &[
                "activate-key",
                "-Vx_1",
                "--signs-from",
                "2030-01-01T00:00:00Z",
            ][..],
            &[
                "activate-key",
                "--signs-from",
                "2030-01-01T00:00:00Z",
                "-Vx_1",
            ][..],
        ] {
            match parse(args).unwrap() {
                AdminCommand::ActivateKey {
                    kid, signs_from, ..
                } => {
                    assert_eq!(kid, "-Vx_1");
                    assert_eq!(signs_from.as_deref(), Some("2030-01-01T00:00:00Z"));
                }
                other => panic!("{other:?}"),
            }
        }
        match parse(&["retire-key", "--x"]).unwrap() {
            AdminCommand::RetireKey { kid } => assert_eq!(kid, "--x"),
            other => panic!("{other:?}"),
        }
        match parse(&[
            "add-staff",
            "--login",
            "anna",
            "--activation-id",
            "act_1",
            "--public-key",
            "-k",
        ])
        .unwrap()
        {
            AdminCommand::AddStaff { public_key, .. } => {
                assert_eq!(public_key.as_deref(), Some("-k"));
            }
            other => panic!("{other:?}"),
        }
        // Help still answers, and a missing key id is still an error.
        let help = parse(&["activate-key", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(parse(&["retire-key"]).is_err());
    }

    /// A SQLite database that does not exist is refused, whether the data directory or
    /// `DATABASE_URL` names it (`mode=rwc` or not); an existing one and PostgreSQL pass.
    #[test]
    fn admin_commands_refuse_a_missing_sqlite_database() {
        let dir = std::env::temp_dir().join(format!("tillgate-cli-missing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = crate::Config::with_defaults(dir.join("data"));
        let e = super::refuse_missing_database(&config).unwrap_err();
        assert!(
            e.contains("no database at") && e.contains("data directory"),
            "{e}"
        );
        for url in [
            format!("sqlite://{}?mode=rwc", dir.join("none.db").display()),
            format!("sqlite:{}", dir.join("none.db").display()),
        ] {
            config.database_url = Some(url);
            let e = super::refuse_missing_database(&config).unwrap_err();
            assert!(e.contains("none.db") && e.contains("DATABASE_URL"), "{e}");
        }
        std::fs::write(dir.join("there.db"), b"").unwrap();
        config.database_url = Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join("there.db").display()
        ));
        super::refuse_missing_database(&config).unwrap();
        config.database_url = Some("postgres://tillgate@db.internal/tillgate".into());
        super::refuse_missing_database(&config).unwrap();
        assert!(!dir.join("none.db").exists() && !dir.join("data").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn parse_cli(args: &[&str]) -> Result<super::Cli, clap::Error> {
        super::Cli::try_parse_from(std::iter::once("tillgate-server").chain(args.iter().copied()))
    }

    /// The settings are global: before the subcommand, after it, or after an admin
    /// command's own arguments; every subcommand still parses, with its own flags.
    #[test]
    fn settings_go_before_or_after_the_subcommand() {
        use super::Command;
        <super::Cli as clap::CommandFactory>::command().debug_assert();
        let cli = parse_cli(&["serve", "--bind", "127.0.0.1:0"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(cli.config.bind.to_string(), "127.0.0.1:0");
        let cli = parse_cli(&["--bind", "127.0.0.1:0", "serve"]).unwrap();
        assert_eq!(cli.config.bind.port(), 0);
        let cli = parse_cli(&[
            "admin",
            "add-staff",
            "--login",
            "anna",
            "--activation-id",
            "act_1",
            "--public-key",
            "-k",
            "--replace",
            "--data-dir",
            "/srv/tillgate",
            "--rm-system",
            "5,6,7,8",
        ])
        .unwrap();
        assert_eq!(cli.config.data_dir, std::path::Path::new("/srv/tillgate"));
        assert_eq!(cli.config.rm_system.to_string(), "5,6,7,8");
        match cli.command {
            Some(Command::Admin(AdminCommand::AddStaff {
                login,
                public_key,
                replace,
                ..
            })) => {
                assert_eq!(
                    (login.as_str(), public_key.as_deref(), replace),
                    ("anna", Some("-k"), true)
                );
            }
            other => panic!("{other:?}"),
        }
        match parse_cli(&["admin", "disable-staff", "--login", "anna"])
            .unwrap()
            .command
        {
            Some(Command::Admin(AdminCommand::DisableStaff { login })) => assert_eq!(login, "anna"),
            other => panic!("{other:?}"),
        }
        match parse_cli(&["keygen", "--out", "k.jwk", "--log-format", "json"]) {
            Ok(cli) => {
                assert!(matches!(cli.command, Some(Command::Keygen { .. })));
                assert_eq!(cli.config.log_format, crate::LogFormat::Json);
            }
            Err(e) => panic!("{e}"),
        }
        let cli = parse_cli(&[]).unwrap();
        assert!(cli.command.is_none());
        assert!(parse_cli(&["serve", "--bind", "not an address"]).is_err());
    }

    /// `{:?}` of the command line shows no secret: not the admin key, the database URL's
    /// password, the key-encryption key, nor the URL `copy-to-postgres` copies into.
    #[test]
    fn debug_shows_no_secret() {
        let secrets = [
            "Admin-Key-Secret-0123456789",
            "db-pass-w0rd",
            "a2V5LWVuY3J5cHRpb24ta2V5LXNlY3JldC0wMTIzNDU2",
            "copy-pass-w0rd",
        ];
        let cli = parse_cli(&[
            "--admin-key",
            secrets[0],
            "--database-url",
            "postgres://tillgate:db-pass-w0rd@db.example/tillgate",
            "admin",
            "copy-to-postgres",
            "postgres://tillgate:copy-pass-w0rd@db.example/tillgate",
            "--key-encryption-key",
            secrets[2],
        ])
        .unwrap();
        assert_eq!(cli.config.admin_key.as_deref(), Some(secrets[0]));
        assert_eq!(cli.config.key_encryption_key.as_deref(), Some(secrets[2]));
        let shown = format!("{cli:?} {cli:#?} {:?}", cli.config);
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // An older backup given as a database URL.
        let with_previous = parse_cli(&[
            "admin",
            "verify-receipts",
            "--previous",
            "postgres://tillgate:prev-pass-w0rd@db.example/tillgate",
        ])
        .unwrap();
        let previous = format!("{with_previous:?}");
        assert!(!previous.contains("prev-pass-w0rd"), "{previous}");
        // What is not secret is still shown.
        assert!(
            shown.contains("key_cache_secs") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
