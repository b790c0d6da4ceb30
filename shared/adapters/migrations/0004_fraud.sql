-- Attendance-fraud loop: sites, holiday calendars, attendance events, investigators' labels,
-- the prediction log, and staff-set operating points.

CREATE TABLE sites (
    tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id),
    site_id     text NOT NULL,
    latitude    double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    radius_m    double precision NOT NULL CHECK (radius_m > 0),
    timezone    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, site_id)
);

CREATE TABLE holidays (
    tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id),
    day         date NOT NULL,
    name        text NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE attendance_events (
    event_id              bigserial PRIMARY KEY,
    tenant_id             uuid NOT NULL REFERENCES tenants (tenant_id),
    client_event_id       text NOT NULL,
    user_id               text NOT NULL,
    site_id               text NOT NULL,
    device_id             text NOT NULL,
    event_type            text NOT NULL CHECK (event_type IN ('check_in', 'check_out')),
    occurred_at           timestamptz NOT NULL,
    latitude              double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude             double precision CHECK (longitude BETWEEN -180 AND 180),
    gps_accuracy_m        double precision CHECK (gps_accuracy_m >= 0),
    face_match_confidence double precision CHECK (face_match_confidence BETWEEN 0 AND 1),
    biometric_verified    boolean,
    stored_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, client_event_id),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
-- Features read a user's, a device's and a site's recent events before a time.
CREATE INDEX attendance_events_user_time ON attendance_events (tenant_id, user_id, occurred_at);
CREATE INDEX attendance_events_device_time ON attendance_events (tenant_id, device_id, occurred_at);
CREATE INDEX attendance_events_site_time ON attendance_events (tenant_id, site_id, occurred_at);
CREATE INDEX attendance_events_tenant_time ON attendance_events (tenant_id, occurred_at);

CREATE TABLE fraud_labels (
    tenant_id        uuid NOT NULL REFERENCES tenants (tenant_id),
    client_event_id  text NOT NULL,
    is_fraud         boolean NOT NULL,
    labelled_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, client_event_id)
);

-- The shared prediction log's common columns (shared/platform/prediction_log.py) plus the event.
CREATE TABLE fraud_predictions (
    prediction_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (tenant_id),
    request_id       text NOT NULL,
    client_event_id  text,
    user_id          text NOT NULL,
    site_id          text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    features         jsonb NOT NULL,
    probability      double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    risk_level       text NOT NULL,
    model_version_id uuid REFERENCES model_versions (version_id),
    model_label      text NOT NULL,
    variant          text NOT NULL CHECK (variant IN ('champion', 'challenger', 'shadow', 'heuristic')),
    scope            text NOT NULL CHECK (scope IN ('tenant', 'global', 'heuristic')),
    predicted_at     timestamptz NOT NULL DEFAULT now(),
    outcome          boolean,
    outcome_at       timestamptz
);
CREATE INDEX fraud_predictions_unlabelled ON fraud_predictions (predicted_at) WHERE outcome IS NULL;
CREATE INDEX fraud_predictions_model_time ON fraud_predictions (model_label, predicted_at);
CREATE INDEX fraud_predictions_tenant ON fraud_predictions (tenant_id, predicted_at);

-- Where staff moved a tenant's operating point away from the one chosen at training.
CREATE TABLE fraud_operating_points (
    tenant_id         uuid PRIMARY KEY REFERENCES tenants (tenant_id),
    review_threshold  double precision NOT NULL CHECK (review_threshold BETWEEN 0 AND 1),
    block_threshold   double precision NOT NULL CHECK (block_threshold BETWEEN 0 AND 1),
    set_by            text NOT NULL,
    set_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (review_threshold <= block_threshold)
);
