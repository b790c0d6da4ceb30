"""GET /openapi.json: the API's contract, public like /health (it names no tenant)."""

from __future__ import annotations

from chalice import Blueprint, Response

from functions.http import api_route, json_response
from functions.openapi import openapi_document

docs_blueprint = Blueprint(__name__)


@api_route(docs_blueprint, "/openapi.json", ["GET"], public=True)
def openapi() -> Response:
    return json_response(openapi_document())
