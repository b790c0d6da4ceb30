"""Realistic synthetic sync histories for the sync-conflict prediction demo.

Why this exists: a fresh deployment has no sync events, so the conflict model has nothing to
learn from and the demo has nothing to show. Uniform random events would not do either: the
model would find no signal, and a broken feature pipeline would look no worse than a working one.
This module simulates a history in which conflicts really follow from the five features that
shared/conflict/features_repository.py computes, so a model trained on it shows genuine lift.

The history is a simulation, not a shuffle of independent rows. Users have different habits:
each has their own activity level, some sync every few minutes in bursts while others go offline
for days (gaps between syncs are heavy-tailed), a few are careless and carry a high hidden
conflict propensity, and each has favourite fields and favourite entities within their line of
work (voice recordings, facilities work orders and meters, timesheet shifts). Entities are hot or
cold: popularity follows a Zipf-like law, so a few hot entities are edited by many users every
day while most are touched now and then. Activity follows a working-hours daily rhythm in each
tenant's own time zone, with quiet nights and weekends.

Conflicts come from the mechanism that causes them in a real offline-first app. A device works
offline and, when it syncs, uploads the batch of edits made since its previous sync
(`client_last_sync_at`, shared by the whole batch); an edit collides when another user's sync of
the same entity reached the server after this device's previous sync, i.e. the device edited a
version that is no longer current. The chance of a conflict is small otherwise, rises steeply
when someone else changed the entity in between, more so when they changed the same fields and
the longer this device was away, a little with how crowded the entity is, and with the user's
hidden carelessness (which the user's observed conflict rate can learn), plus noise. About one
event in ten conflicts.
"""

from __future__ import annotations

import csv
import heapq
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

SyncEventDict = dict[str, Any]

FIELDS: tuple[str, ...] = (
    "reading",
    "notes",
    "status",
    "photo",
    "assignee",
    "location",
    "duration",
    "tags",
    "priority",
    "transcript",
)
DOMAINS: tuple[str, ...] = ("voice", "facilities", "timesheets")


@dataclass(frozen=True)
class EntityType:
    """One kind of synced record, with how often each of its fields is edited."""

    domain: str
    name: str
    id_prefix: str
    share_of_domain: float
    field_weights: tuple[tuple[str, float], ...]


ENTITY_TYPES: tuple[EntityType, ...] = (
    EntityType(
        "voice",
        "recording",
        "rec",
        1.0,
        (
            ("transcript", 3.0),
            ("notes", 2.0),
            ("tags", 2.0),
            ("status", 1.0),
            ("duration", 0.6),
            ("assignee", 0.5),
        ),
    ),
    EntityType(
        "facilities",
        "work_order",
        "wo",
        0.6,
        (
            ("status", 3.0),
            ("notes", 2.5),
            ("assignee", 1.5),
            ("photo", 1.5),
            ("priority", 1.0),
            ("location", 0.7),
            ("tags", 0.4),
        ),
    ),
    EntityType(
        "facilities",
        "meter",
        "mtr",
        0.4,
        (("reading", 5.0), ("photo", 2.0), ("notes", 1.2), ("location", 0.5), ("status", 0.5)),
    ),
    EntityType(
        "timesheets",
        "shift",
        "shf",
        1.0,
        (("duration", 3.0), ("status", 2.0), ("notes", 1.5), ("assignee", 0.8), ("location", 0.6)),
    ),
)

# --- How conflicts arise: log-odds = intercept + noise + propensity, plus, when another user's
# sync of the entity arrived since this device's previous sync (the version it edited is stale):
# a step, more with the share of this edit's fields they changed, more the longer the device was
# away. Crowding adds a little either way (busy entities hide concurrent offline edits).
_CONFLICT_INTERCEPT = -5.8
_W_CHANGED_SINCE = 1.6
_W_OVERLAP = 2.6
_W_STALENESS = 0.3  # per unit of log1p(hours since this device's previous sync), when changed
_W_EDITORS = 0.25  # per unit of log1p(other users on the entity in the last 24 h)
_LOGIT_NOISE_SD = 0.6
# A sync uploads 1 + Poisson(_EXTRA_EDITS_MEAN) edits (at most _MAX_BATCH), _EDIT_STEP_US apart.
_EXTRA_EDITS_MEAN = 1.0
_MAX_BATCH = 8
_EDIT_STEP_US = 400_000
# Hidden per-user propensity: most users near zero, a few careless ones well above.
_PROPENSITY_SD = 0.35
_CARELESS_SHARE = 0.08
_CARELESS_BOOST = 1.6

