-- polyvirt schema 3 (PostgreSQL). Keep in step with ../sqlite/0003_cluster_shutdown_timeout.sql.
-- How long a VM's guest has to power off after a shutdown request before
-- the VM is powered off (oVirt's VmGracefulShutdownTimeout), per cluster.
ALTER TABLE clusters ADD COLUMN shutdown_timeout_s INTEGER NOT NULL DEFAULT 30
    CHECK (shutdown_timeout_s BETWEEN 1 AND 86400);
