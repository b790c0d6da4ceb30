"""Attendance-fraud routes: sites, attendance events, labels, scoring, the operating point."""

from __future__ import annotations

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
from shared.context import get_context
from shared.fraud.dashboard import fraud_dashboard
from shared.fraud.intake import parse_events, parse_labels, parse_sites
from shared.fraud.intake_repository import store_attendance_events, store_labels, upsert_sites
from shared.fraud.operating_point import OperatingPointBody, move_operating_point, read_operating_point
from shared.fraud.prediction import answer_fraud, parse_fraud_request, read_fraud_prediction
from shared.fraud.services import fraud_services

blueprint = Blueprint(__name__)


@api_route(blueprint, "/api/v2/sites", ["POST"])
def register_sites() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "staff")
    batch = validated(parse_sites, parse_body(request, None))
    with get_context().database.transaction() as tx:
        upsert_sites(tx, principal.tenant_id, batch.sites)
    return json_response({"sites": len(batch.sites)})


@api_route(blueprint, "/api/v2/attendance/events", ["POST"])
def ingest_attendance_events() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "client", "service")
    batch = validated(parse_events, parse_body(request, None))
    with get_context().database.transaction() as tx:
        stored = store_attendance_events(tx, principal.tenant_id, batch.events)
    return json_response({"accepted": len(stored), "events": stored})


@api_route(blueprint, "/api/v2/fraud/labels", ["POST"])
def ingest_fraud_labels() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "staff")
    batch = validated(parse_labels, parse_body(request, None))
    with get_context().database.transaction() as tx:
        stored = store_labels(tx, principal.tenant_id, batch.labels)
    return json_response({"labels": stored})


@api_route(blueprint, "/api/v2/predict/fraud", ["POST"])
def predict() -> Response:
    request = blueprint.current_request
    principal = tenant_principal(request)
    body = validated(parse_fraud_request, parse_body(request, None))
    answer = answer_fraud(fraud_services(get_context()), principal.tenant_id, body, request_id_of(request))
    return json_response(answer)


@api_route(blueprint, "/api/v2/predictions/fraud/{prediction_id}", ["GET"])
def read_prediction(prediction_id: str) -> Response:
    principal = tenant_principal(blueprint.current_request)
    return json_response(read_fraud_prediction(fraud_services(get_context()), principal.tenant_id, prediction_id))


@api_route(blueprint, "/api/v2/fraud/operating-point", ["GET", "PUT"])
def operating_point() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "staff")
    services = fraud_services(get_context())
    if request.method == "GET":
        return json_response(read_operating_point(services, principal.tenant_id))
    body = parse_body(request, OperatingPointBody)
    return json_response(move_operating_point(services, principal.tenant_id, body, f"key:{principal.key_id}"))


@api_route(blueprint, "/api/v2/fraud/dashboard", ["GET"])
def dashboard() -> Response:
    principal = require_role(blueprint.current_request, "staff")
    return json_response(fraud_dashboard(fraud_services(get_context()), principal.tenant_id))
