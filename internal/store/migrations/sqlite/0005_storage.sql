-- polyvirt schema 5 (SQLite). Keep in step with ../postgres/0005_storage.sql.
-- Storage: pools per cluster (shared, or local to one host), what each host
-- says of each pool, the volumes they hold, the VMs' use of volumes, the
-- image library, templates and VM snapshots.

CREATE TABLE storage_pools (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    cluster_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    host_id     TEXT,
    path        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT storage_pools_name_key UNIQUE (name),
    CONSTRAINT storage_pools_kind_check CHECK (kind IN ('shared', 'local') AND (kind = 'local') = (host_id IS NOT NULL)),
    CONSTRAINT storage_pools_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id) ON DELETE RESTRICT,
    CONSTRAINT storage_pools_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE RESTRICT
) STRICT;
CREATE INDEX storage_pools_cluster_id_idx ON storage_pools (cluster_id);
CREATE INDEX storage_pools_host_id_idx ON storage_pools (host_id);

-- What the monitoring last found of a pool on a host.
CREATE TABLE host_pools (
    host_id        TEXT NOT NULL,
    pool_id        TEXT NOT NULL,
    ok             INTEGER NOT NULL CHECK (ok IN (0, 1)),
    code           TEXT NOT NULL DEFAULT '',
    message        TEXT NOT NULL DEFAULT '',
    capacity_bytes INTEGER NOT NULL DEFAULT 0,
    free_bytes     INTEGER NOT NULL DEFAULT 0,
    checked_at     TEXT NOT NULL,
    PRIMARY KEY (host_id, pool_id),
    CONSTRAINT host_pools_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE CASCADE,
    CONSTRAINT host_pools_pool_id_fkey FOREIGN KEY (pool_id) REFERENCES storage_pools (id) ON DELETE CASCADE
) STRICT;
CREATE INDEX host_pools_pool_id_idx ON host_pools (pool_id);

CREATE TABLE volumes (
    id                TEXT PRIMARY KEY,
    pool_id           TEXT NOT NULL,
    name              TEXT NOT NULL,
    format            TEXT NOT NULL CHECK (format IN ('raw', 'qcow2')),
    state             TEXT NOT NULL CHECK (state IN ('uploading', 'ready')),
    virtual_size      INTEGER NOT NULL DEFAULT 0,
    actual_size       INTEGER NOT NULL DEFAULT 0,
    upload_size       INTEGER NOT NULL DEFAULT 0,
    sha256            TEXT NOT NULL DEFAULT '',
    backing_volume_id TEXT,
    owner_vm_id       TEXT,
    purpose           TEXT NOT NULL DEFAULT '',
    version           INTEGER NOT NULL DEFAULT 1,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    CONSTRAINT volumes_pool_id_name_key UNIQUE (pool_id, name),
    CONSTRAINT volumes_pool_id_fkey FOREIGN KEY (pool_id) REFERENCES storage_pools (id) ON DELETE RESTRICT,
    CONSTRAINT volumes_backing_volume_id_fkey FOREIGN KEY (backing_volume_id) REFERENCES volumes (id) ON DELETE RESTRICT,
    CONSTRAINT volumes_owner_vm_id_fkey FOREIGN KEY (owner_vm_id) REFERENCES vms (id) ON DELETE SET NULL
) STRICT;
CREATE INDEX volumes_backing_volume_id_idx ON volumes (backing_volume_id);
CREATE INDEX volumes_owner_vm_id_idx ON volumes (owner_vm_id);

-- The volumes a VM's definition names.
CREATE TABLE vm_volumes (
    vm_id     TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    PRIMARY KEY (vm_id, volume_id),
    CONSTRAINT vm_volumes_vm_id_fkey FOREIGN KEY (vm_id) REFERENCES vms (id) ON DELETE CASCADE,
    CONSTRAINT vm_volumes_volume_id_fkey FOREIGN KEY (volume_id) REFERENCES volumes (id) ON DELETE RESTRICT
) STRICT;
CREATE INDEX vm_volumes_volume_id_idx ON vm_volumes (volume_id);

CREATE TABLE images (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    arch        TEXT NOT NULL,
    os          TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    volume_id   TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT images_name_key UNIQUE (name),
    CONSTRAINT images_volume_id_key UNIQUE (volume_id),
    CONSTRAINT images_volume_id_fkey FOREIGN KEY (volume_id) REFERENCES volumes (id) ON DELETE RESTRICT
) STRICT;

CREATE TABLE templates (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    cluster_id  TEXT NOT NULL,
    arch        TEXT NOT NULL,
    definition  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(definition)),
    description TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT templates_name_key UNIQUE (name),
    CONSTRAINT templates_cluster_id_fkey FOREIGN KEY (cluster_id) REFERENCES clusters (id) ON DELETE RESTRICT
) STRICT;

CREATE TABLE template_volumes (
    template_id TEXT NOT NULL,
    volume_id   TEXT NOT NULL,
    PRIMARY KEY (template_id, volume_id),
    CONSTRAINT template_volumes_template_id_fkey FOREIGN KEY (template_id) REFERENCES templates (id) ON DELETE CASCADE,
    CONSTRAINT template_volumes_volume_id_fkey FOREIGN KEY (volume_id) REFERENCES volumes (id) ON DELETE RESTRICT
) STRICT;
CREATE INDEX template_volumes_volume_id_idx ON template_volumes (volume_id);

CREATE TABLE snapshots (
    id            TEXT PRIMARY KEY,
    vm_id         TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    memory        INTEGER NOT NULL DEFAULT 0 CHECK (memory IN (0, 1)),
    vm_state      TEXT NOT NULL DEFAULT '',
    host_id       TEXT,
    internal_name TEXT NOT NULL,
    volumes       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(volumes)),
    created_at    TEXT NOT NULL,
    CONSTRAINT snapshots_vm_id_name_key UNIQUE (vm_id, name),
    CONSTRAINT snapshots_vm_id_fkey FOREIGN KEY (vm_id) REFERENCES vms (id) ON DELETE CASCADE,
    CONSTRAINT snapshots_host_id_fkey FOREIGN KEY (host_id) REFERENCES hosts (id) ON DELETE SET NULL
) STRICT;
