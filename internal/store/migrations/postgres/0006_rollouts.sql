-- polyvirt schema 6 (PostgreSQL). Keep in step with ../sqlite/0006_rollouts.sql.
-- A rolling firmware update of a cluster's hosts (issue 15): its state and
-- its document (each host's phase, levels, reasons) as the engine's rollout
-- worker left them, so that another engine (or this one restarted) resumes
-- it where it was. At most one rollout that has not ended per cluster.
CREATE TABLE rollouts (
    id         TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    state      TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    doc        JSONB NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT rollouts_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (cluster_id) WHERE active;
CREATE INDEX rollouts_cluster_id_idx ON rollouts (cluster_id, created_at);
