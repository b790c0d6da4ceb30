"""The conflict loop's scheduled jobs."""

from __future__ import annotations

from typing import Any

from shared.conflict.outcomes import track_conflict_outcomes
from shared.context import AppContext
from shared.platform.jobs import job


@job("track-conflict-outcomes", "rate(6 hours)", "Label conflict predictions older than 24 h; live ROC-AUC and Brier")
def track_conflict_outcomes_job(context: AppContext) -> dict[str, Any]:
    return track_conflict_outcomes(context)


@job("retrain-conflict", "cron(0 3 ? * MON *)", "Train a conflict candidate on 90 days; promote only if better")
def retrain_conflict_job(context: AppContext) -> dict[str, Any]:
    # Imported here: retraining imports scikit-learn, which the other handlers never need.
    from shared.conflict.retraining import retrain_conflict_model

    return retrain_conflict_model(context)
