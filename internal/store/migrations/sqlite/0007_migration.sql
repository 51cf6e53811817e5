-- polyvirt schema 7 (SQLite). Keep in step with ../postgres/0007_migration.sql.
-- Live migration: how many VMs at most leave and come to one host of a
-- cluster at once, whether the migration streams are encrypted; a VM's
-- own migration policy, the host a migration in flight sends it to, and
-- its current (or last) migration as the API shows it.
ALTER TABLE clusters ADD COLUMN migration_max_outgoing INTEGER NOT NULL DEFAULT 2
    CHECK (migration_max_outgoing BETWEEN 1 AND 64);
ALTER TABLE clusters ADD COLUMN migration_max_incoming INTEGER NOT NULL DEFAULT 2
    CHECK (migration_max_incoming BETWEEN 1 AND 64);
ALTER TABLE clusters ADD COLUMN migration_encrypted INTEGER NOT NULL DEFAULT 0
    CHECK (migration_encrypted IN (0, 1));
ALTER TABLE vms ADD COLUMN migration_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN migrating_to_host_id TEXT
    REFERENCES hosts (id) ON DELETE SET NULL;
ALTER TABLE vms ADD COLUMN migration TEXT
    CHECK (migration IS NULL OR json_valid(migration));
