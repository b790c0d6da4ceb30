"""The API against its OpenAPI document: every route documented, and schemathesis-generated
requests (valid and invalid, with client, staff and operator keys and without) that never get a 5xx nor an
answer the document does not describe."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from functions.local_gateway import local_test_client, wsgi_app
from functions.openapi import openapi_document

pytestmark = pytest.mark.integration
# Per operation and mode (valid, invalid data), at most: operations without input yield fewer.
# Generating the cases, not answering them, is most of the time (about 20 s of 4 min in answers).
EXAMPLES = 60
MIN_REQUESTS = 1000


def test_every_route_of_the_app_is_in_the_document() -> None:
    from app import app

    paths = openapi_document()["paths"]
    routes = {(method, path) for path, methods in app.routes.items() for method in methods}
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert routes == documented
    for path, ops in paths.items():
        for method, op in ops.items():
            assert "200" in op["responses"] and "503" in op["responses"], (method, path)
            if op.get("security"):  # 400: a keyed route refuses a query parameter it does not read
                assert {"400", "401", "403"} <= set(op["responses"]), (method, path)


def test_the_document_is_served(app_environment: dict[str, str]) -> None:
    from app import app

    with local_test_client(app) as client:
        response = client.http.get("/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.body)["openapi"] == "3.1.0"


def test_generated_requests_never_get_a_5xx_or_an_undocumented_answer(
    app_environment: dict[str, str], tenant_keys: dict[str, Any]
) -> None:
    from app import app

    with local_test_client(app) as client:
        config = client.http._config
    schema = schemathesis.openapi.from_wsgi("/openapi.json", wsgi_app(app, config))
    from shared.context import get_context

    # The platform's operator key reaches the monitoring routes' accepted paths, not only their 403.
    _, platform_keys = get_context().tenants.create_tenant_with_keys("platform", "Platform", ("operator",))
    operator = platform_keys[0].secret
    keys = [tenant_keys["acme"]["client"], tenant_keys["acme"]["staff"], operator, tenant_keys["globex"]["staff"], None]
    sent: list[str] = []
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    for result in schema.get_all_operations():
        operation = result.ok()
        documented = openapi_document()["paths"][operation.path][operation.method.lower()]
        takes_input = "parameters" in documented or "requestBody" in documented
        # Invalid data needs something to make invalid: /health and /openapi.json take nothing.
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else (GenerationMode.POSITIVE,)
        for mode in modes:

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                key = keys[len(sent) % len(keys)]
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                response = case.call(headers=headers)
                sent.append(f"{case.method} {case.path} {response.status_code}")
                case.validate_response(response, checks=checks)

            call()
    statuses = Counter(line.rsplit(" ", 1)[1] for line in sent)
    print(f"contract: {len(sent)} generated requests, by status {dict(sorted(statuses.items()))}")
    assert len(sent) >= MIN_REQUESTS
    # Both sides were exercised: accepted requests and each kind of refusal.
    assert {"200", "400", "401", "403", "404"} <= set(statuses)
