"""POST /api/v2/metrics: batched points, idempotent per (source, metric, timestamp)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.monitoring.series_repository import Point
from shared.monitoring.services import MonitoringServices

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/ {}-]{0,199}$"
# A point this far in the future is a clock problem, not a reading.
MAX_FUTURE = timedelta(minutes=5)


class MetricPointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=NAME_PATTERN, description="host name, or database, api, ...")
    metric: str = Field(pattern=NAME_PATTERN)
    ts: AwareDatetime = Field(description="the minute the reading is of (ISO 8601 with offset)")
    value: float

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("ts")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        if not datetime(2000, 1, 1, tzinfo=UTC) <= value <= datetime.now(UTC) + MAX_FUTURE:
            raise ValueError("must be after 2000 and not more than 5 minutes ahead")
        return value


class MetricBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: list[MetricPointIn] = Field(min_length=1, max_length=5000)


def tenant_sources(tenant_id: str) -> str:
    """Where a tenant's service key writes: its own sources, never the platform's (database, api,
    a host's) nor another tenant's, whose readings it could otherwise fake, pre-empt or hide."""
    return f"tenant:{tenant_id}/"


def store_metrics(services: MonitoringServices, batch: MetricBatch, source_prefix: str = "") -> dict[str, Any]:
    points = [Point(source_prefix + p.source, p.metric, p.ts.astimezone(UTC), p.value) for p in batch.points]
    with services.transactions.transaction() as tx:
        stored, duplicates = services.series.store_points(tx, points)
    return {"accepted": len(points), "stored": stored, "duplicates": duplicates}
