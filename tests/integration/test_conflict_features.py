"""Features as of the moment a prediction is asked: hand-checked values, no peeking, sync batches,
and one definition whose three readings (live SQL, batch scoring, training) agree."""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.conflict import features_repository, scoring
from shared.conflict.events import SyncEvent
from shared.conflict.events_repository import store_sync_events
from shared.conflict.features import (
    FEATURE_NAMES,
    LOOKBACK,
    RECENT_LOOKBACK,
    WholeEvents,
    from_us,
    to_us,
    whole_events_for,
)
from shared.conflict.features_repository import (
    FeatureRequest,
    RequestTable,
    feature_vector,
    features_for_requests,
    live_features,
    load_event_columns,
    request_columns,
    training_rows,
)
from shared.conflict.keys import hash_keys
from shared.conflict.prediction import ConflictPredictionRequest, predict_conflict
from shared.conflict.scoring import score_conflict_csv, score_conflict_file
from shared.context import AppContext
from shared.errors import InvalidInput, MlstackError

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(n: int | str, user: str, minutes: float, fields: list[str], entity: str = "r1", conflicted: bool = False,
          device: str | None = None, last_sync: float | None = None) -> SyncEvent:
    return SyncEvent(
        client_event_id=f"e{n}", user_id=user, device_id=device or f"{user}-phone", domain="voice",
        entity_type="recording", entity_id=entity, fields_changed=fields,
        received_at=T0 + timedelta(minutes=minutes), conflicted=conflicted,
        conflict_fields=fields[:1] if conflicted else [],
        client_last_sync_at=None if last_sync is None else T0 + timedelta(minutes=last_sync),
    )


def store(context: AppContext, tenant_id: str, events: list[SyncEvent]) -> None:
    with context.database.transaction() as tx:
        store_sync_events(tx, tenant_id, events, datetime.now(UTC))


def features_at(context: AppContext, tenant_id: str, user: str, as_of: datetime, fields: list[str] | None,
                entity: str = "r1", device: str | None = None, last_sync: datetime | None = None) -> dict[str, float]:
    request = FeatureRequest("q", tenant_id, user, "voice", "recording", entity, tuple(fields) if fields else None,
                             as_of, device, last_sync)
    with context.database.transaction() as tx:
        return feature_vector(live_features(tx, request))


def training(context: AppContext, tenant: str) -> dict[str, dict[str, float]]:
    """Training rows by client_event_id."""
    with context.database.transaction() as tx:
        columns, _ = training_rows(tx, tenant, T0 - timedelta(days=2), T0 + timedelta(days=5))
        ids = [r["client_event_id"] for r in tx.fetch_all(
            "SELECT client_event_id FROM sync_events ORDER BY received_at, event_id")]
    return {cid: {name: float(columns[name][n]) for name in (*FEATURE_NAMES, "as_of")} for n, cid in enumerate(ids)}


@pytest.fixture
def tenant(context: AppContext) -> str:
    return context.tenants.create_tenant("acme", "Acme").tenant_id


def test_hand_computed_features(context: AppContext, tenant: str) -> None:
    store(context, tenant, [
        event(1, "alice", 0, ["title", "notes"], conflicted=True),
        event(2, "bob", 60, ["notes"]),
        event(3, "carol", 90, ["tags"]),
        event(4, "bob", 100, ["title"], entity="r2"),
        event(5, "dave", -60 * 30, ["notes"]),  # 30 h before: outside the 24 h editor window
        event(6, "bob", 70, ["notes"]),  # bob twice: one editor, two edits
    ])
    as_of = T0 + timedelta(minutes=120)
    f = features_at(context, tenant, "alice", as_of, ["notes", "duration"])
    assert f["concurrent_editors"] == 2.0                   # bob, carol (dave too old, alice is me)
    assert f["hours_since_last_sync"] == pytest.approx(2.0)  # alice synced at T0
    assert f["user_conflict_rate"] == pytest.approx((1 + 1) / (1 + 10))
    assert f["entity_edit_frequency"] == pytest.approx(5 / 7)  # e1, e2, e3, e5, e6 on r1 within 7 days
    assert f["field_overlap_score"] == pytest.approx(0.5)    # notes changed by bob since my sync; duration not
    assert f["other_edits_since_sync"] == 3.0                # e2, e3, e6 since alice's sync at T0
    usual = features_at(context, tenant, "alice", as_of, None)
    assert usual["field_overlap_score"] == pytest.approx(0.5)  # my usual fields: title, notes -> notes overlaps
    newcomer = features_at(context, tenant, "zoe", as_of, ["notes"])
    assert newcomer["user_conflict_rate"] == pytest.approx(0.1)
    assert newcomer["hours_since_last_sync"] == 720.0
    # The device says it last synced 80 minutes in: only bob's and carol's later edits count.
    device = features_at(context, tenant, "alice", as_of, ["notes", "tags"], device="alice-tablet",
                         last_sync=T0 + timedelta(minutes=80))
    assert device["hours_since_last_sync"] == pytest.approx(40 / 60)
    assert device["other_edits_since_sync"] == 1.0            # carol at 90
    assert device["field_overlap_score"] == pytest.approx(0.5)  # tags yes, notes (bob at 60, 70) no


