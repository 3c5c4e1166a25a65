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
///
/// Other outboxes may share the store (browser tabs on one `localStorage` namespace), so
/// every change is decided against the stored record, read again in the same store call
/// ([`QueueStore::update_witness`]), never against this outbox's copy alone: a problem
/// another outbox kept stays, and the witness never moves back past what another stored.
#[derive(Debug)]
pub(super) struct WitnessState {
    /// This outbox's copy: the stored record as it last read or wrote it, or a newer one
    /// while writing it failed (written with the next change).
    record: WitnessRecord,
    /// The stored record as this outbox last read or wrote it.
    known: WitnessRecord,
    /// The stored record, if it cannot be read.
    unreadable: Option<CorruptRecord>,
    /// Counts resets: a check or a sale begun before one must not move the new witness.
    epoch: u64,
}

impl Default for WitnessState {
    fn default() -> Self {
        WitnessState {
            record: fresh(None, None),
            known: fresh(None, None),
            unreadable: None,
            epoch: 0,
        }
    }
}

/// What a look at the stored witness found about its readability.
pub(super) enum Readability {
    /// Nothing changed.
    Same,
    /// The stored record cannot be read (any more): report it.
    Unreadable(CorruptRecord),
    /// The record this outbox found unreadable was removed or reset by another outbox.
    Readable(String),
}

/// The outcome of [`WitnessState::change`].
pub(super) enum Changed<T> {
    /// Decided against the stored record: the answer, and whether the write, if one was
    /// needed, succeeded (if not, this outbox's copy moved all the same).
    Decided(T, Result<()>),
    /// Nothing decided: the witness is unreadable, or it was reset (here or by another
    /// outbox) since the sale or check began.
    Skipped,
    /// The stored record cannot be read now: never written over, and reported.
    Unreadable(CorruptRecord),
}

/// What [`WitnessState::change`]'s store call saw.
enum Seen<T> {
    Unreadable(CorruptRecord),
    Reset(WitnessRecord),
    Decided {
        stored: WitnessRecord,
        record: WitnessRecord,
        answer: T,
    },
}

impl WitnessState {
    pub(super) fn loaded(
        stored: Option<std::result::Result<WitnessRecord, CorruptRecord>>,
    ) -> Self {
        match stored {
            None => WitnessState::default(),
            Some(Ok(record)) => WitnessState {
                known: record.clone(),
                record,
                ..WitnessState::default()
            },
            Some(Err(c)) => WitnessState {
                unreadable: Some(c),
                ..WitnessState::default()
            },
        }
    }

    /// The stored record, if this outbox found it unreadable.
    pub(super) fn unreadable_record(&self) -> Option<CorruptRecord> {
        self.unreadable.clone()
    }

    /// The stored record was removed (`Outbox::remove_corrupt`): start afresh.
    pub(super) fn removed(&mut self, name: &str) {
        if self.unreadable.as_ref().is_some_and(|c| c.name == name) {
            self.unreadable = None;
            self.start_from(fresh(None, None));
        }
    }

    /// Takes `stored` as the witness after a reset or a removal (here or by another
    /// outbox): what began before it must not move it.
    fn start_from(&mut self, stored: WitnessRecord) {
        self.record = stored.clone();
        self.known = stored;
        self.epoch += 1;
    }

    /// Whether another outbox reset the witness (or removed the record) since this one
    /// last looked: the store holds none, and this outbox knew one.
    fn reset_elsewhere(&self, stored: &WitnessRecord) -> bool {
        *stored == fresh(None, None) && self.known != *stored
    }

