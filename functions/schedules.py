"""EventBridge-scheduled handlers: one per job of the slices in shared.slices, each a one-line call."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice import Blueprint
from chalice.app import CloudWatchEvent

from shared.context import get_context
from shared.errors import MlstackError
from shared.logs import configure_logging, log_event
from shared.platform.jobs import Job
from shared.slices import all_jobs

schedules_blueprint = Blueprint(__name__)


def _handler_for(job: Job) -> Callable[[CloudWatchEvent], dict[str, Any]]:
    def handle(event: CloudWatchEvent) -> dict[str, Any]:
        configure_logging()
        try:
            result = job.run(get_context())
        except MlstackError as exc:
            # Raised on: the run fails, EventBridge's invocation is retried and the error alarm counts it.
            log_event("job.failed", logging.ERROR, job=job.name, code=exc.code, detail=exc.message)
            raise
        log_event("job", job=job.name, result=result)
        return result

    handle.__name__ = job.handler_name
    return handle


for _job in all_jobs().values():
    schedules_blueprint.schedule(_job.schedule, name=_job.handler_name)(_handler_for(_job))
