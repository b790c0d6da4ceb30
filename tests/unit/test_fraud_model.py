"""Fraud features, label policy, thresholds and model quality, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shared.errors import InsufficientData
from shared.fraud.demo_data import FraudDemoConfig, generate_fraud_history
from shared.fraud.features import FEATURE_NAMES, HISTORY_DAYS, EventColumns, Site, compute_features
from shared.fraud.features_repository import labelled_training_set
from shared.fraud.kind import FRAUD, rules_score
from shared.fraud.memory import FraudMemory, InMemoryFraudTrainingSource
from shared.fraud.thresholds import choose_operating_point, tradeoff_row
from shared.platform.kinds import TrainingSet
from shared.platform.training import train_candidate

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SITES = {"t|hq": Site(52.52, 13.405, 100.0, "Europe/Berlin"), "t|tokyo": Site(35.68, 139.76, 100.0, "Asia/Tokyo")}


def ev(cid: str, at: datetime, *, user: str = "u1", site: str = "hq", device: str = "d1", kind: str = "check_in",
       lat: float | None = 52.52, lon: float | None = 13.405, face: float | None = 0.95, verified: bool | None = True,
       tenant: str = "t") -> dict[str, Any]:
    return {"tenant_id": tenant, "client_event_id": cid, "user_id": user, "site_id": site, "device_id": device,
            "event_type": kind, "occurred_at": at, "latitude": lat, "longitude": lon, "gps_accuracy_m": 10.0,
            "face_match_confidence": face, "biometric_verified": verified}


def features_of(history: list[dict[str, Any]], targets: list[dict[str, Any]],
                holidays: list[tuple[str, date]] = ()) -> dict[str, np.ndarray]:  # type: ignore[assignment]
    return compute_features(EventColumns.from_rows(history), EventColumns.from_rows(targets), SITES, holidays)


def routine(days: int = 20) -> list[dict[str, Any]]:
    events = []
    for d in range(days):
        day = T0 + timedelta(days=d)
        events.append(ev(f"in{d}", day))
        events.append(ev(f"out{d}", day + timedelta(hours=8), kind="check_out"))
    return events


def test_events_at_or_after_the_as_of_change_nothing() -> None:
    history = routine()
    target = ev("x", T0 + timedelta(days=10, hours=1), lat=52.60, lon=13.50, face=0.3)
    before = features_of(history, [target])
    later = [ev(f"late{i}", target["occurred_at"] + timedelta(minutes=i), user=u, device="d1")
             for i, u in enumerate(["u1", "u2", "u1"])]  # the same instant, then later, own and others'
    after = features_of(history + later + [target], [target])
    for name in FEATURE_NAMES:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_live_batch_and_training_compute_the_same_values() -> None:
    config = FraudDemoConfig(tenants=(("t", 15),), days=40, seed=3)
    raw = generate_fraud_history(config)["t"]
    sites = {f"t|{s['site_id']}": Site(s["latitude"], s["longitude"], s["radius_m"], s["timezone"]) for s in raw["sites"]}
    holidays = [("t", date.fromisoformat(h["date"])) for h in raw["holidays"]]
    events = [{**e, "tenant_id": "t", "occurred_at": datetime.fromisoformat(e["occurred_at"])} for e in raw["events"]]
    everything = EventColumns.from_rows(events)
    training = compute_features(everything, everything, sites, holidays)
    picked = list(range(len(events) // 2, len(events), max(len(events) // 40, 1)))
    batch = compute_features(everything, EventColumns.from_rows([events[i] for i in picked]), sites, holidays)
    for j, i in enumerate(picked):
        target = events[i]
        at = target["occurred_at"]
        # The live query's three windows: the user's 60 days, the device's 12 hours, the site's 10 minutes.
        live_history = [e for e in events if e["occurred_at"] < at and (
            (e["user_id"] == target["user_id"] and e["occurred_at"] >= at - timedelta(days=HISTORY_DAYS))
            or (e["device_id"] == target["device_id"] and e["occurred_at"] >= at - timedelta(hours=12))
            or (e["site_id"] == target["site_id"] and e["occurred_at"] >= at - timedelta(minutes=10)))]
        live = compute_features(EventColumns.from_rows(live_history), EventColumns.from_rows([target]), sites, holidays)
        for name in FEATURE_NAMES:
            np.testing.assert_allclose([training[name][i], batch[name][j]], [live[name][0]] * 2, rtol=1e-7, atol=1e-9,
                                       equal_nan=True, err_msg=f"{name} of event {i}")


def test_location_features_geofence_consistency_and_impossible_travel() -> None:
    history = routine()
    at = T0 + timedelta(days=20)
    near, far = ev("near", at), ev("far", at + timedelta(minutes=30), lat=52.60, lon=13.405)  # ~8.9 km north
    values = features_of(history, [near, far])
    assert values["gps_drift_meters"][0] == 0.0
    assert values["gps_drift_meters"][1] == pytest.approx(8_896 - 100, rel=0.01)
    assert values["location_consistency_score"][0] > 0.9 > 0.05 > values["location_consistency_score"][1]
    travel = features_of(history + [near], [far])
    assert travel["implied_speed_kmh"][0] == pytest.approx(8.896 / 0.5, rel=0.01)  # 8.9 km in 30 min
    no_gps = features_of(history, [ev("blind", at, lat=None, lon=None, face=None)])
    assert np.isnan(no_gps["gps_drift_meters"][0]) and np.isnan(no_gps["face_recognition_confidence"][0])


def test_local_time_holidays_weekends_and_bursts() -> None:
    # 23:30 UTC on 24 December is 08:30 on the 25th in Tokyo.
    at = datetime(2026, 12, 24, 23, 30, tzinfo=UTC)
    tokyo = ev("tk", at, site="tokyo", lat=35.68, lon=139.76)
    values = features_of([], [tokyo], holidays=[("t", date(2026, 12, 25))])
    assert (values["hour_of_day"][0], values["day_of_week"][0], values["is_holiday"][0]) == (8, 4, 1)
    burst = [ev(f"b{i}", T0 + timedelta(seconds=20 * i), user=f"v{i}", device="kiosk") for i in range(12)]
    last = features_of(burst[:-1], [burst[-1]])
    assert last["site_events_10min"][0] == 11 and last["device_other_users_12h"][0] == 11
    assert features_of(burst[:-1], [ev("alone", T0 + timedelta(hours=13), user="v11", device="kiosk")]
                       )["device_other_users_12h"][0] == 0  # 12 hours later the window is empty


def test_behaviour_features_against_the_users_own_history() -> None:
    history = routine(30)  # always 08:00 UTC = 10:00 Berlin in June
    late = ev("late", T0 + timedelta(days=30, minutes=45))
    values = features_of(history, [late])
    assert values["minutes_from_usual_start"][0] == pytest.approx(45, abs=0.01)
    assert values["late_arrival_rate"][0] == 0.0
    assert values["time_since_last_event"][0] == pytest.approx(16.75)
    assert values["weekend_work_frequency"][0] == pytest.approx(8 / 30, abs=0.02)
    failing = history + [ev(f"f{i}", T0 + timedelta(days=29, hours=9 + i), face=0.2, verified=False) for i in range(3)]
    assert features_of(failing, [late])["biometric_mismatch_count_30d"][0] == 3


def test_the_label_policy() -> None:
    end = T0 + timedelta(days=60)
    events = [ev("labelled-old", T0 + timedelta(days=5)), ev("unlabelled-old", T0 + timedelta(days=6)),
              ev("labelled-new", end - timedelta(days=2)), ev("unlabelled-new", end - timedelta(days=3))]
    labels = {("t", "labelled-old"): True, ("t", "labelled-new"): False}
    data = labelled_training_set(sorted(events, key=lambda e: e["occurred_at"]), labels, SITES, [], T0, end)
    assert data.rows == 3 and data.labels.tolist() == [True, False, False]  # unlabelled-new left out
    assert [t.date() for t in data.as_of] == [(T0 + timedelta(days=d)).date() for d in (5, 6, 58)]


def test_the_tradeoff_table_equals_a_brute_force_count() -> None:
    rng = np.random.default_rng(4)
    labels = rng.random(500) < 0.05
    scores = np.round(np.clip(labels * 0.5 + rng.random(500) * 0.6, 0, 1), 2)  # ties on purpose
    chosen = choose_operating_point(labels, scores, days=10.0)
    for row in chosen["tradeoff"]:
        t = row["threshold"]
        tp = sum(1 for y, s in zip(labels, scores, strict=True) if s >= t and y)
        fp = sum(1 for y, s in zip(labels, scores, strict=True) if s >= t and not y)
        assert row["precision"] == (tp / (tp + fp) if tp + fp else None)
        assert row["recall"] == tp / labels.sum() and row["false_positive_rate"] == fp / (~labels).sum()
        assert row["alerts_per_day"] == round((tp + fp) / 10, 3)
    assert chosen["at_review"]["recall"] >= 0.8
    assert tradeoff_row(labels, scores, chosen["review_threshold"] + 1e-9, 10.0)["recall"] < 0.8 or \
        chosen["review_threshold"] == scores.max()
    assert chosen["block_threshold"] >= chosen["review_threshold"]


def test_the_block_threshold_meets_its_precision_over_every_tied_score() -> None:
    """Flagging `score >= t` flags all of t's ties: 10 frauds and 10 honest events share 0.8, so
    0.8 blocks at precision 0.5, however the sort orders the tied rows."""
    scores = np.array([0.95] * 9 + [0.8] * 20 + [0.1] * 71)
    labels = np.array([True] * 9 + [True] * 10 + [False] * 10 + [False] * 71)
    chosen = choose_operating_point(labels, scores, days=10.0)
    assert chosen["block_threshold"] == 0.95
    blocked = tradeoff_row(labels, scores, chosen["block_threshold"], 10.0)
    assert blocked["precision"] >= 0.9
    assert chosen["review_threshold"] == 0.8  # recall 19/19 first reached with the whole 0.8 group


def test_rules_answer_without_a_model_and_rise_with_each_signal() -> None:
    calm = {"gps_drift_meters": 0.0, "hour_of_day": 9.0, "face_recognition_confidence": 0.97}
    assert rules_score(calm) == pytest.approx(0.02)
    assert rules_score({**calm, "gps_drift_meters": 5_000.0, "face_recognition_confidence": 0.2}) == pytest.approx(0.62)
    assert rules_score({"gps_drift_meters": None, "hour_of_day": 10.0}) == pytest.approx(0.02)  # missing adds nothing


@pytest.fixture(scope="module")
def demo() -> InMemoryFraudTrainingSource:
    return InMemoryFraudTrainingSource(FraudMemory.from_demo(generate_fraud_history(
        FraudDemoConfig(end=datetime(2026, 11, 1, tzinfo=UTC)))))


def test_the_demo_holdout_meets_the_seed_bars(demo: InMemoryFraudTrainingSource) -> None:
    result = train_candidate(FRAUD, demo, None, tenant_id="acme", end=datetime(2026, 11, 1, tzinfo=UTC))
    scores, labels = result.model.predict_proba(result.holdout.design), result.holdout.labels
    at_80 = tradeoff_row(labels, scores, float(np.sort(scores[labels])[::-1][int(np.ceil(0.8 * labels.sum())) - 1]), 1)
    assert result.metrics["pr_auc"] > 0.70
    assert at_80["recall"] >= 0.8 and at_80["precision"] > 0.5 and at_80["false_positive_rate"] < 0.10
    manifest = result.manifest
    assert manifest["promotion_metric"] == "pr_auc" and 0 < manifest["operating_point"]["review_threshold"] < 1
    assert manifest["scale_pos_weight"] > 10  # fraud is rare: positives weighted by the data's imbalance
    loaded = FRAUD.load(result.model.to_artifact())  # type: ignore[attr-defined]
    np.testing.assert_allclose(loaded.predict_proba(result.holdout.design), scores, rtol=1e-6)


def test_a_tenant_with_too_few_frauds_gets_no_model_of_its_own(demo: InMemoryFraudTrainingSource) -> None:
    with pytest.raises(InsufficientData, match="confirmed frauds"):
        train_candidate(FRAUD, demo, None, tenant_id="tiny", end=datetime(2026, 11, 1, tzinfo=UTC))


def test_a_tampered_or_foreign_booster_is_refused() -> None:
    with pytest.raises(ValueError):
        FRAUD.load(b"not a booster at all")
    bogus = replace(FRAUD, feature_names=FRAUD.feature_names[:3])
    rng = np.random.default_rng(0)
    data = TrainingSet(rng.random((400, 3)), rng.random(400) < 0.2, [T0] * 400, T0, T0 + timedelta(days=60))
    small = bogus.fit(data)
    with pytest.raises(ValueError, match="features"):
        FRAUD.load(small.artifact)


# Ends at which the run command's demo (its sizes, 150 days) used to hold an event after `end`.
@pytest.mark.parametrize("end", ["2026-11-17T04:30:00+00:00", "2026-11-20T05:00:00+00:00", "2026-11-24T04:00:00+00:00"])
def test_the_demo_history_holds_nothing_after_its_end_so_intake_takes_every_event(end: str) -> None:
    """The run command generates up to now: a ghost check-in at 23:30 local or overtime past
    midnight of the last day used to land after it, and intake refuses an event in the future."""
    from shared.demo import DEMO_TENANTS
    from shared.fraud.demo_data import FraudDemoConfig, generate_fraud_history
    from shared.fraud.intake import AttendanceEventIn

    config = FraudDemoConfig(tenants=tuple(zip(DEMO_TENANTS, (120, 60, 4), strict=True)), days=150,
                             end=datetime.fromisoformat(end))
    for tenant in generate_fraud_history(config).values():
        assert all(datetime.fromisoformat(e["occurred_at"]) <= config.end for e in tenant["events"])
        ids = {e["client_event_id"] for e in tenant["events"]}
        assert set(tenant["frauds"]) <= ids and {label["client_event_id"] for label in tenant["labels"]} <= ids
        for event in tenant["events"]:
            AttendanceEventIn.model_validate(event)  # what seeding does: no refusal
