-- polyvirt schema 9 (PostgreSQL). Keep in step with ../sqlite/0009_web_sessions.sql.
-- The web UI: users' passwords, sign-in sessions and console tickets.
-- No foreign keys to users (as in SQLite, where a migration may make the
-- users table again); the store removes a user's rows with the user.

CREATE TABLE user_passwords (
    user_id     TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE web_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX web_sessions_user_id_idx ON web_sessions (user_id);
CREATE INDEX web_sessions_expires_at_idx ON web_sessions (expires_at);

CREATE TABLE console_tickets (
    ticket_hash TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    vm_id       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX console_tickets_expires_at_idx ON console_tickets (expires_at);