# --- Habits. Gaps between a user's syncs are drawn in "activity days" (see _ActivityClock):
# a burst gap (same session), a regular gap, or an offline stretch (heavy-tailed).
_BURST_GAP_MEAN = 15.0 / (24 * 60)
_OFFLINE_GAP_MIN = 0.75
_OFFLINE_GAP_SCALE = 1.5
_OFFLINE_PARETO_SHAPE = 1.5
_OFFLINE_PARETO_CAP = 8.0
# Number of fields in one sync: mostly one or two.
_FIELD_COUNT_PROBS: tuple[float, ...] = (0.42, 0.28, 0.16, 0.09, 0.05)
_ZIPF_EXPONENT = 0.9
_FAVOURITE_ENTITIES = 6
_OFFICE_ROLE = -1  # a user who works across all domains (supervisor, back office)

# Relative activity by local hour of day on a weekday; weekends run at a fraction of it.
# fmt: off
_HOURLY_ACTIVITY: tuple[float, ...] = (
    0.04, 0.03, 0.03, 0.03, 0.04, 0.08, 0.25, 0.6, 1.0, 1.0, 1.0, 1.0,  # 00-11
    0.7, 1.0, 1.0, 1.0, 0.9, 0.7, 0.45, 0.3, 0.3, 0.25, 0.1, 0.06,  # 12-23
)
# fmt: on
_WEEKEND_FACTOR = 0.3
_TIME_ZONES_HOURS: tuple[int, ...] = (-8, -6, -5, 0, 1, 2, 8, 10)

_HOURS_CAP = 720.0
_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 24 * _US_PER_HOUR
_OVERLAP_LOOKBACK_US = 30 * _US_PER_DAY  # others' changes window for a user with no earlier sync


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 7
    tenants: tuple[str, ...] = ("acme", "globex", "initech")
    users_per_tenant: int = 40
    entities_per_tenant: int = 300
    days: int = 45
    events_per_user_per_day: float = 4.0  # average; users differ
    end: datetime = datetime(2026, 11, 29, tzinfo=UTC)  # every event is received before this

    def __post_init__(self) -> None:
        # Fail at construction with the field's name rather than deep inside the simulation.
        if not self.tenants or len(set(self.tenants)) != len(self.tenants):
            raise ValueError("tenants must be non-empty and distinct")
        if self.users_per_tenant < 1 or self.entities_per_tenant < 1 or self.days < 1:
            raise ValueError("users_per_tenant, entities_per_tenant and days must be at least 1")
        if not self.events_per_user_per_day > 0:
            raise ValueError("events_per_user_per_day must be positive")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")


def generate_sync_history(config: DemoConfig = DemoConfig()) -> Iterator[SyncEventDict]:
    """Yields events in received_at order, each a dict with exactly these keys:
    tenant (slug str), client_event_id (str, unique within the tenant, f"{tenant}-{n}"),
    user_id (str), device_id (str), domain (str), entity_type (str), entity_id (str),
    fields_changed (list[str], 1..5 distinct names), client_last_sync_at (tz-aware UTC datetime or
    None: this user's previous sync time), received_at (tz-aware UTC datetime, microsecond
    precision, strictly increasing within a tenant), conflicted (bool), conflict_fields (list[str],
    empty unless conflicted; the fields of this event that other users also changed since the
    user's last sync; empty for a record-level conflict with no shared field).

    Tenants are simulated independently (each from its own seed derived from config.seed and the
    tenant's name, so adding a tenant leaves the others' histories unchanged) and merged lazily."""
    streams = [_tenant_history(config, tenant) for tenant in config.tenants]
    yield from heapq.merge(*streams, key=_received_at)


