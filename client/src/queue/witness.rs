//! The register's witness of the server's history, kept by the [`Outbox`] beside its
//! queue: the newest receipt the server gave and core accepted as continuing the one
//! before ([`advances_witness`]), and the first receipt that did not fit, kept as
//! evidence.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tillgate_core::{
    advances_witness, decode_receipt_unverified, verify_receipt, witness_after_check,
};

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
    /// for a record written before the count was kept. An outbox that finds a higher
    /// count than any it read or wrote takes the stored record as reset by another
    /// outbox on the store, even when it held no witness of its own. The count never goes
    /// down: a record written by an older version (which drops the count) or a lower
    /// count is not a reset, and the next write restores the highest count; an older
    /// version's reset (a record with neither receipt nor problem) is counted by the
    /// first outbox that finds it.
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
///
/// While writing fails, this outbox's copy runs ahead of the stored record: every
/// receipt it took since is kept (`unsaved`) and, if another outbox stored a record
/// meanwhile, judged against it one by one ([`base`](Self::base)). One that cannot be
/// judged against it (the stored witness is two or more receipts further on, or behind
/// it past a gap) is not forgotten: the next check must find it in the server's chain
/// (`unconfirmed`, [`confirm`]), or it is kept as the problem.
#[derive(Debug)]
pub(super) struct WitnessState {
    /// This outbox's copy: the stored record as it last read or wrote it, or a newer one
    /// while writing it failed (written with the next change).
    record: WitnessRecord,
    /// The stored record as this outbox last read or wrote it.
    known: WitnessRecord,
    /// The receipts this outbox took as its witness since `known` while writing them
    /// failed, oldest first: each continues the one before it (or ends a check), and the
    /// last is `record`'s. At most [`MAX_KEPT`]: then the newest replaces the last.
    unsaved: Vec<String>,
    /// Receipts this outbox took that could not be judged against the witness another
    /// outbox stored over them: the next check must find each in the server's chain.
    /// In memory only; at most [`MAX_KEPT`], then the newest replaces the last. Each
    /// with its number in the order they were put on the list (`added` then).
    unconfirmed: Vec<(String, u64)>,
    /// How many receipts were put on `unconfirmed`: a check confirms with the chain it
    /// fetched only those put there before it began ([`Begun`]).
    added: u64,
    /// The highest count of resets this outbox read or wrote: it never goes down, so a
    /// record written without the count (an older version) is not taken as a reset, and
    /// the next write carries the count again.
    resets: u64,
    /// The stored record, if it cannot be read.
    unreadable: Option<CorruptRecord>,
    /// Counts resets: a check or a sale begun before one must not move the new witness.
    epoch: u64,
}

/// How many receipts [`WitnessState`] keeps in each of its lists.
const MAX_KEPT: usize = 64;

/// Adds `receipt` to `list` (once), the newest replacing the last when it is full.
fn keep(list: &mut Vec<String>, receipt: String) {
    if list.contains(&receipt) {
        return;
    }
    if list.len() >= MAX_KEPT {
        list.pop();
    }
    list.push(receipt);
}

impl Default for WitnessState {
    fn default() -> Self {
        WitnessState {
            record: fresh(None, None),
            known: fresh(None, None),
            unsaved: Vec::new(),
            unconfirmed: Vec::new(),
            added: 0,
            resets: 0,
            unreadable: None,
            epoch: 0,
        }
    }
}

/// When a sale was sent or a check fetched its chain, as `witness_epoch` took it just
/// before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Begun {
    /// The epoch: after a reset, what began before it changes nothing.
    epoch: u64,
    /// How many receipts had been put on the list of those waiting for a check
    /// (`unconfirmed`): the server had given those before the check fetched its chain.
    added: u64,
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

/// The record to decide from ([`WitnessState::base`]).
struct Base {
    /// The stored record, with what this outbox holds that it lacks.
    record: WitnessRecord,
    /// This outbox's receipts the stored record lacks, oldest first.
    unsaved: Vec<String>,
    /// This outbox's newest receipt, if it could not be judged against the stored one.
    unjudged: Option<String>,
}

/// What [`WitnessState::change`]'s store call saw.
enum Seen<T> {
    Unreadable(CorruptRecord),
    Reset(WitnessRecord),
    Decided {
        stored: WitnessRecord,
        base: Box<Base>,
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
                resets: record.resets,
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

    /// The receipts waiting for a check to find them in the server's chain.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(super) fn unconfirmed(&self) -> Vec<String> {
        self.unconfirmed.iter().map(|(r, _)| r.clone()).collect()
    }