def test_features_never_see_the_future(context: AppContext, tenant: str) -> None:
    store(context, tenant, [event(1, "alice", 0, ["notes"]), event(2, "bob", 30, ["notes"])])
    as_of = T0 + timedelta(minutes=60)
    before = features_at(context, tenant, "alice", as_of, ["notes"])
    batch_before = training(context, tenant)
    # Events at exactly as_of and after it, by others and by alice, conflicting or not.
    store(context, tenant, [
        event(3, "carol", 60, ["notes"], conflicted=True),
        event(4, "alice", 61, ["notes"], conflicted=True),
        event(5, "dave", 600, ["notes", "title"]),
    ])
    assert features_at(context, tenant, "alice", as_of, ["notes"]) == before
    after = training(context, tenant)
    assert {k: after[k] for k in batch_before} == batch_before


def test_a_sync_batch_is_as_of_its_start_and_its_later_events_never_leak(context: AppContext, tenant: str) -> None:
    # Alice's tablet last synced at 0; bob edits r1 at 30; alice's tablet uploads three offline
    # edits at 100, 100.5 and 101 (one batch: same device, same client_last_sync_at).
    store(context, tenant, [
        event(1, "alice", 0, ["notes"], device="tab"),
        event(2, "bob", 30, ["notes"]),
        event("b1", "alice", 100, ["notes"], device="tab", last_sync=0, conflicted=True),
        event("b2", "alice", 100.5, ["notes"], entity="r2", device="tab", last_sync=0, conflicted=True),
        event("b3", "alice", 101, ["tags"], device="tab", last_sync=0),
    ])
    rows = training(context, tenant)
    start = T0 + timedelta(minutes=100)
    for later in ("eb2", "eb3"):
        assert from_us(int(rows[later]["as_of"])) == start
    # b1 conflicted at 100, yet b3's rate and hours are as at the batch's start: nothing of b1, b2.
    assert rows["eb3"]["user_conflict_rate"] == pytest.approx(rows["eb1"]["user_conflict_rate"])
    assert rows["eb3"]["hours_since_last_sync"] == pytest.approx(100 / 60)
    assert rows["eb3"]["entity_edit_frequency"] == rows["eb1"]["entity_edit_frequency"]
    # A live request of the same device within the batch is answered as of its start as well.
    live = features_at(context, tenant, "alice", T0 + timedelta(minutes=102), ["tags"], device="tab", last_sync=T0)
    assert live == {k: v for k, v in rows["eb3"].items() if k != "as_of"}
    # Later events of the batch, stored afterwards, change nothing of its earlier rows.
    store(context, tenant, [event("b4", "alice", 103, ["notes"], device="tab", last_sync=0, conflicted=True)])
    again = training(context, tenant)
    assert {k: again[k] for k in rows} == rows


