"""refresh-precedents (daily): each scanned series' precedent memory from its last 30 days of raw
points, into `metric_precedents`, where the minute scan reads it.

The memory is operational data (what the series did lately), not part of the judged model: kept
in the weekly, gated detector state it was as old as the last promoted state, and missed up to 6
days even then. The residual statistics need the active state's seasonal profiles (as the scan
computes its residuals); without an active state the memories have none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.monitoring.kind import Profile, profile_baseline
from shared.monitoring.precedent_memory import PRECEDENT_DAYS, PrecedentMemory, precedent_memory
from shared.monitoring.scan import detector_state
from shared.monitoring.series_repository import SeriesWindow, is_scanned
from shared.monitoring.services import MonitoringServices

# Series per read of the month's raw points (50 x 43,200 minutes): a month of every series would
# not fit in a function's memory at once; each chunk is reduced to its memories and written in its
# own transaction (a failure keeps the chunks before it; no transaction stays open for minutes).
PRECEDENT_CHUNK = 50
WINDOW = timedelta(days=PRECEDENT_DAYS)


def memories_of(windows: list[SeriesWindow], profiles: dict[str, Profile]) -> dict[int, PrecedentMemory]:
    """series_id -> the memory of its points in the window (residuals against its profile where it
    has one); series too short to score have none."""
    memories: dict[int, PrecedentMemory] = {}
    for window in windows:
        profile = profiles.get(window.key)
        memory = precedent_memory(window.times, window.values,
                                  None if profile is None else profile_baseline(profile, window.times))
        if memory is not None:
            memories[window.series_id] = memory
    return memories


def refresh_precedents(services: MonitoringServices, now: datetime | None = None) -> dict[str, Any]:
    """Recompute and replace every scanned series' memory of the 30 days up to `now`; idempotent (a
    re-run replaces the rows)."""
    now = now or datetime.now(UTC)
    state = detector_state(services)
    profiles = state.profiles if state is not None else {}
    with services.transactions.transaction() as tx:
        ids = [row["series_id"] for row in services.series.series_list(tx) if is_scanned(row["metric"])]
    ids.sort()
    stored = 0
    for at in range(0, len(ids), PRECEDENT_CHUNK):
        chunk = ids[at:at + PRECEDENT_CHUNK]
        with services.transactions.transaction() as tx:
            memories = memories_of(services.series.scan_window(tx, now - WINDOW, now, chunk), profiles)
            services.precedents.replace(tx, chunk, memories, now)
        stored += len(memories)
    return {"series": len(ids), "memories": stored, "without_memory": len(ids) - stored,
            "residuals": "profiles" if state is not None else "none (no active detector state)"}