    /// The record to decide from: the stored one. While this outbox's own copy is newer
    /// (its write failed), and no other outbox wrote since, its copy continues the stored
    /// one and is taken; if another did write, the stored record is kept, with this
    /// outbox's problem added if the stored one has none, and its receipt taken only if
    /// it directly continues the stored one ([`advances_witness`]; with `seen`, the
    /// trusted keys and the time of the sale, another receipt for the same place is kept
    /// as the problem).
    fn base(
        &self,
        stored: &WitnessRecord,
        seen: Option<(&tillgate_core::TrustedKeys, i64)>,
    ) -> WitnessRecord {
        if self.record == self.known {
            return stored.clone();
        }
        if *stored == self.known {
            return self.record.clone();
        }
        let mut base = stored.clone();
        if let (Some(mine), Some((keys, at_ms))) = (&self.record.receipt, seen) {
            match advances_witness(base.receipt.as_deref(), mine, keys) {
                Ok(true) => base.receipt = Some(mine.clone()),
                Ok(false) => {}
                Err(e) => {
                    if base.problem.is_none() {
                        base.problem = Some(problem(mine.clone(), e, at_ms));
                    }
                }
            }
        }
        if base.problem.is_none() {
            base.problem = self.record.problem.clone();
        }
        base
    }

    /// Takes in the stored record, as a store call just read it (with the witness's lock
    /// held): another outbox may have moved it, kept a problem, reset it or removed it.
    pub(super) fn look(
        &mut self,
        stored: Option<std::result::Result<WitnessRecord, CorruptRecord>>,
    ) -> Readability {
        let stored = match stored {
            Some(Err(c)) => {
                if self.unreadable.is_some() {
                    return Readability::Same;
                }
                self.unreadable = Some(c.clone());
                return Readability::Unreadable(c);
            }
            Some(Ok(r)) => r,
            None => fresh(None, None),
        };
        if let Some(c) = self.unreadable.take() {
            self.start_from(stored);
            return Readability::Readable(c.name);
        }
        if self.reset_elsewhere(&stored) {
            self.start_from(stored);
        } else {
            self.record = self.base(&stored, None);
            self.known = stored;
        }
        Readability::Same
    }

    /// Changes the witness for a sale or check begun in `epoch`, in one store call
    /// ([`QueueStore::update_witness`]): `decide` gets the stored record (see
    /// [`base`](Self::base)) and answers the record to keep and what to tell the caller.
    /// The record is written only if it differs from the stored one. If the write fails,
    /// this outbox's copy moves all the same (a stored witness that lags behind is still
    /// one of the chain's receipts) and is written with the next change; if the store
    /// cannot even be read, the decision is made against this outbox's copy.
    fn change<T>(
        &mut self,
        s: &dyn QueueStore,
        seen: Option<(&tillgate_core::TrustedKeys, i64)>,
        epoch: u64,
        decide: impl FnOnce(&WitnessRecord) -> (WitnessRecord, T),
    ) -> Result<Changed<T>> {
        if self.unreadable.is_some() || self.epoch != epoch {
            return Ok(Changed::Skipped);
        }
        let mut decide = Some(decide);
        let mut outcome = None;
        let this = &*self;
        let written = s.update_witness(&mut |stored| {
            let stored = match stored {
                Some(Err(c)) => {
                    outcome = Some(Seen::Unreadable(c));
                    return None;
                }
                Some(Ok(r)) => r,
                None => fresh(None, None),
            };
            if this.reset_elsewhere(&stored) {
                outcome = Some(Seen::Reset(stored));
                return None;
            }
            let (record, answer) = (decide.take()?)(&this.base(&stored, seen));
            let write = (record != stored).then(|| record.clone());
            outcome = Some(Seen::Decided {
                stored,
                record,
                answer,
            });
            write
        });
        match outcome {
            None => {
                let e = written.err().unwrap_or_else(|| {
                    ClientError::Storage("the store did not read the witness".into())
                });
                let Some(decide) = decide.take() else {
                    return Err(e);
                };
                let (record, answer) = decide(&self.record);
                self.record = record;
                Ok(Changed::Decided(answer, Err(e)))
            }
            Some(Seen::Unreadable(c)) => {
                self.unreadable = Some(c.clone());
                Ok(Changed::Unreadable(c))
            }
            Some(Seen::Reset(stored)) => {
                self.start_from(stored);
                Ok(Changed::Skipped)
            }
            Some(Seen::Decided {
                stored,
                record,
                answer,
            }) => {
                self.known = if written.is_ok() {
                    record.clone()
                } else {
                    stored
                };
                self.record = record;
                Ok(Changed::Decided(answer, written))
            }
        }
    }
}

