"""OCR loop routes: reading intake (the error probability and capture decision), corrections in
the seed's shape, and the loop's quality metrics for staff."""

from __future__ import annotations

from datetime import UTC, datetime

from chalice import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from functions.http import (
    api_route,
    json_response,
    parse_body,
    parse_query,
    request_id_of,
    require_role,
    tenant_principal,
    validated,
)
from shared.context import get_context
from shared.ocr.corrections import record_correction
from shared.ocr.intake import take_readings
from shared.ocr.quality import ocr_metrics
from shared.ocr.readings import CorrectionRequest, is_batch, parse_readings
from shared.ocr.services import ocr_services

ocr_blueprint = blueprint = Blueprint(__name__)


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_share: float = Field(default=0.8, gt=0, le=1)


@api_route(ocr_blueprint, "/api/v2/ocr/readings", ["POST"])
def ingest_readings() -> Response:
    request = ocr_blueprint.current_request
    principal = require_role(request, "client", "service")
    payload = parse_body(request, None)
    now = datetime.now(UTC)  # the intake time: a reading captured later is refused
    batch = validated(lambda body: parse_readings(body, now), payload)
    answers = take_readings(ocr_services(get_context()), principal.tenant_id, batch.readings, request_id_of(request),
                            now)
    return json_response({"readings": answers} if is_batch(payload) else answers[0])


@api_route(ocr_blueprint, "/api/v2/ml-training/corrections", ["POST"])
def correct_reading() -> Response:
    request = ocr_blueprint.current_request
    principal = tenant_principal(request)
    body = parse_body(request, CorrectionRequest)
    return json_response(record_correction(ocr_services(get_context()), principal.tenant_id, body))


@api_route(ocr_blueprint, "/api/v2/ocr/metrics", ["GET"], with_query=True)
def metrics() -> Response:
    request = ocr_blueprint.current_request
    principal = require_role(request, "staff")
    query = parse_query(request, MetricsQuery)
    return json_response(ocr_metrics(ocr_services(get_context()), principal.tenant_id,
                                     target_share=query.target_share))
