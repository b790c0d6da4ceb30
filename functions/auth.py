"""The API-key authorizer: every route but /health names it."""

from __future__ import annotations

from chalice import AuthResponse, Blueprint
from chalice.app import AuthRequest

from shared.context import get_context

auth_blueprint = Blueprint(__name__)


@auth_blueprint.authorizer(ttl_seconds=60, header="Authorization")
def api_key_authorizer(auth_request: AuthRequest) -> AuthResponse:
    token = (auth_request.token or "").strip()
    secret = token[7:].strip() if token.lower().startswith("bearer ") else token
    principal = get_context().tenants.authenticate(secret)
    if principal is None:
        # API Gateway answers 403 for a denied key; a missing header never reaches here (401).
        return AuthResponse(routes=[], principal_id="anonymous")
    return AuthResponse(
        routes=["*"],
        principal_id=principal.key_id,
        context={"tenant_id": principal.tenant_id, "role": principal.role},
    )
