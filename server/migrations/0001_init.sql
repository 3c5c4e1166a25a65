-- Tillgate server schema, version 1. Portable SQL: runs on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT); hashes and keys are text (hex / base64url).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    seed       TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE activations (
    id                    TEXT PRIMARY KEY,
    production_number     TEXT NOT NULL UNIQUE,
    cash_register_name    TEXT NOT NULL,
    device_id             TEXT NOT NULL,
    corporate_id          TEXT NOT NULL,
    country               TEXT NOT NULL,
    application_package   TEXT NOT NULL,
    extras                TEXT NOT NULL,
    features              TEXT NOT NULL,
    valid_from            BIGINT NOT NULL,
    valid_to              BIGINT NOT NULL,
    status                TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    decided_by            TEXT,
    decided_at            BIGINT,
    authority_notified_at BIGINT,
    decision_note         TEXT,
    chain_seq             BIGINT NOT NULL DEFAULT 0,
    chain_head            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activations_by_status ON activations (status, created_at);

CREATE TABLE api_keys (
    key_hash      TEXT PRIMARY KEY,
    activation_id TEXT NOT NULL REFERENCES activations (id),
    created_at    BIGINT NOT NULL,
    replaced_at   BIGINT
);
CREATE INDEX api_keys_by_activation ON api_keys (activation_id);

CREATE TABLE staff (
    login             TEXT PRIMARY KEY,
    activation_id     TEXT NOT NULL REFERENCES activations (id),
    public_key        TEXT NOT NULL,
    memory_kib        BIGINT NOT NULL,
    iterations        BIGINT NOT NULL,
    parallelism       BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    disabled_at       BIGINT
);

CREATE TABLE dynamic_key_nonces (
    login      TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (login, nonce)
);
CREATE INDEX dynamic_key_nonces_by_expiry ON dynamic_key_nonces (expires_at);

CREATE TABLE transactions (
    id              TEXT PRIMARY KEY,
    activation_id   TEXT NOT NULL REFERENCES activations (id),
    idempotency_key TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    txh             TEXT NOT NULL,
    receipt         TEXT NOT NULL,
    UNIQUE (activation_id, idempotency_key),
    UNIQUE (activation_id, seq)
);
CREATE INDEX transactions_by_time ON transactions (activation_id, created_at);

CREATE TABLE products (
    corporate_id TEXT NOT NULL,
    id           TEXT NOT NULL,
    body         TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT NOT NULL,
    PRIMARY KEY (corporate_id, id)
);
CREATE INDEX products_by_rve ON products (corporate_id, updated_at);
