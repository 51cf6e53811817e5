-- polyvirt schema 4 (SQLite). Keep in step with ../postgres/0004_vm_pending.sql.
-- The action the engine ordered on a VM's host and has not recorded the
-- outcome of yet (who started the VM, why): whoever sees the outcome first
-- — the engine that ordered it, or the monitoring after that engine died —
-- records it, once. NULL when nothing is pending.
ALTER TABLE vms ADD COLUMN pending TEXT CHECK (pending IS NULL OR json_valid(pending));
