"""GET /health: the one route without a key."""

from __future__ import annotations

from chalice import Blueprint, Response

from functions.http import api_route, json_response
from shared.context import get_context
from shared.platform.health import check_health

health_blueprint = Blueprint(__name__)


@api_route(health_blueprint, "/health", ["GET"], public=True)
def health() -> Response:
    healthy, body = check_health(get_context())
    return json_response(body, 200 if healthy else 503)
