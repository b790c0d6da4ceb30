"""Bad input found by probing the API and the CLI from outside: each is a 400 (or 409) naming the
field, never a 500, and changes nothing. Times outside the plausible range (2000-01-01 up to
2100-01-01 UTC) are refused before any conversion: year 1 at +01:00 or 9999-12-31 at -05:00 overflow
`astimezone`, and PostgreSQL would store them as 1 BC or year 10000."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from shared.errors import InvalidInput
from tests.conftest import auth

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
OVERFLOWING = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00+01:00",
               "0001-01-01T00:00:00+14:00"]
OUT_OF_RANGE = [*OVERFLOWING, "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2126-01-01T00:00:00Z",
                "9999-12-31T00:00:00Z"]


@pytest.fixture
def client(app_environment: dict[str, str]) -> Iterator[Client]:
    from app import app

    with Client(app, stage_name="local") as test_client:
        yield test_client


def post(client: Client, path: str, key: str, body: Any) -> tuple[int, Any]:
    response = client.http.post(path, headers=auth(key), body=json.dumps(body).encode())
    return response.status_code, json.loads(response.body)


def count(table: str, context: Any = None) -> int:
    from shared.context import get_context

    with (context or get_context()).database.transaction() as tx:
        return int(tx.fetch_value(f"SELECT count(*) FROM {table}"))


def assert_400_naming(status: int, answer: Any, field: str) -> None:
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_input", answer
    assert field in [f["field"] for f in answer["error"]["fields"]], answer


def reading(n: int, captured_at: str, text: str = "01000.0", source: str = "meter-1") -> dict[str, Any]:
    return {"client_reading_id": f"r-{n}", "source_type": "meter_reading", "source_id": source, "ocr_text": text,
            "confidence": 0.95, "captured_at": captured_at, "unit": "kWh"}


def attendance(n: int, occurred_at: str) -> dict[str, Any]:
    return {"client_event_id": f"e-{n}", "user_id": "u1", "site_id": "s-a", "device_id": "d1",
            "event_type": "check_in", "occurred_at": occurred_at, "latitude": 52.37, "longitude": 4.89}


SITE = {"site_id": "s-a", "latitude": 52.37, "longitude": 4.89, "radius_m": 150, "timezone": "Europe/Amsterdam"}


# -- 1. OCR captured_at ---------------------------------------------------------------------------

@pytest.mark.parametrize("captured_at", [*OUT_OF_RANGE, (NOW + timedelta(days=1)).isoformat()])
def test_an_implausible_or_future_capture_time_is_a_400_and_stores_nothing(
    client: Client, tenant_keys: dict[str, Any], captured_at: str
) -> None:
    key = tenant_keys["acme"]["client"]
    assert_400_naming(*post(client, "/api/v2/ocr/readings", key, reading(1, captured_at)), "captured_at")
    batch = {"readings": [reading(1, (NOW - timedelta(days=1)).isoformat()), reading(2, captured_at)]}
    assert_400_naming(*post(client, "/api/v2/ocr/readings", key, batch), "readings.1.captured_at")
    assert count("ocr_readings") == count("ocr_predictions") == 0


def test_a_device_clock_a_minute_fast_is_no_clock_gone_wrong(client: Client, tenant_keys: dict[str, Any]) -> None:
    at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert post(client, "/api/v2/ocr/readings", tenant_keys["acme"]["client"], reading(1, at))[0] == 200


def test_the_reading_import_and_triage_refuse_an_implausible_capture_time_by_line(
    context: Any, tmp_path: Path
) -> None:
    from shared.ocr.ingest import ingest_readings
    from shared.ocr.services import ocr_services
    from shared.ocr.triage import triage_file

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    path = tmp_path / "readings.ndjson"
    path.write_text(json.dumps(reading(1, (NOW - timedelta(days=2)).isoformat())) + "\n"
                    + json.dumps(reading(2, "0001-01-01T00:00:00+01:00")) + "\n"
                    + json.dumps(reading(3, (NOW + timedelta(hours=2)).isoformat())) + "\n")
    for run in (lambda: ingest_readings(ocr_services(context), tenant, path),
                lambda: triage_file(ocr_services(context), tenant, path, tmp_path / "out.csv")):
        with pytest.raises(InvalidInput) as refused:
            run()
        assert [p.field for p in refused.value.fields] == ["line 2", "line 3"], refused.value.fields
        assert "captured_at" in refused.value.fields[0].reason
    assert count("ocr_readings", context) == 0 and not (tmp_path / "out.csv").exists()


def test_a_reading_stored_outside_the_range_before_the_check_breaks_no_later_reading(
    client: Client, tenant_keys: dict[str, Any], tmp_path: Path
) -> None:
    """Rows stored before intake checked the range (PostgreSQL reads 1 BC back as text) are not
    history: the meter's later readings are assessed against the plausible rest."""
    from shared.context import get_context
    from shared.ocr.services import ocr_services
    from shared.ocr.triage import triage_file

    acme, key = tenant_keys["acme"]["tenant_id"], tenant_keys["acme"]["client"]
    history = {"readings": [reading(i, (NOW - timedelta(days=10 - i)).isoformat(), f"{1000 + 10 * i:07.1f}")
                            for i in range(5)]}
    assert post(client, "/api/v2/ocr/readings", key, history)[0] == 200
    with get_context().database.transaction() as tx:
        for n, at in ((90, "0001-01-01T00:00:00+01:00"), (91, "9999-12-31T23:59:59-05:00")):
            tx.execute(
                "INSERT INTO ocr_readings (reading_id, tenant_id, client_reading_id, source_type, source_id, ocr_text,"
                " confidence, captured_at, unit, reasons) VALUES (CAST(:id AS uuid), CAST(:tenant AS uuid), :cid,"
                " 'meter_reading', 'meter-1', '0999.0', 0.9, CAST(:at AS timestamptz), 'kWh', '{}')",
                id=str(uuid.uuid4()), tenant=acme, cid=f"r-{n}", at=at)
    status, answer = post(client, "/api/v2/ocr/readings", key, reading(5, (NOW - timedelta(days=4)).isoformat(),
                                                                      "01050.0"))
    assert status == 200 and answer["reasons"] == [], answer
    path = tmp_path / "triage.ndjson"
    path.write_text(json.dumps(reading(6, (NOW - timedelta(days=3)).isoformat(), "01060.0")) + "\n")
    assert triage_file(ocr_services(get_context()), acme, path, tmp_path / "out.csv")["rows"] == 1
    metrics = client.http.get("/api/v2/ocr/metrics", headers=auth(tenant_keys["acme"]["staff"]))
    assert metrics.status_code == 200, metrics.body
    days = [d["day"] for d in json.loads(metrics.body)["capture_rate_per_day"]]
    assert days and max(days) <= (NOW + timedelta(days=1)).date().isoformat()


