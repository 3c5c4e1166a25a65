//! The register's witness of the server's history, kept by the [`Outbox`] beside its
//! queue: the newest receipt the server gave and core accepted as continuing the one
//! before ([`advances_witness`]), and the first receipt that did not fit, kept as
//! evidence.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tillgate_core::{advances_witness, verify_receipt, witness_after_check};

use super::{CorruptRecord, Outbox, QueueStore, run_store};
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
/// same: this is evidence for the operator, not a failed sale. (`invalid_witness`: the
/// kept witness itself no longer verifies, because the app stopped trusting the key
/// that signed it; reset the witness.)
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
/// over: the witness stays still, and checks refuse to run without it, until the app
/// removes it ([`Outbox::remove_corrupt`]) or resets it.
#[derive(Debug, Default)]
pub(super) struct WitnessState {
    record: WitnessRecord,
    /// The stored record, if it cannot be read.
    unreadable: Option<CorruptRecord>,
    /// Counts resets: a check or a sale begun before one must not move the new witness.
    epoch: u64,
    /// The record in memory is newer than the stored one (a write failed); the next
    /// change writes it again.
    unsaved: bool,
}

impl WitnessState {
    pub(super) fn loaded(
        stored: Option<std::result::Result<WitnessRecord, CorruptRecord>>,
    ) -> Self {
        match stored {
            None => WitnessState::default(),
            Some(Ok(record)) => WitnessState {
                record,
                ..WitnessState::default()
            },
            Some(Err(c)) => WitnessState {
                unreadable: Some(c),
                ..WitnessState::default()
            },
        }
    }

    /// The stored record was removed (`Outbox::remove_corrupt`): start afresh.
    pub(super) fn removed(&mut self, name: &str) {
        if self.unreadable.as_ref().is_some_and(|c| c.name == name) {
            self.unreadable = None;
            self.record = WitnessRecord::default();
            self.epoch += 1;
        }
    }

    /// Writes `record` and keeps it. If the write fails the record is kept in memory all
    /// the same (a stored witness that lags behind is still one of the chain's
    /// receipts) and written again with the next change.
    fn keep(&mut self, s: &dyn QueueStore, record: WitnessRecord) -> Result<()> {
        let saved = s.save_witness(&record);
        self.unsaved = saved.is_err();
        self.record = record;
        saved
    }
}

