-- Tillgate server schema, version 5: transaction versions, the RVE of transactions'
-- delta sync.
--
-- A transaction's `rve` is its version: unique within its register, increasing in the
-- order the register's transactions commit (they take turns on the register's chain
-- head), and never below the transaction's time (`created_at`, Unix seconds).
-- `activations.chain_rve` is the version of the register's last transaction (0 before
-- the first), kept with `chain_seq` and `chain_head`. `GET /transactions` compares the
-- caller's RVE with it, as `GET /products` does with a product's version. Before, it
-- compared `created_at`, the time a sale was stamped, and answered an RVE 5 s behind its
-- clock: a sale that committed more than 5 s after its stamp (a slow commit, another
-- process holding the register's row), or stamped by a replica whose clock was behind,
-- could be missed for good.
--
-- Sequence numbers are gapless from 1 in commit order, so existing rows get
-- rve_i = max(created_at_i, rve_(i-1) + 1) in sequence order per register, written as
-- seq_i + max over j <= i of (created_at_j - seq_j).
--
-- The index by time goes first, so the backfill does not update it. The backfill
-- rewrites every stored transaction: on a big table the upgrade takes a while (minutes
-- for millions of sales), with writes waiting.
DROP INDEX transactions_by_time;
ALTER TABLE transactions ADD COLUMN rve BIGINT NOT NULL DEFAULT 0;
ALTER TABLE activations ADD COLUMN chain_rve BIGINT NOT NULL DEFAULT 0;

UPDATE transactions SET rve = v.rve
FROM (SELECT id,
             MAX(created_at - seq) OVER (PARTITION BY activation_id ORDER BY seq
                                         ROWS UNBOUNDED PRECEDING) + seq AS rve
      FROM transactions) v
WHERE v.id = transactions.id;

UPDATE activations SET chain_rve = v.rve
FROM (SELECT activation_id, MAX(rve) AS rve FROM transactions GROUP BY activation_id) v
WHERE v.activation_id = activations.id;

CREATE INDEX transactions_by_version ON transactions (activation_id, rve);
