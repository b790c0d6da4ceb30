"""What API Gateway answers by itself, before our function runs, in the one error shape.

Deployed, infra/template.yaml sets these as gateway responses on the REST API (a test checks that
the two agree); locally functions/local_gateway.py answers the same. Without them API Gateway
would answer `{"message": "Unauthorized"}` and the like, without a request id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    code: str
    message: str
    retry_after: int | None = None

    def body(self) -> str:
        return json.dumps({"error": {"code": self.code, "message": self.message, "fields": []}})


GATEWAY_RESPONSES: dict[str, GatewayAnswer] = {
    # No Authorization header.
    "UNAUTHORIZED": GatewayAnswer(401, "unauthenticated", "an API key is required: Authorization: Bearer <key>"),
    # The authorizer denied the key (unknown or revoked).
    "ACCESS_DENIED": GatewayAnswer(403, "forbidden", "the API key is unknown or revoked"),
    # API Gateway's answer to a path or method it does not have: a 404, not its misleading 403.
    "MISSING_AUTHENTICATION_TOKEN": GatewayAnswer(404, "not_found", "no such route"),
    # The authorizer raised: the key could not be checked (database down). Not cached; retry.
    "AUTHORIZER_FAILURE": GatewayAnswer(
        503, "dependency_unavailable", "a dependency is unavailable; try again later", RETRY_AFTER_SECONDS
    ),
    "AUTHORIZER_CONFIGURATION_ERROR": GatewayAnswer(500, "internal_error", "internal error"),
    # Stage throttling (infra/template.yaml, README "Limits").
    "THROTTLED": GatewayAnswer(429, "throttled", "too many requests; slow down", 1),
    "REQUEST_TOO_LARGE": GatewayAnswer(413, "too_large", "request too large"),
    "INTEGRATION_TIMEOUT": GatewayAnswer(
        504, "timeout", "the request took too long; try again later", RETRY_AFTER_SECONDS
    ),
    "DEFAULT_4XX": GatewayAnswer(400, "bad_request", "the request was refused"),
    "DEFAULT_5XX": GatewayAnswer(500, "internal_error", "internal error"),
}
