//! Audit of the stored receipt chains: every register's transactions read back in
//! sequence order and checked as an auditor with the public keys would check them.
//!
//! For each register, up to the chain head read when its turn comes (transactions
//! committed later are left for the next audit):
//! - every receipt verifies with a signing key of this server (retired ones included),
//!   and the receipts form one gapless chain from sequence 1 (core's
//!   [`verify_receipt_chain_from`], a page at a time, so memory stays flat);
//! - each receipt names its row: the same sequence number, transaction id, transaction
//!   hash and register;
//! - each stored transaction hashes to that transaction hash, and its type, total and
//!   currency are the receipt's;
//! - the last receipt is the register's chain head, so no transaction was removed from
//!   the end, and no stored transaction lies past the head (a head set back);
//! - the versions (RVE) that delta sync lists by rise with the sequence numbers, none
//!   below its receipt's time, and the last is the register's: otherwise a register
//!   catching up by RVE could miss a transaction (these are not signed: a database
//!   restored or edited by hand is what breaks them; a database from before schema
//!   version 5, such as a backup taken before an upgrade, has none and is audited
//!   without them);
//! - the register holds no other transaction (none below sequence 1), and no
//!   transaction names a register that is not stored;
//! - with an older copy (a backup), each of its chains is a prefix of today's and each
//!   of its registers is still stored: what the chains alone cannot show (a tail cut off
//!   with the head set back, a chain rewritten and signed again).
//!
//! The public keys are the ones stored in the database unless the auditor gives their
//! own (a JWKS kept apart from it, with every key ever published): someone who can
//! write to the database could add a key of their own to it, and re-sign with that.
//!
//! It only reads, so it can run while the server serves (`tillgate-server admin
//! verify-receipts`). A changed amount, a removed or reordered transaction, a receipt
//! moved between registers or signed with another key: each shows as the register's
//! first broken sequence number, with a machine-readable code.

use serde::Serialize;
use tillgate_core::{
    Error as CoreError, ReceiptMisnames, Transaction, TrustedKeys, receipt_link, transaction_hash,
    verify_receipt_chain_from,
};

use crate::db::{ChainHead, Store, TxRow};

/// Receipts read and verified per database round trip.
pub const PAGE: i64 = 500;

/// Why an audit could not finish (what it finds in the data is never an error).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed: kept typed, so that the HTTP endpoint answers it as every
    /// other database failure (503 `storage_unavailable`).
    #[error("database error: {0}")]
    Storage(#[from] sqlx::Error),
    /// Anything else: a stored public key that cannot be used, or the report callback's
    /// own failure (the CLI's output).
    #[error("{0}")]
    Other(String),
}

impl From<String> for AuditError {
    fn from(e: String) -> Self {
        AuditError::Other(e)
    }
}

impl From<AuditError> for crate::error::AppError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Storage(e) => e.into(),
            AuditError::Other(e) => crate::error::AppError::internal(e),
        }
    }
}

/// The first problem found in one register's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The sequence number of the first transaction found wrong (for a chain cut short:
    /// the first one missing).
    pub seq: i64,
    /// What is wrong, machine-readable: core's code for a receipt that does not verify
    /// or does not chain (`bad_signature`, `unknown_kid`, `malformed_jws`,
    /// `receipt_chain_broken`, ...), `receipt_mismatch` (the receipt names another
    /// row), `version_mismatch` (versions that do not rise with the sequence numbers,
    /// one below its receipt's time, or a last one that is not the register's), `transaction_mismatch` (the stored transaction is not the one the receipt
    /// signed), `chain_head_mismatch` (the chain ends before its head, or elsewhere, or
    /// transactions lie past it), `unchained_transaction` (a transaction of the register
    /// outside its chain, e.g. at sequence 0), `unknown_register` (transactions of a
    /// register that is not stored), `previous_mismatch` (the chain does not continue
    /// the older copy's, or the register is gone).
    pub code: &'static str,
    /// The same for people.
    pub reason: String,
}

/// What the audit found for one register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterAudit {
    /// The register.
    pub activation_id: String,
    /// Its ProductionNumber.
    pub production_number: String,
    /// Transactions whose receipts were checked and found in order.
    pub transactions: u64,
    /// `intact` or `broken`.
    pub status: &'static str,
    /// For a broken chain, the first problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<Finding>,
}

impl RegisterAudit {
    /// A register not yet found wrong, nothing checked.
    fn intact(activation_id: String, production_number: String) -> RegisterAudit {
        RegisterAudit {
            activation_id,
            production_number,
            transactions: 0,
            status: "intact",
            broken: None,
        }
    }

