"""The OCR loop on its in-memory fakes: normalisation, plausibility on hand-made histories, a meter
reset, corrections, capture within the budget, the labelling manifest, triage = the API path, and
the error model through the shared lifecycle."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.errors import Conflict, InvalidInput, NotFound
from shared.ocr.corrections import record_correction
from shared.ocr.demo_data import DemoOcrConfig, corrections_for, generate_ocr_history
from shared.ocr.ingest import ingest_corrections, ingest_readings, store_corrections, store_history
from shared.ocr.intake import take_readings
from shared.ocr.kind import OCR_ERROR
from shared.ocr.labelling import select_batch, select_batches_for_all
from shared.ocr.normalise import (
    canonical_plate,
    character_error_rate,
    confusion_repairs,
    parse_meter,
    plate_countries,
    within_one_edit,
)
from shared.ocr.quality import ocr_metrics
from shared.ocr.readings import CorrectionRequest, OcrReading
from shared.ocr.readings_repository import OcrSettings
from shared.ocr.retraining import retrain_ocr, track_ocr_outcomes
from shared.ocr.services import OcrServices, in_memory_ocr_services
from shared.ocr.settings import change_settings
from shared.ocr.triage import triage_file

T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
START = datetime(2026, 10, 1, 8, tzinfo=UTC)


def meter(n: int, text: str, day: float, confidence: float = 0.95, meter_id: str = "m-1") -> OcrReading:
    return OcrReading(client_reading_id=f"{meter_id}-{n}", source_type="meter_reading", source_id=meter_id,
                      ocr_text=text, confidence=confidence, captured_at=START + timedelta(days=day), unit="kWh",
                      image_key=f"photos/{meter_id}-{n}.jpg")


def plate(n: int, text: str, hours: float, confidence: float = 0.95, gate: str = "gate-1") -> OcrReading:
    return OcrReading(client_reading_id=f"{gate}-{n}", source_type="license_plate", source_id=gate, ocr_text=text,
                      confidence=confidence, captured_at=START + timedelta(hours=hours))


def steady_meter(days: int = 10, per_day: float = 10.0) -> list[OcrReading]:
    return [meter(i, f"{1000 + per_day * i:07.1f}", i) for i in range(days)]


@pytest.fixture
def services() -> OcrServices:
    return in_memory_ocr_services()


def answer(services: OcrServices, reading: OcrReading, tenant: str = T1) -> dict[str, Any]:
    return take_readings(services, tenant, [reading], "req")[0]


# -- normalisation ------------------------------------------------------------------------------


def test_meter_text_reads_as_number_and_unit() -> None:
    value = parse_meter("08942,5 kWh")
    assert value is not None and (value.value, value.unit, value.integer_digits, value.decimals) == (8942.5, "kWh", 5, 1)
    repaired = parse_meter("O8942.5")
    assert repaired is not None and repaired.value == 8942.5 and repaired.repaired
    assert parse_meter("08-942") is None and parse_meter("") is None


def test_plate_canonical_form_formats_and_confusions() -> None:
    assert canonical_plate(" ab12 cde ") == "AB12CDE"
    assert plate_countries("AB12CDE", ("GB", "FR")) == ["GB"]
    assert plate_countries("AB123CD", ("GB",)) == []
    assert "AB12CDE" in confusion_repairs("AB1ZCDE", ("GB",))  # 2 read as Z
    assert within_one_edit("AB12CDE", "AB21CDE") and within_one_edit("AB12CDE", "AB12CD")
    assert not within_one_edit("AB12CDE", "AB34CDE")
    assert character_error_rate("license_plate", "AB1ZCDE", "AB12 CDE") == pytest.approx(1 / 7, abs=1e-6)


# -- plausibility on hand-made histories --------------------------------------------------------


def test_a_steady_meter_reading_is_plausible_and_follows_the_seed_rule(services: OcrServices) -> None:
    store_history(services, T1, list(enumerate(steady_meter())))
    fine = answer(services, meter(10, "01100.0", 10))
    assert fine["reasons"] == [] and fine["error_probability"] == pytest.approx(0.05, abs=1e-6)
    assert fine["captured"] is False and fine["normalized"] == "01100.0"
    unsure = answer(services, meter(11, "01110.0", 11, confidence=0.65))
    assert unsure["captured"] is True and unsure["reasons"] == ["low_confidence"]  # the seed's rule


@pytest.mark.parametrize(("text", "reason"), [
    ("0109.0", "below_previous_reading"),  # dropped digit
    ("011000.0", "digit_count_changed"),  # doubled digit
    ("1100.00", "digit_count_changed"),  # moved decimal point
    ("01900.0", "consumption_outlier"),  # 8 for 1: eighty days of consumption in one
    ("0B100.0", "letters_read_as_digits"),
])
def test_confident_mistakes_on_a_meter_are_caught(services: OcrServices, text: str, reason: str) -> None:
    store_history(services, T1, list(enumerate(steady_meter())))
    result = answer(services, meter(10, text, 10, confidence=0.97))
    assert reason in result["reasons"] and result["captured"] is True, result
    assert result["error_probability"] > 0.3


def test_a_real_consumption_spike_is_not_an_outlier(services: OcrServices) -> None:
    store_history(services, T1, list(enumerate(steady_meter())))
    result = answer(services, meter(10, "01125.0", 10))  # 2.5x a usual day
    assert "consumption_outlier" not in result["reasons"] and not result["captured"]


def test_a_recorded_meter_reset_is_not_an_error(services: OcrServices) -> None:
    store_history(services, T1, list(enumerate(steady_meter())))
    replaced = answer(services, meter(10, "00003.0", 10))
    assert "below_previous_reading" in replaced["reasons"]  # before anyone says it was replaced
    recorded = record_correction(services, T1, CorrectionRequest(
        source_type="meter_reading", source_id="m-1-10", corrected_text="00003.0", correction_type="METER_REPLACED"))
    assert recorded["is_error"] is False and recorded["character_error_rate"] == 0
    after = answer(services, meter(11, "00013.0", 11))
    assert after["reasons"] == [] and not after["captured"]
    assert services.training.training_set(T1, START - timedelta(days=1), START + timedelta(days=30)).positives == 0


def test_plates_fitting_no_format_or_one_edit_from_a_regular_are_caught(services: OcrServices) -> None:
    regulars = [plate(i, "AB12 CDE", i) for i in range(5)] + [plate(10 + i, "XY34 ZZA", 10 + i) for i in range(2)]
    store_history(services, T1, list(enumerate(regulars)))
    known = answer(services, plate(20, "AB12CDE", 30))
    near = answer(services, plate(21, "AB12CDF", 31))
    visitor = answer(services, plate(22, "KL55 MNO", 32))
    misread = answer(services, plate(23, "AB1Z CDE", 33))
    assert known["reasons"] == [] and visitor["reasons"] == []
    assert near["reasons"] == ["one_edit_from_frequent_plate"] and near["captured"]
    assert {"plate_fits_no_format", "confusable_characters"} <= set(misread["reasons"]) and misread["captured"]
    assert known["error_probability"] < visitor["error_probability"] + 1e-9


def test_plate_countries_are_the_tenants(services: OcrServices) -> None:
    assert "plate_fits_no_format" not in answer(services, plate(1, "AB-123-CD", 1))["reasons"]  # FR by default
    change_settings(services, T1, countries="GB")
    assert "plate_fits_no_format" in answer(services, plate(2, "AB-123-CE", 2))["reasons"]
    change_settings(services, T1, countries="FR")
    assert "plate_fits_no_format" not in answer(services, plate(3, "AB-123-CF", 3))["reasons"]
    with pytest.raises(InvalidInput):
        change_settings(services, T1, countries="XX")


def test_settings_refuse_each_bad_value_naming_it_and_keep_each_country_once(services: OcrServices) -> None:
    """A threshold that is no number, a budget past the column's integer, a bad budget beside a good
    threshold: each a refusal naming its own setting, nothing changed. Countries are a set."""
    before = change_settings(services, T1)
    for change, field, reason in (({"threshold": "abc"}, "threshold", "not a number"),
                                  ({"threshold": "nan"}, "threshold", "must be from 0 to 1"),
                                  ({"daily_budget": "99999999999999999999"}, "daily_budget", "must be from 0 to"),
                                  ({"threshold": "0.5", "daily_budget": "-1"}, "daily_budget", "must be from 0 to"),
                                  ({"threshold": "0.5", "daily_budget": "lots"}, "daily_budget", "not a whole number"),
                                  ({"countries": ""}, "countries", "no country named"),  # blank: no reset
                                  ({"countries": " , "}, "countries", "no country named"),
                                  ({"threshold": ""}, "threshold", "not a number")):
        with pytest.raises(InvalidInput) as refused:
            change_settings(services, T1, **change)
        assert refused.value.fields[0].field == field and refused.value.fields[0].reason.startswith(reason), change
    assert change_settings(services, T1) == before
    assert change_settings(services, T1, countries="gb, FR,GB")["plate_countries"] == ["GB", "FR"]


# -- intake, replays, budget --------------------------------------------------------------------


def test_a_replayed_reading_gets_the_stored_answer_and_a_changed_one_is_refused(services: OcrServices) -> None:
    first = answer(services, meter(1, "01000.0", 0))
    assert answer(services, meter(1, "01000.0", 0)) == first
    assert len(services.log.rows) == 1  # type: ignore[attr-defined]
    with pytest.raises(Conflict):
        take_readings(services, T1, [meter(2, "01010.0", 1), meter(1, "01000.5", 0)], "req")
    assert answer(services, meter(1, "01000.0", 0), tenant=T2)["reading_id"] != first["reading_id"]


def test_the_daily_budget_caps_captures(services: OcrServices) -> None:
    change_settings(services, T1, daily_budget="2")
    answers = take_readings(services, T1, [meter(i, "0x", i / 24, confidence=0.2, meter_id=f"m{i}")
                                           for i in range(5)], "req")
    assert [a["captured"] for a in answers] == [True, True, False, False, False]
    assert all(a["error_probability"] > 0.9 for a in answers)
    change_settings(services, T1, daily_budget="none", threshold="0.99")
    assert not answer(services, meter(9, "01000.0", 2, confidence=0.2))["captured"]


def test_a_budgeted_call_takes_the_capture_lock_after_scoring_and_counts_under_it(
        services: OcrServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tenant's capture lock serialises its calls while a budget is set: it is taken after the
    scoring (history read, model), not before, and the day's captures are counted under it."""
    change_settings(services, T1, daily_budget="5")
    order: list[str] = []
    for name in ("history", "lock_captures", "captured_per_day", "insert"):
        method = getattr(services.readings, name)
        monkeypatch.setattr(services.readings, name,
                            lambda *args, _name=name, _method=method, **kwargs: order.append(_name) or _method(*args, **kwargs))
    take_readings(services, T1, [meter(1, "0x", 0, confidence=0.2)], "req")
    assert order == ["history", "lock_captures", "captured_per_day", "insert"]
    order.clear()
    change_settings(services, T1, daily_budget="none")
    take_readings(services, T1, [meter(2, "0x", 1, confidence=0.2)], "req")
    assert order == ["history", "insert"]  # no budget: no lock, no count


