#!/usr/bin/env python3
"""Monitoring benchmarks, printed as JSON and as a table (README, "Monitoring"):

  scan      a day of N series x 1,440 one-minute points read in one query, then the minute scan
            (one new point per series, each series' precedent memory read from metric_precedents,
            written by refresh-precedents over the day first); PostgreSQL when
            MLSTACK_TEST_DATABASE_URL is set (run under scripts/with_services.py), else the
            in-memory repositories
  latency   metric in -> alert out: a spike stored, the scan run, the alert published
  backtest  points per second of `mlstack anomaly backtest`'s scorer
  refresh   (--refresh-series N, alone) refresh-precedents on N one-minute series of --refresh-days
            days: its seconds and the process's peak memory
  quality   the labelled corpus of scripts/monitoring_corpus.py (real-looking series: seasonality,
            trends, counts, quantised gauges, heavy tails, gaps; spikes, shifts, drifts, stuck
            values, ... with NAB-style windows): precision, recall, false-positive share and NAB's
            standard score per detector, the ensemble and a plain rolling z-score, at the scan's
            alert threshold

    .venv/bin/python scripts/with_services.py -- .venv/bin/python scripts/bench_monitoring.py --series 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitoring_corpus import corpus, nab_normalised, nab_raw  # noqa: E402

from shared.monitoring.detectors import DETECTORS, ENSEMBLE, rolling_zscore, score_series  # noqa: E402
from shared.monitoring.precedent_memory import PrecedentMemory  # noqa: E402
from shared.monitoring.precedents import refresh_precedents  # noqa: E402
from shared.monitoring.scan import ALERT_THRESHOLD, scan  # noqa: E402
from shared.monitoring.series_repository import Point, ScanState  # noqa: E402


def _services() -> tuple[Any, str]:
    from shared.monitoring.services import in_memory_monitoring_services

    url = os.environ.get("MLSTACK_TEST_DATABASE_URL")
    services = in_memory_monitoring_services()
    if not url:
        return services, "in-memory"
    from dataclasses import replace

    from shared.adapters.db import Database
    from shared.adapters.migrate import migrate
    from shared.monitoring.alerts_repository import PostgresAlertsRepository
    from shared.monitoring.precedents_repository import PostgresPrecedentsRepository
    from shared.monitoring.series_repository import PostgresSeriesRepository

    database = Database(url)
    migrate(database)
    with database.transaction() as tx:
        tx.execute("TRUNCATE metric_points, metric_rollups, metric_precedents, monitoring_alerts,"
                   " monitoring_incidents, monitoring_silences, metric_series RESTART IDENTITY CASCADE")
    return replace(services, transactions=database, series=PostgresSeriesRepository(),
                   precedents=PostgresPrecedentsRepository(), alerts=PostgresAlertsRepository()), "postgresql"


def bench_scan(series: int, now: datetime) -> dict[str, Any]:
    services, backend = _services()
    rng = np.random.default_rng(0)
    minutes = np.arange(1440)
    started = time.perf_counter()
    for chunk in range(0, series, 50):
        points = []
        for s in range(chunk, min(chunk + 50, series)):
            values = 100 + 10 * np.sin(2 * np.pi * minutes / 1440 + s) + rng.normal(0, 2, 1440)
            points += [Point(f"host-{s // 7}", f"m{s % 7}", now - timedelta(minutes=1440 - m), float(v))
                       for m, v in zip(minutes.tolist(), values.tolist(), strict=True)]
        with services.transactions.transaction() as tx:
            services.series.store_points(tx, points)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with services.transactions.transaction() as tx:
        windows = services.series.scan_window(tx, now - timedelta(days=1, minutes=1), now)
    read_seconds = time.perf_counter() - started

    def minute_scan() -> tuple[dict[str, Any], float]:
        # Everything but the newest point already scanned: the steady state of a minute scan.
        with services.transactions.transaction() as tx:
            services.series.save_scan_state(tx, [ScanState(w.series_id, datetime.fromtimestamp(w.times[-2], UTC), 0.0)
                                                 for w in windows])
        started = time.perf_counter()
        report = scan(services, now + timedelta(seconds=5))
        return report, time.perf_counter() - started

    # The baseline of this run: the scan without any precedent memory (an empty table), after a
    # first scan that warms the process (imports, first allocations) as a warm function is ...
    _, first_seconds = minute_scan()
    _, bare_seconds = minute_scan()
    # ... then the daily refresh (here over the day) gives every series one, which the scan reads.
    started = time.perf_counter()
    refreshed = refresh_precedents(services, now)
    refresh_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with services.transactions.transaction() as tx:
        memories = list(services.precedents.memories(tx).values())
    memories_seconds = time.perf_counter() - started
    report, scan_seconds = minute_scan()
    # Metric in -> alert out: a spike arrives, the next scan publishes it.
    spike_at = now + timedelta(minutes=1)
    started = time.perf_counter()
    with services.transactions.transaction() as tx:
        services.series.store_points(tx, [Point("host-0", "m0", spike_at, 500.0)])
    after = scan(services, spike_at + timedelta(seconds=5))
    latency = time.perf_counter() - started
    return {"backend": backend, "series": series, "points": series * 1440, "load_seconds": round(load_seconds, 2),
            "read_day_one_query_seconds": round(read_seconds, 3), "scan_seconds": round(scan_seconds, 3),
            "scan_points_scored": report["points_scored"], "scan_precedent_memories": report["precedent_memories"],
            "first_scan_seconds": round(first_seconds, 3), "scan_without_memories_seconds": round(bare_seconds, 3),
            "scan_ratio_to_without_memories": round(scan_seconds / bare_seconds, 2),
            "read_memories_one_query_seconds": round(memories_seconds, 3),
            **_memory_size(memories),
            "refresh_precedents_over_the_day_seconds": round(refresh_seconds, 2),
            "refreshed_memories": refreshed["memories"], "alert_published": after["published_incidents"] == 1,
            "metric_in_to_alert_out_seconds": round(latency, 3),
            "worst_case_alert_delay_seconds": round(60 + latency, 1)}


def _memory_size(memories: list[PrecedentMemory]) -> dict[str, Any]:
    """The table's size per series: the memory as stored, and the schedule rule's hour blocks in it."""
    stored = [len(json.dumps(m.to_dict())) for m in memories] or [0]
    blocks = [sum(len(b) for b in (m.calendar or {}).values()) for m in memories] or [0]
    return {"memory_json_bytes_mean": round(float(np.mean(stored))),
            "memory_calendar_blocks_mean_max": [round(float(np.mean(blocks)), 1), max(blocks)]}


def bench_refresh(series: int, days: int, now: datetime) -> dict[str, Any]:
    """refresh-precedents on `series` one-minute series of `days` days: its seconds (the month's raw
    points read PRECEDENT_CHUNK series at a time, each reduced to its precedent memory and upserted)
    and the process's peak memory."""
    import resource

    from shared.monitoring.precedents import PRECEDENT_CHUNK

    services, backend = _services()
    rng = np.random.default_rng(2)
    minutes = np.arange(days * 1440)
    started = time.perf_counter()
    for s in range(series):
        values = 50 + 10 * np.sin(2 * np.pi * minutes / 1440 + s) + rng.normal(0, 2, len(minutes))
        points = [Point(f"svc-{s // 5}", f"g{s % 5}", now - timedelta(minutes=len(minutes) - m), float(v))
                  for m, v in zip(minutes.tolist(), values.tolist(), strict=True)]
        with services.transactions.transaction() as tx:
            services.series.store_points(tx, points)
    load_seconds = time.perf_counter() - started
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = refresh_precedents(services, now + timedelta(minutes=1))
    seconds = time.perf_counter() - started
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with services.transactions.transaction() as tx:
        memories = list(services.precedents.memories(tx).values())
    return {"backend": backend, "series": series, "days": days, "points": series * len(minutes),
            "chunk_series": PRECEDENT_CHUNK, "load_seconds": round(load_seconds, 1),
            "refresh_seconds": round(seconds, 2), "memories": report["memories"],
            "peak_rss_mib_before": round(peak_before / 1024), "peak_rss_mib_after": round(peak_after / 1024),
            **_memory_size(memories)}


