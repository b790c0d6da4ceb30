"""The HTTP boundary: request parsing, the principal from the authorizer, and the one place where
domain errors become status codes and the `{"error": {code, message, fields}}` body."""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, overload

from chalice import Blueprint, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from functions.auth import api_key_authorizer
from shared.context import get_context
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
    TransientConflict,
    Unauthenticated,
    problem_location,
    problem_reason,
)
from shared.logs import configure_logging, log_event
from shared.monitoring.requests import recorder
from shared.monitoring.timings_repository import PostgresTimingsRepository
from shared.platform.json_bodies import validate_json_body
from shared.platform.tenants_repository import Principal

# Limits on a request body, each a 400 (documented in README, "Limits"). The deepest body a route
# takes is four levels ({"events": [{"fields_changed": [...]}]}).
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_JSON_DEPTH = 16
MAX_INTEGER_DIGITS = 30
# How long a client should wait before retrying a 503 (a database restart takes seconds).
RETRY_AFTER_SECONDS = 5
# How many times a route runs a request that PostgreSQL rolled back for a concurrent one.
TRANSIENT_ATTEMPTS = 3
# Before attempt n + 1 a request waits a random time up to this x 2^(n-1): requests that collided
# and all came back at once (several batches rolled back in turn, or serialization failures) would
# meet again.
RETRY_PAUSE_SECONDS = 0.05
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


