"""The API-key authorizer: every route but /health names it."""

from __future__ import annotations

import logging

from chalice import AuthResponse, Blueprint
from chalice.app import AuthRequest

from shared.context import get_context
from shared.errors import DependencyUnavailable, MlstackError
from shared.logs import configure_logging, log_event

auth_blueprint = Blueprint(__name__)


class AuthorizerUnavailable(DependencyUnavailable):
    """The key could not be checked (the database is down). Raised out of the authorizer on
    purpose: API Gateway then answers its AUTHORIZER_FAILURE gateway response, which
    infra/template.yaml turns into a 503 with Retry-After in the error shape (and does not cache,
    unlike a Deny). Locally functions/local_gateway.py does the same."""


@auth_blueprint.authorizer(ttl_seconds=60, header="Authorization")
def api_key_authorizer(auth_request: AuthRequest) -> AuthResponse:
    token = (auth_request.token or "").strip()
    secret = token[7:].strip() if token.lower().startswith("bearer ") else token
    try:
        principal = get_context().tenants.authenticate(secret)
    except MlstackError as exc:
        # The HTTP middleware never sees an authorizer's failure: this is its only log line.
        configure_logging()
        log_event("auth.unavailable", logging.ERROR, code=exc.code, detail=exc.message)
        raise AuthorizerUnavailable("the API key could not be checked") from exc
    if principal is None:
        # API Gateway answers 403 for a denied key; a missing header never reaches here (401).
        return AuthResponse(routes=[], principal_id="anonymous")
    return AuthResponse(
        routes=["*"],
        principal_id=principal.key_id,
        context={"tenant_id": principal.tenant_id, "role": principal.role},
    )
