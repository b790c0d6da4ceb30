"""Typed domain errors. functions/http.py maps each to one HTTP status, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str


class FieldRule(ValueError):
    """A rule over several fields that a model validator checks, naming the field it is about, so
    the 400 (or the import's line) names that field rather than the whole body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def problem_location(error: Mapping[str, Any]) -> str:
    """Where one pydantic error is, dotted ('' for the whole value): the field a FieldRule names
    is appended to the model's own location."""
    location = [str(part) for part in error["loc"]]
    rule = (error.get("ctx") or {}).get("error")
    if isinstance(rule, FieldRule):
        location.append(rule.field)
    return ".".join(location)


def problem_reason(error: Mapping[str, Any]) -> str:
    """The error's message, without pydantic's class names where a JSON object was expected."""
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    rule = (error.get("ctx") or {}).get("error")
    return str(rule) if isinstance(rule, FieldRule) else str(error["msg"])


class MlstackError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str, fields: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []


class ConfigurationError(MlstackError):
    code = "configuration_error"


class InvalidInput(MlstackError):
    code = "invalid_input"


class NotFound(MlstackError):
    code = "not_found"


class Conflict(MlstackError):
    code = "conflict"


class Forbidden(MlstackError):
    code = "forbidden"


class Unauthenticated(MlstackError):
    code = "unauthenticated"


class DependencyUnavailable(MlstackError):
    code = "dependency_unavailable"


class TransientConflict(DependencyUnavailable):
    """The transaction collided with a concurrent one (a deadlock, a serialization failure) and
    PostgreSQL rolled it back: nothing was written, and the same request run again succeeds. An
    API route runs it up to 3 times in all, then answers 503 with Retry-After."""

    code = "concurrent_update"


class SchemaMissing(DependencyUnavailable):
    """The database has no schema yet (`mlstack db migrate` not run): the one dependency failure
    whose message the public /health gives, since it names the fix and nothing internal."""


class ArtifactRejected(MlstackError):
    """An artifact's digest or signature does not match the registry: it is never deserialised."""

    code = "artifact_rejected"


class InsufficientData(MlstackError):
    code = "insufficient_data"
