-- How often each text was read at each gate, kept as readings and corrections are stored, so a
-- licence-plate call reads its gates' distinct texts instead of counting their whole history (a
-- gate with 50,000 readings cost 164 ms a call). A reading counts under its best known text: the
-- latest correction's (by seq) when that correction says the reading was wrong, else the OCR text;
-- only readings in the plausible time range count (shared/platform/time_range.py), as in the
-- history query it replaces. Texts are stored as read: the canonical plate is Python's to make.
CREATE TABLE ocr_plate_counts (
    tenant_id  uuid NOT NULL REFERENCES tenants (tenant_id),
    source_id  text NOT NULL,
    plate_text text NOT NULL,
    readings   bigint NOT NULL CHECK (readings >= 0),
    PRIMARY KEY (tenant_id, source_id, plate_text)
) WITH (fillfactor = 70);  -- counts are updated in place, often: room on the page keeps updates HOT

-- A plate reading's best known text once a correction changed it (NULL: its OCR text): what it is
-- counted under. Kept on the reading, not derived again from the corrections, because corrections
-- may commit out of their seq order: each change moves the count from what was counted to what is
-- best known now.
ALTER TABLE ocr_readings ADD COLUMN counted_plate_text text;

CREATE FUNCTION ocr_plate_counted(source_type text, captured_at timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT source_type = 'license_plate' AND captured_at >= '2000-01-01 00:00:00+00'
       AND captured_at < '2100-01-01 00:00:00+00'
$$;

-- Every plate reading of a tenant (NULL: of all) with its best known text, from the corrections:
-- the definition the kept counts follow, for a recount and a check.
CREATE FUNCTION ocr_plate_best_texts(tenant uuid)
    RETURNS TABLE (tenant_id uuid, source_id text, reading_id uuid, ocr_text text, best_text text, counted boolean)
    LANGUAGE sql STABLE AS $$
    SELECT r.tenant_id, r.source_id, r.reading_id, r.ocr_text,
           CASE WHEN l.is_error THEN l.corrected_text ELSE r.ocr_text END,
           ocr_plate_counted(r.source_type, r.captured_at)
    FROM ocr_readings r
    LEFT JOIN LATERAL (SELECT k.corrected_text, k.is_error FROM ocr_corrections k WHERE k.reading_id = r.reading_id
                       ORDER BY k.seq DESC LIMIT 1) l ON true
    WHERE r.source_type = 'license_plate' AND (tenant IS NULL OR r.tenant_id = tenant)
$$;

-- The gates and texts whose kept count is not a count of the stored readings (none, unless the
-- tables were changed by hand with the triggers off, or a reading's type was changed).
CREATE FUNCTION ocr_plate_count_differences(tenant uuid)
    RETURNS TABLE (tenant_id uuid, source_id text, plate_text text, kept bigint, counted bigint)
    LANGUAGE sql STABLE AS $$
    WITH counted AS (
        SELECT b.tenant_id, b.source_id, b.best_text AS plate_text, count(*) AS n
        FROM ocr_plate_best_texts(tenant) b WHERE b.counted GROUP BY 1, 2, 3
    ), kept AS (
        SELECT c.tenant_id, c.source_id, c.plate_text, c.readings AS n FROM ocr_plate_counts c
        WHERE c.readings > 0 AND (tenant IS NULL OR c.tenant_id = tenant)
    )
    SELECT COALESCE(k.tenant_id, n.tenant_id), COALESCE(k.source_id, n.source_id),
           COALESCE(k.plate_text, n.plate_text), COALESCE(k.n, 0), COALESCE(n.n, 0)
    FROM kept k FULL JOIN counted n
        ON k.tenant_id = n.tenant_id AND k.source_id = n.source_id AND k.plate_text = n.plate_text
    WHERE k.n IS DISTINCT FROM n.n
    ORDER BY 1, 2, 3
$$;

-- Counts a tenant's (NULL: every tenant's) plate readings again; the caller keeps writers out.
CREATE FUNCTION ocr_plate_counts_recount(tenant uuid) RETURNS bigint LANGUAGE sql AS $$
    DELETE FROM ocr_plate_counts c WHERE tenant IS NULL OR c.tenant_id = tenant;
    UPDATE ocr_readings r SET counted_plate_text = NULLIF(b.best_text, b.ocr_text)
    FROM ocr_plate_best_texts(tenant) b
    WHERE r.reading_id = b.reading_id AND r.counted_plate_text IS DISTINCT FROM NULLIF(b.best_text, b.ocr_text);
    INSERT INTO ocr_plate_counts (tenant_id, source_id, plate_text, readings)
    SELECT b.tenant_id, b.source_id, b.best_text, count(*) FROM ocr_plate_best_texts(tenant) b WHERE b.counted
    GROUP BY 1, 2, 3;
    SELECT count(*) FROM ocr_plate_counts c WHERE tenant IS NULL OR c.tenant_id = tenant;
$$;

-- Adds `delta` readings of a text at a gate. A count is lowered by an update (an insert's row
-- would fail the check before its conflict is found).
CREATE FUNCTION ocr_plate_count_add(tenant uuid, source text, plate text, delta bigint) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF delta < 0 THEN
        UPDATE ocr_plate_counts SET readings = readings + delta
        WHERE tenant_id = tenant AND source_id = source AND plate_text = plate;
        IF NOT FOUND THEN  -- as the check on a count below zero: the counts were changed by hand
            RAISE EXCEPTION 'ocr_plate_counts has no count of % at % to lower (mlstack ocr plate-counts --recount)',
                plate, source;
        END IF;
    ELSE
        INSERT INTO ocr_plate_counts AS c (tenant_id, source_id, plate_text, readings) VALUES (tenant, source, plate, delta)
        ON CONFLICT (tenant_id, source_id, plate_text) DO UPDATE SET readings = c.readings + EXCLUDED.readings;
    END IF;
END $$;

-- Readings stored (intake and imports: many a statement) and removed, a statement at a time, in
-- key order (one lock order for concurrent writers at the same gate).
CREATE FUNCTION ocr_plate_counts_readings_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ocr_plate_counts AS c (tenant_id, source_id, plate_text, readings)
    SELECT tenant_id, source_id, COALESCE(counted_plate_text, ocr_text), count(*) FROM added
    WHERE ocr_plate_counted(source_type, captured_at) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, source_id, plate_text) DO UPDATE SET readings = c.readings + EXCLUDED.readings;
    RETURN NULL;