def bench_backtest(points: int = 20_000) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    t = np.arange(points) * 300.0
    v = 10 + 3 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 0.5, points)
    started = time.perf_counter()
    score_series(t, v)
    seconds = time.perf_counter() - started
    return {"points": points, "seconds": round(seconds, 2), "points_per_second": round(points / seconds)}


def _events(flags: np.ndarray) -> list[int]:
    """First index of each run of consecutive flagged points."""
    idx = np.where(flags)[0]
    return [int(i) for k, i in enumerate(idx) if k == 0 or idx[k - 1] != i - 1]


def bench_quality(count: int, more: int = 0, threshold: float = ALERT_THRESHOLD, quiet: int = 0) -> dict[str, Any]:
    """Every detector, the ensemble and a plain rolling z-score on the labelled corpus
    (scripts/monitoring_corpus.py): one causal run per series gives every detector's scores. The
    original `count` series, the `more` series of the shapes added later and the `quiet` series
    without anomalies are reported apart; `by_shape`: the ensemble's hits and false alarms per shape."""
    data = corpus(count, more=more, quiet=quiet)
    scored = []
    for series in data:
        result = score_series(series.times, series.values)
        scored.append({ENSEMBLE: result.combined, **result.detectors, "rolling_zscore": rolling_zscore(series.values)})
    report = {"series": count, "windows": sum(len(s.windows) for s in data[:count]), "threshold": threshold,
              "results": _quality(data[:count], scored[:count], threshold)}
    for key, part in (("more_shapes", slice(count, count + more)), ("no_anomaly_shapes", slice(count + more, None))):
        if part.stop != part.start and data[part]:
            report[key] = {"series": len(data[part]), "windows": sum(len(s.windows) for s in data[part]),
                           "results": _quality(data[part], scored[part], threshold)}
    report["by_shape"] = _by_shape(data, scored, threshold)
    return report


