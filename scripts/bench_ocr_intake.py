#!/usr/bin/env python3
"""OCR intake under concurrency: calls per second and latency of the readings route's use case
(`take_readings`: replays, history, the model, the capture decision, the insert and the prediction
log, one transaction) when --processes processes call it at once, as that many Lambda functions
would. Prints JSON, then a table.

Starts its own throwaway PostgreSQL (fsync on) and uses a local-folder object store. Each round
of each code has two tenants of its own with the same history (--meters meters of --history
readings each; a round's calls add readings, which must not become a later round's history): one
with a daily capture budget (set far above what the calls capture, so what is measured is the
cost of keeping it, the tenant's capture lock, not of running out), one without. A round sends
--calls calls of --readings meter readings (new ids, every reading captured) for each tenant,
from --processes forked processes with a connection each.

With --source plate the readings are licence plates at --meters gates (--history stored at each,
2,000 regular plates among them): what a plate call reads is the gates' plate counts.

The previous approach: the code of --baseline-ref (default: f178182, whose calls held the capture
lock from before their scoring to their commit; for plates, 2161529, whose calls counted each
gate's whole history), exported with `git archive`, runs the same rounds
in its own tree against the same database, alternating with this code, after one round of each
that is not counted. The best round's calls/s counts, with that round's p50 and p99 latency.

    .venv/bin/python scripts/bench_ocr_intake.py [--processes 4] [--calls 200] [--readings 5]
        [--source meter|plate] [--meters 40] [--history 200] [--baseline-ref f178182] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import localpg  # noqa: E402
from bench_conflict import _export  # noqa: E402

BASELINE_REF = "f178182"  # the capture lock taken before the scoring

# One round of one code: run inside that code's tree (sys.path at it), settings from the
# environment. The processes are forked before any connection exists, so each opens its own.
_ROUND_CHILD = """
import json, multiprocessing, sys, time, uuid
from datetime import datetime, timedelta
args = json.load(sys.stdin)
sys.path[:0] = [args["tree"]]
from shared.context import get_context
from shared.ocr.intake import take_readings
from shared.ocr.readings import OcrReading
from shared.ocr.services import ocr_services

at = datetime.fromisoformat(args["at"])
plate = args["source"] == "plate"

def call(n):
    services = ocr_services(get_context())
    readings = [OcrReading(client_reading_id=f"{args['label']}-{n}-{j}",
                           source_type="license_plate" if plate else "meter_reading",
                           source_id=f"{args['source']}-{(n * args['readings'] + j) % args['meters']}",
                           ocr_text=f"B MS {(n * 7 + j) % 900 + 100}" if plate else "0009999.0",
                           confidence=0.3, unit=None if plate else "kWh",
                           # a plate call's readings a moment after the last's (what a call reads from
                           # its start on is what came later: at one instant, every earlier call)
                           captured_at=at + timedelta(milliseconds=n) if plate else at)
                for j in range(args["readings"])]
    started = time.perf_counter()
    answers = take_readings(services, args["tenant"], readings, uuid.uuid4().hex)
    assert all(a["captured"] for a in answers), answers
    return time.perf_counter() - started

with multiprocessing.get_context("fork").Pool(args["processes"]) as pool:
    started = time.perf_counter()
    latencies = sorted(pool.map(call, range(args["calls"]), chunksize=1))
    wall = time.perf_counter() - started
