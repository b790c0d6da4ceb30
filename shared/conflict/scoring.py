"""Batch scoring: a CSV of requests in, the same rows with probabilities out.

The same feature definitions as the API (the columnar pass of shared/conflict/features.py over
one read of the history the rows need) and the same serving model. The as-of rule: `as_of` is
when the prediction is asked, i.e. when the device starts its sync (blank: now); with `device_id`
and `client_last_sync_at` the features are as of the start of that device's sync batch, exactly as
for a live request or a training row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from shared.conflict.features import FEATURE_NAMES, from_us
from shared.conflict.features_repository import FeatureRequest, confidence
from shared.conflict.kind import CONFLICT
from shared.conflict.model import risk_level
from shared.conflict.prediction import ConflictPredictionRequest
from shared.conflict.services import conflict_services
from shared.context import AppContext
from shared.errors import FieldProblem, InvalidInput
from shared.platform.serving import choose_serving

INPUT_COLUMNS = ("user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id",
                 "client_last_sync_at")
OUTPUT_COLUMNS = (
    "row", "user_id", "domain", "entity_type", "entity_id", "fields", "as_of", "device_id", "client_last_sync_at",
    "features_as_of", "probability", "risk_level", "confidence", "model_version", *FEATURE_NAMES,
)


# One validation call for the whole file (pydantic's loop runs in its compiled core): a model per
# row from Python cost about twice as much as every other step of scoring a row.
_REQUESTS = TypeAdapter(list[ConflictPredictionRequest])


def _requests(reader: Iterator[dict[str, str]], tenant_id: str, now: datetime) -> list[FeatureRequest]:
    raws = list(reader)
    bodies = [{
        "domain": raw.get("domain", ""), "user_id": raw.get("user_id", ""), "entity_type": raw.get("entity_type", ""),
        "entity_id": raw.get("entity_id", ""), "fields": [f for f in (raw.get("fields") or "").split(";") if f] or None,
        "device_id": raw.get("device_id") or None, "client_last_sync_at": raw.get("client_last_sync_at") or None,
    } for raw in raws]
    try:
        parsed = _REQUESTS.validate_python(bodies)
    except ValidationError as exc:
        first = exc.errors()[0]
        number = int(first["loc"][0]) + 2  # line 1 is the header
        where = ".".join(str(part) for part in first["loc"][1:])
        message = f"{where}: {first['msg']}"
        raise InvalidInput(f"line {number}: {message}", [FieldProblem(f"line {number}", message)]) from None
    requests = []
    for index, (raw, request) in enumerate(zip(raws, parsed, strict=True)):
        number = index + 2
        try:
            as_of = datetime.fromisoformat(raw["as_of"]) if raw.get("as_of") else now
        except ValueError as exc:
            raise InvalidInput(f"line {number}: as_of: {exc}", [FieldProblem(f"line {number}", str(exc))]) from None
        if as_of.tzinfo is None:
            raise InvalidInput(f"line {number}: as_of needs a time zone", [FieldProblem(f"line {number}", "as_of")])
        requests.append(request.feature_request(str(number), tenant_id, as_of))
    return requests


def score_conflict_csv(context: AppContext, tenant_id: str, source: IO[str], sink: IO[str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    reader = csv.DictReader(source)
    missing = {"user_id", "domain", "entity_type", "entity_id"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidInput(f"input lacks columns: {', '.join(sorted(missing))}")
    requests = _requests(reader, tenant_id, now)
    # Batch scoring answers with the champion: a challenger's share is a share of live traffic.
    services = conflict_services(context)
    serving = choose_serving(CONFLICT, services.models, tenant_id, "batch", allow_challenger=False, with_shadow=False)
    with services.transactions.transaction() as tx:
        columns = services.features.for_requests(tx, requests)
    if serving.answering is None:
        rows = [{name: float(columns[name][n]) for name in FEATURE_NAMES} for n in range(len(requests))]
        probabilities = np.array([CONFLICT.heuristic(row) for row in rows])
    else:
        probabilities = serving.answering.model.predict_proba(CONFLICT.design_matrix(columns))  # type: ignore[arg-type]
    writer = csv.writer(sink)
    writer.writerow(OUTPUT_COLUMNS)
    feature_columns = [columns[name].tolist() for name in FEATURE_NAMES]
    user_support, entity_support = columns["support_user_syncs"].tolist(), columns["support_entity_edits"].tolist()
    as_of_us = columns["as_of"].astype(np.int64).tolist()
    for n, request in enumerate(requests):
        probability = float(probabilities[n])
        writer.writerow([
            request.request_id, request.user_id, request.domain, request.entity_type, request.entity_id,
            ";".join(request.fields or ()), request.as_of.isoformat(), request.device_id or "",
            request.client_last_sync_at.isoformat() if request.client_last_sync_at else "",
            from_us(as_of_us[n]).isoformat(), f"{probability:.6f}", risk_level(probability),
            confidence({"support_user_syncs": user_support[n], "support_entity_edits": entity_support[n]}),
            serving.label, *(column[n] for column in feature_columns),
        ])
    return {"rows": len(requests), "model_version": serving.label, "degraded": serving.degraded}


def score_conflict_file(context: AppContext, tenant_id: str, source: Path, target: Path) -> dict[str, Any]:
    tmp = target.with_suffix(target.suffix + ".partial")
    with source.open(newline="") as src, tmp.open("w", newline="") as dst:
        result = score_conflict_csv(context, tenant_id, src, dst)
    tmp.replace(target)
    return result
