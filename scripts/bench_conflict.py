#!/usr/bin/env python3
"""Benchmark of the sync-conflict loop. Prints JSON, then a table.

Starts its own throwaway PostgreSQL (fsync on: the default) and uses a local-folder object store.
Measures, in one run:
- bulk ingestion rows/s (`mlstack ingest sync-events` path, CSV with the demo history);
- feature extraction rows/s: the set-based training query against a per-row baseline (one
  feature query per event, as a Python loop would do it), on the same events;
- warm predict latency in process (features from the database, model, log insert, commit): p50/p99.

    .venv/bin/python scripts/bench_conflict.py [--predictions 500] [--baseline-rows 1000] [--json FILE]
        [--against REF]

With --against REF (a commit, e.g. HEAD~3), the same benchmark first runs on a checkout of REF in
the same process tree and machine state, then on this tree, and a table of this/REF ratios follows.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import localpg  # noqa: E402


def _write_history_csv(path: Path, end: datetime) -> int:
    from shared.conflict.demo_data import DemoConfig, generate_sync_history, write_history_csv

    config = replace(DemoConfig(), tenants=("bench",), users_per_tenant=120, end=end)
    return write_history_csv(generate_sync_history(config), path)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run(predictions: int, baseline_rows: int, work: Path) -> dict[str, Any]:
    from shared.adapters.migrate import migrate
    from shared.conflict.features_repository import FeatureRequest, features_for_requests, features_for_stored_events
    from shared.conflict.ingest import ingest_sync_events
    from shared.conflict.prediction import ConflictPredictionRequest, predict_conflict
    from shared.conflict.training import train_candidate
    from shared.context import AppContext
    from shared.settings import Settings

    url = localpg.start(work / "pg", localpg.free_port(), fast=False)
    context = AppContext(Settings(database_url=url, object_store_url=f"file://{work / 'objects'}",
                                  signing_key=secrets.token_hex(32)))
    migrate(context.database)
    tenant = context.tenants.create_tenant("bench", "Bench").tenant_id
    end = datetime.now(UTC)
    history = work / "history.csv"
    rows = _write_history_csv(history, end)

    started = time.perf_counter()
    ingest_sync_events(context, tenant, history)
    ingest_seconds = time.perf_counter() - started

    start = end - timedelta(days=90)
    started = time.perf_counter()
    with context.database.transaction() as tx:
        training_rows = features_for_stored_events(tx, start, end)
    set_seconds = time.perf_counter() - started

    # Baseline: the same features, one query per event, for the first `baseline_rows` events.
    with context.database.transaction() as tx:
        sample = tx.fetch_all(
            "SELECT event_id::text, tenant_id::text, user_id, domain, entity_type, entity_id, fields_changed,"
            " received_at FROM sync_events ORDER BY received_at LIMIT :n", n=baseline_rows)
    started = time.perf_counter()
    for row in sample:
        request = FeatureRequest(row["event_id"], row["tenant_id"], row["user_id"], row["domain"], row["entity_type"],
                                 row["entity_id"], tuple(row["fields_changed"]), row["received_at"])
        with context.database.transaction() as tx:
            features_for_requests(tx, [request])
    per_row_seconds = time.perf_counter() - started

    result = train_candidate(context, end=end)
    assert result.version is not None
    context.registry.activate(result.version.version_id, actor="bench")
    with context.database.transaction() as tx:
        targets = tx.fetch_all(
            "SELECT DISTINCT user_id, domain, entity_type, entity_id FROM sync_events LIMIT :n", n=predictions)
    requests = [ConflictPredictionRequest(**t) for t in targets]
    predict_conflict(context, tenant, requests[0], "warm-up")  # loads and verifies the model once
    latencies = []
    for n, request in enumerate(requests):
        started = time.perf_counter()
        predict_conflict(context, tenant, request, f"bench-{n}")
        latencies.append((time.perf_counter() - started) * 1000)

    context.database.close()
    localpg.stop(work / "pg")
    set_rate = len(training_rows) / set_seconds
    per_row_rate = len(sample) / per_row_seconds
    return {
        "ingest": {"rows": rows, "seconds": round(ingest_seconds, 3), "rows_per_s": round(rows / ingest_seconds)},
        "features": {
            "set_based": {"rows": len(training_rows), "seconds": round(set_seconds, 3), "rows_per_s": round(set_rate)},
            "per_row_baseline": {"rows": len(sample), "seconds": round(per_row_seconds, 3),
                                 "rows_per_s": round(per_row_rate)},
            "speedup": round(set_rate / per_row_rate, 1),
        },
        "predict_warm_ms": {
            "n": len(latencies),
            "p50": round(statistics.median(latencies), 2),
            "p99": round(_percentile(latencies, 99), 2),
            "mean": round(statistics.fmean(latencies), 2),
        },
        "model": {"label": result.version.label, "roc_auc": result.metrics["roc_auc"], "brier": result.metrics["brier"]},
    }


def table(report: dict[str, Any]) -> str:
    f = report["features"]
    p = report["predict_warm_ms"]
    lines = [
        f"{'measure':<44}{'value':>14}",
        "-" * 58,
        f"{'bulk ingestion (rows/s, ' + str(report['ingest']['rows']) + ' rows)':<44}{report['ingest']['rows_per_s']:>14,}",
        f"{'features, set-based (rows/s)':<44}{f['set_based']['rows_per_s']:>14,}",
        f"{'features, per-row baseline (rows/s)':<44}{f['per_row_baseline']['rows_per_s']:>14,}",
        f"{'features, set-based / per-row':<44}{f['speedup']:>13}x",
        f"{'warm predict p50 (ms)':<44}{p['p50']:>14}",
        f"{'warm predict p99 (ms)':<44}{p['p99']:>14}",
    ]
    return "\n".join(lines)


def run_at_ref(ref: str, predictions: int, baseline_rows: int) -> dict[str, Any]:
    """The same benchmark on a checkout of `ref` (its own script and code), this project's venv."""
    checkout = Path(tempfile.mkdtemp(prefix="mlstack-bench-ref-"))
    out = checkout / "report.json"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(checkout / "tree"), ref], cwd=ROOT, check=True)
        subprocess.run([sys.executable, str(checkout / "tree" / "scripts" / "bench_conflict.py"),
                        "--predictions", str(predictions), "--baseline-rows", str(baseline_rows), "--json", str(out)],
                       cwd=checkout / "tree", check=True, stdout=subprocess.DEVNULL)
        return dict(json.loads(out.read_text()))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(checkout / "tree")], cwd=ROOT, check=False)
        shutil.rmtree(checkout, ignore_errors=True)


