"""Scheduled jobs by name: one table that both the EventBridge handlers and `mlstack run-job` use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.context import AppContext


@dataclass(frozen=True)
class Job:
    name: str
    # EventBridge expression, e.g. "rate(6 hours)" or "cron(0 3 ? * MON *)".
    schedule: str
    description: str
    run: Callable[[AppContext], dict[str, Any]]


JOBS: dict[str, Job] = {}


def job(name: str, schedule: str, description: str) -> Callable[[Callable[[AppContext], dict[str, Any]]], Job]:
    def register(func: Callable[[AppContext], dict[str, Any]]) -> Job:
        entry = Job(name, schedule, description, func)
        JOBS[name] = entry
        return entry

    return register


def run_job(context: AppContext, name: str) -> dict[str, Any]:
    from shared.errors import NotFound

    load_all_jobs()
    if name not in JOBS:
        raise NotFound(f"no job {name!r}; known: {', '.join(sorted(JOBS)) or 'none'}")
    return JOBS[name].run(context)


def load_all_jobs() -> dict[str, Job]:
    """Import every module that defines jobs, so the table is complete."""
    import shared.conflict.jobs  # noqa: F401
    import shared.platform.maintenance  # noqa: F401

    return JOBS
