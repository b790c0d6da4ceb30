"""Model registry over HTTP: a tenant sees its own and global versions; staff manage its own."""

from __future__ import annotations

from chalice import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from functions.http import api_route, json_response, parse_body, parse_query, require_role, tenant_principal
from shared.context import get_context
from shared.errors import FieldProblem, InvalidInput, NotFound
from shared.slices import WATCHED

models_blueprint = blueprint = Blueprint(__name__)
# Kinds that are the platform's, not a tenant's: the anomaly detectors' state (the operator's,
# through `mlstack models`).
PLATFORM_KINDS = ("anomaly",)


class ListModelsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,40}$")


class ActivateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


_TENANT_KINDS: list[JsonValue] = [*sorted(WATCHED)]


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The document lists the kinds a tenant rolls back; the route refuses any other with a 400.
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$", json_schema_extra={"enum": _TENANT_KINDS})
    reason: str = Field(default="", max_length=500)


@api_route(models_blueprint, "/api/v2/models", ["GET"], with_query=True)
def list_models() -> Response:
    request = models_blueprint.current_request
    principal = tenant_principal(request)
    query = parse_query(request, ListModelsQuery)
    versions = get_context().registry.list_versions(kind=query.kind, tenant_id=principal.tenant_id)
    return json_response({"models": [v.public_view(for_tenant=True) for v in versions if v.kind not in PLATFORM_KINDS]})


@api_route(models_blueprint, "/api/v2/models/{version_id}", ["GET"])
def get_model(version_id: str) -> Response:
    principal = tenant_principal(models_blueprint.current_request)
    version = get_context().registry.get(version_id, visible_to_tenant=principal.tenant_id)
    if version.kind in PLATFORM_KINDS:
        raise NotFound(f"no model version {version_id}")
    return json_response(version.public_view(for_tenant=True))


def _own_version(version_id: str, tenant_id: str) -> None:
    version = get_context().registry.get(version_id, visible_to_tenant=tenant_id)
    if version.tenant_id != tenant_id:
        # Global models are managed by ops through the CLI, not by a tenant's staff.
        raise NotFound(f"no model version {version_id} of this tenant")


@api_route(models_blueprint, "/api/v2/models/{version_id}/activate", ["POST"])
def activate_model(version_id: str) -> Response:
    request = models_blueprint.current_request
    principal = require_role(request, "staff")
    # The body is optional (README): no body is no reason.
    body = parse_body(request, ActivateBody) if request.raw_body else ActivateBody()
    _own_version(version_id, principal.tenant_id)
    activated = get_context().registry.activate(
        version_id, actor=f"key:{principal.key_id}", reason=body.reason
    )
    return json_response(activated.public_view())


@api_route(models_blueprint, "/api/v2/models/rollback", ["POST"])
def rollback_model() -> Response:
    request = models_blueprint.current_request
    principal = require_role(request, "staff")
    body = parse_body(request, RollbackBody)
    if body.kind not in WATCHED:  # a tenant's kinds; the platform's (anomaly) are the operator's, by the CLI
        raise InvalidInput(f"no kind {body.kind!r} a tenant rolls back",
                           [FieldProblem("kind", f"one of {', '.join(sorted(WATCHED))}")])
    restored = get_context().registry.rollback(
        body.kind, principal.tenant_id, actor=f"key:{principal.key_id}", reason=body.reason
    )
    return json_response(restored.public_view())
