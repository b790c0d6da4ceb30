-- How often each text was read at each gate, kept as readings and corrections are stored, so a
-- licence-plate call reads its gates' distinct texts instead of counting their whole history (a
-- gate with 50,000 readings cost 164 ms a call). A reading counts under its best known text: the
-- latest correction's (by seq) when that correction says the reading was wrong, else the OCR text;
-- only readings in the plausible time range count (shared/platform/time_range.py), as in the
-- history query it replaces. Texts are stored as read: the canonical plate is Python's to make.
--
-- Writers never lock a count: the triggers append changes (+1, -1) to ocr_plate_count_changes, an
-- insert-only table, and a gate's count is its folded count plus its pending changes. Locking the
-- counts themselves made live intake wait for a whole import holding them, and let an import's or
-- a correction batch's row order close a deadlock with intake. A fold (ocr_plate_counts_fold, run
-- after a plate insert) moves a gate's changes into its counts once enough are pending; one fold of
-- a tenant at a time, and a call that finds one running goes on without folding.

-- Writes of readings and corrections wait for this migration (reads do not): none is missed by the
-- count below, and none runs under half-made triggers.
SET LOCAL lock_timeout = '10s';  -- not queued behind a long import, holding intake behind it: fail, run again
LOCK TABLE ocr_corrections, ocr_readings IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE ocr_plate_counts (
    tenant_id  uuid NOT NULL REFERENCES tenants (tenant_id),
    source_id  text NOT NULL,
    plate_text text NOT NULL,
    readings   bigint NOT NULL,  -- no check: a count wrong by hand must not fail intake (plate-counts finds it)
    PRIMARY KEY (tenant_id, source_id, plate_text)
) WITH (fillfactor = 70);  -- counts are updated in place, often: room on the page keeps updates HOT

CREATE TABLE ocr_plate_count_changes (
    tenant_id  uuid NOT NULL,
    source_id  text NOT NULL,
    plate_text text NOT NULL,
    delta      integer NOT NULL
);
CREATE INDEX ocr_plate_count_changes_gate ON ocr_plate_count_changes (tenant_id, source_id);

