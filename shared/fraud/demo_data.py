"""Simulated attendance histories with the fraud mechanisms the loop is for, and the honest
oddities that make them hard to tell apart.

Honest staff check in near their usual start at their home site (sometimes late, sometimes with
no GPS fix, a poor face match in bad light, overtime into the night, a trip to another site, a
borrowed phone on a shared kiosk day). About 1 % of events are fraud, of five kinds:
- buddy punching: a colleague checks in for an absent user on the colleague's own phone, minutes
  after their own check-in; the face match fails or is weak;
- GPS spoofing: a position faked from elsewhere — far outside the geofence, or pinned exactly to the
  site's centre with an implausibly perfect accuracy while the user's last real fix was far away;
- impossible travel: a check-in at a distant site too soon after the last event;
- ghost check-ins: at night, at weekends or on holidays, by someone who never works then;
- bursts: one person checking in many users at a site within minutes from one device.
Investigators confirm most frauds within days and clear some honest events they looked at; the
rest stays unlabelled. The last tenant is small: few frauds (with 8 users, 33 confirmed in the
default half year; with 4, about 8, too few for a model of its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo")


@dataclass(frozen=True)
class FraudDemoConfig:
    tenants: tuple[tuple[str, int], ...] = (("acme", 120), ("globex", 80), ("tiny", 8))
    days: int = 150
    fraud_rate: float = 0.012
    label_rate: float = 0.85
    end: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    seed: int = 7


@dataclass
class _User:
    user_id: str
    device_id: str
    home: int
    start_minute: float
    weekend_worker: bool
    punctuality: float


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / 111_320.0, lon + east_m / (111_320.0 * math.cos(math.radians(lat)))


def generate_fraud_history(config: FraudDemoConfig) -> dict[str, dict[str, Any]]:
    """{tenant_slug: {"sites": [...], "holidays": [...], "events": [...], "labels": [...]}}, each
    list in the intake schema; events in time order."""
    return {slug: _tenant_history(config, t, slug, users) for t, (slug, users) in enumerate(config.tenants)}


def _tenant_history(config: FraudDemoConfig, index: int, slug: str, user_count: int) -> dict[str, Any]:
    rng = np.random.default_rng(config.seed * 1000 + index)
    zone_name = ZONES[index % len(ZONES)]
    zone = ZoneInfo(zone_name)
    base_lat, base_lon = 40.0 + 10 * index, -3.0 + 20 * index
    sites = []
    for s in range(int(rng.integers(3, 7))):
        lat, lon = _offset(base_lat, base_lon, rng.uniform(-60_000, 60_000), rng.uniform(-60_000, 60_000))
        sites.append({"site_id": f"{slug}-site-{s}", "latitude": round(lat, 6), "longitude": round(lon, 6),
                      "radius_m": float(rng.choice([80, 120, 200, 300])), "timezone": zone_name})
    first_day = (config.end - timedelta(days=config.days)).astimezone(zone).date()
    holidays = sorted({first_day + timedelta(days=int(d)) for d in rng.choice(config.days, 4, replace=False)})
    users = [_User(f"{slug}-u{u}", f"{slug}-phone-{u}", int(rng.integers(0, len(sites))),
                   float(rng.normal(8 * 60, 70)), bool(rng.random() < 0.15), float(rng.uniform(0.75, 0.98)))
             for u in range(user_count)]
    events: list[dict[str, Any]] = []
    frauds: set[str] = set()
    suspicious_honest: set[str] = set()
    counter = iter(range(10**9))

    def event(user: _User, site: dict[str, Any], at: datetime, kind: str, *, device: str | None = None,
              position: tuple[float, float] | None | str = "near", accuracy: float | None = None,
              face: float | None | str = "good", verified: bool | None = None, fraud: bool = False) -> dict[str, Any]:
        fix: tuple[float, float] | None = (
            _offset(site["latitude"], site["longitude"], rng.normal(0, site["radius_m"] / 3),
                    rng.normal(0, site["radius_m"] / 3)) if position == "near" else position  # type: ignore[assignment]
        )
        match: float | None = float(np.clip(rng.beta(18, 1.5), 0, 1)) if face == "good" else face  # type: ignore[assignment]
        record = {
            "client_event_id": f"{slug}-e{next(counter)}", "user_id": user.user_id, "site_id": site["site_id"],
            "device_id": device or user.device_id, "event_type": kind,
            "occurred_at": at.astimezone(UTC).isoformat(),
            "latitude": None if fix is None else round(fix[0], 6),
            "longitude": None if fix is None else round(fix[1], 6),
            "gps_accuracy_m": None if fix is None else round(accuracy if accuracy is not None
                                                              else float(rng.gamma(2.0, 7.0)), 1),
            "face_match_confidence": None if match is None else round(match, 3),
            "biometric_verified": verified if verified is not None else (None if match is None else match >= 0.55),
        }
        events.append(record)
        if fraud:
            frauds.add(record["client_event_id"])
        return record

    for day_index in range(config.days):
        day = first_day + timedelta(days=day_index)
        weekend, holiday = day.weekday() >= 5, day in holidays
        on_site: list[tuple[_User, datetime]] = []
        for user in users:
            if (weekend and not user.weekend_worker) or holiday or rng.random() < 0.06:
                continue
            site = sites[user.home] if rng.random() > 0.08 else sites[int(rng.integers(0, len(sites)))]
            late = rng.random() > user.punctuality
            minute = user.start_minute + rng.normal(0, 8) + (rng.uniform(15, 90) if late else 0)
            start = datetime.combine(day, datetime.min.time(), zone) + timedelta(minutes=float(minute))
            no_fix = rng.random() < 0.08
            dim = rng.random() < 0.04
            record = event(user, site, start, "check_in", position=None if no_fix else "near",
                           face=float(rng.uniform(0.35, 0.65)) if dim else "good")
            if dim or (late and rng.random() < 0.05):
                suspicious_honest.add(record["client_event_id"])
            on_site.append((user, start))
            hours = rng.normal(8.5, 0.6) + (rng.uniform(3, 6) if rng.random() < 0.03 else 0)  # overtime
            event(user, site, start + timedelta(hours=float(hours)), "check_out", position=None if no_fix else "near")
        _inject_frauds(config, rng, users, sites, holidays, day, zone, on_site, event)
    events.sort(key=lambda e: e["occurred_at"])
    labels = []
    for record in events:
        cid = record["client_event_id"]
        if cid in frauds and rng.random() < config.label_rate:
            labels.append({"client_event_id": cid, "is_fraud": 1})
        elif cid in suspicious_honest and rng.random() < 0.5:
            labels.append({"client_event_id": cid, "is_fraud": 0})
    # Nothing after `end` (the run command's now): a ghost check-in at 23:30 or overtime past midnight
    # of the last day would be an event in the future, which intake refuses. Dropped after the labels
    # are drawn, so every event kept has the label it had before.
    events = [e for e in events if datetime.fromisoformat(e["occurred_at"]) <= config.end]
    kept = {e["client_event_id"] for e in events}
    return {"sites": sites, "holidays": [{"date": d.isoformat(), "name": f"Holiday {i + 1}"} for i, d in enumerate(holidays)],
            "events": events, "labels": [label for label in labels if label["client_event_id"] in kept],
            "frauds": sorted(frauds & kept)}


def _inject_frauds(config: FraudDemoConfig, rng: np.random.Generator, users: list[_User], sites: list[dict[str, Any]],
                   holidays: list[date], day: date, zone: ZoneInfo, on_site: list[tuple[_User, datetime]],
                   event: Any) -> None:
    expected = config.fraud_rate * 2 * max(len(on_site), 1)
    for _ in range(int(rng.poisson(expected))):
        mechanism = rng.choice(["buddy", "spoof", "travel", "ghost", "burst"], p=[0.3, 0.25, 0.15, 0.2, 0.1])
        user = users[int(rng.integers(0, len(users)))]
        home = sites[user.home]
        if mechanism == "buddy" and on_site:
            buddy, at = on_site[int(rng.integers(0, len(on_site)))]
            if buddy is not user:
                event(user, sites[buddy.home], at + timedelta(minutes=float(rng.uniform(0.5, 6))), "check_in",
                      device=buddy.device_id, face=float(rng.uniform(0.05, 0.6)), fraud=True)
        elif mechanism == "spoof":
            at = datetime.combine(day, datetime.min.time(), zone) + timedelta(minutes=user.start_minute + rng.normal(0, 20))
            far = _offset(home["latitude"], home["longitude"], rng.uniform(2_000, 40_000), rng.uniform(-40_000, 40_000))
            if rng.random() < 0.5:  # the faked position, while the phone is really far away
                event(user, home, at, "check_in", position=far, accuracy=float(rng.uniform(5, 60)), fraud=True)
            else:  # pinned to the centre with perfect accuracy, after a real fix far away
                event(user, home, at - timedelta(minutes=float(rng.uniform(10, 40))), "check_out", position=far)
                event(user, home, at, "check_in", position=(home["latitude"], home["longitude"]), accuracy=1.0, fraud=True)
        elif mechanism == "travel":
            at = datetime.combine(day, datetime.min.time(), zone) + timedelta(minutes=user.start_minute)
            other = sites[int(rng.integers(0, len(sites)))]
            event(user, home, at, "check_in")
            distant = _offset(other["latitude"], other["longitude"], rng.uniform(60_000, 300_000), 0)
            event(user, other, at + timedelta(minutes=float(rng.uniform(5, 40))), "check_in", position=distant, fraud=True)
        elif mechanism == "ghost":
            hour = float(rng.choice([1.5, 2.5, 3.5, 23.5]))
            at = datetime.combine(day, datetime.min.time(), zone) + timedelta(hours=hour + rng.uniform(0, 0.8))
            event(user, home, at, "check_in", position=None if rng.random() < 0.5 else "near",
                  face=None if rng.random() < 0.4 else "good", fraud=True)
        elif mechanism == "burst":
            at = datetime.combine(day, datetime.min.time(), zone) + timedelta(minutes=user.start_minute + 30)
            for k, victim in enumerate(users[: int(rng.integers(6, 14))]):
                event(victim, home, at + timedelta(seconds=20 * k), "check_in", device=user.device_id,
                      face=float(rng.uniform(0.3, 0.8)), fraud=True)

