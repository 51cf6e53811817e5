-- polyvirt schema 2 (PostgreSQL). Keep in step with ../sqlite/0002_vm_manager_role.sql.
-- The vm-manager role: manages VMs, not hosts, clusters, users or firmware.

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'vm-manager', 'readonly'));