CREATE FUNCTION ocr_plate_counted(source_type text, captured_at timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT source_type = 'license_plate' AND captured_at >= '2000-01-01 00:00:00+00'
       AND captured_at < '2100-01-01 00:00:00+00'
$$;

-- The advisory lock of a tenant's folds and recounts.
CREATE FUNCTION ocr_plate_counts_lock_key(tenant uuid) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('ocr/plate-counts/' || tenant::text, 0)
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

-- Each gate's count of each text of a tenant (NULL: of all): folded plus pending.
CREATE FUNCTION ocr_plate_counts_now(tenant uuid)
    RETURNS TABLE (tenant_id uuid, source_id text, plate_text text, readings numeric)
    LANGUAGE sql STABLE AS $$
    SELECT a.tenant_id, a.source_id, a.plate_text, sum(a.n) FROM (
        SELECT c.tenant_id, c.source_id, c.plate_text, c.readings AS n FROM ocr_plate_counts c
        WHERE tenant IS NULL OR c.tenant_id = tenant
        UNION ALL
        SELECT x.tenant_id, x.source_id, x.plate_text, x.delta FROM ocr_plate_count_changes x
        WHERE tenant IS NULL OR x.tenant_id = tenant
    ) a GROUP BY 1, 2, 3
$$;

-- The gates and texts whose kept count is not a count of the stored readings: none, unless the
-- tables were changed by hand past the triggers (TRUNCATE, triggers disabled, a count edited, a
-- reading's source type changed).
CREATE FUNCTION ocr_plate_count_differences(tenant uuid)
    RETURNS TABLE (tenant_id uuid, source_id text, plate_text text, kept bigint, counted bigint)
    LANGUAGE sql STABLE AS $$
    WITH counted AS (
        SELECT b.tenant_id, b.source_id, b.best_text AS plate_text, count(*) AS n
        FROM ocr_plate_best_texts(tenant) b WHERE b.counted GROUP BY 1, 2, 3
    ), kept AS (
        SELECT k.tenant_id, k.source_id, k.plate_text, k.readings::bigint AS n FROM ocr_plate_counts_now(tenant) k
        WHERE k.readings <> 0
    )
    SELECT COALESCE(k.tenant_id, n.tenant_id), COALESCE(k.source_id, n.source_id),
           COALESCE(k.plate_text, n.plate_text), COALESCE(k.n, 0), COALESCE(n.n, 0)
    FROM kept k FULL JOIN counted n
        ON k.tenant_id = n.tenant_id AND k.source_id = n.source_id AND k.plate_text = n.plate_text
    WHERE k.n IS DISTINCT FROM n.n
    ORDER BY 1, 2, 3
$$;

-- Moves the pending changes of each listed gate of a tenant that has at least `at_least` of them
-- into its counts, unless another transaction is folding or recounting the tenant (then nothing:
-- the changes wait for the next fold, and the caller does not wait). A gate at a time, each
-- statement on the changes' index by tenant and gate: PL/pgSQL keeps a generic plan after five
-- calls, and one join of the due gates to the changes went quadratic (minutes) under it. No
-- temporary table: it runs inside intake's transactions.
CREATE FUNCTION ocr_plate_counts_fold(tenant uuid, gates text[], at_least integer) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    gate text;
    locked boolean := false;
    emptied text[];
BEGIN
    FOREACH gate IN ARRAY gates LOOP
        IF (SELECT count(*) FROM ocr_plate_count_changes x WHERE x.tenant_id = tenant AND x.source_id = gate)
           < at_least THEN
            CONTINUE;
        END IF;
        IF NOT locked THEN
            IF NOT pg_try_advisory_xact_lock(ocr_plate_counts_lock_key(tenant)) THEN
                RETURN;
            END IF;
            locked := true;
        END IF;
        -- Only folds and recounts write counts, one at a time: no other writer waits on these rows.
        WITH moved AS (
            DELETE FROM ocr_plate_count_changes x WHERE x.tenant_id = tenant AND x.source_id = gate
            RETURNING x.plate_text, x.delta
        ), folded AS (
            INSERT INTO ocr_plate_counts AS c (tenant_id, source_id, plate_text, readings)
            SELECT tenant, gate, m.plate_text, sum(m.delta) FROM moved m GROUP BY m.plate_text
            ON CONFLICT (tenant_id, source_id, plate_text) DO UPDATE SET readings = c.readings + EXCLUDED.readings
            RETURNING c.plate_text, c.readings
        )
        SELECT array_agg(f.plate_text) INTO emptied FROM folded f WHERE f.readings = 0;
        DELETE FROM ocr_plate_counts c
        WHERE c.tenant_id = tenant AND c.source_id = gate AND c.plate_text = ANY(emptied) AND c.readings = 0;
    END LOOP;
END $$;

-- Counts a tenant's (NULL: every tenant's) plate readings again. The caller keeps writers of
-- readings and corrections out (LOCK TABLE ocr_corrections, ocr_readings: that order, the
-- triggers'); the tenant's folds wait for it.
CREATE FUNCTION ocr_plate_counts_recount(tenant uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    texts bigint;
BEGIN
    IF tenant IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(ocr_plate_counts_lock_key(tenant));
    END IF;
    DELETE FROM ocr_plate_count_changes x WHERE tenant IS NULL OR x.tenant_id = tenant;
    DELETE FROM ocr_plate_counts c WHERE tenant IS NULL OR c.tenant_id = tenant;
    CREATE TEMP TABLE ocr_plate_best ON COMMIT DROP AS SELECT * FROM ocr_plate_best_texts(tenant);
    UPDATE ocr_readings r SET counted_plate_text = NULLIF(b.best_text, b.ocr_text) FROM ocr_plate_best b
    WHERE r.reading_id = b.reading_id AND r.counted_plate_text IS DISTINCT FROM NULLIF(b.best_text, b.ocr_text);
    INSERT INTO ocr_plate_counts (tenant_id, source_id, plate_text, readings)
    SELECT b.tenant_id, b.source_id, b.best_text, count(*) FROM ocr_plate_best b WHERE b.counted GROUP BY 1, 2, 3;
    GET DIAGNOSTICS texts = ROW_COUNT;
    DROP TABLE ocr_plate_best;
    RETURN texts;
END $$;

-- Readings stored (intake and imports: many a statement) and removed, a statement at a time.
CREATE FUNCTION ocr_plate_counts_readings_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ocr_plate_count_changes (tenant_id, source_id, plate_text, delta)
    SELECT tenant_id, source_id, COALESCE(counted_plate_text, ocr_text), count(*) FROM added
    WHERE ocr_plate_counted(source_type, captured_at) GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION ocr_plate_counts_readings_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ocr_plate_count_changes (tenant_id, source_id, plate_text, delta)
    SELECT tenant_id, source_id, COALESCE(counted_plate_text, ocr_text), -count(*) FROM removed
    WHERE ocr_plate_counted(source_type, captured_at) GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

-- A reading whose gate, time or text is changed in place (no code does; a hand fix might).
CREATE FUNCTION ocr_plate_counts_reading_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ocr_plate_count_changes (tenant_id, source_id, plate_text, delta)
    SELECT OLD.tenant_id, OLD.source_id, COALESCE(OLD.counted_plate_text, OLD.ocr_text), -1
    WHERE ocr_plate_counted(OLD.source_type, OLD.captured_at)
    UNION ALL
    SELECT NEW.tenant_id, NEW.source_id, COALESCE(NEW.counted_plate_text, NEW.ocr_text), 1
    WHERE ocr_plate_counted(NEW.source_type, NEW.captured_at);
    RETURN NULL;
END $$;

-- A plate reading's count moved from the text it was counted under to its best known text now.
-- The reading is locked (FOR NO KEY UPDATE: the corrections' own foreign-key checks hold KEY SHARE
-- on it), so its corrections are counted one transaction at a time, each seeing those committed
-- before it; and it is always updated, so a transaction at REPEATABLE READ that could not see a
-- later correction fails to serialise instead of counting from its old snapshot.
CREATE FUNCTION ocr_plate_counts_reading_corrected(reading uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r ocr_readings%ROWTYPE;
    counted text;
    best text;
BEGIN
    SELECT * INTO r FROM ocr_readings WHERE reading_id = reading AND source_type = 'license_plate' FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    counted := COALESCE(r.counted_plate_text, r.ocr_text);
    SELECT CASE WHEN k.is_error THEN k.corrected_text ELSE r.ocr_text END INTO best
    FROM ocr_corrections k WHERE k.reading_id = reading ORDER BY k.seq DESC LIMIT 1;
    best := COALESCE(best, r.ocr_text);
    IF best <> counted AND ocr_plate_counted(r.source_type, r.captured_at) THEN
        INSERT INTO ocr_plate_count_changes (tenant_id, source_id, plate_text, delta)
        VALUES (r.tenant_id, r.source_id, counted, -1), (r.tenant_id, r.source_id, best, 1);
    END IF;
    UPDATE ocr_readings SET counted_plate_text = NULLIF(best, r.ocr_text) WHERE reading_id = reading;
END $$;

-- A correction stored, changed or removed: its reading counted again (both readings, in id order,
-- when a change moved the correction from one to another).
CREATE FUNCTION ocr_plate_counts_correction_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ocr_plate_counts_reading_corrected(NEW.reading_id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM ocr_plate_counts_reading_corrected(OLD.reading_id);
    ELSE
        PERFORM ocr_plate_counts_reading_corrected(x.id)
        FROM (SELECT DISTINCT unnest(ARRAY[OLD.reading_id, NEW.reading_id]) AS id ORDER BY 1) x;
    END IF;
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
