"""The HTTP boundary: request parsing, the principal from the authorizer, and the one place where
domain errors become status codes and the `{"error": {code, message, fields}}` body."""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, overload

from chalice import Blueprint, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from functions.auth import api_key_authorizer
from shared.errors import (
    ArtifactRejected,
    Conflict,
    DependencyUnavailable,
    FieldProblem,
    Forbidden,
    InsufficientData,
    InvalidInput,
    MlstackError,
    NotFound,
    Unauthenticated,
)
from shared.logs import configure_logging, log_event
from shared.platform.tenants_repository import Principal

MAX_BODY_BYTES = 2 * 1024 * 1024
Body = TypeVar("Body", bound=BaseModel)

STATUS_BY_ERROR: dict[type[MlstackError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    InsufficientData: 422,
    ArtifactRejected: 503,
    DependencyUnavailable: 503,
}


def error_body(code: str, message: str, fields: list[FieldProblem] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "fields": [{"field": f.field, "reason": f.reason} for f in fields or []],
        }
    }


def status_for(exc: MlstackError) -> int:
    for error_type in type(exc).__mro__:
        if error_type in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[error_type]  # type: ignore[index]
    return 500


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # UUIDs, Decimals


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, default=_json_default),
        status_code=status_code,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _field_problems(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    return [
        FieldProblem(prefix + (".".join(str(p) for p in error["loc"]) or "body"), error["msg"])
        for error in exc.errors()
    ]


def validated(parser: Callable[[Any], Body], payload: Any) -> Body:
    """Run a pydantic-backed parser on an already-decoded body; errors become a 400 with fields."""
    try:
        return parser(payload)
    except ValidationError as exc:
        raise InvalidInput("request body is invalid", _field_problems(exc)) from None


def request_id_of(request: Request) -> str:
    lambda_context = getattr(request, "lambda_context", None)
    return str(
        (request.context or {}).get("requestId")
        or getattr(lambda_context, "aws_request_id", None)
        or uuid.uuid4().hex
    )


@overload
def parse_body(request: Request, model: type[Body]) -> Body: ...
@overload
def parse_body(request: Request, model: None) -> Any: ...
def parse_body(request: Request, model: type[Body] | None) -> Any:
    """Decode JSON (bounded size) and, given a model, validate it; a bad body is a 400."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(
            "request body too large", [FieldProblem("body", f"at most {MAX_BODY_BYTES} bytes")]
        )
    try:
        payload = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput("request body is not JSON", [FieldProblem("body", str(exc))]) from None
    if model is None:
        return payload
    return validated(model.model_validate, payload)


def parse_query(request: Request, model: type[Body]) -> Body:
    try:
        return model.model_validate(dict(request.query_params or {}))
    except ValidationError as exc:
        raise InvalidInput("query parameters are invalid", _field_problems(exc, "query.")) from None


def principal_of(request: Request) -> Principal:
    authorizer = (request.context or {}).get("authorizer") or {}
    tenant_id, role, key_id = authorizer.get("tenant_id"), authorizer.get("role"), authorizer.get("principalId")
    if not tenant_id or not role:
        raise Unauthenticated("an API key is required")
    return Principal(tenant_id=tenant_id, role=role, key_id=key_id or "")


def require_role(request: Request, *roles: str) -> Principal:
    principal = principal_of(request)
    if principal.role not in roles:
        raise Forbidden(f"this route needs the role {' or '.join(roles)}")
    return principal


def error_response(exc: Exception) -> Response:
    if isinstance(exc, MlstackError):
        status = status_for(exc)
        if status >= 500:
            # Which host refused, which variable is malformed: for the log, not for the caller.
            log_event("server_error", logging.ERROR, code=exc.code, detail=exc.message)
            message = "a dependency is unavailable; try again later" if status == 503 else "internal error"
            return json_response(error_body(exc.code, message), status)
        return json_response(error_body(exc.code, exc.message, exc.fields), status)
    # Anything unexpected is a plain 500 without internals; the traceback goes to the log only.
    logging.getLogger("mlstack_errors").error("unhandled error", exc_info=exc)
    return json_response(error_body("internal_error", "internal error"), 500)


def api_route(
    blueprint: Blueprint, path: str, methods: list[str], *, public: bool = False
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a view that needs an API key (unless public) and whose errors get the one shape.

    Chalice turns any exception a view raises into its own 500 before middleware sees it, so
    the mapping happens here, around the view.
    """

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Response:
            try:
                return view(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - mapped to a status in error_response
                return error_response(exc)

        authorizer = None if public else api_key_authorizer
        return blueprint.route(path, methods=methods, authorizer=authorizer)(guarded)

    return decorate


def handle_request(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Chalice HTTP middleware: one JSON log line per request, and the request id header."""
    configure_logging()
    started = time.perf_counter()
    request_id = request_id_of(event)
    try:
        response = get_response(event)
    except Exception as exc:  # noqa: BLE001
        response = error_response(exc)
    authorizer = (event.context or {}).get("authorizer") or {}
    response.headers["X-Request-Id"] = request_id
    log_event(
        "request",
        request_id=request_id,
        method=event.method,
        route=(event.context or {}).get("resourcePath", event.path),
        tenant_id=authorizer.get("tenant_id"),
        status=response.status_code,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response
