-- Tillgate server schema, version 3: staged signing-key rotation.
--
-- A signing key can be published (in /.well-known/jwks.json) before it signs, so that
-- apps can be shipped with its public key first. `signs_from` is when the key may start
-- signing (Unix seconds); NULL: published only, it signs nothing until activated
-- (`tillgate-server admin activate-key`). Of the keys that are not retired and whose
-- start has come, the one with the latest start signs (ties: the newest created_at,
-- then the greatest kid). A key whose start is not after its created_at signs as soon
-- as a server reads it, whatever that server's clock says (rotate-key without options).
--
-- Every key stored before this version signed from its creation: signs_from = created_at
-- keeps the same key signing.
ALTER TABLE signing_keys ADD COLUMN signs_from BIGINT;
UPDATE signing_keys SET signs_from = created_at;