def random_history(seed: int) -> list[SyncEvent]:
    """Users on two devices syncing batches of offline edits of a few shared entities, with some
    batches stamped with one intake time and some events without a last sync."""
    rng = random.Random(seed)
    users = ["ann", "ben", "cat", "dan", "eve"]
    fields = ["notes", "title", "tags", "status", "photo"]
    last: dict[tuple[str, str], float | None] = {}
    events: list[SyncEvent] = []
    minute = 0.0
    for batch in range(60):
        minute += rng.expovariate(1 / 90)
        user = rng.choice(users)
        device = f"{user}-{rng.choice(['phone', 'tab'])}"
        previous = last.get((user, device))
        same_time = rng.random() < 0.2
        for k in range(rng.randint(1, 4)):
            at = minute if same_time else minute + k * rng.uniform(0, 2)
            events.append(event(f"{batch}-{k}", user, at, rng.sample(fields, rng.randint(1, 3)),
                                entity=f"r{rng.randint(1, 4)}", conflicted=rng.random() < 0.25, device=device,
                                last_sync=previous))
        last[(user, device)] = minute
    return events


def test_live_batch_and_training_features_are_equal_on_histories_with_sync_batches(
    context: AppContext, tenant: str
) -> None:
    history = random_history(11)
    store(context, tenant, history)
    rows = training(context, tenant)
    assert len(rows) == len(history)
    by_id = {e.client_event_id: e for e in history}
    batch_input = io.StringIO()
    writer = csv.writer(batch_input)
    writer.writerow(["user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id",
                     "client_last_sync_at"])
    ordered = list(rows)
    for cid in ordered:  # as of each event's own receipt: the rule moves it to its batch's start
        e = by_id[cid]
        assert e.received_at is not None
        writer.writerow([e.user_id, e.domain, e.entity_type, e.entity_id, ";".join(e.fields_changed),
                         e.received_at.isoformat(), e.device_id,
                         e.client_last_sync_at.isoformat() if e.client_last_sync_at else ""])
    batch_output = io.StringIO()
    score_conflict_csv(context, tenant, io.StringIO(batch_input.getvalue()), batch_output)
    batch_rows = list(csv.DictReader(io.StringIO(batch_output.getvalue())))
    assert len(batch_rows) == len(ordered)
    for cid, batch_row in zip(ordered, batch_rows, strict=True):
        e = by_id[cid]
        expected = {name: rows[cid][name] for name in FEATURE_NAMES}
        live = predict_conflict(
            context, tenant,
            ConflictPredictionRequest(domain=e.domain, user_id=e.user_id, entity_type=e.entity_type,
                                      entity_id=e.entity_id, fields=e.fields_changed, device_id=e.device_id,
                                      client_last_sync_at=e.client_last_sync_at),
            request_id=f"live-{cid}", now=e.received_at,
        )["features"]
        assert live == pytest.approx(expected, abs=1e-12), cid
        assert {k: float(batch_row[k]) for k in expected} == pytest.approx(expected, abs=1e-9), cid
        assert datetime.fromisoformat(batch_row["features_as_of"]) == from_us(int(rows[cid]["as_of"]))
    # Requests without fields or device take the user's usual fields and latest sync, alike.
    plain = [FeatureRequest(f"p{n}", tenant, e.user_id, e.domain, e.entity_type, e.entity_id, None,
                            e.received_at or T0) for n, e in enumerate(history[::7])]
    with context.database.transaction() as tx:
        columns = features_for_requests(tx, plain)
        for n, request in enumerate(plain):
            live_row = feature_vector(live_features(tx, request))
            assert live_row == pytest.approx({name: float(columns[name][n]) for name in FEATURE_NAMES}, abs=1e-12)