CSV_COLUMNS: tuple[str, ...] = (
    "client_event_id", "user_id", "device_id", "domain", "entity_type", "entity_id", "fields_changed",
    "client_last_sync_at", "received_at", "conflicted", "conflict_fields",
)


def write_history_csv(events: Iterable[SyncEventDict], path: Path, limit: int | None = None) -> int:
    """Write events in the CSV form `mlstack ingest sync-events` reads (lists `;`-separated)."""
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for event in events:
            if written == limit:
                break
            last_sync = event["client_last_sync_at"]
            writer.writerow({
                **{column: event[column] for column in CSV_COLUMNS},
                "fields_changed": ";".join(event["fields_changed"]),
                "conflict_fields": ";".join(event["conflict_fields"]),
                "client_last_sync_at": last_sync.isoformat() if last_sync else "",
                "received_at": event["received_at"].isoformat(),
            })
            written += 1
    return written


def conflict_rate(events: Iterable[SyncEventDict]) -> float:
    """Share of events that conflicted."""
    total = conflicts = 0
    for event in events:
        total += 1
        conflicts += bool(event["conflicted"])
    if total == 0:
        raise ValueError("no events")
    return conflicts / total


def _received_at(event: SyncEventDict) -> datetime:
    at: datetime = event["received_at"]
    return at


# ---------------------------------------------------------------------------------------------
# The tenant's world: entities and users, fixed before the simulation starts.


@dataclass(frozen=True)
class _Entities:
    type_index: NDArray[np.int64]  # index into ENTITY_TYPES
    ids: list[str]
    popularity: NDArray[np.float64]  # Zipf weight, not normalised


@dataclass(frozen=True)
class _Users:
    ids: list[str]
    rate: NDArray[np.float64]  # syncs per activity day
    burst_share: NDArray[np.float64]  # share of gaps that stay within a session
    offline_share: NDArray[np.float64]  # share of the user's time spent offline
    propensity: NDArray[np.float64]  # hidden log-odds offset
    favourite_share: NDArray[np.float64]  # share of syncs on the user's favourite entities
    role: NDArray[np.int64]  # index into DOMAINS, or _OFFICE_ROLE
    favourites: NDArray[np.int64]  # (users, _FAVOURITE_ENTITIES) entity indices
    field_log_pref: NDArray[np.float64]  # (users, len(FIELDS)) favourite fields
    devices: NDArray[np.int64]  # (users, 2) device numbers; equal when the user has one device
    second_device_share: NDArray[np.float64]


def _tenant_seed(config: DemoConfig, tenant: str) -> list[int]:
    # crc32 rather than hash(): str hashes are salted per process, and the data must not be.
    return [config.seed, zlib.crc32(tenant.encode())]


def _build_entities(config: DemoConfig, rng: np.random.Generator) -> _Entities:
    # Each tenant leans towards its own mix of domains (one is mostly facilities, another voice).
    domain_mix = rng.dirichlet(np.full(len(DOMAINS), 2.0))
    type_probs = np.array(
        [domain_mix[DOMAINS.index(t.domain)] * t.share_of_domain for t in ENTITY_TYPES]
    )
    type_index = rng.choice(
        len(ENTITY_TYPES), size=config.entities_per_tenant, p=type_probs / type_probs.sum()
    )
    counters = [0] * len(ENTITY_TYPES)
    ids: list[str] = []
    for t in type_index.tolist():
        counters[t] += 1
        ids.append(f"{ENTITY_TYPES[t].id_prefix}-{counters[t]:05d}")
    # Zipf over a random ranking: a handful of hot entities, a long cold tail.
    ranks = rng.permutation(config.entities_per_tenant) + 1
    popularity = ranks.astype(np.float64) ** -_ZIPF_EXPONENT
    return _Entities(type_index=type_index, ids=ids, popularity=popularity)


