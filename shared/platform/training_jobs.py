"""Per-scope training jobs: a scheduled retrain fans out one message per (kind, scope) onto the
training-jobs queue, and a worker function retrains each scope on its own (bounded concurrency is
the queue's event-source setting, infra/template.yaml). Without a queue (local runs, the CLI) the
same scopes are retrained in this process, one after the other.

A job may run twice: SQS delivers at least once, and a fan-out that failed half-way is sent again
whole by the schedule's retry. The second copy finds its scope's retrain decision recorded since
shortly before the job was asked for, and does nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.errors import DependencyUnavailable, InvalidInput, NotFound
from shared.platform.locks import Locks, run_alone

if TYPE_CHECKING:
    from shared.context import AppContext

Retrain = Callable[[str | None], dict[str, Any]]
# (kind, tenant_id or None) -> when that scope's last retrain decision was recorded, if ever.
LastRetrained = Callable[[str, str | None], datetime | None]
# A scope retrained this shortly before its job was asked for is not retrained again: longer than
# Lambda's retries of a failed scheduled run (minutes), far shorter than any schedule (days).
DUPLICATE_WINDOW = timedelta(hours=1)


class TrainingJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    tenant_id: str | None = None  # None: the global model
    requested_at: AwareDatetime | None = None  # None: a message from before jobs carried it


def fan_out(kind: str, scopes: Sequence[str | None], *, send: Callable[[str], Any] | None,
            retrain: Retrain, requested_at: datetime, locks: Locks | None = None) -> dict[str, Any]:
    """Queue one job per scope when a queue is there; else retrain each scope now, one run at a
    time (with `locks`): a second run beside one would retrain each scope again as soon as the
    first released it."""
    if send is None and locks is not None:
        return run_alone(locks, f"retrain-run/{kind}", f"another {kind} retrain run is running",
                         lambda: fan_out(kind, scopes, send=None, retrain=retrain, requested_at=requested_at))
    if send is not None:
        for queued, tenant_id in enumerate(scopes):
            try:
                send(TrainingJob(kind=kind, tenant_id=tenant_id, requested_at=requested_at).model_dump_json())
            except DependencyUnavailable as exc:
                # Raised, so the run fails loudly and is retried whole; the jobs already queued
                # then arrive twice, and their second copies do nothing (run_job).
                raise DependencyUnavailable(
                    f"{queued} of {len(scopes)} {kind} training jobs queued, then: {exc.message}") from exc
        return {"queued": len(scopes), "kind": kind}
    return {"ran_in_process": {tenant_id or "global": retrain(tenant_id) for tenant_id in scopes}}


def parse_job(body: str) -> TrainingJob:
    try:
        return TrainingJob.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(f"not a training job: {exc}") from None


def run_job(job: TrainingJob, retrainers: dict[str, Callable[[str | None], dict[str, Any]]],
            last_retrained: LastRetrained) -> dict[str, Any]:
    if job.kind not in retrainers:
        raise NotFound(f"no retraining for kind {job.kind!r}")
    scope = {"kind": job.kind, "scope": job.tenant_id or "global"}
    last = last_retrained(job.kind, job.tenant_id)
    if job.requested_at is not None and last is not None and last >= job.requested_at - DUPLICATE_WINDOW:
        return {**scope, "promoted": False, "duplicate": True,
                "reason": f"already retrained at {last.isoformat()}, for a job asked at {job.requested_at.isoformat()}"}
    return {**scope, **retrainers[job.kind](job.tenant_id)}


def retrain_scopes(context: AppContext, kind: str, scopes: Sequence[str | None], retrain: Retrain, locks: Locks,
                   now: datetime | None = None) -> dict[str, Any]:
    """A scheduled retrain of `scopes`: one job per scope, queued for the training workers when
    MLSTACK_TRAINING_JOBS_QUEUE_URL is set, else run here (one run of the kind at a time)."""
    from shared.adapters.aws import queue_sender

    url = context.settings.training_jobs_queue_url
    send = queue_sender(context.aws("sqs"), url) if url else None
    return fan_out(kind, scopes, send=send, retrain=retrain, requested_at=now or datetime.now(UTC), locks=locks)
