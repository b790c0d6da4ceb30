"""Batch scoring: a CSV of requests in, the same rows with probabilities out.

Same features (the one SQL path, as of each row's time) and the same serving model as the API.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from shared.conflict.features_repository import FeatureRequest, confidence, feature_vector
from shared.conflict.kind import CONFLICT
from shared.conflict.model import FEATURE_NAMES, risk_level
from shared.conflict.prediction import ConflictPredictionRequest
from shared.conflict.services import conflict_services
from shared.context import AppContext
from shared.errors import FieldProblem, InvalidInput
from shared.platform.serving import choose_serving

BATCH_ROWS = 2000
INPUT_COLUMNS = ("user_id", "domain", "entity_type", "entity_id", "fields", "as_of")
OUTPUT_COLUMNS = (
    "row", "user_id", "domain", "entity_type", "entity_id", "fields", "as_of",
    "probability", "risk_level", "confidence", "model_version", *FEATURE_NAMES,
)


def _parse_row(number: int, raw: dict[str, str], tenant_id: str, now: datetime) -> FeatureRequest:
    fields = [f for f in (raw.get("fields") or "").split(";") if f]
    try:
        request = ConflictPredictionRequest(
            domain=raw.get("domain", ""), user_id=raw.get("user_id", ""), entity_type=raw.get("entity_type", ""),
            entity_id=raw.get("entity_id", ""), fields=fields or None,
        )
        as_of = datetime.fromisoformat(raw["as_of"]) if raw.get("as_of") else now
    except (ValidationError, ValueError) as exc:
        raise InvalidInput(f"line {number}: {exc}", [FieldProblem(f"line {number}", str(exc))]) from None
    if as_of.tzinfo is None:
        raise InvalidInput(f"line {number}: as_of needs a time zone", [FieldProblem(f"line {number}", "as_of")])
    return FeatureRequest(
        request_id=str(number), tenant_id=tenant_id, user_id=request.user_id, domain=request.domain,
        entity_type=request.entity_type, entity_id=request.entity_id,
        fields=tuple(request.fields) if request.fields else None, as_of=as_of,
    )


def _batches(reader: Iterator[dict[str, str]], tenant_id: str, now: datetime) -> Iterator[list[FeatureRequest]]:
    batch: list[FeatureRequest] = []
    for number, raw in enumerate(reader, start=2):  # line 1 is the header
        batch.append(_parse_row(number, raw, tenant_id, now))
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def score_conflict_csv(context: AppContext, tenant_id: str, source: IO[str], sink: IO[str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    reader = csv.DictReader(source)
    missing = {"user_id", "domain", "entity_type", "entity_id"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidInput(f"input lacks columns: {', '.join(sorted(missing))}")
    # Batch scoring answers with the champion: a challenger's share is a share of live traffic.
    services = conflict_services(context)
    serving = choose_serving(CONFLICT, services.models, tenant_id, "batch", allow_challenger=False, with_shadow=False)
    writer = csv.DictWriter(sink, fieldnames=OUTPUT_COLUMNS)
    writer.writeheader()
    scored = 0
    for batch in _batches(reader, tenant_id, now):
        by_id = {request.request_id: request for request in batch}
        with services.transactions.transaction() as tx:
            rows = services.features.for_requests(tx, batch)
        rows.sort(key=lambda row: int(row["request_id"]))
        for row in rows:
            request = by_id[row["request_id"]]
            features = feature_vector(row)
            probability = serving.probability(features)
            writer.writerow({
                "row": request.request_id, "user_id": request.user_id, "domain": request.domain,
                "entity_type": request.entity_type, "entity_id": request.entity_id,
                "fields": ";".join(request.fields or ()), "as_of": request.as_of.isoformat(),
                "probability": f"{probability:.6f}", "risk_level": risk_level(probability),
                "confidence": confidence(row), "model_version": serving.label, **features,
            })
            scored += 1
    return {"rows": scored, "model_version": serving.label, "degraded": serving.degraded}


def score_conflict_file(context: AppContext, tenant_id: str, source: Path, target: Path) -> dict[str, Any]:
    tmp = target.with_suffix(target.suffix + ".partial")
    with source.open(newline="") as src, tmp.open("w", newline="") as dst:
        result = score_conflict_csv(context, tenant_id, src, dst)
    tmp.replace(target)
    return result
