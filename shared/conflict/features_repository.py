"""Where the conflict features' inputs come from (definitions: shared/conflict/features.py).

Two readings of the same definitions:
- live, one request: one SQL statement computes the counts the definitions need (each an index
  range scan), and `features_from_counts` turns them into features;
- many rows (training, batch scoring): the stored events of the window are read as integer
  columns, each packed by PostgreSQL into one binary value (no per-row parsing in Python), and
  `compute_features` computes every row at once.
tests/integration/test_conflict_features.py holds the two equal on histories with sync batches.

Keys travel as 64-bit hashes (`conflict_key`, i.e. `hashtextextended`) of the tenant-qualified
ids: stored with each event at intake (migration 0008), computed by the same SQL function for
requests; two ids would have to collide in 64 bits to be mistaken for each other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from shared.adapters.db import Database, Transaction
from shared.conflict.features import (
    FEATURE_NAMES,
    HOURS_CAP,
    LOOKBACK,
    NO_KEY,
    NO_TIME,
    PRIOR_CONFLICTS,
    PRIOR_SYNCS,
    RECENT_LOOKBACK,
    SUPPORT_NAMES,
    EventColumns,
    RateOnlyEvents,
    RequestColumns,
    WholeEvents,
    compute_features,
    datetimes_from_us,
    features_from_counts,
    from_us,
    requests_from_events,
    to_us,
    whole_events_for,
    whole_events_since,
)
from shared.conflict.keys import hash_keys
from shared.conflict.model import design_matrix
from shared.platform.kinds import TrainingSet


@dataclass(frozen=True)
class FeatureRequest:
    request_id: str
    tenant_id: str
    user_id: str
    domain: str
    entity_type: str
    entity_id: str
    fields: tuple[str, ...] | None
    as_of: datetime
    device_id: str | None = None
    client_last_sync_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["fields"] = list(self.fields) if self.fields else None
        values["as_of"] = self.as_of.isoformat()
        values["client_last_sync_at"] = self.client_last_sync_at.isoformat() if self.client_last_sync_at else None
        return values


def _epoch_us(column: str) -> str:
    return f"CAST(extract(epoch FROM {column}) * 1000000 AS bigint)"


# One request's counts. Intervals are in hours: a day in a session time zone with daylight saving
# is not always 24 hours, and the columnar path counts exact microseconds.
LIVE_COUNTS_SQL = f"""
WITH r AS (
    SELECT CAST(:tenant AS uuid) AS tenant_id, CAST(:user_id AS text) AS user_id, CAST(:domain AS text) AS domain,
           CAST(:entity_type AS text) AS entity_type, CAST(:entity_id AS text) AS entity_id,
           CAST(:device_id AS text) AS device_id, CAST(:last_sync AS timestamptz) AS last_sync,
           CAST(:fields AS text[]) AS fields, CAST(:as_of AS timestamptz) AS asked
), a AS MATERIALIZED (
    SELECT r.*, COALESCE((
        SELECT min(e.received_at) FROM sync_events e
        WHERE e.tenant_id = r.tenant_id AND e.user_id = r.user_id AND e.device_id = r.device_id
          AND e.client_last_sync_at = r.last_sync
          AND e.received_at >= r.asked - INTERVAL '1 hour' AND e.received_at < r.asked), r.asked) AS as_of
    FROM r
), u AS MATERIALIZED (
    SELECT a.*, h.syncs, h.conflicts, h.last_at FROM a CROSS JOIN LATERAL (
        SELECT count(*) AS syncs, count(*) FILTER (WHERE e.conflicted) AS conflicts,
               max(e.received_at) FILTER (WHERE e.received_at >= a.as_of - INTERVAL '720 hours') AS last_at
        FROM sync_events e
        WHERE e.tenant_id = a.tenant_id AND e.user_id = a.user_id
          AND e.received_at >= a.as_of - INTERVAL '2160 hours' AND e.received_at < a.as_of) h
), s AS (
    SELECT u.*, LEAST(GREATEST(COALESCE(u.last_sync, u.last_at, u.as_of - INTERVAL '720 hours'),
                               u.as_of - INTERVAL '720 hours'), u.as_of) AS since
    FROM u
)
SELECT {_epoch_us("s.as_of")} AS as_of, {_epoch_us("s.last_at")} AS last_user_sync, s.syncs AS user_syncs,
       s.conflicts AS user_conflicts, ent.edits AS entity_edits, ent.editors, others.n AS others_since,
       COALESCE(cardinality(mine.fields), 0) AS my_fields,
       (SELECT count(*) FROM unnest(mine.fields) AS f WHERE f = ANY(others.fields)) AS overlapping_fields