# An error message echoes what the caller sent (an id, a path) at most this long.
MAX_MESSAGE_CHARS = 300


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def error_body(code: str, message: str, fields: list[FieldProblem] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": _bounded(message),
            "fields": [{"field": _bounded(f.field), "reason": _bounded(f.reason)} for f in fields or []],
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
        FieldProblem(prefix + (problem_location(error) or "body"), problem_reason(error))
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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range for a number")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"integers have at most {MAX_INTEGER_DIGITS} digits")
    return int(text)


# PostgreSQL's text cannot hold NUL: no stored value has one, so none may come in (it would reach
# the database and come back as its own error, naming no field).
_NUL_REASON = "must not contain a NUL character (\\u0000)"


def _too_deep() -> InvalidInput:
    return InvalidInput("request body is nested too deeply", [FieldProblem("body", f"at most {MAX_JSON_DEPTH} levels")])


Place = tuple["Place | None", str | int] | None  # a value's place in the body: (its parent's place, key or index)


def _check_tree(value: Any) -> None:
    """One walk of decoded JSON, iteratively (a recursive walk is what the depth guards against):
    nesting deeper than MAX_JSON_DEPTH, then the first string or key holding NUL (named by its
    dotted place; 'body' at the top), are refused."""
    nul: Place | str = None
    stack: list[tuple[Any, int, Place]] = [(value, 1, None)]
    while stack:
        item, level, place = stack.pop()
        if isinstance(item, str):
            if nul is None and "\x00" in item:
                nul = place or "body"
        elif isinstance(item, dict | list):
            if level > MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(item, list):
                stack.extend((child, level + 1, (place, n)) for n, child in enumerate(item))
                continue
            for key, child in item.items():
                if nul is None and "\x00" in key:
                    nul = (place, key)
                stack.append((child, level + 1, (place, key)))
    if nul is not None:
        raise InvalidInput("request body holds a NUL character", [FieldProblem(_dotted(nul), _NUL_REASON)])


def _dotted(place: Place | str) -> str:
    if isinstance(place, str):
        return place
    parts: list[str] = []
    while place is not None:
        place, key = place
        parts.append(str(key))
    return ".".join(reversed(parts))


def decode_json(raw: bytes | str) -> Any:
    """JSON from a request, refusing what the decoder or a later step would choke on: nesting deeper
    than MAX_JSON_DEPTH (100,000 `[` exhaust the recursion limit), integers longer than
    MAX_INTEGER_DIGITS (5,000 digits exceed Python's int-length limit), NaN/Infinity (not JSON,
    and unanswerable in JSON), and NUL in a string or key (PostgreSQL's text). Each is a 400, never
    a 500."""
    try:
        payload = json.loads(
            raw, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidInput("request body is not JSON", [FieldProblem("body", str(exc))]) from None
    # Walked whatever the raw text looks like: json.loads also reads UTF-16 and UTF-32, where NUL's
    # escape is not those bytes.
    _check_tree(payload)
    return payload


@overload
def parse_body(request: Request, model: type[Body]) -> Body: ...
@overload
def parse_body(request: Request, model: None) -> Any: ...
def parse_body(request: Request, model: type[Body] | None) -> Any:
    """Decode JSON (bounded size) and, given a model, validate it with JSON's types (json_bodies.py);
    a bad body is a 400."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(
            "request body too large", [FieldProblem("body", f"at most {MAX_BODY_BYTES} bytes")]
        )
    payload = decode_json(raw or b"null")
    if model is None:
        return payload
    return validated(lambda decoded: validate_json_body(model, decoded), payload)


def parse_query(request: Request, model: type[Body]) -> Body:
    params = request.query_params
    # `?status=open&status=resolved` would silently read one of the two.
    repeated = sorted(name for name in params if len(params.getlist(name)) > 1) if params else []
    if repeated:
        raise InvalidInput("query parameters are invalid",
                           [FieldProblem(f"query.{name}", "given more than once") for name in repeated])
    nul = sorted(name for name, value in dict(params or {}).items() if "\x00" in name or "\x00" in value)
    if nul:
        raise InvalidInput("query parameters are invalid", [FieldProblem(f"query.{name}", _NUL_REASON) for name in nul])
    try:
        return model.model_validate(dict(params or {}))
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


# The roles bound to one tenant's data; an operator key is platform-wide and has no tenant data.
TENANT_ROLES = ("client", "staff", "service")


def tenant_principal(request: Request) -> Principal:
    """The caller of a route any of a tenant's keys may use; an operator key is refused (403)."""
    return require_role(request, *TENANT_ROLES)


def unavailable_response(code: str = "dependency_unavailable") -> Response:
    return json_response(
        error_body(code, "a dependency is unavailable; try again later"),
        503,
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# Chalice answers some requests itself, before or around the view, with {"Code", "Message"}:
# an unsupported method (405), content type (415), an unhandled exception (500).
CHALICE_CODES = {
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "BadRequest": "invalid_input",
    "BadRequestError": "invalid_input",
    "NotFoundError": "not_found",
    "InternalServerError": "internal_error",
}


def in_error_shape(response: Response) -> Response:
    """Chalice's own error bodies rewritten into the one shape (headers such as Allow are kept)."""
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or "Code" not in body:
        return response
    code = CHALICE_CODES.get(str(body["Code"]), "internal_error" if response.status_code >= 500 else "bad_request")
    message = str(body.get("Message", "")) if response.status_code < 500 else "internal error"
    response.body = json.dumps(error_body(code, message))
    response.headers["Content-Type"] = "application/json"
    return response


def error_response(exc: Exception) -> Response:
    if isinstance(exc, MlstackError):
        status = status_for(exc)
        if status >= 500:
            # Which host refused, which variable is malformed: for the log, not for the caller.
            log_event("server_error", logging.ERROR, code=exc.code, detail=exc.message)
            if status == 503:
                return unavailable_response(exc.code)
            return json_response(error_body(exc.code, "internal error"), status)
        return json_response(error_body(exc.code, exc.message, exc.fields), status)
    # Anything unexpected is a plain 500 without internals; the traceback goes to the log only.
    logging.getLogger("mlstack_errors").error("unhandled error", exc_info=exc)
    return json_response(error_body("internal_error", "internal error"), 500)


def _refuse_query(request: Request) -> None:
    """A route without query parameters answers one it was given with 400, as routes with them
    answer an unknown one: a typo never passes silently as if it had been read."""
    names = sorted(request.query_params or {})
    if names:
        raise InvalidInput("query parameters are invalid",
                           [FieldProblem(f"query.{name}", "this route takes no query parameters") for name in names])


def api_route(
    blueprint: Blueprint, path: str, methods: list[str], *, public: bool = False, with_query: bool = False
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a view that needs an API key (unless public) and whose errors get the one shape.
    `with_query`: the view reads query parameters (parse_query); any other API route refuses them.

    Chalice turns any exception a view raises into its own 500 before middleware sees it, so
    the mapping happens here, around the view.
    """

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Response:
            try:
                if not (public or with_query):
                    _refuse_query(blueprint.current_request)
                for attempt in range(1, TRANSIENT_ATTEMPTS):
                    try:
                        return view(*args, **kwargs)
                    except TransientConflict as exc:
                        # Rolled back whole (batches writing the same rows in other orders
                        # deadlock): run again, as PostgreSQL advises; the last attempt's is a 503.
                        log_event("request.retried", attempt=attempt, reason=exc.message)
                        time.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not a secret
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
    response = in_error_shape(response)
    authorizer = (event.context or {}).get("authorizer") or {}
    response.headers["X-Request-Id"] = request_id
    route = (event.context or {}).get("resourcePath", event.path)
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    log_event(
        "request",
        request_id=request_id,
        method=event.method,
        route=route,
        tenant_id=authorizer.get("tenant_id"),
        status=response.status_code,
        latency_ms=latency_ms,
    )
    # Labelled by the route's template only: a raw path (a 404) would make the label set unbounded.
    _record(event.method, (event.context or {}).get("resourcePath") or "unmatched", response.status_code, latency_ms)
    return response


def _record(method: str, route: str, status: int, latency_ms: float) -> None:
    """Prometheus counters and the minute's timings per route (flushed once a minute); never
    fails the request."""
    try:
        context = get_context()
        recording = recorder(emf=context.settings.stage != "local")
        recording.record(method, route, status, latency_ms)
        if recording.due():
            recording.flush(context.database, PostgresTimingsRepository())
    except Exception as exc:  # noqa: BLE001 - metrics are never worth a failed request
        log_event("monitoring.record_failed", logging.WARNING, error=str(exc)[:200])
