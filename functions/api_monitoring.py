"""Monitoring routes: metric intake (agent), incidents and silences (operator), drift (operator:
every tenant's; staff: their own models'), and GET /metrics in the Prometheus format (operator)."""

from __future__ import annotations

from chalice import Blueprint, Response
from pydantic import BaseModel, ConfigDict

from functions.http import api_route, json_response, parse_body, parse_query, require_role
from shared.context import get_context
from shared.monitoring.incidents import (
    IncidentsQuery,
    SilenceBody,
    acknowledge,
    add_silence,
    drift_reports,
    list_incidents,
    list_silences,
)
from shared.monitoring.intake import MetricBatch, store_metrics
from shared.monitoring.requests import PROMETHEUS_CONTENT_TYPE, prometheus_exposition
from shared.monitoring.services import monitoring_services

blueprint = Blueprint(__name__)


class AcknowledgeBody(BaseModel):
    """The acknowledgement takes no fields: an optional body may only be `{}`."""

    model_config = ConfigDict(extra="forbid")


@api_route(blueprint, "/api/v2/metrics", ["POST"])
def ingest_metrics() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "operator", "service")
    batch = parse_body(request, MetricBatch)
    # An operator key writes platform series; a tenant's service key only series of its own.
    tenant = None if principal.role == "operator" else principal.tenant_id
    return json_response(store_metrics(monitoring_services(get_context()), batch, tenant))


@api_route(blueprint, "/api/v2/monitoring/incidents", ["GET"], with_query=True)
def incidents() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "operator", "staff")
    query = parse_query(request, IncidentsQuery)
    tenant = None if principal.role == "operator" else principal.tenant_id
    return json_response(list_incidents(monitoring_services(get_context()), query, tenant))


@api_route(blueprint, "/api/v2/monitoring/incidents/{incident_id}/acknowledge", ["POST"])
def acknowledge_incident(incident_id: str) -> Response:
    request = blueprint.current_request
    principal = require_role(request, "operator", "staff")
    if request.raw_body:  # optional; when given, only the empty object
        parse_body(request, AcknowledgeBody)
    tenant = None if principal.role == "operator" else principal.tenant_id
    return json_response(acknowledge(monitoring_services(get_context()), incident_id, f"key:{principal.key_id}",
                                     tenant))


@api_route(blueprint, "/api/v2/monitoring/silences", ["GET"])
def silences() -> Response:
    require_role(blueprint.current_request, "operator")
    return json_response(list_silences(monitoring_services(get_context())))


@api_route(blueprint, "/api/v2/monitoring/silences", ["POST"])
def silence() -> Response:
    request = blueprint.current_request
    principal = require_role(request, "operator")
    body = parse_body(request, SilenceBody)
    return json_response(add_silence(monitoring_services(get_context()), body, f"key:{principal.key_id}"))


@api_route(blueprint, "/api/v2/monitoring/drift", ["GET"])
def drift() -> Response:
    principal = require_role(blueprint.current_request, "operator", "staff")
    tenant = None if principal.role == "operator" else principal.tenant_id
    return json_response(drift_reports(monitoring_services(get_context()), tenant))


@api_route(blueprint, "/metrics", ["GET"])
def prometheus_metrics() -> Response:
    require_role(blueprint.current_request, "operator")
    return Response(body=prometheus_exposition().decode(), status_code=200,
                    headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})