FROM s
CROSS JOIN LATERAL (
    SELECT (SELECT count(*) FROM sync_events e
            WHERE e.tenant_id = s.tenant_id AND e.domain = s.domain AND e.entity_type = s.entity_type
              AND e.entity_id = s.entity_id AND e.received_at >= s.as_of - INTERVAL '168 hours'
              AND e.received_at < s.as_of) AS edits,
           (SELECT count(DISTINCT e.user_id) FROM sync_events e
            WHERE e.tenant_id = s.tenant_id AND e.domain = s.domain AND e.entity_type = s.entity_type
              AND e.entity_id = s.entity_id AND e.user_id <> s.user_id
              AND e.received_at >= s.as_of - INTERVAL '24 hours' AND e.received_at < s.as_of) AS editors
) ent
CROSS JOIN LATERAL (
    SELECT count(DISTINCT e.event_id) AS n, array_agg(DISTINCT f) AS fields
    FROM sync_events e CROSS JOIN LATERAL unnest(e.fields_changed) AS f
    WHERE e.tenant_id = s.tenant_id AND e.domain = s.domain AND e.entity_type = s.entity_type
      AND e.entity_id = s.entity_id AND e.user_id <> s.user_id AND e.received_at >= s.since AND e.received_at < s.as_of
) others
CROSS JOIN LATERAL (
    SELECT COALESCE(s.fields, (
        SELECT array_agg(DISTINCT f) FROM sync_events e CROSS JOIN LATERAL unnest(e.fields_changed) AS f
        WHERE e.tenant_id = s.tenant_id AND e.user_id = s.user_id
          AND e.received_at >= s.as_of - INTERVAL '720 hours' AND e.received_at < s.as_of)) AS fields
) mine
"""


def live_features(tx: Transaction, request: FeatureRequest) -> dict[str, Any]:
    """One request's feature row (FEATURE_NAMES, SUPPORT_NAMES, as_of) in one statement."""
    counts = tx.fetch_prepared(
        LIVE_COUNTS_SQL, tenant=request.tenant_id, user_id=request.user_id, domain=request.domain,
        entity_type=request.entity_type, entity_id=request.entity_id, device_id=request.device_id,
        last_sync=request.client_last_sync_at, fields=list(request.fields) if request.fields else None,
        as_of=request.as_of,
    )[0]  # one row always
    last_sync = to_us(request.client_last_sync_at) if request.client_last_sync_at else NO_TIME
    values = features_from_counts({
        **counts, "last_sync": last_sync,
        "last_user_sync": NO_TIME if counts["last_user_sync"] is None else counts["last_user_sync"],
    })
    row: dict[str, Any] = {name: float(values[name]) for name in (*FEATURE_NAMES, *SUPPORT_NAMES)}
    row["request_id"] = request.request_id
    row["as_of"] = from_us(counts["as_of"])
    return row


# -- many rows: packed integer columns into numpy -------------------------------------------------

# A bulk read is one row of bytea aggregates, one per column: PostgreSQL packs each column's values
# big-endian (int8send, timestamptz_send: µs since 2000, boolsend) into one value, so the client
# receives a few values and numpy reads them in place: no per-row or per-value parsing in Python
# (pg8000 handles each row, or each COPY message, in Python, which cost several microseconds a
# row). The row comes through a binary COPY, so the values are not sent as hex text. The keys are
# stored at intake (migration 0008), so a read hashes nothing. COPY takes no parameters: they are
# transaction-local settings, read once each (a scalar subquery).
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in Unix µs


