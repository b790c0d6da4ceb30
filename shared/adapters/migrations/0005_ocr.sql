-- The OCR feedback loop: readings with their error probability, corrections, labelling batches,
-- per-tenant capture settings, and the error model's prediction log.

CREATE TABLE ocr_settings (
    tenant_id            uuid PRIMARY KEY REFERENCES tenants (tenant_id),
    -- NULL: the serving model's own threshold (the heuristic's equals the seed's confidence < 0.7).
    capture_threshold    double precision CHECK (capture_threshold BETWEEN 0 AND 1),
    -- NULL: no budget; otherwise at most this many captures per day (UTC, by captured_at).
    daily_capture_budget integer CHECK (daily_capture_budget >= 0),
    -- Empty: the default countries (shared/ocr/normalise.py).
    plate_countries      text[] NOT NULL DEFAULT '{}',
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ocr_readings (
    reading_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (tenant_id),
    client_reading_id text NOT NULL,
    source_type       text NOT NULL CHECK (source_type IN ('meter_reading', 'license_plate')),
    source_id         text NOT NULL,
    ocr_text          text NOT NULL,
    confidence        double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    captured_at       timestamptz NOT NULL,
    unit              text CHECK (unit IN ('kWh', 'm3')),
    image_key         text,
    normalized        text,
    -- Set when the reading was assessed through the API; NULL for imported history.
    error_probability double precision CHECK (error_probability BETWEEN 0 AND 1),
    captured          boolean NOT NULL DEFAULT false,
    reasons           text[] NOT NULL DEFAULT '{}',
    stored_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, client_reading_id)
);
-- History of one meter or gate before a time (plausibility), and a tenant's days (metrics).
CREATE INDEX ocr_readings_source_time ON ocr_readings (tenant_id, source_type, source_id, captured_at);
CREATE INDEX ocr_readings_tenant_time ON ocr_readings (tenant_id, captured_at);

CREATE TABLE ocr_corrections (
    correction_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq                  bigserial NOT NULL,  -- order of arrival: the latest correction counts
    tenant_id            uuid NOT NULL REFERENCES tenants (tenant_id),
    reading_id           uuid NOT NULL REFERENCES ocr_readings (reading_id),
    corrected_text       text NOT NULL,
    correction_type      text NOT NULL,
    -- Decided on arrival (shared/ocr/corrections.py): was the reading wrong; did the meter restart.
    is_error             boolean NOT NULL,
    resets_meter         boolean NOT NULL,
    character_error_rate double precision NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, reading_id, correction_type, corrected_text)
);
CREATE INDEX ocr_corrections_reading ON ocr_corrections (reading_id, seq);
CREATE INDEX ocr_corrections_tenant_time ON ocr_corrections (tenant_id, created_at);

CREATE TABLE ocr_label_batches (
    batch_id     uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (tenant_id),
    manifest_key text NOT NULL,
    size         integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- A reading is picked for labelling at most once, ever.
CREATE TABLE ocr_label_selections (
    reading_id uuid PRIMARY KEY REFERENCES ocr_readings (reading_id),
    tenant_id  uuid NOT NULL REFERENCES tenants (tenant_id),
    batch_id   uuid NOT NULL REFERENCES ocr_label_batches (batch_id),
    rank       integer NOT NULL
);

-- The error model's log: the common columns of shared/platform/prediction_log.py plus the reading.
CREATE TABLE ocr_predictions (
    prediction_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (tenant_id),
    request_id        text NOT NULL,
    reading_id        uuid NOT NULL REFERENCES ocr_readings (reading_id),
    source_type       text NOT NULL,
    source_id         text NOT NULL,
    features          jsonb NOT NULL,
    probability       double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    risk_level        text NOT NULL,
    model_version_id  uuid REFERENCES model_versions (version_id),
    model_label       text NOT NULL,
    variant           text NOT NULL CHECK (variant IN ('champion', 'challenger', 'shadow', 'heuristic')),
    scope             text NOT NULL CHECK (scope IN ('tenant', 'global', 'heuristic')),
    predicted_at      timestamptz NOT NULL DEFAULT now(),
    -- Filled by outcome tracking: was the reading corrected as an OCR error?
    outcome           boolean,
    outcome_at        timestamptz
);
CREATE INDEX ocr_predictions_unlabelled ON ocr_predictions (predicted_at) WHERE outcome IS NULL;
CREATE INDEX ocr_predictions_model_time ON ocr_predictions (model_label, predicted_at);
CREATE INDEX ocr_predictions_reading ON ocr_predictions (reading_id);
