-- Incidents group alerts by the service or host they are about (issue 11), not by one source:
-- the database, the API and the queues are one service; a host's readings are that host.
-- group_key is what grouping matches on; source stays the first alert's source. A row written
-- without one (older code, seeded demo data) is grouped by its source.
ALTER TABLE monitoring_incidents ADD COLUMN group_key text;
UPDATE monitoring_incidents SET group_key = source WHERE group_key IS NULL;
CREATE INDEX monitoring_incidents_group ON monitoring_incidents (group_key, last_alert_at);
-- Deduplication looks for an unresolved incident that already holds the alert's fingerprint.
CREATE INDEX monitoring_alerts_fingerprint ON monitoring_alerts (fingerprint);