def _setting(name: str, cast: str, nullable: bool = True) -> str:
    """A setting read once (an empty one is NULL when nullable, else an error: a window is never
    left unset by mistake)."""
    value = f"current_setting('mlstack.{name}')"
    if nullable:
        value = f"NULLIF({value}, '')"
    return f"(SELECT CAST({value} AS {cast}))"


# PostgreSQL filters by tenant and time only, which its scan does at a small cost per row (and it
# may split the scan over parallel workers). Which events of the window the requests need (their
# users' and entities') and which of those come whole (WholeEvents) is decided here by numpy after
# the read (np.isin): per scanned row, PostgreSQL's hashed key lookups cost more than packing and
# shipping the event (on 207,600 events: 160 ms against 48 ms for the scan alone). Every event from
# `events_whole_since` comes whole; older ones (which only the conflict rate's window reaches, bar
# a few rows' entities and users: WholeEvents) as time, user and conflicted: a third of the bytes.
# Unset: every event whole. Each event's fixed-width values are one record (one aggregate call per
# event, not one per column), read by numpy as a structured array; a parallel aggregate combines
# the workers' parts of every column in the same order, so the records and fields stay aligned.
_WHOLE = f"e.received_at >= COALESCE({_setting('events_whole_since', 'timestamptz')}, '-infinity')"
_EVENTS_SQL = f"""
SELECT string_agg(int8send(e.event_id) || timestamptz_send(e.received_at) || int8send(e.user_key)
                  || int8send(e.entity_key) || int8send(e.device_key)
                  || COALESCE(timestamptz_send(e.client_last_sync_at), int8send({NO_TIME}))
                  || int4send(length(e.field_keys) / 8) || boolsend(e.conflicted), ''::bytea)
           FILTER (WHERE {_WHOLE}) AS events,
       string_agg(e.field_keys, ''::bytea) FILTER (WHERE {_WHOLE}) AS field_keys,
       string_agg(timestamptz_send(e.received_at) || int8send(e.user_key) || boolsend(e.conflicted), ''::bytea)
           FILTER (WHERE NOT {_WHOLE}) AS rate_only
FROM sync_events e
WHERE e.received_at >= {_setting("events_start", "timestamptz", nullable=False)}
  AND e.received_at < {_setting("events_end", "timestamptz", nullable=False)}
  AND ({_setting("events_tenant", "uuid")} IS NULL OR e.tenant_id = {_setting("events_tenant", "uuid")})
"""
_EVENT_RECORD = np.dtype([("event_id", ">i8"), ("received_at", ">i8"), ("user_key", ">i8"), ("entity_key", ">i8"),
                          ("device_key", ">i8"), ("last_sync", ">i8"), ("field_count", ">i4"), ("conflicted", "?")])
_RATE_ONLY_RECORD = np.dtype([("received_at", ">i8"), ("user_key", ">i8"), ("conflicted", "?")])


def _int8(data: bytes | None) -> NDArray[np.int64]:
    return np.frombuffer(data or b"", dtype=">i8").astype(np.int64)


def _times_us(stamps: NDArray[np.int64]) -> NDArray[np.int64]:
    """PostgreSQL's µs since 2000 as epoch µs (NO_TIME stays)."""
    return np.where(stamps != NO_TIME, stamps + _PG_EPOCH_US, NO_TIME)


def _records(data: bytes | None, record: np.dtype[Any]) -> NDArray[Any]:
    return np.frombuffer(data or b"", dtype=record)


def _member(values: NDArray[np.int64], ordered: NDArray[np.int64]) -> NDArray[np.bool_]:
    """values in the sorted distinct keys, by binary search (np.isin sorts the values too)."""
    if not len(ordered):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    found: NDArray[np.bool_] = ordered[at] == values
    return found


