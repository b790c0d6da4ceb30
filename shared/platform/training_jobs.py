"""Per-scope training jobs: a scheduled retrain fans out one message per (kind, scope) onto the
training-jobs queue, and a worker function retrains each scope on its own (bounded concurrency is
the queue's event-source setting, infra/template.yaml). Without a queue (local runs, the CLI) the
same scopes are retrained in this process, one after the other."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import InvalidInput, NotFound

Retrain = Callable[[str | None], dict[str, Any]]


class TrainingJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    tenant_id: str | None = None  # None: the global model


def fan_out(kind: str, scopes: Sequence[str | None], *, send: Callable[[str], Any] | None,
            retrain: Retrain) -> dict[str, Any]:
    """Queue one job per scope when a queue is there; else retrain each scope now."""
    if send is not None:
        for tenant_id in scopes:
            send(TrainingJob(kind=kind, tenant_id=tenant_id).model_dump_json())
        return {"queued": len(scopes), "kind": kind}
    return {"ran_in_process": {tenant_id or "global": retrain(tenant_id) for tenant_id in scopes}}


def parse_job(body: str) -> TrainingJob:
    try:
        return TrainingJob.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(f"not a training job: {exc}") from None


def run_job(job: TrainingJob, retrainers: dict[str, Callable[[str | None], dict[str, Any]]]) -> dict[str, Any]:
    if job.kind not in retrainers:
        raise NotFound(f"no retraining for kind {job.kind!r}")
    return {"kind": job.kind, "scope": job.tenant_id or "global", **retrainers[job.kind](job.tenant_id)}
