-- polyvirt schema 1 (PostgreSQL). Keep in step with ../sqlite/0001_init.sql:
-- the same tables, columns, keys and indexes, in each dialect's types.
-- Times are TIMESTAMPTZ, JSON is JSONB, lists are JSON arrays.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_name_key UNIQUE (name),
    CONSTRAINT users_token_hash_key UNIQUE (token_hash),
    CONSTRAINT users_role_check CHECK (role IN ('admin', 'readonly'))
);

CREATE TABLE clusters (
    id                          TEXT PRIMARY KEY,
    name                        TEXT NOT NULL,
    description                 TEXT NOT NULL DEFAULT '',
    arch                        TEXT,
    cpu_type                    TEXT,
    emulated_machine_candidates JSONB NOT NULL DEFAULT '[]',
    emulated_machine            TEXT,
    migration_policy            TEXT NOT NULL DEFAULT '',
    version                     BIGINT NOT NULL DEFAULT 1,
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL,
    CONSTRAINT clusters_name_key UNIQUE (name)
);

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
    cpu_flags             JSONB NOT NULL DEFAULT '[]',
    cpu_type              TEXT NOT NULL DEFAULT '',
    cpu_level             INTEGER NOT NULL DEFAULT 0,
    emulated_machines     JSONB NOT NULL DEFAULT '[]',
    capabilities          JSONB,
    capabilities_hash     TEXT NOT NULL DEFAULT '',
    cert_fingerprint      TEXT,
    cert_serial           TEXT NOT NULL DEFAULT '',
    join_token_hash       TEXT,
    join_token_expires_at TIMESTAMPTZ,
    join_token_used_at    TIMESTAMPTZ,
    version               BIGINT NOT NULL DEFAULT 1,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    CONSTRAINT hosts_name_key UNIQUE (name),
    CONSTRAINT hosts_cert_fingerprint_key UNIQUE (cert_fingerprint),
    CONSTRAINT hosts_join_token_hash_key UNIQUE (join_token_hash),
    CONSTRAINT hosts_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id) ON DELETE RESTRICT
);
CREATE INDEX hosts_cluster_id_idx ON hosts (cluster_id);

-- Monitoring data, written every few seconds per host: a narrow table of
-- its own (HOT updates, no copy of the wide host row, no version bump).
CREATE TABLE host_stats (
    host_id      TEXT PRIMARY KEY,
    stats        JSONB,
    stats_at     TIMESTAMPTZ,
    last_seen_at TIMESTAMPTZ,
    CONSTRAINT host_stats_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE
) WITH (fillfactor = 50);

CREATE TABLE vms (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    cluster_id       TEXT NOT NULL,
    host_id          TEXT,
    pinned_host_id   TEXT,
    last_host_id     TEXT,
    definition       JSONB NOT NULL DEFAULT '{}',
    state            TEXT NOT NULL,
    ha               BOOLEAN NOT NULL DEFAULT FALSE,
    state_changed_at TIMESTAMPTZ NOT NULL,
    version          BIGINT NOT NULL DEFAULT 1,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT vms_name_key UNIQUE (name),
    CONSTRAINT vms_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id) ON DELETE RESTRICT,
    CONSTRAINT vms_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE RESTRICT,
    CONSTRAINT vms_pinned_host_id_fkey FOREIGN KEY (pinned_host_id) REFERENCES hosts (id) ON DELETE RESTRICT,
    CONSTRAINT vms_last_host_id_fkey FOREIGN KEY (last_host_id) REFERENCES hosts (id) ON DELETE SET NULL
);
CREATE INDEX vms_cluster_id_idx ON vms (cluster_id);
CREATE INDEX vms_host_id_idx ON vms (host_id);
CREATE INDEX vms_pinned_host_id_idx ON vms (pinned_host_id);
CREATE INDEX vms_last_host_id_idx ON vms (last_host_id);

CREATE TABLE events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at    TIMESTAMPTZ NOT NULL,
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
);
CREATE INDEX events_object_idx ON events (object_kind, object_id, id);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_correlation_id_idx ON events (correlation_id);

-- The audit log is append-only.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TABLE firmware_operations (
    id           TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL,
    state        TEXT NOT NULL,
    active       BOOLEAN NOT NULL,
    from_level   TEXT NOT NULL DEFAULT '',
    to_level     TEXT NOT NULL DEFAULT '',
    image_name   TEXT NOT NULL DEFAULT '',
    image_sha256 TEXT NOT NULL DEFAULT '',
    requested_by TEXT NOT NULL DEFAULT '',
    steps        JSONB NOT NULL DEFAULT '[]',
    error        TEXT NOT NULL DEFAULT '',
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT firmware_operations_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE
);
-- At most one operation that has not ended per host.
CREATE UNIQUE INDEX firmware_operations_one_active ON firmware_operations (host_id) WHERE active;
CREATE INDEX firmware_operations_host_id_idx ON firmware_operations (host_id, created_at);