# -- corrections ---------------------------------------------------------------------------------


def test_the_same_correction_twice_gets_the_same_id_and_another_tenant_gets_404(services: OcrServices) -> None:
    reading = answer(services, meter(1, "0B942.5", 0, confidence=0.6))
    request = CorrectionRequest(source_type="meter_reading", source_id=reading["reading_id"],
                                corrected_text="08942.5", correction_type="OCR_ERROR")
    first, again = record_correction(services, T1, request), record_correction(services, T1, request)
    assert first["correction_id"] == again["correction_id"] and first["status"] == again["status"] == "success"
    assert first["character_error_rate"] == pytest.approx(1 / 7, abs=1e-6) and first["is_error"]
    by_client_id = record_correction(services, T1, request.model_copy(update={"source_id": "m-1-1"}))
    assert by_client_id["correction_id"] == first["correction_id"]
    with pytest.raises(NotFound):
        record_correction(services, T2, request)
    with pytest.raises(NotFound):
        record_correction(services, T1, request.model_copy(update={"source_type": "license_plate"}))


def test_corrections_csv_is_one_transaction_reporting_bad_lines(services: OcrServices, tmp_path: Path) -> None:
    store_history(services, T1, list(enumerate(steady_meter(3))))
    good = tmp_path / "good.csv"
    good.write_text("client_reading_id,corrected_text,correction_type\nm-1-1,01010.0,CONFIRMED\nm-1-2,01021.0,OCR_ERROR\n")
    assert ingest_corrections(services, T1, good) == {"rows": 2, "stored": 2, "already_present": 0, "errors": 1}
    assert ingest_corrections(services, T1, good)["already_present"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("client_reading_id,corrected_text,correction_type\nm-1-0,01000.0,OCR_ERROR\nnope,1,OCR_ERROR\n"
                   "m-1-0,1,bad type\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_corrections(services, T1, bad)
    assert [f.field for f in refused.value.fields] == ["line 3", "line 4"]
    # Each bad line says what is wrong with it, not where pydantic's documentation is.
    assert refused.value.fields[1].reason.startswith("correction_type: "), refused.value.fields[1]
    empty = tmp_path / "empty.csv"
    empty.write_text("client_reading_id,corrected_text,correction_type\nm-1-0,,OCR_ERROR\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_corrections(services, T1, empty)
    assert "errors.pydantic.dev" not in refused.value.fields[0].reason and "corrected_text" in refused.value.fields[0].reason
    assert len(services.corrections.memory.corrections) == 2  # type: ignore[attr-defined]


def test_readings_file_reports_bad_lines_and_stores_nothing(services: OcrServices, tmp_path: Path) -> None:
    rows = [json.dumps(r.model_dump(mode="json")) for r in steady_meter(3)]
    path = tmp_path / "r.ndjson"
    path.write_text("\n".join([rows[0], "{oops", rows[1], rows[1], '{"client_reading_id": "x"}']) + "\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_readings(services, T1, path)
    assert [f.field for f in refused.value.fields] == ["line 2", "line 4", "line 5"]
    assert not services.readings.memory.readings  # type: ignore[attr-defined]
    csv_path = tmp_path / "r.csv"
    csv_path.write_text("client_reading_id,source_type,source_id,ocr_text,confidence,captured_at,unit,image_key\n"
                        "a,meter_reading,m,01000.0,0.9,2026-10-01T00:00:00+00:00,kWh,\n"
                        "b,license_plate,g,AB12CDE,0.8,2026-10-01T00:00:00+00:00,,p.jpg\n")
    assert ingest_readings(services, T1, csv_path) == {"rows": 2, "stored": 2, "already_present": 0}
    assert ingest_readings(services, T1, csv_path)["already_present"] == 2


# -- labelling -----------------------------------------------------------------------------------


def test_a_photo_key_never_reaches_outside_the_tenants_own_area(services: OcrServices) -> None:
    """A key that steps out of its folder is refused at intake (percent-encoded too); a key is in
    the tenant's own photo area; a URI into the service's own store outside that area (another
    tenant's objects, the tenant's own models and manifests, however the URI is written) is not
    handed to the labellers, who see the text; a URI elsewhere (the client's own storage) is as given."""
    from pydantic import ValidationError

    from shared.ocr.photo_keys import photo_uri

    for key in ("../../../../etc/passwd", "photos/../../x.jpg", "a/./b.jpg", "s3://bucket/a/../b.jpg",
                "photos\\..\\x.jpg", "%2e%2e/%2e%2e/global/m.bin", "../../../global/m.bin#://"):
        with pytest.raises(ValidationError, match="image_key"):
            OcrReading.model_validate({**meter(1, "01000.0", 1).model_dump(), "image_key": key})
    store = "s3://demo-bucket/store"
    area = f"{store}/tenants/{T1}/ocr/photos"
    assert photo_uri(store, T1, "photos/a.jpg") == f"{area}/photos/a.jpg"
    assert photo_uri(store, T1, "/photos/a.jpg") == f"{area}/photos/a.jpg"  # a leading slash, as before
    assert photo_uri(store, T1, f"tenants/{T1}/ocr/photos/a.jpg") == f"{area}/a.jpg"  # the area named once
    assert photo_uri(store, T1, f"{area}/a.jpg") == f"{area}/a.jpg"
    for outside in (f"{store}/tenants/{T2}/ocr/labelling/x.jsonl", f"{store}/global/conflict/model.bin",
                    f"{store}/tenants/{T1}/models/ocr_error/v.json", f"{store}/tenants/{T1}/ocr/labelling/x.jsonl",
                    "s3://demo-bucket/other/x.jpg", "S3://DEMO-BUCKET/store/global/m.bin",
                    "../../../../etc/passwd"):  # the last: stored before intake refused it
        assert photo_uri(store, T1, outside) is None, outside
    assert photo_uri(store, T1, "s3://client-photos/a.jpg") == "s3://client-photos/a.jpg"
    local = "file:///srv/objects"
    for outside in ("file:///srv/objects/tenants/x/a.jpg", "file://localhost/srv/objects/global/m.bin",
                    "file:///srv/%6fbjects/global/m.bin"):
        assert photo_uri(local, T1, outside) is None, outside
    assert photo_uri(local, T1, "file:///home/photos/a.jpg") == "file:///home/photos/a.jpg"




def test_labelling_batch_is_a_ground_truth_manifest_and_never_picks_twice(services: OcrServices) -> None:
    readings = [meter(i, f"{1000 + i:07.1f}", i / 10, confidence=0.3 + (i % 5) / 10, meter_id=f"m{i % 7}")
                for i in range(40)] + [plate(100 + i, "AB12CDE", i, confidence=0.5, gate=f"g{i % 3}") for i in range(30)]
    take_readings(services, T1, readings, "req")
    first = select_batch(services, T1, size=25)
    assert first["selected"] == 25 and first["manifest_uri"].startswith("s3://demo-bucket/store/tenants/")
    lines = [json.loads(line) for line in services.store.get(first["manifest_key"]).decode().splitlines()]
    assert len(lines) == 25 and [line["rank"] for line in lines] == list(range(1, 26))
    assert {line["source-type"] for line in lines} == {"meter_reading", "license_plate"}  # diverse
    meter_line = next(line for line in lines if line["source-type"] == "meter_reading")
    # A photo's key is inside the tenant's own photo area.
    assert meter_line["source-ref"] == (f"s3://demo-bucket/store/tenants/{T1}/ocr/photos/photos/"
                                        f"{meter_line['client-reading-id']}.jpg")
    plate_line = next(line for line in lines if line["source-type"] == "license_plate")
    assert "source-ref" not in plate_line and plate_line["source"] == plate_line["ocr-text"]
    captured = sum(1 for row in services.readings.memory.readings.values() if row["captured"])  # type: ignore[attr-defined]
    rest = select_batches_for_all(services, size=100)["batches"]
    second = rest[0]
    later = [json.loads(line) for line in services.store.get(second["manifest_key"]).decode().splitlines()]
    assert {line["reading-id"] for line in lines}.isdisjoint(line["reading-id"] for line in later)
    assert first["selected"] + second["selected"] == captured
    assert select_batch(services, T1)["selected"] == 0


# -- triage, training, outcomes, metrics ---------------------------------------------------------


def _demo(services: OcrServices, days: int = 60) -> tuple[list[Any], list[Any]]:
    history = generate_ocr_history(replace(DemoOcrConfig(), meters=40, gates=2, plate_reads_per_gate_per_day=30,
                                           days=days, end=START + timedelta(days=days)))
    cut = (START + timedelta(days=days - 5)).isoformat()
    past = [r for r in history if r.record["captured_at"] < cut]
    store_history(services, T1, [(i, OcrReading.model_validate(r.record)) for i, r in enumerate(past)])
    store_corrections(services, T1, list(enumerate(corrections_for(past))))
    return past, [r for r in history if r.record["captured_at"] >= cut]


def test_triage_equals_the_api_path(services: OcrServices, tmp_path: Path) -> None:
    _, recent = _demo(services)
    change_settings(services, T1, daily_budget="12")
    recent = recent[:400]
    source, target = tmp_path / "in.ndjson", tmp_path / "out.csv"
    source.write_text("".join(json.dumps(r.record) + "\n" for r in reversed(recent)))  # any order in the file
    summary = triage_file(services, T1, source, target)
    assert summary["rows"] == len(recent) and not services.log.rows  # type: ignore[attr-defined]  # nothing stored
    rows = [line.split(",") for line in target.read_text().splitlines()[1:]]
    triaged = {r[0]: (float(r[1]), r[2] == "true", r[3]) for r in rows}
    for item in sorted(recent, key=lambda r: r.record["captured_at"]):  # one by one, as they arrive
        live = answer(services, OcrReading.model_validate(item.record))
        expected = triaged[item.record["client_reading_id"]]
        assert (round(live["error_probability"], 6), live["captured"], ";".join(live["reasons"])) == expected


def test_the_error_model_trains_through_the_lifecycle_and_serves_with_its_threshold(services: OcrServices) -> None:
    _, recent = _demo(services, days=90)
    now = OcrReading.model_validate(recent[0].record).captured_at
    decisions = retrain_ocr(services, [T1, T2], now=now)
    assert decisions["global"]["promoted"] is True, decisions
    assert decisions[T2]["promoted"] is False and "settled readings" in decisions[T2]["reason"]
    version = services.registry.active_version(OCR_ERROR.name, None)
    assert version is not None and 0 < version.manifest["capture_threshold"] < 1
    answers = take_readings(services, T1, [OcrReading.model_validate(r.record) for r in recent[:200]], "req", now=now)
    assert all(a["error_probability"] is not None for a in answers)
    assert {r["model_version"] for r in services.log.rows} == {version.label}  # type: ignore[attr-defined]
    wrong = [a for a, r in zip(answers, recent[:200], strict=True) if r.is_error]
    right = [a for a, r in zip(answers, recent[:200], strict=True) if not r.is_error]
    assert sum(a["error_probability"] for a in wrong) / len(wrong) > 3 * sum(a["error_probability"] for a in right) / len(right)
    for item in recent[:200]:
        if item.is_error:  # the errors get found and corrected; the rest stay uncorrected
            record_correction(services, T1, CorrectionRequest(
                source_type=item.record["source_type"], source_id=item.record["client_reading_id"],
                corrected_text=item.true_text, correction_type="OCR_ERROR"))
    tracked = track_ocr_outcomes(services, now=now + timedelta(days=8))
    assert tracked["labelled"] == 200 and tracked["metrics"][0]["roc_auc"] > 0.8


def test_metrics_show_captures_corrections_backlog_quality_and_a_threshold(services: OcrServices) -> None:
    now = datetime.now(UTC)
    readings = [meter(i, f"{1000 + 10 * i:07.1f}", 0, confidence=0.5 + i / 100, meter_id=f"m{i}") for i in range(40)]
    readings = [r.model_copy(update={"captured_at": now - timedelta(days=10, hours=i)}) for i, r in enumerate(readings)]
    answers = take_readings(services, T1, readings, "req")
    for i in range(0, 40, 4):
        record_correction(services, T1, CorrectionRequest(source_type="meter_reading", source_id=f"m{i}-{i}",
                                                          corrected_text="01234.5", correction_type="OCR_ERROR"))
    metrics = ocr_metrics(services, T1, target_share=0.5, now=now)
    assert sum(d["readings"] for d in metrics["capture_rate_per_day"]) == 40
    assert sum(d["captured"] for d in metrics["capture_rate_per_day"]) == sum(a["captured"] for a in answers)
    assert metrics["corrections_per_week"][-1]["errors"] == 10
    open_captures = sum(a["captured"] for i, a in enumerate(answers) if i % 4)
    assert metrics["labelling_backlog"] == {"captured_uncorrected": open_captures, "selected_unlabelled": 0}
    buckets = {tuple(b["confidence"]): b for b in metrics["quality_by_confidence"]}
    assert buckets[(0.5, 0.6)]["observed_error_rate"] == pytest.approx(0.3) and buckets[(0.5, 0.6)]["readings"] == 10
    assert metrics["threshold"]["errors"] == 10 and metrics["threshold"]["threshold"] is not None
    assert OcrSettings().countries[0] == "GB"
    # An imported history of the same hours: stored unscored, never a candidate for capture.
    imported = [r.model_copy(update={"client_reading_id": f"old-{i}", "meter_id": f"h{i}"}) for i, r in enumerate(readings)]
    store_history(services, T1, list(enumerate(imported)))
    daily = ocr_metrics(services, T1, target_share=0.5, now=now)["capture_rate_per_day"]
    assert (sum(d["readings"] for d in daily), sum(d["assessed"] for d in daily)) == (80, 40)
    for day in daily:  # the rate is of the readings scored on arrival
        assert day["rate"] == (round(day["captured"] / day["assessed"], 4) if day["assessed"] else 0.0)


def test_the_demos_live_replay_reads_meters_of_its_own(services: OcrServices) -> None:
    """Its readings continuing a seeded meter with a value track of their own were all flagged
    'below the previous reading'; the live meters and gates now have ids of their own."""
    from shared.ocr.demo_replay import replay_readings

    now = datetime(2026, 11, 30, tzinfo=UTC)
    seeded = generate_ocr_history(replace(DemoOcrConfig(), meters=20, gates=1, days=30, end=now - timedelta(days=14)))
    store_history(services, T1, list(enumerate(OcrReading.model_validate(r.record) for r in seeded)))
    replay_readings(services, T1, days=3, now=now)
    live = [row for (tenant, cid), row in services.readings.memory.readings.items()  # type: ignore[attr-defined]
            if tenant == T1 and cid.startswith("live-")]
    assert live and not {row["source_id"] for row in live} & {r.record["source_id"] for r in seeded}
    meter_reads = [row for row in live if row["source_type"] == "meter_reading"]
    flagged = [row for row in meter_reads if "below_previous_reading" in (row.get("reasons") or ())]
    assert len(flagged) < len(meter_reads) / 4


def test_a_second_retrain_ocr_run_beside_one_is_skipped(services: OcrServices) -> None:
    from shared.ocr.retraining import RUN_LOCK, retrain_ocr

    with services.locks.exclusive(RUN_LOCK):
        assert retrain_ocr(services, [T1]) == {"skipped": "another retrain-ocr run is running"}
    assert set(retrain_ocr(services, [T1])) == {"global", T1}  # each scope judged (here: too little data)


def test_imported_corrections_keep_their_own_time_and_a_bad_one_names_its_line(services: OcrServices) -> None:
    """Seeded with the import's time, a history's corrections all fell in one week."""
    end = datetime(2026, 11, 30, tzinfo=UTC)
    history = generate_ocr_history(replace(DemoOcrConfig(), meters=20, gates=1, days=60, end=end))
    store_history(services, T1, list(enumerate(OcrReading.model_validate(r.record) for r in history)))
    rows = corrections_for(history, until=end)
    assert all(r["corrected_at"] <= end.isoformat() for r in rows)
    bad = [*rows[:3], {**rows[3], "corrected_at": "2999-01-01T00:00:00Z"}]
    with pytest.raises(InvalidInput, match="1 bad row") as refused:
        store_corrections(services, T1, list(enumerate(bad, start=2)))
    assert refused.value.fields[0].field == "line 5"
    store_corrections(services, T1, list(enumerate(rows)))
    weeks = ocr_metrics(services, T1, target_share=0.5, now=end)["corrections_per_week"]
    assert len(weeks) >= 4 and sum(w["corrections"] for w in weeks) == len(rows)