def load_event_columns(tx: Transaction, tenant_id: str | None, start: datetime, end: datetime,
                       users: NDArray[np.int64] | None = None, entities: NDArray[np.int64] | None = None,
                       whole: WholeEvents | None = None) -> EventColumns:
    """Every stored event received in [start, end) (of the tenant, or of all), in receipt order;
    only those of the given user or entity keys when given (what a batch's requests can see).
    Those that `whole` does not bring whole come as RateOnlyEvents (time, user, conflicted) only
    (of the given users, when given: no other user's rate is asked for)."""
    raw = _read_events(tx, tenant_id, start, end, None if whole is None else whole.earlier_since)
    return _event_columns(raw, users, entities, whole)


def _read_events(tx: Transaction, tenant_id: str | None, start: datetime, end: datetime,
                 whole_since: int | None) -> list[bytes | None]:
    """The packed columns of _EVENTS_SQL: every event in [start, end), whole from `whole_since`
    (epoch µs; None: all whole)."""
    return tx.copy_out_row(
        _EVENTS_SQL, **{"mlstack.events_start": start.isoformat(), "mlstack.events_end": end.isoformat(),
                        "mlstack.events_tenant": tenant_id,
                        "mlstack.events_whole_since": None if whole_since is None else from_us(whole_since).isoformat()})


def _event_columns(raw: list[bytes | None], users: NDArray[np.int64] | None, entities: NDArray[np.int64] | None,
                   whole: WholeEvents | None) -> EventColumns:
    """load_event_columns' columns from what _read_events read (with whole.earlier_since)."""
    events, field_keys, rate_only = raw
    row = _records(events, _EVENT_RECORD)
    t = _times_us(row["received_at"].astype(np.int64))
    user, entity = row["user_key"].astype(np.int64), row["entity_key"].astype(np.int64)
    wanted = np.ones(len(row), dtype=bool)
    users = None if users is None else np.unique(users)
    if users is not None and entities is not None:
        wanted = _member(user, users) | _member(entity, np.unique(entities))
    if whole is not None:  # read whole from earlier_since; whole from `since` on, before only for the keys listed
        whole_row = ((t >= whole.since) | _member(entity, np.unique(whole.earlier_entities))
                     | _member(user, np.unique(whole.earlier_users)))
    else:
        whole_row = wanted
    keep = np.flatnonzero(wanted & whole_row)
    order = keep[np.lexsort((row["event_id"].astype(np.int64)[keep], t[keep]))]
    # The fields arrive event by event in read order; they are put in receipt order too (their
    # times then need no sort in compute_features).
    field_count = row["field_count"].astype(np.int64)
    field_start = np.cumsum(field_count) - field_count
    count, first = field_count[order], field_start[order]
    within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    rate = _records(rate_only, _RATE_ONLY_RECORD)
    rate_t = _times_us(rate["received_at"].astype(np.int64))
    rate_user = rate["user_key"].astype(np.int64)
    rate_conflicted = rate["conflicted"]
    demoted = np.flatnonzero(wanted & ~whole_row)  # read whole, needed only for the rates
    rate_keep = np.ones(len(rate), dtype=bool) if users is None else _member(rate_user, users)
    rate_t = np.concatenate((rate_t[rate_keep], t[demoted]))
    rate_user = np.concatenate((rate_user[rate_keep], user[demoted]))
    rate_conflicted = np.concatenate((rate_conflicted[rate_keep], row["conflicted"][demoted]))
    rate_order = np.argsort(rate_t, kind="stable")  # ties in any order: only counts are taken of them
    return EventColumns(
        t=t[order], user=user[order], entity=entity[order], device=row["device_key"].astype(np.int64)[order],
        last_sync=_times_us(row["last_sync"].astype(np.int64))[order], conflicted=row["conflicted"][order],
        field_row=np.repeat(np.arange(len(order)), count),
        field=_int8(field_keys)[np.repeat(first, count) + within],
        rate_only=RateOnlyEvents(rate_t[rate_order], rate_user[rate_order], rate_conflicted[rate_order]),
    )


