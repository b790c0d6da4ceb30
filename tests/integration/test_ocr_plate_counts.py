"""A gate's plate counts are kept as readings and corrections are stored (migration 0024): a
licence-plate call reads them instead of counting the gate's history. Whatever was stored,
corrected, removed or changed, in whatever order transactions committed, the history a call sees
equals a count of the stored readings, each under its latest correction's text."""

from __future__ import annotations

from collections import Counter
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
        tx.execute("UPDATE ocr_plate_counts SET readings = readings + 5 WHERE plate_text = 'AB 1'")
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
        monkeypatch.setattr(migrations, "available_migrations", lambda: [m for m in every if m.number < 24])
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
        assert "0024_ocr_plate_counts" in migrations.migrate(database)
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
    from shared.ocr.plate_counts import check_plate_counts
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
        tx.execute("UPDATE ocr_plate_counts SET readings = 7 WHERE plate_text = 'AB 2' AND tenant_id = CAST(:t AS uuid)",
                   t=acme)
    found = check_plate_counts(context.database, acme)
    assert found["differences"] == 1 and found["first_differences"] == [
        {"source_id": "north", "plate_text": "AB 2", "kept": 7, "counted": 3}]
    # p1 was counted under AB 1 as a plate and is taken off as it turns into a meter reading.
    assert check_plate_counts(context.database, globex)["differences"] == 0
    recounted = check_plate_counts(context.database, acme, recount=True)
    assert recounted["differences"] == 1 and recounted["differences_after"] == 0 and recounted["texts_counted"] == 4
    _assert_counts_agree(context, [acme, globex])