    /// Records the first problem found (`status` and `broken` change together).
    fn mark(&mut self, finding: Finding) {
        self.status = "broken";
        self.broken = Some(finding);
    }

    /// A register broken before any of its transactions could be checked.
    fn broken_at(activation_id: String, production_number: String, finding: Finding) -> Self {
        let mut r = RegisterAudit::intact(activation_id, production_number);
        r.mark(finding);
        r
    }
}

/// The whole audit's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditSummary {
    /// Registers audited.
    pub registers: u64,
    /// Transactions found in order, over all registers.
    pub transactions: u64,
    /// Registers whose chain is broken (or transactions of a register not stored).
    pub broken: u64,
    /// Where the public keys came from: `database` (the signing keys stored in it) or
    /// `given` (the auditor's JWKS).
    pub trusted_keys: &'static str,
    /// Whether the chains were compared with an older copy ([`AuditOptions::previous`]).
    pub previous: bool,
    /// The audited database is from before schema version 5 (a backup taken before an
    /// upgrade): its transactions have no versions, so `version_mismatch` was not
    /// checked. Shown only then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub versions_unchecked: bool,
}

/// What an audit checks against; the default audits every register with the keys stored
/// in the database.
#[derive(Default)]
pub struct AuditOptions<'a> {
    /// Only this register.
    pub only: Option<&'a str>,
    /// The public keys receipts must verify with; the database's signing keys when
    /// `None`.
    pub trusted: Option<TrustedKeys>,
    /// An older copy of the database (a backup): each of its chains must be a prefix of
    /// today's, and each of its registers must still be stored. This finds what the
    /// chains alone cannot: transactions cut off the end with the head set back.
    pub previous: Option<&'a Store>,
}

/// Audits the receipt chains (see [`AuditOptions`]), calling `report` with each
/// register's result as it is known. Database errors end the audit; what it finds in the
/// data is reported, never an error.
pub async fn audit(
    store: &Store,
    options: AuditOptions<'_>,
    mut report: impl FnMut(&RegisterAudit) -> Result<(), String>,
) -> Result<AuditSummary, AuditError> {
    let mut summary = AuditSummary {
        trusted_keys: if options.trusted.is_some() {
            "given"
        } else {
            "database"
        },
        previous: options.previous.is_some(),
        versions_unchecked: !store.has_versions(),
        ..AuditSummary::default()
    };
    let keys = match options.trusted {
        Some(keys) => keys,
        None => trusted_keys(store).await?,
    };
    let mut tally = |r: &RegisterAudit| {
        summary.registers += 1;
        summary.transactions += r.transactions;
        summary.broken += u64::from(r.broken.is_some());
        report(r)
    };
    let previous = options.previous;
    let check = |head: ChainHead| {
        let keys = &keys;
        async move {
            let mut r = audit_register(store, keys, &head, PAGE).await?;
            if let (None, Some(previous)) = (&r.broken, previous)
                && let Some(f) = diverges(store, previous, &head).await?
            {
                r.mark(f);
            }
            Ok::<_, AuditError>(r)
        }
    };
    if let Some(id) = options.only {
        let head = store
            .register_chain_head(id)
            .await?
            .ok_or_else(|| format!("no activation {id}"))?;
        tally(&check(head).await?)?;
        return Ok(summary);
    }
    let mut after = String::new();
    loop {
        let heads = next_heads(store, &mut after).await?;
        if heads.is_empty() {
            break;
        }
        for head in heads {
            tally(&check(head).await?)?;
        }
    }
    for (activation_id, n, first) in store.orphan_tx_registers().await? {
        let finding = Finding {
            seq: first,
            code: "unknown_register",
            reason: format!("{n} transactions name this register, which is not stored"),
        };
        tally(&RegisterAudit::broken_at(
            activation_id,
            String::new(),
            finding,
        ))?;
    }
    // Registers of the older copy that are gone.
    if let Some(previous) = previous {
        let mut after = String::new();
        loop {
            let heads = next_heads(previous, &mut after).await?;
            if heads.is_empty() {
                break;
            }
            for old in heads {
                let gone = store
                    .register_chain_head(&old.activation_id)
                    .await?
                    .is_none();
                if gone {
                    let finding = Finding {
                        seq: 1,
                        code: "previous_mismatch",
                        reason: "the register is in the older copy but no longer stored".into(),
                    };
                    tally(&RegisterAudit::broken_at(
                        old.activation_id,
                        old.production_number,
                        finding,
                    ))?;
                }
            }
        }
    }
    Ok(summary)
}

