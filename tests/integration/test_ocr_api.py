"""The OCR loop against PostgreSQL and LocalStack: the routes (chalice.test.Client), the CLI, the
jobs, and the request path without training libraries."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from shared.ocr.demo_data import DemoOcrConfig, corrections_for, generate_ocr_history
from tests.conftest import auth

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def client(app_environment: dict[str, str]) -> Iterator[Client]:
    from app import app

    with Client(app, stage_name="local") as test_client:
        yield test_client


def reading(n: int, text: str, days_ago: float, confidence: float = 0.95, **overrides: Any) -> dict[str, Any]:
    return {"client_reading_id": f"r-{n}", "source_type": "meter_reading", "source_id": "meter-1", "ocr_text": text,
            "confidence": confidence, "captured_at": (NOW - timedelta(days=days_ago)).isoformat(), "unit": "kWh",
            "image_key": f"photos/r-{n}.jpg", **overrides}


def post(client: Client, path: str, key: str, body: Any) -> tuple[int, Any]:
    response = client.http.post(path, headers=auth(key), body=json.dumps(body).encode())
    return response.status_code, json.loads(response.body)


def count(table: str) -> int:
    from shared.context import get_context

    with get_context().database.transaction() as tx:
        return int(tx.fetch_value(f"SELECT count(*) FROM {table}"))


def mlstack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env})


def test_readings_are_assessed_stored_once_and_logged(client: Client, tenant_keys: dict[str, Any]) -> None:
    key = tenant_keys["acme"]["client"]
    history = {"readings": [reading(i, f"{1000 + 10 * i:07.1f}", 20 - i) for i in range(10)]}
    status, first = post(client, "/api/v2/ocr/readings", key, history)
    assert status == 200 and len(first["readings"]) == 10
    assert post(client, "/api/v2/ocr/readings", key, history) == (200, first)  # a replay
    assert count("ocr_readings") == 10 and count("ocr_predictions") == 10
    status, wrong = post(client, "/api/v2/ocr/readings", key, reading(10, "0109.0", 10, confidence=0.97))
    assert status == 200 and set(wrong) == {"reading_id", "normalized", "error_probability", "captured", "reasons",
                                            "model_version", "degraded"}
    assert wrong["captured"] and "below_previous_reading" in wrong["reasons"] and wrong["normalized"] == "0109.0"
    status, body = post(client, "/api/v2/ocr/readings", key, reading(10, "0109.5", 10))
    assert status == 409 and body["error"]["code"] == "conflict"
    status, other = post(client, "/api/v2/ocr/readings", tenant_keys["globex"]["client"], reading(10, "0109.0", 10))
    assert status == 200 and other["reading_id"] != wrong["reading_id"] and other["reasons"] == []


@pytest.mark.parametrize(("body", "field"), [
    (reading(1, "01000.0", 1, confidence=1.5), "confidence"),
    (reading(1, "01000.0", 1, source_type="water"), "source_type"),
    (reading(1, "01000.0", 1, captured_at="2026-11-01T10:00:00"), "captured_at"),
    ({"readings": [reading(1, "1", 1), reading(2, "2", 1, unit="litres")]}, "readings.1.unit"),
    ({"readings": [reading(1, "1", 1), reading(1, "1", 1)]}, "readings"),
    ({"readings": []}, "readings"),
    ({k: v for k, v in reading(1, "1", 1).items() if k != "client_reading_id"}, "client_reading_id"),
])
def test_a_bad_reading_is_400_naming_the_field_and_stores_nothing(
    client: Client, tenant_keys: dict[str, Any], body: Any, field: str
) -> None:
    status, answer = post(client, "/api/v2/ocr/readings", tenant_keys["acme"]["client"], body)
    assert status == 400, answer
    assert any(f["field"].startswith(field) for f in answer["error"]["fields"]), answer
    assert count("ocr_readings") == 0


def test_corrections_in_the_seeds_shape_same_id_twice_and_404_across_tenants(
    client: Client, tenant_keys: dict[str, Any]
) -> None:
    key = tenant_keys["acme"]["client"]
    _, stored = post(client, "/api/v2/ocr/readings", key, reading(1, "0B942.5", 1, confidence=0.6))
    body = {"source_type": "meter_reading", "source_id": stored["reading_id"], "corrected_text": "08942.5",
            "correction_type": "OCR_ERROR"}
    status, first = post(client, "/api/v2/ml-training/corrections/", key, body)
    assert status == 200 and first["status"] == "success" and first["character_error_rate"] == pytest.approx(1 / 7, abs=1e-6)
    again = post(client, "/api/v2/ml-training/corrections/", tenant_keys["acme"]["staff"], {**body, "source_id": "r-1"})
    assert again[0] == 200 and again[1]["correction_id"] == first["correction_id"]
    status, missing = post(client, "/api/v2/ml-training/corrections/", tenant_keys["globex"]["client"], body)
    assert status == 404 and missing["error"]["code"] == "not_found"
    status, bad = post(client, "/api/v2/ml-training/corrections", key, {**body, "correction_type": "typo"})
    assert status == 400 and bad["error"]["fields"][0]["field"] == "correction_type"
    assert count("ocr_corrections") == 1


def test_staff_see_metrics_and_clients_do_not(client: Client, tenant_keys: dict[str, Any]) -> None:
    key = tenant_keys["acme"]["client"]
    post(client, "/api/v2/ocr/readings", key, {"readings": [reading(i, f"{1000 + i:07.1f}", 12 + i / 10,
                                                                    confidence=0.5 + i / 40) for i in range(20)]})
    post(client, "/api/v2/ml-training/corrections", key, {"source_type": "meter_reading", "source_id": "r-3",
                                                         "corrected_text": "01004.0", "correction_type": "OCR_ERROR"})
    assert client.http.get("/api/v2/ocr/metrics", headers=auth(key)).status_code == 403
    response = client.http.get("/api/v2/ocr/metrics?target_share=0.9", headers=auth(tenant_keys["acme"]["staff"]))
    metrics = json.loads(response.body)
    assert response.status_code == 200 and sum(d["readings"] for d in metrics["capture_rate_per_day"]) == 20
    assert metrics["corrections_per_week"][-1] == {"week": metrics["corrections_per_week"][-1]["week"],
                                                   "corrections": 1, "errors": 1}
    assert sum(b["readings"] for b in metrics["quality_by_confidence"]) == 20
    assert metrics["threshold"]["target_share"] == 0.9 and metrics["threshold"]["errors"] == 1
    bad = client.http.get("/api/v2/ocr/metrics?target_share=2", headers=auth(tenant_keys["acme"]["staff"]))
    assert bad.status_code == 400


def _demo_files(tmp_path: Path, tenant: str) -> tuple[Path, Path, list[Any]]:
    end = NOW
    history = generate_ocr_history(replace(DemoOcrConfig(), tenant=tenant, meters=30, gates=2,
                                           plate_reads_per_gate_per_day=30, days=70, end=end))
    cut = (end - timedelta(days=3)).isoformat()
    past = [r for r in history if r.record["captured_at"] < cut]
    readings = tmp_path / "history.ndjson"
    readings.write_text("".join(json.dumps(r.record) + "\n" for r in past))
    corrections = tmp_path / "corrections.csv"
    with corrections.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["client_reading_id", "corrected_text", "correction_type"])
        writer.writeheader()
        writer.writerows(corrections_for(past))
    return readings, corrections, [r for r in history if r.record["captured_at"] >= cut]


def test_cli_ingest_train_triage_equals_the_api_then_jobs(
    client: Client, tenant_keys: dict[str, Any], app_environment: dict[str, str], tmp_path: Path
) -> None:
    from shared.context import get_context

    history, corrections, recent = _demo_files(tmp_path, "acme")
    result = mlstack(app_environment, "ingest", "ocr-readings", "--tenant", "acme", str(history))
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["stored"]
    assert json.loads(mlstack(app_environment, "ingest", "ocr-readings", "--tenant", "acme", str(history)).stdout)[
        "already_present"] == stored
    result = mlstack(app_environment, "ingest", "corrections", "--tenant", "acme", str(corrections))
    assert result.returncode == 0 and json.loads(result.stdout)["errors"] > 30, result.stderr
    # The gates' kept plate counts agree with the imported history and its corrections.
    checked = mlstack(app_environment, "ocr", "plate-counts", "--tenant", "acme")
    assert checked.returncode == 0 and json.loads(checked.stdout)["differences"] == 0, checked.stdout + checked.stderr
    trained = mlstack(app_environment, "train", "ocr", "--activate")
    assert trained.returncode == 0 and json.loads(trained.stdout)["status"] == "active", trained.stderr
    trained_label = json.loads(trained.stdout)["label"]
    assert mlstack(app_environment, "ocr", "settings", "--tenant", "acme", "--daily-budget", "8").returncode == 0

    recent = recent[:150]
    source, target = tmp_path / "recent.ndjson", tmp_path / "triage.csv"
    source.write_text("".join(json.dumps(r.record) + "\n" for r in recent))
    result = mlstack(app_environment, "ocr", "triage", "--tenant", "acme", "--input", str(source),
                     "--output", str(target))
    assert result.returncode == 0 and json.loads(result.stdout)["degraded"] is False, result.stderr
    with target.open() as handle:
        triaged = {row["client_reading_id"]: row for row in csv.DictReader(handle)}
    key = tenant_keys["acme"]["client"]
    for item in sorted(recent, key=lambda r: r.record["captured_at"]):  # the API, one by one as they arrive
        status, live = post(client, "/api/v2/ocr/readings", key, item.record)
        row = triaged[item.record["client_reading_id"]]
        assert status == 200 and f"{live['error_probability']:.6f}" == row["error_probability"]
        assert (live["model_version"], live["degraded"]) == (trained_label, False)
        assert (live["captured"], ";".join(live["reasons"])) == (row["captured"] == "true", row["reasons"])

    selected = mlstack(app_environment, "ocr", "select-batch", "--tenant", "acme", "--size", "10")
    batch = json.loads(selected.stdout)
    assert selected.returncode == 0 and batch["selected"] == 10, selected.stderr
    manifest = get_context().object_store.get(batch["manifest_key"]).decode().splitlines()
    assert len(manifest) == 10 and all(json.loads(line)["source-ref"].startswith("s3://") for line in manifest)
    job = json.loads(mlstack(app_environment, "run-job", "select-ocr-labels").stdout)["batches"]
    later = get_context().object_store.get(job[0]["manifest_key"]).decode().splitlines()
    assert {json.loads(x)["reading-id"] for x in manifest}.isdisjoint(json.loads(x)["reading-id"] for x in later)
    tracked = json.loads(mlstack(app_environment, "run-job", "track-ocr-outcomes").stdout)
    assert tracked["labelled"] == 0  # nothing is a week old or corrected yet
    retrained = json.loads(mlstack(app_environment, "run-job", "retrain-ocr").stdout)
    assert set(retrained) >= {"global", tenant_keys["acme"]["tenant_id"]}


def test_outcomes_label_corrected_scores_and_compute_live_metrics(
    client: Client, tenant_keys: dict[str, Any]
) -> None:
    from shared.context import get_context
    from shared.ocr.retraining import track_ocr_outcomes
    from shared.ocr.services import ocr_services

    key = tenant_keys["acme"]["client"]
    readings = [reading(i, f"{1000 + 10 * i:07.1f}", 30 - i, confidence=0.4 + i / 50) for i in range(24)]
    _, answers = post(client, "/api/v2/ocr/readings", key, {"readings": readings})
    for i in range(0, 24, 3):
        post(client, "/api/v2/ml-training/corrections", key, {"source_type": "meter_reading", "source_id": f"r-{i}",
                                                             "corrected_text": "0", "correction_type": "OCR_ERROR"})
    tracked = track_ocr_outcomes(ocr_services(get_context()))
    assert tracked["labelled"] == 8  # the corrected ones; the rest wait a week
    later = track_ocr_outcomes(ocr_services(get_context()), now=datetime.now(UTC) + timedelta(days=8))
    assert later["labelled"] == 16 and {m["positives"] for m in later["metrics"]} == {8}
    assert later["metrics"][0]["roc_auc"] is not None


def test_the_ocr_route_never_imports_training_libraries(
    app_environment: dict[str, str], tenant_keys: dict[str, Any], tmp_path: Path
) -> None:
    from shared.context import get_context
    from shared.ocr.ingest import ingest_corrections, ingest_readings
    from shared.ocr.retraining import train_ocr
    from shared.ocr.services import ocr_services

    services = ocr_services(get_context())
    tenant_id = tenant_keys["acme"]["tenant_id"]
    history, corrections, _ = _demo_files(tmp_path, "acme")
    ingest_readings(services, tenant_id, history)
    ingest_corrections(services, tenant_id, corrections)
    trained = train_ocr(services, end=NOW)
    assert trained.version is not None
    get_context().registry.activate(trained.version.version_id, actor="test")
    probe = f"""
