-- Each sync event's fixed-width values as the conflict features' history read sends them, packed
-- once at intake (a generated column, filled for existing rows by this ALTER's rewrite): the read
-- then copies one value per event instead of building it from eight send calls and seven
-- concatenations (features_repository.py, _EVENTS_SQL). On issue 8's case (207,600 events) the
-- read took 94-124 ms against 126-152, and 94-100 against 139-147 without parallel workers.
-- Layout (big-endian, 53 bytes): received_at, user key, conflicted (the first 17 bytes are what an
-- event read as a rate only sends), event_id, entity key, device key, client_last_sync_at
-- (PostgreSQL's µs since 2000; int8 minimum when absent), the number of changed fields (intake
-- admits no NULL field, so it is field_keys' length / 8). A generated column cannot use another,
-- so the keys are conflict_key(...) of migration 0008 again.
-- The ALTER rewrites sync_events under an exclusive lock (1.3 s per 207,600 events measured here)
-- and the table grows by about a sixth (57 MB to 67 MB there).
ALTER TABLE sync_events
    ADD COLUMN event_record bytea NOT NULL GENERATED ALWAYS AS (
        timestamptz_send(received_at)
        || int8send(conflict_key(tenant_id::text || '|' || user_id))
        || boolsend(conflicted)
        || int8send(event_id)
        || int8send(conflict_key(tenant_id::text || '|' || domain || '|' || entity_type || '|' || entity_id))
        || int8send(conflict_key(tenant_id::text || '|' || user_id || '|' || device_id))
        || COALESCE(timestamptz_send(client_last_sync_at), int8send(-9223372036854775808))
        || int4send(cardinality(fields_changed))
    ) STORED;