# Keys are hashed here (shared/conflict/keys.py) when the server hashes alike, else by the server.
# They go to it as one newline-joined text: pg8000 escapes a text[] parameter character by
# character in Python, which cost more than everything else in batch scoring. No key holds a
# newline (ids, names and fields are validated), and the answer is one comma-joined text for the
# same reason. conflict_key is the stored events' key (migration 0008).
_HASH_KEYS_SQL = """
SELECT string_agg(CAST(conflict_key(k) AS text), ',' ORDER BY n)
FROM unnest(string_to_array(CAST(:keys AS text), E'\\n')) WITH ORDINALITY AS x(k, n)
"""
# Keys of every length class of the hash's last block (0..11 bytes and whole blocks) and multi-byte
# UTF-8: the server's encoding or byte order would show in one of them.
_PROBE_KEYS = tuple("tenant|user-é€日|" + "k" * n for n in range(25))


def _server_hashes(tx: Transaction, distinct: Sequence[str]) -> NDArray[np.int64]:
    joined = tx.fetch_value(_HASH_KEYS_SQL, keys="\n".join(distinct))
    return np.array(joined.split(","), dtype=np.int64)


def _hashes_alike(tx: Transaction) -> bool:
    """Whether this server's conflict_key is hash_keys (asked once per connection)."""
    return tx.once_per_connection(
        "conflict_key_is_hash_keys", lambda tx: bool((_server_hashes(tx, _PROBE_KEYS) == hash_keys(_PROBE_KEYS)).all()))


def _hashes(tx: Transaction, keys: Sequence[str]) -> NDArray[np.int64]:
    """The keys' hashes, as the stored events' columns carry them. Each distinct key is hashed
    once: a batch repeats its users, entities, devices and fields many times."""
    if not keys:
        return np.zeros(0, dtype=np.int64)
    index = {key: n for n, key in enumerate(dict.fromkeys(keys))}
    codes = np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))  # C loops, no genexpr
    distinct = list(index)
    hashed = hash_keys(distinct) if _hashes_alike(tx) else _server_hashes(tx, distinct)
    return hashed[codes]


@dataclass(frozen=True)
class RequestTable:
    """Requests column by column (batch scoring reads them so, without an object per row):
    times in epoch µs, `last_sync` NO_TIME and `device_id` None when not given, `fields` None for
    the user's usual fields."""

    tenant_id: Sequence[str]
    user_id: Sequence[str]
    domain: Sequence[str]
    entity_type: Sequence[str]
    entity_id: Sequence[str]
    device_id: Sequence[str | None]
    fields: Sequence[Sequence[str] | None]
    as_of: NDArray[np.int64]
    last_sync: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.as_of)

    @classmethod
    def of(cls, requests: Sequence[FeatureRequest]) -> RequestTable:
        return cls(
            [r.tenant_id for r in requests], [r.user_id for r in requests], [r.domain for r in requests],
            [r.entity_type for r in requests], [r.entity_id for r in requests], [r.device_id for r in requests],
            [r.fields for r in requests], np.array([to_us(r.as_of) for r in requests], dtype=np.int64),
            np.array([to_us(r.client_last_sync_at) if r.client_last_sync_at else NO_TIME for r in requests],
                     dtype=np.int64),
        )


def _coded(values: Sequence[Any]) -> tuple[list[Any], NDArray[np.int64]]:
    """The distinct values (first seen first) and each value's place among them, by C loops
    (map): a batch repeats its users, entities, devices and field lists. One dict lookup per value
    (setdefault keeps each value's first row), then each row's first row is numbered among the
    first rows, which ascend: a string column of issue 8's case 6-9.5 -> 4.5-7 ms."""
    first_row: dict[Any, int] = {}
    first = np.fromiter(map(first_row.setdefault, values, range(len(values))), dtype=np.int64, count=len(values))
    firsts = np.fromiter(first_row.values(), dtype=np.int64, count=len(first_row))
    return list(first_row), np.searchsorted(firsts, first)


def _combinations(*columns: tuple[list[Any], NDArray[np.int64]]) -> tuple[list[int], NDArray[np.int64]]:
    """The rows' distinct combinations of coded columns' values (`_coded`): the first row of each,
    and each row's combination's number. The codes are combined as integers: a tuple of strs would
    be hashed anew at every row, where a str caches its hash."""
    code, bound = np.zeros(len(columns[0][1]), dtype=np.int64), 1
    for distinct, at in columns:
        if bound * len(distinct) >= 2**62:  # renumber the combinations so far before they overflow
            _, code = np.unique(code, return_inverse=True)
            bound = int(code.max()) + 1
        code, bound = code * len(distinct) + at, bound * len(distinct)
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return first.tolist(), inverse


