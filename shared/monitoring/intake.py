"""POST /api/v2/metrics: batched points, idempotent per (source, metric, timestamp)."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.errors import FieldProblem, InvalidInput
from shared.monitoring.series_repository import Point
from shared.monitoring.services import MonitoringServices
from shared.platform.validation import PastTime

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/ {}-]{0,199}$"
# No reading comes near this (a petabyte is 1e15 bytes), and a day's sums of values within it stay
# finite: two points of ±1.7e308 made the average of their minute bucket overflow.
MAX_METRIC_MAGNITUDE = 1e18


class MetricPointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=NAME_PATTERN, description="host name, or database, api, ...")
    metric: str = Field(pattern=NAME_PATTERN)
    # From 2000, and not more than CLOCK_AHEAD in the future: a later one is a clock problem.
    ts: PastTime = Field(description="the minute the reading is of (ISO 8601 with offset)")
    value: float

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or abs(value) > MAX_METRIC_MAGNITUDE:
            raise ValueError(f"must be a finite number within ±{MAX_METRIC_MAGNITUDE:.0e}")
        return value


class MetricBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: list[MetricPointIn] = Field(min_length=1, max_length=5000)


# A tenant's service key may create this many series: the minute scan reads every series, so one
# tenant's pushes must not grow it without bound.
MAX_TENANT_SERIES = 1000
TENANT_SOURCE = "tenant:"


def tenant_sources(tenant_id: str) -> str:
    """Where a tenant's service key writes: its own sources, never the platform's (database, api,
    a host's) nor another tenant's, whose readings it could otherwise fake, pre-empt or hide."""
    return f"{TENANT_SOURCE}{tenant_id}/"


def store_metrics(services: MonitoringServices, batch: MetricBatch, tenant_id: str | None = None) -> dict[str, Any]:
    """Store the points: an operator's as given, a tenant's (its service key) under its own
    sources, as series of that tenant, at most MAX_TENANT_SERIES of them."""
    prefix = tenant_sources(tenant_id) if tenant_id else ""
    if not tenant_id:  # an operator's platform series may not pose as a tenant's (its staff would never see them)
        taken = [FieldProblem(f"points.{n}.source", "starts with tenant:, which is where a tenant's service key writes")
                 for n, p in enumerate(batch.points) if p.source.startswith(TENANT_SOURCE)]
        if taken:
            raise InvalidInput("a platform series' source may not start with tenant:", taken[:20])
    points = [Point(prefix + p.source, p.metric, p.ts.astimezone(UTC), p.value, tenant_id) for p in batch.points]
    with services.transactions.transaction() as tx:
        if tenant_id:
            incoming = {(p.source, p.metric) for p in points}
            # Only a push that creates series waits for the tenant's other pushes: its count must hold.
            if incoming - services.series.tenant_series(tx, tenant_id):
                known = services.series.tenant_series(tx, tenant_id, lock=True)
                new = incoming - known
                if len(known) + len(new) > MAX_TENANT_SERIES:
                    raise InvalidInput(f"this tenant may have at most {MAX_TENANT_SERIES} series; it has"
                                       f" {len(known)} and the batch adds {len(new)}",
                                       [FieldProblem("points", "too many series")])
        stored, duplicates = services.series.store_points(tx, points)
    return {"accepted": len(points), "stored": stored, "duplicates": duplicates}
