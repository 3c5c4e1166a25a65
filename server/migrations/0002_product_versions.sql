-- Tillgate server schema, version 2: product versions, the RVE of products' delta sync.
--
-- A product's `rve` is its version: unique within its company, increasing in the order
-- the changes commit (a company's product writes take turns), and never below the
-- change's time (Unix seconds). `GET /products` compares the caller's RVE with it.
-- Before, it compared `updated_at`, the time a change was stamped, and answered an RVE
-- 5 s behind its clock: a change that committed more than 5 s after its stamp, or stamped
-- by a replica whose clock was behind, could be missed for good.
--
-- Existing rows get rve_i = max(updated_at_i, rve_(i-1) + 1), in (updated_at, id) order
-- per company, written as n_i + max over j <= i of (updated_at_j - n_j).
ALTER TABLE products ADD COLUMN rve BIGINT NOT NULL DEFAULT 0;

UPDATE products SET rve = v.rve
FROM (SELECT corporate_id, id,
             MAX(updated_at - n) OVER (PARTITION BY corporate_id ORDER BY n
                                       ROWS UNBOUNDED PRECEDING) + n AS rve
      FROM (SELECT corporate_id, id, updated_at,
                   ROW_NUMBER() OVER (PARTITION BY corporate_id ORDER BY updated_at, id) AS n
            FROM products) numbered) v
WHERE v.corporate_id = products.corporate_id AND v.id = products.id;

DROP INDEX products_by_rve;
CREATE UNIQUE INDEX products_by_version ON products (corporate_id, rve);
