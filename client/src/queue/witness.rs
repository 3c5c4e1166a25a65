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
    /// How many times the witness was reset ([`Outbox::reset_witness`]); 0 if never, and
    /// for a record written before the count was kept. An outbox that last read another
    /// count takes the stored record as reset by another outbox on the store, even when
    /// it held no witness of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resets: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
/// over: the witness stays still, and checks refuse to run without it, until the record
/// can be read again (a store that could not read it for a moment, another outbox that
/// reset it), or the app removes it ([`Outbox::remove_corrupt`]) or resets it.
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
    /// The record this outbox found unreadable can be read again, or is gone (removed
    /// or reset).
    Readable(String),
}

/// What deciding on a receipt needs: the client's trusted keys, and the time a receipt
/// found not to fit is dated with.
#[derive(Clone, Copy)]
pub(super) struct Judge<'a> {
    keys: &'a tillgate_core::TrustedKeys,
    /// The time of the sale or sync; `None` for a check, which reads no clock: then a
    /// receipt is dated by its own signing time.
    at_ms: Option<i64>,
}

impl<'a> Judge<'a> {
    pub(super) fn new(client: &'a Client, at_ms: Option<i64>) -> Self {
        Judge {
            keys: &client.config().trusted_keys,
            at_ms,
        }
    }

    /// When `receipt`, found not to fit, counts as seen.
    fn at_ms(&self, receipt: &str) -> i64 {
        self.at_ms.unwrap_or_else(|| {
            verify_receipt(receipt, self.keys).map_or(0, |c| c.iat.saturating_mul(1000))
        })
    }
}

/// The outcome of [`WitnessState::change`].
pub(super) enum Changed<T> {
    /// Decided against the stored record: the answer, and whether the write, if one was
    /// needed, succeeded (if not, this outbox's copy moved all the same).
    Decided(T, Result<()>),
    /// Nothing decided: the witness was reset (here or by another outbox) since the sale
    /// or check began, or it is unreadable and the store cannot be read now.
    Skipped,
    /// The stored record cannot be read: never written over, and reported.
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

    /// After the app asked to remove the unreadable record `name`, the store read again:
    /// `stored` is what it holds now. Answers whether this outbox's record is no longer
    /// unreadable. A record gone starts the witness afresh; one that can be read again
    /// (the store only failed to read it for a moment, or another outbox reset it) is
    /// taken in at the next sale, check or sync, each of which decides against it.
    pub(super) fn removed(
        &mut self,
        name: &str,
        stored: Option<std::result::Result<WitnessRecord, CorruptRecord>>,
    ) -> bool {
        if self.unreadable.as_ref().is_none_or(|c| c.name != name) {
            return false;
        }
        match stored {
            Some(Err(_)) => false,
            None => {
                self.unreadable = None;
                self.start_from(fresh(None, None));
                true
            }
            Some(Ok(_)) => {
                self.unreadable = None;
                true
            }
        }
    }

    /// Takes `stored` as the witness after a reset or a removal (here or by another
    /// outbox): what began before it must not move it.
    fn start_from(&mut self, stored: WitnessRecord) {
        self.record = stored.clone();
        self.known = stored;
        self.epoch += 1;
    }

    /// Whether the witness was reset (or its record removed) since this outbox last
    /// looked: the store counts another number of resets, or it holds an empty record
    /// where this outbox knew one.
    fn reset_elsewhere(&self, stored: &WitnessRecord) -> bool {
        stored.resets != self.known.resets
            || (stored.receipt.is_none() && stored.problem.is_none() && self.known != *stored)
    }

    /// The record to decide from: the stored one. While this outbox's own copy is newer
    /// (its write failed), and no other outbox wrote since, its copy continues the stored
    /// one and is taken. If another did write, the stored record is kept, and this
    /// outbox's receipt is judged against it like a receipt just given
    /// ([`advances_witness`]): taken if it directly continues it, kept as the problem if
    /// it forks it. The stored record's problem comes first, then this outbox's, then
    /// the one found now.
    fn base(&self, stored: &WitnessRecord, judge: Judge<'_>) -> WitnessRecord {
        if self.record == self.known {
            return stored.clone();
        }
        if *stored == self.known {
            return self.record.clone();
        }
        let mut base = stored.clone();
        let mut found = None;
        if let Some(mine) = &self.record.receipt {
            match advances_witness(base.receipt.as_deref(), mine, judge.keys) {
                Ok(true) => base.receipt = Some(mine.clone()),
                Ok(false) => {}
                Err(e) => found = Some(problem(mine.clone(), e, judge.at_ms(mine))),
            }
        }
        if base.problem.is_none() {
            base.problem = self.record.problem.clone().or(found);
        }
        base
    }

