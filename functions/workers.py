"""Queue-driven workers: the training-jobs queue's consumer (one (kind, scope) retrain a message)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalice import Blueprint

from shared.context import get_context
from shared.logs import configure_logging, log_event
from shared.platform.retraining import RETRAIN_DECISIONS
from shared.platform.training_jobs import parse_job, run_job
from shared.slices import scope_retrainers

workers_blueprint = Blueprint(__name__)


@workers_blueprint.lambda_function(name="train_worker")
def train_worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS records (batch size 1 in infra/template.yaml): retrain each job's scope. A failure
    raises, so SQS retries the message and finally moves it to the dead-letter queue."""
    configure_logging()
    app_context = get_context()
    retrainers = scope_retrainers(app_context)

    def last_retrained(kind: str, tenant_id: str | None) -> datetime | None:
        return app_context.registry.last_recorded_at(kind, tenant_id, RETRAIN_DECISIONS)

    results = []
    for record in event.get("Records", []):
        result = run_job(parse_job(record["body"]), retrainers, last_retrained)
        log_event("training_job", **{k: v for k, v in result.items()
                                     if k in ("kind", "scope", "promoted", "reason", "duplicate")})
        results.append(result)
    return {"jobs": len(results), "results": results}
