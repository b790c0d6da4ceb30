"""The minute scan: read a day of every series in one query, score the points that arrived since
the last scan (univariate ensemble, the host's Isolation Forest, the trained seasonal profiles and
precedent memory: the events of the month before the day, as the backtest remembers them, from
`metric_precedents`, refreshed daily), alert on missing data and on a one-minute series' uptime
under 99 % (uptime.py), group alerts into incidents, publish.

A point is alerted on by the first scan after it arrives (the scan runs every minute)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from shared.errors import MlstackError
from shared.logs import log_event
from shared.monitoring.alerting import publish_new, raise_alerts
from shared.monitoring.alerts_repository import AlertIn
from shared.monitoring.detectors import robust_standardise, score_series
from shared.monitoring.host import HOST_METRICS
from shared.monitoring.kind import ANOMALY, AnomalyState
from shared.monitoring.precedent_memory import PrecedentMemory
from shared.monitoring.series_repository import ScanState, SeriesWindow
from shared.monitoring.services import MonitoringServices
from shared.monitoring.uptime import UPTIME_BAR, collected_every_minute, reported_share, written_only_when_active
from shared.platform.locks import run_alone

HISTORY = timedelta(days=1)
ALERT_THRESHOLD = 0.5
# A series silent this long (having reported within the day) is a missing-data alert.
MISSING_AFTER = timedelta(minutes=5)
FOREST = "isolation_forest"
SCAN_LOCK = "monitoring/scan-metrics"


def detector_state(services: MonitoringServices) -> AnomalyState | None:
    """The active detector state, verified; None (univariate detectors, seasonal lags only) when
    there is none or it cannot be loaded."""
    version = services.registry.active_version(ANOMALY.name, None)
    if version is None:
        return None
    try:
        state: AnomalyState = services.models.load(version, ANOMALY.load, artifact_format=ANOMALY.artifact_format)
    except MlstackError as exc:
        log_event("monitoring.state_unavailable", version_id=version.version_id, reason=exc.message)
        return None
    return state


def precedent_of(stored: PrecedentMemory | None, trained: PrecedentMemory | None) -> PrecedentMemory | None:
    """The series' memory: the daily refreshed one, else the detector state's (artifacts trained
    before the table kept one), whichever covers the newer past where both exist (a refresh that
    stopped running must not hide a newer state's memory)."""
    if stored is None or trained is None:
        return stored or trained
    return trained if trained.until > stored.until else stored


def _unscanned_start(window: SeriesWindow) -> int:
    if window.scanned_until is None:
        return 0
    return int(np.searchsorted(window.times, window.scanned_until.timestamp(), side="right"))


def forest_scores(windows: list[SeriesWindow], state: AnomalyState) -> dict[tuple[str, float], float]:
    """(source, minute) -> the forest's score of the host's vector, for minutes with new points."""
    by_source: dict[str, dict[str, SeriesWindow]] = defaultdict(dict)
    for window in windows:
        if window.metric in HOST_METRICS and len(window.times):
            by_source[window.source][window.metric] = window
    scores: dict[tuple[str, float], float] = {}
    for source, metrics in by_source.items():
        if set(metrics) != set(HOST_METRICS):
            continue
        minutes = np.unique(np.concatenate([(w.times[_unscanned_start(w):] // 60) * 60 for w in metrics.values()]))
        if not len(minutes):
            continue
        columns = []
        for name in HOST_METRICS:
            window = metrics[name]
            # Each new minute's reading is the last point at or before it (a late one repeats).
            rows = np.clip(np.searchsorted(window.times, minutes + 59.999, side="right") - 1, 0, None)
            columns.append(robust_standardise(window.values, rows, 1440))
        design = np.column_stack(columns)
        for minute, score in zip(minutes.tolist(), state.predict_proba(design).tolist(), strict=True):
            scores[(source, minute)] = score
    return scores


def scan(services: MonitoringServices, now: datetime | None = None) -> dict[str, Any]:
    """One scan at a time: a second one started while the first runs (a late schedule, a manual
    run-job) would score the same new points again and count each alert twice."""
    result = run_alone(services.locks, SCAN_LOCK, "another scan-metrics is running",
                       lambda: _scan(services, now or datetime.now(UTC)))
    if "skipped" in result:
        log_event("monitoring.scan_skipped", reason="another scan is running")
    return result


def _scan(services: MonitoringServices, now: datetime) -> dict[str, Any]:
    state = detector_state(services)
    alerts: list[AlertIn] = []
    states: list[ScanState] = []
    missing: list[int] = []
    low_uptime: list[int] = []
    recovered: list[int] = []
    scored = 0
    with services.transactions.transaction() as tx:
        windows = services.series.scan_window(tx, now - HISTORY, now)
        stored = services.precedents.memories(tx)
        forest = forest_scores(windows, state) if state is not None else {}
        for window in windows:
            if not window.scanned:
                continue
            silent = window.last_point_at is None or window.last_point_at < now - MISSING_AFTER
            if (silent and window.last_point_at is not None and window.missing_since is None
                    and window.last_point_at > now - HISTORY
                    and not written_only_when_active(window.source, window.metric)):
                missing.append(window.series_id)
                alerts.append(AlertIn(window.source, window.metric, "missing_data", 1.0, now, ("no_points",),
                                      None, window.tenant_id))
            if not silent and collected_every_minute(window.source, window.metric):
                # One alert when the series falls under the bar (kept in low_uptime_since), whichever
                # scan sees it first; its state clears once it is back over.
                share = reported_share(window.times, now.timestamp())
                if share is not None and share < UPTIME_BAR:
                    if window.low_uptime_since is None:
                        low_uptime.append(window.series_id)
                        alerts.append(AlertIn(window.source, window.metric, "low_uptime", 1.0, now,
                                              ("reported_share",), round(share, 4), window.tenant_id))
                elif window.low_uptime_since is not None:
                    recovered.append(window.series_id)
            start = _unscanned_start(window)
            if start >= len(window.times):
                continue
            key = window.key
            baseline = state.baseline(key, window.times) if state is not None else None
            trained = state.precedents.get(key) if state is not None else None
            memory = precedent_of(stored.get(window.series_id), trained)
            extra = None
            if forest and window.metric in HOST_METRICS:
                new_minutes = (window.times[start:] // 60) * 60
                extra = {FOREST: np.array([forest.get((window.source, m), 0.0) for m in new_minutes.tolist()])}
            result = score_series(window.times, window.values, start=start, state=window.suppression,
                                  baseline=baseline, extra=extra, memory=memory)
            scored += len(result.combined)
            for k in np.where(result.combined >= ALERT_THRESHOLD)[0].tolist():
                row = start + k
                alerts.append(AlertIn(window.source, window.metric, "anomaly", round(float(result.combined[k]), 4),
                                      datetime.fromtimestamp(float(window.times[row]), UTC),
                                      tuple(result.reasons[k]), float(window.values[row]), window.tenant_id))
            states.append(ScanState(window.series_id, datetime.fromtimestamp(float(window.times[-1]), UTC),
                                    result.suppression))
        services.series.lock_series(tx, sorted({*(s.series_id for s in states), *missing, *low_uptime, *recovered}))
        services.series.save_scan_state(tx, states)
        services.series.set_missing(tx, missing, now)
        services.series.set_low_uptime(tx, low_uptime, now)
        services.series.set_low_uptime(tx, recovered, None)
        counts = raise_alerts(tx, services.alerts, alerts, now, services.incident_window)
    # Published after the scan's commit, so its series are not held while SNS answers (pushes would
    # wait on them); an alert a failed publish leaves unpublished goes out with the next scan's.
    with services.transactions.transaction() as tx:
        incidents = publish_new(tx, services.alerts, services.notifier)
    return {"series": len(windows), "points_scored": scored, "detector_state": "trained" if state else "none",
            "precedent_memories": len(stored),
            "missing": len(missing), "low_uptime": len(low_uptime), **counts, "published_incidents": incidents}


def compact(services: MonitoringServices, now: datetime | None = None) -> dict[str, Any]:
    """Retention: raw points older than raw_days become hourly rollups; rollups live a year."""
    now = now or datetime.now(UTC)
    with services.transactions.transaction() as tx:
        return services.series.compact(tx, now - timedelta(days=services.raw_days), now - timedelta(days=365))
