-- polyvirt schema 10 (PostgreSQL). Keep in step with ../sqlite/0010_hosts_revision.sql.
-- The hosts' revision (HostsRevision: how many, the sum of their versions,
-- the latest change) read from an index, not from the wide host rows: the
-- leading engine asks it every second or so, ten thousand hosts and all.
CREATE INDEX hosts_revision_idx ON hosts (updated_at, version);