pub(super) fn lock(w: &Mutex<WitnessState>) -> MutexGuard<'_, WitnessState> {
    // Every change is a few assignments under the lock, none of which can panic.
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
    /// [`reset_witness`](Self::reset_witness). Its sale was stored all the same. Code
    /// `invalid_witness` means the kept witness itself no longer verifies (the app
    /// stopped trusting the key that signed it): reset it.
    pub fn witness_problem(&self) -> Option<WitnessProblem> {
        lock(&self.witness).record.problem.clone()
    }

    /// Takes `receipt` as the witness when none is kept yet: for an app that kept a
    /// witness of its own before it used the outbox's. The receipt must verify alone
    /// against the client's trusted keys and be a receipt of `production_number`, the
    /// register's own (`invalid_witness` otherwise: a register activated afresh may still
    /// hold its old registration's receipt). A witness the outbox already keeps is never
    /// replaced (`Ok(false)`), nor is an unreadable one (`queue_record_corrupt`). Only an
    /// `Ok` means the app's copy is no longer needed: the witness is then stored. The next
    /// check tells whether the server's chain holds it.
    pub async fn adopt_witness(
        &self,
        client: &Client,
        receipt: &str,
        production_number: &str,
    ) -> Result<bool> {
        let invalid = |e| tillgate_core::Error::InvalidWitness {
            source: Box::new(e),
        };
        let claims = verify_receipt(receipt, &client.config().trusted_keys).map_err(invalid)?;
        if claims.sub != production_number {
            return Err(invalid(tillgate_core::Error::ReceiptChainBroken {
                index: 0,
                reason: format!(
                    "the receipt is register {}'s, not {production_number}'s",
                    claims.sub
                ),
            })
            .into());
        }
        let (kept, epoch) = self.witness_for_check()?;
        if kept.is_some() {
            return Ok(false);
        }
        let witness = Arc::clone(&self.witness);
        let receipt = receipt.to_owned();
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            // A sale answered meanwhile gave the outbox a witness of its own.
            if w.unreadable.is_some() || w.epoch != epoch || w.record.receipt.is_some() {
                return Ok(false);
            }
            // Stored first: if the write fails, the app keeps its own copy and nothing
            // here changed.
            let record = fresh(Some(receipt), w.record.problem.clone());
            s.save_witness(&record)?;
            w.record = record;
            w.unsaved = false;
            Ok(true)
        })
        .await
    }

    /// Forgets the witness and any problem: for a register activated afresh (a new
    /// chain), or once the operator has dealt with the problem. A check or a sale
    /// begun before the reset does not move the new witness.
    pub async fn reset_witness(&self) -> Result<()> {
        let witness = Arc::clone(&self.witness);
        let unreadable = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let record = fresh(None, None);
            s.save_witness(&record)?;
            w.record = record;
            w.unsaved = false;
            w.epoch += 1;
            Ok(w.unreadable.take())
        })
        .await?;
        if let Some(c) = unreadable {
            // The app chose to write over the unreadable record.
            self.forget_corrupt(&c.name);
        }
        Ok(())
    }

    /// The witness to check with, and the epoch the check belongs to; an unreadable
    /// witness record refuses the check (`queue_record_corrupt`): without the witness
    /// a history cut back would pass.
    fn witness_for_check(&self) -> Result<(Option<String>, u64)> {
        let w = lock(&self.witness);
        if let Some(c) = &w.unreadable {
            return Err(ClientError::CorruptRecord {
                name: c.name.clone(),
                reason: format!(
                    "{}; the witness cannot be checked until the record is removed or the witness reset",
                    c.reason
                ),
            });
        }
        Ok((w.record.receipt.clone(), w.epoch))
    }

    /// [`Client::verify_history`] with this register's witness, which then moves to the
    /// end of the checked chain ([`witness_after_check`]): the check bridged any gap.
    pub async fn verify_history(&self, client: &Client) -> Result<VerifiedHistory> {
        let (kept, epoch) = self.witness_for_check()?;
        let history = client.verify_history(kept.as_deref()).await?;
        self.witness_checked(receipts_of(&history), epoch).await?;
        Ok(history)
    }

    /// [`Client::verify_history_since`] the witness (the quick form, for long
    /// histories), or the whole check when there is no witness yet; the witness then
    /// moves like [`verify_history`](Self::verify_history)'s.
    pub async fn verify_history_since(&self, client: &Client) -> Result<VerifiedHistory> {
        let (kept, epoch) = self.witness_for_check()?;
        let history = match kept {
            Some(w) => client.verify_history_since(&w).await?,
            None => client.verify_history(None).await?,
        };
        self.witness_checked(receipts_of(&history), epoch).await?;
        Ok(history)
    }

    /// The current epoch, taken before a sale is sent or a check is fetched.
    pub(super) fn witness_epoch(&self) -> u64 {
        lock(&self.witness).epoch
    }

    /// The receipts of a check that passed, begun in `epoch`: the witness moves to
    /// their end ([`witness_after_check`]).
    pub(super) async fn witness_checked(&self, receipts: Vec<String>, epoch: u64) -> Result<()> {
        let witness = Arc::clone(&self.witness);
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            if w.unreadable.is_some() || w.epoch != epoch {
                return Ok(());
            }
            // Read under the lock: a sale answered during the check may have moved it.
            let kept = w.record.receipt.as_deref();
            let Some(next) = witness_after_check(kept, &receipts) else {
                return Ok(());
            };
            if Some(next) == kept && !w.unsaved {
                return Ok(());
            }
            let record = fresh(Some(next.to_owned()), w.record.problem.clone());
            w.keep(s, record)
        })
        .await
    }

    /// A receipt the server gave for a sale sent in `epoch`: moves the witness if it
    /// directly continues it, keeps the first one that does not fit as the problem.
    /// Returns the problem it found, if any, and whether the witness could be written
    /// (if not, the witness moved in memory all the same).
    pub(super) async fn witness_saw(
        &self,
        client: &Client,
        receipt: &str,
        now_ms: i64,
        epoch: u64,
    ) -> (Option<WitnessProblem>, Result<()>) {
        let witness = Arc::clone(&self.witness);
        let client = client.clone();
        let receipt = receipt.to_owned();
        let seen = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            if w.unreadable.is_some() || w.epoch != epoch {
                return Ok((None, Ok(())));
            }
            let keys = &client.config().trusted_keys;
            let (record, problem) =
                match advances_witness(w.record.receipt.as_deref(), &receipt, keys) {
                    Ok(false) if w.unsaved => (w.record.clone(), None),
                    Ok(false) => return Ok((None, Ok(()))),
                    Ok(true) => (fresh(Some(receipt), w.record.problem.clone()), None),
                    Err(e) => {
                        let e = ClientError::from(e);
                        let problem = WitnessProblem {
                            receipt,
                            code: e.code().to_owned(),
                            message: e.to_string(),
                            at_ms: now_ms,
                        };
                        if w.record.problem.is_some() && !w.unsaved {
                            // The first problem stays as the evidence.
                            return Ok((Some(problem), Ok(())));
                        }
                        let first = w.record.problem.clone().unwrap_or_else(|| problem.clone());
                        (fresh(w.record.receipt.clone(), Some(first)), Some(problem))
                    }
                };
            Ok((problem, w.keep(s, record)))
        })
        .await;
        // A failed store task: nothing was written.
        seen.unwrap_or_else(|e| (None, Err(e)))
    }
}
