-- polyvirt schema 8 (SQLite). Keep in step with ../postgres/0008_metrics_role.sql.
-- The metrics role: reads the engine's metrics (GET /metrics) and the
-- scrape targets, nothing else (a Prometheus server's token).
-- SQLite cannot change a CHECK constraint in place: the users table is
-- made again with the same columns and keys (nothing refers to it).

CREATE TABLE users_new (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT users_name_key UNIQUE (name),
    CONSTRAINT users_token_hash_key UNIQUE (token_hash),
    CONSTRAINT users_role_check CHECK (role IN ('admin', 'vm-manager', 'readonly', 'metrics'))
) STRICT;

INSERT INTO users_new (id, name, role, token_hash, version, created_at, updated_at)
    SELECT id, name, role, token_hash, version, created_at, updated_at FROM users;

DROP TABLE users;

ALTER TABLE users_new RENAME TO users;
