"""The demo sync history: well-formed events, and conflicts that really follow from the features
the model is trained on (computed here independently, straight from the definitions)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from shared.conflict.demo_data import DemoConfig, conflict_rate, generate_sync_history

Event = dict[str, Any]

KEYS = {
    "tenant",
    "client_event_id",
    "user_id",
    "device_id",
    "domain",
    "entity_type",
    "entity_id",
    "fields_changed",
    "client_last_sync_at",
    "received_at",
    "conflicted",
    "conflict_fields",
}
# For the reproducibility tests, which generate it several times.
SMALL = DemoConfig(
    seed=3, tenants=("acme", "globex"), users_per_tenant=25, entities_per_tenant=120, days=21
)
# For the effect tests: about 10,000 events, enough to tell each cause from noise, and few
# enough for the plain (quadratic) feature computation below.
MEDIUM = DemoConfig(seed=3, users_per_tenant=30, entities_per_tenant=150, days=28)


@pytest.fixture(scope="module")
def history() -> list[Event]:
    return list(generate_sync_history())


@pytest.fixture(scope="module")
def small_history() -> list[Event]:
    return list(generate_sync_history(SMALL))


class Labelled(NamedTuple):
    features: dict[str, float]
    conflicted: bool
    user: tuple[str, str]


@pytest.fixture(scope="module")
def labelled() -> list[Labelled]:
    events = list(generate_sync_history(MEDIUM))
    return [
        Labelled(_features(event, before), event["conflicted"], (event["tenant"], event["user_id"]))
        for event, before in _with_prior_events(events)
    ]


def _by_tenant(events: list[Event]) -> dict[str, list[Event]]:
    tenants: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        tenants[event["tenant"]].append(event)
    return tenants


def _entity(event: Event) -> tuple[str, str, str, str]:
    return event["tenant"], event["domain"], event["entity_type"], event["entity_id"]


def _with_prior_events(events: list[Event]) -> list[tuple[Event, dict[str, Any]]]:
    """Each event with the earlier events of its entity ("entity") and the start of its sync
    batch ("batch_start": the first event of its device with the same client_last_sync_at)."""
    by_entity: dict[tuple[str, str, str, str], list[Event]] = defaultdict(list)
    batch_start: dict[tuple[str, str, datetime | None], datetime] = {}
    result = []
    for event in events:
        batch = (event["tenant"], event["device_id"], event["client_last_sync_at"])
        batch_start.setdefault(batch, event["received_at"])
        entity_events = by_entity[_entity(event)]
        result.append((event, {"entity": list(entity_events), "batch_start": batch_start[batch]}))
        entity_events.append(event)
    return result


def _features(event: Event, before: dict[str, Any]) -> dict[str, float]:
    """What the mechanism turns on, written out plainly (no shared code with the generator), as of
    the start of the event's sync batch."""
    at, user, last = before["batch_start"], event["user_id"], event["client_last_sync_at"]
    hours = 720.0 if last is None else min((at - last).total_seconds() / 3600, 720.0)
    since = last if last is not None else at - timedelta(days=30)
    others = [e for e in before["entity"] if e["user_id"] != user and e["received_at"] < at]
    editors = {e["user_id"] for e in others if e["received_at"] >= at - timedelta(hours=24)}
    changed = [e for e in others if e["received_at"] >= since]
    theirs = {field for e in changed for field in e["fields_changed"]}
    mine = set(event["fields_changed"])
    return {
        "changed_since_sync": float(bool(changed)),
        "concurrent_editors": float(len(editors)),
        "hours_since_last_sync": hours,
        "field_overlap_score": len(mine & theirs) / len(mine),
    }


def _rate(rows: list[Labelled], feature: str, low: float, high: float) -> float:
    """Conflict rate among rows with low <= feature <= high."""
    labels = [row.conflicted for row in rows if low <= row.features[feature] <= high]
    assert len(labels) >= 100, f"too few events with {low} <= {feature} <= {high} to compare rates"
    return sum(labels) / len(labels)


def test_same_seed_same_history_other_seed_other_history(small_history: list[Event]) -> None:
    assert list(generate_sync_history(SMALL)) == small_history
    other = list(generate_sync_history(replace(SMALL, seed=SMALL.seed + 1)))
    assert [e["received_at"] for e in other] != [e["received_at"] for e in small_history]


def test_adding_a_tenant_leaves_the_others_unchanged(small_history: list[Event]) -> None:
    more = list(generate_sync_history(replace(SMALL, tenants=(*SMALL.tenants, "initech"))))
    assert [e for e in more if e["tenant"] != "initech"] == small_history


