"""Quality of the loop for staff: captures per day, corrections per week, the labelling backlog,
accuracy and character error rate per confidence bucket (estimated against observed), and the
threshold that would catch a chosen share of errors within the capture budget."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.ocr.learning import SETTLE
from shared.ocr.services import OcrServices

WINDOW_DAYS = 30
WEEKS = 12
BUCKETS = 10  # confidence deciles


def confidence_buckets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per confidence decile: readings, observed error rate and accuracy, mean CER, and the mean
    error_probability the service estimated for the same readings (where it scored them)."""
    result = []
    for b in range(BUCKETS):
        low, high = b / BUCKETS, (b + 1) / BUCKETS
        mine = [r for r in rows if low <= r["confidence"] < high or (b == BUCKETS - 1 and r["confidence"] == 1.0)]
        if not mine:
            continue
        errors = sum(1 for r in mine if r["is_error"])
        scored = [r["error_probability"] for r in mine if r["error_probability"] is not None]
        result.append({
            "confidence": [low, high], "readings": len(mine), "observed_error_rate": round(errors / len(mine), 4),
            "observed_accuracy": round(1 - errors / len(mine), 4),
            "character_error_rate": round(sum(float(r["cer"]) for r in mine) / len(mine), 4),
            "estimated_error_rate": round(sum(scored) / len(scored), 4) if scored else None,
        })
    return result


def threshold_for_share(rows: Sequence[dict[str, Any]], share: float, days: int,
                        budget: int | None) -> dict[str, Any]:
    """The highest threshold whose captures hold `share` of the known errors among scored readings,
    the captures per day it means, and whether that fits the daily budget (if not: the share the
    budget's worth of top scores would catch)."""
    scored = sorted((r for r in rows if r["error_probability"] is not None), key=lambda r: -r["error_probability"])
    errors = sum(1 for r in scored if r["is_error"])
    if not errors:
        return {"target_share": share, "threshold": None, "reason": "no corrected errors among scored readings yet"}
    needed, caught, taken = math.ceil(share * errors), 0, 0
    threshold = scored[0]["error_probability"]
    for row in scored:
        taken += 1
        caught += int(row["is_error"])
        threshold = row["error_probability"]
        if caught >= needed:
            break
    per_day = taken / max(days, 1)
    answer: dict[str, Any] = {"target_share": share, "threshold": round(threshold, 6), "errors": errors,
                              "captures_per_day": round(per_day, 2), "within_budget": budget is None or per_day <= budget}
    if budget is not None and per_day > budget:
        top = scored[: budget * max(days, 1)]
        answer["share_within_budget"] = round(sum(1 for r in top if r["is_error"]) / errors, 4)
        answer["threshold_within_budget"] = round(top[-1]["error_probability"], 6) if top else None
    return answer


def ocr_metrics(services: OcrServices, tenant_id: str, *, target_share: float = 0.8,
                now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    since = now - timedelta(days=WINDOW_DAYS)
    with services.transactions.transaction() as tx:
        settings = services.readings.settings(tx, tenant_id)
        # Up to today: a reading stored with a far-future time (before intake checked it) must not
        # stretch the capture-rate axis (or break it: PostgreSQL's year 10000 is no Python date).
        daily = services.quality.daily_captures(tx, tenant_id, since, now + timedelta(days=1))
        weekly = services.quality.weekly_corrections(tx, tenant_id, now - timedelta(weeks=WEEKS))
        backlog = services.quality.backlog(tx, tenant_id)
        rows = services.quality.scored_readings(tx, tenant_id, now - timedelta(days=90), now - SETTLE)
    observed_days = len({r["day"] for r in rows if r["error_probability"] is not None}) or 1
    return {
        "capture_rate_per_day": [
            {"day": d["day"].isoformat(), "readings": int(d["readings"]), "assessed": int(d["assessed"]),
             "captured": int(d["captured"]),
             # Of the readings scored on arrival: imported ones were never candidates for capture.
             "rate": round(int(d["captured"]) / int(d["assessed"]), 4) if d["assessed"] else 0.0} for d in daily],
        "corrections_per_week": [{"week": w["week"].isoformat(), "corrections": int(w["corrections"]),
                                  "errors": int(w["errors"])} for w in weekly],
        "labelling_backlog": backlog,
        "quality_by_confidence": confidence_buckets(rows),
        "threshold": threshold_for_share(rows, target_share, observed_days, settings.daily_capture_budget),
        "settings": {"capture_threshold": settings.capture_threshold,
                     "daily_capture_budget": settings.daily_capture_budget,
                     "plate_countries": list(settings.countries)},
    }
