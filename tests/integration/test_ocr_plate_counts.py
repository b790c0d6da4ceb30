"""A gate's plate counts are kept as readings and corrections are stored (migration 0025): a
licence-plate call reads them instead of counting the gate's history. Whatever was stored,
corrected, removed or changed, in whatever order transactions committed, the history a call sees
equals a count of the stored readings, each under its latest correction's text; and keeping them
makes no writer wait for another (they append changes, folded by whoever finds enough)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.db import Database, Transaction
from shared.ocr.normalise import canonical_plate
from shared.ocr.readings import OcrReading

# The definition the kept counts must agree with: the query they replaced (every stored plate
# reading before `start` in the plausible range, under its latest correction's text when that
# correction says the reading was wrong).
_COUNTED_BEFORE = """
SELECT r.tenant_id::text AS tenant_id, r.source_id,
       CASE WHEN c.is_error THEN c.corrected_text ELSE r.ocr_text END AS text, count(*) AS n
FROM ocr_readings r
LEFT JOIN LATERAL (SELECT k.corrected_text, k.is_error FROM ocr_corrections k WHERE k.reading_id = r.reading_id
                   ORDER BY k.seq DESC LIMIT 1) c ON true
WHERE r.source_type = 'license_plate' AND r.captured_at >= '2000-01-01 00:00:00+00'
  AND r.captured_at < '2100-01-01 00:00:00+00' AND r.captured_at < :start