def test_keys_hashed_in_the_client_are_the_stored_events_keys(context: AppContext, tenant: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch scoring hashes request keys itself (keys.py) when the server's conflict_key agrees,
    and asks the server when it does not: either way a request's keys are its stored events'."""
    texts = ["", "a", "é", "日本", *("x" * n + "€" for n in range(40)), "k" * 300]
    with context.database.transaction() as tx:
        assert hash_keys(texts).tolist() == [tx.fetch_value("SELECT conflict_key(CAST(:k AS text))", k=k) for k in texts]
    store(context, tenant, [event(n, "u" * (n + 1), n, ["f" * (n + 1), "g"], entity=f"r{n}", device=f"d{n}")
                            for n in range(13)])
    requests = [FeatureRequest(str(n), tenant, "u" * (n + 1), "voice", "recording", f"r{n}", ("f" * (n + 1), "g"),
                               T0 + timedelta(days=1), f"d{n}") for n in range(13)]
    with context.database.transaction() as tx:
        stored = tx.fetch_all("SELECT user_key, entity_key, device_key, field_keys FROM sync_events"
                              " ORDER BY received_at")
        here = request_columns(tx, RequestTable.of(requests))
        monkeypatch.setattr(features_repository, "_hashes_alike", lambda tx: False)
        asked = request_columns(tx, RequestTable.of(requests))
    for columns in (here, asked):
        for stored_name, name in (("user_key", "user"), ("entity_key", "entity"), ("device_key", "device")):
            assert getattr(columns, name).tolist() == [row[stored_name] for row in stored]
        assert columns.field.astype(">i8").tobytes() == b"".join(row["field_keys"] for row in stored)


def test_batch_scoring_takes_what_the_api_takes_and_names_a_bad_line(context: AppContext, tenant: str) -> None:
    header = "user_id,domain,entity_type,entity_id,fields,as_of,device_id,client_last_sync_at\n"
    accepted = header + ("alice,voice,recording,r1,notes,2026-11-02T12:00:00Z,,\n"
                         "josé,voice,recording,r1,,2026-11-02T14:00:00.5+02:00,tab-1,2026-11-01T08:00:00+00:00\n")
    out = io.StringIO()
    assert score_conflict_csv(context, tenant, io.StringIO(accepted), out)["rows"] == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["row"], r["user_id"], r["as_of"], r["features_as_of"]) for r in rows] == [
        ("2", "alice", "2026-11-02T12:00:00+00:00", "2026-11-02T12:00:00+00:00"),
        ("3", "josé", "2026-11-02T14:00:00.500000+02:00", "2026-11-02T12:00:00.500000+00:00"),
    ]
    assert float(rows[1]["hours_since_last_sync"]) == pytest.approx(28 + 0.5 / 3600)  # since the device's last sync
    bad = header + "alice,voice,recording,r1,,,,\nbob,Voice,recording,r1,,,,\n"
    with pytest.raises(InvalidInput, match="line 3: domain"):
        score_conflict_csv(context, tenant, io.StringIO(bad), io.StringIO())
    impossible = header + "alice,voice,recording,r1,,2026-11-30T12:00:00+00:00,,\nbob,voice,recording,r1,,2026-11-31T12:00:00+00:00,,\n"
    with pytest.raises(InvalidInput, match="line 3: as_of"):  # well formed, but no such day
        score_conflict_csv(context, tenant, io.StringIO(impossible), io.StringIO())
    for when in ("1999-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"):  # as every client time
        outside = header + f"alice,voice,recording,r1,,2026-11-30T12:00:00+00:00,,\nbob,voice,recording,r1,,{when},,\n"
        with pytest.raises(InvalidInput, match="line 3: as_of: must be from 2000-01-01"):
            score_conflict_csv(context, tenant, io.StringIO(outside), io.StringIO())
    # A last sync after the moment the prediction is asked, as the API refuses it (after its now).
    later = header + ("alice,voice,recording,r1,,2026-11-02T12:00:00Z,tab-1,2026-11-02T11:00:00Z\n"
                      "bob,voice,recording,r1,,2026-11-02T09:00:00Z,tab-2,2026-11-02T10:00:00Z\n")
    with pytest.raises(InvalidInput, match="line 3: client_last_sync_at: is after the row's as_of"):
        score_conflict_csv(context, tenant, io.StringIO(later), io.StringIO())


def test_the_older_history_read_as_counts_only_stays_exact_at_the_window_edges(context: AppContext,
                                                                              tenant: str) -> None:
    """Batch scoring takes events older than every window but the conflict rate's (30 days and an
    hour before its earliest row) as (time, user, conflicted) only: each row's 90-day rate is still
    exact at its own edge, a microsecond either side, and at the split of the read."""
    first, second = T0, T0 + timedelta(days=20, minutes=7)
    split = first - RECENT_LOOKBACK
    us = timedelta(microseconds=1)
    times = [a - timedelta(days=90) + d for a in (first, second) for d in (-us, 0 * us, us)]
    times += [split - us, split, split + us, first - timedelta(days=3), second - timedelta(hours=2)]
    history = [SyncEvent(client_event_id=f"old{n}", user_id=("alice", "bob")[n % 2], device_id="d", domain="voice",
                         entity_type="recording", entity_id="r1", fields_changed=["notes"], received_at=at,
                         conflicted=n % 3 == 0, conflict_fields=["notes"] if n % 3 == 0 else [])
               for n, at in enumerate(times)]
    store(context, tenant, history)
    requests = [FeatureRequest(f"{user}{n}", tenant, user, "voice", "recording", "r1", None, at)
                for user in ("alice", "bob") for n, at in enumerate((first, second))]
    with context.database.transaction() as tx:
        batch = features_for_requests(tx, requests)
        for n, request in enumerate(requests):
            live = live_features(tx, request)
            assert {k: float(batch[k][n]) for k in (*FEATURE_NAMES, "support_user_syncs")} == pytest.approx(
                {k: live[k] for k in (*FEATURE_NAMES, "support_user_syncs")}, abs=1e-12), request.request_id
            in_window = [e for e in history if e.user_id == request.user_id and e.received_at is not None
                         and request.as_of - timedelta(days=90) <= e.received_at < request.as_of]
            assert batch["support_user_syncs"][n] == len(in_window)
            assert batch["user_conflict_rate"][n] == pytest.approx(
                (sum(e.conflicted for e in in_window) + 1) / (len(in_window) + 10))
        # The events before the split came as counts only; the split's own and later ones whole.
        read = load_event_columns(tx, tenant, first - LOOKBACK, second, whole=WholeEvents.all_from(to_us(split)))
        assert read.rate_only is not None
        assert len(read.rate_only.t) == sum(1 for at in times if at < split)
        assert len(read) == sum(1 for at in times if split <= at < second)


def test_rows_reaching_further_back_than_a_week_read_whole_events_of_their_entity_and_user_only(
    context: AppContext, tenant: str
) -> None:
    """Every row gets whole events from a week before the earliest; further back only those of the
    entities (and, for rows naming no fields, the users) of rows that reach back further: a device
    whose last sync is 10 days old, a row taking its user's usual fields. Edits a microsecond either
    side of that last sync, and on another entity before the week, count as the live statement
    counts them."""
    asked = T0 + timedelta(days=40)
    last_sync = asked - timedelta(days=10)
    us = timedelta(microseconds=1)

    def sync(n: int, user: str, entity: str, at: datetime, fields: list[str]) -> SyncEvent:
        return SyncEvent(client_event_id=f"s{n}", user_id=user, device_id="d", domain="voice", entity_type="recording",
                         entity_id=entity, fields_changed=fields, received_at=at, conflicted=n % 2 == 0)

    history = [sync(n, "bob", "r1", last_sync + d, ["notes"]) for n, d in enumerate((-us, 0 * us, us, timedelta(days=5)))]
    history += [sync(4, "carol", "r1", last_sync - timedelta(days=20), ["notes"]),  # counts for her rate only
                sync(5, "erin", "r3", asked - timedelta(days=20), ["notes"]),  # erin's usual field, elsewhere
                sync(6, "bob", "r2", asked - timedelta(days=8), ["notes"]),  # before the week, not wanted whole
                sync(7, "bob", "r2", asked - timedelta(hours=2), ["notes"])]
    store(context, tenant, history)
    requests = [FeatureRequest("carol", tenant, "carol", "voice", "recording", "r1", ("notes",), asked, "c", last_sync),
                FeatureRequest("erin", tenant, "erin", "voice", "recording", "r1", None, asked),
                FeatureRequest("dave", tenant, "dave", "voice", "recording", "r2", ("notes",), asked, "x",
                               asked - timedelta(days=1))]
    with context.database.transaction() as tx:
        columns = request_columns(tx, RequestTable.of(requests))
        whole = whole_events_for(columns)
        batch = features_for_requests(tx, requests)
        live = [live_features(tx, request) for request in requests]
    assert [row["other_edits_since_sync"] for row in live] == [3.0, 4.0, 1.0]  # erin: since her sync 20 days back
    assert [row["field_overlap_score"] for row in live] == [1.0, 1.0, 1.0]
    assert live[0]["support_user_syncs"] == 1.0  # carol's own sync, 30 days back: read as counts only
    for n, row in enumerate(live):
        for name in (*FEATURE_NAMES, "support_user_syncs"):
            assert float(batch[name][n]) == pytest.approx(row[name], abs=1e-12), (n, name)
    assert from_us(whole.since) == asked - timedelta(days=7, hours=1)
    assert from_us(whole.earlier_since) == asked - timedelta(days=30, hours=1)  # erin's usual fields
    assert whole.earlier_entities.tolist() == [columns.entity[0]]  # r1 (carol's and erin's)
    assert whole.earlier_users.tolist() == [columns.user[1]]  # erin


def test_batch_scoring_reads_a_file_as_csv_does_whatever_its_quoting_and_line_ends(context: AppContext,
                                                                                   tenant: str, tmp_path: Path) -> None:
    """The same requests written plainly, with CRLF and blank lines, quoted, and with the optional
    trailing columns left off a row, score alike (the quick split and csv.reader agree)."""
    store(context, tenant, [event(1, "alice", 0, ["notes"], conflicted=True), event(2, "bob", 30, ["notes", "tags"])])
    header = "user_id,domain,entity_type,entity_id,fields,as_of,device_id,client_last_sync_at"
    rows = ["alice,voice,recording,r1,notes;tags,2026-11-01T13:00:00+00:00,tab,2026-11-01T11:00:00+00:00",
            "bob,voice,recording,r1,,2026-11-01T14:00:00.250000+00:00,,"]
    plain = "\n".join([header, *rows]) + "\n"
    forms = {
        "crlf and blank lines": "\r\n".join([header, "", rows[0], "", rows[1], ""]),
        "CR alone, CRLF and LF in one file": f"{header}\r{rows[0]}\r\n\r{rows[1]}\n",
        "quoted": "\n".join([header, *(",".join(f'"{v}"' for v in row.split(",")) for row in rows)]),
        "short row": "\n".join([header, rows[0], rows[1].removesuffix(",,")]),
        # Plain files whose lines are not what the output echoes: the values are normalised.
        "other column order, an extra column": "\n".join([
            "entity_id,user_id,note,domain,entity_type,fields,as_of,device_id,client_last_sync_at",
            "r1,alice,x,voice,recording,notes;tags,2026-11-01T13:00:00+00:00,tab,2026-11-01T11:00:00+00:00",
            "r1,bob,y,voice,recording,,2026-11-01T14:00:00.250000+00:00,,"]),
        "Z, a short or zero fraction, empty field names": "\n".join([
            header, "alice,voice,recording,r1,;notes;;tags;,2026-11-01T13:00:00Z,tab,2026-11-01T11:00:00.000000+00:00",
            "bob,voice,recording,r1,;,2026-11-01T14:00:00.25+00:00,,"]),
    }

    def scored(text: str) -> str:
        out = io.StringIO()
        score_conflict_csv(context, tenant, io.StringIO(text), out)
        return out.getvalue()

    expected = scored(plain)
    assert len(list(csv.DictReader(io.StringIO(expected)))) == 2
    for name, text in forms.items():
        assert scored(text) == expected, name
    # A file saved by Excel starts with a byte-order mark; it is not part of the first column's name.
    source, target = tmp_path / "requests.csv", tmp_path / "scored.csv"
    source.write_bytes(b"\xef\xbb\xbf" + plain.encode())
    score_conflict_file(context, tenant, source, target)
    assert target.read_bytes().decode("utf-8") == expected


@pytest.fixture
def split_scoring(context: AppContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AppContext, AppContext]]:
    """One-process and three-process scoring of the same context, splitting files of any size,
    with one `now` for both (blank as_of)."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls.fromisoformat("2026-11-08T09:30:00.250000+00:00")  # after every history here

    monkeypatch.setattr(scoring, "datetime", Frozen)
    monkeypatch.setattr(scoring, "PARALLEL_MIN_ROWS", 1)
    one, three = (AppContext(replace(context.settings, scoring_processes=n)) for n in (1, 3))
    yield one, three
    one.database.close()
    three.database.close()


