-- Sync events, conflict predictions with their outcomes, and live model metrics.

CREATE TABLE sync_events (
    event_id            bigserial PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (tenant_id),
    client_event_id     text NOT NULL,
    user_id             text NOT NULL,
    device_id           text NOT NULL,
    domain              text NOT NULL,
    entity_type         text NOT NULL,
    entity_id           text NOT NULL,
    fields_changed      text[] NOT NULL,
    client_last_sync_at timestamptz,
    received_at         timestamptz NOT NULL,
    conflicted          boolean NOT NULL,
    conflict_fields     text[] NOT NULL DEFAULT '{}',
    stored_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, client_event_id)
);
-- The feature queries look up an entity's and a user's recent events before a time. No index on
-- received_at alone: training reads most of its window anyway, and every index slows intake.
CREATE INDEX sync_events_entity_time
    ON sync_events (tenant_id, domain, entity_type, entity_id, received_at)
    INCLUDE (user_id, conflicted);
CREATE INDEX sync_events_user_time ON sync_events (tenant_id, user_id, received_at) INCLUDE (conflicted);

CREATE TABLE conflict_predictions (
    prediction_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (tenant_id),
    request_id       text NOT NULL,
    user_id          text NOT NULL,
    domain           text NOT NULL,
    entity_type      text NOT NULL,
    entity_id        text NOT NULL,
    fields           text[],
    features         jsonb NOT NULL,
    probability      double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    risk_level       text NOT NULL,
    model_version_id uuid REFERENCES model_versions (version_id),
    model_label      text NOT NULL,
    variant          text NOT NULL CHECK (variant IN ('champion', 'challenger', 'heuristic')),
    predicted_at     timestamptz NOT NULL DEFAULT now(),
    -- Filled by outcome tracking: did this user's sync of this entity conflict within 24 h?
    outcome          boolean,
    outcome_at       timestamptz
);
CREATE INDEX conflict_predictions_unlabelled ON conflict_predictions (predicted_at) WHERE outcome IS NULL;
CREATE INDEX conflict_predictions_model_time ON conflict_predictions (model_label, predicted_at);
CREATE INDEX conflict_predictions_tenant ON conflict_predictions (tenant_id, predicted_at);

CREATE TABLE model_live_metrics (
    metric_id        bigserial PRIMARY KEY,
    kind             text NOT NULL,
    model_label      text NOT NULL,
    model_version_id uuid,
    window_days      integer NOT NULL,
    computed_at      timestamptz NOT NULL DEFAULT now(),
    predictions      integer NOT NULL,
    positives        integer NOT NULL,
    roc_auc          double precision,
    brier            double precision
);
CREATE INDEX model_live_metrics_label ON model_live_metrics (kind, model_label, computed_at DESC);