def test_every_event_has_exactly_the_documented_keys_and_types(history: list[Event]) -> None:
    assert {e["tenant"] for e in history} == {"acme", "globex", "initech"}
    for event in history:
        assert set(event) == KEYS
        for key in (
            "tenant",
            "client_event_id",
            "user_id",
            "device_id",
            "domain",
            "entity_type",
            "entity_id",
        ):
            assert isinstance(event[key], str) and event[key]
        assert type(event["conflicted"]) is bool
        assert isinstance(event["fields_changed"], list) and isinstance(
            event["conflict_fields"], list
        )
        assert all(isinstance(f, str) for f in event["fields_changed"] + event["conflict_fields"])
        assert isinstance(event["received_at"], datetime) and event[
            "received_at"
        ].utcoffset() == timedelta(0)
        last = event["client_last_sync_at"]
        assert last is None or (isinstance(last, datetime) and last.utcoffset() == timedelta(0))


def test_events_come_in_time_order_strictly_increasing_per_tenant_within_the_window(
    history: list[Event],
) -> None:
    config = DemoConfig()
    times = [e["received_at"] for e in history]
    assert times == sorted(times)
    assert times[0] >= config.end - timedelta(days=config.days) and times[-1] < config.end
    for events in _by_tenant(history).values():
        assert all(a["received_at"] < b["received_at"] for a, b in pairwise(events))


def test_client_event_ids_are_unique_per_tenant(history: list[Event]) -> None:
    for tenant, events in _by_tenant(history).items():
        ids = [e["client_event_id"] for e in events]
        assert len(set(ids)) == len(ids)
        assert all(i.startswith(f"{tenant}-") for i in ids)


def test_a_sync_uploads_a_batch_whose_last_sync_is_the_devices_previous_sync(history: list[Event]) -> None:
    """Events of one device come in batches (a few edits seconds apart); every event of a batch
    carries the start of that device's previous batch as client_last_sync_at."""
    starts: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    batches: Counter[tuple[str, str, datetime | None]] = Counter()
    for event in history:
        device = (event["tenant"], event["device_id"])
        last = event["client_last_sync_at"]
        if not starts[device] or last != (starts[device][-2] if len(starts[device]) > 1 else None):
            # A new batch: its last sync is the start of the device's batch before it.
            assert last == (starts[device][-1] if starts[device] else None)
            starts[device].append(event["received_at"])
        assert last is None or last < event["received_at"]
        batches[(event["tenant"], event["device_id"], last)] += 1
    sizes = list(batches.values())
    assert max(sizes) > 1 and 1.5 <= sum(sizes) / len(sizes) <= 2.5


def test_fields_are_one_to_five_distinct_and_conflict_fields_are_among_them(
    history: list[Event],
) -> None:
    for event in history:
        fields = event["fields_changed"]
        assert 1 <= len(fields) <= 5 and len(set(fields)) == len(fields)
        assert set(event["conflict_fields"]) <= set(fields)
        if not event["conflicted"]:
            assert event["conflict_fields"] == []
    conflicts = [e for e in history if e["conflicted"]]
    # Most conflicts are two edits of the same field; record-level ones (no shared field) are rarer.
    assert sum(1 for e in conflicts if e["conflict_fields"]) >= 0.6 * len(conflicts)


def test_conflict_rate_is_realistic(history: list[Event]) -> None:
    assert 0.05 <= conflict_rate(history) <= 0.25


def test_volume_follows_the_configured_activity(history: list[Event]) -> None:
    config = DemoConfig()
    expected = (
        len(config.tenants) * config.users_per_tenant * config.days * config.events_per_user_per_day
    )
    assert 0.7 * expected <= len(history) <= 1.3 * expected


def test_a_few_hot_entities_take_a_large_share_of_the_edits(history: list[Event]) -> None:
    config = DemoConfig()
    top = int(config.entities_per_tenant * 0.05)
    for events in _by_tenant(history).values():
        counts = sorted(Counter(_entity(e) for e in events).values(), reverse=True)
        assert sum(counts[:top]) >= 0.3 * len(events)
        # ...and hot entities are shared: the hottest is edited by many different users.
        hottest = Counter(_entity(e) for e in events).most_common(1)[0][0]
        assert (
            len({e["user_id"] for e in events if _entity(e) == hottest})
            >= config.users_per_tenant // 4
        )