def _role_pool(entities: _Entities, role: int) -> NDArray[np.int64]:
    """The entities a user of this role works on (all of them for office users, or when the
    tenant happens to have none of the role's domain)."""
    if role == _OFFICE_ROLE:
        return np.arange(len(entities.ids))
    domain = DOMAINS[role]
    in_domain = np.array([ENTITY_TYPES[t].domain == domain for t in entities.type_index.tolist()])
    pool = np.flatnonzero(in_domain)
    return pool if pool.size else np.arange(len(entities.ids))


def _pool_probs(entities: _Entities, pool: NDArray[np.int64]) -> NDArray[np.float64]:
    weights = entities.popularity[pool]
    probs: NDArray[np.float64] = weights / weights.sum()
    return probs


def _build_users(
    config: DemoConfig, tenant: str, entities: _Entities, rng: np.random.Generator
) -> _Users:
    n = config.users_per_tenant
    # Lognormal activity with mean 1, so the tenant's average matches the configured rate.
    activity_sd = 0.6
    rate = config.events_per_user_per_day * rng.lognormal(-(activity_sd**2) / 2, activity_sd, n)
    burst_share = rng.beta(2.5, 4.0, n)
    # Most users are rarely offline; about one in five is a field worker who disappears for days.
    offline_share = np.where(
        rng.random(n) < 0.2, rng.uniform(0.2, 0.5, n), rng.uniform(0.0, 0.08, n)
    )
    careless = rng.random(n) < _CARELESS_SHARE
    propensity = rng.normal(0.0, _PROPENSITY_SD, n) + np.where(careless, _CARELESS_BOOST, 0.0)
    favourite_share = rng.beta(3.0, 5.0, n)
    domain_probs = np.bincount(
        [DOMAINS.index(ENTITY_TYPES[t].domain) for t in entities.type_index.tolist()],
        minlength=len(DOMAINS),
    ).astype(np.float64)
    role = np.where(
        rng.random(n) < 0.15,
        _OFFICE_ROLE,
        rng.choice(len(DOMAINS), size=n, p=domain_probs / domain_probs.sum()),
    )
    favourites = np.empty((n, _FAVOURITE_ENTITIES), dtype=np.int64)
    for user, user_role in enumerate(role.tolist()):
        pool = _role_pool(entities, user_role)
        favourites[user] = rng.choice(
            pool,
            size=_FAVOURITE_ENTITIES,
            replace=pool.size < _FAVOURITE_ENTITIES,
            p=_pool_probs(entities, pool),
        )
    field_log_pref = rng.normal(0.0, 0.8, (n, len(FIELDS)))
    has_second = rng.random(n) < 0.3
    first = np.arange(n) * 2 + 1
    devices = np.stack([first, np.where(has_second, first + 1, first)], axis=1)
    second_device_share = np.where(has_second, rng.uniform(0.05, 0.3, n), 0.0)
    return _Users(
        ids=[f"{tenant}-user-{i + 1:03d}" for i in range(n)],
        rate=rate,
        burst_share=burst_share,
        offline_share=offline_share,
        propensity=propensity,
        favourite_share=favourite_share,
        role=role,
        favourites=favourites,
        field_log_pref=field_log_pref,
        devices=devices,
        second_device_share=second_device_share,
    )


# ---------------------------------------------------------------------------------------------
# When syncs happen.