import json, sys
from chalice.test import Client
from app import app
with Client(app) as c:
    r = c.http.post('/api/v2/ocr/readings', headers={{'Authorization': 'Bearer {tenant_keys['acme']['client']}'}},
                    body=json.dumps({json.dumps(reading(999, '01000.0', 0))}).encode())
    assert r.status_code == 200, r.body
print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'pandas', 'scipy')))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, **app_environment},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
    with get_context().database.transaction() as tx:
        assert tx.fetch_value("SELECT model_label FROM ocr_predictions") == trained.version.label


def test_the_demo_seeds_an_ocr_history_and_a_model_once(context: Any) -> None:
    from shared.demo import seed_ocr_demo
    from shared.ocr.kind import OCR_ERROR

    tenant = context.tenants.create_tenant("demo", "Demo")
    lines: list[str] = []
    seed_ocr_demo(context, tenant.tenant_id, lines, days=40)
    assert context.registry.active_version(OCR_ERROR.name, None) is not None, lines
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM ocr_corrections WHERE is_error") > 30
        assert tx.fetch_value("SELECT count(*) FROM ocr_readings WHERE client_reading_id = 'demo-m0-3'") == 1
    seed_ocr_demo(context, tenant.tenant_id, lines, days=40)
    assert "skipped" in lines[-1]


