-- Monitoring: the operator role, metric series and their points (raw for N days, hourly rollups
-- beyond), the application's request timings, alerts grouped into incidents, silences, drift.

ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('client', 'staff', 'service', 'operator'));

-- One series per (source, metric): a host's cpu_percent, the database's deadlocks, a route's p95.
CREATE TABLE metric_series (
    series_id     bigserial PRIMARY KEY,
    source        text NOT NULL,
    metric        text NOT NULL,
    -- Set for a tenant's own series (predictions of its models); NULL for platform-wide ones.
    tenant_id     uuid REFERENCES tenants (tenant_id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_point_at timestamptz,
    -- The scan's state: scored up to here, the suppression after that point (detectors.py).
    scanned_until timestamptz,
    suppression   double precision NOT NULL DEFAULT 0,
    -- A series that stopped reporting is alerted once, until it reports again.
    missing_since timestamptz,
    UNIQUE (source, metric)
);

-- Raw one-minute points: the scan's day of 1,000 series is one index range scan per series.
CREATE TABLE metric_points (
    series_id bigint NOT NULL REFERENCES metric_series (series_id),
    ts        timestamptz NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (series_id, ts)
);
CREATE INDEX metric_points_ts ON metric_points (ts);

CREATE TABLE metric_rollups (
    series_id bigint NOT NULL REFERENCES metric_series (series_id),
    hour      timestamptz NOT NULL,
    points    integer NOT NULL,
    mean      double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    median    double precision NOT NULL,
    PRIMARY KEY (series_id, hour)
);

-- What each API process saw in a minute, per route (flushed at most once a minute per process).
CREATE TABLE request_timings (
    minute      timestamptz NOT NULL,
    method      text NOT NULL,
    route       text NOT NULL,
    requests    integer NOT NULL,
    errors      integer NOT NULL,
    latency_ms  double precision[] NOT NULL
);
CREATE INDEX request_timings_minute ON request_timings (minute);

CREATE TABLE monitoring_incidents (
    incident_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Alerts of one source (a host, the database, a model kind) within the window join one incident.
    source          text NOT NULL,
    tenant_id       uuid REFERENCES tenants (tenant_id),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    opened_at       timestamptz NOT NULL,
    last_alert_at   timestamptz NOT NULL,
    alerts          integer NOT NULL DEFAULT 0,
    max_score       double precision NOT NULL DEFAULT 0,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_at     timestamptz
);
CREATE INDEX monitoring_incidents_source ON monitoring_incidents (source, last_alert_at);

CREATE TABLE monitoring_alerts (
    alert_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Deduplication: one alert per (source, metric, type) while its incident is open.
    fingerprint text NOT NULL,
    incident_id uuid NOT NULL REFERENCES monitoring_incidents (incident_id),
    tenant_id   uuid REFERENCES tenants (tenant_id),
    source      text NOT NULL,
    metric      text NOT NULL,
    alert_type  text NOT NULL CHECK (alert_type IN ('anomaly', 'missing_data', 'drift')),
    score       double precision NOT NULL,
    reasons     text[] NOT NULL DEFAULT '{}',
    value       double precision,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    occurrences integer NOT NULL DEFAULT 1,
    silenced    boolean NOT NULL DEFAULT false,
    published   boolean NOT NULL DEFAULT false,
    UNIQUE (incident_id, fingerprint)
);

CREATE TABLE monitoring_silences (
    silence_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- SQL LIKE patterns ('%' matches anything): e.g. source 'host-7', metric 'cpu_%'.
    source     text NOT NULL,
    metric     text NOT NULL DEFAULT '%',
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    reason     text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE drift_reports (
    report_id        bigserial PRIMARY KEY,
    computed_at      timestamptz NOT NULL,
    kind             text NOT NULL,
    tenant_id        uuid REFERENCES tenants (tenant_id),
    model_version_id uuid,
    feature          text NOT NULL,
    test             text NOT NULL,
    statistic        double precision NOT NULL,
    p_value          double precision,
    psi              double precision,
    serving_rows     integer NOT NULL,
    drifted          boolean NOT NULL
);
CREATE INDEX drift_reports_kind ON drift_reports (kind, tenant_id, computed_at);
