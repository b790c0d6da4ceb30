"""Typed domain errors. functions/http.py maps each to one HTTP status, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str


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


class ArtifactRejected(MlstackError):
    """An artifact's digest or signature does not match the registry: it is never deserialised."""

    code = "artifact_rejected"


class InsufficientData(MlstackError):
    code = "insufficient_data"
