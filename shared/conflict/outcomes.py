"""Outcome tracking of conflict predictions: label each once it is 24 h old, then live metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.conflict.services import conflict_services
from shared.context import AppContext
from shared.platform.outcomes import track_outcomes


def track_conflict_outcomes(context: AppContext, now: datetime | None = None) -> dict[str, Any]:
    services = conflict_services(context)
    return track_outcomes(services.transactions, services.outcomes, services.log, now)
