"""Live conflict prediction: features as of now, the serving model (or the heuristic), and the
prediction log rows, all in the transaction whose commit precedes the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.conflict.events import FieldName, Identifier, Name
from shared.conflict.features_repository import FeatureRequest, confidence, feature_vector
from shared.conflict.kind import CONFLICT
from shared.conflict.services import ConflictServices, conflict_services
from shared.context import AppContext
from shared.errors import NotFound
from shared.platform.serving import choose_serving


class ConflictPredictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    domain: Name
    user_id: Identifier
    entity_type: Name
    entity_id: Identifier
    fields: Annotated[list[FieldName], Field(min_length=1, max_length=64)] | None = None


def answer_conflict(
    services: ConflictServices, tenant_id: str, request: ConflictPredictionRequest, request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    serving = choose_serving(CONFLICT, services.models, tenant_id, request_id)
    feature_request = FeatureRequest(
        request_id=request_id, tenant_id=tenant_id, user_id=request.user_id, domain=request.domain,
        entity_type=request.entity_type, entity_id=request.entity_id,
        fields=tuple(request.fields) if request.fields else None, as_of=now,
    )
    subject = {"user_id": request.user_id, "domain": request.domain, "entity_type": request.entity_type,
               "entity_id": request.entity_id, "fields": request.fields}
    with services.transactions.transaction() as tx:
        row = services.features.for_requests(tx, [feature_request])[0]
        features = feature_vector(row)
        probability = serving.probability(features)
        records = serving.records(tenant_id=tenant_id, request_id=request_id, subject=subject, features=features,
                                  probability=probability, predicted_at=now)
        prediction_id = services.log.append(tx, records)
    return {
        "prediction_id": prediction_id,
        "probability": round(probability, 6),
        "risk_level": records[0].risk_level,
        "model_version": serving.label,
        "variant": serving.variant,
        "scope": serving.scope,
        "confidence": confidence(row),
        "features": features,
        "degraded": serving.degraded,
    }


def read_conflict_prediction(services: ConflictServices, tenant_id: str, prediction_id: str) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        row = services.log.get(tx, tenant_id, prediction_id)
    if row is None:
        raise NotFound(f"no prediction {prediction_id}")
    return row


def predict_conflict(
    context: AppContext, tenant_id: str, request: ConflictPredictionRequest, request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    return answer_conflict(conflict_services(context), tenant_id, request, request_id, now)


def get_prediction(context: AppContext, tenant_id: str, prediction_id: str) -> dict[str, Any]:
    return read_conflict_prediction(conflict_services(context), tenant_id, prediction_id)