def test_imported_corrections_keep_their_corrected_at_in_postgresql(
    app_environment: dict[str, str], tenant_keys: dict[str, Any]
) -> None:
    from shared.context import get_context
    from shared.ocr.ingest import store_corrections, store_history
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services

    services = ocr_services(get_context())
    tenant = tenant_keys["acme"]["tenant_id"]
    end = datetime.now(UTC).replace(microsecond=0)
    history = generate_ocr_history(replace(DemoOcrConfig(), tenant="acme", meters=5, gates=0, days=20, end=end))
    store_history(services, tenant, [(n, OcrReading.model_validate(r.record)) for n, r in enumerate(history)])
    rows = corrections_for(history, until=end)
    rows.append({**rows[0], "correction_type": "CONFIRMED", "corrected_at": ""})  # blank: the import's time
    store_corrections(services, tenant, list(enumerate(rows)))
    with get_context().database.transaction() as tx:
        stored = tx.fetch_all("SELECT r.client_reading_id, c.correction_type, c.created_at FROM ocr_corrections c"
                              " JOIN ocr_readings r USING (reading_id) WHERE c.tenant_id = CAST(:t AS uuid)", t=tenant)
    times = {(s["client_reading_id"], s["correction_type"]): s["created_at"] for s in stored}
    for row in rows[:-1]:
        assert times[(row["client_reading_id"], row["correction_type"])] == datetime.fromisoformat(row["corrected_at"])
    assert times[(rows[0]["client_reading_id"], "CONFIRMED")] >= end  # stamped at the import


