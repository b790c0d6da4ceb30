"""The fraud features, one definition for live prediction, batch scoring and training.

Columnar and numpy-only (the request path imports neither pandas nor scikit-learn): a batch of
*target* events is scored against a *history* of stored events, and every history-derived value
uses only history events strictly before the target's `occurred_at` — for training, history and
targets are the same stored events, so an event never sees itself or anything later. Windows are
counted with one sort and two binary searches per grouping (user, device, site), so the cost per
row does not grow with the history's length.

Missing inputs (no GPS, no face match, no earlier event) are NaN: XGBoost learns what absence means.
Local time is the site's time zone (UTC for a site not registered yet).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

# The seed's twelve, then four that measurably help (speed from the previous position, other
# users on the same device, a burst at the site, the claimed GPS accuracy) and one for off-hours.
SEED_FEATURES: tuple[str, ...] = (
    "hour_of_day", "day_of_week", "is_weekend", "is_holiday",
    "gps_drift_meters", "location_consistency_score",
    "check_in_frequency_zscore", "late_arrival_rate", "weekend_work_frequency",
    "face_recognition_confidence", "biometric_mismatch_count_30d", "time_since_last_event",
)
EXTRA_FEATURES: tuple[str, ...] = (
    "implied_speed_kmh", "device_other_users_12h", "site_events_10min", "gps_accuracy_m",
    "minutes_from_usual_start",
)
FEATURE_NAMES: tuple[str, ...] = SEED_FEATURES + EXTRA_FEATURES

HOUR, DAY = 3600, 86400
HISTORY_DAYS = 60  # the longest window any feature looks back
BIOMETRIC_MISMATCH_BELOW = 0.6
LATE_AFTER_MINUTES = 15.0
HOURS_CAP = 720.0
SPEED_CAP_KMH = 2000.0
MIN_TRAVEL_SECONDS = 60  # GPS jitter over seconds is not travel


@dataclass(frozen=True)
class Site:
    latitude: float
    longitude: float
    radius_m: float
    timezone: str


@dataclass(frozen=True)
class EventColumns:
    """Attendance events as columns. Group keys (tenant|user, tenant|device, tenant|site) keep
    tenants apart when a global model trains across them."""

    tenant: NDArray[np.object_]
    user: NDArray[np.object_]
    site: NDArray[np.object_]
    device: NDArray[np.object_]
    is_check_in: NDArray[np.bool_]
    t: NDArray[np.int64]  # occurred_at, epoch seconds
    latitude: NDArray[np.float64]
    longitude: NDArray[np.float64]
    gps_accuracy_m: NDArray[np.float64]
    face: NDArray[np.float64]
    biometric_failed: NDArray[np.bool_]  # biometric_verified is false

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, object]]) -> EventColumns:
        def floats(name: str) -> NDArray[np.float64]:
            return np.array([np.nan if r.get(name) is None else float(r[name]) for r in rows],  # type: ignore[arg-type]
                            dtype=np.float64)

        def objects(name: str) -> NDArray[np.object_]:
            return np.array([str(r[name]) for r in rows], dtype=object)

        return cls(
            tenant=objects("tenant_id"), user=objects("user_id"), site=objects("site_id"),
            device=objects("device_id"),
            is_check_in=np.array([r["event_type"] == "check_in" for r in rows], dtype=bool),
            t=np.array([r["t"] if "t" in r else _epoch(r["occurred_at"]) for r in rows], dtype=np.int64),  # type: ignore[arg-type]
            latitude=floats("latitude"), longitude=floats("longitude"), gps_accuracy_m=floats("gps_accuracy_m"),
            face=floats("face_match_confidence"),
            biometric_failed=np.array([r.get("biometric_verified") is False for r in rows], dtype=bool),
        )


def _epoch(value: datetime) -> int:
    """Rows from the database carry `t` (epoch seconds, cheaper to read than a timestamp);
    others carry `occurred_at`."""
    return math.floor(value.timestamp())  # whole seconds, as the SQL floor() of the live path


def _factorize(values: list[object]) -> tuple[NDArray[np.int64], list[object]]:
    """Dense integer codes in first-seen order, and the distinct values (one dict pass: a string
    sort is slower, and pandas stays off the request path)."""
    distinct = list(dict.fromkeys(values))
    index = {value: code for code, value in enumerate(distinct)}
    return np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values)), distinct


def _pair(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    """Dense codes of (a, b) pairs."""
    combined = a * (int(b.max(initial=0)) + 1) + b
    return np.unique(combined, return_inverse=True)[1].astype(np.int64).reshape(-1)


@dataclass(frozen=True)
class _Groups:
    """Group codes of history rows followed by target rows (one coding, so the two agree)."""

    tenant: NDArray[np.int64]
    user: NDArray[np.int64]
    device: NDArray[np.int64]
    site: NDArray[np.int64]  # (tenant, site)
    user_site: NDArray[np.int64]
    user_device: NDArray[np.int64]
    tenants: list[object]
    site_names: list[str]  # "tenant|site" per site code

    @classmethod
    def of(cls, history: EventColumns, targets: EventColumns) -> _Groups:
        same = history is targets

        def joined(name: str) -> list[object]:
            values = getattr(history, name).tolist()
            return values if same else values + getattr(targets, name).tolist()

        tenant, tenants = _factorize(joined("tenant"))
        user = _pair(tenant, _factorize(joined("user"))[0])
        device = _pair(tenant, _factorize(joined("device"))[0])
        raw_site, raw_names = _factorize(joined("site"))
        site = _pair(tenant, raw_site)
        first = np.zeros(int(site.max(initial=-1)) + 1, dtype=np.int64)
        first[site[::-1]] = np.arange(len(site))[::-1]  # a row of each site code
        names = [f"{tenants[tenant[i]]}|{raw_names[raw_site[i]]}" for i in first.tolist()]
        return cls(tenant, user, device, site, _pair(user, site), _pair(user, device), tenants, names)

    def split(self, name: str, history_rows: int, same: bool) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        codes: NDArray[np.int64] = getattr(self, name)
        return (codes, codes) if same else (codes[:history_rows], codes[history_rows:])


@dataclass(frozen=True)
class _Window:
    """History rows of one grouping sorted by (group, time), for windowed look-ups before a time."""

    keys: NDArray[np.int64]
    order: NDArray[np.int64]
    span: int
    origin: int

    @classmethod
    def build(cls, groups: NDArray[np.int64], t: NDArray[np.int64], origin: int, span: int) -> _Window:
        keys = groups * span + (t - origin)
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], order, span, origin)

    def bounds(self, groups: NDArray[np.int64], t: NDArray[np.int64], seconds: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """[left, right) into the sorted rows: the group's events in [t - seconds, t)."""
        query = groups * self.span + (t - self.origin)
        right = np.searchsorted(self.keys, query, side="left")
        left = np.searchsorted(self.keys, query - seconds, side="left")
        return left, right

    def sums(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Prefix sums of values in sorted order; sum over [left, right) = s[right] - s[left]."""
        return np.concatenate(([0.0], np.cumsum(values[self.order], dtype=np.float64)))

    def previous(self, groups: NDArray[np.int64], right: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        """Whether the group has an event before, and that event's history row (-1: none)."""
        if not len(self.keys):
            return np.zeros(len(right), bool), np.full(len(right), -1, np.int64)
        last = np.maximum(right - 1, 0)
        has = (right > 0) & (self.keys[last] // self.span == groups)
        return has, np.where(has, self.order[last], -1)


def _at(values: NDArray[Any], rows: NDArray[np.int64]) -> NDArray[np.float64]:
    """values[rows] as floats, NaN where a row is -1 (no such event)."""
    picked = np.asarray(values[np.maximum(rows, 0)], dtype=np.float64) if len(values) else np.zeros(len(rows))
    return np.where(rows >= 0, picked, np.nan)


def local_time(t: NDArray[np.int64], zones: NDArray[np.object_]) -> NDArray[np.int64]:
    """Epoch seconds shifted to each event's wall clock in its zone (UTC offsets per distinct hour
    and zone, so a year of events costs a few thousand zone look-ups, not one per event)."""
    shifted = t.copy()
    for zone_name in set(zones.tolist()):
        if zone_name == "UTC":
            continue
        mask = zones == zone_name
        zone = ZoneInfo(zone_name)
        hours, inverse = np.unique(t[mask] // HOUR, return_inverse=True)
        offsets = np.array([datetime.fromtimestamp(int(h) * HOUR, UTC).astimezone(zone).utcoffset().total_seconds()  # type: ignore[union-attr]
                            for h in hours], dtype=np.int64)
        shifted[mask] = t[mask] + offsets[inverse.reshape(-1)]
    return shifted


def haversine_m(lat1: NDArray[np.float64], lon1: NDArray[np.float64], lat2: NDArray[np.float64],
                lon2: NDArray[np.float64]) -> NDArray[np.float64]:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    result: NDArray[np.float64] = 2 * 6_371_000.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return result


def _window_mean(window: _Window, values: NDArray[np.float64], valid: NDArray[np.bool_],
                 left: NDArray[np.int64], right: NDArray[np.int64], *, centred: bool = False,
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # Coordinates and minutes are centred first, so differences of long prefix sums keep their
    # digits; 0/1 indicators sum exactly as they are.
    centre = float(values[valid].mean()) if centred and valid.any() else 0.0
    total = window.sums(np.where(valid, values - centre, 0.0))
    count = window.sums(valid.astype(np.float64))
    n = count[right] - count[left]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (total[right] - total[left]) / n + centre, np.nan), n


def compute_features(
    history: EventColumns, targets: EventColumns, site_table: Mapping[str, Site],
    holidays: Iterable[tuple[str, date]],
) -> dict[str, NDArray[np.float64]]:
    """Every feature of every target, from the target's own fields and history strictly before it.
    `site_table` is keyed by tenant|site; `holidays` are (tenant_id, local date) pairs."""
    n = len(targets)
    if n == 0:
        return {name: np.zeros(0) for name in FEATURE_NAMES}
    same = history is targets
    groups = _Groups.of(history, targets)
    h_user, q_user = groups.split("user", len(history), same)
    h_device, q_device = groups.split("device", len(history), same)
    h_site, q_site = groups.split("site", len(history), same)
    h_user_site, q_user_site = groups.split("user_site", len(history), same)
    h_user_device, q_user_device = groups.split("user_device", len(history), same)
    _, q_tenant = groups.split("tenant", len(history), same)
    known = [site_table.get(name) for name in groups.site_names]
    site_zone = np.array([s.timezone if s else "UTC" for s in known], dtype=object)
    site_lat_by_code = np.array([s.latitude if s else np.nan for s in known], dtype=np.float64)
    site_lon_by_code = np.array([s.longitude if s else np.nan for s in known], dtype=np.float64)
    site_radius_by_code = np.array([s.radius_m if s else np.nan for s in known], dtype=np.float64)

    times = np.concatenate((history.t, targets.t))
    origin = int(times.min()) - HISTORY_DAYS * DAY - 1
    span = int(times.max()) - origin + 1

    def window(groups: NDArray[np.int64], mask: NDArray[np.bool_] | None = None) -> tuple[_Window, NDArray[np.int64]]:
        rows = np.flatnonzero(mask) if mask is not None else np.arange(len(history))
        built = _Window.build(groups[rows], history.t[rows], origin, span)
        return _Window(built.keys, rows[built.order], span, origin), rows

    out: dict[str, NDArray[np.float64]] = {}

    # -- temporal, in the site's local time --------------------------------------------------
    q_local = local_time(targets.t, site_zone[q_site])
    local_day = q_local // DAY
    out["hour_of_day"] = ((q_local % DAY) // HOUR).astype(np.float64)
    out["day_of_week"] = ((local_day + 3) % 7).astype(np.float64)  # 1970-01-01 was a Thursday: Monday = 0
    out["is_weekend"] = (out["day_of_week"] >= 5).astype(np.float64)
    tenant_code = {tenant: code for code, tenant in enumerate(groups.tenants)}
    epoch_ordinal = date(1970, 1, 1).toordinal()
    holiday_keys = np.array([tenant_code[t] * 1_000_000 + day.toordinal() - epoch_ordinal
                             for t, day in holidays if t in tenant_code], dtype=np.int64)
    out["is_holiday"] = np.isin(q_tenant * 1_000_000 + local_day, holiday_keys).astype(np.float64)

    # -- location ------------------------------------------------------------------------------
    site_lat, site_lon, site_radius = site_lat_by_code[q_site], site_lon_by_code[q_site], site_radius_by_code[q_site]
    out["gps_drift_meters"] = np.maximum(haversine_m(targets.latitude, targets.longitude, site_lat, site_lon)
                                         - site_radius, 0.0)
    has_gps = ~np.isnan(history.latitude)
    by_user_site, _ = window(h_user_site)
    left, right = by_user_site.bounds(q_user_site, targets.t, HISTORY_DAYS * DAY)
    mean_lat, _ = _window_mean(by_user_site, history.latitude, has_gps, left, right, centred=True)
    mean_lon, _ = _window_mean(by_user_site, history.longitude, has_gps, left, right, centred=True)
    distance = haversine_m(targets.latitude, targets.longitude, mean_lat, mean_lon)
    out["location_consistency_score"] = 1.0 / (1.0 + distance / 100.0)

    # -- behaviour -----------------------------------------------------------------------------
    by_user, _ = window(h_user)
    left_30, right_u = by_user.bounds(q_user, targets.t, 30 * DAY)
    left_1, _ = by_user.bounds(q_user, targets.t, DAY)
    left_60, _ = by_user.bounds(q_user, targets.t, HISTORY_DAYS * DAY)
    check_ins = window(h_user, history.is_check_in)[0]
    ci_left_30, ci_right = check_ins.bounds(q_user, targets.t, 30 * DAY)
    ci_left_1, _ = check_ins.bounds(q_user, targets.t, DAY)
    per_day = (ci_right - ci_left_30) / 30.0
    out["check_in_frequency_zscore"] = ((ci_right - ci_left_1) - per_day) / np.sqrt(per_day + 0.25)

    h_local = q_local if same else local_time(history.t, site_zone[h_site])
    h_minutes = ((h_local % DAY) / 60.0).astype(np.float64)
    # Each past check-in's own usual start (its 30 days before), so "late" is judged as it was then.
    h_ci_left, h_ci_right = check_ins.bounds(h_user, history.t, 30 * DAY)
    usual_then, _ = _window_mean(check_ins, h_minutes, history.is_check_in, h_ci_left, h_ci_right, centred=True)
    late_then = history.is_check_in & (h_minutes > usual_then + LATE_AFTER_MINUTES)
    judged = history.is_check_in & ~np.isnan(usual_then)
    out["late_arrival_rate"], _ = _window_mean(check_ins, late_then.astype(np.float64), judged, ci_left_30, ci_right)
    usual_now, _ = _window_mean(check_ins, h_minutes, history.is_check_in, ci_left_30, ci_right, centred=True)
    q_minutes = (q_local % DAY) / 60.0
    out["minutes_from_usual_start"] = np.where(targets.is_check_in, q_minutes - usual_now, np.nan)

    h_weekend = (((h_local // DAY) + 3) % 7 >= 5).astype(np.float64)
    out["weekend_work_frequency"], _ = _window_mean(by_user, h_weekend, np.ones(len(history), bool), left_60, right_u)

    # -- biometrics and recency -----------------------------------------------------------------
    out["face_recognition_confidence"] = targets.face.copy()
    mismatch = (history.biometric_failed | (history.face < BIOMETRIC_MISMATCH_BELOW)).astype(np.float64)
    mismatches = by_user.sums(mismatch)
    out["biometric_mismatch_count_30d"] = mismatches[right_u] - mismatches[left_30]
    has_previous, previous = by_user.previous(q_user, right_u)
    out["time_since_last_event"] = np.where(
        has_previous, np.minimum((targets.t - _at(history.t, previous)) / HOUR, HOURS_CAP), np.nan)

    # -- extras: impossible travel, shared devices, bursts, claimed accuracy --------------------
    gps_by_user, _ = window(h_user, has_gps)
    _, gps_right = gps_by_user.bounds(q_user, targets.t, HISTORY_DAYS * DAY)
    has_fix, last_fix = gps_by_user.previous(q_user, gps_right)
    travelled = haversine_m(targets.latitude, targets.longitude, _at(history.latitude, last_fix),
                            _at(history.longitude, last_fix))
    seconds = np.maximum(targets.t - _at(history.t, last_fix), MIN_TRAVEL_SECONDS)
    out["implied_speed_kmh"] = np.where(has_fix, np.minimum(travelled / seconds * 3.6, SPEED_CAP_KMH), np.nan)

    by_device, _ = window(h_device)
    d_left, d_right = by_device.bounds(q_device, targets.t, 12 * HOUR)
    by_user_device, _ = window(h_user_device)
    ud_left, ud_right = by_user_device.bounds(q_user_device, targets.t, 12 * HOUR)
    out["device_other_users_12h"] = ((d_right - d_left) - (ud_right - ud_left)).astype(np.float64)

    by_site, _ = window(h_site)
    s_left, s_right = by_site.bounds(q_site, targets.t, 600)
    out["site_events_10min"] = (s_right - s_left).astype(np.float64)
    out["gps_accuracy_m"] = targets.gps_accuracy_m.copy()
    return {name: out[name].astype(np.float64) for name in FEATURE_NAMES}


def feature_rows(features: Mapping[str, NDArray[np.float64]]) -> list[dict[str, float | None]]:
    """Per-row dicts for logs and answers (NaN as None, which JSON can carry)."""
    names = list(features)
    columns = [features[name] for name in names]
    count = len(columns[0]) if columns else 0
    return [{name: (None if math.isnan(v := float(col[i])) else v) for name, col in zip(names, columns, strict=True)}
            for i in range(count)]