# -- 2. attendance, fraud scoring and silences ----------------------------------------------------

@pytest.mark.parametrize("occurred_at", [*OUT_OF_RANGE, (NOW + timedelta(days=1)).isoformat()])  # or tomorrow
def test_an_implausible_attendance_time_is_a_400_on_intake_and_scoring(
    client: Client, tenant_keys: dict[str, Any], occurred_at: str
) -> None:
    acme = tenant_keys["acme"]
    assert_400_naming(*post(client, "/api/v2/attendance/events", acme["client"], attendance(1, occurred_at)),
                      "occurred_at")
    batch = {"events": [attendance(1, NOW.isoformat()), attendance(2, occurred_at)]}
    assert_400_naming(*post(client, "/api/v2/attendance/events", acme["client"], batch), "events.1.occurred_at")
    assert_400_naming(*post(client, "/api/v2/predict/fraud", acme["client"], attendance(3, occurred_at)),
                      "occurred_at")
    assert count("attendance_events") == count("fraud_predictions") == 0


def test_the_attendance_import_names_the_line_of_an_overflowing_time(context: Any, tmp_path: Path) -> None:
    from shared.fraud.ingest import ingest_attendance

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(attendance(n, at)) + "\n" for n, at in
                            enumerate([NOW.isoformat(), "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])))
    with pytest.raises(InvalidInput) as refused:
        ingest_attendance(context, tenant, path)
    assert [p.field for p in refused.value.fields] == ["line 2", "line 3"]
    assert count("attendance_events", context) == 0


def test_the_holiday_import_names_the_line_of_a_date_out_of_range(context: Any, tmp_path: Path) -> None:
    from shared.fraud.ingest import ingest_holidays

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    path = tmp_path / "holidays.csv"
    path.write_text("date,name\n2026-12-25,Christmas\n0001-01-01,Year one\n9999-12-31,The end\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_holidays(context, tenant, path)
    assert [p.field for p in refused.value.fields] == ["line 3", "line 4"]
    assert count("holidays", context) == 0


@pytest.mark.parametrize("starts_at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+14:00",
                                       "1999-06-01T00:00:00Z", "2100-01-01T00:00:00Z"])
def test_a_silence_starting_out_of_range_is_a_400_naming_starts_at(
    client: Client, app_environment: dict[str, str], starts_at: str
) -> None:
    from shared.context import get_context

    _, keys = get_context().tenants.create_tenant_with_keys("platform", "Platform", ("operator",))
    status, answer = post(client, "/api/v2/monitoring/silences", keys[0].secret,
                          {"source": "edge", "starts_at": starts_at})
    assert_400_naming(status, answer, "starts_at")
    assert count("monitoring_silences") == 0


# -- 3. sites -------------------------------------------------------------------------------------

def test_a_site_twice_in_one_batch_is_a_400_naming_it(client: Client, tenant_keys: dict[str, Any]) -> None:
    staff = tenant_keys["acme"]["staff"]
    status, answer = post(client, "/api/v2/sites", staff, {"sites": [SITE, {**SITE, "radius_m": 300}]})
    assert_400_naming(status, answer, "sites")
    assert "s-a" in answer["error"]["fields"][0]["reason"]
    assert count("sites") == 0
    assert post(client, "/api/v2/sites", staff, {"sites": [SITE, {**SITE, "site_id": "s-b"}]}) == (200, {"sites": 2})


# -- 4. fraud labels ------------------------------------------------------------------------------

def test_conflicting_verdicts_for_one_event_in_a_batch_are_refused(client: Client, tenant_keys: dict[str, Any]) -> None:
    acme = tenant_keys["acme"]
    assert post(client, "/api/v2/sites", acme["staff"], SITE)[0] == 200
    assert post(client, "/api/v2/attendance/events", acme["client"], attendance(1, NOW.isoformat()))[0] == 200
    labels = {"labels": [{"client_event_id": "e-1", "is_fraud": True}, {"client_event_id": "e-1", "is_fraud": False}]}
    status, answer = post(client, "/api/v2/fraud/labels", acme["staff"], labels)
    assert_400_naming(status, answer, "labels")
    assert "client_event_id" in answer["error"]["fields"][0]["reason"]
    assert count("fraud_labels") == 0


def test_the_label_import_reports_every_bad_row_of_both_checks(context: Any, tmp_path: Path) -> None:
    from shared.fraud.ingest import ingest_attendance, ingest_fraud_labels

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(attendance(n, NOW.isoformat())) + "\n" for n in (1, 2)))
    ingest_attendance(context, tenant, events)
    labels = tmp_path / "labels.csv"
    labels.write_text("client_event_id,is_fraud\ne-1,maybe\ne-404,1\ne-2,1\ne-2,0\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_fraud_labels(context, tenant, labels)
    assert [p.field for p in refused.value.fields] == ["line 2", "line 3", "line 5"], refused.value.fields
    assert "e-404" in refused.value.fields[1].reason and "repeats line 4" in refused.value.fields[2].reason
    assert count("fraud_labels", context) == 0
    labels.write_text("client_event_id,is_fraud\ne-1,1\ne-2,0\n")
    assert ingest_fraud_labels(context, tenant, labels) == {"labels": 2}


# -- 5. conflict and fraud predictions refuse what intake refuses ---------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"client_last_sync_at": "2099-01-01T00:00:00Z"}, "client_last_sync_at"),
    ({"client_last_sync_at": (NOW + timedelta(hours=6)).isoformat()}, "client_last_sync_at"),
    ({"client_last_sync_at": "0001-01-01T00:00:00+14:00"}, "client_last_sync_at"),
    ({"fields": ["a", "a"]}, "fields"),
])
def test_a_conflict_prediction_refuses_what_sync_intake_refuses(
    client: Client, tenant_keys: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body = {"domain": "voice", "user_id": "u1", "entity_type": "recording", "entity_id": "r1", "device_id": "d1",
            "fields": ["a", "b"], **change}
    assert_400_naming(*post(client, "/api/v2/predict/conflict", tenant_keys["acme"]["client"], body), field)
    assert count("conflict_predictions") == 0
    fine = {**body, "fields": ["a", "b"], "client_last_sync_at": (NOW - timedelta(hours=1)).isoformat()}
    assert post(client, "/api/v2/predict/conflict", tenant_keys["acme"]["client"], fine)[0] == 200


def test_scoring_an_event_under_a_stored_id_with_other_content_is_409_and_logs_nothing(
    client: Client, tenant_keys: dict[str, Any]
) -> None:
    acme = tenant_keys["acme"]
    event = attendance(1, (NOW - timedelta(hours=1)).isoformat())
    assert post(client, "/api/v2/sites", acme["staff"], SITE)[0] == 200
    assert post(client, "/api/v2/attendance/events", acme["client"], event)[0] == 200
    status, answer = post(client, "/api/v2/predict/fraud", acme["client"], {**event, "latitude": 40.0})
    assert status == 409 and answer["error"]["code"] == "conflict", answer
    assert answer["error"]["fields"][0]["field"] == "client_event_id"
    assert count("fraud_predictions") == 0
    # The same content (its time in another zone) is the stored event: scored like {client_event_id}.
    same = {**event, "occurred_at": (NOW - timedelta(hours=1)).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+05:30").tzinfo).isoformat()}
    status, scored = post(client, "/api/v2/predict/fraud", acme["client"], same)
    assert status == 200 and scored["client_event_id"] == "e-1", scored
    status, by_id = post(client, "/api/v2/predict/fraud", acme["client"], {"client_event_id": "e-1"})
    assert status == 200 and by_id["features"] == scored["features"]
    assert post(client, "/api/v2/predict/fraud", acme["client"], {**event, "client_event_id": "e-new"})[0] == 200


# -- 6. the OCR answer says what answered ---------------------------------------------------------

def test_the_ocr_answer_says_it_is_degraded_when_the_artifact_is_tampered(
    client: Client, tenant_keys: dict[str, Any]
) -> None:
    from shared.context import get_context
    from shared.ocr.kind import OCR_ERROR

    key, context = tenant_keys["acme"]["client"], get_context()
    status, plain = post(client, "/api/v2/ocr/readings", key, reading(1, (NOW - timedelta(days=2)).isoformat()))
    assert status == 200 and plain["degraded"] is True and plain["model_version"] == OCR_ERROR.heuristic_label
    version = context.registry.register(kind=OCR_ERROR.name, tenant_id=None, artifact=b'{"weights": [1]}',
                                        artifact_format="json", manifest={}, actor="test")
    context.registry.activate(version.version_id, actor="test")
    context.object_store.put(version.artifact_key, b'{"weights": [2]}')  # replaced behind the registry's back
    status, answer = post(client, "/api/v2/ocr/readings", key, reading(2, (NOW - timedelta(days=1)).isoformat()))
    assert status == 200 and answer["degraded"] is True and answer["model_version"] == OCR_ERROR.heuristic_label
    assert client.http.get("/health").status_code == 503
    # A replay answers as first answered, its model included.
    assert post(client, "/api/v2/ocr/readings", key, reading(1, (NOW - timedelta(days=2)).isoformat())) == (200, plain)


# -- JSON bodies are typed as JSON ----------------------------------------------------------------

def test_a_string_or_number_where_json_has_a_boolean_number_or_time_is_a_400(
    client: Client, tenant_keys: dict[str, Any],
) -> None:
    """Lax conversion took "51" for a latitude, "1" for a verdict and "yes" for a boolean, and stored them."""
    acme = tenant_keys["acme"]
    status, answer = post(client, "/api/v2/sites", acme["staff"], {**SITE, "latitude": "52.37"})
    assert_400_naming(status, answer, "latitude")
    assert post(client, "/api/v2/sites", acme["staff"], SITE)[0] == 200
    event = attendance(1, NOW.isoformat())
    for field, wrong in (("biometric_verified", "yes"), ("occurred_at", 1700000000), ("latitude", "52.37")):
        status, answer = post(client, "/api/v2/attendance/events", acme["client"], {**event, field: wrong})
        assert_400_naming(status, answer, field)
        status, answer = post(client, "/api/v2/predict/fraud", acme["client"], {**event, field: wrong})
        assert_400_naming(status, answer, field)
    assert count("attendance_events") == 0 and count("fraud_predictions") == 0
    assert post(client, "/api/v2/attendance/events", acme["client"], event)[0] == 200
    status, answer = post(client, "/api/v2/fraud/labels", acme["staff"], {"client_event_id": "e-1", "is_fraud": "1"})
    assert_400_naming(status, answer, "is_fraud")
    assert count("fraud_labels") == 0
    status, answer = post(client, "/api/v2/ocr/readings", acme["client"], {**reading(1, NOW.isoformat()),
                                                                           "confidence": "0.95"})
    assert_400_naming(status, answer, "confidence")
    assert count("ocr_readings") == 0


def test_a_nul_character_anywhere_is_a_400_naming_where_and_stores_nothing(
    client: Client, app_environment: dict[str, str], tenant_keys: dict[str, Any]
) -> None:
    """PostgreSQL's text cannot hold NUL: in a body's value or key, however deep, or in a query
    parameter, it is a 400 naming its place, not the database's error naming no field."""
    from shared.context import get_context

    _, keys = get_context().tenants.create_tenant_with_keys("nul-platform", "Platform", ("operator",))
    operator = keys[0].secret
    status, answer = post(client, "/api/v2/monitoring/silences", operator, {"source": "nul", "reason": "a\u0000b"})
    assert_400_naming(status, answer, "reason")
    utf16 = client.http.post("/api/v2/monitoring/silences", headers=auth(operator),  # JSON in UTF-16 too
                             body=json.dumps({"source": "nul", "reason": "a\u0000b"}).encode("utf-16-le"))
    assert_400_naming(utf16.status_code, json.loads(utf16.body), "reason")
    assert count("monitoring_silences") == 0
    point = {"source": "host-nul", "metric": "cpu", "ts": NOW.isoformat(), "value": 1.0}
    status, answer = post(client, "/api/v2/metrics", operator, {"points": [point, {**point, "metric": "c\u0000pu"}]})
    assert_400_naming(status, answer, "points.1.metric")
    status, answer = post(client, "/api/v2/metrics", operator, {"points": [point], "x\u0000": 1})
    assert_400_naming(status, answer, "x\u0000")
    assert count("metric_series") == 0
    response = client.http.get("/api/v2/monitoring/series?source=%00&metric=x", headers=auth(operator))
    assert_400_naming(response.status_code, json.loads(response.body), "query.source")
    # A backslash before u0000 is text, not NUL: validated as usual.
    status, answer = post(client, "/api/v2/monitoring/silences", operator, {"source": "nul", "reason": "a\\u0000b"})
    assert status == 200 and answer["reason"] == "a\\u0000b", answer


def test_a_rule_over_several_fields_names_the_field_it_is_about(client: Client, tenant_keys: dict[str, Any]) -> None:
    """Checks that involve more than one field name the one to change, never the whole body, and
    store nothing."""
    acme = tenant_keys["acme"]
    event = {"client_event_id": "dup-1", "user_id": "alice", "device_id": "phone-1", "domain": "voice",
             "entity_type": "recording", "entity_id": "rec-1", "fields_changed": ["notes"],
             "received_at": (NOW - timedelta(hours=1)).isoformat(), "conflicted": False, "conflict_fields": []}
    assert_400_naming(*post(client, "/api/v2/events/sync", acme["client"], {"events": [event, event]}), "events")
    assert count("sync_events") == 0
    plate = {**reading(1, NOW.isoformat(), text="AB12CDE", source="gate-1"), "source_type": "license_plate"}
    assert_400_naming(*post(client, "/api/v2/ocr/readings", acme["client"], plate), "unit")
    assert count("ocr_readings") == 0
    assert post(client, "/api/v2/ocr/readings", acme["client"], reading(2, NOW.isoformat()))[0] == 200
    empty = {"source_type": "meter_reading", "source_id": "r-2", "corrected_text": " ", "correction_type": "OCR_ERROR"}
    assert_400_naming(*post(client, "/api/v2/ml-training/corrections", acme["client"], empty), "corrected_text")
    assert post(client, "/api/v2/ocr/readings", acme["client"], {**plate, "client_reading_id": "p-1", "unit": None})[0] == 200
    reset = {"source_type": "license_plate", "source_id": "p-1", "corrected_text": "AB12CDE", "correction_type": "METER_RESET"}
    assert_400_naming(*post(client, "/api/v2/ml-training/corrections", acme["client"], reset), "correction_type")
    assert count("ocr_corrections") == 0
    half_placed = {**attendance(3, NOW.isoformat()), "longitude": None}
    assert_400_naming(*post(client, "/api/v2/attendance/events", acme["client"], half_placed), "longitude")
    assert count("attendance_events") == 0
    for body, field in (({"review_threshold": 0.9, "block_threshold": 0.5}, "review_threshold"),
                        ({"review_threshold": 0.5}, "block_threshold"), ({}, "target_recall"),
                        ({"review_threshold": 0.3, "target_recall": 0.9}, "review_threshold"),
                        ({"review_threshold": 0.3, "block_threshold": 0.6, "target_recall": 0.9}, "review_threshold")):
        response = client.http.put("/api/v2/fraud/operating-point", headers=auth(acme["staff"]),
                                   body=json.dumps(body).encode())
        assert_400_naming(response.status_code, json.loads(response.body), field)
