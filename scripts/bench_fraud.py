#!/usr/bin/env python3
"""Benchmark of the attendance-fraud loop. Prints JSON, then a table.

Measures, in one run:
- feature rows/s of the one feature definition with history = targets (the training path) at
  100k, 300k and 1M events, and the per-row cost at 1M against 100k (it should stay flat);
- the same features one event at a time (as a naive live loop would), on 300 events of the 100k
  history: the baseline the set-based rows/s is compared with;
- XGBoost training on 1M rows × the features (2 threads);
- warm predict in process against a throwaway PostgreSQL (history query, features, booster,
  contributions, log insert, commit): p50 / p99.

    .venv/bin/python scripts/bench_fraud.py [--rows 1000000] [--predictions 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import localpg  # noqa: E402

from shared.fraud.features import FEATURE_NAMES, EventColumns, Site, compute_features  # noqa: E402


def synthetic_events(n: int, seed: int = 1) -> tuple[EventColumns, dict[str, Site]]:
    """n events of 2,000 users at 50 sites over a year, vectorised (the demo generator is a loop)."""
    rng = np.random.default_rng(seed)
    users = max(n // 500, 20)
    user = rng.integers(0, users, n)
    t = np.sort(rng.integers(0, 365 * 86400, n)).astype(np.int64) + 1_750_000_000
    site = user % 50
    lat = 48.0 + site * 0.01 + rng.normal(0, 0.001, n)
    lon = 11.0 + site * 0.01 + rng.normal(0, 0.001, n)
    no_fix = rng.random(n) < 0.08
    lat[no_fix], lon[no_fix] = np.nan, np.nan
    sites = {f"t|s{s}": Site(48.0 + s * 0.01, 11.0 + s * 0.01, 150.0, "Europe/Berlin") for s in range(50)}
    columns = EventColumns(
        tenant=np.full(n, "t", dtype=object), user=np.array([f"u{u}" for u in user], dtype=object),
        site=np.array([f"s{s}" for s in site], dtype=object), device=np.array([f"d{u}" for u in user], dtype=object),
        is_check_in=rng.random(n) < 0.5, t=t, latitude=lat, longitude=lon, gps_accuracy_m=rng.gamma(2, 7, n),
        face=np.clip(rng.beta(18, 1.5, n), 0, 1), biometric_failed=rng.random(n) < 0.03,
    )
    return columns, sites


def _subset(columns: EventColumns, rows: np.ndarray) -> EventColumns:
    return EventColumns(**{name: getattr(columns, name)[rows] for name in columns.__dataclass_fields__})


def bench_features(sizes: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n in sizes:
        events, sites = synthetic_events(n)
        started = time.perf_counter()
        compute_features(events, events, sites, [])
        seconds = time.perf_counter() - started
        results[str(n)] = {"rows": n, "seconds": round(seconds, 3), "rows_per_s": round(n / seconds)}
    events, sites = synthetic_events(sizes[0])
    picked = np.linspace(sizes[0] // 2, sizes[0] - 1, 300).astype(int)
    started = time.perf_counter()
    for i in picked:
        compute_features(events, _subset(events, np.array([i])), sites, [])
    per_row = len(picked) / (time.perf_counter() - started)
    first, last = results[str(sizes[0])], results[str(sizes[-1])]
    return {"set_based": results, "one_at_a_time_rows_per_s": round(per_row),
            "set_based_over_one_at_a_time": round(first["rows_per_s"] / per_row, 1),
            "per_row_cost_largest_over_smallest": round(first["rows_per_s"] / last["rows_per_s"], 2)}


def bench_training(rows: int) -> dict[str, Any]:
    from shared.fraud.kind import FRAUD
    from shared.platform.kinds import TrainingSet

    events, sites = synthetic_events(rows)
    features = compute_features(events, events, sites, [])
    design = np.column_stack([features[name] for name in FEATURE_NAMES])
    rng = np.random.default_rng(2)
    risk = np.nan_to_num(features["gps_drift_meters"]) / 500 + (1 - np.nan_to_num(features["face_recognition_confidence"], nan=1))
    labels = rng.random(rows) < np.clip(0.005 + risk * 0.5, 0, 1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=i) for i in range(rows)]
    started = time.perf_counter()
    fitted = FRAUD.fit(TrainingSet(design, labels, times, start, times[-1]))
    seconds = time.perf_counter() - started
    return {"rows": rows, "features": len(FEATURE_NAMES), "positives": int(labels.sum()),
            "seconds": round(seconds, 2), "estimator": fitted.estimator}


def bench_predict(predictions: int, work: Path) -> dict[str, Any]:
    from shared.adapters.migrate import migrate
    from shared.context import AppContext
    from shared.fraud.demo import seed_fraud_history
    from shared.fraud.demo_data import FraudDemoConfig, generate_fraud_history
    from shared.fraud.learning import train_fraud_candidate
    from shared.fraud.prediction import StoredEventRef, predict_fraud
    from shared.settings import Settings

    url = localpg.start(work / "pg", localpg.free_port(), fast=False)
    context = AppContext(Settings(database_url=url, object_store_url=f"file://{work / 'objects'}",
                                  signing_key=secrets.token_hex(32)))
    try:
        migrate(context.database)
        end = datetime.now(UTC).replace(microsecond=0)
        history = generate_fraud_history(FraudDemoConfig(tenants=(("acme", 120),), end=end))
        tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
        seed_fraud_history(context, {"acme": tenant}, history)
        version = train_fraud_candidate(context, tenant_id=tenant, end=end).version
        assert version is not None
        context.registry.activate(version.version_id, actor="bench")
        ids = [e["client_event_id"] for e in history["acme"]["events"][-predictions:]]
        predict_fraud(context, tenant, StoredEventRef(client_event_id=ids[0]), "warm-up")
        latencies = []
        for n, cid in enumerate(ids):
            started = time.perf_counter()
            predict_fraud(context, tenant, StoredEventRef(client_event_id=cid), f"bench-{n}")
            latencies.append((time.perf_counter() - started) * 1000)
        ordered = sorted(latencies)
        return {"n": len(latencies), "p50": round(statistics.median(latencies), 2),
                "p99": round(ordered[min(len(ordered) - 1, int(0.99 * (len(ordered) - 1) + 0.5))], 2),
                "events_in_history": len(history["acme"]["events"])}
    finally:
        context.database.close()
        localpg.stop(work / "pg")


def table(report: dict[str, Any]) -> str:
    f, t, p = report["features"], report["training"], report["predict_warm_ms"]
    lines = [f"{'measure':<52}{'value':>14}", "-" * 66]
    for size, r in f["set_based"].items():
        lines.append(f"{'features, set-based at ' + f'{int(size):,}' + ' events (rows/s)':<52}{r['rows_per_s']:>14,}")
    lines += [
        f"{'features, one event at a time (rows/s)':<52}{f['one_at_a_time_rows_per_s']:>14,}",
        f"{'set-based / one at a time':<52}{f['set_based_over_one_at_a_time']:>13}x",
        f"{'per-row cost, largest / smallest history':<52}{f['per_row_cost_largest_over_smallest']:>13}x",
        f"{'training, ' + f'{t['rows']:,}' + ' rows (s)':<52}{t['seconds']:>14}",
        f"{'warm predict p50 (ms)':<52}{p['p50']:>14}",
        f"{'warm predict p99 (ms)':<52}{p['p99']:>14}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--predictions", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = sorted({max(args.rows // 10, 1000), max(args.rows * 3 // 10, 1000), args.rows})
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-fraud-"))
    try:
        report = {"features": bench_features(sizes), "training": bench_training(args.rows),
                  "predict_warm_ms": bench_predict(args.predictions, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    print()
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
