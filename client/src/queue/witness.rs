//! The register's witness of the server's history, kept by the [`Outbox`] beside its
//! queue: the newest receipt the server gave and core accepted as continuing the one
//! before ([`advances_witness`]), and the first receipt that did not fit, kept as
//! evidence.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tillgate_core::{advances_witness, witness_after_check};

use super::{CorruptRecord, Outbox, run_store};
use crate::{Client, ClientError, Result, VerifiedHistory};

/// The witness record, exactly as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WitnessRecord {
    /// Record format version (1).
    pub v: u32,
    /// The newest receipt of this register's chain the register has seen and accepted
    /// (a compact JWS), `None` before the first.
    pub receipt: Option<String>,
    /// The first receipt the server gave that did not fit the witness, kept until
    /// [`Outbox::reset_witness`].
    pub problem: Option<WitnessProblem>,
}

/// A receipt the server gave that did not fit the register's witness: a fork of its
/// chain (`witness_mismatch`), a receipt that does not verify (`invalid_receipt`) or one
/// of another register (`receipt_chain_broken`). The server stored the sale all the
/// same: this is evidence for the operator, not a failed sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WitnessProblem {
    /// The receipt as the server gave it.
    pub receipt: String,
    /// The error code ([`ClientError::code`]).
    pub code: String,
    /// The error's message.
    pub message: String,
    /// When it was seen, Unix milliseconds.
    pub at_ms: i64,
}

/// Encodes a witness record as stored (JSON).
pub fn encode_witness(record: &WitnessRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| ClientError::Storage(e.to_string()))
}

/// Decodes a stored witness record.
pub fn decode_witness(bytes: &[u8]) -> std::result::Result<WitnessRecord, String> {
    let record: WitnessRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if record.v != 1 {
        return Err(format!("unsupported witness record version {}", record.v));
    }
    Ok(record)
}

/// The witness as the outbox holds it. An unreadable stored record is never written
/// over: the witness stays still until the app removes it
/// ([`Outbox::remove_corrupt`]) or resets it.
#[derive(Debug, Default)]
pub(super) struct WitnessState {
    record: WitnessRecord,
    /// The name of the unreadable stored record, if it is one.
    unreadable: Option<String>,
}

impl WitnessState {
    pub(super) fn loaded(
        stored: Option<std::result::Result<WitnessRecord, CorruptRecord>>,
    ) -> Self {
        match stored {
            None => WitnessState::default(),
            Some(Ok(record)) => WitnessState {
                record,
                unreadable: None,
            },
            Some(Err(c)) => WitnessState {
                record: WitnessRecord::default(),
                unreadable: Some(c.name),
            },
        }
    }

    /// The stored record was removed (`Outbox::remove_corrupt`): start afresh.
    pub(super) fn removed(&mut self, name: &str) {
        if self.unreadable.as_deref() == Some(name) {
            *self = WitnessState::default();
        }
    }
}

pub(super) fn lock(w: &Mutex<WitnessState>) -> MutexGuard<'_, WitnessState> {
    // Every change is one assignment after the store wrote it: still consistent.
    w.lock().unwrap_or_else(|p| p.into_inner())
}

fn receipts_of(history: &VerifiedHistory) -> Vec<String> {
    history
        .transactions
        .iter()
        .map(|t| t.receipt.clone())
        .collect()
}

fn fresh(receipt: Option<String>, problem: Option<WitnessProblem>) -> WitnessRecord {
    WitnessRecord {
        v: 1,
        receipt,
        problem,
    }
}

impl Outbox {
    /// The register's witness: the newest receipt of its chain it has been given and
    /// accepted, `None` before the first sale. Every sale the outbox sends moves it
    /// forward when core's [`advances_witness`] says so; a check with
    /// [`verify_history`](Self::verify_history) moves it to the end of the checked
    /// chain. It is kept in the queue's store, so it survives restarts.
    pub fn witness(&self) -> Option<String> {
        lock(&self.witness).record.receipt.clone()
    }

