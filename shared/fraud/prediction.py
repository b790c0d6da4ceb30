"""Scoring one attendance event: features as of its time, the serving model (or the rules), the
decision at the tenant's operating point, the reasons, and the log rows in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.context import AppContext
from shared.errors import Conflict, FieldProblem, NotFound
from shared.fraud.features import FEATURE_NAMES, EventColumns, compute_features, feature_rows
from shared.fraud.intake import AttendanceEventIn
from shared.fraud.kind import DEFAULT_BLOCK_THRESHOLD, DEFAULT_REVIEW_THRESHOLD, FRAUD, decision_for, rules_fired
from shared.fraud.services import FraudServices, fraud_services
from shared.platform.json_bodies import validate_json_body
from shared.platform.serving import Serving, choose_serving
from shared.platform.validation import Identifier

TOP_REASONS = 3


class StoredEventRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    client_event_id: Identifier


def parse_fraud_request(payload: Any) -> AttendanceEventIn | StoredEventRef:
    """An attendance event, or {"client_event_id"} of a stored one."""
    if isinstance(payload, dict) and set(payload) == {"client_event_id"}:
        return validate_json_body(StoredEventRef, payload)
    return validate_json_body(AttendanceEventIn, payload)


def operating_point(services: FraudServices, session: Any, tenant_id: str, serving: Serving) -> dict[str, Any]:
    """The tenant's own if staff set one; else the serving model's, chosen at training; else defaults."""
    own = services.operating_points.get(session, tenant_id)
    if own is not None:
        return {"review_threshold": own["review_threshold"], "block_threshold": own["block_threshold"],
                "source": "tenant"}
    chosen = serving.answering.version.manifest.get("operating_point") if serving.answering else None
    if chosen:
        return {"review_threshold": chosen["review_threshold"], "block_threshold": chosen["block_threshold"],
                "source": "model"}
    return {"review_threshold": DEFAULT_REVIEW_THRESHOLD, "block_threshold": DEFAULT_BLOCK_THRESHOLD,
            "source": "default"}


def reasons_for(serving: Serving, features: dict[str, float | None]) -> list[dict[str, Any]]:
    """The model's exact per-feature contributions (log-odds) pushing towards fraud, largest first;
    or the rules that held."""
    if serving.answering is None:
        return rules_fired(features)
    contributions = serving.answering.model.contributions(FRAUD.design_matrix([features]))[0]  # type: ignore[attr-defined]
    ranked = sorted(zip(FEATURE_NAMES, contributions[:-1], strict=True), key=lambda pair: -pair[1])
    return [{"feature": name, "value": features[name], "contribution": round(float(c), 4)}
            for name, c in ranked[:TOP_REASONS] if c > 0]


def score_event(features_by_name: dict[str, Any], index: int = 0) -> dict[str, float | None]:
    """One event's features as a dict (NaN as None) out of a computed batch."""
    return feature_rows({name: values[index:index + 1] for name, values in features_by_name.items()})[0]


def _refuse_other_content(stored: dict[str, Any] | None, request: AttendanceEventIn) -> None:
    """An event sent for scoring under a stored event's id must be that event: intake refuses
    other content under a known id (409), and a score logged under the id would describe another event."""
    if stored is None:
        return
    sent = request.model_dump()
    if any(stored[name] != sent[name] for name in AttendanceEventIn.model_fields):
        raise Conflict(f"client_event_id {request.client_event_id} is already stored with other content",
                       [FieldProblem("client_event_id", "already stored with other content")])


def answer_fraud(
    services: FraudServices, tenant_id: str, request: AttendanceEventIn | StoredEventRef, request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    serving = choose_serving(FRAUD, services.models, tenant_id, request_id)
    with services.transactions.transaction() as tx:
        if isinstance(request, StoredEventRef):
            event = services.inputs.stored_event(tx, tenant_id, request.client_event_id)
            if event is None:
                raise NotFound(f"no attendance event {request.client_event_id}")
        else:
            event = {**request.model_dump(), "tenant_id": tenant_id}
            _refuse_other_content(services.inputs.stored_event(tx, tenant_id, request.client_event_id), request)
        history, sites, holidays = services.inputs.live_inputs(tx, tenant_id, event)
        computed = compute_features(EventColumns.from_rows(history), EventColumns.from_rows([event]), sites, holidays)
        features = score_event(computed)
        score = serving.probability(features)  # type: ignore[arg-type]
        point = operating_point(services, tx, tenant_id, serving)
        decision = decision_for(score, point["review_threshold"], point["block_threshold"])
        subject = {"client_event_id": event["client_event_id"], "user_id": event["user_id"],
                   "site_id": event["site_id"], "occurred_at": event["occurred_at"]}
        records = serving.records(tenant_id=tenant_id, request_id=request_id, subject=subject,
                                  features=features, probability=score, predicted_at=now,  # type: ignore[arg-type]
                                  risk_level=decision)
        prediction_id = services.log.append(tx, records)
    return {
        "prediction_id": prediction_id,
        "client_event_id": event["client_event_id"],
        "fraud_score": round(score, 6),
        "decision": decision,
        "reasons": reasons_for(serving, features),
        "thresholds": point,
        "model_version": serving.label,
        "variant": serving.variant,
        "scope": serving.scope,
        "degraded": serving.degraded,
        "features": features,
    }


def read_fraud_prediction(services: FraudServices, tenant_id: str, prediction_id: str) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        row = services.log.get(tx, tenant_id, prediction_id)
    if row is None:
        raise NotFound(f"no prediction {prediction_id}")
    row["fraud_score"] = row.pop("probability")
    row["decision"] = row.pop("risk_level")
    return row


def predict_fraud(context: AppContext, tenant_id: str, request: AttendanceEventIn | StoredEventRef,
                  request_id: str, now: datetime | None = None) -> dict[str, Any]:
    return answer_fraud(fraud_services(context), tenant_id, request, request_id, now)