def request_columns(tx: Transaction, table: RequestTable) -> RequestColumns:
    """The requests' keys hashed as the stored events' are. Each distinct user, entity, device and
    field is keyed and hashed once, and the rows take theirs by index."""
    return _request_columns(table, functools.partial(_hashes, tx))


def _request_columns(table: RequestTable, hashes: Callable[[Sequence[str]], NDArray[np.int64]]) -> RequestColumns:
    tenant, user, device = table.tenant_id, table.user_id, table.device_id
    tenant_codes, user_codes = _coded(tenant), _coded(user)
    users, user_at = _combinations(tenant_codes, user_codes)
    entities, entity_at = _combinations(tenant_codes, _coded(table.domain), _coded(table.entity_type),
                                        _coded(table.entity_id))
    devices, device_at = _combinations(tenant_codes, user_codes, _coded(device))
    field_lists, fields_at = _coded(table.fields)
    field_names, name_at = _coded([f for fields in field_lists for f in (fields or ())])
    keys = [*(f"{tenant[n]}|{user[n]}" for n in users),
            *(f"{tenant[n]}|{table.domain[n]}|{table.entity_type[n]}|{table.entity_id[n]}" for n in entities),
            *(f"{tenant[n]}|{user[n]}|{device[n]}" for n in devices), *field_names]
    hashed = hashes(keys)
    user_hash, hashed = hashed[:len(users)], hashed[len(users):]
    entity_hash, hashed = hashed[:len(entities)], hashed[len(entities):]
    device_hash, name_hash = hashed[:len(devices)], hashed[len(devices):]
    # Each row's fields: its field list's run of names, gathered by index (no loop per row).
    list_length = np.array([len(fields or ()) for fields in field_lists], dtype=np.int64)
    list_start = np.cumsum(list_length) - list_length
    length = list_length[fields_at]
    within = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    has_device = np.array([device[n] is not None for n in devices], dtype=bool)[device_at]
    return RequestColumns(
        as_of=table.as_of, user=user_hash[user_at], entity=entity_hash[entity_at],
        device=np.where(has_device, device_hash[device_at], NO_KEY), last_sync=table.last_sync,
        field_row=np.repeat(np.arange(len(table)), length),
        field=name_hash[name_at][np.repeat(list_start[fields_at], length) + within],
    )


@dataclass(frozen=True)
class HistoryWindow:
    """What a batch's history read covers (epoch µs): every event of the tenant (None: of all)
    received in [start, end), whole from `whole_since` (older ones as counts only). Windows of
    parts of a batch merge into the window of the whole (`merged`), which reads what one process
    would for the whole; each part then takes from it what its rows need."""

    tenant_id: str | None
    start: int
    end: int
    whole_since: int

    @classmethod
    def of(cls, table: RequestTable) -> HistoryWindow | None:
        """The window a table's rows need (None: no rows, nothing to read)."""
        if not len(table):
            return None
        tenants = set(table.tenant_id)
        named = np.fromiter(map(bool, table.fields), dtype=bool, count=len(table))
        return cls(next(iter(tenants)) if len(tenants) == 1 else None, to_us(from_us(int(table.as_of.min())) - LOOKBACK),
                   int(table.as_of.max()), whole_events_since(table.as_of, table.last_sync, named))

    @staticmethod
    def merged(windows: Sequence[HistoryWindow | None]) -> HistoryWindow | None:
        given = [w for w in windows if w is not None]
        if not given:
            return None
        tenants = {w.tenant_id for w in given}
        return HistoryWindow(next(iter(tenants)) if len(tenants) == 1 else None, min(w.start for w in given),
                             max(w.end for w in given), min(w.whole_since for w in given))