@dataclass(frozen=True)
class _ActivityClock:
    """Maps "activity days" to real time. Gaps are drawn in activity time, whose density is the
    working-hours rhythm; warping through it puts syncs in working hours and stretches gaps
    over nights and weekends, as real field work does. The horizon holds `days` activity days."""

    activity: NDArray[np.float64]  # cumulative activity at each hour boundary
    offset_us: NDArray[np.float64]  # microseconds after the history's start at the same boundaries

    def to_offset_us(self, activity_days: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.interp(activity_days, self.activity, self.offset_us)


def _activity_clock(config: DemoConfig, start: datetime, tz_hours: int) -> _ActivityClock:
    hours = config.days * 24
    local_hours = math.floor(start.timestamp() / 3600) + tz_hours + np.arange(hours)
    hour_of_day = local_hours % 24
    weekday = (local_hours // 24 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    intensity = np.asarray(_HOURLY_ACTIVITY)[hour_of_day] * np.where(
        weekday >= 5, _WEEKEND_FACTOR, 1.0
    )
    activity = np.concatenate(([0.0], np.cumsum(intensity)))
    activity *= config.days / activity[-1]
    return _ActivityClock(
        activity=activity, offset_us=np.arange(hours + 1, dtype=np.float64) * _US_PER_HOUR
    )


def _offline_gap_mean() -> float:
    # Mean of the capped Lomax: integral of the survival function (1 + x)^-a from 0 to the cap.
    a, cap = _OFFLINE_PARETO_SHAPE, _OFFLINE_PARETO_CAP
    capped_mean: float = (1.0 - (1.0 + cap) ** (1.0 - a)) / (a - 1.0)
    return _OFFLINE_GAP_MIN + _OFFLINE_GAP_SCALE * capped_mean


def _user_activity_times(
    rate: float, burst_share: float, offline_share: float, horizon: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """One user's sync times in activity days, in [0, horizon). Gap kinds are mixed so that the
    expected rate is `rate` and offline stretches take `offline_share` of the time."""
    mean_gap = 1.0 / rate
    offline_prob = min(0.3, offline_share * mean_gap / _offline_gap_mean())
    regular_prob = max(1e-6, 1.0 - burst_share - offline_prob)
    regular_mean = max(
        _BURST_GAP_MEAN,
        ((1.0 - offline_share) * mean_gap - burst_share * _BURST_GAP_MEAN) / regular_prob,
    )
    # Start before the window so the window opens mid-habit rather than with everyone fresh.
    t = -rng.uniform(0.0, 5.0)
    chunks: list[NDArray[np.float64]] = []
    size = int(horizon * rate * 1.3) + 32
    while t < horizon:
        kind = rng.random(size)
        gaps = np.where(
            kind < burst_share,
            rng.exponential(_BURST_GAP_MEAN, size),
            np.where(
                kind < burst_share + offline_prob,
                _OFFLINE_GAP_MIN
                + _OFFLINE_GAP_SCALE
                * np.minimum(rng.pareto(_OFFLINE_PARETO_SHAPE, size), _OFFLINE_PARETO_CAP),
                rng.exponential(regular_mean, size),
            ),
        )
        times = t + np.cumsum(gaps)
        chunks.append(times)
        t = float(times[-1])
    all_times = np.concatenate(chunks)
    return all_times[(all_times >= 0.0) & (all_times < horizon)]


@dataclass(frozen=True)
class _Schedule:
    """Every sync of a tenant, in time order, with everything that does not depend on the
    simulation's state drawn up front (vectorised, so the per-event loop stays small)."""

    offset_us: list[int]
    user: list[int]
    session: list[int]  # the sync (batch) each event was uploaded in
    entity: list[int]
    field_mask: list[int]
    device: list[int]
    logit_noise: list[float]
    uniform: list[float]


def _schedule(
    config: DemoConfig,
    users: _Users,
    entities: _Entities,
    clock: _ActivityClock,
    rng: np.random.Generator,
) -> _Schedule:
    # Syncs per user, then the edits each sync uploads: the user's rate counts edits.
    mean_batch = 1.0 + _EXTRA_EDITS_MEAN
    per_user = [
        _user_activity_times(
            float(users.rate[u]) / mean_batch,
            float(users.burst_share[u]),
            float(users.offline_share[u]),
            float(config.days),
            rng,
        )
        for u in range(len(users.ids))
    ]
    session_user = np.concatenate(
        [np.full(times.size, u, dtype=np.int64) for u, times in enumerate(per_user)]
    )
    session_at = clock.to_offset_us(np.concatenate(per_user))
    sessions = session_at.size
    second = rng.random(sessions) < users.second_device_share[session_user]
    session_device = np.where(second, users.devices[session_user, 1], users.devices[session_user, 0])
    size = np.minimum(1 + rng.poisson(_EXTRA_EDITS_MEAN, sessions), _MAX_BATCH)
    session = np.repeat(np.arange(sessions), size)
    within = np.arange(session.size) - np.repeat(np.cumsum(size) - size, size)
    offset = session_at[session] + within * _EDIT_STEP_US
    order = np.lexsort((within, session, offset))
    session, offset = session[order], offset[order]
    # Microsecond precision, strictly increasing: nudge ties forward by a microsecond each, then
    # drop whatever a nudge pushed past the end.
    us = np.floor(offset).astype(np.int64)
    steps = np.arange(us.size, dtype=np.int64)
    us = np.maximum.accumulate(us - steps) + steps
    keep = us < config.days * _US_PER_DAY
    us, session = us[keep], session[keep]
    user = session_user[session]
    n = us.size

    entity = _choose_entities(users, entities, user, rng)
    field_mask = _choose_fields(users, entities, user, entity, rng)
    return _Schedule(
        offset_us=us.tolist(),
        user=user.tolist(),
        session=session.tolist(),
        entity=entity.tolist(),
        field_mask=field_mask.tolist(),
        device=session_device[session].tolist(),
        logit_noise=rng.normal(0.0, _LOGIT_NOISE_SD, n).tolist(),
        uniform=rng.random(n).tolist(),
    )


def _choose_entities(
    users: _Users, entities: _Entities, user: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.int64]:
    """A user's own favourites part of the time, otherwise the popular entities of their line of
    work; both follow popularity, which is what makes hot entities shared by many users."""
    n = user.size
    favourite = users.favourites[user, rng.integers(0, _FAVOURITE_ENTITIES, n)]
    popular = np.empty(n, dtype=np.int64)
    event_role = users.role[user]
    for role in np.unique(event_role).tolist():
        at = np.flatnonzero(event_role == role)
        pool = _role_pool(entities, role)
        popular[at] = rng.choice(pool, size=at.size, p=_pool_probs(entities, pool))
    return np.where(rng.random(n) < users.favourite_share[user], favourite, popular)


def _field_log_weights() -> NDArray[np.float64]:
    """(entity types, fields): log of how often each field of a type is edited; -inf for fields
    the type does not have."""
    weights = np.full((len(ENTITY_TYPES), len(FIELDS)), -np.inf)
    for t, entity_type in enumerate(ENTITY_TYPES):
        for name, weight in entity_type.field_weights:
            weights[t, FIELDS.index(name)] = math.log(weight)
    return weights


def _choose_fields(
    users: _Users,
    entities: _Entities,
    user: NDArray[np.int64],
    entity: NDArray[np.int64],
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Each sync's fields as a bit mask over FIELDS: k distinct fields drawn by the entity type's
    field weights times the user's own preferences (Gumbel top-k: weighted sampling without
    replacement for all events at once)."""
    n = user.size
    type_index = entities.type_index[entity]
    log_weights = _field_log_weights()
    keys = log_weights[type_index] + users.field_log_pref[user] + rng.gumbel(size=(n, len(FIELDS)))
    available = np.isfinite(log_weights).sum(axis=1)[type_index]
    k = np.minimum(rng.choice(len(_FIELD_COUNT_PROBS), size=n, p=_FIELD_COUNT_PROBS) + 1, available)
    order = np.argsort(-keys, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(len(FIELDS))[None, :].repeat(n, axis=0), axis=1)
    chosen = rank < k[:, None]
    bits = np.left_shift(1, np.arange(len(FIELDS), dtype=np.int64))
    mask: NDArray[np.int64] = (chosen * bits).sum(axis=1)
    return mask


# ---------------------------------------------------------------------------------------------
# The simulation: events in time order, each decided from the state before it.


def _field_names(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in enumerate(FIELDS) if mask >> bit & 1)


def _tenant_history(config: DemoConfig, tenant: str) -> Iterator[SyncEventDict]:
    rng = np.random.default_rng(_tenant_seed(config, tenant))
    entities = _build_entities(config, rng)
    users = _build_users(config, tenant, entities, rng)
    tz_hours = int(rng.choice(_TIME_ZONES_HOURS))
    start = config.end.astimezone(UTC) - timedelta(days=config.days)
    schedule = _schedule(config, users, entities, _activity_clock(config, start, tz_hours), rng)

    names = [_field_names(mask) for mask in range(1 << len(FIELDS))]
    entity_domain = [ENTITY_TYPES[t].domain for t in entities.type_index.tolist()]
    entity_type = [ENTITY_TYPES[t].name for t in entities.type_index.tolist()]
    propensity = users.propensity.tolist()
    # Per entity: (time, user, field mask) of its edits, oldest first. Per device: the start of
    # its current sync and of the one before (what its uploads were edited against).
    history: list[list[tuple[int, int, int]]] = [[] for _ in entities.ids]
    current: dict[int, tuple[int, int]] = {}  # device -> (session, its start in µs)
    previous: dict[int, int | None] = {}  # device -> start of its previous sync in µs

    for n, (t, u, session, e, mask, device, noise, draw) in enumerate(
        zip(
            schedule.offset_us,
            schedule.user,
            schedule.session,
            schedule.entity,
            schedule.field_mask,
            schedule.device,
            schedule.logit_noise,
            schedule.uniform,
            strict=True,
        ),
        start=1,
    ):
        if device not in current or current[device][0] != session:
            previous[device] = current[device][1] if device in current else None
            current[device] = (session, t)
        base = previous[device]
        batch_start = current[device][1]
        hours = _HOURS_CAP if base is None else min((batch_start - base) / _US_PER_HOUR, _HOURS_CAP)
        since = batch_start - _OVERLAP_LOOKBACK_US if base is None else base
        editors, changed, others_mask = _entity_state(history[e], u, batch_start - _US_PER_DAY, since, t)
        overlap = (mask & others_mask).bit_count() / mask.bit_count()
        logit = _CONFLICT_INTERCEPT + _W_EDITORS * math.log1p(editors) + propensity[u] + noise
        if changed:
            logit += _W_CHANGED_SINCE + _W_OVERLAP * overlap + _W_STALENESS * math.log1p(hours)
        conflicted = draw < 1.0 / (1.0 + math.exp(-logit))
        received_at = start + timedelta(microseconds=t)
        yield {
            "tenant": tenant,
            "client_event_id": f"{tenant}-{n}",
            "user_id": users.ids[u],
            "device_id": f"{tenant}-dev-{device:04d}",
            "domain": entity_domain[e],
            "entity_type": entity_type[e],
            "entity_id": entities.ids[e],
            "fields_changed": list(names[mask]),
            "client_last_sync_at": None if base is None else start + timedelta(microseconds=base),
            "received_at": received_at,
            "conflicted": conflicted,
            "conflict_fields": list(names[mask & others_mask]) if conflicted else [],
        }
        # Kept whole: a device back from a long absence must see every change made meanwhile.
        history[e].append((t, u, mask))


def _entity_state(
    edits: list[tuple[int, int, int]], user: int, editors_from: int, changed_from: int, now: int
) -> tuple[int, bool, int]:
    """Other users on the entity since `editors_from`; whether other users' syncs changed it in
    [changed_from, now), and the union of the fields they changed. Walks back from the newest
    edit and stops at the older cutoff, so the cost is the entity's recent activity."""
    editors: set[int] = set()
    changed = False
    others_mask = 0
    cutoff = min(editors_from, changed_from)
    for i in range(len(edits) - 1, -1, -1):
        at, other, mask = edits[i]
        if at < cutoff:
            break
        if other == user or at >= now:
            continue
        if at >= editors_from:
            editors.add(other)
        if at >= changed_from:
            changed = True
            others_mask |= mask
    return len(editors), changed, others_mask
