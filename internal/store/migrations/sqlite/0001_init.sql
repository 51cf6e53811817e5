-- polyvirt schema 1 (SQLite). Keep in step with ../postgres/0001_init.sql:
-- the same tables, columns, keys and indexes, in each dialect's types.
-- STRICT tables; times are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (text
-- order is time order), JSON is text, booleans are 0/1.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT users_name_key UNIQUE (name),
    CONSTRAINT users_token_hash_key UNIQUE (token_hash),
    CONSTRAINT users_role_check CHECK (role IN ('admin', 'readonly'))
) STRICT;

CREATE TABLE clusters (
    id                          TEXT PRIMARY KEY,
    name                        TEXT NOT NULL,
    description                 TEXT NOT NULL DEFAULT '',
    arch                        TEXT,
    cpu_type                    TEXT,
    emulated_machine_candidates TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(emulated_machine_candidates)),
    emulated_machine            TEXT,
    migration_policy            TEXT NOT NULL DEFAULT '',
    version                     INTEGER NOT NULL DEFAULT 1,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL,
    CONSTRAINT clusters_name_key UNIQUE (name)
) STRICT;

CREATE TABLE hosts (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    address               TEXT NOT NULL,
    cluster_id            TEXT NOT NULL,
    status                TEXT NOT NULL,
    status_code           TEXT NOT NULL DEFAULT '',
    status_message        TEXT NOT NULL DEFAULT '',
    arch                  TEXT NOT NULL DEFAULT '',
    cpu_model             TEXT NOT NULL DEFAULT '',
    cpu_flags             TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(cpu_flags)),
    cpu_type              TEXT NOT NULL DEFAULT '',
    cpu_level             INTEGER NOT NULL DEFAULT 0,
    emulated_machines     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(emulated_machines)),
    capabilities          TEXT CHECK (capabilities IS NULL OR json_valid(capabilities)),
    capabilities_hash     TEXT NOT NULL DEFAULT '',
    cert_fingerprint      TEXT,
    cert_serial           TEXT NOT NULL DEFAULT '',
    join_token_hash       TEXT,
    join_token_expires_at TEXT,
    join_token_used_at    TEXT,
    version               INTEGER NOT NULL DEFAULT 1,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    CONSTRAINT hosts_name_key UNIQUE (name),
    CONSTRAINT hosts_cert_fingerprint_key UNIQUE (cert_fingerprint),
    CONSTRAINT hosts_join_token_hash_key UNIQUE (join_token_hash),
    CONSTRAINT hosts_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id) ON DELETE RESTRICT
) STRICT;
CREATE INDEX hosts_cluster_id_idx ON hosts (cluster_id);

-- Monitoring data, written every few seconds per host: a narrow table of
-- its own (no copy of the wide host row, no version bump).
CREATE TABLE host_stats (
    host_id      TEXT PRIMARY KEY,
    stats        TEXT CHECK (stats IS NULL OR json_valid(stats)),
    stats_at     TEXT,
    last_seen_at TEXT,
    CONSTRAINT host_stats_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE
) STRICT;

CREATE TABLE vms (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    cluster_id       TEXT NOT NULL,
    host_id          TEXT,
    pinned_host_id   TEXT,
    last_host_id     TEXT,
    definition       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(definition)),
    state            TEXT NOT NULL,
    ha               INTEGER NOT NULL DEFAULT 0 CHECK (ha IN (0, 1)),
    state_changed_at TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CONSTRAINT vms_name_key UNIQUE (name),
    CONSTRAINT vms_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id) ON DELETE RESTRICT,
    CONSTRAINT vms_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE RESTRICT,
    CONSTRAINT vms_pinned_host_id_fkey FOREIGN KEY (pinned_host_id) REFERENCES hosts (id) ON DELETE RESTRICT,
    CONSTRAINT vms_last_host_id_fkey FOREIGN KEY (last_host_id) REFERENCES hosts (id) ON DELETE SET NULL
) STRICT;
CREATE INDEX vms_cluster_id_idx ON vms (cluster_id);
CREATE INDEX vms_host_id_idx ON vms (host_id);
CREATE INDEX vms_pinned_host_id_idx ON vms (pinned_host_id);
CREATE INDEX vms_last_host_id_idx ON vms (last_host_id);

CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at    TEXT NOT NULL,
    username       TEXT NOT NULL DEFAULT '',
    action         TEXT NOT NULL,
    severity       TEXT NOT NULL,
    object_kind    TEXT NOT NULL DEFAULT '',
    object_id      TEXT NOT NULL DEFAULT '',
    object_name    TEXT NOT NULL DEFAULT '',
    code           TEXT NOT NULL DEFAULT '',
    message        TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    correlation_id TEXT NOT NULL DEFAULT '',
    CONSTRAINT events_severity_check CHECK (severity IN ('info', 'warning', 'error', 'alert'))
) STRICT;
CREATE INDEX events_object_idx ON events (object_kind, object_id, id);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_correlation_id_idx ON events (correlation_id);

-- The audit log is append-only.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE firmware_operations (
    id           TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL,
    state        TEXT NOT NULL,
    active       INTEGER NOT NULL CHECK (active IN (0, 1)),
    from_level   TEXT NOT NULL DEFAULT '',
    to_level     TEXT NOT NULL DEFAULT '',
    image_name   TEXT NOT NULL DEFAULT '',
    image_sha256 TEXT NOT NULL DEFAULT '',
    requested_by TEXT NOT NULL DEFAULT '',
    steps        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(steps)),
    error        TEXT NOT NULL DEFAULT '',
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CONSTRAINT firmware_operations_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE
) STRICT;
-- At most one operation that has not ended per host.
CREATE UNIQUE INDEX firmware_operations_one_active ON firmware_operations (host_id) WHERE active;
CREATE INDEX firmware_operations_host_id_idx ON firmware_operations (host_id, created_at);
