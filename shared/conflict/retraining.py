"""Weekly retraining: train a candidate, score it and the champion on the same newest hold-out,
promote only a real improvement.

Promotion needs both: ROC-AUC at least 5 % better than the champion's (relative), and a paired
bootstrap whose 95 % interval of the AUC difference lies above 0. Runs are serialised by an
advisory lock, and the promotion itself is a compare-and-swap on the champion judged against.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.conflict.model import KIND, LinearConflictModel
from shared.conflict.training import train_candidate
from shared.context import AppContext
from shared.errors import Conflict, InsufficientData, MlstackError
from shared.platform.metrics import paired_bootstrap_auc_difference, roc_auc

RETRAIN_LOCK_ID = 7_340_201
MIN_RELATIVE_GAIN = 0.05
FIRST_MODEL_MIN_AUC = 0.6
BOOTSTRAP_RESAMPLES = 1000


def decide_promotion(
    candidate_auc: float | None, champion_auc: float | None, interval: tuple[float, float] | None
) -> tuple[bool, str]:
    if candidate_auc is None:
        return False, "candidate ROC-AUC undefined on the hold-out"
    if champion_auc is None:
        if candidate_auc >= FIRST_MODEL_MIN_AUC:
            return True, f"no champion; candidate ROC-AUC {candidate_auc:.4f} >= {FIRST_MODEL_MIN_AUC}"
        return False, f"no champion, but candidate ROC-AUC {candidate_auc:.4f} < {FIRST_MODEL_MIN_AUC}"
    if candidate_auc < champion_auc * (1 + MIN_RELATIVE_GAIN):
        return False, (
            f"candidate ROC-AUC {candidate_auc:.4f} is not >= 5 % better than champion {champion_auc:.4f}"
        )
    assert interval is not None
    if not interval[0] > 0:
        return False, f"gain not significant: 95 % bootstrap interval [{interval[0]:.4f}, {interval[1]:.4f}]"
    return True, (
        f"candidate ROC-AUC {candidate_auc:.4f} vs champion {champion_auc:.4f};"
        f" 95 % interval of the gain [{interval[0]:.4f}, {interval[1]:.4f}]"
    )


def retrain_conflict_model(
    context: AppContext, *, now: datetime | None = None, days_back: int = 90, actor: str = "retrain-conflict"
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    locked = context.database.run_outside_transaction("SELECT pg_try_advisory_lock(:id)", id=RETRAIN_LOCK_ID)
    if not locked[0][0]:
        return {"promoted": False, "reason": "another conflict retrain is running"}
    try:
        return _retrain_locked(context, now=now, days_back=days_back, actor=actor)
    finally:
        context.database.run_outside_transaction("SELECT pg_advisory_unlock(:id)", id=RETRAIN_LOCK_ID)


def _retrain_locked(context: AppContext, *, now: datetime, days_back: int, actor: str) -> dict[str, Any]:
    # The version judged against: promotion is a compare-and-swap on it, usable or not.
    champion = context.registry.active_version(KIND, None)
    try:
        result = train_candidate(context, end=now, days_back=days_back, actor=actor)
    except InsufficientData as exc:
        context.registry.record_decision(
            kind=KIND, tenant_id=None, actor=actor, action="retrain_skipped", detail={"reason": exc.message}
        )
        return {"promoted": False, "reason": exc.message}
    assert result.version is not None
    holdout = result.holdout
    candidate_scores = result.model.predict_proba(holdout.design)
    candidate_auc = roc_auc(holdout.labels, candidate_scores)
    champion_auc, interval, champion_note = None, None, ""
    if champion is not None:
        try:
            champion_model = LinearConflictModel.from_artifact(context.registry.load_verified(champion))
        except (MlstackError, ValueError, KeyError, TypeError) as exc:
            # A champion that cannot be loaded is not serving anyway (the heuristic is): the
            # candidate is judged as if there were none, and replaces it.
            champion_note = f"champion {champion.label} unusable ({exc}); "
        else:
            champion_scores = champion_model.predict_proba(holdout.design)
            champion_auc = roc_auc(holdout.labels, champion_scores)
            interval = paired_bootstrap_auc_difference(
                holdout.labels, candidate_scores, champion_scores, resamples=BOOTSTRAP_RESAMPLES
            )
    promote, reason = decide_promotion(candidate_auc, champion_auc, interval)
    reason = champion_note + reason
    detail = {
        "candidate": result.version.version_id,
        "champion": champion.version_id if champion else None,
        "candidate_auc": candidate_auc,
        "champion_auc": champion_auc,
        "bootstrap_interval": list(interval) if interval else None,
        "holdout_rows": holdout.rows,
        "reason": reason,
    }
    if promote:
        try:
            context.registry.activate(
                result.version.version_id, actor=actor, reason=reason,
                expected_active_id=champion.version_id if champion else None,
            )
        except Conflict as exc:
            promote, detail["reason"] = False, exc.message
    context.registry.record_decision(
        kind=KIND, tenant_id=None, actor=actor, action="promoted" if promote else "kept_champion", detail=detail
    )
    return {"promoted": promote, **detail, "metrics": result.metrics}