/// The next page of chain heads, by id after `after`, which moves past them; empty at
/// the end.
async fn next_heads(store: &Store, after: &mut String) -> Result<Vec<ChainHead>, AuditError> {
    let heads = store.register_chain_heads(after, 200).await?;
    if let Some(last) = heads.last() {
        after.clone_from(&last.activation_id);
    }
    Ok(heads)
}

/// For a chain found intact up to `head`: where it parts from the older copy's chain of
/// the same register (its receipt at the older head's sequence must be the same).
async fn diverges(
    store: &Store,
    previous: &Store,
    head: &ChainHead,
) -> Result<Option<Finding>, AuditError> {
    let Some(old) = previous.register_chain_head(&head.activation_id).await? else {
        return Ok(None); // registered after that copy
    };
    if old.seq == 0 {
        return Ok(None);
    }
    if old.seq > head.seq {
        return Ok(Some(Finding {
            seq: head.seq + 1,
            code: "previous_mismatch",
            reason: format!(
                "the older copy's chain reaches sequence {}; this one ends at {}",
                old.seq, head.seq
            ),
        }));
    }
    let row = store
        .export_txs(Some(&head.activation_id), old.seq - 1, 1)
        .await?;
    match row.first() {
        Some(r) if r.seq == old.seq && receipt_link(&r.receipt) == old.head => Ok(None),
        _ => Ok(Some(Finding {
            seq: old.seq,
            code: "previous_mismatch",
            reason: format!(
                "the receipt at sequence {} is not the older copy's: the chain was rewritten",
                old.seq
            ),
        })),
    }
}

/// Every signing key this server ever had, as trusted keys.
async fn trusted_keys(store: &Store) -> Result<TrustedKeys, AuditError> {
    use base64::Engine as _;
    let mut keys = TrustedKeys::new();
    for (kid, public_key) in store.public_signing_keys().await? {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&public_key)
            .map_err(|_| format!("signing key {kid}: the stored public key is not base64url"))?;
        keys.add_raw(&kid, &bytes)
            .map_err(|e| format!("signing key {kid}: {e}"))?;
    }
    Ok(keys)
}

/// Audits one register's chain up to `head`, reading `page` receipts at a time.
pub async fn audit_register(
    store: &Store,
    keys: &TrustedKeys,
    head: &ChainHead,
    page: i64,
) -> Result<RegisterAudit, AuditError> {
    let mut result =
        RegisterAudit::intact(head.activation_id.clone(), head.production_number.clone());
    let mut previous: Option<String> = None;
    let mut last_seq = 0;
    let mut last_rve = None;
    while last_seq < head.seq {
        let mut rows = store
            .export_txs(Some(&head.activation_id), last_seq, page)
            .await?;
        let fetched = rows.len();
        // Committed after the head was read: the next audit's.
        rows.retain(|r| r.seq <= head.seq);
        if rows.is_empty() {
            break;
        }
        // A database from before versions has none to check (all read as 0).
        let versions = store.has_versions().then_some(&mut last_rve);
        if let Err(finding) = check_page(previous.as_deref(), versions, &rows, keys, head) {
            result.mark(finding);
            return Ok(result);
        }
        result.transactions += rows.len() as u64;
        if let Some(last) = rows.pop() {
            last_seq = last.seq;
            previous = Some(last.receipt);
        }
        if fetched < page as usize {
            break;
        }
    }
    let ends_at_head = match &previous {
        Some(last) => last_seq == head.seq && receipt_link(last) == head.head,
        None => head.seq == 0 && head.head.is_empty(),
    };
    let finding = if ends_at_head {
        match past_head(store, head).await? {
            None if store.has_versions() && last_rve.unwrap_or(0) != head.rve => Some(Finding {
                seq: head.seq,
                code: "version_mismatch",
                reason: format!(
                    "the last transaction's version is {}; the register's newest is {}",
                    last_rve.unwrap_or(0),
                    head.rve
                ),
            }),
            found => found,
        }
    } else {
        Some(Finding {
            seq: last_seq + 1,
            code: "chain_head_mismatch",
            reason: if last_seq < head.seq {
                format!(
                    "the transactions end at sequence {last_seq}; the register's chain head \
                     is at {}",
                    head.seq
                )
            } else {
                "the last receipt is not the register's chain head".into()
            },
        })
    };
    if let Some(finding) = finding {
        result.mark(finding);
    }
    Ok(result)
}

