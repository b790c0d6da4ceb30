"""Live conflict prediction: features as of now, the serving model (or the heuristic), and the
prediction log row, all in the transaction whose commit precedes the answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.adapters.db import is_uuid
from shared.conflict.events import FieldName, Identifier, Name
from shared.conflict.features_repository import FeatureRequest, confidence, feature_vector, features_for_requests
from shared.conflict.model import HEURISTIC_VERSION, KIND, LinearConflictModel, heuristic_probability, risk_level
from shared.context import AppContext
from shared.errors import MlstackError, NotFound
from shared.logs import log_event
from shared.platform.registry import ModelVersion


class ConflictPredictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    domain: Name
    user_id: Identifier
    entity_type: Name
    entity_id: Identifier
    fields: Annotated[list[FieldName], Field(min_length=1, max_length=64)] | None = None


@dataclass(frozen=True)
class ServingModel:
    """What answers: a verified model version, or the heuristic (version None)."""

    version: ModelVersion | None
    model: LinearConflictModel | None
    variant: str
    degraded: bool

    @property
    def label(self) -> str:
        return self.version.label if self.version else HEURISTIC_VERSION

    def probability(self, features: dict[str, float]) -> float:
        if self.model is None:
            return heuristic_probability(features)
        return float(self.model.predict_rows([features])[0])


def _in_challenger_share(routing_key: str, share: float) -> bool:
    """Deterministic split: the same request id always gets the same variant."""
    bucket = int.from_bytes(hashlib.sha256(routing_key.encode()).digest()[:4], "big") / 2**32
    return bucket < share


def choose_serving_model(
    context: AppContext, tenant_id: str, routing_key: str, *, allow_challenger: bool = True
) -> ServingModel:
    """Champion or challenger by traffic share; the heuristic when nothing verified can serve."""
    choice = context.serving_models.choice(KIND, tenant_id)
    candidates: list[tuple[ModelVersion, str]] = []
    if allow_challenger and choice.challenger is not None and choice.challenger.challenger_share and _in_challenger_share(
        routing_key, choice.challenger.challenger_share
    ):
        candidates.append((choice.challenger, "challenger"))
    if choice.champion is not None:
        candidates.append((choice.champion, "champion"))
    for version, variant in candidates:
        try:
            model = context.serving_models.load(version, LinearConflictModel.from_artifact)
            return ServingModel(version, model, variant, degraded=False)
        except MlstackError as exc:
            # Refused, unreachable or unusable: try the next, and finally the heuristic. Never a 500.
            log_event("conflict.model_unavailable", version_id=version.version_id, reason=exc.message)
    return ServingModel(None, None, "heuristic", degraded=True)


_LOG_SQL = """
INSERT INTO conflict_predictions (tenant_id, request_id, user_id, domain, entity_type, entity_id, fields,
    features, probability, risk_level, model_version_id, model_label, variant, predicted_at)
VALUES (CAST(:tenant AS uuid), :request_id, :user_id, :domain, :entity_type, :entity_id, :fields,
    CAST(:features AS jsonb), :probability, :risk, CAST(:version_id AS uuid), :label, :variant, :at)
RETURNING prediction_id
"""


def predict_conflict(
    context: AppContext, tenant_id: str, request: ConflictPredictionRequest, request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    serving = choose_serving_model(context, tenant_id, request_id)
    feature_request = FeatureRequest(
        request_id=request_id, tenant_id=tenant_id, user_id=request.user_id, domain=request.domain,
        entity_type=request.entity_type, entity_id=request.entity_id,
        fields=tuple(request.fields) if request.fields else None, as_of=now,
    )
    with context.database.transaction() as tx:
        row = features_for_requests(tx, [feature_request])[0]
        features = feature_vector(row)
        probability = serving.probability(features)
        level = risk_level(probability)
        prediction_id = tx.fetch_value(
            _LOG_SQL, tenant=tenant_id, request_id=request_id, user_id=request.user_id, domain=request.domain,
            entity_type=request.entity_type, entity_id=request.entity_id, fields=request.fields,
            features=json.dumps(features), probability=probability, risk=level,
            version_id=serving.version.version_id if serving.version else None, label=serving.label,
            variant=serving.variant, at=now,
        )
    return {
        "prediction_id": str(prediction_id),
        "probability": round(probability, 6),
        "risk_level": level,
        "model_version": serving.label,
        "variant": serving.variant,
        "confidence": confidence(row),
        "features": features,
        "degraded": serving.degraded,
    }


def get_prediction(context: AppContext, tenant_id: str, prediction_id: str) -> dict[str, Any]:
    with context.database.transaction() as tx:
        row = tx.fetch_one(
            "SELECT prediction_id, request_id, user_id, domain, entity_type, entity_id, fields, features,"
            " probability, risk_level, model_label AS model_version, variant, predicted_at, outcome, outcome_at"
            " FROM conflict_predictions WHERE prediction_id = CAST(:id AS uuid) AND tenant_id = CAST(:tenant AS uuid)",
            id=prediction_id, tenant=tenant_id,
        ) if is_uuid(prediction_id) else None
    if row is None:
        raise NotFound(f"no prediction {prediction_id}")
    if isinstance(row["features"], str):
        row["features"] = json.loads(row["features"])
    return row