    /// Takes `stored`, just read, as the record this outbox knows, with its own unsaved
    /// copy judged against it ([`base`](Self::base)).
    fn take(&mut self, stored: WitnessRecord, judge: Judge<'_>) {
        if self.reset_elsewhere(&stored) {
            self.start_from(stored);
        } else {
            self.record = self.base(&stored, judge);
            self.known = stored;
        }
    }

    /// Takes in the stored record, as a store call just read it (with the witness's lock
    /// held): another outbox may have moved it, kept a problem, reset it or removed it.
    pub(super) fn look(
        &mut self,
        stored: Option<std::result::Result<WitnessRecord, CorruptRecord>>,
        judge: Judge<'_>,
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
        // Readable again: this outbox's copy, unsaved changes included, is judged against
        // it like at any look.
        let found = match self.unreadable.take() {
            Some(c) => Readability::Readable(c.name),
            None => Readability::Same,
        };
        self.take(stored, judge);
        found
    }

    /// Changes the witness for a sale or check begun in `epoch`, in one store call
    /// ([`QueueStore::update_witness`]): `decide` gets the stored record (see
    /// [`base`](Self::base)) and answers the record to keep and what to tell the caller.
    /// The record is written only if it differs from the stored one. If the write fails,
    /// this outbox's copy moves all the same (a stored witness that lags behind is still
    /// one of the chain's receipts) and is written with the next change; if the store
    /// cannot even be read, the decision is made against this outbox's copy (unless this
    /// outbox found the record unreadable: then nothing is decided). Also answers what
    /// the store call found about the record's readability, to report.
    fn change<T>(
        &mut self,
        s: &dyn QueueStore,
        judge: Judge<'_>,
        epoch: u64,
        decide: impl FnOnce(&WitnessRecord) -> (WitnessRecord, T),
    ) -> Result<(Changed<T>, Readability)> {
        if self.epoch != epoch {
            return Ok((Changed::Skipped, Readability::Same));
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
            let (record, answer) = (decide.take()?)(&this.base(&stored, judge));
            let write = (record != stored).then(|| record.clone());
            outcome = Some(Seen::Decided {
                stored,
                record,
                answer,
            });
            write
        });
        // Read (the closure ran) and readable: a record this outbox found unreadable is
        // readable again.
        let readable = |w: &mut Self| match w.unreadable.take() {
            Some(c) => Readability::Readable(c.name),
            None => Readability::Same,
        };
        match outcome {
            None => {
                let e = written.err().unwrap_or_else(|| {
                    ClientError::Storage("the store did not read the witness".into())
                });
                let Some(decide) = decide.take() else {
                    return Err(e);
                };
                if self.unreadable.is_some() {
                    return Ok((Changed::Skipped, Readability::Same));
                }
                let (record, answer) = decide(&self.record);
                self.record = record;
                Ok((Changed::Decided(answer, Err(e)), Readability::Same))
            }
            Some(Seen::Unreadable(c)) => {
                self.unreadable = Some(c.clone());
                Ok((Changed::Unreadable(c.clone()), Readability::Unreadable(c)))
            }
            Some(Seen::Reset(stored)) => {
                let found = readable(self);
                self.start_from(stored);
                Ok((Changed::Skipped, found))
            }
            Some(Seen::Decided {
                stored,
                record,
                answer,
            }) => {
                let found = readable(self);
                self.known = if written.is_ok() {
                    record.clone()
                } else {
                    stored
                };
                self.record = record;
                Ok((Changed::Decided(answer, written), found))
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
        resets: 0,
    }
}

/// `base` with another receipt (and the same problem and count of resets).
fn moved(base: &WitnessRecord, receipt: String) -> WitnessRecord {
    WitnessRecord {
        receipt: Some(receipt),
        ..base.clone()
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
        let (kept, epoch) = self.witness_for_check(client).await?;
        if kept.is_some() {
            return Ok(false);
        }
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        let (client, receipt) = (client.clone(), receipt.to_owned());
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let before = (w.record.clone(), w.known.clone());
            // Decided against the stored record: another outbox on the store, or a sale
            // answered meanwhile, may have given it a witness of its own.
            let judge = Judge::new(&client, None);
            let (changed, found) = w.change(s, judge, epoch, |base| match &base.receipt {
                Some(_) => (base.clone(), false),
                None => (moved(base, receipt), true),
            })?;
            let adopted = match changed {
                Changed::Decided(adopted, Ok(())) => Ok(adopted),
                Changed::Decided(_, Err(e)) => {
                    // If the write fails, the app keeps its own copy and nothing here
                    // changed: neither this outbox's copy nor what it knows of the
                    // stored record (which the next change reads again). Keeping the
                    // stored record as known beside the old copy would take that copy
                    // as newer than it, and erase a problem stored meanwhile.
                    (w.record, w.known) = before;
                    Err(e)
                }
                Changed::Skipped => Ok(false),
                Changed::Unreadable(c) => Err(unreadable(&c)),
            };
            drop(w);
            super::witness_readability(&state, found);
            adopted
        })
        .await
    }

    /// Forgets the witness and the problem it reports: for a register activated afresh
    /// (a new chain), or once the operator has dealt with the problem. A check or a sale
    /// begun before the reset does not move the new witness. Other outboxes on the same
    /// store (browser tabs) take the reset in at their next sale, check or sync.
    ///
    /// Only the problem [`witness_problem`](Self::witness_problem) reports is erased: a
    /// different one another outbox stored meanwhile, which this one has not shown, is
    /// kept (and reported from now on). An app that shows the problem to the operator
    /// passes the one it showed to [`reset_witness_seen`](Self::reset_witness_seen).
    pub async fn reset_witness(&self) -> Result<()> {
        let shown = self.witness_problem();
        self.reset_witness_seen(shown.as_ref()).await.map(|_| ())
    }

    /// [`reset_witness`](Self::reset_witness), erasing only `seen`, the problem the
    /// operator was shown (`None`: none was). The stored record is read again in the
    /// call that writes it: a problem stored meanwhile by another outbox on the store
    /// (a browser tab) that is not `seen` stays, and is answered (also reported by
    /// [`witness_problem`](Self::witness_problem) from now on) for the app to show; the
    /// witness itself is forgotten all the same. An unreadable record is written over
    /// (the app's explicit choice).
    pub async fn reset_witness_seen(
        &self,
        seen: Option<&WitnessProblem>,
    ) -> Result<Option<WitnessProblem>> {
        let witness = Arc::clone(&self.witness);
        let seen = seen.cloned();
        let (unreadable, kept) = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let known = w.known.resets;
            // A problem this outbox found but could not store yet is kept like a stored
            // one, unless it is the one seen.
            let unsaved = Some(&w.record.problem)
                .filter(|p| **p != w.known.problem)
                .and_then(Clone::clone);
            let unseen = |p: &WitnessProblem| Some(p) != seen.as_ref();
            let mut reset = None;
            let updated = s.update_witness(&mut |stored| {
                let (resets, problem) = match stored {
                    Some(Ok(r)) => (r.resets, r.problem),
                    Some(Err(_)) | None => (known, None),
                };
                let problem = problem
                    .filter(unseen)
                    .or_else(|| unsaved.clone().filter(unseen));
                let record = WitnessRecord {
                    resets: resets.max(known).saturating_add(1),
                    ..fresh(None, problem)
                };
                reset = Some(record.clone());
                Some(record)
            });
            let record = match (updated, reset) {
                (Ok(()), Some(record)) => record,
                (Err(e), Some(_)) => return Err(e),
                // The store could not read the witness: written over, as the app asked,
                // keeping only a problem this outbox could not store and has not shown.
                (_, None) => {
                    let record = WitnessRecord {
                        resets: known.saturating_add(1),
                        ..fresh(None, unsaved.clone().filter(unseen))
                    };
                    s.save_witness(&record)?;
                    record
                }
            };
            let kept = record.problem.clone();
            w.start_from(record);
            Ok((w.unreadable.take(), kept))
        })
        .await?;
        if let Some(c) = unreadable {
            // The app chose to write over the unreadable record.
            self.forget_corrupt(&c.name);
        }
        Ok(kept)
    }

    /// The witness to check with, read again from the store (another outbox on it may
    /// have moved it), and the epoch the check belongs to; an unreadable witness record
    /// refuses the check (`queue_record_corrupt`): without the witness a history cut
    /// back would pass. If the store cannot be read, this outbox's copy is used.
    async fn witness_for_check(&self, client: &Client) -> Result<(Option<String>, u64)> {
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        let client = client.clone();
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let found = match s.load_witness() {
                Ok(stored) => w.look(stored, Judge::new(&client, None)),
                Err(_) => Readability::Same,
            };
            let kept = match &w.unreadable {
                Some(c) => Err(unreadable(c)),
                None => Ok((w.record.receipt.clone(), w.epoch)),
            };
            drop(w);
            super::witness_readability(&state, found);
            kept
        })
        .await
    }

    /// [`Client::verify_history`] with this register's witness, which then moves to the
    /// end of the checked chain ([`witness_after_check`]): the check bridged any gap.
    pub async fn verify_history(&self, client: &Client) -> Result<VerifiedHistory> {
        let (kept, epoch) = self.witness_for_check(client).await?;
        let history = client.verify_history(kept.as_deref()).await?;
        self.witness_checked(client, receipts_of(&history), epoch)
            .await?;
        Ok(history)
    }

    /// [`Client::verify_history_since`] the witness (the quick form, for long
    /// histories), or the whole check when there is no witness yet; the witness then
    /// moves like [`verify_history`](Self::verify_history)'s.
    pub async fn verify_history_since(&self, client: &Client) -> Result<VerifiedHistory> {
        let (kept, epoch) = self.witness_for_check(client).await?;
        let history = match kept {
            Some(w) => client.verify_history_since(&w).await?,
            None => client.verify_history(None).await?,
        };
        self.witness_checked(client, receipts_of(&history), epoch)
            .await?;
        Ok(history)
    }

    /// The current epoch, taken before a sale is sent or a check is fetched.
    pub(super) fn witness_epoch(&self) -> u64 {
        lock(&self.witness).epoch
    }

    /// The receipts of a check that passed, begun in `epoch`: the witness moves to
    /// their end ([`witness_after_check`]) if the stored witness is one of them.
    pub(super) async fn witness_checked(
        &self,
        client: &Client,
        receipts: Vec<String>,
        epoch: u64,
    ) -> Result<()> {
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        let client = client.clone();
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            // Decided against the stored witness: a sale answered during the check, here
            // or in another outbox on the store, may have moved it past the checked end.
            let judge = Judge::new(&client, None);
            let (changed, found) = w.change(s, judge, epoch, |base| {
                match witness_after_check(base.receipt.as_deref(), &receipts) {
                    Some(next) => (moved(base, next.to_owned()), ()),
                    None => (base.clone(), ()),
                }
            })?;
            drop(w);
            super::witness_readability(&state, found);
            match changed {
                Changed::Decided((), written) => written,
                Changed::Skipped | Changed::Unreadable(_) => Ok(()),
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
            let judge = Judge::new(&client, Some(now_ms));
            let (changed, found) = w.change(s, judge, epoch, |base| {
                match advances_witness(base.receipt.as_deref(), &receipt, keys) {
                    Ok(true) => (moved(base, receipt), None),
                    Ok(false) => (base.clone(), None),
                    Err(e) => {
                        let found = problem(receipt, e, now_ms);
                        // The first problem stays as the evidence.
                        let first = base.problem.clone().unwrap_or_else(|| found.clone());
                        let record = WitnessRecord {
                            problem: Some(first),
                            ..base.clone()
                        };
                        (record, Some(found))
                    }
                }
            })?;
            drop(w);
            super::witness_readability(&state, found);
            Ok(match changed {
                Changed::Decided(found, written) => (found, written),
                Changed::Skipped | Changed::Unreadable(_) => (None, Ok(())),
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
