"""Reading and acting on incidents, silences and drift reports. Operators see every incident; a
tenant's staff see only their own models' (drift) incidents and drift reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.adapters.db import is_uuid
from shared.errors import NotFound
from shared.monitoring.alerts_repository import Silence
from shared.monitoring.services import MonitoringServices
from shared.platform.validation import PlausibleTime


class IncidentsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "acknowledged", "resolved"] | None = None
    limit: int = Field(default=50, ge=1, le=500)


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=200, description="SQL LIKE pattern: '%' matches anything")
    metric: str = Field(default="%", min_length=1, max_length=200)
    minutes: int = Field(default=60, ge=1, le=60 * 24 * 30, description="how long from starts_at")
    starts_at: PlausibleTime | None = None  # checked before any conversion: year 1 at +14:00 overflows
    reason: str = Field(default="", max_length=500)


def list_incidents(services: MonitoringServices, query: IncidentsQuery, tenant_id: str | None) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        rows = services.alerts.incidents(tx, status=query.status, tenant_id=tenant_id, limit=query.limit)
    for row in rows:
        row["alerts"] = row.pop("alert_list")
    return {"incidents": rows}


def acknowledge(services: MonitoringServices, incident_id: str, actor: str, tenant_id: str | None) -> dict[str, Any]:
    if not is_uuid(incident_id):
        raise NotFound(f"no open incident {incident_id}")
    with services.transactions.transaction() as tx:
        row = services.alerts.acknowledge(tx, incident_id, actor, datetime.now(UTC), tenant_id)
    if row is None:
        raise NotFound(f"no open incident {incident_id}")
    return row


# A silence asked for again by the same key with the same body (series, reason, minutes, and the
# same starts_at, or none given and the stored one starting at most this long before or after) is a
# retry (a client that timed out): the one stored is the answer. Anything else is a silence of its own.
RETRY_WITHIN = timedelta(minutes=1)


def add_silence(services: MonitoringServices, body: SilenceBody, actor: str) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        services.alerts.lock_silences(tx, actor)
        # The clock is read once the lock is held, so requests that queued for it start in the order
        # they are stored (read before, a later clock could be stored first).
        now = datetime.now(UTC)
        starts = (body.starts_at or now).astimezone(UTC)
        silence = Silence(body.source, body.metric, starts, starts + timedelta(minutes=body.minutes), body.reason, actor)
        retried = [s for s in services.alerts.silences(tx, now) if _retry_of(s, silence, body.starts_at is None)]
        stored = retried[0] if retried else services.alerts.add_silence(tx, silence)
    return stored.__dict__


def _retry_of(stored: Silence, asked: Silence, from_now: bool) -> bool:
    same = ((stored.source, stored.metric, stored.reason, stored.created_by, stored.ends_at - stored.starts_at)
            == (asked.source, asked.metric, asked.reason, asked.created_by, asked.ends_at - asked.starts_at))
    if from_now:  # either way: another server's clock may run a little ahead of this one's
        return same and abs(asked.starts_at - stored.starts_at) <= RETRY_WITHIN
    return same and stored.starts_at == asked.starts_at


def list_silences(services: MonitoringServices) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        return {"silences": [s.__dict__ for s in services.alerts.silences(tx, datetime.now(UTC))]}


def drift_reports(services: MonitoringServices, tenant_id: str | None) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        return {"reports": services.drift.latest_reports(tx, tenant_id)}
