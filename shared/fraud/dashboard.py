"""The fraud dashboard's data (staff, JSON): the serving model's quality at training and live,
what the operating point does to real traffic, and which features drive the scores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from shared.fraud.dashboard_repository import recent_scores
from shared.fraud.features import FEATURE_NAMES
from shared.fraud.kind import FRAUD
from shared.fraud.operating_point import tradeoff_for_tenant
from shared.fraud.prediction import operating_point
from shared.fraud.services import FraudServices
from shared.platform.registry_repository import global_manifest_for_tenant
from shared.platform.serving import choose_serving


def confusion_at(scores: list[float], outcomes: list[bool], threshold: float) -> dict[str, Any]:
    flagged = np.asarray(scores) >= threshold
    truth = np.asarray(outcomes, dtype=bool)
    tp, fp = int(np.sum(flagged & truth)), int(np.sum(flagged & ~truth))
    fn, tn = int(np.sum(~flagged & truth)), int(np.sum(~flagged & ~truth))
    return {"threshold": threshold, "true_positives": tp, "false_positives": fp, "false_negatives": fn,
            "true_negatives": tn, "false_positive_rate": fp / (fp + tn) if fp + tn else None,
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None}


def fraud_dashboard(services: FraudServices, tenant_id: str, days: int = 30) -> dict[str, Any]:
    serving = choose_serving(FRAUD, services.models, tenant_id, "dashboard", allow_challenger=False,
                             with_shadow=False)
    with services.transactions.transaction() as tx:
        point = operating_point(services, tx, tenant_id, serving)
        scored = recent_scores(tx, tenant_id, days)
        # Over this tenant's predictions only: a global version's stored figures pool every tenant's.
        live = services.log.tenant_live_metrics(tx, tenant_id, datetime.now(UTC))
    known = [row for row in scored if row["outcome"] is not None]
    manifest = serving.answering.version.manifest if serving.answering else {}
    if serving.scope == "global":
        # What the global model was trained on is every tenant's data: its rates and form only (its
        # gain sums over every tenant's rows, growing with their number: not shown).
        trained = {"metrics": global_manifest_for_tenant(manifest).get("metrics"), "rows": None, "window": None}
        tradeoff = tradeoff_for_tenant(manifest)
        gain: dict[str, Any] = {}
    else:
        trained = {"metrics": manifest.get("metrics"), "rows": manifest.get("rows"),
                   "window": manifest.get("training_window")}
        tradeoff = manifest.get("operating_point", {}).get("tradeoff", [])
        gain = manifest.get("feature_importance_gain", {})
    importance: dict[str, Any] = {"gain": gain}
    if serving.answering is not None and scored:
        design = FRAUD.design_matrix([row["features"] for row in scored])
        contributions = serving.answering.model.contributions(design)[:, :-1]  # type: ignore[attr-defined]
        importance["mean_abs_contribution"] = {
            name: round(float(value), 6) for name, value in zip(FEATURE_NAMES, np.abs(contributions).mean(axis=0),
                                                                 strict=True)}
    # As answered, at the operating point of that moment (a later move of the thresholds changes
    # what new events get, not what these got).
    decisions = [r["decision"] for r in scored]
    return {
        "model_version": serving.label, "scope": serving.scope, "degraded": serving.degraded,
        "trained": trained,
        "operating_point": point,
        "tradeoff": tradeoff,
        "traffic": {"days": days, "scored": len(scored), "with_outcome": len(known),
                    "decisions": {d: decisions.count(d) for d in ("allow", "review", "block")}},
        "confusion_at_review": confusion_at([r["probability"] for r in known], [r["outcome"] for r in known],
                                            point["review_threshold"]),
        "feature_importance": importance,
        "live_metrics": live,
    }