END $$;

CREATE FUNCTION ocr_plate_counts_readings_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ocr_plate_counts c SET readings = c.readings - r.n
    FROM (SELECT tenant_id, source_id, COALESCE(counted_plate_text, ocr_text) AS plate_text, count(*) AS n
          FROM removed WHERE ocr_plate_counted(source_type, captured_at) GROUP BY 1, 2, 3) r
    WHERE (c.tenant_id, c.source_id, c.plate_text) = (r.tenant_id, r.source_id, r.plate_text);
    RETURN NULL;
END $$;

-- A reading whose gate, time or text is changed in place (no code does; a hand fix might).
CREATE FUNCTION ocr_plate_counts_reading_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF ocr_plate_counted(OLD.source_type, OLD.captured_at) THEN
        PERFORM ocr_plate_count_add(OLD.tenant_id, OLD.source_id, COALESCE(OLD.counted_plate_text, OLD.ocr_text), -1);
    END IF;
    IF ocr_plate_counted(NEW.source_type, NEW.captured_at) THEN
        PERFORM ocr_plate_count_add(NEW.tenant_id, NEW.source_id, COALESCE(NEW.counted_plate_text, NEW.ocr_text), 1);
    END IF;
    RETURN NULL;
END $$;

-- A correction stored, changed or removed: the plate reading (locked, so its corrections are
-- counted one transaction at a time, each seeing those committed before it) moves from the text it
-- was counted under to its best known text now. The two counts change in text order (one lock
-- order).
CREATE FUNCTION ocr_plate_counts_correction_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reading ocr_readings%ROWTYPE;
    counted text;
    best text;
BEGIN
    SELECT * INTO reading FROM ocr_readings
    WHERE reading_id = (CASE WHEN TG_OP = 'DELETE' THEN OLD.reading_id ELSE NEW.reading_id END)
      AND source_type = 'license_plate'
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    counted := COALESCE(reading.counted_plate_text, reading.ocr_text);
    SELECT CASE WHEN k.is_error THEN k.corrected_text ELSE reading.ocr_text END INTO best
    FROM ocr_corrections k WHERE k.reading_id = reading.reading_id ORDER BY k.seq DESC LIMIT 1;
    best := COALESCE(best, reading.ocr_text);
    IF best = counted THEN
        RETURN NULL;
    END IF;
    IF ocr_plate_counted(reading.source_type, reading.captured_at) THEN
        IF counted < best THEN
            PERFORM ocr_plate_count_add(reading.tenant_id, reading.source_id, counted, -1);
            PERFORM ocr_plate_count_add(reading.tenant_id, reading.source_id, best, 1);
        ELSE
            PERFORM ocr_plate_count_add(reading.tenant_id, reading.source_id, best, 1);
            PERFORM ocr_plate_count_add(reading.tenant_id, reading.source_id, counted, -1);
        END IF;
    END IF;
    UPDATE ocr_readings SET counted_plate_text = NULLIF(best, reading.ocr_text) WHERE reading_id = reading.reading_id;
    RETURN NULL;
END $$;

CREATE TRIGGER ocr_plate_counts_readings_added AFTER INSERT ON ocr_readings
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ocr_plate_counts_readings_added();
CREATE TRIGGER ocr_plate_counts_readings_removed AFTER DELETE ON ocr_readings
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION ocr_plate_counts_readings_removed();
CREATE TRIGGER ocr_plate_counts_reading_changed AFTER UPDATE OF tenant_id, source_type, source_id, ocr_text, captured_at
    ON ocr_readings FOR EACH ROW EXECUTE FUNCTION ocr_plate_counts_reading_changed();
CREATE TRIGGER ocr_plate_counts_correction_changed AFTER INSERT OR DELETE OR UPDATE ON ocr_corrections
    FOR EACH ROW EXECUTE FUNCTION ocr_plate_counts_correction_changed();

-- What is stored already.
SELECT ocr_plate_counts_recount(NULL);
