-- Tillgate server schema, version 6: repeatable activations.
--
-- An activation sent with an `Idempotency-Key` header records the SHA-256 of that key
-- (`request_key_hash`; the key itself is a secret of the app and is not stored) and of
-- the request it came with (`request_hash`). Sending the same request with the same key
-- again, while the registration is pending, answers the same registration with a fresh
-- API key instead of creating another one: an app whose answer was lost on the way
-- recovers it. Rows stored before this version, and activations sent without the
-- header, have neither.
ALTER TABLE activations ADD COLUMN request_key_hash TEXT;
ALTER TABLE activations ADD COLUMN request_hash TEXT;
CREATE UNIQUE INDEX activations_by_request_key ON activations (request_key_hash);