    /// Now, for a sale or a check that begins.
    fn begun(&self) -> Begun {
        Begun {
            epoch: self.epoch,
            added: self.added,
        }
    }

    /// Puts `receipt` on the list of those waiting for a check (once), the newest
    /// replacing the last when it is full.
    fn unconfirm(&mut self, receipt: String) {
        if self.unconfirmed.iter().any(|(r, _)| *r == receipt) {
            return;
        }
        if self.unconfirmed.len() >= MAX_KEPT {
            self.unconfirmed.pop();
        }
        self.unconfirmed.push((receipt, self.added));
        self.added = self.added.saturating_add(1);
    }

    /// The receipts waiting for a check, each with whether it was on the list before
    /// the sale or check `begun` began, and `unjudged`, put on it now.
    fn waiting(&self, begun: Begun, unjudged: Option<&String>) -> Vec<(String, bool)> {
        let mut list: Vec<(String, bool)> = (self.unconfirmed.iter())
            .map(|(r, n)| (r.clone(), *n < begun.added))
            .collect();
        if let Some(r) = unjudged
            && !list.iter().any(|(l, _)| l == r)
        {
            if list.len() >= MAX_KEPT {
                list.pop();
            }
            list.push((r.clone(), false));
        }
        list
    }

    /// After the app asked to remove the unreadable record `name`, the store read again:
    /// `stored` is what it holds now. Answers whether this outbox's record is no longer
    /// unreadable. A record gone starts the witness afresh, counted as a reset; one that
    /// can be read again (the store only failed to read it for a moment, or another
    /// outbox reset it) is taken in at the next sale, check or sync, each of which
    /// decides against it.
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
                self.reset_found(fresh(None, None));
                true
            }
            Some(Ok(_)) => {
                self.unreadable = None;
                true
            }
        }
    }

    /// Takes `stored` as the witness after a reset or a removal (here or by another
    /// outbox): what began before it must not move it, and nothing this outbox held
    /// before it is judged against it.
    fn start_from(&mut self, stored: WitnessRecord) {
        self.resets = self.resets.max(stored.resets);
        self.record = WitnessRecord {
            resets: self.resets,
            ..stored.clone()
        };
        self.known = stored;
        self.unsaved.clear();
        self.unconfirmed.clear();
        self.epoch += 1;
    }

    /// Takes `stored`, a witness reset or removed by another outbox (or removed here), as
    /// the witness. A reset that does not raise the count (an empty record an older
    /// version wrote, or a removed record) is counted here: this outbox's next write
    /// carries the new count to the outboxes that never saw the empty record.
    fn reset_found(&mut self, stored: WitnessRecord) {
        if stored.resets <= self.resets {
            self.resets = self.resets.saturating_add(1);
        }
        self.start_from(stored);
    }

    /// Whether the witness was reset (or its record removed) since this outbox last
    /// looked: the store counts more resets than this outbox ever read or wrote, or it
    /// holds an empty record where this outbox knew a receipt or a problem. A lower count
    /// is no reset: an older version, which drops the count, wrote the record.
    fn reset_elsewhere(&self, stored: &WitnessRecord) -> bool {
        let empty = |r: &WitnessRecord| r.receipt.is_none() && r.problem.is_none();
        stored.resets > self.resets || (empty(stored) && !empty(&self.known))
    }

    /// The record to decide from: the stored one, with the highest count of resets. While
    /// this outbox's own copy is newer (its write failed), and no other outbox wrote
    /// since, its copy continues the stored one and is taken. If another did write, the
    /// stored record is kept, and each receipt this outbox took since it last read or
    /// wrote the record is judged against it in turn, oldest first, like a receipt just
    /// given ([`advances_witness`]): taken if it directly continues it, kept as the
    /// problem if it forks it. The newest one, if it could not be judged (the stored
    /// witness is two or more receipts further on, or behind it past a gap), is answered
    /// as `unjudged`, for the next check to find in the server's chain; an older one
    /// needs no check once a newer one was judged (each links the one before it). The
    /// stored record's problem comes first, then this outbox's, then the one found now.
    fn base(&self, stored: &WitnessRecord, judge: Judge<'_>) -> Base {
        let resets = self.resets.max(stored.resets);
        let counted = |r: &WitnessRecord| WitnessRecord {
            resets,
            ..r.clone()
        };
        if self.record == self.known {
            return Base {
                record: counted(stored),
                unsaved: Vec::new(),
                unjudged: None,
            };
        }
        if *stored == self.known {
            return Base {
                record: counted(&self.record),
                unsaved: self.unsaved.clone(),
                unjudged: None,
            };
        }
        let mut record = counted(stored);
        let (mut unsaved, mut unjudged, mut found) = (Vec::new(), None, None);
        for mine in &self.unsaved {
            unjudged = None;
            match advances_witness(record.receipt.as_deref(), mine, judge.keys) {
                Ok(true) => {
                    record.receipt = Some(mine.clone());
                    unsaved.push(mine.clone());
                }
                Ok(false) => {
                    if !judged_by(record.receipt.as_deref(), mine) {
                        unjudged = Some(mine.clone());
                    }
                }
                Err(e) => {
                    if found.is_none() {
                        found = Some(problem(mine.clone(), e, judge.at_ms(mine)));
                    }
                }
            }
        }
        if record.problem.is_none() {
            record.problem = self.record.problem.clone().or(found);
        }
        Base {
            record,
            unsaved,
            unjudged,
        }
    }

    /// Takes `stored`, just read, as the record this outbox knows, with its own unsaved
    /// copy judged against it ([`base`](Self::base)).
    fn take(&mut self, stored: WitnessRecord, judge: Judge<'_>) {
        if self.reset_elsewhere(&stored) {
            self.reset_found(stored);
            return;
        }
        let base = self.base(&stored, judge);
        self.resets = base.record.resets;
        self.record = base.record;
        self.known = stored;
        self.unsaved = base.unsaved;
        if let Some(r) = base.unjudged {
            self.unconfirm(r);
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

    /// Whether this outbox last read or wrote a readable witness record that holds
    /// something: a receipt, a problem or a count of resets. Every sale answered, check
    /// and reset writes the record, and only the app's removal of a record that does not
    /// decode deletes it: a store that holds no witness and no queue record at all after
    /// this outbox knew one was wiped (its storage cleared by the app or the user), not
    /// reset. (Or, rarely, another outbox removed a witness record that no longer
    /// decoded, which this one never saw, while nothing was queued: this outbox's
    /// readable copy is then the evidence worth keeping all the same.)
    pub(super) fn knew_a_record(&self) -> bool {
        self.unreadable.is_none()
            && (self.known.receipt.is_some()
                || self.known.problem.is_some()
                || self.known.resets > 0)
    }

    /// The store was found wiped ([`knew_a_record`](Self::knew_a_record)): this outbox's
    /// copy, the evidence of a fork included, is kept rather than taken as a reset, and
    /// written back in this store call unless another outbox stored a record meanwhile
    /// (then that record is looked at as usual). If the write fails, the copy stays as
    /// this outbox's unsaved one, written with its next change (decided against what
    /// another outbox may have stored first, like any write that failed), and the error
    /// is answered.
    pub(super) fn restore_wiped(&mut self, s: &dyn QueueStore, judge: Judge<'_>) -> Result<()> {
        let record = WitnessRecord {
            resets: self.resets.max(self.record.resets),
            ..self.record.clone()
        };
        let mut found = None;
        let written = s.update_witness(&mut |stored| match stored {
            None => Some(record.clone()),
            other => {
                found = Some(other);
                None
            }
        });
        if let Some(stored) = found {
            // Another outbox wrote a record in between: nothing was written here.
            let _ = self.look(stored, judge);
            return written;
        }
        if written.is_ok() {
            self.known = record.clone();
            self.unsaved.clear();
        } else {
            // Not stored: the next change finds no record and writes this copy.
            self.known = fresh(None, None);
            if let Some(r) = &record.receipt {
                keep(&mut self.unsaved, r.clone());
            }
        }
        self.resets = record.resets;
        self.record = record;
        written
    }

    /// Changes the witness for a sale or check `begun` then, in one store call
    /// ([`QueueStore::update_witness`]): `decide` gets the stored record (see
    /// [`base`](Self::base)) and the receipts waiting for a check
    /// (`unconfirmed`, each with whether it waited before `begun`), and answers the
    /// record to keep and what to tell the caller.
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
        begun: Begun,
        decide: impl FnOnce(&WitnessRecord, &[(String, bool)]) -> (WitnessRecord, T),
    ) -> Result<(Changed<T>, Readability)> {
        if self.epoch != begun.epoch {
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
            let base = this.base(&stored, judge);
            let unconfirmed = this.waiting(begun, base.unjudged.as_ref());
            let (record, answer) = (decide.take()?)(&base.record, &unconfirmed);
            let write = (record != stored).then(|| record.clone());
            outcome = Some(Seen::Decided {
                stored,
                base: Box::new(base),
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
                let (record, answer) = decide(&self.record, &self.waiting(begun, None));
                if record.receipt != self.record.receipt
                    && let Some(r) = &record.receipt
                {
                    keep(&mut self.unsaved, r.clone());
                }
                self.record = record;
                Ok((Changed::Decided(answer, Err(e)), Readability::Same))
            }
            Some(Seen::Unreadable(c)) => {
                self.unreadable = Some(c.clone());
                Ok((Changed::Unreadable(c.clone()), Readability::Unreadable(c)))
            }
            Some(Seen::Reset(stored)) => {
                let found = readable(self);
                self.reset_found(stored);
                Ok((Changed::Skipped, found))
            }
            Some(Seen::Decided {
                stored,
                base,
                record,
                answer,
            }) => {
                let found = readable(self);
                self.resets = self.resets.max(record.resets);
                if let Some(r) = base.unjudged {
                    self.unconfirm(r);
                }
                if written.is_ok() {
                    self.known = record.clone();
                    self.unsaved.clear();
                } else {
                    self.known = stored;
                    self.unsaved = base.unsaved;
                    if record.receipt != base.record.receipt
                        && let Some(r) = &record.receipt
                    {
                        keep(&mut self.unsaved, r.clone());
                    }
                }
                self.record = record;
                Ok((Changed::Decided(answer, written), found))
            }
        }
    }
}

/// Whether [`advances_witness`] answering `Ok(false)` for `mine` against `current`
/// judged it: `mine` is the witness itself, or the receipt just before it (checked
/// against the witness's link). One further back, or past a gap after it, could not be
/// judged.
fn judged_by(current: Option<&str>, mine: &str) -> bool {
    let seq = |r: &str| decode_receipt_unverified(r).ok().map(|c| c.seq);
    match (current.and_then(seq), seq(mine)) {
        (Some(w), Some(m)) => m == w || m.checked_add(1) == Some(w),
        _ => false,
    }
}

/// Judges the receipts this outbox could not judge when another outbox's witness was
/// stored over them (`unconfirmed`) against a checked chain of the server (`receipts`,
/// verified, in order): one the chain holds at its sequence number is confirmed; one
/// the chain should hold but does not (another receipt there, or the chain ends before
/// it) is evidence of a fork, or of a history cut back; one before the checked part (a
/// check from the witness on) waits for a later check. One put on the list after the
/// check began (`false` beside it) may be newer than the chain the check fetched: past
/// its end, it waits for a later check too. Answers the receipts judged, and the first
/// problem found.
fn confirm(
    unconfirmed: &[(String, bool)],
    receipts: &[String],
    judge: Judge<'_>,
) -> (Vec<String>, Option<WitnessProblem>) {
    let first = receipts
        .first()
        .and_then(|r| decode_receipt_unverified(r).ok())
        .map(|c| c.seq);
    let (mut judged, mut found) = (Vec::new(), None);
    for (mine, before) in unconfirmed {
        // It verified when this outbox took it.
        let Ok(claims) = decode_receipt_unverified(mine) else {
            continue;
        };
        let held = match first {
            Some(f) if claims.seq < f => continue,
            Some(f) => usize::try_from(claims.seq - f)
                .ok()
                .and_then(|i| receipts.get(i)),
            None => None,
        };
        if held.is_none() && !*before {
            continue;
        }
        if held != Some(mine) && found.is_none() {
            let e = tillgate_core::Error::WitnessMismatch {
                sequence: claims.seq,
                reason: "the server's chain does not hold the receipt it gave for this \
                         sequence number"
                    .into(),
            };
            found = Some(problem(mine.clone(), e, judge.at_ms(mine)));
        }
        judged.push(mine.clone());
    }
    (judged, found)
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
            let before = (
                w.record.clone(),
                w.known.clone(),
                w.unsaved.clone(),
                w.unconfirmed.clone(),
            );
            // Decided against the stored record: another outbox on the store, or a sale
            // answered meanwhile, may have given it a witness of its own.
            let judge = Judge::new(&client, None);
            let (changed, found) = w.change(s, judge, epoch, |base, _| match &base.receipt {
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
                    (w.record, w.known, w.unsaved, w.unconfirmed) = before;
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
    /// witness itself is forgotten all the same. A record that does not decode (reported
    /// by [`corrupt_records`](Self::corrupt_records)) is written over (the app's explicit
    /// choice). If the store cannot read the record (an I/O error), nothing is written
    /// and the error is answered: the record may hold a problem nobody was shown.
    pub async fn reset_witness_seen(
        &self,
        seen: Option<&WitnessProblem>,
    ) -> Result<Option<WitnessProblem>> {
        let witness = Arc::clone(&self.witness);
        let seen = seen.cloned();
        let (unreadable, kept) = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let count = w.resets;
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
                    Some(Err(_)) | None => (0, None),
                };
                let problem = problem
                    .filter(unseen)
                    .or_else(|| unsaved.clone().filter(unseen));
                let record = WitnessRecord {
                    resets: resets.max(count).saturating_add(1),
                    ..fresh(None, problem)
                };
                reset = Some(record.clone());
                Some(record)
            });
            let record = match (updated, reset) {
                (Ok(()), Some(record)) => record,
                (Err(e), Some(_)) => return Err(e),
                // The store could not read the witness (an I/O error). The record may
                // hold a problem another outbox stored that was never shown: it is
                // written over only if this outbox found it does not decode (the app
                // asked to reset an unreadable record), keeping only a problem this
                // outbox could not store and has not shown. Otherwise nothing changes,
                // and the read error is the answer.
                (updated, None) => {
                    if w.unreadable.is_none() {
                        return Err(updated.err().unwrap_or_else(|| {
                            ClientError::Storage("the store did not read the witness".into())
                        }));
                    }
                    let record = WitnessRecord {
                        resets: count.saturating_add(1),
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
    /// have moved it), and when the check begins ([`Begun`]); an unreadable witness record
    /// refuses the check (`queue_record_corrupt`): without the witness a history cut
    /// back would pass. If the store cannot be read, this outbox's copy is used.
    async fn witness_for_check(&self, client: &Client) -> Result<(Option<String>, Begun)> {
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
                None => Ok((w.record.receipt.clone(), w.begun())),
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

    /// The current epoch, and how many receipts were put on the list of those waiting
    /// for a check, taken before a sale is sent or a check is fetched.
    pub(super) fn witness_epoch(&self) -> Begun {
        lock(&self.witness).begun()
    }

    /// The receipts of a check that passed, `begun` before it fetched them: the witness
    /// moves to their end ([`witness_after_check`]) if the stored witness is one of
    /// them. A receipt this outbox took but could not judge against a witness another
    /// outbox stored over it must be among them at its sequence number ([`confirm`]): if
    /// not, it is kept as the problem (unless it was put on that list after the check
    /// began and the chain ends before it: then it waits for a later check).
    pub(super) async fn witness_checked(
        &self,
        client: &Client,
        receipts: Vec<String>,
        begun: Begun,
    ) -> Result<()> {
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        let client = client.clone();
        run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            // Decided against the stored witness: a sale answered during the check, here
            // or in another outbox on the store, may have moved it past the checked end.
            let judge = Judge::new(&client, None);
            let (changed, found) = w.change(s, judge, begun, |base, unconfirmed| {
                let mut record = match witness_after_check(base.receipt.as_deref(), &receipts) {
                    Some(next) => moved(base, next.to_owned()),
                    None => base.clone(),
                };
                // Receipts this outbox could not judge before: the checked chain must
                // hold them.
                let (judged, found) = confirm(unconfirmed, &receipts, judge);
                if record.problem.is_none() {
                    record.problem = found;
                }
                (record, judged)
            })?;
            if let Changed::Decided(judged, _) = &changed {
                w.unconfirmed.retain(|(r, _)| !judged.contains(r));
            }
            drop(w);
            super::witness_readability(&state, found);
            match changed {
                Changed::Decided(_, written) => written,
                Changed::Skipped | Changed::Unreadable(_) => Ok(()),
            }
        })
        .await
    }

    /// A receipt the server gave for a sale `begun` then: moves the witness if it
    /// directly continues the stored one, keeps the first one that does not fit as the
    /// problem (a problem already stored, by this outbox or another on the store, stays).
    /// Returns the problem it found, if any, and whether the witness could be written
    /// (if not, the witness moved in memory all the same).
    pub(super) async fn witness_saw(
        &self,
        client: &Client,
        receipt: &str,
        now_ms: i64,
        begun: Begun,
    ) -> (Option<WitnessProblem>, Result<()>) {
        let (witness, state) = (Arc::clone(&self.witness), Arc::clone(&self.state));
        let client = client.clone();
        let receipt = receipt.to_owned();
        let seen = run_store(&self.store, move |s| {
            let mut w = lock(&witness);
            let keys = &client.config().trusted_keys;
            let judge = Judge::new(&client, Some(now_ms));
            let (changed, found) = w.change(s, judge, begun, |base, _| {
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
