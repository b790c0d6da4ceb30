"""Structured logs: one JSON object per line, so CloudWatch Logs Insights can query every field."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

# Not "mlstack" nor below it: Chalice names its app logger after the app and mutes it below ERROR.
_LOGGER_NAME = "mlstack_events"


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now (test runners and tools swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str | None = None) -> None:
    """Idempotent; cheap enough to call at the start of every invocation."""
    level = level or os.environ.get("MLSTACK_LOG_LEVEL", "INFO")
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        level = "INFO"  # settings validation names the bad variable; logging must not fail first
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        root.setLevel(level)
        return
    handler = _StderrHandler()
    handler.setFormatter(JsonLineFormatter())
    # Lambda installs its own handler; replace it so every line is JSON.
    root.handlers = [handler]
    root.setLevel(level)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    logging.getLogger(_LOGGER_NAME).log(level, event, extra={"fields": {"event": event, **fields}})


def log_security_event(event: str, **fields: Any) -> None:
    log_event(f"security.{event}", logging.WARNING, security=True, **fields)
