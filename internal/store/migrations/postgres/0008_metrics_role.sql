-- polyvirt schema 8 (PostgreSQL). Keep in step with ../sqlite/0008_metrics_role.sql.
-- The metrics role: reads the engine's metrics (GET /metrics) and the
-- scrape targets, nothing else (a Prometheus server's token).

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'vm-manager', 'readonly', 'metrics'));
