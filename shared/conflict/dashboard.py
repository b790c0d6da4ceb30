"""The conflict dashboard's data (staff, JSON): the model versions a tenant is served with their
training and live metrics and their role (champion, challenger, shadow), live ROC-AUC and Brier per
version and day, predictions per day by risk level, outcomes, and calibration by decile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.conflict import dashboard_repository as repo
from shared.conflict.kind import CONFLICT
from shared.conflict.services import ConflictServices
from shared.platform.metrics import brier_score, roc_auc
from shared.platform.roles import serving_role

WINDOW_DAYS = 30


def _day(value: datetime) -> str:
    return value.date().isoformat()


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def conflict_dashboard(services: ConflictServices, tenant_id: str, now: datetime | None = None,
                       days: int = WINDOW_DAYS) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    versions = services.registry.list_versions(kind=CONFLICT.name, tenant_id=tenant_id)
    with services.transactions.transaction() as tx:
        labelled = repo.labelled_by_day(tx, tenant_id, since)
        by_risk = repo.predictions_by_risk(tx, tenant_id, since)
        outcomes = repo.outcomes_by_day(tx, tenant_id, since)
        deciles = repo.calibration(tx, tenant_id, since)
        # Over this tenant's predictions only: a global version's stored figures pool every tenant's.
        live = services.log.tenant_live_metrics(tx, tenant_id, now)
    live_by_label: dict[str, dict[str, Any]] = {}
    for row in live:
        live_by_label.setdefault(row["model_label"], {})[f"{row['window_days']}d"] = {
            k: row[k] for k in ("predictions", "positives", "roc_auc", "pr_auc", "brier")}
    return {
        "window_days": days,
        "versions": [{
            "version_id": v.version_id, "label": v.label, "scope": "global" if v.tenant_id is None else "tenant",
            "status": v.status, "role": serving_role(v), "challenger_share": v.challenger_share, "shadow": v.shadow,
            "created_at": v.created_at, "activated_at": v.activated_at,
            "trained_metrics": {k: v.manifest.get("metrics", {}).get(k) for k in ("roc_auc", "pr_auc", "brier")},
            "live_metrics": live_by_label.get(v.label, {}),
        } for v in sorted(versions, key=lambda v: (v.tenant_id is None, -v.version))],
        "live_by_day": [{
            "day": _day(row["day"]), "model_label": row["model_label"], "predictions": len(row["outcomes"]),
            "positives": sum(row["outcomes"]), "roc_auc": _round(roc_auc(row["outcomes"], row["probabilities"])),
            "brier": _round(brier_score(row["outcomes"], row["probabilities"])),
        } for row in labelled],
        "predictions_by_risk": [{"day": _day(r["day"]), "risk_level": r["risk_level"],
                                 "predictions": int(r["predictions"])} for r in by_risk],
        "outcomes_by_day": [{"day": _day(r["day"]), "conflicted": int(r["conflicted"]), "clean": int(r["clean"]),
                             "pending": int(r["pending"])} for r in outcomes],
        "calibration": [{"decile": int(r["decile"]), "predictions": int(r["predictions"]),
                         "predicted": _round(r["predicted"]), "observed": _round(r["observed"])} for r in deciles],
    }
