-- One lifecycle for every model kind: shadow candidates, and which scope answered each prediction.

-- A shadow is a candidate scored on every request beside the active version, logged, never answering.
ALTER TABLE model_versions ADD COLUMN shadow boolean NOT NULL DEFAULT false;
ALTER TABLE model_versions ADD CONSTRAINT model_versions_shadow_is_candidate
    CHECK (NOT shadow OR status = 'candidate');
CREATE UNIQUE INDEX model_versions_one_shadow
    ON model_versions (kind, COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid))
    WHERE shadow;

-- Every kind logs to its own <kind>_predictions table with these common columns (the one code
-- path in shared/platform/prediction_log.py), plus the columns that say what it was about.
ALTER TABLE conflict_predictions ADD COLUMN scope text NOT NULL DEFAULT 'global'
    CHECK (scope IN ('tenant', 'global', 'heuristic'));
UPDATE conflict_predictions SET scope = 'heuristic' WHERE variant = 'heuristic';
ALTER TABLE conflict_predictions DROP CONSTRAINT conflict_predictions_variant_check;
ALTER TABLE conflict_predictions ADD CONSTRAINT conflict_predictions_variant_check
    CHECK (variant IN ('champion', 'challenger', 'shadow', 'heuristic'));

ALTER TABLE model_live_metrics ADD COLUMN pr_auc double precision;
