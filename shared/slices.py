"""The one list of slices. `app.py` registers their routes, functions/schedules.py their jobs, the
CLI their commands; tests check that .chalice/config.json and infra/template.yaml give every job
a function. Adding a loop is adding its slice here."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from shared.conflict.outcomes_repository import PREDICTIONS_TABLE as CONFLICT_PREDICTIONS
from shared.conflict.slice import CONFLICT_SLICE
from shared.context import AppContext
from shared.errors import NotFound
from shared.fraud.outcomes_repository import PREDICTIONS_TABLE as FRAUD_PREDICTIONS
from shared.fraud.slice import FRAUD_SLICE
from shared.monitoring.slice import monitoring_slice
from shared.monitoring.watched import WatchedKind
from shared.ocr.outcomes_repository import PREDICTIONS_TABLE as OCR_PREDICTIONS
from shared.ocr.slice import OCR_SLICE
from shared.platform.jobs import Job, Slice
from shared.platform.maintenance import PLATFORM_SLICE

# What monitoring watches (drift, predictions per minute): each loop's kind with its prediction
# table, and the loop's retrain job for an early retrain on drift. Monitoring never imports a loop.
_LOOPS = ((CONFLICT_SLICE, CONFLICT_PREDICTIONS), (FRAUD_SLICE, FRAUD_PREDICTIONS), (OCR_SLICE, OCR_PREDICTIONS))
WATCHED = {kind.name: WatchedKind(kind, table) for loop, table in _LOOPS for kind in loop.kinds}
RETRAINERS = {kind.name: job.run for loop, _ in _LOOPS for kind in loop.kinds for job in loop.jobs
              if job.name.startswith("retrain-")}
MONITORING_SLICE = monitoring_slice(WATCHED, RETRAINERS)

SLICES: tuple[Slice, ...] = (PLATFORM_SLICE, CONFLICT_SLICE, FRAUD_SLICE, OCR_SLICE, MONITORING_SLICE)


def all_jobs() -> dict[str, Job]:
    return {job.name: job for loop in SLICES for job in loop.jobs}


def job_named(name: str) -> Job:
    jobs = all_jobs()
    if name not in jobs:
        raise NotFound(f"no job {name!r}; known: {', '.join(sorted(jobs)) or 'none'}")
    return jobs[name]


def scope_retrainers(context: AppContext) -> dict[str, Callable[[str | None], dict[str, Any]]]:
    """What the training-jobs worker can run, by kind."""
    return {kind: partial(run, context) for loop in SLICES for kind, run in loop.retrainers.items()}


def after_activation(context: AppContext, kind: str) -> dict[str, Any] | None:
    """Run what a kind needs once a version of it became active by hand; None if it needs nothing."""
    for loop in SLICES:  # a kind belongs to one slice
        if kind in loop.after_activation:
            return loop.after_activation[kind](context)
    return None