pub(super) fn lock(w: &Mutex<WitnessState>) -> MutexGuard<'_, WitnessState> {
    // Every change is a few assignments under the lock, none of which can panic.
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// A receipt that did not fit, as kept.
fn problem(receipt: String, e: tillgate_core::Error, at_ms: i64) -> WitnessProblem {
    let e = ClientError::from(e);
    WitnessProblem {
        receipt,
        code: e.code().to_owned(),
        message: e.to_string(),
        at_ms,
    }
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
    /// chain. It is kept in the queue's store, so it survives restarts. Outboxes sharing
    /// the store (browser tabs) share it: this is the stored witness as this outbox last
    /// read or wrote it (at its last sale, check or sync).
    pub fn witness(&self) -> Option<String> {
        lock(&self.witness).record.receipt.clone()
    }

    /// The first receipt the server gave that did not fit the witness (a forked chain,
    /// a receipt that does not verify), kept as evidence until
    /// [`reset_witness`](Self::reset_witness). Its sale was stored all the same. Code
    /// `invalid_witness` means the kept witness itself no longer verifies (the app
    /// stopped trusting the key that signed it): reset it. A problem another outbox on
    /// the same store kept shows here from this outbox's next sale, check or sync.
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
        let (kept, epoch) = self.witness_for_check().await?;
        if kept.is_some() {
            return Ok(false);
        }
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        let receipt = receipt.to_owned();
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let before = w.record.clone();
            // Decided against the stored record: another outbox on the store, or a sale
            // answered meanwhile, may have given it a witness of its own.
            let changed = w.change(s, None, epoch, |base| match &base.receipt {
                Some(_) => (base.clone(), false),
                None => (fresh(Some(receipt), base.problem.clone()), true),
            });
            match changed? {
                Changed::Decided(adopted, Ok(())) => Ok(adopted),
                Changed::Decided(_, Err(e)) => {
                    // If the write fails, the app keeps its own copy and nothing here
                    // changed.
                    w.record = before;
                    Err(e)
                }
                Changed::Skipped => Ok(false),
                Changed::Unreadable(c) => {
                    drop(w);
                    super::witness_readability(&state, Readability::Unreadable(c.clone()));
                    Err(unreadable(&c))
                }
            }
        })
        .await
    }

    /// Forgets the witness and any problem: for a register activated afresh (a new
    /// chain), or once the operator has dealt with the problem. A check or a sale
    /// begun before the reset does not move the new witness. Other outboxes on the same
    /// store (browser tabs) take the reset in at their next sale, check or sync.
    pub async fn reset_witness(&self) -> Result<()> {
        let witness = Arc::clone(&self.witness);
        let unreadable = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let record = fresh(None, None);
            s.save_witness(&record)?;
            w.start_from(record);
            Ok(w.unreadable.take())
        })
        .await?;
        if let Some(c) = unreadable {
            // The app chose to write over the unreadable record.
            self.forget_corrupt(&c.name);
        }
        Ok(())
    }

    /// The witness to check with, read again from the store (another outbox on it may
    /// have moved it), and the epoch the check belongs to; an unreadable witness record
    /// refuses the check (`queue_record_corrupt`): without the witness a history cut
    /// back would pass. If the store cannot be read, this outbox's copy is used.
    async fn witness_for_check(&self) -> Result<(Option<String>, u64)> {
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            if let Ok(stored) = s.load_witness() {
                let readability = w.look(stored);
                super::witness_readability(&state, readability);
            }
            if let Some(c) = &w.unreadable {
                return Err(unreadable(c));
            }
            Ok((w.record.receipt.clone(), w.epoch))
        })
        .await
    }

    /// [`Client::verify_history`] with this register's witness, which then moves to the
    /// end of the checked chain ([`witness_after_check`]): the check bridged any gap.
    pub async fn verify_history(&self, client: &Client) -> Result<VerifiedHistory> {
        let (kept, epoch) = self.witness_for_check().await?;
        let history = client.verify_history(kept.as_deref()).await?;
        self.witness_checked(receipts_of(&history), epoch).await?;
        Ok(history)
    }

    /// [`Client::verify_history_since`] the witness (the quick form, for long
    /// histories), or the whole check when there is no witness yet; the witness then
    /// moves like [`verify_history`](Self::verify_history)'s.
    pub async fn verify_history_since(&self, client: &Client) -> Result<VerifiedHistory> {
        let (kept, epoch) = self.witness_for_check().await?;
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
    /// their end ([`witness_after_check`]) if the stored witness is one of them.
    pub(super) async fn witness_checked(&self, receipts: Vec<String>, epoch: u64) -> Result<()> {
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            // Decided against the stored witness: a sale answered during the check, here
            // or in another outbox on the store, may have moved it past the checked end.
            let changed = w.change(s, None, epoch, |base| {
                match witness_after_check(base.receipt.as_deref(), &receipts) {
                    Some(next) => (fresh(Some(next.to_owned()), base.problem.clone()), ()),
                    None => (base.clone(), ()),
                }
            });
            match changed? {
                Changed::Decided((), written) => written,
                Changed::Skipped => Ok(()),
                Changed::Unreadable(c) => {
                    drop(w);
                    super::witness_readability(&state, Readability::Unreadable(c));
                    Ok(())
                }
            }
        })
        .await
    }

    /// A receipt the server gave for a sale sent in `epoch`: moves the witness if it
    /// directly continues the stored one, keeps the first one that does not fit as the
    /// problem (a problem already stored, by this outbox or another on the store, stays).
    /// Returns the problem it found, if any, and whether the witness could be written
    /// (if not, the witness moved in memory all the same).
    pub(super) async fn witness_saw(
        &self,
        client: &Client,
        receipt: &str,
        now_ms: i64,
        epoch: u64,
    ) -> (Option<WitnessProblem>, Result<()>) {
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        let client = client.clone();
        let receipt = receipt.to_owned();
        let seen = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let keys = &client.config().trusted_keys;
            let changed = w.change(s, Some((keys, now_ms)), epoch, |base| {
                match advances_witness(base.receipt.as_deref(), &receipt, keys) {
                    Ok(true) => (fresh(Some(receipt), base.problem.clone()), None),
                    Ok(false) => (base.clone(), None),
                    Err(e) => {
                        let found = problem(receipt, e, now_ms);
                        // The first problem stays as the evidence.
                        let first = base.problem.clone().unwrap_or_else(|| found.clone());
                        (fresh(base.receipt.clone(), Some(first)), Some(found))
                    }
                }
            });
            Ok(match changed? {
                Changed::Decided(found, written) => (found, written),
                Changed::Skipped => (None, Ok(())),
                Changed::Unreadable(c) => {
                    drop(w);
                    super::witness_readability(&state, Readability::Unreadable(c));
                    (None, Ok(()))
                }
            })
        })
        .await;
        // A failed store task: nothing was written.
        seen.unwrap_or_else(|e| (None, Err(e)))
    }
}

/// The error a check or an adoption meets while the witness record cannot be read.
fn unreadable(c: &CorruptRecord) -> ClientError {
    ClientError::CorruptRecord {
        name: c.name.clone(),
        reason: format!(
            "{}; the witness cannot be checked until the record is removed or the witness reset",
            c.reason
        ),
    }
}