# What read_history read: the packed columns of _EVENTS_SQL (bytes, which a pipe carries as they
# are), or None when there was nothing to read.
History = list[bytes | None] | None


def read_history(tx: Transaction, window: HistoryWindow | None) -> History:
    if window is None:
        return None
    return _read_events(tx, window.tenant_id, from_us(window.start), from_us(window.end), window.whole_since)


def history_features(requests: RequestColumns, history: History, window: HistoryWindow | None
                     ) -> dict[str, NDArray[np.float64]]:
    """Feature columns of the requests (FEATURE_NAMES, SUPPORT_NAMES, as_of in epoch µs), in their
    order, from a read of a window that holds theirs (no database: a forked process computes its
    part's features from what its parent read)."""
    if history is None or window is None or not len(requests):
        return compute_features(_empty_events(), requests)
    whole = whole_events_for(requests)
    assert whole.earlier_since >= window.whole_since, "the read brought whole what the requests need whole"
    return compute_features(_event_columns(history, requests.user, requests.entity, whole), requests)


def features_for_table(tx: Transaction, table: RequestTable) -> dict[str, NDArray[np.float64]]:
    """Batch scoring in one process: one read of the history the requests' windows need (the events
    of their users and entities received in the lookback before the earliest as-of time and before
    the latest; whole as far back as some row needs them, whole_events_for, older ones only as
    counts), and the feature columns of the requests, in their order, from it."""
    window = HistoryWindow.of(table)
    if not _hashes_alike(tx):
        requests = request_columns(tx, table)
        return history_features(requests, read_history(tx, window), window)
    # The server reads while the keys are hashed here (neither needs the other; the read waits on
    # the socket, which lets this thread run): the hashing costs no wall time.
    with ThreadPoolExecutor(1) as reader:
        read = reader.submit(read_history, tx, window)
        requests = _request_columns(table, hash_keys)
        history = read.result()
    return history_features(requests, history, window)


def features_for_requests(tx: Transaction, requests: Sequence[FeatureRequest]) -> dict[str, NDArray[np.float64]]:
    return features_for_table(tx, RequestTable.of(requests))


def _empty_events() -> EventColumns:
    empty = np.zeros(0, dtype=np.int64)
    return EventColumns(empty, empty, empty, empty, empty, np.zeros(0, dtype=bool), empty, empty)


def training_rows(tx: Transaction, tenant_id: str | None, start: datetime, end: datetime
                  ) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.bool_]]:
    """Every stored event received in [start, end), in receipt order: its features as of the start
    of its sync batch, and its label (did it conflict)."""
    events = load_event_columns(tx, tenant_id, start - LOOKBACK, end,
                                whole=WholeEvents.all_from(to_us(start - RECENT_LOOKBACK)))
    first = int(np.searchsorted(events.t, to_us(start)))
    rows = requests_from_events(events)
    if first == 0:  # no earlier history: the rows are the events' own columns (coded once, not twice)
        return compute_features(events, rows), events.conflicted
    keep = np.arange(first, len(events))
    field_keep = events.field_row >= first
    requests = RequestColumns(rows.as_of[keep], rows.user[keep], rows.entity[keep], rows.device[keep],
                              rows.last_sync[keep], rows.field_row[field_keep] - first, rows.field[field_keep])
    return compute_features(events, requests), events.conflicted[keep]


def feature_vector(row: dict[str, Any]) -> dict[str, float]:
    return {name: float(row[name]) for name in FEATURE_NAMES}


def confidence(row: dict[str, Any]) -> float:
    """How much history the features rest on, 0..1: the user's syncs in the last 90 days against
    20 (a user with 20 or more has a settled conflict rate), times the entity's recent edits against
    5 (with fewer, overlap and editors say little), each capped at 1."""
    user_support = min(1.0, float(row["support_user_syncs"]) / 20.0)
    entity_support = min(1.0, float(row["support_entity_edits"]) / 5.0)
    return round(user_support * (0.5 + 0.5 * entity_support), 4)