def test_users_have_different_habits(history: list[Event]) -> None:
    for events in _by_tenant(history).values():
        per_user: dict[str, list[datetime]] = defaultdict(list)
        for event in events:
            per_user[event["user_id"]].append(event["received_at"])
        counts = sorted(len(times) for times in per_user.values())
        assert counts[-1] >= 3 * counts[0]
        gaps = sorted(b - a for times in per_user.values() for a, b in pairwise(times))
        # Heavy tail: half the gaps are under two hours, yet some users are gone for days.
        assert gaps[len(gaps) // 2] < timedelta(hours=2)
        assert gaps[-1] >= timedelta(days=3)


def test_activity_follows_a_daily_rhythm(history: list[Event]) -> None:
    for events in _by_tenant(history).values():
        per_hour = sorted(Counter(e["received_at"].hour for e in events).values(), reverse=True)
        assert sum(per_hour[:12]) >= 0.75 * len(events)


def test_conflicts_follow_others_edits_since_the_devices_last_sync(labelled: list[Labelled]) -> None:
    changed = _rate(labelled, "changed_since_sync", 1.0, 1.0)
    untouched = _rate(labelled, "changed_since_sync", 0.0, 0.0)
    assert changed >= 5 * untouched


def test_conflicts_follow_field_overlap(labelled: list[Labelled]) -> None:
    high = _rate(labelled, "field_overlap_score", 0.5 + 1e-9, 1.0)
    none = _rate(labelled, "field_overlap_score", 0.0, 0.0)
    assert high >= 2 * none


def test_stale_syncs_conflict_more(labelled: list[Labelled]) -> None:
    stale = _rate(labelled, "hours_since_last_sync", 24 + 1e-9, 720.0)
    fresh = _rate(labelled, "hours_since_last_sync", 0.0, 1.0 - 1e-9)
    assert stale > 1.5 * fresh


def test_each_cause_carries_its_own_weight(labelled: list[Labelled]) -> None:
    """Staleness and overlap go together with others' edits (a device away longer has missed more
    of them), so the rate comparisons above could pass on one cause alone. A joint logistic fit
    separates them."""
    _, changed, overlap, staleness, editors = _logistic_fit(_design(labelled), _labels(labelled))
    assert changed > 1.0
    assert overlap > 1.5
    assert staleness > 0.1
    assert editors > 0.05


def test_some_users_conflict_more_than_their_situations_explain(labelled: list[Labelled]) -> None:
    """Careless users: after accounting for the situation, each user's excess conflicts (observed
    minus expected, in standard errors) vary far more than chance allows (variance about 1 if
    users did not differ)."""
    design, labels = _design(labelled), _labels(labelled)
    expected = 1.0 / (1.0 + np.exp(-design @ _logistic_fit(design, labels)))
    excess: dict[tuple[str, str], float] = defaultdict(float)
    variance: dict[tuple[str, str], float] = defaultdict(float)
    for row, observed, p in zip(labelled, labels, expected, strict=True):
        excess[row.user] += observed - p
        variance[row.user] += p * (1.0 - p)
    z = np.array([excess[user] / np.sqrt(variance[user]) for user in excess])
    assert z.var() > 1.5


def _design(rows: list[Labelled]) -> np.ndarray:
    return np.array(
        [
            [
                1.0,
                row.features["changed_since_sync"],
                row.features["changed_since_sync"] * row.features["field_overlap_score"],
                row.features["changed_since_sync"] * np.log1p(row.features["hours_since_last_sync"]),
                np.log1p(row.features["concurrent_editors"]),
            ]
            for row in rows
        ]
    )


def _labels(rows: list[Labelled]) -> np.ndarray:
    return np.array([float(row.conflicted) for row in rows])


def _logistic_fit(design: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton's method."""
    weights = np.zeros(design.shape[1])
    for _ in range(25):
        p = 1.0 / (1.0 + np.exp(-design @ weights))
        hessian = design.T @ (design * (p * (1.0 - p))[:, None])
        weights = weights + np.linalg.solve(hessian, design.T @ (labels - p))
    return weights


def test_conflict_rate_helper() -> None:
    assert (
        conflict_rate(
            [
                {"conflicted": True},
                {"conflicted": False},
                {"conflicted": False},
                {"conflicted": False},
            ]
        )
        == 0.25
    )
    with pytest.raises(ValueError):
        conflict_rate([])


@pytest.mark.parametrize(
    "change",
    [
        {"days": 0},
        {"users_per_tenant": 0},
        {"tenants": ()},
        {"tenants": ("a", "a")},
        {"events_per_user_per_day": 0.0},
        {"end": datetime(2026, 11, 29)},
    ],
)
def test_invalid_config_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DemoConfig(**change)


def test_end_in_another_zone_still_gives_utc_times() -> None:
    end = datetime(2026, 11, 29, 9, 30, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    events = list(generate_sync_history(replace(SMALL, tenants=("acme",), days=3, end=end)))
    assert events and all(e["received_at"].tzinfo is UTC and e["received_at"] < end for e in events)
