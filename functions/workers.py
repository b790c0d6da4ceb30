"""Queue-driven workers: the training-jobs queue's consumer (one (kind, scope) retrain a message)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from shared.context import get_context
from shared.logs import configure_logging, log_event
from shared.platform.training_jobs import parse_job, run_job
from shared.slices import scope_retrainers

workers_blueprint = Blueprint(__name__)


@workers_blueprint.lambda_function(name="train_worker")
def train_worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS records (batch size 1 in infra/template.yaml): retrain each job's scope. A failure
    raises, so SQS retries the message and finally moves it to the dead-letter queue."""
    configure_logging()
    retrainers = scope_retrainers(get_context())
    results = []
    for record in event.get("Records", []):
        result = run_job(parse_job(record["body"]), retrainers)
        log_event("training_job", **{k: v for k, v in result.items() if k in ("kind", "scope", "promoted", "reason")})
        results.append(result)
    return {"jobs": len(results), "results": results}
