-- Each series' precedent memory (detectors.PrecedentMemory: the two largest separate events per
-- statistic of its last 30 days, and the newest point they cover), refreshed daily by
-- refresh-precedents. Recent events are operational data, not part of the gated detector state:
-- a state that is not promoted no longer freezes the scan's memory.
CREATE TABLE metric_precedents (
    series_id   bigint PRIMARY KEY REFERENCES metric_series (series_id) ON DELETE CASCADE,
    memory      jsonb NOT NULL,
    computed_at timestamptz NOT NULL
);
