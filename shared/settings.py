"""One typed settings object, read from the environment on first use.

Explicit argument > environment > default. A missing or malformed variable fails at start with a
message that names it, so a misconfigured function never half-runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import ConfigurationError

ENV_PREFIX = "MLSTACK_"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # postgresql://user:password@host:port/database; or empty when database_secret_id is set.
    database_url: str = Field(default="", repr=False)  # it holds the password
    # Secrets Manager id of a JSON secret {host, port, username, password, dbname} (deployed stages).
    database_secret_id: str = ""
    # s3://bucket/prefix or file:///absolute/path
    object_store_url: str
    # Endpoint for every AWS client (LocalStack: http://127.0.0.1:4566); empty means AWS itself.
    aws_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    # The model-signing key: hex in MLSTACK_SIGNING_KEY (local) or a Secrets Manager secret id.
    signing_key: str = Field(default="", repr=False)
    signing_key_secret_id: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # How often a warm function re-reads which model version is active.
    model_refresh_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Longest a statement may run (PostgreSQL's statement_timeout; 0: no limit). The API's
    # functions set it (.chalice/config.json) so a stalled database is a 503, not a hang; the
    # jobs leave it off (a training extraction can take minutes).
    statement_timeout_seconds: float = Field(default=0.0, ge=0, le=900)
    stage: str = "local"
    # Monitoring (shared/monitoring): the SNS topic alerts are published to (empty: logged only),
    # the queues whose depth and age are collected, how many days of one-minute points are kept
    # (hourly rollups beyond, for a year), and whether drift starts an early retrain.
    alerts_topic_arn: str = ""
    # SQS queue of per-scope training jobs (deployed); empty: scheduled retraining runs in-process.
    training_jobs_queue_url: str = ""
    buffered_writes_queue_url: str = ""
    monitoring_raw_days: int = Field(default=30, ge=1, le=400)
    # Alerts of one service or host within this many minutes of its incident's last alert join it.
    incident_window_minutes: int = Field(default=30, ge=1, le=24 * 60)
    drift_retrain: bool = False
    # Processes batch scoring (`mlstack score conflict`) splits a large file over; 1: one process.
    scoring_processes: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1, le=64)

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: str) -> str:
        if value and urlparse(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("must look like postgresql://user:password@host:port/database")
        return value

    @field_validator("object_store_url")
    @classmethod
    def _object_store_url_scheme(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme == "s3" and parsed.netloc:
            return value
        if parsed.scheme == "file" and not parsed.netloc and parsed.path.startswith("/"):
            return value
        raise ValueError("must be s3://bucket/prefix or file:///absolute/path")

    @field_validator("signing_key")
    @classmethod
    def _signing_key_is_long_hex(cls, value: str) -> str:
        if not value:
            return value
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ValueError("must be hex") from None
        if len(raw) < 32:
            raise ValueError("must be at least 32 bytes (64 hex characters)")
        return value

    def model_post_init(self, __context: object) -> None:
        if not (self.database_url or self.database_secret_id):
            raise ConfigurationError(
                f"{ENV_PREFIX}DATABASE_URL (or {ENV_PREFIX}DATABASE_SECRET_ID) must be set"
            )
        if not (self.signing_key or self.signing_key_secret_id):
            raise ConfigurationError(
                f"{ENV_PREFIX}SIGNING_KEY (or {ENV_PREFIX}SIGNING_KEY_SECRET_ID) must be set"
            )


# Variable name (without prefix) -> field, so README and errors use the same names.
_ALIASES = {"AWS_ENDPOINT_URL": "aws_endpoint_url", "AWS_REGION": "aws_region"}


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for name in Settings.model_fields:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = environ[env_name]
    # The standard AWS variables are honoured when the prefixed ones are absent.
    for env_name, field in _ALIASES.items():
        if field not in values and env_name in environ:
            values[field] = environ[env_name]
    if "aws_region" not in values and "AWS_DEFAULT_REGION" in environ:
        values["aws_region"] = environ["AWS_DEFAULT_REGION"]
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_environment()
