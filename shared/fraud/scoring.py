"""Batch scoring (`mlstack score fraud`): attendance events in the intake schema, stored or not, each
scored from the user's stored events strictly before it — the same features and model as the API."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shared.context import AppContext
from shared.fraud.features import FEATURE_NAMES, HISTORY_DAYS, EventColumns, compute_features, feature_rows
from shared.fraud.features_repository import load_events, load_holidays, load_sites
from shared.fraud.ingest import read_valid_rows
from shared.fraud.intake import AttendanceEventIn
from shared.fraud.kind import FRAUD, decision_for, rules_fired
from shared.fraud.prediction import TOP_REASONS, operating_point
from shared.fraud.services import fraud_services
from shared.platform.output_files import written_whole
from shared.platform.serving import choose_serving

OUTPUT_COLUMNS = ("client_event_id", "fraud_score", "decision", "scope", "model_version", "reasons", *FEATURE_NAMES)


def _reasons(contributions: np.ndarray | None, row: dict[str, Any], index: int) -> str:
    if contributions is None:
        return ";".join(str(r["feature"]) for r in rules_fired(row))
    ranked = sorted(zip(FEATURE_NAMES, contributions[index, :-1], strict=True), key=lambda pair: -pair[1])
    return ";".join(f"{name}:{value:.3f}" for name, value in ranked[:TOP_REASONS] if value > 0)


def score_fraud_file(context: AppContext, tenant_id: str, source: Path, target: Path) -> dict[str, Any]:
    services = fraud_services(context)
    events = [{**e.model_dump(), "tenant_id": tenant_id}
              for e in read_valid_rows(source, AttendanceEventIn, key=lambda e: e.client_event_id)]
    serving = choose_serving(FRAUD, services.models, tenant_id, "batch", allow_challenger=False, with_shadow=False)
    first, last = min(e["occurred_at"] for e in events), max(e["occurred_at"] for e in events)
    with services.transactions.transaction() as tx:
        history = load_events(tx, tenant_id, first - timedelta(days=HISTORY_DAYS), last)
        sites, holidays = load_sites(tx, tenant_id), load_holidays(tx, tenant_id)
        point = operating_point(services, tx, tenant_id, serving)
    features = compute_features(EventColumns.from_rows(history), EventColumns.from_rows(events), sites, holidays)
    design = np.column_stack([features[name] for name in FEATURE_NAMES])
    rows = feature_rows(features)
    scores = serving.probabilities(rows)  # type: ignore[arg-type]
    contributions = serving.answering.model.contributions(design) if serving.answering else None  # type: ignore[attr-defined]
    decisions = [decision_for(float(s), point["review_threshold"], point["block_threshold"]) for s in scores]
    with written_whole(target) as sink:
        writer = csv.DictWriter(sink, fieldnames=OUTPUT_COLUMNS)
        writer.writeheader()
        for i, (event, row) in enumerate(zip(events, rows, strict=True)):
            writer.writerow({"client_event_id": event["client_event_id"], "fraud_score": f"{scores[i]:.6f}",
                             "decision": decisions[i], "scope": serving.scope, "model_version": serving.label,
                             "reasons": _reasons(contributions, row, i),
                             **{k: "" if v is None else v for k, v in row.items()}})
    return {"rows": len(events), "model_version": serving.label, "scope": serving.scope, "degraded": serving.degraded,
            "decisions": {d: decisions.count(d) for d in ("allow", "review", "block")}, "thresholds": point}
