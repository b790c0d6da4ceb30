"""Live conflict prediction: features as of now, the serving model (or the heuristic), and the
prediction log rows, committed before the answer: on PostgreSQL in one statement (see
answers_repository.py), else (fakes, a model without a SQL form) in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.conflict.answers_repository import LoggedAnswer
from shared.conflict.events import FieldName, Identifier, Name
from shared.conflict.features_repository import FeatureRequest, confidence, feature_vector
from shared.conflict.kind import CONFLICT
from shared.conflict.services import ConflictServices, conflict_services
from shared.context import AppContext
from shared.errors import NotFound
from shared.platform.json_bodies import validate_json_body
from shared.platform.serving import Serving, choose_serving
from shared.platform.validation import PlausibleTime


class ConflictPredictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    domain: Name
    user_id: Identifier
    entity_type: Name
    entity_id: Identifier
    fields: Annotated[list[FieldName], Field(min_length=1, max_length=64)] | None = None
    # The device starting the sync and its last sync: the features are then as of the start of
    # that device's sync batch, and "since my last sync" is since this device's.
    device_id: Identifier | None = None
    client_last_sync_at: PlausibleTime | None = None

    @field_validator("fields")
    @classmethod
    def _distinct_fields(cls, value: list[str] | None) -> list[str] | None:
        # As intake refuses a repeated field in fields_changed: a repeat would count a field twice.
        if value is not None and len(set(value)) != len(value):
            raise ValueError("fields has duplicates")
        return value

    @field_validator("client_last_sync_at")
    @classmethod
    def _not_after_intake(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        # The features are as of the request's time (given as context): a last sync after it is
        # a clock in the future, as intake refuses for an event without received_at.
        as_of = (info.context or {}).get("as_of")
        if value is not None and as_of is not None and value > as_of:
            raise ValueError("client_last_sync_at is after the request's time (now)")
        return value

    def feature_request(self, request_id: str, tenant_id: str, as_of: datetime) -> FeatureRequest:
        return FeatureRequest(
            request_id=request_id, tenant_id=tenant_id, user_id=self.user_id, domain=self.domain,
            entity_type=self.entity_type, entity_id=self.entity_id,
            fields=tuple(self.fields) if self.fields else None, as_of=as_of, device_id=self.device_id,
            client_last_sync_at=self.client_last_sync_at,
        )


def parse_conflict_request(payload: Any, as_of: datetime) -> ConflictPredictionRequest:
    """The API's body, typed as JSON (json_bodies.py) and checked against the time the features
    are as of (its client_last_sync_at may not be later)."""
    return validate_json_body(ConflictPredictionRequest, payload, context={"as_of": as_of})


def answer_conflict(
    services: ConflictServices, tenant_id: str, request: ConflictPredictionRequest, request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    serving = choose_serving(CONFLICT, services.models, tenant_id, request_id)
    feature_request = request.feature_request(request_id, tenant_id, now)
    logged = services.answers.answer(feature_request, serving) if services.answers else None
    if logged is None:
        logged = _answer_in_transaction(services, feature_request, serving)
    row = logged.row
    features = feature_vector(row)
    return {
        "prediction_id": logged.prediction_id,
        "probability": round(logged.probability, 6),
        "risk_level": logged.risk_level,
        "model_version": serving.label,
        "variant": serving.variant,
        "scope": serving.scope,
        "confidence": confidence(row),
        "features": features,
        "degraded": serving.degraded,
    }


def _answer_in_transaction(services: ConflictServices, request: FeatureRequest, serving: Serving) -> LoggedAnswer:
    """Features, model and log insert in one transaction whose commit precedes the answer."""
    subject = {"user_id": request.user_id, "domain": request.domain, "entity_type": request.entity_type,
               "entity_id": request.entity_id, "fields": list(request.fields) if request.fields else None,
               "device_id": request.device_id, "client_last_sync_at": request.client_last_sync_at}
    with services.transactions.transaction() as tx:
        row = services.features.for_request(tx, request)
        features = feature_vector(row)
        probability = serving.probability(features)
        records = serving.records(tenant_id=request.tenant_id, request_id=request.request_id, subject=subject,
                                  features=features, probability=probability, predicted_at=request.as_of)
        prediction_id = services.log.append(tx, records)
    return LoggedAnswer(row, probability, records[0].risk_level, prediction_id)


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
