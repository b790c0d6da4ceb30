"""Requests that race each other against the real PostgreSQL: a deadlock is a retried conflict, not
a 500; a count checked against a cap (a tenant's series, the OCR daily capture budget) holds when
requests check it at once; two identical corrections at once both get the stored id; a server
thread's database session ends with the thread."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import InvalidInput, TransientConflict


def _until_a_session_waits(session: Any, lock_type: str, sessions: int = 1) -> None:
    """Return once `sessions` other sessions wait on a lock of `lock_type` (pg_locks' locktype:
    'tuple' or 'transactionid' for a row, 'advisory'); pg_locks is read live at each call, not from
    a snapshot."""
    for _ in range(200):
        if session.fetch_value("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN (:kind, 'transactionid')",
                               kind=lock_type) >= sessions:
            return
        threading.Event().wait(0.05)
    pytest.fail(f"{sessions} session(s) never waited on a {lock_type} lock")


def _sessions(context: Any) -> int:
    with context.database.transaction() as tx:
        return int(tx.fetch_value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"))


def test_a_deadlock_between_two_transactions_is_a_transient_conflict_and_the_other_commits(context: Any) -> None:
    both_hold_one = threading.Barrier(2)

    def lock_in_order(first: str, second: str) -> str:
        try:
            with context.database.transaction() as tx:
                tx.advisory_lock(first)
                both_hold_one.wait(timeout=10)
                tx.advisory_lock(second)  # each now waits for the other's: PostgreSQL ends one
            return "committed"
        except TransientConflict as exc:
            return exc.code

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda pair: lock_in_order(*pair), [("a", "b"), ("b", "a")]))
    assert outcomes == ["committed", "concurrent_update"]


def test_concurrent_pushes_keep_a_tenant_within_its_series_cap(context: Any) -> None:
    from shared.monitoring.intake import MAX_TENANT_SERIES, MetricBatch, MetricPointIn, store_metrics
    from shared.monitoring.services import monitoring_services

    tenant = context.tenants.create_tenant("racer", "Racer").tenant_id
    services = monitoring_services(context)
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    def batch(names: list[str]) -> MetricBatch:
        return MetricBatch(points=[MetricPointIn(source="app", metric=name, ts=now, value=1.0) for name in names])

    store_metrics(services, batch([f"m{k}" for k in range(MAX_TENANT_SERIES - 20)]), tenant)

    def push(n: int) -> str:
        try:
            store_metrics(services, batch([f"push{n}_{k}" for k in range(15)]), tenant)
            return "stored"
        except InvalidInput:
            return "refused"
        finally:
            context.close_thread_connection()

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(push, range(6)))
    with context.database.transaction() as tx:
        series = tx.fetch_value("SELECT count(*) FROM metric_series WHERE tenant_id = CAST(:t AS uuid)", t=tenant)
    assert outcomes.count("stored") == 1 and series == MAX_TENANT_SERIES - 5  # 20 free: one push of 15 fits


def test_concurrent_readings_keep_the_daily_capture_budget(context: Any) -> None:
    from shared.ocr.intake import take_readings
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services
    from shared.ocr.settings import change_settings

    tenant = context.tenants.create_tenant("gatehouse", "Gatehouse").tenant_id
    services = ocr_services(context)
    change_settings(services, tenant, threshold="0", daily_budget="3")  # every reading would be captured
    at = datetime.now(UTC) - timedelta(minutes=1)

    def send(n: int) -> bool:
        reading = OcrReading(client_reading_id=f"r{n}", source_type="license_plate", source_id=f"gate-{n}",
                             ocr_text="AB12CDE", confidence=0.05, captured_at=at)
        try:
            return bool(take_readings(services, tenant, [reading], uuid.uuid4().hex)[0]["captured"])
        finally:
            context.close_thread_connection()

    with ThreadPoolExecutor(6) as pool:
        captured = list(pool.map(send, range(12)))
    assert sum(captured) == 3


def test_a_reading_stored_while_a_budgeted_call_waits_is_answered_as_stored_and_takes_no_budget(context: Any) -> None:
    """Calls score their readings before they wait for the tenant's capture lock. The second call
    here sends the first call's reading again and one of its own; when it gets the lock, the first
    has stored that reading (captured): it is answered as stored, and the budget's second capture
    goes to the new reading."""
    from shared.ocr.intake import take_readings
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services
    from shared.ocr.settings import change_settings

    tenant = context.tenants.create_tenant("barrier", "Barrier").tenant_id
    services = ocr_services(context)
    change_settings(services, tenant, threshold="0", daily_budget="2")  # every reading would be captured
    at = datetime.now(UTC) - timedelta(minutes=5)

    def plate(client_id: str, minutes: int) -> OcrReading:
        return OcrReading(client_reading_id=client_id, source_type="license_plate", source_id=f"gate-{client_id}",
                          ocr_text="AB12CDE", confidence=0.05, captured_at=at + timedelta(minutes=minutes))

    answers: dict[str, list[dict[str, Any]]] = {}

    def send(name: str, readings: list[OcrReading]) -> None:
        try:
            answers[name] = take_readings(services, tenant, readings, uuid.uuid4().hex)
        finally:
            context.close_thread_connection()

    calls = [threading.Thread(target=send, args=("first", [plate("r1", 0)])),
             threading.Thread(target=send, args=("second", [plate("r1", 0), plate("r2", 1)]))]
    with context.database.transaction() as holder:
        services.readings.lock_captures(holder, tenant)  # both calls queue behind it, first then second
        for waiting, call in enumerate(calls, start=1):
            call.start()
            _until_a_session_waits(holder, "advisory", sessions=waiting)
    for call in calls:
        call.join(30)
    first, (again, new) = answers["first"][0], answers["second"]
    assert first["captured"] and again == first  # the same stored reading, the same answer
    assert new["captured"]  # the budget's second capture: the replay took none of it
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM ocr_readings WHERE tenant_id = CAST(:t AS uuid) AND captured",
                              t=tenant) == 2


def test_two_identical_corrections_at_once_both_get_the_stored_id(context: Any) -> None:
    from shared.ocr.corrections_repository import NewCorrection, PostgresCorrectionRepository
    from shared.ocr.intake import take_readings
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services

    tenant = context.tenants.create_tenant("meters", "Meters").tenant_id
    reading = OcrReading(client_reading_id="m-1", source_type="meter_reading", source_id="meter-9", ocr_text="01234",
                         confidence=0.4, captured_at=datetime.now(UTC) - timedelta(hours=1), unit="kWh")
    reading_id = take_readings(ocr_services(context), tenant, [reading], "r-1")[0]["reading_id"]
    repository = PostgresCorrectionRepository()
    correction = NewCorrection(reading_id, "01284", "manual", True, False, 0.2)
    second: list[tuple[str, bool]] = []

    def add_again() -> None:
        try:
            with context.database.transaction() as tx:
                second.extend(repository.add(tx, tenant, [correction]))  # waits for the first to commit
        finally:
            context.close_thread_connection()

    with context.database.transaction() as tx:
        first = repository.add(tx, tenant, [correction])
        waiting = threading.Thread(target=add_again)
        waiting.start()
        waiting.join(timeout=1.0)  # it blocks on the first's uncommitted row
    waiting.join(timeout=10)
    assert first[0][1] is True and second == [(first[0][0], False)]


def test_a_thread_that_ends_its_database_session_leaves_none_open(context: Any) -> None:
    """What the local server's handler does when a client connection's thread ends."""
    before = _sessions(context)
    opened = threading.Event()
    counts: list[int] = []

    def serve_one() -> None:
        context.database.ping()
        counts.append(_sessions(context))
        opened.set()
        context.close_thread_connection()

    worker = threading.Thread(target=serve_one)
    worker.start()
    worker.join(timeout=10)
    assert opened.is_set() and counts[0] >= before + 1
    # A closed session's server process ends a moment after its client hangs up (as do those of
    # earlier tests' threads): wait for it, up to 10 s; a session left open never goes.
    for _ in range(200):
        if _sessions(context) <= before:
            break
        threading.Event().wait(0.05)
    else:
        pytest.fail(f"{_sessions(context) - before} session(s) still open after the thread ended")


@pytest.mark.parametrize("value", [1.7e308, -1e19])
def test_a_metric_value_beyond_the_intake_bound_is_refused(value: float) -> None:
    from pydantic import ValidationError

    from shared.monitoring.intake import MetricPointIn

    with pytest.raises(ValidationError, match="within"):
        MetricPointIn(source="host", metric="m", ts=datetime.now(UTC), value=value)


def test_three_labelling_selections_at_once_pick_each_reading_once_and_none_fails(context: Any) -> None:
    from shared.ocr.intake import take_readings
    from shared.ocr.labelling import select_batch
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services
    from shared.ocr.settings import change_settings

    tenant = context.tenants.create_tenant("labels", "Labels").tenant_id
    services = ocr_services(context)
    change_settings(services, tenant, threshold="0")  # every reading is captured: a candidate
    at = datetime.now(UTC) - timedelta(hours=2)
    readings = [OcrReading(client_reading_id=f"p{n}", source_type="license_plate", source_id=f"gate-{n}",
                           ocr_text=f"AB{n}2CDE", confidence=0.3, captured_at=at + timedelta(minutes=n))
                for n in range(4)]
    take_readings(services, tenant, readings, "r-labels")

    def select(_: int) -> int:
        try:
            return int(select_batch(services, tenant, size=2)["selected"])
        finally:
            context.close_thread_connection()

    with ThreadPoolExecutor(3) as pool:
        sizes = sorted(pool.map(select, range(3)))
    with context.database.transaction() as tx:
        picked = tx.fetch_all("SELECT reading_id FROM ocr_label_selections")
    assert sizes == [0, 2, 2] and len({r["reading_id"] for r in picked}) == len(picked) == 4


def test_a_silence_retried_while_its_first_try_still_runs_is_stored_once(context: Any) -> None:
    """A client that timed out sends its silence again while the first request has not committed:
    the retry waits for it and answers the stored silence instead of adding a second."""
    from shared.monitoring.alerts_repository import Silence
    from shared.monitoring.incidents import SilenceBody, add_silence, list_silences
    from shared.monitoring.services import monitoring_services

    services = monitoring_services(context)
    body = SilenceBody(source="host-%", metric="cpu_%", minutes=30, reason="deploy")
    retried: list[dict[str, Any]] = []

    def retry() -> None:
        try:
            retried.append(add_silence(services, body, "ops-key"))
        finally:
            context.close_thread_connection()

    with context.database.transaction() as tx:  # the first try, as add_silence runs it, not yet committed
        services.alerts.lock_silences(tx, "ops-key")
        now = datetime.now(UTC)
        first = services.alerts.add_silence(tx, Silence("host-%", "cpu_%", now, now + timedelta(minutes=30),
                                                        "deploy", "ops-key"))
        waiting = threading.Thread(target=retry)
        waiting.start()
        _until_a_session_waits(tx, "advisory")  # the retry waits on the key's lock
        assert not retried
    waiting.join(timeout=10)
    assert [r["silence_id"] for r in retried] == [first.silence_id]
    assert [s["silence_id"] for s in list_silences(services)["silences"]] == [first.silence_id]


def test_a_push_locks_its_series_in_id_order_whatever_order_its_points_come_in(context: Any) -> None:
    """The scan writes its series' state locked in id order; a push that met one of them held by
    the scan must already hold every lower one, never wait for a lower one while holding a higher
    (that crossing is a deadlock, and the scan is not retried). PostgreSQL's plan for the points'
    update happened to take them in id order before the push locked them explicitly; this holds
    the push to it whatever the plan."""
    from shared.monitoring.intake import MetricBatch, MetricPointIn, store_metrics
    from shared.monitoring.services import monitoring_services

    services = monitoring_services(context)
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    names = [f"m{k:02d}" for k in range(40)]

    def batch(metrics: list[str], minute: int) -> MetricBatch:
        return MetricBatch(points=[MetricPointIn(source="db-1", metric=name, ts=now + timedelta(minutes=minute),
                                                 value=1.0) for name in metrics])

    store_metrics(services, batch(names, 0), None)
    with context.database.transaction() as tx:
        ids = sorted(tx.fetch_value("SELECT array_agg(series_id) FROM metric_series"))
        # New row versions for the lower half: the table's order on disk is no longer id order, so
        # only an explicit ORDER BY locks them first (a plain scan would meet the middle one first).
        tx.execute("UPDATE metric_series SET suppression = suppression WHERE series_id < :middle", middle=ids[20])
    middle, lower = ids[20], ids[:20]
    held, release = threading.Event(), threading.Event()

    def scan_holding_middle() -> None:
        try:
            with context.database.transaction() as tx:
                services.series.lock_series(tx, [middle])
                held.set()
                release.wait(timeout=20)
        finally:
            context.close_thread_connection()

    def push_in_reverse() -> None:
        try:
            store_metrics(services, batch(names[::-1], 1), None)
        finally:
            context.close_thread_connection()

    with ThreadPoolExecutor(2) as pool:
        scan = pool.submit(scan_holding_middle)
        assert held.wait(timeout=10)
        push = pool.submit(push_in_reverse)
        with context.database.transaction() as tx:
            _until_a_session_waits(tx, "tuple")  # the push waits on the scan's series
        free = []
        for series_id in lower:
            try:
                with context.database.transaction() as tx:
                    tx.fetch_all("SELECT 1 FROM metric_series WHERE series_id = :id FOR NO KEY UPDATE NOWAIT",
                                 id=series_id)
                free.append(series_id)
            except Exception as exc:  # noqa: BLE001 - the lock the push holds
                assert "could not obtain lock" in str(exc)
        release.set()
        scan.result(timeout=10)
        push.result(timeout=10)
    assert free == []  # the push held every series below the one it waited for
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM metric_points WHERE ts = :ts", ts=now + timedelta(minutes=1)) == 40
    context.close_thread_connection()