def comparison(before: dict[str, Any], after: dict[str, Any], ref: str) -> str:
    rows = [
        ("bulk ingestion rows/s", before["ingest"]["rows_per_s"], after["ingest"]["rows_per_s"]),
        ("features set-based rows/s", before["features"]["set_based"]["rows_per_s"],
         after["features"]["set_based"]["rows_per_s"]),
        ("warm predict p50 ms", before["predict_warm_ms"]["p50"], after["predict_warm_ms"]["p50"]),
        ("warm predict p99 ms", before["predict_warm_ms"]["p99"], after["predict_warm_ms"]["p99"]),
    ]
    lines = [f"{'measure':<30}{ref:>14}{'this tree':>14}{'ratio':>9}", "-" * 67]
    lines += [f"{name:<30}{b:>14,}{a:>14,}{a / b:>8.2f}x" for name, b, a in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=500)
    parser.add_argument("--baseline-rows", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--against", metavar="REF", help="also run the benchmark at this commit and compare")
    args = parser.parse_args()
    before = run_at_ref(args.against, args.predictions, args.baseline_rows) if args.against else None
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-"))
    try:
        report = run(args.predictions, args.baseline_rows, work)
    finally:
        localpg.stop(work / "pg")
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    print()
    print(table(report))
    if before is not None:
        report = {"this_tree": report, args.against: before}
        print()
        print(comparison(before, report["this_tree"], args.against))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