def test_a_meters_history_read_is_bounded_and_assesses_as_the_whole_history_does(context: Any) -> None:
    """A call reads each meter's readings in its span and only the latest few before it, however
    long the meter's history; every reading of the span sees the same history as with the whole
    read: past unreadable readings (read again whole when the latest rows hold too few values),
    up to a recorded reset, and a corrected value."""
    from shared.adapters.db import Transaction
    from shared.ocr.ingest import store_corrections, store_history
    from shared.ocr.plausibility import METER_HISTORY, HistoryIndex
    from shared.ocr.readings import OcrReading
    from shared.ocr.readings_repository import METER_ROWS_BEFORE, PostgresReadingRepository
    from shared.ocr.services import ocr_services
    from shared.platform.time_range import EARLIEST_TIME

    tenant = context.tenants.create_tenant("meters-long", "Meters").tenant_id
    services = ocr_services(context)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

    def history(meter: str, texts: list[str]) -> list[OcrReading]:
        return [OcrReading(client_reading_id=f"{meter}-{k}", source_type="meter_reading", source_id=meter,
                           ocr_text=text, confidence=0.9, unit="kWh", captured_at=start - timedelta(hours=len(texts) - k))
                for k, text in enumerate(texts)]

    readings = (history("long", [f"{1000 + 5 * k:07d}.0" for k in range(300)])
                + history("unreadable", [f"{2000 + 5 * k:07d}.0" for k in range(30)] + ["????"] * 30)
                + history("replaced", [f"{3000 + 5 * k:07d}.0" for k in range(40)])
                + history("span", [f"{4000 + 5 * k:07d}.0" for k in range(40)])
                + [OcrReading(client_reading_id=f"span-in-{k}", source_type="meter_reading", source_id="span",
                              ocr_text=f"{4300 + 5 * k:07d}.0", confidence=0.9, unit="kWh",
                              captured_at=start + timedelta(minutes=10 * k)) for k in range(20)]
                # Two readings at one time, the later id stored first, just before the span.
                + [OcrReading(client_reading_id=f"tie-{k}", source_type="meter_reading", source_id="tied",
                              ocr_text=f"{5000 + ord(k):07d}.0", confidence=0.9, unit="kWh",
                              captured_at=start - timedelta(minutes=30)) for k in "ba"]
                + history("tied", [f"{4900 + 5 * k:07d}.0" for k in range(30)]))
    store_history(services, tenant, list(enumerate(readings)))
    store_corrections(services, tenant, [
        (1, {"client_reading_id": "replaced-35", "corrected_text": "0000003.0", "correction_type": "METER_REPLACED"}),
        (2, {"client_reading_id": "long-299", "corrected_text": "0002494.0", "correction_type": "OCR_ERROR"})])
    meters = [(tenant, m) for m in ("long", "unreadable", "replaced", "span", "tied")]
    end = start + timedelta(hours=4)

    def read(tx: Transaction, since: datetime) -> Any:
        return PostgresReadingRepository().history(tx, tenant, [("meter_reading", m) for _, m in meters], since, end)

    with context.database.transaction() as tx:
        bounded, whole = read(tx, start), read(tx, EARLIEST_TIME)  # from the earliest time: every reading in the span
    assert sum(e.at < start for e in bounded.meters[(tenant, "long")]) == METER_ROWS_BEFORE  # not 300
    assert sum(e.at < start for e in bounded.meters[(tenant, "unreadable")]) == 60  # read again, whole
    for key in meters:
        for at in (start, start + timedelta(minutes=95), end - timedelta(microseconds=1)):
            seen = HistoryIndex(bounded).meter_before(key, at)
            assert seen == HistoryIndex(whole).meter_before(key, at), (key, at)
    unreadable, replaced = (HistoryIndex(bounded).meter_before(key, start) for key in meters[1:3])
    assert len(unreadable) == METER_HISTORY and unreadable[-1].client_reading_id == "unreadable-29"
    assert [e.client_reading_id for e in replaced][0] == "replaced-35"  # back to the reset, no further
    assert HistoryIndex(bounded).meter_before((tenant, "long"), start)[-1].value.value == 2494.0  # type: ignore[union-attr]
    # Tied readings come in client-id order, whichever was stored or read first.
    assert [e.client_reading_id for e in HistoryIndex(bounded).meter_before((tenant, "tied"), start)][-2:] == [
        "tie-a", "tie-b"]


