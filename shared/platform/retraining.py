"""Retraining any kind for one scope: train a candidate, score it and the champion on the same
newest hold-out, promote only a real improvement.

Promotion needs both: the kind's metric (ROC-AUC or PR-AUC) at least `min_relative_gain` better
than the champion's, and a paired bootstrap whose 95 % interval of the difference lies above 0.
Runs of one (kind, tenant) are serialised by a lock, and the promotion itself is a compare-and-swap
on the scope's active version as it was when judged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.errors import Conflict, InsufficientData, MlstackError
from shared.platform.kinds import ModelKind, PromotionPolicy
from shared.platform.locks import Locks
from shared.platform.metrics import metric_named, paired_bootstrap_difference
from shared.platform.registry import Registry
from shared.platform.training import TrainingSource, train_candidate

_METRIC_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}
DEFAULT_PROMOTION = PromotionPolicy()
# The audit actions that end a retrain run: exactly one of them is recorded per run.
PROMOTED, KEPT_CHAMPION, SKIPPED = "promoted", "kept_champion", "retrain_skipped"
RETRAIN_DECISIONS = (PROMOTED, KEPT_CHAMPION, SKIPPED)


def decide_promotion(
    candidate_score: float | None, champion_score: float | None, interval: tuple[float, float] | None,
    policy: PromotionPolicy = DEFAULT_PROMOTION,
) -> tuple[bool, str]:
    metric = _METRIC_NAMES[policy.metric]
    if candidate_score is None:
        return False, f"candidate {metric} undefined on the hold-out"
    if champion_score is None:
        if candidate_score >= policy.first_model_min:
            return True, f"no champion; candidate {metric} {candidate_score:.4f} >= {policy.first_model_min}"
        return False, f"no champion, but candidate {metric} {candidate_score:.4f} < {policy.first_model_min}"
    if candidate_score < champion_score * (1 + policy.min_relative_gain):
        return False, (
            f"candidate {metric} {candidate_score:.4f} is not >= {policy.min_relative_gain * 100:g} % better than"
            f" champion {champion_score:.4f}"
        )
    assert interval is not None
    if not interval[0] > 0:
        return False, f"gain not significant: 95 % bootstrap interval [{interval[0]:.4f}, {interval[1]:.4f}]"
    return True, (
        f"candidate {metric} {candidate_score:.4f} vs champion {champion_score:.4f};"
        f" 95 % interval of the gain [{interval[0]:.4f}, {interval[1]:.4f}]"
    )


def retrain(
    kind: ModelKind, source: TrainingSource, registry: Registry, locks: Locks, *, tenant_id: str | None = None,
    now: datetime | None = None, days_back: int | None = None, actor: str | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    actor = actor or f"retrain-{kind.name}"
    with locks.exclusive(f"retrain/{kind.name}/{tenant_id or 'global'}") as taken:
        if not taken:
            return {"promoted": False, "reason": f"another {kind.name} retrain is running"}
        return _retrain_locked(kind, source, registry, tenant_id=tenant_id, now=now, days_back=days_back, actor=actor)


def _retrain_locked(
    kind: ModelKind, source: TrainingSource, registry: Registry, *, tenant_id: str | None, now: datetime,
    days_back: int | None, actor: str,
) -> dict[str, Any]:
    # Judged against what serves this scope now (a tenant without its own model is served by the
    # global one); the compare-and-swap is on the scope's own active version, usable or not.
    champion = registry.active_version(kind.name, tenant_id)
    own_active = registry.in_scope(kind.name, tenant_id).active
    try:
        result = train_candidate(kind, source, registry, tenant_id=tenant_id, end=now, days_back=days_back,
                                 actor=actor)
    except InsufficientData as exc:
        registry.record_decision(kind=kind.name, tenant_id=tenant_id, actor=actor, action=SKIPPED,
                                 detail={"reason": exc.message})
        return {"promoted": False, "reason": exc.message}
    assert result.version is not None
    policy, metric = kind.promotion, metric_named(kind.promotion.metric)
    holdout = result.holdout
    candidate_scores = result.model.predict_proba(holdout.design)
    candidate_score = metric(holdout.labels, candidate_scores)
    champion_score, interval, champion_note = None, None, ""
    if champion is not None:
        try:
            champion_model = kind.load(registry.load_verified_bytes(champion))
        except (MlstackError, ValueError, KeyError, TypeError) as exc:
            # A champion that cannot be loaded is not serving anyway (the fallback is): the
            # candidate is judged as if there were none, and replaces it.
            champion_note = f"champion {champion.label} unusable ({getattr(exc, 'message', exc)}); "
        else:
            champion_scores = champion_model.predict_proba(holdout.design)
            champion_score = metric(holdout.labels, champion_scores)
            interval = paired_bootstrap_difference(holdout.labels, candidate_scores, champion_scores, metric=metric,
                                                   resamples=policy.bootstrap_resamples)
    promote, reason = decide_promotion(candidate_score, champion_score, interval, policy)
    reason = champion_note + reason
    detail = {
        "candidate": result.version.version_id,
        "champion": champion.version_id if champion else None,
        "metric": policy.metric,
        "candidate_score": candidate_score,
        "champion_score": champion_score,
        "bootstrap_interval": list(interval) if interval else None,
        "holdout_rows": holdout.rows,
        "reason": reason,
    }
    if promote:
        try:
            registry.activate(result.version.version_id, actor=actor, reason=reason,
                              expected_active_id=own_active.version_id if own_active else None)
        except Conflict as exc:
            promote, detail["reason"] = False, exc.message
    registry.record_decision(kind=kind.name, tenant_id=tenant_id, actor=actor,
                             action=PROMOTED if promote else KEPT_CHAMPION, detail=detail)
    return {"promoted": promote, **detail, "metrics": result.metrics}
