"""Sync-conflict routes: event intake, prediction, and reading back a logged prediction."""

from __future__ import annotations

from datetime import UTC, datetime

from chalice import Blueprint, Response

from functions.http import (
    api_route,
    json_response,
    parse_body,
    request_id_of,
    require_role,
    tenant_principal,
    validated,
)
from shared.conflict.events import parse_intake
from shared.conflict.events_repository import store_sync_events
from shared.conflict.prediction import answer_conflict, parse_conflict_request, read_conflict_prediction
from shared.conflict.services import conflict_services
from shared.context import get_context

conflict_blueprint = blueprint = Blueprint(__name__)


@api_route(conflict_blueprint, "/api/v2/events/sync", ["POST"])
def ingest_sync_events() -> Response:
    request = conflict_blueprint.current_request
    principal = require_role(request, "client", "service")
    now = datetime.now(UTC)  # the received_at of events that omit it
    batch = validated(lambda payload: parse_intake(payload, now), parse_body(request, None))
    context = get_context()
    with context.database.transaction() as tx:
        stored = store_sync_events(tx, principal.tenant_id, batch.events, now)
    return json_response({"accepted": len(stored), "events": stored})


@api_route(conflict_blueprint, "/api/v2/predict/conflict", ["POST"])
def predict() -> Response:
    request = conflict_blueprint.current_request
    principal = tenant_principal(request)
    now = datetime.now(UTC)  # the features' as-of time: a client_last_sync_at after it is refused
    body = validated(lambda payload: parse_conflict_request(payload, now), parse_body(request, None))
    answer = answer_conflict(conflict_services(get_context()), principal.tenant_id, body, request_id_of(request), now)
    return json_response(answer)


@api_route(conflict_blueprint, "/api/v2/predictions/conflict/{prediction_id}", ["GET"])
def read_prediction(prediction_id: str) -> Response:
    principal = tenant_principal(conflict_blueprint.current_request)
    services = conflict_services(get_context())
    return json_response(read_conflict_prediction(services, principal.tenant_id, prediction_id))

