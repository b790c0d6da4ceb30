-- A one-minute series that reported in under 99 % of its minutes over the scan's day is an alert of
-- its own type (shared/monitoring/uptime.py): the seed's metrics-uptime bar, watched. The series
-- keeps when it fell under the bar (as missing_since), so it alerts once, whichever scan sees it first.
ALTER TABLE monitoring_alerts DROP CONSTRAINT monitoring_alerts_alert_type_check;
ALTER TABLE monitoring_alerts ADD CONSTRAINT monitoring_alerts_alert_type_check
    CHECK (alert_type IN ('anomaly', 'missing_data', 'low_uptime', 'drift'));
ALTER TABLE metric_series ADD COLUMN low_uptime_since timestamptz;