GROUP BY 1, 2, 3
"""
NOW = datetime.now(UTC).replace(microsecond=0)


def _counted_before(tx: Transaction, start: datetime) -> dict[tuple[str, str], Counter[str]]:
    counts: dict[tuple[str, str], Counter[str]] = {}
    for row in tx.fetch_all(_COUNTED_BEFORE, start=start):
        plate = canonical_plate(row["text"])
        if plate:
            counts.setdefault((row["tenant_id"], row["source_id"]), Counter())[plate] += row["n"]
    return {key: +counter for key, counter in counts.items() if +counter}


def _seen(context: Any, tenant: str | None, gates: list[str] | None, start: datetime) -> dict[tuple[str, str], Counter[str]]:
    from shared.ocr.services import ocr_services

    sources = None if gates is None else [("license_plate", gate) for gate in gates]
    with context.database.transaction() as tx:
        snapshot = ocr_services(context).readings.history(tx, tenant, sources, start, start + timedelta(hours=1))
    return {key: counter for key, counter in snapshot.plate_counts.items() if counter}


def _assert_counts_agree(context: Any, tenants: list[str]) -> None:
    starts = [NOW - timedelta(days=d) for d in (40, 20, 9, 3, 1)] + [NOW + timedelta(hours=2), datetime(2099, 1, 1, tzinfo=UTC)]
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM ocr_plate_counts WHERE readings < 0") == 0
        expected = {start: _counted_before(tx, start) for start in starts}
    for start in starts:
        assert _seen(context, None, None, start) == expected[start], start
        for tenant in tenants:
            mine = {key: counter for key, counter in expected[start].items() if key[0] == tenant}
            assert _seen(context, tenant, ["north", "south", "east"], start) == mine, start
            assert _seen(context, tenant, ["north"], start) == {k: v for k, v in mine.items() if k[1] == "north"}


def _plate(client_id: str, gate: str, text: str, days_ago: float) -> OcrReading:
    return OcrReading(client_reading_id=client_id, source_type="license_plate", source_id=gate, ocr_text=text,
                      confidence=0.8, captured_at=NOW - timedelta(days=days_ago))


def _correct(services: Any, tenant: str, *rows: tuple[str, str, str]) -> None:
    from shared.ocr.ingest import store_corrections

    store_corrections(services, tenant, [(n, {"client_reading_id": client_id, "corrected_text": text,
                                              "correction_type": kind}) for n, (client_id, text, kind) in enumerate(rows)])


def test_kept_counts_equal_a_count_of_the_stored_readings_through_every_change(context: Any) -> None:
    from shared.ocr.ingest import store_history
    from shared.ocr.intake import take_readings
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    acme = context.tenants.create_tenant("acme", "Acme").tenant_id
    globex = context.tenants.create_tenant("globex", "Globex").tenant_id
    texts = ["AB 123 CD", "ab-123-cd", "XY 999 Z", "B 4711", "  ", "8B 4711"]
    history = [_plate(f"p{n}", ("north", "south")[n % 2], texts[n % len(texts)], days_ago=30 - n * 0.7)
               for n in range(40)]
    history.append(OcrReading(client_reading_id="m1", source_type="meter_reading", source_id="north",
                              ocr_text="0001234.5", confidence=0.9, unit="kWh", captured_at=NOW - timedelta(days=2)))
    store_history(services, acme, list(enumerate(history)))
    store_history(services, globex, list(enumerate(history[:7])))
    take_readings(services, acme, [_plate("live-1", "north", "AB123CD", 0.01), _plate("live-2", "east", "ZZ 1", 0.01)],
                  "r1")
    with context.database.transaction() as tx:  # a reading from before the plausible range counts nowhere
        tx.execute("INSERT INTO ocr_readings (tenant_id, client_reading_id, source_type, source_id, ocr_text,"
                   " confidence, captured_at) VALUES (CAST(:t AS uuid), 'old', 'license_plate', 'north', 'AB123CD',"
                   " 0.9, '1999-06-01 00:00:00+00')", t=acme)
    _assert_counts_agree(context, [acme, globex])

    _correct(services, acme, ("p0", "QQ 1", "MANUAL"))  # wrong: now counted as QQ1
    _correct(services, acme, ("p0", "QQ 2", "MANUAL"))  # corrected again: QQ2
    _correct(services, acme, ("p2", "XY 998 Z", "MANUAL"), ("p2", "XY 999 Z", "CONFIRMED"))  # one batch: confirmed last
    _correct(services, acme, ("p3", "B 4712", "MANUAL"), ("p4", "", "UNREADABLE"))  # p4: unreadable, counted nowhere
    _correct(services, acme, ("p1", "AB 123 CD", "MANUAL"))  # the same text: not an error, nothing moves
    _correct(services, acme, ("live-1", "AB 124 CD", "MANUAL"))
    _correct(services, globex, ("p5", "QQ 1", "MANUAL"))
    _assert_counts_agree(context, [acme, globex])

    with context.database.transaction() as tx:  # hand fixes: a correction taken back, a reading moved, one removed
        tx.execute("DELETE FROM ocr_corrections WHERE corrected_text = 'QQ 2'")
        tx.execute("UPDATE ocr_readings SET source_id = 'south', ocr_text = 'NEW 1' WHERE client_reading_id = 'p6'"
                   " AND tenant_id = CAST(:t AS uuid)", t=acme)
        tx.execute("UPDATE ocr_readings SET captured_at = now() - interval '45 days' WHERE client_reading_id = 'p8'")
        tx.execute("DELETE FROM ocr_corrections WHERE reading_id IN (SELECT reading_id FROM ocr_readings"
                   " WHERE client_reading_id = 'p3')")
        tx.execute("DELETE FROM ocr_readings WHERE client_reading_id IN ('p3', 'p9')")
    _assert_counts_agree(context, [acme, globex])


def test_corrections_committed_out_of_their_order_count_the_latest(context: Any, database_url: str) -> None:
    """The latest correction is the one with the highest seq, which need not commit last: a
    correction taking its seq first but committing after a later one changes nothing."""
    from shared.ocr.ingest import store_history
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(services, tenant, [(1, _plate("p1", "north", "AB 1", 3)), (2, _plate("p2", "north", "AB 1", 2))])
    insert = ("INSERT INTO ocr_corrections (seq, tenant_id, reading_id, corrected_text, correction_type, is_error,"
              " resets_meter, character_error_rate) SELECT COALESCE(CAST(:seq AS bigint),"
              " nextval(pg_get_serial_sequence('ocr_corrections', 'seq'))), tenant_id, reading_id, :text, 'MANUAL',"
              " true, false, 0.5 FROM ocr_readings WHERE client_reading_id = 'p1'")
    other = Database(database_url)
    try:
        with context.database.transaction() as first:
            seq = first.fetch_value("SELECT nextval(pg_get_serial_sequence('ocr_corrections', 'seq'))")
            with other.transaction() as second:
                second.execute(insert, seq=None, text="CD 2")  # a later seq, committed first
            first.execute(insert, seq=seq, text="EF 3")
    finally:
        other.close()
    _assert_counts_agree(context, [tenant])
    assert _seen(context, tenant, ["north"], NOW)[(tenant, "north")] == Counter({"AB1": 1, "CD2": 1})
    with context.database.transaction() as tx:  # a call reads the kept counts, not the gate's readings
        tx.execute("INSERT INTO ocr_plate_count_changes VALUES (CAST(:t AS uuid), 'north', 'AB 1', 5)", t=tenant)
    assert _seen(context, tenant, ["north"], NOW)[(tenant, "north")] == Counter({"AB1": 6, "CD2": 1})


def test_the_migration_counts_what_was_stored_before_it(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from shared.adapters import migrate as migrations

    name = f"plates_{uuid.uuid4().hex[:8]}"
    admin = Database(database_url)
    admin.run_outside_transaction(f'CREATE DATABASE "{name}"')
    database = Database(database_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        every = migrations.available_migrations()
        monkeypatch.setattr(migrations, "available_migrations", lambda: [m for m in every if m.number < 25])
        migrations.migrate(database)
        with database.transaction() as tx:
            tenant = tx.fetch_value("INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING tenant_id::text")
            for n, text in enumerate(["AB 1", "ab-1", "CD 2", "EF 3", "AB 1"]):
                tx.execute("INSERT INTO ocr_readings (tenant_id, client_reading_id, source_type, source_id, ocr_text,"
                           " confidence, captured_at) VALUES (CAST(:t AS uuid), :id, 'license_plate', 'north', :text,"
                           " 0.9, now() - :days * interval '1 day')", t=tenant, id=f"p{n}", text=text, days=n + 1)
            for seq, (reading, text, is_error) in enumerate([("p2", "XX 9", True), ("p3", "YY 8", True),
                                                             ("p3", "EF 3", False), ("p4", "ZZ 7", True)]):
                tx.execute("INSERT INTO ocr_corrections (tenant_id, reading_id, corrected_text, correction_type,"
                           " is_error, resets_meter, character_error_rate) SELECT tenant_id, reading_id, :text, :kind,"
                           " :err, false, 0 FROM ocr_readings WHERE client_reading_id = :r", text=text, err=is_error,
                           r=reading, kind=f"K{'X' * seq}")
        monkeypatch.setattr(migrations, "available_migrations", lambda: every)
        assert migrations.migrate(database)[0] == "0025_ocr_plate_counts"
        with database.transaction() as tx:
            kept = {row["plate_text"]: row["readings"] for row in tx.fetch_all(
                "SELECT plate_text, readings FROM ocr_plate_counts WHERE readings > 0")}
            assert kept == {"AB 1": 1, "ab-1": 1, "XX 9": 1, "EF 3": 1, "ZZ 7": 1}
            assert _counted_before(tx, NOW + timedelta(days=1)) == {
                (tenant, "north"): Counter({"AB1": 2, "XX9": 1, "EF3": 1, "ZZ7": 1})}
    finally:
        database.close()
        admin.run_outside_transaction(f'DROP DATABASE "{name}"')
        admin.close()


def test_counts_changed_by_hand_are_found_and_counted_again(context: Any) -> None:
    from shared.ocr.ingest import store_history
    from shared.ocr.plate_counts_repository import check_plate_counts
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    acme = context.tenants.create_tenant("acme", "Acme").tenant_id
    globex = context.tenants.create_tenant("globex", "Globex").tenant_id
    for tenant in (acme, globex):
        store_history(services, tenant, [(n, _plate(f"p{n}", "north", f"AB {n % 3}", 5 - n * 0.1)) for n in range(9)])
    _correct(services, acme, ("p0", "CD 9", "MANUAL"))
    assert check_plate_counts(context.database, acme) == {"differences": 0, "first_differences": []}
    with context.database.transaction() as tx:  # what only a hand change does: a type changed, a count edited
        tx.execute("UPDATE ocr_readings SET source_type = 'meter_reading' WHERE client_reading_id = 'p1'"
                   " AND tenant_id = CAST(:t AS uuid)", t=acme)
        tx.execute("INSERT INTO ocr_plate_count_changes VALUES (CAST(:t AS uuid), 'north', 'AB 2', 4)", t=acme)
    found = check_plate_counts(context.database, acme)
    assert found["differences"] == 1 and found["first_differences"] == [
        {"source_id": "north", "plate_text": "AB 2", "kept": 7, "counted": 3}]
    # p1 was counted under AB 1 as a plate and is taken off as it turns into a meter reading.
    assert check_plate_counts(context.database, globex)["differences"] == 0
    recounted = check_plate_counts(context.database, acme, recount=True)
    assert recounted["differences"] == 1 and recounted["differences_after"] == 0 and recounted["texts_counted"] == 4
    _assert_counts_agree(context, [acme, globex])


# -- the span's events --------------------------------------------------------------------------


def test_a_calls_events_are_its_spans_readings_at_their_best_text(context: Any) -> None:
    from shared.ocr.ingest import store_history
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(services, tenant, [(n, _plate(f"p{n}", "north", f"AB {n % 4}", 10 - n)) for n in range(10)])
    _correct(services, tenant, ("p6", "ZZ 1", "MANUAL"), ("p7", "", "UNREADABLE"))
    start, end = NOW - timedelta(days=6, hours=1), NOW - timedelta(days=1, hours=1)
    with context.database.transaction() as tx:
        snapshot = services.readings.history(tx, tenant, [("license_plate", "north")], start, end)
    assert [(e.client_reading_id, e.plate) for e in snapshot.plates[(tenant, "north")]] == [
        ("p4", "AB0"), ("p5", "AB1"), ("p6", "ZZ1"), ("p8", "AB0")]  # p7 unreadable, p9 from `end` on
    assert snapshot.plate_counts[(tenant, "north")] == Counter({"AB0": 1, "AB1": 1, "AB2": 1, "AB3": 1})


def test_texts_of_any_characters_come_back_as_stored(context: Any) -> None:
    from shared.ocr.services import ocr_services

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    texts = ['A"B 1', "C\\D 2", "Ü-Ö 3", "😀 9", "A\tB\n4", "\u2028X", "{}", "1e5", "null", "AB 1 ", " ab-1"]
    with context.database.transaction() as tx:
        for n, text in enumerate(texts):
            tx.execute("INSERT INTO ocr_readings (tenant_id, client_reading_id, source_type, source_id, ocr_text,"
                       " confidence, captured_at) VALUES (CAST(:t AS uuid), :id, 'license_plate', 'g\"ä', :text, 0.9,"
                       " now() - interval '1 day')", t=tenant, id=f"p{n}", text=text)
    with context.database.transaction() as tx:
        snapshot = ocr_services(context).readings.history(tx, tenant, [("license_plate", 'g"ä')], NOW,
                                                          NOW + timedelta(hours=1))
    assert snapshot.plate_counts[(tenant, 'g"ä')] == Counter(p for p in map(canonical_plate, texts) if p)


def test_hand_changes_the_triggers_see_keep_the_counts(context: Any) -> None:
    """A correction moved to another reading; a reading and its correction in one statement."""
    from shared.ocr.ingest import store_history
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(services, tenant, [(1, _plate("p1", "north", "AB 1", 3)), (2, _plate("p2", "north", "CD 2", 3))])
    _correct(services, tenant, ("p1", "ZZ 9", "MANUAL"))
    with context.database.transaction() as tx:
        tx.execute("UPDATE ocr_corrections SET reading_id = (SELECT reading_id FROM ocr_readings"
                   " WHERE client_reading_id = 'p2')")
        tx.execute("WITH r AS (INSERT INTO ocr_readings (tenant_id, client_reading_id, source_type, source_id, ocr_text,"
                   " confidence, captured_at) VALUES (CAST(:t AS uuid), 'p3', 'license_plate', 'north', 'AB 1', 0.9,"
                   " now() - interval '1 day') RETURNING tenant_id, reading_id)"
                   " INSERT INTO ocr_corrections (tenant_id, reading_id, corrected_text, correction_type, is_error,"
                   " resets_meter, character_error_rate) SELECT tenant_id, reading_id, 'EF 3', 'MANUAL', true, false, 0"
                   " FROM r", t=tenant)
    _assert_counts_agree(context, [tenant])
    assert _seen(context, tenant, ["north"], NOW)[(tenant, "north")] == Counter({"AB1": 1, "ZZ9": 1, "EF3": 1})


# -- folding, and no writer waiting for another ---------------------------------------------------


def _pending(context: Any, gate: str) -> int:
    with context.database.transaction() as tx:
        return int(tx.fetch_value("SELECT count(*) FROM ocr_plate_count_changes WHERE source_id = :g", g=gate))


def test_a_gates_changes_are_folded_once_enough_are_pending(context: Any, database_url: str) -> None:
    from shared.ocr.ingest import store_history
    from shared.ocr.intake import take_readings
    from shared.ocr.readings_repository import PLATE_FOLD_AT
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    few = [(n, _plate(f"p{n}", "north", f"AB {n % 5}", 9 - n * 0.01)) for n in range(PLATE_FOLD_AT - 1)]
    store_history(services, tenant, few)
    assert _pending(context, "north") == 5  # one change per text of the statement, none folded yet
    store_history(services, tenant, [(n, _plate(f"q{n}", "north", f"CD {n}", 8 - n * 0.01)) for n in range(60)])
    assert _pending(context, "north") == 0  # 65 changes pending: folded by the insert that found them
    _assert_counts_agree(context, [tenant])

    # A fold already running for the tenant (here: held by another session) is not waited for.
    holder = Database(database_url)
    try:
        with holder.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(ocr_plate_counts_lock_key(CAST(:t AS uuid)))", t=tenant)
            store_history(services, tenant, [(n, _plate(f"r{n}", "north", f"EF {n}", 7 - n * 0.01)) for n in range(70)])
            take_readings(services, tenant, [_plate("live-1", "north", "AB 1", 0.001)], "r1")
            assert _pending(context, "north") == 71
    finally:
        holder.close()
    _assert_counts_agree(context, [tenant])
    take_readings(services, tenant, [_plate("live-2", "north", "AB 2", 0.001)], "r2")  # the next call folds them
    assert _pending(context, "north") == 0
    _assert_counts_agree(context, [tenant])


def _until_waiting(watcher: Database, sessions: int = 1) -> None:
    for _ in range(200):
        with watcher.transaction() as tx:
            if tx.fetch_value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                              " AND datname = current_database()") >= sessions:
                return
        threading.Event().wait(0.05)
    pytest.fail("no session waited on a lock")


def _intake(context: Any, services: Any, tenant: str, texts: list[str]) -> str:
    from shared.ocr.intake import take_readings

    try:
        take_readings(services, tenant, [_plate(f"live-{n}", "north", t, 0.001) for n, t in enumerate(texts)], "r1")
        return "committed"
    finally:
        context.close_thread_connection()


def test_an_open_import_does_not_hold_up_intake_at_its_gate(context: Any, database_url: str) -> None:
    """An import inserts chunk after chunk in one transaction (and may fold): intake of the same
    gate and texts meanwhile neither waits for it nor closes a deadlock with it."""
    from shared.ocr.readings_repository import PLATE_FOLD_AT, AssessedReading
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    importer = Database(database_url)

    def chunk(tx: Any, prefix: str, texts: list[str]) -> None:  # what store_history does for each chunk
        services.readings.insert(tx, tenant, [AssessedReading(str(uuid.uuid4()), _plate(f"{prefix}{n}", "north", t, 2),
                                                              t, None, False, ()) for n, t in enumerate(texts)])

    try:
        with ThreadPoolExecutor(1) as pool, importer.transaction() as tx:
            chunk(tx, "h", ["B 2"] * PLATE_FOLD_AT)
            services.readings.fold_plate_counts(tx, tenant, ["north"])  # enough to fold: the import holds the fold
            assert pool.submit(_intake, context, services, tenant, ["A 1", "B 2"]).result(timeout=30) == "committed"
            chunk(tx, "i", ["A 1"])
    finally:
        importer.close()
    _assert_counts_agree(context, [tenant])
    assert _seen(context, tenant, ["north"], NOW)[(tenant, "north")] == Counter({"B2": PLATE_FOLD_AT + 1, "A1": 2})


def test_an_open_correction_batch_does_not_hold_up_intake_at_its_gate(context: Any, database_url: str) -> None:
    from shared.ocr.ingest import store_history
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(services, tenant, [(1, _plate("p1", "north", "C 3", 3)), (2, _plate("p2", "north", "B 2", 3)),
                                     (3, _plate("p3", "north", "A 1", 3))])
    corrector = Database(database_url)
    try:
        with ThreadPoolExecutor(1) as pool, corrector.transaction() as tx:
            tx.execute(_CORRECT, text="D 4", r="p1")
            assert pool.submit(_intake, context, services, tenant, ["A 1", "C 3"]).result(timeout=30) == "committed"
            tx.execute(_CORRECT, text="E 5", r="p3")
    finally:
        corrector.close()
    _assert_counts_agree(context, [tenant])


_CORRECT = ("INSERT INTO ocr_corrections (tenant_id, reading_id, corrected_text, correction_type, is_error,"
            " resets_meter, character_error_rate) SELECT tenant_id, reading_id, :text, 'MANUAL', true, false, 0.5"
            " FROM ocr_readings WHERE client_reading_id = :r")


def test_a_reading_being_labelled_takes_corrections_meanwhile(context: Any, database_url: str) -> None:
    """A labelling selection (a foreign key to the reading) is open while a correction of the
    reading arrives: the correction does not wait for it, and the selection's own later correction
    commits too (a FOR UPDATE of the reading had them deadlock)."""
    from shared.ocr.ingest import store_history
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(services, tenant, [(1, _plate("p1", "north", "AB 1", 3))])
    labeller, corrector = Database(database_url), Database(database_url)

    def correct() -> str:
        with corrector.transaction() as tx:
            tx.execute(_CORRECT, text="CD 2", r="p1")
        return "committed"

    try:
        with ThreadPoolExecutor(1) as pool, labeller.transaction() as tx:
            batch = str(uuid.uuid4())
            tx.execute("INSERT INTO ocr_label_batches (batch_id, tenant_id, manifest_key, size)"
                       " VALUES (CAST(:b AS uuid), CAST(:t AS uuid), 'k', 1)", b=batch, t=tenant)
            tx.execute("INSERT INTO ocr_label_selections (reading_id, tenant_id, batch_id, rank)"
                       " SELECT reading_id, tenant_id, CAST(:b AS uuid), 1 FROM ocr_readings"
                       " WHERE client_reading_id = 'p1'", b=batch)
            assert pool.submit(correct).result(timeout=30) == "committed"
            tx.execute(_CORRECT, text="EF 3", r="p1")
    finally:
        labeller.close()
        corrector.close()
    _assert_counts_agree(context, [tenant])
    assert _seen(context, tenant, ["north"], NOW)[(tenant, "north")] == Counter({"EF3": 1})


def test_a_recount_waits_for_an_open_correction_batch_without_deadlock(context: Any, database_url: str) -> None:
    from shared.ocr.ingest import store_history
    from shared.ocr.plate_counts_repository import check_plate_counts
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(services, tenant, [
        (1, _plate("p1", "north", "AB 1", 3)),
        (2, OcrReading(client_reading_id="m1", source_type="meter_reading", source_id="m", ocr_text="0001234.5",
                       confidence=0.9, unit="kWh", captured_at=NOW - timedelta(days=2)))])
    corrector, watcher = Database(database_url), Database(database_url)

    def recount() -> dict[str, Any]:
        try:
            return check_plate_counts(context.database, tenant, recount=True)
        finally:
            context.close_thread_connection()

    try:
        with ThreadPoolExecutor(1) as pool:
            with corrector.transaction() as tx:
                tx.execute(_CORRECT, text="0001234.6", r="m1")  # the batch's first rows: the corrections table held
                recounted = pool.submit(recount)
                _until_waiting(watcher)  # the recount waits for the batch
                tx.execute(_CORRECT, text="CD 2", r="p1")  # then a plate: its trigger writes to ocr_readings
            assert recounted.result(timeout=30)["differences_after"] == 0
    finally:
        corrector.close()
        watcher.close()
    _assert_counts_agree(context, [tenant])


def test_a_correction_at_repeatable_read_that_missed_a_later_one_fails_to_serialise(
        context: Any, database_url: str) -> None:
    """A hand transaction at REPEATABLE READ reads the corrections of its own snapshot: one that took
    its seq before another correction of the reading committed cannot count from that snapshot, so
    it fails (a retry counts right) and the counts stay true."""
    from shared.errors import TransientConflict
    from shared.ocr.ingest import store_history
    from shared.ocr.services import ocr_services

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(ocr_services(context), tenant, [(1, _plate("p1", "north", "AB 1", 3))])
    first, second = Database(database_url), Database(database_url)
    try:
        with pytest.raises(TransientConflict), first.transaction() as tx:
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            seq = tx.fetch_value("SELECT nextval(pg_get_serial_sequence('ocr_corrections', 'seq'))")
            with second.transaction() as other:  # a later seq that confirms the OCR text: nothing moves
                other.execute(_CORRECT.replace("true", "false").replace("'MANUAL'", "'CONFIRMED'"), text="AB 1", r="p1")
            tx.execute(_CORRECT.replace("(tenant_id,", "(seq, tenant_id,").replace("SELECT tenant_id", "SELECT :seq, tenant_id"),
                       seq=seq, text="EF 3", r="p1")
    finally:
        first.close()
        second.close()
    _assert_counts_agree(context, [tenant])


def test_a_correction_batch_locks_its_readings_in_one_order(context: Any, database_url: str) -> None:
    """Each corrected plate reading stays locked to the commit: a batch takes them in reading-id
    order, whatever its rows' order, so two batches of the same readings cannot deadlock. Here
    the batch waits for its first reading without holding the second."""
    from shared.ocr.corrections import judge_correction
    from shared.ocr.corrections_repository import PostgresCorrectionRepository
    from shared.ocr.ingest import store_history
    from shared.ocr.services import ocr_services

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(ocr_services(context), tenant, [(1, _plate("p1", "north", "AB 1", 3)), (2, _plate("p2", "north", "AB 2", 3))])
    with context.database.transaction() as tx:
        low, high = sorted(tx.fetch_value("SELECT array_agg(reading_id::text) FROM ocr_readings"))
    holder, batch, probe = Database(database_url), Database(database_url), Database(database_url)
    repository = PostgresCorrectionRepository()

    def correct(readings: list[str]) -> None:
        with batch.transaction() as tx:
            repository.add(tx, tenant, [judge_correction("license_plate", r, "AB 1", "CD 9", "MANUAL") for r in readings])

    try:
        with ThreadPoolExecutor(1) as pool:
            with holder.transaction() as tx:
                repository.add(tx, tenant, [judge_correction("license_plate", low, "AB 1", "EF 7", "MANUAL")])
                done = pool.submit(correct, [high, low])  # its rows in the other order
                _until_waiting(probe)
                with probe.transaction() as other:  # the second reading is free meanwhile
                    assert other.fetch_value("SELECT count(*) FROM (SELECT 1 FROM ocr_readings WHERE reading_id ="
                                             " CAST(:r AS uuid) FOR NO KEY UPDATE NOWAIT) x", r=high) == 1
            done.result(timeout=30)
    finally:
        holder.close()
        batch.close()
        probe.close()
    _assert_counts_agree(context, [tenant])


def test_a_gate_that_only_gets_corrections_is_folded(context: Any) -> None:
    from shared.ocr.ingest import store_history
    from shared.ocr.readings_repository import PLATE_FOLD_AT
    from shared.ocr.services import ocr_services

    services = ocr_services(context)
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    store_history(services, tenant, [(n, _plate(f"p{n}", "north", "AB 1", 5 - n * 0.001)) for n in range(300)])
    for start in range(0, 300, 100):
        _correct(services, tenant, *((f"p{n}", f"CD {n}", "MANUAL") for n in range(start, start + 100)))
    assert _pending(context, "north") < 2 * PLATE_FOLD_AT
    _assert_counts_agree(context, [tenant])