class ConflictFeatures(Protocol):
    """Live features, and batch features in stages (so that the parts of a batch split over
    processes read the history once): the window each part's rows need, one read of the merged
    window, each part's requests keyed, and their features from the read."""

    def for_request(self, session: Any, request: FeatureRequest) -> dict[str, Any]:
        """One live request's row: FEATURE_NAMES, SUPPORT_NAMES, request_id, as_of."""
        ...

    def keys_without_database(self, session: Any) -> bool:
        """Whether `keyed` can do without the session (in a forked process)."""
        ...

    def window(self, table: RequestTable) -> HistoryWindow | None: ...

    def read(self, session: Any, window: HistoryWindow | None) -> History: ...

    def keyed(self, session: Any | None, table: RequestTable) -> Any:
        """The table's requests keyed for `from_history`; session None: without the database."""
        ...

    def from_history(self, keyed: Any, history: History, window: HistoryWindow | None
                 ) -> dict[str, NDArray[np.float64]]:
        """Columns (FEATURE_NAMES, SUPPORT_NAMES, as_of in epoch µs) in request order; no database."""
        ...


class PostgresConflictFeatures:
    def for_request(self, session: Transaction, request: FeatureRequest) -> dict[str, Any]:
        return live_features(session, request)

    def keys_without_database(self, session: Transaction) -> bool:
        return _hashes_alike(session)

    def window(self, table: RequestTable) -> HistoryWindow | None:
        return HistoryWindow.of(table)

    def read(self, session: Transaction, window: HistoryWindow | None) -> History:
        return read_history(session, window)

    def keyed(self, session: Transaction | None, table: RequestTable) -> RequestColumns:
        return _request_columns(table, hash_keys) if session is None else request_columns(session, table)

    def from_history(self, keyed: RequestColumns, history: History, window: HistoryWindow | None
                 ) -> dict[str, NDArray[np.float64]]:
        return history_features(keyed, history, window)


class PostgresConflictTrainingSource:
    """Training rows: every sync event of the window, features as of its batch's start, its label."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        with self._database.transaction() as tx:
            columns, labels = training_rows(tx, tenant_id, start, end)
        design = design_matrix(columns)
        as_of = datetimes_from_us(columns["as_of"].astype(np.int64))
        return TrainingSet(design, labels, as_of, start, end)


class InMemoryConflictFeatures:
    """The fake: features set per (user_id, entity_id), else a user and entity with no history."""

    def __init__(self, features: dict[tuple[str, str], dict[str, float]] | None = None) -> None:
        self.features = features or {}

    def for_request(self, session: Any, request: FeatureRequest) -> dict[str, Any]:
        values = self.features.get((request.user_id, request.entity_id), {})
        return {
            "request_id": request.request_id, "as_of": request.as_of,
            **{name: float(values.get(name, 0.0)) for name in FEATURE_NAMES},
            "hours_since_last_sync": float(values.get("hours_since_last_sync", HOURS_CAP)),
            "user_conflict_rate": float(values.get("user_conflict_rate", PRIOR_CONFLICTS / PRIOR_SYNCS)),
            "support_user_syncs": float(values.get("support_user_syncs", 0)),
            "support_entity_edits": float(values.get("support_entity_edits", 0)),
        }

    def keys_without_database(self, session: Any) -> bool:
        return True

    def window(self, table: RequestTable) -> HistoryWindow | None:
        return None

    def read(self, session: Any, window: HistoryWindow | None) -> History:
        return None

    def keyed(self, session: Any | None, table: RequestTable) -> RequestTable:
        return table

    def from_history(self, keyed: RequestTable, history: History, window: HistoryWindow | None
                 ) -> dict[str, NDArray[np.float64]]:
        table, session = keyed, None
        rows = [self.for_request(session, FeatureRequest(
            str(n), table.tenant_id[n], table.user_id[n], table.domain[n], table.entity_type[n], table.entity_id[n],
            None, from_us(int(table.as_of[n])))) for n in range(len(table))]
        columns = {name: np.array([row[name] for row in rows], dtype=np.float64)
                   for name in (*FEATURE_NAMES, *SUPPORT_NAMES)}
        columns["as_of"] = table.as_of.astype(np.float64)
        return columns