    /// The first receipt the server gave that did not fit the witness (a forked chain,
    /// a receipt that does not verify), kept as evidence until
    /// [`reset_witness`](Self::reset_witness). Its sale was stored all the same.
    pub fn witness_problem(&self) -> Option<WitnessProblem> {
        lock(&self.witness).record.problem.clone()
    }

    /// Forgets the witness and any problem: for a register activated afresh (a new
    /// chain), or once the operator has dealt with the problem.
    pub async fn reset_witness(&self) -> Result<()> {
        let witness = Arc::clone(&self.witness);
        let unreadable = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let record = fresh(None, None);
            s.save_witness(&record)?;
            let old = std::mem::replace(
                &mut *w,
                WitnessState {
                    record,
                    unreadable: None,
                },
            );
            Ok(old.unreadable)
        })
        .await?;
        if let Some(name) = unreadable {
            // The app chose to write over the unreadable record.
            self.forget_corrupt(&name);
        }
        Ok(())
    }

    /// [`Client::verify_history`] with this register's witness, which then moves to the
    /// end of the checked chain ([`witness_after_check`]): the check bridged any gap.
    pub async fn verify_history(&self, client: &Client) -> Result<VerifiedHistory> {
        let kept = self.witness();
        let history = client.verify_history(kept.as_deref()).await?;
        self.witness_checked(receipts_of(&history)).await?;
        Ok(history)
    }

    /// [`Client::verify_history_since`] the witness (the quick form, for long
    /// histories), or the whole check when there is no witness yet; the witness then
    /// moves like [`verify_history`](Self::verify_history)'s.
    pub async fn verify_history_since(&self, client: &Client) -> Result<VerifiedHistory> {
        let history = match self.witness() {
            Some(w) => client.verify_history_since(&w).await?,
            None => client.verify_history(None).await?,
        };
        self.witness_checked(receipts_of(&history)).await?;
        Ok(history)
    }

    /// The receipts of a check that passed: the witness moves to their end
    /// ([`witness_after_check`]).
    pub(super) async fn witness_checked(&self, receipts: Vec<String>) -> Result<()> {
        let witness = Arc::clone(&self.witness);
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            if w.unreadable.is_some() {
                return Ok(());
            }
            // Read under the lock: a sale answered during the check may have moved it.
            let kept = w.record.receipt.as_deref();
            let Some(next) = witness_after_check(kept, &receipts).filter(|n| Some(*n) != kept)
            else {
                return Ok(());
            };
            let record = fresh(Some(next.to_owned()), w.record.problem.clone());
            s.save_witness(&record)?;
            w.record = record;
            Ok(())
        })
        .await
    }

    /// A receipt the server just gave for a sale: moves the witness if it directly
    /// continues it, keeps the first one that does not fit as the problem, and returns
    /// the problem it found, if any.
    pub(super) async fn witness_saw(
        &self,
        client: &Client,
        receipt: &str,
        now_ms: i64,
    ) -> Result<Option<WitnessProblem>> {
        let witness = Arc::clone(&self.witness);
        let client = client.clone();
        let receipt = receipt.to_owned();
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            if w.unreadable.is_some() {
                return Ok(None);
            }
            let keys = &client.config().trusted_keys;
            let (record, problem) =
                match advances_witness(w.record.receipt.as_deref(), &receipt, keys) {
                    Ok(false) => return Ok(None),
                    Ok(true) => (fresh(Some(receipt), w.record.problem.clone()), None),
                    Err(e) => {
                        let e = ClientError::from(e);
                        let problem = WitnessProblem {
                            receipt,
                            code: e.code().to_owned(),
                            message: e.to_string(),
                            at_ms: now_ms,
                        };
                        if w.record.problem.is_some() {
                            // The first problem stays as the evidence.
                            return Ok(Some(problem));
                        }
                        let kept = w.record.receipt.clone();
                        (fresh(kept, Some(problem.clone())), Some(problem))
                    }
                };
            s.save_witness(&record)?;
            w.record = record;
            Ok(problem)
        })
        .await
    }
}