print(json.dumps({"seconds": wall, "latencies": latencies}))
"""


def _database(work: Path) -> tuple[dict[str, str], Any]:
    """The throwaway database, migrated: (the environment a child reads its settings from, a context)."""
    from shared.adapters.migrate import migrate
    from shared.context import AppContext
    from shared.settings import Settings

    url = localpg.start(work / "pg", localpg.free_port(), fast=False)
    environment = {"MLSTACK_DATABASE_URL": url, "MLSTACK_OBJECT_STORE_URL": f"file://{work / 'objects'}",
                   "MLSTACK_SIGNING_KEY": secrets.token_hex(32)}
    context = AppContext(Settings(database_url=url, object_store_url=environment["MLSTACK_OBJECT_STORE_URL"],
                                  signing_key=environment["MLSTACK_SIGNING_KEY"]))
    migrate(context.database)
    return environment, context


def _tenant(context: Any, slug: str, budget: bool, source: str, meters: int, history: int, at: datetime) -> str:
    """A tenant of its own for one round of one code (a round's calls add readings at `at`, which
    would be the next round's history): the daily budget set or not, `history` readings a meter or
    a gate (a gate's: 2,000 regular plates, one read in fifty a one-off)."""
    from shared.ocr.ingest import store_history
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services
    from shared.ocr.settings import change_settings

    services = ocr_services(context)
    tenant: str = context.tenants.create_tenant(slug, slug).tenant_id
    change_settings(services, tenant, daily_budget=str(10**9) if budget else "none")
    if source == "plate":
        readings = [OcrReading(client_reading_id=f"h{m}-{k}", source_type="license_plate", source_id=f"plate-{m}",
                               ocr_text=f"B MS {k * 7919 % 2000 + 100}" if k % 50 else f"X {k}", confidence=0.9,
                               captured_at=at - timedelta(minutes=history - k)) for m in range(meters) for k in range(history)]
    else:
        readings = [OcrReading(client_reading_id=f"h{m}-{k}", source_type="meter_reading", source_id=f"meter-{m}",
                               ocr_text=f"{1000 + k * 5:07d}.0", confidence=0.9, unit="kWh",
                               captured_at=at - timedelta(hours=history - k)) for m in range(meters) for k in range(history)]
    store_history(services, tenant, list(enumerate(readings)))
    return tenant


def _round(tree: Path, environment: dict[str, str], args: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _ROUND_CHILD], cwd=tree, check=True, capture_output=True, text=True,
                          env={**os.environ, **environment}, input=json.dumps({**args, "tree": str(tree)}))
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _summary(calls: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(rounds, key=lambda r: r["seconds"])
    latencies = best["latencies"]
    return {"calls_per_s": round(calls / best["seconds"], 1), "seconds_best": round(best["seconds"], 3),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "seconds_each_round": [round(r["seconds"], 3) for r in rounds]}


def run(processes: int, calls: int, readings: int, source: str, meters: int, history: int, baseline_ref: str,
        repeat: int, work: Path) -> dict[str, Any]:
    environment, context = _database(work)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    codes = {**({"baseline": _export(baseline_ref, work)} if baseline_ref else {}), "now": ROOT}
    kinds = {"budget": True, "no_budget": False}
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {code: {name: [] for name in kinds} for code in codes}
    loads = []
    try:
        for number in range(repeat + 1):  # the first round of each code warms the server: not counted
            if number:
                loads.append(os.getloadavg()[0])
            for code, tree in codes.items():
                for name, budget in kinds.items():
                    slug = f"ocr-{number}-{code}-{name.replace('_', '-')}"
                    tenant = _tenant(context, slug, budget, source, meters, history, at)
                    # The new rows analysed now, not by an autovacuum worker during the round.
                    context.database.run_outside_transaction("VACUUM ANALYZE ocr_readings, ocr_plate_counts, ocr_plate_count_changes")
                    context.database.close()  # the children's processes fork from a child of their own
                    result = _round(tree, environment, {
                        "tenant": tenant, "label": slug, "processes": processes, "calls": calls,
                        "readings": readings, "source": source, "meters": meters, "at": at.isoformat()})
                    if number:
                        rounds[code][name].append(result)
    finally:
        localpg.stop(work / "pg")
    return {"processes": processes, "calls": calls, "readings_per_call": readings, "source": source,
            "sources": meters, "history_per_source": history, "repeat": repeat, "baseline_ref": baseline_ref or None,
            "load_average_each_round": loads,
            **{code: {name: _summary(calls, values) for name, values in by_kind.items()}
               for code, by_kind in rounds.items()}}


def table(report: dict[str, Any]) -> str:
    lines = [f"OCR intake, {report['calls']} calls of {report['readings_per_call']} {report['source']} readings from "
             f"{report['processes']} processes, {report['history_per_source']} stored a {report['source']}; best of "
             f"{report['repeat']} rounds",
             "| tenant | this code: calls/s, p50 / p99 ms | previous code | ratio |", "| --- | --- | --- | --- |"]
    for name in ("budget", "no_budget"):
        now, before = report["now"][name], report.get("baseline", {}).get(name)
        previous = f"{before['calls_per_s']}, {before['p50_ms']} / {before['p99_ms']}" if before else "-"
        ratio = f"{now['calls_per_s'] / before['calls_per_s']:.2f}x" if before else "-"
        lines.append(f"| {name.replace('_', ' ')} | {now['calls_per_s']}, {now['p50_ms']} / {now['p99_ms']} "
                     f"| {previous} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--readings", type=int, default=5)
    parser.add_argument("--source", choices=("meter", "plate"), default="meter",
                        help="meter readings, or licence plates at gates")
    parser.add_argument("--meters", type=int, default=40, help="meters (or gates) of each tenant")
    parser.add_argument("--history", type=int, default=200, help="stored readings a meter (or gate)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ocr-intake-") as work:
        report = run(args.processes, args.calls, args.readings, args.source, args.meters, args.history,
                     args.baseline_ref, args.repeat, Path(work))
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
