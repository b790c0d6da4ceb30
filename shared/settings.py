"""One typed settings object, read from the environment on first use.

Explicit argument > environment > default. A missing or malformed variable fails at start with a
message that names it, so a misconfigured function never half-runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

from shared.errors import ConfigurationError

ENV_PREFIX = "MLSTACK_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _bounded(default: float, low: float, high: float) -> Any:
    return field(default=default, metadata={"range": (low, high)})


def _postgres_url(value: str) -> None:
    if value and urlparse(value).scheme not in ("postgresql", "postgres"):
        raise ValueError("must look like postgresql://user:password@host:port/database")


def _object_store_url(value: str) -> None:
    if not value:
        raise ValueError("must be set (s3://bucket/prefix or file:///absolute/path)")
    parsed = urlparse(value)
    if parsed.scheme == "s3" and parsed.netloc:
        return
    if parsed.scheme == "file" and not parsed.netloc and parsed.path.startswith("/"):
        return
    raise ValueError("must be s3://bucket/prefix or file:///absolute/path")


def _long_hex(value: str) -> None:
    if not value:
        return
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError("must be hex") from None
    if len(raw) < 32:
        raise ValueError("must be at least 32 bytes (64 hex characters)")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A plain frozen dataclass checked by hand, not a pydantic model: every function and command
    reads settings first, and building a pydantic model imports most of pydantic, about 0.1 s of a
    `mlstack score conflict` run's start (README, Batch scoring). Values given as text (the
    environment's) are converted by the type of the field's default."""

    # postgresql://user:password@host:port/database; or empty when database_secret_id is set.
    database_url: str = field(default="", repr=False, metadata={"check": _postgres_url})  # it holds the password
    # Secrets Manager id of a JSON secret {host, port, username, password, dbname} (deployed stages).
    database_secret_id: str = ""
    # s3://bucket/prefix or file:///absolute/path
    object_store_url: str = field(default="", metadata={"check": _object_store_url})
    # Endpoint for every AWS client (LocalStack: http://127.0.0.1:4566); empty means AWS itself.
    aws_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    # The model-signing key: hex in MLSTACK_SIGNING_KEY (local) or a Secrets Manager secret id.
    signing_key: str = field(default="", repr=False, metadata={"check": _long_hex})
    signing_key_secret_id: str = ""
    log_level: str = field(default="INFO", metadata={"choices": LOG_LEVELS})
    # How often a warm function re-reads which model version is active.
    model_refresh_seconds: float = _bounded(60.0, 0, 3600)
    # Longest a statement may run (PostgreSQL's statement_timeout; 0: no limit). The API's
    # functions set it (.chalice/config.json) so a stalled database is a 503, not a hang; the
    # jobs leave it off (a training extraction can take minutes).
    statement_timeout_seconds: float = _bounded(0.0, 0, 900)
    stage: str = "local"
    # Monitoring (shared/monitoring): the SNS topic alerts are published to (empty: logged only),
    # the queues whose depth and age are collected, how many days of one-minute points are kept
    # (hourly rollups beyond, for a year), and whether drift starts an early retrain.
    alerts_topic_arn: str = ""
    # SQS queue of per-scope training jobs (deployed); empty: scheduled retraining runs in-process.
    training_jobs_queue_url: str = ""
    buffered_writes_queue_url: str = ""
    monitoring_raw_days: int = _bounded(30, 1, 400)
    # Alerts of one service or host within this many minutes of its incident's last alert join it.
    incident_window_minutes: int = _bounded(30, 1, 24 * 60)
    drift_retrain: bool = False
    # Processes batch scoring (`mlstack score conflict`) splits a large file over; 1: one process.
    scoring_processes: int = field(default_factory=lambda: min(2, os.cpu_count() or 1), metadata={"range": (1, 64)})

    def __post_init__(self) -> None:
        problems = []
        for spec in fields(self):
            try:
                object.__setattr__(self, spec.name, _checked(spec, getattr(self, spec.name)))
            except ValueError as exc:
                problems.append(f"{ENV_PREFIX}{spec.name.upper()}: {exc}")
        if not (self.database_url or self.database_secret_id):
            problems.append(f"{ENV_PREFIX}DATABASE_URL (or {ENV_PREFIX}DATABASE_SECRET_ID) must be set")
        if not (self.signing_key or self.signing_key_secret_id):
            problems.append(f"{ENV_PREFIX}SIGNING_KEY (or {ENV_PREFIX}SIGNING_KEY_SECRET_ID) must be set")
        if problems:
            raise ConfigurationError("invalid settings: " + "; ".join(problems))


_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"0", "false", "f", "no", "n", "off"}


def _checked(spec: Field[Any], value: Any) -> Any:
    """The value as the field's type (its default's: text from the environment is converted), in its
    range, choices and format (the field's metadata)."""
    default = spec.default_factory() if callable(spec.default_factory) else spec.default
    value = _typed(value, type(default))
    metadata = spec.metadata
    if "range" in metadata:
        low, high = metadata["range"]
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}")
    if "choices" in metadata and value not in metadata["choices"]:
        raise ValueError(f"must be one of {', '.join(metadata['choices'])}")
    if "check" in metadata:
        metadata["check"](value)
    return value


def _typed(value: Any, kind: type) -> Any:
    """`value` as `kind`, converting text (and a whole float for an int) as pydantic's lax mode did."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError("must be true or false")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError("must be text")
    number = _number(value)
    if kind is int:
        if not number.is_integer():
            raise ValueError("must be a whole number")
        return int(number)
    return number


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            if not text.isascii():
                raise ValueError
            number = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


# Variable name (without prefix) -> field, so README and errors use the same names.
_ALIASES = {"AWS_ENDPOINT_URL": "aws_endpoint_url", "AWS_REGION": "aws_region"}


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}  # text: Settings reads it as each field's type
    for spec in fields(Settings):
        env_name = ENV_PREFIX + spec.name.upper()
        if env_name in environ:
            values[spec.name] = environ[env_name]
    # The standard AWS variables are honoured when the prefixed ones are absent.
    for env_name, target in _ALIASES.items():
        if target not in values and env_name in environ:
            values[target] = environ[env_name]
    if "aws_region" not in values and "AWS_DEFAULT_REGION" in environ:
        values["aws_region"] = environ["AWS_DEFAULT_REGION"]
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_environment()
