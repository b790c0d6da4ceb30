#!/usr/bin/env python3
"""OCR quality on the demo hold-out: the service's error_probability against the seed's
confidence < 0.7 rule, at the same daily capture budget. Prints JSON, then a table.

History (all but the last --holdout-days) is stored with the corrections the seed-era loop
recorded; the global error model is trained and promoted through the lifecycle's gate on it; the
hold-out is then assessed exactly as triage and the API do (captured_at order, history strictly
before each reading) and compared with the truth of every reading. Runs on the in-memory fakes
(the same use cases), so it needs no services:

    .venv/bin/python scripts/bench_ocr.py [--days 150] [--holdout-days 30] [--budget 15]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.ocr.assessment import score_in_order  # noqa: E402
from shared.ocr.demo_data import DemoOcrConfig, corrections_for, generate_ocr_history  # noqa: E402
from shared.ocr.ingest import store_corrections, store_history  # noqa: E402
from shared.ocr.kind import OCR_ERROR  # noqa: E402
from shared.ocr.readings import OcrReading  # noqa: E402
from shared.ocr.readings_repository import OcrSettings  # noqa: E402
from shared.ocr.services import in_memory_ocr_services  # noqa: E402
from shared.platform.metrics import average_precision, roc_auc  # noqa: E402
from shared.platform.retraining import retrain  # noqa: E402
from shared.platform.serving import Serving, choose_serving  # noqa: E402

TENANT = "00000000-0000-4000-8000-000000000de0"


def budgeted_share(rows: list[dict[str, Any]], score: str, eligible: str, budget: int) -> float:
    """Share of all wrong readings captured when each day takes its `budget` eligible readings
    with the highest score (what a tenant tuning its threshold to the budget gets)."""
    by_day: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row[eligible]:
            by_day[row["day"]].append(row)
    caught = sum(r["is_error"] for day in by_day.values()
                 for r in sorted(day, key=lambda r: -r[score])[:budget])
    return caught / max(sum(r["is_error"] for r in rows), 1)


def online_share(rows: list[dict[str, Any]], eligible: str, budget: int) -> float:
    """Share caught when each day captures eligible readings in arrival order until the budget."""
    used: dict[Any, int] = defaultdict(int)
    caught = 0
    for row in sorted(rows, key=lambda r: r["at"]):
        if row[eligible] and used[row["day"]] < budget:
            used[row["day"]] += 1
            caught += row["is_error"]
    return caught / max(sum(r["is_error"] for r in rows), 1)


def run(days: int, holdout_days: int, budget: int) -> dict[str, Any]:
    config = replace(DemoOcrConfig(), days=days)
    history = generate_ocr_history(config)
    cut = (config.end - timedelta(days=holdout_days)).isoformat()
    past = [r for r in history if r.record["captured_at"] < cut]
    holdout = [r for r in history if r.record["captured_at"] >= cut]
    services = in_memory_ocr_services()
    store_history(services, TENANT, [(i, OcrReading.model_validate(r.record)) for i, r in enumerate(past)])
    store_corrections(services, TENANT, list(enumerate(corrections_for(past))))
    cut_at = OcrReading.model_validate(holdout[0].record).captured_at
    decision = retrain(OCR_ERROR, services.training, services.registry, services.locks, now=cut_at)
    model_serving = choose_serving(OCR_ERROR, services.models, TENANT, "bench", allow_challenger=False)
    heuristic_serving = Serving(OCR_ERROR, None)
    readings = [OcrReading.model_validate(r.record) for r in holdout]
    truth = {r.record["client_reading_id"]: r for r in holdout}
    scored: dict[str, dict[str, Any]] = {}
    for name, serving in (("model", model_serving), ("heuristic", heuristic_serving)):
        with services.transactions.transaction() as tx:
            for item in score_in_order(tx, services.readings, serving, TENANT, readings, OcrSettings()):
                reading = item.assessed.reading
                row = scored.setdefault(reading.client_reading_id, {
                    "is_error": truth[reading.client_reading_id].is_error, "confidence": reading.confidence,
                    "seed_score": 1 - reading.confidence, "seed_eligible": reading.confidence < 0.7,
                    "at": reading.captured_at, "day": reading.captured_at.date(),
                    "source_type": reading.source_type})
                row[f"{name}_score"] = item.assessed.error_probability
                row[f"{name}_eligible"] = item.assessed.captured
    rows = list(scored.values())
    return {"rows": rows, "decision": decision, "model_label": model_serving.label,
            "readings": len(rows), "errors": sum(r["is_error"] for r in rows), "days": holdout_days}


def summarise(result: dict[str, Any], budget: int) -> dict[str, Any]:
    rows = result["rows"]
    summary: dict[str, Any] = {"holdout_readings": result["readings"], "holdout_errors": result["errors"],
                               "holdout_days": result["days"], "daily_budget": budget,
                               "model": result["model_label"], "promotion": result["decision"].get("reason")}
    for subset in ("all", "meter_reading", "license_plate"):
        mine = [r for r in rows if subset in ("all", r["source_type"])]
        y = np.array([r["is_error"] for r in mine])
        figures = {}
        for name in ("seed", "heuristic", "model"):
            p = np.array([r[f"{name}_score"] for r in mine])
            figures[name] = {"roc_auc": round(float(roc_auc(y, p) or 0), 4),
                             "pr_auc": round(float(average_precision(y, p) or 0), 4),
                             "share_caught_ranked": round(budgeted_share(mine, f"{name}_score",
                                                                         f"{name}_eligible", budget), 4)}
            if subset == "all":
                figures[name]["share_caught_online"] = round(online_share(mine, f"{name}_eligible", budget), 4)
        summary[subset] = figures
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--holdout-days", type=int, default=30)
    parser.add_argument("--budget", type=int, default=15, help="captures per day (the seed expects 10-20)")
    args = parser.parse_args()
    summary = summarise(run(args.days, args.holdout_days, args.budget), args.budget)
    print(json.dumps(summary, indent=2, default=str))
    print(f"\n| rule | ROC-AUC | PR-AUC | wrong readings caught at {args.budget}/day (ranked) | (online) |")
    print("| --- | --- | --- | --- | --- |")
    for name, title in (("seed", "seed: confidence < 0.7"), ("heuristic", "service, no model (heuristic)"),
                        ("model", "service, trained model")):
        f = summary["all"][name]
        print(f"| {title} | {f['roc_auc']:.3f} | {f['pr_auc']:.3f} | {f['share_caught_ranked']:.1%} |"
              f" {f['share_caught_online']:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