def _requests_text(history: list[SyncEvent], quoted: bool) -> str:
    """Every event as a request, in history order; every fifth with blank as_of and every seventh
    without device; quoted: values quoted as a spreadsheet writes them, with CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL,
                        lineterminator="\r\n" if quoted else "\n")
    writer.writerow(["user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id",
                     "client_last_sync_at"])
    for n, e in enumerate(history):
        assert e.received_at is not None
        writer.writerow([e.user_id, e.domain, e.entity_type, e.entity_id, ";".join(e.fields_changed),
                         "" if n % 5 == 0 else e.received_at.isoformat(), "" if n % 7 == 0 else e.device_id,
                         e.client_last_sync_at.isoformat() if e.client_last_sync_at else ""])
    return out.getvalue()


def test_batch_scoring_split_over_processes_writes_what_one_process_writes(
    context: AppContext, tenant: str, split_scoring: tuple[AppContext, AppContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    history = random_history(5)
    store(context, tenant, history)
    one, three = split_scoring
    plain = _requests_text(history, quoted=False)
    lines = plain.splitlines()
    forms = {  # the text cut at line ends (its rows counted past blank lines); csv.reader's rows cut
        "plain": plain, "crlf, blank lines": "\r\n".join(f"{line}\r\n" if n % 9 == 4 else line
                                                         for n, line in enumerate(lines)) + "\r\n",
        "LF and lone CR, blank lines": "".join(line + ("\r" if n % 3 == 1 else "\n") * (2 if n % 11 == 6 else 1)
                                               for n, line in enumerate(lines)),
        "quoted": _requests_text(history, quoted=True),
    }
    for name, text in forms.items():
        alone, split = io.StringIO(), io.StringIO()
        assert score_conflict_csv(one, tenant, io.StringIO(text), alone)["rows"] == len(history)
        assert score_conflict_csv(three, tenant, io.StringIO(text), split)["rows"] == len(history)
        assert split.getvalue() == alone.getvalue(), name
        rows = list(csv.DictReader(io.StringIO(split.getvalue())))
        assert [r["row"] for r in rows] == [str(n + 2) for n in range(len(history))]
        assert [(r["user_id"], r["entity_id"]) for r in rows] == [(e.user_id, e.entity_id) for e in history]
        assert {r["as_of"] for r in rows[::5]} == {"2026-11-08T09:30:00.250000+00:00"}
        assert len({r["probability"] for r in rows}) > 5
    # A server that hashes keys otherwise than this process: they are asked of it, in one process.
    monkeypatch.setattr(features_repository, "_hashes_alike", lambda tx: False)
    server_hashed = io.StringIO()
    score_conflict_csv(three, tenant, io.StringIO(forms["quoted"]), server_hashed)
    assert server_hashed.getvalue() == alone.getvalue()


def test_a_bad_row_in_a_later_part_is_named_by_its_line_in_the_file_and_nothing_is_written(
    context: AppContext, tenant: str, split_scoring: tuple[AppContext, AppContext], tmp_path: Path
) -> None:
    _, three = split_scoring
    lines = _requests_text(random_history(5), quoted=False).splitlines(keepends=True)
    bad = len(lines) * 5 // 6  # in the third part
    lines[bad] = lines[bad].replace(",voice,", ",Voice,")
    source, target = tmp_path / "requests.csv", tmp_path / "scored.csv"
    source.write_text("".join(lines))
    with pytest.raises(InvalidInput, match=f"^line {bad + 1}: domain"):
        score_conflict_file(three, tenant, source, target)
    lines[4] = lines[4].replace("+00:00,", ",", 1)  # line 5: as_of without a time zone, in the first part
    source.write_text("".join(lines))
    with pytest.raises(InvalidInput, match="^line 5: as_of needs a time zone"):
        score_conflict_file(three, tenant, source, target)
    assert not target.exists() and not list(tmp_path.glob("scored*"))


def test_a_scoring_process_that_dies_is_an_error_not_a_hang(
    context: AppContext, tenant: str, split_scoring: tuple[AppContext, AppContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, three = split_scoring
    parent, scored = os.getpid(), scoring._scored

    def dies_in_a_child(*args: Any) -> str:
        if os.getpid() != parent:
            os._exit(3)
        return scored(*args)

    monkeypatch.setattr(scoring, "_scored", dies_in_a_child)
    out = io.StringIO()
    with pytest.raises(MlstackError, match="ended without an answer"):
        score_conflict_csv(three, tenant, io.StringIO(_requests_text(random_history(5), quoted=False)), out)
    assert out.getvalue() == ""