/// For a chain read whole from 1 to `head`: a transaction of the register outside it.
async fn past_head(store: &Store, head: &ChainHead) -> Result<Option<Finding>, AuditError> {
    // Rows past the head read at the start are either committed since (the head has
    // moved on past them: read the rows first, then the head) or hidden behind a head
    // set back.
    let stored = store.max_tx_seq(&head.activation_id).await?;
    if stored > head.seq {
        let now = store
            .register_chain_head(&head.activation_id)
            .await?
            .map_or(0, |h| h.seq);
        if stored > now {
            return Ok(Some(Finding {
                seq: head.seq + 1,
                code: "chain_head_mismatch",
                reason: format!(
                    "transactions are stored up to sequence {stored}; the register's chain \
                     head is at {now}"
                ),
            }));
        }
    }
    // Every sequence number from 1 to the head was read once; anything else stored up
    // to the head (below 1, or twice) is outside the chain.
    let (count, first) = store.count_txs_up_to(&head.activation_id, head.seq).await?;
    Ok((count != head.seq).then(|| Finding {
        seq: if first < 1 { first } else { head.seq },
        code: "unchained_transaction",
        reason: format!(
            "{count} transactions are stored up to sequence {}; its chain has {}",
            head.seq, head.seq
        ),
    }))
}

/// Checks one page of a register's rows, continuing `previous` (the receipt before the
/// page; none for the page that starts at sequence 1) and `last_rve` (its version,
/// moved on to the page's last; `None` for a database without versions, whose
/// versions are not checked).
fn check_page(
    previous: Option<&str>,
    mut last_rve: Option<&mut Option<i64>>,
    rows: &[TxRow],
    keys: &TrustedKeys,
    head: &ChainHead,
) -> Result<(), Finding> {
    let receipts: Vec<&str> = rows.iter().map(|r| r.receipt.as_str()).collect();
    let claims = verify_receipt_chain_from(previous, &receipts, keys).map_err(|e| {
        let (index, code, reason) = match &e {
            CoreError::InvalidReceipt { index, source } => {
                (*index, source.code(), source.to_string())
            }
            CoreError::ReceiptChainBroken { index, reason } => (*index, e.code(), reason.clone()),
            other => (0, other.code(), other.to_string()),
        };
        Finding {
            seq: rows.get(index).map_or(0, |r| r.seq),
            code,
            reason,
        }
    })?;
    for (row, c) in rows.iter().zip(&claims) {
        let receipt_mismatch = |what: &str| Finding {
            seq: row.seq,
            code: "receipt_mismatch",
            reason: format!("the receipt's {what} is not the stored transaction's"),
        };
        let seq = u64::try_from(row.seq).unwrap_or(u64::MAX);
        match c.names(&row.id, seq, &row.txh) {
            Ok(()) => {}
            Err(ReceiptMisnames::Sequence) => return Err(receipt_mismatch("sequence number")),
            Err(ReceiptMisnames::TransactionId) => return Err(receipt_mismatch("transaction id")),
            Err(ReceiptMisnames::TransactionHash) => {
                return Err(receipt_mismatch("transaction hash"));
            }
        }
        if c.sub != head.production_number {
            return Err(receipt_mismatch("ProductionNumber"));
        }
        if let Some(last_rve) = last_rve.as_deref_mut() {
            if last_rve.is_some_and(|v| row.rve <= v) || row.rve < c.iat {
                return Err(Finding {
                    seq: row.seq,
                    code: "version_mismatch",
                    reason: format!(
                        "its version {} is not above the previous transaction's ({}) or is \
                         below its receipt's time ({}): delta sync by RVE could miss it",
                        row.rve,
                        last_rve.map_or("none".into(), |v| v.to_string()),
                        c.iat
                    ),
                });
            }
            *last_rve = Some(row.rve);
        }
        let tx_mismatch = |reason: String| Finding {
            seq: row.seq,
            code: "transaction_mismatch",
            reason,
        };
        let tx: Transaction = serde_json::from_str(&row.body)
            .map_err(|e| tx_mismatch(format!("the stored transaction does not parse: {e}")))?;
        if transaction_hash(&tx) != row.txh {
            return Err(tx_mismatch(
                "the stored transaction is not the one its receipt signed (its hash differs)"
                    .into(),
            ));
        }
        if tx.kind.as_str() != c.tx_type || tx.total != c.total || tx.currency != c.currency {
            return Err(tx_mismatch(
                "the stored transaction's type, total or currency differ from its receipt's".into(),
            ));
        }
    }
    Ok(())
}