def test_readings_with_non_ascii_ids_are_replayed_and_have_history(context: Any) -> None:
    """Ids may hold letters beyond ASCII: a replay of such a reading is found (answered as
    stored, not stored twice), and such a meter's stored readings are its history."""
    from shared.ocr.ingest import store_corrections, store_history
    from shared.ocr.intake import take_readings
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services

    tenant = context.tenants.create_tenant("zaehler", "Zähler").tenant_id
    services = ocr_services(context)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    store_history(services, tenant, list(enumerate(
        OcrReading(client_reading_id=f"stand-{k}", source_type="meter_reading", source_id="zähler-1",
                   ocr_text=f"{1000 + 10 * k:07d}.0", confidence=0.9, unit="kWh", captured_at=at - timedelta(days=10 - k))
        for k in range(10))))
    reading = OcrReading(client_reading_id="ablesung-ä", source_type="meter_reading", source_id="zähler-1",
                         ocr_text="0000900.0", confidence=0.9, unit="kWh", captured_at=at)
    first = take_readings(services, tenant, [reading], "r1")[0]
    assert "below_previous_reading" in first["reasons"]  # the meter's history was read
    assert take_readings(services, tenant, [reading], "r2")[0] == first  # the replay was found
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM ocr_readings WHERE client_reading_id = 'ablesung-ä'") == 1
    # A correction imported by that id finds its reading.
    stored = store_corrections(services, tenant, [(2, {"client_reading_id": "ablesung-ä", "corrected_text": "0001100.0",
                                                        "correction_type": "MANUAL"})])
    assert stored["stored"] == 1


def test_an_import_that_repeats_a_correction_reports_it_stored_once(context: Any) -> None:
    """A file with the same correction on three lines stores one, and says so."""
    from shared.ocr.ingest import store_corrections, store_history
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services

    tenant = context.tenants.create_tenant("repeats", "Repeats").tenant_id
    services = ocr_services(context)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    store_history(services, tenant, [(1, OcrReading(
        client_reading_id="gate-read-1", source_type="license_plate", source_id="gate-1", ocr_text="AB12CDF",
        confidence=0.6, captured_at=at))])
    row = {"client_reading_id": "gate-read-1", "corrected_text": "AB12CDE", "correction_type": "OCR_ERROR"}
    first = store_corrections(services, tenant, [(2, row), (3, row), (4, row)])
    assert (first["rows"], first["stored"], first["already_present"]) == (3, 1, 2)
    assert store_corrections(services, tenant, [(2, row)])["already_present"] == 1
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM ocr_corrections WHERE tenant_id = CAST(:t AS uuid)", t=tenant) == 1
