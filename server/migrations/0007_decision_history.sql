-- Tillgate server schema, version 7: every administrator's decision about a
-- registration is kept.
--
-- A registration holds its latest decision (`decided_by`, `decided_at`,
-- `decision_note`, and `authority_notified_at` from its approval); a later decision
-- replaced the earlier one's, so a revocation hid who had approved the register and
-- their note. `decisions` keeps each one, numbered from 1 per registration (`n`), written
-- in the same database transaction as the registration's new status.
--
-- Registrations decided before this version get their latest decision as number 1, as
-- the registration recorded it (with its authority notification time, also when that
-- decision is a revocation): what came before it was not kept. A registration approved
-- and then renewed with its descriptor is pending again while it still names its
-- approver: its decision was the approval.
CREATE TABLE decisions (
    activation_id         TEXT NOT NULL REFERENCES activations (id),
    n                     BIGINT NOT NULL,
    status                TEXT NOT NULL,
    decided_by            TEXT NOT NULL,
    decided_at            BIGINT NOT NULL,
    authority_notified_at BIGINT,
    note                  TEXT,
    PRIMARY KEY (activation_id, n)
);

INSERT INTO decisions (activation_id, n, status, decided_by, decided_at,
                       authority_notified_at, note)
SELECT id, 1, CASE WHEN status = 'pending' THEN 'approved' ELSE status END, decided_by,
       decided_at, authority_notified_at, decision_note
FROM activations
WHERE decided_at IS NOT NULL AND decided_by IS NOT NULL;