def _by_shape(data: list[Any], scored: list[dict[str, np.ndarray]], threshold: float) -> dict[str, dict[str, int]]:
    """Per shape (the series' base style): windows, windows hit and false alarms of the ensemble."""
    out: dict[str, dict[str, int]] = {}
    for series, scores in zip(data, scored, strict=True):
        shape = series.name.split("_")[1]
        events = _events(scores[ENSEMBLE] >= threshold)
        row = out.setdefault(shape, {"series": 0, "windows": 0, "hit": 0, "false_alarms": 0})
        row["series"] += 1
        row["windows"] += len(series.windows)
        row["hit"] += sum(any(a <= e < b for e in events) for a, b in series.windows)
        row["false_alarms"] += sum(not any(a <= e < b for a, b in series.windows) for e in events)
    return out


def _quality(data: list[Any], scored: list[dict[str, np.ndarray]], threshold: float) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name in (ENSEMBLE, *DETECTORS, "rolling_zscore"):
        hits = windows = true_events = false_events = 0
        nab = 0.0
        for series, scores in zip(data, scored, strict=True):
            flags = scores[name] >= threshold
            events = _events(flags)
            inside = [e for e in events if any(a <= e < b for a, b in series.windows)]
            windows += len(series.windows)
            hits += sum(any(a <= e < b for e in events) for a, b in series.windows)
            true_events += len(inside)
            false_events += len(events) - len(inside)
            nab += nab_raw(flags, series.windows)
        total = true_events + false_events
        days = sum(float(s.times[-1] - s.times[0]) for s in data) / 86_400
        results[name] = {"precision": round(true_events / total, 3) if total else 0.0,
                         "recall": round(hits / windows, 3) if windows else 0.0,
                         "false_positive_share": round(false_events / total, 3) if total else 0.0,
                         "false_alarms": false_events,
                         "false_alarms_per_series_day": round(false_events / days, 3),
                         "nab_standard": round(nab_normalised(nab, windows), 1)}
    return results


def _print_quality(quality: dict[str, Any]) -> None:
    for title, part in (("original series", quality), ("shapes added later", quality.get("more_shapes")),
                        ("shapes without anomalies", quality.get("no_anomaly_shapes"))):
        if not part or "series" not in part:
            continue  # --quality-series 0: no corpus was scored
        print(f"\n{title}: {part['series']} series, {part['windows']} labelled anomalies"
              "\n| detector | precision | recall | false-positive share | false alarms / series-day | NAB standard |"
              "\n|---|---|---|---|---|---|")
        for name, r in part["results"].items():
            print(f"| {name} | {r['precision']} | {r['recall']} | {r['false_positive_share']} |"
                  f" {r['false_alarms_per_series_day']} | {r['nab_standard']} |")
    if quality.get("by_shape"):
        print("\nensemble by shape\n| shape | series | windows | hit | false alarms |\n|---|---|---|---|---|")
        for shape, r in quality["by_shape"].items():
            print(f"| {shape} | {r['series']} | {r['windows']} | {r['hit']} | {r['false_alarms']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--quality-series", type=int, default=35)
    parser.add_argument("--quality-more", type=int, default=15,
                        help="series of the shapes added later (bursty counts, sawtooth disk, web traffic)")
    parser.add_argument("--quality-quiet", type=int, default=6,
                        help="series without anomalies (gaussian noise, a daily sine, a flat value with rare steps)")
    parser.add_argument("--quality-only", action="store_true",
                        help="only the labelled corpus (no services, no scan or backtest timing): the fast loop")
    parser.add_argument("--refresh-series", type=int, default=0,
                        help="only refresh-precedents on this many series of --refresh-days days")
    parser.add_argument("--refresh-days", type=int, default=30)
    args = parser.parse_args()
    if args.refresh_series:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        print(json.dumps({"refresh_precedents": bench_refresh(args.refresh_series, args.refresh_days, now)}, indent=2))
        return 0
    quality = bench_quality(args.quality_series, args.quality_more, quiet=args.quality_quiet) if args.quality_series else {"results": {}}
    if args.quality_only:
        print(json.dumps({"quality": quality}, indent=2))
        _print_quality(quality)
        return 0
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    report = {"scan": bench_scan(args.series, now), "backtest": bench_backtest(), "quality": quality}
    print(json.dumps(report, indent=2))
    _print_quality(quality)
    s = report["scan"]
    print(f"\nscan ({s['backend']}): {s['series']} series x 1440 points read in {s['read_day_one_query_seconds']} s,"
          f" minute scan {s['scan_seconds']} s ({s['scan_precedent_memories']} precedent memories;"
          f" {s['scan_without_memories_seconds']} s without, ratio {s['scan_ratio_to_without_memories']}),"
          f" metric in -> alert out {s['metric_in_to_alert_out_seconds']} s;"
          f" backtest {report['backtest']['points_per_second']} points/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
