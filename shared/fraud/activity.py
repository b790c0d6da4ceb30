"""The fraud dashboard's activity (staff, JSON): PR-AUC per model version (at training and live),
the false-positive rate per day at the review threshold, and recent high scores with the reasons
the serving model gives for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.fraud import activity_repository as repo
from shared.fraud.kind import FRAUD
from shared.fraud.prediction import operating_point, reasons_for
from shared.fraud.services import FraudServices
from shared.platform.roles import serving_role
from shared.platform.serving import choose_serving

WINDOW_DAYS = 30
HIGH_SCORES = 20


def fraud_activity(services: FraudServices, tenant_id: str, now: datetime | None = None,
                   days: int = WINDOW_DAYS) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    serving = choose_serving(FRAUD, services.models, tenant_id, "dashboard", allow_challenger=False,
                             with_shadow=False)
    versions = services.registry.list_versions(kind=FRAUD.name, tenant_id=tenant_id)
    with services.transactions.transaction() as tx:
        point = operating_point(services, tx, tenant_id, serving)
        threshold = float(point["review_threshold"])
        daily = repo.daily_rates(tx, tenant_id, since, threshold)
        high = repo.high_scores(tx, tenant_id, threshold, HIGH_SCORES)
        # Over this tenant's predictions only: a global version's stored figures pool every tenant's.
        live = services.log.tenant_live_metrics(tx, tenant_id, now)
    live_pr = {(row["model_label"], row["window_days"]): row["pr_auc"] for row in live}
    return {
        "window_days": days,
        "review_threshold": threshold,
        "versions": [{
            "label": v.label, "scope": "global" if v.tenant_id is None else "tenant", "status": v.status,
            "role": serving_role(v),
            "trained_pr_auc": v.manifest.get("metrics", {}).get("pr_auc"),
            "live_pr_auc_30d": live_pr.get((v.label, 30)), "live_pr_auc_7d": live_pr.get((v.label, 7)),
        } for v in sorted(versions, key=lambda v: (v.tenant_id is None, -v.version))],
        "false_positive_rate_by_day": [{
            "day": row["day"].date().isoformat(), "scored": int(row["scored"]),
            "with_outcome": int(row["with_outcome"]), "false_positives": int(row["false_positives"]),
            "true_positives": int(row["true_positives"]),
            "false_positive_rate": (round(int(row["false_positives"]) / negatives, 4)
                                    if (negatives := int(row["false_positives"]) + int(row["true_negatives"]))
                                    else None),
        } for row in daily],
        "high_scores": [{
            "prediction_id": row["prediction_id"], "client_event_id": row["client_event_id"],
            "user_id": row["user_id"], "site_id": row["site_id"], "occurred_at": row["occurred_at"],
            "predicted_at": row["predicted_at"], "fraud_score": round(float(row["probability"]), 4),
            "model_version": row["model_label"], "outcome": row["outcome"],
            "reasons": reasons_for(serving, row["features"]),
        } for row in high],
    }
