"""The one list of slices. `app.py` registers their routes, functions/schedules.py their jobs, the
CLI their commands; tests check that .chalice/config.json and infra/template.yaml give every job
a function. Adding a loop is adding its slice here."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from shared.conflict.slice import CONFLICT_SLICE
from shared.context import AppContext
from shared.errors import NotFound
from shared.fraud.slice import FRAUD_SLICE
from shared.ocr.slice import OCR_SLICE
from shared.platform.jobs import Job, Slice
from shared.platform.kinds import ModelKind
from shared.platform.maintenance import PLATFORM_SLICE

SLICES: tuple[Slice, ...] = (PLATFORM_SLICE, CONFLICT_SLICE, FRAUD_SLICE, OCR_SLICE)


def all_jobs() -> dict[str, Job]:
    return {job.name: job for loop in SLICES for job in loop.jobs}


def job_named(name: str) -> Job:
    jobs = all_jobs()
    if name not in jobs:
        raise NotFound(f"no job {name!r}; known: {', '.join(sorted(jobs)) or 'none'}")
    return jobs[name]


def all_kinds() -> dict[str, ModelKind]:
    return {kind.name: kind for loop in SLICES for kind in loop.kinds}


def scope_retrainers(context: AppContext) -> dict[str, Callable[[str | None], dict[str, Any]]]:
    """What the training-jobs worker can run, by kind."""
    return {kind: partial(run, context) for loop in SLICES for kind, run in loop.retrainers.items()}
